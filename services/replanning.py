"""Local replanning after events (off duty, urgent orders, overruns) and the nightly plan, run from timers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Set
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain import events as ev
from domain import lifecycle
from domain.clock import Clock
from domain import commands as c
from domain.errors import DomainError, NotFound
from domain.model import Job, OfferStatus, Technician, Visit, VisitStatus, stored_id
from domain.policy import ServicePolicy
from scheduler.routing import model as rm
from services import planning
from services.bus import MessageBus
from services.context import HandlerContext
from services.handlers import _offer_next
from services.lookups import booked_slot
from storage.repository import Store
from storage.rows import TimerRow
from storage.schedule import ScheduleStore

log = logging.getLogger(__name__)

REPLAN = "replan"
NIGHTLY = "nightly_plan"
KINDS = (REPLAN, NIGHTLY)  # timers the replanner fires itself, solving outside any transaction
MOVABLE = (VisitStatus.BOOKED, VisitStatus.ACCEPTED)
MOVED = timedelta(minutes=15)  # a stop moving less than this is not worth a message
URGENT_PRIORITY = 10  # how many normal visits an urgent one is worth when not all fit
FIRST_RETRY = timedelta(minutes=1)  # a failed replan waits this long, twice as long after each further failure,
LAST_RETRY = timedelta(minutes=30)  # and at most this long: a fault that lasts is still retried twice an hour


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after the ``attempt``-th failure in a row: 1, 2, 4 … minutes, at most LAST_RETRY."""
    return min(FIRST_RETRY * 2.0 ** min(attempt - 1, 16), LAST_RETRY)


def _crew(visit: Visit) -> tuple[str, ...]:
    return tuple(str(t) for t in (visit.technician_id, *(visit.crew_ids or ())) if t is not None)


Mark = tuple[str, int | None, tuple[int, ...], datetime | None]


def _mark(visit: Visit) -> Mark:
    """What a plan relies on: when any of it changed after loading, the visit is left for the next replan."""
    return (visit.status, visit.technician_id, tuple(visit.crew_ids or ()), visit.slot_start)


def _local_day(moment: datetime, policy: ServicePolicy) -> date:
    return moment.astimezone(policy.tz).date()


def _route_order(visit: Visit) -> tuple[datetime, int]:
    """Stops in the order of their planned starts, else of their booked windows."""
    return visit.planned_start or booked_slot(visit)[0], stored_id(visit)


# --- triggers: each writes a timer row in its own transaction ------------------------------------


async def queue_replan(
    store: Store, now: datetime, day: date, reason: str, ref: str, *, technicians: Iterable[int] = (), visits: Iterable[int] = (),
    due: datetime | None = None,
) -> None:
    """Ask for a replan of ``day`` as a timer: written with the trigger it survives a crash, and the sweep
    solves it later outside any transaction. The key makes a retried trigger ask only once."""
    await ScheduleStore(store).set_timer(
        key=f"replan:{day.isoformat()}:{reason}:{ref}", kind=REPLAN, due_at=due or now, now=now,
        payload={"day": day.isoformat(), "reason": reason, "technicians": [int(t) for t in technicians], "visits": [int(v) for v in visits]},
    )


async def _open_visits(store: Store, technician_id: int) -> list[Visit]:
    return await store.visits_of_technician(technician_id, MOVABLE) + await store.crew_visits_of(technician_id, MOVABLE)


async def set_duty(ctx: HandlerContext, cmd: c.SetDuty) -> list[ev.Event]:
    technician = await ctx.store.get(Technician, cmd.technician_id, for_update=True)
    if technician is None:
        raise NotFound("technician_not_found")
    if technician.on_duty != cmd.on_duty:  # saying it twice replans once
        technician.on_duty = cmd.on_duty
        await duty_changed(ctx, technician)
    return []


