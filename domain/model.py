"""The field-service model: customers, staff, jobs split into visits, checklists, exceptions, ratings."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Protocol

from domain.errors import InvalidInput

MAX_ID = 2**31 - 1  # every id is a 32-bit integer column (PostgreSQL's integer): a larger number names nothing


class Language(str, enum.Enum):
    EN = "en"
    ZH = "zh"

    @classmethod
    def from_code(cls, code: str | None, default: "Language | None" = None) -> "Language":
        """Map a platform language code (e.g. Telegram's ``zh-hans``) to a supported language."""
        if code and code.lower().startswith("zh"):
            return cls.ZH
        if code and code.lower().startswith("en"):
            return cls.EN
        return default or cls.EN


class ServiceKind(str, enum.Enum):
    DELIVERY = "delivery"
    INSTALLATION = "installation"
    REPAIR = "repair"
    INSPECTION = "inspection"


class TechnicianRole(str, enum.Enum):
    DRIVER = "driver"
    INSTALLER = "installer"
    REPAIRER = "repairer"


# Which role performs which kind of visit; inspections are done by installers or repairers.
ROLES_FOR_KIND: dict[ServiceKind, frozenset[TechnicianRole]] = {
    ServiceKind.DELIVERY: frozenset({TechnicianRole.DRIVER}),
    ServiceKind.INSTALLATION: frozenset({TechnicianRole.INSTALLER}),
    ServiceKind.REPAIR: frozenset({TechnicianRole.REPAIRER}),
    ServiceKind.INSPECTION: frozenset({TechnicianRole.INSTALLER, TechnicianRole.REPAIRER}),
}

DEFAULT_SERVICE_MINUTES: dict[ServiceKind, int] = {
    ServiceKind.DELIVERY: 45,
    ServiceKind.INSTALLATION: 90,
    ServiceKind.REPAIR: 60,
    ServiceKind.INSPECTION: 45,
}


class VisitStatus(str, enum.Enum):
    CREATED = "created"  # waiting for the customer to book a slot
    BOOKED = "booked"  # slot chosen, offered to a technician
    ACCEPTED = "accepted"  # technician accepted the offer
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # technician finished; waiting for the customer
    CONFIRMED = "confirmed"  # customer signed off
    ON_HOLD = "on_hold"  # an exception is open
    CANCELLED = "cancelled"
    RETURN_NEEDED = "return_needed"  # ended without finishing: a linked follow-up visit carries the work on


class ExceptionReason(str, enum.Enum):
    WRONG_ADDRESS = "wrong_address"
    CUSTOMER_UNREACHABLE = "customer_unreachable"
    GOODS_DAMAGED = "goods_damaged"
    PARTS_MISSING = "parts_missing"
    OTHER = "other"


class ExceptionStatus(str, enum.Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class StepKind(str, enum.Enum):
    YES_NO = "yes_no"
    NUMBER = "number"
    CHOICE = "choice"
    TEXT = "text"
    PHOTO = "photo"


@dataclass(frozen=True)
class GeoPoint:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise InvalidInput("coordinates_out_of_range")


@dataclass(frozen=True)
class WorkingHours:
    """Weekly shift: weekdays (0=Monday) and a daily start/end in the technician's local time."""

    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    start: time = time(9, 0)
    end: time = time(18, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"weekdays": list(self.weekdays), "start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "WorkingHours":
        if not data:
            return cls()
        return cls(
            weekdays=tuple(int(d) for d in data.get("weekdays", (0, 1, 2, 3, 4, 5))),
            start=time.fromisoformat(data.get("start", "09:00")),
            end=time.fromisoformat(data.get("end", "18:00")),
        )


@dataclass(eq=False)
class Customer:
    name: str
    phone: str
    language: str = Language.EN.value
    id: int | None = None


@dataclass(eq=False)
class ChatBinding:
    """A chat (platform + bot + chat id) bound to a customer, technician, dispatcher or dispatch group."""

    platform: str
    bot: str
    chat_id: str
    subject_kind: str  # customer | technician | dispatcher | group
    subject_id: int
    user_id: str | None = None
    language: str = Language.EN.value
    undeliverable_since: datetime | None = None
    id: int | None = None


@dataclass(eq=False)
class Technician:
    name: str
    phone: str
    roles: list[str]
    skills: list[str] = field(default_factory=list)  # product categories and brands
    regions: list[str] = field(default_factory=list)
    working_hours: dict[str, Any] = field(default_factory=lambda: WorkingHours().to_dict())
    home_lat: float | None = None
    home_lon: float | None = None
    on_duty: bool = True
    language: str = Language.EN.value
    last_lat: float | None = None
    last_lon: float | None = None
    last_seen_at: datetime | None = None
    vehicle_capacity: int | None = None  # litres of cargo space; None: no limit is planned for
    id: int | None = None

    @property
    def hours(self) -> WorkingHours:
        return WorkingHours.from_dict(self.working_hours)

    def can_serve(self, kind: ServiceKind, category: str, brand: str | None, region: str) -> bool:
        """Eligibility: role for the visit kind, the product category (and brand when set), the region."""
        if not self.on_duty:
            return False
        if not ROLES_FOR_KIND[kind] & {TechnicianRole(r) for r in self.roles}:
            return False
        if kind is not ServiceKind.DELIVERY and category and category not in self.skills:
            return False
        if kind is not ServiceKind.DELIVERY and brand and self.has_brand_skills() and f"brand:{brand}" not in self.skills:
            return False
        return not self.regions or region in self.regions

    def can_do(self, visit: "Visit", job: "Job") -> bool:
        """Eligibility for one visit: ``can_serve`` for each product category its lines need (a grouped visit may hold
        an installation of another category than the job's product)."""
        kind = ServiceKind(visit.kind)
        return all(self.can_serve(kind, category, job.brand, job.region) for category in visit.categories_needed(job.product_category))

    def has_brand_skills(self) -> bool:
        return any(s.startswith("brand:") for s in self.skills)


@dataclass(eq=False)
class Dispatcher:
    name: str
    id: int | None = None


@dataclass(eq=False)
class DispatchGroup:
    name: str
    region: str | None = None
    language: str = Language.EN.value
    id: int | None = None
    purpose: str = "dispatch"  # dispatch | reports (the managers' group: the daily report, no alerts)


@dataclass(eq=False)
class Job:
    """One customer order needing service at one address; split into linked visits."""

    source: str
    external_ref: str
    customer_id: int
    address_text: str
    lat: float
    lon: float
    region: str
    product_category: str
    product_name: str
    brand: str | None
    items: list[dict[str, Any]] = field(default_factory=list)  # the order's lines, as JSON objects
    notes: str = ""
    status: str = "open"  # open | done | cancelled
    created_at: datetime | None = None
    volume_liters: int | None = None  # cargo the delivery takes up in a vehicle
    priority: str = "normal"  # normal | urgent
    part: int = 1  # an order at several addresses is one job per address: 1 at the order's own, 2… at its lines'
    part_address: str | None = None  # a part > 1: the line address as the order gave it (how an update finds the job)
    id: int | None = None


@dataclass(eq=False)
class Visit:
    job_id: int
    kind: str
    sequence: int
    duration_minutes: int
    status: str = VisitStatus.CREATED.value
    depends_on_visit_id: int | None = None
    technician_id: int | None = None
    slot_start: datetime | None = None
    slot_end: datetime | None = None
    declined_by: list[int] = field(default_factory=list)  # technician ids who declined this visit
    checkin_distance_m: float | None = None
    checkin_reason: str | None = None
    held_from: str | None = None
    checklist_position: int = 0
    eta_minutes: int | None = None
    close_notified: bool = False
    planned_start: datetime | None = None
    crew_size: int = 1  # technicians needed on site at the same time
    crew_ids: list[int] = field(default_factory=list)  # crew members besides technician_id (the lead)
    min_gap_minutes: int = 0  # at least this long after the predecessor visit ends
    checkin_kind: str | None = None  # live | static | pin_only (domain.field_work.CheckinKind)
    follow_up_of_visit_id: int | None = None  # a return visit: the visit that ended needing it
    return_reason: str | None = None  # why this visit ended needing a return visit
    fault_category: str | None = None  # repairs: what was wrong (a code of the product category's list)
    repair_method: str | None = None  # repairs: what was done about it
    late_minutes: int = 0  # delays the technician announced, added up
    appointment_confirmed_at: datetime | None = None  # the customer confirmed the reminder's appointment (then)
    categories: list[str] = field(default_factory=list)  # product categories of the lines it serves; empty: the job's
    version: int = 0
    id: int | None = None

    @property
    def service_kind(self) -> ServiceKind:
        return ServiceKind(self.kind)

    def categories_needed(self, job_category: str) -> list[str]:
        """The product categories a technician must be skilled in for this visit: its lines', else the job's product's."""
        return list(self.categories) or [job_category]

    @property
    def state(self) -> VisitStatus:
        return VisitStatus(self.status)


@dataclass(frozen=True)
class ChecklistStep:
    key: str
    kind: StepKind
    prompt: dict[str, str]  # language -> text, written by the shop
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "kind": self.kind.value, "prompt": self.prompt}
        if self.choices:
            data["choices"] = list(self.choices)
        if self.minimum is not None:
            data["min"] = self.minimum
        if self.maximum is not None:
            data["max"] = self.maximum
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ChecklistStep":
        try:
            kind = StepKind(data["kind"])
            prompt = data["prompt"]
            if isinstance(prompt, str):
                prompt = {"en": prompt}
            step = cls(
                key=str(data["key"]),
                kind=kind,
                prompt=dict(prompt),
                choices=tuple(str(c) for c in data.get("choices", ())),
                minimum=data.get("min"),
                maximum=data.get("max"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidInput("checklist_step_invalid") from exc
        if step.kind is StepKind.CHOICE and not step.choices:
            raise InvalidInput("checklist_choice_without_choices")
        return step


@dataclass(eq=False)
class ChecklistTemplate:
    service_kind: str
    product_category: str
    name: str
    steps: list[dict[str, Any]]  # ChecklistStep dicts, stored as JSON
    id: int | None = None

    def parsed_steps(self) -> list[ChecklistStep]:
        return [ChecklistStep.from_dict(s) for s in self.steps]


@dataclass(eq=False)
class ChecklistAnswer:
    visit_id: int
    step_key: str
    value: str
    photo_id: int | None = None
    answered_at: datetime | None = None
    id: int | None = None


@dataclass(eq=False)
class Photo:
    visit_id: int | None
    platform: str
    file_id: str
    path: str
    purpose: str  # checklist | exception
    created_at: datetime | None = None
    id: int | None = None


class DispatchMode(str, enum.Enum):
    AUTO = "auto"  # fieldchat picks the technician
    GRAB = "grab"  # an offer goes to the top eligible technicians; the first to accept wins
    MANUAL = "manual"  # a dispatcher picks from a ranked list


class OfferStatus(str, enum.Enum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"  # somebody else took it
    DECLINED = "declined"
    EXPIRED = "expired"


@dataclass(eq=False)
class DispatchRule:
    """How visits of a region and service kind are dispatched; None matches any."""

    mode: str
    region: str | None = None
    service_kind: str | None = None
    grab_top_n: int = 3
    grab_minutes: int = 30
    id: int | None = None


@dataclass(eq=False)
class Offer:
    """A grab-order offer of one visit to one technician."""

    visit_id: int
    technician_id: int
    status: str = OfferStatus.OPEN.value
    created_at: datetime | None = None
    expires_at: datetime | None = None
    closed_at: datetime | None = None
    id: int | None = None


@dataclass(eq=False)
class ProblemReport:
    """An exception reported on site; named so as not to shadow Python's Exception."""

    visit_id: int
    technician_id: int | None
    reason: str
    note: str = ""
    photo_ids: list[int] = field(default_factory=list)
    status: str = ExceptionStatus.OPEN.value
    resolution: str | None = None
    created_at: datetime | None = None
    acknowledged_by: int | None = None  # dispatcher id
    acknowledged_at: datetime | None = None
    id: int | None = None


@dataclass(eq=False)
class Rating:
    job_id: int
    visit_id: int | None
    customer_id: int
    score: int
    comment: str = ""
    created_at: datetime | None = None
    acknowledged_by: int | None = None  # dispatcher id
    acknowledged_at: datetime | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= int(self.score) <= 5:
            raise InvalidInput("rating_out_of_range")


def parse_number(text: str, step: ChecklistStep) -> float:
    """Parse a numeric checklist answer and check it against the step's range."""
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError as exc:
        raise InvalidInput("number_expected") from exc
    if (step.minimum is not None and value < step.minimum) or (step.maximum is not None and value > step.maximum):
        raise InvalidInput("number_out_of_range")
    return value


class Stored(Protocol):
    """Anything with the id the store gives it (None until it is first written)."""

    @property
    def id(self) -> int | None: ...


def stored_id(entity: Stored) -> int:
    """The id of an entity that has been stored; rules that key by id (bookings, rankings) only ever see those."""
    if entity.id is None:
        raise ValueError(f"{type(entity).__name__} {entity!r} has no id: it was never stored")
    return entity.id
