"""The one write path: commands go to their handlers, events to their reactions, and one unit of work commits it all.

Every write — a chat update (through the engine), an API call, a timer, a replan, the CLI — runs here:
handlers return events; each event's reactions (who is told, which timers run, and later ERP callbacks,
KPIs …) may return messages and further events, which are reacted to in turn; the unit of work stamps
the timeline, writes the outbox and commits once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from domain.clock import Clock
from domain.commands import Command
from domain.events import Event, stamp
from domain.policy import ServicePolicy
from services.context import HandlerContext
from services.messages import ChatRef, Outbound
from storage.repository import Store

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 5

Handler = Callable[[HandlerContext, Command], Awaitable[list[Event]]]
C = TypeVar("C", bound=Command)
# a reaction answers one event with messages to send and further events (reacted to in their turn)
Reaction = Callable[[HandlerContext, Event], Awaitable[Sequence[Outbound | Event]]]
Work = Callable[[HandlerContext], Awaitable[list[Event]]]
T = TypeVar("T")


def handles(kind: type[C], handler: Callable[[HandlerContext, C], Awaitable[list[Event]]]) -> tuple[type[Command], Handler]:
    """An entry of the handler table. A handler takes only its own kind of command, which the table's type cannot
    say; the bus looks handlers up by the command's exact type (MessageBus.execute), so each gets only its own."""
    return kind, cast(Handler, handler)


def is_conflict(exc: Exception) -> bool:
    """Losses worth retrying at once: optimistic version clash, lock timeout, serialization, and a pooled connection
    the database had dropped (the pool is emptied then, so the retry gets a fresh one)."""
    if isinstance(exc, (StaleDataError, IntegrityError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        text = str(exc.orig).lower()
        return any(s in text for s in ("could not serialize", "deadlock", "database is locked"))
    return False


@dataclass
class Reactions:
    """Which reactions run for which events, in the order they were added; None: every event."""

    entries: list[tuple[tuple[type[Event], ...] | None, Reaction]] = field(default_factory=list)

    def add(self, reaction: Reaction, *event_types: type[Event]) -> None:
        self.entries.append((event_types or None, reaction))

    def to(self, event: Event) -> list[Reaction]:
        return [reaction for types, reaction in self.entries if types is None or isinstance(event, types)]


@dataclass
class Outcome:
    """What one unit of work produced: every event (reactions' included, in order) and the messages to send."""

    events: list[Event] = field(default_factory=list)
    messages: list[Outbound] = field(default_factory=list)


class MessageBus:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        policy: ServicePolicy,
        handlers: Mapping[type[Command], Handler],
        reactions: Reactions,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        self.handlers = handlers
        self.reactions = reactions
        self.on_outbox = on_outbox

    # --- inside a unit of work (the engine opens its own, around a chat update) ---

    async def execute(self, ctx: HandlerContext, commands: Iterable[Command]) -> list[Event]:
        """Run the commands' handlers in order; a DomainError stops the lot (the caller rolls back its savepoint)."""
        events: list[Event] = []
        for command in commands:
            events.extend(await self.handlers[type(command)](ctx, command))
        return events

    async def react(self, ctx: HandlerContext, events: Iterable[Event]) -> Outcome:
        """Every event's reactions, and the reactions to the events they raise, until none are left."""
        outcome = Outcome()
        queue = deque(events)
        while queue:
            event = queue.popleft()
            outcome.events.append(event)
            for reaction in self.reactions.to(event):
                for item in await reaction(ctx, event):
                    if isinstance(item, Event):
                        queue.append(item)
                    else:
                        outcome.messages.append(item)
        return outcome

    async def record(self, ctx: HandlerContext, origin: str, outcome: Outcome, *, chat: ChatRef | None = None,
                     replies: Sequence[Outbound] = (), language: str = "en") -> int:
        """Stamp the events on their jobs' timelines and write the replies and messages to the outbox; returns how many."""
        await ctx.store.record_events([stamp(e, ctx.now) for e in outcome.events])
        messages = [*replies, *outcome.messages]
        await write_outbox(ctx.store, origin, chat, messages, language, ctx.now)
        return len(messages)

    # --- a whole unit of work: timers, the API, replans, the CLI ---

    async def run(self, origin: str, work: Work | Command) -> list[Event]:
        """Run ``work`` (a command, or a function of the context returning events) with its reactions in one
        transaction, retried when a concurrent change wins; ``origin`` names the run (it keys the outbox rows)."""

        async def answered(ctx: HandlerContext) -> tuple[None, list[Event]]:
            return None, await (self.execute(ctx, [work]) if isinstance(work, Command) else work(ctx))

        return (await self._unit_of_work(origin, answered))[1]

    async def call(self, origin: str, work: Callable[[HandlerContext], Awaitable[tuple[T, list[Event]]]]) -> T:
        """Like ``run``, for work that also answers its caller (order intake answers with the job and its link)."""
        return (await self._unit_of_work(origin, work))[0]

    async def _unit_of_work(self, origin: str, work: Callable[[HandlerContext], Awaitable[tuple[T, list[Event]]]]) -> tuple[T, list[Event]]:
        for attempt in range(CONFLICT_RETRIES):
            try:
                async with self.sessions() as session, session.begin():
                    ctx = HandlerContext(Store(session), self.clock.now(), self.policy)
                    answer, events = await work(ctx)
                    outcome = await self.react(ctx, events)
                    written = await self.record(ctx, origin, outcome)
                break
            except Exception as exc:
                if not is_conflict(exc) or attempt == CONFLICT_RETRIES - 1:
                    raise
                log.info("%s: retrying after a concurrent change", origin)
        if written and self.on_outbox:
            self.on_outbox()
        return answer, outcome.events


async def write_outbox(store: Store, origin: str, chat: ChatRef | None, messages: Sequence[Outbound], language: str, now: datetime) -> None:
    rows = []
    for index, message in enumerate(messages):
        target = message.to or chat
        if target is None:
            raise ValueError(f"{origin}: message {message.text.get('key')!r} has no recipient and no chat to answer")
        payload = message.payload()
        payload["language"] = message.language or (language if target == chat else "en")
        # the dedup key makes a re-run of the same update write the same rows, never new ones
        rows.append({
            "platform": target.platform, "bot": target.bot, "chat_id": target.chat_id,
            "payload": payload, "dedup_key": message.dedup or f"{origin}:{index}", "card": payload.get("card"),
        })
    await store.outbox_add_many(rows, now)
