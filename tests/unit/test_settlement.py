"""Settlement's pure rules: the review period's end, the accounting period (a month in the shop's time zone), the payout
share and its rounding, freezing only within the period, a release after it landing in the CURRENT month."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from conversations.flow import StepInput
from conversations.flows.dispatcher import DISPATCHER_FLOW
from conversations.flows.settlement import ADJUST, AdjustData
from domain import commands as c
from domain.errors import DomainError
from domain.fees import BillLine, Money
from domain.settlement import (
    ItemStatus, check_adjustment, check_closable, close_due_at, cycle_of, freezes, parse_period, payout_base, period_of, ready_period,
    released, review_ends, share_of, statement_number,
)
from domain.policy import ServicePolicy
from fieldchat.settings import Settings
from services.actions import SettleAdjust, SettleRelease, encode
from services.messages import ChatRef, Inbound, InboundKind, StepResult
from services.views import DispatcherView, VisitContacts

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(timezone.utc)


def line(kind: str, minor: int) -> BillLine:
    return BillLine(kind, kind, 1, "visit", Money(minor, "CNY"), Money(minor, "CNY"))


def code(call) -> str:
    with pytest.raises(DomainError) as refused:
        call()
    return refused.value.code


def test_the_review_period_ends_its_length_after_the_confirmation_and_needs_an_aware_moment():
    confirmed = local(2026, 11, 23, 10)
    assert review_ends(confirmed, timedelta(hours=72)) == local(2026, 11, 26, 10)
    with pytest.raises(ValueError):
        review_ends(datetime(2026, 11, 23, 10), timedelta(hours=72))


def test_the_period_is_the_shops_calendar_month_not_utcs():
    # 30 November 23:30 in Shanghai is still November there, though UTC says 30 November 15:30; 1 December 00:30 is December
    assert period_of(local(2026, 11, 30, 23, 30), SHANGHAI) == "2026-11"
    assert period_of(local(2026, 12, 1, 0, 30), SHANGHAI) == "2026-12"
    assert period_of(local(2026, 12, 31, 23, 59), SHANGHAI) == "2026-12"
    assert close_due_at("2026-12", SHANGHAI) == datetime(2027, 1, 1, 1, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-11", "2026-1", "November", "1999-12", "2026-11-01", ""])
def test_a_period_is_a_real_month_written_yyyy_mm(text):
    assert code(lambda: parse_period(text)) == "settle_period_invalid"


def test_only_a_month_that_is_over_is_closed():
    assert code(lambda: check_closable("2026-11", local(2026, 11, 30, 23, 59), SHANGHAI)) == "settle_month_not_over"
    assert check_closable("2026-11", local(2026, 12, 1, 0, 0), SHANGHAI) == "2026-11"


def test_the_share_is_of_everything_but_parts_and_never_below_zero():
    lines = [line("labour", 15000), line("part", 2500), line("increase", 3000), line("discount", -1000), line("travel", 500)]
    assert payout_base(lines) == 17500  # a kind added later (travel) counts as work; parts are the shop's
    assert payout_base([line("labour", 1000), line("discount", -5000)]) == 0


@pytest.mark.parametrize(("base", "percent", "share"), [
    (12345, 80, 9876),  # 9876.0
    (12345, 50, 6173),  # 6172.5 rounds half up
    (12344, 50, 6172),
    (1, 50, 1),  # half a fen is paid as a fen
    (1, 49, 0),
    (15000, 100, 15000),
    (15000, 0, 0),
])
def test_the_share_is_rounded_half_up_to_a_whole_minor_unit(base, percent, share):
    assert share_of(base, percent) == share


@pytest.mark.parametrize("percent", [-1, 101, True, 50.0])
def test_a_share_is_a_whole_percent_from_0_to_100(percent):
    assert code(lambda: share_of(1000, percent)) == "settle_share_invalid"


def test_a_cycle_is_monthly_or_per_order():
    assert cycle_of("per_order").value == "per_order"
    assert code(lambda: cycle_of("weekly")) == "settle_cycle_unknown"


def test_an_adjustment_is_zero_or_more_and_says_why():
    assert check_adjustment(0, "  waived: our fault  ") == "waived: our fault"
    assert code(lambda: check_adjustment(-1, "why")) == "settle_amount_invalid"
    assert code(lambda: check_adjustment(10**12, "why")) == "settle_amount_invalid"
    assert code(lambda: check_adjustment(100, " ")) == "settle_reason_missing"
    assert code(lambda: check_adjustment(100, "x" * 501)) == "settle_reason_too_long"


def test_only_a_fee_in_review_within_its_period_is_frozen():
    ends = local(2026, 11, 26, 10)
    assert freezes(ItemStatus.IN_REVIEW, ends, ends - timedelta(seconds=1))
    assert not freezes(ItemStatus.IN_REVIEW, ends, ends)  # the period is over: a late complaint is after-sales, not a freeze
    for status in (ItemStatus.FROZEN, ItemStatus.READY, ItemStatus.SETTLED):
        assert not freezes(status, ends, ends - timedelta(hours=1))


def test_a_release_within_the_period_goes_back_to_review_and_after_it_is_ready_in_the_current_month():
    ends = local(2026, 11, 26, 10)
    assert released(ItemStatus.FROZEN, ends, ends - timedelta(hours=1), SHANGHAI) == (ItemStatus.IN_REVIEW, None)
    # its review ended in November; released on 3 December, it is settled in December
    assert released(ItemStatus.FROZEN, ends, local(2026, 12, 3), SHANGHAI) == (ItemStatus.READY, "2026-12")
    assert released(ItemStatus.READY, ends, local(2026, 12, 3), SHANGHAI) == (ItemStatus.READY, None)  # adjusted while ready: stays
    assert code(lambda: released(ItemStatus.SETTLED, ends, local(2026, 12, 3), SHANGHAI)) == "settle_item_settled"


def test_a_fee_ready_at_its_periods_end_is_in_that_month_unless_the_month_was_closed_already():
    ends = local(2026, 11, 30, 22)
    assert ready_period(ends, ends + timedelta(minutes=1), SHANGHAI) == "2026-11"
    assert ready_period(ends, local(2026, 12, 1, 0, 59), SHANGHAI) == "2026-11"  # before the close: still November
    assert ready_period(ends, local(2026, 12, 1, 1, 0), SHANGHAI) == "2026-12"  # the sweep ran late: never into a closed month


def test_a_statement_number_names_the_period_the_technician_and_its_sequence():
    assert statement_number("2026-11", 7, 2) == "ST-2026-11-T7-2"


# --- the dispatchers' steps on a frozen fee (conversations/flows/settlement.py) ---------------------------------------

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)


def group_event(kind: InboundKind, text: str = "", user: str = "dora") -> Inbound:
    return Inbound(ChatRef("web", "staff", "-100"), "1", kind, user, chat_type="group", text=text, user_name="Dora")


def step(view: DispatcherView, event: Inbound, state: str = "idle", data: dict | None = None) -> StepResult:
    return DISPATCHER_FLOW.step(StepInput(event, state, data or {}, view, NOW, "en", ServicePolicy()))


def replies(result: StepResult) -> list[str]:
    return [m.text["key"] for m in result.replies]


DORA = DispatcherView(1, 2, None, None, VisitContacts(21, None, "Zhang", "139", "Wang", "138", 7, "delivery", "confirmed"))


def test_release_sends_the_command_for_the_visit_a_dispatcher_of_its_region_pressed():
    released = step(DORA, group_event(InboundKind.BUTTON, encode(SettleRelease(21))))
    # no reply of its own: the frozen alert card is edited to say who released it (services/settlement_notices.py)
    assert released.commands == (c.ReleaseSettlement(21, "dispatcher:2", 2),) and replies(released) == []
    # someone in the group who is not a dispatcher, or a dispatcher of another region: refused, nothing sent
    stranger = step(DispatcherView(1, None, None, None), group_event(InboundKind.BUTTON, encode(SettleRelease(21)), user="x"))
    assert stranger.commands == () and replies(stranger) == ["dispatcher.not_allowed"]
    elsewhere = step(DispatcherView(1, 2, None, None, out_of_region="Jingan"), group_event(InboundKind.BUTTON, encode(SettleRelease(21))))
    assert elsewhere.commands == () and replies(elsewhere) == ["dispatcher.region_denied"]
    gone = step(DispatcherView(1, 2, None, None), group_event(InboundKind.BUTTON, encode(SettleRelease(21))))
    assert gone.commands == ()  # no such visit any more: a stale button


def test_adjust_listens_only_to_the_dispatcher_who_pressed_and_sends_what_they_typed():
    asked = step(DORA, group_event(InboundKind.BUTTON, encode(SettleAdjust(21))))
    assert replies(asked) == ["settle.ask_adjust"] and asked.state == ADJUST and asked.replies[0].request == "reply"
    data = AdjustData(21, "dora").to_json()
    assert step(DORA, group_event(InboundKind.TEXT, "lunch?", user="ming"), ADJUST, data).replies == ()  # someone else talking
    again = step(DORA, group_event(InboundKind.TEXT, "   "), ADJUST, data)
    assert replies(again) == ["settle.ask_adjust"] and again.commands == ()
    typed = step(DORA, group_event(InboundKind.TEXT, "80 half right"), ADJUST, data)
    assert typed.commands == (c.AdjustSettlementTyped(21, "80 half right", 2),) and typed.state == "idle"


def test_the_review_period_and_the_default_payout_rule_are_settings_passed_through_the_policy():
    policy = Settings(_env_file=None, review_period_hours=24, settlement_cycle="per_order", payout_share_percent=80).policy()
    assert (policy.review_period, policy.settlement_cycle, policy.payout_share_percent) == (timedelta(hours=24), "per_order", 80)
    defaults = ServicePolicy()
    assert (defaults.review_period, defaults.settlement_cycle, defaults.payout_share_percent) == (timedelta(hours=72), "monthly", 100)
    for wrong in ({"review_period_hours": 0}, {"settlement_cycle": "weekly"}, {"payout_share_percent": 101}):
        with pytest.raises(ValueError):
            Settings(_env_file=None, **wrong)
