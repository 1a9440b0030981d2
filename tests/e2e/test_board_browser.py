"""The dispatch board in a real headless Chromium: a dispatcher signs in and sees a seeded day, assigns a visit on the board
(the offer reaches the technician's chat and the visit moves to their row), another browser's board redraws without a
reload, region A sees nothing of region B, and the Mini App signs in by initData and shows the board at phone width
(screenshots in /tmp/shots/board-*.png)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Page, async_playwright, expect

from domain import commands as c
from domain.clock import ManualClock
from fieldchat.container import Container, build
from fieldchat.settings import Settings
from services import accounts
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, START
from tests.integration.test_board import DAY, a_day
from tests.support.api import TOKEN
from tests.support.harness import World
from tests.unit.test_access import BOT_TOKEN, init_data
from webhooks.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "a long enough password"
SHOTS = Path("/tmp/shots")

expect.set_options(timeout=10_000)


@dataclass
class Served:
    url: str
    container: Container
    ids: dict


@pytest.fixture
async def served(sqlite_url, tmp_path):
    """The seeded day of tests/integration/test_board.py served over HTTP, with a dispatcher for each region."""
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", host="127.0.0.1", api_token=TOKEN,
                        telegram_staff_token=BOT_TOKEN, telegram_api_url="http://127.0.0.1:9")
    container = build(settings, ManualClock(START))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(container, run_background=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)

        async def add(ctx):
            await accounts.add_account(ctx, username="dora", display_name="Dora Chen", role="dispatcher", password=PASSWORD,
                                       regions=["Huangpu"], chat_user_id="777001")
            await accounts.add_account(ctx, username="pia", display_name="Pia", role="dispatcher", password=PASSWORD, regions=["Pudong"])
            return None, []

        await container.bus.call("e2e:accounts", add)
        ids = await a_day(World(container, container.clock, tmp_path))
        yield Served(f"http://127.0.0.1:{port}", container, ids)
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


async def new_page(browser, *, phone: bool = False, locale: str = "en-US") -> tuple[Page, list[str]]:
    viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    context = await browser.new_context(locale=locale, viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # every request of the page but the browser's own favicon guess must succeed (the board's script, its polls)
    page.on("response", lambda answer: errors.append(f"{answer.status} {answer.url}")
            if answer.status >= 400 and not answer.url.endswith("/favicon.ico") else None)
    return page, errors


async def signed_in(browser, served: Served, username: str, **kw) -> tuple[Page, list[str]]:
    page, errors = await new_page(browser, **kw)
    await page.goto(f"{served.url}/board?day={DAY}")
    await expect(page).to_have_url(f"{served.url}/signin?next=/board%3Fday%3D{DAY}")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{served.url}/board?day={DAY}")
    return page, errors


def row(page: Page, name: str):
    return page.locator(".tl-row", has=page.locator(".tl-name", has_text=name))


async def test_a_dispatcher_assigns_on_the_board_and_the_offer_reaches_the_technician(served, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ids = served.ids
    page, errors = await signed_in(browser, served, "dora")
    await expect(page.get_by_role("heading", name=f"Board · {DAY}")).to_be_visible()
    await expect(row(page, "Wang").locator(f'[data-visit="{ids["held"]}"]')).to_be_visible()
    await expect(page.locator("svg.map circle")).to_have_count(2)
    await expect(page.locator(".queue")).to_contain_text("Declined, nobody yet")
    await page.screenshot(path=SHOTS / "board-day.png", full_page=True)
    # a second browser of the same dispatcher keeps the board open: it should redraw by itself
    watcher, watcher_errors = await signed_in(browser, served, "dora")
    # act: the unassigned visit → Chen
    await row(page, "Nobody yet").locator(f'[data-visit="{ids["free"]}"]').click()
    await expect(page.get_by_role("heading", name=f"Visit #{ids['free']}")).to_be_visible()
    await expect(page.locator(".conflict")).to_contain_text(f"busy 09:00–11:00 with visit #{ids['held']}")
    await page.screenshot(path=SHOTS / "board-visit.png", full_page=True)
    await page.locator("form", has_text="Chen").get_by_role("button", name="Assign").click()
    await expect(page).to_have_url(f"{served.url}/board?day={DAY}&done=assign")
    await expect(page.get_by_role("status")).to_contain_text("Assigned")
    await expect(row(page, "Chen").locator(f'[data-visit="{ids["free"]}"]')).to_be_visible()
    await page.screenshot(path=SHOTS / "board-assigned.png", full_page=True)
    offer = (await ids["chen_chat"].inbox())[-1]
    assert offer.button("acc") and offer.params["visit"] == ids["free"]
    # the watcher's board asks for changes (as its timer does) and redraws the block on Chen's row without a reload
    await watcher.evaluate("window.fieldchatBoardPoll()")
    await expect(row(watcher, "Chen").locator(f'[data-visit="{ids["free"]}"]')).to_be_visible()
    assert errors == [] and watcher_errors == []


async def test_an_override_needs_the_conflict_accepted(served, browser):
    ids = served.ids
    page, errors = await signed_in(browser, served, "dora")
    await page.goto(f"{served.url}/board/visits/{ids['free']}?day={DAY}")
    wang = page.locator("form", has_text="Wang")
    await wang.get_by_role("button", name="Assign anyway").click()
    # the browser itself refuses the form until the conflict is accepted
    await expect(page).to_have_url(f"{served.url}/board/visits/{ids['free']}?day={DAY}")
    await wang.get_by_label("I accept this conflict").check()
    await wang.get_by_role("button", name="Assign anyway").click()
    await expect(page.get_by_role("status")).to_contain_text("Assigned")
    await expect(row(page, "Wang").locator(f'[data-visit="{ids["free"]}"]')).to_be_visible()
    assert errors == []


async def test_region_a_sees_nothing_of_region_b(served, browser):
    ids = served.ids
    pia, errors = await signed_in(browser, served, "pia")
    await expect(pia.locator(f'[data-visit="{ids["pudong"]}"]').first).to_be_visible()
    await expect(pia.locator(f'[data-visit="{ids["held"]}"]')).to_have_count(0)
    await expect(pia.locator("main")).not_to_contain_text("Han Meimei")
    answer = await pia.goto(f"{served.url}/board/visits/{ids['free']}?day={DAY}")
    assert answer is not None and answer.status == 404
    await expect(pia.get_by_role("alert")).to_contain_text("no such visit in your regions")
    assert [e for e in errors if "404" not in e] == []


async def test_the_mini_app_signs_in_by_initdata_and_shows_the_board_at_phone_width(served, browser):
    await served.container.bus.run("e2e:seen", c.TrackLocation(served.ids["chen"], 31.2330, 121.4790))
    page, errors = await new_page(browser, phone=True)
    signed = init_data(auth_date=served.container.clock.now())
    await page.goto(f"{served.url}/signin/webapp?next=/board#tgWebAppData={signed.replace('&', '%26').replace('=', '%3D')}")
    await expect(page).to_have_url(f"{served.url}/board")
    await page.goto(f"{served.url}/board?day={DAY}")
    await expect(page.locator(".tl-row").first).to_be_visible()
    await expect(page.locator("svg.map rect")).to_have_count(2)  # Wang's and Chen's last positions
    # nothing wider than the phone but the timeline's own scroller
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    await page.screenshot(path=SHOTS / "board-phone.png", full_page=True)
    assert errors == []
