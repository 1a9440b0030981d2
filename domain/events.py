"""Domain events, named in the past tense; stored on the job's timeline and turned into notifications."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    job_id: int
    visit_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobCreated(Event): ...
class VisitBooked(Event): ...
class VisitUnbooked(Event): ...
class OfferMade(Event): ...
class OfferDeclined(Event): ...
class OffersBroadcast(Event): ...
class OffersClosed(Event): ...
class ManualDispatchNeeded(Event): ...
class NoTechnicianAvailable(Event): ...
class VisitAccepted(Event): ...
class VisitEnRoute(Event): ...
class VisitCheckedIn(Event): ...
class VisitStarted(Event): ...
class ChecklistAnswered(Event): ...
class VisitCompleted(Event): ...
class VisitConfirmed(Event): ...
class ExceptionReported(Event): ...
class ExceptionAcknowledged(Event): ...
class VisitReassigned(Event): ...
class VisitResumed(Event): ...
class VisitCancelled(Event): ...
class JobCompleted(Event): ...
class RatingGiven(Event): ...
class LowRatingReceived(Event): ...


EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in Event.__subclasses__()}


def stamp(event: Event, at: datetime) -> dict[str, Any]:
    """The row written to the timeline for an event."""
    return {"type": event.name, "job_id": event.job_id, "visit_id": event.visit_id, "data": event.data, "occurred_at": at}


class SlaTierReached(Event):
    """data: stage, tier (percent), deadline; tier 100 means the deadline passed."""


class AppointmentReminderDue(Event): ...


class DayPlanDue(Event):
    """data: technician_id, day (ISO date)."""


class CustomerContacted(Event): ...


class EtaUpdated(Event):
    """data: technician_id, minutes, close (bool)."""


class SlaExtended(Event): ...


class ReplanFailed(Event):
    """Automatic (re)planning of a day keeps failing and backs off; told once per run of failures. The job is one
    the day concerns (events live on a job's timeline). data: day (ISO date), triggers, reason, regions."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class ChatUnreachable(Event):
    """A customer's or technician's chat refuses our messages (blocked the bot); data: who, reason."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class CrewAssigned(Event):
    """A planned crew visit gained a member besides its lead; data: technician_id (the member)."""


class CrewReleased(Event):
    """A crew member is no longer needed on a visit; data: technician_id (the member)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class DayPlanChanged(Event):
    """A replan reordered or moved a technician's remaining stops today; data: technician_id, day (ISO date)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})
