"""What both Telegram drivers (aiogram, python-telegram-bot) share: Bot API facts, the update → Inbound mapping, the channel."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from bots.base import Undeliverable
from bots.channels import TELEGRAM, TELEGRAM_CAPABILITIES, Capabilities
from bots.photos import MEGABYTE, PhotoLimits, PhotoRefused, check_photo
from bots.voice import check_voice
from conversations.engine import Engine
from services.messages import ChatRef, Inbound, InboundKind, Rendered, link_of

PLATFORM = TELEGRAM
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
DOWNLOAD_LIMIT = 20 * MEGABYTE  # getFile serves nothing larger (platform-facts T10)
DOWNLOAD_TIMEOUT = 60  # seconds for one photo of at most 20 MB
# 400s of an edit that say the message cannot be changed any more (deleted, not the bot's, a photo): send it anew
NOT_EDITABLE = ("message to edit not found", "message can't be edited", "there is no text in the message to edit")
# 400s saying the chat does not exist for this bot (deleted, or a user who never started it): as final as a block, so the
# chat is marked unreachable and the dispatchers are told, instead of the message failing unseen
CHAT_GONE = ("chat not found", "peer_id_invalid")

# The mapping below reads updates by attribute: aiogram's pydantic models and python-telegram-bot's objects both name
# every field as the Bot API does, so one mapping serves both drivers and they cannot drift apart
# (tests/contract/test_telegram_drivers.py compares their Inbound for the same JSON).


def inline_action(data: str) -> tuple[str, str]:
    """How an inline button carries a rendered button's data: ("callback_data", data) for an action, ("url", url) for a
    link, ("web_app", url) for an app link (a Mini App; Telegram opens only https pages as one, so an http one is a link).
    Web app buttons work in private chats only: neutral code sends app links to a person's own chat."""
    link = link_of(data)
    if link is None:
        return "callback_data", data
    url, app = link
    return ("web_app" if app and url.startswith("https://") else "url"), url


def _chat_type(kind: str) -> str:
    return "private" if kind == "private" else "group"


def _photo(sizes: Any, limits: PhotoLimits) -> dict:
    """The largest size Telegram offers within the limit; a too_big refusal when none is (nothing is fetched)."""
    fitting = [s for s in sizes if s.file_size is None or s.file_size <= limits.max_bytes]
    if not fitting:
        largest = max(sizes, key=lambda s: s.width * s.height)
        return dict(file_id=largest.file_id, file_size=largest.file_size, file_error="too_big", file_limit_mb=limits.max_mb)
    best = max(fitting, key=lambda s: s.width * s.height)
    return dict(file_id=best.file_id, file_size=best.file_size)


def _from_message(role: str, update_id: int, message: Any, limits: PhotoLimits) -> Inbound | None:
    chat = ChatRef(PLATFORM, role, str(message.chat.id))
    user = message.from_user
    base = dict(
        chat=chat,
        update_id=str(update_id),
        user_id=str(user.id) if user else str(message.chat.id),
        chat_type=_chat_type(message.chat.type),
        language_code=user.language_code if user else None,
        user_name=(user.full_name if user else "") or "",
        message_id=str(message.message_id),
    )
    if message.text is not None:
        text = message.text.strip()
        if text.startswith("/"):
            head, _, payload = text[1:].partition(" ")
            name = head.split("@", 1)[0].lower()
            return Inbound(kind=InboundKind.COMMAND, text=name, payload=payload.strip(), **base)
        return Inbound(kind=InboundKind.TEXT, text=message.text, **base)
    if message.photo:
        return Inbound(kind=InboundKind.PHOTO, text=message.caption or "", **_photo(message.photo, limits), **base)
    voice = message.voice or message.audio  # a voice note (a repair request's, issue 14) is fetched like a photo
    if voice is not None:
        too_big = voice.file_size is not None and voice.file_size > limits.max_bytes
        return Inbound(kind=InboundKind.VOICE, text=message.caption or "", file_id=voice.file_id, file_size=voice.file_size,
                       **(dict(file_error="too_big", file_limit_mb=limits.max_mb) if too_big else {}), **base)
    if message.location is not None:
        live = message.location.live_period is not None
        return Inbound(kind=InboundKind.LOCATION, latitude=message.location.latitude, longitude=message.location.longitude, live=live, **base)
    if message.contact is not None:
        # only the sender's own contact proves their number (a device's owner check): one forwarded is someone else's
        own = user is not None and message.contact.user_id is not None and message.contact.user_id == user.id
        return Inbound(kind=InboundKind.CONTACT, phone=message.contact.phone_number, own_contact=own, **base)
    if message.new_chat_members or message.left_chat_member or message.group_chat_created or message.migrate_to_chat_id:
        return None  # service messages about the group itself, not addressed to us
    return Inbound(kind=InboundKind.UNSUPPORTED, **base)


