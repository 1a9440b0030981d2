"""The outbox relay: claims committed messages, sends them in order per chat within the platforms' rates, records the outcome."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import inspect
import itertools
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, nullcontext
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import cast

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from bots.base import Editor, NotEditable, Paced, Park, PayloadSender, RetryLater, Sender, Undeliverable
from bots.channels import CAPABILITIES, Capabilities, loggable_chat, pulled_platforms
from bots.render import fit
from bots.robots import Throttled
from conversations.i18n import render, translate
from services.messages import Rendered, edits_card_in_place, scrubbed
from domain.clock import Clock
from scheduler import digest
from scheduler.logthrottle import LogThrottle
from scheduler.ratelimit import SendLimiter
from storage.repository import Store

log = logging.getLogger(__name__)

PULLED_PLATFORMS = pulled_platforms()  # their clients fetch their messages themselves
MAX_ATTEMPTS = 10
MAX_BACKOFF = 300.0
# Longer than aiogram's 60 s request timeout plus MAX_WAIT: a live relay never loses a row it is still sending.
LEASE_SECONDS = 90.0
# Up to this long a claimed row waits in the process for its rate; a longer wait goes back to the table.
MAX_WAIT_SECONDS = 10.0

# Called once when a bound chat turns undeliverable (blocked the bot, removed it): platform, bot, chat_id, reason.
UndeliverableHook = Callable[[str, str, str, str], Awaitable[None] | None]
# Called once a payload row (a status callback) is parked: its outbox id and why.
ParkedHook = Callable[[int, str], Awaitable[None] | None]


def backoff(attempts: int) -> float:
    """Exponential back-off with jitter, so many failing rows do not retry in lockstep."""
    return min(MAX_BACKOFF, 2.0**attempts) * (0.5 + random.random() / 2)


def digestible(row: dict) -> bool:
    """A dispatcher alert to a group on a channel that merges alerts: it may wait for a digest when the group is busy."""
    payload = row["payload"]
    plain = not (payload.get("photo_path") or payload.get("album") or payload.get("request"))
    channel = CAPABILITIES.get(row["platform"])
    merges = channel is not None and channel.digest_budget is not None and channel.is_group(row["chat_id"])
    return bool(payload.get("alert")) and plain and merges


def _pid_namespace() -> str | None:
    """This boot of this machine and this process's pid namespace, hashed: where a pid names one process. None off Linux."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return hashlib.sha256(f"{boot} {namespace}".encode()).hexdigest()[:10]


def new_relay_id() -> str:
    """host:pid:pid-namespace:random; the middle two let a relay started later on the same machine see that this one is gone."""
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{_pid_namespace() or '-'}:{secrets.token_hex(4)}"


def relay_gone(relay_id: str) -> bool:
    """True only when ``relay_id`` names a relay process of this machine and pid namespace that no longer exists.

    Anything else (another machine or container, this very process, a live or unknown pid) is not known to be gone:
    its claims run until their leases do.
    """
    parts = relay_id.rsplit(":", 3)
    here = _pid_namespace()
    if len(parts) != 4 or here is None or parts[2] != here or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():  # several relays may share a process (tests, benchmarks); a pid says nothing between them
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but not ours to signal
        return False
    return False


class _NotStarted(Exception):
    """The send could not be recorded as starting (the claim was taken over, the database failed): it must not go out."""


