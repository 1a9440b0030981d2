"""The back-office HTTP API: orders in, staff and group invites out, job status with its timeline."""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from pathlib import Path as FsPath
from urllib.parse import urljoin

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationInfo, field_validator, model_validator
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from bots.channels import WEB
from domain.errors import DomainError, IllegalTransition, NotFound
from webhooks.service import Service
from webhooks import customer_page
from webhooks.fees_models import BillOut
from webhooks.access import PrincipalDep, bearer, guard_path_records, guard_record, needs, refuse_region, require_token
from domain.commands import AssignVisit, CloseJob, CorrectAddress, ForceAssignVisit, MoveVisit, ReopenJob, SetDuty
from domain.events import ConflictOverridden
from domain.model import MAX_ID, Job, Photo, Technician, Visit
from services import backoffice, dispatching, evidence, intake
from services.context import HandlerContext
from storage.repository import Store
from storage.schedule import ScheduleStore

ServiceKindName = Literal["delivery", "installation", "repair", "inspection"]
RoleName = Literal["driver", "installer", "repairer"]
LanguageName = Literal["en", "zh"]
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
MAX_NESTING = 20  # JSON deeper than this is refused before json.dumps or a database could hit a recursion limit


def _whole(value: Any) -> Any:
    # JSON has one kind of number, and JSON Schema counts 5.0 as the integer 5; 5.5, "5" and true stay refused
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_whole)]
Id = Annotated[Int, Field(ge=1, le=MAX_ID)]
Name = Annotated[str, Field(min_length=1, max_length=100)]

def container(request: Request) -> Service:
    return request.app.state.container


ServiceDep = Annotated[Service, Depends(container)]


def require_json(request: Request) -> None:
    """Bodies are JSON: anything else would only fail validation with a less helpful reason."""
    if request.method in ("POST", "PUT", "PATCH"):
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")


# --- errors ---------------------------------------------------------------------------------------


class FieldErrorOut(BaseModel):
    loc: list[str | int] = Field(description="where: body, path or query, then the field")
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error of this service has this shape."""

    detail: str = Field(description="why: a code such as job_not_found, or a sentence")
    errors: list[FieldErrorOut] | None = Field(None, description="request validation only: each field that is wrong")


def _error(description: str) -> dict:
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED = {401: _error("no bearer token, or a wrong one"),
                403: _error("the token lacks the operation's scope, or the record is outside its regions")}
DISABLED = {503: _error("the API is disabled: neither FIELDCHAT_API_TOKEN nor any integration token is set")}
INVALID = {422: _error("the request does not fit the schema (see errors), or a rule refused it (detail names it)")}
BODY = {
    400: _error("the body could not be read as JSON text"),
    413: _error("the body is larger than the service takes (detail says how large it may be)"),
    415: _error("the body is not application/json"),
    **INVALID,
}
NOT_FOUND = {404: _error("no such id")}
CONFLICT = {409: _error("the current state does not allow it, or a concurrent change won; try again")}


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Validation errors in the one documented shape: a readable detail and the fields that are wrong."""
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": detail or "invalid request", "errors": errors}, status.HTTP_422_UNPROCESSABLE_CONTENT)


router = APIRouter(
    prefix="/api/v1", dependencies=[Depends(require_token), Depends(require_json), Depends(guard_path_records)], tags=["back office"],
    responses={**UNAUTHORIZED, **DISABLED},
)
health = APIRouter(tags=["health"])
# photos: the bearer token, or a signed link that needs none (group robots, a browser, a ticket system)
photos = APIRouter(prefix="/api/v1", tags=["back office"])
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


# --- models ---------------------------------------------------------------------------------------


def _unstorable(data: Any) -> str | None:
    """Why the databases could not store this JSON value, if they could not (walked without recursion)."""
    pending = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_NESTING:
            return f"nested more than {MAX_NESTING} levels deep"
        if isinstance(value, str):
            if "\x00" in value:
                return "text must not contain NUL characters"
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    return "text must be valid Unicode (no lone surrogates)"
        elif isinstance(value, float) and not math.isfinite(value):
            return "numbers must be finite"
        elif isinstance(value, dict):
            pending.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return None


def plain_http_allowed(host: str) -> bool:
    """Plain HTTP only to this machine or a private network (an ERP in the shop's office); HTTPS everywhere else."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


class StrictIn(BaseModel):
    """A request body: no coercion ("5" is not 5), no unknown fields, nothing the databases cannot store."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        reason = _unstorable(data)
        if reason:
            raise ValueError(reason)
        return data


class CustomerIn(StrictIn):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=5, max_length=40, pattern=r"^\+?[0-9 ()-]{5,40}$")
    language: LanguageName = "zh"


class AddressIn(StrictIn):
    text: str = Field(min_length=1, max_length=500)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    region: str = Field(min_length=1, max_length=100)


class ProductIn(StrictIn):
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=100, description="e.g. sofa, wardrobe, air-conditioner, washing-machine")
    brand: str | None = Field(None, max_length=100)


