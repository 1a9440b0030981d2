"""The outbox as the relay tests see it: rows queued directly, drained, read back; the fake's rate enforcement; waiting."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from domain.clock import SystemClock
from fieldchat import notify_bench
from fieldchat.fakes.telegram_server import FakeTelegram
from scheduler.ratelimit import DEFAULT_LIMITS, PlatformLimits
from scheduler.relay import OutboxRelay
from storage import tables
from storage.repository import Store

# How much later than the relay's rate slot a send may reach the fake and still count as on time. The bench
# uses 0.1 s; the test machine (2 cores shared with other suites) sometimes stalls a process for longer.
JITTER = 0.25


def enforce(fake: FakeTelegram, rule: PlatformLimits = DEFAULT_LIMITS["telegram"]) -> None:
    """The fake answers 429 (and records a violation) to sends faster than ``rule`` allows."""
    fake.enforce_limits(
        private=notify_bench.window(rule.private), group=notify_bench.window(rule.group), bot=notify_bench.window(rule.bot), jitter=JITTER,
    )


def payload(text: str) -> dict:
    return {"text": {"key": "=", "params": {"text": text}}, "buttons": [], "language": "en"}


async def queue(sessions, *messages: tuple[str, str, str]) -> None:
    """(bot, chat_id, text) rows for Telegram, committed in this order."""
    now = SystemClock().now()
    async with sessions() as session, session.begin():
        for bot, chat_id, text in messages:
            await Store(session).outbox_add(platform="telegram", bot=bot, chat_id=chat_id, payload=payload(text), dedup_key=f"t:{text}", now=now)


async def outbox(sessions, chat_id: str | None = None) -> list[dict]:
    statement = select(tables.outbox).order_by(tables.outbox.c.id)
    if chat_id is not None:
        statement = statement.where(tables.outbox.c.chat_id == chat_id)
    async with sessions() as session:
        return [dict(r) for r in (await session.execute(statement)).mappings()]


async def drain(relay: OutboxRelay) -> int:
    total = 0
    while attempted := await relay.drain_once():
        total += attempted
    return total


def texts(fake: FakeTelegram, chat_id: str) -> list[str]:
    return [s["text"] for s in fake.sent(chat_id=chat_id)]


def text_of(row: dict) -> str:
    return row["payload"]["text"]["params"]["text"]


async def until(condition, timeout: float, what) -> None:
    """Wait for ``await condition()``; fail with ``what`` (a text, or a function making one) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, what() if callable(what) else what
        await asyncio.sleep(0.05)
