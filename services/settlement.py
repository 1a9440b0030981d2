"""Review periods and settlement on the bus: a confirmed visit's fee under review, frozen by a complaint, a low rating or
an open exception until a dispatcher releases or adjusts it, ready at the period's end, and settled on a statement —
at once for per-order partners, by the monthly close for everyone else (who is told: services/settlement_notices.py)."""

from __future__ import annotations

import csv
import io
from datetime import tzinfo
from typing import Any

from domain import commands as c
from domain import events as ev
from domain.errors import NotAllowed, NotFound
from domain.fees import Money, parse_amount
from domain.model import Dispatcher, Technician, Visit, VisitStatus, stored_id
from domain.relay import NO_JOB  # the timeline key of events about no job
from domain.settlement import (
    Cycle, FreezeReason, ItemStatus, SettlementConflict, check_adjustment, check_closable, check_share, close_due_at, cycle_of, freezes,
    payout_base, ready_period, released, review_ends, share_of, statement_number,
)
from services.bus import Reaction, handles
from services.context import HandlerContext
from storage.fees import FeeStore
from storage.schedule import ScheduleStore
from storage.settlement import ItemRow, SettlementStore, StatementRow

REVIEW_TIMER = "settle_review"  # one per item: its review period's end
CLOSE_TIMER = "settle_close"  # one per month: its close, early on the first day of the next


async def payout_rule(ctx: HandlerContext, technician_id: int) -> tuple[Cycle, int]:
    """The technician's own cycle and share, else the shop's defaults (settings: settlement_cycle, payout_share_percent)."""
    own = await SettlementStore(ctx.store).payout_rule(technician_id)
    cycle, share = own if own is not None else (None, None)
    return Cycle(cycle or ctx.policy.settlement_cycle), share if share is not None else ctx.policy.payout_share_percent


# --- a confirmed visit's fee enters review ---


async def _freeze_found(ctx: HandlerContext, job_id: int, visit_id: int) -> tuple[FreezeReason, int] | None:
    """What holds a fee from the start: an exception of the visit still open, or a low rating given before it was confirmed."""
    settle = SettlementStore(ctx.store)
    exception = await settle.open_exception(visit_id)
    if exception is not None:
        return FreezeReason.EXCEPTION, exception
    rating = await settle.low_rating(job_id, visit_id, ctx.policy.low_rating_threshold)
    return (FreezeReason.LOW_RATING, rating) if rating is not None else None


