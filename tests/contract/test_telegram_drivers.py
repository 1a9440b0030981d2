"""The two Telegram drivers (aiogram, python-telegram-bot) turn the same Bot API JSON into the same Inbound, by webhook and
by polling; and a shop on the light driver never loads aiogram."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bots.base import ChatGone, ChatMigrated, NotEditable, RetryLater, Undeliverable
from bots.photos import PhotoLimits
from bots.telegram import TelegramBot as AiogramBot
from bots.telegram_ptb import TelegramBot as PtbBot
from fieldchat.fakes.telegram_server import FakeTelegram
from services.messages import AlbumPhoto, InboundKind, Rendered
from tests.support.photos import MB
from tests.support.telegram import CUSTOMER, CUSTOMER_CHAT, DRIVER, GROUP, JPEG

LIMITS = PhotoLimits(1 * MB, 40_000_000)


class Recorder:
    """Stands in for the engine: keeps what each driver hands it."""

    def __init__(self) -> None:
        self.events: list = []

    async def handle(self, event):
        self.events.append(event)
        return SimpleNamespace(processed=True)

    async def receive(self, event) -> bool:
        self.events.append(event)
        return True

    async def process(self, event) -> None:
        return None


def edited(update: dict) -> dict:
    """The same message as Telegram sends it once edited (a live location moving, a corrected text)."""
    message = dict(update["message"], edit_date=update["message"]["date"] + 60)
    return {"update_id": update["update_id"], "edited_message": message}


def samples(fake: FakeTelegram, queue: bool) -> list[dict]:
    """Updates of every kind fieldchat acts on (and a few it ignores), as the fake Bot API builds them."""
    say = lambda chat, text, **kw: fake.text_message(chat, text, token=CUSTOMER, queue=queue, **kw)  # noqa: E731
    return [
        say(CUSTOMER_CHAT, "  hello there ", first_name="Zhang", last_name="Wei", language_code="zh-hans"),
        say(CUSTOMER_CHAT, "/start AbC123 and more", language_code=None),
        say(CUSTOMER_CHAT, "/Status@fieldchat_customer_bot"),
        say(GROUP, "/start GroupToken", user_id=7001, chat_type="group", first_name="Dora", title="Ops"),
        say(GROUP - 1, "anyone there?", user_id=7002, chat_type="supergroup", first_name="Bob", title="Ops 2"),
        fake.callback(CUSTOMER_CHAT, "sl:1:540:660", 55, token=CUSTOMER, queue=queue, first_name="Zhang"),
        fake.callback(GROUP, "ra:7", 56, user_id=7001, chat_type="group", token=CUSTOMER, queue=queue, first_name="Dora"),
        fake.location_message(DRIVER, 31.2304, 121.4737, token=CUSTOMER, queue=queue),
        fake.location_message(DRIVER, 31.2305, 121.4738, live_period=900, horizontal_accuracy=12.5, token=CUSTOMER, queue=queue),
        fake.photo_message(DRIVER, "AgACSofa", "AQADSofa", caption="the sofa", content=JPEG, token=CUSTOMER, queue=queue),
        fake.photo_message(DRIVER, "AgACHuge", "AQADHuge", content=JPEG, file_size=5 * MB, token=CUSTOMER, queue=queue),
        fake.contact_message(CUSTOMER_CHAT, "+8613912345678", token=CUSTOMER, queue=queue),
        fake.sticker_message(CUSTOMER_CHAT, token=CUSTOMER, queue=queue),
    ]


def with_edits(fake: FakeTelegram, updates: list[dict], queue: bool) -> list[dict]:
    """The samples plus edits: a moving live location (acted on) and a corrected text (ignored)."""
    live = fake.location_message(DRIVER, 31.2306, 121.4739, live_period=900, token=CUSTOMER, queue=False)
    text = fake.text_message(CUSTOMER_CHAT, "corrected", token=CUSTOMER, queue=False)
    joined = fake.text_message(GROUP, "-", user_id=7003, chat_type="group", token=CUSTOMER, queue=False)
    del joined["message"]["text"]
    joined["message"]["new_chat_members"] = [joined["message"]["from"]]  # a service message about the group: ignored
    extra = [edited(live), edited(text), joined]
    if queue:
        extra = [dict(e, update_id=fake.push_update(CUSTOMER, {k: v for k, v in e.items() if k != "update_id"})) for e in extra]
    return updates + extra


@pytest.fixture
async def drivers(fake_telegram: FakeTelegram, tmp_path: Path):
    made = {
        name: cls("customer", CUSTOMER, fake_telegram.base_url, Recorder(), tmp_path / name, photo_limits=LIMITS)  # type: ignore[arg-type]
        for name, cls in (("aiogram", AiogramBot), ("ptb", PtbBot))
    }
    yield made
    for bot in made.values():
        await bot.close()


async def test_both_drivers_make_the_same_inbound_of_every_webhook_update(fake_telegram: FakeTelegram, drivers):
    updates = with_edits(fake_telegram, samples(fake_telegram, queue=False), queue=False)
    for bot in drivers.values():
        for update in updates:
            await bot.receive(update)
    aiogram, ptb = drivers["aiogram"].engine.events, drivers["ptb"].engine.events
    assert ptb == aiogram
    # and the mapping is the one fieldchat acts on: every kind, the service and ignored updates left out
    kinds = [event.kind for event in aiogram]
    assert kinds == [
        InboundKind.TEXT, InboundKind.COMMAND, InboundKind.COMMAND, InboundKind.COMMAND, InboundKind.TEXT,
        InboundKind.BUTTON, InboundKind.BUTTON, InboundKind.LOCATION, InboundKind.LOCATION, InboundKind.PHOTO,
        InboundKind.PHOTO, InboundKind.CONTACT, InboundKind.UNSUPPORTED, InboundKind.LOCATION,
    ]
    hello, start, status, group_start, group_text = aiogram[:5]
    assert (hello.text, hello.user_name, hello.language_code) == ("  hello there ", "Zhang Wei", "zh-hans")
    assert (start.text, start.payload, start.language_code, start.chat_type) == ("start", "AbC123 and more", None, "private")
    assert (status.text, status.payload) == ("status", "")
    assert (group_start.chat.chat_id, group_start.user_id, group_start.chat_type) == (str(GROUP), "7001", "group")
    assert group_text.chat_type == "group"
    assert [(e.live, e.latitude) for e in aiogram if e.kind is InboundKind.LOCATION] == [(False, 31.2304), (True, 31.2305), (True, 31.2306)]
    photo, huge = [e for e in aiogram if e.kind is InboundKind.PHOTO]
    assert (photo.file_id, photo.text, photo.file_error) == ("AgACSofa", "the sofa", None)
    assert (huge.file_error, huge.file_limit_mb) == ("too_big", 1.0)
    assert all(e.callback_id for e in aiogram if e.kind is InboundKind.BUTTON)


async def test_polled_updates_make_the_same_inbound_on_both_drivers_as_their_webhooks_do(fake_telegram: FakeTelegram, drivers):
    updates = with_edits(fake_telegram, samples(fake_telegram, queue=True), queue=True)
    last = updates[-1]["update_id"]
    for bot in drivers.values():
        stop = asyncio.Event()
        polling = asyncio.create_task(bot.poll(stop, timeout=1))
        await fake_telegram.wait_until_confirmed(CUSTOMER, last)  # confirmed only once all were stored
        stop.set()
        await polling
        for update in updates:  # Telegram sends them all again: the next driver polls the same ones
            fake_telegram.resend(CUSTOMER, update)
    polled = {name: list(bot.engine.events) for name, bot in drivers.items()}
    webhook = Recorder()
    drivers["ptb"].engine = webhook
    for update in updates:
        await drivers["ptb"].receive(update)
    assert polled["ptb"] == polled["aiogram"] == webhook.events and len(webhook.events) == 14


CONTAINER_PROBE = """
import sys
from fieldchat.container import build
from fieldchat.settings import Settings
container = build(Settings(_env_file=None, database_url="sqlite:///{db}", media_dir="{media}", {driver}
                  telegram_customer_token="123:customer-token-of-some-length", telegram_staff_token="456:staff-token-of-some-length"))
