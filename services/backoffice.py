"""Back-office operations behind the HTTP API and demo data: orders, staff, groups, templates, job views."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain import events as ev
from domain.errors import InvalidInput, NotFound
from domain.model import (
    DEFAULT_SERVICE_MINUTES,
    ChecklistStep,
    ChecklistTemplate,
    Customer,
    DispatchGroup,
    Dispatcher,
    DispatchMode,
    DispatchRule,
    GeoPoint,
    Job,
    Language,
    ServiceKind,
    Technician,
    TechnicianRole,
    Visit,
    WorkingHours,
    stored_id,
)
from domain.policy import ServicePolicy
from services.bus import MessageBus
from services.context import HandlerContext
from services.handlers import candidates
from services.replanning import book_urgent
from storage.fees import job_bills
from storage.repository import Store
from storage.settlement import ItemRow, SettlementStore

# visits of these kinds wait for the job's delivery
AFTER_DELIVERY = (ServiceKind.INSTALLATION, ServiceKind.INSPECTION)
PRIORITIES = ("normal", "urgent")
CLOSED_JOB_STATUSES = ("done", "cancelled")
MAX_CREW = 4
MAX_GAP_MINUTES = 1440  # a day: longer waits (paint drying, concrete setting) are separate bookings


@dataclass(frozen=True)
class ServiceRequest:
    kind: str
    duration_minutes: int | None = None
    crew_size: int = 1
    min_gap_minutes: int = 0  # after the visit it depends on ends (installation after delivery)
    categories: tuple[str, ...] = ()  # product categories of the order lines it serves; none: the job's product


@dataclass(frozen=True)
class OrderRequest:
    source: str
    external_ref: str
    customer_name: str
    customer_phone: str
    customer_language: str
    address: str
    lat: float
    lon: float
    region: str
    product_name: str
    product_category: str
    brand: str | None
    services: tuple[ServiceRequest, ...]
    items: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    notes: str = ""
    volume_liters: int | None = None
    priority: str = "normal"  # urgent: served within the next opening hours, without the customer booking
    part: int = 1  # an order at several addresses makes one job per address (services.intake)
    part_address: str | None = None  # the line address a part > 1 was made for, as the order gave it


@dataclass(frozen=True)
class OrderResult:
    job: Job
    visits: list[Visit]
    created: bool
    customer_token: str
    events: tuple[ev.Event, ...] = ()


async def place_order(bus: MessageBus, request: OrderRequest) -> OrderResult:
    """Order intake as one unit of work on the bus, so its events meet their reactions like any other write's."""

    async def intake(ctx: HandlerContext) -> tuple[OrderResult, list[ev.Event]]:
        result = await create_order(ctx.store, request, ctx.now, ctx.policy)
        return result, list(result.events)

    return await bus.call(f"order:{request.source}:{request.external_ref}:{uuid.uuid4().hex}", intake)


