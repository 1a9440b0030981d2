"""The devices pages in a real headless Chromium (walk report B-2, B-3): a dispatcher signs in, goes on from /me to
Devices, finds the air conditioner by its serial, opens its page (record, life, repairs with links to their jobs, its QR
sticker, which really loads) and prints the customer's sheet; the job page links back to the device. Screenshots in
/tmp/shots."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import pytest
import uvicorn
from playwright.async_api import async_playwright, expect

from domain.clock import ManualClock
from fieldchat.container import Container, build
from fieldchat.settings import Settings
from services import accounts
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, START
from tests.e2e.test_jobs_browser import PASSWORD, SHOTS, create_app_for
from tests.integration.test_backoffice_pages import repaired_device
from tests.support.harness import World

pytestmark = [pytest.mark.browser, pytest.mark.slow]

expect.set_options(timeout=10_000)


@dataclass
class Served:
    url: str
    container: Container
    found: dict


@pytest.fixture
async def served(sqlite_url, tmp_path):
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", host="127.0.0.1", web_console=True)
    container = build(settings, ManualClock(START))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app_for(container), host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        found = await repaired_device(World(container, container.clock, tmp_path), tmp_path)

        async def add(ctx):
            await accounts.add_account(ctx, username="dora", display_name="Dora Chen", role="dispatcher", password=PASSWORD,
                                       regions=["Huangpu"], language="en")
            return None, []

        await container.bus.call("e2e:devices:accounts", add)
        yield Served(f"http://127.0.0.1:{port}", container, found)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


@pytest.fixture
async def browser():
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def test_a_dispatcher_goes_from_me_to_a_device_sees_its_history_and_qr_sticker_and_prints_the_sheet(served, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    device_id, repair_job = served.found["device"], served.found["repair_job"]
    context = await browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{served.url}/signin")
    await page.get_by_label("Username").fill("dora")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{served.url}/me")

    # /me: the navigation bar and where to go, each section with what it is for
    sections = page.locator("section[aria-labelledby=go]")
    await expect(sections.get_by_role("link", name="Devices")).to_be_visible()
    await expect(page.locator("header.top nav").get_by_role("link", name="Devices")).to_be_visible()
    await page.screenshot(path=SHOTS / "me.png", full_page=True)
    await sections.get_by_role("link", name="Devices").click()
    await expect(page).to_have_url(f"{served.url}/devices")

    # found by its serial through the labelled search
    await page.get_by_label("Find").fill("GR-7788")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.data tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("Zhang Wei")
    await expect(rows).to_contain_text("GR-778899")
    await page.screenshot(path=SHOTS / "devices-list.png", full_page=True)

    await rows.get_by_role("link", name=f"#{device_id} Split air conditioner").click()
    await expect(page).to_have_url(f"{served.url}/devices/{device_id}")
    await expect(page.get_by_role("heading", name=f"Device #{device_id}: Split air conditioner")).to_be_visible()
    record = page.locator("section[aria-labelledby=record]")
    await expect(record).to_contain_text("KFR-35GW")
    await expect(record).to_contain_text("under warranty")
    history = page.locator("section[aria-labelledby=history]")
    await expect(history).to_contain_text("Capacitor failed")
    await expect(history).to_contain_text("Replaced the run capacitor")
    await expect(history.get_by_role("link", name=f"Job #{repair_job}")).to_be_visible()
    # the installation's photo, from its own job's photo route, really loads (thumbnails load lazily: scroll to it)
    thumb = history.locator("img")
    await thumb.first.scroll_into_view_if_needed()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await thumb.first.element_handle())
    sticker = page.locator("section[aria-labelledby=qr] img")
    await sticker.scroll_into_view_if_needed()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await sticker.element_handle())
    assert await sticker.evaluate("img => img.naturalWidth") == 480
    await page.screenshot(path=SHOTS / "device-page.png", full_page=True)

    # the customer's printable sheet: each sticker an image that loaded
    sheet = await context.new_page()
    await sheet.goto(f"{served.url}{await page.get_by_role('link', name='Printable sheet: every device of this customer').get_attribute('href')}")
    codes = sheet.locator(".cell img")
    await expect(codes).to_have_count(1)
    await sheet.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await codes.first.element_handle())
    await sheet.screenshot(path=SHOTS / "device-sheet.png", full_page=True)

    # the repair's job page links back to the device
    await page.goto(f"{served.url}/jobs/{repair_job}")
    await page.locator("section[aria-labelledby=devices]").get_by_role("link", name="Open the device's page").click()
    await expect(page).to_have_url(f"{served.url}/devices/{device_id}")

    # the same page in Chinese, phone-sized
    phone = await browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 800}, storage_state=await context.storage_state())
    small = await phone.new_page()
    await small.goto(f"{served.url}/devices/{device_id}?lang=zh")
    await expect(small.get_by_role("heading", name="设备档案")).to_be_visible()
    await small.screenshot(path=SHOTS / "device-page-zh-phone.png", full_page=True)
    assert errors == []
