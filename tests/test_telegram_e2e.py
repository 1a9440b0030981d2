"""End to end through Telegram: the real aiogram adapter talks HTTP to a fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image
from sqlalchemy import func, select

from domain.clock import ManualClock
from domain.model import ProblemReport, Visit
from fieldchat.container import Container, build
from fieldchat.settings import Settings
from services import backoffice
from storage import tables
from storage.repository import Store
from fieldchat.fakes.telegram_server import FakeTelegram
from webhooks.app import create_app

CUSTOMER = "111111:AAcustomer-bot-token-for-tests"
STAFF = "222222:AAstaff-bot-token-for-tests"

START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # Monday 08:00 in Asia/Shanghai
SHOP = (31.2304, 121.4737)
PHONE = "13912345678"
MASKED_PHONE = "139****5678"


def _real_jpeg() -> bytes:
    """Photos are checked before they are stored, so the test photo must be a real one."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 60, 30)).save(out, "JPEG")
    return out.getvalue()


JPEG = _real_jpeg()


CUSTOMER_CHAT = 2001
DRIVER, INSTALLER, SECOND_INSTALLER = 1001, 1002, 1003
GROUP = -5001
DISPATCHER_USER, BYSTANDER_USER = 7001, 7002

DELIVERY_STEPS = [{"key": "intact", "kind": "yes_no", "prompt": {"en": "Packaging intact?", "zh": "包装完好?"}}]
INSTALL_STEPS = [
    {"key": "room_ready", "kind": "yes_no", "prompt": {"en": "Room ready?"}},
    {"key": "after", "kind": "photo", "prompt": {"en": "Photo of the sofa"}},
]


# --- helpers --------------------------------------------------------------------------------------


def inline_buttons(message: dict) -> list[dict]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def button(message: dict, label: str) -> str:
    """callback_data of the inline button the user sees as ``label`` (exact text first, then a unique substring)."""
    found = [b for b in inline_buttons(message) if b["text"] == label]
    found = found or [b for b in inline_buttons(message) if label in b["text"]]
    assert len(found) == 1, f"no single {label!r} button on {message['text']!r}: {[b['text'] for b in inline_buttons(message)]}"
    return found[0]["callback_data"]


def chat_type(chat: int) -> str:
    return "group" if chat < 0 else "private"


