"""The timer sweep: fires rows whose time has come; restart-safe, and harmless when it runs twice."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import async_sessionmaker

from conversations.engine import Engine
from domain.clock import Clock
from domain.errors import DomainError
from services.timers import fire
from storage.repository import Store
from storage.schedule import ScheduleStore

log = logging.getLogger(__name__)


async def fire_due_timers(engine: Engine, sessions: async_sessionmaker, clock: Clock) -> int:
    """Fire every timer that is due; each in its own transaction, so one bad timer stops no other."""
    async with sessions() as session:
        timer_ids = await ScheduleStore(Store(session)).due_timer_ids(clock.now())
    for timer_id in timer_ids:
        try:
            await engine.apply(f"timer:{timer_id}", lambda ctx, t=timer_id: fire(ctx, t))
        except DomainError as err:
            log.warning("timer %s: %s", timer_id, err.code)
    return len(timer_ids)


async def run_sweeps(engine: Engine, sessions: async_sessionmaker, clock: Clock, stop: asyncio.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            await fire_due_timers(engine, sessions, clock)
        except Exception:
            log.exception("sweep failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
