"""Timed sweeps over rows with a due time: restart-safe, and harmless when they run twice."""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy.ext.asyncio import async_sessionmaker

from conversations.engine import Engine
from domain.clock import Clock
from domain.errors import DomainError
from services.handlers import expire_offers
from services.timers import fire
from storage.repository import Store
from storage.schedule import ScheduleStore

log = logging.getLogger(__name__)


async def expire_grab_offers(engine: Engine, sessions: async_sessionmaker, clock: Clock) -> int:
    """Close grab offers nobody took in time and dispatch those visits automatically."""
    async with sessions() as session:
        visit_ids = await Store(session).expired_offer_visits(clock.now())
    for visit_id in visit_ids:
        try:
            await engine.apply(f"sweep:grab:{visit_id}:{uuid.uuid4().hex}", lambda ctx, v=visit_id: expire_offers(ctx, v))
        except DomainError as err:
            log.warning("expiring grab offers of visit %s: %s", visit_id, err.code)
    return len(visit_ids)


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
            await expire_grab_offers(engine, sessions, clock)
            await fire_due_timers(engine, sessions, clock)
        except Exception:
            log.exception("sweep failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
