"""Days of thousands of visits: our insertion keeps its time budget, and big days are improved group by group."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conversations.i18n import catalog
from scheduler.routing import decompose, solver
from scheduler.routing.check import check_plan
from scheduler.routing.insertion import Board
from scheduler.routing.model import TIME_LIMIT, Objective, Plan, Problem, Unassigned
from scheduler.routing.solver import Strategy, _construct, _scaled, _screen, solve
from scheduler.routing.synthetic import field_day


class Ticks:
    """A clock that moves `step` seconds each time it is read: budgets counted in work, not measured."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def _prepared(problem: Problem):
    scaled, _ = _scaled(problem)
    board = Board(scaled)
    unassigned = _screen(scaled, board)
    return scaled, board, [v for v in scaled.visits if v.id not in unassigned]


def test_the_construction_stops_at_its_deadline_and_names_every_visit_it_never_tried():
    scaled, board, kept = _prepared(field_day(visits=200, technicians=10, seed=3))
    _, untried = _construct(scaled, kept, board, deadline=40.5, clock=Ticks(1.0))  # about 40 visits' worth
    placed = set(board.placed)
    assert 0 < len(placed) <= 40 * 2  # each try may bring its follow-ups along
    assert untried and not placed & set(untried)
    ids = {v.id for v in kept}
    assert set(untried) <= ids and len(untried) == len(set(untried))
    # a follow-up is never tried before its predecessor: if the predecessor was not tried, neither was it
    for visit in kept:
        if visit.after in untried:
            assert visit.id in untried
    # with time to spare it tries everything (nothing reported untried), and places more
    scaled, board, kept = _prepared(field_day(visits=200, technicians=10, seed=3))
    _, none = _construct(scaled, kept, board, clock=Ticks(1.0))
    assert none == [] and len(board.placed) > len(placed)


def test_a_solve_whose_insertion_runs_out_of_time_returns_what_it_placed_and_a_reason_for_the_rest():
    problem = field_day(visits=200, technicians=10, seed=5)
    plan = solve(problem, 30.0, Strategy(engine="ortools"), clock=Ticks(0.5))  # about 60 tries fit
    assert plan.status == "insertion_only"
    assert check_plan(problem, plan) == []  # every visit planned or unassigned with a reason, every rule held
    planned = {s.visit_id for r in plan.routes for s in r.stops}
    late = [u for u in plan.unassigned if u.reason == TIME_LIMIT]
    assert planned and late
    assert len(planned) + len(plan.unassigned) == len(problem.visits)


def test_the_time_limit_reason_reads_in_english_and_chinese():
    for language in ("en", "zh"):
        assert f"plan_reason.{TIME_LIMIT}" in catalog(language), language


# -- one group of routes at a time ---------------------------------------------------------------------------


def test_a_part_holds_what_ties_its_routes_to_the_others():
    problem = field_day(visits=160, technicians=8, seed=2)
    plan = solver._finish(problem, (), {}, None, [])  # an empty plan to fill by our insertion
    scaled, board, kept = _prepared(problem)
    initial, _ = _construct(scaled, kept, board)
    routes = {r.technician_id: r for r in solver._board_routes(initial, problem, 0.0)}
    assert plan.routes == ()
    where = {s.visit_id: (r.technician_id, s.start, s.end) for r in routes.values() for s in r.stops}
    by_id = {v.id: v for v in problem.visits}
    crossing = [v for v in problem.visits if v.after and v.id in where and v.after in where and where[v.id][0] != where[v.after][0]]
    assert crossing, "the day should link routes to each other"
    link = crossing[0]
    pred = by_id[link.after or ""]
    mine = [where[link.id][0]]
    theirs = [where[pred.id][0]]
    follower_side = decompose.part(problem, routes, mine)
    pred_side = decompose.part(problem, routes, theirs)
    follower = next(v for v in follower_side.problem.visits if v.id == link.id)
    before = next(v for v in pred_side.problem.visits if v.id == pred.id)
    assert follower.after is None and before.after is None  # the link became bounds
    low = min(a for a, _ in follower.windows)
    high = max(b for _, b in before.windows)
    # whatever each side does inside its bounds, the follow-up starts after the predecessor ends plus the gap
    assert high + pred.service + link.min_gap <= low + 1e-9
    assert where[pred.id][2] + link.min_gap <= low + 1e-9 and low <= where[link.id][1] + 1e-9
    # crews keep their people and their start minute
    for part in (follower_side, pred_side):
        for visit in part.problem.visits:
            original = by_id[visit.id]
            if original.technicians > 1:
                assert visit.pinned_start == where[visit.id][1]
                assert set(visit.pinned_technicians) <= set(part.technician_ids)


