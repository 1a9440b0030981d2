"""Key figures of the service as pure functions over visit and problem-report facts: on time, first-time fix, CSAT, times."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median
from typing import TypeVar

# a visit that ended in one of these counts for first-time fix (a return visit needed is the plainest failure)
ENDED = frozenset({"completed", "confirmed", "return_needed"})
DONE = frozenset({"completed", "confirmed"})
GOOD_SCORE = 4  # CSAT counts ratings of 4 and 5 as satisfied
DEFAULT_FIRST_TIME_FIX_DAYS = 30
MAX_PERIOD_DAYS = 366  # the longest period a report covers: a year, by month

Fact = TypeVar("Fact")
K = TypeVar("K")


class Grouping(enum.StrEnum):
    TECHNICIAN = "technician"
    REGION = "region"
    CATEGORY = "category"


class Bucket(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class VisitFact:
    """One visit as the report sees it: where and whose it was, its slot, and when its steps were stamped (UTC, aware)."""

    visit_id: int
    job_id: int
    kind: str
    status: str
    day: date  # the shop's local day of its slot: the day the visit belongs to
    region: str
    category: str
    customer_id: int
    technician_id: int | None = None
    technician: str = ""
    slot_end: datetime | None = None
    offered_at: datetime | None = None  # the offer the technician accepted (the last one before the acceptance)
    accepted_at: datetime | None = None
    checked_in_at: datetime | None = None  # the first check-in
    completed_at: datetime | None = None  # when the work ended: completed, or ended needing a return visit
    followed_up: bool = False  # a return visit of it exists
    score: int | None = None  # the customer's rating


@dataclass(frozen=True)
class RepeatJob:
    """A later job of a customer for a product category with a repair visit: the device came back (first-time fix)."""

    job_id: int
    customer_id: int
    category: str
    created_at: datetime


@dataclass(frozen=True)
class ExceptionFact:
    """A problem report: its reason, the day it was raised (local), and the visit's technician, region and category."""

    reason: str
    day: date
    region: str
    category: str
    technician_id: int | None = None
    technician: str = ""


@dataclass(frozen=True)
class Ratio:
    hits: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass(frozen=True)
class Figures:
    """The figures of one set of visits (a whole period, one group or one bucket)."""

    visits: int
    done: int
    on_time: Ratio
    first_time_fix: Ratio
    ratings: int
    csat_average: float | None
    csat_good: Ratio  # share of ratings of 4–5
    accept_minutes: float | None  # median offer → accept
    accepted: int
    completion_minutes: float | None  # median check-in → work ended
    completions: int
    exceptions: int
    exceptions_by_reason: tuple[tuple[str, int], ...]


def minutes_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or end < start:
        return None  # a clock step backwards or a missing stamp: not a duration worth averaging
    return (end - start).total_seconds() / 60


def on_time(visit: VisitFact) -> bool | None:
    """Checked in by the end of the slot (the arrival deadline); None when it never checked in or had no slot."""
    if visit.checked_in_at is None or visit.slot_end is None:
        return None
    return visit.checked_in_at <= visit.slot_end


def fixed_first_time(visit: VisitFact, repeats: Sequence[RepeatJob], days: int) -> bool | None:
    """None for a visit that has not ended. Not fixed when it needed a return visit, or — for work on a product, not a
    delivery — when the same customer's job for the same product category with a repair came within ``days`` after."""
    if visit.status not in ENDED:
        return None
    if visit.followed_up or visit.status == "return_needed":
        return False
    if visit.kind == "delivery" or visit.completed_at is None:
        return True
    until = visit.completed_at + timedelta(days=days)
    return not any(
        r.customer_id == visit.customer_id and r.category == visit.category and r.job_id != visit.job_id
        and visit.completed_at < r.created_at <= until
        for r in repeats
    )


