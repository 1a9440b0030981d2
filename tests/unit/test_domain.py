"""Pure domain rules: the visit state machine, slots, masking, checklist answers, catalogs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from conversations.i18n import catalog, translate
from domain import lifecycle
from domain.errors import DomainError, IllegalTransition, InvalidInput
from domain.masking import mask_address, mask_name, mask_phone
from domain.model import ChecklistStep, ExceptionReason, Job, StepKind, Technician, Visit, VisitStatus, parse_number
from domain.slots import Booking, Window, free_slots
from tests.support import ROOT

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # Monday 08:00 local


def visit(kind="delivery", status=VisitStatus.CREATED, technician=None, **kw) -> Visit:
    return Visit(job_id=1, kind=kind, sequence=1, duration_minutes=60, status=status.value, technician_id=technician, id=kw.pop("id", 10), **kw)


def test_a_visit_walks_the_happy_path_and_each_step_emits_its_event():
    v = visit()
    start = NOW + timedelta(hours=4)
    names = [
        lifecycle.book(v, 1, start, start + timedelta(hours=2), None).name,
        lifecycle.offer(v, 1, 7).name,
        lifecycle.accept(v, 1, 7).name,
        lifecycle.depart(v, 1, 7).name,
        lifecycle.check_in(v, 1, 7, 12.3, None).name,
        lifecycle.start(v, 1, 7, None).name,
        lifecycle.complete(v, 1, 7, checklist_done=True).name,
        lifecycle.confirm(v, 1).name,
    ]
    assert names == ["VisitBooked", "OfferMade", "VisitAccepted", "VisitEnRoute", "VisitCheckedIn", "VisitStarted", "VisitCompleted", "VisitConfirmed"]
    assert v.state is VisitStatus.CONFIRMED


def test_illegal_transitions_are_refused_with_a_domain_error():
    v = visit()
    with pytest.raises(IllegalTransition):
        lifecycle.confirm(v, 1)
    v.status, v.technician_id = VisitStatus.ACCEPTED.value, 7
    with pytest.raises(IllegalTransition):
        lifecycle.complete(v, 1, 7, checklist_done=True)
    with pytest.raises(DomainError, match="not_your_visit"):
        lifecycle.depart(v, 1, 8)


def test_an_installation_cannot_start_before_its_delivery_is_done():
    delivery = visit(status=VisitStatus.IN_PROGRESS, id=1)
    installation = visit("installation", VisitStatus.ON_SITE, technician=7, id=2, depends_on_visit_id=1)
    with pytest.raises(DomainError, match="dependency_not_completed"):
        lifecycle.start(installation, 1, 7, delivery)
    delivery.status = VisitStatus.COMPLETED.value
    assert lifecycle.start(installation, 1, 7, delivery).name == "VisitStarted"


def test_completion_needs_the_whole_checklist():
    v = visit(status=VisitStatus.IN_PROGRESS, technician=7)
    with pytest.raises(DomainError, match="checklist_incomplete"):
        lifecycle.complete(v, 1, 7, checklist_done=False)


def test_hold_and_resume_return_to_where_the_visit_was():
    v = visit(status=VisitStatus.EN_ROUTE, technician=7)
    lifecycle.hold(v, 1, exception_id=3, reason=ExceptionReason.WRONG_ADDRESS.value)
    assert v.state is VisitStatus.ON_HOLD
    lifecycle.resume(v, 1)
    assert v.state is VisitStatus.EN_ROUTE


def technician(tid: int, roles=("installer",), skills=("sofa",), start="09:00", end="18:00") -> Technician:
    return Technician(f"T{tid}", "1380000000", list(roles), list(skills), ["Huangpu"], {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": start, "end": end}, id=tid)


JOB = Job("erp", "1", 1, "addr", 31.2, 121.4, "Huangpu", "sofa", "Sofa", None, id=1)


def test_slots_respect_skills_shifts_lead_time_and_existing_bookings():
    windows = Window.parse_many("09:00-11:00,14:00-16:00")
    techs = [technician(1), technician(2, skills=("wardrobe",)), technician(3, start="13:00")]
    v = visit("installation")
    v.duration_minutes = 90
    slots = free_slots(visit=v, job=JOB, technicians=techs, bookings=[], now=NOW, tz=SHANGHAI, windows=windows, days_ahead=1, lead=timedelta(hours=2))
    first = slots[0]
    # 09:00 today is within the lead time; 14:00 today is the first, and T2 lacks the skill
    assert first.start == datetime(2026, 11, 23, 14, 0, tzinfo=SHANGHAI)
    assert set(first.technician_ids) == {1, 3}
    # T3 starts at 13:00 so never gets a morning window
    morning = [s for s in slots if s.start.hour == 9]
    assert morning and all(3 not in s.technician_ids for s in morning)
    # a 90-minute booking fills T1's two-hour window
    busy = [Booking(1, first.start, first.end, 90)]
    again = free_slots(visit=v, job=JOB, technicians=techs, bookings=busy, now=NOW, tz=SHANGHAI, windows=windows, days_ahead=1, lead=timedelta(hours=2))
    assert again[0].technician_ids == (3,)


def test_no_slot_is_offered_when_nobody_is_eligible():
    v = visit("repair")
    assert free_slots(visit=v, job=JOB, technicians=[technician(1)], bookings=[], now=NOW, tz=SHANGHAI,
                      windows=Window.parse_many("09:00-11:00"), days_ahead=3, lead=timedelta(hours=2)) == []


def test_personal_data_is_masked_for_groups():
    assert mask_phone("+86 139-1234-5678") == "861****5678"
    assert mask_phone("13912345678") == "139****5678"
    assert "Nanjing" not in mask_address("Huangpu District, 100 Nanjing East Road")
    assert mask_name("Zhang Wei") == "Z**"


def test_numeric_answers_are_checked_against_the_range():
    step = ChecklistStep("legs", StepKind.NUMBER, {"en": "Legs"}, minimum=2, maximum=12)
    assert parse_number(" 4,5 ", step) == 4.5
    with pytest.raises(InvalidInput, match="number_out_of_range"):
        parse_number("13", step)
    with pytest.raises(InvalidInput, match="number_expected"):
        parse_number("four", step)


def test_a_choice_step_needs_choices():
    with pytest.raises(InvalidInput):
        ChecklistStep.from_dict({"key": "x", "kind": "choice", "prompt": {"en": "?"}})


SOURCES = [p for d in ("conversations", "services", "domain") for p in (ROOT / d).rglob("*.py")]


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for path in SOURCES:
        text = path.read_text()
        keys |= set(re.findall(r'\bt\("([a-z_]+\.[a-z_.]+)"', text))
        keys |= set(re.findall(r'hint="([a-z_]+\.[a-z_.]+)"', text))
        keys |= set(re.findall(r'hint\("([a-z_]+\.[a-z_.]+)"', text))
        keys |= {f"error.{code}" for code in re.findall(r'(?:DomainError|NotFound|NotAllowed|InvalidInput)\("([a-z_]+)"', text)}
    keys |= {f"kind.{k}" for k in ("delivery", "installation", "repair", "inspection")}
    keys |= {f"status.{s.value}" for s in VisitStatus} | {f"reason.{r.value}" for r in ExceptionReason}
    return keys


def test_every_message_key_in_the_code_has_english_and_chinese_text():
    used = _used_keys()
    assert len(used) > 100
    for language in ("en", "zh"):
        missing = sorted(used - set(catalog(language)))
        assert not missing, f"{language} catalog lacks {missing}"


def test_no_catalog_says_one_key_twice():
    """Seen: `error.slot_invalid` twice in both catalogs; which text a reader got depended on the reader's order."""
    for language in ("en", "zh"):
        text = (ROOT / "conversations" / "locales" / language / "LC_MESSAGES" / "messages.po").read_text()
        keys = re.findall(r'^msgid "(.+)"$', text, re.M)
        assert sorted(k for k in set(keys) if keys.count(k) > 1) == [], language


def test_rendering_fills_parameters_in_the_recipients_language_and_time_zone():
    moment = {"_span": ["2026-11-23T06:00:00+00:00", "2026-11-23T08:00:00+00:00"]}
    assert translate("customer.booked", "zh", {"kind": {"key": "kind.delivery", "params": {}}, "slot": moment}, SHANGHAI) == \
        "已预约:配送,11月23日 周一 14:00–16:00。我们会通知您上门人员。"
    assert translate("customer.booked", "en", {"kind": {"key": "kind.delivery", "params": {}}, "slot": moment}, SHANGHAI).startswith(
        "Booked: delivery on Mon 23 Nov 14:00–16:00.")
