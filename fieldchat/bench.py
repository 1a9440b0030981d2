"""`fieldchat bench`: routing quality on Solomon instances, a synthetic field day, and slot-insertion latency."""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_solomon_dir() -> Path:
    """../shared/routing/solomon next to the repository, or $FIELDCHAT_SHARED/routing/solomon."""
    shared = os.environ.get("FIELDCHAT_SHARED")
    base = Path(shared) if shared else ROOT.parent / "shared"
    return base / "routing" / "solomon"


def _instances(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths or [str(default_solomon_dir())]:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt")
        elif path.exists():
            found.append(path)
        else:
            raise SystemExit(f"fieldchat bench: no such file or folder: {path}")
    return found


def _best_known(folders: set[Path]) -> dict[str, float]:
    known: dict[str, float] = {}
    for folder in folders:
        table = folder / "bks.csv"
        if table.exists():
            with table.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    try:
                        known[row["instance"].strip().upper()] = float(row["distance"])
                    except (KeyError, ValueError):
                        continue
    return known


def _emit(human: str, record: dict) -> None:
    print(human)
    print(json.dumps(record, sort_keys=True), flush=True)


def _peak_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child, in MiB (Linux counts KiB)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(children, 1)


def _in_fresh_process(function, *args):
    """Runs one solve in a new process (spawned, as the service's worker pool would), so that its peak memory
    is its own and not the benchmark's or an earlier instance's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _product_run(path: str, time_limit: float, workers: int, engine: str) -> dict:
    """The product's portfolio on one instance; the plan re-checked by both independent checkers."""
    from scheduler.routing import solomon
    from scheduler.routing.check import check_plan
    from scheduler.routing.solver import portfolio, solve_portfolio

    instance = solomon.load(path)
    problem = solomon.to_problem(instance)
    started = time.monotonic()
    plan = solve_portfolio(problem, time_limit, workers=workers, strategies=portfolio(problem, engine))
    seconds = time.monotonic() - started
    own, child = _peak_mib()
    return {
        "routes": solomon.routes_of(plan),
        "seconds": seconds,
        "plan_violations": check_plan(problem, plan)[:5],
        "engine": plan.stats.get("engine"),
        "first_feasible_seconds": plan.stats.get("first_feasible_seconds"),
        "peak_mib": max(own, child),
        "peak_total_mib": round(own + child, 1),
    }


def pyvrp_data(instance, resolution: int = 1000):
    """Plain PyVRP's model of a Solomon-format instance: distances = durations, x1000 and rounded up (the
    product's convention, so the real-distance checker accepts what either finds)."""
    import math

    import numpy as np
    import pyvrp

    xy = np.asarray([(node.x, node.y) for node in instance.nodes], dtype=float)
    matrix = np.ceil(np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]) * resolution - 1e-9).astype(np.int64)
    depot = instance.nodes[0]

    def up(x: float) -> int:
        return int(math.ceil(x * resolution - 1e-9))

    def down(x: float) -> int:
        return int(math.floor(x * resolution + 1e-9))

    clients = [pyvrp.Client(n.number, [n.demand], [], up(n.service), up(n.ready), down(n.due)) for n in instance.nodes[1:]]
    vehicles = pyvrp.VehicleType(instance.vehicles, [instance.capacity], tw_early=up(depot.ready), tw_late=down(depot.due))
    locations = [pyvrp.Location(n.x, n.y) for n in instance.nodes]
    return pyvrp.ProblemData(locations, clients, [pyvrp.Depot(0, up(depot.ready), down(depot.due))], [vehicles], [matrix], [matrix])


def _pyvrp_run(path: str, time_limit: float, seed: int) -> dict:
    """The baseline: plain PyVRP (default parameters, one process) stopped on the same wall clock as the product."""
    import pyvrp

    from scheduler.routing import solomon

    instance = solomon.load(path)
    started = time.monotonic()
    deadline = started + time_limit
    first: list[float] = []

    class Watch(pyvrp.IteratedLocalSearchCallbacks):
        def on_start(self, ils):  # PyVRP's own first solution may already be feasible (then on_best may never come)
            self.on_best(ils.initial_solution)

        def on_best(self, best):
            if not first and best.is_feasible():
                first.append(time.monotonic() - started)

    params = pyvrp.SolveParams(ils=pyvrp.IteratedLocalSearchParams(callbacks=Watch()))
    result = pyvrp.solve(pyvrp_data(instance), lambda _cost: time.monotonic() >= deadline, seed=seed, collect_stats=False, params=params)
    seconds = time.monotonic() - started
    routes = [[a.idx + 1 for a in route if a.is_client()] for route in result.best.routes()]
    own, child = _peak_mib()
    return {"routes": routes, "seconds": seconds, "first_feasible_seconds": first[0] if first else None, "peak_mib": max(own, child)}


