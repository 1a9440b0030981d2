"""Wakes relays in other processes at once when a web process that sends nothing itself wrote outbox rows (PostgreSQL
LISTEN/NOTIFY); without it those replies wait for the relays' next look, up to their interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.logthrottle import LogThrottle

log = logging.getLogger(__name__)

CHANNEL = "fieldchat_outbox"
RECONNECT_SECONDS = 5.0


def can_wake(engine: AsyncEngine) -> bool:
    """Only PostgreSQL carries notifications between processes (several relays on SQLite are not a deployment)."""
    return engine.dialect.name == "postgresql"


class OutboxNotifier:
    """The bus's ``on_outbox`` in a process without a relay: after a commit that wrote outbox rows, one NOTIFY tells
    every listening relay. Calls that come while one is on its way are folded into one more after it, so a row
    committed meanwhile is never left for the relays' next look."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._task: asyncio.Task | None = None
        self._again = False
        self._warnings = LogThrottle(log)

    def __call__(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._again = False
        self._task = asyncio.get_running_loop().create_task(self._notify(), name="outbox notify")

    async def _notify(self) -> None:
        while True:
            try:
                async with self._engine.connect() as connection:
                    await connection.execute(text(f"NOTIFY {CHANNEL}"))
                    await connection.commit()
            except Exception as exc:  # the relays still look on their own, only later
                self._warnings.warning("notify", "outbox: waking the relays failed (%s: %s)", type(exc).__name__, exc)
                return
            self._warnings.recovered("notify", "outbox: waking the relays works again")
            if not self._again:
                return
            self._again = False

    async def settle(self) -> None:
        """Wait for the notification on its way, if any (shutdown, tests)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def listen(engine: AsyncEngine, wake: Callable[[], None], stop: asyncio.Event, *, ready: asyncio.Event | None = None) -> None:
    """Call ``wake`` on every notification until ``stop``; a lost connection is opened again a few seconds later
    (meanwhile the relay looks on its own, at its interval). ``ready`` is set each time the listener is in place."""
    warnings = LogThrottle(log)

    def notified(*_: object) -> None:
        wake()

    while not stop.is_set():
        lost = asyncio.Event()
        connection = None
        try:
            connection = await engine.connect()
            raw = (await connection.get_raw_connection()).driver_connection
            await raw.add_listener(CHANNEL, notified)
            raw.add_termination_listener(lambda *_: lost.set())
            warnings.recovered("listen", "outbox: listening for new rows again")
            if ready is not None:
                ready.set()
            wake()  # rows written while nobody listened
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if lost.is_set():
                raise ConnectionError("the database closed the connection")
            await raw.remove_listener(CHANNEL, notified)
            await connection.close()
        except Exception as exc:
            warnings.warning("listen", "outbox: listening for new rows failed (%s: %s); looking at the interval meanwhile", type(exc).__name__, exc)
            if connection is not None:
                # a dead connection must not go back to the pool (nothing pings it there)
                with suppress(Exception):
                    await connection.invalidate()
                with suppress(Exception):
                    await connection.close()
        if not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), RECONNECT_SECONDS)
            except TimeoutError:
                pass
