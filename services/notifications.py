"""Who is told what when a domain event happens: one small reaction per event and audience (registered in services/registry.py)."""

from __future__ import annotations

from datetime import timedelta

from services import actions as a
from services.actions import encode
from services.messages import Button, ChatRef, Keyboard, Outbound, Purpose, Text, buttons, raw, span, t, when
from domain import events as ev
from domain.geo import map_link
from domain.masking import mask_address, mask_name, mask_phone
from domain.model import ChatBinding, Customer, Job, ProblemReport, Technician, Visit, VisitStatus, stored_id
from services.context import HandlerContext
from services.lookups import booked_slot, visit_of
from services.timers import eta_minutes
from storage.schedule import ScheduleStore

ROBOT_PLATFORM = "robot"  # group robots (WeCom, DingTalk, Feishu, Slack); chat ids name alert routes
ALL_REGIONS = "all"
SLA_BREACHED = 100  # the tier (percent of the allowed time) at which a stage's deadline has passed


def route_for(region: str | None) -> str:
    return f"region:{region}" if region else ALL_REGIONS


def _to(binding: ChatBinding) -> ChatRef:
    return ChatRef(binding.platform, binding.bot, binding.chat_id)


def kind_label(kind: str) -> Text:
    return t(f"kind.{kind}")


def offer_card(visit: Visit, job: Job, customer: Customer) -> tuple[Text, Keyboard]:
    """The offer a technician sees: what, when, where, for whom, with Accept / Decline."""
    text = t(
        "tech.offer",
        visit=visit.id,
        kind=kind_label(visit.kind),
        product=job.product_name,
        slot=span(*booked_slot(visit)),
        address=job.address_text,
        customer=customer.name,
        phone=customer.phone,
    )
    visit_id = stored_id(visit)
    keyboard = buttons([Button(t("btn.accept"), encode(a.Accept(visit_id))), Button(t("btn.decline"), encode(a.Decline(visit_id)))])
    return text, keyboard


def offer_key(offer_id: int, chat: ChatBinding) -> str:
    """The outbox key of a grab-offer card, so closing the offer can edit that very card."""
    return f"offer:{offer_id}:{chat.id}"


# --- what the reactions look up -----------------------------------------------------------------


async def _job_and_visit(ctx: HandlerContext, event: ev.Event) -> tuple[Job, Visit]:
    """For events about one visit (every reaction that asks registers only for those)."""
    return await ctx.store.load(Job, event.job_id), await ctx.store.load(Visit, visit_of(event))


async def _technician_name(ctx: HandlerContext, event: ev.Event) -> str:
    """The name of the technician the event is about ("" when it names none)."""
    technician = await ctx.store.get(Technician, event.data.get("technician_id"))
    return technician.name if technician else ""


async def _customer_chats(ctx: HandlerContext, job: Job) -> list[ChatBinding]:
    return await ctx.store.bindings_of("customer", job.customer_id)


async def _technician_chats(ctx: HandlerContext, technician_id: int | None) -> list[ChatBinding]:
    return await ctx.store.bindings_of("technician", technician_id) if technician_id else []


async def _group_chats(ctx: HandlerContext, region: str) -> list[ChatBinding]:
    chats: list[ChatBinding] = []
    for group in await ctx.store.groups_for_region(region):
        chats.extend(await ctx.store.bindings_of("group", stored_id(group)))
    return chats


async def _masked_job(ctx: HandlerContext, job: Job) -> dict[str, str]:
    """The job as groups and robots see it: many people read those, so the customer's data is masked."""
    customer = await ctx.store.load(Customer, job.customer_id)
    return {
        "customer": mask_name(customer.name),
        "phone": mask_phone(customer.phone),
        "address": mask_address(job.address_text),
        "product": job.product_name,
        "region": job.region,
    }


# --- how messages are addressed -----------------------------------------------------------------


def _send(chats: list[ChatBinding], text: Text, keyboard: Keyboard = (), *, purpose: Purpose) -> list[Outbound]:
    return [Outbound(text, keyboard, to=_to(chat), language=chat.language, purpose=purpose) for chat in chats]


async def _region_alert(ctx: HandlerContext, region: str, text: Text, keyboard: Keyboard = ()) -> list[Outbound]:
    """A dispatcher alert: to the region's group chats, and to its group robots when any are configured."""
    def alert(to: ChatRef, language: str | None) -> Outbound:
        return Outbound(text, keyboard, to=to, language=language, alert=True, purpose=Purpose.ALERT)

    out = [alert(_to(chat), chat.language) for chat in await _group_chats(ctx, region)]
    sinks = await ScheduleStore(ctx.store).alert_sinks_for(region)
    if sinks:
        specific = any(s["region"] == region for s in sinks)
        # no language: the robot channel renders in the one its route's robots read
        out.append(alert(ChatRef(ROBOT_PLATFORM, "alerts", route_for(region if specific else None)), None))
    return out


