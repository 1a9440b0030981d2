"""The timer sweep: fires rows whose time has come; restart-safe, and harmless when it runs twice."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Awaitable, Callable

from sqlalchemy.ext.asyncio import async_sessionmaker

from domain.clock import Clock
from domain.errors import DomainError
from scheduler.logthrottle import LogThrottle
from scheduler.order_polling import POLL_KIND
from scheduler.daily_report import KIND as DAILY_REPORT_KIND
from services.bus import MessageBus
from services.replanning import KINDS as REPLAN_KINDS, Replanner
from services.timers import fire
from storage.repository import Store
from storage.schedule import ScheduleStore

log = logging.getLogger(__name__)


async def fire_due_timers(bus: MessageBus, sessions: async_sessionmaker, clock: Clock, replanner: Replanner | None = None) -> int:
    """Fire every timer that is due; each in its own transaction, so one bad timer stops no other.
    Replans solve outside any transaction, so the replanner fires those; last, so that a replan queued by
    a timer just fired (an overrun) runs in this sweep."""
    async with sessions() as session:
        # order polls fetch over HTTP outside any transaction: their own loop fires them (scheduler/order_polling.py);
        # the daily report draws its chart outside one too (scheduler/daily_report.py)
        timer_ids = await ScheduleStore(Store(session)).due_timer_ids(clock.now(), exclude_kinds=(*REPLAN_KINDS, POLL_KIND, DAILY_REPORT_KIND))
    for timer_id in timer_ids:
        try:
            await bus.run(f"timer:{timer_id}", lambda ctx, t=timer_id: fire(ctx, t))
        except DomainError as err:
            log.warning("timer %s: %s", timer_id, err.code)
        except Exception:  # a bug in one timer must not hold up the others, nor the replans after them
            log.exception("timer %s failed; it fires again at the next sweep", timer_id)
    replanned = await replanner.run_due() if replanner is not None else 0
    return len(timer_ids) + replanned


# Telegram keeps an undelivered update for at most 24 hours (Bot API, getUpdates), but after a week without
# updates its ids restart at
# random (T4): forgetting processed updates after two days keeps a new update from matching an old one.
INBOX_RETENTION = timedelta(days=2)


async def forget_old_updates(sessions: async_sessionmaker, clock: Clock) -> int:
    """Drop processed inbox rows older than the retention; returns how many went."""
    async with sessions() as session, session.begin():
        return await Store(session).inbox_forget_processed(clock.now() - INBOX_RETENTION)


async def run_every(interval: float, stop: asyncio.Event, action: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``action`` now and then every ``interval`` seconds until ``stop``; a failure is logged, not fatal.

    While it keeps failing (the database is down) the failure is logged once a minute, with a count of the rest.
    """
    failures = LogThrottle(log)
    while not stop.is_set():
        try:
            await action()
        except Exception:
            failures.exception(name, "%s failed", name)
        else:
            failures.recovered(name, "%s works again", name)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
