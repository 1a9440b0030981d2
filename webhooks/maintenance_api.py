"""The maintenance plans API: make a plan on a site, list and stop plans, create what is due now, and read a period's
inspection report as JSON or as a CSV file."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, BeforeValidator, Field

from domain import commands as c
from domain import events as ev
from domain.errors import DomainError
from domain.maintenance import MAX_DEVICES, MAX_LEAD_DAYS, MAX_NAME, MAX_RULE, MAX_TEAM
from services import maintenance
from storage.maintenance import MaintenanceStore, PlanRow
from storage.repository import Store
from webhooks.access import PrincipalDep, needs, require_token
from webhooks.api import BODY, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, IdPath, Int, ServiceDep, StrictIn, _apply, _domain_http_error, require_json
from webhooks.devices_api import _visible_site
from webhooks.service import Service

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["maintenance"], responses={**UNAUTHORIZED, **DISABLED})
CSV_ANSWER = {200: {"content": {"application/json": {}, "text/csv": {}}, "description": "the report (format=csv: a spreadsheet file)"}}


def _iso_day(value: object) -> date:
    """Only an ISO date string (2026-12-01) within 2000–2100: not a number, which pydantic would read as seconds since 1970."""
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("give the day as YYYY-MM-DD")
    day = date.fromisoformat(value)
    if not 2000 <= day.year <= 2100:
        raise ValueError("the day must fall between 2000 and 2100")
    return day


class PlanIn(StrictIn):
    name: str = Field(min_length=1, max_length=MAX_NAME, examples=["Rooftop units, quarterly"])
    site_id: Int = Field(ge=1, le=2**31 - 1)
    rule: str = Field(min_length=1, max_length=MAX_RULE, description="an iCalendar RRULE: DAILY, WEEKLY, MONTHLY or YEARLY",
                      examples=["FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15"])
    starts_on: Annotated[date, BeforeValidator(_iso_day)] = Field(description="ISO date of the first possible inspection", examples=["2026-12-01"])
    lead_days: Int = Field(14, ge=0, le=MAX_LEAD_DAYS, description="inspections are created this many days before their day")
    device_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1, strict=True)]] = Field(
        default_factory=list, max_length=MAX_DEVICES, description="only these devices of the site; none: every active one")
    technician_id: Int | None = Field(None, ge=1, le=2**31 - 1, description="this technician is offered each inspection on its day")
    team_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1, strict=True)]] = Field(
        default_factory=list, max_length=MAX_TEAM, description="or: these technicians are offered it together, the first to accept takes it; "
        "neither: automatic dispatch. One not free that day: the usual dispatch, and the dispatchers are told")
    reviewer_dispatcher_id: Int | None = Field(None, ge=1, le=2**31 - 1, description="told when an inspection is overdue and when a period is all done")
    duration_minutes: Int | None = Field(None, ge=10, le=600)


class PlanOut(BaseModel):
    id: int
    name: str
    site_id: int
    device_ids: list[int]
    rule: str
    starts_on: date
    lead_days: int
    duration_minutes: int | None
    technician_id: int | None
    team_ids: list[int]
    assignee: Literal["technician", "team", "automatic"]
    reviewer_dispatcher_id: int | None
    created_through: date | None = Field(description="the last inspection day created so far")
    reviewed_through: date | None = Field(description="the first day of the last period its reviewer was told is all done")
    active: bool


class ReportLineOut(BaseModel):
    day: date
    job_id: int
    visit_id: int
    state: Literal["done", "overdue", "planned", "cancelled"]
    technician: str | None
    completed_at: datetime | None
    findings: list[str]
    photos: int


class ReportOut(BaseModel):
    plan_id: int
    plan: str
    site: str
    period_start: date
    period_end: date
    devices: list[str]
    done: int
    overdue: int
    lines: list[ReportLineOut]


def _out(plan: PlanRow) -> PlanOut:
    return PlanOut(**{name: getattr(plan, name) for name in PlanOut.model_fields})


async def _visible_plan(app: Service, store: Store, who: PrincipalDep, plan_id: int) -> PlanRow:
    plan = await MaintenanceStore(store).plan(plan_id)
    if plan is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "plan_not_found")
    await _visible_site(store, who, plan.site_id)
    return plan


@router.post("/maintenance-plans", response_model=PlanOut, status_code=status.HTTP_201_CREATED, responses={**BODY, **NOT_FOUND},
             dependencies=[Depends(require_json), needs("devices:write")])
async def create_plan(body: PlanIn, app: ServiceDep, who: PrincipalDep) -> PlanOut:
    """A plan on a site: its inspections are created `lead_days` before each day of the rule (those due within the lead
    time at once), each booked on its day in the first window its assignee is free and offered to them — the technician,
    or the team's free members together — else to the region's usual dispatch (the dispatchers are told); nobody free
    that day: it waits to be booked like any order's visit. The reviewer hears of overdue inspections and finished periods."""
    async with app.sessions() as session:
        await _visible_site(Store(session), who, body.site_id)
    events = await _apply(app, "api:maintenance-plan", c.CreateMaintenancePlan(
        body.name, body.site_id, body.rule, body.starts_on, body.lead_days, tuple(body.device_ids), body.technician_id,
        body.reviewer_dispatcher_id, body.duration_minutes, tuple(body.team_ids)))
    plan_id = next(e.data["plan_id"] for e in events if isinstance(e, ev.MaintenancePlanCreated))
    async with app.sessions() as session:
        plan = await MaintenanceStore(Store(session)).plan(plan_id)
    assert plan is not None
    return _out(plan)


