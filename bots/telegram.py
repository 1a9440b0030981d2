"""Telegram adapter on aiogram: updates in (polling or webhook) as neutral events, messages out via the Bot API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    ForceReply,
    FSInputFile,
    InlineKeyboardButton,
    InputMediaPhoto,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
    WebAppInfo,
)

from bots.base import ChatGone, ChatMigrated, NotEditable, RetryLater, Undeliverable
from bots.channels import TELEGRAM_CAPABILITIES
from bots.photos import PhotoLimits
from bots.telegram_common import (  # noqa: F401  (to_inbound and TelegramChannel: imported from here too)
    ALLOWED_UPDATES,
    DOWNLOAD_LIMIT,
    keep_checked_photo,
    DOWNLOAD_TIMEOUT,
    CHAT_GONE,
    NOT_EDITABLE,
    PLATFORM,
    TakesUpdates,
    TelegramChannel,
    inline_action,
    sleep_or_stop,
    to_inbound,
)
from conversations.engine import Engine, MediaUnavailable
from services.messages import Inbound, Rendered

log = logging.getLogger(__name__)


def _markup(message: Rendered):
    if message.request == "reply":
        # the answer must be a reply to this message: in a group with privacy mode that is all the bot sees of plain text
        return ForceReply(force_reply=True)
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


class PinnedResponseSession(AiohttpSession):
    """aiogram reads every answer through ``Response[<the method's result type>]``, a pydantic generic that pydantic
    caches only weakly: between paced sends the class is collected and built again, which cost most of a send's CPU
    (measured: 6.8 ms per send, 1.8 ms with the class kept). This session keeps each one it has used."""

    _pinned: dict[object, type] = {}

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._pinned:
            self._pinned[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


class TelegramBot(TakesUpdates):
    """One bot (customer or staff): receives updates into the engine, sends rendered messages."""

    def __init__(
        self, role: str, token: str, api_url: str, engine: Engine, media_dir: Path, photo_limits: PhotoLimits | None = None
    ) -> None:
        self.role = role
        self.bot = Bot(token, session=PinnedResponseSession(api=TelegramAPIServer.from_base(api_url)))
        self.engine = engine
        self.media_dir = media_dir / PLATFORM / role
        limits = photo_limits or PhotoLimits()
        self.photo_limits = replace(limits, max_bytes=min(limits.max_bytes, DOWNLOAD_LIMIT))
        self.username: str | None = None
        self._tasks: set[asyncio.Task] = set()

    async def identify(self) -> str:
        me = await self.bot.get_me()
        self.username = me.username
        return me.username or ""

    # --- inbound -------------------------------------------------------------------------------

    async def receive(self, raw_update: dict) -> bool:
        """A webhook's update (Bot API JSON): see ``TakesUpdates._handle_now``."""
        return await self._handle_now(to_inbound(self.role, Update.model_validate(raw_update, context={"bot": self.bot}), self.photo_limits))

    async def receive_update(self, update: Update) -> bool:
        """A polled update: see ``TakesUpdates._store_then_handle``."""
        return await self._store_then_handle(to_inbound(self.role, update, self.photo_limits))

    async def _answer_callback(self, callback_id: str) -> None:
        # the client shows a spinner until answered; a stale query only costs a log line
        try:
            await self.bot.answer_callback_query(callback_id)
        except TelegramAPIError as exc:
            log.info("answerCallbackQuery failed: %s", exc)

    async def poll(self, stop: asyncio.Event, timeout: int = 25) -> None:
        """Long polling that confirms an update only after it is stored (the next offset moves past it)."""
        offset: int | None = None
        while not stop.is_set():
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES)
            except TelegramUnauthorizedError:
                log.error("telegram %s bot: the token was rejected; polling stops", self.role)
                return
            except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as exc:
                delay = getattr(exc, "retry_after", None) or 2
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
        except TelegramBadRequest as exc:
            if "not modified" not in str(exc):  # none left to take off is what was wanted
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
                sent = await self.bot.send_photo(
                    int(chat_id), FSInputFile(message.photo_path), caption=message.text, reply_markup=_markup(message)
                )
            else:
                sent = await self.bot.send_message(int(chat_id), message.text, reply_markup=_markup(message))
        except TelegramRetryAfter as exc:
            raise RetryLater("429", exc.retry_after) from exc
        except TelegramMigrateToChat as exc:
            raise ChatMigrated(exc.migrate_to_chat_id) from exc
        except TelegramBadRequest as exc:
            if edit_id is not None and "not modified" in str(exc):
                return edit_id  # already shows this text: the edit is done
            if edit_id is not None and any(reason in str(exc) for reason in NOT_EDITABLE):
                raise NotEditable(exc.message) from exc
            if any(reason in str(exc).lower() for reason in CHAT_GONE):
                raise ChatGone(f"{type(exc).__name__}: {exc.message}") from exc
            raise Undeliverable(type(exc).__name__) from exc
        except TelegramForbiddenError as exc:
            raise ChatGone(f"{type(exc).__name__}: {exc.message}") from exc
        except (TelegramNotFound, TelegramUnauthorizedError) as exc:
            raise Undeliverable(type(exc).__name__) from exc
        except (TelegramServerError, TelegramNetworkError, asyncio.TimeoutError) as exc:
            raise RetryLater(type(exc).__name__) from exc
        return str(sent.message_id)

    async def _send_album(self, chat_id: str, message: Rendered) -> str | None:
        """Stored photos with the text: one photo with its caption and buttons, or media groups of up to ten (a media
        group carries no buttons, so buttons come in a message of their own after it). Returns the first message's id."""
        paths = [photo.path for photo in message.album]
        if len(paths) == 1:
            sent = await self.bot.send_photo(int(chat_id), FSInputFile(paths[0]), caption=message.text, reply_markup=_markup(message))
            return str(sent.message_id)
        first: str | None = None
        caption: str | None = None if message.buttons else message.text
        size = TELEGRAM_CAPABILITIES.max_album
        for start in range(0, len(paths), size):
            chunk = paths[start : start + size]
            if len(chunk) == 1:  # a media group needs two: the last odd photo goes alone
                sent = await self.bot.send_photo(int(chat_id), FSInputFile(chunk[0]), caption=caption)
                first = first or str(sent.message_id)
            else:
                media = [InputMediaPhoto(media=FSInputFile(path), caption=caption if i == 0 else None) for i, path in enumerate(chunk)]
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
            data = await self._download(telegram_file.file_path, limits.max_bytes)
        except TelegramBadRequest as exc:
            # 400 "file is too big" (over getFile's 20 MB), or an id Telegram no longer knows: a retry cannot help
            return refused("too_big" if "too big" in exc.message.lower() else "unavailable")
        except (AiogramError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # only the type: the texts of these can hold the file URL, and with it the bot token
            raise MediaUnavailable(f"telegram {self.role} bot: {type(exc).__name__}") from None
        if data is None:
            return refused("too_big")
        return await keep_checked_photo(event, data, limits, self.media_dir, refused)

    async def _download(self, file_path: str, max_bytes: int) -> bytes | None:
        """The file's bytes, or None as soon as they run past ``max_bytes``."""
        url = self.bot.session.api.file_url(self.bot.token, file_path)
        received = bytearray()
        stream = self.bot.session.stream_content(url, timeout=DOWNLOAD_TIMEOUT, raise_for_status=True)
        try:
            async for chunk in stream:
                received += chunk
                if len(received) > max_bytes:
                    return None
        finally:
            await stream.aclose()
        return bytes(received)

    async def close(self) -> None:
        await self.drain()
        await self.bot.session.close()
