"""Relay processes: one killed with -9 mid-send loses nothing and repeats at most its in-flight rows; one started later on the
same machine takes over at once from a relay process that is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path


from domain.clock import SystemClock
from scheduler.relay import PULLED_PLATFORMS, new_relay_id, relay_gone
from storage.db import create_engine, session_factory
from storage.repository import Store
from tests.support import ROOT
from tests.support.relay import enforce, outbox, queue, text_of, texts, until
from tests.support.telegram import CUSTOMER, STAFF
from fieldchat.fakes.telegram_server import FakeTelegram

async def start_relay_process(database_url: str, fake_telegram: FakeTelegram, redis_url: str, prefix: str, log: Path):
    env = {
        **os.environ,
        "FIELDCHAT_DATABASE_URL": database_url,
        "FIELDCHAT_TELEGRAM_CUSTOMER_TOKEN": CUSTOMER,
        "FIELDCHAT_TELEGRAM_STAFF_TOKEN": STAFF,
        "FIELDCHAT_TELEGRAM_API_URL": fake_telegram.base_url,
        "FIELDCHAT_REDIS_URL": redis_url,
        "FIELDCHAT_LOG_LEVEL": "WARNING",
    }
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "fieldchat"), "relay", "--lease", "2", "--interval", "0.05", "--limits-prefix", prefix,
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )


async def test_a_relay_killed_mid_send_loses_nothing_and_repeats_at_most_its_in_flight_rows(postgres_url, redis_url, fake_telegram, tmp_path):
    enforce(fake_telegram)
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    prefix = f"test-kill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "relay.log"
    chats = [("customer" if n % 2 else "staff", str(3000 + n)) for n in range(60)]
    await queue(sessions, *[(bot, chat, f"k{round_}-{chat}") for round_ in range(5) for bot, chat in chats])
    try:
        first = await start_relay_process(postgres_url, fake_telegram, redis_url, prefix, log)

        async def some_sent() -> bool:
            return len(fake_telegram.sent()) >= 100

        await until(some_sent, 30, f"the relay sent nothing: {log.read_text()}")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        in_flight = [r for r in await outbox(sessions) if r["status"] == "pending" and r["claimed_by"]]
        assert len(fake_telegram.sent()) < 300, "the relay finished before it was killed"

        second = await start_relay_process(postgres_url, fake_telegram, redis_url, prefix, log)

        async def all_done() -> bool:
            return all(r["status"] == "sent" for r in await outbox(sessions))

        try:
            await until(all_done, 60, f"not everything was sent after the restart: {log.read_text()}")
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
        final = await outbox(sessions)
    finally:
        await engine.dispose()

    counts = Counter(s["text"] for s in fake_telegram.sent())
    assert set(counts) == {f"k{round_}-{chat}" for round_ in range(5) for _, chat in chats}
    repeated = {text for text, n in counts.items() if n > 1}
    # only a row the killed relay had started to send and not yet recorded can go out twice, and each such row is counted
    started = {text_of(r) for r in in_flight if r["sending_since"]}
    assert repeated <= started
    assert {text_of(r) for r in final if r["maybe_sent"]} == started
    assert sum(counts.values()) - len(counts) <= len(started)
    for _, chat in chats:
        firsts = list(dict.fromkeys(texts(fake_telegram, chat)))
        assert firsts == [f"k{round_}-{chat}" for round_ in range(5)]
    assert fake_telegram.violations == []


async def test_a_relay_started_on_the_same_machine_takes_over_at_once_from_one_that_is_gone(db, fake_telegram, relays):
    # a relay id made by another process on this machine, which has exited since
    finished = subprocess.run(
        [sys.executable, "-c", "from scheduler.relay import new_relay_id; print(new_relay_id())"], cwd=ROOT, capture_output=True, text=True, check=True,
    )
    gone_id = finished.stdout.strip()
    assert relay_gone(gone_id)
    assert not relay_gone(new_relay_id())  # this process
    assert not relay_gone(gone_id.replace(gone_id.split(":")[1], str(os.getppid()), 1))  # a live process
    assert not relay_gone("elsewhere:4242:0123456789:abcdef01") and not relay_gone("x")  # another machine, or a plain name
    await queue(db, ("customer", "660", "a"), ("customer", "661", "b"))
    now = SystemClock().now()
    async with db() as session, session.begin():
        store = Store(session)
        [first, _] = await store.outbox_claim(gone_id, now, now + timedelta(seconds=90), 10, PULLED_PLATFORMS)
        assert await store.outbox_sending(first["id"], gone_id, now, now + timedelta(seconds=90))
    relay = relays(db)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop, interval=0.05))

    async def both_sent() -> bool:
        return sorted(s["text"] for s in fake_telegram.sent()) == ["a", "b"]

    try:
        await until(both_sent, 10, "the claims of the relay that is gone were not taken back")
    finally:
        stop.set()
        await running
    assert [(text_of(r), r["maybe_sent"]) for r in await outbox(db)] == [("a", 1), ("b", 0)]