@router.get("/maintenance-plans", response_model=list[PlanOut], dependencies=[needs("devices:read")], responses={**INVALID})
async def list_plans(app: ServiceDep, who: PrincipalDep, after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[PlanOut]:
    async with app.sessions() as session:
        store = Store(session)
        plans = await MaintenanceStore(store).plans(after=after, limit=limit)
        visible = []
        for plan in plans:
            try:
                await _visible_site(store, who, plan.site_id)
            except HTTPException:
                continue  # another region's plan is not listed
            visible.append(_out(plan))
    return visible


@router.get("/maintenance-plans/{plan_id}", response_model=PlanOut, dependencies=[needs("devices:read")], responses={**NOT_FOUND, **INVALID})
async def get_plan(plan_id: IdPath, app: ServiceDep, who: PrincipalDep) -> PlanOut:
    """One plan as the list shows it (404 when there is none, or it is on a site of a region the token does not cover)."""
    async with app.sessions() as session:
        return _out(await _visible_plan(app, Store(session), who, plan_id))


async def _on_plan(app: Service, who: PrincipalDep, plan_id: int, origin: str, command: c.Command) -> PlanOut:
    """A command about one plan the caller may see, and the plan as it stands after it."""
    async with app.sessions() as session:
        await _visible_plan(app, Store(session), who, plan_id)
    await _apply(app, f"api:{origin}:{plan_id}", command)
    async with app.sessions() as session:
        plan = await MaintenanceStore(Store(session)).plan(plan_id)
    assert plan is not None
    return _out(plan)


@router.post("/maintenance-plans/{plan_id}/generate", response_model=PlanOut, dependencies=[needs("devices:write")], responses={**NOT_FOUND, **INVALID})
async def generate_now(plan_id: IdPath, app: ServiceDep, who: PrincipalDep) -> PlanOut:
    """Create now what is due (the timer does this each morning by itself; creating twice makes nothing twice)."""
    return await _on_plan(app, who, plan_id, "maintenance-generate", c.GenerateInspections(plan_id))


@router.post("/maintenance-plans/{plan_id}/stop", response_model=PlanOut, dependencies=[needs("devices:write")], responses={**NOT_FOUND, **INVALID})
async def stop(plan_id: IdPath, app: ServiceDep, who: PrincipalDep) -> PlanOut:
    """No more inspections are created; those already created stay booked."""
    return await _on_plan(app, who, plan_id, "maintenance-stop", c.StopMaintenancePlan(plan_id))


@router.get("/maintenance-plans/{plan_id}/report", response_model=ReportOut, dependencies=[needs("devices:read")],
            responses={**NOT_FOUND, **INVALID, **CSV_ANSWER})
async def plan_report(plan_id: IdPath, app: ServiceDep, who: PrincipalDep,
                      day: Annotated[date | None, Query(description="a day of the period; default today")] = None,
                      format: Annotated[Literal["json", "csv"], Query()] = "json") -> ReportOut | Response:
    """The inspection report of the plan period `day` falls in: what was inspected, what was found, what is overdue."""
    today = app.clock.now().astimezone(app.policy.tz).date()
    async with app.sessions() as session:
        store = Store(session)
        await _visible_plan(app, store, who, plan_id)
        try:
            found = await maintenance.plan_report(store, plan_id, day, today)
        except DomainError as err:
            raise _domain_http_error(err) from err
    return report_out(found) if format == "json" else report_csv(found)


def report_out(found: maintenance.PlanReport) -> ReportOut:
    result = found.report
    return ReportOut(
        plan_id=found.plan.id, plan=found.plan.name, site=found.site.address_text + (f" · {found.site.name}" if found.site.name else ""),
        period_start=result.period[0], period_end=result.period[1], devices=list(result.devices), done=result.done, overdue=result.overdue,
        lines=[ReportLineOut(day=line.occurs_on, job_id=line.job_id, visit_id=line.visit_id, state=line.state,  # type: ignore[arg-type]
                             technician=line.technician, completed_at=line.completed_at, findings=list(line.findings), photos=line.photos)
               for line in result.lines],
    )


def report_csv(found: maintenance.PlanReport) -> Response:
    """The report as a spreadsheet file (the API's format=csv and the report page's download)."""
    out = report_out(found)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["plan", "site", "period_start", "period_end", "day", "job_id", "visit_id", "state", "technician", "completed_at", "findings", "photos"])
    for line in out.lines:
        writer.writerow([_cell(out.plan), _cell(out.site), out.period_start, out.period_end, line.day, line.job_id, line.visit_id, line.state,
                         _cell(line.technician or ""), line.completed_at.isoformat() if line.completed_at else "", _cell(" | ".join(line.findings)), line.photos])
    name = f"inspection-report-{out.plan_id}-{out.period_start.isoformat()}.csv"
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _cell(text: str) -> str:
    """A spreadsheet never runs what a technician typed: text starting like a formula is kept as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
