"""Alerts that queue behind a busy group channel go out as one numbered digest when it frees up."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from bots.robots import RobotSender, RobotSink
from bots.channels import ROBOT_CAPABILITIES, TELEGRAM_CAPABILITIES
from bots.telegram import TelegramBot, TelegramChannel
from services.messages import Rendered
from domain.clock import ManualClock, SystemClock
from scheduler import digest
from scheduler.ratelimit import PlatformLimits, SendLimiter
from scheduler.relay import OutboxRelay
from storage.db import create_engine, session_factory
from storage.repository import Store
from fieldchat.fakes.robot_servers import FakeRobots
from fieldchat.fakes.telegram_server import FakeTelegram
from tests.test_relay import STAFF, drain, enforce, outbox

GROUP = "-6001"


def header(count: int) -> str:
    return f"{count} queued:"


# --- composing ------------------------------------------------------------------------------------


def test_a_digest_numbers_each_alert_and_its_buttons_and_keeps_their_order():
    alerts = [Rendered(f"alert {n}", [[("Reassign", f"ra:{n}"), ("Call", f"call:{n}")]]) for n in range(3)]
    message, count = digest.compose(header, alerts, TELEGRAM_CAPABILITIES)
    assert count == 3
    assert message.text == "3 queued:\n\n#1 alert 0\n\n#2 alert 1\n\n#3 alert 2"
    assert message.buttons == [
        [("#1 Reassign", "ra:0"), ("#1 Call", "call:0")],
        [("#2 Reassign", "ra:1"), ("#2 Call", "call:1")],
        [("#3 Reassign", "ra:2"), ("#3 Call", "call:2")],
    ]


def test_a_digest_stops_where_the_channel_budget_ends_and_never_cuts_an_alert():
    long_zh = "师傅上门安装空调,客户要求改期。" * 12  # ~576 bytes each
    alerts = [Rendered(f"{n} {long_zh}", [[("改派", f"ra:{n}")]]) for n in range(6)]
    message, count = digest.compose(header, alerts, ROBOT_CAPABILITIES)
    assert count == 3  # a fourth would pass WeCom's 2048-byte text limit once labels are appended
    assert len(message.text.encode()) + sum(len(label.encode()) + 3 for row in message.buttons for label, _ in row) <= 1800
    assert message.text.count(long_zh) == 3 and message.text.endswith(f"#3 2 {long_zh}")


def test_one_alert_or_one_that_cannot_share_a_message_goes_out_as_it_is():
    single = Rendered("only", [[("Call", "call:1")]])
    assert digest.compose(header, [single], TELEGRAM_CAPABILITIES) == (single, 1)
    huge = Rendered("x" * 3000)
    assert digest.compose(header, [huge, Rendered("y" * 3000)], TELEGRAM_CAPABILITIES) == (huge, 1)


def test_at_most_ten_alerts_share_a_digest():
    alerts = [Rendered(f"a{n}") for n in range(15)]
    message, count = digest.compose(header, alerts, TELEGRAM_CAPABILITIES)
    assert count == digest.MAX_ALERTS and message.text.startswith("10 queued:")


# --- through the relay ----------------------------------------------------------------------------


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
async def sessions(database_url):
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def telegram(tmp_path):
    server = FakeTelegram()
    await server.start()
    server.add_bot(STAFF, "digest_staff_bot")
    bot = TelegramBot("staff", STAFF, server.base_url, None, tmp_path)
    yield server, TelegramChannel({"staff": bot})
    await bot.bot.session.close()
    await server.stop()


async def test_alerts_held_by_a_busy_telegram_group_arrive_as_digests_in_order(sessions, telegram):
    fake, sender = telegram
    rule = PlatformLimits(private="1/second", group="2 per 2 seconds", bot="30/second")
    enforce(fake, rule)
    payloads = [alert("g0"), alert("g1"), alert("g2"), alert("g3"), alert("note", alert=False), alert("g4"), alert("g5", language="zh")]
    await queue(sessions, "telegram", GROUP, payloads, SystemClock().now())
    relay = OutboxRelay(sessions=sessions, senders={"telegram": sender}, clock=SystemClock(), tz=timezone.utc,
                        limiter=SendLimiter({"telegram": rule}), max_wait=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop, interval=0.05))
    started = time.monotonic()
    while any(r["status"] == "pending" for r in await outbox(sessions)) and time.monotonic() - started < 20:
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
    rows = {r["payload"]["text"]["params"]["text"]: r for r in await outbox(sessions)}
    assert all(r["status"] == "sent" for r in rows.values())
    assert rows["g3"]["digest_of"] == rows["g2"]["id"] and rows["g5"]["digest_of"] == rows["g4"]["id"]
    assert rows["g2"]["held_since"] is not None and rows["g0"]["held_since"] is None
    assert rows["g3"]["platform_message_id"] == rows["g2"]["platform_message_id"]


async def test_a_throttled_robot_sends_what_queued_as_one_digest_when_its_window_frees(sessions):
    clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    async with FakeRobots(clock=lambda: clock.now().timestamp()) as robots, httpx.AsyncClient(timeout=2.0) as http:
        robots.add("wecom", "key-d")
        sink = RobotSink(kind="wecom", name="ops", url=FakeRobots.production_url("wecom", "key-d"), base_url=robots.base_url, limits=((1, 60.0),))
        relay = OutboxRelay(sessions=sessions, senders={"robot": RobotSender({"ops": sink}, http, clock)}, clock=clock, tz=timezone.utc)
        await queue(sessions, "robot", "ops", [alert(f"r{n}", language="zh") for n in range(4)], clock.now())
        await drain(relay)
        assert [m["text"]["content"] for m in robots.messages("wecom", "key-d")] == ["r0\n[🔁 改派]"]
        held = [r for r in await outbox(sessions) if r["status"] == "pending"]
        assert len(held) == 3 and held[0]["held_since"] == clock.now() and held[0]["attempts"] == 0
        clock.advance(timedelta(seconds=61))
        await drain(relay)
        texts = [m["text"]["content"] for m in robots.messages("wecom", "key-d")]
        assert texts[1:] == ["🗂 本群消息达到发送上限期间累积了 3 条提醒:\n\n#1 r1\n\n#2 r2\n\n#3 r3\n[#1 🔁 改派] [#2 🔁 改派] [#3 🔁 改派]"]
        assert all(r["status"] == "sent" for r in await outbox(sessions))


async def test_alerts_behind_one_the_platform_answered_429_go_out_together(sessions, telegram):
    fake, sender = telegram
    clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    fake.fail_next("sendMessage", status=429, retry_after=2)
    await queue(sessions, "telegram", GROUP, [alert(f"p{n}") for n in range(3)], clock.now())
    relay = OutboxRelay(sessions=sessions, senders={"telegram": sender}, clock=clock, tz=timezone.utc, limiter=SendLimiter({}))
    await drain(relay)
    assert fake.sent(chat_id=GROUP) == []
    clock.advance(timedelta(seconds=3))
    await drain(relay)
    assert [s["text"] for s in fake.sent(chat_id=GROUP)] == [
        "🗂 3 alerts queued while this chat was at its message limit:\n\n#1 p0\n\n#2 p1\n\n#3 p2"
    ]
    rows = await outbox(sessions)
    assert [r["status"] for r in rows] == ["sent"] * 3 and rows[0]["attempts"] == 2
