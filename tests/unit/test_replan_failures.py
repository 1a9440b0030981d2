"""Replans that fail back off on a fixed schedule; the pure solver is never handed an empty window, and every reason it
gives reads in English and Chinese. Replans failing through the sweeps: integration/test_replan_failures.py."""

from __future__ import annotations

from datetime import timedelta


from conversations.i18n import catalog
from scheduler.routing import model as rm
from scheduler.routing.check import check_plan
from scheduler.routing.solver import solve
from services import replanning


def test_retry_delays_double_from_a_minute_up_to_half_an_hour():
    assert [replanning.retry_delay(n) / timedelta(minutes=1) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert replanning.retry_delay(500) == timedelta(minutes=30)












# --- the pure solver refuses empty windows with a reason --------------------------------------------


TRAVEL = [[0, 5, 5], [5, 0, 5], [5, 5, 0]]
# (the solver runs to its time limit whatever the day; half a second is plenty for one or two visits)


def test_the_solver_leaves_out_a_technician_whose_shift_is_over_instead_of_failing():
    problem = rm.Problem(
        (rm.Visit("late", 2, service=30, windows=((1110, 1200),)),),
        (rm.Technician("ended", 0, 0, (540, 1020)), rm.Technician("working", 1, 1, (540, 1200))),
        TRAVEL, now=1110,
    )
    plan = solve(problem, 0.5)
    assert [(u.technician_id, u.reason) for u in plan.unavailable] == [("ended", rm.SHIFT_OVER)]
    assert [r.technician_id for r in plan.routes] == ["working"] and plan.unassigned == ()
    assert check_plan(problem, plan) == []


def test_when_every_shift_is_over_every_visit_is_left_out_with_its_reason():
    problem = rm.Problem(
        (rm.Visit("open", 2, service=30, windows=((1110, 1200),)), rm.Visit("missed", 2, service=30, windows=((900, 1000),))),
        (rm.Technician("a", 0, 0, (540, 1020)), rm.Technician("b", 1, 1, (540, 1080))),
        TRAVEL, now=1110,
    )
    plan = solve(problem, 0.5)
    assert plan.routes == () and {u.technician_id for u in plan.unavailable} == {"a", "b"}
    assert {u.visit_id: u.reason for u in plan.unassigned} == {"open": rm.WINDOW_TOO_TIGHT, "missed": rm.WINDOW_PASSED}


def test_a_shift_that_ends_before_it_starts_and_a_window_that_does_are_refused_with_their_reasons():
    problem = rm.Problem(
        (rm.Visit("fine", 2, service=30, windows=((600, 700),)), rm.Visit("inverted", 2, service=30, windows=((700, 600),))),
        (rm.Technician("backwards", 0, 0, (1020, 540)), rm.Technician("working", 1, 1, (540, 1200))),
        TRAVEL, now=0,
    )
    plan = solve(problem, 0.5)
    assert [(u.technician_id, u.reason) for u in plan.unavailable] == [("backwards", rm.SHIFT_EMPTY)]
    assert [(u.visit_id, u.reason) for u in plan.unassigned] == [("inverted", rm.WINDOW_TOO_TIGHT)]
    assert [s.visit_id for r in plan.routes for s in r.stops] == ["fine"]


def test_a_technician_still_on_a_visit_after_their_shift_keeps_it():
    under_way = rm.Visit("under_way", 2, service=30, windows=((1080, 1200),), pinned_technicians=("a",), pinned_start=1110, started=True)
    problem = rm.Problem((under_way,), (rm.Technician("a", 0, 0, (540, 1150)),), TRAVEL, now=1120)
    plan = solve(problem, 0.5)
    assert plan.unavailable == () and plan.unassigned == ()
    assert [(r.technician_id, [s.visit_id for s in r.stops]) for r in plan.routes] == [("a", ["under_way"])]


def test_every_reason_a_visit_is_left_out_for_reads_in_english_and_chinese():
    reasons = [rm.NO_SKILLED_TECHNICIAN, rm.NO_TECHNICIAN_IN_REGION, rm.NOT_ENOUGH_TECHNICIANS, rm.WINDOW_TOO_TIGHT,
               rm.WINDOW_PASSED, rm.CAPACITY, rm.PREDECESSOR_UNASSIGNED, rm.NO_ROOM, rm.NOT_WORTH_IT]
    for language in ("en", "zh"):
        assert [r for r in reasons if f"plan_reason.{r}" not in catalog(language)] == [], language
    assert "group.replan_failed" in catalog("zh") and "自动" in catalog("zh")["group.replan_failed"]




