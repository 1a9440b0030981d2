"""The solver's early stop: a search ends once its best plan costs no more than a proven lower bound, with the plan a
search run to its time limit returns; the bounds never exceed what a feasible plan costs."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import pyvrp

from scheduler.routing import bounds, solver
from scheduler.routing.model import Problem
from scheduler.routing.solver import Strategy, solve
from scheduler.routing.synthetic import field_day
from tests.unit.test_routing import assert_hard_rules, day, grid, tech, visit

# Long enough that a search which failed to stop at its bound is plain to see in the test's result, not only its time.
PATIENCE = 5.0

HERE = [[0.0] * 3 for _ in range(3)]  # every place is the same place: no driving at all


def key(plan) -> tuple:
    """What a plan decides: who goes where when, what is left out and why, and what it costs."""
    routes = tuple((r.technician_id, tuple((s.visit_id, s.arrival, s.start, s.end) for s in r.stops), r.breaks) for r in plan.routes)
    return routes, tuple((u.visit_id, u.reason) for u in plan.unassigned), plan.objective


def without_bound(monkeypatch) -> None:
    """The solver as it was before the early stop: no bound can ever be met."""
    monkeypatch.setattr(bounds, "pyvrp_doubled", lambda data: -1)
    monkeypatch.setattr(solver._Model, "lower_bound", lambda self: -1)


SMALL_DAYS = {
    # PyVRP's days (no crews, links, pins or breaks)
    "one visit, no driving": day([visit("a", 1)], [tech("t")], HERE),
    "one visit down the road": day([visit("a", 3)], [tech("t")], grid(5)),
    "one visit, two technicians, fair load": day([visit("a", 1, service=90)], [tech("t"), tech("u")], HERE, fairness_weight=0.1),
    "two visits, two technicians, fair load": day([visit("a", 1, service=45), visit("b", 2, service=90)], [tech("t"), tech("u")], HERE, fairness_weight=0.1),
    "two visits, one van too small for both": day([visit("a", 1, demand=(6,)), visit("b", 2, demand=(6,))], [tech("t"), tech("u")], HERE, fairness_weight=0.1),
    # OR-Tools' days
    "a crew of two": day([visit("a", 1, technicians=2)], [tech("t"), tech("u")], HERE, fairness_weight=0.1),
    "a delivery and its installation": day([visit("d", 1, service=30), visit("i", 2, after="d", min_gap=60, service=90)], [tech("t"), tech("u")], HERE, fairness_weight=0.1),
    "a visit under way": day([visit("a", 1, started=True, pinned_technicians=("t",), pinned_start=10, windows=())], [tech("t")], HERE, now=20),
}


@pytest.mark.parametrize("name", list(SMALL_DAYS))
def test_a_small_day_stops_once_its_plan_is_proven_best_and_it_is_the_plan_of_a_full_search(name, monkeypatch):
    problem = SMALL_DAYS[name]
    fast = solve(problem, PATIENCE)
    assert fast.stats["stopped_at_bound"], f"{name}: searched to its limit although nothing better could exist"
    assert not fast.unassigned
    assert_hard_rules(problem, fast)
    without_bound(monkeypatch)
    full = solve(problem, 0.1)
    assert not full.stats["stopped_at_bound"]
    assert key(fast) == key(full)


def test_the_ruin_and_recreate_search_stops_at_the_bound_too(monkeypatch):
    problem = SMALL_DAYS["a delivery and its installation"]
    strategy = Strategy(metaheuristic="lns")
    fast = solve(problem, PATIENCE, strategy)
    assert fast.stats["stopped_at_bound"] and fast.stats["iterations"] == 0
    without_bound(monkeypatch)
    full = solve(problem, 0.1, strategy)
    assert not full.stats["stopped_at_bound"] and key(fast) == key(full)


def test_a_day_whose_bound_is_out_of_reach_still_searches_to_its_limit():
    # three visits in a row down one road: the best round trip drives 6 minutes, the bound says 4
    problem = day([visit("a", 1), visit("b", 2), visit("c", 3)], [tech("t")], grid(4))
    plan = solve(problem, 0.2)
    assert not plan.stats["stopped_at_bound"]
    assert plan.objective.travel == pytest.approx(6)


def _pyvrp_costs(problem: Problem) -> tuple[int, int]:
    """(bound, cost of the best solution PyVRP finds in a short search), both doubled, on the solver's own model."""
    scaled, _base = solver._scaled(problem, as_array=True)
    data, _groups = solver.hgs.build(scaled, scaled.visits, problem.resolution)
    deadline = time.monotonic() + 0.05
    result = pyvrp.solve(data, lambda _cost: time.monotonic() >= deadline, seed=1, display=False)
    assert result.best.is_feasible()
    cost = pyvrp.CostEvaluator([20] * data.num_load_dimensions, 6, 6).cost(result.best)
    return bounds.pyvrp_doubled(data), 2 * cost