def to_inbound(role: str, update: Any, limits: PhotoLimits = PhotoLimits()) -> Inbound | None:
    """A Bot API update (either library's object) as a neutral event; None for updates fieldchat does not act on."""
    if update.message is not None:
        return _from_message(role, update.update_id, update.message, limits)
    if update.edited_message is not None and update.edited_message.location is not None:
        # a live location moving: Telegram edits the original location message
        return _from_message(role, update.update_id, update.edited_message, limits)
    query = update.callback_query
    if query is not None and query.message is not None and query.data:
        chat = query.message.chat
        return Inbound(
            chat=ChatRef(PLATFORM, role, str(chat.id)),
            update_id=str(update.update_id),
            kind=InboundKind.BUTTON,
            user_id=str(query.from_user.id),
            chat_type=_chat_type(chat.type),
            text=query.data,
            language_code=query.from_user.language_code,
            user_name=query.from_user.full_name or "",
            callback_id=query.id,
            message_id=str(query.message.message_id),
        )
    return None


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


class TelegramAdapter(Protocol):
    """One bot of either driver, as the channel uses it."""

    username: str | None

    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None: ...

    async def edit(self, bot: str, chat_id: str, message_id: str, message: Rendered) -> str | None: ...

    async def clear_buttons(self, bot: str, chat_id: str, message_id: str) -> None: ...

    async def fetch(self, event: Inbound) -> Inbound: ...


class TelegramChannel:
    """The Telegram channel: sends, edits and fetches photos through the bot of each role (customer, staff).

    Texts arrive already fitted to ``capabilities`` by the relay (bots/render.py)."""

    capabilities: Capabilities = TELEGRAM_CAPABILITIES

    def __init__(self, bots: dict[str, Any]) -> None:
        self.bots: dict[str, TelegramAdapter] = bots

    def _bot(self, bot: str) -> TelegramAdapter:
        adapter = self.bots.get(bot)
        if adapter is None:
            raise Undeliverable(f"no telegram {bot} bot configured")
        return adapter

    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None:
        return await self._bot(bot).send(bot, chat_id, message)

    async def edit(self, bot: str, chat_id: str, message_id: str, message: Rendered) -> str | None:
        return await self._bot(bot).edit(bot, chat_id, message_id, message)

    async def clear_buttons(self, bot: str, chat_id: str, message_id: str) -> None:
        await self._bot(bot).clear_buttons(bot, chat_id, message_id)

    async def fetch(self, event: Inbound) -> Inbound:
        return await self.bots[event.chat.bot].fetch(event)

    def deep_link(self, role: str, token: str) -> str | None:
        """``t.me/<bot>?start=<token>`` (``startgroup`` adds the staff bot to a group); None until the bot's name is known."""
        adapter = self.bots.get("customer" if role == "customer" else "staff")
        if adapter is None or not adapter.username:
            return None
        parameter = "startgroup" if role == "group" else "start"
        return f"https://t.me/{adapter.username}?{parameter}={token}"


async def keep_checked_photo(event: Inbound, data: bytes, limits: PhotoLimits, media_dir: Path, refused: Callable[[str], Inbound]) -> Inbound:
    """The downloaded photo checked (off the event loop) and its safe copy stored, named after its file id; or the
    refusal the step answers with. A voice note is checked as audio and kept the same way."""
    if event.kind is InboundKind.VOICE:
        try:
            voice = check_voice(data, max_bytes=limits.max_bytes)
        except PhotoRefused as refusal:
            return refused(refusal.code)
        kept = await asyncio.to_thread(voice.store, media_dir, hashlib.sha256((event.file_id or "").encode()).hexdigest()[:32])
        return replace(event, file_path=str(kept))
    try:
        checked = await asyncio.to_thread(check_photo, data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
    except PhotoRefused as refusal:
        return refused(refusal.code)
    stored = checked.store(media_dir, hashlib.sha256((event.file_id or "").encode()).hexdigest()[:32])
    return replace(event, file_path=str(stored))


class TakesUpdates:
    """What both drivers do with an update once their library has parsed it (they give ``engine``, ``_tasks`` and
    ``_answer_callback``)."""

    engine: Engine
    _tasks: set[asyncio.Task[Any]]

    async def _answer_callback(self, callback_id: str) -> None:
        raise NotImplementedError

    async def _handle_now(self, event: Inbound | None) -> bool:
        """A webhook's update: stored and handled, in one transaction, before the webhook is answered; True when it
        was handled now (False: seen before, or stored for another try)."""
        if event is None:
            return False
        outcome = await self.engine.handle(event)
        if event.callback_id:
            await self._answer_callback(event.callback_id)
        return outcome.processed

    async def _store_then_handle(self, event: Inbound | None) -> bool:
        """A polled update: stored durably (the next offset confirms it) and handled in the background, so one
        chat's slow step does not hold up the others in the batch; True when it was new."""
        if event is None:
            return False
        stored = await self.engine.receive(event)
        if event.callback_id:
            await self._answer_callback(event.callback_id)
        task = asyncio.create_task(self.engine.process(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return stored
