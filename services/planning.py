"""Plans a day from the database with the pure solver, and applies the plan: assignments, order, escalations."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from domain import events as ev
from domain import lifecycle
from domain.model import ROLES_FOR_KIND, Job, ServiceKind, Technician, TechnicianRole, Visit, VisitStatus
from domain.policy import ServicePolicy
from scheduler.routing import model as rm
from scheduler.routing.solver import solve
from scheduler.routing.travel import HaversineProvider
from storage.repository import Store

if TYPE_CHECKING:  # handlers use planning through booking; only the type is needed here
    from services.handlers import HandlerContext

PLANNED = (VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
STARTED = (VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
KEPT = (VisitStatus.ACCEPTED, *STARTED)  # a technician said yes: the plan may reorder, not reassign


@dataclass
class DayProblem:
    day: date
    reference: datetime  # minute 0 of the problem: local midnight of the day
    problem: rm.Problem
    visits: dict[str, Visit]
    jobs: dict[int, Job]
    technicians: dict[str, Technician]
    first_extra: int  # matrix index of the first extra point

    def minute(self, moment: datetime) -> float:
        return (moment - self.reference).total_seconds() / 60

    def moment(self, minute: float) -> datetime:
        return self.reference + timedelta(minutes=minute)


def _technician_skills(tech: Technician) -> frozenset[str]:
    roles = {TechnicianRole(r) for r in tech.roles}
    kinds = {f"kind:{kind.value}" for kind, allowed in ROLES_FOR_KIND.items() if allowed & roles}
    return frozenset(kinds | {f"cat:{s}" for s in tech.skills})


def visit_skills(visit: Visit, job: Job) -> frozenset[str]:
    skills = {f"kind:{visit.kind}"}
    if visit.service_kind is not ServiceKind.DELIVERY and job.product_category:
        skills.add(f"cat:{job.product_category}")
    return frozenset(skills)


async def load_day(
    store: Store, day: date, policy: ServicePolicy, now: datetime, *, extra_points: tuple = (), pin_assigned: bool = False
) -> DayProblem:
    """The day's booked visits and the technicians working it, as a routing problem.

    ``extra_points`` are appended to the travel matrix after the visits (a visit being booked);
    ``pin_assigned`` keeps every visit on the technician it has, to test one more booking against them.
    """
    tz = policy.tz
    reference = datetime.combine(day, time(0, 0), tz)
    end = reference + timedelta(days=1)
    visits = [v for v in await store.bookings_between(reference, end) if v.state in PLANNED]
    visits += [v for v in await store.unassigned_booked_between(reference, end) if v not in visits]
    jobs = {v.job_id: await store.get(Job, v.job_id) for v in visits}
    technicians = [t for t in await store.technicians() if day.weekday() in t.hours.weekdays]

    def minute(moment: datetime) -> float:
        return (moment - reference).total_seconds() / 60

    # the depot for technicians without a home base: the middle of the day's jobs
    places = [(j.lat, j.lon) for j in jobs.values()] + list(extra_points)
    middle = (sum(p[0] for p in places) / len(places), sum(p[1] for p in places) / len(places)) if places else (0.0, 0.0)
    points = [(t.home_lat, t.home_lon) if t.home_lat is not None else middle for t in technicians]
    points += [(jobs[v.job_id].lat, jobs[v.job_id].lon) for v in visits]
    points += list(extra_points)
    matrix = HaversineProvider(speed_kmh=policy.travel_speed_kmh, detour=policy.detour_factor).durations(points)
    ids = {v.id for v in visits}
    routing_visits = []
    for index, visit in enumerate(visits, start=len(technicians)):
        job = jobs[visit.job_id]
        kept = visit.technician_id is not None and (pin_assigned or visit.state in KEPT)
        routing_visits.append(
            rm.Visit(
                id=str(visit.id), location=index, service=visit.duration_minutes,
                windows=((minute(visit.slot_start), minute(visit.slot_end)),),
                skills=visit_skills(visit, job), region=job.region,
                pinned_technicians=(str(visit.technician_id),) if kept else (),
                started=visit.state in STARTED,
                after=str(visit.depends_on_visit_id) if visit.depends_on_visit_id in ids else None,
            )
        )
    routing_technicians = []
    for index, tech in enumerate(technicians):
        hours = tech.hours
        routing_technicians.append(
            rm.Technician(
                id=str(tech.id), start_location=index, end_location=index,
                shift=(minute(datetime.combine(day, hours.start, tz)), minute(datetime.combine(day, hours.end, tz))),
                skills=_technician_skills(tech), regions=frozenset(tech.regions),
            )
        )
    problem = rm.Problem(tuple(routing_visits), tuple(routing_technicians), matrix, now=max(0.0, minute(now)), fairness_weight=0.1)
    return DayProblem(day, reference, problem, {str(v.id): v for v in visits}, jobs, {str(t.id): t for t in technicians}, len(technicians) + len(visits))


async def plan_day(day_problem: DayProblem, time_limit_s: float) -> rm.Plan:
    """The solver is CPU-bound and pure: run it in a worker thread so the event loop keeps serving."""
    return await asyncio.to_thread(solve, day_problem.problem, time_limit_s)


async def apply_plan(ctx: HandlerContext, day_problem: DayProblem, plan: rm.Plan) -> list[ev.Event]:
    """Give each visit its planned technician and start; tell people only about what changed."""
    events: list[ev.Event] = []
    for route in plan.routes:
        for stop in route.stops:
            visit = await ctx.store.get(Visit, int(stop.visit_id))
            job = day_problem.jobs[visit.job_id]
            visit.planned_start = day_problem.moment(stop.start)
            planned = int(route.technician_id)
            if visit.technician_id == planned or visit.state is not VisitStatus.BOOKED:
                continue
            if visit.technician_id is None:
                events.append(lifecycle.offer(visit, job.id, planned))
            else:
                events.append(lifecycle.reassign(visit, job.id, planned))
    for left_out in plan.unassigned:
        visit = await ctx.store.get(Visit, int(left_out.visit_id))
        events.append(ev.NoTechnicianAvailable(visit.job_id, visit.id, {"start": visit.slot_start.isoformat(), "reason": left_out.reason}))
    return events


def summary_lines(day_problem: DayProblem, plan: rm.Plan, tz) -> list[str]:
    lines = [f"Plan for {day_problem.day.isoformat()}: {sum(len(r.stops) for r in plan.routes)} visits on "
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
            lines.append(f"    {at}  #{visit.id} {visit.kind:<12} {day_problem.jobs[visit.job_id].address_text}")
    for left_out in plan.unassigned:
        lines.append(f"  left out #{left_out.visit_id}: {left_out.reason} {left_out.detail}".rstrip())
    return lines
