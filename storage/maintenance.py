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


def _plan(row: Any) -> PlanRow:
    return PlanRow(**{name: row[name] for name in PlanRow.__dataclass_fields__})


class MaintenanceStore:
    def __init__(self, store: Store) -> None:
        self.session = store.session

    async def add(self, spec: PlanSpec, now: datetime) -> PlanRow:
        values: dict[str, Any] = {
            "name": spec.name.strip(), "site_id": spec.site_id, "device_ids": list(spec.device_ids), "rule": spec.recurrence.rule.strip().upper(),
            "starts_on": spec.recurrence.starts_on, "lead_days": spec.lead_days, "duration_minutes": spec.duration_minutes,
            "technician_id": spec.technician_id, "reviewer_dispatcher_id": spec.reviewer_dispatcher_id, "created_through": None,
            "active": True, "created_at": now,
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
        (checklist answers and problems reported) and how many photos: four queries, whatever the count."""
        i, v, tech = t.maintenance_inspections, t.visits, t.technicians
        rows = (await self.session.execute(
            select(i.c.occurs_on, i.c.job_id, i.c.visit_id, v.c.status, tech.c.name)
            .join(v, v.c.id == i.c.visit_id).outerjoin(tech, tech.c.id == v.c.technician_id)
            .where(i.c.plan_id == plan_id, i.c.occurs_on >= first, i.c.occurs_on <= last)
        )).all()
        visit_ids = [row.visit_id for row in rows]
        if not visit_ids:
            return []
        findings: dict[int, list[str]] = defaultdict(list)
        answers = select(t.checklist_answers.c.visit_id, t.checklist_answers.c.step_key, t.checklist_answers.c.value).where(
            t.checklist_answers.c.visit_id.in_(visit_ids)).order_by(t.checklist_answers.c.id)
        for visit_id, step, value in (await self.session.execute(answers)).all():
            findings[visit_id].append(f"{step}: {value}")
        problems = select(t.problem_reports.c.visit_id, t.problem_reports.c.reason, t.problem_reports.c.note).where(
            t.problem_reports.c.visit_id.in_(visit_ids)).order_by(t.problem_reports.c.id)
        for visit_id, reason, note in (await self.session.execute(problems)).all():
            findings[visit_id].append(f"problem {reason}" + (f": {note}" if note else ""))
        photos: dict[int, int] = dict((await self.session.execute(
            select(t.photos.c.visit_id, func.count()).where(t.photos.c.visit_id.in_(visit_ids)).group_by(t.photos.c.visit_id))).all())
        done: dict[int, datetime] = dict((await self.session.execute(
            select(t.domain_events.c.visit_id, func.max(t.domain_events.c.occurred_at))
            .where(t.domain_events.c.visit_id.in_(visit_ids), t.domain_events.c.type == "VisitCompleted")
            .group_by(t.domain_events.c.visit_id))).all())
        return [
            InspectionFact(row.occurs_on, row.job_id, row.visit_id, row.status, row.name, done.get(row.visit_id),
                           tuple(findings[row.visit_id]), int(photos.get(row.visit_id, 0)))
            for row in rows
        ]
