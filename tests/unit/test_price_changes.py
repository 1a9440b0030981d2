"""Price changes as pure rules and as the technician's steps: who approves an increase at which amount, a discount never
takes a bill below zero, and the chat's request checks each value where it is typed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conversations.flow import StepInput
from conversations.flows.dispatcher import DISPATCHER_FLOW
from conversations.flows.price_increase import AMOUNT, REASON, SUMMARY, IncreaseDraft
from conversations.flows.technician import TECHNICIAN_FLOW, visit_card
from domain import commands as c
from domain.errors import DomainError, InvalidInput, NotAllowed
from domain.fees import BillLine, Money, total
from domain.model import VisitStatus
from domain.policy import ServicePolicy
from domain.price_changes import (
    MAX_CHANGE_MINOR, BilledChange, ChangeKind, ChangeStatus, answer, change_lines, check_amount, check_reason, decide, discount_amount,
)
from services.actions import ApprovePriceIncrease, ManagerApprovePriceIncrease, PriceIncreaseAsk, PriceIncreaseCancel, PriceIncreaseSend, VisitOptions, encode
from services.messages import ChatRef, Inbound, InboundKind, StepResult
from services.views import DispatcherView, TechnicianView, TechVisit
from tests.support.harness import parts

CNY = "CNY"
LIMIT = 20000
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
SLOT = (NOW + timedelta(hours=1), NOW + timedelta(hours=3))


def cny(amount: int) -> Money:
    return Money(amount, CNY)


# --- who decides ---------------------------------------------------------------------------------------------------


def test_a_dispatchers_approval_is_enough_up_to_the_limit_and_above_it_a_manager_decides_too():
    assert decide(ChangeStatus.PENDING, approve=True, by_manager=False, amount=cny(LIMIT), manager_above=LIMIT) is ChangeStatus.APPROVED
    assert decide(ChangeStatus.PENDING, approve=True, by_manager=False, amount=cny(LIMIT + 1), manager_above=LIMIT) is ChangeStatus.ESCALATED
    # a manager deciding first needs nobody after them
    assert decide(ChangeStatus.PENDING, approve=True, by_manager=True, amount=cny(10 * LIMIT), manager_above=LIMIT) is ChangeStatus.APPROVED
    assert decide(ChangeStatus.ESCALATED, approve=True, by_manager=True, amount=cny(LIMIT + 1), manager_above=LIMIT) is ChangeStatus.APPROVED


def test_a_decline_ends_it_at_any_level():
    assert decide(ChangeStatus.PENDING, approve=False, by_manager=False, amount=cny(LIMIT + 1), manager_above=LIMIT) is ChangeStatus.DECLINED
    assert decide(ChangeStatus.ESCALATED, approve=False, by_manager=True, amount=cny(LIMIT + 1), manager_above=LIMIT) is ChangeStatus.DECLINED


def test_a_plain_dispatcher_cannot_decide_what_waits_for_a_manager():
    for approve in (True, False):
        with pytest.raises(NotAllowed, match="pricechg_manager_needed") as refused:
            decide(ChangeStatus.ESCALATED, approve=approve, by_manager=False, amount=cny(30000), manager_above=LIMIT)
        assert refused.value.params["limit"] == "CNY 200.00"


@pytest.mark.parametrize("status", [ChangeStatus.APPROVED, ChangeStatus.ACCEPTED, ChangeStatus.DECLINED, ChangeStatus.REFUSED])
def test_a_decided_increase_is_decided_once(status):
    with pytest.raises(DomainError, match="pricechg_decided"):
        decide(status, approve=True, by_manager=True, amount=cny(100), manager_above=LIMIT)


def test_the_customer_answers_only_what_the_shop_approved():
    assert answer(ChangeStatus.APPROVED, agree=True) is ChangeStatus.ACCEPTED
    assert answer(ChangeStatus.APPROVED, agree=False) is ChangeStatus.REFUSED
    for status in (ChangeStatus.PENDING, ChangeStatus.ESCALATED, ChangeStatus.ACCEPTED, ChangeStatus.REFUSED, ChangeStatus.DECLINED):
        with pytest.raises(DomainError, match="pricechg_decided"):
            answer(status, agree=True)


# --- amounts and reasons ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "code"), [(0, "pricechg_amount_not_positive"), (-5, "pricechg_amount_not_positive"),
                                              (MAX_CHANGE_MINOR + 1, "pricechg_amount_too_large")])
def test_an_amount_is_more_than_nothing_and_less_than_a_sane_maximum(amount, code):
    with pytest.raises(InvalidInput, match=code):
        check_amount(cny(amount))
    assert check_amount(cny(MAX_CHANGE_MINOR)) == cny(MAX_CHANGE_MINOR)


def test_a_reason_is_said_in_words_and_kept_on_one_line():
    assert check_reason("  the customer's own\nwiring  ") == "the customer's own wiring"
    for empty in ("", "   \n"):
        with pytest.raises(InvalidInput, match="pricechg_reason_missing"):
            check_reason(empty)
    with pytest.raises(InvalidInput, match="pricechg_reason_too_long"):
        check_reason("x" * 501)


# --- discounts and the bill's lines --------------------------------------------------------------------------------------


def test_a_discount_is_an_amount_or_a_percent_rounded_half_up():
    assert discount_amount(cny(15050), cny(0), amount_minor=2000, percent=None) == cny(2000)
    assert discount_amount(cny(15050), cny(0), amount_minor=None, percent=10) == cny(1505)
    assert discount_amount(cny(15), cny(0), amount_minor=None, percent=10) == cny(2)  # 1.5 rounds up
    assert discount_amount(cny(15050), cny(0), amount_minor=None, percent=100) == cny(15050)  # free, never below zero


@pytest.mark.parametrize(("amount_minor", "percent", "paid", "code"), [
    (None, None, 0, "pricechg_discount_one_of"),
    (100, 10, 0, "pricechg_discount_one_of"),
    (None, 0, 0, "pricechg_percent_invalid"),
    (None, 101, 0, "pricechg_percent_invalid"),
    (0, None, 0, "pricechg_amount_not_positive"),
    (-100, None, 0, "pricechg_amount_not_positive"),
    (15051, None, 0, "pricechg_discount_over_total"),
    (6000, None, 10000, "pricechg_discount_below_paid"),  # 150.50 - 60 < 100 paid: a refund, not a discount
])
def test_a_discount_never_takes_the_bill_below_zero_nor_below_what_was_paid(amount_minor, percent, paid, code):
    with pytest.raises(InvalidInput, match=code):
        discount_amount(cny(15050), cny(paid), amount_minor=amount_minor, percent=percent)


def test_accepted_changes_become_lines_after_the_bills_own_and_a_discount_is_cut_to_what_is_left():
    labour = BillLine("labour", "repair", 1, "visit", cny(10000), cny(10000))
    changes = [BilledChange(ChangeKind.DISCOUNT, cny(3000), "loyal customer"), BilledChange(ChangeKind.INCREASE, cny(5000), "own wiring"),
               BilledChange(ChangeKind.DISCOUNT, cny(50000), "goodwill")]
    lines = change_lines(changes, cny(10000))
    assert [(line.kind, line.description, line.amount.amount) for line in lines] == [
        ("increase", "own wiring", 5000), ("discount", "loyal customer", -3000), ("discount", "goodwill", -12000)]
    assert total([labour, *lines], CNY) == cny(0)
    assert change_lines([], cny(10000)) == []
    with pytest.raises(InvalidInput, match="money_currency_mismatch"):  # refused, not converted: the bill says why
        change_lines([BilledChange(ChangeKind.INCREASE, Money(100, "USD"), "x")], cny(10000))


# --- the technician's steps ------------------------------------------------------------------------------------------------


def tech_visit(visit_id: int, status: VisitStatus, lead: str | None = None) -> TechVisit:
    return TechVisit(visit_id, "repair", status.value, *SLOT, "Split AC", "Road 1", 31.2, 121.4, "Zhang", "139", (), frozenset(), True, lead)


VIEW = TechnicianView(3, "Wang", None, "", (tech_visit(21, VisitStatus.IN_PROGRESS), tech_visit(22, VisitStatus.ACCEPTED),
                                             tech_visit(23, VisitStatus.ON_SITE), tech_visit(24, VisitStatus.IN_PROGRESS, lead="Li")))


def run(kind: InboundKind, text: str = "", *, state: str = "idle", data: IncreaseDraft | None = None, view=VIEW, **fields) -> StepResult:
    event = Inbound(ChatRef("web", "staff", "u1"), "1", kind, "u1", text=text, user_name="Wang", **fields)
    stored = data.to_json() if data is not None else {}
    return TECHNICIAN_FLOW.step(StepInput(event, state, stored, view, NOW, "en", ServicePolicy()))


def keys(result: StepResult) -> list[str]:
    return [key for m in result.replies for key in parts(m.text)]


def test_the_ask_button_is_on_a_visit_checked_in_or_started_and_not_before():
    def data(visit: TechVisit) -> list[str]:
        return [b.data for row in visit_card(visit).buttons for b in row]

    assert encode(PriceIncreaseAsk(21)) in data(tech_visit(21, VisitStatus.IN_PROGRESS))
    assert encode(PriceIncreaseAsk(23)) in data(tech_visit(23, VisitStatus.ON_SITE))
    for status in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.COMPLETED):
        assert not [d for d in data(tech_visit(22, status)) if d.startswith("pc:")]


def test_the_ask_button_is_also_under_more_on_site_where_the_checked_in_card_leads():
    def offered(visit_id: int) -> list[str]:
        return [b.data for m in run(InboundKind.BUTTON, encode(VisitOptions(visit_id))).replies for row in m.buttons for b in row]

    assert encode(PriceIncreaseAsk(21)) in offered(21) and encode(PriceIncreaseAsk(23)) in offered(23)
    assert not [d for d in offered(22) if d.startswith("pc:")]  # accepted, not yet there


def test_asking_checks_the_visit_at_once_and_waits_for_the_amount():
    asked = run(InboundKind.BUTTON, encode(PriceIncreaseAsk(21)))
    assert keys(asked) == ["pricechg.ask_amount"] and asked.state == AMOUNT
    assert list(asked.commands) == [c.CheckPriceIncrease(21, 3)]  # one open already, or not the technician's: refused where pressed
    assert IncreaseDraft.from_json(asked.data) == IncreaseDraft(21)
    # a visit not under way, a crew member's, or one not theirs: a stale button, nothing asked
    for visit_id in (22, 24, 99):
        stale = run(InboundKind.BUTTON, encode(PriceIncreaseAsk(visit_id)))
        assert keys(stale) == ["hint.stale_button"] and stale.state is None and not stale.commands


def test_the_amount_is_checked_where_it_is_typed_then_the_reason_then_the_summary_with_photos():
    draft = IncreaseDraft(21)
    typed = run(InboundKind.TEXT, " 150.50 ", state=AMOUNT, data=draft)
    assert typed.state == REASON and keys(typed) == ["pricechg.ask_reason"]
    # the handler reads it in the bill's currency: a refusal there keeps the state, so it is typed again
    assert list(typed.commands) == [c.CheckPriceIncrease(21, 3, "150.50")]
    assert run(InboundKind.TEXT, "  ", state=AMOUNT, data=draft).state is None

    with_amount = IncreaseDraft(21, "150.50")
    summary = run(InboundKind.TEXT, "customer's own   wiring burnt the board", state=REASON, data=with_amount)
    assert summary.state == SUMMARY and keys(summary) == ["pricechg.summary"]
    assert IncreaseDraft.from_json(summary.data).reason == "customer's own wiring burnt the board"
    assert keys(run(InboundKind.TEXT, "x" * 501, state=REASON, data=with_amount)) == ["error.pricechg_reason_too_long"]

    written = IncreaseDraft(21, "150.50", "own wiring")
    photo = run(InboundKind.PHOTO, state=SUMMARY, data=written, file_id="F1", file_path="/m/a.jpg")
    assert IncreaseDraft.from_json(photo.data).photos == (c.PhotoRef("web", "F1", "/m/a.jpg"),)
    assert keys(photo) == ["pricechg.summary"]
    full = IncreaseDraft(21, "150.50", "own wiring", tuple(c.PhotoRef("web", f"F{n}", "/m/a.jpg") for n in range(5)))
    assert keys(run(InboundKind.PHOTO, state=SUMMARY, data=full, file_id="F9", file_path="/m/b.jpg")) == [
        "error.pricechg_too_many_photos", "pricechg.summary"]

    sent = run(InboundKind.BUTTON, encode(PriceIncreaseSend()), state=SUMMARY, data=written)
    assert list(sent.commands) == [c.RequestPriceIncrease(21, 3, "150.50", "own wiring", ())]
    assert sent.state == "idle" and keys(sent) == ["pricechg.sent"]


def test_cancel_drops_it_with_the_way_back_to_the_work_and_a_stale_draft_sends_nothing():
    dropped = run(InboundKind.BUTTON, encode(PriceIncreaseCancel()), state=REASON, data=IncreaseDraft(21, "150"))
    assert keys(dropped) == ["pricechg.cancelled"] and dropped.state == "idle" and not dropped.commands
    assert [b.data for m in dropped.replies for row in m.buttons for b in row] == ["ck:21"]
    # the visit was completed meanwhile (the view no longer has it under way): nothing is sent
    done = TechnicianView(3, "Wang", None, "", (tech_visit(21, VisitStatus.COMPLETED),))
    stale = run(InboundKind.BUTTON, encode(PriceIncreaseSend()), state=SUMMARY, data=IncreaseDraft(21, "150", "x"), view=done)
    assert not stale.commands and stale.state == "idle"


def test_a_group_press_carries_who_pressed_so_their_account_decides_whether_they_are_a_manager():
    view = DispatcherView(1, 2, None, None)
    for action, guarded in ((ApprovePriceIncrease(5), True), (ManagerApprovePriceIncrease(5), False)):
        event = Inbound(ChatRef("web", "staff", "-100"), "1", InboundKind.BUTTON, "mgr", chat_type="group", text=encode(action), user_name="M")
        result = DISPATCHER_FLOW.step(StepInput(event, "idle", {}, view, NOW, "en", ServicePolicy()))
        assert list(result.commands) == [c.DecidePriceIncrease(5, True, 2, ("web", "staff", "mgr"))]
        # someone who is no dispatcher: refused by the group's guard, or (the managers' card) by the handler via their account
        stranger = DISPATCHER_FLOW.step(StepInput(event, "idle", {}, DispatcherView(1, None, None, None), NOW, "en", ServicePolicy()))
        assert bool(stranger.commands) is not guarded
