"""The reports' read model: the facts of a period's visits, problem reports and repeat jobs, in four batched queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.sql import ColumnElement

from domain.kpis import ExceptionFact, RepeatJob, VisitFact
from storage import tables as t
from storage.repository import Store

# the timeline's stamps a visit's figures are read from
STAMPS = ("OfferMade", "OffersBroadcast", "VisitAccepted", "VisitCheckedIn", "VisitCompleted", "ReturnVisitNeeded")


@dataclass(frozen=True)
class ReportFacts:
    """Everything one report is computed from: frozen, handed to the pure KPI functions and the pages."""

    first: date
    last: date
    visits: tuple[VisitFact, ...]
    exceptions: tuple[ExceptionFact, ...]
    repeats: tuple[RepeatJob, ...]


def local_bounds(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The period's first and last local days as [start, end) moments."""
    return datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz)


def _region_rule(regions: frozenset[str] | None) -> ColumnElement[bool]:
    """The region rule in SQL: every region, or only those (none at all for an empty set)."""
    if regions is None:
        return t.jobs.c.region.is_not(None)
    return t.jobs.c.region.in_(sorted(regions))


class ReportStore:
    def __init__(self, store: Store) -> None:
        self.session = store.session

    async def facts(self, first: date, last: date, *, tz: tzinfo, regions: frozenset[str] | None, first_time_fix_days: int) -> ReportFacts:
        """Visits with a slot in the period (cancelled ones left out), their stamps and ratings; problem reports raised in
        the period; later repair jobs of the same customers up to ``first_time_fix_days`` after it."""
        start, end = local_bounds(first, last, tz)
        v, j = t.visits, t.jobs
        in_scope = and_(v.c.slot_start >= start, v.c.slot_start < end, v.c.status != "cancelled", _region_rule(regions))
        follow_up = t.visits.alias("follow_up")
        visit_rows = (await self.session.execute(
            select(v.c.id, v.c.job_id, v.c.kind, v.c.status, v.c.slot_start, v.c.slot_end, v.c.technician_id,
                   j.c.region, j.c.product_category, j.c.customer_id, t.technicians.c.name.label("technician"),
                   t.ratings.c.score,
                   exists().where(follow_up.c.follow_up_of_visit_id == v.c.id).label("followed_up"))
            .select_from(v.join(j, j.c.id == v.c.job_id)
                         .outerjoin(t.technicians, t.technicians.c.id == v.c.technician_id)
                         .outerjoin(t.ratings, t.ratings.c.visit_id == v.c.id))
            .where(in_scope).order_by(v.c.id)
        )).mappings().all()
        # the timeline is indexed by job: joining on it (not a list of ids) keeps one statement for any period
        e = t.domain_events
        stamp_rows = (await self.session.execute(
            select(e.c.visit_id, e.c.type, e.c.occurred_at)
            .select_from(e.join(v, and_(v.c.job_id == e.c.job_id, v.c.id == e.c.visit_id)).join(j, j.c.id == v.c.job_id))
            .where(in_scope, e.c.type.in_(STAMPS)).order_by(e.c.id)
        )).all()
        stamps: dict[int, list[tuple[str, datetime]]] = {}
        for visit_id, kind, at in stamp_rows:
            stamps.setdefault(visit_id, []).append((kind, at))
        p = t.problem_reports
        exception_rows = (await self.session.execute(
            select(p.c.reason, p.c.created_at, p.c.technician_id, t.technicians.c.name.label("technician"), j.c.region, j.c.product_category)
            .select_from(p.join(v, v.c.id == p.c.visit_id).join(j, j.c.id == v.c.job_id)
                         .outerjoin(t.technicians, t.technicians.c.id == p.c.technician_id))
            .where(p.c.created_at >= start, p.c.created_at < end, _region_rule(regions)).order_by(p.c.id)
        )).mappings().all()
        later = t.jobs.alias("later")
        repair = t.visits.alias("repair")
        customers = select(j.c.customer_id).select_from(v.join(j, j.c.id == v.c.job_id)).where(in_scope)
        repeat_rows = (await self.session.execute(
            select(later.c.id, later.c.customer_id, later.c.product_category, later.c.created_at)
            .where(later.c.customer_id.in_(customers), later.c.created_at >= start,
                   later.c.created_at < end + timedelta(days=first_time_fix_days),
                   exists().where(repair.c.job_id == later.c.id, repair.c.kind == "repair"))
            .order_by(later.c.id)
        )).all()
        return ReportFacts(
            first=first, last=last,
            visits=tuple(_visit(row, stamps.get(row["id"], []), tz) for row in visit_rows),
            exceptions=tuple(
                ExceptionFact(reason=row["reason"], day=row["created_at"].astimezone(tz).date(), region=row["region"],
                              category=row["product_category"], technician_id=row["technician_id"], technician=row["technician"] or "")
                for row in exception_rows),
            repeats=tuple(RepeatJob(job_id=r[0], customer_id=r[1], category=r[2], created_at=r[3]) for r in repeat_rows),
        )

    async def report_groups(self) -> list[dict[str, Any]]:
        """The managers' groups (dispatch groups of purpose "reports") with the chats bound to them, in one statement."""
        g, b = t.dispatch_groups, t.chat_bindings
        rows = (await self.session.execute(
            select(g.c.id, g.c.name, g.c.region, g.c.language, b.c.platform, b.c.bot, b.c.chat_id, b.c.language.label("chat_language"))
            .select_from(g.join(b, and_(b.c.subject_kind == "group", b.c.subject_id == g.c.id)))
            .where(g.c.purpose == "reports", b.c.undeliverable_since.is_(None)).order_by(g.c.id, b.c.id)
        )).mappings().all()
        return [dict(row) for row in rows]


def _visit(row: Any, stamps: Sequence[tuple[str, datetime]], tz: tzinfo) -> VisitFact:
    """A visit's facts from its row and its stamps in timeline order: the accepted offer is the last one before the
    (last) acceptance, the check-in the first, the end the last completion or return."""
    offered = accepted = checked_in = ended = None
    last_offer = None
    for kind, at in stamps:
        if kind in ("OfferMade", "OffersBroadcast"):
            last_offer = at
        elif kind == "VisitAccepted":
            accepted, offered = at, last_offer
        elif kind == "VisitCheckedIn" and checked_in is None:
            checked_in = at
        elif kind in ("VisitCompleted", "ReturnVisitNeeded"):
            ended = at
    return VisitFact(
        visit_id=row["id"], job_id=row["job_id"], kind=row["kind"], status=row["status"],
        day=row["slot_start"].astimezone(tz).date(), region=row["region"], category=row["product_category"],
        customer_id=row["customer_id"], technician_id=row["technician_id"], technician=row["technician"] or "",
        slot_end=row["slot_end"], offered_at=offered, accepted_at=accepted, checked_in_at=checked_in,
        completed_at=ended, followed_up=bool(row["followed_up"]), score=row["score"],
    )
