"""What handlers and reactions take for granted about what they read, checked: an event's visit, a booked visit's slot."""

from __future__ import annotations

from datetime import datetime

from domain.events import Event
from domain.model import Visit
from domain.slots import Booking


class Inconsistent(RuntimeError):
    """Stored data contradicts what the code that read it was written for: a bug, never a user's mistake."""


def visit_of(event: Event) -> int:
    """The visit an event is about, for the reactions registered only to events about one visit."""
    if event.visit_id is None:
        raise Inconsistent(f"{event.name} of job {event.job_id} names no visit")
    return event.visit_id


def booked_slot(visit: Visit) -> tuple[datetime, datetime]:
    """The window a visit is booked in, for code that only sees visits past booking (offered, accepted, under way)."""
    if visit.slot_start is None or visit.slot_end is None:
        raise Inconsistent(f"visit {visit.id} ({visit.status}) has no booked slot")
    return visit.slot_start, visit.slot_end


def booking_of(visit: Visit) -> Booking:
    """The time a visit holds its technician, for visits found by Store.bookings_between (assigned and booked)."""
    if visit.technician_id is None:
        raise Inconsistent(f"visit {visit.id} ({visit.status}) holds no technician's time")
    start, end = booked_slot(visit)
    return Booking(visit.technician_id, start, end, visit.duration_minutes, visit.id, visit.job_id)
