"""Preventive maintenance on the bus: plans on a site, inspections created ahead of their day by a timer row (each day
once, however often the timer fires), booked on their day and given to the plan's technician or team (else dispatched
as usual), chased when overdue, and the inspection report of a plan period (its reviewer is told when it is complete)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from typing import Any

from domain import commands as c
from domain import events as ev
from domain import lifecycle
from domain.errors import InvalidInput, NotFound
from domain.devices import DeviceEvent
from domain.dispatch import rule_for
from domain.maintenance import DONE_STATUSES, InspectionReport, PlanSpec, Recurrence, due, next_generation, report
from domain.model import Customer, Dispatcher, Job, Offer, ServiceKind, Technician, Visit, VisitStatus, stored_id
from domain.relay import NO_JOB  # the timeline key of events about no job
from services import backoffice
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.handlers import _dispatch, candidates_for
from services.lookups import visit_of
from storage.devices import DeviceRow, DeviceStore, SiteRow
from storage.maintenance import MaintenanceStore, PlanRow
from storage.repository import Store
from storage.schedule import ScheduleStore

TIMER = "maintenance"  # one timer row per active plan: when its next inspection is to be created
SOURCE = "maintenance"  # the jobs it creates are orders of this source, "plan-<id>-<day>": made once per day
CREATE_AT = time(6, 0)  # local time the day's inspections are created (before the shop opens)


def local_today(ctx: HandlerContext) -> date:
    return ctx.now.astimezone(ctx.policy.tz).date()


async def _devices(ctx: HandlerContext, site_id: int, device_ids: tuple[int, ...] | list[int]) -> tuple[SiteRow, list[DeviceRow]]:
    store = DeviceStore(ctx.store)
    site = await store.site(site_id)
    if site is None:
        raise NotFound("site_not_found")
    if not device_ids:
        return site, await store.at_site(site_id)
    found = []
    for device_id in device_ids:
        device = await store.device(device_id)
        if device is None or device.site_id != site_id:
            raise InvalidInput("plan_device_not_at_site", device=device_id)
        if device.active:
            found.append(device)
    return site, found


async def create_plan(ctx: HandlerContext, cmd: c.CreateMaintenancePlan) -> list[ev.Event]:
    """Check the plan against what exists (site, its devices, the technician), store it and set its first timer."""
    spec = PlanSpec(cmd.name, cmd.site_id, Recurrence(cmd.rule, cmd.starts_on), cmd.lead_days, tuple(cmd.device_ids),
                    cmd.technician_id, cmd.reviewer_dispatcher_id, cmd.duration_minutes, tuple(cmd.team_ids))
    site, devices = await _devices(ctx, spec.site_id, spec.device_ids)
    if not devices:
        raise InvalidInput("plan_no_devices")
    for technician_id in spec.assignees:
        if await ctx.store.get(Technician, technician_id) is None:
            raise NotFound("technician_not_found")
    if spec.reviewer_dispatcher_id is not None and await ctx.store.get(Dispatcher, spec.reviewer_dispatcher_id) is None:
        raise NotFound("plan_reviewer_not_found")
    plan = await MaintenanceStore(ctx.store).add(spec, ctx.now)
    events: list[ev.Event] = [ev.MaintenancePlanCreated(NO_JOB, None, {"plan_id": plan.id, "site_id": site.id, "devices": [d.id for d in devices]})]
    return events + await _generate(ctx, plan)


async def generate(ctx: HandlerContext, plan_id: int) -> list[ev.Event]:
    """The plan's timer fired (or someone asked): create what is due and set the timer for the next one."""
    plan = await MaintenanceStore(ctx.store).plan(plan_id, for_update=True)
    if plan is None or not plan.active:
        return []
    return await _generate(ctx, plan)


