"""The pure routing solver: `solve(problem, time_limit_s) -> Plan` with OR-Tools inside and no I/O."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.util import optional_boolean_pb2

from scheduler.routing import bounds, decompose, hgs
from scheduler.routing.insertion import INF, Board, base_windows, eligible, fits_capacity
from scheduler.routing.model import (
    CAPACITY,
    NO_ROOM,
    NOT_ENOUGH_TECHNICIANS,
    NOT_WORTH_IT,
    PREDECESSOR_UNASSIGNED,
    SHIFT_EMPTY,
    SHIFT_OVER,
    TIME_LIMIT,
    BreakTime,
    Objective,
    Plan,
    Problem,
    Route,
    Stop,
    Technician,
    Unassigned,
    Unavailable,
    Visit,
)

# Costs are integers: 1 cost unit = 1/(resolution * COST_SCALE) minute, so that a fractional
# fairness weight still becomes a whole coefficient per time unit.
COST_SCALE = 10

FIRST_SOLUTIONS = {
    "parallel_cheapest_insertion": routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION,
    "local_cheapest_insertion": routing_enums_pb2.FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION,
    "savings": routing_enums_pb2.FirstSolutionStrategy.SAVINGS,
    "path_cheapest_arc": routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC,
}
METAHEURISTICS = {
    "gls": routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH,
    "sa": routing_enums_pb2.LocalSearchMetaheuristic.SIMULATED_ANNEALING,
    "tabu": routing_enums_pb2.LocalSearchMetaheuristic.TABU_SEARCH,
    "greedy": routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT,
}


HEAVY_OPERATORS = (
    "use_global_cheapest_insertion_path_lns",
    "use_local_cheapest_insertion_path_lns",
    "use_relocate_path_global_cheapest_insertion_insert_unperformed",
    "use_global_cheapest_insertion_visit_types_lns",
    "use_local_cheapest_insertion_visit_types_lns",
    "use_global_cheapest_insertion_expensive_chain_lns",
    "use_local_cheapest_insertion_expensive_chain_lns",
    "use_global_cheapest_insertion_close_nodes_lns",
    "use_local_cheapest_insertion_close_nodes_lns",
)


@dataclass(frozen=True)
class Strategy:
    """How to search. `first_solution` "insertion" is our own cheapest insertion (it knows crews and links)."""

    first_solution: str = "auto"
    engine: str = "auto"  # "pyvrp" where hgs.unsupported() finds nothing PyVRP cannot model, else "ortools"
    metaheuristic: str = "gls"  # or "lns": our ruin-and-recreate loop around OR-Tools' local search
    gls_lambda: float = 0.1
    light_operators: bool = False  # leave out the slow route-rebuilding operators (for big days)
    couple_limit: int = 300  # above this many visits, crews and links are fixed as our insertion placed them
    seed: int = 1  # for "lns"
    ruin_size: int = 10  # visits removed per "lns" step, on average
    temperature: float = 0.1  # "lns": simulated annealing starts at this share of an average arc's cost
    workers: int = 1  # processes for the groups of a day solved in groups (see DECOMPOSE_ABOVE)
    log: bool = False


# Above this many visits a day is improved a group of neighbouring routes at a time (decompose.py) rather than
# in one OR-Tools model: at 3,000 visits that model took 21 s and over a GiB just to build; at 1,000 (30 s,
# a busy machine) it overran the limit by 60% and kept 954 visits where the groups kept 992 and drove 11% less.
DECOMPOSE_ABOVE = 500


def solve(
    problem: Problem, time_limit_s: float = 10.0, strategy: Strategy = Strategy(), *, clock: Callable[[], float] = time.monotonic, start: Plan | None = None
) -> Plan:
    """Plan the day: routes with times, the visits left out with their reasons, and the objective parts.

    `start`: a plan to start the search from (OR-Tools only) instead of our insertion's. `clock` measures the
    time limit for our own steps (OR-Tools keeps its own clock)."""
    started = clock()
    deadline = started + time_limit_s
    if strategy.engine != "ortools" and hgs.unsupported(problem) is None:
        now = time.monotonic()  # PyVRP stops on the real clock
        return _solve_pyvrp(problem, strategy, now, now + time_limit_s)
    # Everything below works in whole solver units, so that our insertion heuristic and OR-Tools agree
    # exactly on what is feasible; the plan is reported back in minutes with the real travel times.
    scaled, base = _scaled(problem)
    board = Board(scaled)
    unassigned = _screen(scaled, board)
    kept = [v for v in scaled.visits if v.id not in unassigned]
    initial = None
    first = strategy.first_solution
    if start is not None or any(v.technicians > 1 or v.after or v.started for v in kept):
        first = "insertion"  # OR-Tools' own first solutions know nothing of crews, links or visits under way
    elif first == "auto":
        first = "parallel_cheapest_insertion"  # good on tight windows (Solomon R1/RC1), unlike PATH_CHEAPEST_ARC
    construct_seconds = 0.0
    untried: list[str] = []
    left_out: list[str] = []  # passed the screening, but our insertion found them no place (or no time to try)
    if start is not None:
        start = replace(start, routes=tuple(replace(r, stops=tuple(s for s in r.stops if s.visit_id not in unassigned)) for r in start.routes))
        initial = board = Board(scaled, _in_units(start, base, problem.resolution))
        kept = [v for v in kept if v.id in board.placed]
    elif first == "insertion":
        construct_started = clock()
        # Our insertion stops in time to finish the plan (the last repairs, reasons, real times) within the limit.
        initial, untried = _construct(scaled, kept, board, deadline - _finish_reserve(time_limit_s, len(kept)), clock)
        construct_seconds = clock() - construct_started
        for visit_id in untried:
            unassigned[visit_id] = Unassigned(visit_id, TIME_LIMIT, "the planning time ran out before this visit was tried")
        # What our insertion could not place stays out of the OR-Tools model: its one-node-at-a-time moves
        # cannot bring back a crew or a visit whose predecessor is out, and every such attempt costs a full
        # constraint propagation. Those visits get one more insertion try on the final plan instead.
        left_out = [v.id for v in kept if v.id not in board.placed]
        kept = [v for v in kept if v.id in board.placed]
    # The search leaves out who has no time left (OR-Tools fails outright on an empty start window). The
    # screening saw them, so a visit only they could have done is out as too late, not for want of skills.
    unavailable = _unavailable(problem, scaled, kept)
    candidates = [v.id for v in scaled.visits if v.id not in unassigned]
    if len(unavailable) == len(problem.technicians):  # OR-Tools needs a vehicle; whatever was kept stays out
        plan = _finish(problem, (), unassigned, None, candidates)
        return Plan(plan.routes, plan.unassigned, plan.objective, "no_technicians", clock() - started, {**plan.stats, "first_solution": first}, unavailable)
    model_problem = problem
    if unavailable:
        out = {u.technician_id for u in unavailable}
        scaled = replace(scaled, technicians=tuple(t for t in scaled.technicians if t.id not in out))
        model_problem = replace(problem, technicians=tuple(t for t in problem.technicians if t.id not in out))
    if initial is not None and len(kept) > DECOMPOSE_ABOVE and start is None:
        # Thousands of visits: one OR-Tools model would take longer to build than the limit leaves. Groups of
        # neighbouring routes are improved one after the other instead, each a field day of its own.
        sub_strategy = replace(strategy, engine="ortools", workers=1)

        def sub_solve(sub: Problem, seconds: float, plan: Plan) -> Plan:
            return solve(sub, seconds, sub_strategy, clock=clock, start=plan)

        end = deadline - _finish_reserve(time_limit_s, len(kept))
        # what our insertion left out is offered again to the group nearest it (a group may find it room)
        offered = decompose.offerable(model_problem, left_out)
        with _GroupPool(strategy.workers, sub_solve, sub_strategy) as pool:
            routes, parts = decompose.improve(model_problem, _board_routes(initial, problem, base), end, sub_solve, clock, strategy.seed,
                                              width=strategy.workers, solve_wave=pool.wave, extras=offered)
        for route in routes:
            for stop in route.stops:
                if unassigned.pop(stop.visit_id, None) is not None:
                    candidates.append(stop.visit_id)
        plan = _finish(problem, routes, unassigned, None, candidates)
        stats = {**plan.stats, "engine": "decomposed", "first_solution": first, "construct_seconds": round(construct_seconds, 2), **parts}
        return Plan(plan.routes, plan.unassigned, plan.objective, "decomposed", clock() - started, stats, unavailable)
    if initial is not None and (untried or deadline - clock() < construct_seconds):
        # No time left to build the OR-Tools model (it takes about as long as our insertion did): the
        # insertion's plan is the answer that keeps the time limit.
        plan = _finish(problem, _board_routes(initial, problem, base), unassigned, None, candidates)
        stats = {**plan.stats, "engine": "insertion", "first_solution": first, "construct_seconds": round(construct_seconds, 2)}
        return Plan(plan.routes, plan.unassigned, plan.objective, "insertion_only", clock() - started, stats, unavailable)
    frozen = initial if initial is not None and len(kept) > strategy.couple_limit else None
    built = _Model(scaled, kept, model_problem, base, frozen)
    built.set_fairness_target(initial)
    deadline = time.monotonic() + (deadline - clock())  # OR-Tools and the search loop keep the real clock
    solution = built.search(initial, first, strategy, deadline)
    if solution is None and initial is None:
        initial, _ = _construct(scaled, kept, Board(scaled))
        solution = built.search(initial, "insertion", strategy, deadline)
    plan_routes = built.routes(solution) if solution is not None else ()
    plan = _finish(problem, plan_routes, unassigned, built, candidates)
    stats = {**plan.stats, "engine": "ortools", "first_solution": first, "metaheuristic": strategy.metaheuristic, **built.stats, "stopped_at_bound": built.at_bound}
    return Plan(plan.routes, plan.unassigned, plan.objective, built.status(), clock() - started, stats, unavailable)


def _solve_pyvrp(problem: Problem, strategy: Strategy, started: float, deadline: float) -> Plan:
    """The same steps as solve() for a day PyVRP models whole, kept lean for a first plan within seconds at
    a thousand visits: the matrix stays a numpy array, and only the visits that no vehicle could serve alone
    (a vectorised test) go through the insertion board's screening for their reason."""
    scaled, base = _scaled(problem, as_array=True)
    alone = hgs.servable_alone(scaled, scaled.visits)
    suspects = [v for v, ok in zip(scaled.visits, alone) if not ok]
    unassigned = _screen(replace(scaled, visits=tuple(suspects)), Board(replace(scaled, visits=tuple(suspects)))) if suspects else {}
    kept = [v for v in scaled.visits if v.id not in unassigned]
    unavailable = _unavailable(problem, scaled, kept)
    candidates = [v.id for v in kept]
    if len(unavailable) == len(problem.technicians):
        plan = _finish(problem, (), unassigned, None, candidates)
        return Plan(plan.routes, plan.unassigned, plan.objective, "no_technicians", time.monotonic() - started, {**plan.stats, "engine": "pyvrp"}, unavailable)
    model_problem = problem
    if unavailable:
        out = {u.technician_id for u in unavailable}
        scaled = replace(scaled, technicians=tuple(t for t in scaled.technicians if t.id not in out))
        model_problem = replace(problem, technicians=tuple(t for t in problem.technicians if t.id not in out))
    found = hgs.search(scaled, kept, model_problem, base, deadline, strategy.seed, started)
    plan = _finish(problem, found.routes, unassigned, None, candidates, found.fairness_target)
    stats = {**plan.stats, **found.stats, "screened_alone": len(suspects)}
    return Plan(plan.routes, plan.unassigned, plan.objective, "pyvrp", time.monotonic() - started, stats, unavailable)


