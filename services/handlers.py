"""Command handlers: load what a command touches, apply the domain rules, return the events raised."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain import commands as c
from domain import events as ev
from domain import lifecycle
from domain.errors import DomainError, IllegalTransition, InvalidInput, NotAllowed, NotFound
from domain.dispatch import rank, rule_for
from domain.field_work import MAX_LATE_MINUTES, ReturnReason, check_repair_codes, checkin_flags, late_estimate, open_crew_seats, repair_codes
from domain.geo import haversine_m
from domain.model import (
    ChatBinding,
    ChecklistAnswer,
    ChecklistStep,
    Customer,
    DispatchGroup,
    Dispatcher,
    DispatchMode,
    DispatchRule,
    ExceptionStatus,
    Job,
    Offer,
    OfferStatus,
    Photo,
    ProblemReport,
    Rating,
    ServiceKind,
    StepKind,
    Technician,
    Visit,
    VisitStatus,
    stored_id,
)
from domain.slots import free_slots, is_offered_window
from scheduler.routing.model import NOT_ENOUGH_TECHNICIANS
from services import planning
from services.booking import feasible_slots
from services.bus import handles
from services.context import HandlerContext
from services.lookups import booked_slot, booking_of
from services.messages import distance as distance_text
from storage.completion_codes import CodeStore
from storage.schedule import ScheduleStore
from storage.threads import ThreadStore


# --- binding chats ------------------------------------------------------------------------------


async def _redeem(ctx: HandlerContext, token: str, purpose: str, chat: c.ChatIdentity) -> int:
    """Resolve a deep-link token to its subject; a used token only works again for the same chat."""
    row = await ctx.store.find_token(token, purpose)
    chat_key = f"{chat.platform}:{chat.bot}:{chat.chat_id}"
    if row is None:
        raise DomainError("link_invalid")
    if row["used_at"] is not None:
        if row["used_by"] == chat_key:
            return row["subject_id"]
        raise DomainError("link_used")
    if row["expires_at"] < ctx.now:
        raise DomainError("link_expired")
    if not await ctx.store.use_token(row["id"], chat_key, ctx.now):
        raise DomainError("link_used")
    return row["subject_id"]


async def _bind(ctx: HandlerContext, chat: c.ChatIdentity, kind: str, subject_id: int) -> None:
    existing = await ctx.store.binding(chat.platform, chat.bot, chat.chat_id, kind)
    if existing is None:
        await ctx.store.add(
            ChatBinding(chat.platform, chat.bot, chat.chat_id, kind, subject_id, user_id=chat.user_id, language=chat.language)
        )
    else:
        existing.subject_id = subject_id
        existing.user_id = chat.user_id


async def bind_customer(ctx: HandlerContext, cmd: c.BindCustomer) -> list[ev.Event]:
    job_id = await _redeem(ctx, cmd.token, "customer", cmd.chat)
    job = await ctx.store.load(Job, job_id)
    await _bind(ctx, cmd.chat, "customer", job.customer_id)
    customer = await ctx.store.load(Customer, job.customer_id)
    customer.language = cmd.chat.language
    return []


async def bind_technician(ctx: HandlerContext, cmd: c.BindTechnician) -> list[ev.Event]:
    technician_id = await _redeem(ctx, cmd.token, "technician", cmd.chat)
    await _bind(ctx, cmd.chat, "technician", technician_id)
    return []


async def register_dispatcher(ctx: HandlerContext, cmd: c.RegisterDispatcher) -> list[ev.Event]:
    dispatcher_id = await _redeem(ctx, cmd.token, "dispatcher", cmd.chat)
    # a dispatcher is recognised by their user id in any group, so bind their own user
    identity = c.ChatIdentity(cmd.chat.platform, cmd.chat.bot, f"user:{cmd.chat.user_id}", cmd.chat.user_id, cmd.chat.language)
    await _bind(ctx, identity, "dispatcher", dispatcher_id)
    return []


async def bind_group(ctx: HandlerContext, cmd: c.BindDispatchGroup) -> list[ev.Event]:
    group_id = await _redeem(ctx, cmd.token, "group", cmd.chat)
    await _bind(ctx, cmd.chat, "group", group_id)
    group = await ctx.store.load(DispatchGroup, group_id)
    group.language = cmd.chat.language
    return []


SPEAKERS: dict[str, type[Customer | Technician | DispatchGroup]] = {"customer": Customer, "technician": Technician, "group": DispatchGroup}


async def set_language(ctx: HandlerContext, cmd: c.SetLanguage) -> list[ev.Event]:
    for kind, subject in SPEAKERS.items():
        binding = await ctx.store.binding(cmd.chat.platform, cmd.chat.bot, cmd.chat.chat_id, kind)
        if binding is None:
            continue
        binding.language = cmd.language
        entity = await ctx.store.load(subject, binding.subject_id)
        entity.language = cmd.language
    return []


# --- customer -----------------------------------------------------------------------------------


async def _customer_visit(ctx: HandlerContext, visit_id: int, customer_id: int) -> tuple[Visit, Job]:
    visit = await ctx.store.get(Visit, visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    job = await ctx.store.load(Job, visit.job_id)
    if job.customer_id != customer_id:
        raise NotFound("visit_not_found")
    return visit, job


async def candidates_for(ctx: HandlerContext, visit: Visit, job: Job, start: datetime, end: datetime, *, crew_size: int | None = None) -> list[int]:
    """Eligible technicians with room in [start, end), least loaded first; ``crew_size`` 1 asks for one more pair of hands."""
    technicians = await ctx.store.technicians()
    busy = await ctx.store.bookings_between(start - timedelta(days=1), end + timedelta(days=1))
    bookings = [booking_of(v) for v in busy if v.id != visit.id]
    slots = free_slots(
        visit=visit, job=job, technicians=technicians, bookings=bookings, now=start - ctx.policy.booking_lead,
        tz=ctx.policy.tz, windows=ctx.policy.windows, days_ahead=0, lead=ctx.policy.booking_lead, limit=100,
    )
    matching = [slot for slot in slots if slot.start == start and slot.end == end]
    # minutes alone are not enough: the visit must also fit a route with the driving around it
    for slot in await feasible_slots(ctx.store, ctx.policy, ctx.now, visit, job, matching, crew_size=crew_size):
        return list(slot.technician_ids)
    return []


async def candidates(ctx: HandlerContext, visit: Visit, job: Job, *, crew_size: int | None = None) -> list[int]:
    """The one rule for who may take a booked visit, used by every offer, assign and reassign path: skilled,
    in its region, on duty, free at its booked time with the driving around it (the van fits), and not one
    who declined it; best first (distance, load, rating). Excluding whoever has it is the caller's choice."""
    if visit.slot_start is None or visit.slot_end is None:
        return []
    free = [t for t in await candidates_for(ctx, visit, job, visit.slot_start, visit.slot_end, crew_size=crew_size) if t not in visit.declined_by]
    if not free:
        return []
    local_day = visit.slot_start.astimezone(ctx.policy.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    loads = await ctx.store.loads_between(local_day, local_day + timedelta(days=1))
    technicians = [t for t in await ctx.store.technicians() if t.id in free]
    return [c.technician_id for c in rank(technicians, job, loads, await ctx.store.average_ratings())]


async def fill_crew(ctx: HandlerContext, visit: Visit, job: Job) -> list[ev.Event]:
    """A crew visit has its lead: the best technicians free at the same time make up the rest of the crew.

    Nobody else is asked first (the visit is booked and its lead said yes); too few free → the dispatchers.
    """
    missing = visit.crew_size - 1 - len(visit.crew_ids)
    if missing <= 0 or visit.technician_id is None:
        return []
    taken = {visit.technician_id, *visit.crew_ids}
    chosen = [t for t in await candidates(ctx, visit, job, crew_size=1) if t not in taken][:missing]
    events = await planning.set_crew(ctx, visit, [*visit.crew_ids, *chosen]) if chosen else []
    if len(chosen) < missing:
        start, _end = booked_slot(visit)
        events.append(ev.NoTechnicianAvailable(visit.job_id, visit.id, {"start": start.isoformat(), "reason": NOT_ENOUGH_TECHNICIANS}))
    return events


async def _offer_next(ctx: HandlerContext, visit: Visit, job: Job) -> list[ev.Event]:
    """Offer the visit to the best free technician; with nobody left, tell the dispatchers."""
    start, end = booked_slot(visit)
    for technician_id in await candidates(ctx, visit, job):
        # two bookings may both have seen the technician free: lock, then look again
        await ctx.store.get(Technician, technician_id, for_update=True)
        if technician_id not in await candidates_for(ctx, visit, job, start, end):
            continue
        return [lifecycle.offer(visit, visit.job_id, technician_id)]
    return [ev.NoTechnicianAvailable(visit.job_id, visit.id, {"start": start.isoformat()})]


async def _broadcast(ctx: HandlerContext, visit: Visit, job: Job, rule: DispatchRule) -> list[ev.Event]:
    """Grab mode: the same offer to the top few free technicians at once."""
    chosen = (await candidates(ctx, visit, job))[: rule.grab_top_n]
    if not chosen:
        return [ev.NoTechnicianAvailable(visit.job_id, visit.id, {"start": booked_slot(visit)[0].isoformat()})]
    expires = ctx.now + timedelta(minutes=rule.grab_minutes)
    offers = [await ctx.store.add(Offer(stored_id(visit), tech_id, created_at=ctx.now, expires_at=expires)) for tech_id in chosen]
    await ScheduleStore(ctx.store).set_timer(
        key=f"grab:{visit.id}:{offers[0].id}", kind="grab", due_at=expires, now=ctx.now, visit_id=visit.id
    )
    return [ev.OffersBroadcast(visit.job_id, visit.id, {"offers": [[o.id, o.technician_id] for o in offers]})]


async def _dispatch(ctx: HandlerContext, visit: Visit, job: Job) -> list[ev.Event]:
    rule = rule_for(await ctx.store.dispatch_rules(), job.region, visit.kind)
    if rule.mode == DispatchMode.GRAB.value:
        return await _broadcast(ctx, visit, job, rule)
    if rule.mode == DispatchMode.MANUAL.value:
        return [ev.ManualDispatchNeeded(visit.job_id, visit.id, {"candidates": await candidates(ctx, visit, job)})]
    return await _offer_next(ctx, visit, job)


async def book_visit(ctx: HandlerContext, cmd: c.BookVisit) -> list[ev.Event]:
    visit, job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    policy = ctx.policy
    if not is_offered_window(cmd.start, cmd.end, now=ctx.now, tz=policy.tz, windows=policy.windows, days_ahead=policy.booking_days):
        raise DomainError("slot_invalid")
    if cmd.start < ctx.now + ctx.policy.booking_lead:
        raise DomainError("slot_too_soon")
    dependency = await ctx.store.get(Visit, visit.depends_on_visit_id) if visit.depends_on_visit_id else None
    if dependency is not None and dependency.slot_end is None:
        raise DomainError("book_dependency_first", kind=dependency.kind)
    earliest = lifecycle.not_before(visit, dependency)  # None without a dependency
    if earliest is not None and cmd.start < earliest:
        # the same rule the customer's list of times follows: after the delivery's window and its gap
        raise DomainError("slot_before_dependency")
    if not await candidates_for(ctx, visit, job, cmd.start, cmd.end):
        raise DomainError("slot_taken")
    events = [lifecycle.book(visit, visit.job_id, cmd.start, cmd.end, dependency)]
    dispatched = await _dispatch(ctx, visit, job)
    if isinstance(dispatched[0], ev.NoTechnicianAvailable):
        raise DomainError("slot_taken")  # someone booked the last free technician a moment ago
    return events + dispatched


def _before_cutoff(ctx: HandlerContext, visit: Visit) -> None:
    if visit.slot_start is not None and visit.slot_start - ctx.now < ctx.policy.reschedule_cutoff:
        raise DomainError("past_cutoff", hours=int(ctx.policy.reschedule_cutoff.total_seconds() // 3600))


async def _dependants(ctx: HandlerContext, visit: Visit) -> list[Visit]:
    return [v for v in await ctx.store.visits_of_job(visit.job_id) if v.depends_on_visit_id == visit.id]


async def cancel_by_customer(ctx: HandlerContext, cmd: c.CancelVisitByCustomer) -> list[ev.Event]:
    visit, job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    _before_cutoff(ctx, visit)
    events = [lifecycle.cancel(visit, visit.job_id, "customer")]
    for dependant in await _dependants(ctx, visit):
        if lifecycle.allowed(dependant, "cancel"):
            events.append(lifecycle.cancel(dependant, visit.job_id, "customer"))
    return events + await _close_job_if_finished(ctx, job)


async def _close_job_if_finished(ctx: HandlerContext, job: Job) -> list[ev.Event]:
    job_id = stored_id(job)
    visits = await ctx.store.visits_of_job(job_id)
    if all(v.state in lifecycle.ENDED for v in visits):
        job.status = "done" if any(v.state is VisitStatus.CONFIRMED for v in visits) else "cancelled"
        # the customer's link has done its job: it keeps working for a grace period, then expires
        await ctx.store.expire_tokens("customer", job_id, ctx.now + ctx.policy.customer_link_grace)
        return [ev.JobCompleted(job_id, None, {"status": job.status})]
    return []


async def confirm_visit(ctx: HandlerContext, cmd: c.ConfirmVisit) -> list[ev.Event]:
    visit, job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    events = [lifecycle.confirm(visit, visit.job_id)]
    return events + await _close_job_if_finished(ctx, job)


async def rate_visit(ctx: HandlerContext, cmd: c.RateVisit) -> list[ev.Event]:
    visit, job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    if visit.state is not VisitStatus.CONFIRMED:
        raise DomainError("rate_after_confirm")
    if await ctx.store.rating_of(cmd.visit_id) is not None:
        raise DomainError("already_rated")
    rating = await ctx.store.add(Rating(visit.job_id, visit.id, cmd.customer_id, cmd.score, created_at=ctx.now))
    events: list[ev.Event] = [
        ev.RatingGiven(visit.job_id, visit.id, {"score": cmd.score, "rating_id": rating.id, "technician_id": visit.technician_id})
    ]
    if cmd.score <= ctx.policy.low_rating_threshold:
        events.append(ev.LowRatingReceived(visit.job_id, visit.id, {"score": cmd.score, "rating_id": rating.id, "technician_id": visit.technician_id}))
    return events


async def comment_rating(ctx: HandlerContext, cmd: c.CommentRating) -> list[ev.Event]:
    await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    rating = await ctx.store.rating_of(cmd.visit_id)
    if rating is None:
        raise DomainError("rate_first")
    rating.comment = cmd.comment[:1000]
    if rating.score <= ctx.policy.low_rating_threshold:
        # the words behind a low score are a complaint: they must reach the dispatchers, not just the database
        return [ev.ComplaintReceived(rating.job_id, rating.visit_id, {"rating_id": rating.id, "score": rating.score, "comment": rating.comment})]
    return []


# --- technician ---------------------------------------------------------------------------------


async def _technician_visit(ctx: HandlerContext, visit_id: int, technician_id: int) -> tuple[Visit, Job]:
    visit = await ctx.store.get(Visit, visit_id)
    if visit is None or visit.technician_id != technician_id:
        raise NotFound("not_your_visit")
    return visit, await ctx.store.load(Job, visit.job_id)


async def _close_offers(ctx: HandlerContext, visit: Visit, status: OfferStatus, keep: Offer | None = None) -> list[ev.Event]:
    closed: list[list[int | None]] = []
    for offer in await ctx.store.offers_of(stored_id(visit), OfferStatus.OPEN.value):
        if offer is keep:
            continue
        offer.status, offer.closed_at = status.value, ctx.now
        closed.append([offer.id, offer.technician_id])
    return [ev.OffersClosed(visit.job_id, visit.id, {"offers": closed, "outcome": status.value})] if closed else []


async def accept_offer(ctx: HandlerContext, cmd: c.AcceptOffer) -> list[ev.Event]:
    offer = await ctx.store.open_offer(cmd.visit_id, cmd.technician_id)
    if offer is None:
        if any(o.technician_id == cmd.technician_id for o in await ctx.store.offers_of(cmd.visit_id)):
            raise DomainError("offer_taken")  # a grab offer that is closed now
        visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
        return [lifecycle.accept(visit, visit.job_id, cmd.technician_id), *await fill_crew(ctx, visit, job)]
    visit = await ctx.store.load(Visit, cmd.visit_id)
    job = await ctx.store.load(Job, visit.job_id)
    if visit.technician_id is None and cmd.technician_id not in await candidates_for(ctx, visit, job, *booked_slot(visit)):
        raise DomainError("no_longer_free")
    # the visit's version check makes this atomic: of two at once, the second finds it taken
    events = [lifecycle.grab(visit, visit.job_id, cmd.technician_id)]
    offer.status, offer.closed_at = OfferStatus.WON.value, ctx.now
    return events + await _close_offers(ctx, visit, OfferStatus.LOST, keep=offer) + await fill_crew(ctx, visit, job)


async def decline_offer(ctx: HandlerContext, cmd: c.DeclineOffer) -> list[ev.Event]:
    offer = await ctx.store.open_offer(cmd.visit_id, cmd.technician_id)
    if offer is None:
        visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
        declined = [lifecycle.decline(visit, visit.job_id, cmd.technician_id)]
        return declined + await _offer_next(ctx, visit, job)
    visit = await ctx.store.load(Visit, cmd.visit_id)
    job = await ctx.store.load(Job, visit.job_id)
    offer.status, offer.closed_at = OfferStatus.DECLINED.value, ctx.now
    visit.declined_by = [*visit.declined_by, cmd.technician_id]
    events: list[ev.Event] = [ev.OfferDeclined(visit.job_id, visit.id, {"technician_id": cmd.technician_id})]
    if not await ctx.store.offers_of(cmd.visit_id, OfferStatus.OPEN.value):
        events += await _offer_next(ctx, visit, job)  # everybody said no: fall back to auto
    return events


async def expire_offers(ctx: HandlerContext, visit_id: int) -> list[ev.Event]:
    """Grab offers nobody took in time: withdraw them, then dispatch automatically (or alert the group)."""
    visit = await ctx.store.load(Visit, visit_id)
    job = await ctx.store.load(Job, visit.job_id)
    open_offers = await ctx.store.offers_of(visit_id, OfferStatus.OPEN.value)
    expired = [o for o in open_offers if o.expires_at is not None and o.expires_at <= ctx.now]
    if not expired:
        return []  # taken, declined or already swept
    events = await _close_offers(ctx, visit, OfferStatus.EXPIRED)
    if visit.state is VisitStatus.BOOKED and visit.technician_id is None:
        events += await _offer_next(ctx, visit, job)
    return events


async def assign_visit(ctx: HandlerContext, cmd: c.AssignVisit) -> list[ev.Event]:
    if cmd.dispatcher_id is not None and await ctx.store.get(Dispatcher, cmd.dispatcher_id) is None:
        raise NotAllowed("not_a_dispatcher")
    visit = await ctx.store.get(Visit, cmd.visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    job = await ctx.store.load(Job, visit.job_id)
    if visit.slot_start is None:
        raise DomainError("visit_not_booked")
    if open_crew_seats(visit):
        # a crew short of hands: the pick joins beside the lead, who stays (whoever is on it already is no pick)
        on_it = cmd.technician_id in (visit.technician_id, *visit.crew_ids)
        if on_it or cmd.technician_id not in await candidates(ctx, visit, job, crew_size=1):
            raise DomainError("technician_not_eligible")
        await ctx.store.get(Technician, cmd.technician_id, for_update=True)
        return await take_crew_seat(ctx, visit, cmd.technician_id)
    if cmd.technician_id not in await candidates(ctx, visit, job):
        raise DomainError("technician_not_eligible")
    await ctx.store.get(Technician, cmd.technician_id, for_update=True)
    events = await _close_offers(ctx, visit, OfferStatus.LOST)
    if visit.technician_id is None:
        return events + [lifecycle.offer(visit, visit.job_id, cmd.technician_id)]
    return events + [lifecycle.reassign(visit, visit.job_id, cmd.technician_id), *await settle_reports(ctx, visit, cmd.dispatcher_id, "reassigned")]


async def take_crew_seat(ctx: HandlerContext, visit: Visit, technician_id: int) -> list[ev.Event]:
    """A dispatcher's pick takes an open place in the crew; the lead hears who joins them, as after a call for help."""
    joined = ev.AssistanceJoined(visit.job_id, visit.id, {"technician_id": visit.technician_id, "member": technician_id, "by": "dispatcher"})
    return [*await planning.set_crew(ctx, visit, [*visit.crew_ids, technician_id]), joined]


async def settle_reports(ctx: HandlerContext, visit: Visit, dispatcher_id: int | None, resolution: str) -> list[ev.Event]:
    """A dispatcher decided what happens to a visit (another technician, cancelled): its open problem reports are
    answered by that, each resolved by whom and when (on the timeline), and their alert cards lose their buttons."""
    dispatcher = await ctx.store.get(Dispatcher, dispatcher_id) if dispatcher_id is not None else None
    events: list[ev.Event] = []
    for report in await ThreadStore(ctx.store).reports_of_visits([stored_id(visit)]):
        if report.status == ExceptionStatus.RESOLVED.value:
            continue
        report.status, report.resolution = ExceptionStatus.RESOLVED.value, resolution
        events.append(ev.ExceptionResolved(visit.job_id, visit.id, {
            "exception_id": report.id, "resolution": resolution, "dispatcher_id": dispatcher_id,
            "name": dispatcher.name if dispatcher else None, "at": ctx.now.isoformat(),
        }))
    return events


async def depart(ctx: HandlerContext, cmd: c.Depart) -> list[ev.Event]:
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    return [lifecycle.depart(visit, visit.job_id, cmd.technician_id)]


def checkin_distance(job: Job, latitude: float, longitude: float) -> float:
    return haversine_m(job.lat, job.lon, latitude, longitude)


async def check_in(ctx: HandlerContext, cmd: c.CheckIn) -> list[ev.Event]:
    visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    distance = checkin_distance(job, cmd.latitude, cmd.longitude)
    if distance > ctx.policy.checkin_radius_m and not (cmd.reason or "").strip():
        raise DomainError("checkin_reason_required", distance=distance_text(distance))
    checked_in = lifecycle.check_in(visit, visit.job_id, cmd.technician_id, distance, cmd.reason, cmd.kind, ctx.policy.checkin_radius_m)
    flags = checkin_flags(cmd.kind, distance, ctx.policy.checkin_radius_m)
    if not flags:
        return [checked_in]
    # not proven presence: the dispatchers see how far and how it was shared (a static pin can be dropped anywhere),
    # in one alert whatever the flags; a check-in happens once per visit, so this cannot repeat
    data = {"technician_id": cmd.technician_id, "distance_m": visit.checkin_distance_m, "kind": cmd.kind, "reason": cmd.reason,
            "flags": list(flags)}
    return [checked_in, ev.CheckInFlagged(visit.job_id, visit.id, data)]


async def start_work(ctx: HandlerContext, cmd: c.StartWork) -> list[ev.Event]:
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    dependency = await ctx.store.get(Visit, visit.depends_on_visit_id) if visit.depends_on_visit_id else None
    return [lifecycle.start(visit, visit.job_id, cmd.technician_id, dependency)]


async def checklist_steps(ctx: HandlerContext, visit: Visit, job: Job) -> list[ChecklistStep]:
    template = await ctx.store.template_for(visit.kind, job.product_category)
    return template.parsed_steps() if template else []


async def _save_photo(ctx: HandlerContext, visit_id: int, photo: c.PhotoRef, purpose: str) -> Photo:
    return await ctx.store.add(Photo(visit_id, photo.platform, photo.file_id, photo.path, purpose, created_at=ctx.now))


async def answer_step(ctx: HandlerContext, cmd: c.AnswerStep) -> list[ev.Event]:
    visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.state is not VisitStatus.IN_PROGRESS:
        raise DomainError("checklist_not_started")
    steps = {s.key: s for s in await checklist_steps(ctx, visit, job)}
    step = steps.get(cmd.step_key)
    if step is None:
        raise NotFound("step_not_found")
    if step.kind is StepKind.PHOTO and cmd.photo is None:
        raise DomainError("photo_required")
    photo_id = (await _save_photo(ctx, cmd.visit_id, cmd.photo, "checklist")).id if cmd.photo else None
    answers = await ctx.store.answers_of(cmd.visit_id)
    if cmd.step_key in answers:
        answer = answers[cmd.step_key]
        answer.value, answer.photo_id, answer.answered_at = cmd.value, photo_id, ctx.now
    else:
        await ctx.store.add(ChecklistAnswer(cmd.visit_id, cmd.step_key, cmd.value, photo_id, answered_at=ctx.now))
    keys = list(steps)
    visit.checklist_position = max(visit.checklist_position, keys.index(cmd.step_key) + 1)
    return [ev.ChecklistAnswered(visit.job_id, visit.id, {"step": cmd.step_key})]


async def complete_visit(ctx: HandlerContext, cmd: c.CompleteVisit) -> list[ev.Event]:
    visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    steps = await checklist_steps(ctx, visit, job)
    answers = await ctx.store.answers_of(cmd.visit_id)
    done = all(s.key in answers for s in steps)
    if visit.service_kind is ServiceKind.REPAIR and not (visit.fault_category and visit.repair_method):
        raise DomainError("repair_codes_required")  # a repair says what was wrong and what was done (RecordRepair)
    code = await CodeStore(ctx.store).code_of(cmd.visit_id)
    if code is not None and code.pending:
        # the customer's one-time code completes it (services.completion_codes), or a dispatcher does
        raise DomainError("completion_code_required")
    return [lifecycle.complete(visit, visit.job_id, cmd.technician_id, done)]


async def report_exception(ctx: HandlerContext, cmd: c.ReportException) -> list[ev.Event]:
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    photos = [await _save_photo(ctx, cmd.visit_id, p, "exception") for p in cmd.photos]
    report = await ctx.store.add(
        ProblemReport(cmd.visit_id, cmd.technician_id, cmd.reason, cmd.note[:1000], [stored_id(p) for p in photos], created_at=ctx.now)
    )
    return [lifecycle.hold(visit, visit.job_id, stored_id(report), cmd.reason)]


# --- dispatcher ---------------------------------------------------------------------------------


async def _open_report(ctx: HandlerContext, exception_id: int, dispatcher_id: int) -> tuple[ProblemReport, Visit, Job]:
    if await ctx.store.get(Dispatcher, dispatcher_id) is None:
        raise NotAllowed("not_a_dispatcher")
    report = await ctx.store.get(ProblemReport, exception_id)
    if report is None:
        raise NotFound("exception_not_found")
    if report.status == ExceptionStatus.RESOLVED.value:
        raise DomainError("exception_already_resolved")
    visit = await ctx.store.load(Visit, report.visit_id)
    return report, visit, await ctx.store.load(Job, visit.job_id)


async def acknowledge_exception(ctx: HandlerContext, cmd: c.AcknowledgeException) -> list[ev.Event]:
    report, visit, _job = await _open_report(ctx, cmd.exception_id, cmd.dispatcher_id)
    if report.status != ExceptionStatus.OPEN.value:
        raise DomainError("exception_already_acknowledged")
    report.status = ExceptionStatus.ACKNOWLEDGED.value
    # who and when, so the card can say it and a second press names them instead of acting again
    report.acknowledged_by, report.acknowledged_at = cmd.dispatcher_id, ctx.now
    dispatcher = await ctx.store.load(Dispatcher, cmd.dispatcher_id)
    events: list[ev.Event] = [ev.ExceptionAcknowledged(visit.job_id, visit.id, {
        "exception_id": report.id, "dispatcher_id": cmd.dispatcher_id, "name": dispatcher.name, "at": ctx.now.isoformat(),
    })]
    if visit.state is VisitStatus.ON_HOLD:
        # acknowledged means the technician may carry on where they stopped
        events.append(lifecycle.resume(visit, visit.job_id))
    return events


async def reassign_visit(ctx: HandlerContext, cmd: c.ReassignVisit) -> list[ev.Event]:
    _report, visit, job = await _open_report(ctx, cmd.exception_id, cmd.dispatcher_id)
    if cmd.technician_id == visit.technician_id or cmd.technician_id not in await candidates(ctx, visit, job):
        raise DomainError("technician_not_eligible")
    return [lifecycle.reassign(visit, visit.job_id, cmd.technician_id), *await settle_reports(ctx, visit, cmd.dispatcher_id, "reassigned")]


async def cancel_by_dispatcher(ctx: HandlerContext, cmd: c.CancelVisitByDispatcher) -> list[ev.Event]:
    _report, visit, job = await _open_report(ctx, cmd.exception_id, cmd.dispatcher_id)
    return await dispatcher_cancels(ctx, visit, job, cmd.dispatcher_id)


async def dispatcher_cancels(ctx: HandlerContext, visit: Visit, job: Job, dispatcher_id: int | None) -> list[ev.Event]:
    """A dispatcher's cancellation, from a report or any alert: the visit, its open reports settled, the visits that
    waited for it, and the job when nothing is left."""
    events = [lifecycle.cancel(visit, visit.job_id, "dispatcher"), *await settle_reports(ctx, visit, dispatcher_id, "cancelled")]
    for dependant in await _dependants(ctx, visit):
        if lifecycle.allowed(dependant, "cancel"):
            events.append(lifecycle.cancel(dependant, visit.job_id, "dispatcher"))
    return events + await _close_job_if_finished(ctx, job)


async def acknowledge_alert(ctx: HandlerContext, cmd: c.AcknowledgeAlert) -> list[ev.Event]:
    if await ctx.store.get(Dispatcher, cmd.dispatcher_id) is None:
        raise NotAllowed("not_a_dispatcher")
    rating = await ctx.store.get(Rating, cmd.rating_id)
    if rating is None:
        raise NotFound("rating_not_found")
    if rating.acknowledged_by is not None:
        raise DomainError("alert_already_acknowledged")
    rating.acknowledged_by, rating.acknowledged_at = cmd.dispatcher_id, ctx.now
    dispatcher = await ctx.store.load(Dispatcher, cmd.dispatcher_id)
    return [ev.AlertAcknowledged(rating.job_id, rating.visit_id, {
        "rating_id": rating.id, "dispatcher_id": cmd.dispatcher_id, "name": dispatcher.name, "at": ctx.now.isoformat(),
    })]


async def mark_contacted(ctx: HandlerContext, cmd: c.MarkContacted) -> list[ev.Event]:
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.state not in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE):
        raise DomainError("illegal_transition", current=visit.status, action="contact")
    return [ev.CustomerContacted(visit.job_id, visit.id, {"technician_id": cmd.technician_id})]


async def chat_unreachable(ctx: HandlerContext, platform: str, bot: str, chat_id: str, reason: str) -> list[ev.Event]:
    """A chat stopped taking our messages: the dispatchers of every open job it matters for are told."""
    events: list[ev.Event] = []
    customer = await ctx.store.binding(platform, bot, chat_id, "customer")
    if customer is not None:
        for job in await ctx.store.jobs_of_customer(customer.subject_id):
            events.append(ev.ChatUnreachable(stored_id(job), None, {"who": "customer", "reason": reason}))
    technician = await ctx.store.binding(platform, bot, chat_id, "technician")
    if technician is not None:
        for visit in await ctx.store.visits_of_technician(technician.subject_id, lifecycle.OPEN):
            events.append(ev.ChatUnreachable(visit.job_id, visit.id, {"who": "technician", "reason": reason, "technician_id": technician.subject_id}))
    return events


# the commands handled here; services/registry.py adds those whose handlers live with timers and replanning
HANDLERS = dict([
    handles(c.BindCustomer, bind_customer),
    handles(c.BindTechnician, bind_technician),
    handles(c.RegisterDispatcher, register_dispatcher),
    handles(c.BindDispatchGroup, bind_group),
    handles(c.SetLanguage, set_language),
    handles(c.BookVisit, book_visit),
    handles(c.CancelVisitByCustomer, cancel_by_customer),
    handles(c.ConfirmVisit, confirm_visit),
    handles(c.RateVisit, rate_visit),
    handles(c.CommentRating, comment_rating),
    handles(c.AcceptOffer, accept_offer),
    handles(c.DeclineOffer, decline_offer),
    handles(c.Depart, depart),
    handles(c.CheckIn, check_in),
    handles(c.StartWork, start_work),
    handles(c.AnswerStep, answer_step),
    handles(c.CompleteVisit, complete_visit),
    handles(c.ReportException, report_exception),
    handles(c.AcknowledgeException, acknowledge_exception),
    handles(c.ReassignVisit, reassign_visit),
    handles(c.CancelVisitByDispatcher, cancel_by_dispatcher),
    handles(c.AcknowledgeAlert, acknowledge_alert),
    handles(c.AssignVisit, assign_visit),
    handles(c.MarkContacted, mark_contacted),
])


# --- the customer moves, confirms, writes (issue 10; registered in services/registry.py) ---------


async def _rebook(ctx: HandlerContext, visit: Visit, job: Job, start: datetime, end: datetime) -> list[ev.Event]:
    """Move one booked visit to a window the customer may book, dispatching it anew; refused as a whole otherwise."""
    policy = ctx.policy
    if not is_offered_window(start, end, now=ctx.now, tz=policy.tz, windows=policy.windows, days_ahead=policy.booking_days):
        raise DomainError("slot_invalid")
    if start < ctx.now + policy.booking_lead:
        raise DomainError("slot_too_soon")
    dependency = await ctx.store.get(Visit, visit.depends_on_visit_id) if visit.depends_on_visit_id else None
    if not await candidates_for(ctx, visit, job, start, end):
        raise DomainError("slot_taken")
    # grab offers for the old time are withdrawn; the new time is offered afresh
    events = await _close_offers(ctx, visit, OfferStatus.EXPIRED)
    events.append(lifecycle.rebook(visit, visit.job_id, start, end, dependency))
    dispatched = await _dispatch(ctx, visit, job)
    if isinstance(dispatched[0], ev.NoTechnicianAvailable):
        raise DomainError("slot_taken")  # someone took the last free technician a moment ago: the old time stays
    return events + dispatched


async def rebook_visit(ctx: HandlerContext, cmd: c.RebookVisit) -> list[ev.Event]:
    """The customer's reschedule, in one command: the old window holds until the new one is booked, and an
    installation that would no longer follow its delivery moves with it only when the customer said where to."""
    visit, job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    _before_cutoff(ctx, visit)
    events = await _rebook(ctx, visit, job, cmd.start, cmd.end)
    for dependant in await _dependants(ctx, visit):
        if not lifecycle.must_move_with(dependant, visit):
            continue
        if dependant.id != cmd.dependant_id or cmd.dependant_start is None or cmd.dependant_end is None:
            raise DomainError("dependant_must_move", kind=dependant.kind)
        _before_cutoff(ctx, dependant)
        events += await _rebook(ctx, dependant, job, cmd.dependant_start, cmd.dependant_end)
    return events


async def confirm_appointment_time(ctx: HandlerContext, cmd: c.ConfirmAppointmentTime) -> list[ev.Event]:
    visit, _job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    return [lifecycle.confirm_appointment(visit, visit.job_id, ctx.now)]


async def forward_customer_text(ctx: HandlerContext, cmd: c.ForwardCustomerText) -> list[ev.Event]:
    """The text goes on the job's timeline and to its dispatchers: what a customer writes is never dropped."""
    job = await ctx.store.get(Job, cmd.job_id)
    if job is None or job.customer_id != cmd.customer_id:
        raise NotFound("job_not_found")
    return [ev.CustomerWrote(stored_id(job), cmd.visit_id, {"topic": cmd.topic, "text": cmd.text.strip()[:1000]})]


# --- technicians' paths off the happy one (hand back, help, return visits, repairs, delays, free text) ----------


async def hand_back_visit(ctx: HandlerContext, cmd: c.HandBackVisit) -> list[ev.Event]:
    """One accepted visit given back with a reason, then dispatched again as a decline would be (mode and candidates alike)."""
    visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    reason = cmd.reason.strip()[:500]
    if not reason:
        raise InvalidInput("hand_back_reason_required")
    return [lifecycle.hand_back(visit, visit.job_id, cmd.technician_id, reason), *await _dispatch(ctx, visit, job)]


async def request_assistance(ctx: HandlerContext, cmd: c.RequestAssistance) -> list[ev.Event]:
    """The visit needs one more pair of hands: offered to the best skilled technicians free at its time (by the one
    candidate rule), the first to join gets the place; nobody free → the dispatchers."""
    visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.state not in lifecycle.ACTIVE:
        raise IllegalTransition(visit.status, "assist")
    taken = {cmd.technician_id, *visit.crew_ids}
    free = [t for t in await candidates(ctx, visit, job, crew_size=1) if t not in taken]
    if not free:
        return [ev.AssistanceUnavailable(visit.job_id, visit.id, {"technician_id": cmd.technician_id})]
    visit.crew_size = max(visit.crew_size, len(visit.crew_ids) + 2)  # the lead, the crew it has, and one open place
    asked = free[:ASSIST_OFFERS]
    # "asked": everyone asked on this call so far, so that a call nobody answers moves on to others (services.dispatching)
    return [ev.AssistanceRequested(visit.job_id, visit.id, {"technician_id": cmd.technician_id, "candidates": asked, "asked": asked})]


ASSIST_OFFERS = 3  # how many free colleagues are asked at once to help; the first to join gets the place


async def join_crew(ctx: HandlerContext, cmd: c.JoinCrew) -> list[ev.Event]:
    """A colleague answers a call for help: they join the crew while a place is open and they are still free."""
    visit = await ctx.store.get(Visit, cmd.visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    job = await ctx.store.load(Job, visit.job_id)
    if cmd.technician_id == visit.technician_id or cmd.technician_id in visit.crew_ids:
        raise DomainError("already_on_visit")
    if visit.state not in lifecycle.ACTIVE or visit.crew_size - 1 - len(visit.crew_ids) <= 0:
        raise DomainError("assistance_not_needed")
    await ctx.store.get(Technician, cmd.technician_id, for_update=True)
    if cmd.technician_id not in await candidates(ctx, visit, job, crew_size=1):
        raise DomainError("no_longer_free")
    joined = ev.AssistanceJoined(visit.job_id, visit.id, {"technician_id": visit.technician_id, "member": cmd.technician_id})
    return [*await planning.set_crew(ctx, visit, [*visit.crew_ids, cmd.technician_id]), joined]


async def end_for_return(ctx: HandlerContext, cmd: c.EndForReturn) -> list[ev.Event]:
    """The visit ends needing another: a linked follow-up of the same job is created for the customer to book, and what
    waited for this visit (an installation after its delivery) now waits for the follow-up."""
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    try:
        reason = ReturnReason(cmd.reason)
    except ValueError as exc:
        raise InvalidInput("return_reason_invalid") from exc
    note = cmd.note.strip()[:500]
    if reason is ReturnReason.OTHER and not note:
        raise InvalidInput("return_reason_note_required")
    if not lifecycle.allowed(visit, "end_for_return"):
        raise IllegalTransition(visit.status, "end_for_return")
    siblings = await ctx.store.visits_of_job(visit.job_id)
    follow_up = await ctx.store.add(lifecycle.follow_up_of(visit, max(v.sequence for v in siblings) + 1))
    for dependant in siblings:
        if dependant.depends_on_visit_id == visit.id:
            dependant.depends_on_visit_id = follow_up.id
    return [lifecycle.end_for_return(visit, follow_up, visit.job_id, cmd.technician_id, reason.value, note)]


async def record_repair(ctx: HandlerContext, cmd: c.RecordRepair) -> list[ev.Event]:
    """A repair's fault category and method, from the lists of its product category (``ServicePolicy.repair_codes``)."""
    visit, job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.service_kind is not ServiceKind.REPAIR:
        raise DomainError("not_a_repair")
    if visit.state is not VisitStatus.IN_PROGRESS:
        raise IllegalTransition(visit.status, "record_repair")
    if not check_repair_codes(repair_codes(ctx.policy.repair_codes, job.product_category), cmd.fault, cmd.method):
        raise InvalidInput("repair_code_invalid")
    visit.fault_category, visit.repair_method = cmd.fault, cmd.method
    return []  # recorded on the visit; completing it, which follows at once, is the event


async def report_late(ctx: HandlerContext, cmd: c.ReportLate) -> list[ev.Event]:
    """The technician will be late: the visit's expected start moves, and the customer gets the new estimate."""
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.state not in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE):
        raise IllegalTransition(visit.status, "late")
    if not 0 < cmd.minutes <= MAX_LATE_MINUTES:
        raise InvalidInput("late_minutes_invalid", max=MAX_LATE_MINUTES)
    estimate = late_estimate(visit, ctx.now, cmd.minutes)
    visit.planned_start = estimate
    visit.late_minutes += cmd.minutes
    visit.eta_minutes = max(0, int((estimate - ctx.now).total_seconds() // 60))
    data = {"technician_id": cmd.technician_id, "minutes": cmd.minutes, "estimate": estimate.isoformat()}
    return [ev.RunningLate(visit.job_id, visit.id, data)]


HANDLERS.update([
    handles(c.HandBackVisit, hand_back_visit),
    handles(c.RequestAssistance, request_assistance),
    handles(c.JoinCrew, join_crew),
    handles(c.EndForReturn, end_for_return),
    handles(c.RecordRepair, record_repair),
    handles(c.ReportLate, report_late),
])
