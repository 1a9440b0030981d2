"""Maintenance plans' rules without a database: recurrences, what falls due with a lead time, periods, the report."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from domain.errors import InvalidInput
from domain.maintenance import InspectionFact, PlanSpec, Recurrence, due, next_generation, report

QUARTERLY = "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15"


def test_a_quarterly_rule_falls_on_its_days_from_the_first():
    rule = Recurrence(QUARTERLY, date(2026, 1, 1))
    assert rule.between(date(2026, 1, 1), date(2026, 12, 31)) == [date(2026, 1, 15), date(2026, 4, 15), date(2026, 7, 15), date(2026, 10, 15)]
    assert rule.after(date(2026, 4, 15)) == date(2026, 7, 15)
    assert rule.period_of(date(2026, 5, 2)) == (date(2026, 4, 15), date(2026, 7, 14))
    assert rule.period_of(date(2026, 1, 10)) is None  # before the first inspection


@pytest.mark.parametrize(("text", "code"), [
    ("", "plan_rule_invalid"), ("FREQ=HOURLY", "plan_rule_frequency"), ("FREQ=MINUTELY;INTERVAL=5", "plan_rule_frequency"),
    ("FREQ=MONTHLY;BYMONTHDAY=40", "plan_rule_invalid"), ("DTSTART:20200101\nRRULE:FREQ=DAILY", "plan_rule_invalid"),
    ("FREQ=WEEKLY;" + "BYDAY=MO;" * 40, "plan_rule_invalid"), ("not a rule", "plan_rule_invalid"), ("FREQ=SOMETIMES", "plan_rule_invalid"),
])
def test_a_rule_that_is_not_a_maintenance_recurrence_is_refused_naming_why(text, code):
    with pytest.raises(InvalidInput) as refused:
        Recurrence(text, date(2026, 1, 1))
    assert refused.value.code == code


def test_inspections_fall_due_their_lead_time_ahead_and_each_only_once():
    rule = Recurrence(QUARTERLY, date(2026, 1, 1))
    assert due(rule, created_through=None, today=date(2026, 3, 20), lead_days=30) == [date(2026, 4, 15)]
    assert due(rule, created_through=date(2026, 4, 15), today=date(2026, 3, 21), lead_days=30) == []
    assert due(rule, created_through=None, today=date(2026, 3, 1), lead_days=30) == []
    assert next_generation(rule, created_through=None, today=date(2026, 3, 1), lead_days=30) == date(2026, 3, 16)
    assert next_generation(rule, created_through=date(2026, 4, 15), today=date(2026, 3, 20), lead_days=30) == date(2026, 6, 15)


def test_a_plan_made_after_its_first_day_does_not_start_with_overdue_inspections():
    rule = Recurrence("FREQ=WEEKLY;BYDAY=MO", date(2026, 1, 1))
    assert due(rule, created_through=None, today=date(2026, 11, 25), lead_days=7) == [date(2026, 11, 30)]


def test_a_daily_rule_over_years_is_cut_not_endless():
    rule = Recurrence("FREQ=DAILY", date(2026, 1, 1))
    assert len(rule.between(date(2026, 1, 1), date(2030, 1, 1))) == 400
    finite = Recurrence("FREQ=MONTHLY;COUNT=2", date(2026, 1, 1))
    assert finite.after(date(2026, 2, 1)) is None and finite.between(date(2026, 1, 1), date(2027, 1, 1)) == [date(2026, 1, 1), date(2026, 2, 1)]


@pytest.mark.parametrize(("changes", "code"), [
    ({"name": " "}, "plan_name_invalid"), ({"name": "x" * 201}, "plan_name_invalid"), ({"lead_days": -1}, "plan_lead_invalid"),
    ({"lead_days": 91}, "plan_lead_invalid"), ({"device_ids": (1, 1)}, "plan_devices_invalid"), ({"duration_minutes": 5}, "plan_duration_invalid"),
])
def test_a_plan_out_of_bounds_is_refused_naming_the_field(changes, code):
    fields = {"name": "Rooftop units", "site_id": 1, "recurrence": Recurrence(QUARTERLY, date(2026, 1, 1)), **changes}
    with pytest.raises(InvalidInput) as refused:
        PlanSpec(**fields)
    assert refused.value.code == code


def test_the_report_of_a_period_says_what_was_done_found_overdue_and_planned():
    done_at = datetime(2026, 4, 15, 10, tzinfo=timezone.utc)
    facts = [
        InspectionFact(date(2026, 4, 15), 1, 11, "confirmed", "Li", done_at, ("filter: dirty, cleaned",), 2),
        InspectionFact(date(2026, 4, 16), 2, 12, "booked"),
        InspectionFact(date(2026, 4, 30), 3, 13, "booked"),
        InspectionFact(date(2026, 4, 20), 4, 14, "cancelled"),
        InspectionFact(date(2026, 7, 15), 5, 15, "booked"),  # the next period
    ]
    result = report((date(2026, 4, 15), date(2026, 7, 14)), ["AC unit 1", "AC unit 2"], facts, today=date(2026, 4, 22))
    assert [(line.visit_id, line.state) for line in result.lines] == [(11, "done"), (12, "overdue"), (14, "cancelled"), (13, "planned")]
    assert result.done == 1 and result.overdue == 1 and result.lines[0].findings == ("filter: dirty, cleaned",)
    assert not result.finished  # one overdue, one planned: the reviewer is not told yet


def test_a_period_is_finished_when_every_inspection_is_done_or_called_off_and_one_was_done():
    period = (date(2026, 4, 15), date(2026, 7, 14))
    done = InspectionFact(date(2026, 4, 15), 1, 11, "completed")  # finished on site, the customer's confirmation pending
    called_off = InspectionFact(date(2026, 5, 1), 2, 12, "cancelled")
    assert report(period, [], [done, called_off], today=date(2026, 5, 2)).finished
    assert not report(period, [], [called_off], today=date(2026, 5, 2)).finished  # nothing was inspected
    assert not report(period, [], [done, InspectionFact(date(2026, 5, 1), 2, 12, "return_needed")], today=date(2026, 5, 2)).finished


@pytest.mark.parametrize(("changes", "code"), [
    ({"team_ids": (3, 3)}, "plan_team_invalid"), ({"team_ids": tuple(range(1, 14))}, "plan_team_invalid"), ({"team_ids": (0,)}, "plan_team_invalid"),
    ({"team_ids": (3, 4), "technician_id": 5}, "plan_assignee_twice"),
])
def test_a_plan_names_one_technician_or_a_team_each_once(changes, code):
    with pytest.raises(InvalidInput) as refused:
        PlanSpec("Roof", 1, Recurrence(QUARTERLY, date(2026, 1, 1)), **changes)
    assert refused.value.code == code


def test_whom_a_plan_asks_first():
    rule = Recurrence(QUARTERLY, date(2026, 1, 1))
    assert PlanSpec("Roof", 1, rule, technician_id=7).assignees == (7,)
    assert PlanSpec("Roof", 1, rule, team_ids=(4, 2)).assignees == (4, 2)
    assert PlanSpec("Roof", 1, rule).assignees == ()  # automatic dispatch