async def duty_changed(ctx: HandlerContext, technician: Technician) -> None:
    """Off duty: their visits not started go to others, today's now and a later day's the evening before
    (back on duty by then, the replan finds them working and leaves their visits alone). On duty: a replan
    of today may give them visits nobody could take."""
    today = _local_day(ctx.now, ctx.policy)
    technician_id = stored_id(technician)
    if technician.on_duty:
        start = datetime.combine(today, time(0, 0), ctx.policy.tz)
        if await ctx.store.unassigned_booked_between(start, start + timedelta(days=1)):
            await queue_replan(ctx.store, ctx.now, today, "onduty", f"{technician_id}:{int(ctx.now.timestamp())}", technicians=[technician_id])
        return
    days = {_local_day(v.slot_start, ctx.policy) for v in await _open_visits(ctx.store, technician_id) if v.slot_start}
    for day in sorted(d for d in days if d >= today):
        evening = datetime.combine(day - timedelta(days=1), time(ctx.policy.reminder_hour), ctx.policy.tz)
        await queue_replan(ctx.store, ctx.now, day, "offduty", f"{technician_id}:{int(ctx.now.timestamp())}",
                           technicians=[technician_id], due=max(ctx.now, evening))


async def overran(ctx: HandlerContext, visit: Visit) -> None:
    """Work still going past its planned end: replan the day of the people on it, if they have more to do."""
    if visit.state is not VisitStatus.IN_PROGRESS:
        return
    day = _local_day(booked_slot(visit)[0], ctx.policy)
    crew = [int(t) for t in _crew(visit)]
    later = [v for t in crew for v in await _open_visits(ctx.store, t) if v.slot_start and _local_day(v.slot_start, ctx.policy) == day]
    if later:
        await queue_replan(ctx.store, ctx.now, day, "overrun", str(visit.id), technicians=crew)


def urgent_window(now: datetime, policy: ServicePolicy, minutes: int) -> tuple[datetime, datetime]:
    """The next stretch of opening hours long enough for the work, from now, at most ``policy.urgent_window``."""
    hours, tz = policy.business_hours, policy.tz
    local = now.astimezone(tz)
    local = local.replace(second=0, microsecond=0) + (timedelta(minutes=1) if local.second or local.microsecond else timedelta())
    for need in (timedelta(minutes=minutes), timedelta()):  # work longer than a whole opening day: just the next opening
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in hours.weekdays:
                continue
            start = max(local, datetime.combine(day, hours.start, tz))
            closes = datetime.combine(day, hours.end, tz)
            if start + need <= closes and start < closes:
                return start, min(start + policy.urgent_window, closes)
    raise DomainError("no_business_hours")


async def book_urgent(store: Store, job: Job, visits: list[Visit], now: datetime, policy: ServicePolicy) -> list[ev.Event]:
    """An urgent order skips the customer's booking: its first visits take the next opening hours and a
    replan fits them in. Follow-ups (an installation after the delivery) are still booked by the customer."""
    events: list[ev.Event] = []
    for visit in visits:
        if visit.depends_on_visit_id is not None:
            continue
        start, end = urgent_window(now, policy, visit.duration_minutes)
        events.append(lifecycle.book(visit, visit.job_id, start, end, None))
        await queue_replan(store, now, _local_day(start, policy), "urgent", str(visit.id), visits=[stored_id(visit)])
    return events


# --- the problem: who may move, what is under way -------------------------------------------------


@dataclass
class Run:
    """One replan: the day's problem as loaded and adjusted, and what it was loaded from."""

    day: date
    dp: planning.DayProblem
    full: bool  # the nightly plan: every booked visit may move; a local replan keeps others' offers
    marks: dict[str, Mark]  # visit id -> _mark at load time
    stops: dict[int, list[tuple[str, datetime | None]]]  # technician -> accepted stops not started, in order, planned start
    technicians: set[int] = field(default_factory=set)  # whom the trigger concerns: their day may change
    focus: set[str] = field(default_factory=set)  # visits this run decides: escalated when they cannot be placed
    released: set[str] = field(default_factory=set)  # accepted or offered visits that may leave their technician

    def release(self, visit_ids: set[str]) -> Run:
        visits = tuple(replace(v, pinned_technicians=()) if v.id in visit_ids else v for v in self.dp.problem.visits)
        return replace(self, dp=replace(self.dp, problem=replace(self.dp.problem, visits=visits)),
                       focus=self.focus | visit_ids, released=self.released | visit_ids)


