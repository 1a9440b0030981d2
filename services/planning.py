"""Plans a day from the database with the pure solver, and applies the plan: assignments, order, escalations."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo

from domain import events as ev
from domain.model import ROLES_FOR_KIND, Job, ServiceKind, Technician, TechnicianRole, Visit, VisitStatus
from domain.policy import ServicePolicy
from scheduler.routing import model as rm
from scheduler.routing.travel import HaversineProvider
from services.context import HandlerContext
from services.lookups import booked_slot
from storage.repository import Store
from storage.schedule import ScheduleStore


PLANNED = (VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
STARTED = (VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
KEPT = (VisitStatus.ACCEPTED, *STARTED)  # a technician said yes: the plan may reorder, not reassign
BRAND = "brand:"  # a technician skill naming a brand they are certified for
VOLUME = "volume_l"  # the capacity dimension: litres of cargo
UNLIMITED = 10**9  # litres for a vehicle of unknown size (OR-Tools capacities are integers)
# why a technician is not in a day's problem, besides the routing layer's own rm.SHIFT_OVER and rm.SHIFT_EMPTY
OFF_DUTY = "off_duty"
NOT_WORKING = "not_working_that_day"


@dataclass
class DayProblem:
    day: date
    reference: datetime  # minute 0 of the problem: local midnight of the day
    problem: rm.Problem
    visits: dict[str, Visit]
    jobs: dict[int, Job]
    technicians: dict[str, Technician]
    first_extra: int  # matrix index of the first extra point
    unavailable: tuple[rm.Unavailable, ...] = ()  # technicians left out of the problem, and why

    def minute(self, moment: datetime) -> float:
        return (moment - self.reference).total_seconds() / 60

    def moment(self, minute: float) -> datetime:
        return self.reference + timedelta(minutes=minute)


def _technician_skills(tech: Technician, brands: set[str]) -> frozenset[str]:
    roles = {TechnicianRole(r) for r in tech.roles}
    kinds = {f"kind:{kind.value}" for kind, allowed in ROLES_FOR_KIND.items() if allowed & roles}
    categories = {f"cat:{s}" for s in tech.skills if not s.startswith(BRAND)}
    # as Technician.can_serve: only brand-certified technicians are held to their brands; the others
    # serve every brand, so they get all of the day's
    own_brands = {s for s in tech.skills if s.startswith(BRAND)}
    return frozenset(kinds | categories | (own_brands or {f"{BRAND}{b}" for b in brands}))


def visit_skills(visit: Visit, job: Job) -> frozenset[str]:
    skills = {f"kind:{visit.kind}"}
    if visit.service_kind is not ServiceKind.DELIVERY:
        # a grouped visit needs the categories of its own lines (Technician.can_do), not only the job's product's
        skills.update(f"cat:{category}" for category in visit.categories_needed(job.product_category) if category)
    if visit.service_kind is not ServiceKind.DELIVERY and job.brand:
        skills.add(f"{BRAND}{job.brand}")
    return frozenset(skills)


def visit_demand(visit: Visit, job: Job, capacity_names: tuple[str, ...]) -> tuple[int, ...]:
    """The cargo a visit puts in its vehicle: a delivery carries the job's volume, other visits nothing."""
    if not capacity_names:
        return ()
    return ((job.volume_liters or 0) if visit.service_kind is ServiceKind.DELIVERY else 0,)