def test_groups_cover_every_route_once_and_stay_near_the_requested_size():
    import random

    problem = field_day(visits=300, technicians=15, seed=4)
    scaled, board, kept = _prepared(problem)
    initial, _ = _construct(scaled, kept, board)
    routes = tuple(r for r in solver._board_routes(initial, problem, 0.0) if r.stops)
    found = decompose.groups(problem, routes, 60, random.Random(1))
    flat = [t for g in found for t in g]
    assert sorted(flat) == sorted(t.id for t in problem.technicians)  # those with no route yet too
    assert len({r.technician_id for r in routes}) < len(problem.technicians)
    sizes = {t.id: 0 for t in problem.technicians} | {r.technician_id: len(r.stops) for r in routes}
    assert all(sum(sizes[t] for t in g) <= 60 or len(g) == 1 for g in found)


def test_improving_group_by_group_keeps_every_rule_and_never_drives_more():
    problem = field_day(visits=160, technicians=8, seed=6)
    scaled, board, kept = _prepared(problem)
    initial, _ = _construct(scaled, kept, board)
    routes = solver._board_routes(initial, problem, 0.0)
    calls = []

    def sub_solve(sub: Problem, seconds: float, start: Plan) -> Plan:
        calls.append(len(sub.visits))
        return solve(sub, 0.3, Strategy(engine="ortools"), start=start)

    clock = Ticks(1.0)
    improved, stats = decompose.improve(problem, routes, 8.0, sub_solve, clock, size=60)
    assert calls and stats["groups_solved"] == len(calls)
    before = {s.visit_id for r in routes for s in r.stops}
    after = {s.visit_id for r in improved for s in r.stops}
    assert after == before  # nothing lost, nothing new
    unplanned = tuple(Unassigned(v.id, "no_room_in_routes") for v in problem.visits if v.id not in after)
    travel = sum(r.travel for r in improved)
    assert check_plan(problem, Plan(improved, unplanned, Objective(travel, 0, 0, travel))) == []
    assert travel <= sum(r.travel for r in routes) + 1e-6


def test_visits_left_out_are_offered_to_the_nearest_group_and_a_technician_with_no_route_takes_them():
    """Seen: on big days the groups only reshuffled what the insertion had placed; its left-out visits and the
    technicians it gave no route stayed as they were."""
    problem = field_day(visits=160, technicians=8, seed=6)
    scaled, board, kept = _prepared(problem)
    initial, _ = _construct(scaled, kept, board)
    full = solver._board_routes(initial, problem, 0.0)
    idle = max(full, key=lambda r: len(r.stops))  # their day is taken away: they have no route, their visits none
    routes = tuple(r for r in full if r is not idle)
    waiting = decompose.offerable(problem, [s.visit_id for s in idle.stops])
    assert waiting

    def sub_solve(sub: Problem, seconds: float, start: Plan) -> Plan:
        return solve(sub, 0.3, Strategy(engine="ortools"), start=start)

    improved, stats = decompose.improve(problem, routes, 4.0, sub_solve, Ticks(1.0), size=80, extras=waiting)
    after = {s.visit_id for r in improved for s in r.stops}
    assert {s.visit_id for r in routes for s in r.stops} <= after  # nothing held before is lost
    assert stats["left_out_placed"] > 0 and stats["left_out_placed"] == len(after & set(waiting))
    assert idle.technician_id in {r.technician_id for r in improved if r.stops}
    unplanned = tuple(Unassigned(v.id, "no_room_in_routes") for v in problem.visits if v.id not in after)
    travel = sum(r.travel for r in improved)
    assert check_plan(problem, Plan(improved, unplanned, Objective(travel, 0, 0, travel))) == []