class ServiceIn(StrictIn):
    kind: ServiceKindName
    duration_minutes: Int | None = Field(None, ge=5, le=600)
    crew_size: Int = Field(1, ge=1, le=backoffice.MAX_CREW, description="technicians needed on site at the same time")
    min_gap_minutes: Int = Field(0, ge=0, le=backoffice.MAX_GAP_MINUTES, description="at least this long after the visit it depends on ends (installation after delivery)")


class ItemIn(StrictIn):
    """An order line. Lines needing services are grouped into visits by work type (one delivery for all the lines to
    deliver …); a line needing none is kept on the job and makes no visit. Other fields are kept as sent."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    sku: str | None = Field(None, min_length=1, max_length=100)
    name: str | None = Field(None, min_length=1, max_length=200)
    quantity: Int = Field(1, ge=1, le=10_000)
    category: str | None = Field(None, min_length=1, max_length=100, description="names the job's product when the order has no product")
    brand: str | None = Field(None, max_length=100)
    services: list[ServiceIn] = Field(default_factory=list, max_length=4, description="each kind at most once; duration_minutes is for all the units")
    address: AddressIn | Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        None, description="only when it differs from the order's: {text, lat, lon, region}; the lines at each other address make a job of "
                          "their own under the same order (see other_jobs). A text alone must be the order's address")


class OrderIn(StrictIn):
    source: str = Field(min_length=1, max_length=60, description="the sending system, e.g. erp")
    external_ref: str = Field(min_length=1, max_length=120, description="the order's id in the sending system")
    customer: CustomerIn
    address: AddressIn
    product: ProductIn | None = Field(None, description="what the order-level services are for; without it, the first line needing a service names the job's product")
    items: list[ItemIn] = Field(default_factory=list, max_length=100, description="the order lines")
    services: list[ServiceIn] = Field(default_factory=list, max_length=4, validate_default=True,
                                      description="for the product; each kind at most once; none when the lines carry their own")
    price_minor: Int | None = Field(None, ge=0, le=1_000_000_000, description="the service price in minor units (fen, cents); the review queue shows it")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    notes: str = Field("", max_length=2000)
    volume_liters: Int | None = Field(None, ge=0, le=1_000_000, description="cargo space the delivery takes up in a vehicle, litres")
    priority: Literal["normal", "urgent"] = Field("normal", description="urgent: served within the next opening hours (FIELDCHAT_URGENT_WINDOW_HOURS), without the customer booking")

    @field_validator("services")
    @classmethod
    def _some_service(cls, services: list[ServiceIn], info: ValidationInfo) -> list[ServiceIn]:
        # checked here (items are validated first) so the answer points at the field to fill in
        if not services and not any(item.services for item in info.data.get("items") or ()):
            raise ValueError("give at least one service: for the product here, or on an order line")
        return services


class PersonOut(BaseModel):
    id: int
    name: str | None


class ProductOut(BaseModel):
    name: str
    category: str
    brand: str | None


class EventOut(BaseModel):
    type: str = Field(description="the domain event, e.g. JobCreated, OfferMade, VisitCompleted")
    visit_id: int | None
    data: dict[str, Any]
    occurred_at: datetime


class VisitSettlementOut(BaseModel):
    item_id: int = Field(description="GET /api/v1/settlement-items?… lists it; release or adjust it by this id")
    status: Literal["in_review", "frozen", "ready", "settled"]
    amount_minor: int = Field(description="what it pays the technician, in the currency's minor units")
    currency: str
    review_ends_at: datetime
    period: str | None = Field(description="the accounting month it is settled in (YYYY-MM), once ready")
    statement_id: int | None = Field(description="the statement it is on, once settled (GET /api/v1/settlements/{id})")


class VisitOut(BaseModel):
    id: int
    kind: str
    status: str
    depends_on_visit_id: int | None
    technician: PersonOut | None = Field(description="the lead technician")
    crew_size: int
    crew: list[PersonOut] = Field(description="members besides the lead")
    min_gap_minutes: int
    slot_start: datetime | None
    slot_end: datetime | None
    checkin_distance_m: float | None
    appointment_confirmed_at: datetime | None = Field(None, description="when the customer confirmed the booked time (the reminder's Confirm)")
    checkin_kind: str | None = Field(None, description="how the check-in location was shared: live, or a static pin")
    follow_up_of_visit_id: int | None = Field(None, description="a return visit: the visit that ended needing it")
    return_reason: str | None = Field(None, description="why this visit ended needing a return visit")
    fault_category: str | None = Field(None, description="repairs: the fault category recorded")
    repair_method: str | None = Field(None, description="repairs: the method recorded")
    late_minutes: int = Field(0, description="delays the technician announced, added up")
    settlement: VisitSettlementOut | None = Field(None, description="the technician's fee for the visit, once it is confirmed with a priced bill")


class AnswerOut(BaseModel):
    visit_id: int
    step: str
    value: str
    photo_id: int | None
    answered_at: datetime | None


class PhotoOut(BaseModel):
    id: int
    visit_id: int | None
    purpose: str = Field(description="checklist, exception or relay")
    created_at: datetime | None
    url: str = Field(description="the photo, served with the same bearer token as this API")
    signed_url: str = Field(description="the photo without a token, until the link expires (a week)")


class ExceptionOut(BaseModel):
    id: int
    visit_id: int
    technician_id: int | None
    reason: str
    note: str
    photo_ids: list[int]
    status: str
    resolution: str | None
    created_at: datetime | None


class RatingOut(BaseModel):
    visit_id: int | None
    score: int
    comment: str
    created_at: datetime | None


class RelayedOut(BaseModel):
    thread_id: int
    audience: str = Field(description="technician or dispatchers")
    author: str = Field(description="customer, technician or dispatcher")
    text: str
    photo_id: int | None
    created_at: datetime | None


class JobOut(BaseModel):
    id: int
    source: str
    external_ref: str
    status: str
    product: ProductOut
    volume_liters: int | None
    region: str
    address: str = Field("", description="where the job is served")
    part: int = Field(1, description="an order with lines at several addresses is one job per address: 1 at the order's own, 2… at the others")
    created_at: datetime
    visits: list[VisitOut]
    timeline: list[EventOut]
    checklist_answers: list[AnswerOut] = Field(default_factory=list, description="what the technicians answered, step by step")
    photos: list[PhotoOut] = Field(default_factory=list, description="checklist, problem and relayed photos")
    exceptions: list[ExceptionOut] = Field(default_factory=list, description="problems reported on site")
    ratings: list[RatingOut] = Field(default_factory=list, description="the customer's scores and comments")
    messages: list[RelayedOut] = Field(default_factory=list, description="what went through relay threads, phone numbers masked")
    bills: list[BillOut] = Field(default_factory=list, description="the bill of each completed visit, with its lines and payments (paid / outstanding)")


class OrderOut(BaseModel):
    created: bool
    outcome: Literal["created", "updated", "unchanged"] = Field("created", description="updated: the job took the order's changes (see changes)")
    changes: dict[str, Any] = Field(default_factory=dict, description="updated: each job field changed, as [old, new]")
    coverage_gap: list[str] = Field(default_factory=list, description="work types no technician of the region can do (the dispatchers were told)")
    price_minor: int | None = None
    job: JobOut
    other_jobs: list[JobOut] = Field(default_factory=list, description="the order's jobs at its lines' other addresses, one per address (same source and external_ref)")
    customer_link: str | None = Field(
        description="Telegram (or WhatsApp) deep link when configured, else the customer's own chat page (signed, expiring with the job)"
    )
    web_link: str | None = Field(description="the demo web console with this link signed in; only in demo mode (FIELDCHAT_WEB_CONSOLE)")


class ReviewOut(BaseModel):
    """An order waiting for the merchant's review (or just reviewed): no job until it is confirmed."""

    source: str
    external_ref: str
    outcome: str = Field(description="pending_review")
    price_minor: int | None = Field(description="the service price in minor units, when the order or the merchant gave one")

    @classmethod
    def of(cls, receipt: Any) -> "ReviewOut":
        return cls(source=receipt.source, external_ref=receipt.external_ref, outcome=receipt.outcome, price_minor=receipt.price_minor)


