"""Order intake from every source: new orders, repeats, updates and cancellations, the review queue and coverage.

An order arrives in the order model's shape (the API's OrderIn, or a source's JSON or table row through its field
map). Its lines are grouped into visits (domain.orders.plan_visits); the same source + external_ref sent again is
compared with the job it made: unchanged, changed (applied and told, or refused while a visit is past changing), or
waiting for the merchant's review. Every write is a command on the bus.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence, cast

from domain import commands as c
from domain import events as ev
from domain import lifecycle
from domain.errors import DomainError, InvalidInput, NotFound
from domain.model import Customer, Job, ServiceKind, Visit, VisitStatus, stored_id
from domain.orders import (
    ADDRESS_REMOVED,
    IGNORED,
    INFORMATIONAL,
    JOB_FIELDS,
    OrderAddress,
    OrderItem,
    ItemService,
    PlannedPart,
    PlannedVisit,
    address_key,
    cancel_refusal,
    changed_fields,
    content_hash,
    plan_parts,
    refusal,
    uncovered,
    visit_changes,
)
from services import backoffice
from services.bus import MessageBus, handles
from services.crew_growth import grow_crew
from services.context import HandlerContext
from services.timers import _chase_booking
from storage.orders import OrderStore

COVERAGE_POLICIES = ("refuse", "flag")
MAX_PRICE_MINOR = 1_000_000_000  # ten million in major units: far above any service fee, far below the column's limit


class OrderRefused(DomainError):
    """The order may not change (or come back) now; the API answers 409 with ``reason``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code, reason=reason)
        self.reason = reason


class CoverageRefused(InvalidInput):
    """The source refuses orders for regions nobody serves; the API answers 422 with ``reason``."""

    def __init__(self, region: str, kinds: list[str]) -> None:
        super().__init__("region_not_covered", region=region, kinds=kinds)
        self.reason = f"no technician in region {region!r} can do: {', '.join(kinds)}"


@dataclass(frozen=True)
class Source:
    """A source's settings; a source nobody configured keeps the plain intake (no review, no coverage check)."""

    name: str
    review_required: bool = False
    coverage_policy: str = "off"  # refuse | flag once configured (PUT /api/v1/order-sources/{source})
    currency: str | None = None
    mapping: dict[str, Any] | None = None
    table_mapping: dict[str, Any] | None = None


async def source_of(orders: OrderStore, name: str) -> Source:
    row = await orders.source(name)
    if row is None:
        return Source(name)
    return Source(name, bool(row["review_required"]), row["coverage_policy"], row["currency"], row["mapping"], row["table_mapping"])


# --- the order model, read ------------------------------------------------------------------------


def _services(listed: Sequence[dict[str, Any]]) -> tuple[ItemService, ...]:
    services = tuple(
        ItemService(ServiceKind(s["kind"]), s.get("duration_minutes"), s.get("crew_size") or 1, s.get("min_gap_minutes") or 0) for s in listed
    )
    if len({s.kind for s in services}) != len(services):
        raise InvalidInput("services_repeated")
    return services


def _line_address(content: dict[str, Any], value: Any) -> OrderAddress | None:
    """A line's own address: an object with its pin and region (it may become a job of its own), or a text that must
    be the order's address (a text alone cannot be routed to)."""
    if value is None:
        return None
    if isinstance(value, str):
        if address_key(value) != address_key(content["address"]["text"]):
            raise InvalidInput("item_address_needs_pin")
        return None
    return OrderAddress(value["text"], value["lat"], value["lon"], value["region"])


def order_items(content: dict[str, Any]) -> list[OrderItem]:
    """The order's lines; the order-level product with its services counts as the first line. A line without a
    category is for the job's product."""
    items: list[OrderItem] = []
    product, services = content.get("product"), content.get("services") or []
    default_category = job_fields(content)["product_category"]
    if services:
        if not product:
            raise InvalidInput("product_missing")  # order-level services serve the order's product
        items.append(OrderItem(product["name"], 1, _services(services), category=product["category"]))
    for line in content.get("items") or []:
        name = line.get("name") or line.get("sku") or ""
        items.append(OrderItem(str(name), int(line.get("quantity") or 1), _services(line.get("services") or ()),
                               line.get("sku"), _line_address(content, line.get("address")), line.get("category") or default_category))
    return items