def test_only_visits_a_group_can_take_alone_are_offered():
    problem = field_day(visits=160, technicians=8, seed=6)
    linked = {v.id for v in problem.visits if v.after} | {v.after for v in problem.visits if v.after}
    crews = {v.id for v in problem.visits if v.technicians > 1}
    assert linked and crews
    offered = set(decompose.offerable(problem, [v.id for v in problem.visits]))
    assert offered and not offered & (linked | crews)


def test_a_group_plan_that_drops_a_visit_or_drives_more_is_not_taken():
    problem = field_day(visits=120, technicians=6, seed=1)
    scaled, board, kept = _prepared(problem)
    initial, _ = _construct(scaled, kept, board)
    routes = solver._board_routes(initial, problem, 0.0)

    def dropping(sub: Problem, seconds: float, start: Plan) -> Plan:
        shorter = tuple(replace(r, stops=r.stops[1:], travel=0.0) for r in start.routes)
        return Plan(shorter, (Unassigned(start.routes[0].stops[0].visit_id, "no_room_in_routes"),), Objective(0, 0, 0, 0))

    def longer(sub: Problem, seconds: float, start: Plan) -> Plan:
        return Plan(start.routes, (), Objective(start.objective.travel + 1, 0, 0, start.objective.travel + 1))

    for bad in (dropping, longer):
        kept_routes, stats = decompose.improve(problem, routes, 5.0, bad, Ticks(1.0), size=40)
        assert stats["groups_solved"] > 0 and stats["groups_improved"] == 0
        assert kept_routes == tuple(r for r in routes)


def test_a_group_plan_that_drives_less_by_piling_the_work_on_one_technician_is_not_taken_when_the_day_is_to_be_fair():
    """Seen: groups were judged on driving alone, so a fair-load weight set for the day was dropped on big days."""
    problem = field_day(visits=120, technicians=6, seed=1)
    scaled, board, kept = _prepared(problem)
    initial, _ = _construct(scaled, kept, board)
    routes = solver._board_routes(initial, problem, 0.0)

    def piled(sub: Problem, seconds: float, start: Plan) -> Plan:
        first, *others = start.routes
        if not any(r.stops for r in others):
            return start  # nothing to pile up
        stops = first.stops + tuple(stop for r in others for stop in r.stops)
        one = replace(first, stops=stops, travel=start.objective.travel - 1)
        return Plan((one,), (), Objective(one.travel, 0, 0, one.travel))

    fair_day = replace(problem, fairness_weight=5.0)
    _, fair = decompose.improve(fair_day, routes, 5.0, piled, Ticks(1.0), size=40)
    assert fair["groups_solved"] > 0 and fair["groups_improved"] == 0
    _, unweighted = decompose.improve(problem, routes, 5.0, piled, Ticks(1.0), size=40)
    assert unweighted["groups_improved"] > 0  # on driving alone the same plans were taken


def test_no_time_left_means_no_group_is_tried():
    problem = field_day(visits=60, technicians=4, seed=1)
    scaled, board, kept = _prepared(problem)
    initial, _ = _construct(scaled, kept, board)
    routes = solver._board_routes(initial, problem, 0.0)

    def never(sub: Problem, seconds: float, start: Plan) -> Plan:
        raise AssertionError("no time for a group")

    same, stats = decompose.improve(problem, routes, decompose.MIN_GROUP_SECONDS - 0.5, never, Ticks(0.0))
    assert same == routes and stats["groups_solved"] == 0


# 2: groups of a wave solved side by side in a forked process (a process: slow)
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_day_above_the_decomposition_size_is_solved_in_groups_and_keeps_every_rule(monkeypatch, workers):
    monkeypatch.setattr(solver, "DECOMPOSE_ABOVE", 100)
    monkeypatch.setattr(decompose, "GROUP_VISITS", 60)
    monkeypatch.setattr(decompose, "MIN_GROUP_SECONDS", 0.2)
    problem = field_day(visits=160, technicians=8, seed=3)
    plan = solve(problem, 3.0, Strategy(engine="ortools", workers=workers), clock=Ticks(0.01))  # about a second for the groups
    assert plan.status == "decomposed" and plan.stats["groups_solved"] >= workers
    assert check_plan(problem, plan) == []
    assert not [u for u in plan.unassigned if u.reason == TIME_LIMIT]