class WorkingHoursIn(StrictIn):
    weekdays: list[Int] = Field(default=[0, 1, 2, 3, 4, 5], min_length=1, max_length=7, description="0 is Monday")
    start: HHMM = "09:00"
    end: HHMM = "18:00"


class PointIn(StrictIn):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class TechnicianIn(StrictIn):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=5, max_length=40, pattern=r"^\+?[0-9 ()-]{5,40}$")
    roles: list[RoleName] = Field(min_length=1, max_length=3)
    skills: list[Name] = Field(default_factory=list, max_length=100, description="product categories, and brands as brand:<name>")
    regions: list[Name] = Field(default_factory=list, max_length=100)
    working_hours: WorkingHoursIn = Field(default_factory=WorkingHoursIn)
    home: PointIn | None = None
    language: LanguageName = "zh"
    vehicle_capacity: Int | None = Field(None, ge=0, le=1_000_000, description="litres of cargo space; none: no limit is planned for")


class InviteOut(BaseModel):
    id: int
    invite_link: str | None = Field(description="Telegram deep link to the staff bot when it is configured, else the demo console in demo mode, else none")
    web_link: str | None = Field(description="the demo web console with this link signed in; only in demo mode (FIELDCHAT_WEB_CONSOLE)")


class DispatcherIn(StrictIn):
    name: str = Field(min_length=1, max_length=200)


class DispatchGroupIn(StrictIn):
    name: str = Field(min_length=1, max_length=200)
    region: str | None = Field(None, max_length=100, description="alerts of this region; none for all regions")
    language: LanguageName = "zh"
    purpose: Literal["dispatch", "reports"] = Field(
        "dispatch", description="dispatch: the region's alerts; reports: the managers' group, which gets the daily report (of its region, or all) and no alerts")