async def start_review(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """A billed visit confirmed (by the customer, a dispatcher or the timeout) — or a confirmed visit's bill priced later —
    enters its review period: an item with what the technician earns by the payout rule, and a timer at the period's end.
    A bill priced again while its item is still under review (and not adjusted by hand) updates the item."""
    if event.visit_id is None:
        return []
    visit = await ctx.store.load(Visit, event.visit_id)
    if visit.state is not VisitStatus.CONFIRMED or visit.technician_id is None:
        return []  # a bill made at completion waits for the confirmation; a visit nobody did settles nothing
    bill = await FeeStore(ctx.store).bill_of_visit(stored_id(visit))
    if bill is None or bill.status != "priced":
        return []  # unpriced: the dispatchers were told; its BillIssued brings it here once priced
    settle = SettlementStore(ctx.store)
    existing = await settle.item_of_visit(stored_id(visit), for_update=True)
    base = payout_base(bill.lines)
    if existing is not None:
        if existing.status in (ItemStatus.IN_REVIEW.value, ItemStatus.FROZEN.value) and existing.adjusted_by is None:
            earned = share_of(base, existing.share_percent)
            await settle.update_item(existing.id, ctx.now, bill_id=bill.id, currency=bill.total.currency, bill_total_minor=bill.total.amount,
                                     base_minor=base, earned_minor=earned, amount_minor=earned)
        return []
    _cycle, share = await payout_rule(ctx, visit.technician_id)
    earned = share_of(base, share)
    ends = review_ends(ctx.now, ctx.policy.review_period)
    frozen = await _freeze_found(ctx, visit.job_id, stored_id(visit))
    item_id = await settle.add_item(
        visit_id=stored_id(visit), job_id=visit.job_id, technician_id=visit.technician_id, bill_id=bill.id,
        status=(ItemStatus.FROZEN if frozen else ItemStatus.IN_REVIEW).value, currency=bill.total.currency, bill_total_minor=bill.total.amount,
        base_minor=base, share_percent=share, earned_minor=earned, amount_minor=earned, confirmed_at=ctx.now, review_ends_at=ends,
        freeze_reason=frozen[0].value if frozen else None, freeze_ref=frozen[1] if frozen else None, frozen_at=ctx.now if frozen else None,
        created_at=ctx.now, updated_at=ctx.now)
    # not keyed to the visit: what cancels a visit's timers (a cancellation, an unbooking) must not end a fee's review
    await ScheduleStore(ctx.store).set_timer(key=f"settle:review:{item_id}", kind=REVIEW_TIMER, due_at=ends, now=ctx.now,
                                             technician_id=visit.technician_id, payload={"item_id": item_id, "visit_id": stored_id(visit)})
    events: list[ev.Event] = [ev.SettlementReviewStarted(visit.job_id, visit.id, {
        "item_id": item_id, "technician_id": visit.technician_id, "amount": earned, "currency": bill.total.currency,
        "review_ends_at": ends.isoformat(), "frozen": frozen[0].value if frozen else None})]
    if frozen:
        events.append(_frozen_event(visit.job_id, stored_id(visit), item_id, frozen[0], frozen[1], visit.technician_id, earned, bill.total.currency))
    return events


def _frozen_event(job_id: int, visit_id: int, item_id: int, reason: FreezeReason, ref: int | None, technician_id: int, amount: int,
                  currency: str) -> ev.SettlementFrozen:
    return ev.SettlementFrozen(job_id, visit_id, {"item_id": item_id, "reason": reason.value, "ref": ref, "technician_id": technician_id,
                                                  "amount": amount, "currency": currency})


FREEZES_ON: dict[type[ev.Event], FreezeReason] = {
    ev.ComplaintReceived: FreezeReason.COMPLAINT,
    ev.LowRatingReceived: FreezeReason.LOW_RATING,
    ev.ExceptionReported: FreezeReason.EXCEPTION,
}


async def freeze(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """A complaint, a low rating or an exception within a fee's review period freezes it: on the visit it names, or on
    every visit of its job when it names none. After the period (or once frozen, ready or settled) it changes nothing."""
    reason = next(r for kind, r in FREEZES_ON.items() if isinstance(event, kind))
    ref = event.data.get("rating_id") if reason is not FreezeReason.EXCEPTION else event.data.get("exception_id")
    settle = SettlementStore(ctx.store)
    if event.visit_id is not None:
        found = await settle.item_of_visit(event.visit_id, for_update=True)
        items = [found] if found is not None else []
    else:
        items = await settle.items(job_id=event.job_id, status=ItemStatus.IN_REVIEW.value)
    events: list[ev.Event] = []
    for item in items:
        if not freezes(ItemStatus(item.status), item.review_ends_at, ctx.now):
            continue
        await settle.update_item(item.id, ctx.now, status=ItemStatus.FROZEN.value, freeze_reason=reason.value,
                                 freeze_ref=ref if isinstance(ref, int) else None, frozen_at=ctx.now)
        events.append(_frozen_event(item.job_id, item.visit_id, item.id, reason, ref if isinstance(ref, int) else None, item.technician_id,
                                    item.amount_minor, item.currency))
    return events


# --- the review period's end ---


async def review_ended(ctx: HandlerContext, item_id: int) -> list[ev.Event]:
    """The item's timer fired: in review still, it is ready now, in the month its review ended (the current one when
    that month was closed already: a timer fired late never lands in a closed month). Frozen, it waits for a dispatcher
    (who was alerted when it froze); anything else already happened (firing again changes nothing)."""
    settle = SettlementStore(ctx.store)
    item = await settle.item(item_id)
    if item is None:
        return []
    item = await settle.item_of_visit(item.visit_id, for_update=True)
    if item is None or item.status != ItemStatus.IN_REVIEW.value or ctx.now < item.review_ends_at:
        return []
    return await _ready(ctx, item, ready_period(item.review_ends_at, ctx.now, ctx.policy.tz))


async def _ready(ctx: HandlerContext, item: ItemRow, period: str) -> list[ev.Event]:
    await SettlementStore(ctx.store).update_item(item.id, ctx.now, status=ItemStatus.READY.value, ready_at=ctx.now, period=period)
    cycle, _share = await payout_rule(ctx, item.technician_id)
    return [ev.SettlementItemReady(item.job_id, item.visit_id, {"item_id": item.id, "technician_id": item.technician_id, "period": period,
                                                                "cycle": cycle.value})]


async def settle_ready(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """A ready fee: a per-order partner's is settled on a statement of its own at once; a monthly one waits for its
    month's close, whose timer this sets (once per month: the timer's key is the month)."""
    period = event.data["period"]
    if event.data["cycle"] == Cycle.PER_ORDER.value:
        settle = SettlementStore(ctx.store)
        items = [item for item in await settle.ready_to_state(period, technician_id=event.data["technician_id"]) if item.id == event.data["item_id"]]
        return await _statements(ctx, items, period, Cycle.PER_ORDER)
    await ScheduleStore(ctx.store).set_timer(key=f"settle:close:{period}", kind=CLOSE_TIMER, due_at=close_due_at(period, ctx.policy.tz),
                                             now=ctx.now, payload={"period": period})
    return []


# --- statements ---


async def _statements(ctx: HandlerContext, items: list[ItemRow], period: str, cycle: Cycle) -> list[ev.Event]:
    """One statement per technician (and currency) of these ready items."""
    settle = SettlementStore(ctx.store)
    groups: dict[tuple[int, str], list[ItemRow]] = {}
    for item in items:
        groups.setdefault((item.technician_id, item.currency), []).append(item)
    events: list[ev.Event] = []
    for (technician_id, currency), lines in sorted(groups.items()):
        number = statement_number(period, technician_id, await settle.next_sequence(period, technician_id))
        statement_id = await settle.add_statement(number=number, technician_id=technician_id, period=period, cycle=cycle.value,
                                                  currency=currency, items=lines, now=ctx.now)
        total = sum(line.amount_minor for line in lines)
        events.append(ev.StatementIssued(NO_JOB, None, {
            "statement_id": statement_id, "number": number, "technician_id": technician_id, "period": period, "cycle": cycle.value,
            "total": total, "currency": currency, "lines": len(lines)}))
    return events


async def close_period(ctx: HandlerContext, period: str, by: str) -> list[ev.Event]:
    """The month's close: a statement per technician of everything ready in it and on none yet. Closing again makes
    nothing new (what was stated is settled); the close is on the timeline even when nothing was ready."""
    items = await SettlementStore(ctx.store).ready_to_state(period)
    events = await _statements(ctx, items, period, Cycle.MONTHLY)
    closed = ev.SettlementMonthClosed(NO_JOB, None, {"period": period, "statements": [e.data["statement_id"] for e in events], "by": by})
    return [*events, closed]


async def close_month(ctx: HandlerContext, cmd: c.CloseSettlementMonth) -> list[ev.Event]:
    period = check_closable(cmd.period, ctx.now, ctx.policy.tz)
    return await close_period(ctx, period, cmd.by)


async def fire_close(ctx: HandlerContext, period: str) -> list[ev.Event]:
    return await close_period(ctx, period, "timer")


# --- dispatchers release or adjust ---


async def _item_to_change(ctx: HandlerContext, visit_id: int, dispatcher_id: int | None) -> ItemRow:
    if dispatcher_id is not None and await ctx.store.get(Dispatcher, dispatcher_id) is None:
        raise NotAllowed("not_a_dispatcher")
    item = await SettlementStore(ctx.store).item_of_visit(visit_id, for_update=True)
    if item is None:
        raise NotFound("settle_item_not_found")
    if item.status == ItemStatus.SETTLED.value:
        raise SettlementConflict("settle_item_settled")
    return item


async def _after_release(ctx: HandlerContext, item: ItemRow, **values: Any) -> tuple[ItemStatus, str | None, list[ev.Event]]:
    """Back in review within its period; ready in the current period after it (domain.settlement.released)."""
    status, period = released(ItemStatus(item.status), item.review_ends_at, ctx.now, ctx.policy.tz)
    settle = SettlementStore(ctx.store)
    if status is ItemStatus.READY and item.status != ItemStatus.READY.value:
        assert period is not None
        await settle.update_item(item.id, ctx.now, **values)
        return status, period, await _ready(ctx, item, period)
    await settle.update_item(item.id, ctx.now, status=status.value, **values)
    return status, item.period, []


async def release(ctx: HandlerContext, cmd: c.ReleaseSettlement) -> list[ev.Event]:
    item = await _item_to_change(ctx, cmd.visit_id, cmd.dispatcher_id)
    if item.status != ItemStatus.FROZEN.value:
        raise SettlementConflict("settle_not_frozen")
    status, period, more = await _after_release(ctx, item, released_by=cmd.by[:100], released_at=ctx.now)
    return [ev.SettlementReleased(item.job_id, item.visit_id, {"item_id": item.id, "by": cmd.by, "dispatcher_id": cmd.dispatcher_id,
                                                               "status": status.value, "period": period}), *more]


async def adjust(ctx: HandlerContext, cmd: c.AdjustSettlement) -> list[ev.Event]:
    """Set the amount paid for the visit, with the reason; a frozen fee is released by it (into the current period when
    its review is over), one in review or ready keeps its place."""
    reason = check_adjustment(cmd.amount_minor, cmd.reason)
    item = await _item_to_change(ctx, cmd.visit_id, cmd.dispatcher_id)
    Money(cmd.amount_minor, item.currency)  # in range for its currency
    values: dict[str, Any] = {"amount_minor": cmd.amount_minor, "adjusted_by": cmd.by[:100], "adjust_reason": reason, "adjusted_at": ctx.now}
    if item.status == ItemStatus.FROZEN.value:
        values |= {"released_by": cmd.by[:100], "released_at": ctx.now}
        status, period, more = await _after_release(ctx, item, **values)
    else:
        await SettlementStore(ctx.store).update_item(item.id, ctx.now, **values)
        status, period, more = ItemStatus(item.status), item.period, []
    return [ev.SettlementAdjusted(item.job_id, item.visit_id, {
        "item_id": item.id, "by": cmd.by, "dispatcher_id": cmd.dispatcher_id, "earned": item.earned_minor, "amount": cmd.amount_minor,
        "currency": item.currency, "reason": reason, "status": status.value, "period": period,
        "was_frozen": item.status == ItemStatus.FROZEN.value}), *more]  # its frozen alert card then shows the outcome


async def adjust_typed(ctx: HandlerContext, cmd: c.AdjustSettlementTyped) -> list[ev.Event]:
    """"80 reason": the amount in the fee's currency, then why (both required)."""
    item = await SettlementStore(ctx.store).item_of_visit(cmd.visit_id)
    if item is None:
        raise NotFound("settle_item_not_found")
    first, _, rest = cmd.text.strip().partition(" ")
    amount = parse_amount(first, item.currency)
    return await adjust(ctx, c.AdjustSettlement(cmd.visit_id, amount.amount, rest, f"dispatcher:{cmd.dispatcher_id}", cmd.dispatcher_id))


# --- payout rules ---


async def set_payout_rule(ctx: HandlerContext, cmd: c.SetPayoutRule) -> list[ev.Event]:
    cycle = cycle_of(cmd.cycle).value if cmd.cycle is not None else None
    share = check_share(cmd.share_percent) if cmd.share_percent is not None else None
    if await ctx.store.get(Technician, cmd.technician_id) is None:
        raise NotFound("technician_not_found")
    await SettlementStore(ctx.store).set_payout_rule(cmd.technician_id, cycle, share)
    return [ev.PayoutRuleSet(NO_JOB, None, {"technician_id": cmd.technician_id, "cycle": cycle, "share_percent": share})]


# --- the statement as a spreadsheet (the API's .csv and `fieldchat settlements export`) ---

CSV_HEADER = ("statement", "technician_id", "technician", "period", "cycle", "visit_id", "job_id", "order_ref", "confirmed_on", "kind",
              "currency", "bill_total_minor", "base_minor", "share_percent", "earned_minor", "amount_minor", "amount", "adjusted_by",
              "adjust_reason", "freeze_reason", "released_by")


def _cell(text: str) -> str:
    """A spreadsheet never runs what someone typed: text starting like a formula is kept as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _decimal(minor: int, currency: str) -> str:
    return Money(minor, currency).text().split(" ", 1)[1].replace(",", "")


def statement_rows(statement: StatementRow, tz: tzinfo) -> list[list[str | int]]:
    """One row per line, each traceable to its visit and order, then the statement's total."""
    rows: list[list[str | int]] = []
    for item in statement.lines:
        rows.append([statement.number, statement.technician_id, _cell(statement.technician), statement.period, statement.cycle, item.visit_id,
                     item.job_id, _cell(item.job_ref), item.confirmed_at.astimezone(tz).date().isoformat(), item.kind, item.currency,
                     item.bill_total_minor, item.base_minor, item.share_percent, item.earned_minor, item.amount_minor,
                     _decimal(item.amount_minor, item.currency), _cell(item.adjusted_by or ""), _cell(item.adjust_reason or ""),
                     item.freeze_reason or "", _cell(item.released_by or "")])
    rows.append([statement.number, statement.technician_id, _cell(statement.technician), statement.period, statement.cycle, "", "", "", "",
                 "total", statement.currency, "", "", "", "", statement.total_minor, _decimal(statement.total_minor, statement.currency),
                 "", "", "", ""])
    return rows


def statements_csv(statements: list[StatementRow], tz: tzinfo) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for statement in statements:
        writer.writerows(statement_rows(statement, tz))
    return buffer.getvalue()


HANDLERS = (
    handles(c.ReleaseSettlement, release),
    handles(c.AdjustSettlement, adjust),
    handles(c.AdjustSettlementTyped, adjust_typed),
    handles(c.CloseSettlementMonth, close_month),
    handles(c.SetPayoutRule, set_payout_rule),
)

REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (start_review, (ev.VisitConfirmed, ev.BillIssued)),
    (freeze, (ev.ComplaintReceived, ev.LowRatingReceived, ev.ExceptionReported)),
    (settle_ready, (ev.SettlementItemReady,)),
)

# answered where they were done (the dispatcher in the group, the API, the CLI) or told by what follows them (a ready
# fee by its statement); the review's start is on the job's timeline. A release changes the frozen alert card
# (services/settlement_notices.py), so it is not silent
SILENT: frozenset[type[ev.Event]] = frozenset({
    ev.SettlementReviewStarted, ev.SettlementMonthClosed, ev.PayoutRuleSet})
