"""PyVRP's iterated local search for the days it models: windows, capacities, shifts, depots, skills, optional visits."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyvrp
from pyvrp import Client, Depot, IteratedLocalSearchCallbacks, IteratedLocalSearchParams, Location, ProblemData, SolveParams, VehicleType
from pyvrp.exceptions import PenaltyBoundWarning

from scheduler.routing import bounds
from scheduler.routing.insertion import INF, eligible
from scheduler.routing.model import Problem, Route, Stop, Technician, Visit

# Whole cost units per unit of travel when a fractional fairness weight must become a whole overtime cost
# (the OR-Tools model's COST_SCALE, repeated: the solver imports this module, not the other way round).
COST_SCALE = 10
# Each distinct set of visits a group of technicians may do is one PyVRP profile: two matrices of the whole
# day each (8 MB apiece at 1,000 visits). Past this many the memory target matters more than the engine.
MAX_PROFILES = 8


def unsupported(problem: Problem, visits: Sequence[Visit] | None = None) -> str | None:
    """Why PyVRP cannot model this day (then OR-Tools plans it), or None when it can.

    PyVRP 0.14 has no crews that start together, no links between visits, no pinned start minutes, no
    visits under way, no breaks and one window per visit; those days stay with OR-Tools. The fairness term is
    PyVRP's overtime cost above an even share (see build).
    """
    visits = problem.visits if visits is None else visits
    if any(t.breaks for t in problem.technicians):
        return "breaks"
    if any(math.isinf(t.shift[1]) for t in problem.technicians):
        return "open_shift"  # a barred visit is kept out by a drive longer than the longest shift
    for visit in visits:
        if visit.technicians > 1:
            return "crews"
        if visit.after:
            return "links"
        if visit.pinned_start is not None or visit.started:
            return "pinned_or_started"
        if len(visit.windows) > 1:
            return "several_windows"
        if any(d < 0 for d in visit.demand):
            return "negative_demand"
    if len(_profiles(problem.technicians, visits)[0]) > MAX_PROFILES:
        return "too_many_skill_sets"
    return None


def _profiles(technicians: Sequence[Technician], visits: Sequence[Visit]) -> tuple[list[frozenset[int]], list[int]]:
    """The distinct sets of visits (by position) that technicians may NOT do, and each technician's set's index."""
    sets: list[frozenset[int]] = []
    of: list[int] = []
    pins = any(v.pinned_technicians for v in visits)
    seen: dict[tuple[Any, ...], frozenset[int]] = {}  # technicians alike in skills and regions bar the same visits
    for tech in technicians:
        key = (tech.skills, tech.regions, tech.id if pins else None)
        if key not in seen:
            seen[key] = frozenset(k for k, v in enumerate(visits) if not eligible(tech, v))
        barred = seen[key]
        if barred not in sets:
            sets.append(barred)
        of.append(sets.index(barred))
    return sets, of


def servable_alone(problem: Problem, visits: Sequence[Visit]) -> list[bool]:
    """Whether some technician could do each visit as the only one of the day (skills, region, pin, room,
    window reachable from home and back within the shift), in solver units, vectorised. Only the visits
    found False need the insertion board's slower screening for their reason."""
    travel = np.asarray(problem.travel)
    location = np.asarray([v.location for v in visits], dtype=np.int64)
    service = np.asarray([v.service for v in visits], dtype=float)
    low = np.asarray([max(v.windows[0][0], problem.now) if v.windows else problem.now for v in visits], dtype=float)
    high = np.asarray([v.windows[0][1] if v.windows else INF for v in visits], dtype=float)
    dims = len(problem.capacity_names)
    demand = np.asarray([[v.demand[d] if d < len(v.demand) else 0 for d in range(dims)] for v in visits], dtype=float).reshape(len(visits), dims)
    barred, profile_of = _profiles(problem.technicians, visits)
    ok = np.zeros(len(visits), dtype=bool)
    for tech, profile in zip(problem.technicians, profile_of):
        room = np.asarray([tech.capacity[d] if d < len(tech.capacity) else 0 for d in range(dims)], dtype=float)
        start = np.maximum(max(tech.shift[0], problem.now) + travel[tech.start_location, location], low)
        fits = (start <= high) & (start + service + travel[location, tech.end_location] <= tech.shift[1]) & (demand <= room).all(axis=1)
        if barred[profile]:
            fits[list(barred[profile])] = False
        ok |= fits
    return ok.tolist()


