"""Button data: one codec reads and writes every action; forged and out-of-range data gets a stale-button answer, never a failure."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from services import actions as a
from domain.model import MAX_ID, ExceptionReason, Language
from storage import tables
from tests.harness import World, keys

BIG = str(2**63)
HUGE = str(2**70)
TELEGRAM_CALLBACK_DATA_BYTES = 64  # the smallest action payload of the channels we have

# what buttons sitting in people's chats today carry, from the flows and from the notifications
OLD_BUTTONS = {
    "bk:12": a.Book(12),
    "sl:12:1795420800:1795428000": a.PickSlot(12, datetime(2026, 11, 23, 8, tzinfo=timezone.utc), datetime(2026, 11, 23, 10, tzinfo=timezone.utc)),
    "rs:12": a.Reschedule(12),
    "cx:12": a.CancelVisit(12),
    "cxy:12": a.ConfirmCancel(12),
    "cxn": a.KeepVisit(),
    "ok:12": a.ConfirmAppointment(12),
    "cf:12": a.ConfirmDone(12),
    "rq:12": a.AskToRate(12),
    "rt:12:5": a.Rate(12, 5),
    "skip": a.SkipComment(),
    "acc:12": a.Accept(12),
    "dec:12": a.Decline(12),
    "go:12": a.OnMyWay(12),
    "arr:12": a.Arrived(12),
    "st:12": a.StartChecklist(12),
    "ck:12": a.ContinueChecklist(12),
    "ans:12:0:yes": a.Answer(12, 0, "yes"),
    "ans:12:2:1": a.Answer(12, 2, "1"),
    "done:12": a.Complete(12),
    "ct:12": a.Contacted(12),
    "rp:12": a.ReportProblem(12),
    "rr:12:goods_damaged": a.PickReason(12, ExceptionReason.GOODS_DAMAGED),
    "rskip": a.SkipNote(),
    "rsend": a.SendReport(),
    "xa:7": a.Acknowledge(7),
    "xr:7": a.Reassign(7),
    "xt:7:3": a.ReassignTo(7, 3),
    "xc:7": a.CancelReported(7),
    "xcy:7": a.ConfirmCancelReported(7),
    "xcn": a.KeepReported(),
    "ra:9": a.AcknowledgeRating(9),
    "as:12:3": a.Assign(12, 3),
    "sr:12": a.ReassignLate(12),
    "sx:12:accept": a.ExtendDeadline(12, "accept"),
    "sc:12": a.CallDetails(12),
    "lang:zh": a.ChooseLanguage(Language.ZH),
}


@pytest.mark.parametrize(("data", "action"), OLD_BUTTONS.items(), ids=list(OLD_BUTTONS))
def test_buttons_already_in_chats_read_as_their_actions_and_are_written_the_same(data, action):
    assert a.decode(data) == action
    assert a.encode(action) == data


def test_every_kind_of_action_has_a_button_that_was_checked_above():
    assert {type(action) for action in OLD_BUTTONS.values()} == set(a.BY_KIND)


@pytest.mark.parametrize(
    "data",
    [
        "", ":", "acc", "acc:", "acc:0", "acc:-1", "acc:+5", "acc: 5", "acc:1e9", "acc:0x10", "acc:١٢", f"acc:{MAX_ID + 1}", f"acc:{BIG}",
        "acc:12:13", "cxn:", "skip:1", "sl:12:1:", f"sl:12:{2**33 + 1}:1", "sl:12:-1:5", "rt:12:0", "rt:12:6", "ans:12:100:yes",
        "ans:12:0:maybe", "ans:12:0:", "rr:12:bored", "rr:12:GOODS_DAMAGED", "sx:12:lunch", "lang:fr", "lang:", "ACC:12", "nonsense:1",
    ],
)
def test_malformed_or_out_of_range_data_reads_as_no_action(data):
    assert a.decode(data) is None


@given(st.text(max_size=80))
def test_any_text_at_all_reads_as_an_action_or_as_none_without_failing(data):
    action = a.decode(data)
    # whatever is read is an action a button could carry (encode refuses anything else)
    assert action is None or a.decode(a.encode(action)) == action


@pytest.mark.parametrize("kind", list(a.BY_KIND), ids=lambda kind: kind.__name__)
def test_every_kind_of_action_fits_the_smallest_channel_payload_at_its_longest(kind):
    longest = a.longest_data(kind)
    assert a.decode(longest) is not None
    assert len(longest.encode()) <= TELEGRAM_CALLBACK_DATA_BYTES


@pytest.mark.parametrize(
    "action",
    [a.Accept(0), a.Accept(MAX_ID + 1), a.Rate(1, 6), a.Answer(1, 0, "maybe"), a.ExtendDeadline(1, "a:b"),
     a.PickSlot(1, datetime(2026, 1, 1, 8, 0, 0, 500, tzinfo=timezone.utc), datetime(2026, 1, 1, 10, tzinfo=timezone.utc))],
)
def test_an_action_a_button_cannot_carry_is_refused_when_written(action):
    with pytest.raises(ValueError, match="cannot be carried by a button"):
        a.encode(action)


async def _failed_updates(world: World) -> int:
    async with world.container.sessions() as session:
        query = select(func.count()).select_from(tables.inbox).where(tables.inbox.c.status != "processed")
        return await session.scalar(query)


async def test_out_of_range_numbers_in_group_buttons_are_answered_and_strangers_are_refused_first(database_url, tmp_path, caplog):
    world = await World.create(database_url, tmp_path)
    try:
        group = world.chat("staff", "-1001", chat_type="group", user_id="dora")
        await group.send(f"/start {await world.dispatcher()}")
        await group.send(f"/start {await world.group()}")
        await group.inbox()
        caplog.set_level(logging.WARNING)

        # a group member who is not a dispatcher: refused before anything is looked up
        for data in (f"xa:{BIG}", f"xr:{BIG}", f"xt:{BIG}:{BIG}", f"xc:{HUGE}", f"sr:{BIG}", f"sc:{BIG}", "xa:-1", "xa:1e9"):
            assert keys(await group.press(data, user_id="stranger")) == ["dispatcher.not_allowed"], data

        # the dispatcher, with ids no record can have
        answers = {}
        for data in (f"xa:{BIG}", f"xr:{BIG}", f"xt:1:{BIG}", f"xc:{BIG}", f"xcy:{BIG}", f"ra:{BIG}",
                     f"as:{BIG}:1", f"as:1:{BIG}", f"sr:{BIG}", f"sx:{BIG}:accept", f"sc:{BIG}", "xa:", "as:x:y"):
            answers[data] = keys(await group.press(data))
        assert all(len(k) == 1 and k[0] in ("hint.stale_button", "dispatcher.already_handled") or k[0].startswith("error.")
                   for k in answers.values()), answers
        assert "error.internal" not in {k[0] for k in answers.values()}
        assert await _failed_updates(world) == 0
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await world.close()


async def test_forged_slot_buttons_cannot_book_outside_the_shops_windows(database_url, tmp_path, caplog):
    world = await World.create(database_url, tmp_path)
    try:
        await world.technician("Wang", ["driver"])
        order = await world.order(services=("delivery",))
        customer = world.chat("customer", "c1")
        offered = await customer.send(f"/start {order.customer_token}")
        visit = order.visits[0].id
        real = next(m for m in offered if m.key == "customer.choose_slot").buttons[0][1]
        _, _, start, end = real.split(":")
        caplog.set_level(logging.WARNING)

        assert keys(await customer.press(f"sl:{visit}:{BIG}:{BIG}")) == ["hint.stale_button"]
        assert keys(await customer.press(f"sl:{BIG}:{start}:{end}")) == ["hint.stale_button"]
        night = datetime.fromtimestamp(int(start), world.container.policy.tz).replace(hour=3, minute=0)
        week = int(start) + 7 * 86400 * 3  # one of the windows, but weeks beyond the booking horizon
        for forged in (
            f"sl:{visit}:{int(night.timestamp())}:{int((night + timedelta(hours=20)).timestamp())}",
            f"sl:{visit}:{week}:{int(end) + 7 * 86400 * 3}",
            f"sl:{visit}:{end}:{start}",
            f"sl:{visit}:{2**31}:{2**31 + 7200}",
        ):
            assert keys(await customer.press(forged)) == ["error.slot_invalid"], forged
        # the real button still books
        assert keys(await customer.press(real))[0] == "customer.booked"
        assert await _failed_updates(world) == 0
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await world.close()
