"""Fees on the bus: the price list, the bill a completed visit gets (labour from the price list, parts at their price),
who is told about it, and payments recorded on it by the back office or the visit's technician."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain import commands as c
from domain import events as ev
from domain.errors import DomainError, IllegalTransition, InvalidInput, NotAllowed, NotFound
from domain.fees import (
    BillLine, BillStatus, Money, PaymentMethod, PriceEntry, PriceKey, Pricing, check_payment, currency_of, labour_line, parse_amount,
    part_line, price_for, total,
)
from domain.model import Job, ServiceKind, Visit, VisitStatus, stored_id
from domain.price_changes import change_lines
from domain.relay import NO_JOB  # the timeline key of events about no job
from services import actions as a
from services.actions import encode
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.messages import Button, Outbound, Purpose, Text, buttons, t
from services.notifications import _customer_chats, _masked_job, _region_alert, _send, _technician_chats, kind_label
from storage.fees import BillRow, FeeStore
from storage.price_changes import PriceChangeStore
from storage.parts import PartsStore

BILLED = (VisitStatus.COMPLETED, VisitStatus.CONFIRMED)  # a visit's bill is made at completion and may be priced later



# --- the price list ---


def entry_of(cmd: c.PutPriceEntry) -> PriceEntry:
    """The command as a checked entry: a known work type, pricing and currency; the domain checks the rest."""
    try:
        ServiceKind(cmd.service_kind)
    except ValueError as err:
        raise InvalidInput("fee_service_kind_unknown", kind=cmd.service_kind) from err
    try:
        pricing = Pricing(cmd.pricing)
    except ValueError as err:
        raise InvalidInput("fee_pricing_unknown", pricing=cmd.pricing) from err
    return PriceEntry(cmd.service_kind, cmd.product_category.strip(), cmd.region.strip(), cmd.urgency, pricing,
                      Money(cmd.unit_price_minor, currency_of(cmd.currency)), cmd.hour_step_minutes, cmd.name.strip())


async def put_price_entry(ctx: HandlerContext, cmd: c.PutPriceEntry) -> list[ev.Event]:
    entry = entry_of(cmd)
    entry_id = await FeeStore(ctx.store).put_entry(entry, ctx.now)
    return [ev.PriceListChanged(NO_JOB, None, {
        "entry_id": entry_id, "service_kind": entry.service_kind, "product_category": entry.product_category, "region": entry.region,
        "urgency": entry.urgency, "pricing": entry.pricing.value, "unit_price": entry.unit_price.amount, "currency": entry.unit_price.currency,
    })]


# --- the bill ---


def price_key(job: Job, visit: Visit) -> PriceKey:
    """A visit is priced by its work type, the category of what it serves (the job's product unless its lines say),
    the job's region and its urgency."""
    category = visit.categories[0] if visit.categories else job.product_category
    return PriceKey(visit.kind, category, job.region, job.priority if job.priority in ("normal", "urgent") else "normal")


def pieces_of(job: Job) -> int:
    """The pieces the job serves: its lines' quantities (an order without lines is one piece)."""
    count = 0
    for item in job.items:
        quantity = item.get("quantity", item.get("qty", 1))
        count += quantity if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity > 0 else 1
    return max(1, count)


async def minutes_on_site(ctx: HandlerContext, visit: Visit) -> int:
    """Time worked: from the visit's last start (else its check-in) on the timeline until now, when it completes;
    the planned duration when neither was recorded (a visit completed by the back office)."""
    rows = [r for r in await ctx.store.timeline(visit.job_id) if r["visit_id"] == visit.id]
    started = [r["occurred_at"] for r in rows if r["type"] == "VisitStarted"] or [r["occurred_at"] for r in rows if r["type"] == "VisitCheckedIn"]
    if not started:
        return visit.duration_minutes
    since: datetime = max(started)
    return max(0, int((ctx.now - since).total_seconds() // 60))


async def _parts(ctx: HandlerContext, visit_id: int) -> list[BillLine]:
    """The parts the visit used, from its repair record (storage/parts.py), at the price they had when used; before the
    record is kept (a price talked over at work), those fitted so far at their catalogue price."""
    store = PartsStore(ctx.store)
    record = await store.completion_of(visit_id)
    if record is None:
        fitted = await store.used_on_visit(visit_id)
        rows = await store.parts(fitted) if fitted else []
        return [part_line(part.id, part.name, fitted[part.id], part.unit or "piece", Money(part.price_minor, part.currency))
                for part in rows]
    return [part_line(used["part_id"], used["name"], used["quantity"], used.get("unit") or "piece", Money(used["price_minor"], used["currency"]))
            for used in record["parts"]]


async def _price(ctx: HandlerContext, job: Job, visit: Visit, bill_id: int | None) -> list[ev.Event]:
    """Make (or make again) the visit's bill: priced when the list has an entry for it and every line is in its
    currency; else unpriced (nothing owed) with the reason, and never an error that would undo the completion."""
    fees = FeeStore(ctx.store)
    entries = await fees.entries(service_kind=visit.kind)
    key = price_key(job, visit)
    entry = price_for(entries, key)
    base = {"service_kind": key.service_kind, "product_category": key.product_category, "region": key.region, "urgency": key.urgency}
    parts: list[BillLine] = []
    priced: tuple[list[BillLine], Money] | None = None
    reason = "no_price"
    try:
        parts = await _parts(ctx, stored_id(visit))
        if entry is not None:
            labour = labour_line(entry, pieces=pieces_of(job), minutes=await minutes_on_site(ctx, visit), description=entry.name or visit.kind)
            lines = [labour, *parts]
            # accepted price changes (services/price_changes.py): increases the customer agreed to, a manager's discounts
            lines += change_lines(await PriceChangeStore(ctx.store).billed_of_visit(stored_id(visit)), total(lines, entry.unit_price.currency))
            priced = lines, total(lines, entry.unit_price.currency)  # a part priced in another currency is refused, not converted
    except DomainError as err:
        reason = err.code
    if entry is not None and priced is not None:
        lines, amount = priced
        bill_id = await fees.save_bill(bill_id=bill_id, job_id=stored_id(job), visit_id=stored_id(visit), status=BillStatus.PRICED.value,
                                       currency=amount.currency, lines=lines, total=amount, price_entry_id=entry.id, now=ctx.now)
        return [ev.BillIssued(stored_id(job), stored_id(visit), {"bill_id": bill_id, "total": amount.amount, "currency": amount.currency,
                                                                 "entry_id": entry.id, **base})]
    # nothing is owed until a price is set: the parts in the bill's currency stay listed, their sum for reference
    currency = entry.unit_price.currency if entry else (entries or await fees.entries())[0].unit_price.currency
    listed = [line for line in parts if line.amount.currency == currency]
    bill_id = await fees.save_bill(bill_id=bill_id, job_id=stored_id(job), visit_id=stored_id(visit), status=BillStatus.UNPRICED.value,
                                   currency=currency, lines=listed, total=total(listed, currency), price_entry_id=None, now=ctx.now)
    return [ev.BillUnpriced(stored_id(job), stored_id(visit), {"bill_id": bill_id, "reason": reason, **base})]


async def bill_completed_visit(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """A completed visit gets its bill, once. A shop with no price list at all does not bill through fieldchat."""
    fees = FeeStore(ctx.store)
    if event.visit_id is None or not await fees.has_entries() or await fees.bill_id_of(event.visit_id) is not None:
        return []
    visit = await ctx.store.load(Visit, event.visit_id)
    job = await ctx.store.load(Job, visit.job_id)
    return await _price(ctx, job, visit, None)


async def issue_bill(ctx: HandlerContext, cmd: c.IssueBill) -> list[ev.Event]:
    """Price a completed visit's bill again, after the price list got an entry for it; a priced bill stays as it is."""
    visit = await ctx.store.get(Visit, cmd.visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    if visit.state not in BILLED:
        raise IllegalTransition(visit.status, "bill")
    fees = FeeStore(ctx.store)
    bill_id = await fees.bill_id_of(cmd.visit_id, for_update=True)
    if bill_id is not None and (await fees.bill(bill_id)).status == BillStatus.PRICED.value:  # type: ignore[union-attr]
        raise IllegalTransition(BillStatus.PRICED.value, "bill")
    job = await ctx.store.load(Job, visit.job_id)
    if price_for(await fees.entries(service_kind=visit.kind), price_key(job, visit)) is None:
        raise InvalidInput("no_price_for_visit")  # the price list still has none: nothing changes, nobody is told again
    events = await _price(ctx, job, visit, bill_id)
    if not any(isinstance(e, ev.BillIssued) for e in events):
        raise InvalidInput(events[0].data["reason"])
    return events


# --- payments ---


async def record_payment(ctx: HandlerContext, cmd: c.RecordPayment) -> list[ev.Event]:
    """A payment on the visit's bill: never negative, never more than is owed, in the bill's currency; the bill's row
    lock makes two payments at once take turns, so together they cannot pay more than was owed either."""
    try:
        method = PaymentMethod(cmd.method)
    except ValueError as err:
        raise InvalidInput("payment_method_unknown", method=cmd.method) from err
    amount = Money(cmd.amount_minor, currency_of(cmd.currency))
    fees = FeeStore(ctx.store)
    bill_id = await fees.bill_id_of(cmd.visit_id, for_update=True)
    if bill_id is None:
        raise NotFound("bill_not_found")
    bill = await fees.bill(bill_id)
    assert bill is not None
    if bill.status != BillStatus.PRICED.value:
        raise InvalidInput("bill_unpriced")
    if cmd.technician_id is not None:
        visit = await ctx.store.load(Visit, cmd.visit_id)
        if cmd.technician_id != visit.technician_id and cmd.technician_id not in visit.crew_ids:
            raise NotAllowed("not_your_visit")
    reference = (cmd.reference or "").strip()[:100] or None
    check_payment(amount, method=method, reference=reference, owed=bill.outstanding)
    payment_id = await fees.add_payment(bill_id, amount, method, reference, cmd.recorded_by, ctx.now)
    outstanding = bill.outstanding - amount
    return [ev.PaymentRecorded(bill.job_id, bill.visit_id, {
        "bill_id": bill_id, "payment_id": payment_id, "amount": amount.amount, "currency": amount.currency, "method": method.value,
        "outstanding": outstanding.amount, "technician_id": cmd.technician_id,
    })]


async def record_typed_payment(ctx: HandlerContext, cmd: c.RecordPaymentTyped) -> list[ev.Event]:
    """The technician's typed amount, read in the bill's currency; the rest of the text is the payment's reference."""
    bill = await FeeStore(ctx.store).bill_of_visit(cmd.visit_id)
    if bill is None:
        raise NotFound("bill_not_found")
    first, _, rest = cmd.text.strip().partition(" ")
    amount = parse_amount(first, bill.total.currency)
    return await record_payment(ctx, c.RecordPayment(cmd.visit_id, amount.amount, amount.currency, cmd.method, rest.strip() or None,
                                                     f"technician:{cmd.technician_id}", cmd.technician_id))


# --- who is told ---


def line_text(line: BillLine, kind: str) -> Text:
    what: Text | str = kind_label(kind) if line.kind == "labour" and line.description == kind else line.description
    if line.kind in ("increase", "discount"):  # a price change (services/price_changes.py): said as one, with its reason
        return t(f"pricechg.line_{line.kind}", what=line.description, amount=line.amount.text())
    if line.unit == "minute":
        return t("fees.line_hours", what=what, hours=f"{line.quantity / 60:g}", price=line.unit_price.text(), amount=line.amount.text())
    if line.quantity == 1:
        return t("fees.line_once", what=what, amount=line.amount.text())
    return t("fees.line_pieces", what=what, qty=line.quantity, price=line.unit_price.text(), amount=line.amount.text())


def bill_text(bill: BillRow, kind: str) -> Text:
    """The bill as the customer and the technician read it: each line, the total, and what is still owed."""
    lines: list[Any] = [line_text(line, kind) for line in bill.lines]
    if bill.paid.amount:
        return t("fees.bill_part_paid", visit=bill.visit_id, kind=kind_label(kind), lines=lines, total=bill.total.text(),
                 paid=bill.paid.text(), owed=bill.outstanding.text())
    return t("fees.bill", visit=bill.visit_id, kind=kind_label(kind), lines=lines, total=bill.total.text())


async def _bill_and_job(ctx: HandlerContext, event: ev.Event) -> tuple[BillRow, Job, Visit]:
    bill = await FeeStore(ctx.store).bill(event.data["bill_id"])
    assert bill is not None
    return bill, await ctx.store.load(Job, bill.job_id), await ctx.store.load(Visit, bill.visit_id)


async def tell_customer_bill(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The bill in the customer's chat; a question about it is simply typed back (it reaches a person)."""
    bill, job, visit = await _bill_and_job(ctx, event)
    return _send(await _customer_chats(ctx, job), bill_text(bill, visit.kind), purpose=Purpose.STATUS)


async def ask_technician_to_record_payment(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The technician sees the bill too, with the way to record what the customer paid them on site."""
    bill, _job, visit = await _bill_and_job(ctx, event)
    if bill.total.amount <= 0:
        return []
    keyboard = buttons([Button(t("btn.record_payment"), encode(a.RecordPaymentAsk(stored_id(visit))))])
    text = t("fees.tech_bill", visit=bill.visit_id, kind=kind_label(visit.kind), lines=[line_text(line, visit.kind) for line in bill.lines],
             total=bill.total.text(), owed=bill.outstanding.text())
    return _send(await _technician_chats(ctx, visit.technician_id), text, keyboard, purpose=Purpose.STATUS)


async def tell_customer_bill_follows(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    _bill, job, visit = await _bill_and_job(ctx, event)
    return _send(await _customer_chats(ctx, job), t("fees.bill_follows", visit=visit.id, kind=kind_label(visit.kind)), purpose=Purpose.STATUS)


async def alert_dispatchers_bill_unpriced(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """No price fits the visit: the dispatchers set one (or agree it with the customer first), never a silent 0."""
    _bill, job, visit = await _bill_and_job(ctx, event)
    data = event.data
    key = "fees.group_unpriced" if data.get("reason") == "no_price" else "fees.group_unpriced_currency"
    # the region shown is the job's own (the masked job carries it), the one the price was looked up for
    text = t(key, visit=visit.id, kind=kind_label(visit.kind), category=data["product_category"], urgency=data["urgency"],
             **await _masked_job(ctx, job))
    keyboard = buttons([Button(t("btn.call"), encode(a.CallDetails(stored_id(visit)))),
                        Button(t("btn.dispatch_note"), encode(a.NoteAsk(stored_id(job))))])
    return await _region_alert(ctx, job.region, text, keyboard)


async def tell_customer_payment(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A receipt: what was received and what is still owed (or that the bill is settled)."""
    bill, job, visit = await _bill_and_job(ctx, event)
    received = Money(event.data["amount"], event.data["currency"]).text()
    method = t(f"fees.method_{event.data['method']}")
    if event.data["outstanding"] > 0:
        text = t("fees.payment_received_part", visit=visit.id, amount=received, method=method,
                 owed=Money(event.data["outstanding"], event.data["currency"]).text())
    else:
        text = t("fees.payment_received_all", visit=visit.id, amount=received, method=method)
    return _send(await _customer_chats(ctx, job), text, purpose=Purpose.STATUS)


HANDLERS = (
    handles(c.PutPriceEntry, put_price_entry),
    handles(c.IssueBill, issue_bill),
    handles(c.RecordPayment, record_payment),
    handles(c.RecordPaymentTyped, record_typed_payment),
)

REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (bill_completed_visit, (ev.VisitCompleted,)),
    (tell_customer_bill, (ev.BillIssued,)),
    (ask_technician_to_record_payment, (ev.BillIssued,)),
    (tell_customer_bill_follows, (ev.BillUnpriced,)),
    (alert_dispatchers_bill_unpriced, (ev.BillUnpriced,)),
    (tell_customer_payment, (ev.PaymentRecorded,)),
)

# answered where it was done (the API): the price list tells nobody
SILENT: frozenset[type[ev.Event]] = frozenset({ev.PriceListChanged})