async def load_day(
    store: Store, day: date, policy: ServicePolicy, now: datetime, *, extra_points: tuple[tuple[float, float], ...] = (), pin_assigned: bool = False,
    extra_jobs: tuple[Job, ...] = (),
) -> DayProblem:
    """The day's booked visits and the technicians working it, as a routing problem.

    ``extra_points`` are appended to the travel matrix after the visits (a visit being booked), and
    ``extra_jobs`` (its job) count for the brands and cargo volumes the problem knows of;
    ``pin_assigned`` keeps every visit on the technician it has, to test one more booking against them.

    Technicians with no time left that day are not in the problem (``unavailable`` says why): their work
    under way is theirs to finish and stays out too, and their visits not started need someone else.
    """
    tz = policy.tz
    reference = datetime.combine(day, time(0, 0), tz)
    end = reference + timedelta(days=1)
    visits = [v for v in await store.bookings_between(reference, end) if v.state in PLANNED]
    visits += [v for v in await store.unassigned_booked_between(reference, end) if v not in visits]
    technicians, unavailable = _working(await store.technicians(on_duty_only=False), day, tz, now)
    present = {t.id for t in technicians}
    # work under way by someone who is not in the plan is theirs to finish: not the plan's
    visits = [v for v in visits if not (v.state in STARTED and not {v.technician_id, *(v.crew_ids or ())} <= present)]
    jobs = {v.job_id: await store.load(Job, v.job_id) for v in visits}

    def minute(moment: datetime) -> float:
        return (moment - reference).total_seconds() / 60

    # the depot for technicians without a home base: the middle of the day's jobs
    places = [(j.lat, j.lon) for j in jobs.values()] + list(extra_points)
    middle = (sum(p[0] for p in places) / len(places), sum(p[1] for p in places) / len(places)) if places else (0.0, 0.0)
    points = [(t.home_lat, t.home_lon) if t.home_lat is not None and t.home_lon is not None else middle for t in technicians]
    points += [(jobs[v.job_id].lat, jobs[v.job_id].lon) for v in visits]
    points += list(extra_points)
    matrix = HaversineProvider(speed_kmh=policy.travel_speed_kmh, detour=policy.detour_factor).durations(points)
    ids = {v.id for v in visits}
    loaded = any(v.service_kind is ServiceKind.DELIVERY and jobs[v.job_id].volume_liters for v in visits)
    capacity_names = (VOLUME,) if loaded or any(j.volume_liters for j in extra_jobs) else ()
    brands = {j.brand for j in (*jobs.values(), *extra_jobs) if j.brand}
    routing_visits = []
    for index, visit in enumerate(visits, start=len(technicians)):
        job = jobs[visit.job_id]
        crew = [visit.technician_id, *visit.crew_ids] if visit.technician_id is not None else []
        # a crew with someone missing needs people like an unassigned visit (apply_replan moves it); a booking
        # check keeps it where it is, as the day looks now
        kept = bool(crew) and (pin_assigned or (visit.state in KEPT and set(crew) <= present))
        started = visit.state in STARTED
        # under way, the people on site are the crew; otherwise a crew is pinned once it is complete, and an
        # accepted lead still short of people leaves the plan free to pick the whole crew (see replanning._move)
        size = len(crew) if started else visit.crew_size
        pinned = tuple(str(t) for t in crew) if kept and len(crew) >= size else ()
        after = str(visit.depends_on_visit_id) if visit.depends_on_visit_id in ids else None
        start, end = booked_slot(visit)  # both queries above only find visits with a slot
        routing_visits.append(
            rm.Visit(
                id=str(visit.id), location=index, service=visit.duration_minutes,
                windows=((minute(start), minute(end)),),
                demand=visit_demand(visit, job, capacity_names),
                skills=visit_skills(visit, job), region=job.region, technicians=size,
                pinned_technicians=pinned, started=started,
                after=after, min_gap=visit.min_gap_minutes if after else 0.0,
            )
        )
    routing_technicians = []
    for index, tech in enumerate(technicians):
        hours = tech.hours
        routing_technicians.append(
            rm.Technician(
                id=str(tech.id), start_location=index, end_location=index,
                shift=(minute(datetime.combine(day, hours.start, tz)), minute(datetime.combine(day, hours.end, tz))),
                skills=_technician_skills(tech, brands), regions=frozenset(tech.regions),
                capacity=(UNLIMITED if tech.vehicle_capacity is None else tech.vehicle_capacity,) if capacity_names else (),
            )
        )
    problem = rm.Problem(tuple(routing_visits), tuple(routing_technicians), matrix, now=max(0.0, minute(now)),
                         capacity_names=capacity_names, fairness_weight=0.1)
    return DayProblem(day, reference, problem, {str(v.id): v for v in visits}, jobs, {str(t.id): t for t in technicians},
                      len(technicians) + len(visits), unavailable)


def _working(technicians: list[Technician], day: date, tz: tzinfo, now: datetime) -> tuple[list[Technician], tuple[rm.Unavailable, ...]]:
    """Who has time to work on the day after ``now``, and why each of the others is left out. A shift that is
    over would give the solver a route that starts after it must end, which it cannot even begin to solve."""
    working: list[Technician] = []
    out: list[rm.Unavailable] = []
    for tech in technicians:
        hours = tech.hours
        start, end = datetime.combine(day, hours.start, tz), datetime.combine(day, hours.end, tz)
        if not tech.on_duty:
            out.append(rm.Unavailable(str(tech.id), OFF_DUTY, f"{tech.name} is off duty"))
        elif day.weekday() not in hours.weekdays:
            out.append(rm.Unavailable(str(tech.id), NOT_WORKING, f"{tech.name} does not work on {day:%A}s"))
        elif end <= start:
            out.append(rm.Unavailable(str(tech.id), rm.SHIFT_EMPTY, f"{tech.name}'s shift ends at {hours.end:%H:%M}, before it starts"))
        elif end <= now:
            out.append(rm.Unavailable(str(tech.id), rm.SHIFT_OVER, f"{tech.name}'s shift ended at {hours.end:%H:%M}"))
        else:
            working.append(tech)
    return working, tuple(out)