class Shop:
    """A running fieldchat wired to FakeTelegram, with back-office set-up and Telegram-side helpers."""

    def __init__(self, fake: FakeTelegram, container: Container, clock: ManualClock, media: Path) -> None:
        self.fake = fake
        self.container = container
        self.clock = clock
        self.media = media
        self.callback_ids: list[str] = []

    # back office

    async def _tx(self, action):
        async with self.container.sessions() as session, session.begin():
            return await action(Store(session))

    async def template(self, kind: str, category: str, steps: list[dict]) -> None:
        await self._tx(lambda s: backoffice.put_checklist_template(s, service_kind=kind, product_category=category, name=kind, steps=steps))

    async def technician(self, name: str, roles: list[str], skills: list[str] = (), phone: str = "13800000000") -> str:
        async def create(store):
            _tech, token = await backoffice.create_technician(
                store, name=name, phone=phone, roles=list(roles), skills=list(skills), regions=["Huangpu"],
                working_hours={"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "09:00", "end": "18:00"},
                home_lat=None, home_lon=None, language="en", now=self.clock.now(), policy=self.container.policy,
            )
            return token

        return await self._tx(create)

    async def dispatcher_token(self) -> str:
        async def create(store):
            return (await backoffice.create_dispatcher(store, name="Dora", now=self.clock.now(), policy=self.container.policy))[1]

        return await self._tx(create)

    async def group_token(self) -> str:
        async def create(store):
            _group, token = await backoffice.create_dispatch_group(
                store, name="Ops", region="Huangpu", language="en", now=self.clock.now(), policy=self.container.policy
            )
            return token

        return await self._tx(create)

    async def order(self, services=("delivery", "installation")) -> backoffice.OrderResult:
        request = backoffice.OrderRequest(
            source="erp", external_ref="SO-1", customer_name="Zhang Wei", customer_phone=PHONE, customer_language="en",
            address="Huangpu District, 100 Nanjing East Road", lat=SHOP[0], lon=SHOP[1], region="Huangpu",
            product_name="3-seat sofa", product_category="sofa", brand=None,
            services=tuple(backoffice.ServiceRequest(k) for k in services),
        )
        return await backoffice.place_order(self.container.bus, request)

    async def rows(self, statement) -> list[dict]:
        async with self.container.sessions() as session:
            return [dict(r) for r in (await session.execute(statement)).mappings()]

    async def entity(self, cls, entity_id: int):
        async with self.container.sessions() as session:
            return await Store(session).get(cls, entity_id)

    async def timeline(self, job_id: int) -> list[str]:
        async with self.container.sessions() as session:
            return [e["type"] for e in (await backoffice.job_details(Store(session), job_id))["timeline"]]

    # telegram side

    def mark(self) -> int:
        return len(self.fake.sent())

    def texts(self, chat: int, since: int = 0) -> list[str]:
        return [s["text"] for s in self.fake.sent()[since:] if s["chat_id"] == str(chat)]

    async def expect(self, chat: int, needle: str, since: int, timeout: float = 10) -> dict:
        """The first message sent to ``chat`` after ``since`` whose visible text contains ``needle``."""
        return await self.fake.wait_for_sent(lambda s: s["chat_id"] == str(chat) and needle in (s["text"] or ""), timeout, since=since)

    def say(self, chat: int, text: str, *, token: str, **kw) -> dict:
        return self.fake.text_message(chat, text, token=token, chat_type=chat_type(chat), **kw)

    def press(self, chat: int, message: dict, label: str, *, token: str, **kw) -> dict:
        return self.press_data(chat, message, button(message, label), token=token, **kw)

    def press_data(self, chat: int, message: dict, data: str, *, token: str, **kw) -> dict:
        assert data in [b["callback_data"] for b in inline_buttons(message)], f"{data!r} is not on {message['text']!r}"
        update = self.fake.callback(chat, data, message["message_id"], token=token, chat_type=chat_type(chat), **kw)
        self.callback_ids.append(update["callback_query"]["id"])
        return update

    async def onboard(self, chat: int, token: str, reply: str, **kw) -> None:
        since = self.mark()
        self.say(chat, f"/start {token}", token=STAFF, **kw)
        await self.expect(chat, reply, since)

    async def staff_and_group(self, installers: dict[int, str]) -> None:
        """Technicians register with their invite in a private chat; the dispatcher registers, then binds the group."""
        for chat, name in installers.items():
            token = await self.technician(name, ["installer"], ["sofa"], phone=f"138000{chat:05d}")
            await self.onboard(chat, token, "You're registered")
        await self.onboard(GROUP, await self.dispatcher_token(), "You are registered as a dispatcher.", user_id=DISPATCHER_USER, first_name="Dora")
        await self.onboard(GROUP, await self.group_token(), "This group now receives fieldchat alerts.", user_id=DISPATCHER_USER, first_name="Dora")


@pytest.fixture
async def fake():
    server = FakeTelegram(long_poll_cap=0.3)
    await server.start()
    server.add_bot(CUSTOMER, "fieldchat_customer_bot")
    server.add_bot(STAFF, "fieldchat_staff_bot")
    yield server
    await server.stop()


def make_container(fake: FakeTelegram, database_url: str, tmp_path: Path, **overrides) -> tuple[Container, ManualClock]:
    clock = ManualClock(START)
    settings = Settings(
        _env_file=None, database_url=database_url, media_dir=tmp_path / "media",
        telegram_customer_token=CUSTOMER, telegram_staff_token=STAFF, telegram_api_url=fake.base_url,
        relay_interval_seconds=0.5, **overrides,
    )
    return build(settings, clock), clock


@asynccontextmanager
async def running(fake: FakeTelegram, database_url: str, tmp_path: Path, *, background: bool = True):
    container, clock = make_container(fake, database_url, tmp_path, telegram_mode="polling")
    await container.start(background=background)
    try:
        yield Shop(fake, container, clock, tmp_path / "media")
    finally:
        await container.stop()


@pytest.fixture
async def shop(fake, database_url, tmp_path):
    async with running(fake, database_url, tmp_path) as shop:
        yield shop


@pytest.fixture
async def sqlite_shop(fake, sqlite_url, tmp_path):
    async with running(fake, sqlite_url, tmp_path) as shop:
        yield shop


@pytest.fixture
async def quiet_shop(fake, sqlite_url, tmp_path):
    """No polling and no relay loop: updates go in through TelegramBot.receive, the test drains the outbox."""
    async with running(fake, sqlite_url, tmp_path, background=False) as shop:
        yield shop


async def book_first_slot(shop: Shop, order: backoffice.OrderResult, kind: str) -> dict:
    """The customer opens the deep link and books the first offered slot; returns the booking reply."""
    since = shop.mark()
    shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER, first_name="Zhang")
    choose = await shop.expect(CUSTOMER_CHAT, f"Pick a time for the {kind}:", since)
    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, choose, inline_buttons(choose)[0]["callback_data"], token=CUSTOMER)
    return await shop.expect(CUSTOMER_CHAT, f"Booked: {kind} on", since)


