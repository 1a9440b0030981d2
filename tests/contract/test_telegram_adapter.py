"""The Telegram adapter against the fake Bot API: what getFile says is checked too, failures never show the token,
a blocked chat is not retried, a 429 waits its retry_after; on both drivers (aiogram and python-telegram-bot)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from bots.photos import PhotoLimits
from bots.telegram import TelegramBot as AiogramBot
from bots.telegram_ptb import TelegramBot as PtbBot
from conversations.engine import MediaUnavailable
from services.messages import ChatRef, Inbound, InboundKind
from storage import tables
from fieldchat.fakes.telegram_server import FakeTelegram
from tests.support.harness import START, parts
from tests.support.photos import MB, jpeg_with_gps
from tests.support.telegram import CUSTOMER, CUSTOMER_CHAT, DRIVERS, STAFF, Shop, running

DRIVER = 1001
ADAPTERS = {"aiogram": AiogramBot, "ptb": PtbBot}
TelegramBot = AiogramBot | PtbBot
# what each driver's HTTP client raises for a 404 download (only its type reaches the error)
NOT_FOUND = {"aiogram": "ClientResponseError", "ptb": "HTTPStatusError"}


@pytest.fixture(params=DRIVERS)
def telegram_driver(request) -> str:
    return request.param


@pytest.fixture
async def adapter(fake_telegram: FakeTelegram, tmp_path: Path, telegram_driver: str):
    bot = ADAPTERS[telegram_driver](
        "staff", STAFF, fake_telegram.base_url, engine=None, media_dir=tmp_path, photo_limits=PhotoLimits(1 * MB, 40_000_000)
    )
    yield bot
    await bot.close()


def photo_event(file_id: str) -> Inbound:
    return Inbound(ChatRef("telegram", "staff", str(DRIVER)), "1", InboundKind.PHOTO, str(DRIVER), file_id=file_id)


async def test_the_telegram_adapter_never_asks_for_more_than_getfile_serves(fake_telegram: FakeTelegram, tmp_path: Path, telegram_driver: str):
    bot = ADAPTERS[telegram_driver](
        "staff", STAFF, fake_telegram.base_url, engine=None, media_dir=tmp_path, photo_limits=PhotoLimits(50 * MB, 40_000_000)
    )
    try:
        assert bot.photo_limits == PhotoLimits(20 * MB, 40_000_000)
    finally:
        await bot.close()


async def test_a_file_getfile_says_is_too_big_is_not_downloaded(fake_telegram: FakeTelegram, adapter: TelegramBot, tmp_path: Path):
    fake_telegram.add_file("AgACUnsized", jpeg_with_gps() + b"\0" * (2 * MB), file_path="photos/unsized.jpg")
    event = photo_event("AgACUnsized")
    assert event.file_size is None  # the update did not say

    fetched = await adapter.fetch(event)
    assert (fetched.file_error, fetched.file_limit_mb, fetched.file_path) == ("too_big", 1.0, None)
    assert [c.method for c in fake_telegram.calls] == ["getFile"] and fake_telegram.downloads == []
    assert not (tmp_path / "telegram").exists()

    fake_telegram.add_file("AgACGood", jpeg_with_gps(), file_path="photos/good.jpg")
    good = await adapter.fetch(photo_event("AgACGood"))
    assert good.file_error is None and Image.open(good.file_path).format == "JPEG"
    assert fake_telegram.downloads == ["photos/good.jpg"]


async def test_a_failed_download_is_transient_and_its_error_never_holds_the_file_url(
    fake_telegram: FakeTelegram, adapter: TelegramBot, telegram_driver: str
):
    stored = fake_telegram.add_file("AgACGone", jpeg_with_gps(), file_path="photos/gone.jpg")
    stored.file_path = "photos/moved.jpg"  # getFile names a path the file route no longer serves: 404

    with pytest.raises(MediaUnavailable) as failure:
        await adapter.fetch(photo_event("AgACGone"))

    assert fake_telegram.downloads == ["photos/moved.jpg"]
    assert str(failure.value) == f"telegram staff bot: {NOT_FOUND[telegram_driver]}"
    assert failure.value.__cause__ is None and failure.value.__suppress_context__  # no chained traceback with the URL


# --- messages the relay cannot deliver, through the adapter's own intake --------------------------------


@pytest.fixture
async def quiet_shop(fake_telegram, sqlite_url, tmp_path, telegram_driver):
    """No polling and no relay loop: updates go in through TelegramBot.receive, the test drains the outbox."""
    async with running(fake_telegram, sqlite_url, tmp_path, background=False, telegram_driver=telegram_driver) as shop:
        yield shop


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
    await customer_writes(shop, CUSTOMER_CHAT, "/help")
    fake.block_chat(CUSTOMER_CHAT)

    rounds = []
    while attempted := await shop.container.relay.drain_once():
        rounds.append(attempted)
        assert len(rounds) < 10, "the relay keeps retrying a blocked chat"
    rows = await outbox_of(shop, CUSTOMER_CHAT)
    # the welcome with the order summary, then the help with the state's hint (one message each); one per round keeps the chat's order
    assert [parts(r["payload"]["text"])[0] for r in rows][:2] == ["customer.welcome", "customer.help"] and rounds == [1] * len(rows)
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1)] * len(rows)
    assert all("Forbidden" in r["last_error"] for r in rows)
    # the dispatchers are told once that this customer cannot be reached in chat
    timeline = await shop.rows(select(tables.domain_events.c.type))
    assert [r["type"] for r in timeline].count("ChatUnreachable") == 1

    shop.clock.advance(timedelta(days=1))
    assert await shop.container.relay.drain_once() == 0
    assert len(send_calls(fake, CUSTOMER_CHAT)) == len(rows) and all(c.status == 403 for c in send_calls(fake, CUSTOMER_CHAT))
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
