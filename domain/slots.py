"""Free appointment slots from technicians' working hours and already booked visits (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from domain.model import Job, Technician, Visit, stored_id


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    @classmethod
    def parse_many(cls, spec: str) -> tuple["Window", ...]:
        """Parse ``"09:00-11:00,14:00-16:00"``."""
        windows = []
        for part in spec.split(","):
            begin, _, finish = part.strip().partition("-")
            window = cls(time.fromisoformat(begin.strip()), time.fromisoformat(finish.strip()))
            if window.end <= window.start:
                raise ValueError(f"window {part!r} ends before it starts")
            windows.append(window)
        return tuple(windows)


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    technician_ids: tuple[int, ...]  # free eligible technicians, best first


@dataclass(frozen=True)
class Booking:
    technician_id: int
    start: datetime
    end: datetime
    minutes: int
    visit_id: int | None = None  # which visit holds the time, so a conflict can be named
    job_id: int | None = None


def is_offered_window(start: datetime, end: datetime, *, now: datetime, tz: tzinfo, windows: tuple[Window, ...], days_ahead: int) -> bool:
    """Whether [start, end) is one of the shop's appointment windows within the booking horizon:
    what the customer can be offered at all, whatever comes in a (possibly forged) button."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        return False
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    if local_start.date() != local_end.date():
        return False
    if not 0 <= (local_start.date() - now.astimezone(tz).date()).days <= days_ahead:
        return False
    return any(local_start.timetz().replace(tzinfo=None) == w.start and local_end.timetz().replace(tzinfo=None) == w.end for w in windows)


def _minutes_booked(bookings: list[Booking], technician_id: int, start: datetime, end: datetime) -> int:
    return sum(b.minutes for b in bookings if b.technician_id == technician_id and b.start < end and b.end > start)


def free_slots(
    *,
    visit: Visit,
    job: Job,
    technicians: list[Technician],
    bookings: list[Booking],
    now: datetime,
    tz: tzinfo,
    windows: tuple[Window, ...],
    days_ahead: int,
    lead: timedelta,
    not_before: datetime | None = None,
    limit: int = 8,
) -> list[Slot]:
    """Windows in the coming days where at least one eligible technician has room for this visit.

    A technician has room when the window lies inside their shift and the minutes already booked
    in it plus this visit's duration fit the window's length.
    """
    eligible = [
        t
        for t in technicians
        if t.id not in visit.declined_by and t.can_do(visit, job)
    ]
    if not eligible:
        return []
    earliest = max(now + lead, not_before) if not_before else now + lead
    today: date = now.astimezone(tz).date()
    slots: list[Slot] = []
    for offset in range(days_ahead + 1):
        day = today + timedelta(days=offset)
        for window in windows:
            start = datetime.combine(day, window.start, tz)
            end = datetime.combine(day, window.end, tz)
            if start < earliest:
                continue
            length = int((end - start).total_seconds() // 60)
            free = []
            for tech in eligible:
                hours = tech.hours
                if day.weekday() not in hours.weekdays or window.start < hours.start or window.end > hours.end:
                    continue
                tech_id = stored_id(tech)
                booked = _minutes_booked(bookings, tech_id, start, end)
                if booked + visit.duration_minutes <= length:
                    free.append((booked, tech_id))
            if free:
                # the least loaded technician first spreads work evenly
                slots.append(Slot(start, end, tuple(tid for _, tid in sorted(free))))
                if len(slots) >= limit:
                    return slots
    return slots
