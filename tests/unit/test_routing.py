"""Routing: plans keep every hard rule, left-out visits say why, Solomon checks, slot insertion (OSRM: contract/test_osrm.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from fieldchat.bench import default_solomon_dir
from fieldchat.bench import main as bench_main
from scheduler.routing import solomon
from scheduler.routing.check import check_plan
from scheduler.routing.insertion import Board, greedy_plan, insert, slot_options
from scheduler.routing.model import (
    CAPACITY,
    NO_ROOM,
    NO_SKILLED_TECHNICIAN,
    NO_TECHNICIAN_IN_REGION,
    NOT_ENOUGH_TECHNICIANS,
    PREDECESSOR_UNASSIGNED,
    WINDOW_TOO_TIGHT,
    Break,
    Plan,
    Problem,
    Technician,
    Visit,
)
from scheduler.routing.solver import Strategy, solve, solve_portfolio
from scheduler.routing.synthetic import field_day
from scheduler.routing.travel import HaversineProvider, haversine_km

EPS = 1e-6
# the search time of the rule tests: their days have a handful of visits, whose first solution already keeps every rule
SHORT = 0.2
SOLOMON = default_solomon_dir()
needs_solomon = pytest.mark.skipif(not (SOLOMON / "C101.txt").exists(), reason="shared Solomon data not present")


# -- helpers -----------------------------------------------------------------------------------------


def grid(n: int) -> list[list[float]]:
    """n points on a line, one minute apart."""
    return [[abs(i - j) * 1.0 for j in range(n)] for i in range(n)]


def tech(tech_id: str, **kw) -> Technician:
    base = dict(start_location=0, end_location=0, shift=(0, 600), skills=frozenset({"fix"}), capacity=(10,))
    base.update(kw)
    return Technician(tech_id, **base)


def visit(visit_id: str, location: int, **kw) -> Visit:
    base = dict(service=10, windows=((0, 500),), demand=(1,), skills=frozenset({"fix"}))
    base.update(kw)
    return Visit(visit_id, location, **base)


def day(visits, techs, travel, **kw) -> Problem:
    return Problem(tuple(visits), tuple(techs), travel, capacity_names=("units",), **kw)


def placements(plan: Plan) -> dict[str, list[tuple[str, float, float]]]:
    out: dict[str, list] = {}
    for route in plan.routes:
        for stop in route.stops:
            out.setdefault(stop.visit_id, []).append((route.technician_id, stop.start, stop.end))
    return out


def assert_hard_rules(problem: Problem, plan: Plan) -> None:
    """The properties spelled out, then the independent checker for everything else."""
    visits = {v.id: v for v in problem.visits}
    techs = {t.id: t for t in problem.technicians}
    placed = placements(plan)
    for route in plan.routes:
        t = techs[route.technician_id]
        load = 0
        for stop in route.stops:
            v = visits[stop.visit_id]
            assert v.skills <= t.skills, f"{t.id} lacks a skill for {v.id}"
            assert v.region is None or not t.regions or v.region in t.regions, f"{t.id} outside its regions for {v.id}"
            assert not v.windows or any(a - EPS <= stop.start <= b + EPS for a, b in v.windows), f"{v.id} outside its windows"
            assert t.shift[0] - EPS <= stop.start and stop.end <= t.shift[1] + EPS, f"{v.id} outside {t.id}'s shift"
            for taken in route.breaks:
                assert not (taken.start < stop.end - EPS and stop.start < taken.end - EPS), f"{v.id} overlaps a break"
            load += v.demand[0] if v.demand else 0
        assert load <= t.capacity[0], f"{t.id} overloaded"
        for rule, taken in zip(t.breaks, route.breaks):
            assert rule.earliest - EPS <= taken.start <= rule.latest + EPS
    left_out = {u.visit_id: u.reason for u in plan.unassigned}
    for v in problem.visits:
        if v.id in placed:
            assert len({tech_id for tech_id, _, _ in placed[v.id]}) == v.technicians
            starts = [start for _, start, _ in placed[v.id]]
            assert max(starts) - min(starts) <= EPS, f"crew of {v.id} does not start together"
            if v.after:
                assert v.after in placed, f"{v.id} planned without {v.after}"
                assert min(starts) >= max(end for _, _, end in placed[v.after]) + v.min_gap - EPS
                if v.same_crew:
                    assert {x for x, _, _ in placed[v.id]} <= {x for x, _, _ in placed[v.after]}
        else:
            assert left_out.get(v.id), f"{v.id} dropped without a reason"
    assert check_plan(problem, plan) == []


# -- properties on seeded random days ---------------------------------------------------------------------
# The solver always runs to its limit; these check rules, which hold at any limit (measured: the same visits placed
# at 0.3, 0.5 and 1 s on these days), so half a second is enough.


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_planned_visit_keeps_skills_regions_windows_shifts_breaks_links_crews_and_capacity(seed):
    problem = field_day(visits=40, technicians=6, seed=seed)
    plan = solve(problem, SHORT)
    assert_hard_rules(problem, plan)
    assert len(placements(plan)) >= 25  # the day is not too tight: most visits fit


def test_local_search_variant_keeps_the_same_rules():
    problem = field_day(visits=30, technicians=5, seed=11)
    plan = solve(problem, SHORT, Strategy(metaheuristic="lns", seed=3))
    assert_hard_rules(problem, plan)


def test_a_crew_visit_gets_two_technicians_starting_together():
    problem = day(
        (visit("sofa", 3, technicians=2, windows=((100, 200),)), visit("tap", 5)),
        (tech("a"), tech("b"), tech("c", skills=frozenset())),
        grid(6),
    )
    plan = solve(problem, SHORT)
    assert_hard_rules(problem, plan)
    crew = placements(plan)["sofa"]
    assert len(crew) == 2 and crew[0][1] == pytest.approx(crew[1][1])


def test_installation_waits_for_its_delivery_with_the_gap_and_the_same_crew_when_asked():
    problem = day(
        (
            visit("delivery", 4, skills=frozenset({"drive"}), windows=((0, 300),)),
            visit("install", 4, skills=frozenset({"fix"}), after="delivery", min_gap=60, windows=((0, 500),)),
            visit("delivery2", 6, skills=frozenset({"drive"})),
            visit("install2", 6, skills=frozenset({"fix", "drive"}), after="delivery2", min_gap=30, same_crew=True),
        ),
        (tech("driver", skills=frozenset({"drive"})), tech("fitter", skills=frozenset({"fix"})), tech("both", skills=frozenset({"fix", "drive"}))),
        grid(8),
    )
    plan = solve(problem, SHORT)
    assert_hard_rules(problem, plan)
    placed = placements(plan)
    assert placed["install"][0][1] >= placed["delivery"][0][2] + 60 - EPS
    assert placed["install2"][0][0] == placed["delivery2"][0][0] == "both"


def test_a_visit_under_way_stays_first_with_its_technician_and_pins_hold():
    problem = day(
        (
            visit("running", 2, windows=(), pinned_technicians=("b",), pinned_start=50, started=True),
            visit("booked", 7, pinned_start=200, windows=((150, 300),)),
            visit("other", 1),
        ),
        (tech("a"), tech("b", start_location=2)),
        grid(8),
        now=60,
    )
    plan = solve(problem, SHORT)
    assert_hard_rules(problem, plan)
    route_b = plan.route_of("b")
    assert route_b is not None and route_b.stops[0].visit_id == "running" and route_b.stops[0].start == pytest.approx(50)
    assert placements(plan)["booked"][0][1] == pytest.approx(200)
    assert placements(plan)["other"][0][1] >= 60 - EPS  # nothing new starts before now


def test_multiple_windows_are_respected_and_breaks_are_taken_inside_their_range():
    visits = tuple(visit(f"v{k}", 1 + k % 7, windows=((0, 60), (400, 460))) for k in range(6))
    problem = Problem(visits, (tech("a", breaks=(Break(100, 200, 30),)), tech("b", breaks=(Break(100, 200, 30),))), grid(9))
    plan = solve(problem, SHORT)
    assert_hard_rules(problem, plan)
    assert all(len(route.breaks) == 1 for route in plan.routes)


def test_big_days_fix_crews_and_split_links_where_the_insertion_put_them_and_still_keep_every_rule():
    problem = field_day(visits=40, technicians=6, seed=21)
    plan = solve(problem, SHORT, Strategy(couple_limit=0))  # the mode used above 300 visits
    assert_hard_rules(problem, plan)


@pytest.mark.slow  # solution quality with a multi-second search
def test_the_fair_load_term_spreads_work_that_travel_alone_would_give_to_one_technician():
    visits = [visit(f"v{k}", 1 + k % 2, service=30) for k in range(6)]  # all next door to the depot
    lazy = solve(day(visits, [tech("a"), tech("b")], grid(3)), 0.5)
    fair = solve(day(visits, [tech("a"), tech("b")], grid(3), fairness_weight=5.0), 0.5)
    assert len(lazy.routes) == 1  # one round trip is the least driving
    assert len(fair.routes) == 2
    assert_hard_rules(day(visits, [tech("a"), tech("b")], grid(3), fairness_weight=5.0), fair)


@pytest.mark.slow  # solution quality with a multi-second search
def test_two_searches_on_two_cores_return_the_better_plan_within_the_time_limit():
    problem = field_day(visits=30, technicians=5, seed=17)
    plan = solve_portfolio(problem, 2.0, workers=2)
    assert plan.seconds <= 2.5 and len(plan.stats["candidates"]) == 2
    assert_hard_rules(problem, plan)


def test_an_optional_visit_is_left_out_when_it_is_not_worth_the_drive():
    problem = day(
        (visit("near", 1), visit("far", 60, penalty=5.0)),
        (tech("a"),),
        grid(61),
    )
    plan = solve(problem, SHORT)
    assert_hard_rules(problem, plan)
    assert [u.visit_id for u in plan.unassigned] == ["far"]


# -- reasons ---------------------------------------------------------------------------------------------


def test_unplaceable_visits_come_back_with_the_right_reason():
    problem = day(
        (
            visit("gas", 1, skills=frozenset({"gas"})),
            visit("east", 2, region="east"),
            visit("early", 9, windows=((0, 3),)),  # 9 minutes away, window closes at 3
            visit("piano", 3, demand=(50,)),
            visit("trio", 4, technicians=3),
            visit("after-gas", 5, after="gas"),
            visit("ok", 6),
        ),
        (tech("a", regions=frozenset({"west"})), tech("b", regions=frozenset({"west"}))),
        grid(10),
    )
    plan = solve(problem, SHORT)
    reasons = {u.visit_id: u.reason for u in plan.unassigned}
    assert reasons == {
        "gas": NO_SKILLED_TECHNICIAN,
        "east": NO_TECHNICIAN_IN_REGION,
        "early": WINDOW_TOO_TIGHT,
        "piano": CAPACITY,
        "trio": NOT_ENOUGH_TECHNICIANS,
        "after-gas": PREDECESSOR_UNASSIGNED,
    }
    assert all(u.detail for u in plan.unassigned)
    assert_hard_rules(problem, plan)


def test_a_full_day_leaves_the_extra_visit_out_as_no_room():
    # Two must-do visits at the same place and minute, one technician: one cannot fit.
    problem = day((visit("x", 1, windows=((10, 10),)), visit("y", 1, windows=((10, 10),))), (tech("a"),), grid(2))
    plan = solve(problem, SHORT)
    assert [u.reason for u in plan.unassigned] == [NO_ROOM]
    assert_hard_rules(problem, plan)


# -- Solomon ---------------------------------------------------------------------------------------------


SMALL_SOLOMON = """C101

