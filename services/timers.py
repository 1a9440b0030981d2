"""Timers as data: SLA clocks, appointment reminders and day plans set by domain events and fired by sweeps."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Literal

from domain import events as ev
from domain import lifecycle
from domain.geo import haversine_m
from domain.lifecycle import ACTIVE
from domain.model import Job, Technician, Visit, VisitStatus
from domain.sla import completion_deadline, policy_for, tier_moments
from domain import commands as c
from domain.errors import DomainError, NotAllowed
from domain.model import Dispatcher
from services import maintenance
from services import settlement
from services.context import HandlerContext
from services.handlers import _offer_next, expire_offers
from services.lookups import Inconsistent, booked_slot, visit_of
from services.dispatching import fire_assist, fire_chase
from services.replanning import overran
from storage.rows import TimerRow
from storage.schedule import ScheduleStore


async def track_location(ctx: HandlerContext, cmd: c.TrackLocation) -> list[ev.Event]:
    return await track(ctx, cmd.technician_id, cmd.latitude, cmd.longitude)


async def extend_sla(ctx: HandlerContext, cmd: c.ExtendSla) -> list[ev.Event]:
    if await ctx.store.get(Dispatcher, cmd.dispatcher_id) is None:
        raise NotAllowed("not_a_dispatcher")
    events = await extend_stage(ctx, cmd.visit_id, cmd.stage, cmd.minutes)
    if not events:
        raise DomainError("sla_not_running")
    return events


# --- reactions: the timers an event starts or stops (registered in services/registry.py) ---------


async def start_sla_clock(ctx: HandlerContext, event: ev.Event, *, stage: str) -> list[ev.Event]:
    """The stage's clock starts on the event's visit: a timer for each warning tier and one for the deadline."""
    timers = ScheduleStore(ctx.store)
    visit_id = visit_of(event)
    visit = await ctx.store.load(Visit, visit_id)
    job = await ctx.store.load(Job, visit.job_id)
    policy = policy_for(await timers.sla_policies(), job.region, visit.kind, stage)
    deadline = None
    if stage == "arrival":
        deadline = visit.slot_end
    elif stage == "completion" and policy.minutes is None:
        deadline = completion_deadline(ctx.now, visit.duration_minutes)
    if deadline is not None and deadline <= ctx.now:
        return []
    await timers.cancel_timers(visit_id, kind="sla", stage=stage)
    cycle = int(ctx.now.timestamp())
    for tier, due in tier_moments(policy, ctx.now, ctx.policy.business_hours, ctx.policy.tz, deadline):
        await timers.set_timer(
            key=f"sla:{visit.id}:{stage}:{cycle}:{tier}", kind="sla", due_at=due, now=ctx.now, visit_id=visit.id,
            technician_id=visit.technician_id,
            payload={"stage": stage, "tier": tier, "auto_reassign": policy.auto_reassign},
        )
    return []


async def stop_sla_clock(ctx: HandlerContext, event: ev.Event, *, stage: str) -> list[ev.Event]:
    """The stage is over on the event's visit: its warnings and deadline no longer fire."""
    await ScheduleStore(ctx.store).cancel_timers(visit_of(event), kind="sla", stage=stage)
    return []


