"""Which offered slots really fit: each candidate window is checked by insertion into the day's planned routes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from domain.model import Job, Visit
from domain.policy import ServicePolicy
from domain.slots import Slot
from scheduler.routing import model as rm
from scheduler.routing.insertion import EPS, Board, slot_options
from services.planning import DayProblem, load_day, visit_demand, visit_skills
from storage.repository import Store

NEW = "new"


def planned_routes(dp: DayProblem) -> rm.Plan:
    """The day's routes as the last plan ordered them; visits booked or moved since are slotted in where they
    add the least driving, as a dispatcher would. A booking is then checked against the day people will drive.

    Only the order of a route is taken from the plan: the times follow from the windows and the driving.
    """
    stops: dict[str, list[rm.Stop]] = {}
    since: list[rm.Visit] = []
    for visit in dp.problem.visits:
        planned = dp.visits[visit.id].planned_start
        start = dp.minute(planned) if planned is not None else None
        # a planned start outside the visit's window is from before it was moved: the plan no longer holds it
        if start is not None and visit.pinned_technicians and any(low - EPS <= start <= high + EPS for low, high in visit.windows):
            for technician in visit.pinned_technicians:
                stops.setdefault(technician, []).append(rm.Stop(visit.id, start, start, start + visit.service))
        else:
            since.append(visit)
    routes = tuple(rm.Route(technician, tuple(sorted(route, key=lambda stop: stop.start))) for technician, route in stops.items())
    board = Board(dp.problem, rm.Plan(routes, (), rm.Objective(0.0, 0.0, 0.0, 0.0)))
    for visit in sorted(since, key=lambda v: (v.windows[0][0] if v.windows else 0.0, v.after is not None)):
        options = board.options(visit, limit=1)
        if options:
            board.apply(visit, options[0])
    return board.plan()


def _without(dp: DayProblem, visit_id: str) -> DayProblem:
    """The day without the visit being placed: a visit that is booked already must not count twice."""
    visits = tuple(
        replace(v, after=None, min_gap=0.0) if v.after == visit_id else v for v in dp.problem.visits if v.id != visit_id
    )
    return replace(dp, problem=replace(dp.problem, visits=visits))


async def feasible_slots(
    store: Store, policy: ServicePolicy, now: datetime, visit: Visit, job: Job, slots: list[Slot], *, crew_size: int | None = None
) -> list[Slot]:
    """The slots where some technician's route can take the visit, travel included; technicians cheapest first.

    ``crew_size`` overrides the visit's (1: who could join its crew).

    The booked visits stay with their technicians; the new one is inserted without re-planning anyone.
    """
    by_day: dict[date, list[Slot]] = {}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(policy.tz).date(), []).append(slot)
    feasible: list[Slot] = []
    for day, day_slots in by_day.items():
        dp = await load_day(store, day, policy, now, extra_points=((job.lat, job.lon),), pin_assigned=True, extra_jobs=(job,))
        dp = _without(dp, str(visit.id))
        routes = planned_routes(dp)
        for slot in day_slots:
            candidate = rm.Visit(
                id=NEW, location=dp.first_extra, service=visit.duration_minutes,
                windows=((dp.minute(slot.start), dp.minute(slot.end)),),
                skills=visit_skills(visit, job), region=job.region, technicians=crew_size or visit.crew_size,
                demand=visit_demand(visit, job, dp.problem.capacity_names),
            )
            allowed = set(slot.technician_ids)
            ranked = []
            for option in slot_options(dp.problem, routes, candidate):
                technician = int(option.technician_ids[0])
                if technician in allowed and technician not in ranked:
                    ranked.append(technician)
            if ranked:
                feasible.append(Slot(slot.start, slot.end, tuple(ranked)))
    return feasible