VEHICLE
NUMBER     CAPACITY
  3         50

CUSTOMER
CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME

    0        0         0         0         0       100         0
    1        3         4        20         0        18         5
    2        6         8        20        10        30         5
    3        0         5        30         0        50         5
"""


def test_the_solomon_parser_reads_vehicles_capacity_and_nodes():
    instance = solomon.parse(SMALL_SOLOMON)
    assert (instance.name, instance.vehicles, instance.capacity, len(instance.nodes)) == ("C101", 3, 50, 4)
    assert instance.nodes[2].ready == 10 and instance.nodes[2].due == 30 and instance.nodes[2].service == 5
    assert instance.distance(0, 1) == pytest.approx(5.0)


def test_the_solomon_checker_catches_late_service_overload_and_missing_customers():
    instance = solomon.parse(SMALL_SOLOMON)
    good = solomon.check(instance, [[1, 2], [3]])
    assert good.feasible and good.distance == pytest.approx(5 + 5 + 10 + 5 + 5)
    assert any("load" in v for v in solomon.check(instance, [[1, 2, 3]]).violations)
    assert any("after its due date" in v for v in solomon.check(instance, [[2, 1], [3]]).violations)
    assert any("served 0 times" in v for v in solomon.check(instance, [[1, 2]]).violations)
    assert any("served 2 times" in v for v in solomon.check(instance, [[1, 2], [3, 1]]).violations)


@needs_solomon
@pytest.mark.slow  # solution quality with a multi-second search
def test_the_first_25_customers_of_c101_are_solved_feasibly_near_their_greedy_bound():
    instance = solomon.truncate(solomon.load(SOLOMON / "C101.txt"), 25)
    plan = solve(solomon.to_problem(instance), 1.5)
    verdict = solomon.check(instance, solomon.routes_of(plan))
    assert verdict.feasible, verdict.violations
    greedy = solomon.check(instance, solomon.greedy(instance))
    assert greedy.feasible and verdict.distance <= greedy.distance + EPS


@needs_solomon
@pytest.mark.slow  # solution quality with a multi-second search
def test_the_bench_prints_a_human_line_and_a_json_line_per_instance(tmp_path, capsys):
    text = (SOLOMON / "C101.txt").read_text().splitlines()
    small = tmp_path / "C101.txt"
    small.write_text("\n".join(text[:10 + 26]) + "\n")  # header, depot and 25 customers
    (tmp_path / "bks.csv").write_text("instance,distance\nC101,191.3\n")
    assert bench_main(["routing", "--time-limit", "2", "--workers", "1", str(small)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines[0]["instance"] == "C101" and lines[0]["feasible"] is True and lines[0]["gap"] is not None
    assert lines[-1]["summary"] == "solomon" and lines[-1]["feasible"] == 1


# -- travel matrices ----------------------------------------------------------------------------------------


def test_haversine_minutes_follow_distance_detour_and_speed():
    assert haversine_km((0.0, 0.0), (1.0, 0.0)) == pytest.approx(111.19, rel=1e-3)
    minutes = HaversineProvider(speed_kmh=60, detour=1.5).durations([(0.0, 0.0), (0.0, 0.1)])
    assert minutes[0][0] == 0 and minutes[0][1] == pytest.approx(haversine_km((0, 0), (0, 0.1)) * 1.5)


def _day_and_newcomers(seed: int):
    full = field_day(visits=70, technicians=8, seed=seed)
    newcomers = [v for v in full.visits if v.id.startswith("r")][-12:]
    crew = replace(newcomers[0], id="crew-new", technicians=2, skills=frozenset({"repair"}))
    follow = replace(newcomers[1], id="follow-new", after=next(v.id for v in full.visits if v.id.startswith("d")), min_gap=20)
    base = replace(full, visits=tuple(v for v in full.visits if v not in newcomers))
    return base, newcomers + [crew, follow]


@pytest.mark.parametrize("seed", [4, 5])
def test_insertion_never_proposes_an_infeasible_slot(seed):
    base, newcomers = _day_and_newcomers(seed)
    plan = solve(base, SHORT)
    assert check_plan(base, plan) == []
    proposed = 0
    for newcomer in newcomers:
        for option in slot_options(base, plan, newcomer):
            grown, placed = insert(base, plan, newcomer, option)
            assert check_plan(grown, placed) == [], (newcomer.id, option)
            assert newcomer.id in placements(placed)
            proposed += 1
    assert proposed > 20


def test_insertion_options_are_cheapest_first_and_report_added_travel():
    problem = day((visit("a", 2), visit("b", 8)), (tech("t"),), grid(10))
    plan = solve(problem, SHORT)
    newcomer = visit("c", 5)
    options = slot_options(problem, plan, newcomer)
    assert options and options == sorted(options, key=lambda o: (o.added_travel, o.earliest_start, o.technician_ids))
    best = options[0]
    assert best.added_travel == pytest.approx(0.0)  # 5 lies on the way from 2 to 8
    assert best.earliest_start <= best.latest_start


def test_a_visit_no_one_can_reach_gets_no_options():
    problem = day((visit("a", 2),), (tech("t"),), grid(10))
    plan = solve(problem, SHORT)
    assert slot_options(problem, plan, visit("late", 9, windows=((590, 600),))) == []
    assert slot_options(problem, plan, visit("gas", 3, skills=frozenset({"gas"}))) == []


def test_the_greedy_baseline_keeps_every_rule_too():
    problem = field_day(visits=60, technicians=8, seed=9)
    plan = greedy_plan(problem)
    assert_hard_rules(problem, plan)


def test_a_board_built_from_a_plan_sees_the_plan_as_feasible():
    problem = field_day(visits=50, technicians=6, seed=13)
    plan = solve(problem, SHORT)
    board = Board(problem, plan)
    assert all(state.feasible for state in board.states.values())
    driven = sum(s.travel_minutes() for s in board.states.values() if any(item.visit is not None for item in s.items))
    assert math.isclose(driven, sum(r.travel for r in plan.routes), rel_tol=1e-9)
