"""Dispatchers' decisions (override, move, correct, cancel, close, reopen, note) and the chase timers' firing."""

from __future__ import annotations

from datetime import timedelta

from domain import closing, dispatch, lifecycle
from domain import commands as c
from domain import events as ev
from domain.errors import DomainError, InvalidInput, NotAllowed, NotFound
from domain.model import Dispatcher, Job, OfferStatus, Technician, Visit, VisitStatus, stored_id
from domain.slots import is_offered_window
from services.context import HandlerContext
from domain.field_work import open_crew_seats
from services.handlers import (
    ASSIST_OFFERS,
    _close_job_if_finished,
    _close_offers,
    _customer_visit,
    _dispatch,
    candidates,
    dispatcher_cancels,
    settle_reports,
    take_crew_seat,
)
from services.lookups import booked_slot, booking_of
from storage.rows import TimerRow

MAX_ADDRESS = 300
MAX_NOTE = 1000
# the customer saw "no time fits" again within this long: the dispatchers already have it
NO_SLOT_REPEAT = timedelta(hours=12)


async def _dispatcher(ctx: HandlerContext, dispatcher_id: int | None) -> None:
    """None is the back-office API (its token is checked at the door); anyone else must be a registered dispatcher."""
    if dispatcher_id is not None and await ctx.store.get(Dispatcher, dispatcher_id) is None:
        raise NotAllowed("not_a_dispatcher")


