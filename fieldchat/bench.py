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


def bench_solomon(paths: list[str], time_limit: float, workers: int) -> int:
    from scheduler.routing import solomon
    from scheduler.routing.solver import solve_portfolio

    files = _instances(paths)
    known = _best_known({p.parent for p in files})
    gaps, feasible_count = [], 0
    for path in files:
        instance = solomon.load(path)
        problem = solomon.to_problem(instance)
        started = time.monotonic()
        plan = solve_portfolio(problem, time_limit, workers=workers)
        seconds = time.monotonic() - started
        verdict = solomon.check(instance, solomon.routes_of(plan))  # independent of the solver
        bks = known.get(instance.name.upper())
        gap = (verdict.distance - bks) / bks * 100 if bks and verdict.feasible else None
        feasible_count += verdict.feasible
        if gap is not None:
            gaps.append(gap)
        record = {
            "instance": instance.name,
            "customers": len(instance.nodes) - 1,
            "vehicles": verdict.vehicles,
            "distance": round(verdict.distance, 3),
            "feasible": verdict.feasible,
            "violations": list(verdict.violations[:5]),
            "seconds": round(seconds, 2),
            "bks": bks,
            "gap": round(gap, 3) if gap is not None else None,
            "time_limit": time_limit,
            "workers": workers,
        }
        gap_text = f"{gap:+.2f}%" if gap is not None else "n/a"
        _emit(
            f"{instance.name:<8} vehicles {verdict.vehicles:>3}  distance {verdict.distance:9.2f}  best known {bks if bks else '-':>7}  "
            f"gap {gap_text:>7}  feasible {'yes' if verdict.feasible else 'NO'}  {seconds:5.1f} s",
            record,
        )
    mean_gap = statistics.fmean(gaps) if gaps else None
    _emit(
        f"summary: {feasible_count}/{len(files)} feasible, mean gap {mean_gap:+.2f}% over {len(gaps)} instances with a best known value"
        if mean_gap is not None
        else f"summary: {feasible_count}/{len(files)} feasible",
        {"summary": "solomon", "instances": len(files), "feasible": feasible_count, "mean_gap": round(mean_gap, 3) if mean_gap is not None else None},
    )
    return 0 if feasible_count == len(files) else 1


def bench_field_day(time_limit: float, seed: int, workers: int, queries: int) -> int:
    from scheduler.routing.check import check_plan
    from scheduler.routing.insertion import greedy_plan
    from scheduler.routing.solver import solve_portfolio
    from scheduler.routing.synthetic import field_day

    problem = field_day(visits=1000, technicians=50, seed=seed)
    started = time.monotonic()
    baseline = greedy_plan(problem)
    baseline_seconds = time.monotonic() - started
    started = time.monotonic()
    plan = solve_portfolio(problem, time_limit, workers=workers)
    seconds = time.monotonic() - started
    violations = check_plan(problem, plan)
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
    _emit(
        f"field day: {planned}/{len(problem.visits)} visits planned by {len(plan.routes)}/{len(problem.technicians)} technicians in {seconds:.1f} s, "
        f"travel {travel:.0f} min vs greedy {baseline_travel:.0f} min for {baseline_planned} visits "
        f"({saving:.1f}% less in total, {saving_per_visit:.1f}% less per visit), hard constraints {'held' if not violations else 'BROKEN'}",
        {
            "benchmark": "field-day",
            "visits": len(problem.visits),
            "technicians": len(problem.technicians),
            "seconds": round(seconds, 2),
            "time_limit": time_limit,
            "planned": planned,
            "unassigned": len(plan.unassigned),
            "unassigned_reasons": reasons,
            "feasible": not violations,
            "violations": violations[:5],
            "travel_minutes": round(travel, 1),
            "baseline_planned": baseline_planned,
            "baseline_travel_minutes": round(baseline_travel, 1),
            "baseline_feasible": not baseline_violations,
            "baseline_seconds": round(baseline_seconds, 2),
            "travel_saving_pct": round(saving, 2),
            "travel_per_visit_saving_pct": round(saving_per_visit, 2),
        },
    )
    ok = not violations and planned >= baseline_planned and saving >= 20.0
    return bench_insertion(seed, queries) or (0 if ok else 1)


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
    parser = argparse.ArgumentParser(prog="fieldchat bench", description="Benchmarks (results on stdout: a human line and a JSON line each); also `fieldchat bench notify --help`.")
    which = parser.add_subparsers(dest="which", metavar="BENCHMARK", required=True)
    routing = which.add_parser("routing", help="Solomon VRPTW instances: distance, feasibility (checked independently), gap to best known")
    routing.add_argument("paths", nargs="*", metavar="PATH", help=f"instance files or folders (default {default_solomon_dir()})")
    routing.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS", help="wall time per instance (default 30)")
    routing.add_argument("--workers", type=int, default=2, help="parallel searches sharing the time limit (default 2)")
    routing.add_argument("--synthetic", action="store_true", help="also run the field-day benchmark")
    day = which.add_parser("field-day", help="1,000 visits / 50 technicians vs a greedy baseline, then slot-insertion latency at 100 x 1,000")
    day.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS", help="wall time for the solver (default 60)")
    day.add_argument("--seed", type=int, default=7)
    day.add_argument("--workers", type=int, default=2)
    day.add_argument("--queries", type=int, default=200, help="insertion queries (default 200)")
    args = parser.parse_args(argv)
    if args.which == "routing":
        code = bench_solomon(args.paths, args.time_limit, args.workers)
        if args.synthetic:
            code = bench_field_day(60.0, 7, args.workers, 200) or code
        return code
    return bench_field_day(args.time_limit, args.seed, args.workers, args.queries)


if __name__ == "__main__":
    sys.exit(main())
