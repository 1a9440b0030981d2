"""The visit lifecycle as an explicit state machine: guarded transitions that emit domain events."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain import events as ev
from domain.errors import DomainError, IllegalTransition
from domain.model import Visit
from domain.model import VisitStatus as S

ACTIVE = (S.ACCEPTED, S.EN_ROUTE, S.ON_SITE, S.IN_PROGRESS)
OPEN = (S.CREATED, S.BOOKED, *ACTIVE, S.ON_HOLD)
DONE = (S.COMPLETED, S.CONFIRMED)
# nothing more happens on these: a visit ended needing a return is carried on by its follow-up visit
ENDED = (S.CONFIRMED, S.CANCELLED, S.RETURN_NEEDED)

# action -> (states it may start from, state it leads to; None keeps or restores the state)
TRANSITIONS: dict[str, tuple[tuple[S, ...], S | None]] = {
    "book": ((S.CREATED,), S.BOOKED),
    "unbook": ((S.BOOKED, S.ACCEPTED), S.CREATED),
    "offer": ((S.BOOKED,), S.BOOKED),
    "decline": ((S.BOOKED,), S.BOOKED),
    "accept": ((S.BOOKED,), S.ACCEPTED),
    "grab": ((S.BOOKED,), S.ACCEPTED),
    "depart": ((S.ACCEPTED,), S.EN_ROUTE),
    "check_in": ((S.ACCEPTED, S.EN_ROUTE), S.ON_SITE),
    "start": ((S.ON_SITE,), S.IN_PROGRESS),
    "complete": ((S.IN_PROGRESS,), S.COMPLETED),
    "confirm": ((S.COMPLETED,), S.CONFIRMED),
    "hold": ((S.BOOKED, *ACTIVE), S.ON_HOLD),
    "resume": ((S.ON_HOLD,), None),
    "reassign": ((S.BOOKED, S.ACCEPTED, S.EN_ROUTE, S.ON_HOLD), S.BOOKED),
    "cancel": (OPEN, S.CANCELLED),
    # the customer moves a booked visit to another window: it is dispatched again for the new time
    "rebook": ((S.BOOKED, S.ACCEPTED), S.BOOKED),
    # a technician gives back one visit they accepted but have not started; it is dispatched again
    "hand_back": ((S.ACCEPTED, S.EN_ROUTE), S.BOOKED),
    # work on site that cannot be finished this time: a linked follow-up visit carries it on
    "end_for_return": ((S.ON_SITE, S.IN_PROGRESS), S.RETURN_NEEDED),
}


def allowed(visit: Visit, action: str) -> bool:
    return visit.state in TRANSITIONS[action][0]


def _move(visit: Visit, action: str) -> None:
    sources, target = TRANSITIONS[action]
    if visit.state not in sources:
        raise IllegalTransition(visit.status, action)
    if target is not None:
        visit.status = target.value


def not_before(visit: Visit, dependency: Visit | None) -> datetime | None:
    """The earliest a visit may start after the one it waits for (an installation after its delivery):
    past that visit's window, and past its earliest end plus the minimum gap. None: no such wait."""
    if dependency is None or dependency.slot_start is None or dependency.slot_end is None:
        return None
    earliest_end = dependency.slot_start + timedelta(minutes=dependency.duration_minutes + visit.min_gap_minutes)
    return max(dependency.slot_end, earliest_end)


def book(visit: Visit, job_id: int, start: datetime, end: datetime, dependency: Visit | None) -> ev.Event:
    if end <= start:
        raise DomainError("slot_invalid")
    if dependency is not None and (dependency.slot_end is None or start < dependency.slot_end):
        raise DomainError("slot_before_dependency")
    _move(visit, "book")
    visit.slot_start, visit.slot_end = start, end
    visit.technician_id = None
    return ev.VisitBooked(job_id, visit.id, {"start": start.isoformat(), "end": end.isoformat()})


def unbook(visit: Visit, job_id: int) -> ev.Event:
    previous, crew = visit.technician_id, list(visit.crew_ids)
    _move(visit, "unbook")
    visit.slot_start = visit.slot_end = None
    visit.technician_id = None
    visit.crew_ids = []  # the next booking is planned afresh, crew included
    visit.declined_by = []
    return ev.VisitUnbooked(job_id, visit.id, {"technician_id": previous, "crew_ids": crew})


def offer(visit: Visit, job_id: int, technician_id: int) -> ev.Event:
    if visit.technician_id is not None:
        raise DomainError("visit_already_offered")
    if technician_id in visit.declined_by:
        raise DomainError("technician_declined_before")
    _move(visit, "offer")
    visit.technician_id = technician_id
    return ev.OfferMade(job_id, visit.id, {"technician_id": technician_id})