class _GroupPool:
    """Groups of a big day solved side by side: the first of each wave here, the others in forked processes
    (the sub-days are small; their plans come back pickled)."""

    def __init__(self, workers: int, here: Callable[[Problem, float, Plan], Plan], strategy: Strategy) -> None:
        self.workers, self.here, self.strategy = workers, here, strategy
        self.pool: Any = None

    def __enter__(self) -> _GroupPool:
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=self.workers - 1, mp_context=multiprocessing.get_context("fork"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def wave(self, parts: list[tuple[Problem, float, Plan]]) -> list[Plan]:
        if self.pool is None or len(parts) == 1:
            return [self.here(*args) for args in parts]
        margin = 0.1  # forking, and the plan's way back
        futures = [self.pool.submit(_solve_part, (sub, seconds - margin, plan, self.strategy)) for sub, seconds, plan in parts[1:]]
        first = self.here(parts[0][0], parts[0][1] - margin, parts[0][2])
        return [first] + [future.result() for future in futures]


def _solve_part(args: tuple[Problem, float, Plan, Strategy]) -> Plan:
    sub, seconds, plan, strategy = args
    return solve(sub, seconds, strategy, start=plan)


def _finish_reserve(time_limit_s: float, visits: int) -> float:
    """Seconds kept back from our own steps for the end of a solve: the last insertion tries on the final
    plan, the reasons, the routes in real minutes (about a second at 3,000 visits)."""
    return min(0.1 * time_limit_s, 0.2 + 0.0004 * visits)


def _in_units(plan: Plan, base: float, resolution: int) -> Plan:
    """A plan in real minutes as solver units (see _scaled): its times came from units, so they round back exactly."""

    def units(minute: float) -> float:
        return round((minute - base) * resolution)

    routes = tuple(
        replace(
            route,
            stops=tuple(Stop(s.visit_id, units(s.arrival), units(s.start), units(s.end)) for s in route.stops),
            breaks=tuple(BreakTime(units(b.start), units(b.end)) for b in route.breaks),
            departure=units(route.departure) if route.departure is not None else None,
            arrival=units(route.arrival) if route.arrival is not None else None,
        )
        for route in plan.routes
    )
    return replace(plan, routes=routes)


def _board_routes(board: Board, real: Problem, base: float) -> tuple[Route, ...]:
    """Our insertion's routes (solver units) in real minutes, the way _Model.routes reports OR-Tools' ones:
    starts from units (rounded the safe way), arrivals and driving from the real travel times."""
    res = real.resolution
    visits = {v.id: v for v in real.visits}
    techs = {t.id: t for t in real.technicians}
    out = []
    for route in board.plan().routes:
        tech = techs[route.technician_id]
        breaks = tuple(BreakTime(base + b.start / res, base + b.start / res + rule.duration) for b, rule in zip(route.breaks, tech.breaks))
        departure = base + (route.departure or 0.0) / res
        here, ready, driven, stops = tech.start_location, departure, 0.0, []
        for stop in route.stops:
            visit = visits[stop.visit_id]
            start = base + stop.start / res
            leg = real.travel[here][visit.location]
            pause = sum(b.end - b.start for b in breaks if b.start >= ready - 1e-9 and b.end <= start + 1e-9)
            stops.append(Stop(visit.id, min(start, ready + leg + pause), start, start + visit.service))
            driven += leg
            here, ready = visit.location, start + visit.service
        driven += real.travel[here][tech.end_location]
        arrival = base + route.arrival / res if route.arrival is not None else None
        out.append(Route(tech.id, tuple(stops), breaks, departure, arrival, driven))
    return tuple(out)


def _route_start(tech: Technician, now: float, under_way: set[str]) -> float:
    """The earliest a route may leave: now, unless the technician is already on a visit (its drive lies in the past)."""
    return tech.shift[0] if tech.id in under_way else max(tech.shift[0], now)


def _unavailable(problem: Problem, scaled: Problem, kept: list[Visit]) -> tuple[Unavailable, ...]:
    """Technicians whose route could not even start: nothing is left of their shift after now, or the shift ends
    before it begins. Judged in solver units, exactly as the model would bound the route's start."""
    under_way = {t for v in kept if v.started for t in v.pinned_technicians}
    out = []
    for real, tech in zip(problem.technicians, scaled.technicians):
        if _route_start(tech, scaled.now, under_way) <= tech.shift[1]:
            continue
        if real.shift[0] > real.shift[1]:
            out.append(Unavailable(real.id, SHIFT_EMPTY, f"the shift ends at minute {real.shift[1]:g}, before it starts at {real.shift[0]:g}"))
        else:
            out.append(Unavailable(real.id, SHIFT_OVER, f"the shift ended at minute {real.shift[1]:g}, now is {problem.now:g}"))
    return tuple(out)


def _shared_rows(matrix: np.ndarray) -> list[list[int]]:
    """The matrix as lists whose equal entries are one int object: `tolist()` makes a new object per entry
    (about 36 bytes each: 330 MiB at 3,000 visits), this keeps 8 per entry. A day has at most a few
    thousand distinct travel times in solver units."""
    if matrix.size == 0:
        return [[] for _ in range(matrix.shape[0])]
    low, high = int(matrix.min()), int(matrix.max())
    if low < 0 or high > 10_000_000:  # not the usual small units: plain lists
        rows: list[list[int]] = matrix.tolist()
        return rows
    values = list(range(high + 1))
    pick = values.__getitem__
    return [list(map(pick, row.tolist())) for row in matrix]  # row by row: never all the objects at once


def _scaled(problem: Problem, as_array: bool = False) -> tuple[Problem, float]:
    """The problem in solver units: times shifted to be non-negative, multiplied by the resolution and
    rounded the safe way (travel and service up, window ends down), so a plan feasible here is feasible
    in minutes too. `as_array` keeps the matrix a numpy array (PyVRP takes it as is; lists cost a second
    at a thousand visits)."""
    res = problem.resolution
    times = [t.shift[0] for t in problem.technicians] + [problem.now] + [v.pinned_start for v in problem.visits if v.pinned_start is not None]
    times += [a for v in problem.visits for a, _ in v.windows if a > -INF]
    base = min([0.0] + times)

    def up(x: float) -> float:
        return x if x in (INF, -INF) else int(math.ceil((x - base) * res - 1e-9))

    def down(x: float) -> float:
        return x if x in (INF, -INF) else int(math.floor((x - base) * res + 1e-9))

    def length(x: float) -> int:
        return int(math.ceil(x * res - 1e-9))

    matrix = np.ceil(np.asarray(problem.travel, dtype=float) * res - 1e-9).astype(np.int64)
    travel: Any = matrix if as_array else _shared_rows(matrix)
    visits = tuple(
        replace(
            v,
            service=length(v.service),
            windows=tuple((up(a), down(b)) for a, b in v.windows),
            pinned_start=up(v.pinned_start) if v.pinned_start is not None else None,
            min_gap=length(v.min_gap),
        )
        for v in problem.visits
    )
    techs = tuple(
        replace(t, shift=(up(t.shift[0]), down(t.shift[1])), breaks=tuple(replace(b, earliest=up(b.earliest), latest=down(b.latest), duration=length(b.duration)) for b in t.breaks))
        for t in problem.technicians
    )
    return replace(problem, visits=visits, technicians=techs, travel=travel, now=up(problem.now), resolution=1), base


# -- before the search: who can never be served, and why -------------------------------------------


def _screen(problem: Problem, board: Board) -> dict[str, Unassigned]:
    out: dict[str, Unassigned] = {}
    by_id = {v.id: v for v in problem.visits}
    for visit in problem.visits:
        found = board.reason(visit)
        if found is None and visit.after and visit.same_crew and visit.after in by_id and visit.technicians > by_id[visit.after].technicians:
            found = (NOT_ENOUGH_TECHNICIANS, f"the crew of {visit.after} is smaller than {visit.technicians}")
        if found is not None:
            out[visit.id] = Unassigned(visit.id, *found)
    changed = True
    while changed:  # a visit waits for its predecessor: if that is out, so is the successor
        changed = False
        for visit in problem.visits:
            if visit.id not in out and visit.after and (visit.after not in by_id or visit.after in out):
                out[visit.id] = Unassigned(visit.id, PREDECESSOR_UNASSIGNED, f"{visit.after} cannot be planned")
                changed = True
    return out


def _construct(
    problem: Problem,
    kept: list[Visit],
    board: Board,
    deadline: float = INF,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Board, list[str]]:
    """Our own first solution: hardest visits first, each at its cheapest feasible place, its follow-ups right
    after. Stops at `deadline` (by `clock`) with what it has placed; returns the board and the visits it
    never tried for want of time (with the follow-ups of those)."""
    by_id = {v.id: v for v in kept}
    followers: dict[str, list[Visit]] = {}
    for v in kept:
        if v.after in by_id:
            followers.setdefault(v.after, []).append(v)

    def hardness(v: Visit) -> tuple[bool, bool, int, float, int]:
        windows = base_windows(v, problem.now)
        width = sum(min(b, 10**6) - max(a, -(10**6)) for a, b in windows) if windows else 0
        return (not v.started, v.pinned_start is None, -v.technicians, width, -v.priority)

    def place(v: Visit) -> None:
        option = board.best(v)
        if option is None:
            return
        board.apply(v, option)
        for follower in sorted(followers.get(v.id, []), key=hardness):
            place(follower)

    order = [v for v in sorted(kept, key=hardness) if v.after not in by_id]  # followers go in right after their predecessor
    for k, visit in enumerate(order):
        if k and clock() >= deadline:  # the first (hardest) is always tried: a plan to build on, however short the limit
            untried: list[str] = []
            for skipped in order[k:]:
                _with_followers(skipped, followers, untried)
            return board, untried
        place(visit)
    return board, []


def _with_followers(visit: Visit, followers: dict[str, list[Visit]], into: list[str]) -> None:
    into.append(visit.id)
    for follower in followers.get(visit.id, []):
        _with_followers(follower, followers, into)


# -- the OR-Tools model ------------------------------------------------------------------------------


class _Model:
    """Nodes are visit copies (one per crew member) followed by each technician's start and end."""

    def __init__(self, problem: Problem, visits: list[Visit], real: Problem, base: float, frozen: Board | None = None) -> None:
        """`frozen`: our insertion's solution. When given, each crew keeps its people and start minute and each
        link is split at the minute our insertion chose (the predecessor must end before it, the follow-up
        start after it). Then no constraint ties two routes' times together: on a thousand visits with
        breaks, such ties make every local search step run a costly search of its own."""
        self.problem = problem  # in solver units (see _scaled)
        self.real = real
        self.real_visits = {v.id: v for v in real.visits}
        self.base = base
        self.resolution = real.resolution
        self.visits = visits
        self.stats: dict[str, Any] = {}
        horizon_min = max([t.shift[1] for t in problem.technicians] + [b.latest + b.duration for t in problem.technicians for b in t.breaks])
        self.horizon = self.up(horizon_min)
        self.copies: dict[str, list[int]] = {}
        node_visit: list[Visit | None] = []
        locations: list[int] = []
        for visit in visits:
            self.copies[visit.id] = []
            for _ in range(visit.technicians):
                self.copies[visit.id].append(len(node_visit))
                node_visit.append(visit)
                locations.append(visit.location)
        tech_order = {t.id: k for k, t in enumerate(problem.technicians)}
        self.copy_of: dict[tuple[str, str], int] = {}  # (visit, technician) -> node, for frozen crews
        bounds: dict[str, list[float]] = {}  # visit -> [earliest start, latest start] from split links
        if frozen is not None:
            for visit in visits:
                if visit.technicians > 1 and visit.id in frozen.placed:
                    crew = sorted({t for t, _, _ in frozen.placed[visit.id]}, key=tech_order.__getitem__)
                    start = frozen.placed[visit.id][0][1]
                    bounds[visit.id] = [start, start]
                    for tech_id, node in zip(crew, self.copies[visit.id]):
                        self.copy_of[(visit.id, tech_id)] = node
            kept_ids = set(self.copies)
            for visit in visits:
                if visit.id in frozen.splits and visit.after in kept_ids:
                    split = frozen.splits[visit.id]
                    pred = next(v for v in visits if v.id == visit.after)
                    follower_bounds = bounds.setdefault(visit.id, [-INF, INF])
                    follower_bounds[0] = max(follower_bounds[0], split)
                    pred_bounds = bounds.setdefault(pred.id, [-INF, INF])
                    pred_bounds[1] = min(pred_bounds[1], split - visit.min_gap - pred.service)
        self.frozen = frozen is not None
        starts, ends = [], []
        for tech in problem.technicians:
            starts.append(len(locations))
            locations.append(tech.start_location)
            node_visit.append(None)
            ends.append(len(locations))
            locations.append(tech.end_location)
            node_visit.append(None)
        self.node_visit = node_visit
        self.locations = locations
        n, vehicles = len(locations), len(problem.technicians)
        self.manager = manager = pywrapcp.RoutingIndexManager(n, vehicles, starts, ends)
        self.routing = routing = pywrapcp.RoutingModel(manager)
        solver = routing.solver()

        matrix = np.asarray(problem.travel, dtype=np.int64)  # whole units already
        loc = np.asarray(locations, dtype=np.int64)
        travel = matrix[np.ix_(loc, loc)]
        travel[:, starts] = 0  # nothing drives into a start or out of an end
        travel[ends, :] = 0
        service = np.array([self.up(v.service) if v is not None else 0 for v in node_visit], dtype=np.int64)
        self.travel_units, self.service_units, self.starts, self.ends = travel, service, starts, ends  # for lower_bound()
        self.drop_costs: dict[int, int] = {}  # visit node -> what leaving it out costs
        cost_cb = routing.RegisterTransitMatrix((travel * COST_SCALE).tolist())
        routing.SetArcCostEvaluatorOfAllVehicles(cost_cb)
        time_cb = routing.RegisterTransitMatrix((travel + service[:, None]).tolist())
        self.time_cb = time_cb
        routing.AddDimension(time_cb, self.horizon, self.horizon, False, "time")
        self.time = time_dim = routing.GetDimensionOrDie("time")

        # Shifts, and a start no earlier than now unless the technician is already on a visit.
        started_first: dict[int, int] = {}
        for visit in visits:
            if visit.started and visit.pinned_technicians:
                for k, node in enumerate(self.copies[visit.id]):
                    tech_id = visit.pinned_technicians[min(k, len(visit.pinned_technicians) - 1)]
                    started_first[self._vehicle(tech_id)] = node
        under_way = {tech.id for v, tech in enumerate(problem.technicians) if v in started_first}
        for v, tech in enumerate(problem.technicians):
            earliest = _route_start(tech, problem.now, under_way)  # never after the shift's end: see _unavailable
            time_dim.CumulVar(routing.Start(v)).SetRange(self.up(earliest), self.down(tech.shift[1]))
            time_dim.CumulVar(routing.End(v)).SetRange(self.up(earliest), self.down(tech.shift[1]))
            routing.AddVariableMaximizedByFinalizer(time_dim.CumulVar(routing.Start(v)))
            routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(v)))
            if v in started_first:
                routing.NextVar(routing.Start(v)).SetValues([manager.NodeToIndex(started_first[v])])

        # Windows (several per visit: the gaps between them are removed from the start's domain).
        for visit in visits:
            low, high = bounds.get(visit.id, (-INF, INF))
            windows = [(max(a, low), min(b, high)) for a, b in base_windows(visit, problem.now)]
            windows = [(max(self.up(a) if a > -INF else 0, 0), min(self.down(b) if b < INF else self.horizon, self.horizon)) for a, b in windows]
            windows = [(a, b) for a, b in windows if a <= b]
            for k, node in enumerate(self.copies[visit.id]):
                cumul = time_dim.CumulVar(manager.NodeToIndex(node))
                if not windows:
                    continue
                cumul.SetRange(windows[0][0], windows[-1][1])
                for (_, high), (low, _) in zip(windows, windows[1:]):
                    if low - high > 1:
                        cumul.RemoveInterval(high + 1, low - 1)

        # Capacities: every crew member's vehicle must have room (the load may travel in either).
        for d, name in enumerate(problem.capacity_names):
            demand = [0] * n
            for node, node_v in enumerate(node_visit):
                if node_v is not None and d < len(node_v.demand):
                    demand[node] = int(node_v.demand[d])
            cb = routing.RegisterUnaryTransitVector(demand)
            caps = [int(t.capacity[d]) if d < len(t.capacity) else 0 for t in problem.technicians]
            routing.AddDimensionWithVehicleCapacity(cb, 0, caps, True, f"capacity:{name}")

        # Breaks: fixed length, floating start; they may not overlap a visit's service.
        node_visit_transits = [int(service[manager.IndexToNode(i)]) for i in range(manager.GetNumberOfIndices())]
        self.break_vars: list[tuple[int, int, pywrapcp.IntervalVar]] = []  # (vehicle, break of its shift, variable)
        for v, tech in enumerate(problem.technicians):
            intervals = []
            for k, brk in enumerate(tech.breaks):
                var = solver.FixedDurationIntervalVar(self.up(brk.earliest), self.down(brk.latest), self.up(brk.duration), False, f"break-{v}-{k}")
                intervals.append(var)
                self.break_vars.append((v, k, var))
            if intervals:
                time_dim.SetBreakIntervalsOfVehicle(intervals, v, node_visit_transits)

        # Who may do what, and what leaving a visit out costs.
        for visit in visits:
            empty = [0] * len(problem.capacity_names)
            allowed = [v for v, t in enumerate(problem.technicians) if eligible(t, visit) and fits_capacity(t, visit, empty)]
            penalty = self._penalty(visit)
            pinned = {node: tech_order[t] for (vid, t), node in self.copy_of.items() if vid == visit.id}
            for node in self.copies[visit.id]:
                index = manager.NodeToIndex(node)
                if node in pinned:
                    routing.VehicleVar(index).SetValues([pinned[node], -1])
                elif len(allowed) < vehicles:
                    # The same as SetAllowedVehiclesForIndex, whose Python binding rejects lists in 9.15
                    # (absl::Span); -1 keeps the visit droppable. Local search filters read this domain too.
                    routing.VehicleVar(index).SetValues(allowed + [-1])
                self.drop_costs[node] = int(round(penalty * self.resolution * COST_SCALE / visit.technicians))
                routing.AddDisjunction([index], self.drop_costs[node])

        # Crews: all members or none, at the same minute, on different technicians.
        for visit in visits:
            nodes = [manager.NodeToIndex(node) for node in self.copies[visit.id]]
            if len(nodes) > 1:
                for other in nodes[1:]:
                    solver.Add(routing.ActiveVar(other) == routing.ActiveVar(nodes[0]))
                    if visit.id not in bounds or bounds[visit.id][0] != bounds[visit.id][1]:
                        solver.Add(time_dim.CumulVar(other) == time_dim.CumulVar(nodes[0]))
                if not any(vid == visit.id for vid, _ in self.copy_of):
                    solver.Add(solver.AllDifferentExcept([routing.VehicleVar(i) for i in nodes], -1))

        # Links: the successor needs its predecessor done first, by the same crew if asked.
        paired: set[int] = set()
        for visit in visits:
            if not visit.after or visit.after not in self.copies:
                continue
            pred = next(v for v in visits if v.id == visit.after)
            p_nodes = [manager.NodeToIndex(node) for node in self.copies[pred.id]]
            s_nodes = [manager.NodeToIndex(node) for node in self.copies[visit.id]]
            if not (frozen is not None and visit.id in frozen.splits):
                time_dim.AddNodePrecedence(p_nodes[0], s_nodes[0], self.up(pred.service) + self.up(visit.min_gap))
            if visit.same_crew and len(p_nodes) == 1 and len(s_nodes) == 1 and p_nodes[0] not in paired and s_nodes[0] not in paired:
                routing.AddPickupAndDelivery(p_nodes[0], s_nodes[0])  # same vehicle, in order, both or neither
                paired.update((p_nodes[0], s_nodes[0]))
                continue
            solver.Add(routing.ActiveVar(s_nodes[0]) <= routing.ActiveVar(p_nodes[0]))
            if visit.same_crew:
                for p, s in zip(p_nodes, s_nodes):
                    solver.Add(routing.ActiveVar(s) * (routing.VehicleVar(p) - routing.VehicleVar(s)) == 0)
        self.fairness: tuple[pywrapcp.RoutingDimension, float] | None = None  # the "work" dimension and its target
        self.fairness_cost = 0  # per unit of work above the target
        self.solution: pywrapcp.Assignment | None = None
        self.at_bound = False
        self._at_solution: Callable[[], None] | None = None

    # units ----------------------------------------------------------------------------------------

    @staticmethod
    def up(units: float) -> int:
        return int(math.ceil(units))  # values are whole units already (see _scaled)

    @staticmethod
    def down(units: float) -> int:
        return int(math.floor(units))

    def minutes(self, units: int) -> float:
        return units / self.resolution + self.base

    def _vehicle(self, tech_id: str) -> int:
        for v, tech in enumerate(self.problem.technicians):
            if tech.id == tech_id:
                return v
        raise KeyError(tech_id)

    def _penalty(self, visit: Visit) -> float:
        return _penalty(self.problem, visit)

    # fairness ---------------------------------------------------------------------------------------

    def set_fairness_target(self, initial: Board | None) -> None:
        """Work (driving + service) above an even share costs `fairness_weight` per minute."""
        weight = self.problem.fairness_weight
        if weight <= 0 or not self.problem.technicians:
            return
        routing = self.routing
        routing.AddDimension(self.time_cb, 0, 10 * self.horizon + 1, True, "work")
        work = routing.GetDimensionOrDie("work")
        service = sum(v.service * v.technicians for v in self.visits)
        driving = sum(state.travel_minutes() for state in initial.states.values()) if initial is not None else 0.0
        target = (service + driving) / len(self.problem.technicians)
        self.fairness = (work, target)
        coefficient = max(1, int(round(weight * COST_SCALE)))
        self.fairness_cost = coefficient
        for v in range(len(self.problem.technicians)):
            work.SetCumulVarSoftUpperBound(routing.End(v), int(math.ceil(target)), coefficient)

    # search -----------------------------------------------------------------------------------------

    def lower_bound(self) -> int:
        """Twice a lower bound on this model's objective (see bounds.ortools_doubled)."""
        nodes = sorted(self.drop_costs)
        fairness = (int(math.ceil(self.fairness[1])), self.fairness_cost) if self.fairness is not None else None
        return bounds.ortools_doubled(self.travel_units, nodes, self.starts, self.ends, self.service_units,
                                      [self.drop_costs[n] for n in nodes], COST_SCALE, fairness)

    def _stop_at_bound(self) -> None:
        """End the search once a solution costs no more than the lower bound: OR-Tools keeps its best solution
        and replaces it only by a strictly cheaper one, so the result is what a run to the time limit returns.
        Asked at each solution, not as a search limit: a limit written in Python is called at every search node
        (measured: a 0.05 s search took 0.2 s)."""
        if self._at_solution is not None:
            return  # a second search on the same model (see solve): the first one's callback is in place
        bound = self.lower_bound()
        routing = self.routing

        def at_solution() -> None:
            if 2 * routing.CostVar().Value() <= bound:
                self.at_bound = True
                routing.solver().FinishCurrentSearch()

        self._at_solution = at_solution  # lives as long as the model
        routing.AddAtSolutionCallback(at_solution)

    def search(self, initial: Board | None, first: str, strategy: Strategy, deadline: float) -> pywrapcp.Assignment | None:
        routing, manager = self.routing, self.manager
        self._stop_at_bound()
        params = pywrapcp.DefaultRoutingSearchParameters()
        params.first_solution_strategy = FIRST_SOLUTIONS.get(first, FIRST_SOLUTIONS["parallel_cheapest_insertion"])
        lns = strategy.metaheuristic == "lns"
        params.local_search_metaheuristic = METAHEURISTICS["greedy" if lns else strategy.metaheuristic]
        params.guided_local_search_lambda_coefficient = strategy.gls_lambda
        params.log_search = strategy.log
        if strategy.light_operators:
            # The insertion-heuristic LNS operators rebuild whole routes per neighbour: fine for a hundred
            # visits, far too slow for a thousand.
            operators = params.local_search_operators
            for name in HEAVY_OPERATORS:
                setattr(operators, name, optional_boolean_pb2.BOOL_FALSE)
        # Completing a solution (break intervals, cumuls) may take longer than the default 100 ms on a
        # full day with breaks; when that limit hits, restoring our first solution fails outright.
        params.lns_time_limit.FromMilliseconds(int(1000 * min(5.0, max(0.1, 0.05 * (deadline - time.monotonic())))))
        # Leave a little of the budget for reading the solution back.
        remaining = deadline - time.monotonic() - min(2.0, 0.05 + 0.001 * len(self.node_visit))
        params.time_limit.FromMilliseconds(max(100, int(remaining * 1000)))
        if initial is None:
            self.solution = routing.SolveWithParameters(params)
            return self._improve(self.solution, strategy, deadline) if lns else self.solution
        routing.CloseModelWithParameters(params)
        routes, used = [], set()
        for tech in self.problem.technicians:
            route = []
            for item in initial.states[tech.id].items:
                if item.visit is None:  # not a stop
                    continue
                # A crew visit: each member takes its own copy (frozen) or the next one not used yet.
                node = self.copy_of.get((item.visit.id, tech.id))
                if node is None:
                    node = next(node for node in self.copies[item.visit.id] if node not in used)
                used.add(node)
                route.append(manager.NodeToIndex(node))
            routes.append(route)
        assignment = routing.ReadAssignmentFromRoutes(routes, True)
        self.stats["initial_accepted"] = assignment is not None
        if assignment is None:
            self.solution = routing.SolveWithParameters(params)
        else:
            self.solution = routing.SolveFromAssignmentWithParameters(assignment, params)
        return self._improve(self.solution, strategy, deadline) if lns else self.solution

    # ruin and recreate ----------------------------------------------------------------------------------

    def _improve(self, solution: pywrapcp.Assignment | None, strategy: Strategy, deadline: float) -> pywrapcp.Assignment | None:
        """Iterated local search: remove strings of nearby visits (SISR-style), let OR-Tools' local search put
        them back and polish (greedy descent), accept by simulated annealing, keep the best.

        OR-Tools' own guided local search plateaus on tight windows; restarting its descent from ruined
        solutions explores much further for the same time on instances of a few hundred visits.
        """
        if solution is None:
            return None
        routing, solver = self.routing, self.routing.solver()
        rng = random.Random(strategy.seed)
        params = pywrapcp.DefaultRoutingSearchParameters()
        params.local_search_metaheuristic = METAHEURISTICS["greedy"]  # OR-Tools' moves put the removed visits back
        params.lns_time_limit.FromMilliseconds(int(1000 * min(5.0, max(0.1, 0.05 * (deadline - time.monotonic())))))
        if strategy.light_operators:
            for name in HEAVY_OPERATORS:
                setattr(params.local_search_operators, name, optional_boolean_pb2.BOOL_FALSE)
        movable = self._movable()
        if not movable:
            return solution
        best = solver.Assignment(solution)
        best_cost = current_cost = solution.ObjectiveValue()
        current = self._index_routes(solution)
        arcs = max(1, sum(len(r) + 1 for r in current if r))
        hot = strategy.temperature * current_cost / arcs  # a share of an average arc's cost, cooling tenfold
        cold = hot / 10
        begin = time.monotonic()
        span = max(1e-3, deadline - begin)
        iterations = failures = 0
        while not self.at_bound:
            left = deadline - time.monotonic()
            if left < 0.05:
                break
            iterations += 1
            ruined = self._ruin(current, movable, rng, strategy.ruin_size)
            start = routing.ReadAssignmentFromRoutes(ruined, True)
            if start is None:
                failures += 1
                continue
            params.time_limit.FromMilliseconds(max(10, int(min(left, 2.0) * 1000)))
            found = routing.SolveFromAssignmentWithParameters(start, params)
            if found is None:
                failures += 1
                continue
            cost = found.ObjectiveValue()
            temperature = hot * (cold / hot) ** min(1.0, (time.monotonic() - begin) / span)
            if cost < current_cost - temperature * math.log(1.0 - rng.random()):
                current, current_cost = self._index_routes(found), cost
                if cost < best_cost:
                    best, best_cost = solver.Assignment(found), cost
        self.stats.update(iterations=iterations, failed_iterations=failures)
        return best

    def _index_routes(self, solution: pywrapcp.Assignment) -> list[list[int]]:
        routing = self.routing
        out = []
        for v in range(routing.vehicles()):
            index, route = solution.Value(routing.NextVar(routing.Start(v))), []
            while not routing.IsEnd(index):
                route.append(index)
                index = solution.Value(routing.NextVar(index))
            out.append(route)
        return out

    def _movable(self) -> dict[int, list[int]]:
        """Index -> the indices that must leave with it. Crews and visits under way stay where they are:
        OR-Tools' moves put back one node at a time, and a crew only fits back all at once."""
        manager = self.manager
        groups: dict[int, list[int]] = {}
        followers: dict[str, list[Visit]] = {}
        for visit in self.visits:
            if visit.after in self.copies:
                followers.setdefault(visit.after, []).append(visit)
        fixed = {v.id for v in self.visits if v.technicians > 1 or v.started or v.pinned_start is not None}

        def closure(visit: Visit, into: list[int]) -> bool:
            if visit.id in fixed:
                return False
            into.append(manager.NodeToIndex(self.copies[visit.id][0]))
            return all(closure(f, into) for f in followers.get(visit.id, []))

        for visit in self.visits:
            if visit.id in fixed:
                continue
            group: list[int] = []
            if closure(visit, group):
                if visit.after in self.copies:
                    pred = next(v for v in self.visits if v.id == visit.after)
                    if visit.same_crew and pred.technicians == 1:
                        group.append(manager.NodeToIndex(self.copies[pred.id][0]))  # a pickup-and-delivery pair leaves together
                groups[group[0]] = group
        return groups

    def _ruin(self, routes: list[list[int]], movable: dict[int, list[int]], rng: random.Random, size: int) -> list[list[int]]:
        """Remove a few strings of consecutive visits from routes close to a random seed visit."""
        where = {index: r for r, route in enumerate(routes) for index in route}
        candidates = [index for index in where if index in movable]
        if not candidates:
            return routes
        seed = rng.choice(candidates)
        travel = self.problem.travel
        here = self.locations[self.manager.IndexToNode(seed)]
        nearby = sorted(candidates, key=lambda i: travel[here][self.locations[self.manager.IndexToNode(i)]])
        used = [r for r in routes if r]
        longest = min(10.0, sum(len(r) for r in used) / max(1, len(used)))
        strings = rng.randint(1, max(1, int(4 * size / (1 + longest) - 1)))
        removed: set[int] = set()
        touched: set[int] = set()
        for index in nearby:
            if len(touched) >= strings:
                break
            r = where[index]
            if r in touched or index in removed:
                continue
            touched.add(r)
            route = routes[r]
            length = rng.randint(1, max(1, int(min(len(route), longest))))
            at = route.index(index)
            first = rng.randint(max(0, at - length + 1), min(at, len(route) - length))
            for i in route[first : first + length]:
                removed.update(movable.get(i, ()))
        return [[i for i in route if i not in removed] for route in routes]

    def status(self) -> str:
        names = {0: "not_solved", 1: "success", 2: "partial_success_local_optimum_not_reached", 3: "fail", 4: "fail_timeout", 5: "invalid", 6: "infeasible", 7: "optimal"}
        return names.get(self.routing.status(), str(self.routing.status()))

    def routes(self, solution: pywrapcp.Assignment) -> tuple[Route, ...]:
        routing, manager, time_dim = self.routing, self.manager, self.time
        travel = self.real.travel  # reported in real minutes, not rounded units
        breaks: dict[int, list[BreakTime]] = {}
        if self.break_vars:
            container = solution.IntervalVarContainer()
            values = {}
            for i in range(container.Size()):
                element = container.Element(i)
                values[element.Var().Name()] = element
            for v, k, var in self.break_vars:
                element = values.get(var.Name())
                if element is not None and element.PerformedValue():
                    start = self.minutes(element.StartValue())
                    breaks.setdefault(v, []).append(BreakTime(start, start + self.real.technicians[v].breaks[k].duration))
        out = []
        for v, tech in enumerate(self.real.technicians):
            index = routing.Start(v)
            departure = self.minutes(solution.Value(time_dim.CumulVar(index)))
            taken = breaks.get(v, [])
            stops, here, ready, driven = [], tech.start_location, departure, 0.0
            index = solution.Value(routing.NextVar(index))
            while not routing.IsEnd(index):
                visit = self.real_visits[self.node_visit[manager.IndexToNode(index)].id]
                start = self.minutes(solution.Value(time_dim.CumulVar(index)))
                leg = travel[here][visit.location]
                pause = sum(b.end - b.start for b in taken if b.start >= ready - 1e-9 and b.end <= start + 1e-9)
                stops.append(Stop(visit.id, min(start, ready + leg + pause), start, start + visit.service))
                driven += leg
                here, ready = visit.location, start + visit.service
                index = solution.Value(routing.NextVar(index))
            arrival = self.minutes(solution.Value(time_dim.CumulVar(index)))
            driven += travel[here][tech.end_location]
            if stops:
                out.append(Route(tech.id, tuple(stops), tuple(taken), departure, arrival, driven))
        return tuple(out)


