"""The web chat page in a real headless Chromium drives a sofa order from booking to rating and problem reports."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest
import uvicorn
from playwright.async_api import Locator, Page, async_playwright, expect

from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.demo import CENTER, DemoLinks, load_demo
from fieldchat.settings import Settings
from webhooks.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # Monday 08:00 in Shanghai
AT_THE_ADDRESS = f"{CENTER[0]},{CENTER[1]}"

expect.set_options(timeout=10_000)


def png(path: Path, size: int = 8) -> Path:
    """Write a small, valid, light-blue PNG."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x90\xc0\xf0" * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


@dataclass
class Served:
    url: str
    links: DemoLinks


@pytest.fixture
async def served(sqlite_url, tmp_path):
    """The real app with the demo data, served by uvicorn on a free local port in this event loop."""
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", host="127.0.0.1", web_console=True)
    clock = ManualClock(START)
    container = build(settings, clock)
    links = await load_demo(container.bus)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}", links)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


@pytest.fixture
async def page(served):
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        await context.close()
        await browser.close()
        assert errors == [], f"the page raised: {errors}"


class Pane:
    """One chat pane of the page, driven only by clicking and typing."""

    def __init__(self, page: Page, key: str) -> None:
        self.page = page
        self.root = page.locator(f'[data-pane="{key}"]')

    def said(self, text: str) -> Locator:
        """The latest bot message containing ``text`` (case-sensitive, unlike a plain has_text)."""
        return self.root.locator("[data-role=bot-message]", has_text=re.compile(re.escape(text))).last

    async def sees(self, text: str) -> Locator:
        message = self.said(text)
        await expect(message).to_be_visible()
        return message

    async def last_says(self, text: str) -> None:
        await expect(self.root.locator("[data-role=bot-message]").last).to_contain_text(text)

    async def press(self, message_text: str, label: str) -> None:
        message = await self.sees(message_text)
        await message.locator("[data-role=inline-button]", has_text=re.compile(re.escape(label))).first.click()

    async def press_first(self, message_text: str) -> str:
        button = (await self.sees(message_text)).locator("[data-role=inline-button]").first
        label = await button.inner_text()
        await button.click()
        return label

    async def type(self, text: str) -> None:
        field = self.root.locator("[data-role=input]")
        await field.fill(text)
        await field.press("Enter")

    async def share_location(self, answer: str) -> None:
        """Press 📍 and answer the page's window.prompt with "lat,lon"."""
        async def accept(dialog) -> None:
            assert dialog.type == "prompt"
            await dialog.accept(answer)

        self.page.once("dialog", accept)
        await self.root.locator("[data-role=location]").click()

    async def send_photo(self, path: Path) -> None:
        await self.root.locator("[data-role=photo]").set_input_files(path)


async def open_chat(page: Page, served: Served) -> tuple[Pane, Pane, Pane, Pane]:
    """Open the demo links; every pane sends its /start on its own and gets registered."""
    await page.goto(f"{served.url}/chat#{urlencode(served.links.panes)}")
    customer, driver, installer, group = (Pane(page, key) for key in ("customer", "driver", "installer", "group"))
    await driver.sees("You're registered")
    await installer.sees("You're registered")
    await group.sees("You are registered as a dispatcher")
    await group.sees("This group now receives fieldchat alerts")
    await customer.sees("Here is your order")
    await customer.sees("3-seat fabric sofa")
    return customer, driver, installer, group


async def book_and_accept(customer: Pane, driver: Pane, installer: Pane) -> None:
    """The customer books delivery then installation; driver and installer accept; the customer hears who comes."""
    await customer.press_first("Pick a time for the delivery")
    await customer.sees("Booked: delivery")
    await customer.press("Now pick a time for the installation", "Book installation")
    await customer.press_first("Pick a time for the installation")
    await customer.sees("Booked: installation")

    await driver.press("New delivery", "Accept")
    await driver.sees("Accepted visit")
    await installer.press("New installation", "Accept")
    await installer.sees("Accepted visit")
    await customer.sees("Wang Qiang will come")
    await customer.sees("Li Ming will come")