async def on_timer(ctx: HandlerContext, plan_id: int, payload: dict[str, Any]) -> list[ev.Event]:
    """A maintenance timer fired: the plan's creation day, or the morning after an inspection's day (is it done?)."""
    visit_id = payload.get("overdue_visit_id")
    if isinstance(visit_id, int):
        return await overdue(ctx, plan_id, visit_id)
    return await generate(ctx, plan_id)


async def run_generate(ctx: HandlerContext, cmd: c.GenerateInspections) -> list[ev.Event]:
    if await MaintenanceStore(ctx.store).plan(cmd.plan_id) is None:
        raise NotFound("plan_not_found")
    return await generate(ctx, cmd.plan_id)


async def stop_plan(ctx: HandlerContext, cmd: c.StopMaintenancePlan) -> list[ev.Event]:
    plans = MaintenanceStore(ctx.store)
    if await plans.plan(cmd.plan_id) is None:
        raise NotFound("plan_not_found")
    await plans.stop(cmd.plan_id)  # its pending timer finds it stopped and does nothing
    return [ev.MaintenancePlanStopped(NO_JOB, None, {"plan_id": cmd.plan_id})]


async def _generate(ctx: HandlerContext, plan: PlanRow) -> list[ev.Event]:
    recurrence = Recurrence(plan.rule, plan.starts_on)
    today = local_today(ctx)
    plans = MaintenanceStore(ctx.store)
    made = await plans.inspection_days(plan.id)
    events: list[ev.Event] = []
    days = [day for day in due(recurrence, created_through=plan.created_through, today=today, lead_days=plan.lead_days) if day not in made]
    if days:
        site, devices = await _devices(ctx, plan.site_id, plan.device_ids)
        customer = await ctx.store.load(Customer, site.customer_id)
        for day in days:
            events += await _inspection(ctx, plan, site, devices, customer, day)
        await plans.set_created_through(plan.id, days[-1])
    created_through = days[-1] if days else plan.created_through
    following = next_generation(recurrence, created_through=created_through, today=today, lead_days=plan.lead_days)
    if following is not None:
        moment = datetime.combine(following, CREATE_AT, ctx.policy.tz)
        if moment <= ctx.now:
            moment = datetime.combine(today + timedelta(days=1), CREATE_AT, ctx.policy.tz)
        # one row per creation day: a timer fired is kept as done, and setting the same key again is a no-op
        await ScheduleStore(ctx.store).set_timer(key=f"{TIMER}:{plan.id}:{moment.date().isoformat()}", kind=TIMER, due_at=moment, now=ctx.now,
                                                 payload={"plan_id": plan.id})
    return events


async def _inspection(ctx: HandlerContext, plan: PlanRow, site: SiteRow, devices: list[DeviceRow], customer: Customer, day: date) -> list[ev.Event]:
    """One inspection job for the plan's day, made like any order (so booking, dispatch, chasing and SLA tiers apply)."""
    category = devices[0].product_category if devices else "general"
    listed = "; ".join(f"{d.product_name}" + (f" ({d.location})" if d.location else "") + (f" #{d.serial}" if d.serial else "") for d in devices)
    request = backoffice.OrderRequest(
        source=SOURCE, external_ref=f"plan-{plan.id}-{day.isoformat()}", customer_name=customer.name, customer_phone=customer.phone,
        customer_language=customer.language, address=site.address_text, lat=site.lat, lon=site.lon, region=site.region,
        product_name=plan.name[:200], product_category=category, brand=None,
        services=(backoffice.ServiceRequest(ServiceKind.INSPECTION.value, plan.duration_minutes),),
        items=tuple({"sku": f"device-{d.id}", "name": d.product_name, "qty": 1} for d in devices),
        notes=f"{plan.name} · {day.isoformat()}: {listed}"[:1000],
    )
    result = await backoffice.create_order(ctx.store, request, ctx.now, ctx.policy)
    if not result.created:
        return []  # made before (by a run that was rolled back after its job landed, or by hand): never twice
    visit = result.visits[0]
    job_id = stored_id(result.job)
    await MaintenanceStore(ctx.store).add_inspection(plan.id, day, job_id, stored_id(visit), ctx.now)
    for device in devices:
        await DeviceStore(ctx.store).record(device.id, DeviceEvent.MAINTENANCE_REQUESTED, ctx.now, job_id=job_id, visit_id=stored_id(visit), data={"plan_id": plan.id, "day": day.isoformat()})
    # the morning after its day it is looked at again: not done then, it is overdue (no visit_id on the row: an
    # inspection unbooked to be moved is still due, and its visit's timers are cancelled then)
    await ScheduleStore(ctx.store).set_timer(
        key=f"{TIMER}:overdue:{stored_id(visit)}", kind=TIMER, due_at=datetime.combine(day + timedelta(days=1), CREATE_AT, ctx.policy.tz),
        now=ctx.now, payload={"plan_id": plan.id, "overdue_visit_id": stored_id(visit), "day": day.isoformat()})
    scheduled = ev.InspectionScheduled(job_id, stored_id(visit), {"plan_id": plan.id, "day": day.isoformat(), "devices": [d.id for d in devices],
                                                                 "assignee": plan.assignee})
    return [*result.events, scheduled, *await _assign(ctx, plan, result.job, visit, day)]