class DispatchGroupOut(BaseModel):
    id: int
    startgroup_link: str | None = Field(description="adds the staff bot to a Telegram group when it is configured, else the demo console in demo mode, else none")
    web_link: str | None = Field(description="the demo web console with this link signed in; only in demo mode (FIELDCHAT_WEB_CONSOLE)")


class StepIn(StrictIn):
    key: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    kind: Literal["yes_no", "number", "choice", "text", "photo"]
    prompt: dict[LanguageName, Annotated[str, Field(min_length=1, max_length=1000)]]
    choices: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=10)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _range(self) -> StepIn:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be above max")
        return self


class TemplateIn(StrictIn):
    service_kind: ServiceKindName
    product_category: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    steps: list[StepIn] = Field(min_length=1, max_length=50)


class TemplateOut(BaseModel):
    id: int
    service_kind: str
    product_category: str
    steps: list[dict[str, Any]]


class DutyIn(StrictIn):
    on_duty: StrictBool = Field(description="false: their visits not started today go to others by a replan")


class DutyOut(BaseModel):
    id: int
    name: str
    on_duty: bool


class DispatchRuleIn(StrictIn):
    region: str | None = Field(None, max_length=100, description="none: every region")
    service_kind: ServiceKindName | None = Field(None, description="none: every kind")
    mode: Literal["auto", "grab", "manual"]
    grab_top_n: Int = Field(3, ge=1, le=20, description="grab mode: how many technicians get the offer")
    grab_minutes: Int = Field(30, ge=1, le=1440, description="grab mode: how long before falling back to auto")


class DispatchRuleOut(BaseModel):
    id: int
    region: str | None
    service_kind: str | None
    mode: str
    grab_top_n: int
    grab_minutes: int


class CandidateOut(BaseModel):
    technician_id: int
    name: str


class CandidatesOut(BaseModel):
    candidates: list[CandidateOut] = Field(description="best first")


class AssignIn(StrictIn):
    technician_id: Id
    force: StrictBool = Field(False, description="assign even someone not free at that time: an override, recorded with the "
                                                 "conflict it accepted (echoed back in `override`)")


class ConflictOut(BaseModel):
    visit_id: int | None = None
    job_id: int | None = None
    start: str | None = None
    end: str | None = None
    off_shift: bool | None = None
    no_route: bool | None = None


class OverrideOut(BaseModel):
    """What an override accepted: the technician and what they hold at the visit's time."""

    technician_id: int
    dispatcher_id: int | None = None
    conflicts: list[ConflictOut]


class AssignOut(JobOut):
    override: OverrideOut | None = Field(None, description="with force: the conflict the override accepted (none: they were free)")


class SlaPolicyIn(StrictIn):
    region: str | None = Field(None, max_length=100)
    service_kind: ServiceKindName | None = None
    tiers: list[Annotated[Int, Field(ge=1, le=100)]] = Field(
        default=[50, 80, 100], min_length=1, max_length=5, json_schema_extra={"contains": {"const": 100}},
        description="percent of the allowance, including 100: below 80 reminds, from 80 warns, 100 alerts the group",
    )
    auto_reassign: bool = Field(False, description="acceptance only: at 100% offer the visit to the next technician")


class TimedSlaPolicyIn(SlaPolicyIn):
    stage: Literal["accept", "contact", "completion"]
    minutes: Int = Field(ge=1, le=100_000, description="business minutes allowed")


class ArrivalSlaPolicyIn(SlaPolicyIn):
    stage: Literal["arrival"]
    minutes: Int | None = Field(
        None, ge=1, le=100_000, description="arrival runs to the end of the booked window; these minutes count only for a visit without one",
    )


SlaPolicyBody = Annotated[TimedSlaPolicyIn | ArrivalSlaPolicyIn, Field(discriminator="stage")]


class SlaPolicyOut(BaseModel):
    region: str | None
    service_kind: str | None
    stage: str
    minutes: int | None
    tiers: list[int]
    auto_reassign: bool


class AlertSinkIn(StrictIn):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    region: str | None = Field(None, max_length=100, description="none: alerts of every region")
    kind: Literal["wecom", "dingtalk", "feishu", "slack"]
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://")
    secret: str | None = Field(None, max_length=500, description="DingTalk / Feishu signing secret")
    keyword: str | None = Field(None, max_length=100)
    priority: Int = Field(0, ge=0, le=100, description="lower first; the next takes over when one keeps failing")


class AlertSinkOut(BaseModel):
    id: int
    name: str
    region: str | None
    kind: str
    priority: int


