"""Independent validation of a plan against its problem: every hard rule re-checked from the plan's own times."""

from __future__ import annotations

from collections.abc import Iterable

from scheduler.routing.model import BreakTime, Plan, Problem, Route, Visit

# Shared tolerance with the solver's float reporting; a violation smaller than this is rounding noise.
EPS = 1e-6


def check_plan(problem: Problem, plan: Plan) -> list[str]:
    """Returns the violations (empty when the plan holds every hard constraint). Shares no code with the solver."""
    problems: list[str] = []
    visits = {v.id: v for v in problem.visits}
    techs = {t.id: t for t in problem.technicians}
    where: dict[str, list[tuple[str, float, float]]] = {}
    seen_routes: set[str] = set()
    for route in plan.routes:
        if route.technician_id not in techs:
            problems.append(f"route of unknown technician {route.technician_id}")
            continue
        if route.technician_id in seen_routes:
            problems.append(f"two routes for {route.technician_id}")
        seen_routes.add(route.technician_id)
        problems += _check_route(problem, route, visits)
        for stop in route.stops:
            where.setdefault(stop.visit_id, []).append((route.technician_id, stop.start, stop.end))
    unassigned = {}
    for item in plan.unassigned:
        if not item.reason:
            problems.append(f"{item.visit_id} left out without a reason")
        unassigned[item.visit_id] = item.reason
    for visit in problem.visits:
        placed = where.get(visit.id, [])
        if not placed:
            if visit.id not in unassigned:
                problems.append(f"{visit.id} silently dropped")
            continue
        if visit.id in unassigned:
            problems.append(f"{visit.id} both planned and unassigned")
        people = {tech for tech, _, _ in placed}
        if len(placed) != visit.technicians or len(people) != len(placed):
            problems.append(f"{visit.id} needs {visit.technicians} different technicians, has {sorted(t for t, _, _ in placed)}")
        starts = {round(start, 6) for _, start, _ in placed}
        if max(starts) - min(starts) > EPS:
            problems.append(f"{visit.id}: crew does not start together {sorted(starts)}")
        if visit.pinned_technicians and not people <= set(visit.pinned_technicians):
            problems.append(f"{visit.id} pinned to {visit.pinned_technicians}, given to {sorted(people)}")
        if visit.after:
            before = where.get(visit.after, [])
            if not before:
                problems.append(f"{visit.id} planned without its predecessor {visit.after}")
            else:
                ready = max(end for _, _, end in before) + visit.min_gap
                if min(start for _, start, _ in placed) < ready - EPS:
                    problems.append(f"{visit.id} starts before {visit.after} ends plus {visit.min_gap:g} min")
                if visit.same_crew and not people <= {tech for tech, _, _ in before}:
                    problems.append(f"{visit.id} must be done by the crew of {visit.after}")
    for visit_id in where:
        if visit_id not in visits:
            problems.append(f"unknown visit {visit_id} in a route")
    return problems


def _check_route(problem: Problem, route: Route, visits: dict[str, Visit]) -> list[str]:
    out: list[str] = []
    tech = problem.technician(route.technician_id)
    travel = problem.travel
    name = tech.id
    if not route.stops:
        return out
    departure = route.departure if route.departure is not None else tech.shift[0]
    arrival_home = route.arrival if route.arrival is not None else None
    first = visits.get(route.stops[0].visit_id)
    started_first = first is not None and first.started
    if departure < tech.shift[0] - EPS:
        out.append(f"{name} leaves at {departure:.2f} before the shift starts at {tech.shift[0]:g}")
    if departure < problem.now - EPS and not started_first:
        out.append(f"{name} leaves at {departure:.2f}, before now ({problem.now:g})")
    breaks = list(route.breaks)
    if len(breaks) != len(tech.breaks):
        out.append(f"{name} has {len(breaks)} breaks, shift has {len(tech.breaks)}")
    for rule, taken in zip(tech.breaks, breaks):
        if taken.start < rule.earliest - EPS or taken.start > rule.latest + EPS:
            out.append(f"{name}: break at {taken.start:.2f} outside [{rule.earliest:g}, {rule.latest:g}]")
        if abs((taken.end - taken.start) - rule.duration) > EPS:
            out.append(f"{name}: break of {taken.end - taken.start:.2f} min, should be {rule.duration:g}")
    load = [0] * len(problem.capacity_names)
    # Walk the route: (location, ready time) of the previous point, then each stop, then home.
    here, ready = tech.start_location, departure
    for k, stop in enumerate(route.stops):
        visit = visits.get(stop.visit_id)
        if visit is None:
            continue
        if visit.started and k != 0:
            out.append(f"{visit.id} is under way but not first on {name}'s route")
        if not visit.skills <= tech.skills:
            out.append(f"{name} lacks {sorted(visit.skills - tech.skills)} for {visit.id}")
        if visit.region is not None and tech.regions and visit.region not in tech.regions:
            out.append(f"{name} does not work in {visit.region} ({visit.id})")
        if visit.pinned_start is not None and abs(stop.start - visit.pinned_start) > EPS:
            out.append(f"{visit.id} pinned at {visit.pinned_start:g}, planned at {stop.start:.2f}")
        if visit.windows and not any(low - EPS <= stop.start <= high + EPS for low, high in visit.windows):
            out.append(f"{visit.id} starts at {stop.start:.2f}, outside its windows {list(visit.windows)}")
        if not visit.started and stop.start < problem.now - EPS:
            out.append(f"{visit.id} starts at {stop.start:.2f}, before now ({problem.now:g})")
        if abs(stop.end - stop.start - visit.service) > EPS:
            out.append(f"{visit.id} lasts {stop.end - stop.start:.2f}, service is {visit.service:g}")
        if stop.arrival > stop.start + EPS:
            out.append(f"{visit.id} starts at {stop.start:.2f} before the arrival {stop.arrival:.2f}")
        pause = _breaks_within(breaks, ready, stop.start)
        if ready + travel[here][visit.location] + pause > stop.start + EPS:
            out.append(f"{name} cannot reach {visit.id} by {stop.start:.2f} (ready {ready:.2f}, drive {travel[here][visit.location]:.2f}, breaks {pause:g})")
        for taken in breaks:
            if taken.start < stop.end - EPS and stop.start < taken.end - EPS and stop.end - stop.start > EPS:
                out.append(f"{name}: break {taken.start:.2f}-{taken.end:.2f} overlaps {visit.id}")
        for d, amount in enumerate(visit.demand):
            if d < len(load):
                load[d] += amount
        here, ready = visit.location, stop.end
    back = ready + travel[here][tech.end_location]
    if arrival_home is not None:
        pause = _breaks_within(breaks, ready, arrival_home)
        if back + pause > arrival_home + EPS:
            out.append(f"{name} cannot be home by {arrival_home:.2f}")
        back = arrival_home
    if back > tech.shift[1] + EPS:
        out.append(f"{name} is back at {back:.2f}, after the shift ends at {tech.shift[1]:g}")
    for d, used in enumerate(load):
        have = tech.capacity[d] if d < len(tech.capacity) else 0
        if used > have:
            out.append(f"{name} carries {used} {problem.capacity_names[d]}, capacity {have}")
    return out


def _breaks_within(breaks: Iterable[BreakTime], start: float, end: float) -> float:
    return sum(b.end - b.start for b in breaks if b.start >= start - EPS and b.end <= end + EPS)
