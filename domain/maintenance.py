"""Preventive maintenance plans, pure: the recurrence (an iCalendar RRULE), which inspections fall due when, the plan
period a day belongs to, and the inspection report of a period from its facts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from dateutil.rrule import rrule, rrulestr

from domain.errors import InvalidInput

MAX_RULE = 200  # characters of an RRULE
MAX_NAME = 200
MAX_LEAD_DAYS = 90  # inspections are created at most this long before their day
MAX_DEVICES = 500  # devices one plan names
MAX_TEAM = 12  # technicians one plan's team names (offered together, like a grab offer)
DONE_STATUSES = frozenset({"completed", "confirmed"})  # the visit's work is finished (confirmed or awaiting it)
FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}  # hourly and finer are not maintenance
HORIZON_YEARS = 5  # a rule is looked at this far ahead, no further (an unbounded rule stays cheap)
MAX_PER_CALL = 400  # occurrences one question may return (a daily rule over a long period is cut here)
RULE_TEXT = re.compile(r"^(RRULE:)?[A-Z]+=[A-Z0-9,;=+\-]+$")


@dataclass(frozen=True)
class Recurrence:
    """When a plan's inspections fall: an RRULE from a first day, as dates in the shop's own calendar."""

    rule: str
    starts_on: date

    def __post_init__(self) -> None:
        # refuse a bad rule when the plan is made, not when it fires; and one that never falls (BYMONTHDAY=40)
        first = _parsed(self.rule, self.starts_on).after(_midnight(self.starts_on), inc=True)
        if first is None or first.date() > self.starts_on + timedelta(days=366 * HORIZON_YEARS):
            raise InvalidInput("plan_rule_invalid")

    def between(self, first: date, last: date) -> list[date]:
        """The days in [first, last], at most MAX_PER_CALL of them."""
        if last < first:
            return []
        found = _parsed(self.rule, self.starts_on).between(_midnight(first), _midnight(last), inc=True)
        return [moment.date() for moment in found[:MAX_PER_CALL]]

    def after(self, day: date) -> date | None:
        """The first inspection day strictly after ``day`` (within the horizon), if any."""
        moment: datetime | None = _parsed(self.rule, self.starts_on).after(_midnight(day), inc=False)
        if moment is None or moment.date() > self.starts_on + timedelta(days=366 * HORIZON_YEARS):
            return None
        return moment.date()

    def period_of(self, day: date) -> tuple[date, date] | None:
        """The plan period ``day`` lies in: from the inspection day on or before it to the day before the next one
        (or the horizon's end); None before the first inspection."""
        rule = _parsed(self.rule, self.starts_on)
        start = rule.before(_midnight(day), inc=True)
        if start is None:
            return None
        following = rule.after(_midnight(day), inc=False)
        end = following.date() - timedelta(days=1) if following is not None else self.starts_on + timedelta(days=366 * HORIZON_YEARS)
        return start.date(), end


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _parsed(rule: str, starts_on: date) -> rrule:
    text = rule.strip().upper()
    if not text or len(text) > MAX_RULE or not RULE_TEXT.match(text) or "DTSTART" in text:
        raise InvalidInput("plan_rule_invalid")
    try:
        parsed = rrulestr(text, dtstart=_midnight(starts_on))
    except (ValueError, TypeError):
        raise InvalidInput("plan_rule_invalid") from None
    frequency = re.search(r"(?:^|[:;])FREQ=([A-Z]+)", text)
    if not isinstance(parsed, rrule) or frequency is None or frequency.group(1) not in FREQUENCIES:
        raise InvalidInput("plan_rule_frequency")
    return parsed


def due(recurrence: Recurrence, *, created_through: date | None, today: date, lead_days: int) -> list[date]:
    """Inspection days that should exist by ``today``: those up to ``lead_days`` ahead, after the last one created
    (never before today: a plan made mid-period starts with the next inspection, not with overdue ones)."""
    first = max(today, created_through + timedelta(days=1)) if created_through else today
    return recurrence.between(first, today + timedelta(days=lead_days))


def next_generation(recurrence: Recurrence, *, created_through: date | None, today: date, lead_days: int) -> date | None:
    """The day the next inspection after those created should be created (its day minus the lead), if any."""
    after = max(created_through or today - timedelta(days=1), today + timedelta(days=lead_days))
    following = recurrence.after(after)
    return None if following is None else max(today, following - timedelta(days=lead_days))


@dataclass(frozen=True)
class PlanSpec:
    """What a shop asks for: a name, where (a site and optionally only some of its devices), the recurrence, the lead
    time, who does it (a technician, a team offered together, or neither: automatic dispatch) and who reviews the
    reports."""

    name: str
    site_id: int
    recurrence: Recurrence
    lead_days: int = 14
    device_ids: tuple[int, ...] = ()  # none: every active device of the site
    technician_id: int | None = None  # none: dispatched like any other visit
    reviewer_dispatcher_id: int | None = None
    duration_minutes: int | None = None
    team_ids: tuple[int, ...] = ()  # none: no team

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > MAX_NAME:
            raise InvalidInput("plan_name_invalid")
        if not 0 <= self.lead_days <= MAX_LEAD_DAYS:
            raise InvalidInput("plan_lead_invalid")
        if len(self.device_ids) > MAX_DEVICES or len(set(self.device_ids)) != len(self.device_ids):
            raise InvalidInput("plan_devices_invalid")
        if self.duration_minutes is not None and not 10 <= self.duration_minutes <= 600:
            raise InvalidInput("plan_duration_invalid")
        if len(self.team_ids) > MAX_TEAM or len(set(self.team_ids)) != len(self.team_ids) or any(i < 1 for i in self.team_ids):
            raise InvalidInput("plan_team_invalid")
        if self.team_ids and self.technician_id is not None:
            raise InvalidInput("plan_assignee_twice")  # one technician or a team: which one would be asked is unclear

    @property
    def assignees(self) -> tuple[int, ...]:
        """Whom the plan's inspections go to first, in order; none: automatic dispatch."""
        return (self.technician_id,) if self.technician_id is not None else self.team_ids


# --- the inspection report of one period --------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectionFact:
    """One inspection the plan created, as it stands: its day, visit state, when it was done, by whom, what was found."""

    occurs_on: date
    job_id: int
    visit_id: int
    status: str
    technician: str | None = None
    completed_at: datetime | None = None
    findings: tuple[str, ...] = ()  # checklist answers and problems reported, as text
    photos: int = 0


@dataclass(frozen=True)
class ReportLine:
    occurs_on: date
    job_id: int
    visit_id: int
    state: str  # done | overdue | planned | cancelled
    technician: str | None
    completed_at: datetime | None
    findings: tuple[str, ...]
    photos: int


@dataclass(frozen=True)
class InspectionReport:
    period: tuple[date, date]
    devices: tuple[str, ...]
    lines: tuple[ReportLine, ...] = field(default_factory=tuple)

    @property
    def done(self) -> int:
        return sum(1 for line in self.lines if line.state == "done")

    @property
    def overdue(self) -> int:
        return sum(1 for line in self.lines if line.state == "overdue")

    @property
    def finished(self) -> bool:
        """Every inspection of the period is done or called off, and at least one was done: the reviewer's moment."""
        return self.done > 0 and all(line.state in ("done", "cancelled") for line in self.lines)


def report(period: tuple[date, date], devices: Sequence[str], facts: Iterable[InspectionFact], today: date) -> InspectionReport:
    """What was inspected in the period, what was found, and what is overdue (its day passed and it is not done)."""
    lines = []
    for fact in sorted(facts, key=lambda f: (f.occurs_on, f.visit_id)):
        if not period[0] <= fact.occurs_on <= period[1]:
            continue
        if fact.status in DONE_STATUSES:
            state = "done"
        elif fact.status == "cancelled":
            state = "cancelled"
        elif fact.occurs_on < today:
            state = "overdue"
        else:
            state = "planned"
        lines.append(ReportLine(fact.occurs_on, fact.job_id, fact.visit_id, state, fact.technician, fact.completed_at, fact.findings, fact.photos))
    return InspectionReport(period, tuple(devices), tuple(lines))