def job_fields(content: dict[str, Any]) -> dict[str, Any]:
    """What the order sets on its job. Without an order-level product, the first line needing a service names it."""
    product = content.get("product")
    if not product:
        lines = content.get("items") or []
        line = next((x for x in lines if x.get("services")), lines[0] if lines else None)
        if line is None or not line.get("category"):
            raise InvalidInput("product_category_missing")
        product = _line_product(line)
    address = content["address"]
    return {
        "address_text": address["text"], "lat": address["lat"], "lon": address["lon"], "region": address["region"],
        "product_category": product["category"], "product_name": product["name"], "brand": product.get("brand"),
        "volume_liters": content.get("volume_liters"), "priority": content.get("priority") or "normal",
        "items": list(content.get("items") or []), "notes": content.get("notes") or "",
    }


def _line_product(line: dict[str, Any]) -> dict[str, Any]:
    return {"name": line.get("name") or line.get("sku") or line["category"], "category": line["category"], "brand": line.get("brand")}


@dataclass(frozen=True)
class Part:
    """One job an order makes: the visits at one address and what the order sets on that job."""

    planned: PlannedPart
    fields: dict[str, Any]

    @property
    def key(self) -> str | None:
        return self.planned.key

    @property
    def visits(self) -> list[PlannedVisit]:
        return list(self.planned.visits)


def _plan(content: dict[str, Any]) -> list[Part]:
    """The order's jobs: one per address with visits, the order's own address first (domain.orders.plan_parts). A job
    at a line's address has that address, the lines there and the product of its first line needing a service; the
    cargo volume (given for the whole order) stays with the first job, whose delivery carries it."""
    base = job_fields(content)
    planned = plan_parts(order_items(content), base["address_text"])
    lines = list(content.get("items") or [])
    first_line = 1 if content.get("services") else 0  # the order-level product is item 0
    parts = []
    for number, part in enumerate(planned):
        here = [lines[i - first_line] for i in part.items if i >= first_line]
        fields = {**base, "items": here}
        if part.address is not None:
            fields.update(address_text=part.address.text, lat=part.address.lat, lon=part.address.lon, region=part.address.region)
            line = next((x for x in here if x.get("services") and x.get("category")), None)
            if line is not None:
                product = _line_product(line)
                fields.update(product_category=product["category"], product_name=product["name"], brand=product.get("brand"))
        if number > 0:
            fields["volume_liters"] = None
        parts.append(Part(part, fields))
    return parts


def order_regions(content: dict[str, Any]) -> set[str]:
    """Every region an order sends someone to: its own and its lines' other addresses (a scoped token must cover all)."""
    regions = {content["address"]["region"]}
    for line in content.get("items") or []:
        if isinstance(line.get("address"), dict):
            regions.add(line["address"]["region"])
    return regions


def _job_key(job: Job) -> str | None:
    return address_key(job.part_address) if job.part_address is not None else None