async def _assign(ctx: HandlerContext, plan: PlanRow, job: Job, visit: Visit, day: date) -> list[ev.Event]:
    """Book the inspection on its day in the first window its assignee (the technician, else any of the team) is free
    and able for, and offer it to them; with no assignee, or none of them free that day, the first window anyone is free
    goes to the region's usual dispatch (and the dispatchers hear why). Nobody free all day: it stays to be booked like
    any order's visit (the customer, chased, then the dispatchers)."""
    assignees = plan.assignees
    fallback: tuple[datetime, datetime] | None = None
    for window in ctx.policy.windows:
        start, end = datetime.combine(day, window.start, ctx.policy.tz), datetime.combine(day, window.end, ctx.policy.tz)
        if start < ctx.now + ctx.policy.booking_lead:
            continue
        free = await candidates_for(ctx, visit, job, start, end)
        mine = [technician_id for technician_id in assignees if technician_id in free]
        if mine:
            booked = lifecycle.book(visit, visit.job_id, start, end, None)
            return [booked, *await _offer_to(ctx, visit, job, mine)]
        if free and fallback is None:
            fallback = (start, end)
            if not assignees:
                break
    events: list[ev.Event] = []
    if fallback is not None:
        events += [lifecycle.book(visit, visit.job_id, *fallback, None), *await _dispatch(ctx, visit, job)]
    if assignees:
        events.append(ev.InspectionAssigneeUnavailable(visit.job_id, visit.id, {
            "plan_id": plan.id, "day": day.isoformat(), "assignees": list(assignees), "outcome": "dispatched" if fallback else "unbooked"}))
    return events


async def _offer_to(ctx: HandlerContext, visit: Visit, job: Job, chosen: list[int]) -> list[ev.Event]:
    """The plan's technician gets the offer; a team's free members get it together, the first to accept wins (as a
    grab offer: nobody in time, it is dispatched automatically)."""
    for technician_id in chosen:
        await ctx.store.get(Technician, technician_id, for_update=True)  # two bookings may both have seen them free
    if len(chosen) == 1:
        return [lifecycle.offer(visit, visit.job_id, chosen[0])]
    rule = rule_for(await ctx.store.dispatch_rules(), job.region, visit.kind)
    expires = ctx.now + timedelta(minutes=rule.grab_minutes)
    offers = [await ctx.store.add(Offer(stored_id(visit), technician_id, created_at=ctx.now, expires_at=expires)) for technician_id in chosen]
    await ScheduleStore(ctx.store).set_timer(key=f"grab:{visit.id}:{offers[0].id}", kind="grab", due_at=expires, now=ctx.now, visit_id=visit.id)
    return [ev.OffersBroadcast(visit.job_id, visit.id, {"offers": [[o.id, o.technician_id] for o in offers]})]


