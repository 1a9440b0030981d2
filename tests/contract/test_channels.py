"""The same rendering over the fake platforms: Telegram keyboards, cut texts, failing long actions and edits; robots' labels
and languages."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import httpx

from bots.alerting import AlertSinks
from bots.channels import (
    ROBOT,
    TELEGRAM,
    TextMeasure,
)
from bots.robots import KINDS, LANGUAGES, RobotSender, RobotSink
from bots.telegram import TelegramBot, TelegramChannel
from domain.clock import ManualClock
from fieldchat.fakes.robot_servers import FakeRobots
from scheduler.ratelimit import SendLimiter
from scheduler.relay import OutboxRelay
from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.support.relay import drain, outbox
from tests.support.telegram import STAFF

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
TWELVE = [(f"Option {n} " + "x" * 250, f"o:{n}") for n in range(1, 13)]


def _payload(text: str, buttons: list[tuple[str, str]] = (), **extra) -> dict:
    label = lambda words: {"key": "=", "params": {"text": words}}  # noqa: E731
    return {
        "text": label(text),
        "buttons": [[{"label": label(words), "data": data} for words, data in buttons]] if buttons else [],
        "language": "en",
        **extra,
    }


async def _queue(sessions, platform: str, chat_id: str, rows: list[tuple[str, dict]]) -> None:
    async with sessions() as session, session.begin():
        for dedup_key, payload in rows:
            await Store(session).outbox_add(platform=platform, bot="staff", chat_id=chat_id, payload=payload, dedup_key=dedup_key, now=NOW,
                                            card=payload.get("card"))


async def test_over_the_fake_telegram_keyboards_wrap_long_text_is_cut_a_long_action_fails_alone_and_an_edit_changes_the_card(
    sqlite_db, fake_telegram, tmp_path
):
    bot = TelegramBot("staff", STAFF, fake_telegram.base_url, None, tmp_path)
    try:
        await _queue(sqlite_db, TELEGRAM, "7001", [
            ("wide", _payload("🔧" * 3000, TWELVE)),
            ("long-action", _payload("Reassign?", [("Reassign", "ra:" + "7" * 67)])),
            ("card", _payload("Offer: sofa, Mon 9:00", [("Accept", "acc:1")], card="offer:1", purpose="assignment")),
            ("card-taken", _payload("Offer taken by Wang", card="offer:1", purpose="assignment")),  # news: the card changes
        ])
        relay = OutboxRelay(sessions=sqlite_db, senders={TELEGRAM: TelegramChannel({"staff": bot})}, clock=ManualClock(NOW),
                            tz=timezone.utc, limiter=SendLimiter({}))
        await drain(relay)
    finally:
        await bot.bot.session.close()
    wide, card, taken = fake_telegram.sent(chat_id="7001")
    assert [len(row) for row in wide["reply_markup"]["inline_keyboard"]] == [8, 4]
    labels = [button["text"] for row in wide["reply_markup"]["inline_keyboard"] for button in row]
    assert all(len(label) == 64 and label.endswith("…") for label in labels)
    assert wide["text"].endswith("…") and TextMeasure.UTF16_UNITS.size(wide["text"]) <= 4096
    assert (card["method"], taken["method"]) == ("sendMessage", "editMessageText")
    assert taken["message_id"] == card["message_id"] and taken["text"] == "Offer taken by Wang"
    assert taken["reply_markup"] is None or taken["reply_markup"].get("inline_keyboard") in (None, [])  # its buttons gone
    rows = {row["dedup_key"]: row for row in await outbox(sqlite_db)}
    assert rows["long-action"]["status"] == "failed" and rows["long-action"]["attempts"] == 1
    assert rows["long-action"]["last_error"].startswith("render: the action of button 'Reassign' is 70 bytes")
    assert [rows[key]["status"] for key in ("wide", "card", "card-taken")] == ["sent"] * 3


async def test_over_a_fake_robot_buttons_become_labels_actions_need_no_room_and_an_edit_is_a_new_message(sqlite_db):
    clock = ManualClock(NOW)
    async with FakeRobots(clock=lambda: clock.now().timestamp()) as robots, httpx.AsyncClient(timeout=2.0) as http:
        robots.add("wecom", "key-c")
        sink = RobotSink(kind="wecom", name="ops", url=FakeRobots.production_url("wecom", "key-c"), base_url=robots.base_url, limits=())
        await _queue(sqlite_db, ROBOT, "ops", [
            ("wide", _payload("Damage reported", TWELVE, card="exception:1", purpose="alert")),
            ("long-action", _payload("Reassign?", [("Reassign", "ra:" + "7" * 67)])),
            ("edit", _payload("Acknowledged by Dora", card="exception:1", purpose="alert")),
        ])
        relay = OutboxRelay(sessions=sqlite_db, senders={ROBOT: RobotSender({"ops": sink}, http, clock)}, clock=clock, tz=timezone.utc)
        await drain(relay)
        wide, long_action, edit = [m["text"]["content"] for m in robots.messages("wecom", "key-c")]
    labels = re.findall(r"\[([^\]]*)\]", wide)
    assert len(labels) == 12 and all(len(label) == 64 and label.endswith("…") for label in labels)
    assert long_action == "Reassign?\n[Reassign]" and edit == "Acknowledged by Dora"
    assert all(row["status"] == "sent" for row in await outbox(sqlite_db))


async def test_a_robot_route_is_rendered_in_the_language_its_robots_read(sqlite_db):
    clock = ManualClock(NOW)
    async with FakeRobots(clock=lambda: clock.now().timestamp()) as robots:
        robots.add("slack", "T1/B1/X1")
        robots.add("wecom", "key-h")
        async with sqlite_db() as session, session.begin():
            schedule = ScheduleStore(Store(session))
            await schedule.put_alert_sink(name="ops-slack", region=None, kind="slack", url=robots.url("slack", "T1/B1/X1"),
                                          secret=None, keyword=None, priority=0)
            await schedule.put_alert_sink(name="huangpu-wecom", region="Huangpu", kind="wecom", url=robots.url("wecom", "key-h"),
                                          secret=None, keyword=None, priority=0)
        sinks = AlertSinks(sqlite_db, clock, refresh_seconds=0)
        try:
            assert await sinks.reader_language("all") == "en"  # only Slack
            assert await sinks.reader_language("region:Huangpu") == "zh"  # WeCom first, Slack as the fallback
            assert await sinks.reader_language("region:Elsewhere") is None
            assert set(LANGUAGES) == set(KINDS)  # every robot kind says what its groups read
            alert = {"text": {"key": "btn.reassign", "params": {}}, "buttons": [], "alert": True}
            await _queue(sqlite_db, ROBOT, "all", [("to-slack", {**alert, "language": "zh"})])
            await _queue(sqlite_db, ROBOT, "region:Huangpu", [("to-wecom", {**alert, "language": "en"})])
            await drain(OutboxRelay(sessions=sqlite_db, senders={ROBOT: sinks}, clock=clock, tz=timezone.utc))
        finally:
            await sinks.aclose()
        assert [m["text"] for m in robots.messages("slack", "T1/B1/X1")] == ["🔁 Reassign"]
        assert [m["text"]["content"] for m in robots.messages("wecom", "key-h")] == ["🔁 改派"]
