"""SLA rules: the allowance of each stage of a visit, and when its tiered warnings fall due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from domain.business_time import BusinessHours, add_business_minutes
from domain.policy import most_specific

STAGES = ("accept", "contact", "arrival", "completion")
# business minutes allowed when no policy says otherwise; arrival runs to the end of the booked
# window and completion to twice the visit's duration, both in plain clock time
DEFAULT_MINUTES = {"accept": 30, "contact": 120}
DEFAULT_TIERS = (50, 80, 100)


@dataclass(frozen=True)
class SlaPolicy:
    stage: str
    minutes: int | None
    tiers: tuple[int, ...] = DEFAULT_TIERS
    auto_reassign: bool = False


def policy_for(rows: list[dict[str, Any]], region: str, service_kind: str, stage: str) -> SlaPolicy:
    """The most specific configured policy for the stage, else the default."""
    staged = (row for row in rows if row["stage"] == stage)
    best = most_specific(staged, region, service_kind, lambda row: (row["region"], row["service_kind"]))
    if best is None:
        return SlaPolicy(stage, DEFAULT_MINUTES.get(stage))
    return SlaPolicy(stage, best["minutes"], tuple(sorted(int(t) for t in best["tiers"])), bool(best["auto_reassign"]))


def tier_moments(
    policy: SlaPolicy, start: datetime, hours: BusinessHours, tz: tzinfo, deadline: datetime | None = None
) -> list[tuple[int, datetime]]:
    """When each tier falls due: a share of the business-time allowance, or of the span to a fixed deadline."""
    if deadline is not None:
        span = deadline - start
        return [(tier, start + span * tier / 100) for tier in policy.tiers]
    if policy.minutes is None:
        return []
    return [(tier, add_business_minutes(start, policy.minutes * tier / 100, hours, tz)) for tier in policy.tiers]


def completion_deadline(checked_in: datetime, duration_minutes: int) -> datetime:
    return checked_in + timedelta(minutes=2 * duration_minutes)
