"""Who is told what when a domain event happens: events become outbound messages to other chats."""

from __future__ import annotations

from datetime import timedelta

from services.messages import Button, ChatRef, Outbound, buttons, raw, span, t, when
from domain import events as ev
from domain.geo import map_link
from domain.masking import mask_address, mask_name, mask_phone
from domain.model import ChatBinding, Customer, Job, ProblemReport, Technician, Visit, VisitStatus
from services.context import HandlerContext
from services.timers import eta_minutes
from storage.schedule import ScheduleStore

ROBOT_PLATFORM = "robot"  # group robots (WeCom, DingTalk, Feishu, Slack); chat ids name alert routes
ALL_REGIONS = "all"


def route_for(region: str | None) -> str:
    return f"region:{region}" if region else ALL_REGIONS


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


async def _group_chats(ctx: HandlerContext, region: str) -> list[ChatBinding]:
    chats: list[ChatBinding] = []
    for group in await ctx.store.groups_for_region(region):
        chats.extend(await ctx.store.bindings_of("group", group.id))
    return chats


async def _alert(ctx: HandlerContext, job: Job, text: dict, keyboard: tuple = ()) -> list[Outbound]:
    """A dispatcher alert: to the region's group chats, and to its group robots when any are configured."""
    return await _region_alert(ctx, job.region, text, keyboard)


async def _region_alert(ctx: HandlerContext, region: str, text: dict, keyboard: tuple = ()) -> list[Outbound]:
    out = [Outbound(text, keyboard, to=_to(chat), language=chat.language, alert=True) for chat in await _group_chats(ctx, region)]
    sinks = await ScheduleStore(ctx.store).alert_sinks_for(region)
    if sinks:
        specific = any(s["region"] == region for s in sinks)
        language = "en" if all(s["kind"] == "slack" for s in sinks) else "zh"
        target = ChatRef(ROBOT_PLATFORM, "alerts", route_for(region if specific else None))
        out.append(Outbound(text, keyboard, to=target, language=language, alert=True))
    return out


async def _day_alert(ctx: HandlerContext, regions: list[str], text: dict) -> list[Outbound]:
    """An alert about a whole day: once to every group (and robot route) of the regions it concerns."""
    out: dict[ChatRef, Outbound] = {}
    for region in regions:
        for message in await _region_alert(ctx, region, text):
            out.setdefault(message.to, message)  # a group for every region would otherwise hear it once per region
    return list(out.values())


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


def _eta_from_last_known(ctx: HandlerContext, technician: Technician | None, job: Job) -> int | None:
    """An arrival estimate from where the technician was last seen (within two hours), else from home."""
    if technician is None:
        return None
    if technician.last_seen_at and ctx.now - technician.last_seen_at <= timedelta(hours=2):
        return eta_minutes(ctx, technician.last_lat, technician.last_lon, job)
    if technician.home_lat is not None and technician.home_lon is not None:
        return eta_minutes(ctx, technician.home_lat, technician.home_lon, job)
    return None


