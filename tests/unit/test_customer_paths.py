"""The customer's side as pure rules and steps (issue 10): wishes matched to windows, moving a booking as one
domain step, the day picker over the whole horizon, free text dispatched by what it means (a fake parser)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from conversations.flow import StepInput
from conversations.flows import customer as flow
from conversations.flows.customer import CUSTOMER_FLOW, DAYS_PER_PAGE
from conversations.understanding import Intent, PartOfDay, Understood
from domain import commands as c
from domain import lifecycle
from domain.errors import DomainError
from domain.model import Visit, VisitStatus
from domain.policy import ServicePolicy
from domain.wishes import first_fitting, fits_wish
from services.actions import KeepBoth, MoreDays, MoveBoth, PickDay, PickSlot, decode, encode
from services.messages import ChatRef, Inbound, InboundKind, StepResult
from services.views import CustomerView, JobInfo, VisitInfo
from tests.support.harness import parts

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # Monday 08:00 in Shanghai


def local(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=TZ).astimezone(timezone.utc)


def window(day: int, hour: int) -> tuple[datetime, datetime]:
    return local(day, hour), local(day, hour + 2)


HORIZON = tuple(window(day, hour) for day in range(23, 31) for hour in (9, 11, 14, 16) if local(day, hour) >= NOW + timedelta(hours=2))


def event(kind: InboundKind, text: str = "") -> Inbound:
    return Inbound(chat=ChatRef("web", "customer", "u1"), update_id="1", kind=kind, user_id="u1", text=text)


def run(view: CustomerView, ev: Inbound, state: str = "idle", data: dict | None = None) -> StepResult:
    return CUSTOMER_FLOW.step(StepInput(ev, state, data or {}, view, NOW, "en", ServicePolicy()))


def press(view: CustomerView, action, state: str = "idle", data: dict | None = None) -> StepResult:
    return run(view, event(InboundKind.BUTTON, encode(action)), state, data)


def keys(result: StepResult) -> list[str]:
    """The key of each reply, or of each part of a joined one (one message on a card)."""
    return [key for m in result.replies for key in parts(m.text)]


def actions(result: StepResult) -> list:
    return [decode(b.data) for m in result.replies for row in m.buttons for b in row]


def view_of(*visits: VisitInfo) -> CustomerView:
    return CustomerView(7, "Zhang", None, (JobInfo(5, "Sofa", "Road 1", visits),))


def delivery(status: str = "created", slot=(None, None), slots=HORIZON) -> VisitInfo:
    return VisitInfo(11, "delivery", status, *slot, False, None, slots=slots, duration_minutes=45)


def installation(slot, status: str = "booked", slots=()) -> VisitInfo:
    return VisitInfo(12, "installation", status, *slot, False, 11, slots=slots, duration_minutes=90)


# --- domain: wishes and moves --------------------------------------------------------------------


def test_a_wish_fits_the_windows_of_its_day_part_and_bounds():
    assert fits_wish(window(27, 14), TZ, day=date(2026, 11, 27), part_of_day="afternoon")
    assert not fits_wish(window(27, 9), TZ, day=date(2026, 11, 27), part_of_day="afternoon")
    assert not fits_wish(window(28, 14), TZ, day=date(2026, 11, 27))
    # "after ten": a window starting at nine could bring someone at half past nine
    assert not fits_wish(window(27, 9), TZ, after=time(10, 0)) and fits_wish(window(27, 11), TZ, after=time(10, 0))
    assert fits_wish(window(27, 14), TZ, before=time(16, 0)) and not fits_wish(window(27, 16), TZ, before=time(16, 0))
    assert first_fitting(HORIZON, TZ, day=date(2026, 11, 25), part_of_day="morning") == window(25, 9)
    assert first_fitting(HORIZON, TZ, day=date(2026, 12, 25)) is None


def booked(kind: str, slot, minutes: int, depends_on: int | None = None, gap: int = 0, visit_id: int = 1) -> Visit:
    return Visit(5, kind, visit_id, minutes, status="accepted", technician_id=3, slot_start=slot[0], slot_end=slot[1],
                 depends_on_visit_id=depends_on, min_gap_minutes=gap, crew_ids=[4], id=visit_id)


def test_rebook_moves_the_visit_in_one_step_and_releases_whoever_had_it():
    visit = booked("delivery", window(25, 11), 45)
    event = lifecycle.rebook(visit, 5, *window(27, 14), None)
    assert (visit.status, visit.slot_start, visit.technician_id, visit.crew_ids) == ("booked", local(27, 14), None, [])
    assert event.name == "VisitRescheduled" and event.data["technician_id"] == 3 and event.data["crew_ids"] == [4]
    assert event.data["previous_start"] == local(25, 11).isoformat()


def test_rebook_refuses_a_time_before_the_visit_it_follows():
    delivery_visit = booked("delivery", window(26, 11), 45)
    install = booked("installation", window(26, 14), 90, depends_on=1, visit_id=2)
    with pytest.raises(DomainError):
        lifecycle.rebook(install, 5, *window(26, 9), delivery_visit)


def test_a_dependant_must_move_when_its_delivery_moves_past_it_or_its_gap():
    delivery_visit = booked("delivery", window(25, 11), 45)
    install = booked("installation", window(25, 14), 90, depends_on=1, gap=60, visit_id=2)
    assert not lifecycle.must_move_with(install, delivery_visit)
    assert lifecycle.would_move_with(install.slot_start, 60, 45, *window(26, 11))
    # a delivery at 11:00 of 45 min and a 60-min gap: 14:00 still follows 13:00
    assert not lifecycle.would_move_with(install.slot_start, 60, 45, *window(25, 11))
    # moved to 14:00 on the same day, the installation at 14:00 can no longer follow
    assert lifecycle.would_move_with(install.slot_start, 0, 45, *window(25, 14))


def test_an_appointment_is_confirmed_once():
    visit = booked("delivery", window(25, 11), 45)
    event = lifecycle.confirm_appointment(visit, 5, NOW)
    assert visit.appointment_confirmed_at == NOW and event.name == "AppointmentConfirmed"
    with pytest.raises(DomainError):
        lifecycle.confirm_appointment(visit, 5, NOW)


# --- steps: the day picker -----------------------------------------------------------------------


def test_the_prompt_pages_through_every_day_of_the_horizon():
    view = view_of(delivery())
    first = press(view, flow.Book(11))
    days = [a.day for a in actions(first) if isinstance(a, PickDay)]
    assert days == [date(2026, 11, d) for d in range(24, 24 + DAYS_PER_PAGE)]
    assert [a for a in actions(first) if isinstance(a, PickSlot)][0] == PickSlot(11, *window(23, 11))
    later = press(view, [a for a in actions(first) if isinstance(a, MoreDays)][0])
    assert [a.day for a in actions(later) if isinstance(a, PickDay)] == [date(2026, 11, 30)]
    day = press(view, PickDay(11, date(2026, 11, 30)))
    assert keys(day) == ["customer.choose_window"]
    assert [a for a in actions(day) if isinstance(a, PickSlot)] == [PickSlot(11, *window(30, h)) for h in (9, 11, 14, 16)]


def test_rescheduling_offers_times_and_changes_nothing():
    view = view_of(delivery("accepted", window(25, 11)))
    result = press(view, flow.Reschedule(11))
    assert keys(result) == ["customer.choose_slot"] and result.commands == ()
    # the window it holds is not offered again
    assert PickSlot(11, *window(25, 11)) not in actions(press(view, PickDay(11, date(2026, 11, 25))))


def test_picking_a_new_time_moves_a_lone_visit_with_one_command():
    view = view_of(delivery("accepted", window(25, 11)))
    result = press(view, PickSlot(11, *window(27, 14)), state="choose_slot", data={"visit": 11})
    assert keys(result) == ["customer.moved"]
    assert result.commands == (c.RebookVisit(11, 7, *window(27, 14)),)


def test_a_move_that_pushes_the_installation_asks_and_keeps_both_on_no():
    view = view_of(delivery("booked", window(25, 11)), installation(window(25, 14)))
    asked = press(view, PickSlot(11, *window(26, 11)))
    assert keys(asked) == ["customer.dependant_must_move"] and asked.commands == ()
    assert MoveBoth(11, *window(26, 11)) in actions(asked) and KeepBoth(11) in actions(asked)
    kept = press(view, KeepBoth(11), state="confirm_move", data=asked.data)
    assert keys(kept)[0] == "customer.kept_both" and kept.commands == ()


def test_moving_both_sends_one_command_with_both_windows():
    moved_view = view_of(delivery("booked", window(25, 11)), installation(window(25, 14), slots=(window(26, 14), window(27, 9))))
    days = press(moved_view, MoveBoth(11, *window(26, 11)), state="confirm_move")
    assert keys(days) == ["customer.choose_dependant_day"]
    data = days.data
    done = press(moved_view, PickSlot(12, *window(26, 14)), state="choose_dependant", data=data)
    assert keys(done) == ["customer.moved_both"]
    assert done.commands == (c.RebookVisit(11, 7, *window(26, 11), 12, *window(26, 14)),)


def test_status_rows_name_their_visit():
    view = view_of(delivery("booked", window(25, 11)), installation(window(26, 14)))
    result = run(view, event(InboundKind.COMMAND, "status"))
    labels = [(b.label["key"], b.label["params"]["kind"]["key"]) for m in result.replies for row in m.buttons for b in row]
    assert labels == [("btn.reschedule_kind", "kind.delivery"), ("btn.cancel_kind", "kind.delivery"),
                      ("btn.reschedule_kind", "kind.installation"), ("btn.cancel_kind", "kind.installation")]


def test_confirming_the_appointment_records_it_and_twice_says_already():
    view = view_of(delivery("accepted", window(25, 11)))
    first = press(view, flow.ConfirmAppointment(11))
    assert keys(first) == ["customer.appointment_confirmed"] and first.commands == (c.ConfirmAppointmentTime(11, 7),)
    confirmed = view_of(VisitInfo(11, "delivery", "accepted", *window(25, 11), False, None, appointment_confirmed=True))
    again = press(confirmed, flow.ConfirmAppointment(11))
    assert keys(again) == ["customer.appointment_already_confirmed"] and again.commands == ()


# --- steps: free text ----------------------------------------------------------------------------


@pytest.fixture
def means(monkeypatch):
    def substitute(understood: Understood) -> None:
        monkeypatch.setattr(flow, "UNDERSTAND", lambda text, role, now, language: understood)

    return substitute


def text(view: CustomerView, words: str = "…", state: str = "idle", data: dict | None = None) -> StepResult:
    return run(view, event(InboundKind.TEXT, words), state, data)


def test_a_reschedule_with_a_day_proposes_the_first_fitting_window(means):
    means(Understood(Intent.RESCHEDULE, date(2026, 11, 27), PartOfDay.AFTERNOON))
    result = text(view_of(delivery("accepted", window(25, 11))))
    assert keys(result) == ["customer.propose_move"] and result.commands == ()
    assert actions(result) == [PickSlot(11, *window(27, 14)), flow.Reschedule(11)]


def test_a_reschedule_to_a_full_day_shows_the_days_that_have_room(means):
    means(Understood(Intent.RESCHEDULE, date(2026, 12, 24)))
    result = text(view_of(delivery("accepted", window(25, 11))))
    assert keys(result) == ["customer.no_fitting_window", "customer.choose_slot"]


def test_a_reschedule_without_a_date_opens_the_day_picker(means):
    means(Understood(Intent.RESCHEDULE))
    assert keys(text(view_of(delivery("accepted", window(25, 11))))) == ["customer.choose_slot"]


def test_a_bare_date_while_choosing_proposes_a_window_that_day(means):
    means(Understood(Intent.UNKNOWN, date(2026, 11, 28)))
    result = text(view_of(delivery()), state="choose_slot", data={"visit": 11})
    assert keys(result) == ["customer.propose_booking"]
    assert actions(result)[0] == PickSlot(11, *window(28, 9))


def test_cancel_in_words_asks_the_existing_confirmation(means):
    means(Understood(Intent.CANCEL))
    result = text(view_of(delivery("booked", window(25, 11))))
    assert keys(result) == ["customer.cancel_confirm"] and result.state == "confirm_cancel"


def test_cancel_with_two_visits_asks_which(means):
    means(Understood(Intent.CANCEL))
    result = text(view_of(delivery("booked", window(25, 11)), installation(window(26, 14))))
    assert keys(result) == ["customer.which_to_cancel"]
    assert actions(result) == [flow.CancelVisit(11), flow.CancelVisit(12)]


def test_eta_says_the_estimate_on_the_way(means):
    means(Understood(Intent.ETA))
    on_the_way = VisitInfo(11, "delivery", "en_route", *window(23, 11), False, None, technician="Wang", eta_minutes=12)
    result = text(view_of(on_the_way))
    assert keys(result) == ["customer.eta_on_the_way"] and result.replies[0].text["params"]["minutes"] == 12


def test_done_on_a_completed_visit_asks_to_confirm(means):
    means(Understood(Intent.DONE))
    completed = VisitInfo(11, "delivery", "completed", *window(23, 11), False, None, technician="Wang")
    result = text(view_of(completed))
    assert keys(result) == ["customer.done_prompt"] and actions(result) == [flow.ConfirmDone(11)]


@pytest.mark.parametrize("intent", [Intent.CHANGE_CONTACT, Intent.CHANGE_ADDRESS])
def test_contact_and_address_changes_are_acknowledged_and_forwarded(means, intent):
    means(Understood(intent))
    result = text(view_of(delivery("booked", window(25, 11))), "new phone 13800001111")
    assert keys(result) == [f"customer.noted_{intent.value}"]
    assert result.commands == (c.ForwardCustomerText(7, 5, 11, intent.value, "new phone 13800001111"),)


@pytest.mark.parametrize("intent", [Intent.HUMAN, Intent.COMPLAINT, Intent.UNKNOWN])
def test_people_intents_never_get_the_bare_hint(means, intent):
    means(Understood(intent))
    result = text(view_of(delivery("booked", window(25, 11))), "hello?")
    assert keys(result) and not keys(result)[0].startswith("customer.hint") and result.commands


def test_free_text_is_understood_in_every_state_that_does_not_ask_for_text():
    for state in ("new", "idle", "choose_slot", "confirm_cancel", "rate", "confirm_move", "choose_dependant"):
        assert CUSTOMER_FLOW.states[state].text is not None, state
    assert VisitStatus.ACCEPTED.value in flow.MOVABLE


def test_times_are_looked_for_on_the_buttons_that_offer_them_and_for_moved_visits_dependants():
    request = flow.view_request(event(InboundKind.BUTTON, encode(PickDay(11, date(2026, 11, 28)))), PickDay(11, date(2026, 11, 28)))
    assert request.slots_for == 11
    assert flow.view_request(event(InboundKind.BUTTON), flow.Reschedule(11)).slots_for == 11
    assert flow.view_request(event(InboundKind.BUTTON), MoreDays(11, 1)).slots_for == 11
    moved = flow.view_request(event(InboundKind.BUTTON), MoveBoth(11, *window(26, 11)))
    assert (moved.slots_for, moved.moved) == (None, (11, *window(26, 11)))
    assert flow.view_request(event(InboundKind.TEXT, " hi "), None).text == "hi"


async def test_free_text_looks_for_times_only_when_it_names_one(means, monkeypatch):
    seen = []

    async def loaded(store, request, policy, now):
        seen.append(request.slots_for_open)

    monkeypatch.setattr(flow.views, "load_customer_view", loaded)
    request = flow.view_request(event(InboundKind.TEXT, "hello"), None)
    means(Understood(Intent.UNKNOWN))
    await flow.load_view(None, request, ServicePolicy(), NOW)
    means(Understood(Intent.RESCHEDULE, date(2026, 11, 27)))
    await flow.load_view(None, request, ServicePolicy(), NOW)
    assert seen == [False, True]
