"""Rows of maintenance plans and the inspections they created, and the facts an inspection report is made of."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from domain.maintenance import InspectionFact, PlanSpec
from storage import tables as t
from storage.repository import Store

LIST_LIMIT = 200
FOLLOW_UPS = 5  # return visits followed from an inspection to the one that carries its work on


@dataclass(frozen=True)
class PlanRow:
    id: int
    name: str
    site_id: int
    device_ids: list[int]
    rule: str
    starts_on: date
    lead_days: int
    duration_minutes: int | None
    technician_id: int | None
    reviewer_dispatcher_id: int | None
    created_through: date | None
    active: bool
    created_at: datetime
    team_ids: list[int]
    reviewed_through: date | None

    @property
    def assignees(self) -> tuple[int, ...]:
        """Whom its inspections go to first (domain.maintenance.PlanSpec.assignees); none: automatic dispatch."""
        return (self.technician_id,) if self.technician_id is not None else tuple(self.team_ids)

    @property
    def assignee(self) -> str:
        return "technician" if self.technician_id is not None else "team" if self.team_ids else "automatic"


def _plan(row: Any) -> PlanRow:
    values = {name: row[name] for name in PlanRow.__dataclass_fields__}
    values["team_ids"] = list(values["team_ids"] or [])  # plans made before 0032 have none
    return PlanRow(**values)


class MaintenanceStore:
    def __init__(self, store: Store) -> None:
        self.session = store.session

    async def add(self, spec: PlanSpec, now: datetime) -> PlanRow:
        values: dict[str, Any] = {
            "name": spec.name.strip(), "site_id": spec.site_id, "device_ids": list(spec.device_ids), "rule": spec.recurrence.rule.strip().upper(),
            "starts_on": spec.recurrence.starts_on, "lead_days": spec.lead_days, "duration_minutes": spec.duration_minutes,
            "technician_id": spec.technician_id, "reviewer_dispatcher_id": spec.reviewer_dispatcher_id, "created_through": None,
            "active": True, "created_at": now, "team_ids": list(spec.team_ids), "reviewed_through": None,
        }
        plan_id = (await self.session.execute(insert(t.maintenance_plans).values(**values).returning(t.maintenance_plans.c.id))).scalar_one()
        return _plan({"id": plan_id, **values})

    async def plan(self, plan_id: int, *, for_update: bool = False) -> PlanRow | None:
        query = select(t.maintenance_plans).where(t.maintenance_plans.c.id == plan_id)
        row = (await self.session.execute(query.with_for_update() if for_update else query)).mappings().first()
        return _plan(row) if row else None

    async def plans(self, *, after: int = 0, limit: int = LIST_LIMIT) -> list[PlanRow]:
        query = select(t.maintenance_plans).where(t.maintenance_plans.c.id > after).order_by(t.maintenance_plans.c.id).limit(limit)
        return [_plan(row) for row in (await self.session.execute(query)).mappings()]

    async def set_created_through(self, plan_id: int, day: date) -> None:
        await self.session.execute(update(t.maintenance_plans).where(t.maintenance_plans.c.id == plan_id).values(created_through=day))

    async def set_reviewed_through(self, plan_id: int, period_start: date) -> None:
        await self.session.execute(update(t.maintenance_plans).where(t.maintenance_plans.c.id == plan_id).values(reviewed_through=period_start))

    async def inspection_of_visit(self, visit_id: int) -> tuple[int, date] | None:
        """(plan id, day) of the inspection a visit is, or of the one it follows up (a return visit carries it on)."""
        for _ in range(FOLLOW_UPS):
            i = t.maintenance_inspections
            row = (await self.session.execute(select(i.c.plan_id, i.c.occurs_on).where(i.c.visit_id == visit_id))).first()
            if row is not None:
                return row.plan_id, row.occurs_on
            earlier = (await self.session.execute(select(t.visits.c.follow_up_of_visit_id).where(t.visits.c.id == visit_id))).scalar()
            if earlier is None:
                return None
            visit_id = earlier
        return None

    async def stop(self, plan_id: int) -> None:
        await self.session.execute(update(t.maintenance_plans).where(t.maintenance_plans.c.id == plan_id).values(active=False))

    async def add_inspection(self, plan_id: int, occurs_on: date, job_id: int, visit_id: int, now: datetime) -> None:
        await self.session.execute(insert(t.maintenance_inspections).values(
            plan_id=plan_id, occurs_on=occurs_on, job_id=job_id, visit_id=visit_id, created_at=now))

    async def inspection_days(self, plan_id: int) -> set[date]:
        query = select(t.maintenance_inspections.c.occurs_on).where(t.maintenance_inspections.c.plan_id == plan_id)
        return set((await self.session.execute(query)).scalars())

    async def facts(self, plan_id: int, first: date, last: date) -> list[InspectionFact]:
        """The plan's inspections of [first, last] with their visits' state, who did them, when, what was found
        (checklist answers and problems reported) and how many photos. An inspection that ended needing a return
        visit is as its follow-up stands (its findings and photos added up): a handful of queries, whatever the count."""
        i, v, tech = t.maintenance_inspections, t.visits, t.technicians
        rows = (await self.session.execute(
            select(i.c.occurs_on, i.c.job_id, i.c.visit_id, v.c.status, tech.c.name)
            .join(v, v.c.id == i.c.visit_id).outerjoin(tech, tech.c.id == v.c.technician_id)
            .where(i.c.plan_id == plan_id, i.c.occurs_on >= first, i.c.occurs_on <= last)
        )).all()
        if not rows:
            return []
        chain: dict[int, list[int]] = {row.visit_id: [row.visit_id] for row in rows}  # inspection visit -> it and its follow-ups
        latest: dict[int, tuple[str, str | None]] = {row.visit_id: (row.status, row.name) for row in rows}
        waiting = {row.visit_id: row.visit_id for row in rows if row.status == "return_needed"}  # last visit -> inspection
        for _ in range(FOLLOW_UPS):
            if not waiting:
                break
            follow_ups = (await self.session.execute(
                select(v.c.id, v.c.follow_up_of_visit_id, v.c.status, tech.c.name).outerjoin(tech, tech.c.id == v.c.technician_id)
                .where(v.c.follow_up_of_visit_id.in_(list(waiting))))).all()
            found: dict[int, int] = {}
            for follow_up in follow_ups:
                inspection = waiting[follow_up.follow_up_of_visit_id]
                chain[inspection].append(follow_up.id)
                latest[inspection] = (follow_up.status, follow_up.name)
                if follow_up.status == "return_needed":
                    found[follow_up.id] = inspection
            waiting = found
        owner = {visit_id: inspection for inspection, visits in chain.items() for visit_id in visits}
        visit_ids = list(owner)
        findings: dict[int, list[str]] = defaultdict(list)
        answers = select(t.checklist_answers.c.visit_id, t.checklist_answers.c.step_key, t.checklist_answers.c.value).where(
            t.checklist_answers.c.visit_id.in_(visit_ids)).order_by(t.checklist_answers.c.id)
        for visit_id, step, value in (await self.session.execute(answers)).all():
            findings[owner[visit_id]].append(f"{step}: {value}")
        problems = select(t.problem_reports.c.visit_id, t.problem_reports.c.reason, t.problem_reports.c.note).where(
            t.problem_reports.c.visit_id.in_(visit_ids)).order_by(t.problem_reports.c.id)
        for visit_id, reason, note in (await self.session.execute(problems)).all():
            findings[owner[visit_id]].append(f"problem {reason}" + (f": {note}" if note else ""))
        photos: dict[int, int] = defaultdict(int)
        for visit_id, count in (await self.session.execute(
                select(t.photos.c.visit_id, func.count()).where(t.photos.c.visit_id.in_(visit_ids)).group_by(t.photos.c.visit_id))).all():
            photos[owner[visit_id]] += int(count)
        done: dict[int, datetime] = {}
        for visit_id, moment in (await self.session.execute(
                select(t.domain_events.c.visit_id, func.max(t.domain_events.c.occurred_at))
                .where(t.domain_events.c.visit_id.in_(visit_ids), t.domain_events.c.type == "VisitCompleted")
                .group_by(t.domain_events.c.visit_id))).all():
            if chain[owner[visit_id]][-1] == visit_id:  # when the work was finished: the last visit's completion
                done[owner[visit_id]] = moment
        return [
            InspectionFact(row.occurs_on, row.job_id, row.visit_id, latest[row.visit_id][0], latest[row.visit_id][1], done.get(row.visit_id),
                           tuple(findings[row.visit_id]), photos[row.visit_id])
            for row in rows
        ]
