"""Who hears about a source's order changes: the customer and the technicians of an updated job, the dispatchers of a
cancelled one, and the dispatchers of a region nobody can serve."""

from __future__ import annotations

from typing import Any

from domain import events as ev
from domain.model import Job, Visit, VisitStatus, stored_id
from domain.orders import ADDRESS_REMOVED
from services import actions as a
from services.actions import encode
from services.context import HandlerContext
from services.messages import Button, Keyboard, Outbound, Purpose, Text, buttons, t
from services.notifications import (
    _customer_chats,
    _masked_job,
    _next_step_buttons,
    _region_alert,
    _send,
    _technician_chats,
    kind_label,
    visit_actions,
)

LIVE = (VisitStatus.CREATED, VisitStatus.BOOKED, VisitStatus.ACCEPTED)
TOLD_FIELDS = ("address_text", "product_name", "items", "notes", "priority")


def _what(changes: dict[str, Any], added: int, cancelled: int, changed: int) -> Text:
    """The change in a few words the reader's catalog has; details stay on the job's timeline."""
    parts = [t(f"order.changed_{name}") for name in TOLD_FIELDS if name in changes]
    if "lat" in changes and "address_text" not in changes:
        parts.append(t("order.changed_address_text"))
    if added:
        parts.append(t("order.changed_visits_added", n=added))
    if cancelled:
        parts.append(t("order.changed_visits_cancelled", n=cancelled))
    if changed or {"volume_liters", "product_category", "brand", "region"} & set(changes):
        parts.append(t("order.changed_work"))
    return _join(parts)


def _join(parts: list[Text]) -> Text:
    # the catalogs join with their own comma; up to four parts named, which is all an order change has
    parts = parts[:4] or [t("order.changed_work")]
    return t(f"order.parts_{len(parts)}", **{f"p{i}": p for i, p in enumerate(parts)})


async def tell_customer_order_updated(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job = await ctx.store.load(Job, event.job_id)
    visits = [v for v in await ctx.store.visits_of_job(event.job_id) if v.state in LIVE]
    what = _what(event.data["changes"], len(event.data["visits_added"]), len(event.data["visits_cancelled"]), len(event.data["visits_changed"]))
    keyboard: Keyboard = ()
    first = visits[0] if visits else None
    if first is not None and first.state is VisitStatus.CREATED and first.depends_on_visit_id is None:
        keyboard = buttons([Button(t("btn.book"), encode(a.Book(stored_id(first))))])
        text = t("order.customer_updated_book", order=job.external_ref, what=what)
    elif first is not None and first.state is not VisitStatus.CREATED:
        keyboard = buttons([Button(t("btn.reschedule"), encode(a.Reschedule(stored_id(first))))])
        text = t("order.customer_updated_keep", order=job.external_ref, what=what)
    else:
        text = t("order.customer_updated", order=job.external_ref, what=what)
    return _send(await _customer_chats(ctx, job), text, keyboard, purpose=Purpose.STATUS)


async def tell_technicians_order_updated(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Whoever has a visit of the job (lead or crew) hears what changed, with the button that moves their visit on."""
    job = await ctx.store.load(Job, event.job_id)
    what = _what(event.data["changes"], len(event.data["visits_added"]), len(event.data["visits_cancelled"]), len(event.data["visits_changed"]))
    out: list[Outbound] = []
    for visit in await ctx.store.visits_of_job(event.job_id):
        if visit.state not in (VisitStatus.BOOKED, VisitStatus.ACCEPTED) or stored_id(visit) in event.data["visits_cancelled"]:
            continue
        text = t("order.technician_updated", visit=stored_id(visit), kind=kind_label(visit.kind), what=what,
                 address=job.address_text, minutes=visit.duration_minutes)
        for member in (visit.technician_id, *visit.crew_ids):
            keyboard = _next_step_buttons(visit) if member == visit.technician_id else ()
            out += _send(await _technician_chats(ctx, member), text, keyboard, purpose=Purpose.ASSIGNMENT)
    return out


async def alert_dispatchers_order_cancelled(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The source called it off: a slot may be free now. Its technicians and customer hear through VisitCancelled."""
    job = await ctx.store.load(Job, event.job_id)
    reason: Text | str = event.data.get("reason") or "-"
    if reason == ADDRESS_REMOVED:  # not the source's words: this address went out of an order at several (services.intake)
        reason = t("order.reason_address_removed")
    text = t("order.group_cancelled", order=job.external_ref, source=event.data["source"], reason=reason,
             visits=len(event.data["visits"]), **await _masked_job(ctx, job))
    return await _region_alert(ctx, job.region, text)


async def alert_dispatchers_coverage_gap(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Nobody on the roster can do this work here: someone must find a technician (or a partner) or call it off."""
    job = await ctx.store.load(Job, event.job_id)
    visits: list[Visit] = [v for v in await ctx.store.visits_of_job(event.job_id) if v.kind in event.data["kinds"] and v.state in LIVE]
    kinds = [kind_label(k) for k in event.data["kinds"]]
    # the region named is the job's own (the masked job carries it), the one nobody serves
    text = t("order.group_coverage_gap", order=job.external_ref, kinds=_join(kinds), **await _masked_job(ctx, job))
    keyboard = visit_actions(stored_id(visits[0]), assign=True) if visits else ()
    return await _region_alert(ctx, job.region, text, keyboard)
