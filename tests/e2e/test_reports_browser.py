"""The reports pages in a real headless Chromium: a manager signs in, reads a day's figures in tables and charts, changes
the period and grouping with the pickers (keyboard too), opens the daily report, and on a phone nothing overflows."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import async_playwright, expect

from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.settings import Settings
from services import accounts
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.report_facts import DAY, TZ, seed
from webhooks.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "a long enough password"
SHOTS = Path("/tmp/shots")

expect.set_options(timeout=10_000)
CHARTS_LOADED = "() => [...document.querySelectorAll('img.chart')].every(img => img.complete && img.naturalWidth > 300)"


@pytest.fixture
async def served(sqlite_url, tmp_path):
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", host="127.0.0.1")
    container = build(settings, ManualClock(datetime.combine(DAY, datetime.min.time(), TZ).replace(hour=20)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app = create_app(container, run_background=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=sock.getsockname()[1], lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        await seed(container.sessions)

        async def add(ctx):
            await accounts.add_account(ctx, username="mona", display_name="Mona Lin", role="manager", password=PASSWORD)
            return None, []

        await container.bus.call("e2e:accounts", add)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def test_a_manager_reads_the_figures_changes_the_period_and_opens_the_daily_report(served, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await chromium.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{served}/reports?from={DAY}&to={DAY}")
        await page.get_by_label("Username").fill("mona")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Reports")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("67% (2/3)")
        await expect(page.locator("table.data").first).to_contain_text("Wang Fang")
        # the charts are real images of this site that loaded
        charts = page.locator("img.chart")
        await expect(charts).to_have_count(2)
        await page.wait_for_function(CHARTS_LOADED)
        await page.screenshot(path=SHOTS / "reports-desktop.png", full_page=True)
        # pickers by keyboard: group by region, per week, then Show
        await page.get_by_role("combobox", name="Group by").select_option("region")
        await page.get_by_role("combobox", name="Per", exact=True).select_option("week")
        await page.get_by_label("From").fill("2026-11-01")
        await page.get_by_role("button", name="Show").focus()
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{served}/reports?from=2026-11-01&to={DAY}&by=region&per=week&lang=en")
        await expect(page.locator("main")).to_contain_text("Pudong")
        await expect(page.locator("main")).to_contain_text("2026-W48")
        await page.get_by_role("link", name="Today's daily report").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Daily report")
        await expect(page.locator("img.chart")).to_have_count(1)
        await page.wait_for_function(CHARTS_LOADED)
        await page.screenshot(path=SHOTS / "reports-daily.png", full_page=True)
        # a bad date in the address is a page with the reason and a way back, not an error
        await page.goto(f"{served}/reports?from=2026-02-30&lang=en")
        await expect(page.get_by_role("alert")).to_contain_text("is not a date")
        # on a phone: the page fits its width (tables scroll inside their box)
        phone = await chromium.new_context(locale="en-US", viewport={"width": 390, "height": 800}, storage_state=await context.storage_state())
        small = await phone.new_page()
        await small.goto(f"{served}/reports?from={DAY}&to={DAY}&lang=en")
        assert await small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        await small.screenshot(path=SHOTS / "reports-phone.png", full_page=True)
        assert errors == []
        await chromium.close()
