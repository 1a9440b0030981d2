"""Read model of the dispatch board: one day's visits, technicians, actual stamps, open problems and the queue, in a few
batched statements, handed out as frozen snapshots for rendering (no lazy loading, no query per visit)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.access import region_allowed
from storage import tables as t

# a stage's SLA clock runs while the visit is in one of these states; a tier reached then puts the visit at risk
SLA_OPEN = {"accept": ("booked",), "contact": ("accepted",), "arrival": ("accepted", "en_route"), "completion": ("on_site", "in_progress")}
STAMPS = ("VisitCheckedIn", "VisitCompleted", "SlaTierReached", "CustomerContacted", "NoSlotFits", "BookingOverdue")
UNBOOKED_SHOWN = 30  # visits without a time (any day) the queue lists, oldest first
FINISHED = ("completed", "confirmed", "cancelled", "return_needed")


@dataclass(frozen=True)
class BoardVisit:
    id: int
    job_id: int
    kind: str
    status: str
    technician_id: int | None
    crew_ids: tuple[int, ...]
    slot_start: datetime | None
    slot_end: datetime | None
    planned_start: datetime | None
    duration_minutes: int
    declined: int  # how many technicians declined or handed it back
    region: str
    lat: float
    lon: float
    address: str
    product: str
    customer: str
    urgent: bool
    checked_in_at: datetime | None = None
    completed_at: datetime | None = None
    sla_stage: str | None = None  # the stage whose warning tier was reached while it still runs
    sla_tier: int = 0
    open_reports: tuple[tuple[int, str], ...] = ()  # (problem report id, reason) still open
    no_slot_fits: bool = False

    @property
    def start(self) -> datetime | None:
        """Where the visit sits on the timeline: its planned start, else the start of its booked window."""
        return self.planned_start or self.slot_start

    @property
    def at_risk(self) -> bool:
        return self.status not in FINISHED and (self.sla_tier > 0 or bool(self.open_reports) or self.status == "on_hold")


@dataclass(frozen=True)
class BoardTechnician:
    id: int
    name: str
    roles: tuple[str, ...]
    regions: tuple[str, ...]
    on_duty: bool
    last_lat: float | None
    last_lon: float | None
    last_seen_at: datetime | None
    working_hours: dict[str, Any]


@dataclass(frozen=True)
class BoardDay:
    visits: tuple[BoardVisit, ...]
    technicians: tuple[BoardTechnician, ...]
    unbooked: tuple[BoardVisit, ...]  # visits waiting for a time (no day of their own), oldest first
    version: str  # what /board/changes compares: the latest timeline event and position


def _visit_query(regions: frozenset[str] | None) -> Select[Any]:
    v, j, cu = t.visits.c, t.jobs.c, t.customers.c
    # the two JSON lists come as text, decoded only when not empty: most visits have neither, and decoding a thousand
    # empty lists was a good part of a big board's time
    query = (select(v.id, v.job_id, v.kind, v.status, v.technician_id, cast(v.crew_ids, Text).label("crew_ids"), v.slot_start, v.slot_end,
                    v.planned_start, v.duration_minutes, cast(v.declined_by, Text).label("declined_by"), j.region, j.lat, j.lon, j.address_text, j.product_name, j.priority, cu.name)
             .select_from(t.visits.join(t.jobs, v.job_id == j.id).join(t.customers, j.customer_id == cu.id)))
    if regions is not None:
        query = query.where(j.region.in_(sorted(regions)))
    return query


def _listed(stored: str | None) -> list[Any]:
    if stored is None or stored in ("[]", "null", ""):
        return []
    found = json.loads(stored)
    return found if isinstance(found, list) else []


def _visit(row: Any) -> BoardVisit:
    return BoardVisit(
        id=row.id, job_id=row.job_id, kind=row.kind, status=row.status, technician_id=row.technician_id,
        crew_ids=tuple(int(i) for i in _listed(row.crew_ids)), slot_start=row.slot_start, slot_end=row.slot_end,
        planned_start=row.planned_start, duration_minutes=row.duration_minutes, declined=len(_listed(row.declined_by)),
        region=row.region, lat=row.lat, lon=row.lon, address=row.address_text, product=row.product_name, customer=row.name,
        urgent=row.priority == "urgent",
    )


async def _facts(session: AsyncSession, visit_ids: Any, job_ids: Any) -> tuple[dict[int, dict[str, Any]], dict[int, list[tuple[int, str]]]]:
    """Stamps and SLA tiers from the timeline, and open problem reports, of the visits ``visit_ids`` (a subquery)."""
    e, p = t.domain_events.c, t.problem_reports.c
    facts: dict[int, dict[str, Any]] = {}
    # job_id is the timeline's index: narrow by it first, then to the visits
    rows = await session.execute(
        select(e.visit_id, e.type, cast(e.data, Text).label("data"), e.occurred_at)
        .where(e.job_id.in_(job_ids), e.visit_id.in_(visit_ids), e.type.in_(STAMPS)).order_by(e.id))
    for row in rows:
        got = facts.setdefault(row.visit_id, {"tiers": {}})
        if row.type == "VisitCheckedIn":
            got["checked_in_at"] = row.occurred_at
            got["tiers"].pop("arrival", None)  # arrived: that stage is over
        elif row.type == "VisitCompleted":
            got["completed_at"] = row.occurred_at
        elif row.type == "SlaTierReached":
            data = json.loads(row.data) if row.data else {}  # only these events' data is read: decoded here
            stage = str(data.get("stage", ""))
            got["tiers"][stage] = max(int(data.get("tier", 0)), got["tiers"].get(stage, 0))
        elif row.type == "CustomerContacted":
            got["tiers"].pop("contact", None)  # the contact stage is over
        elif row.type in ("NoSlotFits", "BookingOverdue"):
            got["no_slot"] = True
    reports: dict[int, list[tuple[int, str]]] = {}
    for report in await session.execute(select(p.id, p.visit_id, p.reason).where(p.visit_id.in_(visit_ids), p.status == "open").order_by(p.id)):
        reports.setdefault(report.visit_id, []).append((report.id, report.reason))
    return facts, reports


def _with_facts(visit: BoardVisit, facts: dict[int, dict[str, Any]], reports: dict[int, list[tuple[int, str]]]) -> BoardVisit:
    got = facts.get(visit.id, {})
    stage, tier = None, 0
    for name, reached in got.get("tiers", {}).items():
        if visit.status in SLA_OPEN.get(name, ()) and reached > tier:
            stage, tier = name, reached
    return BoardVisit(**{**visit.__dict__, "checked_in_at": got.get("checked_in_at"), "completed_at": got.get("completed_at"),
                         "sla_stage": stage, "sla_tier": tier, "open_reports": tuple(reports.get(visit.id, ())),
                         "no_slot_fits": bool(got.get("no_slot"))})


async def board_day(session: AsyncSession, start: datetime, end: datetime, regions: frozenset[str] | None) -> BoardDay:
    """The visits booked in [start, end) of the viewer's ``regions`` (None: every region) with their stamps and problems, the
    technicians working in those regions, and the visits of those regions still waiting for a time."""
    v, j = t.visits.c, t.jobs.c
    in_day = and_(v.slot_start >= start, v.slot_start < end)
    day_rows = (await session.execute(_visit_query(regions).where(in_day).order_by(v.slot_start, v.id))).all()
    unbooked_rows = (await session.execute(
        _visit_query(regions).where(v.status == "created", v.slot_start.is_(None), j.status == "open").order_by(v.id).limit(UNBOOKED_SHOWN))).all()
    visits = [_visit(r) for r in day_rows]
    unbooked = [_visit(r) for r in unbooked_rows]
    ids = [x.id for x in visits] + [x.id for x in unbooked]
    if ids:
        day_ids = select(v.id).select_from(t.visits.join(t.jobs, v.job_id == j.id)).where(in_day)
        day_jobs = select(v.job_id).where(in_day)
        if regions is not None:
            day_ids = day_ids.where(j.region.in_(sorted(regions)))
        facts, reports = await _facts(session, day_ids, day_jobs)
        if unbooked:  # few: named one by one
            more_facts, more_reports = await _facts(session, [x.id for x in unbooked], sorted({x.job_id for x in unbooked}))
            facts.update(more_facts)
            reports.update(more_reports)
        visits = [_with_facts(x, facts, reports) for x in visits]
        unbooked = [_with_facts(x, facts, reports) for x in unbooked]
    tc = t.technicians.c
    people = []
    on_board = {x.technician_id for x in visits} | {c for x in visits for c in x.crew_ids}
    for row in await session.execute(select(tc.id, tc.name, tc.roles, tc.regions, tc.on_duty, tc.last_lat, tc.last_lon, tc.last_seen_at,
                                            tc.working_hours).order_by(tc.name, tc.id)):
        theirs = tuple(str(r) for r in row.regions or ())
        if row.id in on_board or (row.on_duty and any(region_allowed(regions, r) for r in theirs)):
            people.append(BoardTechnician(row.id, row.name, tuple(row.roles or ()), theirs, bool(row.on_duty), row.last_lat, row.last_lon,
                                          row.last_seen_at, dict(row.working_hours or {})))
    return BoardDay(tuple(visits), tuple(people), tuple(unbooked), await board_version(session))


async def board_version(session: AsyncSession) -> str:
    """A cheap fingerprint of "anything changed": the newest timeline event and the newest position shared. Two aggregate
    reads over indexed columns; the board's poller asks for it and reloads its parts only when it moves."""
    latest = (await session.execute(select(func.max(t.domain_events.c.id)))).scalar() or 0
    seen = (await session.execute(select(func.max(t.technicians.c.last_seen_at)))).scalar()
    return f"{latest}-{int(seen.timestamp()) if seen else 0}"


async def visit_of_board(session: AsyncSession, visit_id: int) -> BoardVisit | None:
    """One visit as the board shows it (for its action page), whatever its region: the caller applies the region rule."""
    row = (await session.execute(_visit_query(None).where(t.visits.c.id == visit_id))).first()
    if row is None:
        return None
    visit = _visit(row)
    facts, reports = await _facts(session, [visit_id], [visit.job_id])
    return _with_facts(visit, facts, reports)
