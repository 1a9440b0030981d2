"""Who is told what when a domain event happens: one small reaction per event and audience (registered in services/registry.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from services import actions as a
from services.actions import encode
from services.messages import Button, Card, ChatRef, Keyboard, Outbound, Purpose, Text, buttons, distance, raw, span, t, when
from domain import events as ev
from domain.field_work import job_brief
from domain.geo import map_link
from domain.masking import mask_address, mask_name, mask_phone, mask_phones_in
from domain.model import ChatBinding, Customer, Dispatcher, Job, ProblemReport, Rating, Technician, Visit, VisitStatus, stored_id
from services.context import HandlerContext
from services.lookups import booked_slot, visit_of
from services.timers import eta_minutes
from storage.devices import jobs_with_devices
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


def offer_card(visit: Visit, job: Job, customer: Customer, *, masked: bool = False, device: bool = False) -> tuple[Text, Keyboard]:
    """The offer a technician sees: what, when, where, for whom, with Accept / Decline, and the job's notes and items.

    ``masked``: a grab offer goes to several technicians, most of whom will not get the visit, so it shows the
    district and the job only; the winner gets the customer's name, phone and address (``grab_winner_details``)."""
    fields = dict(visit=visit.id, kind=kind_label(visit.kind), product=job.product_name, slot=span(*booked_slot(visit)))
    if masked:
        text = t("tech.offer_grab", region=job.region, **fields)
    else:
        text = t("tech.offer", address=job.address_text, customer=customer.name, phone=customer.phone, **fields)
    text = with_brief(text, job)
    visit_id = stored_id(visit)
    keyboard = buttons([Button(t("btn.accept"), encode(a.Accept(visit_id))), Button(t("btn.decline"), encode(a.Decline(visit_id)))],
                       # ``device``: the job names a device on file, whose history the repairer reads before going (issue 14)
                       *([[Button(t("device.btn.history"), encode(a.VisitDeviceHistory(visit_id)))]] if device else []))
    return text, keyboard


async def _names_device(ctx: HandlerContext, job: Job) -> bool:
    return stored_id(job) in await jobs_with_devices(ctx.store, [stored_id(job)])


def offer_card_key(visit_id: int) -> Card:
    """The offer card of a visit in a technician's chat: accepting, declining or losing it edits that card."""
    return ("offer", visit_id)


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


def _send(chats: list[ChatBinding], text: Text, keyboard: Keyboard = (), *, purpose: Purpose, card: Card | None = None) -> list[Outbound]:
    return [Outbound(text, keyboard, to=_to(chat), language=chat.language, purpose=purpose, card=card) for chat in chats]


async def _region_alert(ctx: HandlerContext, region: str, text: Text, keyboard: Keyboard = (), *, card: Card | None = None) -> list[Outbound]:
    """A dispatcher alert: to the region's group chats, and to its group robots when any are configured."""
    def alert(to: ChatRef, language: str | None) -> Outbound:
        return Outbound(text, keyboard, to=to, language=language, alert=True, purpose=Purpose.ALERT, card=card)

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
    text, keyboard = offer_card(visit, job, await ctx.store.load(Customer, job.customer_id), device=await _names_device(ctx, job))
    return _send(await _technician_chats(ctx, visit.technician_id), text, keyboard, purpose=Purpose.ASSIGNMENT,
                 card=offer_card_key(stored_id(visit)))


