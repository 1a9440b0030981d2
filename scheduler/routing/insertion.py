"""Cheapest feasible insertion into fixed routes: slot options for one new visit, without re-solving."""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, replace
from typing import Any, Collection, Iterable, Sequence

from scheduler.routing.model import (
    CAPACITY,
    NO_ROOM,
    NO_SKILLED_TECHNICIAN,
    NO_TECHNICIAN_IN_REGION,
    NOT_ENOUGH_TECHNICIANS,
    PREDECESSOR_UNASSIGNED,
    WINDOW_PASSED,
    WINDOW_TOO_TIGHT,
    Break,
    BreakTime,
    Objective,
    Plan,
    Problem,
    Route,
    Stop,
    Technician,
    Unassigned,
    Visit,
    Window,
)

INF = math.inf
# Times are compared with this slack so that float noise never turns a feasible slot into an infeasible one
# the other way round, the checker uses the same tolerance.
EPS = 1e-6

START, STOP, BREAK, END = 0, 1, 2, 3


@dataclass(frozen=True)
class SlotOption:
    """One feasible way to add a visit: which technicians, which window, where in their routes, at what cost."""

    technician_ids: tuple[str, ...]
    window: Window
    positions: tuple[int, ...]  # index in each technician's stop list the visit would take
    earliest_start: float
    latest_start: float  # any start in [earliest, latest] keeps every route feasible
    added_travel: float  # minutes of extra driving, summed over the crew
    items: tuple[int, ...] = ()  # internal: gap index in each route, for apply()


class _Item:
    """A route element: the start, a stop, a break or the end. Breaks happen where the technician stands.

    `visit` is set on stops and only on them, `break_` on breaks and only on them.
    """

    __slots__ = ("kind", "visit", "location", "windows", "duration", "break_")

    def __init__(self, kind: int, location: int, windows: tuple[Window, ...], duration: float = 0.0, visit: Visit | None = None, break_: Break | None = None) -> None:
        self.kind = kind
        self.location = location
        self.windows = windows
        self.duration = duration
        self.visit = visit
        self.break_ = break_


def _first_start(windows: tuple[Window, ...], arrival: float) -> float:
    """Earliest start at or after arrival inside one of the windows (sorted), or INF."""
    for low, high in windows:
        if arrival <= high + EPS:
            return max(arrival, low)
    return INF


def _last_start(windows: tuple[Window, ...], bound: float) -> float:
    """Latest start at or before bound inside one of the windows (sorted), or -INF."""
    for low, high in reversed(windows):
        if low <= bound + EPS:
            return min(high, bound)
    return -INF


def _intersect(windows: Iterable[Window], low: float, high: float) -> tuple[Window, ...]:
    out = []
    for a, b in sorted(windows):
        a, b = max(a, low), min(b, high)
        if a <= b + EPS:
            out.append((a, max(a, b)))
    return tuple(out)