def figures(visits: Iterable[VisitFact], exceptions: Iterable[ExceptionFact], repeats: Sequence[RepeatJob] = (),
            *, first_time_fix_days: int = DEFAULT_FIRST_TIME_FIX_DAYS) -> Figures:
    chosen = list(visits)
    arrivals = [a for a in (on_time(v) for v in chosen) if a is not None]
    owners = _partition(repeats, lambda r: (r.customer_id, r.category))
    fixes = [f for f in (fixed_first_time(v, owners.get((v.customer_id, v.category), ()), first_time_fix_days) for v in chosen)
             if f is not None]
    scores = [v.score for v in chosen if v.score is not None]
    accepts = [m for m in (minutes_between(v.offered_at, v.accepted_at) for v in chosen) if m is not None]
    works = [m for m in (minutes_between(v.checked_in_at, v.completed_at) for v in chosen) if m is not None]
    reasons = Counter(e.reason for e in exceptions)
    return Figures(
        visits=len(chosen),
        done=sum(1 for v in chosen if v.status in DONE),
        on_time=Ratio(sum(arrivals), len(arrivals)),
        first_time_fix=Ratio(sum(fixes), len(fixes)),
        ratings=len(scores),
        csat_average=sum(scores) / len(scores) if scores else None,
        csat_good=Ratio(sum(1 for s in scores if s >= GOOD_SCORE), len(scores)),
        accept_minutes=median(accepts) if accepts else None,
        accepted=len(accepts),
        completion_minutes=median(works) if works else None,
        completions=len(works),
        exceptions=sum(reasons.values()),
        # most frequent first; ties by name, so a page and the daily text list them alike
        exceptions_by_reason=tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    )


def bucket_of(day: date, bucket: Bucket) -> date:
    """The first day of the day's bucket: itself, the Monday of its ISO week, or the first of its month."""
    if bucket is Bucket.WEEK:
        return day - timedelta(days=day.weekday())
    if bucket is Bucket.MONTH:
        return day.replace(day=1)
    return day


def group_key(grouping: Grouping) -> Callable[[VisitFact | ExceptionFact], tuple[str, str]]:
    """(key, label) of a fact's group: a technician by id (named), a region, a product category."""
    def key(fact: VisitFact | ExceptionFact) -> tuple[str, str]:
        if grouping is Grouping.TECHNICIAN:
            return (str(fact.technician_id), fact.technician or f"#{fact.technician_id}") if fact.technician_id is not None else ("", "")
        value = fact.region if grouping is Grouping.REGION else fact.category
        return value, value
    return key


def _partition(facts: Iterable[Fact], key: Callable[[Fact], K]) -> dict[K, list[Fact]]:
    parts: dict[K, list[Fact]] = {}
    for fact in facts:
        parts.setdefault(key(fact), []).append(fact)
    return parts


def by_group(visits: Sequence[VisitFact], exceptions: Sequence[ExceptionFact], repeats: Sequence[RepeatJob], grouping: Grouping,
             *, first_time_fix_days: int = DEFAULT_FIRST_TIME_FIX_DAYS) -> list[tuple[str, Figures]]:
    """Figures per group, by label; visits without a technician (never assigned) form the group labelled ""."""
    key = group_key(grouping)
    visit_parts, exception_parts = _partition(visits, key), _partition(exceptions, key)
    rows = [
        (k[1], figures(visit_parts.get(k, []), exception_parts.get(k, []), repeats, first_time_fix_days=first_time_fix_days))
        for k in {**visit_parts, **exception_parts}
    ]
    return sorted(rows, key=lambda row: (row[0] == "", row[0]))


def by_bucket(visits: Sequence[VisitFact], exceptions: Sequence[ExceptionFact], repeats: Sequence[RepeatJob], bucket: Bucket,
              *, first_time_fix_days: int = DEFAULT_FIRST_TIME_FIX_DAYS) -> list[tuple[date, Figures]]:
    """Figures per day, week or month (by its first day), oldest first; only buckets with something in them."""
    visit_parts = _partition(visits, lambda v: bucket_of(v.day, bucket))
    exception_parts = _partition(exceptions, lambda e: bucket_of(e.day, bucket))
    return [
        (start, figures(visit_parts.get(start, []), exception_parts.get(start, []), repeats, first_time_fix_days=first_time_fix_days))
        for start in sorted({*visit_parts, *exception_parts})
    ]