async def _began(store: Store, visit: Visit) -> datetime | None:
    started = [e["occurred_at"] for e in await store.timeline(visit.job_id) if e["visit_id"] == visit.id and e["type"] == "VisitStarted"]
    return started[-1] if started else None


async def _under_way(store: Store, routing: rm.Visit, visit: Visit, dp: planning.DayProblem, now: datetime, grace: timedelta) -> rm.Visit:
    """A started visit holds its people from when it really starts until it is expected to end; work past
    its expected end is given another grace period (it is overrunning)."""
    slot_start, _slot_end = booked_slot(visit)
    start, service = max(now, slot_start), float(visit.duration_minutes)
    if visit.state is VisitStatus.EN_ROUTE and visit.eta_minutes:
        start = max(now + timedelta(minutes=visit.eta_minutes), slot_start)
    elif visit.state is VisitStatus.IN_PROGRESS:
        began = await _began(store, visit) or visit.planned_start or slot_start
        end = began + timedelta(minutes=visit.duration_minutes)
        start, service = now, max(1.0, ((end - now) if end > now else grace).total_seconds() / 60)
    return replace(routing, pinned_start=dp.minute(start), service=service)


def _room_for_the_past(dp: planning.DayProblem, visits: list[rm.Visit]) -> tuple[rm.Technician, ...]:
    """The drive to a visit under way lies in the past, and it may run past the shift: widen the shift so
    that the solver never drops work that is already happening."""
    technicians = []
    for tech in dp.problem.technicians:
        early, late = tech.shift
        for visit in visits:
            if visit.started and tech.id in visit.pinned_technicians and visit.pinned_start is not None:
                early = min(early, visit.pinned_start - dp.problem.travel[tech.start_location][visit.location])
                late = max(late, visit.pinned_start + visit.service + dp.problem.travel[visit.location][tech.end_location])
        technicians.append(replace(tech, shift=(early, late)))
    return tuple(technicians)


async def prepare(store: Store, day: date, policy: ServicePolicy, now: datetime, *, full: bool = False,
                  technicians: Set[int] = frozenset(), focus: Set[str] = frozenset()) -> Run:
    """The day as a routing problem for a replan: started visits pinned where they are, visits of people
    who left the plan (off duty) released, and in a local replan everyone else's visits kept with them."""
    dp = await planning.load_day(store, day, policy, now)
    present = set(dp.technicians)
    visits: list[rm.Visit] = []
    dropped: set[str] = set()
    released: set[str] = set()
    for routing in dp.problem.visits:
        visit = dp.visits[routing.id]
        crew = _crew(visit)
        if visit.technician_id is None and await store.offers_of(stored_id(visit), OfferStatus.OPEN.value):
            dropped.add(routing.id)  # grab offers are out: their expiry decides
            continue
        if visit.state in planning.STARTED:
            if not set(crew) <= present:
                dropped.add(routing.id)  # under way with someone off the plan: theirs to finish
                continue
            routing = await _under_way(store, routing, visit, dp, now, policy.overrun_grace)
        elif crew and not set(crew) <= present:
            routing = replace(routing, pinned_technicians=())
            released.add(routing.id)
        elif crew and not full and len(crew) >= visit.crew_size:
            routing = replace(routing, pinned_technicians=crew)
        if dp.jobs[visit.job_id].priority == "urgent":
            routing = replace(routing, priority=URGENT_PRIORITY)
        visits.append(routing)
    # a follow-up of a visit left out above no longer waits for it here (its booked window already does)
    visits = [replace(v, after=None, min_gap=0.0) if v.after in dropped else v for v in visits]
    problem = replace(dp.problem, visits=tuple(visits), technicians=_room_for_the_past(dp, visits))
    stops: dict[int, list[tuple[str, datetime | None]]] = {}
    for visit in sorted(dp.visits.values(), key=_route_order):
        if visit.state is VisitStatus.ACCEPTED:
            for tech in _crew(visit):
                stops.setdefault(int(tech), []).append((str(visit.id), visit.planned_start))
    return Run(
        day, replace(dp, problem=problem), full, {vid: _mark(v) for vid, v in dp.visits.items()}, stops,
        set(technicians), set(focus) | released | ({v.id for v in visits} if full else set()), released,
    )