# -- after the search: repair, reasons, objective -----------------------------------------------------


def _penalty(problem: Problem, visit: Visit) -> float:
    return problem.leave_out_cost(visit)


def _finish(
    problem: Problem, routes: tuple[Route, ...], unassigned: dict[str, Unassigned], built: _Model | None, candidates: list[str], fairness_target: float | None = None
) -> Plan:
    by_id = {v.id: v for v in problem.visits}
    planned = {stop.visit_id for route in routes for stop in route.stops}
    dropped = [by_id[visit_id] for visit_id in candidates if visit_id not in planned]
    plan = Plan(routes, (), Objective(0, 0, 0, 0))
    repaired = False
    if dropped:
        board = Board(problem, plan)
        # Must-do visits the search left out but that still fit somewhere: put them in (time limit hit).
        for visit in sorted(dropped, key=lambda v: (v.penalty is not None, -v.priority)):
            if visit.after and (visit.after in unassigned or visit.after not in board.placed):
                unassigned[visit.id] = Unassigned(visit.id, PREDECESSOR_UNASSIGNED, f"{visit.after} is not planned")
                continue
            option = board.best(visit)
            if option is not None and visit.penalty is None:
                board.apply(visit, option)
                repaired = True
            elif option is not None:
                unassigned[visit.id] = Unassigned(visit.id, NOT_WORTH_IT, f"cheapest slot adds {option.added_travel:.0f} min of driving")
            else:
                unassigned[visit.id] = _why_no_room(problem, board, visit)
        if repaired:
            routes = tuple(route for route in board.plan().routes if route.stops)
    travel = sum(route.travel for route in routes)
    penalty = sum(_penalty(problem, by_id[u]) for u in unassigned)
    fairness = 0.0
    if built is not None and built.fairness is not None:
        fairness_target = built.fairness[1] / built.resolution
    if fairness_target is not None and problem.fairness_weight > 0:
        target = fairness_target
        work = {r.technician_id: r.travel + sum(s.end - s.start for s in r.stops) for r in routes}
        fairness = problem.fairness_weight * sum(max(0.0, w - target) for w in work.values())
    objective = Objective(travel, penalty, fairness, travel + penalty + fairness)
    ordered = tuple(unassigned[v.id] for v in problem.visits if v.id in unassigned)
    return Plan(routes, ordered, objective, stats={"repaired": repaired})


