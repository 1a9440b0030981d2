"""Telegram adapter on python-telegram-bot (the light driver): the same bot as bots/telegram.py's, without aiogram."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
import warnings
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
    WebAppInfo,
)
from telegram.error import (
    BadRequest, ChatMigrated as TelegramChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

from bots.base import ChatGone, ChatMigrated, NotEditable, RetryLater, Undeliverable
from bots.channels import TELEGRAM_CAPABILITIES
from bots.photos import PhotoLimits
from bots.telegram_common import (
    ALLOWED_UPDATES, CHAT_GONE, DOWNLOAD_LIMIT, DOWNLOAD_TIMEOUT, NOT_EDITABLE, PLATFORM, TakesUpdates, inline_action, keep_checked_photo,
    sleep_or_stop, to_inbound,
)
from conversations.engine import Engine, MediaUnavailable
from services.messages import Inbound, Rendered

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)
BOT_API_URL = re.compile(r"/(?:file/)?bot\d+:[A-Za-z0-9_-]+/")


class _NoBotApiRequestLines(logging.Filter):
    """httpx logs every request's URL at INFO: a Bot API URL holds the bot token, and long polling would add a line per
    bot every 25 s. aiogram logs none of them, and neither do we; httpx's other lines (the robots') stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, httpx.URL) and BOT_API_URL.search(arg.path) for arg in args)


logging.getLogger("httpx").addFilter(_NoBotApiRequestLines())

# per phase (pool, connect, write, read): together within the 60 s a send may take (scheduler/relay.py's lease assumes it)
TIMEOUTS = dict(pool_timeout=5.0, connect_timeout=5.0, write_timeout=20.0, read_timeout=30.0, media_write_timeout=20.0)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context (the CA bundle loaded once) for every client of every bot: each costs ~1 MiB and ~20 ms to make."""
    return httpx.create_ssl_context()


@functools.cache
def _aiohttp() -> ModuleType:
    """aiohttp, imported at the first send: a process that has not sent yet does not carry its ~10 MiB."""
    import aiohttp

    return aiohttp


class AiohttpRequest(BaseRequest):
    """PTB's Bot API calls over aiohttp for the relay's sends: the same requests as its httpx one at about half the CPU
    per send (`fieldchat bench notify --driver ptb`); long polling keeps httpx, one request per 25 s."""

    def __init__(self, pool_size: int, *, pool_timeout: float, connect_timeout: float, write_timeout: float, read_timeout: float,
                 media_write_timeout: float) -> None:
        self._pool_size = pool_size
        self._read_timeout = read_timeout
        self._timeouts = (pool_timeout, connect_timeout, write_timeout, read_timeout, media_write_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:  # made in the running loop, at the first call
            http = _aiohttp()
            self._session = http.ClientSession(connector=http.TCPConnector(limit=self._pool_size, ssl=_tls()),
                                               headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE, write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE, pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        await self.initialize()
        assert self._session is not None
        http = _aiohttp()
        files = request_data.multipart_data if request_data else None
        pool, connect, write, read, media_write = self._timeouts
        pool, connect, read = (_given(pool_timeout, pool), _given(connect_timeout, connect), _given(read_timeout, read))
        write = _given(write_timeout, media_write if files else write)
        # aiohttp has no write timeout of its own: the whole call stays within the sum, as the relay's lease expects
        timeout = http.ClientTimeout(total=sum(t or 0.0 for t in (pool, connect, write, read)) or None, connect=(pool or 0.0) + (connect or 0.0),
                                        sock_connect=connect, sock_read=read)
        data: aiohttp.FormData | dict[str, str] | None = request_data.json_parameters if request_data else None
        if files:
            form = http.FormData()
            for name, value in (data or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mime_type) in files.items():
                form.add_field(name, content, filename=filename, content_type=mime_type)
            data = form
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as err:
            raise TimedOut from err
        except http.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err


def _given(value: Any, default: float | None) -> float | None:
    """A per-call timeout, or the request's own where the call left it at PTB's default."""
    return default if isinstance(value, type(BaseRequest.DEFAULT_NONE)) else value


def _quietly(read):
    """What ``read()`` returns, without PTB's warning that durations (live_period, retry_after) become timedeltas in its
    next major version: we read both shapes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return read()