async def tell_previous_technician_visit_taken_away(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    chats = await _technician_chats(ctx, event.data.get("previous_technician_id"))
    return _send(chats, t("tech.visit_taken_away", visit=event.visit_id), purpose=Purpose.ASSIGNMENT)


async def offer_cards_to_candidates(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Grab dispatch: every candidate gets the card, keyed so that closing the offer edits it."""
    job, visit = await _job_and_visit(ctx, event)
    text, keyboard = offer_card(visit, job, await ctx.store.load(Customer, job.customer_id), masked=True, device=await _names_device(ctx, job))
    out = []
    for offer_id, technician_id in event.data["offers"]:
        for chat in await _technician_chats(ctx, technician_id):
            out.append(Outbound(text, keyboard, to=_to(chat), language=chat.language, dedup=offer_key(offer_id, chat),
                                purpose=Purpose.ASSIGNMENT, card=offer_card_key(stored_id(visit))))
    return out


async def close_offer_cards(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    visit = await ctx.store.load(Visit, visit_of(event))
    closed = t(f"tech.offer_{event.data['outcome']}", visit=visit.id, kind=kind_label(visit.kind))
    out = []
    for offer_id, technician_id in event.data["offers"]:
        for chat in await _technician_chats(ctx, technician_id):
            # the card itself changes (its Accept / Decline go): nobody needs a new message for an offer gone
            out.append(Outbound(closed, to=_to(chat), language=chat.language, purpose=Purpose.ASSIGNMENT, card=offer_card_key(stored_id(visit))))
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
    # closed by timeout or by a dispatcher is not the customer's word: the technician is told which it was
    key = {"timeout": "dispatch.tech_confirmed_by_timeout", "dispatcher": "dispatch.tech_confirmed_by_dispatcher",
           "api": "dispatch.tech_confirmed_by_dispatcher"}.get(event.data.get("by") or "", "tech.confirmed_by_customer")
    return _send(await _technician_chats(ctx, visit.technician_id), t(key, visit=visit.id), purpose=Purpose.STATUS)


async def tell_technician_report_acknowledged(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    visit = await ctx.store.load(Visit, visit_of(event))
    # resumed where it stopped: the button carries on from the first unanswered checklist step (kept in the answers)
    return _send(await _technician_chats(ctx, visit.technician_id), t("tech.exception_acknowledged", visit=visit.id),
                 _next_step_buttons(visit), purpose=Purpose.STATUS)


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
    if event.data.get("within") is False:
        return []  # a check-in beyond the radius is not presence: the dispatchers look at it (CheckInFlagged)
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
    # the ranked free ones, then the ways out when none of them will do (anyone skilled, move, call, cancel)
    return await _region_alert(ctx, job.region, text, buttons(*rows, *visit_actions(stored_id(visit))))


async def alert_dispatchers_no_technician(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    fields = dict(visit=visit.id, kind=kind_label(visit.kind), slot=span(*booked_slot(visit)), **await _masked_job(ctx, job))
    reason = event.data.get("reason")
    if reason:  # the day plan says why (vehicles full, crew short…): the fix differs
        text = t("group.no_technician_planned", reason=t(f"plan_reason.{reason}"), **fields)
    else:
        text = t("group.no_technician", **fields)
    return await _region_alert(ctx, job.region, text, visit_actions(stored_id(visit)), card=("visit_alert", stored_id(visit)))


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
    text = with_appointment_confirmed(visit, text)
    visit_id = stored_id(visit)
    keyboard = buttons(
        [Button(t("btn.reassign"), encode(a.ReassignLate(visit_id))), Button(t("btn.extend"), encode(a.ExtendDeadline(visit_id, stage)))],
        [Button(t("btn.call"), encode(a.CallDetails(visit_id)))],
    )
    return await _region_alert(ctx, job.region, text, keyboard)


async def alert_dispatchers_chat_unreachable(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job = await ctx.store.load(Job, event.job_id)
    # blocked for good, or one message that could not go out (a session-window channel, a failed delivery)
    extra = {"purpose": t(f"purpose.{event.data['purpose']}"), "why": t(f"undelivered.{event.data['why']}")} \
        if isinstance(event, ev.MessageNotDelivered) else {}
    kind = "not_delivered" if extra else "unreachable"
    text = t(f"group.{event.data['who']}_{kind}", order=job.id, visit=event.visit_id or "-",
             technician=await _technician_name(ctx, event) or "-", **extra, **await _masked_job(ctx, job))
    # not a dead end: the numbers (to the presser's private chat) for the visit it concerns, or the job's next open one
    visit_id = event.visit_id or next((stored_id(v) for v in await ctx.store.visits_of_job(stored_id(job)) if v.state in OPEN_STATES), None)
    if visit_id is None:
        return await _region_alert(ctx, job.region, text, buttons([Button(t("btn.dispatch_close_job"), encode(a.CloseJobAsk(stored_id(job))))]))
    keyboard = visit_actions(visit_id, assign=event.data["who"] == "technician")
    return await _region_alert(ctx, job.region, text, keyboard)


def exception_card_key(report_id: int) -> Card:
    """The alert card of a reported problem in each dispatch group: acknowledging or resolving it edits that card."""
    return ("exception", report_id)


async def alert_dispatchers_of_exception(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    report = await ctx.store.load(ProblemReport, event.data["exception_id"])
    text, keyboard = await _exception_card(ctx, job, visit, report)
    return await _region_alert(ctx, job.region, text, keyboard, card=exception_card_key(stored_id(report)))


async def refresh_exception_card(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Acknowledged: the alert card says by whom and when, and loses its Acknowledge (it cannot be pressed twice);
    Reassign and Cancel visit stay. Only the groups' cards change (a robot's message cannot be edited)."""
    job, visit = await _job_and_visit(ctx, event)
    report = await ctx.store.load(ProblemReport, event.data["exception_id"])
    text, keyboard = await _exception_card(ctx, job, visit, report)
    dispatcher = await ctx.store.get(Dispatcher, event.data.get("dispatcher_id"))
    status = t("card.alert_acknowledged", alert=text, name=raw(dispatcher.name if dispatcher else "-"), at=when(ctx.now))
    acknowledge = encode(a.Acknowledge(stored_id(report)))
    remaining = buttons(*[[b for b in row if b.data != acknowledge] for row in keyboard])
    card = exception_card_key(stored_id(report))
    return [message for message in await _region_alert(ctx, job.region, status, remaining, card=card)
            if message.to is not None and message.to.platform != ROBOT_PLATFORM]


async def _exception_card(ctx: HandlerContext, job: Job, visit: Visit, report: ProblemReport) -> tuple[Text, Keyboard]:
    reporter = await ctx.store.get(Technician, report.technician_id)
    text = t(
        "group.exception",
        exception=report.id,
        visit=visit.id,
        kind=kind_label(visit.kind),
        reason=t(f"reason.{report.reason}"),
        note=report.note or "-",
        photos=len(report.photo_ids),
        technician=reporter.name if reporter else "",
        **await _masked_job(ctx, job),
    )
    report_id = stored_id(report)
    keyboard = buttons(
        [Button(t("btn.acknowledge"), encode(a.Acknowledge(report_id))), Button(t("btn.reassign"), encode(a.Reassign(report_id)))],
        [Button(t("btn.cancel_visit"), encode(a.CancelReported(report_id)))],
    )
    return with_appointment_confirmed(visit, text), keyboard


async def alert_dispatchers_of_low_rating(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    text = t("group.low_rating", score=event.data["score"], visit=visit.id, kind=kind_label(visit.kind),
             technician=await _technician_name(ctx, event), **await _masked_job(ctx, job))
    _text, keyboard = await _rating_card(ctx, job, visit, event.data["rating_id"], event.data["score"], event.data.get("technician_id"))
    return await _region_alert(ctx, job.region, text, keyboard, card=rating_card_key(event.data["rating_id"]))


# --- the customer's side (issue 10) ---------------------------------------------------------------


async def alert_dispatchers_customer_cancelled(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A customer's own cancellation: the dispatchers hear too (a slot freed, maybe a call back worth making)."""
    if event.data.get("by") != "customer":
        return []  # a dispatcher's cancellation is answered in the group that made it
    job, visit = await _job_and_visit(ctx, event)
    slot = span(visit.slot_start, visit.slot_end) if visit.slot_start and visit.slot_end else "-"
    text = t("customer.group_cancelled", visit=visit.id, kind=kind_label(visit.kind), slot=slot,
             technician=await _technician_name(ctx, event) or "-", **await _masked_job(ctx, job))
    keyboard = buttons([Button(t("btn.call"), encode(a.CallDetails(stored_id(visit))))])
    return await _region_alert(ctx, job.region, text, keyboard)


async def alert_dispatchers_customer_wrote(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """What a customer wrote that needs a person: to the region's dispatchers, phone numbers in it masked."""
    job = await ctx.store.load(Job, event.job_id)
    visit = await ctx.store.get(Visit, event.visit_id) if event.visit_id else None
    text = t(f"customer.group_wrote_{event.data['topic']}", order=job.id, text=mask_phones_in(event.data["text"]),
             **await _masked_job(ctx, job))
    # the dispatcher can get the customer's number in private to call back (never shown in the group)
    keyboard = buttons([Button(t("btn.call"), encode(a.CallDetails(stored_id(visit))))]) if visit is not None else ()
    return await _region_alert(ctx, job.region, text, keyboard)


# --- technicians' paths (issue 10, part 4 and 7) --------------------------------------------------


def with_brief(text: Text, job: Job) -> Text:
    """A card about a job with what the ERP said for whoever goes there ("call first, 3rd floor, no lift") and its items."""
    brief = job_brief(job)
    return t("tech.with_brief", card=text, brief=raw(brief)) if brief else text


async def grab_winner_details(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The grab offer was won: now, and only to the winner, who the customer is and where exactly."""
    if not event.data.get("grabbed"):
        return []  # a direct offer showed the details already
    job, visit = await _job_and_visit(ctx, event)
    customer = await ctx.store.load(Customer, job.customer_id)
    text = with_brief(t("tech.offer_won_details", visit=visit.id, kind=kind_label(visit.kind), product=job.product_name,
                        slot=span(*booked_slot(visit)), address=job.address_text, customer=customer.name, phone=customer.phone,
                        map=map_link(job.lat, job.lon)), job)
    keyboard = buttons([Button(t("btn.on_my_way"), encode(a.OnMyWay(stored_id(visit))))])
    # the won card itself, in place of the grab card (the press is answered by this alone: one message, not two)
    return _send(await _technician_chats(ctx, visit.technician_id), text, keyboard, purpose=Purpose.ASSIGNMENT,
                 card=offer_card_key(stored_id(visit)))


def _next_step_buttons(visit: Visit) -> Keyboard:
    """The button that moves a visit on from where it is, for a technician told something about it."""
    visit_id = stored_id(visit)
    step = {
        VisitStatus.ON_SITE: (t("btn.start_checklist"), a.StartChecklist(visit_id)),
        VisitStatus.IN_PROGRESS: (t("btn.continue_checklist"), a.ContinueChecklist(visit_id)),
        VisitStatus.EN_ROUTE: (t("btn.arrived"), a.Arrived(visit_id)),
        VisitStatus.ACCEPTED: (t("btn.on_my_way"), a.OnMyWay(visit_id)),
        VisitStatus.BOOKED: (t("btn.accept"), a.Accept(visit_id)),
    }.get(visit.state)
    return buttons([Button(step[0], encode(step[1]))]) if step else ()


async def tell_technicians_dependency_done(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The delivery is done: whoever installs after it is told they can start (instead of finding out from an error)."""
    done = await ctx.store.load(Visit, visit_of(event))
    out = []
    for dependant in await ctx.store.visits_of_job(done.job_id):
        if dependant.depends_on_visit_id != done.id or dependant.technician_id is None:
            continue
        text = t("tech.dependency_done", visit=dependant.id, kind=kind_label(dependant.kind), done=kind_label(done.kind))
        for member in (dependant.technician_id, *dependant.crew_ids):
            keyboard = _next_step_buttons(dependant) if member == dependant.technician_id else ()
            out += _send(await _technician_chats(ctx, member), text, keyboard, purpose=Purpose.STATUS)
    return out


async def tell_customer_return_visit(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The visit needs another: the customer hears why and books the follow-up with one button."""
    job, visit = await _job_and_visit(ctx, event)
    follow_up = stored_id(await ctx.store.load(Visit, event.data["follow_up_visit_id"]))
    text = t("tech.to_customer_return_visit", kind=kind_label(visit.kind), reason=t(f"tech.return_reason.{event.data['reason']}"),
             technician=await _technician_name(ctx, event))
    keyboard = buttons([Button(t("btn.book", kind=kind_label(visit.kind)), encode(a.Book(follow_up)))])
    return _send(await _customer_chats(ctx, job), text, keyboard, purpose=Purpose.STATUS)


async def ask_colleagues_to_assist(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A call for help to free skilled colleagues: the district and the job, and Join; whoever joins gets the address."""
    job, visit = await _job_and_visit(ctx, event)
    # the order made the crew bigger (services.crew_growth): nobody asked, the visit needs more hands
    key = "tech.assist_offer_crew" if event.data.get("why") == "crew_grown" else "tech.assist_offer"
    text = with_brief(t(key, visit=visit.id, kind=kind_label(visit.kind), product=job.product_name,
                        slot=span(*booked_slot(visit)), region=job.region, technician=await _technician_name(ctx, event)), job)
    keyboard = buttons([Button(t("btn.join_crew"), encode(a.JoinCrew(stored_id(visit))))])
    out = []
    for member in event.data["candidates"]:
        out += _send(await _technician_chats(ctx, member), text, keyboard, purpose=Purpose.ASSIGNMENT, card=assist_card_key(stored_id(visit)))
    return out


def assist_card_key(visit_id: int) -> Card:
    """A call for help in a colleague's chat: when nobody answered in time, that card is edited so its Join goes."""
    return ("assist", visit_id)


async def tell_requester_assistance_joined(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    member = await ctx.store.get(Technician, event.data["member"])
    text = t("tech.assistance_joined", visit=event.visit_id, name=member.name if member else "-",
             phone=member.phone if member else "-")
    return _send(await _technician_chats(ctx, event.data["technician_id"]), text, purpose=Purpose.ASSIGNMENT)


async def alert_dispatchers_no_assistance(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Nobody skilled is free to help: the dispatchers find someone (or call the technician)."""
    job, visit = await _job_and_visit(ctx, event)
    text = t("tech.to_group_no_assistance", visit=visit.id, kind=kind_label(visit.kind), technician=await _technician_name(ctx, event),
             **await _masked_job(ctx, job))
    keyboard = buttons([Button(t("btn.call"), encode(a.CallDetails(stored_id(visit))))])
    return await _region_alert(ctx, job.region, text, keyboard)


async def tell_customer_running_late(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job = await ctx.store.load(Job, event.job_id)
    estimate = datetime.fromisoformat(event.data["estimate"])
    text = t("tech.to_customer_running_late", technician=await _technician_name(ctx, event), minutes=event.data["minutes"], estimate=when(estimate))
    return _send(await _customer_chats(ctx, job), text, purpose=Purpose.STATUS)


async def alert_dispatchers_checkin_flagged(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A check-in not proven: beyond the radius (how far, how it was shared, the reason given; the customer was not told
    "arrived"), or from a pin within it (which can be dropped anywhere; the customer was told). One alert either way."""
    job, visit = await _job_and_visit(ctx, event)
    far = "far" in event.data.get("flags", ("far",))  # alerts from before the flags were recorded were all far ones
    key = "tech.to_group_checkin_flagged" if far else "tech.to_group_checkin_static"
    text = t(key, visit=visit.id, kind=kind_label(visit.kind), technician=await _technician_name(ctx, event),
             distance=distance(event.data["distance_m"]), how=t(f"tech.checkin_kind.{event.data.get('kind') or 'static'}"),
             reason=raw(event.data.get("reason") or "-"), **await _masked_job(ctx, job))
    keyboard = buttons([Button(t("btn.call"), encode(a.CallDetails(stored_id(visit))))])
    return await _region_alert(ctx, job.region, text, keyboard)




# --- staff-side gaps (issue 10 review): a call for help nobody answered, a report settled by a decision -----------


async def expire_assist_offers(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The colleagues asked last time: their card says the call is over and loses its Join."""
    visit = await ctx.store.load(Visit, visit_of(event))
    text = t("tech.assist_offer_expired", visit=visit.id, kind=kind_label(visit.kind))
    out = []
    for member in event.data.get("offers", ()):
        out += _send(await _technician_chats(ctx, member), text, purpose=Purpose.ASSIGNMENT, card=assist_card_key(stored_id(visit)))
    return out


async def tell_requester_assistance_timed_out(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The technician who asked hears what happened: others asked now, or the dispatchers on it."""
    visit = await ctx.store.load(Visit, visit_of(event))
    following = event.data.get("next") or []
    key = "tech.assistance_timed_out_next" if following else "tech.assistance_timed_out_dispatchers"
    text = t(key, visit=visit.id, minutes=event.data.get("minutes", 0), count=len(following))
    return _send(await _technician_chats(ctx, event.data.get("technician_id")), text, purpose=Purpose.ASSIGNMENT)


async def alert_dispatchers_assistance_timed_out(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Nobody left to ask: the dispatchers find a pair of hands (Assign anyone fills the open crew place) or call."""
    if event.data.get("next"):
        return []  # others are being asked
    job, visit = await _job_and_visit(ctx, event)
    text = t("tech.to_group_assistance_timed_out", visit=visit.id, kind=kind_label(visit.kind), minutes=event.data.get("minutes", 0),
             technician=await _technician_name(ctx, event) or "-", **await _masked_job(ctx, job))
    visit_id = stored_id(visit)
    keyboard = buttons([Button(t("btn.dispatch_assign_anyone"), encode(a.AssignAnyone(visit_id)))],
                       [Button(t("btn.call"), encode(a.CallDetails(visit_id)))])
    # a new message, not an edit of an older alert about the visit far up the group: this one must be seen
    return await _region_alert(ctx, job.region, text, keyboard)


async def refresh_resolved_exception_card(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A report settled by a dispatcher's decision (another technician, cancelled): its card says so, by whom and when,
    without buttons (each of them is stale now). Only the groups' cards change (a robot's message cannot be edited)."""
    job, visit = await _job_and_visit(ctx, event)
    report = await ctx.store.load(ProblemReport, event.data["exception_id"])
    text, _keyboard = await _exception_card(ctx, job, visit, report)
    status = t("card.alert_resolved", alert=text, resolution=t(f"resolution.{event.data.get('resolution') or 'reassigned'}"),
               name=raw(event.data.get("name") or "-"), at=when(ctx.now))
    return [message for message in await _region_alert(ctx, job.region, status, (), card=exception_card_key(stored_id(report)))
            if message.to is not None and message.to.platform != ROBOT_PLATFORM]


# --- nothing left unowned (issue 10, parts 3, 5 and 6) -------------------------------------------------------


def visit_actions(visit_id: int, *, assign: bool = True) -> Keyboard:
    """What every dispatcher alert about one visit offers — assign anyone skilled (with an explicit override), move it,
    call (numbers go to the presser's private chat), cancel it — so none of them is a dead end."""
    first = [Button(t("btn.dispatch_assign_anyone"), encode(a.AssignAnyone(visit_id)))] if assign else []
    return buttons(
        [*first, Button(t("btn.dispatch_move"), encode(a.MoveVisitMenu(visit_id)))],
        [Button(t("btn.call"), encode(a.CallDetails(visit_id))), Button(t("btn.cancel_visit"), encode(a.CancelFromAlert(visit_id)))],
    )


def job_actions(job_id: int) -> list[Button]:
    return [Button(t("btn.dispatch_fix_address"), encode(a.FixAddress(job_id))), Button(t("btn.dispatch_close_job"), encode(a.CloseJobAsk(job_id)))]


async def _unbooked_visit_alert(ctx: HandlerContext, event: ev.Event, key: str) -> list[Outbound]:
    """An alert about a visit nobody booked, with what a dispatcher can do about the visit and its job."""
    job, visit = await _job_and_visit(ctx, event)
    text = t(key, visit=visit.id, order=job.id, kind=kind_label(visit.kind), **await _masked_job(ctx, job))
    keyboard = buttons(*visit_actions(stored_id(visit), assign=False), job_actions(stored_id(job)))
    return await _region_alert(ctx, job.region, text, keyboard, card=("visit_alert", stored_id(visit)))


async def alert_dispatchers_no_slot_fits(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The customer found no time to book: a dispatcher arranges one (the customer was told one will)."""
    return await _unbooked_visit_alert(ctx, event, "alert.no_slot_fits")


async def remind_customer_to_book(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    keyboard = buttons([Button(t("btn.book", kind=kind_label(visit.kind)), encode(a.Book(stored_id(visit))))])
    text = t("dispatch.customer_booking_reminder", kind=kind_label(visit.kind), product=job.product_name)
    return _send(await _customer_chats(ctx, job), text, keyboard, purpose=Purpose.REMINDER)


async def alert_dispatchers_booking_overdue(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The customer was reminded and still booked nothing."""
    return await _unbooked_visit_alert(ctx, event, "alert.booking_overdue")


async def tell_customer_visit_moved(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    text = t("dispatch.customer_visit_moved", kind=kind_label(visit.kind), slot=span(*booked_slot(visit)))
    keyboard = buttons([Button(t("btn.reschedule"), encode(a.Reschedule(stored_id(visit))))])
    return _send(await _customer_chats(ctx, job), text, keyboard, purpose=Purpose.STATUS)


async def tell_technicians_address_corrected(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Whoever is to go there hears the corrected address (with its pin when one was given)."""
    job = await ctx.store.load(Job, event.job_id)
    out = []
    for visit in await ctx.store.visits_of_job(stored_id(job)):
        if visit.state not in (VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_HOLD):
            continue
        text = t("dispatch.tech_address_corrected", visit=visit.id, kind=kind_label(visit.kind), address=job.address_text,
                 map=map_link(job.lat, job.lon))
        for member in (visit.technician_id, *visit.crew_ids):
            out += _send(await _technician_chats(ctx, member), text, _next_step_buttons(visit) if member == visit.technician_id else (),
                         purpose=Purpose.ASSIGNMENT)
    return out


async def tell_customer_who_comes_now(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Reassigned (by a dispatcher or a replan): the customer's last word on who comes is out of date, so it is replaced."""
    if event.data.get("previous_technician_id") is None:
        return []  # nobody was named to the customer yet
    job, visit = await _job_and_visit(ctx, event)
    text = t("dispatch.customer_new_technician", kind=kind_label(visit.kind), technician=await _technician_name(ctx, event),
             slot=span(*booked_slot(visit)))
    return _send(await _customer_chats(ctx, job), text, purpose=Purpose.STATUS)


async def remind_customer_to_confirm(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    job, visit = await _job_and_visit(ctx, event)
    hours = int(ctx.policy.confirm_timeout.total_seconds() // 3600)
    text = t("dispatch.customer_confirm_reminder", kind=kind_label(visit.kind), hours=hours)
    keyboard = buttons([Button(t("btn.confirm_done"), encode(a.ConfirmDone(stored_id(visit))))])
    return _send(await _customer_chats(ctx, job), text, keyboard, purpose=Purpose.SURVEY)


async def tell_customer_confirmed_by_timeout(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Closed by timeout: the customer hears it, and can still rate it."""
    if event.data.get("by") != "timeout":
        return []
    job, visit = await _job_and_visit(ctx, event)
    keyboard = buttons([Button(t("btn.dispatch_rate"), encode(a.AskToRate(stored_id(visit))))])
    return _send(await _customer_chats(ctx, job), t("dispatch.customer_closed_by_timeout", kind=kind_label(visit.kind)), keyboard,
                 purpose=Purpose.STATUS)


def rating_card_key(rating_id: int) -> Card:
    return ("rating", rating_id)


async def _rating_card(ctx: HandlerContext, job: Job, visit: Visit, rating_id: int, score: int, technician_id: int | None,
                       comment: str | None = None) -> tuple[Text, Keyboard]:
    technician = await ctx.store.get(Technician, technician_id)
    fields = dict(score=score, visit=visit.id, kind=kind_label(visit.kind), technician=technician.name if technician else "-",
                  **await _masked_job(ctx, job))
    text = t("group.low_rating", **fields) if comment is None else t("alert.complaint", comment=mask_phones_in(comment), **fields)
    keyboard = buttons(
        [Button(t("btn.dispatch_call_back"), encode(a.CallDetails(stored_id(visit)))),
         Button(t("btn.dispatch_reopen"), encode(a.ReopenJobAsk(stored_id(job))))],
        [Button(t("btn.dispatch_note"), encode(a.NoteAsk(stored_id(job)))),
         Button(t("btn.acknowledge"), encode(a.AcknowledgeRating(rating_id)))],
    )
    return text, keyboard


async def alert_dispatchers_of_complaint(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The words behind a low rating: the low rating's card becomes the complaint (score and words, with call back,
    reopen, note and acknowledge), so the group has one living card for it, not two alerts with the same buttons."""
    job, visit = await _job_and_visit(ctx, event)
    rating_id = event.data["rating_id"]
    text, keyboard = await _rating_card(ctx, job, visit, rating_id, event.data["score"], visit.technician_id, event.data["comment"])
    return await _region_alert(ctx, job.region, text, keyboard, card=rating_card_key(rating_id))


async def refresh_rating_cards(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Acknowledged: the low-rating card says by whom and when and loses its Acknowledge; its other actions stay."""
    job, visit = await _job_and_visit(ctx, event)
    rating_id = event.data["rating_id"]
    score = next((row["data"]["score"] for row in await ctx.store.timeline(stored_id(job))
                  if row["type"] == "LowRatingReceived" and row["data"].get("rating_id") == rating_id), 0)
    rating = await ctx.store.get(Rating, rating_id)
    comment = rating.comment if rating is not None and rating.comment else None  # the card shows the complaint, if any
    text, keyboard = await _rating_card(ctx, job, visit, rating_id, score, visit.technician_id, comment)
    status = t("card.alert_acknowledged", alert=text, name=raw(event.data.get("name") or "-"), at=when(ctx.now))
    acknowledge = encode(a.AcknowledgeRating(rating_id))
    remaining = buttons(*[[b for b in row if b.data != acknowledge] for row in keyboard])
    return [message for message in await _region_alert(ctx, job.region, status, remaining, card=rating_card_key(rating_id))
            if message.to is not None and message.to.platform != ROBOT_PLATFORM]


def with_appointment_confirmed(visit: Visit, alert: Text) -> Text:
    """An alert about a visit whose customer confirmed the appointment says so on a line of its own: a dispatcher
    deciding whether to chase the customer or the technician needs to know the customer expects them."""
    if visit.appointment_confirmed_at is None:
        return alert
    return t("customer.group_with_confirmation", alert=alert, at=when(visit.appointment_confirmed_at))


OPEN_STATES = (VisitStatus.CREATED, VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE,
               VisitStatus.IN_PROGRESS, VisitStatus.ON_HOLD)

# Dispatcher alerts that are an explicit end: they inform, and the text itself says what happens next, so they carry
# no button (tests/integration/test_no_dead_end_cards.py holds every other alert to at least one action).
ALERT_ENDS: frozenset[str] = frozenset({
    "group.replan_failed",  # says the plan stays as it was, that it retries by itself, and the command to run it by hand
    "evidence.exception_photos",  # a problem report's photos, right after its alert, which carries the actions
    "card.alert_resolved",  # a problem report settled (another technician, cancelled): says by whom; every button was stale
    "robot.group_link_used",  # a robot group hears that an alert of theirs was acted on through its link: by whom, what was done
    "order.group_cancelled",  # the source called the order off: its visits are off the plan, nothing to do unless the customer calls
    "device.foreign_alert",  # a fault told by someone scanning a code who is not the owner's chat: its next step is to call the owner
})
