"""Commands, named as imperatives: what conversation steps and the API ask the domain to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ChatIdentity:
    """Who is writing from where; copied from the inbound event so handlers can bind chats."""

    platform: str
    bot: str
    chat_id: str
    user_id: str
    language: str


@dataclass(frozen=True)
class Command:
    pass


@dataclass(frozen=True)
class BindCustomer(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class BindTechnician(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class RegisterDispatcher(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class BindDispatchGroup(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class SetLanguage(Command):
    chat: ChatIdentity
    language: str


@dataclass(frozen=True)
class BookVisit(Command):
    visit_id: int
    customer_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class RescheduleVisit(Command):
    visit_id: int
    customer_id: int


@dataclass(frozen=True)
class CancelVisitByCustomer(Command):
    visit_id: int
    customer_id: int


@dataclass(frozen=True)
class ConfirmVisit(Command):
    visit_id: int
    customer_id: int


@dataclass(frozen=True)
class RateVisit(Command):
    visit_id: int
    customer_id: int
    score: int


@dataclass(frozen=True)
class CommentRating(Command):
    visit_id: int
    customer_id: int
    comment: str


@dataclass(frozen=True)
class AcceptOffer(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class DeclineOffer(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class Depart(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class CheckIn(Command):
    visit_id: int
    technician_id: int
    latitude: float
    longitude: float
    reason: str | None = None


@dataclass(frozen=True)
class StartWork(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class PhotoRef:
    platform: str
    file_id: str
    path: str


@dataclass(frozen=True)
class AnswerStep(Command):
    visit_id: int
    technician_id: int
    step_key: str
    value: str
    photo: PhotoRef | None = None


@dataclass(frozen=True)
class CompleteVisit(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class ReportException(Command):
    visit_id: int
    technician_id: int
    reason: str
    note: str = ""
    photos: tuple[PhotoRef, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class AcknowledgeException(Command):
    exception_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class ReassignVisit(Command):
    exception_id: int
    technician_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class CancelVisitByDispatcher(Command):
    exception_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class AcknowledgeAlert(Command):
    """A dispatcher saw an alert that needs no change (e.g. a low rating)."""

    rating_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class AssignVisit(Command):
    """A dispatcher (or the API, with dispatcher_id None) picks the technician for a visit."""

    visit_id: int
    technician_id: int
    dispatcher_id: int | None


@dataclass(frozen=True)
class MarkContacted(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class TrackLocation(Command):
    technician_id: int
    latitude: float
    longitude: float


@dataclass(frozen=True)
class ExtendSla(Command):
    visit_id: int
    stage: str
    minutes: int
    dispatcher_id: int


@dataclass(frozen=True)
class SetDuty(Command):
    """A technician (or the back office) says they stop or start taking visits."""

    technician_id: int
    on_duty: bool