async def set_appointment_timers(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """An accepted visit: the customer's reminder the evening before, the technician's day plan that morning."""
    timers = ScheduleStore(ctx.store)
    visit = await ctx.store.load(Visit, visit_of(event))
    slot_start, _slot_end = booked_slot(visit)
    local_day = slot_start.astimezone(ctx.policy.tz).date()
    remind_at = datetime.combine(local_day - timedelta(days=1), time(ctx.policy.reminder_hour), ctx.policy.tz)
    if remind_at > ctx.now:
        await timers.set_timer(
            key=f"remind:{visit.id}:{int(slot_start.timestamp())}", kind="reminder", due_at=remind_at,
            now=ctx.now, visit_id=visit.id, payload={"slot_start": slot_start.isoformat()},
        )
    plan_at = datetime.combine(local_day, time(ctx.policy.day_plan_hour, 30), ctx.policy.tz)
    if plan_at > ctx.now:
        await timers.set_timer(
            key=f"dayplan:{visit.technician_id}:{local_day.isoformat()}", kind="dayplan", due_at=plan_at,
            now=ctx.now, technician_id=visit.technician_id, payload={"day": local_day.isoformat()},
        )
    return []


async def set_overrun_timer(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """Work started: if it is still going well past its planned end, the rest of the day is replanned."""
    visit = await ctx.store.load(Visit, visit_of(event))
    planned = visit.planned_start or visit.slot_start or ctx.now
    # started late, the work still takes its time: count the end from whichever is later
    end = max(planned, ctx.now) + timedelta(minutes=visit.duration_minutes)
    await ScheduleStore(ctx.store).set_timer(
        key=f"overrun:{visit.id}", kind="overrun", due_at=end + ctx.policy.overrun_grace, now=ctx.now,
        visit_id=visit.id, technician_id=visit.technician_id,
    )
    return []


async def cancel_visit_timers(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """The visit is off (cancelled, or unbooked to be booked again): none of its timers fire."""
    await ScheduleStore(ctx.store).cancel_timers(visit_of(event))
    return []


STAGE_OPEN = {
    "accept": (VisitStatus.BOOKED,),
    "contact": (VisitStatus.ACCEPTED,),
    "arrival": (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE),
    "completion": (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS),
}


def _named(timer: TimerRow, subject: Literal["visit_id", "technician_id"]) -> int:
    """The visit or technician a timer of its kind is set for."""
    subject_id = timer[subject]
    if subject_id is None:
        raise Inconsistent(f"timer {timer['key']} ({timer['kind']}) has no {subject}")
    return subject_id


async def fire(ctx: HandlerContext, timer_id: int) -> list[ev.Event]:
    """Fire one due timer; firing it again (or after its visit moved on) changes nothing."""
    timer = await ScheduleStore(ctx.store).claim_timer(timer_id, ctx.now)
    if timer is None:
        return []
    if timer["kind"] == "dayplan":
        technician_id = _named(timer, "technician_id")
        visits = await ctx.store.visits_of_technician(technician_id, ACTIVE) + await ctx.store.crew_visits_of(technician_id, ACTIVE)
        day = timer["payload"]["day"]
        todays = [v for v in visits if v.slot_start and v.slot_start.astimezone(ctx.policy.tz).date().isoformat() == day]
        if not todays:
            return []
        return [ev.DayPlanDue(todays[0].job_id, None, {"technician_id": technician_id, "day": day})]
    if timer["kind"] == "grab":
        return await expire_offers(ctx, _named(timer, "visit_id"))
    if timer["kind"] == maintenance.TIMER:
        plan_id = timer["payload"].get("plan_id")
        if not isinstance(plan_id, int):
            raise Inconsistent(f"timer {timer['key']} ({timer['kind']}) has no plan_id")
        return await maintenance.on_timer(ctx, plan_id, timer["payload"])  # its creation day, or an inspection to look at again
    if timer["kind"] == settlement.REVIEW_TIMER:  # a fee's review period ended (issue 14 part 7)
        return await settlement.review_ended(ctx, int(timer["payload"]["item_id"]))
    if timer["kind"] == settlement.CLOSE_TIMER:  # a month's settlement close
        return await settlement.fire_close(ctx, str(timer["payload"]["period"]))
    visit = await ctx.store.load(Visit, _named(timer, "visit_id"))
    if timer["kind"] in ("booking", "confirm"):
        return await fire_chase(ctx, timer, visit)
    if timer["kind"] == "assist":
        return await fire_assist(ctx, timer, visit)
    if timer["kind"] == "overrun":
        await overran(ctx, visit)  # still at it: the rest of the day is replanned, outside this transaction
        return []
    if timer["kind"] == "reminder":
        still_booked = visit.state in (VisitStatus.BOOKED, VisitStatus.ACCEPTED) and visit.slot_start and visit.slot_start.isoformat() == timer["payload"]["slot_start"]
        return [ev.AppointmentReminderDue(visit.job_id, visit.id, {})] if still_booked else []
    stage, tier = timer["payload"]["stage"], timer["payload"]["tier"]
    if visit.state not in STAGE_OPEN[stage]:
        return []
    events: list[ev.Event] = [ev.SlaTierReached(visit.job_id, visit.id, {"stage": stage, "tier": tier, "technician_id": visit.technician_id})]
    if tier >= 100 and stage == "accept" and timer["payload"].get("auto_reassign") and visit.technician_id is not None:
        # nobody answered in time: treat it as declined and offer the next technician
        job = await ctx.store.load(Job, visit.job_id)
        events.append(lifecycle.decline(visit, visit.job_id, visit.technician_id))
        events.extend(await _offer_next(ctx, visit, job))
    return events


async def extend_stage(ctx: HandlerContext, visit_id: int, stage: str, minutes: int) -> list[ev.Event]:
    """A dispatcher gives more time: the stage's remaining warnings are replaced by one new deadline."""
    visit = await ctx.store.get(Visit, visit_id)
    if visit is None or stage not in STAGE_OPEN or visit.state not in STAGE_OPEN[stage]:
        return []
    timers = ScheduleStore(ctx.store)
    await timers.cancel_timers(visit_id, kind="sla", stage=stage)
    due = ctx.now + timedelta(minutes=minutes)
    await timers.set_timer(
        key=f"sla:{visit_id}:{stage}:{int(ctx.now.timestamp())}:ext", kind="sla", due_at=due, now=ctx.now,
        visit_id=visit_id, technician_id=visit.technician_id, payload={"stage": stage, "tier": 100},
    )
    return [ev.SlaExtended(visit.job_id, visit.id, {"stage": stage, "minutes": minutes, "until": due.isoformat()})]


def eta_minutes(ctx: HandlerContext, lat: float, lon: float, job: Job) -> int:
    """Straight-line distance times a detour factor at city speed; rough, but honest about being rough."""
    km = haversine_m(lat, lon, job.lat, job.lon) / 1000 * ctx.policy.detour_factor
    return max(1, round(km / ctx.policy.travel_speed_kmh * 60))


async def track(ctx: HandlerContext, technician_id: int, lat: float, lon: float) -> list[ev.Event]:
    """A live location update: refresh the ETA of visits on the way; tell the customer once when close."""
    technician = await ctx.store.load(Technician, technician_id)
    technician.last_lat, technician.last_lon, technician.last_seen_at = lat, lon, ctx.now
    events: list[ev.Event] = []
    for visit in await ctx.store.visits_of_technician(technician_id, (VisitStatus.EN_ROUTE,)):
        job = await ctx.store.load(Job, visit.job_id)
        close = haversine_m(lat, lon, job.lat, job.lon) <= ctx.policy.close_radius_m
        minutes = eta_minutes(ctx, lat, lon, job)
        if close and not visit.close_notified:
            visit.close_notified, visit.eta_minutes = True, minutes
            events.append(ev.EtaUpdated(visit.job_id, visit.id, {"technician_id": technician_id, "minutes": minutes, "close": True}))
        elif not close and (visit.eta_minutes is None or abs(visit.eta_minutes - minutes) >= 5):
            # small changes are noise: only a shift of five minutes or more is worth a message
            visit.eta_minutes = minutes
            events.append(ev.EtaUpdated(visit.job_id, visit.id, {"technician_id": technician_id, "minutes": minutes, "close": False}))
    return events


# --- nothing left unowned: chasing bookings, closing completed visits (issue 10) -----------------------


async def _chase_booking(ctx: HandlerContext, visit: Visit) -> None:
    """A visit that can be booked now: remind its customer after a while, then hand it to the dispatchers."""
    if visit.state is not VisitStatus.CREATED:
        return
    cycle = int(ctx.now.timestamp())  # unbooked again later: a new chase, not the old (fired) one
    schedule = ScheduleStore(ctx.store)
    for step, after in (("remind", ctx.policy.booking_reminder), ("escalate", ctx.policy.booking_escalate)):
        await schedule.set_timer(key=f"booking:{visit.id}:{cycle}:{step}", kind="booking", due_at=ctx.now + after,
                                 now=ctx.now, visit_id=visit.id, payload={"step": step})


async def start_booking_chase(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """A new job's first visits, a visit unbooked to be moved, or the visits waiting on one just booked."""
    if isinstance(event, ev.JobCreated):
        visits = [v for v in await ctx.store.visits_of_job(event.job_id) if v.depends_on_visit_id is None]
    elif isinstance(event, ev.VisitBooked):
        visits = [v for v in await ctx.store.visits_of_job(event.job_id) if v.depends_on_visit_id == event.visit_id]
    elif "follow_up_visit_id" in event.data:  # a return visit: the follow-up is the customer's to book
        visits = [await ctx.store.load(Visit, event.data["follow_up_visit_id"])]
    else:
        visits = [await ctx.store.load(Visit, visit_of(event))]
    for visit in visits:
        await _chase_booking(ctx, visit)
    return []


async def stop_booking_chase(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    await ScheduleStore(ctx.store).cancel_timers(visit_of(event), kind="booking")
    return []


async def start_confirmation_clock(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """Completed: the customer is reminded to confirm once, then the visit counts as confirmed by timeout."""
    visit_id = visit_of(event)
    schedule = ScheduleStore(ctx.store)
    cycle = int(ctx.now.timestamp())
    for step, after in (("remind", ctx.policy.confirm_reminder), ("close", ctx.policy.confirm_timeout)):
        await schedule.set_timer(key=f"confirm:{visit_id}:{cycle}:{step}", kind="confirm", due_at=ctx.now + after,
                                 now=ctx.now, visit_id=visit_id, payload={"step": step})
    return []


async def stop_confirmation_clock(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    await ScheduleStore(ctx.store).cancel_timers(visit_of(event), kind="confirm")
    return []


# --- a call for help that nobody answers moves on (issue 10 review) ---------------------------------------------


async def set_assist_timer(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """Colleagues were asked to help: if nobody joins in time, the call moves on (services.dispatching.fire_assist).
    One call at a time per visit: a new round replaces the last one's timer."""
    visit_id = visit_of(event)
    schedule = ScheduleStore(ctx.store)
    await schedule.cancel_timers(visit_id, kind="assist")
    asked = event.data.get("asked", event.data["candidates"])
    await schedule.set_timer(
        key=f"assist:{visit_id}:{int(ctx.now.timestamp())}:{len(asked)}", kind="assist", due_at=ctx.now + ctx.policy.assist_timeout,
        now=ctx.now, visit_id=visit_id,
        payload={"technician_id": event.data.get("technician_id"), "offered": list(event.data["candidates"]), "asked": list(asked),
                 "why": event.data.get("why")},  # crew_grown: the order made the crew bigger (services.crew_growth)
    )
    return []


async def stop_assist_timer(ctx: HandlerContext, event: ev.Event) -> list[ev.Event]:
    """Someone joined: the call is answered."""
    await ScheduleStore(ctx.store).cancel_timers(visit_of(event), kind="assist")
    return []
