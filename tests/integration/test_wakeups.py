"""Relays in other processes are woken at once by new outbox rows (PostgreSQL LISTEN/NOTIFY), not at their next look."""

from __future__ import annotations

import asyncio
from contextlib import suppress

import pytest
from sqlalchemy import text

from scheduler.wakeups import OutboxNotifier, listen
from storage.db import create_engine, session_factory
from tests.support.relay import queue, texts

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


class Wakes:
    """Counts the wake-ups a listener passes on, and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self.changed.set()

    async def reach(self, count: int) -> None:
        while self.count < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


@pytest.fixture
async def engines(postgres_url):
    """Two engines on one database, as a web process and a relay process each have their own."""
    web, relay = create_engine(postgres_url), create_engine(postgres_url)
    yield web, relay
    await web.dispose()
    await relay.dispose()


async def listening(engine, wake, stop: asyncio.Event) -> tuple[asyncio.Task, asyncio.Event]:
    ready = asyncio.Event()
    task = asyncio.create_task(listen(engine, wake, stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    return task, ready


async def test_a_notification_after_a_commit_wakes_the_listening_relay_and_calls_meanwhile_are_folded_into_one_more(engines):
    web, relay = engines
    wakes, stop = Wakes(), asyncio.Event()
    task, _ = await listening(relay, wakes, stop)
    try:
        await wakes.reach(1)  # on listening: rows written while nobody listened
        notifier = OutboxNotifier(web)
        notifier()
        await wakes.reach(2)
        await notifier.settle()
        # three commits while one notification is on its way: one more follows it, none is lost, not three more
        notifier()
        notifier()
        notifier()
        await notifier.settle()
        await wakes.reach(4)
        assert wakes.count == 4
    finally:
        stop.set()
        await task


async def test_a_listener_whose_connection_is_cut_listens_again(engines, monkeypatch):
    web, relay = engines
    monkeypatch.setattr("scheduler.wakeups.RECONNECT_SECONDS", 0.1)
    wakes, stop = Wakes(), asyncio.Event()
    task, ready = await listening(relay, wakes, stop)
    try:
        ready.clear()
        async with web.connect() as connection:
            await connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            ))
        await asyncio.wait_for(ready.wait(), 10)
        before = wakes.count
        notifier = OutboxNotifier(web)
        notifier()
        await notifier.settle()
        await wakes.reach(before + 1)
    finally:
        stop.set()
        await task


async def test_a_relay_that_looks_only_once_an_hour_sends_a_new_row_at_once_when_told(engines, fake_telegram, relays):
    from fieldchat.container import relay_loop

    web, relay_engine = engines
    relay = relays(session_factory(relay_engine))
    stop = asyncio.Event()
    listening = asyncio.Event()
    running = asyncio.create_task(relay_loop(relay, relay_engine, stop, interval=3600, listening=listening))
    try:
        await asyncio.wait_for(listening.wait(), 10)
        await queue(session_factory(web), ("customer", "680", "right away"))
        notifier = OutboxNotifier(web)
        notifier()
        await fake_telegram.wait_for_sent("right away", timeout=10)
        assert texts(fake_telegram, "680") == ["right away"]
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await running
