"""A fieldchat wired to the fake Bot API: the bots' tokens, the chats, and Shop, which sets up the back office and
speaks for the Telegram users (messages, button presses, waiting for what the bots send)."""

from __future__ import annotations

import io
from contextlib import asynccontextmanager
from pathlib import Path

from PIL import Image

from domain.clock import ManualClock
from fieldchat.container import Container, build
from fieldchat.fakes.telegram_server import FakeTelegram
from fieldchat.settings import Settings
from services import backoffice
from storage.repository import Store
from tests.support.harness import SHOP, START

CUSTOMER = "111111:AAcustomer-bot-token-for-tests"
STAFF = "222222:AAstaff-bot-token-for-tests"

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


# the two libraries that can talk to Telegram (FIELDCHAT_TELEGRAM_DRIVER): the adapter's tests run on both
DRIVERS = ("aiogram", "ptb")


def make_container(fake: FakeTelegram, database_url: str, tmp_path: Path, **overrides) -> tuple[Container, ManualClock]:
    clock = ManualClock(START)
    settings = Settings(
        _env_file=None, database_url=database_url, media_dir=tmp_path / "media",
        telegram_customer_token=CUSTOMER, telegram_staff_token=STAFF, telegram_api_url=fake.base_url,
        relay_interval_seconds=0.5, **overrides,
    )
    return build(settings, clock), clock


@asynccontextmanager
async def running(fake: FakeTelegram, database_url: str, tmp_path: Path, *, background: bool = True, **overrides):
    container, clock = make_container(fake, database_url, tmp_path, telegram_mode="polling", **overrides)
    await container.start(background=background)
    try:
        yield Shop(fake, container, clock, tmp_path / "media")
    finally:
        await container.stop()


async def book_first_slot(shop: Shop, order: backoffice.OrderResult, kind: str) -> dict:
    """The customer opens the deep link and books the first offered slot; returns the booking reply."""
    since = shop.mark()
    shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER, first_name="Zhang")
    choose = await shop.expect(CUSTOMER_CHAT, f"Pick a time for the {kind}:", since)
    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, choose, inline_buttons(choose)[0]["callback_data"], token=CUSTOMER)
    return await shop.expect(CUSTOMER_CHAT, f"Booked: {kind} on", since)