def _seconds(exc: RetryAfter) -> float:
    value = _quietly(lambda: exc.retry_after)
    return value.total_seconds() if isinstance(value, timedelta) else value


def _markup(message: Rendered):
    if message.request == "reply":
        # the answer must be a reply to this message: in a group with privacy mode that is all the bot sees of plain text
        return ForceReply()
    if message.request in ("location", "contact"):
        button = KeyboardButton(
            text="📍" if message.request == "location" else "☎",
            request_location=message.request == "location",
            request_contact=message.request == "contact",
        )
        return ReplyKeyboardMarkup(keyboard=[[button]], resize_keyboard=True, one_time_keyboard=True)
    if message.buttons:
        return InlineKeyboardMarkup(
            inline_keyboard=[[_inline_button(label, data) for label, data in row] for row in message.buttons]
        )
    return None


def _inline_button(label: str, data: str) -> InlineKeyboardButton:
    kind, value = inline_action(data)
    if kind == "web_app":
        return InlineKeyboardButton(text=label, web_app=WebAppInfo(url=value))
    if kind == "url":
        return InlineKeyboardButton(text=label, url=value)
    return InlineKeyboardButton(text=label, callback_data=value)


async def _file(path: str | Path) -> tuple[bytes, str]:
    """A stored photo's bytes (read off the event loop) and its name, for an upload."""
    path = Path(path)
    return await asyncio.to_thread(path.read_bytes), path.name


