"""Parts and stock on the bus: the catalogue, movements between the warehouse and vans (never below zero), requests
approved by dispatchers, parts used on a repair's completion record, fault trees, and the low-stock alert."""

from __future__ import annotations

from datetime import timedelta

from domain import commands as c
from domain import events as ev
from domain.access import region_allowed
from domain.errors import DomainError, IllegalTransition, InvalidInput, NotAllowed, NotFound
from domain.model import MAX_ID, Job, ServiceKind, Technician, Visit, VisitStatus, stored_id
from domain.parts import (
    NOTE_CHARS,
    ON_REPAIR,
    RECENT_USE_DAYS,
    WAREHOUSE,
    MovementKind,
    Outcome,
    PartSpec,
    RequestStatus,
    check_movement,
    check_quantity,
    check_used_parts,
    crossed_low,
    parse_fault_tree,
    parse_location,
    reorder_suggestion,
    tree_for,
    van,
    van_owner,
)
from services import accounts
from services import actions as a
from services.actions import encode
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.handlers import _technician_visit
from services.messages import Button, Card, Outbound, Purpose, buttons, raw, t
from services.notifications import _day_alert, _region_alert, _send, _technician_chats
from storage.parts import PartRow, PartsStore

NO_JOB = 0  # stock events about no job are on the "no job" timeline, as devices' are


def request_card(request_id: int) -> Card:
    """The dispatchers' card of a part request: its buttons go once someone decided."""
    return ("part_request", request_id)


async def _part(store: PartsStore, part_id: int) -> PartRow:
    if not 1 <= part_id <= MAX_ID:
        raise NotFound("part_not_found")
    part = await store.part(part_id)
    if part is None:
        raise NotFound("part_not_found")
    return part


async def _technician(ctx: HandlerContext, technician_id: int) -> Technician:
    technician = await ctx.store.get(Technician, technician_id) if 1 <= technician_id <= MAX_ID else None
    if technician is None:
        raise NotFound("technician_not_found")
    return technician


async def move(ctx: HandlerContext, part: PartRow, kind: MovementKind, quantity: int, *, source: str | None, target: str | None,
               actor: str, note: str = "", job_id: int | None = None, visit_id: int | None = None,
               request_id: int | None = None) -> list[ev.Event]:
    """One movement: out of ``source`` only if it holds enough (else nothing changes and the reason names what is
    there), into ``target``, written to the ledger; the warehouse falling to its reorder level raises StockLow."""
    store = PartsStore(ctx.store)
    events: list[ev.Event] = []
    if source is not None:
        left = await store.take(part.id, source, quantity, ctx.now)
        if left is None:
            raise DomainError("stock_not_enough", part=part.name, have=await store.level(part.id, source), unit=part.unit)
        if source == WAREHOUSE and crossed_low(left + quantity, left, part.min_stock):
            used = await store.used_since(part.id, ctx.now - timedelta(days=RECENT_USE_DAYS))
            events.append(ev.StockLow(NO_JOB, None, {
                "part_id": part.id, "on_hand": left, "min_stock": part.min_stock, "used_recently": used + (quantity if kind is MovementKind.USE else 0),
                "suggestion": reorder_suggestion(left, part.min_stock, used + (quantity if kind is MovementKind.USE else 0)),
            }))
    if target is not None:
        await store.put(part.id, target, quantity, ctx.now)
    movement_id = await store.record_movement(part_id=part.id, kind=kind, quantity=quantity, source=source, target=target, actor=actor,
                                              now=ctx.now, note=note, job_id=job_id, visit_id=visit_id, request_id=request_id)
    technician = van_owner(target or "") or van_owner(source or "")
    moved = ev.StockMoved(job_id or NO_JOB, visit_id, {
        "movement_id": movement_id, "part_id": part.id, "kind": kind.value, "quantity": quantity, "from": source, "to": target,
        "technician_id": technician, "request_id": request_id,
    })
    return [moved, *events]


# --- handlers ------------------------------------------------------------------------------------------------------


async def save(ctx: HandlerContext, cmd: c.SavePart) -> tuple[PartRow, bool]:
    """The part as saved, and whether it was new (the API answers 201 or 200)."""
    spec = PartSpec(cmd.code, cmd.name, cmd.unit, cmd.price_minor, cmd.currency, cmd.category, cmd.compatible, cmd.min_stock).checked()
    store = PartsStore(ctx.store)
    part_id, created = await store.save_part(spec, ctx.now)
    return await _part(store, part_id), created