def bench_solomon(paths: list[str], time_limit: float, workers: int, baseline: bool = True, ortools: bool = False) -> int:
    """Each instance: the product's portfolio, then (same time, same machine, one after the other) plain PyVRP
    and, with `ortools`, the OR-Tools-only portfolio of before; distances from the independent checker."""
    from scheduler.routing import solomon

    files = _instances(paths)
    known = _best_known({p.parent for p in files})
    gaps, ratios, ortools_ratios, feasible_count = [], [], [], 0
    firsts, overruns, peaks = [], [], []
    for path in files:
        instance = solomon.load(path)
        run = _in_fresh_process(_product_run, str(path), time_limit, workers, "auto")
        verdict = solomon.check(instance, run["routes"])  # independent of the solver
        feasible = verdict.feasible and not run["plan_violations"]
        bks = known.get(instance.name.upper())
        gap = (verdict.distance - bks) / bks * 100 if bks and feasible else None
        feasible_count += feasible
        if gap is not None:
            gaps.append(gap)
        record = {
            "instance": instance.name,
            "customers": len(instance.nodes) - 1,
            "vehicles": verdict.vehicles,
            "distance": round(verdict.distance, 3),
            "feasible": feasible,
            "violations": list(verdict.violations[:5]) + run["plan_violations"],
            "seconds": round(run["seconds"], 2),
            "bks": bks,
            "gap": round(gap, 3) if gap is not None else None,
            "time_limit": time_limit,
            "workers": workers,
            "engine": run["engine"],
            "first_feasible_seconds": round(run["first_feasible_seconds"], 2) if run["first_feasible_seconds"] is not None else None,
            "peak_mib": run["peak_mib"],
            "peak_total_mib": run["peak_total_mib"],
            "routes": run["routes"],
        }
        if run["first_feasible_seconds"] is not None:
            firsts.append((len(instance.nodes) - 1, run["first_feasible_seconds"]))
        overruns.append(run["seconds"] / time_limit - 1)
        peaks.append(run["peak_mib"])
        versus = ""
        if baseline:
            other = _in_fresh_process(_pyvrp_run, str(path), time_limit, 1)
            check = solomon.check(instance, other["routes"])
            ratio = verdict.distance / check.distance if check.feasible and feasible else None
            if ratio is not None:
                ratios.append(ratio)
            record.update(
                pyvrp_distance=round(check.distance, 3),
                pyvrp_vehicles=check.vehicles,
                pyvrp_feasible=check.feasible,
                pyvrp_seconds=round(other["seconds"], 2),
                pyvrp_first_feasible_seconds=round(other["first_feasible_seconds"], 2) if other["first_feasible_seconds"] is not None else None,
                pyvrp_peak_mib=other["peak_mib"],
                pyvrp_ratio=round(ratio, 4) if ratio is not None else None,
            )
            versus = f"  PyVRP {check.distance:9.2f} ratio {ratio:.4f}" if ratio is not None else "  PyVRP n/a"
        if ortools:
            old = _in_fresh_process(_product_run, str(path), time_limit, workers, "ortools")
            check = solomon.check(instance, old["routes"])
            old_ok = check.feasible and not old["plan_violations"]
            ratio = verdict.distance / check.distance if old_ok and feasible else None
            if ratio is not None:
                ortools_ratios.append(ratio)
            record.update(ortools_distance=round(check.distance, 3), ortools_feasible=old_ok, ortools_seconds=round(old["seconds"], 2), ortools_peak_mib=old["peak_mib"], ortools_ratio=round(ratio, 4) if ratio is not None else None)
            versus += f"  OR-Tools {check.distance:9.2f}" if old_ok else "  OR-Tools infeasible"
        gap_text = f"{gap:+.2f}%" if gap is not None else "n/a"
        _emit(
            f"{instance.name:<8} vehicles {verdict.vehicles:>3}  distance {verdict.distance:9.2f}  best known {bks if bks else '-':>7}  "
            f"gap {gap_text:>7}  feasible {'yes' if feasible else 'NO'}  {run['seconds']:5.1f} s{versus}",
            record,
        )
    mean_gap = statistics.fmean(gaps) if gaps else None
    summary = {
        "summary": "solomon",
        "instances": len(files),
        "feasible": feasible_count,
        "mean_gap": round(mean_gap, 3) if mean_gap is not None else None,
        "mean_pyvrp_ratio": round(statistics.fmean(ratios), 4) if ratios else None,
        "max_pyvrp_ratio": round(max(ratios), 4) if ratios else None,
        "mean_ortools_ratio": round(statistics.fmean(ortools_ratios), 4) if ortools_ratios else None,
        "max_first_feasible_seconds_1000": round(max(s for n, s in firsts if n >= 1000), 2) if any(n >= 1000 for n, _ in firsts) else None,
        "max_time_overrun": round(max(overruns), 4) if overruns else None,
        "max_peak_mib": max(peaks) if peaks else None,
    }
    human = f"summary: {feasible_count}/{len(files)} feasible"
    if mean_gap is not None:
        human += f", mean gap {mean_gap:+.2f}% over {len(gaps)} instances with a best known value"
    if ratios:
        human += f", distance / PyVRP mean {statistics.fmean(ratios):.4f} max {max(ratios):.4f}"
    _emit(human, summary)
    return 0 if feasible_count == len(files) else 1