class TelegramBot(TakesUpdates):
    """One bot (customer or staff): receives updates into the engine, sends rendered messages."""

    def __init__(
        self, role: str, token: str, api_url: str, engine: Engine, media_dir: Path, photo_limits: PhotoLimits | None = None
    ) -> None:
        self.role = role
        base = api_url.rstrip("/")
        # long polling holds one connection; the relay's sends go over their own pool
        self._requests: tuple[BaseRequest, BaseRequest] = (
            HTTPXRequest(connection_pool_size=1, httpx_kwargs={"verify": _tls()}, **TIMEOUTS), AiohttpRequest(64, **TIMEOUTS),
        )
        self.bot = Bot(
            token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", get_updates_request=self._requests[0], request=self._requests[1]
        )
        self.engine = engine
        self.media_dir = media_dir / PLATFORM / role
        limits = photo_limits or PhotoLimits()
        self.photo_limits = replace(limits, max_bytes=min(limits.max_bytes, DOWNLOAD_LIMIT))
        self.username: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._downloads: httpx.AsyncClient | None = None  # made on the first photo: most processes never fetch one

    async def identify(self) -> str:
        me = await self.bot.get_me()
        self.username = me.username
        return me.username or ""

    # --- inbound -------------------------------------------------------------------------------

    def _event(self, update: Update) -> Inbound | None:
        return _quietly(lambda: to_inbound(self.role, update, self.photo_limits))

    def _parse(self, raw_update: Any) -> Update:
        """A webhook body as an Update; ValueError for anything that is not one (the route answers 200 and drops it)."""
        if not isinstance(raw_update, dict) or type(raw_update.get("update_id")) is not int:
            raise ValueError("not a Telegram update")
        try:
            return Update.de_json(raw_update, self.bot)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a Telegram update: {type(exc).__name__}") from None

    async def receive(self, raw_update: dict) -> bool:
        """A webhook's update (Bot API JSON): see ``TakesUpdates._handle_now``."""
        return await self._handle_now(self._event(self._parse(raw_update)))

    async def receive_update(self, update: Update) -> bool:
        """A polled update: see ``TakesUpdates._store_then_handle``."""
        return await self._store_then_handle(self._event(update))

    async def _answer_callback(self, callback_id: str) -> None:
        # the client shows a spinner until answered; a stale query only costs a log line
        try:
            await self.bot.answer_callback_query(callback_id)
        except TelegramError as exc:
            log.info("answerCallbackQuery failed: %s", exc)

    async def poll(self, stop: asyncio.Event, timeout: int = 25) -> None:
        """Long polling that confirms an update only after it is stored (the next offset moves past it)."""
        offset: int | None = None
        while not stop.is_set():
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES)
            except InvalidToken:
                log.error("telegram %s bot: the token was rejected; polling stops", self.role)
                return
            except BadRequest:
                raise  # a NetworkError to PTB, but a request Telegram refuses: as on aiogram, not retried
            except (NetworkError, RetryAfter) as exc:
                delay = _seconds(exc) if isinstance(exc, RetryAfter) else 2
                log.warning("telegram %s polling: %s; retrying in %ss", self.role, type(exc).__name__, delay)
                await sleep_or_stop(stop, delay)
                continue
            for update in updates:
                try:
                    await self.receive_update(update)
                except Exception:
                    # not stored, so not confirmed: Telegram gives it to us again on the next call
                    log.exception("telegram %s: storing update %s failed", self.role, update.update_id)
                    await sleep_or_stop(stop, 2)
                    break
                offset = update.update_id + 1

    async def drain(self, timeout: float = 10) -> None:
        """Wait for processing tasks started by this adapter (used on shutdown and in tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    # --- webhook -------------------------------------------------------------------------------

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False)

    async def delete_webhook(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)

    # --- outbound ------------------------------------------------------------------------------

    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None:
        return await self._call(chat_id, message, None)

    async def edit(self, bot: str, chat_id: str, message_id: str, message: Rendered) -> str | None:
        return await self._call(chat_id, message, message_id)

    async def clear_buttons(self, bot: str, chat_id: str, message_id: str) -> None:
        try:
            await self.bot.edit_message_reply_markup(chat_id=int(chat_id), message_id=int(message_id), reply_markup=None)
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():  # none left to take off is what was wanted
                raise NotEditable(exc.message) from exc

    async def _call(self, chat_id: str, message: Rendered, edit_id: str | None) -> str | None:
        try:
            if edit_id is not None:
                markup = _markup(message)
                edited = await self.bot.edit_message_text(
                    chat_id=int(chat_id), message_id=int(edit_id), text=message.text,
                    reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
                )
                return edit_id if edited is True else str(edited.message_id)
            if message.album:
                return await self._send_album(chat_id, message)
            if message.photo_path:
                data, name = await _file(message.photo_path)
                sent = await self.bot.send_photo(int(chat_id), data, filename=name, caption=message.text, reply_markup=_markup(message))
            else:
                sent = await self.bot.send_message(int(chat_id), message.text, reply_markup=_markup(message))
        except RetryAfter as exc:
            raise RetryLater("429", _seconds(exc)) from exc
        except TelegramChatMigrated as exc:
            raise ChatMigrated(exc.new_chat_id) from exc
        except BadRequest as exc:  # before NetworkError: PTB derives it from that
            # PTB drops the "Bad Request: " and capitalises the rest ("Message can't be edited")
            reason = exc.message.lower()
            if edit_id is not None and "not modified" in reason:
                return edit_id  # already shows this text: the edit is done
            if edit_id is not None and any(known in reason for known in NOT_EDITABLE):
                raise NotEditable(exc.message) from exc
            if any(known in reason for known in CHAT_GONE):
                raise ChatGone(f"{type(exc).__name__}: {exc.message}") from exc
            raise Undeliverable(type(exc).__name__) from exc
        except Forbidden as exc:
            raise ChatGone(f"{type(exc).__name__}: {exc.message}") from exc
        except InvalidToken as exc:  # 401 and 404
            raise Undeliverable(type(exc).__name__) from exc
        except (NetworkError, asyncio.TimeoutError) as exc:  # 5xx, timeouts, connection failures
            raise RetryLater(type(exc).__name__) from exc
        return str(sent.message_id)

    async def _send_album(self, chat_id: str, message: Rendered) -> str | None:
        """Stored photos with the text: one photo with its caption and buttons, or media groups of up to ten (a media
        group carries no buttons, so buttons come in a message of their own after it). Returns the first message's id."""
        paths = [photo.path for photo in message.album]
        if len(paths) == 1:
            data, name = await _file(paths[0])
            sent = await self.bot.send_photo(int(chat_id), data, filename=name, caption=message.text, reply_markup=_markup(message))
            return str(sent.message_id)
        first: str | None = None
        caption: str | None = None if message.buttons else message.text
        size = TELEGRAM_CAPABILITIES.max_album
        for start in range(0, len(paths), size):
            chunk = paths[start : start + size]
            if len(chunk) == 1:  # a media group needs two: the last odd photo goes alone
                data, name = await _file(chunk[0])
                sent = await self.bot.send_photo(int(chat_id), data, filename=name, caption=caption)
                first = first or str(sent.message_id)
            else:
                files = [await _file(path) for path in chunk]
                media = [
                    InputMediaPhoto(media=data, filename=name, caption=caption if i == 0 else None) for i, (data, name) in enumerate(files)
                ]
                group = await self.bot.send_media_group(int(chat_id), media=media)
                first = first or str(group[0].message_id)
            caption = None  # the caption once, under the first photo
        if message.buttons:
            sent = await self.bot.send_message(int(chat_id), message.text, reply_markup=_markup(message))
            first = first or str(sent.message_id)
        return first

    # --- media ---------------------------------------------------------------------------------

    async def fetch(self, event: Inbound) -> Inbound:
        """Download a photo, check it and store only the checked copy; a refusal comes back as ``file_error``.

        Every size is checked three times because each is only a claim until the bytes are counted:
        the update's file_size, getFile's file_size, and the download itself, cut off past the limit.
        """
        limits = self.photo_limits

        def refused(code: str) -> Inbound:
            log.info("telegram %s: photo of update %s refused: %s", self.role, event.update_id, code)
            return replace(event, file_error=code, file_limit_mb=limits.max_mb)

        if event.file_size is not None and event.file_size > limits.max_bytes:
            return refused("too_big")
        try:
            telegram_file = await self.bot.get_file(event.file_id)
            if telegram_file.file_size is not None and telegram_file.file_size > limits.max_bytes:
                return refused("too_big")
            if not telegram_file.file_path:
                return refused("unavailable")
            # PTB gives the file's whole URL (…/file/bot<TOKEN>/<path>)
            data = await self._download(telegram_file.file_path, limits.max_bytes)
        except BadRequest as exc:
            # 400 "file is too big" (over getFile's 20 MB), or an id Telegram no longer knows: a retry cannot help
            return refused("too_big" if "too big" in exc.message.lower() else "unavailable")
        except (TelegramError, httpx.HTTPError, asyncio.TimeoutError) as exc:
            # only the type: the texts of these can hold the file URL, and with it the bot token
            raise MediaUnavailable(f"telegram {self.role} bot: {type(exc).__name__}") from None
        if data is None:
            return refused("too_big")
        return await keep_checked_photo(event, data, limits, self.media_dir, refused)

    async def _download(self, url: str, max_bytes: int) -> bytes | None:
        """The file's bytes, or None as soon as they run past ``max_bytes``."""
        if self._downloads is None:
            self._downloads = httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, verify=_tls())
        received = bytearray()
        async with asyncio.timeout(DOWNLOAD_TIMEOUT), self._downloads.stream("GET", url) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > max_bytes:
                    return None
        return bytes(received)

    async def close(self) -> None:
        await self.drain()
        # Bot.shutdown() closes only what Bot.initialize() opened; our requests were used without it
        for request in self._requests:
            await request.shutdown()
        if self._downloads is not None:
            await self._downloads.aclose()
