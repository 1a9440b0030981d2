"""Routing at scale: the engine chosen per day, PyVRP plans that keep the field rules, big-day fallbacks, bench fields."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
from pyvrp import solve as pyvrp_solve
from pyvrp.stop import MaxIterations

from fieldchat.bench import bench_field_day, pyvrp_data
from fieldchat.bench import main as bench_main
from scheduler.routing import hgs, solomon
from scheduler.routing.check import check_plan
from scheduler.routing.insertion import Board
from scheduler.routing.model import CAPACITY, NO_ROOM, NO_SKILLED_TECHNICIAN, NOT_WORTH_IT, WINDOW_TOO_TIGHT, Break, Problem
from scheduler.routing.solver import _scaled, portfolio, solve, solve_portfolio
from scheduler.routing.synthetic import field_day
from tests.unit.test_routing import SOLOMON, day, grid, needs_solomon, tech, visit

# the same small-day builders as the solver's own tests
line = grid


def plain_day() -> Problem:
    return day([visit(f"v{k}", 1 + k) for k in range(8)], [tech("a"), tech("b")], line(10))


# -- which engine --------------------------------------------------------------------------------------------


def test_a_day_pyvrp_models_whole_goes_to_pyvrp_and_one_with_field_only_rules_to_ortools():
    base = plain_day()
    assert hgs.unsupported(base) is None
    assert {s.engine for s in portfolio(base)} == {"pyvrp"}
    first, second, *rest = base.visits
    cases = {
        "crews": replace(base, visits=(replace(first, technicians=2), second, *rest)),
        "links": replace(base, visits=(first, replace(second, after=first.id, min_gap=30), *rest)),
        "pinned_or_started": replace(base, visits=(replace(first, pinned_start=50.0), second, *rest)),
        "breaks": replace(base, technicians=(replace(base.technicians[0], breaks=(Break(100, 200, 30),)), base.technicians[1])),
        "several_windows": replace(base, visits=(replace(first, windows=((0, 50), (300, 400))), second, *rest)),
    }
    for reason, problem in cases.items():
        assert hgs.unsupported(problem) == reason
        assert {s.engine for s in portfolio(problem)} == {"ortools"}
    assert {s.engine for s in portfolio(base, "ortools")} == {"ortools"}


@pytest.mark.slow  # solution quality with a search of half a second
def test_pyvrp_spreads_work_when_the_day_has_a_fairness_weight_and_reports_the_term():
    visits = [visit(f"v{k}", 1 + k % 2, service=30) for k in range(6)]  # all next door to the depot
    lazy = solve(day(visits, [tech("a"), tech("b")], line(3)), 0.5)
    problem = day(visits, [tech("a"), tech("b")], line(3), fairness_weight=5.0)
    fair = solve(problem, 0.5)
    assert lazy.stats["engine"] == fair.stats["engine"] == "pyvrp"
    assert len(lazy.routes) == 1 and len(fair.routes) == 2
    assert check_plan(problem, fair) == []
    alone = solve(replace(problem, visits=problem.visits[:1]), 0.3)
    assert alone.objective.fairness == pytest.approx(5.0 * (2 + 30 - 15))  # 2 min driving + 30 of service over a 15-min share


def test_more_distinct_skill_sets_than_profiles_goes_to_ortools():
    skills = [f"s{k}" for k in range(hgs.MAX_PROFILES + 1)]
    techs = [tech(f"t{k}", skills=frozenset({"fix", s})) for k, s in enumerate(skills)]
    visits = [visit(f"v{k}", 1 + k, skills=frozenset({s})) for k, s in enumerate(skills)]
    assert hgs.unsupported(day(visits, techs, line(len(visits) + 1))) == "too_many_skill_sets"


def test_solve_reports_the_engine_it_used():
    problem = plain_day()
    assert solve(problem, 0.3).stats["engine"] == "pyvrp"
    crew = replace(problem, visits=(replace(problem.visits[0], technicians=2), *problem.visits[1:]))
    assert solve(crew, 0.3).stats["engine"] == "ortools"


# -- PyVRP plans keep the field model --------------------------------------------------------------------------


def test_pyvrp_keeps_skills_regions_pins_capacity_windows_and_shifts():
    # Two depots (0 and 9) on a line. "gas" sits next to a's depot but only b has the skill; "east" is in
    # c's region only; "pin" is pinned to a; c's van is small and c's shift ends early.
    techs = [
        tech("a", start_location=0, end_location=0, regions=frozenset({"west"})),
        tech("b", start_location=9, end_location=9, skills=frozenset({"fix", "gas"}), regions=frozenset({"west"})),
        tech("c", start_location=9, end_location=9, regions=frozenset({"east"}), capacity=(2,), shift=(0, 120)),
    ]
    visits = [
        visit("gas", 1, skills=frozenset({"fix", "gas"}), region="west"),
        visit("east", 8, region="east"),
        visit("pin", 7, region="west", pinned_technicians=("a",)),
        visit("late", 4, windows=((300, 320),), region="west"),
        visit("w1", 2, region="west"),
        visit("w2", 3, region="west"),
    ]
    problem = day(visits, techs, line(10))
    plan = solve(problem, 0.5)
    assert plan.stats["engine"] == "pyvrp"
    assert check_plan(problem, plan) == []
    owner = {s.visit_id: r.technician_id for r in plan.routes for s in r.stops}
    assert owner["gas"] == "b" and owner["east"] == "c" and owner["pin"] == "a"
    assert not plan.unassigned
    late = next(s for r in plan.routes for s in r.stops if s.visit_id == "late")
    assert 300 <= late.start <= 320


def test_pyvrp_days_leave_out_what_cannot_be_done_with_the_reasons_of_the_field_model():
    techs = [tech("a", capacity=(3,)), tech("b", shift=(0, 100), capacity=(3,))]
    visits = [
        visit("nobody", 1, skills=frozenset({"gas"})),
        visit("far", 9, windows=((0, 2),)),  # 9 minutes away, closes at 2
        visit("piano", 2, demand=(5,)),
        visit("optional", 9, penalty=1.0, demand=(0,)),  # 18 minutes of driving are not worth 1
        visit("x", 3, windows=((50, 50),), demand=(3,)),
        visit("y", 3, windows=((50, 50),), demand=(3,)),
        visit("z", 3, windows=((50, 50),), demand=(3,)),  # two technicians, three at one minute
    ]
    problem = day(visits, techs, line(10))
    plan = solve(problem, 0.5)
    assert plan.stats["engine"] == "pyvrp"
    assert check_plan(problem, plan) == []
    reasons = {u.visit_id: u.reason for u in plan.unassigned}
    assert reasons.pop("nobody") == NO_SKILLED_TECHNICIAN
    assert reasons.pop("far") == WINDOW_TOO_TIGHT
    assert reasons.pop("piano") == CAPACITY
    assert reasons.pop("optional") == NOT_WORTH_IT
    assert list(reasons.values()) in ([NO_ROOM], [CAPACITY])  # one of x, y, z


def test_the_vectorised_screen_agrees_with_the_insertion_boards_reasons():
    rng = random.Random(5)
    for _ in range(20):
        n = 30
        travel = [[abs(i - j) * rng.uniform(0.5, 2.0) for j in range(n)] for i in range(n)]
        techs = [
            tech(f"t{k}", start_location=rng.randrange(3), end_location=rng.randrange(3), shift=(rng.uniform(0, 100), rng.uniform(150, 400)),
                 skills=frozenset(rng.sample(["fix", "gas", "ac"], 2)), regions=frozenset(rng.sample(["n", "s", "e"], 1)), capacity=(rng.randint(1, 5),))
            for k in range(4)
        ]
        visits = []
        for k in range(25):
            low = rng.uniform(0, 400)
            windows = ((low, low + rng.uniform(0, 60)),) if rng.random() < 0.8 else ()
            visits.append(visit(f"v{k}", rng.randrange(3, n), windows=windows, skills=frozenset(rng.sample(["fix", "gas", "ac"], 1)),
                                region=rng.choice(["n", "s", "e", None]), demand=(rng.randint(0, 6),), service=rng.uniform(5, 40)))
        problem = day(visits, techs, travel, now=rng.uniform(0, 120), resolution=60)
        scaled, _ = _scaled(problem)
        board = Board(scaled)
        assert hgs.servable_alone(scaled, scaled.visits) == [board.reason(v) is None for v in scaled.visits]


def test_pyvrp_plans_of_synthetic_days_without_crews_links_or_breaks_pass_the_checker():
    for seed in (1, 2, 3):
        full = field_day(visits=80, technicians=6, seed=seed)
        visits = tuple(replace(v, technicians=1, after=None, min_gap=0, same_crew=False, windows=v.windows[:1]) for v in full.visits)
        problem = replace(full, visits=visits, technicians=tuple(replace(t, breaks=()) for t in full.technicians), now=8 * 60 + 30 * seed)
        assert hgs.unsupported(problem) is None
        plan = solve(problem, 0.5)
        assert plan.stats["engine"] == "pyvrp"
        assert check_plan(problem, plan) == []


def test_a_barred_visit_is_unreachable_in_its_profile():
    problem = day([visit("gas", 1, skills=frozenset({"gas"})), visit("v", 2)], [tech("a"), tech("b", skills=frozenset({"fix", "gas"}))], line(3))
    scaled, _ = _scaled(problem)
    data, groups = hgs.build(scaled, scaled.visits, problem.resolution)
    assert data.num_profiles == 2
    a_type = next(k for k, techs in enumerate(groups) if techs[0].id == "a")
    matrix = data.distance_matrix(data.vehicle_type(a_type).profile)
    gas = data.client(0).location
    assert matrix[0, gas] > 600 * problem.resolution and matrix[gas, 0] > 600 * problem.resolution  # longer than any shift
    # and far below PyVRP's own MAX_VALUE (2**44): penalties on that overflowed, and the first local search
    # on an 80-visit day ran for 18 s instead of 0.5
    assert matrix.max() < 2**32


# -- big days within the time limit ------------------------------------------------------------------------------


def test_a_day_too_big_to_model_in_time_gets_the_insertion_plan_and_keeps_every_rule():
    for seed in (3, 5):
        problem = field_day(visits=60, technicians=6, seed=seed)
        plan = solve(problem, 0.001)  # no time left after our insertion: the OR-Tools model is not even built
        assert plan.status == "insertion_only"
        assert check_plan(problem, plan) == []
        assert len(plan.routes) > 0


# -- the benchmark ---------------------------------------------------------------------------------------------------


def test_the_pyvrp_baseline_models_the_instance_like_the_checker():
    instance = solomon.parse(
        "T\n\nVEHICLE\nNUMBER CAPACITY\n 2 30\n\nCUSTOMER\n"
        " 0 0 0 0 0 100 0\n 1 3 4 20 0 18 5\n 2 6 8 20 10 30 5\n"
    )
    data = pyvrp_data(instance)
    assert data.num_clients == 2 and data.num_vehicles == 2
    assert data.distance_matrix(0)[0, 1] == 5000  # x1000, rounded up
    assert data.client(1).tw_late == 30000 and data.vehicle_type(0).capacity == [30]


@needs_solomon
@pytest.mark.slow  # two searches of a second each in fresh processes
def test_the_routing_bench_prints_routes_that_re_check_and_the_pyvrp_ratio(tmp_path, capsys):
    text = (SOLOMON / "R101.txt").read_text().splitlines()
    small = tmp_path / "R101.txt"
    small.write_text("\n".join(text[: 10 + 21]) + "\n")  # header, depot and 20 customers
    assert bench_main(["routing", "--time-limit", "1", "--workers", "1", str(small)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    record, summary = records[0], records[-1]
    verdict = solomon.check(solomon.load(small), record["routes"])
    assert verdict.feasible and verdict.distance == pytest.approx(record["distance"], abs=1e-3)
    assert record["engine"] == "pyvrp" and record["pyvrp_feasible"] is True
    assert record["pyvrp_ratio"] == pytest.approx(record["distance"] / record["pyvrp_distance"], abs=1e-4)
    assert record["peak_mib"] > 0 and record["first_feasible_seconds"] is not None
    assert summary["summary"] == "solomon" and summary["mean_pyvrp_ratio"] is not None


@pytest.mark.slow  # four solves in fresh processes
def test_the_field_day_bench_reports_the_gap_to_the_solver_given_more_time(capsys):
    assert bench_field_day(0.5, 7, 1, 0, (40, 60), 2.0) in (0, 1)  # the exit code also judges the greedy saving
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["visits"] for r in records] == [40, 60]
    for record in records:
        assert record["feasible"] and record["long_feasible"]
        assert record["long_time_limit"] == 1.0 and isinstance(record["gap_to_long_pct"], float)
        assert isinstance(record["travel_per_visit_gap_to_long_pct"], float)


def test_solve_portfolio_keeps_the_earliest_first_feasible_time_of_its_searches():
    plan = solve_portfolio(plain_day(), 0.8, workers=1)
    assert plan.stats["engine"] == "pyvrp" and plan.stats["first_feasible_seconds"] is not None


def test_the_numpy_matrix_of_a_solomon_instance_is_its_euclidean_distances():
    instance = solomon.truncate(solomon.parse("T\n\nVEHICLE\nNUMBER CAPACITY\n 1 9\n\nCUSTOMER\n 0 0 0 0 0 9 0\n 1 3 4 1 0 9 0\n"), 1)
    assert np.allclose(instance.matrix(), [[0, 5], [5, 0]])


def test_the_products_pyvrp_model_of_a_solomon_instance_is_plain_pyvrps():
    # Same data, same seed, same number of iterations: the same cost. Ratios to the baseline then measure
    # time and cores only, not a model that drifted (depots, rounding, windows).
    instance = solomon.parse(
        "T\n\nVEHICLE\nNUMBER CAPACITY\n 3 50\n\nCUSTOMER\n"
        " 0 0 0 0 0 200 0\n 1 3 4 20 0 60 5\n 2 6 8 20 10 80 5\n 3 0 5 30 0 90 5\n 4 9 1 10 30 120 10\n 5 2 7 15 0 150 5\n"
    )
    problem = solomon.to_problem(instance)
    scaled, _ = _scaled(problem, as_array=True)
    ours, _ = hgs.build(scaled, scaled.visits, problem.resolution)
    costs = [pyvrp_solve(data, MaxIterations(40), seed=3, collect_stats=False).cost() for data in (ours, pyvrp_data(instance))]
    assert costs[0] == costs[1]
