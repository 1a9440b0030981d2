"""Which offered slots really fit: each candidate window is checked by insertion into the day's routes."""

from __future__ import annotations

from datetime import datetime

from domain.model import Job, Visit
from domain.policy import ServicePolicy
from domain.slots import Slot
from scheduler.routing import model as rm
from scheduler.routing.insertion import greedy_plan, slot_options
from services.planning import visit_skills, load_day
from storage.repository import Store

NEW = "new"


async def feasible_slots(store: Store, policy: ServicePolicy, now: datetime, visit: Visit, job: Job, slots: list[Slot]) -> list[Slot]:
    """The slots where some technician's route can take the visit, travel included; technicians cheapest first.

    The booked visits stay with their technicians; the new one is inserted without re-planning anyone.
    """
    by_day: dict = {}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(policy.tz).date(), []).append(slot)
    feasible: list[Slot] = []
    for day, day_slots in by_day.items():
        dp = await load_day(store, day, policy, now, extra_points=((job.lat, job.lon),), pin_assigned=True)
        routes = greedy_plan(dp.problem)
        for slot in day_slots:
            candidate = rm.Visit(
                id=NEW, location=dp.first_extra, service=visit.duration_minutes,
                windows=((dp.minute(slot.start), dp.minute(slot.end)),),
                skills=visit_skills(visit, job), region=job.region,
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