class RouteState:
    """One technician's route with earliest starts (forward) and latest starts (backward) for O(1) insertion checks.

    Breaks follow OR-Tools' semantics: between two stops a break may sit anywhere in the gap, before,
    during or after the drive, so the gap must hold the drive plus every break in it.
    """

    def __init__(self, technician: Technician, items: list[_Item], travel: Sequence[Sequence[float]], now: float, demand_size: int) -> None:
        self.technician = technician
        self.items = items
        self.travel = travel
        self.now = now
        self.load = [0] * demand_size
        self.refresh()

    def refresh(self) -> None:
        items, travel = self.items, self.travel
        # Nobody leaves before now, unless the route opens with a visit already under way.
        self.departure = self.technician.shift[0] if self.starts_with_started() else max(self.technician.shift[0], self.now)
        n = len(items)
        self.end = end = next(i for i, item in enumerate(items) if item.kind == END)
        self.early = early = [0.0] * n  # earliest start of each item
        self.early_end = early_end = [0.0] * n
        self.late = late = [INF] * n  # latest start that keeps the rest of the route feasible
        self.prev_real = prev_real = [0] * n  # last start/stop at or before each item
        self.next_real = next_real = [end] * n  # first stop/end after each item
        self.breaks_before = breaks_before = [0.0] * n  # break minutes between prev_real and this item, inclusive
        self.breaks_after = breaks_after = [0.0] * n  # break minutes between this item and next_real, exclusive
        real, real_end, cursor, pending = 0, self.departure, self.departure, 0.0
        for i, item in enumerate(items):
            if item.kind == START:
                early[i] = early_end[i] = self.departure
            elif item.kind == BREAK:
                early[i] = max(cursor, item.windows[0][0])
                early_end[i] = cursor = early[i] + item.duration
                if i < end:
                    pending += item.duration
            else:
                arrival = max(real_end + travel[items[real].location][item.location] + pending, cursor)
                early[i] = _first_start(item.windows, arrival)
                early_end[i] = cursor = real_end = early[i] + item.duration
                real, pending = i, 0.0
            prev_real[i] = real
            breaks_before[i] = pending
        # Backward. Breaks after the end item happen after the return and only need their own windows.
        bound = INF
        for i in range(n - 1, end, -1):
            late[i] = bound = min(items[i].windows[0][1], bound - items[i].duration)
        late[end] = min(items[end].windows[0][1], bound)
        following, chain, minutes = end, late[end], 0.0
        for i in range(end - 1, -1, -1):
            item = items[i]
            next_real[i] = following
            breaks_after[i] = minutes
            if item.kind == BREAK:
                late[i] = chain = min(item.windows[0][1], chain - item.duration)
                minutes += item.duration
                continue
            latest_end = min(late[following] - travel[item.location][items[following].location] - minutes, chain)
            late[i] = latest_end if item.kind == START else _last_start(item.windows, latest_end - item.duration)
            following, chain, minutes = i, late[i], 0.0
        self.feasible = all(early[i] <= late[i] + EPS for i in range(n))
        self._lists: tuple[list[Any], ...] | None = None  # see gap_lists(); built on the first query after a change
        self._where: dict[str, int] | None = None

    def gap_lists(self) -> tuple[list[Any], ...]:
        """Per gap, what gaps() needs, built once per route change rather than read again on every query:
        the latest start of the stop after the gap (it never decreases along a route, so gaps() finds the
        first gap a window can use by bisection), where the gap starts and ends, when the technician is ready
        there, the latest start allowed by the stop after it and by a break in it; and the stops up to each item."""
        if self._lists is None:
            items, end, prev_real, next_real, late = self.items, self.end, self.prev_real, self.next_real, self.late
            stops_upto, count = [0] * len(items), 0
            for i, item in enumerate(items):
                count += item.kind == STOP
                stops_upto[i] = count
            self._lists = (
                [late[next_real[g]] for g in range(end)],
                [items[prev_real[g]].location for g in range(end)],
                [items[next_real[g]].location for g in range(end)],
                [self.early_end[prev_real[g]] for g in range(end)],
                [late[next_real[g]] - self.breaks_after[g] for g in range(end)],
                [late[g + 1] if items[g + 1].kind == BREAK else INF for g in range(end)],
                stops_upto,
            )
        return self._lists

    def index_of(self, visit_id: str) -> int | None:
        if self._where is None:
            self._where = {item.visit.id: i for i, item in enumerate(self.items) if item.visit is not None}
        return self._where.get(visit_id)

    def gaps(self, visit: Visit, windows: tuple[Window, ...], first: int = 0, last: int | None = None) -> Iterable[tuple[int, Window, float, float, float]]:
        """Feasible (gap, window, earliest start, latest start, added travel) for inserting right after item `gap`.

        Only gaps first..last are tried (a linked visit must stay on the right side of its partner).
        """
        items, travel = self.items, self.travel
        early_end, late = self.early_end, self.late
        target, service = visit.location, visit.service
        last_high, first_low = windows[-1][1], windows[0][0]
        stop = self.end if last is None else min(self.end, last + 1)
        if visit.started:  # under way: only as the very first stop, and the day began before now
            if self.starts_with_started():
                return
            stop = min(stop, 1)
        # No gap before the first one whose next stop may still start after this visit's earliest end.
        begin = bisect_left(self.gap_lists()[0], first_low + service - EPS, max(first, 1 if self.starts_with_started() else 0), max(0, stop))
        if not visit.started:
            yield from self._gaps(visit, windows, begin, stop)
            return
        for gap in range(begin, stop):
            a = self.prev_real[gap]
            ready = self.technician.shift[0] if visit.started and a == 0 else early_end[a]
            free = ready if a == gap else early_end[gap]
            if free > last_high + EPS:
                break  # ends only grow along the route
            here = items[a].location
            r = self.next_real[gap]
            there = items[r].location
            arrival = max(ready + travel[here][target] + self.breaks_before[gap], free)
            chain = late[gap + 1] if items[gap + 1].kind == BREAK else INF
            latest = min(late[r] - travel[target][there] - self.breaks_after[gap], chain) - service
            if latest + EPS < first_low or arrival > latest + EPS:
                continue
            added = travel[here][target] + travel[target][there] - travel[here][there]
            for low, high in windows:
                start = max(arrival, low)
                top = min(high, latest)
                if start <= top + EPS:
                    yield gap, (low, high), start, max(start, top), added

    def _gaps(self, visit: Visit, windows: tuple[Window, ...], begin: int, stop: int) -> Iterable[tuple[int, Window, float, float, float]]:
        """gaps() for a visit not under way: the same tests on the per-gap lists refresh() keeps (the hot loop
        of a day's construction, hence the locals)."""
        travel, early_end = self.travel, self.early_end
        _, here_of, there_of, ready_of, latest_of, chain_of, _ = self.gap_lists()
        before_of = self.breaks_before
        target, service = visit.location, visit.service
        from_target = travel[target]
        limit, floor = windows[-1][1] + EPS, windows[0][0] - EPS
        for gap in range(begin, stop):
            free = early_end[gap]
            if free > limit:
                break  # ends only grow along the route
            there = there_of[gap]
            back = from_target[there]
            latest = latest_of[gap] - back
            chain = chain_of[gap]
            if chain < latest:
                latest = chain
            latest -= service
            if latest < floor:
                continue
            here = here_of[gap]
            row = travel[here]
            to = row[target]
            arrival = ready_of[gap] + to + before_of[gap]
            if arrival < free:
                arrival = free
            if arrival > latest + EPS:
                continue
            added = to + back - row[there]
            for low, high in windows:
                start = arrival if arrival > low else low
                top = high if high < latest else latest
                if start <= top + EPS:
                    yield gap, (low, high), start, (start if start > top else top), added

    def starts_with_started(self) -> bool:
        first = self.items[1]
        return first.visit is not None and first.visit.started

    def insert(self, gap: int, item: _Item) -> None:
        self.items.insert(gap + 1, item)
        if item.visit is not None:
            for d in range(min(len(self.load), len(item.visit.demand))):
                self.load[d] += item.visit.demand[d]
        self.refresh()

    def locations(self) -> list[int]:
        return [item.location for item in self.items[: self.end + 1] if item.kind != BREAK]

    def travel_minutes(self) -> float:
        route = self.locations()
        return sum(self.travel[a][b] for a, b in zip(route, route[1:]))

    def to_route(self) -> Route:
        """Stops at their earliest feasible times; arrival is when the technician can be on site."""
        stops, breaks = [], []
        items, travel = self.items, self.travel
        for i, item in enumerate(items):
            if item.kind == BREAK:
                breaks.append((item.break_, BreakTime(self.early[i], self.early_end[i])))
            elif item.visit is not None:  # a stop
                a = self.prev_real[i - 1]
                arrival = max(self.early_end[a] + travel[items[a].location][item.location] + self.breaks_before[i - 1], self.early_end[i - 1])
                stops.append(Stop(item.visit.id, arrival, self.early[i], self.early_end[i]))
        order = {id(b): k for k, b in enumerate(self.technician.breaks)}
        breaks.sort(key=lambda pair: order.get(id(pair[0]), 0))
        return Route(self.technician.id, tuple(stops), tuple(b for _, b in breaks), self.early_end[0], self.early[self.end], self.travel_minutes())