# --- 1. the whole lifecycle -----------------------------------------------------------------------


async def test_a_sofa_goes_from_deep_link_to_low_rating_alert_over_real_telegram_polling(shop: Shop):
    fake = shop.fake
    await shop.template("delivery", "sofa", DELIVERY_STEPS)
    await shop.template("installation", "sofa", INSTALL_STEPS)
    await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
    await shop.staff_and_group({INSTALLER: "Li"})
    order = await shop.order()
    delivery, installation = order.visits

    # the deep link: greeting, order summary and slot buttons, in that order
    since = shop.mark()
    shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER, first_name="Zhang")
    choose = await shop.expect(CUSTOMER_CHAT, "Pick a time for the delivery:", since)
    welcome, summary, _ = shop.texts(CUSTOMER_CHAT, since)
    assert welcome == "Hello Zhang Wei! Here is your order."
    assert summary.startswith(f"Order #{order.job.id}: 3-seat sofa\nAddress: Huangpu District, 100 Nanjing East Road")
    slots = inline_buttons(choose)
    assert slots[0]["text"] == "Mon 23 Nov 11:00–13:00"  # 08:00 now + 2 h lead: the 09:00 window is gone

    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, choose, slots[0]["callback_data"], token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Booked: delivery on Mon 23 Nov 11:00–13:00. We'll tell you who is coming.", since)
    book_next = await shop.expect(CUSTOMER_CHAT, "Now pick a time for the installation.", since)
    offer = await shop.expect(DRIVER, f"New delivery #{delivery.id}: 3-seat sofa\nWhen: Mon 23 Nov 11:00–13:00", since)

    since = shop.mark()
    shop.press(CUSTOMER_CHAT, book_next, "Book installation", token=CUSTOMER)
    choose = await shop.expect(CUSTOMER_CHAT, "Pick a time for the installation:", since)
    delivery_end = int(slots[0]["callback_data"].split(":")[3])
    assert all(int(b["callback_data"].split(":")[2]) >= delivery_end for b in inline_buttons(choose))
    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, choose, inline_buttons(choose)[0]["callback_data"], token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Booked: installation on", since)
    install_offer = await shop.expect(INSTALLER, f"New installation #{installation.id}: 3-seat sofa", since)

    # both accept; the customer learns who comes
    since = shop.mark()
    shop.press(DRIVER, offer, "Accept", token=STAFF)
    driver_accepted = await shop.expect(DRIVER, f"Accepted visit #{delivery.id}.", since)
    await shop.expect(CUSTOMER_CHAT, "Your delivery on Mon 23 Nov 11:00–13:00: Wang will come.", since)
    since = shop.mark()
    shop.press(INSTALLER, install_offer, "Accept", token=STAFF)
    installer_accepted = await shop.expect(INSTALLER, f"Accepted visit #{installation.id}.", since)
    await shop.expect(CUSTOMER_CHAT, "Li will come.", since)

    # the driver: on my way, shares the location, answers the checklist, completes
    since = shop.mark()
    shop.press(DRIVER, driver_accepted, "On my way", token=STAFF)
    share = await shop.expect(DRIVER, "When you arrive, share your location to check in.", since)
    assert share["reply_markup"]["keyboard"][0][0]["request_location"] is True
    await shop.expect(CUSTOMER_CHAT, "Wang is on the way for your delivery.", since)
    since = shop.mark()
    fake.location_message(DRIVER, SHOP[0], SHOP[1] + 0.001, token=STAFF)
    checked_in = await shop.expect(DRIVER, "Checked in.", since)
    await shop.expect(CUSTOMER_CHAT, "Wang has arrived.", since)
    since = shop.mark()
    shop.press(DRIVER, checked_in, "Start checklist", token=STAFF)
    step = await shop.expect(DRIVER, "Step 1/1: Packaging intact?", since)
    since = shop.mark()
    shop.press(DRIVER, step, "Yes", token=STAFF)
    done = await shop.expect(DRIVER, "Checklist done.", since)
    since = shop.mark()
    shop.press(DRIVER, done, "Complete visit", token=STAFF)
    await shop.expect(DRIVER, f"Visit #{delivery.id} completed.", since)
    finished = await shop.expect(CUSTOMER_CHAT, "Wang has finished the delivery. Please check and confirm.", since)

    # the customer confirms the delivery and rates it well: no alert for that
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, finished, "Confirm it's done", token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Thank you for confirming the delivery!", since)
    rate = await shop.expect(CUSTOMER_CHAT, "How would you rate the service?", since)
    await shop.expect(DRIVER, f"The customer confirmed visit #{delivery.id}.", since)
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rate, "5", token=CUSTOMER)
    rated = await shop.expect(CUSTOMER_CHAT, "Thanks for rating 5/5.", since)
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rated, "Skip", token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Thank you! Send /status any time", since)

    # the installer: on the way, checks in, checklist with a photo the adapter downloads
    since = shop.mark()
    shop.press(INSTALLER, installer_accepted, "On my way", token=STAFF)
    await shop.expect(INSTALLER, "share your location", since)
    since = shop.mark()
    fake.location_message(INSTALLER, SHOP[0] + 0.001, SHOP[1], token=STAFF)
    checked_in = await shop.expect(INSTALLER, "Checked in.", since)
    since = shop.mark()
    shop.press(INSTALLER, checked_in, "Start checklist", token=STAFF)
    step = await shop.expect(INSTALLER, "Step 1/2: Room ready?", since)
    since = shop.mark()
    shop.press(INSTALLER, step, "Yes", token=STAFF)
    await shop.expect(INSTALLER, "Step 2/2: Photo of the sofa\n📷 Send a photo.", since)
    since, calls = shop.mark(), len(fake.calls)
    fake.photo_message(INSTALLER, "AgACAgSofaPhoto", "AQADSofaPhoto", content=JPEG, token=STAFF)
    done = await shop.expect(INSTALLER, "Checklist done.", since)
    got = await fake.wait_for_call("getFile", token=STAFF, since=calls, predicate=lambda c: c.params.get("file_id") == "AgACAgSofaPhoto")
    assert got.status == 200
    stored = sorted((shop.media / "telegram" / "staff").iterdir())
    assert [p.suffix for p in stored] == [".jpg"] and Image.open(stored[0]).size == (32, 24)  # the checked copy
    photos = await shop.rows(select(tables.photos))
    assert [(p["file_id"], p["path"], p["purpose"]) for p in photos] == [("AgACAgSofaPhoto", str(stored[0]), "checklist")]
    since = shop.mark()
    shop.press(INSTALLER, done, "Complete visit", token=STAFF)
    await shop.expect(INSTALLER, f"Visit #{installation.id} completed.", since)
    finished = await shop.expect(CUSTOMER_CHAT, "Li has finished the installation. Please check and confirm.", since)

    # the customer confirms and rates 2: the dispatchers' group hears about it, masked
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, finished, "Confirm it's done", token=CUSTOMER)
    rate = await shop.expect(CUSTOMER_CHAT, "How would you rate the service?", since)
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rate, "2", token=CUSTOMER)
    rated = await shop.expect(CUSTOMER_CHAT, "Thanks for rating 2/5.", since)
    alert = await shop.expect(GROUP, f"⭐ Low rating 2/5 for installation #{installation.id} by Li", since)
    assert f"Customer: Z**, {MASKED_PHONE}" in alert["text"]
    assert "Address: Huangpu *** (Huangpu)" in alert["text"]
    assert button(alert, "Acknowledge").startswith("ra:")
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rated, "Skip", token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Thank you! Send /status any time", since)

    group_texts = shop.texts(GROUP)
    assert len([t for t in group_texts if "Low rating" in t]) == 1  # the 5/5 raised nothing
    for text in group_texts:
        assert PHONE not in text and "Nanjing" not in text and "Zhang Wei" not in text

    # every button press was answered, so no client keeps spinning
    for callback_id in shop.callback_ids:
        answer = await fake.wait_for_call("answerCallbackQuery", predicate=lambda c, i=callback_id: c.params.get("callback_query_id") == i)
        assert answer.status == 200, answer.response

    async with shop.container.sessions() as session:
        job = await backoffice.job_details(Store(session), order.job.id)
    assert job["status"] == "done"
    assert [v["status"] for v in job["visits"]] == ["confirmed", "confirmed"]
    assert "LowRatingReceived" in [e["type"] for e in job["timeline"]]


