"""One contract for every chat channel, each against its fake server (Telegram on aiogram and on python-telegram-bot
against the fake Bot API, WhatsApp against the fake Cloud API, the web console through its own store and page API):
text out, buttons degrading by the capability record, edits (or a new message), photos out, text / press / location /
photo in with the photo fetched, deep links, and the platform's errors mapped to the relay's. What a channel cannot do
is asserted as not supported by its capability record, never skipped."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from bots.base import ChatGone, NotEditable, RetryLater, Undeliverable
from bots.channels import CAPABILITIES, TELEGRAM, WEB, WHATSAPP, Capabilities
from bots.photos import MEGABYTE, PhotoLimits
from bots.render import Unrenderable, fit
from bots.telegram import TelegramBot as AiogramBot
from bots.telegram import TelegramChannel
from bots.telegram_ptb import TelegramBot as PtbBot
from bots.whatsapp import Number, WhatsAppChannel, parse_notification
from bots.whatsapp_rules import parse_templates
from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.settings import Settings
from services.messages import ChatRef, Inbound, InboundKind, Rendered
from storage.repository import Store
from tests.support.photos import photo_bytes
from tests.support.telegram import CUSTOMER
from tests.support.whatsapp import APP_SECRET, CUSTOMER_NUMBER, CUSTOMER_NUMBER_ID, PERSON, TEMPLATES_SETTING, TOKEN, VERIFY_TOKEN, fake_whatsapp
from webhooks import webchat
from webhooks.app import create_app

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
CHANNELS = ("telegram-aiogram", "telegram-ptb", "whatsapp", "web")
TG_CHAT = 4242


@dataclass
class Shown:
    """A message as its reader sees it: text (or caption), the actions they can press, whether a photo came with it."""

    id: str
    text: str
    actions: list[str]
    photo: bytes | None = None


class Recorder:
    async def handle(self, event):
        self.events.append(event)
        return SimpleNamespace(processed=True)

    async def receive(self, event) -> bool:
        self.events.append(event)
        return True

    async def process(self, event) -> None:
        return None

    def __init__(self) -> None:
        self.events: list[Inbound] = []


class TelegramSide:
    def __init__(self, driver, fake) -> None:
        self.driver, self.fake, self.platform = driver, fake, TELEGRAM
        self.capabilities = CAPABILITIES[TELEGRAM]

    async def send(self, message: Rendered) -> str | None:
        return await self.driver.send("customer", str(TG_CHAT), fit(message, self.capabilities))

    async def edit(self, message_id: str, message: Rendered) -> str | None:
        return await self.driver.edit("customer", str(TG_CHAT), message_id, fit(message, self.capabilities))

    def shown(self) -> list[Shown]:
        out = []
        for sent in self.fake.sent(chat_id=str(TG_CHAT)):
            if sent["method"] == "editMessageText":
                continue
            markup = sent["reply_markup"] or {}
            actions = [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]
            photo = getattr(sent["photo"], "content", None)
            out.append(Shown(str(sent["message_id"]), sent["text"] or sent["caption"] or "", actions, photo))
        return out

    def current_text(self, message_id: str) -> str:
        edits = [s for s in self.fake.sent(chat_id=str(TG_CHAT)) if str(s["message_id"]) == message_id]
        return edits[-1]["text"]

    async def inbound(self, kind: str, **kw: Any) -> Inbound:
        recorder = Recorder()
        self.driver.engine = recorder
        if kind == "text":
            update = self.fake.text_message(TG_CHAT, kw["text"], token=CUSTOMER, queue=False)
        elif kind == "press":
            update = self.fake.callback(TG_CHAT, kw["data"], 77, token=CUSTOMER, queue=False)
        elif kind == "location":
            update = self.fake.location_message(TG_CHAT, kw["latitude"], kw["longitude"], token=CUSTOMER, queue=False)
        else:
            update = self.fake.photo_message(TG_CHAT, "AgACContract", "AQADContract", content=kw["content"], token=CUSTOMER, queue=False)
        await self.driver.receive(update)
        [event] = recorder.events
        return event

    async def fetch(self, event: Inbound) -> Inbound:
        return await self.driver.fetch(event)

    def deep_link(self, token: str) -> str | None:
        self.driver.username = "acme_service_bot"
        return TelegramChannel({"customer": self.driver}).deep_link("customer", token)

    async def refuse(self, failure: str) -> None:
        if failure == "rate":
            self.fake.fail_next("sendMessage", 429, retry_after=7)
        else:
            self.fake.fail_next("sendMessage", 403)


class WhatsAppSide:
    def __init__(self, channel: WhatsAppChannel, fake) -> None:
        self.channel, self.fake, self.platform = channel, fake, WHATSAPP
        self.capabilities = CAPABILITIES[WHATSAPP]

    async def open_window(self) -> None:
        payload = self.fake.notification(CUSTOMER_NUMBER_ID, messages=[self.fake.text(PERSON, "hi")])
        self.fake.note(payload)
        await self.channel.receive(json.dumps(payload).encode())

    async def send(self, message: Rendered) -> str | None:
        return await self.channel.send("customer", PERSON, fit(message, self.capabilities))

    def shown(self) -> list[Shown]:
        out = []
        for sent in self.fake.sent_to(PERSON):
            photo = self.fake.media[sent.body["image"]["id"]].content if sent.type == "image" else None
            out.append(Shown(sent.wamid, sent.text, [data for _title, data in sent.actions()], photo))
        return out

    async def inbound(self, kind: str, **kw: Any) -> Inbound:
        if kind == "text":
            message = self.fake.text(PERSON, kw["text"])
        elif kind == "press":
            message = self.fake.message(PERSON, "interactive", {"type": "button_reply", "button_reply": {"id": kw["data"], "title": "x"}})
        elif kind == "location":
            message = self.fake.location(PERSON, kw["latitude"], kw["longitude"])
        else:
            message = self.fake.image(PERSON, kw["content"])
        [(event, _at)] = parse_notification(self.fake.notification(CUSTOMER_NUMBER_ID, messages=[message]), {CUSTOMER_NUMBER_ID: "customer"},
                                            NOW).messages
        return event

    async def fetch(self, event: Inbound) -> Inbound:
        return await self.channel.fetch(event)

    def deep_link(self, token: str) -> str | None:
        return self.channel.deep_link("customer", token)

    async def refuse(self, failure: str) -> None:
        if failure == "rate":
            self.fake.fail_next(400, 131056, "pair rate limit hit")
        else:
            self.fake.fail_next(400, 131026, "Message undeliverable")


CONSOLE_PANE = {"key": "customer", "bot": "customer", "chat_type": "private", "user_name": "Ann", "language": "en"}


class WebSide:
    """The console is pulled: what is "sent" is an outbox row its page fetches (GET /chat/api/messages), where a card's
    later copy shows in place of the earlier one."""

    def __init__(self, container, client: httpx.AsyncClient) -> None:
        self.container, self.client, self.platform = container, client, WEB
        self.capabilities = CAPABILITIES[WEB]
        self.chat_id = ""

    async def poll(self) -> list[dict]:
        answer = await self.client.get(webchat.POLL_PATH, params={"bot": "customer", "pane": "customer"})
        assert answer.status_code == 200, answer.text
        self.chat_id = answer.json()["chat_id"]
        return answer.json()["messages"]

    async def send(self, message: Rendered, card: str | None = None) -> str | None:
        await self.poll()
        literal = lambda text: {"key": "=", "params": {"text": text}}  # noqa: E731
        payload: dict[str, Any] = {"text": literal(message.text), "language": "en",
                                   "buttons": [[{"label": literal(label), "data": data} for label, data in row] for row in message.buttons]}
        if message.photo_path:
            payload["photo_path"] = message.photo_path
        if card:
            payload["card"] = card
        async with self.container.sessions() as session, session.begin():
            await Store(session).outbox_add(platform=WEB, bot="customer", chat_id=self.chat_id, payload=payload, dedup_key=uuid.uuid4().hex,
                                            now=NOW, card=card)
        return str((await self.poll())[-1]["id"])

    async def shown_now(self) -> list[dict]:
        return await self.poll()

    async def shown_async(self) -> list[Shown]:
        out = []
        for message in await self.poll():
            photo = None
            if message["photos"]:
                answer = await self.client.get(message["photos"][0])
                assert answer.status_code == 200
                photo = answer.content
            out.append(Shown(str(message["id"]), message["text"], [b["data"] for row in message["buttons"] for b in row], photo))
        return out

    async def inbound(self, kind: str, **kw: Any) -> Inbound:
        who = webchat.Caller("session-1", b"k" * 32, "127.0.0.1")
        base = {"pane": CONSOLE_PANE, "message_id": uuid.uuid4().hex}
        if kind == "text":
            return webchat.to_inbound(who, webchat.WebMessage(**base, kind="text", text=kw["text"]))
        if kind == "press":
            return webchat.to_inbound(who, webchat.WebMessage(**base, kind="button", data=kw["data"]))
        if kind == "location":
            return webchat.to_inbound(who, webchat.WebMessage(**base, kind="location", latitude=kw["latitude"], longitude=kw["longitude"]))
        chat_id, user_id = who.chat(webchat.Pane(**CONSOLE_PANE))
        file_id = self.container.web_uploads.stage(kw["content"])
        return Inbound(ChatRef(WEB, "customer", chat_id), "u-photo", InboundKind.PHOTO, user_id, file_id=file_id)

    async def fetch(self, event: Inbound) -> Inbound:
        return await self.container.channels[WEB].fetch(event)

    def deep_link(self, token: str) -> str | None:
        return self.container.channels.deep_link(WEB, "customer", token)


@pytest.fixture(params=CHANNELS)
async def side(request, tmp_path: Path, sqlite_db, sqlite_url, fake_telegram):
    name = request.param
    if name.startswith("telegram"):
        fake = fake_telegram
        cls = AiogramBot if name == "telegram-aiogram" else PtbBot
        driver = cls("customer", CUSTOMER, fake.base_url, None, tmp_path / "media", photo_limits=PhotoLimits(MEGABYTE, 40_000_000))
        try:
            yield TelegramSide(driver, fake)
        finally:
            await driver.close()
    elif name == WHATSAPP:
        clock = ManualClock(NOW)
        async with fake_whatsapp(clock) as fake:
            channel = WhatsAppChannel(
                token=TOKEN, app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, numbers=[Number("customer", CUSTOMER_NUMBER_ID, CUSTOMER_NUMBER)],
                graph_url=fake.base_url, graph_version="v21.0", templates=parse_templates(TEMPLATES_SETTING), sessions=sqlite_db,
                clock=clock, engine=None, media_dir=tmp_path / "media", photo_limits=PhotoLimits(max_bytes=MEGABYTE),
            )
            whatsapp = WhatsAppSide(channel, fake)
            await whatsapp.open_window()
            try:
                yield whatsapp
            finally:
                await channel.aclose()
    else:
        settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", web_console=True)
        container = build(settings, ManualClock(NOW))
        app = create_app(container, run_background=False)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/chat")).status_code == 200
            yield WebSide(container, client)


async def shown(side) -> list[Shown]:
    return await side.shown_async() if isinstance(side, WebSide) else side.shown()


def photo_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "out.jpg"
    path.write_bytes(photo_bytes(size=(40, 30)))
    return path


# --- outbound ---------------------------------------------------------------------------------------------------


async def test_a_text_goes_out_as_it_reads(side):
    await side.send(Rendered("Wang is on the way. 🚚"))
    [message] = await shown(side)
    assert message.text == "Wang is on the way. 🚚" and message.actions == []


async def test_buttons_beyond_what_the_channel_shows_are_listed_in_the_text_so_every_option_stays_reachable(side):
    capabilities: Capabilities = side.capabilities
    many = capabilities.max_buttons + 2
    options = [(f"Day {n}", f"d:{n}") for n in range(1, many + 1)]
    await side.send(Rendered("Pick a day:", [options]))
    [message] = [m for m in await shown(side) if m.actions]
    assert len(message.actions) == min(many, capabilities.max_buttons)
    listed = options[len(message.actions):]
    assert message.actions == [data for _, data in options[: len(message.actions)]]
    for number, (label, _data) in enumerate(listed, start=capabilities.max_buttons + 1):
        assert f"{number}. {label}" in message.text  # the rest, numbered after the buttons
    assert len(listed) == 2


async def test_an_action_longer_than_the_channel_carries_back_is_never_cut_into_another(side):
    limit = side.capabilities.max_action_bytes
    assert limit is not None  # every chat channel carries actions back (robots do not: they are no chat channel)
    too_long = Rendered("Reassign?", [[("Reassign", "ra:" + "7" * limit)]])
    if isinstance(side, WebSide):
        # the page fetches it anyway: it shows the text, without a button that could not be pressed
        await side.send(too_long)
        [message] = await shown(side)
        assert (message.text, message.actions) == ("Reassign?", [])
        return
    with pytest.raises(Unrenderable):
        await side.send(too_long)  # the relay fails that row alone (tests/contract/test_channels.py)
    assert await shown(side) == []


async def test_an_edit_changes_the_message_in_place_or_is_not_supported_and_a_new_message_goes(side):
    if isinstance(side, WebSide):
        first = await side.send(Rendered("Offer: sofa, Mon 9:00", [[("Accept", "acc:1")]]), card="offer:1")
        later = await side.send(Rendered("Offer taken by Wang"), card="offer:1")
        by_id = {str(m["id"]): m for m in await side.shown_now()}
        # the page changes the first copy in place, or shows the news and takes the buttons off the first (the relay's rule)
        assert int(first) in (by_id[later]["shows"], by_id[later]["retires"]) and by_id[later]["text"] == "Offer taken by Wang"
        return
    if not side.capabilities.can_edit:
        # not supported per its capability record: the relay never asks it to edit, it sends the card anew
        assert not hasattr(side.channel, "edit")
        await side.send(Rendered("Offer: sofa, Mon 9:00", [[("Accept", "acc:1")]]))
        await side.send(Rendered("Offer taken by Wang"))
        assert [m.text for m in await shown(side)] == ["Offer: sofa, Mon 9:00", "Offer taken by Wang"]
        return
    card = await side.send(Rendered("Offer: sofa, Mon 9:00", [[("Accept", "acc:1")]]))
    assert await side.edit(card, Rendered("Offer taken by Wang")) == card
    assert side.current_text(card) == "Offer taken by Wang"
    with pytest.raises(NotEditable):
        await side.edit("999999", Rendered("gone"))


async def test_a_photo_goes_out_with_its_caption_and_buttons(side, tmp_path):
    path = photo_file(tmp_path / "media")  # the console serves only what lies under the service's media directory
    await side.send(Rendered("The sofa, as delivered", [[("Looks fine", "ok:1")]], photo_path=str(path)))
    messages = await shown(side)
    photos = [m for m in messages if m.photo is not None]
    assert len(photos) == 1 and photos[0].photo == path.read_bytes()
    assert "The sofa, as delivered" in " ".join(m.text for m in messages)
    assert [a for m in messages for a in m.actions] == ["ok:1"]


# --- inbound ----------------------------------------------------------------------------------------------------


async def test_a_text_a_press_and_a_location_come_in_as_the_same_neutral_events(side):
    text = await side.inbound("text", text="hello there")
    press = await side.inbound("press", data="sl:1:540:660")
    where = await side.inbound("location", latitude=31.2304, longitude=121.4737)
    assert (text.kind, text.text, text.chat.platform, text.chat.bot) == (InboundKind.TEXT, "hello there", side.platform, "customer")
    assert (press.kind, press.text) == (InboundKind.BUTTON, "sl:1:540:660")
    assert (where.kind, where.latitude, where.longitude) == (InboundKind.LOCATION, 31.2304, 121.4737)
    assert text.chat == press.chat == where.chat and text.update_id != press.update_id


async def test_a_photo_comes_in_and_only_its_checked_copy_is_stored_when_fetched(side):
    content = photo_bytes(size=(40, 30))
    event = await side.inbound("photo", content=content)
    assert event.kind is InboundKind.PHOTO and event.file_id and event.file_path is None
    fetched = await side.fetch(event)
    assert fetched.file_error is None and fetched.file_path and Path(fetched.file_path).is_file()
    refused = await side.fetch(await side.inbound("photo", content=b"GIF89a not a photo"))
    assert refused.file_error == "not_image" and refused.file_path is None


async def test_a_deep_link_opens_the_channel_with_the_sign_in_token(side):
    link = side.deep_link("AbC_12-x")
    assert link is not None and "AbC_12-x" in link
    assert {TELEGRAM: "https://t.me/acme_service_bot?start=AbC_12-x", WHATSAPP: f"https://wa.me/{CUSTOMER_NUMBER}?text=/start%20AbC_12-x",
            WEB: "chat#customer=AbC_12-x"}[side.platform] == link


# --- errors -----------------------------------------------------------------------------------------------------


async def test_a_rate_limit_becomes_a_retry_after_and_a_refusing_chat_a_permanent_failure(side):
    if side.capabilities.pulled:
        # not supported per its capability record: a pulled channel is never sent to, so no platform can refuse
        assert WEB not in build(Settings(_env_file=None, database_url="sqlite:///:memory:", web_console=True), ManualClock(NOW)).relay.senders
        return
    await side.refuse("rate")
    with pytest.raises(RetryLater) as limited:
        await side.send(Rendered("one"))
    assert limited.value.seconds == {TELEGRAM: 7, WHATSAPP: 6.0}[side.platform]
    await side.refuse("gone")
    with pytest.raises(Undeliverable) as gone:
        await side.send(Rendered("two"))
    if side.platform == TELEGRAM:
        assert isinstance(gone.value, ChatGone)  # 403: the relay marks the chat undeliverable and tells the dispatchers
    assert await side.send(Rendered("three"))  # and the channel goes on working