async def renew_customer_link(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """A reopened job's customer link works again as an open job's does (closing it again brings the expiry forward
    to the close plus the grace), so the customer can come back to the follow-up through the link they have."""
    await ctx.store.renew_token("customer", event.job_id, ctx.now + ctx.policy.customer_link_ttl)
    return []


async def create_order(store: Store, request: OrderRequest, now: datetime, policy: ServicePolicy) -> OrderResult:
    """Create the job and its linked visits, and say what happened in ``events`` (for the unit of work to
    record and react to); a repeat of (source, external_ref) returns the same job and no events."""
    existing = await store.job_by_ref(request.source, request.external_ref) if request.part == 1 else None
    if existing is not None:
        # the same order posted again gets the link already handed out, never a second one
        existing_id = stored_id(existing)
        token = await store.current_token("customer", existing_id, now)
        if token is None:
            ttl = policy.customer_link_ttl if existing.status not in CLOSED_JOB_STATUSES else policy.customer_link_grace
            token = await store.issue_token("customer", existing_id, now, ttl)
        return OrderResult(existing, await store.visits_of_job(existing_id), False, token)
    GeoPoint(request.lat, request.lon)
    kinds = [ServiceKind(s.kind) for s in request.services]
    if not kinds:
        raise InvalidInput("services_empty")
    if len(set(kinds)) != len(kinds):
        raise InvalidInput("services_repeated")
    if request.volume_liters is not None and request.volume_liters < 0:
        raise InvalidInput("volume_invalid")
    if request.priority not in PRIORITIES:
        raise InvalidInput("priority_invalid")
    for service in request.services:
        if not 1 <= service.crew_size <= MAX_CREW:
            raise InvalidInput("crew_size_invalid")
        if not 0 <= service.min_gap_minutes <= MAX_GAP_MINUTES:
            raise InvalidInput("min_gap_invalid")
    customer = await _customer(store, request)
    job = await store.add(
        Job(
            request.source, request.external_ref, stored_id(customer), request.address, request.lat, request.lon,
            request.region, request.product_category, request.product_name, request.brand,
            items=list(request.items), notes=request.notes, created_at=now, volume_liters=request.volume_liters,
            priority=request.priority, part=request.part, part_address=request.part_address,
        )
    )
    job_id = stored_id(job)
    # deliveries first, so that installations can point at them
    ordered = sorted(request.services, key=lambda s: ServiceKind(s.kind) is not ServiceKind.DELIVERY)
    visits: list[Visit] = []
    delivery: Visit | None = None
    for sequence, service in enumerate(ordered, start=1):
        kind = ServiceKind(service.kind)
        depends_on = delivery.id if delivery and kind in AFTER_DELIVERY else None
        if service.min_gap_minutes and depends_on is None:
            # a gap after nothing would be silently ignored by the planner: say so instead
            raise InvalidInput("min_gap_without_predecessor")
        visit = await store.add(
            Visit(
                job_id, kind.value, sequence, service.duration_minutes or DEFAULT_SERVICE_MINUTES[kind],
                depends_on_visit_id=depends_on, crew_size=service.crew_size, min_gap_minutes=service.min_gap_minutes,
                categories=list(service.categories),
            )
        )
        if kind is ServiceKind.DELIVERY:
            delivery = visit
        visits.append(visit)
    events: list[ev.Event] = [ev.JobCreated(job_id, None, {"visits": [v.id for v in visits]})]
    if request.priority == "urgent":
        events += await book_urgent(store, job, visits, now, policy)
    token = await store.issue_token("customer", job_id, now, policy.customer_link_ttl)
    return OrderResult(job, visits, True, token, tuple(events))


async def _customer(store: Store, request: OrderRequest) -> Customer:
    found = await store.customer_by_phone(request.customer_phone)
    if found is not None:
        return found
    return await store.add(Customer(request.customer_name, request.customer_phone, Language.from_code(request.customer_language).value))


async def create_technician(
    store: Store, *, name: str, phone: str, roles: list[str], skills: list[str], regions: list[str],
    working_hours: dict[str, Any] | None, home_lat: float | None, home_lon: float | None, language: str,
    now: datetime, policy: ServicePolicy, vehicle_capacity: int | None = None,
) -> tuple[Technician, str]:
    if not roles:
        raise InvalidInput("roles_empty")
    for role in roles:
        TechnicianRole(role)
    hours = WorkingHours.from_dict(working_hours)
    if hours.end <= hours.start or not hours.weekdays or any(not 0 <= d <= 6 for d in hours.weekdays):
        raise InvalidInput("working_hours_invalid")
    if home_lat is not None and home_lon is not None:
        GeoPoint(home_lat, home_lon)
    if vehicle_capacity is not None and vehicle_capacity < 0:
        raise InvalidInput("vehicle_capacity_invalid")
    technician = await store.add(
        Technician(name, phone, list(roles), list(skills), list(regions), hours.to_dict(), home_lat, home_lon,
                   language=Language.from_code(language).value, vehicle_capacity=vehicle_capacity)
    )
    return technician, await store.issue_token("technician", stored_id(technician), now, policy.staff_link_ttl)


async def create_dispatcher(store: Store, *, name: str, now: datetime, policy: ServicePolicy) -> tuple[Dispatcher, str]:
    dispatcher = await store.add(Dispatcher(name))
    return dispatcher, await store.issue_token("dispatcher", stored_id(dispatcher), now, policy.staff_link_ttl)


async def create_dispatch_group(
    store: Store, *, name: str, region: str | None, language: str, now: datetime, policy: ServicePolicy, purpose: str = "dispatch"
) -> tuple[DispatchGroup, str]:
    group = await store.add(DispatchGroup(name, region, Language.from_code(language).value, purpose=purpose))
    return group, await store.issue_token("group", stored_id(group), now, policy.staff_link_ttl)


async def put_checklist_template(store: Store, *, service_kind: str, product_category: str, name: str, steps: list[dict[str, Any]]) -> ChecklistTemplate:
    ServiceKind(service_kind)
    parsed = [ChecklistStep.from_dict(s) for s in steps]
    if len({s.key for s in parsed}) != len(parsed):
        raise InvalidInput("checklist_keys_repeated")
    template = await store.template_for(service_kind, product_category)
    if template is None:
        return await store.add(ChecklistTemplate(service_kind, product_category, name, [s.to_dict() for s in parsed]))
    template.name, template.steps = name, [s.to_dict() for s in parsed]
    return template


async def job_details(store: Store, job_id: int) -> dict[str, Any]:
    job = await store.get(Job, job_id)
    if job is None:
        raise NotFound("job_not_found")
    visits = await store.visits_of_job(job_id)
    technicians = {t.id: t.name for t in await store.technicians(on_duty_only=False)}
    settled = {item.visit_id: settlement_of(item) for item in await SettlementStore(store).items(job_id=job_id)}
    return {
        "id": job.id,
        "source": job.source,
        "external_ref": job.external_ref,
        "status": job.status,
        "product": {"name": job.product_name, "category": job.product_category, "brand": job.brand},
        "volume_liters": job.volume_liters,
        "region": job.region,
        "address": job.address_text,
        "part": job.part,
        "created_at": job.created_at,
        "visits": [
            {
                "id": v.id,
                "kind": v.kind,
                "status": v.status,
                "depends_on_visit_id": v.depends_on_visit_id,
                "technician": {"id": v.technician_id, "name": technicians.get(v.technician_id)} if v.technician_id else None,
                "crew_size": v.crew_size,
                "crew": [{"id": c, "name": technicians.get(c)} for c in v.crew_ids],
                "min_gap_minutes": v.min_gap_minutes,
                "slot_start": v.slot_start,
                "slot_end": v.slot_end,
                "checkin_distance_m": v.checkin_distance_m,
                "appointment_confirmed_at": v.appointment_confirmed_at,  # the customer confirmed the booked time
                "checkin_kind": v.checkin_kind,  # live | static: a static pin can be dropped anywhere
                "follow_up_of_visit_id": v.follow_up_of_visit_id,
                "return_reason": v.return_reason,
                "fault_category": v.fault_category,
                "repair_method": v.repair_method,
                "late_minutes": v.late_minutes,
                "settlement": settled.get(stored_id(v)),  # the technician's fee for it, once confirmed with a priced bill (issue 14 part 7)
            }
            for v in visits
        ],
        "timeline": [
            {"type": e["type"], "visit_id": e["visit_id"], "data": e["data"], "occurred_at": e["occurred_at"]}
            for e in await store.timeline(job_id)
        ],
        "bills": await job_bills(store, job_id),  # one per completed visit the price list billed (issue 14 part 6)
    }


def settlement_of(item: ItemRow) -> dict[str, Any]:
    """A visit's fee as the job's details show it: where it stands, what it pays, and the statement it is on."""
    return {"item_id": item.id, "status": item.status, "amount_minor": item.amount_minor, "currency": item.currency,
            "review_ends_at": item.review_ends_at, "period": item.period, "statement_id": item.statement_id}


async def put_dispatch_rule(
    store: Store, *, region: str | None, service_kind: str | None, mode: str, grab_top_n: int, grab_minutes: int
) -> DispatchRule:
    DispatchMode(mode)
    if service_kind is not None:
        ServiceKind(service_kind)
    for rule in await store.dispatch_rules():
        if rule.region == region and rule.service_kind == service_kind:
            rule.mode, rule.grab_top_n, rule.grab_minutes = mode, grab_top_n, grab_minutes
            return rule
    return await store.add(DispatchRule(mode, region, service_kind, grab_top_n, grab_minutes))


async def visit_candidates(store: Store, visit_id: int, now: datetime, policy: ServicePolicy) -> list[dict[str, Any]]:
    """Technicians who could take the visit at its booked time, best first."""
    visit = await store.get(Visit, visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    if visit.slot_start is None:
        raise InvalidInput("visit_not_booked")
    job = await store.load(Job, visit.job_id)
    ranked = await candidates(HandlerContext(store, now, policy), visit, job)
    names = {t.id: t.name for t in await store.technicians()}
    return [{"technician_id": tid, "name": names[tid]} for tid in ranked]
