"""Dispatch rules: which mode applies to a visit, and how eligible technicians are ranked for it."""

from __future__ import annotations

from dataclasses import dataclass

from domain.geo import haversine_m
from domain.model import DispatchMode, DispatchRule, Job, Technician, stored_id
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