def eligible(technician: Technician, visit: Visit) -> bool:
    """Skills, region and pin: the static part of who may do a visit."""
    if visit.pinned_technicians and technician.id not in visit.pinned_technicians:
        return False
    if not visit.skills <= technician.skills:
        return False
    if visit.region is not None and technician.regions and visit.region not in technician.regions:
        return False
    return True


def fits_capacity(technician: Technician, visit: Visit, load: Sequence[int]) -> bool:
    """Room for the visit's demand on top of `load`; one entry per capacity dimension of the problem
    (demand entries beyond those are not capacities and are ignored)."""
    for d, used in enumerate(load):
        amount = visit.demand[d] if d < len(visit.demand) else 0
        have = technician.capacity[d] if d < len(technician.capacity) else 0
        if used + amount > have:
            return False
    return True


def base_windows(visit: Visit, now: float) -> tuple[Window, ...]:
    """Allowed start minutes before any route is considered: a pin, else the windows, clipped to now."""
    if visit.pinned_start is not None:
        return ((visit.pinned_start, visit.pinned_start),)
    windows = visit.windows or ((-INF, INF),)
    return _intersect(windows, -INF if visit.started else now, INF)


class Board:
    """All routes of a day, ready for fast insertion queries; `apply` keeps it consistent after each insertion."""

    def __init__(self, problem: Problem, plan: Plan | None = None) -> None:
        self.problem = problem
        self.travel = problem.travel
        self.by_id = {v.id: v for v in problem.visits}
        self.placed: dict[str, list[tuple[str, float, float]]] = {}  # visit id -> [(technician, start, end)]
        self.splits: dict[str, float] = {}  # follow-up visit id -> the minute its link was split at
        self.states: dict[str, RouteState] = {}
        self._who: dict[str, tuple[Visit, list[RouteState]]] = {}  # see qualified
        routes = {route.technician_id: route for route in plan.routes} if plan is not None else {}
        for route in routes.values():
            for stop in route.stops:
                self.placed.setdefault(stop.visit_id, []).append((route.technician_id, stop.start, stop.end))
        for tech in problem.technicians:
            self.states[tech.id] = self._state(tech, routes.get(tech.id))
        for state in self.states.values():
            for item in state.items:
                if item.visit is not None:
                    item.windows = self._stop_windows(item.visit, state.technician.id)
            state.refresh()

    def _state(self, tech: Technician, route: Route | None) -> RouteState:
        """Items in plan order; a break goes where the plan had it, after the return only if the plan said so."""
        items = [_Item(START, tech.start_location, ((tech.shift[0], tech.shift[0]),))]
        end = _Item(END, tech.end_location, ((-INF, tech.shift[1]),))
        breaks = [_Item(BREAK, tech.start_location, ((b.earliest, b.latest),), b.duration, break_=b) for b in tech.breaks]
        if route is None:
            items += breaks + [end]
        else:
            timed = [(stop.start, 1, _Item(STOP, self.by_id[stop.visit_id].location, (), self.by_id[stop.visit_id].service, self.by_id[stop.visit_id])) for stop in route.stops]
            after = []
            for item, planned in zip(breaks, route.breaks):
                if route.arrival is not None and planned.start >= route.arrival - EPS:
                    after.append(item)
                else:
                    timed.append((planned.start, 0, item))
            timed.sort(key=lambda entry: (entry[0], entry[1]))
            items += [item for _, _, item in timed] + [end] + after + breaks[len(route.breaks):]
        state = RouteState(tech, items, self.travel, self.problem.now, len(self.problem.capacity_names))
        for item in items:
            if item.visit is not None:
                for d in range(min(len(state.load), len(item.visit.demand))):
                    state.load[d] += item.visit.demand[d]
        return state

    # -- bounds that tie a stop to other routes -------------------------------------------------

    def _stop_windows(self, visit: Visit, technician_id: str) -> tuple[Window, ...]:
        """A planned stop's allowed starts: its windows, held by its crew and split from its linked visits.

        A linked pair is split at the predecessor's planned end (plus gap): the predecessor may not start
        later than planned and the successor not earlier than that split, so neither can break the link alone.
        """
        mine = [p for p in self.placed.get(visit.id, []) if p[0] == technician_id]
        if visit.technicians > 1 and mine:
            return ((mine[0][1], mine[0][1]),)  # crew members start together: do not move one alone
        low, high = -INF, INF
        if visit.after and visit.after in self.placed:
            low = max(end for _, _, end in self.placed[visit.after]) + visit.min_gap
        if any(succ.id in self.placed for succ in self._successors(visit.id)) and mine:
            high = mine[0][1]
        windows = _intersect(base_windows(visit, self.problem.now), low, high)
        if not windows and mine:
            windows = ((mine[0][1], mine[0][1]),)  # keep what the plan says rather than invent a conflict
        return windows

    def _successors(self, visit_id: str) -> list[Visit]:
        if not hasattr(self, "_succ"):
            self._succ: dict[str, list[Visit]] = {}
            for v in self.problem.visits:
                if v.after:
                    self._succ.setdefault(v.after, []).append(v)
        return self._succ.get(visit_id, [])

    # -- queries --------------------------------------------------------------------------------

    def reason(self, visit: Visit) -> tuple[str, str] | None:
        """Why no technician could ever take this visit, ignoring the other visits; None if someone could."""
        techs = self.problem.technicians
        if not techs:
            return NO_SKILLED_TECHNICIAN, "no technician works"
        skilled = [t for t in techs if visit.skills <= t.skills and (not visit.pinned_technicians or t.id in visit.pinned_technicians)]
        if not skilled:
            return NO_SKILLED_TECHNICIAN, f"nobody has {', '.join(sorted(visit.skills)) or 'the pinned technician'}"
        in_region = [t for t in skilled if eligible(t, visit)]
        if not in_region:
            return NO_TECHNICIAN_IN_REGION, f"no skilled technician works in {visit.region}"
        empty = [0] * len(self.problem.capacity_names)
        roomy = [t for t in in_region if fits_capacity(t, visit, empty)]
        if not roomy:
            return CAPACITY, "the load is more than any eligible vehicle carries"
        if len(roomy) < visit.technicians:
            return NOT_ENOUGH_TECHNICIANS, f"needs {visit.technicians}, only {len(roomy)} eligible"
        if visit.after and visit.after not in self.by_id:
            return PREDECESSOR_UNASSIGNED, f"linked visit {visit.after} is unknown"
        windows = base_windows(visit, self.problem.now)
        if visit.windows and all(a > b + EPS for a, b in visit.windows):
            return WINDOW_TOO_TIGHT, "every window ends before it starts"
        if not windows and visit.windows:  # clipped to now, nothing is left: too late rather than too tight
            return WINDOW_PASSED, "its last window closed before now"
        reachable = 0
        for t in roomy:
            depart = t.shift[0] if visit.started else max(t.shift[0], self.problem.now)
            start = _first_start(windows, depart + self.travel[t.start_location][visit.location])
            if start + visit.service + self.travel[visit.location][t.end_location] <= t.shift[1] + EPS:
                reachable += 1
        if reachable < visit.technicians:
            return WINDOW_TOO_TIGHT, "no window can be reached and finished inside an eligible shift"
        return None

    def options(
        self, visit: Visit, *, limit: int | None = None, per_technician: int | None = None, last_only: bool = False, among: Collection[str] | None = None
    ) -> list[SlotOption]:
        """Every feasible slot, cheapest added travel first (crew visits: the best combinations found).
        `among`: only these technicians' routes (a shortlist; None is everybody)."""
        windows = self._new_windows(visit)
        if not windows:
            return []
        candidates = self._candidates(visit)
        if among is not None:
            candidates = [state for state in candidates if state.technician.id in among]
        singles: list[SlotOption] = []
        for state in candidates:
            found = []
            first, last = self._bounds(state, visit)
            if last_only:  # after the last stop, on either side of a break that has not been taken yet
                first = max(first, state.prev_real[state.end - 1])
            for gap, window, start, latest, added in state.gaps(visit, windows, first, last):
                found.append(SlotOption((state.technician.id,), window, (self._position(state, gap),), start, latest, added, (gap,)))
            if per_technician is not None and len(found) > per_technician:
                found.sort(key=lambda o: (o.added_travel, o.earliest_start))
                found = found[:per_technician]
            singles.extend(found)
        if visit.technicians > 1:
            result = self._crews(visit, singles)
        else:
            result = singles
        result.sort(key=lambda o: (o.added_travel, o.earliest_start, o.technician_ids))
        return result[:limit] if limit is not None else result

    def best(self, visit: Visit, among: Collection[str] | None = None) -> SlotOption | None:
        if visit.technicians > 1:
            options = self.options(visit, limit=1, per_technician=3, among=among)
            return options[0] if options else None
        # The first of options(): the least added travel, then the earliest start, then the technician id
        # (the first such gap of a route), without an option object for every feasible gap.
        windows = self._new_windows(visit)
        if not windows:
            return None
        candidates = self._candidates(visit)
        if among is not None:
            candidates = [state for state in candidates if state.technician.id in among]
        key: tuple[float, float, str] | None = None
        found: tuple[RouteState, int, Window, float, float, float] | None = None
        for state in candidates:
            first, last = self._bounds(state, visit)
            tech_id = state.technician.id
            for gap, window, start, latest, added in state.gaps(visit, windows, first, last):
                if key is None or (added, start, tech_id) < key:
                    key, found = (added, start, tech_id), (state, gap, window, start, latest, added)
        if found is None:
            return None
        state, gap, window, start, latest, added = found
        return SlotOption((state.technician.id,), window, (self._position(state, gap),), start, latest, added, (gap,))

    def _times(self, visit_id: str) -> list[tuple[str, float, float]]:
        """Where a placed visit is now and its current earliest start and end, per technician."""
        out = []
        for tech_id, _, _ in self.placed.get(visit_id, []):
            state = self.states[tech_id]
            for i, item in enumerate(state.items):
                if item.visit is not None and item.visit.id == visit_id:
                    out.append((tech_id, state.early[i], state.early_end[i]))
        return out

    def _new_windows(self, visit: Visit) -> tuple[Window, ...]:
        low, high = -INF, INF
        if visit.after:
            if visit.after not in self.placed:
                return ()
            low = max(end for _, _, end in self._times(visit.after)) + visit.min_gap
        for succ in self._successors(visit.id):
            if succ.id in self.placed:
                high = min(high, min(start for _, start, _ in self._times(succ.id)) - succ.min_gap - visit.service)
        return _intersect(base_windows(visit, self.problem.now), low, high)

    def qualified(self, visit: Visit) -> list[RouteState]:
        """The routes whose technician may ever take the visit (skills, region, pin, and the same-crew
        follow-ups too): fixed for the board's life, so worked out once per visit, not once per query."""
        cached = self._who.get(visit.id)
        if cached is not None and cached[0] is visit:
            return cached[1]
        out = []
        for state in self.states.values():
            tech = state.technician
            if not eligible(tech, visit):
                continue
            if any(s.same_crew and not eligible(tech, s) for s in self._successors(visit.id)):
                continue  # whoever does this must be able to do the linked follow-up too
            out.append(state)
        self._who[visit.id] = (visit, out)
        return out

    def _candidates(self, visit: Visit) -> list[RouteState]:
        out = []
        crew_of_pred = None
        if visit.after and visit.same_crew and visit.after in self.placed:
            crew_of_pred = {tech for tech, _, _ in self.placed[visit.after]}
        taken = {t for t, _, _ in self.placed.get(visit.id, ())}
        for state in self.qualified(visit):
            tech_id = state.technician.id
            if crew_of_pred is not None and tech_id not in crew_of_pred:
                continue
            if tech_id in taken or not fits_capacity(state.technician, visit, state.load):
                continue
            out.append(state)
        return out

    def _bounds(self, state: RouteState, visit: Visit) -> tuple[int, int | None]:
        """Gap range that keeps a predecessor before and successors after the visit on the same route."""
        first, last = 0, None
        if visit.after:
            at = state.index_of(visit.after)
            if at is not None:
                first = at
        for succ in self._successors(visit.id):
            at = state.index_of(succ.id)
            if at is not None:
                last = at - 1 if last is None else min(last, at - 1)
        return first, last

    @staticmethod
    def _position(state: RouteState, gap: int) -> int:
        position: int = state.gap_lists()[6][gap]
        return position

    def _crews(self, visit: Visit, singles: list[SlotOption]) -> list[SlotOption]:
        """Pick `technicians` different people whose feasible start ranges share a minute, cheapest first."""
        need = visit.technicians
        results: dict[tuple[tuple[str, int], ...], SlotOption] = {}  # by (technician, gap) of each member
        for t in sorted({o.earliest_start for o in singles}):
            best_per_tech: dict[str, SlotOption] = {}
            for o in singles:
                if o.earliest_start <= t + EPS and t <= o.latest_start + EPS and o.window[0] - EPS <= t <= o.window[1] + EPS:
                    tech = o.technician_ids[0]
                    if tech not in best_per_tech or o.added_travel < best_per_tech[tech].added_travel:
                        best_per_tech[tech] = o
            if len(best_per_tech) < need:
                continue
            chosen = sorted(best_per_tech.values(), key=lambda o: o.added_travel)[:need]
            key = tuple(sorted((o.technician_ids[0], o.items[0]) for o in chosen))
            option = SlotOption(
                tuple(o.technician_ids[0] for o in chosen),
                chosen[0].window,
                tuple(o.positions[0] for o in chosen),
                t,
                min(o.latest_start for o in chosen),
                sum(o.added_travel for o in chosen),
                tuple(o.items[0] for o in chosen),
            )
            if key not in results or option.added_travel < results[key].added_travel:
                results[key] = option
        return list(results.values())

    # -- changes --------------------------------------------------------------------------------

    def apply(self, visit: Visit, option: SlotOption) -> None:
        """Insert the visit as the option says; a crew starts at one fixed minute, a single visit may float."""
        self.by_id.setdefault(visit.id, visit)
        windows = ((option.earliest_start, option.earliest_start),) if len(option.technician_ids) > 1 else self._new_windows(visit)
        for tech_id, gap in zip(option.technician_ids, option.items):
            self.states[tech_id].insert(gap, _Item(STOP, visit.location, windows, visit.service, visit))
            self.placed.setdefault(visit.id, []).append((tech_id, option.earliest_start, option.earliest_start + visit.service))
        self._tie_predecessor(visit)

    def _tie_predecessor(self, visit: Visit) -> None:
        """Split the link at this visit's current earliest start: the predecessor may not slide past it."""
        if not visit.after or visit.after not in self.placed:
            return
        pred = self.by_id[visit.after]
        split = min(start for _, start, _ in self._times(visit.id))
        self.splits[visit.id] = split
        cap = split - visit.min_gap - pred.service
        for tech_id, _, _ in self.placed[visit.after]:
            state = self.states[tech_id]
            for item in state.items:
                if item.visit is not None and item.visit.id == pred.id:
                    item.windows = _intersect(item.windows, -INF, cap)
            state.refresh()

    def plan(self, unassigned: Iterable[Unassigned] = (), objective: Objective | None = None) -> Plan:
        routes = tuple(state.to_route() for state in self.states.values() if any(item.kind == STOP for item in state.items))
        travel = sum(route.travel for route in routes)
        return Plan(routes, tuple(unassigned), objective or Objective(travel, 0.0, 0.0, travel))