def _why_no_room(problem: Problem, board: Board, visit: Visit) -> Unassigned:
    eligible_states = [s for s in board.states.values() if eligible(s.technician, visit)]
    if eligible_states and not any(fits_capacity(s.technician, visit, s.load) for s in eligible_states):
        return Unassigned(visit.id, CAPACITY, "every eligible vehicle is already full")
    return Unassigned(visit.id, NO_ROOM, "no eligible technician has time in its windows")


# -- two cores: differently configured searches side by side --------------------------------------------


PYVRP_ONE_SEARCH_ABOVE = 500  # visits; see portfolio()


def portfolio(problem: Problem, engine: str = "auto") -> tuple[Strategy, ...]:
    """Two searches that complement each other. A day PyVRP models whole (no crews, links, pins, breaks:
    see hgs.unsupported) gets two PyVRP searches with different seeds: on Gehring & Homberger instances
    OR-Tools was 3% to 67% longer than PyVRP for the same time. Above PYVRP_ONE_SEARCH_ABOVE visits, one:
    a second process holds a second copy of the day (two searches at 1,000 visits peaked at 370 MiB
    together, one at 190 MiB), and on a shared machine each of two gets half the CPU (measured: up to 3.8%
    longer than one plain PyVRP search). Otherwise by size. Measured on Solomon
    (100 visits): the ruin-and-recreate loop from two different first solutions beats guided local search
    clearly; on a 1,000-visit day one OR-Tools descent takes most of a minute, so guided local search and a
    plain descent share the work there."""
    if engine != "ortools" and hgs.unsupported(problem) is None:
        if len(problem.visits) > PYVRP_ONE_SEARCH_ABOVE:
            return (Strategy(engine="pyvrp", seed=1),)
        return (Strategy(engine="pyvrp", seed=1), Strategy(engine="pyvrp", seed=2))
    if len(problem.visits) <= 300:  # different starts land in different basins
        return (Strategy(engine="ortools", metaheuristic="lns", seed=1), Strategy(engine="ortools", first_solution="savings", metaheuristic="lns", seed=2))
    return (Strategy(engine="ortools", metaheuristic="gls"), Strategy(engine="ortools", metaheuristic="lns", light_operators=True))