async def save_part(ctx: HandlerContext, cmd: c.SavePart) -> list[ev.Event]:
    await save(ctx, cmd)
    return []  # the catalogue is no job's: the caller is answered, the ledger starts with the first movement


async def move_stock(ctx: HandlerContext, cmd: c.MoveStock) -> list[ev.Event]:
    """A movement through the API: receive, issue, transfer, return or write off (use is recorded on a repair)."""
    try:
        kind = MovementKind(cmd.kind)
    except ValueError as exc:
        raise InvalidInput("stock_kind_invalid") from exc
    if kind in ON_REPAIR:
        raise InvalidInput("stock_use_on_repair")
    part = await _part(PartsStore(ctx.store), cmd.part_id)
    quantity = check_quantity(cmd.quantity)
    source = parse_location(cmd.source) if cmd.source else None
    target = parse_location(cmd.target) if cmd.target else None
    check_movement(kind, source, target)
    for end in (source, target):
        owner = van_owner(end or "")
        if owner is not None:
            await _technician(ctx, owner)
    return await move(ctx, part, kind, quantity, source=source, target=target, actor=cmd.actor[:100], note=cmd.note.strip()[:NOTE_CHARS])


async def request_part(ctx: HandlerContext, cmd: c.RequestPart) -> list[ev.Event]:
    await _technician(ctx, cmd.technician_id)
    store = PartsStore(ctx.store)
    part = await _part(store, cmd.part_id)
    quantity = check_quantity(cmd.quantity)
    note = cmd.note.strip()[:NOTE_CHARS]
    request_id = await store.add_request(part_id=part.id, technician_id=cmd.technician_id, quantity=quantity, note=note, now=ctx.now)
    return [ev.PartRequested(NO_JOB, None, {
        "request_id": request_id, "part_id": part.id, "quantity": quantity, "technician_id": cmd.technician_id, "note": note,
    })]


async def decide_part_request(ctx: HandlerContext, cmd: c.DecidePartRequest) -> list[ev.Event]:
    """Approve (the parts go from the warehouse into the van now, or nothing happens and the dispatcher hears how many
    are there) or decline; a request is decided once."""
    store = PartsStore(ctx.store)
    request = await store.request(cmd.request_id) if 1 <= cmd.request_id <= MAX_ID else None
    if request is None:
        raise NotFound("part_request_not_found")
    if request.status != RequestStatus.PENDING.value:
        raise DomainError("part_request_decided", status=request.status)
    part = await _part(store, request.part_id)
    if cmd.dispatcher_id is not None:  # the region rule (domain/access.py): a dispatcher kept to regions decides for their technicians
        regions = await accounts.dispatcher_regions(ctx.store, cmd.dispatcher_id)
        technician = await _technician(ctx, request.technician_id)
        served: list[str | None] = [*technician.regions] or [None]  # a technician of no region: only an unscoped dispatcher
        if not any(region_allowed(regions, region) for region in served):
            raise NotAllowed("part_request_not_your_region")
    status = RequestStatus.APPROVED if cmd.approve else RequestStatus.DECLINED
    events: list[ev.Event] = []
    actor = f"dispatcher:{cmd.dispatcher_id}" if cmd.dispatcher_id else "api"
    if cmd.approve:
        events = await move(ctx, part, MovementKind.ISSUE, request.quantity, source=WAREHOUSE, target=van(request.technician_id),
                            actor=actor, request_id=request.id, note=request.note)
    reason = cmd.reason.strip()[:NOTE_CHARS]
    if not await store.decide(request.id, status, cmd.dispatcher_id, reason, ctx.now):
        raise DomainError("part_request_decided", status="decided")
    decided = ev.PartRequestDecided(NO_JOB, None, {
        "request_id": request.id, "part_id": part.id, "quantity": request.quantity, "technician_id": request.technician_id,
        "status": status.value, "dispatcher_id": cmd.dispatcher_id, "reason": reason,
    })
    return [decided, *events]


async def _repair_in_progress(ctx: HandlerContext, visit_id: int, technician_id: int) -> tuple[Visit, Job]:
    """The technician's own repair, at work and not recorded yet: where parts are used and put back."""
    visit, job = await _technician_visit(ctx, visit_id, technician_id)
    if visit.service_kind is not ServiceKind.REPAIR:
        raise DomainError("not_a_repair")
    if visit.state not in (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS):
        raise IllegalTransition(visit.status, "use_part")
    if await PartsStore(ctx.store).completion_of(stored_id(visit)) is not None:
        raise DomainError("repair_already_recorded")
    return visit, job


