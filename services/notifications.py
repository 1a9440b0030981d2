"""Who is told what when a domain event happens: events become outbound messages to other chats."""

from __future__ import annotations

from domain import events as ev
from domain.masking import mask_address, mask_name, mask_phone
from domain.model import ChatBinding, Customer, Job, ProblemReport, Technician, Visit
from conversations.messages import Button, ChatRef, Outbound, buttons, raw, span, t
from services.handlers import HandlerContext


def _to(binding: ChatBinding) -> ChatRef:
    return ChatRef(binding.platform, binding.bot, binding.chat_id)


def kind_label(kind: str) -> dict:
    return t(f"kind.{kind}")


def offer_card(visit: Visit, job: Job, customer: Customer) -> tuple[dict, tuple]:
    """The offer a technician sees: what, when, where, for whom, with Accept / Decline."""
    text = t(
        "tech.offer",
        visit=visit.id,
        kind=kind_label(visit.kind),
        product=job.product_name,
        slot=span(visit.slot_start, visit.slot_end),
        address=job.address_text,
        customer=customer.name,
        phone=customer.phone,
    )
    keyboard = buttons([Button(t("btn.accept"), f"acc:{visit.id}"), Button(t("btn.decline"), f"dec:{visit.id}")])
    return text, keyboard


async def _customer_chats(ctx: HandlerContext, job: Job) -> list[ChatBinding]:
    return await ctx.store.bindings_of("customer", job.customer_id)


async def _technician_chats(ctx: HandlerContext, technician_id: int | None) -> list[ChatBinding]:
    return await ctx.store.bindings_of("technician", technician_id) if technician_id else []


async def _group_chats(ctx: HandlerContext, job: Job) -> list[ChatBinding]:
    chats: list[ChatBinding] = []
    for group in await ctx.store.groups_for_region(job.region):
        chats.extend(await ctx.store.bindings_of("group", group.id))
    return chats


def _send(chats: list[ChatBinding], text: dict, keyboard: tuple = ()) -> list[Outbound]:
    return [Outbound(text, keyboard, to=_to(chat), language=chat.language) for chat in chats]


def offer_key(offer_id: int, chat: ChatBinding) -> str:
    """The outbox key of a grab-offer card, so closing the offer can edit that very card."""
    return f"offer:{offer_id}:{chat.id}"


def _masked_job(job: Job, customer: Customer) -> dict:
    return {
        "customer": mask_name(customer.name),
        "phone": mask_phone(customer.phone),
        "address": mask_address(job.address_text),
        "product": job.product_name,
        "region": job.region,
    }


async def notifications_for(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job = await ctx.store.get(Job, event.job_id)
    visit = await ctx.store.get(Visit, event.visit_id) if event.visit_id else None
    customer = await ctx.store.get(Customer, job.customer_id)
    data = event.data
    technician = await ctx.store.get(Technician, data.get("technician_id")) if data.get("technician_id") else None
    name = technician.name if technician else ""

    match event:
        case ev.OfferMade() | ev.VisitReassigned():
            text, keyboard = offer_card(visit, job, customer)
            out = _send(await _technician_chats(ctx, visit.technician_id), text, keyboard)
            previous = data.get("previous_technician_id")
            if previous:
                out += _send(await _technician_chats(ctx, previous), t("tech.visit_taken_away", visit=visit.id))
            return out
        case ev.OffersBroadcast():
            text, keyboard = offer_card(visit, job, customer)
            out = []
            for offer_id, technician_id in data["offers"]:
                for chat in await _technician_chats(ctx, technician_id):
                    out.append(Outbound(text, keyboard, to=_to(chat), language=chat.language, dedup=offer_key(offer_id, chat)))
            return out
        case ev.OffersClosed():
            out = []
            for offer_id, technician_id in data["offers"]:
                for chat in await _technician_chats(ctx, technician_id):
                    closed = t(f"tech.offer_{data['outcome']}", visit=visit.id, kind=kind_label(visit.kind))
                    out.append(Outbound(closed, to=_to(chat), language=chat.language, edit_of=offer_key(offer_id, chat)))
            return out
        case ev.ManualDispatchNeeded():
            names = {t.id: t.name for t in await ctx.store.technicians()}
            rows = [[Button(raw(names[tid]), f"as:{visit.id}:{tid}")] for tid in data["candidates"][:8] if tid in names]
            text = t("group.pick_technician", visit=visit.id, kind=kind_label(visit.kind), slot=span(visit.slot_start, visit.slot_end), **_masked_job(job, customer))
            return _send(await _group_chats(ctx, job), text, buttons(*rows))
        case ev.NoTechnicianAvailable():
            text = t("group.no_technician", visit=visit.id, kind=kind_label(visit.kind), slot=span(visit.slot_start, visit.slot_end), **_masked_job(job, customer))
            return _send(await _group_chats(ctx, job), text)
        case ev.VisitAccepted():
            return _send(
                await _customer_chats(ctx, job),
                t("customer.assigned", kind=kind_label(visit.kind), technician=name, slot=span(visit.slot_start, visit.slot_end)),
            )
        case ev.VisitEnRoute():
            return _send(await _customer_chats(ctx, job), t("customer.en_route", kind=kind_label(visit.kind), technician=name))
        case ev.VisitCheckedIn():
            return _send(await _customer_chats(ctx, job), t("customer.arrived", technician=name))
        case ev.VisitCompleted():
            keyboard = buttons([Button(t("btn.confirm_done"), f"cf:{visit.id}")])
            return _send(await _customer_chats(ctx, job), t("customer.completed", kind=kind_label(visit.kind), technician=name), keyboard)
        case ev.VisitConfirmed():
            return _send(await _technician_chats(ctx, visit.technician_id), t("tech.confirmed_by_customer", visit=visit.id))
        case ev.ExceptionReported():
            report = await ctx.store.get(ProblemReport, data["exception_id"])
            text = t(
                "group.exception",
                exception=report.id,
                visit=visit.id,
                kind=kind_label(visit.kind),
                reason=t(f"reason.{report.reason}"),
                note=report.note or "-",
                photos=len(report.photo_ids),
                technician=name,
                **_masked_job(job, customer),
            )
            keyboard = buttons(
                [Button(t("btn.acknowledge"), f"xa:{report.id}"), Button(t("btn.reassign"), f"xr:{report.id}")],
                [Button(t("btn.cancel_visit"), f"xc:{report.id}")],
            )
            return _send(await _group_chats(ctx, job), text, keyboard)
        case ev.ExceptionAcknowledged():
            return _send(await _technician_chats(ctx, visit.technician_id), t("tech.exception_acknowledged", visit=visit.id))
        case ev.VisitCancelled():
            out = _send(await _technician_chats(ctx, data.get("technician_id")), t("tech.visit_cancelled", visit=visit.id))
            if data.get("by") != "customer":
                out += _send(await _customer_chats(ctx, job), t("customer.visit_cancelled", kind=kind_label(visit.kind)))
            return out
        case ev.VisitUnbooked():
            return _send(await _technician_chats(ctx, data.get("technician_id")), t("tech.visit_rescheduled", visit=visit.id))
        case ev.LowRatingReceived():
            text = t("group.low_rating", score=data["score"], visit=visit.id, kind=kind_label(visit.kind), technician=name, **_masked_job(job, customer))
            keyboard = buttons([Button(t("btn.acknowledge"), f"ra:{data['rating_id']}")])
            return _send(await _group_chats(ctx, job), text, keyboard)
    return []
