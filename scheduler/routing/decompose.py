"""Days too big for one OR-Tools model (thousands of visits), improved a few neighbouring routes at a time."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from scheduler.routing.insertion import INF
from scheduler.routing.model import Objective, Plan, Problem, Route, Technician, Visit, Window

GROUP_VISITS = 250  # visits per sub-day: OR-Tools builds such a model in well under a second
MIN_GROUP_SECONDS = 1.0  # less than this left for a group: stop, the routes stay as they are


@dataclass(frozen=True)
class Part:
    """One sub-day: some technicians, the visits now on their routes, and those routes as the starting plan."""

    problem: Problem
    plan: Plan
    technician_ids: tuple[str, ...]
    travel: float  # minutes driven on these routes now


def centres(problem: Problem, routes: Iterable[Route]) -> dict[str, int]:
    """Where each technician's work lies: the stop of their route with the least driving to its other stops (a
    "centre" that needs no coordinates), or where they start for a technician with no route yet."""
    travel = problem.travel
    locations = {v.id: v.location for v in problem.visits}
    centre = {t.id: t.start_location for t in problem.technicians}
    for route in routes:
        places = [locations[s.visit_id] for s in route.stops]
        if places:
            centre[route.technician_id] = min(places, key=lambda a: sum(travel[a][b] + travel[b][a] for b in places))
    return centre


def groups(problem: Problem, routes: tuple[Route, ...], size: int, rng: random.Random) -> list[list[str]]:
    """Technicians in groups of about `size` planned visits whose routes lie close together: a random seed
    route, then the routes nearest to it (by their centres), until the group is full. Technicians with no route
    yet join the group their start place falls in (they add no visits to it)."""
    travel = problem.travel
    centre = centres(problem, routes)
    load = {t.id: 0 for t in problem.technicians}
    for route in routes:
        load[route.technician_id] = len(route.stops)
    if not any(load.values()):
        return []
    left = sorted(centre)
    out: list[list[str]] = []
    while left:
        busy = [t for t in left if load[t]]
        seed = rng.choice(busy or left)
        here = centre[seed]
        left.sort(key=lambda t: travel[here][centre[t]] + travel[centre[t]][here])
        group: list[str] = []
        count = 0
        while left and (not group or count + load[left[0]] <= size):
            tech = left.pop(0)
            group.append(tech)
            count += load[tech]
        out.append(group)
    return out


def offerable(problem: Problem, visit_ids: Iterable[str]) -> tuple[str, ...]:
    """The left-out visits a group may take on its own: one technician, no link to another visit, not under way."""
    predecessors = {v.after for v in problem.visits if v.after}
    by_id = {v.id: v for v in problem.visits}
    return tuple(
        visit_id for visit_id in visit_ids
        if (v := by_id.get(visit_id)) is not None and v.technicians == 1 and not v.after and not v.same_crew
        and not v.started and visit_id not in predecessors
    )


def share_out(problem: Problem, routes: dict[str, Route], batch: list[list[str]], extras: Iterable[str], size: int) -> list[list[str]]:
    """Each left-out visit to the group whose nearest technician's work lies closest to it (and who may do it), at
    most a fifth of `size` per group so that the sub-days stay small."""
    travel = problem.travel
    centre = centres(problem, routes.values())
    by_id = {v.id: v for v in problem.visits}
    group_of = {t: k for k, group in enumerate(batch) for t in group}
    shares: list[list[str]] = [[] for _ in batch]
    room = max(1, size // 5)
    for visit_id in extras:
        visit = by_id[visit_id]
        allowed = [t for t in group_of if not visit.pinned_technicians or t in visit.pinned_technicians]
        if not allowed:
            continue
        nearest = min(allowed, key=lambda t: travel[centre[t]][visit.location] + travel[visit.location][centre[t]])
        k = group_of[nearest]
        if len(shares[k]) < room:
            shares[k].append(visit_id)
    return shares


def part(problem: Problem, routes: dict[str, Route], technician_ids: list[str], extras: Iterable[str] = ()) -> Part:
    """The sub-day of these technicians, with everything that ties them to the other routes held fixed:

    - a crew visit keeps its people and its start minute (the members outside the group keep theirs);
    - a linked pair is split at a minute between the predecessor's end (plus the gap) and the follow-up's
      start: the predecessor may not end later, the follow-up may not start earlier. Either may then move
      in its own sub-day (now or later) without breaking the link, wherever the other one is;
    - a same-crew follow-up stays with its technician (so does its predecessor).
    The links themselves are left out of the sub-day; these bounds keep them.
    """
    visits = {v.id: v for v in problem.visits}
    mine = set(technician_ids)
    where: dict[str, list[tuple[str, float, float]]] = {}
    for route in routes.values():
        for stop in route.stops:
            where.setdefault(stop.visit_id, []).append((route.technician_id, stop.start, stop.end))
    successors: dict[str, list[Visit]] = {}
    for v in problem.visits:
        if v.after and v.after in where and v.id in where:
            successors.setdefault(v.after, []).append(v)

    def split(follower: Visit) -> float:
        ready = max(end for _, _, end in where[follower.after or ""]) + follower.min_gap
        start = min(start for _, start, _ in where[follower.id])
        # Halfway, rounded down to a solver step (never below `ready`: float noise may put start a hair under it).
        return ready + max(0.0, math.floor((start - ready) * problem.resolution / 2 + 1e-9) / problem.resolution)

    sub_visits: list[Visit] = []
    taken: set[str] = set()
    for tech_id in technician_ids:
        here = routes.get(tech_id)
        for stop in here.stops if here is not None else ():
            visit = visits[stop.visit_id]
            if visit.id in taken:
                continue  # a crew with two members in the group
            taken.add(visit.id)
            placed = where[visit.id]
            low, high = -INF, INF
            pins = visit.pinned_technicians
            changes: dict[str, Any] = {"after": None, "min_gap": 0.0, "same_crew": False}
            if visit.technicians > 1:
                inside = tuple(t for t, _, _ in placed if t in mine)
                changes.update(technicians=len(inside), pinned_start=stop.start)
                pins = inside
            if visit.after and visit.after in where:
                low = split(visit)
                if visit.same_crew:
                    pins = tuple(t for t, _, _ in placed)
            for follower in successors.get(visit.id, ()):
                high = min(high, split(follower) - follower.min_gap - visit.service)
                if follower.same_crew:
                    pins = tuple(t for t, _, _ in placed)
            changes["pinned_technicians"] = tuple(t for t in pins if t in mine)  # the others are not in this sub-day
            changes["windows"] = _bounded(visit.windows, low, high)
            sub_visits.append(replace(visit, **changes))
    for visit_id in extras:  # left out so far: the sub-day may place them or leave them out again
        visit = visits[visit_id]
        sub_visits.append(replace(visit, pinned_technicians=tuple(t for t in visit.pinned_technicians if t in mine)))
    techs = tuple(problem.technician(t) for t in technician_ids)
    sub = _reindexed(problem, sub_visits, techs)
    sub_routes = tuple(routes[t] for t in technician_ids if t in routes)
    travel = sum(r.travel for r in sub_routes)
    return Part(sub, Plan(sub_routes, (), Objective(travel, 0.0, 0.0, travel)), tuple(technician_ids), travel)


def _bounded(windows: tuple[Window, ...], low: float, high: float) -> tuple[Window, ...]:
    if low == -INF and high == INF:
        return windows
    if not windows:
        return ((low, high),)
    out = tuple((max(a, low), min(b, high)) for a, b in windows if max(a, low) <= min(b, high))
    return out or ((low, low),)  # the planned start is inside the bounds: never empty in practice


def _reindexed(problem: Problem, visits: list[Visit], techs: tuple[Technician, ...]) -> Problem:
    """The sub-day with its own small travel matrix (rows and columns of the places it uses)."""
    used: list[int] = []
    at: dict[int, int] = {}

    def index(location: int) -> int:
        if location not in at:
            at[location] = len(used)
            used.append(location)
        return at[location]

    techs = tuple(replace(t, start_location=index(t.start_location), end_location=index(t.end_location)) for t in techs)
    visits = [replace(v, location=index(v.location)) for v in visits]
    rows = [problem.travel[a] for a in used]
    matrix = [[row[b] for b in used] for row in rows]
    return replace(problem, visits=tuple(visits), technicians=techs, travel=matrix)


def improve(
    problem: Problem,
    routes: tuple[Route, ...],
    deadline: float,
    solve: Callable[[Problem, float, Plan], Plan],
    clock: Callable[[], float],
    seed: int = 1,
    size: int = GROUP_VISITS,
    width: int = 1,
    solve_wave: Callable[[list[tuple[Problem, float, Plan]]], list[Plan]] | None = None,
    extras: tuple[str, ...] = (),
) -> tuple[tuple[Route, ...], dict[str, Any]]:
    """Round after round of groups (a new grouping each round), each sub-day re-solved by `solve(sub, seconds,
    start_plan)` from its current routes; a sub-plan replaces the group's routes only when it keeps every one
    of their visits and drives less (counting the fair-load term when the day has one). Ends by `deadline` (by `clock`), leaving the last routes as they are.

    `width` groups at a time go to `solve_wave` (e.g. one per core). They are cut from the same routes, so
    the bounds on the links between them agree and each group's plan may be taken on its own.

    `extras`: visits no route holds (see `offerable`); each round offers them to the nearest group, whose plan is
    then also judged on the ones it places (each left out costs `Problem.leave_out_cost`)."""
    rng = random.Random(seed)
    current = {r.technician_id: r for r in routes}
    # with a fair-load weight, a group's plan is judged as the whole day is: driving plus the work above an even share
    # of the day's work (fixed from the routes it starts from, as the whole-day search fixes it from its first plan)
    weight = problem.fairness_weight
    even_share = sum(_work(r) for r in routes) / max(1, len(problem.technicians))

    def uneven(group_routes: Iterable[Route]) -> float:
        return weight * sum(max(0.0, _work(r) - even_share) for r in group_routes) if weight > 0 else 0.0
    stats: dict[str, Any] = {"groups_solved": 0, "groups_improved": 0, "rounds": 0, "minutes_saved": 0.0, "left_out_placed": 0}
    waiting = list(extras)
    by_id = {v.id: v for v in problem.visits}

    def left_out(visit_ids: Iterable[str]) -> float:
        return sum(problem.leave_out_cost(by_id[v]) for v in visit_ids)

    width = max(1, width)

    def one_by_one(parts: list[tuple[Problem, float, Plan]]) -> list[Plan]:
        return [solve(*args) for args in parts]

    wave_solver = solve_wave or one_by_one
    while True:
        batch = groups(problem, tuple(r for r in current.values() if r.stops), size, rng)
        if not batch:
            break
        shares = share_out(problem, current, batch, waiting, size)
        stats["rounds"] += 1
        improved_before = stats["groups_improved"]
        for k in range(0, len(batch), width):
            wave = batch[k : k + width]
            wave_shares = shares[k : k + width]
            left = deadline - clock()
            seconds = left / math.ceil((len(batch) - k) / width)
            if seconds < MIN_GROUP_SECONDS:
                if left >= MIN_GROUP_SECONDS:
                    seconds = left  # the last wave that fits gets what is left
                else:
                    return tuple(current[t] for t in _order(routes, current)), stats
            pieces = [part(problem, current, group, share) for group, share in zip(wave, wave_shares)]
            found_plans = wave_solver([(piece.problem, seconds, piece.plan) for piece in pieces])
            for group, share, piece, found in zip(wave, wave_shares, pieces, found_plans):
                stats["groups_solved"] += 1
                planned = {s.visit_id for r in found.routes for s in r.stops}
                held = {s.visit_id for r in piece.plan.routes for s in r.stops}
                placed_now = [v for v in share if v in planned]
                before = piece.travel + uneven(piece.plan.routes) + left_out(share)
                after = found.objective.travel + uneven(found.routes) + left_out(v for v in share if v not in planned)
                if not (held <= planned and after < before - 1e-6):
                    continue
                stats["groups_improved"] += 1
                stats["left_out_placed"] += len(placed_now)
                waiting = [v for v in waiting if v not in placed_now]
                stats["minutes_saved"] = round(stats["minutes_saved"] + piece.travel - found.objective.travel, 1)
                back = {r.technician_id: r for r in found.routes}  # routes carry no matrix indices: they fit the day as they are
                for tech_id in group:
                    if tech_id in back:
                        current[tech_id] = back[tech_id]
                    else:
                        current.pop(tech_id, None)
        if stats["groups_improved"] == improved_before:
            break  # a whole round found nothing better: the routes are as good as this search makes them
    return tuple(current[t] for t in _order(routes, current)), stats


def _work(route: Route) -> float:
    """Minutes of a technician's day spent driving or at visits (what the fair-load term evens out)."""
    return route.travel + sum(stop.end - stop.start for stop in route.stops)


def _order(routes: tuple[Route, ...], current: dict[str, Route]) -> list[str]:
    first = [r.technician_id for r in routes if r.technician_id in current]
    return first + [t for t in current if t not in set(first)]