async def _day_alert(ctx: HandlerContext, regions: list[str], text: Text) -> list[Outbound]:
    """An alert about a whole day: once to every group (and robot route) of the regions it concerns."""
    out: dict[ChatRef | None, Outbound] = {}
    for region in regions:
        for message in await _region_alert(ctx, region, text):
            out.setdefault(message.to, message)  # a group for every region would otherwise hear it once per region
    return list(out.values())


# --- technicians --------------------------------------------------------------------------------


async def offer_card_to_technician(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    text, keyboard = offer_card(visit, job, await ctx.store.load(Customer, job.customer_id))
    return _send(await _technician_chats(ctx, visit.technician_id), text, keyboard, purpose=Purpose.ASSIGNMENT)


async def tell_previous_technician_visit_taken_away(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    chats = await _technician_chats(ctx, event.data.get("previous_technician_id"))
    return _send(chats, t("tech.visit_taken_away", visit=event.visit_id), purpose=Purpose.ASSIGNMENT)


async def offer_cards_to_candidates(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Grab dispatch: every candidate gets the card, keyed so that closing the offer edits it."""
    job, visit = await _job_and_visit(ctx, event)
    text, keyboard = offer_card(visit, job, await ctx.store.load(Customer, job.customer_id))
    out = []
    for offer_id, technician_id in event.data["offers"]:
        for chat in await _technician_chats(ctx, technician_id):
            out.append(Outbound(text, keyboard, to=_to(chat), language=chat.language, dedup=offer_key(offer_id, chat),
                                purpose=Purpose.ASSIGNMENT))
    return out


async def close_offer_cards(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    visit = await ctx.store.load(Visit, visit_of(event))
    closed = t(f"tech.offer_{event.data['outcome']}", visit=visit.id, kind=kind_label(visit.kind))
    out = []
    for offer_id, technician_id in event.data["offers"]:
        for chat in await _technician_chats(ctx, technician_id):
            out.append(Outbound(closed, to=_to(chat), language=chat.language, edit_of=offer_key(offer_id, chat),
                                purpose=Purpose.ASSIGNMENT))
    return out


async def tell_crew_member_assigned(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    lead = await ctx.store.get(Technician, visit.technician_id)
    planned = when(visit.planned_start) if visit.planned_start else "-"
    text = t("tech.crew_assigned", visit=visit.id, kind=kind_label(visit.kind), slot=span(*booked_slot(visit)),
             planned=planned, address=job.address_text, lead=lead.name if lead else "-")
    return _send(await _technician_chats(ctx, event.data["technician_id"]), text, purpose=Purpose.ASSIGNMENT)


async def tell_crew_member_released(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    visit = await ctx.store.load(Visit, visit_of(event))
    text = t("tech.crew_released", visit=visit.id, kind=kind_label(visit.kind))
    return _send(await _technician_chats(ctx, event.data["technician_id"]), text, purpose=Purpose.ASSIGNMENT)


async def remind_technician_of_sla(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Before a stage's deadline the technician is nudged (a reminder, then a warning); past it, the dispatchers hear."""
    stage, tier = event.data["stage"], event.data["tier"]
    if tier >= SLA_BREACHED:
        return []
    visit = await ctx.store.load(Visit, visit_of(event))
    level = "warning" if tier >= 80 else "reminder"
    text = t(f"tech.sla_{stage}_{level}", visit=visit.id, kind=kind_label(visit.kind))
    return _send(await _technician_chats(ctx, visit.technician_id), text, purpose=Purpose.REMINDER)


async def _day_plan(ctx: HandlerContext, technician_id: int, day: str, header: str) -> list[Outbound]:
    """The day's stops in order, each with its time, address and a map link."""
    stops = []
    own = await ctx.store.visits_of_technician(technician_id, (VisitStatus.ACCEPTED,))
    crew = await ctx.store.crew_visits_of(technician_id, (VisitStatus.ACCEPTED,))
    visits = [v for v in own + crew if booked_slot(v)[0].astimezone(ctx.policy.tz).date().isoformat() == day]
    # the planned route's order when the day was planned, else the booked windows' order
    for visit in sorted(visits, key=lambda v: v.planned_start or booked_slot(v)[0]):
        job = await ctx.store.load(Job, visit.job_id)
        planned = when(visit.planned_start) if visit.planned_start else "-"
        stops.append(t("tech.day_plan_stop", slot=span(*booked_slot(visit)), planned=planned, visit=visit.id,
                       kind=kind_label(visit.kind), address=job.address_text, map=map_link(job.lat, job.lon)))
    if not stops:
        return []
    return _send(await _technician_chats(ctx, technician_id), t(header, count=len(stops), stops=stops), purpose=Purpose.SCHEDULE)


async def send_day_plan(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    return await _day_plan(ctx, event.data["technician_id"], event.data["day"], "tech.day_plan")


async def send_changed_day_plan(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    return await _day_plan(ctx, event.data["technician_id"], event.data["day"], "tech.day_plan_changed")


async def tell_technician_customer_confirmed(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    visit = await ctx.store.load(Visit, visit_of(event))
    return _send(await _technician_chats(ctx, visit.technician_id), t("tech.confirmed_by_customer", visit=visit.id), purpose=Purpose.STATUS)


async def tell_technician_report_acknowledged(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    visit = await ctx.store.load(Visit, visit_of(event))
    return _send(await _technician_chats(ctx, visit.technician_id), t("tech.exception_acknowledged", visit=visit.id), purpose=Purpose.STATUS)


async def tell_technicians_visit_cancelled(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    visit = await ctx.store.load(Visit, visit_of(event))
    out = []
    for member in (event.data.get("technician_id"), *visit.crew_ids):
        out += _send(await _technician_chats(ctx, member), t("tech.visit_cancelled", visit=visit.id), purpose=Purpose.ASSIGNMENT)
    return out


async def tell_technicians_visit_rescheduled(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The customer moved the visit: it leaves the lists of the lead and crew who had it."""
    out = []
    for member in (event.data.get("technician_id"), *event.data.get("crew_ids", ())):
        out += _send(await _technician_chats(ctx, member), t("tech.visit_rescheduled", visit=event.visit_id), purpose=Purpose.ASSIGNMENT)
    return out


# --- customers ----------------------------------------------------------------------------------


async def tell_customer_who_comes(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    text = t("customer.assigned", kind=kind_label(visit.kind), technician=await _technician_name(ctx, event),
             slot=span(*booked_slot(visit)))
    return _send(await _customer_chats(ctx, job), text, purpose=Purpose.STATUS)


def _eta_from_last_known(ctx: HandlerContext, technician: Technician | None, job: Job) -> int | None:
    """An arrival estimate from where the technician was last seen (within two hours), else from home."""
    if technician is None:
        return None
    seen_at, lat, lon = technician.last_seen_at, technician.last_lat, technician.last_lon  # set together (timers.track)
    if seen_at and ctx.now - seen_at <= timedelta(hours=2) and lat is not None and lon is not None:
        return eta_minutes(ctx, lat, lon, job)
    if technician.home_lat is not None and technician.home_lon is not None:
        return eta_minutes(ctx, technician.home_lat, technician.home_lon, job)
    return None


async def tell_customer_on_the_way(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    technician = await ctx.store.get(Technician, event.data.get("technician_id"))
    name = technician.name if technician else ""
    minutes = _eta_from_last_known(ctx, technician, job)
    if minutes is None:
        text = t("customer.en_route", kind=kind_label(visit.kind), technician=name)
    else:
        text = t("customer.en_route_eta", kind=kind_label(visit.kind), technician=name, minutes=minutes)
    return _send(await _customer_chats(ctx, job), text, purpose=Purpose.STATUS)


async def tell_customer_eta(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job = await ctx.store.load(Job, event.job_id)
    key = "customer.almost_there" if event.data["close"] else "customer.eta"
    text = t(key, technician=await _technician_name(ctx, event), minutes=event.data["minutes"])
    return _send(await _customer_chats(ctx, job), text, purpose=Purpose.STATUS)


async def remind_customer_of_appointment(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    visit_id = stored_id(visit)
    keyboard = buttons(
        [Button(t("btn.confirm_appointment"), encode(a.ConfirmAppointment(visit_id)))],
        [Button(t("btn.reschedule"), encode(a.Reschedule(visit_id))), Button(t("btn.cancel_visit"), encode(a.CancelVisit(visit_id)))],
    )
    text = t("customer.reminder", kind=kind_label(visit.kind), slot=span(*booked_slot(visit)))
    return _send(await _customer_chats(ctx, job), text, keyboard, purpose=Purpose.REMINDER)


async def tell_customer_arrived(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job = await ctx.store.load(Job, event.job_id)
    text = t("customer.arrived", technician=await _technician_name(ctx, event))
    return _send(await _customer_chats(ctx, job), text, purpose=Purpose.STATUS)


async def ask_customer_to_confirm_completion(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    keyboard = buttons([Button(t("btn.confirm_done"), encode(a.ConfirmDone(stored_id(visit))))])
    text = t("customer.completed", kind=kind_label(visit.kind), technician=await _technician_name(ctx, event))
    return _send(await _customer_chats(ctx, job), text, keyboard, purpose=Purpose.SURVEY)


async def tell_customer_visit_cancelled(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    if event.data.get("by") == "customer":
        return []  # they cancelled it themselves and were answered in their own chat
    job, visit = await _job_and_visit(ctx, event)
    return _send(await _customer_chats(ctx, job), t("customer.visit_cancelled", kind=kind_label(visit.kind)), purpose=Purpose.STATUS)


# --- dispatchers (groups and robots: customer data masked) --------------------------------------


async def ask_dispatchers_to_pick_technician(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    names = {technician.id: technician.name for technician in await ctx.store.technicians()}
    rows = [[Button(raw(names[tid]), encode(a.Assign(stored_id(visit), tid)))] for tid in event.data["candidates"][:8] if tid in names]
    text = t("group.pick_technician", visit=visit.id, kind=kind_label(visit.kind), slot=span(*booked_slot(visit)),
             **await _masked_job(ctx, job))
    return await _region_alert(ctx, job.region, text, buttons(*rows))


async def alert_dispatchers_no_technician(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    fields = dict(visit=visit.id, kind=kind_label(visit.kind), slot=span(*booked_slot(visit)), **await _masked_job(ctx, job))
    reason = event.data.get("reason")
    if reason:  # the day plan says why (vehicles full, crew short…): the fix differs
        text = t("group.no_technician_planned", reason=t(f"plan_reason.{reason}"), **fields)
    else:
        text = t("group.no_technician", **fields)
    return await _region_alert(ctx, job.region, text)


async def alert_dispatchers_replan_failed(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    regions = event.data.get("regions") or [(await ctx.store.load(Job, event.job_id)).region]
    return await _day_alert(ctx, regions, t("group.replan_failed", day=event.data["day"], reason=event.data["reason"]))


async def alert_dispatchers_sla_breached(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    stage, tier = event.data["stage"], event.data["tier"]
    if tier < SLA_BREACHED:
        return []
    job, visit = await _job_and_visit(ctx, event)
    text = t("group.sla_breached", stage=t(f"sla.{stage}"), visit=visit.id, kind=kind_label(visit.kind),
             technician=await _technician_name(ctx, event) or "-", slot=span(*booked_slot(visit)),
             **await _masked_job(ctx, job))
    visit_id = stored_id(visit)
    keyboard = buttons(
        [Button(t("btn.reassign"), encode(a.ReassignLate(visit_id))), Button(t("btn.extend"), encode(a.ExtendDeadline(visit_id, stage)))],
        [Button(t("btn.call"), encode(a.CallDetails(visit_id)))],
    )
    return await _region_alert(ctx, job.region, text, keyboard)


async def alert_dispatchers_chat_unreachable(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job = await ctx.store.load(Job, event.job_id)
    text = t(f"group.{event.data['who']}_unreachable", order=job.id, visit=event.visit_id or "-",
             technician=await _technician_name(ctx, event) or "-", **await _masked_job(ctx, job))
    return await _region_alert(ctx, job.region, text)


async def alert_dispatchers_of_exception(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    report = await ctx.store.load(ProblemReport, event.data["exception_id"])
    text = t(
        "group.exception",
        exception=report.id,
        visit=visit.id,
        kind=kind_label(visit.kind),
        reason=t(f"reason.{report.reason}"),
        note=report.note or "-",
        photos=len(report.photo_ids),
        technician=await _technician_name(ctx, event),
        **await _masked_job(ctx, job),
    )
    report_id = stored_id(report)
    keyboard = buttons(
        [Button(t("btn.acknowledge"), encode(a.Acknowledge(report_id))), Button(t("btn.reassign"), encode(a.Reassign(report_id)))],
        [Button(t("btn.cancel_visit"), encode(a.CancelReported(report_id)))],
    )
    return await _region_alert(ctx, job.region, text, keyboard)


async def alert_dispatchers_of_low_rating(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    text = t("group.low_rating", score=event.data["score"], visit=visit.id, kind=kind_label(visit.kind),
             technician=await _technician_name(ctx, event), **await _masked_job(ctx, job))
    keyboard = buttons([Button(t("btn.acknowledge"), encode(a.AcknowledgeRating(event.data["rating_id"])))])
    return await _region_alert(ctx, job.region, text, keyboard)
