"""The routing problem and plan as frozen dataclasses: minutes from a reference instant, locations by matrix index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

Window = tuple[float, float]  # earliest and latest *start* of service, minutes from the reference instant


@dataclass(frozen=True)
class Visit:
    """One stop to make. Windows bound the start of service (as for a promised arrival window)."""

    id: str
    location: int  # row/column in the travel matrix
    service: float = 0.0  # minutes on site
    windows: tuple[Window, ...] = ()  # empty: any time inside the technician's shift
    demand: tuple[int, ...] = ()  # one amount per Problem.capacity_names entry
    skills: frozenset[str] = frozenset()  # all of them are required
    region: str | None = None
    technicians: int = 1  # crew size; every member starts at the same minute
    priority: int = 1  # multiplies the penalty for leaving it out
    penalty: float | None = None  # minutes of travel worth serving it; None means must-do
    pinned_technicians: tuple[str, ...] = ()  # only these technicians (one per crew member)
    pinned_start: float | None = None  # fixed start minute (an appointment made by hand)
    started: bool = False  # already under way: stays first on its pinned technician's route
    after: str | None = None  # the linked predecessor visit (delivery before installation)
    min_gap: float = 0.0  # minutes from the end of the predecessor to the start of this one
    same_crew: bool = False  # the predecessor's technician must do this one too


@dataclass(frozen=True)
class Break:
    """A break of fixed length whose start may float between two minutes."""

    earliest: float
    latest: float
    duration: float


@dataclass(frozen=True)
class Technician:
    id: str
    start_location: int
    end_location: int
    shift: Window  # earliest departure, latest return
    breaks: tuple[Break, ...] = ()
    skills: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()  # empty: works everywhere
    capacity: tuple[int, ...] = ()  # one amount per Problem.capacity_names entry


@dataclass(frozen=True)
class Problem:
    visits: tuple[Visit, ...]
    technicians: tuple[Technician, ...]
    travel: Sequence[Sequence[float]]  # minutes between matrix locations; not copied, treat as read-only
    now: float = 0.0  # nothing that has not started may start before this minute
    capacity_names: tuple[str, ...] = ()
    fairness_weight: float = 0.0  # cost per minute of work above an even share of the service minutes
    must_penalty: float = 100_000.0  # minutes a must-do visit is worth; large so it is dropped only when impossible
    resolution: int = 60  # solver steps per minute (integers inside OR-Tools)

    def leave_out_cost(self, visit: Visit) -> float:
        """Minutes-equivalent of not serving the visit: its own penalty, or the must-do one (ten times for work under way)."""
        base = self.must_penalty * (10 if visit.started else 1) if visit.penalty is None else visit.penalty
        return base * max(1, visit.priority)

    def visit(self, visit_id: str) -> Visit:
        for visit in self.visits:
            if visit.id == visit_id:
                return visit
        raise KeyError(visit_id)

    def technician(self, technician_id: str) -> Technician:
        for technician in self.technicians:
            if technician.id == technician_id:
                return technician
        raise KeyError(technician_id)


@dataclass(frozen=True)
class Stop:
    visit_id: str
    arrival: float
    start: float
    end: float


@dataclass(frozen=True)
class BreakTime:
    start: float
    end: float


@dataclass(frozen=True)
class Route:
    technician_id: str
    stops: tuple[Stop, ...]
    breaks: tuple[BreakTime, ...] = ()
    departure: float | None = None  # leaves the start location
    arrival: float | None = None  # back at the end location
    travel: float = 0.0  # minutes driven


# Why a visit was left out. Codes are stable (they end up in chat messages and the API); detail is for people.
NO_SKILLED_TECHNICIAN = "no_skilled_technician"
NO_TECHNICIAN_IN_REGION = "no_technician_in_region"
NOT_ENOUGH_TECHNICIANS = "not_enough_technicians"
WINDOW_TOO_TIGHT = "window_too_tight"
WINDOW_PASSED = "window_passed"  # every window closed before now
CAPACITY = "capacity"
PREDECESSOR_UNASSIGNED = "predecessor_unassigned"
NO_ROOM = "no_room_in_routes"
NOT_WORTH_IT = "optional_not_worth_it"
TIME_LIMIT = "time_limit"  # the planning time ran out before the visit was tried (a day of thousands)


@dataclass(frozen=True)
class Unassigned:
    visit_id: str
    reason: str
    detail: str = ""


# Why a technician was left out of a plan: OR-Tools cannot even start a route whose start window is empty.
SHIFT_OVER = "shift_over"  # nothing left of the shift after now
SHIFT_EMPTY = "shift_empty"  # the shift ends before it starts


@dataclass(frozen=True)
class Unavailable:
    technician_id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Objective:
    travel: float  # minutes driven by all technicians
    penalty: float  # minutes-equivalent of the visits left out
    fairness: float  # minutes-equivalent of the uneven load term
    total: float


@dataclass(frozen=True)
class Plan:
    routes: tuple[Route, ...]
    unassigned: tuple[Unassigned, ...]
    objective: Objective
    status: str = ""  # the solver's status, for logs
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict, compare=False)  # counters for logs and benchmarks
    unavailable: tuple[Unavailable, ...] = ()  # technicians left out, with the reason

    def route_of(self, technician_id: str) -> Route | None:
        for route in self.routes:
            if route.technician_id == technician_id:
                return route
        return None
