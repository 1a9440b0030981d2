"""The pure steps, called directly with snapshot views: what each answers, commands and remembers, with no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.actions import (
    Answer,
    AssignAnyone,
    Book,
    CallDetails,
    ConfirmDone,
    PickDay,
    PickReason,
    PickSlot,
    Rate,
    Reassign,
    ReassignLate,
    ReassignTo,
    decode,
    encode,
)
from conversations.flow import FlowSpec, StepInput
from conversations.flows import CUSTOMER, DISPATCHER, TECHNICIAN
from conversations.flows.customer import CUSTOMER_FLOW
from conversations.flows.dispatcher import DISPATCHER_FLOW
from conversations.flows.technician import TECHNICIAN_FLOW, ChecklistAt, ProblemDraft
from domain import commands as c
from domain.model import ChecklistStep, ExceptionReason, StepKind, VisitStatus
from domain.policy import ServicePolicy
from services.messages import ChatRef, Inbound, InboundKind, StepResult
from tests.support.harness import parts
from services.views import (
    CustomerView,
    DispatcherView,
    ExceptionInfo,
    JobInfo,
    TechnicianView,
    TechVisit,
    VisitContacts,
    VisitInfo,
)

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # 09:00 in Shanghai
SLOT = (NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2))
LATER = (NOW + timedelta(days=2), NOW + timedelta(days=2, hours=2))
SHOP = (31.2304, 121.4737)
POLICY = ServicePolicy()


def event(kind: InboundKind, text: str = "", *, bot: str = "customer", chat_type: str = "private", user: str = "u1", **fields) -> Inbound:
    chat = ChatRef("web", bot, "-100" if chat_type == "group" else user)
    return Inbound(chat, "1", kind, user, chat_type=chat_type, text=text, user_name="Dora", **fields)


def run(spec: FlowSpec, view, ev: Inbound, state: str = "idle", data: dict | None = None) -> StepResult:
    return spec.step(StepInput(ev, state, data or {}, view, NOW, "en", POLICY))


def keys(result: StepResult) -> list[str]:
    """What the replies read as: a message joined from several (services.messages.joined) as its parts."""
    return [key for m in result.replies for key in parts(m.text)]


def button_data(result: StepResult) -> list[str]:
    return [b.data for m in result.replies for row in m.buttons for b in row]


# --- the customer -------------------------------------------------------------------------------

DELIVERY = VisitInfo(11, "delivery", VisitStatus.CREATED.value, None, None, False, None, slots=(SLOT, LATER))
INSTALL = VisitInfo(12, "installation", VisitStatus.CREATED.value, None, None, False, 11)
SOFA = JobInfo(5, "Sofa", "Road 1", (DELIVERY, INSTALL))
CUSTOMER_VIEW = CustomerView(7, "Zhang", None, (SOFA,))
STRANGER = CustomerView(None, "", None, ())


def customer_job(*visits: VisitInfo) -> CustomerView:
    return CustomerView(7, "Zhang", None, (JobInfo(5, "Sofa", "Road 1", visits),))


def press(spec: FlowSpec, view, action, state: str = "idle", data: dict | None = None, **kw) -> StepResult:
    bot = {"customer": "customer"}.get(spec.name, "staff")
    chat_type = "group" if spec.name == "dispatcher" else "private"
    return run(spec, view, event(InboundKind.BUTTON, action if isinstance(action, str) else encode(action), bot=bot, chat_type=chat_type, **kw), state, data)


def test_opening_the_link_binds_the_chat_and_offers_the_first_visits_times():
    view = CustomerView(7, "Zhang", SOFA, (SOFA,))
    result = run(CUSTOMER_FLOW, view, event(InboundKind.COMMAND, "start", payload=" tok "), state="new")
    assert keys(result) == ["customer.welcome", "customer.order_summary", "customer.choose_slot"]
    assert result.commands[0] == c.BindCustomer("tok", c.ChatIdentity("web", "customer", "u1", "u1", "en"))
    assert (result.state, result.data) == ("choose_slot", {"visit": 11, "version": 1})
    offered = [decode(d) for d in button_data(result) if d.startswith("sl:")]
    # the first free day's windows at once; later days behind a day button each (issue 10: the whole horizon)
    assert offered == [PickSlot(11, *SLOT)]
    assert [decode(d) for d in button_data(result) if d.startswith("bd:")] == [PickDay(11, LATER[0].astimezone(ServicePolicy().tz).date())]


def test_a_link_whose_visit_has_no_times_binds_and_waits_idle():
    job = JobInfo(5, "Sofa", "Road 1", (VisitInfo(11, "delivery", "created", None, None, False, None, slots=()),))
    result = run(CUSTOMER_FLOW, CustomerView(7, "Zhang", job, (job,)), event(InboundKind.COMMAND, "start", payload="tok"), state="new")
    assert keys(result) == ["customer.welcome", "customer.order_summary"]
    assert (result.state, result.data) == ("idle", {})


def test_an_unknown_link_is_refused_and_start_without_one_shows_the_orders():
    assert keys(run(CUSTOMER_FLOW, STRANGER, event(InboundKind.COMMAND, "start", payload="nope"), state="new")) == ["error.link_invalid"]
    assert keys(run(CUSTOMER_FLOW, STRANGER, event(InboundKind.COMMAND, "start"), state="new")) == ["customer.hint_new"]
    assert keys(run(CUSTOMER_FLOW, CUSTOMER_VIEW, event(InboundKind.COMMAND, "start"))) == ["customer.order_summary"]


def test_the_order_summary_offers_each_visit_its_next_action():
    booked_soon = VisitInfo(13, "repair", "booked", NOW + timedelta(hours=3), NOW + timedelta(hours=5), False, None)
    booked_later = VisitInfo(14, "repair", "booked", *LATER, False, None)
    done = VisitInfo(15, "repair", "completed", *SLOT, False, None)
    confirmed = VisitInfo(16, "repair", "confirmed", *SLOT, False, None)
    rated = VisitInfo(17, "repair", "confirmed", *SLOT, True, None)
    result = run(CUSTOMER_FLOW, customer_job(DELIVERY, booked_soon, booked_later, done, confirmed, rated), event(InboundKind.COMMAND, "status"))
    # within the cut-off there is nothing to move; a rated visit asks for nothing more
    assert button_data(result) == ["bk:11", "rs:14", "cx:14", "cf:15", "rq:16"]


def test_book_offers_the_visits_times_and_remembers_the_visit():
    result = press(CUSTOMER_FLOW, CUSTOMER_VIEW, Book(11))
    assert keys(result) == ["customer.choose_slot"]
    assert (result.state, result.data) == ("choose_slot", {"visit": 11, "version": 1})
    # the first free day's windows at once, then a button for each later day with a free window
    later_day = LATER[0].astimezone(POLICY.tz).date()
    assert button_data(result) == [encode(PickSlot(11, *SLOT)), encode(PickDay(11, later_day))]


def test_an_installation_cannot_be_booked_before_its_delivery():
    assert keys(press(CUSTOMER_FLOW, CUSTOMER_VIEW, Book(12))) == ["error.book_dependency_first"]


@pytest.mark.parametrize("data", ["bk:11", "cf:abc", "sl:x", "rt:1:9", "cx:-1"])
def test_a_stranger_is_told_to_open_their_link_whatever_the_button_says(data):
    assert keys(press(CUSTOMER_FLOW, STRANGER, data)) == ["customer.hint_new"]


def test_picking_a_time_books_it_and_offers_the_next_visit():
    result = press(CUSTOMER_FLOW, CUSTOMER_VIEW, PickSlot(11, *SLOT), state="choose_slot", data={"visit": 11})
    assert keys(result) == ["customer.booked", "customer.book_next"]
    assert result.commands == (c.BookVisit(11, 7, *SLOT),)
    assert button_data(result) == ["bk:12"]
    assert (result.state, result.data) == ("idle", {})


def test_a_time_for_a_visit_already_done_is_stale():
    # a booked visit picks a time to move to (issue 10); one that is done has nothing to pick
    done = VisitInfo(11, "delivery", "completed", *SLOT, False, None)
    assert keys(press(CUSTOMER_FLOW, customer_job(done), PickSlot(11, *LATER))) == ["hint.stale_button"]


def test_confirming_a_finished_visit_asks_for_a_rating_of_one_to_five():
    done = VisitInfo(15, "repair", "completed", *SLOT, False, None)
    result = press(CUSTOMER_FLOW, customer_job(done), ConfirmDone(15))
    assert keys(result) == ["customer.confirmed", "customer.rate_prompt"]
    # one message for the press, on the rating's card (the score then replaces the question)
    assert len(result.replies) == 1 and result.replies[0].card == ("rate", 15)
    assert [decode(d) for d in button_data(result)] == [Rate(15, n) for n in range(1, 6)]
    assert (result.state, result.data) == ("rate", {"visit": 15, "version": 1})


def test_a_visit_is_rated_once():
    confirmed = VisitInfo(16, "repair", "confirmed", *SLOT, False, None)
    result = press(CUSTOMER_FLOW, customer_job(confirmed), Rate(16, 4), state="rate", data={"visit": 16})
    assert result.commands == (c.RateVisit(16, 7, 4),) and result.state == "comment"
    already = VisitInfo(16, "repair", "confirmed", *SLOT, True, None)
    assert keys(press(CUSTOMER_FLOW, customer_job(already), Rate(16, 4))) == ["hint.stale_button"]


def test_a_comment_goes_with_the_visit_remembered_even_in_a_row_from_before_versions():
    result = run(CUSTOMER_FLOW, CUSTOMER_VIEW, event(InboundKind.TEXT, "Careful driver"), state="comment", data={"visit": 16})
    assert result.commands == (c.CommentRating(16, 7, "Careful driver"),)
    assert (keys(result), result.state) == (["customer.thanks"], "idle")


def test_skip_means_something_only_while_a_comment_is_awaited():
    assert keys(press(CUSTOMER_FLOW, CUSTOMER_VIEW, "skip", state="idle")) == ["hint.stale_button"]
    result = press(CUSTOMER_FLOW, CUSTOMER_VIEW, "skip", state="comment", data={"visit": 16, "version": 1})
    assert (keys(result), result.state) == (["customer.thanks"], "idle")


def test_cancelling_asks_first_and_a_finished_visit_cannot_be_cancelled():
    booked = VisitInfo(14, "repair", "booked", *LATER, False, None)
    asked = press(CUSTOMER_FLOW, customer_job(booked), "cx:14")
    assert (keys(asked), asked.state, button_data(asked)) == (["customer.cancel_confirm"], "confirm_cancel", ["cxy:14", "cxn"])
    done = VisitInfo(14, "repair", "completed", *LATER, False, None)
    assert keys(press(CUSTOMER_FLOW, customer_job(done), "cx:14")) == ["hint.stale_button"]


# --- technicians --------------------------------------------------------------------------------

STEPS = (
    ChecklistStep("intact", StepKind.YES_NO, {"en": "Intact?"}),
    ChecklistStep("legs", StepKind.NUMBER, {"en": "Legs?"}, minimum=2, maximum=12),
    ChecklistStep("fabric", StepKind.CHOICE, {"en": "Fabric"}, ("OK", "Marks")),
)


def tech_visit(visit_id: int, status: VisitStatus, *, answered=(), dependency_done=True, steps=STEPS, slot=SLOT) -> TechVisit:
    return TechVisit(visit_id, "delivery", status.value, *slot, "Sofa", "Road 1", *SHOP, "Zhang", "139", steps,
                     frozenset(answered), dependency_done)


def technician(*visits: TechVisit) -> TechnicianView:
    return TechnicianView(3, "Wang", None, "", visits)


def test_accepting_an_offer_and_an_offer_no_longer_open():
    result = press(TECHNICIAN_FLOW, technician(tech_visit(21, VisitStatus.BOOKED)), "acc:21")
    assert result.commands == (c.AcceptOffer(21, 3),) and button_data(result) == ["go:21"]
    assert keys(press(TECHNICIAN_FLOW, technician(tech_visit(21, VisitStatus.ACCEPTED)), "acc:21")) == ["tech.offer_gone"]


def test_an_unbound_technician_is_told_to_open_their_invite_for_every_guarded_step():
    stranger = TechnicianView(None, "", None, "", ())
    for data in ("acc:21", "go:x", "st:1", "rp:2"):
        assert keys(press(TECHNICIAN_FLOW, stranger, data)) == ["tech.hint_new"], data
    for command in ("today", "visits", "offduty", "onduty"):
        assert keys(run(TECHNICIAN_FLOW, stranger, event(InboundKind.COMMAND, command, bot="staff"))) == ["tech.hint_new"], command


def test_on_my_way_asks_for_the_location_and_a_near_one_checks_in():
    view = technician(tech_visit(21, VisitStatus.ACCEPTED))
    going = press(TECHNICIAN_FLOW, view, "go:21")
    assert keys(going) == ["tech.en_route", "tech.share_location"]
    assert (going.state, going.data) == ("await_location", {"visit": 21, "version": 1})
    here = run(TECHNICIAN_FLOW, view, event(InboundKind.LOCATION, bot="staff", latitude=SHOP[0], longitude=SHOP[1]), "await_location", going.data)
    assert here.commands == (c.CheckIn(21, 3, *SHOP, kind="static"),) and here.state == "idle"


def test_a_far_check_in_waits_for_a_reason_and_keeps_where_it_was_made():
    view = technician(tech_visit(21, VisitStatus.EN_ROUTE))
    far = run(TECHNICIAN_FLOW, view, event(InboundKind.LOCATION, bot="staff", latitude=SHOP[0] + 0.05, longitude=SHOP[1]), "await_location", {"visit": 21})
    assert (keys(far), far.state) == (["tech.too_far"], "checkin_reason")
    assert far.data == {"visit": 21, "lat": SHOP[0] + 0.05, "lon": SHOP[1], "live": False, "version": 1}
    reason = run(TECHNICIAN_FLOW, view, event(InboundKind.TEXT, "Met at the gate", bot="staff"), "checkin_reason", far.data)
    assert reason.commands == (c.CheckIn(21, 3, SHOP[0] + 0.05, SHOP[1], "Met at the gate", "static"),)


def test_live_location_checks_in_only_when_it_reaches_the_address():
    view = technician(tech_visit(21, VisitStatus.EN_ROUTE))
    driving = run(TECHNICIAN_FLOW, view, event(InboundKind.LOCATION, bot="staff", latitude=SHOP[0] + 0.05, longitude=SHOP[1], live=True), "await_location", {"visit": 21})
    assert (driving.replies, driving.commands, driving.state) == ((), (c.TrackLocation(3, SHOP[0] + 0.05, SHOP[1]),), None)
    arrived = run(TECHNICIAN_FLOW, view, event(InboundKind.LOCATION, bot="staff", latitude=SHOP[0], longitude=SHOP[1], live=True), "await_location", {"visit": 21})
    assert arrived.commands == (c.CheckIn(21, 3, *SHOP, kind="live"), c.TrackLocation(3, *SHOP)) and arrived.state == "idle"


def test_work_waits_for_the_delivery_it_depends_on():
    view = technician(tech_visit(22, VisitStatus.ON_SITE, dependency_done=False))
    assert keys(press(TECHNICIAN_FLOW, view, "st:22")) == ["error.dependency_not_completed"]


def test_the_checklist_starts_at_the_first_unanswered_step():
    result = press(TECHNICIAN_FLOW, technician(tech_visit(21, VisitStatus.ON_SITE, answered={"intact"})), "st:21")
    assert result.commands == (c.StartWork(21, 3),)
    assert (keys(result), result.data) == (["tech.step_number"], {"visit": 21, "step": 1, "version": 1})


def test_answer_buttons_count_only_for_the_step_being_asked():
    view = technician(tech_visit(21, VisitStatus.IN_PROGRESS))
    asked = {"visit": 21, "step": 0}
    assert keys(press(TECHNICIAN_FLOW, view, Answer(21, 1, "yes"), "checklist", asked)) == ["hint.stale_button"]
    assert keys(press(TECHNICIAN_FLOW, view, Answer(21, 0, "yes"), "idle")) == ["hint.stale_button"]
    yes = press(TECHNICIAN_FLOW, view, Answer(21, 0, "yes"), "checklist", asked)
    assert yes.commands == (c.AnswerStep(21, 3, "intact", "yes"),)
    assert (keys(yes), yes.data) == (["tech.step_number"], {"visit": 21, "step": 1, "version": 1})


def test_a_choice_is_answered_with_its_text_and_a_choice_beyond_the_list_is_stale():
    view = technician(tech_visit(21, VisitStatus.IN_PROGRESS, answered={"intact", "legs"}))
    asked = {"visit": 21, "step": 2}
    assert keys(press(TECHNICIAN_FLOW, view, Answer(21, 2, "5"), "checklist", asked)) == ["hint.stale_button"]
    marks = press(TECHNICIAN_FLOW, view, Answer(21, 2, "1"), "checklist", asked)
    assert marks.commands == (c.AnswerStep(21, 3, "fabric", "Marks"),)
    # Complete, the customer's signature (issue 12 part 6), a problem
    assert (keys(marks), marks.state, button_data(marks)) == (["tech.checklist_done"], "idle", ["done:21", "sig:21", "rp:21"])


def test_a_number_out_of_range_is_explained_and_asked_again():
    view = technician(tech_visit(21, VisitStatus.IN_PROGRESS, answered={"intact"}))
    result = run(TECHNICIAN_FLOW, view, event(InboundKind.TEXT, "99", bot="staff"), "checklist", {"visit": 21, "step": 1})
    assert keys(result) == ["error.number_out_of_range", "tech.step_number"] and result.state is None


def test_checklist_data_of_a_newer_version_reads_as_gone():
    view = technician(tech_visit(21, VisitStatus.IN_PROGRESS))
    result = run(TECHNICIAN_FLOW, view, event(InboundKind.TEXT, "4", bot="staff"), "checklist", {"visit": 21, "step": 1, "version": 2})
    assert (keys(result), result.state, result.commands) == (["hint.stale_button"], "idle", ())


def test_a_problem_report_is_written_reason_note_photos_then_sent():
    view = technician(tech_visit(21, VisitStatus.EN_ROUTE))
    reasons = press(TECHNICIAN_FLOW, view, "rp:21")
    assert [decode(d) for d in button_data(reasons)] == [PickReason(21, r) for r in ExceptionReason]
    # a reason counts only while one is asked for
    assert keys(press(TECHNICIAN_FLOW, view, "rr:21:goods_damaged", "idle")) == ["hint.stale_button"]
    noted = press(TECHNICIAN_FLOW, view, "rr:21:goods_damaged", reasons.state, reasons.data)
    assert (noted.state, noted.data) == ("report_note", ProblemDraft(21, ExceptionReason.GOODS_DAMAGED).to_json())
    photos = run(TECHNICIAN_FLOW, view, event(InboundKind.TEXT, "Corner crushed", bot="staff"), noted.state, noted.data)
    assert keys(photos) == ["tech.report_photo_required"]
    assert keys(press(TECHNICIAN_FLOW, view, "rsend", photos.state, photos.data)) == ["tech.report_photo_required"]
    added = run(TECHNICIAN_FLOW, view, event(InboundKind.PHOTO, bot="staff", file_id="F1", file_path="/m/1.jpg"), photos.state, photos.data)
    assert keys(added) == ["tech.report_photo_added"] and added.state is None
    sent = press(TECHNICIAN_FLOW, view, "rsend", "report_photo", added.data)
    photo = c.PhotoRef("web", "F1", "/m/1.jpg")
    assert sent.commands == (c.ReportException(21, 3, "goods_damaged", "Corner crushed", (photo,)),)
    assert (keys(sent), sent.state, sent.data) == (["tech.report_sent"], "idle", {})


def test_a_report_written_before_data_had_versions_is_sent_as_it_was():
    stored = {"visit": 21, "reason": "parts_missing", "note": "two legs", "photos": [{"platform": "telegram", "file_id": "A", "path": "/m/a.jpg"}]}
    sent = press(TECHNICIAN_FLOW, technician(tech_visit(21, VisitStatus.ON_SITE)), "rsend", "report_photo", stored)
    assert sent.commands == (c.ReportException(21, 3, "parts_missing", "two legs", (c.PhotoRef("telegram", "A", "/m/a.jpg"),)),)


def test_report_data_round_trips_through_its_stored_shape():
    draft = ProblemDraft(21, ExceptionReason.OTHER, (c.PhotoRef("web", "F", "/p"),), "note")
    assert draft.to_json() == {
        "visit": 21, "reason": "other", "photos": [{"platform": "web", "file_id": "F", "path": "/p"}], "note": "note", "version": 1,
    }
    assert ProblemDraft.from_json(draft.to_json()) == draft
    assert ChecklistAt.from_json({"visit": "x"}) is None and ChecklistAt.from_json(None) is None


def test_today_lists_todays_visits_in_order_and_later_offers():
    first = tech_visit(21, VisitStatus.ACCEPTED, slot=(NOW + timedelta(hours=2), NOW + timedelta(hours=4)))
    second = tech_visit(22, VisitStatus.BOOKED, slot=(NOW + timedelta(hours=1), NOW + timedelta(hours=2)))
    offer = tech_visit(23, VisitStatus.BOOKED, slot=LATER)
    result = run(TECHNICIAN_FLOW, technician(first, second, offer), event(InboundKind.COMMAND, "today", bot="staff"))
    assert [m.text["params"].get("visit") for m in result.replies] == [None, 22, 21, 23]
    assert result.replies[0].text["params"] == {"count": 2, "later": 1}


# --- dispatchers --------------------------------------------------------------------------------

EXCEPTION = ExceptionInfo(31, "open", 21, "delivery", ((4, "Chen"), (5, "Li")))
DISPATCHER_VIEW = DispatcherView(1, 2, None, EXCEPTION)
NOBODY = DispatcherView(1, None, None, None)


@pytest.mark.parametrize("data", ["xa:31", "xa:-1", "xa:1e9", "xt:31:99999999999", "sc:x", "ra:1", "xcn"])
def test_a_group_member_who_is_not_a_dispatcher_is_refused_before_the_button_is_read(data):
    assert keys(press(DISPATCHER_FLOW, NOBODY, data)) == ["dispatcher.not_allowed"]


def test_reassign_lists_the_candidates_and_only_they_can_be_picked():
    listed = press(DISPATCHER_FLOW, DISPATCHER_VIEW, Reassign(31))
    # the free ones, then anyone skilled (busy ones only with an explicit override)
    assert [decode(d) for d in button_data(listed)] == [ReassignTo(31, 4), ReassignTo(31, 5), AssignAnyone(21)]
    assert keys(press(DISPATCHER_FLOW, DISPATCHER_VIEW, ReassignTo(31, 9))) == ["dispatcher.already_handled"]
    picked = press(DISPATCHER_FLOW, DISPATCHER_VIEW, ReassignTo(31, 5))
    assert picked.commands == (c.ReassignVisit(31, 5, 2),)
    nobody_free = DispatcherView(1, 2, None, ExceptionInfo(31, "open", 21, "delivery", ()))
    assert keys(press(DISPATCHER_FLOW, nobody_free, Reassign(31))) == ["dispatcher.no_candidates"]


def test_a_resolved_exception_is_already_handled():
    resolved = DispatcherView(1, 2, None, ExceptionInfo(31, "resolved", 21, "delivery", None))
    assert keys(press(DISPATCHER_FLOW, resolved, "xa:31")) == ["dispatcher.already_handled"]


def test_phone_numbers_go_to_the_dispatchers_own_chat_only():
    view = DispatcherView(1, 2, None, None, VisitContacts(21, None, "Zhang", "139", "Wang", "138"))
    result = press(DISPATCHER_FLOW, view, CallDetails(21), user="dora")
    private, public = result.replies
    assert private.to == ChatRef("web", "staff", "dora") and private.text["key"] == "dispatcher.call_details"
    assert public.to is None and public.text["key"] == "dispatcher.details_sent"


def test_extending_a_deadline_names_its_stage_and_an_unknown_stage_is_stale():
    assert press(DISPATCHER_FLOW, DISPATCHER_VIEW, "sx:21:arrival").commands == (c.ExtendSla(21, "arrival", 30, 2),)
    assert keys(press(DISPATCHER_FLOW, DISPATCHER_VIEW, "sx:21:lunch")) == ["hint.stale_button"]


def test_people_talking_in_the_group_are_not_answered():
    assert run(DISPATCHER_FLOW, NOBODY, event(InboundKind.TEXT, "lunch?", bot="staff", chat_type="group")).replies == ()


# --- what each event asks the view for ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ev", "token", "slots_for"),
    [
        (event(InboundKind.COMMAND, "start", payload=" tok "), "tok", None),
        (event(InboundKind.COMMAND, "start"), None, None),
        (event(InboundKind.COMMAND, "help"), None, None),
        (event(InboundKind.COMMAND, "status"), None, None),
        (event(InboundKind.TEXT, "start"), None, None),
        (event(InboundKind.BUTTON, "bk:11"), None, 11),
        (event(InboundKind.BUTTON, "bk:0"), None, None),
        (event(InboundKind.BUTTON, "rs:11"), None, 11),  # moving offers times (the old one kept meanwhile)
        (event(InboundKind.BUTTON, encode(PickSlot(11, *SLOT))), None, None),
    ],
)
def test_the_customer_view_looks_for_times_only_for_a_step_that_offers_them(ev, token, slots_for):
    request = CUSTOMER.view_request(ev)
    assert (request.token, request.slots_for) == (token, slots_for)


def test_the_technician_view_peeks_at_a_token_only_for_start():
    assert TECHNICIAN.view_request(event(InboundKind.COMMAND, "start", bot="staff", payload="tok")).token == "tok"
    assert TECHNICIAN.view_request(event(InboundKind.COMMAND, "today", bot="staff")).token is None


@pytest.mark.parametrize(
    ("data", "exception_id", "visit_id", "candidates"),
    [
        ("xa:31", 31, None, False),
        ("xc:31", 31, None, False),
        ("xr:31", 31, None, True),
        ("xt:31:4", 31, None, True),
        ("sr:21", None, 21, True),
        ("sc:21", None, 21, False),
        ("sx:21:accept", None, None, False),
        ("xa:2147483648", None, None, False),
    ],
)
def test_the_dispatcher_view_looks_up_the_record_and_candidates_only_where_needed(data, exception_id, visit_id, candidates):
    request = DISPATCHER.view_request(event(InboundKind.BUTTON, data, bot="staff", chat_type="group"))
    assert (request.exception_id, request.visit_id, request.candidates) == (exception_id, visit_id, candidates)


def test_a_late_visit_is_offered_to_the_free_technicians_by_assign_buttons():
    view = DispatcherView(1, 2, None, None, VisitContacts(21, ((4, "Chen"),), "Zhang", "139", "Wang", "138"))
    # the free one, then anyone skilled (a busy one only with an explicit override)
    assert button_data(press(DISPATCHER_FLOW, view, ReassignLate(21))) == ["as:21:4", "dan:21"]