async def use_part_on_repair(ctx: HandlerContext, cmd: c.UsePartOnRepair) -> list[ev.Event]:
    """Out of the technician's van onto the repair now (never below zero); its completion record lists it."""
    visit, job = await _repair_in_progress(ctx, cmd.visit_id, cmd.technician_id)
    part = await _part(PartsStore(ctx.store), cmd.part_id)
    quantity = check_quantity(cmd.quantity)
    return await move(ctx, part, MovementKind.USE, quantity, source=van(cmd.technician_id), target=None,
                      actor=f"technician:{cmd.technician_id}", job_id=job.id, visit_id=visit.id)


async def put_back_part(ctx: HandlerContext, cmd: c.PutBackPart) -> list[ev.Event]:
    """Back into the van, at most as many as this repair has used of the part."""
    visit, job = await _repair_in_progress(ctx, cmd.visit_id, cmd.technician_id)
    store = PartsStore(ctx.store)
    part = await _part(store, cmd.part_id)
    quantity = check_quantity(cmd.quantity)
    if (await store.used_on_visit(stored_id(visit))).get(part.id, 0) < quantity:
        raise DomainError("part_not_used_on_visit", part=part.name)
    return await move(ctx, part, MovementKind.PUT_BACK, quantity, source=None, target=van(cmd.technician_id),
                      actor=f"technician:{cmd.technician_id}", job_id=job.id, visit_id=visit.id)


async def record_repair_completion(ctx: HandlerContext, cmd: c.RecordRepairCompletion) -> list[ev.Event]:
    """The fault from the product category's tree, the method, the parts taken out of the technician's van (all or
    none: one part short and nothing is recorded), and the outcome; kept with the visit and on the job's timeline."""
    visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.service_kind is not ServiceKind.REPAIR:
        raise DomainError("not_a_repair")
    if visit.state is not VisitStatus.IN_PROGRESS:
        raise IllegalTransition(visit.status, "record_repair")
    store = PartsStore(ctx.store)
    if await store.completion_of(stored_id(visit)) is not None:
        raise DomainError("repair_already_recorded")
    if not tree_for(await store.fault_trees(), job.product_category).has(cmd.cause, cmd.fault, cmd.method):
        raise InvalidInput("repair_code_invalid")
    try:
        outcome = Outcome(cmd.outcome)
    except ValueError as exc:
        raise InvalidInput("repair_outcome_invalid") from exc
    events: list[ev.Event] = []
    counted = dict(await store.used_on_visit(stored_id(visit)))  # used while at work: out of the van already
    for part_id, quantity in check_used_parts(cmd.parts):
        part = await _part(store, part_id)
        events += await move(ctx, part, MovementKind.USE, quantity, source=van(cmd.technician_id), target=None,
                             actor=f"technician:{cmd.technician_id}", job_id=job.id, visit_id=visit.id)
        counted[part.id] = counted.get(part.id, 0) + quantity
    used = []
    for part_id, quantity in counted.items():
        part = await _part(store, part_id)
        used.append({"part_id": part.id, "code": part.code, "name": part.name, "quantity": quantity, "unit": part.unit,
                     "price_minor": part.price_minor, "currency": part.currency})
    note = cmd.note.strip()[:1000]
    await store.add_completion(visit_id=stored_id(visit), technician_id=cmd.technician_id, cause=cmd.cause, fault=cmd.fault,
                               method=cmd.method, outcome=outcome.value, parts=used, note=note, recorded_at=ctx.now)
    # the visit's own fields, which the job's API, the device history and completion's check read
    visit.fault_category, visit.repair_method = f"{cmd.cause}/{cmd.fault}", cmd.method
    recorded = ev.RepairRecorded(job.id if job.id else NO_JOB, visit.id, {
        "technician_id": cmd.technician_id, "cause": cmd.cause, "fault": cmd.fault, "method": cmd.method, "outcome": outcome.value,
        "parts": [{"part_id": u["part_id"], "quantity": u["quantity"]} for u in used], "note": note,
    })
    return [recorded, *events]


async def set_fault_tree(ctx: HandlerContext, cmd: c.SetFaultTree) -> list[ev.Event]:
    category = cmd.product_category.strip()
    if not category or len(category) > 100:
        raise InvalidInput("fault_tree_category_invalid")
    tree = parse_fault_tree(cmd.tree) if cmd.tree is not None else None
    await PartsStore(ctx.store).put_fault_tree(category, tree, ctx.now)
    return []