def slot_options(problem: Problem, plan: Plan, visit: Visit, *, limit: int | None = None) -> list[SlotOption]:
    """Feasible (technicians, window, position, start range, added travel) for a new visit, cheapest first."""
    return Board(problem, plan).options(visit, limit=limit)


def insert(problem: Problem, plan: Plan, visit: Visit, option: SlotOption) -> tuple[Problem, Plan]:
    """The problem with the visit added and the plan with it in place; other stops keep their order."""
    grown = replace(problem, visits=problem.visits + (visit,)) if visit.id not in {v.id for v in problem.visits} else problem
    board = Board(grown, plan)
    board.apply(visit, option)
    unassigned = tuple(u for u in plan.unassigned if u.visit_id != visit.id)
    new_plan = board.plan(unassigned)
    return grown, new_plan


def greedy_plan(problem: Problem) -> Plan:
    """The baseline a dispatcher would do by hand: visits in order of their earliest start, each appended to
    the end of the feasible route that adds the least driving (a nearest-feasible-technician rule)."""
    board = Board(problem)
    pending = sorted(problem.visits, key=lambda v: (base_windows(v, problem.now) or ((INF, INF),))[0][0])
    while pending:  # a follow-up waits for a later pass once its predecessor has a technician
        waiting = [v for v in pending if v.after and v.after not in board.placed and v.after in board.by_id]
        later = {v.id for v in waiting}
        for visit in pending:
            if visit.id in later:
                continue
            options = board.options(visit, limit=1, per_technician=1, last_only=True)
            if options:
                board.apply(visit, options[0])
        if len(waiting) == len(pending):
            break
        pending = waiting
    reasons = []
    for visit in problem.visits:
        if visit.id not in board.placed:
            why = board.reason(visit)
            if why is None:
                why = (PREDECESSOR_UNASSIGNED, f"{visit.after} is not planned") if visit.after and visit.after not in board.placed else (NO_ROOM, "no route had room at its end")
            reasons.append(Unassigned(visit.id, *why))
    return board.plan(reasons)