async def overdue(ctx: HandlerContext, plan_id: int, visit_id: int) -> list[ev.Event]:
    """The morning after an inspection's day: not done (nor called off), it is overdue — its reviewer and the region's
    dispatchers hear it once (the visit's own SLA tiers have warned along the way if it was booked)."""
    found = await MaintenanceStore(ctx.store).inspection_of_visit(visit_id)
    visit = await ctx.store.get(Visit, visit_id)
    if found is None or visit is None:
        return []
    facts = [f for f in await MaintenanceStore(ctx.store).facts(plan_id, found[1], found[1]) if f.visit_id == visit_id]
    status = facts[0].status if facts else visit.status
    if status in DONE_STATUSES or status == VisitStatus.CANCELLED.value:
        return []
    return [ev.InspectionOverdue(visit.job_id, visit_id, {"plan_id": plan_id, "day": found[1].isoformat(), "status": status})]


async def check_period_done(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """An inspection finished (or was called off): when that completes its plan period, the reviewer is told, once."""
    job = await ctx.store.load(Job, event.job_id)
    if job.source != SOURCE:
        return []
    plans = MaintenanceStore(ctx.store)
    found = await plans.inspection_of_visit(visit_of(event))
    if found is None:
        return []
    plan = await plans.plan(found[0], for_update=True)
    period = Recurrence(plan.rule, plan.starts_on).period_of(found[1]) if plan else None
    if plan is None or period is None or (plan.reviewed_through is not None and plan.reviewed_through >= period[0]):
        return []
    result = report(period, (), await plans.facts(plan.id, *period), local_today(ctx))
    if not result.finished:
        return []
    await plans.set_reviewed_through(plan.id, period[0])
    return [ev.InspectionPeriodDone(event.job_id, None, {
        "plan_id": plan.id, "period_start": period[0].isoformat(), "period_end": period[1].isoformat(), "done": result.done,
        "reviewer_dispatcher_id": plan.reviewer_dispatcher_id})]


@dataclass(frozen=True)
class PlanReport:
    plan: PlanRow
    site: SiteRow
    report: InspectionReport


async def plan_report(store: Store, plan_id: int, day: date | None, today: date) -> PlanReport:
    """The inspection report of the plan period ``day`` falls in; without a day, today's period (or the first one, for a
    plan whose first inspection is still ahead)."""
    plan = await MaintenanceStore(store).plan(plan_id)
    if plan is None:
        raise NotFound("plan_not_found")
    recurrence = Recurrence(plan.rule, plan.starts_on)
    period = recurrence.period_of(day or today)
    if period is None and day is None:
        first = recurrence.after(plan.starts_on - timedelta(days=1))
        period = recurrence.period_of(first) if first is not None else None
    if period is None:
        raise InvalidInput("plan_period_before_start")
    site = await DeviceStore(store).site(plan.site_id)
    if site is None:
        raise NotFound("site_not_found")
    devices = await DeviceStore(store).at_site(plan.site_id, active_only=False)
    chosen = [d for d in devices if not plan.device_ids or d.id in plan.device_ids]
    names = [d.product_name + (f" ({d.location})" if d.location else "") for d in chosen]
    facts = await MaintenanceStore(store).facts(plan.id, *period)
    return PlanReport(plan, site, report(period, names, facts, today))


HANDLERS = (
    handles(c.CreateMaintenancePlan, create_plan),
    handles(c.GenerateInspections, run_generate),
    handles(c.StopMaintenancePlan, stop_plan),
)

REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (check_period_done, (ev.VisitCompleted, ev.VisitCancelled)),
)

# on the timeline for the record; the inspection job itself is told like any other order's
SILENT: frozenset[type[ev.Event]] = frozenset({ev.MaintenancePlanCreated, ev.MaintenancePlanStopped, ev.InspectionScheduled})
