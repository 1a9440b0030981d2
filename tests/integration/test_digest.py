"""Alerts that queue behind a busy group channel go out through the relay as one numbered digest when it frees up."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from bots.robots import RobotSender, RobotSink
from bots.telegram import TelegramBot, TelegramChannel
from domain.clock import ManualClock, SystemClock
from scheduler.ratelimit import PlatformLimits, SendLimiter
from scheduler.relay import OutboxRelay
from storage.repository import Store
from fieldchat.fakes.robot_servers import FakeRobots
from tests.support.relay import drain, enforce, outbox
from tests.support.telegram import STAFF

GROUP = "-6001"


def alert(text: str, *, alert: bool = True, language: str = "en") -> dict:
    return {
        "text": {"key": "=", "params": {"text": text}},
        "buttons": [[{"label": {"key": "btn.reassign", "params": {}}, "data": f"ra:{text}"}]],
        "language": language,
        "alert": alert,
    }


async def queue(sessions, platform: str, chat_id: str, payloads: list[dict], now: datetime) -> None:
    async with sessions() as session, session.begin():
        for n, payload in enumerate(payloads):
            await Store(session).outbox_add(platform=platform, bot="staff", chat_id=chat_id, payload=payload, dedup_key=f"d:{chat_id}:{n}", now=now)


@pytest.fixture
async def telegram(fake_telegram, tmp_path):
    bot = TelegramBot("staff", STAFF, fake_telegram.base_url, None, tmp_path)
    yield fake_telegram, TelegramChannel({"staff": bot})
    await bot.bot.session.close()


@pytest.mark.slow  # real rate windows: it waits for them to pass
async def test_alerts_held_by_a_busy_telegram_group_arrive_as_digests_in_order(db, telegram):
    fake, sender = telegram
    rule = PlatformLimits(private="1/second", group="2 per 2 seconds", bot="30/second")
    enforce(fake, rule)
    payloads = [alert("g0"), alert("g1"), alert("g2"), alert("g3"), alert("note", alert=False), alert("g4"), alert("g5", language="zh")]
    await queue(db, "telegram", GROUP, payloads, SystemClock().now())
    relay = OutboxRelay(sessions=db, senders={"telegram": sender}, clock=SystemClock(), tz=timezone.utc,
                        limiter=SendLimiter({"telegram": rule}), max_wait=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop, interval=0.05))
    started = time.monotonic()
    while any(r["status"] == "pending" for r in await outbox(db)) and time.monotonic() - started < 20:
        await asyncio.sleep(0.05)
    stop.set()
    await running

    sent = fake.sent(chat_id=GROUP)
    assert [s["text"] for s in sent] == [
        "g0",
        "g1",
        "🗂 2 alerts queued while this chat was at its message limit:\n\n#1 g2\n\n#2 g3",
        "note",  # not an alert: it ends the run, and keeps its place
        "🗂 2 alerts queued while this chat was at its message limit:\n\n#1 g4\n\n#2 g5",
    ]
    labels = [[b["text"] for row in s["reply_markup"]["inline_keyboard"] for b in row] for s in sent]
    assert labels[2] == ["#1 🔁 Reassign", "#2 🔁 Reassign"] and labels[4] == ["#1 🔁 Reassign", "#2 🔁 改派"]
    data = [b["callback_data"] for row in sent[4]["reply_markup"]["inline_keyboard"] for b in row]
    assert data == ["ra:g4", "ra:g5"]  # the buttons still act on their own alert
    assert fake.violations == []
    rows = {r["payload"]["text"]["params"]["text"]: r for r in await outbox(db)}
    assert all(r["status"] == "sent" for r in rows.values())
    assert rows["g3"]["digest_of"] == rows["g2"]["id"] and rows["g5"]["digest_of"] == rows["g4"]["id"]
    assert rows["g2"]["held_since"] is not None and rows["g0"]["held_since"] is None
    assert rows["g3"]["platform_message_id"] == rows["g2"]["platform_message_id"]


async def test_a_throttled_robot_sends_what_queued_as_one_digest_when_its_window_frees(db):
    clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    async with FakeRobots(clock=lambda: clock.now().timestamp()) as robots, httpx.AsyncClient(timeout=2.0) as http:
        robots.add("wecom", "key-d")
        sink = RobotSink(kind="wecom", name="ops", url=FakeRobots.production_url("wecom", "key-d"), base_url=robots.base_url, limits=((1, 60.0),))
        relay = OutboxRelay(sessions=db, senders={"robot": RobotSender({"ops": sink}, http, clock)}, clock=clock, tz=timezone.utc)
        await queue(db, "robot", "ops", [alert(f"r{n}", language="zh") for n in range(4)], clock.now())
        await drain(relay)
        assert [m["text"]["content"] for m in robots.messages("wecom", "key-d")] == ["r0\n[🔁 改派]"]
        held = [r for r in await outbox(db) if r["status"] == "pending"]
        assert len(held) == 3 and held[0]["held_since"] == clock.now() and held[0]["attempts"] == 0
        clock.advance(timedelta(seconds=61))
        await drain(relay)
        texts = [m["text"]["content"] for m in robots.messages("wecom", "key-d")]
        assert texts[1:] == ["🗂 本群消息达到发送上限期间累积了 3 条提醒:\n\n#1 r1\n\n#2 r2\n\n#3 r3\n[#1 🔁 改派] [#2 🔁 改派] [#3 🔁 改派]"]
        assert all(r["status"] == "sent" for r in await outbox(db))


async def test_alerts_behind_one_the_platform_answered_429_go_out_together(db, telegram):
    fake, sender = telegram
    clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    fake.fail_next("sendMessage", status=429, retry_after=2)
    await queue(db, "telegram", GROUP, [alert(f"p{n}") for n in range(3)], clock.now())
    relay = OutboxRelay(sessions=db, senders={"telegram": sender}, clock=clock, tz=timezone.utc, limiter=SendLimiter({}))
    await drain(relay)
    assert fake.sent(chat_id=GROUP) == []
    clock.advance(timedelta(seconds=3))
    await drain(relay)
    assert [s["text"] for s in fake.sent(chat_id=GROUP)] == [
        "🗂 3 alerts queued while this chat was at its message limit:\n\n#1 p0\n\n#2 p1\n\n#3 p2"
    ]
    rows = await outbox(db)
    assert [r["status"] for r in rows] == ["sent"] * 3 and rows[0]["attempts"] == 2
