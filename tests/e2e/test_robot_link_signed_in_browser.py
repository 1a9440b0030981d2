"""A robot alert's action link opened in a real headless Chromium by someone signed in: a dispatcher of another region
gets the page saying why not; the region's dispatcher confirms it as themselves."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import async_playwright, expect

from bots.alerting import AlertSinks
from domain.model import Dispatcher
from fieldchat.fakes.robot_servers import FakeRobots
from services import accounts
from services.messages import Rendered
from storage.schedule import ScheduleStore
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.harness import World
from tests.support.setups import booked_and_accepted
from webhooks.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LINK = re.compile(r"\((http://127\.0\.0\.1:\d+/robot/a/[^)\s]+)\)")
PASSWORD = "a long enough password"
SHOTS = Path("/tmp/orders")


async def add_account(world: World, username: str, name: str, regions: list[str]) -> int:
    async def work(ctx):
        dispatcher = await ctx.store.add(Dispatcher(name))
        await accounts.add_account(ctx, username=username, display_name=name, role="dispatcher", password=PASSWORD, regions=regions,
                                   dispatcher_id=dispatcher.id, language="en")
        return dispatcher.id, []

    return await world.container.bus.call(f"test:account:{username}", work)


async def sign_in(context, public: str, username: str):
    page = await context.new_page()
    await page.goto(f"{public}/signin?lang=en")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r".*/me$"))
    return page


async def test_a_link_acts_as_the_signed_in_dispatcher_and_refuses_another_regions(sqlite_url, tmp_path):
    SHOTS.mkdir(exist_ok=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    world = await World.create(sqlite_url, tmp_path, public_url=public, replan_seconds=0.5)
    robots = FakeRobots(clock=lambda: world.clock.now().timestamp())
    await robots.start()
    server = uvicorn.Server(uvicorn.Config(create_app(world.container, run_background=False), lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        robots.add("wecom", "key-1")
        await world._tx(lambda store: ScheduleStore(store).put_alert_sink(
            name="huangpu-wecom", region="Huangpu", kind="wecom", url=robots.url("wecom", "key-1"), secret=None, keyword=None, priority=0))
        order, *_ = await booked_and_accepted(world)
        visit = order.visits[0]
        mei = await add_account(world, "mei", "Mei", ["Huangpu"])
        await add_account(world, "xu", "Xu", ["Xuhui"])
        sinks = AlertSinks(world.container.sessions, world.clock, refresh_seconds=0, public_url=public)
        try:
            text = "⚠️ Visit #%d (delivery) has no technician\nCustomer: Z**, 139****5678\nAddress: Huangpu ***" % visit.id
            await sinks.send("alerts", "region:Huangpu", Rendered(text, buttons=[[("🗓 Move", f"dmv:{visit.id}")]]))
        finally:
            await sinks.aclose()
        url = LINK.findall(robots.messages("wecom", "key-1")[-1]["markdown"]["content"])[0]
        async with asyncio.timeout(15):
            while not server.started:
                await asyncio.sleep(0.02)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            other = await browser.new_context(locale="en-US", viewport={"width": 420, "height": 900})
            page = await sign_in(other, public, "xu")
            await page.goto(url)
            await expect(page.locator("h1")).to_have_text("Not yours to act on")
            await expect(page.locator(".result").first).to_contain_text("signed in as Xu, a dispatcher of other regions")
            await expect(page.locator("form")).to_have_count(0)
            await page.screenshot(path=SHOTS / "robot-link-other-region.png", full_page=True)
            await other.close()

            own = await browser.new_context(locale="en-US", viewport={"width": 420, "height": 900})
            page = await sign_in(own, public, "mei")
            await page.goto(url)
            await expect(page.locator("h1")).to_contain_text(f"Move visit #{visit.id} to another time")
            await expect(page.get_by_text("Recorded as: Mei.")).to_be_visible()
            choice = page.locator("select[name=choice] option").nth(2)
            await page.locator("select[name=choice]").select_option(await choice.get_attribute("value"))
            await page.screenshot(path=SHOTS / "robot-link-signed-in-confirm.png", full_page=True)
            await page.get_by_role("button", name="Confirm").click()
            await expect(page.locator("h1")).to_have_text("Done")
            await expect(page.locator(".result").first).to_contain_text("Mei")
            await page.screenshot(path=SHOTS / "robot-link-signed-in-done.png", full_page=True)
            await own.close()
            await browser.close()
        job = await world.job(order.job.id)
        used = [e for e in job["timeline"] if e["type"] == "RobotLinkUsed"]
        assert len(used) == 1 and used[0]["data"]["dispatcher_id"] == mei and used[0]["data"]["name"] == "Mei"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()
        await robots.stop()
        await world.close()
