"""Dispatch rules: which mode applies to a visit, and how eligible technicians are ranked for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from domain.geo import haversine_m
from domain.model import DispatchMode, DispatchRule, Job, Technician, Visit, stored_id
from domain.slots import Booking
from domain.policy import most_specific

DEFAULT_RULE = DispatchRule(mode=DispatchMode.AUTO.value)


def rule_for(rules: list[DispatchRule], region: str, service_kind: str) -> DispatchRule:
    """The most specific rule wins: region and kind, then region, then kind, then the catch-all."""
    return most_specific(rules, region, service_kind, lambda r: (r.region, r.service_kind)) or DEFAULT_RULE


@dataclass(frozen=True)
class Candidate:
    technician_id: int
    name: str
    distance_km: float | None
    load: int  # visits already held that day
    rating: float | None


def rank(technicians: list[Technician], job: Job, loads: dict[int, int], ratings: dict[int, float]) -> list[Candidate]:
    """Closest first, then the least loaded, then the best rated; brand specialists ahead of generalists."""
    candidates = []
    for tech in technicians:
        distance = (
            haversine_m(tech.home_lat, tech.home_lon, job.lat, job.lon) / 1000
            if tech.home_lat is not None and tech.home_lon is not None
            else None
        )
        tech_id = stored_id(tech)
        candidates.append(Candidate(tech_id, tech.name, distance, loads.get(tech_id, 0), ratings.get(tech_id)))
    by_id = {t.id: t for t in technicians}

    def key(c: Candidate) -> tuple[bool, float, float, int]:
        specialist = bool(job.brand) and f"brand:{job.brand}" in by_id[c.technician_id].skills
        distance = c.distance_km if c.distance_km is not None else float("inf")
        # a 5 km difference weighs about as much as one extra visit that day
        return (not specialist, distance / 5 + c.load, -(c.rating or 0), c.technician_id)

    return sorted(candidates, key=key)


# --- who may take a visit: the one rule, and the override a dispatcher may decide ------------------


@dataclass(frozen=True)
class Choice:
    """A skilled technician for a visit and what stands in the way at its time (nothing: free by the minutes)."""

    technician_id: int
    name: str
    conflicts: tuple[Booking, ...]  # the visits they hold overlapping this one's window
    off_shift: bool  # the window lies outside their working hours that day
    no_route: bool = False  # free by the minutes, but the driving around their other stops does not fit

    @property
    def needs_override(self) -> bool:
        return bool(self.conflicts) or self.off_shift or self.no_route


def skilled(technician: Technician, visit: Visit, job: Job) -> bool:
    """Role, product category, brand, region and on duty — and not one who declined or handed back the visit."""
    return technician.id not in visit.declined_by and technician.can_do(visit, job)


def candidates(technicians: list[Technician], visit: Visit, job: Job, bookings: list[Booking], tz: tzinfo) -> list[Choice]:
    """Everyone skilled for a booked visit, free ones first, each with the conflict an override would accept.

    The free ones are who automatic dispatch offers it to (services.handlers.candidates adds the driving check);
    the others may only be assigned by a dispatcher who confirms the conflict shown (an explicit, recorded
    override: events.ConflictOverridden)."""
    if visit.slot_start is None or visit.slot_end is None:
        return []
    start, end = visit.slot_start, visit.slot_end
    local = start.astimezone(tz)
    choices = []
    for tech in technicians:
        if not skilled(tech, visit, job):
            continue
        hours = tech.hours
        off_shift = (local.weekday() not in hours.weekdays or local.time() < hours.start
                     or end.astimezone(tz).time() > hours.end)
        conflicts = tuple(sorted(
            (b for b in bookings if b.technician_id == tech.id and b.visit_id != visit.id and b.start < end and b.end > start),
            key=lambda b: b.start,
        ))
        choices.append(Choice(stored_id(tech), tech.name, conflicts, off_shift))
    return sorted(choices, key=lambda c: (c.needs_override, len(c.conflicts), c.technician_id))