async def _day_plan(ctx: HandlerContext, technician_id: int, day: str, header: str = "tech.day_plan") -> list[Outbound]:
    """The morning message: the day's stops in order, each with its time, address and a map link."""
    stops = []
    own = await ctx.store.visits_of_technician(technician_id, (VisitStatus.ACCEPTED,))
    crew = await ctx.store.crew_visits_of(technician_id, (VisitStatus.ACCEPTED,))
    visits = [v for v in own + crew if v.slot_start.astimezone(ctx.policy.tz).date().isoformat() == day]
    # the planned route's order when the day was planned, else the booked windows' order
    for visit in sorted(visits, key=lambda v: v.planned_start or v.slot_start):
        job = await ctx.store.get(Job, visit.job_id)
        planned = when(visit.planned_start) if visit.planned_start else "-"
        stops.append(t("tech.day_plan_stop", slot=span(visit.slot_start, visit.slot_end), planned=planned, visit=visit.id,
                       kind=kind_label(visit.kind), address=job.address_text, map=map_link(job.lat, job.lon)))
    if not stops:
        return []
    return _send(await _technician_chats(ctx, technician_id), t(header, count=len(stops), stops=stops))


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
            return await _alert(ctx, job, text, buttons(*rows))
        case ev.NoTechnicianAvailable():
            fields = dict(visit=visit.id, kind=kind_label(visit.kind), slot=span(visit.slot_start, visit.slot_end), **_masked_job(job, customer))
            if data.get("reason"):  # the day plan says why (vehicles full, crew short…): the fix differs
                text = t("group.no_technician_planned", reason=t(f"plan_reason.{data['reason']}"), **fields)
            else:
                text = t("group.no_technician", **fields)
            return await _alert(ctx, job, text)
        case ev.ReplanFailed():
            return await _day_alert(ctx, data.get("regions") or [job.region], t("group.replan_failed", day=data["day"], reason=data["reason"]))
        case ev.CrewAssigned():
            lead = await ctx.store.get(Technician, visit.technician_id) if visit.technician_id else None
            planned = when(visit.planned_start) if visit.planned_start else "-"
            text = t("tech.crew_assigned", visit=visit.id, kind=kind_label(visit.kind), slot=span(visit.slot_start, visit.slot_end),
                     planned=planned, address=job.address_text, lead=lead.name if lead else "-")
            return _send(await _technician_chats(ctx, data["technician_id"]), text)
        case ev.CrewReleased():
            return _send(await _technician_chats(ctx, data["technician_id"]), t("tech.crew_released", visit=visit.id, kind=kind_label(visit.kind)))
        case ev.VisitAccepted():
            return _send(
                await _customer_chats(ctx, job),
                t("customer.assigned", kind=kind_label(visit.kind), technician=name, slot=span(visit.slot_start, visit.slot_end)),
            )
        case ev.VisitEnRoute():
            minutes = _eta_from_last_known(ctx, technician, job)
            if minutes is None:
                text = t("customer.en_route", kind=kind_label(visit.kind), technician=name)
            else:
                text = t("customer.en_route_eta", kind=kind_label(visit.kind), technician=name, minutes=minutes)
            return _send(await _customer_chats(ctx, job), text)
        case ev.EtaUpdated():
            key = "customer.almost_there" if data["close"] else "customer.eta"
            return _send(await _customer_chats(ctx, job), t(key, technician=name, minutes=data["minutes"]))
        case ev.SlaTierReached():
            stage, tier = data["stage"], data["tier"]
            if tier >= 100:
                text = t("group.sla_breached", stage=t(f"sla.{stage}"), visit=visit.id, kind=kind_label(visit.kind),
                         technician=name or "-", slot=span(visit.slot_start, visit.slot_end), **_masked_job(job, customer))
                keyboard = buttons(
                    [Button(t("btn.reassign"), f"sr:{visit.id}"), Button(t("btn.extend"), f"sx:{visit.id}:{stage}")],
                    [Button(t("btn.call"), f"sc:{visit.id}")],
                )
                return await _alert(ctx, job, text, keyboard)
            level = "warning" if tier >= 80 else "reminder"
            return _send(await _technician_chats(ctx, visit.technician_id), t(f"tech.sla_{stage}_{level}", visit=visit.id, kind=kind_label(visit.kind)))
        case ev.AppointmentReminderDue():
            keyboard = buttons(
                [Button(t("btn.confirm_appointment"), f"ok:{visit.id}")],
                [Button(t("btn.reschedule"), f"rs:{visit.id}"), Button(t("btn.cancel_visit"), f"cx:{visit.id}")],
            )
            return _send(await _customer_chats(ctx, job), t("customer.reminder", kind=kind_label(visit.kind), slot=span(visit.slot_start, visit.slot_end)), keyboard)
        case ev.ChatUnreachable():
            text = t(f"group.{data['who']}_unreachable", order=job.id, visit=visit.id if visit else "-", technician=name or "-", **_masked_job(job, customer))
            return await _alert(ctx, job, text)
        case ev.DayPlanDue():
            return await _day_plan(ctx, data["technician_id"], data["day"])
        case ev.DayPlanChanged():
            return await _day_plan(ctx, data["technician_id"], data["day"], header="tech.day_plan_changed")
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
            return await _alert(ctx, job, text, keyboard)
        case ev.ExceptionAcknowledged():
            return _send(await _technician_chats(ctx, visit.technician_id), t("tech.exception_acknowledged", visit=visit.id))
        case ev.VisitCancelled():
            out = []
            for member in (data.get("technician_id"), *visit.crew_ids):
                out += _send(await _technician_chats(ctx, member), t("tech.visit_cancelled", visit=visit.id))
            if data.get("by") != "customer":
                out += _send(await _customer_chats(ctx, job), t("customer.visit_cancelled", kind=kind_label(visit.kind)))
            return out
        case ev.VisitUnbooked():
            out = []
            for member in (data.get("technician_id"), *data.get("crew_ids", ())):
                out += _send(await _technician_chats(ctx, member), t("tech.visit_rescheduled", visit=visit.id))
            return out
        case ev.LowRatingReceived():
            text = t("group.low_rating", score=data["score"], visit=visit.id, kind=kind_label(visit.kind), technician=name, **_masked_job(job, customer))
            keyboard = buttons([Button(t("btn.acknowledge"), f"ra:{data['rating_id']}")])
            return await _alert(ctx, job, text, keyboard)
    return []