class AlertSinksOut(BaseModel):
    sinks: list[AlertSinkOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
    telegram_bots: list[str]


# --- links ----------------------------------------------------------------------------------------


def _links(app: Service, request: Request, role: str, token: str) -> tuple[str | None, str | None]:
    """The link to hand out (the first channel's that has one) and the web console's; a channel's link relative to
    this service resolves against the address this request came to."""
    chat, web = app.channels.link(role, token), app.channels.deep_link(WEB, role, token)
    if role == "customer":
        # a customer never gets the demo console: a messenger's link, else their own chat page (webhooks/customer_page.py)
        chat = next((link for name in app.channels if name != WEB and (link := app.channels.deep_link(name, role, token))), None)
        chat = chat or (customer_page.page_link(app.settings.public_url, token) if token else None)
    return (urljoin(str(request.base_url), chat) if chat else None), (urljoin(str(request.base_url), web) if web else None)


# --- database work --------------------------------------------------------------------------------


def _domain_http_error(err: DomainError) -> HTTPException:
    if isinstance(err, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, err.code)
    if isinstance(err, IllegalTransition):
        return HTTPException(status.HTTP_409_CONFLICT, err.code)
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.code)


T = TypeVar("T")


def _clash(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, "concurrent_change")


async def _write(app: Service, origin: str, write: Callable[[HandlerContext], Awaitable[T]]) -> T:
    """A write as one unit of work on the bus; a lost race to insert the same row is retried there (finding
    the row), and a clash left after the retries is a 409."""

    async def work(ctx: HandlerContext) -> tuple[T, list]:
        return await write(ctx), []

    try:
        return await app.bus.call(f"{origin}:{uuid.uuid4().hex}", work)
    except DomainError as err:
        raise _domain_http_error(err) from err
    except (IntegrityError, StaleDataError) as exc:
        raise _clash(exc) from exc


async def _apply(app: Service, origin: str, command) -> list:
    """A domain command on the bus, as the chats send them."""
    try:
        return await app.bus.run(f"{origin}:{uuid.uuid4().hex}", command)
    except DomainError as err:
        raise _domain_http_error(err) from err
    except (IntegrityError, StaleDataError) as exc:
        raise _clash(exc) from exc


# --- routes ---------------------------------------------------------------------------------------

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


ORDER_ANSWERS = {
    200: {"model": OrderOut, "description": "a repeat of source + external_ref: the job made the first time, with the order's changes applied (outcome updated)"},
    202: {"model": ReviewOut, "description": "the source's orders wait for the merchant's review: queued, no job yet"},
    409: _error("the order may not change now (a visit is under way or done, it was cancelled or rejected): detail says why"),
    422: _error("the request does not fit the schema (see errors), or a rule refused it, e.g. region_not_covered: detail says why"),
}


@router.post(
    "/orders", response_model=OrderOut, status_code=status.HTTP_201_CREATED, responses={**BODY, **ORDER_ANSWERS},
    dependencies=[needs("orders:write")],
)
async def create_order(body: OrderIn, request: Request, response: Response, app: ServiceDep, who: PrincipalDep) -> OrderOut | JSONResponse:
    """Create a job with visits grouped from the order's lines; the same source + external_ref sent again returns the
    same job, updated when the order changed (refused with 409 when a visit is past changing)."""
    content = body.model_dump(mode="json", exclude_none=True)
    for region in sorted(intake.order_regions(content)):  # a line at another address sends someone to its region too
        refuse_region(who, region)
    return await answer_order(app, request, response, content)


async def answer_order(app: Service, request: Request, response: Response, content: dict[str, Any]) -> OrderOut | JSONResponse:
    """One order through intake (services/intake.py), answered as the order routes answer."""
    # order intake is a unit of work on the bus like any other write; the same order arriving twice at once
    # makes the second lose the insert, and its retry finds the first one's job
    try:
        receipt = await intake.place(app.bus, content)
    except DomainError as err:
        raise intake_http_error(err) from err
    except (IntegrityError, StaleDataError) as exc:
        raise _clash(exc) from exc
    if receipt.job_id is None:
        return JSONResponse(ReviewOut.of(receipt).model_dump(mode="json"), status.HTTP_202_ACCEPTED)
    async with app.sessions() as session:
        details = await backoffice.job_details(Store(session), receipt.job_id)
        others = [await backoffice.job_details(Store(session), job_id) for job_id in receipt.job_ids if job_id != receipt.job_id]
    if receipt.outcome != "created":
        response.status_code = status.HTTP_200_OK
    link, web = _links(app, request, "customer", receipt.token or "")
    return OrderOut(created=receipt.outcome == "created", outcome=receipt.outcome, changes=receipt.changes,  # type: ignore[arg-type]
                    coverage_gap=receipt.coverage_gap, price_minor=receipt.price_minor, job=JobOut(**details),
                    other_jobs=[JobOut(**other) for other in others], customer_link=link, web_link=web)


def intake_http_error(err: DomainError) -> HTTPException:
    """Intake's refusals carry their reason: 409 when the order may not change now, 422 when a rule refuses it."""
    if isinstance(err, intake.OrderRefused):
        return HTTPException(status.HTTP_409_CONFLICT, intake.describe(err))
    if isinstance(err, intake.CoverageRefused) or err.code == "mapping_failed":
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, intake.describe(err))
    return _domain_http_error(err)