# --- applying: in the sweep's transaction, checked against what was loaded ------------------------


async def apply_replan(ctx: HandlerContext, run: Run, plan: rm.Plan) -> list[ev.Event]:
    """Give moved visits their new people (offers and reassignments tell them and whoever lost a visit),
    record planned starts, escalate what could not be placed, and tell technicians whose day changed."""
    events: list[ev.Event] = []
    people: dict[str, list[int]] = {}
    starts: dict[str, float] = {}
    for route in plan.routes:
        for stop in route.stops:
            people.setdefault(stop.visit_id, []).append(int(route.technician_id))
            starts[stop.visit_id] = stop.start
    touched = set(run.technicians)
    placed: dict[str, Visit] = {}
    for visit_id, techs in people.items():
        visit = await ctx.store.get(Visit, int(visit_id))
        if visit is None or _mark(visit) != run.marks.get(visit_id):
            continue  # changed since loading: the plan's idea of it is stale
        if not await _all_on_duty(ctx, techs):
            continue  # someone went off duty since: their replan is queued already
        lead = visit.technician_id if visit.technician_id is not None and visit.technician_id in techs else techs[0]
        crew = [t for t in techs if t != lead]
        if visit.state in MOVABLE and (lead != visit.technician_id or crew != list(visit.crew_ids or ())):
            before = {int(t) for t in _crew(visit)}
            if not await _move(ctx, run, visit, lead, crew, events):
                continue
            touched |= before | set(techs)
        placed[visit_id] = visit
    for visit_id, visit in placed.items():
        # a local replan leaves the routes of people it does not concern as they were told; work under way
        # keeps the start it had
        if visit.state in MOVABLE and (run.full or touched & set(people[visit_id])):
            visit.planned_start = run.dp.moment(starts[visit_id])
    for left_out in plan.unassigned:
        visit = await ctx.store.load(Visit, int(left_out.visit_id))
        if left_out.visit_id in run.focus and _mark(visit) == run.marks.get(left_out.visit_id) and visit.state in MOVABLE:
            start = booked_slot(visit)[0].isoformat()
            events.append(ev.NoTechnicianAvailable(visit.job_id, visit.id, {"start": start, "reason": left_out.reason}))
    if run.day == _local_day(ctx.now, ctx.policy):  # later days: the morning day plan tells them
        events += await _changed_days(ctx, run, touched)
    return events


async def _move(ctx: HandlerContext, run: Run, visit: Visit, lead: int, crew: list[int], events: list[ev.Event]) -> bool:
    """Give the visit its planned people; False when it stays as it is."""
    job = await ctx.store.load(Job, visit.job_id)
    if visit.state is VisitStatus.ACCEPTED and visit.technician_id != lead and str(visit.id) not in run.released:
        # an accepted lead stays (a crew still short of people is not pinned): the dispatchers settle it
        if visit.crew_size > 1 and str(visit.id) in run.focus:
            start = booked_slot(visit)[0].isoformat()
            events.append(ev.NoTechnicianAvailable(visit.job_id, visit.id, {"start": start, "reason": rm.NOT_ENOUGH_TECHNICIANS}))
        return False
    if visit.technician_id != lead and lead in visit.declined_by:
        # the routing problem does not know who said no before: the next best free technician instead
        if visit.technician_id is None:
            events += await _offer_next(ctx, visit, job)
        return False
    try:
        if visit.technician_id != lead:
            events.append(lifecycle.offer(visit, visit.job_id, lead) if visit.technician_id is None else lifecycle.reassign(visit, visit.job_id, lead))
        if crew or visit.crew_ids:
            events += await planning.set_crew(ctx, visit, crew)
    except DomainError as err:
        log.warning("replan of %s: visit %s not moved (%s)", run.day, visit.id, err.code)
        return False
    return True


async def _all_on_duty(ctx: HandlerContext, technician_ids: list[int]) -> bool:
    for technician_id in technician_ids:
        if not (await ctx.store.load(Technician, technician_id)).on_duty:
            return False
    return True