async def _visit(ctx: HandlerContext, visit_id: int) -> tuple[Visit, Job]:
    visit = await ctx.store.get(Visit, visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    return visit, await ctx.store.load(Job, visit.job_id)


async def _job(ctx: HandlerContext, job_id: int) -> Job:
    job = await ctx.store.get(Job, job_id)
    if job is None:
        raise NotFound("job_not_found")
    return job


async def choices(ctx: HandlerContext, visit: Visit, job: Job) -> list[dispatch.Choice]:
    """Everyone skilled for a booked visit with what they hold at its time (domain.dispatch.candidates);
    the free ones, by the same rule automatic dispatch follows, come first and need no override. A crew short of hands
    (domain.field_work.open_crew_seats) looks for one more beside those it has: free means free for one more place
    (as fill_crew asks), not for the whole crew."""
    start, end = booked_slot(visit)
    bookings = [booking_of(v) for v in await ctx.store.bookings_between(start - timedelta(days=1), end + timedelta(days=1))]
    every = dispatch.candidates(await ctx.store.technicians(), visit, job, bookings, ctx.policy.tz)
    seats = open_crew_seats(visit)
    # whoever is on the visit already is no choice: the crew's members help the lead, they do not replace them
    every = [choice for choice in every if choice.technician_id not in (visit.technician_id, *visit.crew_ids)]
    free = await candidates(ctx, visit, job, crew_size=1 if seats else None)
    by_id = {choice.technician_id: choice for choice in every}
    ranked_free = [by_id[tid] for tid in free if tid in by_id]
    # free by the minutes but not by the route (driving): still an override, with no visit to name
    rest = [choice if choice.needs_override else dispatch.Choice(choice.technician_id, choice.name, (), False, no_route=True)
            for choice in every if choice.technician_id not in free]
    return [dispatch.Choice(ch.technician_id, ch.name, (), False) for ch in ranked_free] + rest


def conflict_data(choice: dispatch.Choice) -> list[dict[str, object]]:
    """What an override accepted, as the timeline and the API show it."""
    held: list[dict[str, object]] = [
        {"visit_id": b.visit_id, "job_id": b.job_id, "start": b.start.isoformat(), "end": b.end.isoformat()} for b in choice.conflicts
    ]
    return held or [{"off_shift": choice.off_shift, "no_route": choice.no_route}]


# --- handlers ---------------------------------------------------------------------------------------------


async def report_no_slot_fits(ctx: HandlerContext, cmd: c.ReportNoSlotFits) -> list[ev.Event]:
    visit, job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    for row in reversed(await ctx.store.timeline(stored_id(job))):
        if row["type"] == "NoSlotFits" and row["visit_id"] == visit.id and ctx.now - row["occurred_at"] < NO_SLOT_REPEAT:
            return []  # told already: asking again must not flood the group
    return [ev.NoSlotFits(visit.job_id, visit.id, {"kind": visit.kind})]


async def force_assign(ctx: HandlerContext, cmd: c.ForceAssignVisit) -> list[ev.Event]:
    """Assign anyone skilled; someone not free is an override, recorded with the conflict that was accepted."""
    await _dispatcher(ctx, cmd.dispatcher_id)
    visit, job = await _visit(ctx, cmd.visit_id)
    if visit.slot_start is None:
        raise DomainError("visit_not_booked")
    seat = open_crew_seats(visit) > 0  # a crew short of hands: the pick joins beside the lead, who stays
    if cmd.technician_id in (visit.technician_id, *visit.crew_ids):
        raise DomainError("technician_not_eligible")  # already on it (a stale confirmation pressed again)
    if not seat and not lifecycle.allowed(visit, "offer" if visit.technician_id is None else "reassign"):
        raise DomainError("illegal_transition", current=visit.status, action="assign")
    choice = next((ch for ch in await choices(ctx, visit, job) if ch.technician_id == cmd.technician_id), None)
    if choice is None or cmd.technician_id == visit.technician_id:
        raise DomainError("technician_not_eligible")
    await ctx.store.get(Technician, cmd.technician_id, for_update=True)
    events: list[ev.Event] = []
    if choice.needs_override:
        events.append(ev.ConflictOverridden(visit.job_id, visit.id, {
            "technician_id": cmd.technician_id, "dispatcher_id": cmd.dispatcher_id, "conflicts": conflict_data(choice),
        }))
    if seat:
        return events + await take_crew_seat(ctx, visit, cmd.technician_id)
    events += await _close_offers(ctx, visit, OfferStatus.LOST)
    if visit.technician_id is None:
        return events + [lifecycle.offer(visit, visit.job_id, cmd.technician_id)]
    # another technician answers the visit's open problem reports: they are resolved, and their cards lose their buttons
    return events + [lifecycle.reassign(visit, visit.job_id, cmd.technician_id), *await settle_reports(ctx, visit, cmd.dispatcher_id, "reassigned")]


async def move_visit(ctx: HandlerContext, cmd: c.MoveVisit) -> list[ev.Event]:
    """A dispatcher picks a new window: the visit is booked there and dispatched again; its customer is told."""
    await _dispatcher(ctx, cmd.dispatcher_id)
    visit, job = await _visit(ctx, cmd.visit_id)
    policy = ctx.policy
    if not is_offered_window(cmd.start, cmd.end, now=ctx.now, tz=policy.tz, windows=policy.windows, days_ahead=policy.booking_days):
        raise DomainError("slot_invalid")
    if cmd.start <= ctx.now:
        raise DomainError("slot_too_soon")
    previous = visit.slot_start
    events: list[ev.Event] = []
    if visit.state is not VisitStatus.CREATED:
        if not lifecycle.allowed(visit, "unbook"):
            raise DomainError("visit_under_way")
        events.append(lifecycle.unbook(visit, visit.job_id))
    dependency = await ctx.store.get(Visit, visit.depends_on_visit_id) if visit.depends_on_visit_id else None
    earliest = lifecycle.not_before(visit, dependency)
    if dependency is not None and dependency.slot_end is None:
        raise DomainError("book_dependency_first", kind=dependency.kind)
    if earliest is not None and cmd.start < earliest:
        raise DomainError("slot_before_dependency")
    events.append(lifecycle.book(visit, visit.job_id, cmd.start, cmd.end, dependency))
    events.append(ev.VisitMovedByDispatcher(visit.job_id, visit.id, {
        "start": cmd.start.isoformat(), "end": cmd.end.isoformat(), "dispatcher_id": cmd.dispatcher_id,
        "previous_start": previous.isoformat() if previous else None,
    }))
    # nobody free at the new time is not a refusal here: the dispatchers get that alert, with its actions
    return events + await _dispatch(ctx, visit, job)


async def correct_address(ctx: HandlerContext, cmd: c.CorrectAddress) -> list[ev.Event]:
    await _dispatcher(ctx, cmd.dispatcher_id)
    job = await _job(ctx, cmd.job_id)
    text = " ".join(cmd.address.split())
    if not text or len(text) > MAX_ADDRESS:
        raise InvalidInput("address_invalid")
    if (cmd.lat is None) != (cmd.lon is None) or (cmd.lat is not None and not (-90 <= cmd.lat <= 90 and -180 <= (cmd.lon or 0) <= 180)):
        raise InvalidInput("coordinates_invalid")
    job.address_text = text
    if cmd.lat is not None and cmd.lon is not None:
        job.lat, job.lon = cmd.lat, cmd.lon
    return [ev.AddressCorrected(stored_id(job), None, {"address": text, "lat": cmd.lat, "lon": cmd.lon, "dispatcher_id": cmd.dispatcher_id})]


async def cancel_as_dispatcher(ctx: HandlerContext, cmd: c.CancelVisitAsDispatcher) -> list[ev.Event]:
    await _dispatcher(ctx, cmd.dispatcher_id)
    visit, job = await _visit(ctx, cmd.visit_id)
    if not lifecycle.allowed(visit, "cancel"):
        raise DomainError("illegal_transition", current=visit.status, action="cancel")
    return await dispatcher_cancels(ctx, visit, job, cmd.dispatcher_id)


async def close_job(ctx: HandlerContext, cmd: c.CloseJob) -> list[ev.Event]:
    await _dispatcher(ctx, cmd.dispatcher_id)
    job = await _job(ctx, cmd.job_id)
    by = "dispatcher" if cmd.dispatcher_id is not None else "api"
    events = closing.close(job, await ctx.store.visits_of_job(cmd.job_id), cmd.reason, by, cmd.dispatcher_id)
    await ctx.store.expire_tokens("customer", cmd.job_id, ctx.now + ctx.policy.customer_link_grace)
    return events


async def reopen_job(ctx: HandlerContext, cmd: c.ReopenJob) -> list[ev.Event]:
    await _dispatcher(ctx, cmd.dispatcher_id)
    job = await _job(ctx, cmd.job_id)
    return [closing.reopen(job, cmd.reason, cmd.dispatcher_id)]


async def add_note(ctx: HandlerContext, cmd: c.AddNote) -> list[ev.Event]:
    await _dispatcher(ctx, cmd.dispatcher_id)
    job = await _job(ctx, cmd.job_id)
    text = cmd.text.strip()
    if not text:
        raise InvalidInput("note_empty")
    return [ev.NoteAdded(stored_id(job), None, {"text": text[:MAX_NOTE], "dispatcher_id": cmd.dispatcher_id})]


# --- timers: chasing a booking, closing a completed visit ------------------------------------------------


async def fire_chase(ctx: HandlerContext, timer: TimerRow, visit: Visit) -> list[ev.Event]:
    """A booking chase or a confirmation timer came due; a visit that moved on in the meantime makes it a no-op."""
    step = timer["payload"].get("step")
    job = await ctx.store.load(Job, visit.job_id)
    if job.status != "open":
        return []
    if timer["kind"] == "booking":
        if visit.state is not VisitStatus.CREATED:
            return []
        if step == "remind":
            return [ev.BookingReminderDue(visit.job_id, visit.id, {"kind": visit.kind})]
        return [ev.BookingOverdue(visit.job_id, visit.id, {"kind": visit.kind})]
    if visit.state is not VisitStatus.COMPLETED:
        return []
    if step == "remind":
        return [ev.CompletionReminderDue(visit.job_id, visit.id, {"technician_id": visit.technician_id})]
    return [closing.confirm_by_timeout(visit), *await _close_job_if_finished(ctx, job)]


# --- a call for help nobody answered (timers: services.timers.set_assist_timer) --------------------------


async def fire_assist(ctx: HandlerContext, timer: TimerRow, visit: Visit) -> list[ev.Event]:
    """Nobody joined in time: those asked are told the call is over, the next free skilled colleagues are asked (by the
    one candidate rule), and with nobody left the dispatchers take it over; the asker hears which. A place filled or a
    visit over in the meantime makes it a no-op."""
    if visit.state not in lifecycle.ACTIVE or open_crew_seats(visit) <= 0:
        return []
    job = await ctx.store.load(Job, visit.job_id)
    asked = [int(tid) for tid in timer["payload"].get("asked", ())]
    taken = {visit.technician_id, *visit.crew_ids, *asked}
    following = [tid for tid in await candidates(ctx, visit, job, crew_size=1) if tid not in taken][:ASSIST_OFFERS]
    requester = timer["payload"].get("technician_id") or visit.technician_id
    minutes = int(ctx.policy.assist_timeout.total_seconds() // 60)
    events: list[ev.Event] = [ev.AssistanceTimedOut(visit.job_id, visit.id, {
        "technician_id": requester, "offers": list(timer["payload"].get("offered", ())), "next": following, "minutes": minutes,
    })]
    if following:
        events.append(ev.AssistanceRequested(visit.job_id, visit.id, {
            "technician_id": requester, "candidates": following, "asked": [*asked, *following], "why": timer["payload"].get("why"),
        }))
    return events
