"""The jobs pages in a real headless Chromium: a dispatcher signs in, filters the list, opens a completed job and sees its
photos (thumbnails that load) and checklist answers; a visitor without a session gets no photo. Screenshots in /tmp/shots."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import async_playwright, expect

from domain.clock import ManualClock
from fieldchat.container import Container, build
from fieldchat.settings import Settings
from domain import commands as c
from services import accounts
from storage.repository import Store
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, START
from tests.integration.test_fees import price
from tests.integration.test_jobs_pages import completed_photo_job

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "a long enough password"
SHOTS = Path("/tmp/shots")

expect.set_options(timeout=10_000)


@dataclass
class Served:
    url: str
    container: Container
    job_id: int


@pytest.fixture
async def served(sqlite_url, tmp_path):
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", host="127.0.0.1", web_console=True)
    container = build(settings, ManualClock(START))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app_for(container)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        order = await completed_photo_job(container, tmp_path)

        async def add(ctx):
            await accounts.add_account(ctx, username="dora", display_name="Dora Chen", role="dispatcher", password=PASSWORD,
                                       regions=["Huangpu"], language="en")
            return None, []

        await container.bus.call("e2e:jobs:accounts", add)
        yield Served(f"http://127.0.0.1:{port}", container, order.job.id)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def create_app_for(container: Container):
    from webhooks.app import create_app

    return create_app(container, run_background=False)


@pytest.fixture
async def browser():
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def test_a_dispatcher_finds_a_completed_job_and_sees_its_photos_and_answers_and_a_stranger_gets_no_photo(served, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = await browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{served.url}/jobs")
    await expect(page).to_have_url(f"{served.url}/signin?next=/jobs")
    await page.get_by_label("Username").fill("dora")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{served.url}/jobs")

    # the list, filtered by a search and a status through the labelled form
    await page.get_by_label("Search").fill("zhang")
    await page.get_by_label("Status").select_option("done")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(f"{served.url}/jobs?q=zhang&status=done&region=&from=&to=&technician=&source=")
    row = page.locator("table.data tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Zhang Wei")
    await page.screenshot(path=SHOTS / "jobs-list.png", full_page=True)

    await page.get_by_role("link", name=f"#{served.job_id}").click()
    await expect(page).to_have_url(f"{served.url}/jobs/{served.job_id}")
    await expect(page.get_by_role("heading", name=f"Job #{served.job_id}")).to_be_visible()
    answers = page.locator("section[aria-labelledby=answers]")
    await expect(answers).to_contain_text("Packaging intact?")
    await expect(answers).to_contain_text("Yes")
    await expect(answers).to_contain_text("Photo of the sofa in place")
    photos = page.locator("section[aria-labelledby=photos] img")
    await expect(photos).to_have_count(1)
    # the thumbnail really loaded (a broken image has no natural width)
    await photos.first.scroll_into_view_if_needed()  # thumbnails load lazily
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await photos.first.element_handle())
    assert await photos.first.evaluate("img => img.naturalWidth") <= 320
    await expect(page.locator("section[aria-labelledby=ratings]")).to_contain_text("Careful and friendly")
    await page.screenshot(path=SHOTS / "jobs-page.png", full_page=True)
    source = await photos.first.get_attribute("src")
    assert source is not None and source.startswith(f"/jobs/{served.job_id}/photos/")

    # a phone-width view of the same page
    phone = await browser.new_context(locale="en-US", viewport={"width": 390, "height": 800}, storage_state=await context.storage_state())
    small = await phone.new_page()
    await small.goto(f"{served.url}/jobs/{served.job_id}")
    await expect(small.locator("section[aria-labelledby=photos] img")).to_have_count(1)
    await small.screenshot(path=SHOTS / "jobs-page-phone.png", full_page=True)

    # a visitor without a session is sent to sign in: the photo's bytes never reach them
    stranger = await browser.new_context(locale="en-US")
    answer = await stranger.request.get(f"{served.url}{source}", max_redirects=0)
    assert answer.status == 303 and answer.headers["location"].startswith("/signin?next=")
    assert not answer.headers.get("content-type", "").startswith("image/")
    lost = await stranger.new_page()
    await lost.goto(f"{served.url}{source.split('?')[0]}")
    await expect(lost).to_have_url(f"{served.url}/signin?next={source.split('?')[0]}")
    assert errors == []


async def test_the_job_page_shows_the_bill_with_its_lines_payments_and_what_is_owed_in_english_and_chinese(served, browser):
    """The completed delivery's bill, priced once the price list had an entry, with a cash payment (issue 14 part 6)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    bus = served.container.bus
    await bus.run("e2e:price", price("delivery", minor=15000))
    async with served.container.sessions() as session:
        [visit] = await Store(session).visits_of_job(served.job_id)
    await bus.run("e2e:bill", c.IssueBill(visit.id))
    await bus.run("e2e:pay", c.RecordPayment(visit.id, 5000, "CNY", "cash", None, "api"))

    context = await browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{served.url}/signin?next=/jobs/{served.job_id}")
    await page.get_by_label("Username").fill("dora")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{served.url}/jobs/{served.job_id}")
    bill = page.locator("section[aria-labelledby=bills]")
    await expect(bill.get_by_role("heading", name="Bill", exact=True)).to_be_visible()
    await expect(bill.locator("tbody tr")).to_have_count(1)
    await expect(bill.locator("tfoot")).to_contain_text("Total")
    await expect(bill.locator("tfoot")).to_contain_text("CNY 150.00")
    await expect(bill.locator("tfoot")).to_contain_text("CNY 50.00")
    await expect(bill.locator("tfoot")).to_contain_text("Outstanding")
    await expect(bill.locator("tfoot")).to_contain_text("CNY 100.00")
    await expect(bill).to_contain_text("payment due")
    await expect(bill.locator("ul li")).to_contain_text("Cash")
    await bill.scroll_into_view_if_needed()
    await bill.screenshot(path=SHOTS / "jobs-bill.png")
    await page.goto(f"{served.url}/jobs/{served.job_id}?lang=zh")
    bill = page.locator("section[aria-labelledby=bills]")
    await expect(bill.get_by_role("heading", name="账单", exact=True)).to_be_visible()
    await expect(bill.locator("tfoot")).to_contain_text("未付")
    await expect(bill).to_contain_text("现金")
    await bill.screenshot(path=SHOTS / "jobs-bill-zh.png")
    assert errors == []