@dataclass
class Found:
    """Routes in real minutes (visits PyVRP could not fit are simply absent), and counters for logs."""

    routes: tuple[Route, ...]
    stats: dict[str, Any] = field(default_factory=dict)
    fairness_target: float | None = None  # minutes of work each technician may do before the fairness term counts


class _Deadline:
    """Stops on an absolute wall clock, so the data building before the search counts against the limit too, or
    as soon as the best solution costs no more than a proven lower bound (``doubled_bound``, see bounds.py): PyVRP
    replaces its best only by a strictly cheaper one, so the plan is the one a full run would return."""

    def __init__(self, deadline: float, doubled_bound: int | None = None) -> None:
        self.deadline = deadline
        self.doubled_bound = doubled_bound
        self.at_bound = False

    def __call__(self, best_cost: float) -> bool:
        if self.doubled_bound is not None and 2 * best_cost <= self.doubled_bound:
            self.at_bound = True  # an infeasible best costs the largest number there is: never here
            return True
        return time.monotonic() >= self.deadline


class _FirstFeasible(IteratedLocalSearchCallbacks):
    """Notes when the search first held a feasible solution (for the benchmark's time-to-first-plan)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.seconds: float | None = None

    def on_start(self, ils: Any) -> None:
        if self.seconds is None and ils.initial_solution.is_feasible():
            self.seconds = time.monotonic() - self.started

    def on_best(self, best: pyvrp.Solution) -> None:
        if self.seconds is None and best.is_feasible():
            self.seconds = time.monotonic() - self.started


def build(problem: Problem, visits: Sequence[Visit], resolution: int) -> tuple[ProblemData, list[list[Technician]]]:
    """`problem` in whole solver units (see solver._scaled). Each visit is a client with a location of its own
    (so that a profile can bar one visit without barring another at the same address); each group of
    technicians with the same depots, shift, vehicle and allowed visits is one vehicle type."""
    barred, profile_of = _profiles(problem.technicians, visits)
    depot_locations: list[int] = []
    for tech in problem.technicians:
        for loc in (tech.start_location, tech.end_location):
            if loc not in depot_locations:
                depot_locations.append(loc)
    index = np.asarray(depot_locations + [v.location for v in visits], dtype=np.int64)
    travel = np.asarray(problem.travel, dtype=np.int64)[np.ix_(index, index)]
    n_depots = len(depot_locations)
    dims = len(problem.capacity_names)
    horizon = int(max(t.shift[1] for t in problem.technicians))
    # A barred visit is this far from everything: no shift can absorb the drive, so a route through it is
    # always late, and the value stays small enough that PyVRP's penalised costs cannot overflow (its own
    # MAX_VALUE, 2**44, made the first local search run for 20 s on 64 visits).
    barred_travel = 4 * (horizon + int(travel.max()) + int(max((v.service for v in visits), default=0))) + 1

    def amounts(values: Sequence[int]) -> list[int]:
        return [int(values[d]) if d < len(values) else 0 for d in range(dims)]

    clients = []
    for k, visit in enumerate(visits):
        low, high = visit.windows[0] if visit.windows else (-INF, INF)
        early = max(0, int(max(low, problem.now)))
        late = int(min(high, horizon))
        optional = visit.penalty is not None
        prize = int(round(visit.penalty * max(1, visit.priority) * resolution * (COST_SCALE if problem.fairness_weight > 0 else 1))) if optional and visit.penalty is not None else 0
        clients.append(Client(n_depots + k, amounts(visit.demand), [], int(visit.service), early, late, 0, prize, not optional, name=visit.id))
    depots = [Depot(k) for k in range(n_depots)]
    groups: dict[tuple[Any, ...], list[Technician]] = {}
    for tech, profile in zip(problem.technicians, profile_of):
        key = (depot_locations.index(tech.start_location), depot_locations.index(tech.end_location), max(tech.shift[0], problem.now, 0), tech.shift[1], tuple(amounts(tech.capacity)), profile)
        groups.setdefault(key, []).append(tech)
    # The fairness term (work above an even share of the service minutes costs fairness_weight per minute) is
    # PyVRP's overtime above a nominal shift of that share. PyVRP's route duration counts waiting too, where
    # the OR-Tools model counts driving and service only: close, not equal. Costs are whole numbers, so both
    # are scaled by COST_SCALE as in the OR-Tools model.
    weight = problem.fairness_weight
    scale = COST_SCALE if weight > 0 else 1
    share = int(math.ceil(sum(v.service for v in visits) / max(1, len(problem.technicians)))) if weight > 0 else None
    vehicle_types = []
    for key, techs in groups.items():
        fair: dict[str, Any] = {}
        if share is not None:
            fair = dict(shift_duration=share, max_overtime=max(0, int(key[3]) - int(key[2])), unit_overtime_cost=max(1, int(round(weight * scale))))
        vehicle_types.append(
            VehicleType(len(techs), list(key[4]), key[0], key[1], tw_early=int(key[2]), tw_late=int(key[3]), profile=key[5], unit_distance_cost=scale, name=techs[0].id, **fair)
        )
    matrices: list[Any] = []  # numpy int64 matrices (PyVRP's stubs type them oddly)
    for barred_visits in barred:
        if not barred_visits:
            matrices.append(travel)
            continue
        matrix = travel.copy()  # PyVRP's own way to keep a vehicle type from clients (see pyvrp.read), with a smaller value
        out = np.asarray(sorted(barred_visits), dtype=np.int64) + n_depots
        matrix[:, out] = barred_travel
        matrix[out, :] = barred_travel
        np.fill_diagonal(matrix, 0)
        matrices.append(matrix)
    locations = [Location(0.0, 0.0) for _ in range(len(index))]  # coordinates unused: neighbours come from the matrices
    data = ProblemData(locations, clients, depots, vehicle_types, matrices, matrices)
    return data, list(groups.values())


def search(problem: Problem, visits: Sequence[Visit], real: Problem, base: float, deadline: float, seed: int = 1, started: float | None = None) -> Found:
    """Runs PyVRP until `deadline` (time.monotonic) and reads its best solution back as routes in minutes.

    `problem` is in solver units, `real` in minutes with the same technicians. PyVRP may return an infeasible
    best (a must-do visit that fits nowhere); each route is then re-timed here and whatever would break a
    window, the vehicle's room or the shift is left off, for the caller's repair and reasons.
    """
    began = time.monotonic()
    data, groups = build(problem, visits, real.resolution)
    built = time.monotonic() - began
    watch = _FirstFeasible(began if started is None else started)
    initial = nearest_neighbour(data)
    if initial is not None and initial.is_feasible():
        # A plan within a second at a thousand visits; PyVRP's own start (a random solution through an
        # exhaustive local search) took 2-5 s there on a shared machine before anything was feasible.
        watch.seconds = time.monotonic() - watch.started
    else:
        initial = None
    params = SolveParams(ils=IteratedLocalSearchParams(callbacks=watch), display_interval=1e9)
    stop = _Deadline(deadline, bounds.pyvrp_doubled(data))
    with warnings.catch_warnings():
        # expected when a must-do visit fits nowhere: the caller gives it a reason
        warnings.simplefilter("ignore", PenaltyBoundWarning)
        result = pyvrp.solve(data, stop, seed=seed, collect_stats=False, display=False, params=params, initial_solution=initial)
    best = result.best
    real_visits = {v.id: v for v in real.visits}
    real_techs = {t.id: t for t in real.technicians}
    free = [list(techs) for techs in groups]
    routes: list[Route] = []
    dropped = 0
    for route in best.routes():
        tech = free[route.vehicle_type()].pop(0)
        sequence = [a.idx for a in route if a.is_client()]
        stops, lost = _timed(data, sequence, route.vehicle_type())
        dropped += lost
        if stops:
            routes.append(_in_minutes(real, real_techs[tech.id], [real_visits[visits[k].id] for k, _ in stops], [s for _, s in stops], base))
    share = data.vehicle_type(0).shift_duration if problem.fairness_weight > 0 else None
    stats = {
        "engine": "pyvrp",
        "iterations": result.num_iterations,
        "pyvrp_feasible": best.is_feasible(),
        "build_seconds": round(built, 3),
        "first_feasible_seconds": round(watch.seconds, 3) if watch.seconds is not None else None,
        "retimed_out": dropped,
        "stopped_at_bound": stop.at_bound,
    }
    return Found(tuple(routes), stats, share / real.resolution if share is not None else None)


def nearest_neighbour(data: ProblemData) -> pyvrp.Solution | None:
    """Time-oriented nearest neighbour, vectorised: each vehicle in turn grows its route by the required visit
    it can start soonest (waiting included) within windows, room and shift. None when some required visit is
    left over (PyVRP then starts its own way). Optional visits are left to the search."""
    n_depots = data.num_depots
    clients = data.clients()
    count = len(clients)
    early = np.asarray([c.tw_early for c in clients], dtype=np.int64)
    late = np.asarray([c.tw_late for c in clients], dtype=np.int64)
    service = np.asarray([c.service_duration for c in clients], dtype=np.int64)
    dims = data.num_load_dimensions
    demand = np.asarray([list(c.delivery) for c in clients], dtype=np.int64).reshape(count, dims)
    left = np.asarray([c.required for c in clients], dtype=bool)
    routes = []
    for type_index, vt in enumerate(data.vehicle_types()):
        matrix = data.duration_matrix(vt.profile)
        room = np.asarray(vt.capacity, dtype=np.int64)
        for _ in range(vt.num_available):
            if not left.any():
                break
            here, now, load, route = vt.start_depot, vt.tw_early, np.zeros(dims, dtype=np.int64), []
            while True:
                candidates = np.flatnonzero(left)
                start = np.maximum(now + matrix[here, n_depots + candidates], early[candidates])
                ok = (start <= late[candidates]) & (start + service[candidates] + matrix[n_depots + candidates, vt.end_depot] <= vt.tw_late)
                ok &= (load + demand[candidates] <= room).all(axis=1)
                if not ok.any():
                    break
                pick = int(np.argmin(np.where(ok, start, np.iinfo(np.int64).max)))
                k = int(candidates[pick])
                route.append(k)
                left[k] = False
                now, here, load = int(start[pick] + service[k]), n_depots + k, load + demand[k]
            if not route:
                break  # the next vehicle of this type would find nothing either
            routes.append(pyvrp.Route(data, route, type_index))
    if left.any():
        return None
    return pyvrp.Solution(data, routes)


def _timed(data: ProblemData, sequence: list[int], vehicle_type: int) -> tuple[list[tuple[int, float]], int]:
    """Earliest start of each visit in solver units, leaving out any visit that would break a window, the load or
    the shift (only when PyVRP's best is infeasible). Returns [(visit position, start)] and how many were left out."""
    vt = data.vehicle_type(vehicle_type)
    travel = data.duration_matrix(vt.profile)  # a barred visit is too far away to be on time
    keep = list(sequence)
    while True:
        kept: list[tuple[int, float]] = []
        here, ready = vt.start_depot, float(vt.tw_early)
        load = [0] * len(vt.capacity)
        for k in keep:
            client = data.client(k)
            loc = client.location
            start = max(ready + travel[here, loc], client.tw_early)
            demand = list(client.delivery)
            if start > client.tw_late or any(load[d] + demand[d] > vt.capacity[d] for d in range(len(load))):
                continue
            load = [load[d] + demand[d] for d in range(len(load))]
            kept.append((k, start))
            here, ready = loc, start + client.service_duration
        if not kept or ready + travel[here, vt.end_depot] <= vt.tw_late:
            return kept, len(sequence) - len(kept)
        keep = [k for k, _ in kept[:-1]]  # home too late: give up the last visit and time it again


def _in_minutes(real: Problem, tech: Technician, visits: list[Visit], starts: list[float], base: float) -> Route:
    """A route in real minutes: starts from solver units (rounded the safe way), arrivals and driving from real travel."""
    res = real.resolution
    travel = real.travel
    stops = []
    here = tech.start_location
    first_start = base + starts[0] / res
    departure = max(max(tech.shift[0], real.now), first_start - travel[here][visits[0].location])
    ready, driven = departure, 0.0
    for visit, units in zip(visits, starts):
        start = base + units / res
        leg = travel[here][visit.location]
        stops.append(Stop(visit.id, min(start, ready + leg), start, start + visit.service))
        driven += leg
        here, ready = visit.location, start + visit.service
    leg = travel[here][tech.end_location]
    return Route(tech.id, tuple(stops), (), departure, ready + leg, driven + leg)