# --- 2. an exception handled in the group -------------------------------------------------------


async def test_a_damage_report_alerts_the_group_and_only_a_dispatcher_can_reassign_it(sqlite_shop: Shop):
    shop, fake = sqlite_shop, sqlite_shop.fake
    names = {INSTALLER: "Li", SECOND_INSTALLER: "Chen"}
    await shop.staff_and_group(names)
    order = await shop.order(services=("installation",))
    (visit,) = order.visits

    since = shop.mark()
    await book_first_slot(shop, order, "installation")
    offer = await fake.wait_for_sent(
        lambda s: s["chat_id"] in (str(INSTALLER), str(SECOND_INSTALLER)) and f"New installation #{visit.id}" in s["text"], since=since
    )
    first = int(offer["chat_id"])
    other = SECOND_INSTALLER if first == INSTALLER else INSTALLER
    since = shop.mark()
    shop.press(first, offer, "Accept", token=STAFF)
    await shop.expect(first, f"Accepted visit #{visit.id}", since)

    # the installer reports damaged goods with a photo
    since = shop.mark()
    shop.say(first, "/visits", token=STAFF)
    card = await shop.expect(first, f"#{visit.id} installation — confirmed", since)
    since = shop.mark()
    shop.press(first, card, "Report a problem", token=STAFF)
    reasons = await shop.expect(first, "What is the problem?", since)
    since = shop.mark()
    shop.press(first, reasons, "Goods damaged", token=STAFF)
    await shop.expect(first, "Describe it in a few words, or press Skip.", since)
    since = shop.mark()
    shop.say(first, "Back leg snapped in transit", token=STAFF)
    await shop.expect(first, "Please send at least one photo", since)
    since = shop.mark()
    fake.photo_message(first, "AgACAgDamage", "AQADDamage", content=JPEG, token=STAFF)
    added = await shop.expect(first, "Photo 1 added.", since)
    since = shop.mark()
    shop.press(first, added, "Send report", token=STAFF)
    await shop.expect(first, "Reported. The dispatchers have been alerted", since)
    alert = await shop.expect(GROUP, "⚠️ Problem #", since)
    assert f"on installation #{visit.id}: Goods damaged" in alert["text"]
    assert "Note: Back leg snapped in transit\nPhotos: 1" in alert["text"]
    assert f"Technician: {names[first]}" in alert["text"] and MASKED_PHONE in alert["text"]
    assert [b["text"] for b in inline_buttons(alert)] == ["👌 Acknowledge", "🔁 Reassign", "🚫 Cancel visit"]
    report_id = int(button(alert, "Acknowledge").split(":")[1])
    assert (await shop.entity(Visit, visit.id)).status == "on_hold"

    # someone in the group who is not a dispatcher presses Acknowledge: politely refused, nothing changes
    outbox_before = (await shop.rows(select(func.max(tables.outbox.c.id).label("last"))))[0]["last"]
    since = shop.mark()
    shop.press(GROUP, alert, "Acknowledge", token=STAFF, user_id=BYSTANDER_USER, first_name="Bob")
    await shop.expect(GROUP, "Sorry Bob, only registered dispatchers can do that.", since)
    assert (await shop.entity(ProblemReport, report_id)).status == "open"
    assert (await shop.entity(Visit, visit.id)).status == "on_hold"
    written = await shop.rows(select(tables.outbox).where(tables.outbox.c.id > outbox_before))
    assert [(r["chat_id"], r["payload"]["text"]["key"]) for r in written] == [(str(GROUP), "dispatcher.not_allowed")]

    # the dispatcher reassigns it to the other installer, who gets the offer
    since = shop.mark()
    shop.press(GROUP, alert, "Reassign", token=STAFF, user_id=DISPATCHER_USER, first_name="Dora")
    pick = await shop.expect(GROUP, f"Reassign visit #{visit.id} to:", since)
    assert [b["text"] for b in inline_buttons(pick)] == [names[other]]
    since = shop.mark()
    shop.press(GROUP, pick, names[other], token=STAFF, user_id=DISPATCHER_USER, first_name="Dora")
    await shop.expect(GROUP, f"Visit #{visit.id} offered to {names[other]}.", since)
    new_offer = await shop.expect(other, f"New installation #{visit.id}: 3-seat sofa", since)
    await shop.expect(first, f"Visit #{visit.id} was reassigned to someone else.", since)
    assert (await shop.entity(ProblemReport, report_id)).status == "resolved"

    since = shop.mark()
    shop.press(other, new_offer, "Accept", token=STAFF)
    await shop.expect(other, f"Accepted visit #{visit.id}", since)
    await shop.expect(CUSTOMER_CHAT, f"{names[other]} will come.", since)
    assert (await shop.entity(Visit, visit.id)).status == "accepted"


