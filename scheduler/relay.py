"""The outbox relay: sends committed messages in order per chat, retries transient failures, gives up on permanent ones."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta, tzinfo

from sqlalchemy.ext.asyncio import async_sessionmaker

from bots.base import RetryLater, Sender, Undeliverable
from conversations.i18n import render
from domain.clock import Clock
from storage.repository import Store

log = logging.getLogger(__name__)

PULLED_PLATFORMS = ("web",)  # the web chat page fetches its messages itself
MAX_ATTEMPTS = 10
MAX_BACKOFF = 300.0


def backoff(attempts: int) -> float:
    """Exponential back-off with jitter, so many failing rows do not retry in lockstep."""
    return min(MAX_BACKOFF, 2.0**attempts) * (0.5 + random.random() / 2)


class OutboxRelay:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker,
        senders: dict[str, Sender],
        clock: Clock,
        tz: tzinfo,
        concurrency: int = 8,
        batch: int = 200,
    ) -> None:
        self._sessions = sessions
        self._senders = senders
        self._clock = clock
        self._tz = tz
        self._concurrency = concurrency
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a commit wrote outbox rows: send them now instead of at the next tick."""
        self._wake.set()

    async def drain_once(self) -> int:
        """Send what is due now; returns how many rows were attempted."""
        async with self._sessions() as session:
            rows = await Store(session).outbox_due(self._clock.now(), self._batch, PULLED_PLATFORMS)
        by_chat: dict[tuple, dict] = {}
        for row in rows:
            by_chat.setdefault((row["platform"], row["bot"], row["chat_id"]), row)
        gate = asyncio.Semaphore(self._concurrency)

        async def deliver(row: dict) -> None:
            async with gate:
                await self._deliver(row)

        # only the oldest row of each chat goes per round, which keeps each chat's order
        await asyncio.gather(*(deliver(row) for row in by_chat.values()))
        return len(by_chat)

    async def _deliver(self, row: dict) -> None:
        sender = self._senders.get(row["platform"])
        payload = row["payload"]
        values: dict
        now = self._clock.now()
        if sender is None:
            values = {"status": "failed", "last_error": f"no sender for {row['platform']}", "attempts": row["attempts"] + 1}
        else:
            message = render(payload, payload.get("language", "en"), self._tz)
            try:
                message_id = await self._send_or_edit(sender, row, message)
                values = {"status": "sent", "sent_at": now, "platform_message_id": message_id, "attempts": row["attempts"] + 1}
            except Undeliverable as exc:
                log.warning("outbox %s to %s:%s undeliverable: %s", row["id"], row["platform"], row["chat_id"], exc)
                values = {"status": "failed", "last_error": str(exc)[:500], "attempts": row["attempts"] + 1}
            except RetryLater as exc:
                values = self._retry(row, now, str(exc), exc.seconds)
            except Exception as exc:  # an unexpected failure is treated as transient, never as sent
                log.exception("outbox %s: sending failed", row["id"])
                values = self._retry(row, now, f"{type(exc).__name__}: {exc}", None)
        async with self._sessions() as session, session.begin():
            await Store(session).outbox_update(row["id"], **values)

    async def _send_or_edit(self, sender: Sender, row: dict, message) -> str | None:
        """Edit the earlier message in place where the platform can; otherwise send a new one."""
        edit_of = row["payload"].get("edit_of")
        edit = getattr(sender, "edit", None)
        if edit_of and edit is not None:
            async with self._sessions() as session:
                original = await Store(session).outbox_by_key(edit_of)
            if original is not None and original["platform_message_id"]:
                await edit(row["bot"], row["chat_id"], original["platform_message_id"], message)
                return original["platform_message_id"]
        return await sender.send(row["bot"], row["chat_id"], message)

    def _retry(self, row: dict, now, reason: str, seconds: float | None) -> dict:
        attempts = row["attempts"] + 1
        if attempts >= MAX_ATTEMPTS:
            return {"status": "failed", "last_error": f"gave up: {reason}"[:500], "attempts": attempts}
        delay = seconds if seconds is not None else backoff(attempts)
        return {"next_attempt_at": now + timedelta(seconds=delay), "last_error": reason[:500], "attempts": attempts}

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = await self.drain_once()
            except Exception:
                log.exception("outbox relay round failed")
                sent = 0
            if sent:
                continue  # more may be waiting behind the rows just sent
            waiter = asyncio.create_task(self._wake.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