async def arrive(tech: Pane) -> None:
    await tech.press("Accepted visit", "On my way")
    await tech.sees("The customer knows you're on the way")
    await tech.sees("share your location to check in")
    await tech.share_location(AT_THE_ADDRESS)
    await tech.sees("Checked in")


async def test_the_whole_sofa_order_runs_in_the_browser_from_links_to_a_low_rating_alert(page, served, tmp_path):
    customer, driver, installer, group = await open_chat(page, served)
    await book_and_accept(customer, driver, installer)

    # the driver: on the way, check-in by location, the delivery checklist with a photo, complete
    await arrive(driver)
    await driver.press("Checked in", "Start checklist")
    await driver.press("Step 1/3: Is the packaging intact?", "Yes")
    await driver.press("Step 2/3: Did the customer check every item", "Yes")
    await driver.sees("Step 3/3: Photo of the goods in place")
    await driver.send_photo(png(tmp_path / "delivered.png"))
    await expect(driver.root.locator("[data-role=user-message] img")).to_have_count(1)
    await driver.press("Checklist done", "Complete visit")
    await driver.sees("completed. The customer is asked to confirm")
    await customer.sees("Wang Qiang is on the way for your delivery")
    await customer.sees("Wang Qiang has arrived")

    # the customer confirms the delivery and rates it well
    await customer.press("Wang Qiang has finished the delivery", "Confirm it's done")
    await customer.sees("Thank you for confirming the delivery!")
    await customer.press("How would you rate the service?", "5")
    await customer.press("Thanks for rating 5/5", "Skip")
    await customer.last_says("Thank you! Send /status any time")
    await driver.sees("The customer confirmed visit")

    # the installer: the sofa checklist with yes/no, a number (a wrong one first), a choice and a photo
    await arrive(installer)
    await installer.press("Checked in", "Start checklist")
    await installer.press("Step 1/4: Is the room clear for assembly?", "Yes")
    await installer.sees("Step 2/4: How many legs are fitted?")
    await installer.type("99")
    await installer.sees("Please type a number from 2 to 12.")
    await installer.type("4")
    await installer.press("Step 3/4: Fabric condition", "OK")
    await installer.sees("Step 4/4: Photo of the assembled sofa")
    await installer.send_photo(png(tmp_path / "sofa.png", 16))
    await installer.press("Checklist done", "Complete visit")
    await installer.sees("completed. The customer is asked to confirm")

    # the customer confirms and rates the installation 2: the dispatch group is alerted and notes it
    await customer.press("Li Ming has finished the installation", "Confirm it's done")
    await customer.sees("Thank you for confirming the installation!")
    await customer.press("How would you rate the service?", "2")
    await customer.press("We are sorry it was only 2/5", "Skip")
    await installer.sees("The customer confirmed visit")
    alert = await group.sees("Low rating 2/5 for installation")
    await expect(alert).to_contain_text("Li Ming")
    await expect(alert).to_contain_text("139****5678")
    await expect(alert).not_to_contain_text("Nanjing")
    await group.press("Low rating 2/5", "Acknowledge")
    await group.sees("Acknowledged by Demo dispatcher")  # the alert card itself, edited in place
    # the customer asks for a person; a dispatcher answers by typing in the group (the page says so: there is no
    # reply-to here as in Telegram)
    await customer.type("I want to talk to a person")
    await group.press("I want to talk to a person", "Reply")
    prompt = await group.sees("Type your answer as a reply")
    await expect(prompt.locator("[data-role=hint]")).to_have_text("↩ Type your answer below")
    await group.type("We will call you in ten minutes")
    await group.sees("Your answer was sent")
    await customer.sees("We will call you in ten minutes")

    await expect(page.locator("[data-role=system]")).to_have_count(0)
    await page.screenshot(path=tmp_path / "webchat.png")


