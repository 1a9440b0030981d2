"""Checks that the fake Telegram Bot API server behaves like Telegram for real aiogram and PTB clients."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from fieldchat.fakes.telegram_server import FakeTelegram

TOKEN = "123456:TEST-token"
OTHER_TOKEN = "654321:OTHER-token"
CHAT = 4242


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        server.add_bot(TOKEN, "fieldchat_test_bot", 123456)
        yield server


def make_bot(fake: FakeTelegram, token: str = TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))


async def close_bot(client: Bot) -> None:
    # AiohttpSession.close() sleeps 250 ms for TLS teardown; plain HTTP to 127.0.0.1 needs none.
    await (await client.session.create_session()).close()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    client = make_bot(fake)
    yield client
    await close_bot(client)


class Receiver:
    """A tiny webhook endpoint; each test plugs its own request handler in."""

    def __init__(self) -> None:
        self.url = ""
        self.handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None

    async def route(self, request: web.Request) -> web.StreamResponse:
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    endpoint = Receiver()
    app = web.Application()
    app.router.add_post("/hook", endpoint.route)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    endpoint.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    yield endpoint
    await runner.cleanup()


def keyboard(*datas: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=f"btn {d}", callback_data=d) for d in datas]]
    )


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "fieldchat_test_bot", True)


async def test_unknown_token_and_unknown_method(fake: FakeTelegram) -> None:
    stranger = make_bot(fake, "999:nope")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await close_bot(stranger)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/bot{TOKEN}/sendCarrierPigeon", json={}) as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }


async def test_send_message_with_inline_keyboard(fake: FakeTelegram, bot: Bot) -> None:
    first = await bot.send_message(CHAT, "Pick a slot", reply_markup=keyboard("slot:1", "slot:2"))
    second = await bot.send_message(CHAT, "again")

    assert (first.message_id, second.message_id) == (1, 2)
    assert first.from_user is not None and first.from_user.id == 123456
    assert first.chat.id == CHAT and first.chat.type == "private"
    assert first.reply_markup is not None
    assert first.reply_markup.inline_keyboard[0][1].callback_data == "slot:2"
    sent = fake.sent(chat_id=CHAT)
    assert [s["text"] for s in sent] == ["Pick a slot", "again"]
    assert sent[0]["method"] == "sendMessage" and sent[0]["chat_id"] == str(CHAT)
    assert sent[0]["reply_markup"]["inline_keyboard"][0][0] == {"text": "btn slot:1", "callback_data": "slot:1"}
    assert sent[1]["reply_markup"] is None
    assert fake.sent(chat_id=CHAT + 1) == []


async def test_validation_matches_telegram(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(CHAT, "")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "hi", reply_markup=keyboard("é" * 33))
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(CHAT, "Total: 5.00", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="Unsupported start tag"):
        await bot.send_message(CHAT, "a<br>b", parse_mode="HTML")
    ok = await bot.send_message(CHAT, "<b>Bold</b> &amp; done", parse_mode="HTML")
    assert ok.text == "Bold & done"
    assert (await bot.send_message(CHAT, "x" * 4096)).message_id == 2


async def test_form_and_json_requests_are_parsed(fake: FakeTelegram) -> None:
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/bot{TOKEN}/sendmessage"  # Telegram method names are case-insensitive
        async with http.post(url, json={"chat_id": CHAT, "text": "[json]", "reply_markup": markup}) as resp:
            assert resp.status == 200, await resp.text()
        form = {"chat_id": str(CHAT), "text": "{form}", "reply_markup": json.dumps(markup)}
        async with http.post(url, data=form) as resp:
            assert resp.status == 200, await resp.text()
    assert [(s["text"], s["reply_markup"]) for s in fake.sent()] == [("[json]", markup), ("{form}", markup)]
    assert [c.method for c in fake.calls] == ["sendMessage", "sendMessage"]


async def test_long_poll_wakes_on_push_and_offset_confirms(fake: FakeTelegram, bot: Bot) -> None:
    fake.long_poll_cap = 30  # a missed wake-up would now hang the poll instead of returning []
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for_call("getUpdates")
    pushed = fake.text_message(CHAT, "/start promo", first_name="Ann")

    updates = await asyncio.wait_for(poll, 5)

    assert [u.update_id for u in updates] == [pushed["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "/start promo"
    assert message.from_user is not None and message.from_user.language_code == "en"
    assert message.entities is not None and message.entities[0].type == "bot_command"
    assert message.entities[0].length == len("/start")
    # Not confirmed yet: Telegram re-delivers until the offset moves past it.
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [pushed["update_id"]]

    assert await bot.get_updates(offset=pushed["update_id"] + 1, timeout=0) == []
    await fake.wait_until_confirmed(TOKEN, pushed["update_id"], timeout=1)
    assert fake.pending_updates(TOKEN) == []


async def test_second_poll_terminates_first_and_stop_ends_polls(fake: FakeTelegram, bot: Bot) -> None:
    fake.long_poll_cap = 30
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_for_call("getUpdates")
    second = asyncio.create_task(bot.get_updates(timeout=30))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 5)
    await fake.stop()  # must not wait for the 30 s poll
    assert await asyncio.wait_for(second, 5) == []


async def test_resend_duplicates_and_allowed_updates(fake: FakeTelegram, bot: Bot) -> None:
    msg = fake.text_message(CHAT, "hello")
    cb = fake.callback(CHAT, "slot:1", message_id=77)
    first = await bot.get_updates(timeout=0, allowed_updates=["message"])
    assert [u.update_id for u in first] == [msg["update_id"]]  # the callback is filtered out

    fake.resend(TOKEN, msg)
    dup = await bot.get_updates(offset=msg["update_id"] + 1, timeout=0, allowed_updates=[])
    assert [u.update_id for u in dup] == [msg["update_id"]]
    assert await bot.get_updates(offset=msg["update_id"] + 1, timeout=0) == []
    await fake.wait_until_confirmed(TOKEN, msg["update_id"], timeout=1)
    await fake.wait_until_confirmed(TOKEN, cb["update_id"], timeout=1)


async def test_group_builders_and_callback_round_trip(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Confirm?", reply_markup=keyboard("yes", "no"))
    group = fake.text_message(-100123, "hi all", user_id=77, chat_type="supergroup", title="Crew")
    photo = fake.photo_message(CHAT, "PHOTO1", "UPHOTO1", caption="damage", content=b"jpeg")
    where = fake.location_message(CHAT, 52.52, 13.405)
    contact = fake.contact_message(CHAT, "+4930123456")
    sticker = fake.sticker_message(CHAT)
    press = fake.callback(CHAT, "yes", message_id=sent.message_id)

    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [
        u["update_id"] for u in (group, photo, where, contact, sticker, press)
    ]
    g = updates[0].message
    assert g is not None and g.chat.type == "supergroup" and g.chat.title == "Crew" and g.from_user.id == 77
    p = updates[1].message
    assert p is not None and p.photo is not None and p.photo[-1].file_id == "PHOTO1" and p.caption == "damage"
    assert updates[2].message.location.latitude == 52.52  # type: ignore[union-attr]
    assert updates[3].message.contact.user_id == CHAT  # type: ignore[union-attr]
    assert updates[4].message.sticker.emoji == "👍"  # type: ignore[union-attr]
    query = updates[5].callback_query
    assert query is not None and query.data == "yes"
    assert isinstance(query.message, Message) and query.message.text == "Confirm?"
    assert query.message.reply_markup is not None

    assert await bot.answer_callback_query(query.id, text="Saved")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    edited = await bot.edit_message_text("Confirmed", chat_id=CHAT, message_id=sent.message_id)
    assert edited.text == "Confirmed" and edited.reply_markup is None  # edits without markup drop it
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Confirmed", chat_id=CHAT, message_id=sent.message_id)
    await bot.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("undo"))
    assert fake.sent()[-1]["method"] == "editMessageReplyMarkup"
    assert fake.sent()[-1]["text"] == "Confirmed"
    assert await bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(ValueError):
        fake.text_message(5, "groups are negative", chat_type="group")


async def test_get_file_and_download(fake: FakeTelegram, bot: Bot) -> None:
    fake.add_file("FILE1", b"\x89PNG fake bytes", file_unique_id="UNIQ1")
    file = await bot.get_file("FILE1")
    assert file.file_unique_id == "UNIQ1" and file.file_size == 15 and file.file_path
    data = await bot.download_file(file.file_path)
    assert data is not None and data.read() == b"\x89PNG fake bytes"
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("NOPE")


async def test_send_photo_upload_is_stored(fake: FakeTelegram, bot: Bot) -> None:
    message = await bot.send_photo(CHAT, BufferedInputFile(b"qr-png", "qr.png"), caption="Your code")
    assert message.photo is not None and message.caption == "Your code"
    record = fake.sent(chat_id=CHAT)[0]
    assert record["method"] == "sendPhoto" and record["text"] == "Your code"
    assert record["photo"].content == b"qr-png" and record["photo"].filename == "qr.png"
    largest = message.photo[-1].file_id
    assert fake.file_content(largest) == b"qr-png"
    # Re-sending by file_id works like Telegram, unknown ids do not.
    await bot.send_photo(CHAT, largest)
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(CHAT, "never-seen")


async def test_injected_429_surfaces_as_retry_after(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert caught.value.retry_after == 7
    assert "Too Many Requests: retry after 7" in caught.value.message
    assert (await bot.send_message(CHAT, "hi")).message_id == 1
    assert [s["text"] for s in fake.sent()] == ["hi"]
    assert [c.status for c in fake.calls] == [429, 200]


async def test_blocked_chat_is_forbidden(fake: FakeTelegram, bot: Bot) -> None:
    fake.block_chat(CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")
    assert fake.sent() == []
    await bot.send_message(CHAT + 1, "other chat is fine")


async def test_wait_for_sent(fake: FakeTelegram, bot: Bot) -> None:
    later = asyncio.create_task(fake.wait_for_sent(lambda s: s["text"] == "done", timeout=5))
    await bot.send_message(CHAT, "working")
    await bot.send_message(CHAT, "done")
    assert (await later)["message_id"] == 2
    with pytest.raises(AssertionError, match="'working'"):
        await fake.wait_for_sent("never", timeout=0.05)
    mark = len(fake.sent())
    with pytest.raises(AssertionError):
        await fake.wait_for_sent("done", timeout=0.05, since=mark)


async def test_several_bots(fake: FakeTelegram, bot: Bot) -> None:
    fake.add_bot(OTHER_TOKEN, "other_bot", 654321)
    other = make_bot(fake, OTHER_TOKEN)
    try:
        assert (await other.get_me()).username == "other_bot"
        fake.text_message(CHAT, "to other", token=OTHER_TOKEN)
        assert await bot.get_updates(timeout=0) == []
        assert len(await other.get_updates(timeout=0)) == 1
        await other.send_message(CHAT, "from other")
        assert fake.sent(token=TOKEN) == [] and len(fake.sent(token=OTHER_TOKEN)) == 1
    finally:
        await close_bot(other)


async def test_webhook_delivery_retries_and_checks_secret(
    fake: FakeTelegram, bot: Bot, receiver: Receiver
) -> None:
    url = receiver.url
    seen: list[tuple[str | None, dict]] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response(status=500 if len(seen) == 1 else 200)

    receiver.handler = flaky
    fake.webhook_retry_delay = 0.01
    assert await bot.set_webhook(url, secret_token="s3cr3t")
    first = fake.text_message(CHAT, "one")
    second = fake.text_message(CHAT, "two")

    await fake.wait_until_confirmed(TOKEN, second["update_id"], timeout=5)

    assert [(secret, body["update_id"]) for secret, body in seen] == [
        ("s3cr3t", first["update_id"]),
        ("s3cr3t", first["update_id"]),  # retried after the 500, and before "two": in order
        ("s3cr3t", second["update_id"]),
    ]
    assert [d.status for d in fake.deliveries] == [500, 200, 200]
    info = await bot.get_webhook_info()
    assert info.url == url and info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    with pytest.raises(TelegramConflictError):
        await bot.get_updates(timeout=0)

    assert await bot.delete_webhook()
    fake.text_message(CHAT, "polled again")
    assert len(await bot.get_updates(timeout=0)) == 1


async def test_webhook_reply_method_from_real_aiogram_handler(
    fake: FakeTelegram, bot: Bot, receiver: Receiver
) -> None:
    url = receiver.url
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message):  # type: ignore[no-untyped-def]
        # Returning the unawaited method makes aiogram answer inside the webhook response.
        return message.answer(f"echo: {message.text}", reply_markup=keyboard("again"))

    handler = SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="tok")
    receiver.handler = handler.handle
    await bot.set_webhook(url, secret_token="tok")
    pushed = fake.text_message(CHAT, "ping")

    reply = await fake.wait_for_sent("echo: ping", timeout=5)

    assert reply["chat_id"] == str(CHAT)
    assert reply["reply_markup"] == {"inline_keyboard": [[{"text": "btn again", "callback_data": "again"}]]}
    await fake.wait_until_confirmed(TOKEN, pushed["update_id"], timeout=5)


async def test_python_telegram_bot_client(fake: FakeTelegram) -> None:
    import telegram

    fake.add_file("DOC1", b"ptb bytes")
    ptb = telegram.Bot(TOKEN, base_url=f"{fake.base_url}/bot", base_file_url=f"{fake.base_url}/file/bot")
    async with ptb:
        me = await ptb.get_me()
        assert me.username == "fieldchat_test_bot"
        markup = telegram.InlineKeyboardMarkup([[telegram.InlineKeyboardButton("Yes", callback_data="y")]])
        message = await ptb.send_message(CHAT, "from ptb", reply_markup=markup)
        assert message.message_id == 1 and message.text == "from ptb"
        assert message.reply_markup is not None
        file = await ptb.get_file("DOC1")
        assert bytes(await file.download_as_bytearray()) == b"ptb bytes"
        fake.block_chat(CHAT)
        with pytest.raises(telegram.error.Forbidden):
            await ptb.send_message(CHAT, "blocked")
    assert fake.sent()[0]["reply_markup"] == {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