def solver_pool() -> ProcessPoolExecutor:
    """A worker process for the solver. Not a thread: OR-Tools holds the GIL for its whole search (measured:
    an event loop beside a solving thread stalls for the full time limit), which would stop every chat and
    sweep. forkserver or spawn, never fork: a forked child inherits the event loop's threads and locks."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # the fork server imports the solver once, so each worker starts ready instead of importing OR-Tools again
        # (measured here: 0.8-1.2 s before a worker could take a problem, 0.03 s with the preload)
        context.set_forkserver_preload([__name__, "scheduler.routing.solver"])
    return ProcessPoolExecutor(max_workers=1, mp_context=context)


NO_PLAN = rm.Plan((), (), rm.Objective(0.0, 0.0, 0.0, 0.0))


def solve(problem: rm.Problem, time_limit_s: float) -> rm.Plan:
    """Runs in the solver's worker process, the one process that imports OR-Tools and PyVRP: a web process never
    solves, and would carry them (about 30 MiB and 0.3 s of its start) for nothing."""
    from scheduler.routing.solver import solve as search

    return search(problem, time_limit_s)


async def solve_in_worker(problem: rm.Problem, time_limit_s: float, pool: ProcessPoolExecutor | None = None) -> rm.Plan:
    if not problem.visits:
        return NO_PLAN
    if not problem.technicians:  # every visit is left out, with the reason: no need to start a worker for that
        return replace(NO_PLAN, unassigned=tuple(rm.Unassigned(v.id, rm.NO_SKILLED_TECHNICIAN, "nobody works that day") for v in problem.visits))
    loop = asyncio.get_running_loop()
    if pool is not None:
        return await loop.run_in_executor(pool, solve, problem, time_limit_s)
    with solver_pool() as own:
        return await loop.run_in_executor(own, solve, problem, time_limit_s)


async def plan_day(day_problem: DayProblem, time_limit_s: float) -> rm.Plan:
    return await solve_in_worker(day_problem.problem, time_limit_s)


async def set_crew(ctx: HandlerContext, visit: Visit, crew: list[int]) -> list[ev.Event]:
    """The crew besides the lead; newcomers are told and get the morning day plan, those dropped are told too."""
    before = list(visit.crew_ids)
    visit.crew_ids = crew  # a new list: the JSON column notices reassignment, not changes in place
    events: list[ev.Event] = []
    for member in crew:
        if member not in before:
            events.append(ev.CrewAssigned(visit.job_id, visit.id, {"technician_id": member}))
            # the day plan timer is otherwise set when a technician accepts, which crew members never do
            local_day = booked_slot(visit)[0].astimezone(ctx.policy.tz).date()
            plan_at = datetime.combine(local_day, time(ctx.policy.day_plan_hour, 30), ctx.policy.tz)
            if plan_at > ctx.now:
                await ScheduleStore(ctx.store).set_timer(
                    key=f"dayplan:{member}:{local_day.isoformat()}", kind="dayplan", due_at=plan_at,
                    now=ctx.now, technician_id=member, payload={"day": local_day.isoformat()},
                )
    events += [ev.CrewReleased(visit.job_id, visit.id, {"technician_id": member}) for member in before if member not in crew and member != visit.technician_id]
    return events


def summary_lines(day_problem: DayProblem, plan: rm.Plan, tz: tzinfo) -> list[str]:
    crews = {v.id: v.technicians for v in day_problem.problem.visits}
    planned = {stop.visit_id for route in plan.routes for stop in route.stops}
    lines = [f"Plan for {day_problem.day.isoformat()}: {len(planned)} visits on "
             f"{sum(1 for r in plan.routes if r.stops)} routes, {len(plan.unassigned)} left out, "
             f"{plan.objective.travel:.0f} min of driving ({plan.status}, {plan.seconds:.1f} s)"]
    for route in plan.routes:
        if not route.stops:
            continue
        tech = day_problem.technicians[route.technician_id]
        lines.append(f"  {tech.name}: {len(route.stops)} stops, {route.travel:.0f} min driving")
        for stop in route.stops:
            visit = day_problem.visits[stop.visit_id]
            at = day_problem.moment(stop.start).astimezone(tz).strftime("%H:%M")
            crew = f" (crew of {crews[stop.visit_id]})" if crews.get(stop.visit_id, 1) > 1 else ""
            lines.append(f"    {at}  #{visit.id} {visit.kind:<12} {day_problem.jobs[visit.job_id].address_text}{crew}")
    for left_out in plan.unassigned:
        lines.append(f"  left out #{left_out.visit_id}: {left_out.reason} {left_out.detail}".rstrip())
    for absent in day_problem.unavailable:
        lines.append(f"  not planned: {absent.detail} ({absent.reason})")
    for absent in plan.unavailable:  # the solver's own check; load_day should have left them out already
        lines.append(f"  not planned: {day_problem.technicians[absent.technician_id].name}: {absent.detail} ({absent.reason})")
    return lines