HANDLERS = (
    handles(c.SavePart, save_part),
    handles(c.MoveStock, move_stock),
    handles(c.RequestPart, request_part),
    handles(c.DecidePartRequest, decide_part_request),
    handles(c.UsePartOnRepair, use_part_on_repair),
    handles(c.PutBackPart, put_back_part),
    handles(c.RecordRepairCompletion, record_repair_completion),
    handles(c.SetFaultTree, set_fault_tree),
)


# --- reactions -------------------------------------------------------------------------------------------------------


def _part_text(part: PartRow) -> str:
    return f"{part.name} ({part.code})"


async def ask_dispatchers_to_decide(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The request in the groups of the technician's regions, with Approve and Decline."""
    store = PartsStore(ctx.store)
    part = await store.part(event.data["part_id"])
    technician = await ctx.store.get(Technician, event.data["technician_id"])
    if part is None or technician is None:
        return []
    request_id = event.data["request_id"]
    note = event.data.get("note") or ""
    text = t("stock.request_card", technician=raw(technician.name), quantity=event.data["quantity"], unit=raw(part.unit),
             part=raw(_part_text(part)), have=await store.level(part.id, WAREHOUSE), van=await store.level(part.id, van(stored_id(technician))),
             note=raw(note) if note else "-")
    keyboard = buttons([Button(t("btn.part_approve"), encode(a.ApprovePartRequest(request_id))),
                        Button(t("btn.part_decline"), encode(a.DeclinePartRequest(request_id)))])
    return await _day_alert_card(ctx, technician.regions or [""], text, keyboard, request_card(request_id))


async def _day_alert_card(ctx: HandlerContext, regions: list[str], text: dict[str, object], keyboard: tuple[tuple[Button, ...], ...],
                          card: Card) -> list[Outbound]:
    """Once to every group (and robot route) of the regions, as a card that can change in place."""
    out: dict[object, Outbound] = {}
    for region in regions:
        for message in await _region_alert(ctx, region, text, keyboard, card=card):
            out.setdefault(message.to, message)
    return list(out.values())


async def tell_about_decision(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The technician hears the answer (with what the van holds now); the groups' card loses its buttons."""
    store = PartsStore(ctx.store)
    part = await store.part(event.data["part_id"])
    technician = await ctx.store.get(Technician, event.data["technician_id"])
    if part is None or technician is None:
        return []
    approved = event.data["status"] == RequestStatus.APPROVED.value
    in_van = await store.level(part.id, van(stored_id(technician)))
    reason = event.data.get("reason") or ""
    key = "stock.request_approved" if approved else "stock.request_declined"
    to_technician = t(key, quantity=event.data["quantity"], unit=raw(part.unit), part=raw(_part_text(part)), van=in_van,
                      reason=raw(reason) if reason else "-")
    keyboard = buttons([Button(t("btn.van_stock"), encode(a.VanStock()))])
    told = _send(await _technician_chats(ctx, stored_id(technician)), to_technician, keyboard, purpose=Purpose.STATUS)
    card = t("stock.request_card_approved" if approved else "stock.request_card_declined", technician=raw(technician.name),
             quantity=event.data["quantity"], unit=raw(part.unit), part=raw(_part_text(part)), van=in_van)
    return [*told, *await _day_alert_card(ctx, technician.regions or [""], card, (), request_card(event.data["request_id"]))]


async def alert_low_stock(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A part fell to its reorder level in the warehouse: the dispatchers, with how much to order from recent use."""
    part = await PartsStore(ctx.store).part(event.data["part_id"])
    if part is None:
        return []
    text = t("stock.low_alert", part=raw(_part_text(part)), on_hand=event.data["on_hand"], unit=raw(part.unit), min=event.data["min_stock"],
             used=event.data["used_recently"], days=RECENT_USE_DAYS, suggestion=event.data["suggestion"])
    # the warehouse is the whole shop's: every dispatch group hears it, once each
    return await _day_alert(ctx, await PartsStore(ctx.store).group_regions() or [""], text)


REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (ask_dispatchers_to_decide, (ev.PartRequested,)),
    (tell_about_decision, (ev.PartRequestDecided,)),
    (alert_low_stock, (ev.StockLow,)),
)
# on the ledger and the timeline; whoever moved the stock or recorded the repair is answered where they acted
SILENT: frozenset[type[ev.Event]] = frozenset({ev.StockMoved, ev.RepairRecorded})