def _require_technician(visit: Visit, technician_id: int) -> None:
    if visit.technician_id != technician_id:
        raise DomainError("not_your_visit")


def decline(visit: Visit, job_id: int, technician_id: int) -> ev.Event:
    _require_technician(visit, technician_id)
    _move(visit, "decline")
    visit.technician_id = None
    visit.declined_by = [*visit.declined_by, technician_id]
    return ev.OfferDeclined(job_id, visit.id, {"technician_id": technician_id})


def accept(visit: Visit, job_id: int, technician_id: int) -> ev.Event:
    _require_technician(visit, technician_id)
    _move(visit, "accept")
    return ev.VisitAccepted(job_id, visit.id, {"technician_id": technician_id})


def grab(visit: Visit, job_id: int, technician_id: int) -> ev.Event:
    """A technician takes a visit offered to several at once; only the first can."""
    if visit.technician_id is not None:
        raise DomainError("offer_taken")
    _move(visit, "grab")
    visit.technician_id = technician_id
    return ev.VisitAccepted(job_id, visit.id, {"technician_id": technician_id, "grabbed": True})


def depart(visit: Visit, job_id: int, technician_id: int) -> ev.Event:
    _require_technician(visit, technician_id)
    _move(visit, "depart")
    return ev.VisitEnRoute(job_id, visit.id, {"technician_id": technician_id})


def check_in(
    visit: Visit, job_id: int, technician_id: int, distance_m: float, reason: str | None, kind: str | None = None, radius_m: float | None = None,
) -> ev.Event:
    """``kind`` is how the location came (live or a static pin); ``within`` in the event says whether the customer may be
    told "arrived" (only a check-in inside the radius is presence)."""
    _require_technician(visit, technician_id)
    _move(visit, "check_in")
    visit.checkin_distance_m = round(distance_m, 1)
    visit.checkin_reason = reason
    visit.checkin_kind = kind
    within = radius_m is None or distance_m <= radius_m
    return ev.VisitCheckedIn(
        job_id, visit.id, {"technician_id": technician_id, "distance_m": visit.checkin_distance_m, "kind": kind, "within": within},
    )


def start(visit: Visit, job_id: int, technician_id: int, dependency: Visit | None) -> ev.Event:
    """Start work on site; an installation waits until its delivery is done."""
    _require_technician(visit, technician_id)
    if dependency is not None and dependency.state not in DONE:
        raise DomainError("dependency_not_completed", kind=dependency.kind)
    _move(visit, "start")
    visit.checklist_position = 0
    return ev.VisitStarted(job_id, visit.id, {"technician_id": technician_id})


def complete(visit: Visit, job_id: int, technician_id: int, checklist_done: bool) -> ev.Event:
    _require_technician(visit, technician_id)
    if not checklist_done:
        raise DomainError("checklist_incomplete")
    _move(visit, "complete")
    return ev.VisitCompleted(job_id, visit.id, {"technician_id": technician_id})


def confirm(visit: Visit, job_id: int) -> ev.Event:
    _move(visit, "confirm")
    return ev.VisitConfirmed(job_id, visit.id, {"technician_id": visit.technician_id})


def hold(visit: Visit, job_id: int, exception_id: int, reason: str) -> ev.Event:
    held_from = visit.status
    _move(visit, "hold")
    visit.held_from = held_from
    return ev.ExceptionReported(job_id, visit.id, {"exception_id": exception_id, "reason": reason, "technician_id": visit.technician_id})


def resume(visit: Visit, job_id: int) -> ev.Event:
    _move(visit, "resume")
    visit.status = visit.held_from or S.BOOKED.value
    visit.held_from = None
    return ev.VisitResumed(job_id, visit.id, {"status": visit.status})


def reassign(visit: Visit, job_id: int, technician_id: int) -> ev.Event:
    previous = visit.technician_id
    if previous == technician_id:
        raise DomainError("same_technician")
    _move(visit, "reassign")
    visit.held_from = None
    visit.technician_id = technician_id
    visit.crew_ids = [c for c in visit.crew_ids if c != technician_id]  # a crew member who becomes the lead
    if previous is not None:
        visit.declined_by = [*visit.declined_by, previous]
    return ev.VisitReassigned(job_id, visit.id, {"technician_id": technician_id, "previous_technician_id": previous})