@router.get("/jobs/{job_id}", response_model=JobOut, responses={**NOT_FOUND, **INVALID}, dependencies=[needs("jobs:read")])
async def get_job(job_id: IdPath, request: Request, app: ServiceDep) -> JobOut:
    """The job, its visits and timeline, and the evidence of the work: checklist answers, photos, problems, ratings."""
    async with app.sessions() as session, session.begin():  # signing photo links may create the signing key once
        try:
            details = await backoffice.job_details(Store(session), job_id)
        except DomainError as err:
            raise _domain_http_error(err) from err
        found = await evidence.job_evidence(Store(session), job_id, app.clock.now())
    base = str(request.base_url).rstrip("/")
    shown = [
        {**{k: v for k, v in p.items() if k not in ("path", "signed_path")}, "url": base + p["path"], "signed_url": base + p["signed_path"]}
        for p in found.pop("photos")
    ]
    return JobOut(**details, **found, photos=shown)


@photos.get(
    "/photos/{photo_id}", response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}, "description": "the stored photo"},
               **UNAUTHORIZED, **DISABLED, **NOT_FOUND, **INVALID},
    dependencies=[needs("jobs:read")],
)
async def get_photo(
    photo_id: IdPath, request: Request, app: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    expires: Annotated[int | None, Query(ge=0, le=2**33)] = None,
    sig: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> FileResponse:
    """A stored photo: with the API's bearer token, or with a signed link's ``expires`` and ``sig`` (until it expires)."""
    now = app.clock.now()
    async with app.sessions() as session, session.begin():
        store = Store(session)
        if expires is not None and sig is not None:
            if not evidence.signature_valid(await evidence.photo_key(store, now), photo_id, expires, sig, now):
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "the link is wrong or has expired")
        else:
            who = await require_token(request, credentials)
            await guard_record(app, who, photo_id=photo_id)
        photo = await store.get(Photo, photo_id)
    if photo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "photo_not_found")
    root = app.web_uploads.media_dir.parent.resolve()  # the media directory every channel stores under
    path = FsPath(photo.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "photo_not_found")  # moved or pruned: the row outlived the file
    return FileResponse(path, media_type=PHOTO_TYPES.get(path.suffix.lower(), "application/octet-stream"))


@router.post("/technicians", response_model=InviteOut, status_code=status.HTTP_201_CREATED, responses=BODY, dependencies=[needs("staff:write")])
async def create_technician(body: TechnicianIn, request: Request, app: ServiceDep, who: PrincipalDep) -> InviteOut:
    if who.regions is not None and (not body.regions or not set(body.regions) <= who.regions):
        refuse_region(who, None)  # a region-scoped caller adds technicians of its regions only
    async def create(ctx: HandlerContext):
        try:
            return await backoffice.create_technician(
                ctx.store, name=body.name, phone=body.phone, roles=list(body.roles), skills=body.skills,
                regions=body.regions, working_hours=body.working_hours.model_dump(),
                home_lat=body.home.lat if body.home else None, home_lon=body.home.lon if body.home else None,
                language=body.language, now=ctx.now, policy=ctx.policy, vehicle_capacity=body.vehicle_capacity,
            )
        except ValueError as err:  # working hours that do not parse
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err

    technician, token = await _write(app, "api:technician", create)
    pane = "driver" if body.roles == ["driver"] else "installer"
    link, web = _links(app, request, pane, token)
    return InviteOut(id=technician.id, invite_link=link, web_link=web)


@router.patch("/technicians/{technician_id}", response_model=DutyOut, responses={**NOT_FOUND, **BODY, **CONFLICT},
              dependencies=[needs("staff:write")])
async def set_technician_duty(technician_id: IdPath, body: DutyIn, app: ServiceDep, who: PrincipalDep) -> DutyOut:
    """Put a technician on or off duty, as /offduty and /onduty in the staff bot do."""
    if who.regions is not None:
        async with app.sessions() as session:
            found = await Store(session).get(Technician, technician_id)
        if found is not None and not who.regions & set(found.regions or ()):
            refuse_region(who, None)
    await _apply(app, f"api:duty:{technician_id}", SetDuty(technician_id, body.on_duty))
    async with app.sessions() as session:
        technician = await Store(session).get(Technician, technician_id)
    return DutyOut(id=technician.id, name=technician.name, on_duty=technician.on_duty)


@router.post("/dispatchers", response_model=InviteOut, status_code=status.HTTP_201_CREATED, responses=BODY, dependencies=[needs("staff:write")])
async def create_dispatcher(body: DispatcherIn, request: Request, app: ServiceDep) -> InviteOut:
    dispatcher, token = await _write(
        app, "api:dispatcher", lambda ctx: backoffice.create_dispatcher(ctx.store, name=body.name, now=ctx.now, policy=ctx.policy)
    )
    link, web = _links(app, request, "dispatcher", token)
    return InviteOut(id=dispatcher.id, invite_link=link, web_link=web)


@router.post("/dispatch-groups", response_model=DispatchGroupOut, status_code=status.HTTP_201_CREATED, responses=BODY,
             dependencies=[needs("staff:write")])
