"""Who hears about settlement (issue 14 part 7): the region's dispatchers when a fee freezes (Release / Adjust), the
technician when their fee is adjusted, and the technician's statement in their staff chat."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from domain import events as ev
from domain.fees import Money
from domain.model import Dispatcher, Job, Technician, Visit, stored_id
from services import actions as a
from services.actions import encode
from services.bus import Reaction
from services.context import HandlerContext
from services.lookups import visit_of
from services.messages import Button, Card, Outbound, Purpose, Text, buttons, day_of, raw, t
from services.notifications import ROBOT_PLATFORM, _masked_job, _region_alert, _send, _technician_chats, kind_label
from storage.settlement import ItemRow, SettlementStore, StatementRow

SHOWN_LINES = 30  # a statement in chat lists this many lines; the CSV has them all


def _money(minor: int, currency: str) -> str:
    return Money(minor, currency).text()


def frozen_card(item_id: int) -> Card:
    """A frozen fee's alert in each dispatch group: releasing or adjusting it edits that card (its buttons go)."""
    return ("settle_frozen", item_id)


async def alert_dispatchers_frozen(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The region's dispatchers decide: release the fee as it is, or adjust what it pays (typed in the group)."""
    visit = await ctx.store.load(Visit, visit_of(event))
    job = await ctx.store.load(Job, visit.job_id)
    technician = await ctx.store.get(Technician, event.data["technician_id"])
    keyboard = buttons([Button(t("btn.settle_release"), encode(a.SettleRelease(stored_id(visit)))),
                        Button(t("btn.settle_adjust"), encode(a.SettleAdjust(stored_id(visit))))],
                       [Button(t("btn.call"), encode(a.CallDetails(stored_id(visit))))])
    text = t("settle.group_frozen", visit=visit.id, order=job.id, kind=kind_label(visit.kind), why=t(f"settle.reason_{event.data['reason']}"),
             technician=raw(technician.name if technician else "-"), amount=_money(event.data["amount"], event.data["currency"]),
             **await _masked_job(ctx, job))
    return await _region_alert(ctx, job.region, text, keyboard, card=frozen_card(event.data["item_id"]))


async def refresh_frozen_card(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Released or adjusted: the frozen fee's alert says by whom and what it pays now, without its buttons (both are
    stale). Only the groups' cards change (a robot's message cannot be edited); an adjustment of a fee that was not
    frozen had no card."""
    if isinstance(event, ev.SettlementAdjusted) and not event.data.get("was_frozen"):
        return []
    item = await SettlementStore(ctx.store).item(event.data["item_id"])
    assert item is not None
    dispatcher = await ctx.store.get(Dispatcher, event.data.get("dispatcher_id"))
    params: dict[str, Any] = {"visit": item.visit_id, "order": item.job_id, "kind": kind_label(item.kind),
                              "name": raw(dispatcher.name if dispatcher else event.data.get("by") or "-"),
                              "amount": _money(item.amount_minor, item.currency)}
    if isinstance(event, ev.SettlementAdjusted):
        text = t("settle.group_frozen_adjusted", earned=_money(item.earned_minor, item.currency), reason=raw(event.data["reason"]), **params)
    else:
        text = t("settle.group_frozen_released", **params)
    return [message for message in await _region_alert(ctx, item.region, text, (), card=frozen_card(item.id))
            if message.to is not None and message.to.platform != ROBOT_PLATFORM]


async def tell_technician_adjusted(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    item = await SettlementStore(ctx.store).item(event.data["item_id"])
    assert item is not None
    text = t("settle.tech_adjusted", visit=item.visit_id, earned=_money(event.data["earned"], item.currency),
             amount=_money(event.data["amount"], item.currency), reason=raw(event.data["reason"]))
    return _send(await _technician_chats(ctx, item.technician_id), text, purpose=Purpose.STATUS)


OWN_REFERENCES = ("chat", "maintenance")  # sources whose references fieldchat made up: the customer knows the job's number


def order_label(item: ItemRow) -> str:
    """The order as the technician knows it: the job's number, with the shop's own reference where it has one."""
    if item.job_source in OWN_REFERENCES or not item.job_ref:
        return f"#{item.job_id}"
    return f"#{item.job_id} {item.job_ref}"


def line_text(item: ItemRow, tz: tzinfo) -> Text:
    """One line of a statement as the technician reads it: the visit, its order, the day, the work, the bill, the share,
    what it pays (and why it differs, when adjusted)."""
    params: dict[str, Any] = {
        "visit": item.visit_id, "order": order_label(item), "day": day_of(item.confirmed_at.astimezone(tz).date()), "kind": kind_label(item.kind),
        "bill": _money(item.bill_total_minor, item.currency), "share": item.share_percent, "amount": _money(item.amount_minor, item.currency)}
    if item.adjusted_by is not None:
        return t("settle.line_adjusted", earned=_money(item.earned_minor, item.currency), reason=raw(item.adjust_reason or ""), **params)
    return t("settle.line", **params)


def statement_text(statement: StatementRow, tz: tzinfo) -> Text:
    lines = [line_text(item, tz) for item in statement.lines[:SHOWN_LINES]]
    total = _money(statement.total_minor, statement.currency)
    if statement.line_count > SHOWN_LINES:
        return t("settle.statement_more", number=statement.number, period=statement.period, lines=lines, shown=SHOWN_LINES,
                 count=statement.line_count, total=total)
    return t("settle.statement", number=statement.number, period=statement.period, lines=lines, count=statement.line_count, total=total)


async def send_statement(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The statement in the technician's staff chat: every line and the total, and how to ask about it."""
    statement = await SettlementStore(ctx.store).statement(event.data["statement_id"])
    assert statement is not None
    return _send(await _technician_chats(ctx, statement.technician_id), statement_text(statement, ctx.policy.tz), purpose=Purpose.STATUS)


REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (alert_dispatchers_frozen, (ev.SettlementFrozen,)),
    (tell_technician_adjusted, (ev.SettlementAdjusted,)),
    (refresh_frozen_card, (ev.SettlementReleased, ev.SettlementAdjusted)),
    (send_statement, (ev.StatementIssued,)),
)
