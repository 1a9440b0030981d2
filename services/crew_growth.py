"""A crew made bigger on a visit already accepted (an order's change): the free skilled colleagues are asked to join."""

from __future__ import annotations

from domain import events as ev
from domain import lifecycle
from domain.field_work import open_crew_seats
from domain.model import Job, Visit
from scheduler.routing.model import NOT_ENOUGH_TECHNICIANS
from services.context import HandlerContext
from services.handlers import ASSIST_OFFERS, candidates
from services.lookups import booked_slot

CREW_GROWN = "crew_grown"  # AssistanceRequested's "why" when the order, not the lead, asked for more hands


async def grow_crew(ctx: HandlerContext, visit: Visit, job: Job) -> list[ev.Event]:
    """The visit's crew is bigger than the people on it: the open places are offered (Join) to the best free skilled
    technicians by the one candidate rule, at least as many as places are open; those who do not answer in time are
    followed by the next ones and, with nobody left, the dispatchers (services.dispatching.fire_assist). Nobody free
    now: the dispatchers are told at once. A visit not accepted yet gets its crew when its lead accepts (fill_crew)."""
    seats = open_crew_seats(visit)
    if seats <= 0 or visit.technician_id is None or visit.state not in lifecycle.ACTIVE:
        return []
    taken = {visit.technician_id, *visit.crew_ids}
    free = [t for t in await candidates(ctx, visit, job, crew_size=1) if t not in taken]
    if not free:
        start, _end = booked_slot(visit)
        return [ev.NoTechnicianAvailable(visit.job_id, visit.id, {"start": start.isoformat(), "reason": NOT_ENOUGH_TECHNICIANS})]
    asked = free[:max(ASSIST_OFFERS, seats)]
    return [ev.AssistanceRequested(visit.job_id, visit.id, {
        "technician_id": visit.technician_id, "candidates": asked, "asked": asked, "why": CREW_GROWN,
    })]
