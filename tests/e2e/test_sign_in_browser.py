"""Sign-in and the customer page in a real headless Chromium: a password, a Telegram Mini App's initData, signing out,
and a customer's own mobile chat page opened from their link (screenshots kept in the test's directory)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import pytest
import uvicorn
from playwright.async_api import Page, async_playwright, expect

from domain.clock import ManualClock
from fieldchat.container import Container, build
from fieldchat.settings import Settings
from services import accounts
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, START
from tests.support.api import TOKEN, order_body
from tests.unit.test_access import BOT_TOKEN, init_data
from webhooks.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "a long enough password"

expect.set_options(timeout=10_000)


@dataclass
class Served:
    url: str
    container: Container


@pytest.fixture
async def served(sqlite_url, tmp_path):
    """Outside demo mode, with a staff bot token (its API unreachable: nothing here calls it) and two accounts."""
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
            await accounts.add_account(ctx, username="dora", display_name="Dora Chen", role="dispatcher", password=PASSWORD, regions=["Huangpu"])
            await accounts.add_account(ctx, username="ming", display_name="Ming", role="manager", password=None, chat_user_id="777001")
            return None, []

        await container.bus.call("e2e:accounts", add)
        yield Served(f"http://127.0.0.1:{port}", container)
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
    viewport = {"width": 390, "height": 780} if phone else {"width": 1100, "height": 800}
    context = await browser.new_context(locale=locale, viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


async def test_a_dispatcher_signs_in_with_a_password_sees_who_they_are_and_signs_out(served, browser, tmp_path):
    page, errors = await new_page(browser)
    await page.goto(f"{served.url}/me")
    await expect(page).to_have_url(f"{served.url}/signin?next=/me")
    await page.get_by_label("Username").fill("dora")
    await page.get_by_label("Password").fill("wrong password here")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("The username or password is wrong")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{served.url}/me")
    await expect(page.locator("dl")).to_contain_text("Dora Chen")
    await expect(page.locator("dl")).to_contain_text("Huangpu")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "fieldchat_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert await page.evaluate("document.cookie") == ""  # the page's scripts cannot read it
    await page.screenshot(path=tmp_path / "signed-in.png")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{served.url}/signin")
    await page.goto(f"{served.url}/me")
    await expect(page).to_have_url(f"{served.url}/signin?next=/me")
    assert errors == []


async def test_a_manager_opening_the_mini_app_is_signed_in_by_initdata(served, browser, tmp_path):
    page, errors = await new_page(browser, phone=True, locale="zh-CN")
    signed = init_data(auth_date=served.container.clock.now())
    # Telegram opens a Mini App with its signed data after "#": nothing of it reaches the server in the URL
    await page.goto(f"{served.url}/signin/webapp#tgWebAppData={signed.replace('&', '%26').replace('=', '%3D')}")
    await expect(page).to_have_url(f"{served.url}/me")
    await expect(page.locator("dl")).to_contain_text("经理")
    await expect(page.locator("dl")).to_contain_text("Telegram 小程序")
    await page.screenshot(path=tmp_path / "mini-app.png")
    # a forged one signs nobody in, and says why
    other, _ = await new_page(browser, phone=True, locale="en-US")
    await other.goto(f"{served.url}/signin/webapp#tgWebAppData={signed.replace('777001', '777002').replace('&', '%26').replace('=', '%3D')}")
    await expect(other.locator("#state")).to_contain_text("could not be verified")
    assert errors == []


async def test_a_customer_chats_on_their_own_mobile_page_from_their_link(served, browser, tmp_path):
    import httpx

    async with httpx.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        link = (await api.post("/api/v1/orders", json=order_body())).json()["customer_link"]
    assert "/customer#customer=" in link
    page, errors = await new_page(browser, phone=True)
    await page.goto(link)
    await expect(page.locator("#log")).to_contain_text("3-seat sofa")
    assert "customer=" not in page.url  # the token left the address bar
    await expect(page.locator("#title")).to_have_text("Your service chat")
    before = await page.locator(".msg.bot").count()
    await page.get_by_label("Type a message").fill("/help")
    await page.get_by_label("Type a message").press("Enter")
    await expect(page.locator(".msg.me")).to_have_text("/help")
    await page.wait_for_function("n => document.querySelectorAll('.msg.bot').length > n", arg=before)  # the bot answered
    await page.screenshot(path=tmp_path / "customer-page.png", full_page=True)
    # the console is not there outside demo mode
    response = await page.goto(f"{served.url}/chat")
    assert response is not None and response.status == 404
    assert errors == []
