"""The KPI formulas on hand-made facts: each case is chosen so that a plausible wrong formula gives another number."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

from domain import kpis
from domain.kpis import Bucket, ExceptionFact, Grouping, RepeatJob, VisitFact

NOON = datetime(2026, 11, 25, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai
DAY = date(2026, 11, 25)


def visit(visit_id: int = 1, **changes) -> VisitFact:
    base = VisitFact(visit_id=visit_id, job_id=visit_id, kind="repair", status="confirmed", day=DAY, region="Huangpu",
                     category="washer", customer_id=1, technician_id=1, technician="Li", slot_end=NOON)
    return replace(base, **changes)


def at(minutes: int) -> datetime:
    return NOON + timedelta(minutes=minutes)


def test_on_time_is_a_check_in_by_the_end_of_the_window_and_visits_never_checked_in_are_not_counted():
    facts = [visit(1, checked_in_at=at(0)), visit(2, checked_in_at=at(1)), visit(3, checked_in_at=at(-90)), visit(4)]
    figures = kpis.figures(facts, [])
    assert figures.on_time == kpis.Ratio(2, 3)  # exactly at the end is on time; the visit without a check-in is left out
    assert kpis.on_time(visit(5, checked_in_at=at(0), slot_end=None)) is None


def test_first_time_fix_fails_on_a_return_visit_and_on_a_repeat_repair_within_the_days_only():
    ended = at(60)
    repeat = RepeatJob(job_id=99, customer_id=1, category="washer", created_at=ended + timedelta(days=10))
    assert kpis.fixed_first_time(visit(status="return_needed", completed_at=ended), [], 30) is False
    assert kpis.fixed_first_time(visit(followed_up=True, completed_at=ended), [], 30) is False
    assert kpis.fixed_first_time(visit(completed_at=ended), [repeat], 30) is False
    assert kpis.fixed_first_time(visit(completed_at=ended), [repeat], 9) is True  # came after the N days
    assert kpis.fixed_first_time(visit(completed_at=ended), [replace(repeat, category="sofa")], 30) is True  # another product
    assert kpis.fixed_first_time(visit(completed_at=ended), [replace(repeat, customer_id=2)], 30) is True  # another customer
    assert kpis.fixed_first_time(visit(completed_at=ended), [replace(repeat, job_id=1)], 30) is True  # its own job
    before = replace(repeat, created_at=ended - timedelta(hours=1))
    assert kpis.fixed_first_time(visit(completed_at=ended), [before], 30) is True  # the job that came before is no repeat
    assert kpis.fixed_first_time(visit(kind="delivery", completed_at=ended), [repeat], 30) is True  # a delivery fixes nothing
    assert kpis.fixed_first_time(visit(status="in_progress"), [], 30) is None  # not ended: not counted
    figures = kpis.figures([visit(1, completed_at=ended), visit(2, status="return_needed", completed_at=ended),
                            visit(3, status="accepted")], [], first_time_fix_days=30)
    assert figures.first_time_fix == kpis.Ratio(1, 2)


def test_csat_is_the_average_score_and_the_share_of_fours_and_fives():
    figures = kpis.figures([visit(1, score=5), visit(2, score=4), visit(3, score=3), visit(4, score=1), visit(5)], [])
    assert figures.ratings == 4 and figures.csat_average == 3.25
    assert figures.csat_good == kpis.Ratio(2, 4)  # a 3 is not satisfied; the visit without a rating is not in the share


def test_acceptance_and_completion_times_are_medians_from_the_accepted_offer_and_from_check_in():
    facts = [
        visit(1, offered_at=at(0), accepted_at=at(10), checked_in_at=at(100), completed_at=at(160)),
        visit(2, offered_at=at(0), accepted_at=at(30), checked_in_at=at(100), completed_at=at(140)),
        visit(3, offered_at=at(0), accepted_at=at(5), checked_in_at=at(100), completed_at=at(190)),
        visit(4, offered_at=at(0)),  # offered, never accepted: no time
    ]
    figures = kpis.figures(facts, [])
    assert figures.accept_minutes == 10 and figures.accepted == 3  # the mean would be 15
    assert figures.completion_minutes == 60 and figures.completions == 3  # the mean would be 63.3
    assert kpis.minutes_between(at(10), at(0)) is None  # a clock step backwards is no duration


def test_exceptions_are_counted_by_reason_most_frequent_first():
    reports = [ExceptionFact(reason, DAY, "Huangpu", "washer") for reason in ("wrong_address", "parts_missing", "parts_missing", "other")]
    figures = kpis.figures([], reports)
    assert figures.exceptions == 4
    assert figures.exceptions_by_reason == (("parts_missing", 2), ("other", 1), ("wrong_address", 1))


def test_figures_per_technician_region_and_category_split_the_visits_and_the_problem_reports():
    facts = [visit(1, technician_id=1, technician="Li", score=5), visit(2, technician_id=2, technician="Wang", region="Pudong", score=1),
             visit(3, technician_id=None, technician="", category="sofa")]
    reports = [ExceptionFact("other", DAY, "Pudong", "washer", technician_id=2, technician="Wang")]
    per_technician = dict(kpis.by_group(facts, reports, [], Grouping.TECHNICIAN))
    assert list(per_technician) == ["Li", "Wang", ""]  # by name; the unassigned last
    assert per_technician["Wang"].csat_average == 1 and per_technician["Wang"].exceptions == 1 and per_technician["Li"].exceptions == 0
    per_region = dict(kpis.by_group(facts, reports, [], Grouping.REGION))
    assert per_region["Huangpu"].visits == 2 and per_region["Pudong"].visits == 1
    per_category = dict(kpis.by_group(facts, reports, [], Grouping.CATEGORY))
    assert per_category["sofa"].visits == 1 and per_category["washer"].visits == 2


def test_buckets_are_days_iso_weeks_from_monday_and_calendar_months():
    sunday, monday, next_month = date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1)
    facts = [visit(1, day=sunday), visit(2, day=monday), visit(3, day=next_month)]
    assert [(start, f.visits) for start, f in kpis.by_bucket(facts, [], [], Bucket.DAY)] == [(sunday, 1), (monday, 1), (next_month, 1)]
    assert [(start, f.visits) for start, f in kpis.by_bucket(facts, [], [], Bucket.WEEK)] == [(date(2026, 11, 23), 1), (monday, 2)]
    assert [(start, f.visits) for start, f in kpis.by_bucket(facts, [], [], Bucket.MONTH)] == [(date(2026, 11, 1), 2), (next_month, 1)]


def test_no_facts_give_no_rates_rather_than_zero():
    figures = kpis.figures([], [])
    assert figures.on_time.rate is None and figures.csat_average is None and figures.accept_minutes is None