async def create_dispatch_group(body: DispatchGroupIn, request: Request, app: ServiceDep, who: PrincipalDep) -> DispatchGroupOut:
    refuse_region(who, body.region)
    group, token = await _write(app, "api:group", lambda ctx: backoffice.create_dispatch_group(
        ctx.store, name=body.name, region=body.region, language=body.language, now=ctx.now, policy=ctx.policy,
        purpose=body.purpose,
    ))
    link, web = _links(app, request, "group", token)
    return DispatchGroupOut(id=group.id, startgroup_link=link, web_link=web)


@router.put("/checklist-templates", response_model=TemplateOut, responses={**BODY, **CONFLICT}, dependencies=[needs("settings:write")])
async def put_checklist_template(body: TemplateIn, app: ServiceDep) -> TemplateOut:
    async def write(store: Store) -> TemplateOut:
        template = await backoffice.put_checklist_template(
            store, service_kind=body.service_kind, product_category=body.product_category,
            name=body.name, steps=[s.model_dump(exclude_none=True) for s in body.steps],
        )
        return TemplateOut(id=template.id, service_kind=template.service_kind, product_category=template.product_category, steps=template.steps)

    return await _write(app, "api:put", lambda ctx: write(ctx.store))


@router.put("/dispatch-rules", response_model=DispatchRuleOut, responses={**BODY, **CONFLICT}, dependencies=[needs("settings:write")])
async def put_dispatch_rule(body: DispatchRuleIn, app: ServiceDep, who: PrincipalDep) -> DispatchRuleOut:
    """Choose auto, grab or manual dispatch for a region and/or service kind (the most specific rule wins)."""
    refuse_region(who, body.region)
    async def write(store: Store) -> DispatchRuleOut:
        rule = await backoffice.put_dispatch_rule(store, **body.model_dump())
        return DispatchRuleOut(id=rule.id, **body.model_dump())

    return await _write(app, "api:put", lambda ctx: write(ctx.store))


@router.get("/visits/{visit_id}/candidates", response_model=CandidatesOut, responses={**NOT_FOUND, **INVALID}, dependencies=[needs("jobs:read")])
async def visit_candidates(visit_id: IdPath, app: ServiceDep) -> CandidatesOut:
    """Technicians who could take the visit at its booked time, best first (distance, load, rating)."""
    async with app.sessions() as session:
        try:
            return CandidatesOut(candidates=await backoffice.visit_candidates(Store(session), visit_id, app.clock.now(), app.policy))
        except DomainError as err:
            raise _domain_http_error(err) from err


@router.post("/visits/{visit_id}/assign", response_model=AssignOut, responses={**NOT_FOUND, **BODY, **CONFLICT}, dependencies=[needs("jobs:write")])
async def assign_visit(visit_id: IdPath, body: AssignIn, app: ServiceDep) -> AssignOut:
    """Manual dispatch: offer the visit to this technician (they still accept it in the staff bot). Someone skilled but
    not free then is refused with 409 naming the conflict, unless `force` is true: then it is an override, recorded."""
    if body.force:
        events = await _apply(app, f"api:assign:{visit_id}", ForceAssignVisit(visit_id, body.technician_id, dispatcher_id=None))
    else:
        try:
            events = await _apply(app, f"api:assign:{visit_id}", AssignVisit(visit_id, body.technician_id, dispatcher_id=None))
        except HTTPException as refused:
            conflict = await _busy_reason(app, visit_id, body.technician_id) if refused.detail == "technician_not_eligible" else None
            if conflict is None:
                raise
            raise HTTPException(status.HTTP_409_CONFLICT, f"technician_busy: {conflict}; send force: true to assign anyway") from refused
    override = next((e for e in events if isinstance(e, ConflictOverridden)), None)
    async with app.sessions() as session:
        details = await backoffice.job_details(Store(session), events[-1].job_id)
    return AssignOut(**details, override=OverrideOut(**override.data) if override else None)


async def _busy_reason(app: Service, visit_id: int, technician_id: int) -> str | None:
    """Why someone skilled is not free for a visit, in words for the API's 409; None: not skilled at all."""
    async with app.sessions() as session:
        ctx = HandlerContext(Store(session), app.clock.now(), app.policy)
        visit = await ctx.store.get(Visit, visit_id)
        if visit is None or visit.slot_start is None:
            return None
        job = await ctx.store.load(Job, visit.job_id)
        choice = next((ch for ch in await dispatching.choices(ctx, visit, job) if ch.technician_id == technician_id), None)
    if choice is None or not choice.needs_override:
        return None
    if choice.conflicts:
        held = choice.conflicts[0]
        return f"busy {held.start.isoformat()}–{held.end.isoformat()} with visit {held.visit_id} of job {held.job_id}"
    return "off shift at that time" if choice.off_shift else "the driving between their stops does not fit"


