"""Nothing left unowned, the pure parts: who may take a visit and what an override accepts, how jobs close and reopen,
and the dispatcher's steps (who and when on a second acknowledge, an override only after the conflict is shown, typed
addresses and reasons taken only from the dispatcher who asked)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conversations.flow import StepInput
from conversations.flows.dispatcher import DISPATCHER_FLOW, Awaiting, DispatcherState, parse_address
from domain import closing, dispatch
from domain import commands as c
from domain import events as ev
from domain.errors import DomainError
from domain.model import Job, Technician, Visit, VisitStatus
from domain.policy import ServicePolicy
from domain.slots import Booking
from fieldchat.settings import Settings
from services.actions import (
    Acknowledge,
    AcknowledgeRating,
    AssignAnyone,
    AssignBusy,
    ConfirmOverride,
    FixAddress,
    MoveVisitDay,
    MoveVisitMenu,
    MoveVisitTo,
    encode,
)
from services.messages import ChatRef, Inbound, InboundKind, StepResult
from services.views import ChoiceInfo, DispatcherView, ExceptionInfo, JobBrief, RatingBrief, VisitContacts

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Shanghai
POLICY = ServicePolicy()
SLOT = (datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc), datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc))  # 14:00–16:00


def technician(tid: int, name: str, **kw) -> Technician:
    tech = Technician(name, "138", ["driver"], [], ["Huangpu"], {"weekdays": [0, 1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}, **kw)
    tech.id = tid
    return tech


def job() -> Job:
    found = Job("erp", "SO-1", 1, "Huangpu, 1 Road", 31.23, 121.47, "Huangpu", "sofa", "Sofa", None)
    found.id = 7
    return found


def visit(vid: int = 21, status: VisitStatus = VisitStatus.BOOKED, **kw) -> Visit:
    found = Visit(7, "delivery", 1, 90, status=status.value, slot_start=SLOT[0], slot_end=SLOT[1], **kw)
    found.id = vid
    return found


# --- domain: the candidates rule and its override -------------------------------------------------------


def test_candidates_are_everyone_skilled_free_first_each_busy_one_with_what_they_hold():
    free, busy, declined, off = technician(1, "Free"), technician(2, "Busy"), technician(3, "Declined"), technician(4, "Off", on_duty=False)
    held = Booking(2, SLOT[0] - timedelta(minutes=30), SLOT[0] + timedelta(minutes=60), 90, visit_id=12, job_id=5)
    elsewhere = Booking(1, SLOT[1], SLOT[1] + timedelta(hours=1), 60, visit_id=13, job_id=6)  # touches, does not overlap
    choices = dispatch.candidates([busy, free, declined, off], visit(declined_by=[3]), job(), [held, elsewhere], POLICY.tz)
    assert [c.technician_id for c in choices] == [1, 2]  # the declined one and the one off duty are not skilled for it
    assert not choices[0].needs_override
    assert choices[1].needs_override and choices[1].conflicts == (held,)


def test_a_window_outside_someones_shift_needs_an_override_too():
    sunday_slot = visit()
    sunday_slot.slot_start, sunday_slot.slot_end = SLOT[0] + timedelta(days=5), SLOT[1] + timedelta(days=5)  # Sunday
    (choice,) = dispatch.candidates([technician(1, "Weekdays")], sunday_slot, job(), [], POLICY.tz)
    assert choice.off_shift and choice.needs_override and not choice.conflicts


def test_an_unbooked_visit_has_no_candidates():
    assert dispatch.candidates([technician(1, "A")], Visit(7, "delivery", 1, 90), job(), [], POLICY.tz) == []


# --- domain: closing ---------------------------------------------------------------------------------------


def test_confirmation_by_timeout_is_recorded_as_such():
    done = visit(status=VisitStatus.COMPLETED, technician_id=1)
    event = closing.confirm_by_timeout(done)
    assert isinstance(event, ev.VisitConfirmed) and event.data["by"] == "timeout" and done.state is VisitStatus.CONFIRMED


def test_a_dispatcher_closes_a_job_confirming_what_is_done_and_cancelling_what_is_not_started():
    the_job = job()
    completed, waiting = visit(21, VisitStatus.COMPLETED, technician_id=1), visit(22, VisitStatus.CREATED)
    events = closing.close(the_job, [completed, waiting], "  customer happy by phone ", "dispatcher", 3)
    assert [e.name for e in events] == ["VisitConfirmed", "VisitCancelled", "JobClosed"]
    assert events[0].data["by"] == "dispatcher" and events[-1].data["reason"] == "customer happy by phone"
    assert the_job.status == "done"
    with pytest.raises(DomainError, match="job_already_closed"):
        closing.close(the_job, [completed, waiting], "again", "dispatcher", 3)
    reopened = closing.reopen(the_job, "floor scratched", 3)
    assert the_job.status == "open" and reopened.data == {"reason": "floor scratched", "dispatcher_id": 3, "previous": "done"}


def test_closing_needs_a_reason_and_waits_for_work_under_way():
    with pytest.raises(DomainError, match="reason_required"):
        closing.close(job(), [visit()], "   ", "dispatcher", 3)
    with pytest.raises(DomainError, match="job_work_under_way"):
        closing.close(job(), [visit(status=VisitStatus.EN_ROUTE, technician_id=1)], "why", "api", None)
    with pytest.raises(DomainError, match="job_not_closed"):
        closing.reopen(job(), "why", None)


# --- settings --------------------------------------------------------------------------------------------


def test_the_chase_and_close_times_are_settings_passed_through_the_policy():
    policy = Settings(_env_file=None, booking_reminder_hours=6, booking_escalate_hours=12, confirm_reminder_hours=2,
                      confirm_timeout_hours=48).policy()
    assert (policy.booking_reminder, policy.booking_escalate) == (timedelta(hours=6), timedelta(hours=12))
    assert (policy.confirm_reminder, policy.confirm_timeout) == (timedelta(hours=2), timedelta(hours=48))
    with pytest.raises(ValueError, match="ESCALATE"):
        Settings(_env_file=None, booking_reminder_hours=6, booking_escalate_hours=6)
    with pytest.raises(ValueError, match="CONFIRM_TIMEOUT"):
        Settings(_env_file=None, confirm_reminder_hours=80)


# --- the dispatcher's steps ------------------------------------------------------------------------------------


def group_event(kind: InboundKind, text: str = "", user: str = "dora") -> Inbound:
    return Inbound(ChatRef("web", "staff", "-100"), "1", kind, user, chat_type="group", text=text, user_name="Dora")


def run(view, ev: Inbound, state: str = "idle", data: dict | None = None) -> StepResult:
    return DISPATCHER_FLOW.step(StepInput(ev, state, data or {}, view, NOW, "en", POLICY))


def press(view, action, **kw) -> StepResult:
    return run(view, group_event(InboundKind.BUTTON, encode(action)), **kw)


def keys(result: StepResult) -> list[str]:
    return [m.text["key"] for m in result.replies]


def test_a_second_acknowledge_names_who_did_it_and_when_and_changes_nothing():
    open_report = DispatcherView(1, 2, None, ExceptionInfo(31, "open", 21, "delivery", None))
    first = press(open_report, Acknowledge(31))
    assert first.commands == (c.AcknowledgeException(31, 2),) and first.replies == ()  # the card itself is edited
    at = NOW - timedelta(minutes=5)
    seen = DispatcherView(1, 2, None, ExceptionInfo(31, "acknowledged", 21, "delivery", None, "Dora", at))
    again = press(seen, Acknowledge(31))
    assert keys(again) == ["dispatch.already_acknowledged"] and again.commands == ()
    assert again.replies[0].text["params"]["name"]["params"]["text"] == "Dora"
    rating_seen = DispatcherView(1, 2, None, None, rating=RatingBrief(9, 21, "Li", at))
    assert keys(press(rating_seen, AcknowledgeRating(9))) == ["dispatch.already_acknowledged"]
    rating_open = DispatcherView(1, 2, None, None, rating=RatingBrief(9, 21, None, None))
    assert press(rating_open, AcknowledgeRating(9)).commands == (c.AcknowledgeAlert(9, 2),)


def contacts(*choices: ChoiceInfo) -> DispatcherView:
    return DispatcherView(1, 2, None, None, VisitContacts(21, None, "Zhang", "139", "-", "-", 7, "delivery", "booked", choices))


BUSY = ChoiceInfo(4, "Chen", ((12, SLOT[0], SLOT[1]),), False, False)
FREE = ChoiceInfo(5, "Li", (), False, False)


def test_assign_anyone_lists_the_free_to_assign_and_the_busy_to_confirm_first():
    listing = press(contacts(FREE, BUSY), AssignAnyone(21))
    assert keys(listing) == ["dispatch.pick_anyone"]
    data = [button.data for row in listing.replies[0].buttons for button in row]
    assert data[:2] == ["as:21:5", "dab:21:4"] and listing.commands == ()
    confirm = press(contacts(FREE, BUSY), AssignBusy(21, 4))
    assert keys(confirm) == ["dispatch.override_confirm"] and confirm.commands == ()
    conflict = confirm.replies[0].text["params"]["conflict"]
    assert conflict["key"] == "dispatch.conflict_busy" and conflict["params"]["visit"] == 12
    assert press(contacts(FREE, BUSY), ConfirmOverride(21, 4)).commands == (c.ForceAssignVisit(21, 4, 2),)
    # nobody skilled at all: the other ways out
    nobody = press(contacts(), AssignAnyone(21))
    assert keys(nobody) == ["dispatch.nobody_skilled"] and nobody.replies[0].buttons


def test_moving_a_visit_goes_day_then_window_and_only_then_changes_anything():
    view = contacts()
    days = press(view, MoveVisitMenu(21))
    assert keys(days) == ["dispatch.move_pick_day"] and days.commands == ()
    first_day = [b.data for row in days.replies[0].buttons for b in row][0]
    windows = run(view, group_event(InboundKind.BUTTON, first_day))
    assert keys(windows) == ["dispatch.move_pick_window"]
    tomorrow = datetime(2026, 11, 23, 16, 0, tzinfo=timezone.utc)  # Tuesday 00:00 in Shanghai
    slots = press(view, MoveVisitDay(21, tomorrow))
    assert len(slots.replies[0].buttons) == len(POLICY.windows) + 1  # every window, and back
    moved = press(view, MoveVisitTo(21, *SLOT))
    assert moved.commands == (c.MoveVisit(21, SLOT[0], SLOT[1], 2),)


def test_a_typed_address_is_taken_only_from_the_dispatcher_who_asked():
    job_view = DispatcherView(1, 2, None, None, job=JobBrief(7, "open"))
    asked = press(job_view, FixAddress(7))
    assert asked.state == DispatcherState.AWAITING_TEXT and keys(asked) == ["dispatch.ask_address"]
    waiting = Awaiting(7, "dora", "address").to_json()
    other = run(DispatcherView(1, None, None, None), group_event(InboundKind.TEXT, "lol", user="bob"), "awaiting_text", waiting)
    assert other.replies == () and other.commands == () and other.state is None
    typed = run(job_view, group_event(InboundKind.TEXT, "12 Henan Road, gate B 31.2350,121.4800"), "awaiting_text", waiting)
    assert typed.commands == (c.CorrectAddress(7, "12 Henan Road, gate B", 31.235, 121.48, 2),) and typed.state == "idle"


@pytest.mark.parametrize(("typed", "parsed"), [
    ("Huangpu, 12 Henan Road; 31.2350,121.4800", ("Huangpu, 12 Henan Road", 31.235, 121.48)),
    ("Building 5, 12", ("Building 5, 12", None, None)),  # numbers without decimals are part of an address
    ("Room 3 -31.5, -70.25", ("Room 3", -31.5, -70.25)),
    ("100 Nanjing East Road", ("100 Nanjing East Road", None, None)),
])
def test_an_address_may_end_with_its_pin(typed, parsed):
    assert parse_address(typed) == parsed