# --- 3. duplicates ----------------------------------------------------------------------------------


async def test_a_resent_update_gets_no_second_reply_and_no_second_state_change(shop: Shop):
    fake = shop.fake
    await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
    order = await shop.order(services=("delivery",))
    (delivery,) = order.visits

    since = shop.mark()
    start = shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER, first_name="Zhang")
    choose = await shop.expect(CUSTOMER_CHAT, "Pick a time for the delivery:", since)
    since = shop.mark()
    press = shop.press_data(CUSTOMER_CHAT, choose, inline_buttons(choose)[0]["callback_data"], token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Booked: delivery on", since)
    await shop.expect(DRIVER, f"New delivery #{delivery.id}", since)

    # Telegram did not get our confirmation and sends both updates again
    since = shop.mark()
    fake.resend(CUSTOMER, start)
    fake.resend(CUSTOMER, press)
    await fake.wait_until_confirmed(CUSTOMER, start["update_id"])
    await fake.wait_until_confirmed(CUSTOMER, press["update_id"])
    # a fresh update in the same chat is processed and sent after anything the duplicates could have caused
    shop.say(CUSTOMER_CHAT, "/status", token=CUSTOMER, first_name="Zhang")
    await shop.expect(CUSTOMER_CHAT, f"Order #{order.job.id}: 3-seat sofa", since)

    # the relay sends a chat's rows in order, so a reply to a duplicate would have come before this one
    assert len(shop.texts(CUSTOMER_CHAT, since)) == 1
    rows = await shop.rows(select(tables.outbox).where(tables.outbox.c.chat_id == str(CUSTOMER_CHAT)).order_by(tables.outbox.c.id))
    assert [r["payload"]["text"]["key"] for r in rows] == [
        "customer.welcome", "customer.order_summary", "customer.choose_slot", "customer.booked", "customer.order_summary",
    ]
    assert shop.texts(DRIVER, since) == []
    assert len([t for t in shop.texts(DRIVER) if t.startswith(f"New delivery #{delivery.id}")]) == 1
    timeline = await shop.timeline(order.job.id)
    assert timeline.count("VisitBooked") == 1 and timeline.count("OfferMade") == 1
    inbox = await shop.rows(select(tables.inbox).where(tables.inbox.c.bot == "customer").order_by(tables.inbox.c.id))
    assert [(r["update_id"], r["status"], r["attempts"]) for r in inbox] == [
        (str(start["update_id"]), "processed", 1),
        (str(press["update_id"]), "processed", 1),
        (str(start["update_id"] + 2), "processed", 1),
    ]


# --- 4. webhook mode ------------------------------------------------------------------------------


async def test_webhook_mode_books_a_slot_and_refuses_wrong_secrets_and_bad_bodies(fake, sqlite_url, tmp_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    container, clock = make_container(fake, sqlite_url, tmp_path, telegram_mode="webhook", public_url=base)
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not serving.done(), serving.exception()
                await asyncio.sleep(0.02)
        shop = Shop(fake, container, clock, tmp_path / "media")

        # the container registered both webhooks with their secrets
        for token, role in ((CUSTOMER, "customer"), (STAFF, "staff")):
            hook = await fake.wait_for_call("setWebhook", token=token)
            assert hook.params["url"] == f"{base}/telegram/{role}/webhook"
            assert hook.params["secret_token"] == container.settings.webhook_secret(token)

        await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
        order = await shop.order(services=("delivery",))
        booked = await book_first_slot(shop, order, "delivery")
        assert booked["text"].endswith("We'll tell you who is coming.")
        await shop.expect(DRIVER, f"New delivery #{order.visits[0].id}", 0)
        assert fake.deliveries and all(d.status == 200 for d in fake.deliveries)

        url = f"{base}/telegram/customer/webhook"
        secret = container.settings.webhook_secret(CUSTOMER)
        stranger = fake.text_message(3003, "/start", token=CUSTOMER, queue=False)
        async with httpx.AsyncClient(timeout=10) as client:
            # a wrong or missing secret is refused before anything is stored
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}, {}):
                refused = await client.post(url, json=stranger, headers=headers)
                assert refused.status_code == 401
            assert await shop.rows(select(tables.inbox).where(tables.inbox.c.update_id == str(stranger["update_id"]))) == []

            # bodies that are not updates are dropped without crashing the server
            good = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
            for body in (b"{not json", b"[1, 2]", json.dumps({"update_id": "x", "message": 5}).encode()):
                answer = await client.post(url, content=body, headers=good)
                assert answer.status_code == 200 and answer.json() == {"ok": False}, (body, answer.text)

            # and the server still takes a genuine update with the right secret
            since = shop.mark()
            accepted = await client.post(url, json=stranger, headers=good)
            assert accepted.status_code == 200 and accepted.json() == {"ok": True}
            await shop.expect(3003, "Please open the link you received with your order.", since)
        assert [s["chat_id"] for s in fake.sent()[since:]] == ["3003"]
    finally:
        server.should_exit = True
        await serving