print(sorted(type(bot).__module__ for bot in container.telegram.values()), "aiogram" in sys.modules)
"""


@pytest.mark.slow  # three fresh processes, one of which imports aiogram (seconds)
def test_a_shop_on_the_ptb_driver_never_imports_aiogram(tmp_path: Path):
    """aiogram costs seconds and ~170 MiB to import (pydantic builds its models): the default driver must not load it."""
    outputs = []
    for driver in ("", 'telegram_driver="ptb",', 'telegram_driver="aiogram",'):
        code = CONTAINER_PROBE.format(db=tmp_path / "f.db", media=tmp_path / "media", driver=driver)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    assert outputs == [
        "['bots.telegram_ptb', 'bots.telegram_ptb'] False",
        "['bots.telegram_ptb', 'bots.telegram_ptb'] False",
        "['bots.telegram', 'bots.telegram'] True",
    ]


# --- outbound: the same requests, the same errors ----------------------------------------------------------------


def requests_of(fake: FakeTelegram, chat: int) -> list[tuple]:
    """What Telegram was asked to show in ``chat``: method, text, caption and markup, and whether a whole photo came."""
    return [
        (sent["method"], sent["text"], sent["caption"], sent["reply_markup"], getattr(sent["photo"], "content", None) == JPEG)
        for sent in fake.sent(chat_id=chat)
    ]


async def test_both_drivers_send_edit_and_clear_alike(fake_telegram: FakeTelegram, drivers, tmp_path: Path):
    photos = []
    for n in range(12):
        path = tmp_path / f"p{n}.jpg"
        path.write_bytes(JPEG)
        photos.append(AlbumPhoto(n, str(path)))
    for chat, bot in zip((3001, 3002), drivers.values()):
        send = lambda message: bot.send("customer", str(chat), message)  # noqa: B023, E731
        await send(Rendered("plain"))
        card = await send(Rendered("pick", buttons=[[("A", "a:1"), ("B", "b:2")], [("C", "c:3")]]))
        await send(Rendered("where are you?", request="location"))
        await send(Rendered("your phone?", request="contact"))
        await send(Rendered("answer this", request="reply"))
        await send(Rendered("one photo", photo_path=photos[0].path, buttons=[[("OK", "ok")]]))
        await send(Rendered("one in an album", album=(photos[1],), buttons=[[("OK", "ok")]]))
        await send(Rendered("three", album=tuple(photos[:3])))
        assert await send(Rendered("twelve", album=tuple(photos), buttons=[[("OK", "ok")]]))
        assert await bot.edit("customer", str(chat), card, Rendered("picked", buttons=[[("D", "d:4")]])) == card
        assert await bot.edit("customer", str(chat), card, Rendered("picked", buttons=[[("D", "d:4")]])) == card  # not modified
        await bot.clear_buttons("customer", str(chat), card)
        await bot.clear_buttons("customer", str(chat), card)  # none left: nothing to do
        with pytest.raises(NotEditable):
            await bot.edit("customer", str(chat), "999", Rendered("gone"))
    aiogram, ptb = requests_of(fake_telegram, 3001), requests_of(fake_telegram, 3002)
    assert ptb == aiogram
    methods = [method for method, *_ in aiogram]
    # 3 + 12 album photos, one message per photo; the twelve's buttons come in a message of their own after them
    assert methods == ["sendMessage"] * 5 + ["sendPhoto"] * 2 + ["sendMediaGroup"] * 15 + ["sendMessage", "editMessageText", "editMessageReplyMarkup"]
    assert sum(whole for *_, whole in aiogram) == 2 + 3 + 12
    location = aiogram[2][3]["keyboard"][0][0]
    assert location["request_location"] is True and aiogram[4][3]["force_reply"] is True


FAILURES = [
    # (what the fake answers, what the channel raises, what it carries)
    (dict(status=429, retry_after=7), RetryLater, 7),
    (dict(status=403), ChatGone, None),
    (dict(status=400, description="Bad Request: chat not found"), ChatGone, None),  # deleted, or never started: the chat is gone
    (dict(status=400, description="Bad Request: message text is empty"), Undeliverable, None),
    (dict(status=401), Undeliverable, None),
    (dict(status=404), Undeliverable, None),
    (dict(status=500), RetryLater, None),
    (dict(status=502), RetryLater, None),
]


@pytest.mark.parametrize(("failure", "raised", "seconds"), FAILURES, ids=[str(f["status"]) for f, *_ in FAILURES])
async def test_both_drivers_map_a_failed_send_to_the_same_channel_error(fake_telegram: FakeTelegram, drivers, failure, raised, seconds):
    errors = []
    for bot in drivers.values():
        fake_telegram.fail_next("sendMessage", **failure)
        with pytest.raises(Undeliverable if raised is not RetryLater else RetryLater) as caught:
            await bot.send("customer", "3003", Rendered("hello"))
        errors.append(caught.value)
    assert [type(e) for e in errors] == [raised, raised]
    if raised is RetryLater:
        assert [e.seconds for e in errors] == [seconds, seconds]
    if raised is ChatGone:
        said = "chat not found" if failure["status"] == 400 else "forbidden: bot was blocked by the user"
        assert all(said in str(e).lower() for e in errors)


async def test_both_drivers_follow_a_migrated_group_and_refuse_a_stale_edit_alike(fake_telegram: FakeTelegram, drivers):
    fake_telegram.migrate_chat(-4001, -1004001)
    for bot in drivers.values():
        with pytest.raises(ChatMigrated) as moved:
            await bot.send("customer", "-4001", Rendered("hello"))
        assert moved.value.migrate_to_chat_id == "-1004001"
        sent = await bot.send("customer", "3004", Rendered("a photo soon"))
        fake_telegram.fail_next("editMessageText", 400, description="Bad Request: message can't be edited")
        with pytest.raises(NotEditable):
            await bot.edit("customer", "3004", sent, Rendered("changed"))


async def test_both_drivers_retry_later_when_the_bot_api_cannot_be_reached(tmp_path: Path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    for cls in (AiogramBot, PtbBot):
        bot = cls("customer", CUSTOMER, closed, None, tmp_path)  # type: ignore[arg-type]
        try:
            with pytest.raises(RetryLater) as caught:
                await bot.send("customer", "3005", Rendered("hello"))
            assert caught.value.seconds is None
        finally:
            await bot.close()


async def test_both_drivers_say_whether_a_shared_contact_is_the_sender_s_own(fake_telegram: FakeTelegram, drivers):
    """A device's owner check (issue 14 part 2) takes only the sender's own contact: a forwarded card, someone else's or
    one without a Telegram account proves nothing."""
    updates = [
        fake_telegram.contact_message(CUSTOMER_CHAT, "+8613912345678", token=CUSTOMER, queue=False),
        fake_telegram.contact_message(CUSTOMER_CHAT, "+8613700001111", contact_user_id=424242, token=CUSTOMER, queue=False),
        fake_telegram.contact_message(CUSTOMER_CHAT, "+8613700002222", contact_user_id=None, token=CUSTOMER, queue=False),
    ]
    for bot in drivers.values():
        for update in updates:
            await bot.receive(update)
    aiogram, ptb = drivers["aiogram"].engine.events, drivers["ptb"].engine.events
    assert [(e.kind, e.phone, e.own_contact) for e in aiogram] == [(e.kind, e.phone, e.own_contact) for e in ptb] == [
        (InboundKind.CONTACT, "+8613912345678", True), (InboundKind.CONTACT, "+8613700001111", False),
        (InboundKind.CONTACT, "+8613700002222", False),
    ]