def cancel(visit: Visit, job_id: int, by: str) -> ev.Event:
    previous = visit.technician_id
    _move(visit, "cancel")
    visit.held_from = None
    return ev.VisitCancelled(job_id, visit.id, {"by": by, "technician_id": previous})


def hand_back(visit: Visit, job_id: int, technician_id: int, reason: str) -> ev.Event:
    """The technician gives the visit back: like a decline, they are not offered it again."""
    _require_technician(visit, technician_id)
    _move(visit, "hand_back")
    visit.technician_id = None
    visit.declined_by = [*visit.declined_by, technician_id]
    return ev.VisitHandedBack(job_id, visit.id, {"technician_id": technician_id, "reason": reason, "crew_ids": list(visit.crew_ids)})


def end_for_return(visit: Visit, follow_up: Visit, job_id: int, technician_id: int, reason: str, note: str) -> ev.Event:
    """The visit ends needing another one; ``follow_up`` (stored, waiting for the customer's booking) carries the work on."""
    _require_technician(visit, technician_id)
    _move(visit, "end_for_return")
    visit.return_reason = f"{reason}: {note}" if note else reason
    follow_up.follow_up_of_visit_id = visit.id
    return ev.ReturnVisitNeeded(
        job_id, visit.id, {"technician_id": technician_id, "reason": reason, "note": note, "follow_up_visit_id": follow_up.id},
    )


def follow_up_of(visit: Visit, sequence: int) -> Visit:
    """A new visit of the same job and kind, for the same crew size, waiting for the customer to book it."""
    return Visit(
        job_id=visit.job_id, kind=visit.kind, sequence=sequence, duration_minutes=visit.duration_minutes,
        crew_size=visit.crew_size, follow_up_of_visit_id=visit.id, categories=list(visit.categories),
    )


# --- the customer moves a booking (issue 10) ------------------------------------------------------


def rebook(visit: Visit, job_id: int, start: datetime, end: datetime, dependency: Visit | None) -> ev.Event:
    """Move a booked visit to [start, end) in one step: the old window is kept until this very moment, so a
    customer who starts to reschedule and stops keeps their visit. Whoever had it is released; it is dispatched anew."""
    if end <= start:
        raise DomainError("slot_invalid")
    earliest = not_before(visit, dependency)
    if earliest is not None and start < earliest:
        raise DomainError("slot_before_dependency")
    previous = (visit.slot_start, visit.slot_end)
    technician, crew = visit.technician_id, list(visit.crew_ids)
    _move(visit, "rebook")
    visit.slot_start, visit.slot_end = start, end
    visit.technician_id = None
    visit.crew_ids = []
    visit.declined_by = []
    visit.planned_start = None  # the plan was for the old window
    visit.appointment_confirmed_at = None  # a confirmation was of the old time
    return ev.VisitRescheduled(job_id, visit.id, {
        "start": start.isoformat(), "end": end.isoformat(),
        "previous_start": previous[0].isoformat() if previous[0] else None,
        "previous_end": previous[1].isoformat() if previous[1] else None,
        "technician_id": technician, "crew_ids": crew, "by": "customer",
    })


def must_move_with(dependant: Visit, dependency: Visit) -> bool:
    """Whether a booked dependant (the installation after a delivery) no longer fits after its dependency as that
    one is booked now: it starts before the dependency's window ends or before the minimum gap has passed."""
    if dependant.slot_start is None or dependant.state not in (S.BOOKED, S.ACCEPTED):
        return False
    earliest = not_before(dependant, dependency)
    return earliest is not None and dependant.slot_start < earliest


def would_move_with(dependant_start: datetime | None, gap_minutes: int, dependency_minutes: int, start: datetime, end: datetime) -> bool:
    """``must_move_with`` asked before anything changes: would a dependant booked at ``dependant_start`` (None: not
    booked) still follow its dependency (of ``dependency_minutes``) moved to [start, end), with the minimum gap?"""
    if dependant_start is None:
        return False
    return dependant_start < max(end, start + timedelta(minutes=dependency_minutes + gap_minutes))


def confirm_appointment(visit: Visit, job_id: int, at: datetime) -> ev.Event:
    """The customer said the booked time suits them (the reminder's Confirm); once is enough."""
    if visit.state not in (S.BOOKED, S.ACCEPTED):
        raise IllegalTransition(visit.status, "confirm_appointment")
    if visit.appointment_confirmed_at is not None:
        raise DomainError("appointment_already_confirmed")
    visit.appointment_confirmed_at = at
    return ev.AppointmentConfirmed(job_id, visit.id, {"at": at.isoformat(), "technician_id": visit.technician_id})