def _field_day_run(visits: int, technicians: int, seed: int, time_limit: float, workers: int) -> dict:
    """One solve of the synthetic day in a fresh process: the plan, its independent check, wall time and memory."""
    from scheduler.routing.check import check_plan
    from scheduler.routing.solver import solve_portfolio
    from scheduler.routing.synthetic import field_day

    problem = field_day(visits=visits, technicians=technicians, seed=seed)
    started = time.monotonic()
    plan = solve_portfolio(problem, time_limit, workers=workers)
    seconds = time.monotonic() - started
    own, child = _peak_mib()
    return {"plan": plan, "seconds": seconds, "violations": check_plan(problem, plan), "peak_mib": max(own, child)}


def bench_field_day(time_limit: float, seed: int, workers: int, queries: int, sizes: tuple[int, ...] = (1000, 3000), long_factor: float = 10.0) -> int:
    """Synthetic days of each size (one technician per 20 visits): the solver against a greedy baseline and
    against itself given `long_factor` times the time (how far from converged the normal limit leaves it)."""
    from scheduler.routing.check import check_plan
    from scheduler.routing.insertion import greedy_plan
    from scheduler.routing.synthetic import field_day

    ok = True
    for size in sizes:
        technicians = max(1, size // 20)
        problem = field_day(visits=size, technicians=technicians, seed=seed)
        started = time.monotonic()
        baseline = greedy_plan(problem)
        baseline_seconds = time.monotonic() - started
        run = _in_fresh_process(_field_day_run, size, technicians, seed, time_limit, workers)
        plan, seconds, violations = run["plan"], run["seconds"], run["violations"]
        long = _in_fresh_process(_field_day_run, size, technicians, seed, time_limit * long_factor, workers) if long_factor > 1 else None
        baseline_violations = check_plan(problem, baseline)
        planned = len({s.visit_id for r in plan.routes for s in r.stops})
        baseline_planned = len({s.visit_id for r in baseline.routes for s in r.stops})
        travel, baseline_travel = plan.objective.travel, baseline.objective.travel
        per_visit = travel / max(1, planned)
        baseline_per_visit = baseline_travel / max(1, baseline_planned)
        saving = (1 - travel / baseline_travel) * 100 if baseline_travel else 0.0
        saving_per_visit = (1 - per_visit / baseline_per_visit) * 100 if baseline_per_visit else 0.0
        reasons: dict[str, int] = {}
        for item in plan.unassigned:
            reasons[item.reason] = reasons.get(item.reason, 0) + 1
        record = {
            "benchmark": "field-day",
            "visits": len(problem.visits),
            "technicians": len(problem.technicians),
            "seconds": round(seconds, 2),
            "time_limit": time_limit,
            "engine": plan.stats.get("engine"),
            "planned": planned,
            "unassigned": len(plan.unassigned),
            "unassigned_reasons": reasons,
            "feasible": not violations,
            "violations": violations[:5],
            "travel_minutes": round(travel, 1),
            "objective": round(plan.objective.total, 1),
            "peak_mib": run["peak_mib"],
            "baseline_planned": baseline_planned,
            "baseline_travel_minutes": round(baseline_travel, 1),
            "baseline_feasible": not baseline_violations,
            "baseline_seconds": round(baseline_seconds, 2),
            # how the solver spent the time (a day above solver.DECOMPOSE_ABOVE is improved group by group)
            **{k: plan.stats[k] for k in ("construct_seconds", "groups_solved", "groups_improved", "rounds", "minutes_saved", "left_out_placed") if k in plan.stats},
            "load_average": round(os.getloadavg()[0], 2),  # the machine is shared: read the seconds with this
            "travel_saving_pct": round(saving, 2),
            "travel_per_visit_saving_pct": round(saving_per_visit, 2),
        }
        versus = ""
        if long is not None:
            best = long["plan"]
            long_planned = len({s.visit_id for r in best.routes for s in r.stops})
            gap = (plan.objective.total / best.objective.total - 1) * 100 if best.objective.total else 0.0
            # the objective counts a left-out must-do visit as 100,000 minutes: per planned visit says more about routes
            long_per_visit = best.objective.travel / max(1, long_planned)
            record.update(
                travel_per_visit_gap_to_long_pct=round((per_visit / long_per_visit - 1) * 100, 2) if long_per_visit else None,
                long_time_limit=time_limit * long_factor,
                long_seconds=round(long["seconds"], 2),
                long_planned=long_planned,
                long_travel_minutes=round(best.objective.travel, 1),
                long_objective=round(best.objective.total, 1),
                long_feasible=not long["violations"],
                gap_to_long_pct=round(gap, 2),
            )
            ok = ok and not long["violations"]
            versus = (
                f"; {long_factor:g}x the time: {long_planned} planned, travel {best.objective.travel:.0f} min, objective gap {gap:+.2f}%, "
                f"travel per planned visit {(per_visit / long_per_visit - 1) * 100 if long_per_visit else 0:+.2f}%"
            )
        _emit(
            f"field day: {planned}/{len(problem.visits)} visits planned by {len(plan.routes)}/{len(problem.technicians)} technicians in {seconds:.1f} s, "
            f"travel {travel:.0f} min vs greedy {baseline_travel:.0f} min for {baseline_planned} visits "
            f"({saving:.1f}% less in total, {saving_per_visit:.1f}% less per visit), hard constraints {'held' if not violations else 'BROKEN'}{versus}",
            record,
        )
        ok = ok and not violations and planned >= baseline_planned and saving >= 20.0
    return (bench_insertion(seed, queries) if queries else 0) or (0 if ok else 1)


def bench_insertion(seed: int, queries: int) -> int:
    """p50/p95 of finding every feasible slot for one new visit in a 100-technician, 1,000-visit day."""
    from scheduler.routing.check import check_plan
    from scheduler.routing.insertion import Board, insert
    from scheduler.routing.solver import Strategy, solve
    from scheduler.routing.synthetic import field_day

    full = field_day(visits=1000 + queries, technicians=100, seed=seed + 1)
    rng = random.Random(seed)
    extra_ids = {v.id for v in rng.sample([v for v in full.visits if not v.after and v.technicians == 1 and v.id.startswith("r")], queries)}
    base = replace(full, visits=tuple(v for v in full.visits if v.id not in extra_ids))
    newcomers = [v for v in full.visits if v.id in extra_ids]
    plan = solve(base, 20.0, Strategy(first_solution="insertion"))
    cold, warm, counts, invalid = [], [], [], 0
    board = Board(base, plan)
    for visit in newcomers:
        started = time.perf_counter()
        fresh = Board(base, plan)
        options = fresh.options(visit)
        cold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        board.options(visit)
        warm.append((time.perf_counter() - started) * 1000)
        counts.append(len(options))
        if options:
            grown, placed = insert(base, plan, visit, options[0])
            if check_plan(grown, placed):
                invalid += 1
    cold.sort()
    warm.sort()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    planned = sum(len(r.stops) for r in plan.routes)
    _emit(
        f"insertion: {len(newcomers)} new visits into {planned} planned stops of {len(base.technicians)} technicians: "
        f"p50 {pct(cold, 0.5):.1f} ms, p95 {pct(cold, 0.95):.1f} ms (board built per query; {pct(warm, 0.95):.1f} ms on a live board), "
        f"median {statistics.median(counts):.0f} options, {invalid} invalid best options",
        {
            "benchmark": "insertion",
            "technicians": len(base.technicians),
            "planned_stops": planned,
            "queries": len(newcomers),
            "p50_ms": round(pct(cold, 0.5), 2),
            "p95_ms": round(pct(cold, 0.95), 2),
            "p95_live_board_ms": round(pct(warm, 0.95), 2),
            "median_options": statistics.median(counts),
            "invalid": invalid,
        },
    )
    return 0 if invalid == 0 and pct(cold, 0.95) <= 50 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["notify"]:  # the notification relay's benchmark has options of its own
        from fieldchat.notify_bench import main as notify_main

        return notify_main(argv[1:])
    if argv[:1] == ["inbound"]:  # webhook updates against two echo baselines: options of its own too
        from fieldchat.inbound_bench import main as inbound_main

        return inbound_main(argv[1:])
    if argv[:1] == ["board"]:  # the dispatch board's render time on a big day: options of its own too
        from fieldchat.board_bench import main as board_main

        return board_main(argv[1:])
    if argv[:1] == ["start"]:  # cold start and idle memory of `fieldchat serve`: options of its own too
        from fieldchat.start_bench import main as start_main

        return start_main(argv[1:])
    parser = argparse.ArgumentParser(prog="fieldchat bench", description="Benchmarks (results on stdout: a human line and a JSON line each); also `fieldchat bench notify --help`, `fieldchat bench inbound --help` and `fieldchat bench start --help`.")
    which = parser.add_subparsers(dest="which", metavar="BENCHMARK", required=True)
    routing = which.add_parser(
        "routing",
        help="Solomon-format VRPTW instances (Solomon, Gehring & Homberger): distance, feasibility (checked independently), gap to best known, ratio to plain PyVRP",
    )
    routing.add_argument("paths", nargs="*", metavar="PATH", help=f"instance files or folders (default {default_solomon_dir()})")
    routing.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS", help="wall time per instance (default 30)")
    routing.add_argument("--workers", type=int, default=2, help="parallel searches sharing the time limit (default 2)")
    routing.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip plain PyVRP given the same wall time")
    routing.add_argument("--ortools", action="store_true", help="also run the OR-Tools-only portfolio (the engine before PyVRP) for the same time")
    routing.add_argument("--synthetic", action="store_true", help="also run the field-day benchmark")
    day = which.add_parser("field-day", help="synthetic days of 1,000 and 3,000 visits vs a greedy baseline and vs 10x the time, then slot-insertion latency at 100 x 1,000")
    day.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS", help="wall time for the solver (default 60)")
    day.add_argument("--visits", type=int, nargs="+", default=[1000, 3000], metavar="N", help="day sizes (default 1000 3000; one technician per 20 visits)")
    day.add_argument("--long-factor", type=float, default=10.0, metavar="X", help="compare with the solver given X times the time (default 10; 1 skips it)")
    day.add_argument("--quick", action="store_true", help="10 s, 1,000 visits, 3x the time, no insertion queries")
    day.add_argument("--seed", type=int, default=7)
    day.add_argument("--workers", type=int, default=2)
    day.add_argument("--queries", type=int, default=200, help="insertion queries (default 200; 0 skips them)")
    args = parser.parse_args(argv)
    if args.which == "routing":
        code = bench_solomon(args.paths, args.time_limit, args.workers, args.baseline, args.ortools)
        if args.synthetic:
            code = bench_field_day(60.0, 7, args.workers, 200) or code
        return code
    if args.quick:
        return bench_field_day(10.0, args.seed, args.workers, 0, (1000,), 3.0)
    return bench_field_day(args.time_limit, args.seed, args.workers, args.queries, tuple(args.visits), args.long_factor)


if __name__ == "__main__":
    sys.exit(main())