# --- 5. outbound errors ---------------------------------------------------------------------------


async def customer_writes(shop: Shop, chat: int, text: str) -> None:
    """An update into the adapter's intake (as a webhook would), processed to completion."""
    bot = shop.container.telegram["customer"]
    assert await bot.receive(shop.fake.text_message(chat, text, token=CUSTOMER, queue=False))
    await bot.drain()


async def outbox_of(shop: Shop, chat: int) -> list[dict]:
    return await shop.rows(select(tables.outbox).where(tables.outbox.c.chat_id == str(chat)).order_by(tables.outbox.c.id))


def send_calls(fake: FakeTelegram, chat: int) -> list:
    return [c for c in fake.calls if c.method == "sendMessage" and str(c.params.get("chat_id")) == str(chat)]


async def test_messages_to_a_chat_that_blocked_the_bot_fail_once_and_are_not_retried(quiet_shop: Shop):
    shop, fake = quiet_shop, quiet_shop.fake
    order = await shop.order()
    await customer_writes(shop, CUSTOMER_CHAT, f"/start {order.customer_token}")
    fake.block_chat(CUSTOMER_CHAT)

    rounds = []
    while attempted := await shop.container.relay.drain_once():
        rounds.append(attempted)
        assert len(rounds) < 10, "the relay keeps retrying a blocked chat"
    rows = await outbox_of(shop, CUSTOMER_CHAT)
    # welcome and order summary (no technicians, so no slot buttons); one per round keeps the chat's order
    assert [r["payload"]["text"]["key"] for r in rows] == ["customer.welcome", "customer.order_summary"] and rounds == [1, 1]
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1)] * 2
    assert all("Forbidden" in r["last_error"] for r in rows)
    # the dispatchers are told once that this customer cannot be reached in chat
    timeline = await shop.rows(select(tables.domain_events.c.type))
    assert [r["type"] for r in timeline].count("ChatUnreachable") == 1

    shop.clock.advance(timedelta(days=1))
    assert await shop.container.relay.drain_once() == 0
    assert len(send_calls(fake, CUSTOMER_CHAT)) == 2 and all(c.status == 403 for c in send_calls(fake, CUSTOMER_CHAT))
    assert fake.sent(chat_id=CUSTOMER_CHAT) == []


async def test_a_429_is_retried_after_its_retry_after_and_the_message_arrives_once(quiet_shop: Shop):
    shop, fake, relay = quiet_shop, quiet_shop.fake, quiet_shop.container.relay
    await customer_writes(shop, CUSTOMER_CHAT, "hello")
    # retry_after longer than the relay's own first back-off (1-2 s), so honouring it is observable
    fake.fail_next("sendMessage", 429, retry_after=5, token=CUSTOMER)

    assert await relay.drain_once() == 1
    (row,) = await outbox_of(shop, CUSTOMER_CHAT)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt_at"] == START + timedelta(seconds=5)
    assert fake.sent(chat_id=CUSTOMER_CHAT) == []

    assert await relay.drain_once() == 0
    shop.clock.advance(timedelta(seconds=4))
    assert await relay.drain_once() == 0
    shop.clock.advance(timedelta(seconds=1))
    assert await relay.drain_once() == 1
    assert await relay.drain_once() == 0

    (row,) = await outbox_of(shop, CUSTOMER_CHAT)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert shop.texts(CUSTOMER_CHAT) == ["Please open the link you received with your order."]
    assert [c.status for c in send_calls(fake, CUSTOMER_CHAT)] == [429, 200]
