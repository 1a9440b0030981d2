"""Technicians' paths off the happy one, as pure rules and steps: hand back, help, return visits, repair codes, the job
brief, delays typed in free text, the checklist's place after /cancel, honest check-ins and private grab offers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conversations.i18n import translate
from conversations import understanding
from conversations.flow import StepInput
from conversations.flows.technician import TECHNICIAN_FLOW, ChecklistAt
from conversations.i18n import catalog
from conversations.understanding import Intent, Understood
from domain import commands as c
from domain import events as ev
from domain import lifecycle
from domain.errors import IllegalTransition
from domain.field_work import (
    APPLIANCE_CODES,
    DEFAULT_REPAIR_CODES,
    FURNITURE_CODES,
    GENERAL_CODES,
    CheckinKind,
    ReturnReason,
    check_repair_codes,
    checkin_flags,
    job_brief,
    late_estimate,
    repair_codes,
)
from domain.model import ChecklistStep, Customer, Job, StepKind, Visit, VisitStatus
from domain.policy import ServicePolicy
from services.messages import ChatRef, Inbound, InboundKind, StepResult, distance
from services.notifications import offer_card
from services.views import TechnicianView, TechVisit

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # 09:00 in Shanghai
SLOT = (NOW + timedelta(hours=2), NOW + timedelta(hours=4))
SHOP = (31.2304, 121.4737)
POLICY = ServicePolicy()
STEPS = (
    ChecklistStep("intact", StepKind.YES_NO, {"en": "Intact?"}),
    ChecklistStep("legs", StepKind.NUMBER, {"en": "Legs?"}, minimum=2, maximum=12),
)
BRIEF = "call first, 3rd floor, no lift\nSofa × 2"


def visit_row(status: VisitStatus, technician_id: int | None = 7, **fields) -> Visit:
    return Visit(job_id=1, kind="delivery", sequence=1, duration_minutes=45, status=status.value, technician_id=technician_id, id=5, **fields)


def tech_visit(visit_id: int, status: VisitStatus, *, kind: str = "delivery", answered=(), slot=SLOT, brief: str = "",
               category: str = "sofa") -> TechVisit:
    return TechVisit(visit_id, kind, status.value, *slot, "Sofa", "Road 1", *SHOP, "Zhang", "139", STEPS, frozenset(answered), True,
                     None, brief, category)


def technician(*visits: TechVisit) -> TechnicianView:
    return TechnicianView(3, "Wang", None, "", visits)


def event(kind: InboundKind, text: str = "", **fields) -> Inbound:
    return Inbound(ChatRef("web", "staff", "u1"), "1", kind, "u1", text=text, user_name="Wang", **fields)


def run(view: TechnicianView, inbound: Inbound, state: str = "idle", data: dict | None = None) -> StepResult:
    return TECHNICIAN_FLOW.step(StepInput(inbound, state, data or {}, view, NOW, "en", POLICY))


def keys(result: StepResult) -> list[str]:
    return [m.text["key"] for m in result.replies]


def button_data(result: StepResult) -> list[str]:
    return [b.data for m in result.replies for row in m.buttons for b in row]


def texts(result: StepResult) -> str:
    return repr([m.text for m in result.replies])


# --- the domain -----------------------------------------------------------------------------------


def test_handing_back_an_accepted_visit_books_it_again_without_its_technician_who_is_not_offered_it_again():
    visit = visit_row(VisitStatus.EN_ROUTE)
    event_ = lifecycle.hand_back(visit, 1, 7, "van broke down")
    assert isinstance(event_, ev.VisitHandedBack) and event_.data["reason"] == "van broke down"
    assert visit.status == "booked" and visit.technician_id is None and visit.declined_by == [7]
    with pytest.raises(IllegalTransition):
        lifecycle.hand_back(visit_row(VisitStatus.IN_PROGRESS), 1, 7, "late")  # started work is not handed back


def test_a_visit_needing_a_return_ends_in_its_own_state_with_a_linked_follow_up():
    visit = visit_row(VisitStatus.IN_PROGRESS, crew_size=2)
    follow_up = lifecycle.follow_up_of(visit, 3)
    follow_up.id = 9
    event_ = lifecycle.end_for_return(visit, follow_up, 1, 7, ReturnReason.MISSING_PART.value, "hinge")
    assert visit.status == VisitStatus.RETURN_NEEDED.value and visit.return_reason == "missing_part: hinge"
    assert (follow_up.status, follow_up.kind, follow_up.sequence, follow_up.crew_size) == ("created", "delivery", 3, 2)
    assert follow_up.follow_up_of_visit_id == 5 and event_.data["follow_up_visit_id"] == 9
    assert visit.state not in lifecycle.OPEN and visit.state not in lifecycle.DONE


def test_a_check_in_beyond_the_radius_is_not_presence_and_its_kind_is_recorded():
    near, far = visit_row(VisitStatus.EN_ROUTE), visit_row(VisitStatus.EN_ROUTE)
    assert lifecycle.check_in(near, 1, 7, 120.0, None, "live", 500).data["within"] is True
    assert lifecycle.check_in(far, 1, 7, 2200.0, "parking", "static", 500).data["within"] is False
    assert (far.checkin_kind, far.checkin_distance_m) == ("static", 2200.0)
    assert checkin_flags("live", 100, 500) == () and checkin_flags("static", 100, 500) == ("static",)
    assert checkin_flags("live", 2200, 500) == ("far",)


def test_repair_codes_per_product_category_with_defaults_for_appliances_and_furniture():
    assert repair_codes(DEFAULT_REPAIR_CODES, "washer") is APPLIANCE_CODES
    assert repair_codes(DEFAULT_REPAIR_CODES, "sofa") is FURNITURE_CODES
    assert repair_codes(DEFAULT_REPAIR_CODES, "bicycle") is GENERAL_CODES
    assert check_repair_codes(APPLIANCE_CODES, "leak", "part_replaced")
    assert not check_repair_codes(APPLIANCE_CODES, "fabric", "part_replaced") and not check_repair_codes(APPLIANCE_CODES, None, None)


def test_the_job_brief_is_the_erp_notes_and_items():
    job = Job("erp", "1", 1, "Road 1", *SHOP, "H", "sofa", "Sofa", None,
              items=[{"name": "Sofa", "qty": 2}, {"sku": "LEG-4"}], notes="call first, 3rd floor, no lift")
    assert job_brief(job) == "call first, 3rd floor, no lift\nSofa × 2\nLEG-4"
    assert job_brief(Job("erp", "2", 1, "Road 1", *SHOP, "H", "sofa", "Sofa", None)) == ""


def test_a_delay_moves_the_expected_start_from_the_plan_or_from_now_when_that_has_passed():
    visit = visit_row(VisitStatus.ACCEPTED, slot_start=SLOT[0], slot_end=SLOT[1])
    assert late_estimate(visit, NOW, 20) == SLOT[0] + timedelta(minutes=20)
    assert late_estimate(visit, SLOT[0] + timedelta(hours=1), 20) == SLOT[0] + timedelta(hours=1, minutes=20)


def test_every_label_the_paths_build_from_codes_is_in_both_catalogs():
    wanted = {f"tech.return_reason.{r.value}" for r in ReturnReason} | {f"tech.checkin_kind.{k.value}" for k in CheckinKind}
    for codes in DEFAULT_REPAIR_CODES.values():
        wanted |= {f"tech.fault.{f}" for f in codes.faults} | {f"tech.method.{m}" for m in codes.methods}
    wanted |= {f"status.{s.value}" for s in VisitStatus}
    for language in ("en", "zh"):
        assert not wanted - set(catalog(language)), language


# --- the steps --------------------------------------------------------------------------------------


@pytest.fixture
def understood(monkeypatch):
    """Make the parser (being written elsewhere) understand what a test says it does."""
    said: dict[str, Understood] = {}
    monkeypatch.setattr(understanding, "understand", lambda text, role, now, language=None: said.get(text, Understood(Intent.UNKNOWN)))
    return said


def test_running_late_in_free_text_moves_the_estimate_and_confirms(understood):
    understood["堵车了，晚到20分钟"] = Understood(Intent.LATE, minutes=20)
    result = run(technician(tech_visit(21, VisitStatus.EN_ROUTE)), event(InboundKind.TEXT, "堵车了，晚到20分钟"))
    assert result.commands == (c.ReportLate(21, 3, 20),) and keys(result) == ["tech.late_noted"]


def test_on_my_way_and_done_in_free_text_ask_with_a_button_before_anything_changes(understood):
    understood["on my way"] = Understood(Intent.ON_MY_WAY)
    understood["done"] = Understood(Intent.DONE)
    going = run(technician(tech_visit(21, VisitStatus.ACCEPTED)), event(InboundKind.TEXT, "on my way"))
    assert going.commands == () and button_data(going) == ["go:21"] and going.state is None
    finished = run(technician(tech_visit(21, VisitStatus.IN_PROGRESS, answered=("intact", "legs"))), event(InboundKind.TEXT, "done"))
    assert finished.commands == () and "done:21" in button_data(finished)
    halfway = run(technician(tech_visit(21, VisitStatus.IN_PROGRESS, answered=("intact",))), event(InboundKind.TEXT, "done"))
    assert button_data(halfway) == ["ck:21"]


def test_arrived_and_problem_in_free_text_answer_with_the_button_that_asks_the_location_or_the_reason(understood):
    understood["到了"] = Understood(Intent.ARRIVED)
    understood["出问题了"] = Understood(Intent.PROBLEM)
    arrived = run(technician(tech_visit(21, VisitStatus.EN_ROUTE)), event(InboundKind.TEXT, "到了"))
    assert button_data(arrived) == ["arr:21"] and arrived.commands == () and arrived.state is None
    problem = run(technician(tech_visit(21, VisitStatus.IN_PROGRESS)), event(InboundKind.TEXT, "出问题了"))
    assert button_data(problem) == ["rp:21"] and problem.commands == () and problem.state is None


def test_cancel_in_the_problem_menu_goes_back_to_the_first_unanswered_checklist_step():
    view = technician(tech_visit(21, VisitStatus.IN_PROGRESS, answered=("intact",)))
    result = run(view, event(InboundKind.COMMAND, "cancel"), state="report_reason", data={"visit": 21})
    assert keys(result) == ["common.cancelled", "tech.step_number"] and result.state == "checklist"
    assert result.data == ChecklistAt(21, 1).to_json()


def test_today_counts_a_visit_under_way_booked_for_another_day():
    yesterday = (SLOT[0] - timedelta(days=1), SLOT[1] - timedelta(days=1))
    result = run(technician(tech_visit(21, VisitStatus.IN_PROGRESS, slot=yesterday)), event(InboundKind.COMMAND, "today"))
    assert keys(result)[0] == "tech.today_header" and result.replies[0].text["params"]["count"] == 1
    assert "ck:21" in button_data(result)


def test_a_repair_asks_for_its_record_before_it_is_completed():
    """Complete on a repair opens its record (conversations/flows/stock.py; tests/unit/test_stock.py walks it through)."""
    view = technician(tech_visit(21, VisitStatus.IN_PROGRESS, kind="repair", category="washer", answered=("intact", "legs")))
    asked = run(view, event(InboundKind.BUTTON, "done:21"))
    assert asked.state == "repair_record" and asked.commands == () and keys(asked) == ["tech.repair_record_next"]
    assert button_data(asked) == ["rcs:21"]


def test_a_static_pin_and_live_location_check_in_with_their_kind():
    view = technician(tech_visit(21, VisitStatus.EN_ROUTE))
    pin = run(view, event(InboundKind.LOCATION, latitude=SHOP[0], longitude=SHOP[1]), state="await_location", data={"visit": 21})
    assert pin.commands == (c.CheckIn(21, 3, SHOP[0], SHOP[1], kind="static"),)
    live = run(view, event(InboundKind.LOCATION, latitude=SHOP[0], longitude=SHOP[1], live=True), state="await_location", data={"visit": 21})
    assert c.CheckIn(21, 3, SHOP[0], SHOP[1], kind="live") in live.commands


def test_the_visit_card_and_check_in_show_the_job_brief():
    view = technician(tech_visit(21, VisitStatus.ACCEPTED, brief=BRIEF))
    today = run(view, event(InboundKind.COMMAND, "today"))
    assert "call first, 3rd floor" in texts(today)
    checked_in = run(view, event(InboundKind.LOCATION, latitude=SHOP[0], longitude=SHOP[1]), state="await_location", data={"visit": 21})
    assert checked_in.replies[0].text["key"] == "tech.with_brief" and "no lift" in texts(checked_in)


def test_visit_options_hand_back_with_a_reason_and_return_visit_paths():
    accepted = technician(tech_visit(21, VisitStatus.ACCEPTED))
    options = run(accepted, event(InboundKind.BUTTON, "vo:21"))
    assert {"hb:21", "hlp:21", "rp:21"} <= set(button_data(options)) and "rv:21" not in button_data(options)
    asked = run(accepted, event(InboundKind.BUTTON, "hb:21"))
    assert asked.state == "hand_back_reason" and asked.commands == ()
    given = run(accepted, event(InboundKind.TEXT, "van broke down"), state="hand_back_reason", data={"visit": 21})
    assert given.commands == (c.HandBackVisit(21, 3, "van broke down"),) and given.state == "idle"
    on_site = technician(tech_visit(21, VisitStatus.IN_PROGRESS))
    reasons = run(on_site, event(InboundKind.BUTTON, "rv:21"))
    assert reasons.state == "return_reason" and "rvr:21:missing_part" in button_data(reasons)
    ended = run(on_site, event(InboundKind.BUTTON, "rvr:21:missing_part"), state="return_reason", data={"visit": 21})
    assert ended.commands == (c.EndForReturn(21, 3, "missing_part", ""),)
    other = run(on_site, event(InboundKind.BUTTON, "rvr:21:other"), state="return_reason", data={"visit": 21})
    assert other.state == "return_note" and other.commands == ()
    noted = run(on_site, event(InboundKind.TEXT, "wall needs drilling first"), state="return_note", data={"visit": 21})
    assert noted.commands == (c.EndForReturn(21, 3, "other", "wall needs drilling first"),)
    helped = run(on_site, event(InboundKind.BUTTON, "hlp:21"))
    assert helped.commands == (c.RequestAssistance(21, 3),)


def test_a_grab_offer_card_shows_district_and_job_not_the_customer():
    visit = Visit(job_id=1, kind="delivery", sequence=1, duration_minutes=45, status="booked", slot_start=SLOT[0], slot_end=SLOT[1], id=5)
    job = Job("erp", "1", 1, "Huangpu District, 100 Nanjing East Road", *SHOP, "Huangpu", "sofa", "Sofa", None, notes="no lift")
    customer = Customer("Zhang Wei", "13912345678")
    masked, _ = offer_card(visit, job, customer, masked=True)
    assert "Zhang Wei" not in repr(masked) and "13912345678" not in repr(masked) and "Nanjing East" not in repr(masked)
    assert "Huangpu" in repr(masked) and "no lift" in repr(masked)
    full, _ = offer_card(visit, job, customer)
    assert "Zhang Wei" in repr(full) and "13912345678" in repr(full)


def test_late_typed_while_on_the_way_is_understood_and_other_text_keeps_the_location_hint(understood):
    understood["running 15 min late"] = Understood(Intent.LATE, minutes=15)
    view = technician(tech_visit(21, VisitStatus.EN_ROUTE))
    late = run(view, event(InboundKind.TEXT, "running 15 min late"), state="await_location", data={"visit": 21})
    assert late.commands == (c.ReportLate(21, 3, 15),) and late.state is None
    other = run(view, event(InboundKind.TEXT, "hmm"), state="await_location", data={"visit": 21})
    assert keys(other) == ["tech.hint_location"] and other.commands == ()


def test_a_shop_configures_its_own_repair_lists_per_product_category_and_new_codes_show_as_written():
    from domain.field_work import parse_repair_codes

    table = parse_repair_codes('{"washer": {"faults": ["drum_bearing", "leak"], "methods": ["bearing_swapped"]}}')
    assert table["washer"].faults == ("drum_bearing", "leak") and table["sofa"] is FURNITURE_CODES
    for bad in ("[1]", '{"washer": {"faults": []}}', '{"washer": {"faults": ["Bad Code"], "methods": ["x"]}}', "{"):
        with pytest.raises(ValueError):
            parse_repair_codes(bad)


def test_a_distance_reads_in_metres_near_the_address_and_in_kilometres_beyond():
    """Seen on the walk: a pin dropped across the country read "9197081 m"."""
    def shown(metres: float, language: str = "en") -> str:
        text = distance(metres)
        return translate(text["key"], language, text["params"])

    assert [shown(m) for m in (0, 349.6, 999, 1000, 5600, 9_197_081)] == ["0 m", "350 m", "999 m", "1.0 km", "5.6 km", "9,197 km"]
    assert shown(9_197_081, "zh") == "9,197 公里" and shown(120, "zh") == "120 米"
