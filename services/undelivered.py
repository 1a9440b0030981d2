"""One message that could not reach a person's chat: the dispatchers of every open job it matters for are told."""

from __future__ import annotations

from domain import events as ev
from domain import lifecycle
from domain.model import stored_id
from services.context import HandlerContext


async def message_not_delivered(
    ctx: HandlerContext, platform: str, bot: str, chat_id: str, *, purpose: str, why: str, reason: str,
) -> list[ev.Event]:
    """``why``: window (outside the person's session window, no template fits the message's purpose) or failed (the
    platform reported the message failed). The chat itself stays open: the person's next message reopens it."""
    events: list[ev.Event] = []
    data = {"purpose": purpose, "why": why, "reason": reason[:300]}
    customer = await ctx.store.binding(platform, bot, chat_id, "customer")
    if customer is not None:
        for job in await ctx.store.jobs_of_customer(customer.subject_id):
            events.append(ev.MessageNotDelivered(stored_id(job), None, {"who": "customer", **data}))
    technician = await ctx.store.binding(platform, bot, chat_id, "technician")
    if technician is not None:
        for visit in await ctx.store.visits_of_technician(technician.subject_id, lifecycle.OPEN):
            events.append(ev.MessageNotDelivered(visit.job_id, visit.id, {"who": "technician", "technician_id": technician.subject_id, **data}))
    return events