def _ortools_costs(problem: Problem) -> tuple[int, int]:
    """(bound, objective of OR-Tools' best solution in a short search), both doubled, on the solver's own model."""
    scaled, base = solver._scaled(problem)
    built = solver._Model(scaled, list(scaled.visits), problem, base)
    built.set_fairness_target(None)
    bound = built.lower_bound()
    built.lower_bound = lambda: -1  # type: ignore[method-assign]  # search for real, to compare with the bound
    solution = built.search(None, "parallel_cheapest_insertion", Strategy(), time.monotonic() + 0.1)
    assert solution is not None
    return bound, 2 * solution.ObjectiveValue()


@pytest.mark.parametrize("seed", range(4))
def test_no_bound_exceeds_what_a_feasible_plan_costs(seed):
    # small field days with driving, skills, regions, capacities, crews, links and breaks, and a fair load term: a
    # bound holds for every plan, so the best one a short search finds catches a bound that claims too much
    problem = replace(field_day(visits=3 + seed, technicians=2 + seed % 2, seed=100 + seed), fairness_weight=0.1)
    bound, cost = _ortools_costs(problem)
    assert 0 <= bound <= cost
    # the same day as PyVRP models it: without what it cannot (crews, links, pins, breaks, several windows), and
    # every visit optional, so that whatever does not fit leaves its prize unpaid instead of an infeasible plan
    plain = replace(
        problem,
        visits=tuple(replace(v, penalty=300.0) for v in problem.visits
                     if v.technicians == 1 and not v.after and v.pinned_start is None and len(v.windows) <= 1),
        technicians=tuple(replace(t, breaks=()) for t in problem.technicians),
    )
    assert plain.visits and solver.hgs.unsupported(plain) is None
    bound, cost = _pyvrp_costs(plain)
    assert 0 <= bound <= cost


def test_the_bounds_are_exact_where_the_best_plan_is_plain_to_see():
    # one visit three minutes away and back: the trip itself
    one_trip = day([visit("a", 3)], [tech("t")], grid(5))
    bound, cost = _pyvrp_costs(one_trip)
    assert bound == cost == 2 * 6 * one_trip.resolution  # doubled, in solver steps (resolution per minute) of driving
    # one 90-minute visit, two technicians: the one who goes works 45 minutes above an even share
    fair = day([visit("a", 1, service=90)], [tech("t"), tech("u")], HERE, fairness_weight=0.1)
    bound, cost = _ortools_costs(fair)
    assert bound == cost > 0


def test_a_big_day_gets_no_bound_beyond_zero_and_copies_no_matrix():
    problem = field_day(visits=bounds.SMALL_DAY + 1, technicians=10, seed=5)
    scaled, _base = solver._scaled(problem, as_array=True)
    data, _groups = solver.hgs.build(scaled, scaled.visits, problem.resolution)
    assert data.num_clients > bounds.SMALL_DAY and bounds.pyvrp_doubled(data) == 0
