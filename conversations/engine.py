"""The conversation engine: one transaction per update, serial per chat; the step's commands go to the message bus."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from datetime import datetime, timedelta
from typing import Any, Callable, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from conversations.flow import Flow, StepInput
from domain.errors import DomainError
from domain.model import Language
from services.bus import CONFLICT_RETRIES, MessageBus, Outcome, is_conflict, write_outbox
from services.context import HandlerContext
from services.messages import ChatRef, Inbound, InboundKind, Outbound, reply, t
from storage.repository import Store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # an update that keeps failing is given up with an apology, not retried forever


def answering(event: Inbound, replies: tuple[Outbound, ...]) -> tuple[Outbound, ...]:
    """Mark the cards among the replies to a button press with the pressed message (see ``Outbound.answers``)."""
    if event.kind is not InboundKind.BUTTON or not event.message_id:
        return replies
    return tuple(
        replace(message, answers=event.message_id) if message.card and message.to in (None, event.chat) else message
        for message in replies
    )


class Taken(Enum):
    NOW = "now"  # by this transaction
    BEFORE = "before"  # handled or given up already: nothing to do
    AFTER_EARLIER = "after earlier"  # an update of the chat stored before it waits: that one goes first


class MediaUnavailable(Exception):
    """The platform could not hand a file over just now (network, 5xx): the update is tried again later.

    Its message is logged, so it must never hold a URL (Telegram's file URLs carry the bot token).
    """


class MediaFetcher(Protocol):
    async def fetch(self, event: Inbound) -> Inbound:
        """The photo event with ``file_path`` of the checked copy stored on disk, or with ``file_error``
        when the photo was refused; raises MediaUnavailable on a transient failure."""


@dataclass
class ProcessOutcome:
    processed: bool
    replies: int = 0
    waiting: bool = False  # not handled: an update of the chat stored before it waits, and goes first


class Engine:
    """Keeps the inbox, the per-chat lock, the conversation state, the view and the pure step; the
    commands the step decides on go to the bus, inside the update's one transaction."""

    def __init__(
        self, *, bus: MessageBus, flows: Callable[[Inbound], Flow[Any]], media: dict[str, MediaFetcher] | None = None,
        buttons: Mapping[str, int] | None = None, phone_platforms: Collection[str] | None = None,
    ) -> None:
        self._bus = bus
        # where chat ids are phone numbers, logs show them masked; None (not told): every chat id is masked
        self._phone_platforms = frozenset(phone_platforms) if phone_platforms is not None else None
        self._buttons = dict(buttons or {})  # by platform, from each channel's capability record
        self._sessions = bus.sessions
        self._flows = flows
        self._clock = bus.clock
        self._policy = bus.policy
        self._media = media or {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _loggable(self, chat: ChatRef) -> str:
        return chat.loggable(self._phone_platforms)

    # --- intake --------------------------------------------------------------------------------

    async def receive(self, event: Inbound) -> bool:
        """Store the update durably; False when it was seen before. Acknowledge the platform only after this."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                async with self._sessions() as session, session.begin():
                    return await Store(session).inbox_add(
                        event.chat.platform, event.chat.bot, event.update_id, event.chat.chat_id, event.to_dict(), self._clock.now()
                    )
            except Exception as exc:  # a pooled connection the database dropped: the pool is emptied, try a fresh one
                if not is_conflict(exc) or attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def handle(self, event: Inbound) -> ProcessOutcome:
        """Store and process an update that has just arrived; return only once it is stored (the platform may be
        acknowledged then). One transaction stores and handles it; a photo to download is stored first, since the
        download runs outside any transaction; an update whose handling fails is stored for the sweep to try again."""
        if self._downloads(event):
            await self.receive(event)
            return await self.process(event)
        return await self.process(event, arrived=True)

    async def process_pending(self, limit: int = 100, *, settled: timedelta = timedelta(0)) -> int:
        """Process updates stored but not yet handled (after a crash, or by another process). ``settled``: only those
        stored at least that long ago — the background sweep leaves fresh ones to the process that is handling them."""
        async with self._sessions() as session:
            rows = await Store(session).inbox_pending(limit, received_before=self._clock.now() - settled)
        for row in rows:
            await self.process(Inbound.from_dict(row["payload"]))
        return len(rows)

    # --- processing ----------------------------------------------------------------------------

    def _lock(self, chat: ChatRef) -> asyncio.Lock:
        key = str(chat)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def process(self, event: Inbound, *, arrived: bool = False) -> ProcessOutcome:
        """Handle a stored update (``arrived``: one not stored yet, stored by the same transaction).

        A chat's updates are handled in the order they were stored, also across processes: one stored earlier and
        still waiting (its handling failed, or its process died) goes first, whichever process meets it."""
        async with self._lock(event.chat):
            outcome = await self._attempt(event, arrived, in_order=True)
            if outcome.waiting:
                for earlier in await self._waiting_before(event):
                    await self._attempt(earlier, False, in_order=False)
                # now in its turn; an earlier one that failed again waits for the sweep and must not hold the chat up
                outcome = await self._attempt(event, arrived, in_order=False)
        if outcome.replies and self._bus.on_outbox:
            self._bus.on_outbox()
        return outcome

    async def _attempt(self, event: Inbound, arrived: bool, *, in_order: bool) -> ProcessOutcome:
        try:
            event = await self._fetch_media(event)
            for attempt in range(CONFLICT_RETRIES):
                try:
                    return await self._process_once(event, arrived, in_order)
                except Exception as exc:
                    if not is_conflict(exc) or attempt == CONFLICT_RETRIES - 1:
                        raise
                    log.info("retrying update %s after a concurrent change", event.update_id)
            raise AssertionError("unreachable: the last attempt returns or raises")
        except MediaUnavailable as exc:
            # expected now and then: one line, and no traceback whose causes could show a file URL
            log.warning("update %s of %s: photo not fetched (%s); it is tried again", event.update_id, self._loggable(event.chat), exc)
            return await self._record_failure(event, exc)
        except Exception as exc:  # a bug or an outage must not lose the update nor crash the loop
            log.exception("update %s of %s failed", event.update_id, self._loggable(event.chat))
            if arrived:  # its transaction is gone: store it on its own (raises when the database is down too)
                await self.receive(event)
            return await self._record_failure(event, exc)

    async def _waiting_before(self, event: Inbound) -> list[Inbound]:
        """The chat's updates stored before this one (all of them, if it is not stored) and not yet handled, oldest first."""
        chat = event.chat
        async with self._sessions() as session:
            rows = await Store(session).inbox_waiting(chat.platform, chat.bot, chat.chat_id)
        earlier = []
        for row in rows:
            if row["update_id"] == event.update_id:
                break
            earlier.append(Inbound.from_dict(row["payload"]))
        return earlier

    def _downloads(self, event: Inbound) -> bool:
        """Whether the update carries a photo still to fetch from its platform."""
        return (
            event.kind in (InboundKind.PHOTO, InboundKind.VOICE) and not event.file_path and not event.file_error and bool(event.file_id)
            and event.chat.platform in self._media
        )

    async def _fetch_media(self, event: Inbound) -> Inbound:
        """Download and check the photo, but only for a bound chat whose state takes one as evidence:
        anyone can send photos, and every download costs bandwidth, disk and a decode."""
        if not self._downloads(event):
            return event
        fetcher = self._media[event.chat.platform]
        async with self._sessions() as session:
            row = await Store(session).inbox_row(event.chat.platform, event.chat.bot, event.update_id)
            if row is not None and row["status"] != "received":
                return event  # handled already (a sweep's second look): nothing to download for
            if not await self._expects_photo(session, event):
                return event  # the step answers with its usual hint; nothing is downloaded or stored
        try:
            return await fetcher.fetch(event)
        except MediaUnavailable as exc:
            if row is None or row["attempts"] + 1 < MAX_ATTEMPTS:
                raise
            # the last try: the step asks for the photo again instead of a general apology
            log.warning("update %s of %s: photo not fetched (%s); giving up on it", event.update_id, self._loggable(event.chat), exc)
            return replace(event, file_error="unavailable")

    async def _expects_photo(self, session: AsyncSession, event: Inbound) -> bool:
        """A cheap read before the transaction; a state changed meanwhile only costs the step a hint."""
        chat, flow, store = event.chat, self._flows(event), Store(session)
        state = await store.conversation_state(chat.platform, chat.bot, chat.chat_id)
        spec = flow.spec.states.get(state or flow.initial) or flow.spec.states[flow.initial]
        # a voice note only where a step keeps it (a repair request's): elsewhere it is answered without a download
        wanted = spec.wants_photo and (event.kind is not InboundKind.VOICE or spec.voice is not None)
        return wanted and await store.chat_is_bound(chat.platform, chat.bot, chat.chat_id)

    async def _process_once(self, event: Inbound, arrived: bool, in_order: bool) -> ProcessOutcome:
        now = self._clock.now()
        chat = event.chat
        flow = self._flows(event)
        async with self._sessions() as session, session.begin():
            store = Store(session)
            conversation = await store.lock_conversation(
                chat.platform, chat.bot, chat.chat_id, flow.name, flow.initial,
                Language.from_code(event.language_code).value, now,
            )
            # the inbox row is written as handled in this transaction: a rollback leaves it as it was (or not there)
            taken = await self._take(store, event, now, arrived, in_order)
            if taken is not Taken.NOW:
                return ProcessOutcome(processed=False, waiting=taken is Taken.AFTER_EARLIER)

            state, data, language = conversation["state"], dict(conversation["data"]), conversation["language"]
            view = await flow.load_view(store, event, self._policy, now)
            result = flow.step(StepInput(event, state, data, view, now, language, self._policy, self._buttons.get(chat.platform)))
            context = HandlerContext(store, now, self._policy)
            events = []
            # what was typed is a secret (a completion code, commands.CompleteWithCode): the stored update keeps no copy
            # of it, in this transaction, right or wrong, accepted or refused
            secret = any(getattr(command, "secret_input", False) for command in result.commands)
            try:
                # a refused command undoes the step's other commands too, never the inbox mark or the state
                # (a step that commands nothing needs no savepoint: most updates only answer)
                if result.commands:
                    async with session.begin_nested():
                        events = await self._bus.execute(context, result.commands)
            except DomainError as err:
                result = reply(Outbound(t(f"error.{err.code}", **err.params)))
                events = []
            if secret:
                await store.inbox_blank_text(chat.platform, chat.bot, event.update_id)

            new_language = result.language or language
            reacted: Outcome = await self._bus.react(context, events)
            origin = f"{chat.platform}:{chat.bot}:{event.update_id}"
            replies = answering(event, result.replies)
            written = await self._bus.record(context, origin, reacted, chat=chat, replies=replies, language=new_language)
            new_state, new_data = result.state or state, data if result.data is None else result.data
            if (new_state, new_data, new_language) != (state, data, language):  # most updates only answer
                await store.save_conversation(conversation["id"], state=new_state, data=new_data, language=new_language, now=now)
        return ProcessOutcome(processed=True, replies=written)

    @staticmethod
    async def _take(store: Store, event: Inbound, now: datetime, arrived: bool, in_order: bool) -> Taken:
        """Mark the update handled. Just arrived, it is most likely new: stored as handled at once; otherwise most
        likely waiting in the inbox. Either way the other case is tried too. ``in_order``: only when no update of
        the chat stored before it is still waiting (each statement checks that itself: no extra round trip)."""
        chat = event.chat

        async def add() -> bool:
            return await store.inbox_add(
                chat.platform, chat.bot, event.update_id, chat.chat_id, event.to_dict(), now, processed=True, in_order=in_order
            )

        async def take() -> bool:
            return await store.inbox_take(chat.platform, chat.bot, chat.chat_id, event.update_id, now, in_order=in_order)

        first, second = (add, take) if arrived else (take, add)
        if await first() or await second():
            return Taken.NOW
        if in_order and any(row["update_id"] != event.update_id for row in await store.inbox_waiting(chat.platform, chat.bot, chat.chat_id)):
            return Taken.AFTER_EARLIER
        return Taken.BEFORE  # handled (or given up) already

    async def _record_failure(self, event: Inbound, exc: Exception) -> ProcessOutcome:
        now = self._clock.now()
        chat = event.chat
        async with self._sessions() as session, session.begin():
            store = Store(session)
            row = await store.inbox_row(chat.platform, chat.bot, event.update_id)
            if row is None or row["status"] != "received":
                return ProcessOutcome(processed=False)
            if row["attempts"] + 1 < MAX_ATTEMPTS:
                await store.inbox_mark(row["id"], "received", now, error=type(exc).__name__)
                return ProcessOutcome(processed=False)
            await store.inbox_mark(row["id"], "failed", now, error=f"{type(exc).__name__}: {exc}"[:2000])
            language = await store.conversation_language(chat.platform, chat.bot, chat.chat_id) or "en"
            origin = f"{chat.platform}:{chat.bot}:{event.update_id}"
            await write_outbox(store, origin, chat, [Outbound(t("error.internal"))], language, now)
        return ProcessOutcome(processed=False, replies=1)
