"""The signature pad in a real headless Chromium at phone width: the technician's link opened, the customer draws with
the mouse, Save keeps the PNG with the visit and the technician hears it in the chat (screenshots in /tmp/shots)."""

from __future__ import annotations

import asyncio
import io
import socket
from pathlib import Path

import pytest
import uvicorn
from PIL import Image
from playwright.async_api import async_playwright, expect

from storage.repository import Store
from storage.signatures import signature_of
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.harness import SHOP, World, keys
from tests.support.setups import booked_and_accepted
from webhooks.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path("/tmp/shots")

expect.set_options(timeout=10_000)


@pytest.fixture
async def served(sqlite_url, tmp_path):
    """A world whose public address is a real server on 127.0.0.1, so the links in its chats open in the browser."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    world = await World.create(sqlite_url, tmp_path, replan_seconds=0.5, public_url=url)
    app = create_app(world.container, run_background=False)
    # the world started its container already: the server only serves
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield world, url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()
        await world.close()


async def test_the_customer_signs_with_the_mouse_and_the_technician_is_told(served):
    world, url = served
    order, _customer, driver, _group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"go:{visit.id}")
    await driver.location(SHOP[0], SHOP[1], live=True)
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    sent = await driver.press(f"sig:{visit.id}")
    link = next(data for _label, data in sent[-1].buttons if data.startswith("app:")).removeprefix("app:")
    assert link.startswith(f"{url}/sign/")

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await chromium.new_context(locale="en-US", viewport={"width": 390, "height": 780}, device_scale_factor=2)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(link)
        await expect(page.get_by_role("heading", name="Sign for the goods received")).to_be_visible()
        pad = page.get_by_role("img", name="Signature pad: draw your signature here")
        box = await pad.bounding_box()
        assert box is not None and box["width"] > 300  # the pad fills a phone's width

        await page.get_by_role("button", name="Save signature").click()  # nothing drawn yet
        await expect(page.get_by_role("status")).to_have_text("Please sign in the box first.")

        x, y = box["x"], box["y"]
        await page.mouse.move(x + 30, y + box["height"] * 0.7)
        await page.mouse.down()
        for step in range(1, 25):
            await page.mouse.move(x + 30 + step * 12, y + box["height"] * (0.7 - 0.4 * ((step % 6) / 6)), steps=2)
        await page.mouse.up()
        await page.screenshot(path=SHOTS / "signature-pad-drawn.png")

        await page.get_by_role("button", name="Save signature").click()
        await expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        await expect(page.get_by_role("alert")).to_contain_text(f"saved with visit #{visit.id}")
        await page.screenshot(path=SHOTS / "signature-pad-saved.png")

        await page.goto(link)  # the link worked once
        await expect(page.get_by_role("heading", name="This link was already used")).to_be_visible()
        await page.screenshot(path=SHOTS / "signature-pad-used.png")
        assert errors == []
        await chromium.close()

    async with world.container.sessions() as session:
        kept = await signature_of(Store(session), visit.id)
    assert kept is not None and kept.png is not None and kept.stage == "delivery"
    image = Image.open(io.BytesIO(kept.png))
    assert image.format == "PNG" and image.width >= 600 and image.getbbox() is not None
    told = await driver.inbox()
    assert keys(told) == ["tech.signature_saved"] and told[-1].has_button("ck")