@router.put("/sla-policies", response_model=SlaPolicyOut, responses={**BODY, **CONFLICT}, dependencies=[needs("settings:write")])
async def put_sla_policy(body: SlaPolicyBody, app: ServiceDep, who: PrincipalDep) -> SlaPolicyOut:
    """Set the allowance and warning tiers of an SLA stage for a region and/or service kind."""
    refuse_region(who, body.region)
    if 100 not in body.tiers:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "tiers are percentages from 1 to 100 and must include 100")

    async def write(store: Store) -> SlaPolicyOut:
        await ScheduleStore(store).put_sla_policy(**body.model_dump())
        return SlaPolicyOut(**body.model_dump())

    return await _write(app, "api:put", lambda ctx: write(ctx.store))


@router.put("/alert-sinks", response_model=AlertSinkOut, responses={**BODY, **CONFLICT}, dependencies=[needs("settings:write")])
async def put_alert_sink(body: AlertSinkIn, app: ServiceDep, who: PrincipalDep) -> AlertSinkOut:
    """Add or change a group robot that receives dispatcher alerts; its URL and secret are never shown again."""
    refuse_region(who, body.region)
    async def write(store: Store) -> AlertSinkOut:
        sink_id = await ScheduleStore(store).put_alert_sink(**body.model_dump())
        return AlertSinkOut(id=sink_id, name=body.name, region=body.region, kind=body.kind, priority=body.priority)

    return await _write(app, "api:put", lambda ctx: write(ctx.store))


@router.get("/alert-sinks", response_model=AlertSinksOut, dependencies=[needs("settings:write")])
async def list_alert_sinks(app: ServiceDep) -> AlertSinksOut:
    async with app.sessions() as session:
        rows = await ScheduleStore(Store(session)).alert_sinks()
    return AlertSinksOut(sinks=[AlertSinkOut(**{k: r[k] for k in ("id", "name", "region", "kind", "priority")}) for r in rows])


@health.get("/healthz", response_model=HealthOut, responses={503: _error("the database does not answer")})
async def healthz(app: ServiceDep) -> HealthOut:
    try:
        async with app.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}") from exc
    return HealthOut(status="ok", telegram_bots=sorted(app.telegram))


# --- dispatchers' decisions through the API (issue 10: nothing left unowned) -------------------------------


class RescheduleIn(StrictIn):
    # JSON has no datetime type: an ISO 8601 string with its offset (the strict mode elsewhere would refuse any string)
    start: AwareDatetime = Field(strict=False, description="one of the shop's appointment windows within the booking horizon, ISO 8601 with offset")
    end: AwareDatetime = Field(strict=False)


class AddressCorrectionIn(StrictIn):
    text: Annotated[str, Field(min_length=1, max_length=300)]
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)

    @model_validator(mode="after")
    def _both_or_neither(self) -> AddressCorrectionIn:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give lat and lon together, or neither")
        return self


class ReasonIn(StrictIn):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


async def _job_out(app: Service, job_id: int) -> JobOut:
    async with app.sessions() as session:
        return JobOut(**await backoffice.job_details(Store(session), job_id))


@router.post("/visits/{visit_id}/reschedule", response_model=JobOut, responses={**NOT_FOUND, **BODY, **CONFLICT}, dependencies=[needs("jobs:write")])
async def reschedule_visit(visit_id: IdPath, body: RescheduleIn, app: ServiceDep) -> JobOut:
    """Move a visit to another window (not started yet): it is dispatched again for the new time and the customer is told."""
    events = await _apply(app, f"api:reschedule:{visit_id}", MoveVisit(visit_id, body.start, body.end, dispatcher_id=None))
    return await _job_out(app, events[0].job_id)


@router.post("/jobs/{job_id}/address", response_model=JobOut, responses={**NOT_FOUND, **BODY, **CONFLICT}, dependencies=[needs("jobs:write")])
async def correct_job_address(job_id: IdPath, body: AddressCorrectionIn, app: ServiceDep) -> JobOut:
    """Correct a job's address (and its pin: no geocoding is done); its technicians are told."""
    await _apply(app, f"api:address:{job_id}", CorrectAddress(job_id, body.text, body.lat, body.lon, dispatcher_id=None))
    return await _job_out(app, job_id)


@router.post("/jobs/{job_id}/close", response_model=JobOut, responses={**NOT_FOUND, **BODY, **CONFLICT}, dependencies=[needs("jobs:write")])
async def close_job(job_id: IdPath, body: ReasonIn, app: ServiceDep) -> JobOut:
    """Close a job without the customer: completed visits count as confirmed (recorded as by the API), visits not
    started are cancelled; refused while work is under way."""
    await _apply(app, f"api:close:{job_id}", CloseJob(job_id, body.reason, dispatcher_id=None))
    return await _job_out(app, job_id)


@router.post("/jobs/{job_id}/reopen", response_model=JobOut, responses={**NOT_FOUND, **BODY, **CONFLICT}, dependencies=[needs("jobs:write")])
async def reopen_job(job_id: IdPath, body: ReasonIn, app: ServiceDep) -> JobOut:
    """Open a closed job again (a complaint to follow up), with the reason on its timeline."""
    await _apply(app, f"api:reopen:{job_id}", ReopenJob(job_id, body.reason, dispatcher_id=None))
    return await _job_out(app, job_id)