def _price(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRICE_MINOR:
        raise InvalidInput("price_invalid")
    return value


# --- handlers -------------------------------------------------------------------------------------


async def place_order(ctx: HandlerContext, cmd: c.PlaceOrder) -> list[ev.Event]:
    content = cast(dict[str, Any], cmd.content)  # checked by the order model (webhooks OrderIn) before it got here
    orders = OrderStore(ctx.store)
    source = await source_of(orders, content["source"])
    ref = content["external_ref"]
    digest = content_hash(content)
    price = _price(content.get("price_minor"))
    row = await orders.intake(source.name, ref, lock=True)
    job = await ctx.store.job_by_ref(source.name, ref)
    if row is None and job is None:
        _plan(content)  # refuse a bad order now, also when it is only queued for review
        if source.review_required:
            await orders.add_intake(_new_row(ctx, source, content, digest, "pending_review", price))
            return []
        return await _accept(ctx, source, content, _new_row(ctx, source, content, digest, "accepted", price))
    if row is None:
        assert job is not None  # a job from before intake rows existed: it gets its row now
        await orders.add_intake({**_new_row(ctx, source, content, "", "accepted", price), "job_id": stored_id(job)})
        row = await orders.intake(source.name, ref)
        assert row is not None
    if row["state"] == "pending_review":
        if row["content_hash"] != digest:
            _plan(content)
            await orders.update_intake(row["id"], content=content, content_hash=digest, price_minor=price if price is not None else row["price_minor"],
                                       currency=content.get("currency") or row["currency"], updated_at=ctx.now)
        return []
    if row["state"] == "rejected":
        raise OrderRefused("order_rejected", f"the merchant rejected this order: {row['review_note'] or 'no reason given'}")
    if row["state"] == "cancelled":
        raise OrderRefused("order_cancelled", "this order was cancelled; send a new order under a new external_ref")
    if row["content_hash"] == digest:
        return []
    jobs = await ctx.store.jobs_by_ref(source.name, ref)
    if not jobs:
        raise NotFound("job_not_found")
    events = await _update(ctx, source, jobs, content)
    await orders.update_intake(row["id"], content=content, content_hash=digest, updated_at=ctx.now,
                               price_minor=price if price is not None else row["price_minor"])
    return events


def _new_row(ctx: HandlerContext, source: Source, content: dict[str, Any], digest: str, state: str, price: int | None) -> dict[str, Any]:
    return {
        "source": source.name, "external_ref": content["external_ref"], "content_hash": digest, "content": content,
        "state": state, "job_id": None, "price_minor": price, "currency": content.get("currency") or source.currency,
        "received_at": ctx.now, "updated_at": ctx.now,
    }


def _request(source: Source, content: dict[str, Any], part: Part, number: int) -> backoffice.OrderRequest:
    customer, fields = content["customer"], part.fields
    return backoffice.OrderRequest(
        source=source.name, external_ref=content["external_ref"], customer_name=customer["name"],
        customer_phone=customer["phone"], customer_language=customer.get("language") or "en",
        address=fields["address_text"], lat=fields["lat"], lon=fields["lon"], region=fields["region"],
        product_name=fields["product_name"], product_category=fields["product_category"], brand=fields["brand"],
        services=tuple(backoffice.ServiceRequest(p.kind.value, p.duration_minutes, p.crew_size, p.min_gap_minutes, p.categories)
                       for p in part.visits),
        items=tuple(fields["items"]), notes=fields["notes"], volume_liters=fields["volume_liters"], priority=fields["priority"],
        part=number, part_address=part.planned.address.text if part.planned.address is not None else None,
    )


async def _make_part(ctx: HandlerContext, source: Source, content: dict[str, Any], part: Part, number: int) -> tuple[int, list[ev.Event]]:
    """One job of the order with its visits; a coverage gap refuses the order or is flagged on this job."""
    gap = await _coverage(ctx, source, part.visits, part.fields)
    result = await backoffice.create_order(ctx.store, _request(source, content, part, number), ctx.now, ctx.policy)
    job_id = stored_id(result.job)
    events = list(result.events)
    if gap:
        events.append(ev.CoverageGapFlagged(job_id, None, {"region": part.fields["region"], "kinds": gap}))
    return job_id, events


async def _accept(ctx: HandlerContext, source: Source, content: dict[str, Any], row: dict[str, Any]) -> list[ev.Event]:
    """Make the order's jobs (one per address) and their visits (the row says the intake state to keep: a new order,
    or one just reviewed). The intake row points at the first job; the others share its source and reference."""
    events: list[ev.Event] = []
    job_ids: list[int] = []
    for number, part in enumerate(_plan(content), start=1):
        job_id, made = await _make_part(ctx, source, content, part, number)
        job_ids.append(job_id)
        events += made
    gaps = sorted({kind for e in events if isinstance(e, ev.CoverageGapFlagged) for kind in e.data["kinds"]})
    orders = OrderStore(ctx.store)
    values = {**row, "job_id": job_ids[0], "state": "accepted", "coverage_gap": gaps or None, "updated_at": ctx.now}
    if row.get("id"):
        await orders.update_intake(row["id"], **{k: v for k, v in values.items() if k != "id"})
    else:
        await orders.add_intake(values)
    return events


async def _coverage(ctx: HandlerContext, source: Source, plan: Sequence[PlannedVisit], fields: dict[str, Any]) -> list[str]:
    """The work types nobody can do in the region (for each product category a visit's lines need): refused (422) or
    returned to be flagged, per the source's policy."""
    if source.coverage_policy not in COVERAGE_POLICIES:
        return []
    roster = await ctx.store.technicians(on_duty_only=False)
    gap: list[str] = []
    for planned in plan:
        for category in planned.categories or (fields["product_category"],):
            for kind in uncovered([planned.kind], category, fields["brand"], fields["region"], roster):
                if kind not in gap:
                    gap.append(kind)
    if gap and source.coverage_policy == "refuse":
        raise CoverageRefused(fields["region"], gap)
    return gap


@dataclass
class _JobUpdate:
    """What a changed order does to one of its jobs, worked out before anything is applied."""

    job: Job
    part: Part
    visits: list[Visit]
    changes: dict[str, Any]
    change: Any  # domain.orders.VisitChange


async def _update(ctx: HandlerContext, source: Source, jobs: list[Job], content: dict[str, Any]) -> list[ev.Event]:
    """Apply a changed order to its jobs, or refuse with the reason; tells whoever is affected through OrderUpdated.

    An order at several addresses is one job per address: a job whose address is still in the order takes its
    changes, a new address becomes a new job, an address no longer in it has its job cancelled. Every job is checked
    before any is changed, so the order is updated whole or not at all (and the unit of work rolls back on a refusal)."""
    parts = _plan(content)
    first = jobs[0]
    customer = await ctx.store.load(Customer, first.customer_id)
    same_person = await ctx.store.customer_by_phone(content["customer"]["phone"])
    if same_person is None or same_person.id != customer.id:
        raise OrderRefused("customer_cannot_change", "the order names another customer: cancel it and send a new order")
    live = {_job_key(j): j for j in jobs if j.status != "cancelled"}
    updates: list[_JobUpdate] = []
    new_parts: list[Part] = []
    for part in parts:
        job = live.get(part.key)
        if job is None:
            new_parts.append(part)
            continue
        visits = await ctx.store.visits_of_job(stored_id(job))
        old = {name: getattr(job, name) for name in (*JOB_FIELDS, *INFORMATIONAL)}
        changes, change = changed_fields(old, part.fields), visit_changes(visits, part.visits)
        if changes or not change.empty:
            updates.append(_JobUpdate(job, part, visits, changes, change))
    wanted = {part.key for part in parts}
    gone = [job for key, job in live.items() if key not in wanted]
    if not updates and not new_parts and not gone:
        return []
    for update in updates:
        if update.job.status in backoffice.CLOSED_JOB_STATUSES:
            raise OrderRefused("order_closed", f"the job {stored_id(update.job)} is {update.job.status}: too late to change it")
        reason = refusal(update.visits, update.changes, update.change)
        if reason:
            raise OrderRefused("order_past_change_point", reason)
    for job in gone:
        reason = cancel_refusal([v for v in await ctx.store.visits_of_job(stored_id(job)) if v.state not in IGNORED])
        if reason or job.status == "done":
            raise OrderRefused("order_past_change_point", reason or f"the job {stored_id(job)} is done: too late to take its address out")
    events: list[ev.Event] = []
    for update in updates:
        events += await _update_job(ctx, source, update)
    number = max(j.part for j in jobs)
    for part in new_parts:
        number += 1
        _job_id, made = await _make_part(ctx, source, content, part, number)
        events += made
    for job in gone:
        events += await _cancel_job(ctx, job, source.name, ADDRESS_REMOVED)
    return events


async def _update_job(ctx: HandlerContext, source: Source, update: _JobUpdate) -> list[ev.Event]:
    """One job takes its part of a changed order (checked already): fields, visits added, resized or cancelled."""
    job, fields, changes, change, visits = update.job, update.part.fields, update.changes, update.change, update.visits
    job_id = stored_id(job)
    gap = await _coverage(ctx, source, update.part.visits, fields) if ({"region", "product_category", "brand"} & set(changes) or change.add) else []
    for name in changes:
        setattr(job, name, fields[name])
    events: list[ev.Event] = []
    live = [v for v in visits if v.state not in IGNORED]
    cancelled_ids = {stored_id(v) for v in change.cancel}
    for visit in change.cancel:
        events.append(lifecycle.cancel(visit, job_id, "source"))
    crew_grown: list[Visit] = []
    for visit, planned in change.resize:
        if planned.crew_size > visit.crew_size and visit.technician_id is not None:
            crew_grown.append(visit)
        visit.duration_minutes, visit.crew_size, visit.min_gap_minutes = planned.duration_minutes, planned.crew_size, planned.min_gap_minutes
        visit.categories = list(planned.categories)
    delivery = next((v for v in live if v.kind == ServiceKind.DELIVERY.value and stored_id(v) not in cancelled_ids), None)
    added: list[Visit] = []
    sequence = max((v.sequence for v in visits), default=0)
    for planned in change.add:
        sequence += 1
        depends_on = stored_id(delivery) if delivery and planned.kind in backoffice.AFTER_DELIVERY else None
        visit = await ctx.store.add(Visit(job_id, planned.kind.value, sequence, planned.duration_minutes, depends_on_visit_id=depends_on,
                                          crew_size=planned.crew_size, min_gap_minutes=planned.min_gap_minutes,
                                          categories=list(planned.categories)))
        added.append(visit)
        if planned.kind is ServiceKind.DELIVERY:
            delivery = visit
    for visit in [*live, *added]:
        if stored_id(visit) in cancelled_ids or visit.state is not VisitStatus.CREATED:
            continue
        waits_for = delivery if visit.kind in {k.value for k in backoffice.AFTER_DELIVERY} else None
        if visit.depends_on_visit_id in cancelled_ids or (waits_for is not None and visit.depends_on_visit_id is None
                                                          and stored_id(waits_for) != stored_id(visit)):
            # the delivery it waited for is off, or a delivery was added before it: it waits for what is there now
            visit.depends_on_visit_id = stored_id(waits_for) if waits_for is not None else None
    for visit in added:
        dependency = next((v for v in [*live, *added] if stored_id(v) == visit.depends_on_visit_id), None)
        if dependency is None or dependency.state is not VisitStatus.CREATED:
            await _chase_booking(ctx, visit)  # bookable now: the customer is reminded, then the dispatchers
    events.append(ev.OrderUpdated(job_id, None, {
        "source": source.name, "external_ref": job.external_ref, "changes": changes,
        "visits_added": [stored_id(v) for v in added], "visits_cancelled": sorted(cancelled_ids),
        "visits_changed": [stored_id(v) for v, _p in change.resize],
    }))
    for visit in crew_grown:
        events += await grow_crew(ctx, visit, job)
    if gap:
        events.append(ev.CoverageGapFlagged(job_id, None, {"region": fields["region"], "kinds": gap}))
    return events


async def _cancel_job(ctx: HandlerContext, job: Job, source: str, reason: str) -> list[ev.Event]:
    """One job of an order cancelled with its live visits (checked already): the people are told through the events."""
    job_id = stored_id(job)
    visits = [v for v in await ctx.store.visits_of_job(job_id) if v.state not in IGNORED]
    events: list[ev.Event] = [lifecycle.cancel(v, job_id, "source") for v in visits]
    job.status = "cancelled"
    events.append(ev.OrderCancelled(job_id, None, {
        "source": source, "external_ref": job.external_ref, "reason": reason, "visits": [stored_id(v) for v in visits],
    }))
    return events


async def cancel_order(ctx: HandlerContext, cmd: c.CancelOrder) -> list[ev.Event]:
    """The source cancels its order: every job of it (one per address) with their visits, or none when any visit is
    past the point of cancelling (409)."""
    orders = OrderStore(ctx.store)
    row = await orders.intake(cmd.source, cmd.external_ref, lock=True)
    jobs = await ctx.store.jobs_by_ref(cmd.source, cmd.external_ref)
    if row is None and not jobs:
        raise NotFound("order_not_found")
    if row is not None and row["state"] == "rejected":
        raise OrderRefused("order_rejected", "the merchant rejected this order already")
    if row is not None and row["state"] in ("pending_review", "cancelled"):
        await orders.update_intake(row["id"], state="cancelled", review_note=cmd.reason or row["review_note"], updated_at=ctx.now)
        return []
    live = [job for job in jobs if job.status != "cancelled"]
    if not live:
        return []
    for job in live:
        reason = cancel_refusal([v for v in await ctx.store.visits_of_job(stored_id(job)) if v.state not in IGNORED])
        if reason or job.status == "done":
            raise OrderRefused("order_past_change_point", reason or "the job is done: too late to cancel it")
    events: list[ev.Event] = []
    for job in live:
        events += await _cancel_job(ctx, job, cmd.source, cmd.reason)
    if row is None:
        content = {"source": cmd.source, "external_ref": cmd.external_ref}
        await orders.add_intake({**_new_row(ctx, Source(cmd.source), content, "", "cancelled", None), "job_id": stored_id(jobs[0])})
    else:
        await orders.update_intake(row["id"], state="cancelled", review_note=cmd.reason or None, updated_at=ctx.now)
    return events


async def confirm_order(ctx: HandlerContext, cmd: c.ConfirmOrder) -> list[ev.Event]:
    orders = OrderStore(ctx.store)
    row = await orders.intake(cmd.source, cmd.external_ref, lock=True)
    if row is None:
        raise NotFound("order_not_found")
    if row["state"] == "accepted":
        return []  # confirmed already: the same click twice
    if row["state"] != "pending_review":
        raise OrderRefused("order_not_in_review", f"the order is {row['state']}, not waiting for review")
    price = _price(cmd.price_minor) if cmd.price_minor is not None else row["price_minor"]
    if price is None:
        raise InvalidInput("price_required")
    source = await source_of(orders, cmd.source)
    currency = cmd.currency or row["currency"] or source.currency
    events = await _accept(ctx, source, row["content"], {**row, "price_minor": price, "currency": currency, "review_note": cmd.note or None})
    job_id = events[0].job_id
    return [*events, ev.OrderConfirmed(job_id, None, {
        "source": cmd.source, "external_ref": cmd.external_ref, "price_minor": price, "currency": currency,
    })]


async def reject_order(ctx: HandlerContext, cmd: c.RejectOrder) -> list[ev.Event]:
    orders = OrderStore(ctx.store)
    row = await orders.intake(cmd.source, cmd.external_ref, lock=True)
    if row is None:
        raise NotFound("order_not_found")
    if row["state"] == "rejected":
        return []
    if row["state"] != "pending_review":
        raise OrderRefused("order_not_in_review", f"the order is {row['state']}, not waiting for review")
    await orders.update_intake(row["id"], state="rejected", review_note=cmd.reason, updated_at=ctx.now)
    return []


HANDLERS = (
    handles(c.PlaceOrder, place_order),
    handles(c.CancelOrder, cancel_order),
    handles(c.ConfirmOrder, confirm_order),
    handles(c.RejectOrder, reject_order),
)


# --- entry points (the API, imports, polling) -----------------------------------------------------


@dataclass
class Receipt:
    """What became of one order: created, updated, unchanged or pending_review, with its job and customer link."""

    source: str
    external_ref: str
    outcome: str
    job_id: int | None = None
    token: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    coverage_gap: list[str] = field(default_factory=list)
    price_minor: int | None = None
    job_ids: list[int] = field(default_factory=list)  # every job of the order, one per address, the first one first


async def _receipt(ctx: HandlerContext, source: str, ref: str, events: Sequence[ev.Event]) -> Receipt:
    row = await OrderStore(ctx.store).intake(source, ref)
    if row is None:
        raise NotFound("order_not_found")
    first = row["job_id"]
    if any(isinstance(e, ev.JobCreated) and e.job_id == first for e in events):
        outcome = "created"
    elif any(isinstance(e, (ev.OrderUpdated, ev.JobCreated, ev.OrderCancelled)) for e in events):
        outcome = "updated"
    else:
        outcome = "pending_review" if row["state"] == "pending_review" else "unchanged"
    receipt = Receipt(source, ref, outcome, first, coverage_gap=list(row["coverage_gap"] or []), price_minor=row["price_minor"])
    if outcome == "updated":
        receipt.changes = _changes(first, events)
    receipt.job_ids = [stored_id(j) for j in await ctx.store.jobs_by_ref(source, ref)]
    if row["job_id"] is not None:
        job = await ctx.store.load(Job, row["job_id"])
        token = await ctx.store.current_token("customer", row["job_id"], ctx.now)
        if token is None:
            closed = job.status in backoffice.CLOSED_JOB_STATUSES
            token = await ctx.store.issue_token("customer", row["job_id"], ctx.now,
                                                ctx.policy.customer_link_grace if closed else ctx.policy.customer_link_ttl)
        receipt.token = token
    return receipt


def _changes(first: int | None, events: Sequence[ev.Event]) -> dict[str, Any]:
    """An update's changes as the API shows them: the first job's fields by name, another job's prefixed with its id
    ("job 12: notes"), and the jobs an address added or taken out made or cancelled."""
    changes: dict[str, Any] = {}
    for event in events:
        if isinstance(event, ev.OrderUpdated):
            prefix = "" if event.job_id == first else f"job {event.job_id}: "
            changes.update({f"{prefix}{name}": value for name, value in event.data["changes"].items()})
    added = [e.job_id for e in events if isinstance(e, ev.JobCreated)]
    cancelled = [e.job_id for e in events if isinstance(e, ev.OrderCancelled)]
    if added:
        changes["jobs_added"] = added
    if cancelled:
        changes["jobs_cancelled"] = cancelled
    return changes


async def place(bus: MessageBus, content: dict[str, Any]) -> Receipt:
    """One order as one unit of work."""

    async def work(ctx: HandlerContext) -> tuple[Receipt, list[ev.Event]]:
        events = await bus.execute(ctx, [c.PlaceOrder(content)])
        return await _receipt(ctx, content["source"], content["external_ref"], events), events

    return await bus.call(f"order:{content['source']}:{content['external_ref']}:{uuid.uuid4().hex}", work)


@dataclass
class Outcome:
    """One order of a batch: its receipt, or why it was refused."""

    receipt: Receipt | None = None
    error: str | None = None


async def place_many(bus: MessageBus, origin: str, contents: Sequence[dict[str, Any]]) -> list[Outcome]:
    """Many orders in one unit of work, each in its own savepoint: a refused one leaves the others in."""

    async def work(ctx: HandlerContext) -> tuple[list[Outcome], list[ev.Event]]:
        results: list[Outcome] = []
        events: list[ev.Event] = []
        for content in contents:
            try:
                async with ctx.store.session.begin_nested():
                    placed = await bus.execute(ctx, [c.PlaceOrder(content)])
                    receipt = await _receipt(ctx, content["source"], content["external_ref"], placed)
            except DomainError as err:
                results.append(Outcome(error=describe(err)))
                continue
            events += placed
            results.append(Outcome(receipt))
        return results, events

    return await bus.call(f"{origin}:{uuid.uuid4().hex}", work)


async def run(bus: MessageBus, command: c.Command) -> list[ev.Event]:
    return await bus.run(f"order:{type(command).__name__}:{uuid.uuid4().hex}", command)


def describe(err: DomainError) -> str:
    """A refusal in words for a report or an HTTP detail: the code, and the reason when there is one."""
    reason = getattr(err, "reason", None) or (str(err) if str(err) != err.code else None)
    return f"{err.code}: {reason}" if reason else err.code