async def test_an_installer_reports_damaged_goods_with_a_photo_and_a_dispatcher_acknowledges(page, served, tmp_path):
    customer, driver, installer, group = await open_chat(page, served)
    await book_and_accept(customer, driver, installer)
    await arrive(installer)

    await installer.press("Checked in", "Report a problem")
    await installer.press("What is the problem?", "Goods damaged")
    await installer.type("Torn fabric on the left arm")
    await installer.press("Please send at least one photo", "Send report")
    await expect(installer.root.locator("[data-role=bot-message]", has_text="Please send at least one photo")).to_have_count(2)
    await installer.send_photo(png(tmp_path / "damage.png"))
    await installer.press("Photo 1 added", "Send report")
    await installer.sees("Reported. The dispatchers have been alerted")

    problem = await group.sees("Goods damaged")
    await expect(problem).to_contain_text("Torn fabric on the left arm")
    await expect(problem).to_contain_text("Li Ming")
    await expect(problem).to_contain_text("Photos: 1")
    await group.press("Goods damaged", "Acknowledge")
    await group.sees("Acknowledged by Demo dispatcher")  # the alert card itself says who and when
    await installer.sees("A dispatcher acknowledged your report")


async def test_bad_input_gets_a_friendly_answer_and_rejections_show_as_system_lines(page, served, tmp_path):
    await page.goto(f"{served.url}/chat")
    customer, driver = Pane(page, "customer"), Pane(page, "driver")

    # an empty message is not sent at all; plain text before any link gets the hint
    await customer.root.locator("[data-role=input]").fill("   ")
    await customer.root.locator("[data-role=send]").click()
    await customer.type("hello, where is my sofa?")
    await customer.last_says("Please open the link you received with your order.")
    await expect(customer.root.locator("[data-role=user-message]")).to_have_count(1)
    await driver.type("hi")
    await driver.last_says("Please open your invite link to register.")

    # impossible coordinates are caught before sending
    await driver.share_location("91,0")
    await expect(driver.root.locator("[data-role=system]")).to_have_text("Enter latitude,longitude")

    # the server's 422 answers show as a system line in the pane that caused them
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    await customer.send_photo(empty)
    await expect(customer.root.locator("[data-role=system]")).to_have_text("the file is empty")
    await expect(customer.root.locator("[data-role=user-message].failed")).to_have_count(1)
    await customer.type("x" * 5000)
    await expect(customer.root.locator("[data-role=system]").last).to_contain_text("at most 4096 characters")

    await expect(page.locator("[data-role=bot-message]")).to_have_count(2)
    await page.screenshot(path=tmp_path / "webchat-errors.png")


async def test_a_customers_own_link_opens_their_chat_alone_and_leaves_no_token_in_the_address(page, served, tmp_path):
    await page.goto(f"{served.url}/chat#customer={served.links.customer}")
    customer = Pane(page, "customer")
    await customer.sees("Here is your order")
    await customer.sees("3-seat fabric sofa")
    # nothing of the staff side: no technician or group panes, no way to add chats
    await expect(page.locator("[data-pane]")).to_have_count(1)
    await expect(page.locator("[data-role=add-chat]")).to_be_hidden()
    await expect(page.locator("[data-role=reset]")).to_be_hidden()  # it would sign them out, their link used up
    # the token was read from the fragment (never sent to the server) and then dropped from the address bar
    assert served.links.customer not in page.url
    await page.screenshot(path=tmp_path / "customer-only.png")

    # choosing 中文 for a chat that runs already brings the bot's own language choice, which switches it
    await customer.root.locator("[data-role=language]").select_option("zh")
    await customer.press("Choose your language", "中文")
    await customer.sees("语言已切换为中文")


async def photos_load(message: Locator, count: int) -> None:
    """Wait until the message shows ``count`` photos the browser has fetched and decoded (through the console's own route)."""
    handle = await message.element_handle()
    await message.page.wait_for_function(
        "([m, n]) => Array.from(m.querySelectorAll('[data-role=bot-photo]')).filter(i => i.complete && i.naturalWidth > 0).length === n",
        arg=[handle, count],
    )