class _WriteTurns:
    """One write transaction of this relay at a time, urgent ones first: for SQLite, which lets one writer in and makes
    the others poll for the lock with growing sleeps. Recording that a send starts is urgent: it stands between a chat
    and its rate slot while the bot's other chats queue behind it, and a queue of recorded outcomes must not delay it.
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future]] = []  # a heap: urgent first, then in order of arrival
        self._arrivals = itertools.count()

    @asynccontextmanager
    async def turn(self, urgent: bool) -> AsyncIterator[None]:
        if self._busy:
            handed = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (0 if urgent else 1, next(self._arrivals), handed))
            try:
                await handed
            except asyncio.CancelledError:
                if handed.done() and not handed.cancelled():  # the turn came with the cancellation: pass it on
                    self._pass()
                raise
        self._busy = True
        try:
            yield
        finally:
            self._pass()

    def _pass(self) -> None:
        while self._waiting:
            handed = heapq.heappop(self._waiting)[2]
            if not handed.done():
                handed.set_result(None)
                return
        self._busy = False


class _RowParts:
    """``bots.base.Parts`` for one claimed row: a later part takes its own place in the chat's and the bot's windows
    (noted as sending first, like every send), and each accepted part is committed to the row's payload (``parts``:
    the plan and the ids accepted), so a retry (131056, a crash) goes on after them instead of repeating them."""

    def __init__(self, relay: OutboxRelay, row: dict, group: bool) -> None:
        self.relay, self.row, self.group = relay, row, group
        self.holding = True  # the place the relay took for the row is held until the send's answer
        self._first = True

    def done(self, plan: str) -> list[str]:
        progress = self.row["payload"].get("parts")
        return list(progress["sent"]) if isinstance(progress, dict) and progress.get("plan") == plan else []

    async def slot(self) -> None:
        if self._first:
            self._first = False
            return
        relay, row = self.relay, self.row
        platform, bot, chat_id = row["platform"], row["bot"], row["chat_id"]
        self.holding = False
        await relay.limiter.sent(platform, bot, chat_id, group=self.group)  # the last part was answered
        try:
            wait = await relay.limiter.acquire(
                platform, bot, chat_id, relay.max_wait, ready=lambda: relay._mark_sending(row), group=self.group,
            )
        except _NotStarted as exc:  # whoever holds the claim now goes on from the parts the row records
            raise RetryLater(f"the next part could not start: {exc}") from None
        if wait:
            raise Paced("the next part of the message waits for its rate", wait)
        self.holding = True

    async def accepted(self, plan: str, message_id: str) -> None:
        row = self.row
        row["payload"] = {**row["payload"], "parts": {"plan": plan, "sent": [*self.done(plan), message_id]}}
        async with self.relay._transaction(urgent=True) as store:
            mine = await store.outbox_part_accepted(row["id"], self.relay.relay_id, row["payload"])
        if not mine:  # taken over: the relay that holds it now goes on from what the row says
            raise RetryLater("the row was taken over between two parts")


class OutboxRelay:
    """Senders signal two special permanent failures with attributes on ``Undeliverable``:
    ``chat_gone`` (the chat refuses the bot: mark it undeliverable) and ``migrate_to_chat_id`` (move the chat).

    Crashes: right before the platform call (before the rate slot is taken) the relay commits ``sending_since``
    on the row; recording the outcome clears it. A relay that takes over a row with it set (the last relay died or
    lost the database mid-send) cannot know whether the platform got the message (Telegram has no history API), so
    it counts the row as ``maybe_sent``, logs how many it found, and sends it again: at least once, in the chat's
    order (the row is still the first unsent one of its chat). A row that was claimed but never started, e.g. still
    waiting for its rate, goes out again without being counted. A relay started on the same machine as a dead one
    (a restarted ``fieldchat serve``) frees the dead one's claims at once instead of waiting out their leases.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker,
        senders: Mapping[str, Sender],  # the sending channels by platform; each is rendered for by its capability record
        clock: Clock,
        tz: tzinfo,
        limiter: SendLimiter | None = None,
        on_undeliverable: UndeliverableHook | None = None,
        on_parked: ParkedHook | None = None,
        batch: int = 200,
        lease: float = LEASE_SECONDS,
        max_wait: float = MAX_WAIT_SECONDS,
        relay_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.senders = senders
        self.limiter = limiter or SendLimiter()
        self.on_undeliverable = on_undeliverable
        self.on_parked = on_parked
        self.lease = lease
        self.max_wait = max_wait
        self.relay_id = relay_id or new_relay_id()
        self._clock = clock
        self._tz = tz
        self._batch = batch
        self._wake = asyncio.Event()
        self._stopping = False
        # a warning that repeats while the database or Redis is down goes out once a minute
        self._warnings = LogThrottle(log)
        bind = getattr(sessions, "kw", {}).get("bind")
        self._write_turns = _WriteTurns() if bind is not None and bind.dialect.name == "sqlite" else None
        # claimed rows whose chat was marked undeliverable when claimed: only their sends clear the mark (one write fewer for the rest)
        self._marked_unreachable: set[int] = set()
        # the rows this relay's chats are sending now: a send can outlast its lease, and must not be claimed again meanwhile
        self._in_hand: set[int] = set()

    def alongside(self, *, limiter: SendLimiter, lease: float, batch: int) -> OutboxRelay:
        """Another relay like this one — the same senders, clock and hooks (a chat found unreachable, a callback parked
        are told as this one tells them) — with its own rate windows, lease and claims: `fieldchat relay`."""
        return OutboxRelay(
            sessions=self.sessions, senders=self.senders, clock=self._clock, tz=self._tz, limiter=limiter,
            on_undeliverable=self.on_undeliverable, on_parked=self.on_parked, batch=batch, lease=lease, max_wait=self.max_wait,
        )

    def wake(self) -> None:
        """Called after a commit wrote outbox rows: send them now instead of at the next tick."""
        self._wake.set()

    async def drain_once(self) -> int:
        """Send what is due now, each chat's rows one after another; returns how many rows were attempted."""
        rows = await self._claim(self._batch)
        return sum(await asyncio.gather(*(self._chain(row) for row in rows)))

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Keep up to ``batch`` chats sending at once, claiming more as chats finish or new rows are written."""
        chains: set[asyncio.Task] = set()
        changed = asyncio.Event()

        def finished(task: asyncio.Task) -> None:
            chains.discard(task)
            changed.set()

        self._stopping = False
        try:
            await self.free_claims_of_gone_relays()
        except Exception:
            log.exception("outbox relay: looking for the claims of stopped relays failed")
        while not stop.is_set():
            self._wake.clear()
            changed.clear()
            room = self._batch - len(chains)
            rows: list[dict] = []
            if room > 0:
                try:
                    rows = await self._claim(room)
                except Exception:
                    self._warnings.exception("claim", "outbox relay: claiming failed")
                else:
                    self._warnings.recovered("claim", "outbox relay: claiming works again")
            for row in rows:
                task = asyncio.create_task(self._chain(row))
                chains.add(task)
                task.add_done_callback(finished)
            waiters = [asyncio.create_task(e.wait()) for e in (self._wake, changed, stop)]
            await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        # let each chat finish the row in hand (a cancelled send could be delivered yet stay unrecorded)
        self._stopping = True
        if chains:
            await asyncio.wait(chains, timeout=self.max_wait + 60)

    @asynccontextmanager
    async def _transaction(self, *, urgent: bool = False) -> AsyncIterator[Store]:
        async with self._write_turns.turn(urgent) if self._write_turns else nullcontext():
            async with self.sessions() as session, session.begin():
                yield Store(session)

    async def free_claims_of_gone_relays(self) -> None:
        """Take back at once what relays of this machine that no longer run had claimed (see ``relay_gone``)."""
        async with self._transaction() as store:
            dead = [relay_id for relay_id in await store.outbox_claimants(self._clock.now()) if relay_gone(relay_id)]
            freed = await store.outbox_release_claims(dead) if dead else 0
        if freed:
            log.info("outbox relay: took back %d claimed messages from stopped relays %s", freed, ", ".join(dead))

    async def _claim(self, limit: int) -> list[dict]:
        async with self._transaction() as store:
            rows, maybe_sent = await self._take(store, self._clock.now(), limit)
        self._report_maybe_sent(maybe_sent)
        return rows

    async def _take(self, store: Store, now: datetime, limit: int, chat: tuple[str, str, str] | None = None) -> tuple[list[dict], list[int]]:
        """Claim rows; a row whose last send started and was never recorded is counted as maybe sent (its ids come back too)."""
        rows, unreachable = await store.outbox_claim_noting_unreachable(
            self.relay_id, now, now + timedelta(seconds=self.lease), limit, PULLED_PLATFORMS, chat, self._in_hand
        )
        self._marked_unreachable |= unreachable
        maybe_sent = [row["id"] for row in rows if row["sending_since"] is not None]
        if maybe_sent:
            await store.outbox_count_maybe_sent(maybe_sent)
            for row in rows:
                if row["id"] in maybe_sent:
                    row.update(sending_since=None, maybe_sent=row["maybe_sent"] + 1)
        return rows, maybe_sent

    def _report_maybe_sent(self, ids: list[int]) -> None:
        if ids:
            log.warning(
                "outbox relay: %d messages were being sent when a relay stopped before recording the outcome; "
                "sending them again, so each may arrive twice (outbox ids %s%s)",
                len(ids), ", ".join(map(str, ids[:20])), ", …" if len(ids) > 20 else "",
            )

    async def _mark_sending(self, row: dict) -> None:
        """Commit that the send starts (and renew the lease for it): from here on a crash leaves the row counted as maybe sent."""
        now = self._clock.now()
        try:
            async with self._transaction(urgent=True) as store:
                mine = await store.outbox_sending(row["id"], self.relay_id, now, now + timedelta(seconds=self.lease))
        except Exception as exc:
            raise _NotStarted(f"{type(exc).__name__}: {exc}") from exc
        if not mine:
            raise _NotStarted("another relay took it over")

    async def _chain(self, row: dict | None) -> int:
        """Send one chat's rows while they are due and go through; another relay cannot take them meanwhile."""
        attempted = 0
        while row is not None:
            attempted += 1
            self._in_hand.add(row["id"])
            try:
                following = await self._deliver(row)
            except Exception:
                # e.g. the database went away while recording: the lease runs out and a relay sends it again
                log.exception("outbox %s: delivery failed", row["id"])
                following = None
            finally:
                self._in_hand.discard(row["id"])
            row = following
        return attempted

    async def _deliver(self, row: dict) -> dict | None:
        """Attempt one claimed row; returns the chat's next row when it is due and now claimed by this relay."""
        platform, bot, chat_id = row["platform"], row["bot"], row["chat_id"]
        sender = self.senders.get(platform)
        if getattr(sender, "posts_payloads", False):
            return await self._post(cast(PayloadSender, sender), row)
        channel = CAPABILITIES.get(platform)
        if sender is None or channel is None:
            return await self._finish(row, {"status": "failed", "last_error": f"no sender for {platform}", "attempts": row["attempts"] + 1})
        alert = digestible(row)
        group = channel.is_group(chat_id)
        # a sender whose message may become several platform messages paces each part and records its progress
        parts = _RowParts(self, row, group) if getattr(sender, "sends_parts", False) else None
        try:
            if alert and row["payload"].get("card") and channel.can_edit and await self._card_shown(row) is not None:
                alert = False  # a change to an alert already shown edits it; it does not queue for a digest
            send, merged = await self._prepare(sender, channel, row, alert and row["held_since"] is not None, parts)
        except (SQLAlchemyError, OSError) as exc:  # reading what the message needs failed (the database is away): transient
            self._warnings.warning("prepare", "outbox %s: preparing failed (%s: %s); trying again", row["id"], type(exc).__name__, exc)
            return await self._finish(row, self._retry(row, self._clock.now(), f"prepare: {type(exc).__name__}", None))
        except Exception as exc:  # the payload itself is broken, or the channel cannot carry it: sending it again cannot help
            log.exception("outbox %s: cannot render", row["id"])
            return await self._finish(row, {"status": "failed", "last_error": f"render: {exc}"[:500], "attempts": row["attempts"] + 1})
        try:
            # an alert does not wait for its busy group: it queues, and what queued behind it goes out as one digest
            wait = await self.limiter.acquire(
                platform, bot, chat_id, self.max_wait, chat_wait=0.0 if alert else None, ready=lambda: self._mark_sending(row),
                group=group,
            )
        except _NotStarted as exc:  # whoever holds the claim now (or once its lease runs out) sends it
            self._warnings.warning("not started", "outbox %s: not sent, the start could not be recorded (%s)", row["id"], exc)
            return None
        except Exception as exc:  # e.g. Redis is down: hold back rather than send blind
            self._warnings.warning(
                "limiter", "outbox %s: the rate limiter failed (%s: %s); holding it back", row["id"], type(exc).__name__, exc
            )
            wait = 1.0
        else:
            self._warnings.recovered("limiter", "outbox: the rate limiter works again")
        if wait:
            # held back by our own limits: not an attempt, so it never counts towards giving up
            return await self._finish(row, self._held(row, alert, wait))
        now = self._clock.now()
        attempts = row["attempts"] + 1
        try:
            try:
                message_id = await send()
            finally:  # the send holds its rate places until its answer is back, whatever the answer
                if parts is None or parts.holding:  # a later part that found no place holds none
                    await self.limiter.sent(platform, bot, chat_id, group=group)
        except Undeliverable as exc:
            new_chat_id = getattr(exc, "migrate_to_chat_id", None)
            if new_chat_id and attempts < MAX_ATTEMPTS:  # the bound keeps a chat that moves back and forth finite
                return await self._migrate(row, str(new_chat_id), str(exc))
            log.warning("outbox %s to %s:%s undeliverable: %s", row["id"], platform, loggable_chat(platform, chat_id), exc)
            values = {"status": "failed", "last_error": str(exc)[:500], "attempts": attempts}
            return await self._finish(row, values, gone=str(exc) if getattr(exc, "chat_gone", False) else None)
        except RetryLater as exc:
            if isinstance(exc, (Throttled, Paced)):
                # the sender keeps its own rate (bots/robots.py), or a later part waits for its place: a wait, not a failure
                return await self._finish(row, self._held(row, alert, exc.seconds or 1.0))
            values = self._retry(row, now, str(exc), exc.seconds)
            if alert and row["held_since"] is None:  # the platform pushed back (429, busy): what queues behind merges too
                values["held_since"] = now
            return await self._finish(row, values)
        except Exception as exc:  # an unexpected failure is treated as transient, never as sent
            log.exception("outbox %s: sending failed", row["id"])
            return await self._finish(row, self._retry(row, now, f"{type(exc).__name__}: {exc}", None))
        values = {"status": "sent", "sent_at": now, "platform_message_id": message_id, "attempts": attempts}
        return await self._finish(row, values, sent=True, merged=merged)

    def _held(self, row: dict, alert: bool, seconds: float) -> dict:
        values: dict = {"next_attempt_at": self._clock.now() + timedelta(seconds=seconds)}
        if alert and row["held_since"] is None:
            values["held_since"] = self._clock.now()
        return values

    async def _prepare(
        self, sender: Sender, channel: Capabilities, row: dict, merge: bool, parts: _RowParts | None = None,
    ) -> tuple[Callable[[], Awaitable[str | None]], list[int]]:
        """Render for the channel and look up what an edit needs before taking a rate slot, so the send follows the slot at once.

        With ``merge``, the alerts queued right behind this one join it in a digest; their ids come back too.
        """
        message = render(row["payload"], await self._language(sender, row), self._tz)
        merged: list[int] = []
        if merge:
            message, merged = await self._digest(sender, channel, row, message)
        message = fit(message, channel)  # raises for what the channel cannot carry: the row fails below
        if row["payload"].get("card") and channel.can_edit:
            shown = await self._card_shown(row)
            if shown is not None:
                if edits_card_in_place(row["payload"], shown):
                    return self._replace_card(sender, row, shown, message), merged
                return self._send_and_retire(sender, row, shown, message), merged
        if parts is not None:
            return (lambda: sender.send(row["bot"], row["chat_id"], message, parts=parts)), merged  # type: ignore[call-arg]
        return (lambda: sender.send(row["bot"], row["chat_id"], message)), merged

    async def _card_shown(self, row: dict) -> str | None:
        """The platform's id of the message that shows this row's card in its chat now, if one can be edited."""
        async with self.sessions() as session:
            return await Store(session).outbox_card_message(row["platform"], row["bot"], row["chat_id"], row["payload"]["card"], row["id"])

    @staticmethod
    def _replace_card(sender: Sender, row: dict, shown: str, message: Rendered) -> Callable[[], Awaitable[str | None]]:
        """Edit the card's message in place (its old buttons go with it); a message that cannot be edited any more
        (deleted by the reader, too old) is replaced by a new one in the same rate slot."""
        editor = cast(Editor, sender)

        async def replace() -> str | None:
            try:
                await editor.edit(row["bot"], row["chat_id"], shown, message)
            except NotEditable as exc:
                log.info("outbox %s: card %s not editable (%s); sending it anew", row["id"], row["payload"].get("card"), exc)
                return await sender.send(row["bot"], row["chat_id"], message)
            return shown

        return replace

    @staticmethod
    def _send_and_retire(sender: Sender, row: dict, shown: str, message: Rendered) -> Callable[[], Awaitable[str | None]]:
        """Send the card anew, then take the buttons off its older copy, so only one copy can be pressed."""
        editor = cast(Editor, sender)

        async def send_and_retire() -> str | None:
            sent = await sender.send(row["bot"], row["chat_id"], message)
            try:
                await editor.clear_buttons(row["bot"], row["chat_id"], shown)
            except Exception as exc:  # the new copy is out: an old one that keeps its buttons answers "stale" when pressed
                log.info("outbox %s: the buttons of card %s stay on its older copy (%s)", row["id"], row["payload"].get("card"), exc)
            return sent

        return send_and_retire

    async def _language(self, sender: Sender, row: dict) -> str:
        """The row's own language, unless its channel knows what the chat's readers read (the robots of an alert route)."""
        reader_language = getattr(sender, "reader_language", None)
        known = await reader_language(row["chat_id"]) if reader_language is not None else None
        return known or row["payload"].get("language", "en")

    async def _digest(self, sender: Sender, channel: Capabilities, row: dict, first: Rendered) -> tuple[Rendered, list[int]]:
        """The held alert and the alerts queued behind it in its chat, as one message; stops at anything else.

        No other relay can take those rows meanwhile: a chat's rows are sendable only once everything before them is out.
        """
        async with self.sessions() as session:
            following = await Store(session).outbox_pending_after(row["platform"], row["bot"], row["chat_id"], row["id"], digest.MAX_ALERTS - 1)
        run: list[dict] = []
        for other in following:
            if not digestible(other):
                break
            run.append(other)
        if not run:
            return first, []
        language = await self._language(sender, row)
        alerts = [first] + [render(other["payload"], await self._language(sender, other), self._tz) for other in run]
        message, count = digest.compose(lambda n: translate("group.digest", language, {"count": n}), alerts, channel)
        return message, [other["id"] for other in run[: count - 1]]

    async def _finish(self, row: dict, values: dict, *, sent: bool = False, gone: str | None = None, merged: list[int] = ()) -> dict | None:
        """Record the outcome and free the claim; after a send, claim the chat's next row in the same transaction."""
        platform, bot, chat_id = row["platform"], row["bot"], row["chat_id"]
        now = self._clock.now()
        following: list[dict] = []
        maybe_sent: list[int] = []
        newly_gone = False
        async with self._transaction() as store:
            # A row another relay took over (our lease ran out mid-send) is that relay's now, even after our send went
            # through: it counted the row as maybe sent and sends it again, in the chat's order. Recording our send over
            # its claim, or moving on to the chat's next row, would let that row overtake its copy and clear its note
            # that a send started.
            if values.get("status") in ("sent", "failed") and row["payload"].get("secret"):
                values = {**values, "payload": scrubbed(row["payload"])}  # out (or never going): the secret is not kept
            mine = await store.outbox_finish(row["id"], self.relay_id, **values)
            if not mine:
                log.warning("outbox %s: the claim was taken over before the outcome was recorded", row["id"])
            elif sent:
                if merged:
                    await store.outbox_sent_in_digest(merged, row["id"], now, values["platform_message_id"])
                if row["id"] in self._marked_unreachable:
                    await store.outbox_chat_reachable(platform, bot, chat_id)
                if not self._stopping:
                    following, maybe_sent = await self._take(store, now, 1, (platform, bot, chat_id))
            if gone is not None:
                newly_gone = await store.outbox_chat_unreachable(platform, bot, chat_id, now)
        self._marked_unreachable.discard(row["id"])  # a later claim of the row asks again
        self._report_maybe_sent(maybe_sent)
        if newly_gone:
            await self._tell_undeliverable(platform, bot, chat_id, gone)
        return following[0] if following else None

    async def _migrate(self, row: dict, new_chat_id: str, reason: str) -> dict | None:
        """The group moved to a new id (a supergroup now): move the chat's rows and records, and send again."""
        platform, bot, old_chat_id = row["platform"], row["bot"], row["chat_id"]
        log.info("outbox: %s %s chat %s moved to %s", platform, bot, loggable_chat(platform, old_chat_id), loggable_chat(platform, new_chat_id))
        now = self._clock.now()
        async with self._transaction() as store:
            await store.outbox_migrate_chat(platform, bot, old_chat_id, new_chat_id)
            values = {"attempts": row["attempts"] + 1, "last_error": reason[:500], "next_attempt_at": now}
            await store.outbox_finish(row["id"], self.relay_id, **values)
            if self._stopping:
                return None
            following, maybe_sent = await self._take(store, now, 1, (platform, bot, new_chat_id))
        self._report_maybe_sent(maybe_sent)
        return following[0] if following else None

    async def _tell_undeliverable(self, platform: str, bot: str, chat_id: str, reason: str) -> None:
        if self.on_undeliverable is None:
            return
        try:
            result = self.on_undeliverable(platform, bot, chat_id, reason)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("outbox: on_undeliverable failed for %s:%s", platform, loggable_chat(platform, chat_id))

    async def _post(self, sender: PayloadSender, row: dict) -> dict | None:
        """A payload row (a status callback): sent as stored, with no chat rendering or rates. A failure retries with
        back-off up to the sender's ``max_attempts``; then the row is parked, which no longer holds back its chat's
        later rows, and ``on_parked`` tells someone. Noted as sending first, like every row: a crash counts it maybe sent."""
        try:
            await self._mark_sending(row)
        except _NotStarted as exc:
            self._warnings.warning("not started", "outbox %s: not sent, the start could not be recorded (%s)", row["id"], exc)
            return None
        now = self._clock.now()
        attempts = row["attempts"] + 1
        try:
            answer = await sender.post(row["id"], row["chat_id"], row["payload"])
        except Park as exc:
            return await self._park(row, attempts, str(exc))
        except RetryLater as exc:
            reason, seconds = str(exc), exc.seconds
        except Exception as exc:  # an unexpected failure is treated as transient, never as sent
            log.exception("outbox %s: posting failed", row["id"])
            reason, seconds = f"{type(exc).__name__}: {exc}", None
        else:
            values = {"status": "sent", "sent_at": now, "platform_message_id": answer, "attempts": attempts}
            return await self._finish(row, values, sent=True)
        if attempts >= sender.max_attempts:
            return await self._park(row, attempts, f"gave up after {attempts} attempts: {reason}")
        delay = min(seconds, MAX_BACKOFF) if seconds is not None else backoff(attempts)
        return await self._finish(row, {"next_attempt_at": now + timedelta(seconds=delay), "last_error": reason[:500], "attempts": attempts})

    async def _park(self, row: dict, attempts: int, reason: str) -> None:
        log.warning("outbox %s to %s:%s parked: %s", row["id"], row["platform"], loggable_chat(row["platform"], row["chat_id"]), reason)
        await self._finish(row, {"status": "parked", "last_error": reason[:500], "attempts": attempts})
        if self.on_parked is None:
            return None
        try:
            result = self.on_parked(row["id"], reason)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the row stays parked and listed (GET /api/v1/callbacks?state=parked) even if nobody heard
            log.exception("outbox %s: telling that it was parked failed", row["id"])
        return None

    def _retry(self, row: dict, now, reason: str, seconds: float | None) -> dict:
        attempts = row["attempts"] + 1
        if attempts >= MAX_ATTEMPTS:
            return {"status": "failed", "last_error": f"gave up: {reason}"[:500], "attempts": attempts}
        delay = seconds if seconds is not None else backoff(attempts)
        return {"next_attempt_at": now + timedelta(seconds=delay), "last_error": reason[:500], "attempts": attempts}