async def _changed_days(ctx: HandlerContext, run: Run, touched: set[int]) -> list[ev.Event]:
    events: list[ev.Event] = []
    for technician_id in sorted(touched):
        before = run.stops.get(technician_id, [])
        after = []
        for visit_id, _planned in before:
            visit = await ctx.store.load(Visit, int(visit_id))
            if visit.state is VisitStatus.ACCEPTED and str(technician_id) in _crew(visit):
                after.append(visit)
        after.sort(key=_route_order)
        was = dict(before)
        reordered = [str(v.id) for v in after] != [visit_id for visit_id, _ in before]
        moved = any(_moved_by(was[str(v.id)], v.planned_start) >= MOVED for v in after)
        if after and (reordered or moved):
            events.append(ev.DayPlanChanged(after[0].job_id, None, {"technician_id": technician_id, "day": run.day.isoformat()}))
    return events


def _moved_by(before: datetime | None, now: datetime | None) -> timedelta:
    """How far a planned start moved; nothing when it was or is not planned."""
    return abs(now - before) if before is not None and now is not None else timedelta(0)


# --- failures -------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """A failure in one short line: database errors carry their SQL and parameters on the lines after the first."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


async def _failure_alert(ctx: HandlerContext, day: date, rows: list[TimerRow], reason: str) -> list[ev.Event]:
    """The event that tells the dispatchers of every region with work that day. Events live on a job's
    timeline: the job of a visit the triggers named, else of a visit of the people they named, else any of
    the day's; a day without visits has nothing to tell."""
    start = datetime.combine(day, time(0, 0), ctx.policy.tz)
    end = start + timedelta(days=1)
    named = [await ctx.store.get(Visit, v) for r in rows for v in r["payload"].get("visits", [])]
    for technician_id in sorted({t for r in rows for t in r["payload"].get("technicians", [])}):
        named += [v for v in await _open_visits(ctx.store, technician_id) if v.slot_start and start <= v.slot_start < end]
    of_day = await ctx.store.bookings_between(start, end) + await ctx.store.unassigned_booked_between(start, end)
    subject = next((v for v in (*named, *of_day) if v is not None), None)
    if subject is None:
        return []
    regions = {(await ctx.store.load(Job, job_id)).region for job_id in {v.job_id for v in (subject, *of_day)}}
    triggers = sorted({r["payload"].get("reason") or r["kind"] for r in rows})
    return [ev.ReplanFailed(subject.job_id, None, {"day": day.isoformat(), "triggers": triggers, "reason": reason, "regions": sorted(regions)})]


# --- the runner -----------------------------------------------------------------------------------