@pytest.mark.slow
async def test_cards_change_in_place_and_problem_photos_show_in_the_dispatch_group(page, served, tmp_path):
    customer, driver, installer, group = await open_chat(page, served)

    # the order card answers a pick where it is: the same message now says what was booked, without the old times
    order = await customer.sees("Pick a time for the delivery")
    order_id = await order.get_attribute("data-id")
    before = await customer.root.locator("[data-role=bot-message]").count()
    await order.locator("[data-role=inline-button]").first.click()
    card = customer.root.locator(f'[data-role=bot-message][data-id="{order_id}"]')
    await expect(card).to_contain_text("Booked: delivery")
    await expect(card.locator("[data-role=edited]")).to_be_visible()
    await expect(card.locator("[data-role=inline-button]")).to_have_text(["📅 Book installation"])
    await expect(customer.root.locator("[data-role=bot-message]")).to_have_count(before)
    await customer.press("Now pick a time for the installation", "Book installation")
    await customer.press_first("Pick a time for the installation")
    await customer.sees("Booked: installation")

    # the offer turns into the accepted visit in place: nothing is left to accept
    await installer.press("New installation", "Accept")
    await installer.sees("Accepted visit")
    await expect(installer.root.locator("[data-role=inline-button]", has_text="Accept")).to_have_count(0)
    await expect(installer.root.locator("[data-role=bot-message]", has_text="New installation")).to_have_count(0)
    await arrive(installer)

    # a problem with two photos: the group sees them as pictures, fetched with this browser's session
    await installer.press("Checked in", "Report a problem")
    await installer.press("What is the problem?", "Goods damaged")
    await installer.type("Torn fabric on the left arm")
    await installer.send_photo(png(tmp_path / "damage.png", 24))
    await installer.sees("Photo 1 added")
    await installer.send_photo(png(tmp_path / "damage2.png", 32))
    await installer.press("Photo 2 added", "Send report")
    await installer.sees("Reported. The dispatchers have been alerted")
    photos = await group.sees("Photos of problem")
    await expect(photos.locator("[data-role=bot-photo]")).to_have_count(2)
    await photos_load(photos, 2)
    await expect(photos.locator("[data-role=text]")).to_be_in_viewport()  # the pane follows a message that grew

    # Acknowledge changes the alert itself: no second copy, and its button is gone
    await group.press("Goods damaged", "Acknowledge")
    alert = await group.sees("Acknowledged by Demo dispatcher")
    await expect(alert).to_contain_text("Goods damaged")
    await expect(alert.locator("[data-role=inline-button]", has_text="Acknowledge")).to_have_count(0)
    await expect(group.root.locator("[data-role=bot-message]", has_text="Goods damaged")).to_have_count(1)
    await installer.sees("A dispatcher acknowledged your report")
    await expect(page.locator("[data-role=system]")).to_have_count(0)
    await page.screenshot(path=tmp_path / "cards-and-photos.png")


@pytest.mark.slow
async def test_a_panes_messages_reach_the_server_one_after_another_in_the_order_sent(page, served):
    customer, _driver, _installer, _group = await open_chat(page, served)
    in_flight, most, kinds = 0, 0, []

    async def one_at_a_time(route) -> None:
        nonlocal in_flight, most
        kind = route.request.post_data_json["kind"]
        kinds.append(kind)
        in_flight += 1
        most = max(most, in_flight)
        if kind == "button":  # the press is held until the reader has typed the next message
            await expect(customer.root.locator("[data-role=user-message]", has_text="/status")).to_be_visible()
        response = await route.fetch()
        in_flight -= 1
        await route.fulfill(response=response)

    await page.route("**/chat/api/send", one_at_a_time)
    order = await customer.sees("Pick a time for the delivery")
    await order.locator("[data-role=inline-button]").first.click()
    await customer.type("/status")
    await customer.sees("Booked: delivery")
    await expect(customer.root.locator("[data-role=user-message].pending")).to_have_count(0)
    assert kinds == ["button", "text"] and most == 1
    # /status answered after the booking: it already knows the delivery's time
    await customer.last_says("11:00")
