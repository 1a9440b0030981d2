"""The outbox relay against a rate-enforcing fake Telegram: claims, leases, limits, storms, blocked and moved chats, a relay
that dies in process, and Redis down. Relay processes killed with -9: e2e/test_relay_processes.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from contextlib import suppress
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from bots.telegram import TelegramChannel
from domain.clock import ManualClock, SystemClock
from fieldchat import notify_bench
from scheduler.ratelimit import PlatformLimits, SendLimiter
from scheduler.relay import PULLED_PLATFORMS
from storage import tables
from storage.db import create_engine, session_factory
from storage.repository import Store
from tests.support import free_port
from tests.support.relay import JITTER, drain, enforce, outbox, queue, text_of, texts, until
from tests.support.telegram import CUSTOMER

# --- claims and leases ----------------------------------------------------------------------------


async def test_claims_keep_each_chats_order_across_relays_and_a_dead_relays_lease_runs_out(db):
    await queue(db, ("customer", "1", "a1"), ("customer", "1", "a2"), ("customer", "2", "b1"))
    now = SystemClock().now()
    lease = timedelta(seconds=90)

    async def claim(relay_id: str, at: datetime, chat=None) -> list[str]:
        async with db() as session, session.begin():
            rows = await Store(session).outbox_claim(relay_id, at, at + lease, 10, PULLED_PLATFORMS, chat)
        return [r["payload"]["text"]["params"]["text"] for r in rows]

    assert await claim("x", now) == ["a1", "b1"]  # a2 waits behind a1
    assert await claim("y", now) == []  # claimed rows are taken, and a2 still waits behind a claimed a1
    later = now + lease + timedelta(seconds=1)
    assert await claim("y", later) == ["a1", "b1"]  # x died: its lease ran out
    first = (await outbox(db, "1"))[0]
    async with db() as session, session.begin():
        # x wakes up late: its outcome no longer counts unless it is a delivery
        assert not await Store(session).outbox_finish(first["id"], "x", status="failed")
        assert await Store(session).outbox_finish(first["id"], "y", status="sent", sent_at=later)
    assert await claim("y", later, ("telegram", "customer", "1")) == ["a2"]


@pytest.mark.slow  # PostgreSQL only: SQLite has one writer, so claims cannot race there
async def test_concurrent_claims_on_postgres_never_hand_out_a_row_twice(postgres_url):
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    try:
        await queue(sessions, *[("customer", str(n), f"m{n}") for n in range(300)])
        now = SystemClock().now()

        async def claimer(n: int) -> list[int]:
            got = []
            while True:
                async with sessions() as session, session.begin():
                    rows = await Store(session).outbox_claim(f"r{n}", now, now + timedelta(seconds=60), 7, PULLED_PLATFORMS)
                if not rows:
                    return got
                got += [r["id"] for r in rows]

        claimed = [row for rows in await asyncio.gather(*(claimer(n) for n in range(12))) for row in rows]
        assert len(claimed) == 300 and len(set(claimed)) == 300
    finally:
        await engine.dispose()


# --- rates ----------------------------------------------------------------------------------------


@pytest.mark.slow  # the notify bench scaled down: real rate windows and retry_after waits
async def test_a_429_storm_delivers_everything_once_in_order_within_the_limits(sqlite_url):
    # the full storm is 5000 notifications to 1000 chats (a few minutes); the suite runs it scaled down
    notifications = int(os.environ.get("FIELDCHAT_STORM_NOTIFICATIONS", 600))
    chats = int(os.environ.get("FIELDCHAT_STORM_CHATS", 110))
    lines: list[str] = []
    report = await notify_bench.run(
        notifications=notifications, chats=chats, groups=chats // 11, database_url=sqlite_url,
        fail_rate=0.1, retry_after=3, jitter=JITTER, out=lines.append,
    )
    assert report["platform_429"] > notifications // 20, lines  # the storm did happen
    assert (report["lost"], report["duplicates"], report["out_of_order"], report["violations"]) == (0, 0, 0, 0), lines
    assert report["statuses"] == {"sent": notifications}


@pytest.mark.slow  # two relays racing on PostgreSQL with shared Redis windows, in real time
async def test_two_relays_on_postgres_share_the_work_and_the_rates_and_never_double_send(postgres_url, redis_url):
    lines: list[str] = []
    report = await notify_bench.run(
        notifications=400, chats=80, groups=8, database_url=postgres_url, redis_url=redis_url, relays=2, jitter=JITTER, out=lines.append,
        batch=30,  # fewer chats at once than there are, so both relays get some: a relay keeps a chat until it is empty
    )
    assert (report["lost"], report["duplicates"], report["out_of_order"], report["violations"]) == (0, 0, 0, 0), lines
    assert all(count > 0 for count in report["relays_sent"]) and sum(report["relays_sent"]) == 400, report["relays_sent"]


@pytest.mark.slow  # waits for real rate windows to pass
async def test_a_busy_group_waits_for_its_rate_without_spending_attempts(sqlite_url, fake_telegram, relays):
    rule = PlatformLimits(private="1/second", group="4 per 2 seconds", bot="30/second")
    enforce(fake_telegram, rule)
    engine = create_engine(sqlite_url)
    sessions = session_factory(engine)
    try:
        await queue(sessions, *[("staff", "-5001", f"g{n}") for n in range(10)])
        # a short in-process wait: the group's turns come back through the table
        relay = relays(sessions, limiter=SendLimiter({"telegram": rule}), max_wait=0.2)
        stop = asyncio.Event()
        started = time.monotonic()
        running = asyncio.create_task(relay.run(stop, interval=0.05))
        while len(fake_telegram.sent()) < 10 and time.monotonic() - started < 15:
            await asyncio.sleep(0.05)
        stop.set()
        await running
        assert texts(fake_telegram, "-5001") == [f"g{n}" for n in range(10)]
        sent_at = [s["at"] for s in fake_telegram.sent()]
        assert sent_at[8] - sent_at[0] >= 4 - 0.1  # 4, 4 and 2: the third four-some starts after two windows
        assert fake_telegram.violations == []
        assert [r["attempts"] for r in await outbox(sessions)] == [1] * 10
    finally:
        await engine.dispose()


# --- permanent errors, blocked and moved chats ----------------------------------------------------


async def bind(sessions, bot: str, chat_id: str, kind: str = "customer") -> None:
    now = SystemClock().now()
    async with sessions() as session, session.begin():
        await session.execute(insert(tables.chat_bindings).values(
            platform="telegram", bot=bot, chat_id=chat_id, subject_kind=kind, subject_id=1, language="en",
        ))
        await session.execute(insert(tables.conversations).values(
            platform="telegram", bot=bot, chat_id=chat_id, flow=kind, state="idle", data={}, language="en", version=0, updated_at=now,
        ))


async def binding(sessions, chat_id: str) -> dict | None:
    async with sessions() as session:
        row = (await session.execute(select(tables.chat_bindings).where(tables.chat_bindings.c.chat_id == chat_id))).mappings().first()
    return dict(row) if row else None


async def test_a_blocked_chat_fails_once_per_row_is_marked_and_reported_once(db, fake_telegram, relays):
    enforce(fake_telegram)
    await bind(db, "customer", "501")
    told = []

    async def on_undeliverable(platform, bot, chat_id, reason):
        told.append((platform, bot, chat_id, reason))

    relay = relays(db, on_undeliverable=on_undeliverable)
    fake_telegram.block_chat(501)
    await queue(db, ("customer", "501", "one"), ("customer", "501", "two"))
    assert await drain(relay) == 2
    rows = await outbox(db, "501")
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1)] * 2
    assert (await binding(db, "501"))["undeliverable_since"] is not None
    assert told == [("telegram", "customer", "501", "TelegramForbiddenError: Forbidden: bot was blocked by the user")]
    assert await drain(relay) == 0

    # the user unblocks the bot: the next message gets through and the mark goes
    fake_telegram.unblock_chat(501)
    await queue(db, ("customer", "501", "three"))
    assert await drain(relay) == 1
    assert texts(fake_telegram, "501") == ["three"]
    assert (await binding(db, "501"))["undeliverable_since"] is None
    assert fake_telegram.violations == []


async def test_a_bad_request_fails_without_retries_and_leaves_the_chat_deliverable(db, fake_telegram, relays):
    await bind(db, "customer", "502")
    relay = relays(db)
    fake_telegram.fail_next("sendMessage", 400, token=CUSTOMER)
    await queue(db, ("customer", "502", "bad"), ("customer", "502", "good"))
    assert await drain(relay) == 2
    assert [(r["status"], r["attempts"]) for r in await outbox(db, "502")] == [("failed", 1), ("sent", 1)]
    assert texts(fake_telegram, "502") == ["good"]
    assert (await binding(db, "502"))["undeliverable_since"] is None


async def test_a_chat_that_no_longer_exists_is_marked_and_reported_like_a_blocked_one(db, fake_telegram, relays):
    """A 400 "chat not found" (the group was deleted, the user never started the bot) is as final as a block: the
    dispatchers hear of it instead of the message failing unseen."""
    await bind(db, "customer", "503")
    told = []
    relay = relays(db, on_undeliverable=lambda *args: told.append(args))
    fake_telegram.fail_next("sendMessage", 400, description="Bad Request: chat not found", token=CUSTOMER)
    await queue(db, ("customer", "503", "lost"))
    assert await drain(relay) == 1
    assert [(r["status"], r["attempts"]) for r in await outbox(db, "503")] == [("failed", 1)]
    assert (await binding(db, "503"))["undeliverable_since"] is not None
    assert told == [("telegram", "customer", "503", "TelegramBadRequest: Bad Request: chat not found")]


async def test_a_group_that_became_a_supergroup_is_followed_with_its_pending_rows(db, fake_telegram, relays):
    enforce(fake_telegram)
    await bind(db, "staff", "-4001", kind="group")
    fake_telegram.migrate_chat(-4001, -1004001)
    await queue(db, ("staff", "-4001", "m1"), ("staff", "-4001", "m2"), ("staff", "-4001", "m3"))
    assert await drain(relays(db)) == 4  # the first try learns the new id, then all three go there
    assert texts(fake_telegram, "-1004001") == ["m1", "m2", "m3"] and texts(fake_telegram, "-4001") == []
    assert {(r["chat_id"], r["status"]) for r in await outbox(db)} == {("-1004001", "sent")}
    assert (await binding(db, "-1004001"))["subject_kind"] == "group"
    async with db() as session:
        conversation = (await session.execute(select(tables.conversations.c.chat_id))).scalar_one()
    assert conversation == "-1004001"
    assert fake_telegram.violations == []


# --- a relay that dies in process: started sends are counted, waiting rows are not ---------------


class DiesAfterSending:
    """Sends for real, then never comes back: the relay dies between the send and recording it."""

    def __init__(self, inner: TelegramChannel) -> None:
        self.inner = inner

    async def send(self, bot: str, chat_id: str, message) -> str | None:
        await self.inner.send(bot, chat_id, message)
        await asyncio.Event().wait()


async def test_a_relay_that_dies_mid_send_counts_what_it_had_started_and_nothing_it_had_only_claimed(db, fake_telegram, relays, caplog):
    # the bot may send 2 per 30 s: two chats get their slots and send, four wait in the process for the bot's window
    rule = PlatformLimits(private="1/second", bot="2 per 30 seconds")
    chats = [str(600 + n) for n in range(6)]
    await queue(db, *[("customer", chat, f"d-{chat}") for chat in chats])
    dying = relays(db, limiter=SendLimiter({"telegram": rule}), max_wait=60, wrap=DiesAfterSending)
    draining = asyncio.create_task(dying.drain_once())

    async def two_sent() -> bool:
        return len(fake_telegram.sent()) == 2

    await until(two_sent, 10, "the relay sent nothing")
    rows = await outbox(db)
    assert [r["claimed_by"] for r in rows] == [dying.relay_id] * 6
    went_out = {s["text"] for s in fake_telegram.sent()}
    assert {text_of(r) for r in rows if r["sending_since"]} == went_out  # started: exactly the two sends in flight
    draining.cancel()  # the process dies: nothing more happens in it
    with suppress(asyncio.CancelledError):
        await draining

    # another relay takes over once the leases have run out (its clock is past them)
    later = ManualClock(SystemClock().now() + timedelta(seconds=dying.lease + 1))
    caplog.set_level(logging.INFO, logger="scheduler.relay")
    assert await drain(relays(db, clock=later)) == 6
    assert Counter(s["text"] for s in fake_telegram.sent()) == {f"d-{chat}": 2 if f"d-{chat}" in went_out else 1 for chat in chats}
    rows = await outbox(db)
    assert {text_of(r): (r["status"], r["maybe_sent"], r["sending_since"]) for r in rows} == {
        f"d-{chat}": ("sent", 1 if f"d-{chat}" in went_out else 0, None) for chat in chats
    }
    async with db() as session:
        assert await Store(session).outbox_counts() == {"sent": 6, "maybe_sent": 2}
    reports = [r.getMessage() for r in caplog.records if "may arrive twice" in r.getMessage()]
    assert len(reports) == 1 and reports[0].startswith("outbox relay: 2 messages were being sent"), reports


async def test_a_relay_that_lost_its_claim_before_starting_does_not_send(db, fake_telegram, relays):
    await queue(db, ("customer", "650", "only-once"))
    start = SystemClock().now()
    slow = relays(db, clock=ManualClock(start), lease=5)
    [row] = await slow._claim(10)
    # the first relay stalls past its lease; a second one takes the row over and sends it
    assert await drain(relays(db, clock=ManualClock(start + timedelta(seconds=6)))) == 1
    # the first one wakes up: its start cannot be recorded, so it sends nothing
    assert await slow._chain(row) == 1
    assert texts(fake_telegram, "650") == ["only-once"]
    assert [(r["status"], r["maybe_sent"]) for r in await outbox(db)] == [("sent", 0)]


class Held:
    """Stops at a gate before or after sending, as a relay on a starved machine stalls in either place."""

    def __init__(self, inner: TelegramChannel, *, before: bool) -> None:
        self.inner, self.before = inner, before
        self.gate, self.reached = asyncio.Event(), asyncio.Event()

    async def send(self, bot: str, chat_id: str, message) -> str | None:
        if self.before:
            self.reached.set()
            await self.gate.wait()
        sent = await self.inner.send(bot, chat_id, message)
        if not self.before:
            self.reached.set()
            await self.gate.wait()
        return sent


async def test_a_relay_that_sent_past_its_lease_leaves_the_row_to_the_relay_that_took_it_over(db, fake_telegram, relays):
    """A send outlives its lease; another relay takes the row over (counting it as maybe sent) and is about to send it
    again when the first comes back. The first must not record over the second: recording its send and moving on to the
    chat's next row would let that row overtake the second relay's copy, and clear the second relay's note that a send
    started (a crash then would leave a delivery that nobody counted)."""
    await queue(db, ("customer", "660", "first"), ("customer", "660", "second"))
    start = SystemClock().now()
    slow = relays(db, clock=ManualClock(start), lease=5, wrap=lambda inner: Held(inner, before=False))
    [row] = await slow._claim(10)
    first_try = asyncio.create_task(slow._chain(row))
    await asyncio.wait_for(slow.senders["telegram"].reached.wait(), 10)  # delivered; the answer is late
    taker = relays(db, clock=ManualClock(start + timedelta(seconds=6)), wrap=lambda inner: Held(inner, before=True))
    [taken] = await taker._claim(10)
    assert taken["id"] == row["id"] and taken["maybe_sent"] == 1
    second_try = asyncio.create_task(taker._chain(taken))
    await asyncio.wait_for(taker.senders["telegram"].reached.wait(), 10)  # its start is recorded; not sent yet
    slow.senders["telegram"].gate.set()
    assert await first_try == 1  # it recorded nothing and sent nothing more
    taker.senders["telegram"].gate.set()
    assert await second_try == 2
    assert texts(fake_telegram, "660") == ["first", "first", "second"]
    rows = await outbox(db)
    sent = [str(s["message_id"]) for s in fake_telegram.sent(chat_id="660")]
    assert [(r["status"], r["maybe_sent"], r["sending_since"], r["platform_message_id"]) for r in rows] == [
        ("sent", 1, None, sent[1]), ("sent", 0, None, sent[2]),
    ]


async def test_a_relay_whose_own_send_outlasts_its_lease_does_not_claim_that_row_again(db, fake_telegram, relays):
    await queue(db, ("customer", "670", "once"))
    clock = ManualClock(SystemClock().now())
    relay = relays(db, clock=clock, lease=5, wrap=lambda inner: Held(inner, before=False))
    sending = asyncio.create_task(relay.drain_once())
    await asyncio.wait_for(relay.senders["telegram"].reached.wait(), 10)  # delivered; the answer is late
    clock.advance(timedelta(seconds=6))  # past the lease: any other relay could take the row over now
    assert await relay._claim(10) == []  # … but not this one, whose chat is still sending it
    relay.senders["telegram"].gate.set()
    assert await sending == 1
    assert texts(fake_telegram, "670") == ["once"]
    assert [(r["status"], r["maybe_sent"], r["claimed_by"]) for r in await outbox(db)] == [("sent", 0, None)]


# --- Redis down ------------------------------------------------------------------------------------


async def test_with_redis_down_the_relay_sends_nothing_blind_loses_nothing_and_says_so_once(db, fake_telegram, relays, caplog):
    await queue(db, *[("customer", str(700 + n), f"r{n}") for n in range(5)])
    clock = ManualClock(SystemClock().now())
    relay = relays(db, limiter=SendLimiter(redis_url=f"redis://127.0.0.1:{free_port()}/0"), clock=clock)
    caplog.set_level(logging.INFO, logger="scheduler.relay")
    for _ in range(20):
        assert await relay.drain_once() == 5  # every row is tried, and held back again
        clock.advance(timedelta(seconds=2))
    assert fake_telegram.sent() == []
    assert [(r["status"], r["attempts"], r["sending_since"], r["claimed_by"]) for r in await outbox(db)] == [("pending", 0, None, None)] * 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "the rate limiter failed" in lines[0] and lines[0].endswith("holding it back"), lines  # 100 failures

    relay.limiter = SendLimiter()  # Redis is back
    assert await drain(relay) == 5
    assert sorted(s["text"] for s in fake_telegram.sent()) == [f"r{n}" for n in range(5)]
    assert caplog.records[-1].getMessage() == "outbox: the rate limiter works again (99 more failures since the last line not logged)"


async def test_a_message_carrying_a_secret_goes_out_whole_and_the_outbox_keeps_it_blanked(db, fake_telegram, relays):
    """A completion code reaches the customer; the stored row, which the API's timeline and backups see, forgets it."""
    async with db() as session, session.begin():
        await Store(session).outbox_add(
            platform="telegram", bot="customer", chat_id="690", dedup_key="t:code", now=SystemClock().now(),
            payload={"text": {"key": "=", "params": {"text": "your code: 482913"}}, "buttons": [], "language": "en", "secret": ["text"]},
        )
    await queue(db, ("customer", "690", "no secret here"))
    assert await drain(relays(db)) == 2
    assert texts(fake_telegram, "690") == ["your code: 482913", "no secret here"]
    rows = await outbox(db, "690")
    assert [r["status"] for r in rows] == ["sent", "sent"]
    assert rows[0]["payload"]["text"]["params"] == {"text": "•••"} and "482913" not in json.dumps(rows[0]["payload"])
    assert rows[1]["payload"]["text"]["params"] == {"text": "no secret here"}