class Replanner:
    """Fires due replan and nightly-plan timers: load in one session, solve in a worker process, then apply
    in one transaction that also claims the timers. A crash before the apply leaves them to fire again;
    a second firing finds them claimed and changes nothing. A replan that fails is fired again after a growing
    pause, and the dispatchers are told once (see _failed)."""

    def __init__(self, bus: MessageBus, sessions: async_sessionmaker[AsyncSession], clock: Clock, policy: ServicePolicy, *,
                 replan_seconds: float = 3.0, plan_seconds: float = 30.0, nightly_at: time | None = None) -> None:
        self._bus = bus
        self._sessions = sessions
        self._clock = clock
        self._policy = policy
        self._replan_seconds = replan_seconds
        self._plan_seconds = plan_seconds
        self._nightly_at = nightly_at
        self._pool: ProcessPoolExecutor | None = None

    async def run_due(self) -> int:
        now = self._clock.now()
        async with self._sessions() as session:
            timers = ScheduleStore(Store(session))
            rows = await timers.due_timers(now, KINDS)
            # a retry waits at most LAST_RETRY; a new trigger for a day that is backing off takes its retries
            # along, so that one solve covers them all and the dispatchers are not told twice
            waiting = [r for r in await timers.due_timers(now + LAST_RETRY, (REPLAN,)) if r["payload"].get("attempt")]
        days: dict[date, list[TimerRow]] = {}
        for row in rows:
            if row["kind"] == REPLAN:
                days.setdefault(date.fromisoformat(row["payload"]["day"]), []).append(row)
        # one solve per day, however many triggers asked for it since the last sweep
        for day, group in sorted(days.items()):
            taken = {r["id"] for r in group}
            group += [r for r in waiting if r["id"] not in taken and r["payload"]["day"] == day.isoformat()]
            await self._guarded(self._replan(day, group), day, group)
        for row in rows:
            if row["kind"] == NIGHTLY:
                await self._guarded(self._nightly(row), date.fromisoformat(row["payload"]["day"]), [row])
        return len(rows)

    async def _guarded(self, work: Awaitable[None], day: date, rows: list[TimerRow]) -> None:
        try:
            await work
        except Exception as failure:
            if isinstance(failure, BrokenProcessPool):
                self._pool = None  # the solver process died: the next attempt starts a new one
            await self._failed(day, rows, failure)

    async def _failed(self, day: date, rows: list[TimerRow], failure: Exception) -> None:
        """Log one line (with the traceback only for the first failure in a row), tell the dispatchers once,
        and fire the timers again later and later: a fault that stays must not be retried at every sweep."""
        attempt = 1 + max(r["payload"].get("attempt", 0) for r in rows)
        name = f"{'nightly plan' if rows[0]['kind'] == NIGHTLY else 'replan'} of {day}"
        delay, reason = retry_delay(attempt), _reason(failure)
        log.log(logging.ERROR if attempt == 1 else logging.WARNING, "%s failed (attempt %d): %s; next try in %d min",
                name, attempt, reason, delay // timedelta(minutes=1), exc_info=failure if attempt == 1 else None)
        try:
            await self._bus.run(f"replan-failed:{rows[0]['key']}:{attempt}", lambda ctx: self._back_off(ctx, day, rows, attempt, delay, reason))
        except Exception as exc:  # the database itself fails: the timers stay due and the next sweep tries again
            log.warning("%s: the retry could not be set: %s", name, _reason(exc))

    async def _back_off(self, ctx: HandlerContext, day: date, rows: list[TimerRow], attempt: int, delay: timedelta, reason: str) -> list[ev.Event]:
        """Fire the failed timers again after ``delay``: each is done and set anew, keeping its trigger's payload."""
        timers = ScheduleStore(ctx.store)
        claimed = [r for r in rows if await timers.claim_timer(r["id"], ctx.now) is not None]
        if not claimed:
            return []  # another worker got to them first
        alerted = any(r["payload"].get("alerted") for r in rows)
        events = [] if alerted else await _failure_alert(ctx, day, claimed, reason)
        for row in claimed:
            await timers.set_timer(
                key=f"{row['key'].split('#')[0]}#{attempt}", kind=row["kind"], due_at=ctx.now + delay, now=ctx.now,
                visit_id=row["visit_id"], technician_id=row["technician_id"],
                payload={**row["payload"], "attempt": attempt, "alerted": alerted or bool(events)},
            )
        return events

    async def _solve(self, problem: rm.Problem, seconds: float) -> rm.Plan:
        if not problem.visits or not problem.technicians:
            return await planning.solve_in_worker(problem, seconds)  # answered without a worker
        if self._pool is None:
            self._pool = planning.solver_pool()
        return await planning.solve_in_worker(problem, seconds, self._pool)

    async def _replan(self, day: date, rows: list[TimerRow]) -> None:
        timer_ids = tuple(r["id"] for r in rows)
        if day < _local_day(self._clock.now(), self._policy):  # every shift of it is over: nothing left to plan
            log.info("replan of %s skipped: the day is over", day)
            await self._bus.run(f"replan:{day.isoformat()}:{timer_ids[0]}", lambda ctx: self._apply(ctx, timer_ids, None))
            return
        technicians = {t for r in rows for t in r["payload"].get("technicians", [])}
        overrunning = {str(t) for r in rows if r["payload"].get("reason") == "overrun" for t in r["payload"].get("technicians", [])}
        focus = {str(v) for r in rows for v in r["payload"].get("visits", [])}
        async with self._sessions() as session:
            run = await prepare(Store(session), day, self._policy, self._clock.now(), technicians=technicians, focus=focus)
        if run.dp.unavailable:
            log.info("replan of %s without %s", day, "; ".join(f"{u.detail} ({u.reason})" for u in run.dp.unavailable))
        plan = await self._solve(run.dp.problem, self._replan_seconds)
        # an overrunning technician keeps their visits unless one would miss its window: only those move
        stuck = {u.visit_id for u in plan.unassigned
                 if u.visit_id in run.dp.visits and run.dp.visits[u.visit_id].state in MOVABLE and set(_crew(run.dp.visits[u.visit_id])) & overrunning}
        if stuck:
            run = run.release(stuck)
            plan = await self._solve(run.dp.problem, self._replan_seconds)
        await self._bus.run(f"replan:{day.isoformat()}:{timer_ids[0]}", lambda ctx: self._apply(ctx, timer_ids, (run, plan)))

    async def _apply(
        self, ctx: HandlerContext, timer_ids: tuple[int, ...], solved: tuple[Run, rm.Plan] | None,
        then: Callable[[HandlerContext], Awaitable[None]] | None = None,
    ) -> list[ev.Event]:
        """Claim the timers and apply the solved day (None: nothing to apply), then run ``then``."""
        timers = ScheduleStore(ctx.store)
        if not [t for t in timer_ids if await timers.claim_timer(t, ctx.now) is not None]:
            return []  # applied already, by an earlier firing or another worker
        events = await apply_replan(ctx, *solved) if solved is not None else []
        if then is not None:
            await then(ctx)
        return events

    # --- a whole day on demand (`fieldchat plan`), applied as the nightly run applies it ---

    async def plan(self, day: date, seconds: float, *, apply: bool) -> tuple[Run, rm.Plan, list[ev.Event]]:
        """Plan ``day`` from scratch, accepted visits staying with their technicians; with ``apply``, give the
        visits their planned people in one transaction with the same guards as every replan."""
        async with self._sessions() as session:
            run = await prepare(Store(session), day, self._policy, self._clock.now(), full=True)
        plan = await self._solve(run.dp.problem, seconds)
        events: list[ev.Event] = []
        if apply:
            origin = f"plan:{day.isoformat()}:{uuid.uuid4().hex}"
            events = await self._bus.run(origin, lambda ctx: apply_replan(ctx, run, plan))
        return run, plan, events

    # --- the nightly plan of tomorrow ---

    async def _set_nightly(self, store: Store, now: datetime, due: datetime) -> None:
        day = _local_day(due, self._policy) + timedelta(days=1)
        await ScheduleStore(store).set_timer(key=f"nightly:{day.isoformat()}", kind=NIGHTLY, due_at=due, now=now, payload={"day": day.isoformat()})

    async def ensure_nightly(self) -> None:
        """The first nightly-plan timer (each run sets the next); idempotent, so every start may call it."""
        if self._nightly_at is None:
            return
        now = self._clock.now()
        today = _local_day(now, self._policy)
        due = datetime.combine(today, self._nightly_at, self._policy.tz)
        if due <= now:
            due = datetime.combine(today + timedelta(days=1), self._nightly_at, self._policy.tz)
        async with self._sessions() as session, session.begin():
            await self._set_nightly(Store(session), now, due)

    async def _nightly(self, row: TimerRow) -> None:
        day = date.fromisoformat(row["payload"]["day"])
        now = self._clock.now()
        solved: tuple[Run, rm.Plan] | None = None
        # fired so late that the day has begun (the server was down): today's replans look after it
        if self._nightly_at is not None and _local_day(now, self._policy) < day:
            async with self._sessions() as session:
                run = await prepare(Store(session), day, self._policy, now, full=True)
            solved = run, await self._solve(run.dp.problem, self._plan_seconds)

        async def next_night(ctx: HandlerContext) -> None:
            if self._nightly_at is not None:
                await self._set_nightly(ctx.store, ctx.now, datetime.combine(day, self._nightly_at, self._policy.tz))

        await self._bus.run(f"nightly:{day.isoformat()}", lambda ctx: self._apply(ctx, (row["id"],), solved, next_night))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
