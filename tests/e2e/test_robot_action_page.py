"""A robot alert's action link in a real headless Chromium: the confirmation page, confirming once, and the used page."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest
import uvicorn
from playwright.async_api import async_playwright, expect

from bots.alerting import AlertSinks
from fieldchat.fakes.robot_servers import FakeRobots
from services.messages import Rendered
from storage.schedule import ScheduleStore
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.harness import World
from tests.support.setups import booked_and_accepted
from webhooks.app import create_app

pytestmark = pytest.mark.browser

LINK = re.compile(r"\((http://127\.0\.0\.1:\d+/robot/a/[^)\s]+)\)")


async def test_a_dispatcher_confirms_a_robot_link_once_in_a_browser(sqlite_url, tmp_path):
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
        sinks = AlertSinks(world.container.sessions, world.clock, refresh_seconds=0, public_url=public)
        try:
            text = "⚠️ 异常 #1(上门 #%d,送货)\n原因:地址错误\n客户:张**,139****5678\n地址:黄浦区南京东路***" % visit.id
            await sinks.send("alerts", "region:Huangpu", Rendered(text, buttons=[[("🗓 改时间", f"dmv:{visit.id}")]]))
        finally:
            await sinks.aclose()
        url = LINK.findall(robots.messages("wecom", "key-1")[-1]["markdown"]["content"])[0]
        async with asyncio.timeout(15):
            while not server.started:
                await asyncio.sleep(0.02)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            # English: this machine's Chromium has no CJK font (the Chinese page is checked in tests/integration)
            context = await browser.new_context(locale="en-US", viewport={"width": 420, "height": 900})
            page = await context.new_page()
            await page.goto(url)
            await expect(page.locator("h1")).to_contain_text(f"Move visit #{visit.id} to another time")
            await page.screenshot(path=tmp_path / "robot-link-confirm.png", full_page=True)
            await page.get_by_role("button", name="Confirm").click()  # nothing picked: the browser asks for a pick first
            await expect(page.locator("h1")).to_contain_text("Move visit")
            choice = page.locator("select[name=choice] option").nth(2)
            await page.locator("select[name=choice]").select_option(await choice.get_attribute("value"))
            await page.get_by_role("button", name="Confirm").click()
            await expect(page.locator("h1")).to_have_text("Done")
            # recorded as the group's robot-link dispatcher, whose name is in the group's language (Chinese for WeCom)
            await expect(page.locator(".result").first).to_contain_text("Huangpu机器人群的调度")
            await page.screenshot(path=tmp_path / "robot-link-done.png", full_page=True)
            await page.goto(url)
            await expect(page.locator("h1")).to_have_text("This link was already used")
            await expect(page.locator("form")).to_have_count(0)
            await page.screenshot(path=tmp_path / "robot-link-used.png", full_page=True)
            await context.close()
            await browser.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()
        await robots.stop()
        await world.close()