def _solve_args(args: tuple[Problem, float, Strategy]) -> Plan:
    problem, time_limit_s, strategy = args
    return solve(problem, time_limit_s, strategy)


def solve_portfolio(problem: Problem, time_limit_s: float = 10.0, *, workers: int = 2, strategies: tuple[Strategy, ...] | None = None) -> Plan:
    """Run up to `workers` strategies at once (one in this process, the rest in child processes) and keep the
    best plan: fewest visits left out, then lowest objective. Wall time stays within `time_limit_s`.

    Still no I/O: the children only compute and hand their plans back.
    """
    chosen = (strategies or portfolio(problem))[: max(1, workers)]
    if len(chosen) == 1:
        return solve(problem, time_limit_s, chosen[0])
    if len(problem.visits) > DECOMPOSE_ABOVE and chosen[0].engine == "ortools":
        # A day solved in groups: one insertion, then the cores share the groups (two whole searches would
        # each build the same first plan and give every group half the time).
        return solve(problem, time_limit_s, replace(chosen[0], workers=workers))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = time.monotonic()
    context = multiprocessing.get_context("fork")
    margin = 0.5 + 0.0005 * len(problem.visits)  # forking and sending the plan back
    with ProcessPoolExecutor(max_workers=len(chosen) - 1, mp_context=context) as pool:
        futures = [pool.submit(_solve_args, (problem, time_limit_s - margin, s)) for s in chosen[1:]]
        plans = [solve(problem, time_limit_s - margin - (time.monotonic() - started), chosen[0])]
        plans += [future.result() for future in futures]
    best = min(plans, key=lambda plan: (len(plan.unassigned), plan.objective.total))
    firsts = [p.stats["first_feasible_seconds"] for p in plans if p.stats.get("first_feasible_seconds") is not None]
    stats = {**best.stats, "candidates": [round(p.objective.total, 3) for p in plans], "first_feasible_seconds": min(firsts) if firsts else None}
    return replace(best, seconds=time.monotonic() - started, stats=stats)
