"""Preventive maintenance on the bus: plans on a site, inspections created ahead of their day by a timer row (each day
once, however often the timer fires), and the inspection report of a plan period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from domain import commands as c
from domain import events as ev
from domain.errors import InvalidInput, NotFound
from domain.devices import DeviceEvent
from domain.maintenance import InspectionReport, PlanSpec, Recurrence, due, next_generation, report
from domain.model import Customer, ServiceKind, Technician, stored_id
from domain.relay import NO_JOB  # the timeline key of events about no job
from services import backoffice
from services.bus import handles
from services.context import HandlerContext
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
                    cmd.technician_id, cmd.reviewer_dispatcher_id, cmd.duration_minutes)
    site, devices = await _devices(ctx, spec.site_id, spec.device_ids)
    if not devices:
        raise InvalidInput("plan_no_devices")
    if spec.technician_id is not None and await ctx.store.get(Technician, spec.technician_id) is None:
        raise NotFound("technician_not_found")
    plan = await MaintenanceStore(ctx.store).add(spec, ctx.now)
    events: list[ev.Event] = [ev.MaintenancePlanCreated(NO_JOB, None, {"plan_id": plan.id, "site_id": site.id, "devices": [d.id for d in devices]})]
    return events + await _generate(ctx, plan)


async def generate(ctx: HandlerContext, plan_id: int) -> list[ev.Event]:
    """The plan's timer fired (or someone asked): create what is due and set the timer for the next one."""
    plan = await MaintenanceStore(ctx.store).plan(plan_id, for_update=True)
    if plan is None or not plan.active:
        return []
    return await _generate(ctx, plan)


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
    return [*result.events, ev.InspectionScheduled(job_id, stored_id(visit), {"plan_id": plan.id, "day": day.isoformat(), "devices": [d.id for d in devices]})]


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

# on the timeline for the record; the inspection job itself is told like any other order's
SILENT: frozenset[type[ev.Event]] = frozenset({ev.MaintenancePlanCreated, ev.MaintenancePlanStopped, ev.InspectionScheduled})
