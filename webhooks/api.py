"""The back-office HTTP API: orders in, staff and group invites out, job status with its timeline."""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from domain.errors import DomainError, NotFound
from fieldchat.container import Container
from domain.commands import AssignVisit, SetDuty
from domain.model import Technician
from services import backoffice, handlers
from storage.repository import Store
from storage.schedule import ScheduleStore

ServiceKindName = Literal["delivery", "installation", "repair", "inspection"]
RoleName = Literal["driver", "installer", "repairer"]
LanguageName = Literal["en", "zh"]
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]

bearer = HTTPBearer(auto_error=False)


def container(request: Request) -> Container:
    return request.app.state.container


ContainerDep = Annotated[Container, Depends(container)]


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    expected = request.app.state.container.settings.api_token
    if expected is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the API is disabled: set FIELDCHAT_API_TOKEN")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["back office"])
health = APIRouter(tags=["health"])


# --- models ---------------------------------------------------------------------------------------


class CustomerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=5, max_length=40, pattern=r"^\+?[0-9 ()-]{5,40}$")
    language: LanguageName = "zh"


class AddressIn(BaseModel):
    text: str = Field(min_length=1, max_length=500)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    region: str = Field(min_length=1, max_length=100)


class ProductIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=100, description="e.g. sofa, wardrobe, air-conditioner, washing-machine")
    brand: str | None = Field(None, max_length=100)


class ServiceIn(BaseModel):
    kind: ServiceKindName
    duration_minutes: int | None = Field(None, ge=5, le=600)
    crew_size: int = Field(1, ge=1, le=backoffice.MAX_CREW, description="technicians needed on site at the same time")
    min_gap_minutes: int = Field(0, ge=0, le=backoffice.MAX_GAP_MINUTES, description="at least this long after the visit it depends on ends (installation after delivery)")


class OrderIn(BaseModel):
    source: str = Field(min_length=1, max_length=60, description="the sending system, e.g. erp")
    external_ref: str = Field(min_length=1, max_length=120, description="the order's id in the sending system")
    customer: CustomerIn
    address: AddressIn
    product: ProductIn
    services: list[ServiceIn] = Field(min_length=1, max_length=4)
    items: list[dict] = Field(default_factory=list, max_length=100)
    notes: str = Field("", max_length=2000)
    volume_liters: int | None = Field(None, ge=0, le=1_000_000, description="cargo space the delivery takes up in a vehicle, litres")
    priority: Literal["normal", "urgent"] = Field("normal", description="urgent: served within the next opening hours (FIELDCHAT_URGENT_WINDOW_HOURS), without the customer booking")


class VisitOut(BaseModel):
    id: int
    kind: str
    status: str
    depends_on_visit_id: int | None
    technician: dict | None
    crew_size: int
    crew: list[dict]  # members besides the lead (technician)
    min_gap_minutes: int
    slot_start: datetime | None
    slot_end: datetime | None
    checkin_distance_m: float | None


class JobOut(BaseModel):
    id: int
    source: str
    external_ref: str
    status: str
    product: dict
    volume_liters: int | None
    region: str
    created_at: datetime
    visits: list[VisitOut]
    timeline: list[dict]


class OrderOut(BaseModel):
    created: bool
    job: JobOut
    customer_link: str = Field(description="Telegram deep link when the customer bot is configured, else the web chat")
    web_link: str


class WorkingHoursIn(BaseModel):
    weekdays: list[int] = Field(default=[0, 1, 2, 3, 4, 5], min_length=1, max_length=7)
    start: HHMM = "09:00"
    end: HHMM = "18:00"


class PointIn(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class TechnicianIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=5, max_length=40, pattern=r"^\+?[0-9 ()-]{5,40}$")
    roles: list[RoleName] = Field(min_length=1)
    skills: list[str] = Field(default_factory=list, description="product categories, and brands as brand:<name>")
    regions: list[str] = Field(default_factory=list)
    working_hours: WorkingHoursIn = Field(default_factory=WorkingHoursIn)
    home: PointIn | None = None
    language: LanguageName = "zh"
    vehicle_capacity: int | None = Field(None, ge=0, le=1_000_000, description="litres of cargo space; none: no limit is planned for")


class InviteOut(BaseModel):
    id: int
    invite_link: str
    web_link: str


class DispatcherIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class DispatchGroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    region: str | None = Field(None, max_length=100, description="alerts of this region; none for all regions")
    language: LanguageName = "zh"


class DispatchGroupOut(BaseModel):
    id: int
    startgroup_link: str
    web_link: str


class StepIn(BaseModel):
    key: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    kind: Literal["yes_no", "number", "choice", "text", "photo"]
    prompt: dict[LanguageName, str]
    choices: list[str] = Field(default_factory=list, max_length=10)
    min: float | None = None
    max: float | None = None


class TemplateIn(BaseModel):
    service_kind: ServiceKindName
    product_category: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    steps: list[StepIn] = Field(min_length=1, max_length=50)


# --- links ----------------------------------------------------------------------------------------


def _base_url(app: Container, request: Request) -> str:
    return (app.settings.public_url or str(request.base_url)).rstrip("/")


def _telegram_link(app: Container, role: str, parameter: str, token: str) -> str | None:
    username = app.bot_username(role)
    return f"https://t.me/{username}?{parameter}={token}" if username else None


def _web_link(app: Container, request: Request, pane: str, token: str) -> str:
    return f"{_base_url(app, request)}/chat?{pane}={token}"


def _domain_http_error(err: DomainError) -> HTTPException:
    code = status.HTTP_404_NOT_FOUND if isinstance(err, NotFound) else status.HTTP_422_UNPROCESSABLE_CONTENT
    return HTTPException(code, err.code)


# --- routes ---------------------------------------------------------------------------------------


@router.post("/orders", response_model=OrderOut, status_code=status.HTTP_201_CREATED)
async def create_order(body: OrderIn, request: Request, response: Response, app: ContainerDep) -> OrderOut:
    """Create a job with linked visits; repeating the same source + external_ref returns the same job."""
    order = backoffice.OrderRequest(
        source=body.source, external_ref=body.external_ref,
        customer_name=body.customer.name, customer_phone=body.customer.phone, customer_language=body.customer.language,
        address=body.address.text, lat=body.address.lat, lon=body.address.lon, region=body.address.region,
        product_name=body.product.name, product_category=body.product.category, brand=body.product.brand,
        services=tuple(backoffice.ServiceRequest(s.kind, s.duration_minutes, s.crew_size, s.min_gap_minutes) for s in body.services),
        items=tuple(body.items), notes=body.notes, volume_liters=body.volume_liters, priority=body.priority,
    )
    for attempt in range(2):
        try:
            async with app.sessions() as session, session.begin():
                store = Store(session)
                result = await backoffice.create_order(store, order, app.clock.now(), app.policy)
                details = await backoffice.job_details(store, result.job.id)
            break
        except IntegrityError:
            # the same order arrived twice at once; the second finds the first one's job
            if attempt:
                raise
        except DomainError as err:
            raise _domain_http_error(err) from err
    if not result.created:
        response.status_code = status.HTTP_200_OK
    web = _web_link(app, request, "customer", result.customer_token)
    telegram = _telegram_link(app, "customer", "start", result.customer_token)
    return OrderOut(created=result.created, job=JobOut(**details), customer_link=telegram or web, web_link=web)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: int, app: ContainerDep) -> JobOut:
    async with app.sessions() as session:
        try:
            return JobOut(**await backoffice.job_details(Store(session), job_id))
        except DomainError as err:
            raise _domain_http_error(err) from err


@router.post("/technicians", response_model=InviteOut, status_code=status.HTTP_201_CREATED)
async def create_technician(body: TechnicianIn, request: Request, app: ContainerDep) -> InviteOut:
    async with app.sessions() as session, session.begin():
        try:
            technician, token = await backoffice.create_technician(
                Store(session), name=body.name, phone=body.phone, roles=list(body.roles), skills=body.skills,
                regions=body.regions, working_hours=body.working_hours.model_dump(),
                home_lat=body.home.lat if body.home else None, home_lon=body.home.lon if body.home else None,
                language=body.language, now=app.clock.now(), policy=app.policy, vehicle_capacity=body.vehicle_capacity,
            )
        except (DomainError, ValueError) as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, getattr(err, "code", str(err))) from err
    pane = "driver" if body.roles == ["driver"] else "installer"
    web = _web_link(app, request, pane, token)
    return InviteOut(id=technician.id, invite_link=_telegram_link(app, "staff", "start", token) or web, web_link=web)


class DutyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_duty: StrictBool = Field(description="false: their visits not started today go to others by a replan")


@router.patch("/technicians/{technician_id}")
async def set_technician_duty(technician_id: int, body: DutyIn, app: ContainerDep) -> dict:
    """Put a technician on or off duty, as /offduty and /onduty in the staff bot do."""
    command = SetDuty(technician_id, body.on_duty)
    try:
        await app.engine.apply(f"api:duty:{technician_id}:{uuid.uuid4().hex}", lambda ctx: handlers.execute(ctx, command))
    except DomainError as err:
        raise _domain_http_error(err) from err
    async with app.sessions() as session:
        technician = await Store(session).get(Technician, technician_id)
    return {"id": technician.id, "name": technician.name, "on_duty": technician.on_duty}


@router.post("/dispatchers", response_model=InviteOut, status_code=status.HTTP_201_CREATED)
async def create_dispatcher(body: DispatcherIn, request: Request, app: ContainerDep) -> InviteOut:
    async with app.sessions() as session, session.begin():
        dispatcher, token = await backoffice.create_dispatcher(Store(session), name=body.name, now=app.clock.now(), policy=app.policy)
    web = _web_link(app, request, "dispatcher", token)
    return InviteOut(id=dispatcher.id, invite_link=_telegram_link(app, "staff", "start", token) or web, web_link=web)


@router.post("/dispatch-groups", response_model=DispatchGroupOut, status_code=status.HTTP_201_CREATED)
async def create_dispatch_group(body: DispatchGroupIn, request: Request, app: ContainerDep) -> DispatchGroupOut:
    async with app.sessions() as session, session.begin():
        group, token = await backoffice.create_dispatch_group(
            Store(session), name=body.name, region=body.region, language=body.language, now=app.clock.now(), policy=app.policy
        )
    web = _web_link(app, request, "group", token)
    return DispatchGroupOut(id=group.id, startgroup_link=_telegram_link(app, "staff", "startgroup", token) or web, web_link=web)


@router.put("/checklist-templates", status_code=status.HTTP_200_OK)
async def put_checklist_template(body: TemplateIn, app: ContainerDep) -> dict:
    async with app.sessions() as session, session.begin():
        try:
            template = await backoffice.put_checklist_template(
                Store(session), service_kind=body.service_kind, product_category=body.product_category,
                name=body.name, steps=[s.model_dump(exclude_none=True) for s in body.steps],
            )
        except DomainError as err:
            raise _domain_http_error(err) from err
        return {"id": template.id, "service_kind": template.service_kind, "product_category": template.product_category, "steps": template.steps}


class DispatchRuleIn(BaseModel):
    region: str | None = Field(None, max_length=100, description="none: every region")
    service_kind: ServiceKindName | None = Field(None, description="none: every kind")
    mode: Literal["auto", "grab", "manual"]
    grab_top_n: int = Field(3, ge=1, le=20, description="grab mode: how many technicians get the offer")
    grab_minutes: int = Field(30, ge=1, le=1440, description="grab mode: how long before falling back to auto")


class AssignIn(BaseModel):
    technician_id: int


@router.put("/dispatch-rules")
async def put_dispatch_rule(body: DispatchRuleIn, app: ContainerDep) -> dict:
    """Choose auto, grab or manual dispatch for a region and/or service kind (the most specific rule wins)."""
    async with app.sessions() as session, session.begin():
        rule = await backoffice.put_dispatch_rule(Store(session), **body.model_dump())
        return {"id": rule.id, **body.model_dump()}


@router.get("/visits/{visit_id}/candidates")
async def visit_candidates(visit_id: int, app: ContainerDep) -> dict:
    """Technicians who could take the visit at its booked time, best first (distance, load, rating)."""
    async with app.sessions() as session:
        try:
            return {"candidates": await backoffice.visit_candidates(Store(session), visit_id, app.clock.now(), app.policy)}
        except DomainError as err:
            raise _domain_http_error(err) from err


@router.post("/visits/{visit_id}/assign", response_model=JobOut)
async def assign_visit(visit_id: int, body: AssignIn, app: ContainerDep) -> JobOut:
    """Manual dispatch: offer the visit to this technician (they still accept it in the staff bot)."""
    command = AssignVisit(visit_id, body.technician_id, dispatcher_id=None)
    try:
        events = await app.engine.apply(f"api:assign:{visit_id}:{uuid.uuid4().hex}", lambda ctx: handlers.execute(ctx, command))
    except DomainError as err:
        raise _domain_http_error(err) from err
    async with app.sessions() as session:
        return JobOut(**await backoffice.job_details(Store(session), events[-1].job_id))


class SlaPolicyIn(BaseModel):
    region: str | None = Field(None, max_length=100)
    service_kind: ServiceKindName | None = None
    stage: Literal["accept", "contact", "arrival", "completion"]
    minutes: int | None = Field(None, ge=1, le=100_000, description="business minutes allowed; arrival always runs to the end of the booked window")
    tiers: list[int] = Field(default=[50, 80, 100], min_length=1, max_length=5, description="percent of the allowance: below 80 reminds, from 80 warns, 100 alerts the group")
    auto_reassign: bool = Field(False, description="acceptance only: at 100% offer the visit to the next technician")


class AlertSinkIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    region: str | None = Field(None, max_length=100, description="none: alerts of every region")
    kind: Literal["wecom", "dingtalk", "feishu", "slack"]
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://")
    secret: str | None = Field(None, max_length=500, description="DingTalk / Feishu signing secret")
    keyword: str | None = Field(None, max_length=100)
    priority: int = Field(0, ge=0, le=100, description="lower first; the next takes over when one keeps failing")


@router.put("/sla-policies")
async def put_sla_policy(body: SlaPolicyIn, app: ContainerDep) -> dict:
    """Set the allowance and warning tiers of an SLA stage for a region and/or service kind."""
    if body.stage != "arrival" and body.minutes is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "minutes is required for this stage")
    if any(not 1 <= tier <= 100 for tier in body.tiers) or 100 not in body.tiers:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "tiers are percentages from 1 to 100 and must include 100")
    async with app.sessions() as session, session.begin():
        await ScheduleStore(Store(session)).put_sla_policy(**body.model_dump())
    return body.model_dump()


@router.put("/alert-sinks")
async def put_alert_sink(body: AlertSinkIn, app: ContainerDep) -> dict:
    """Add or change a group robot that receives dispatcher alerts; its URL and secret are never shown again."""
    async with app.sessions() as session, session.begin():
        sink_id = await ScheduleStore(Store(session)).put_alert_sink(**body.model_dump())
    return {"id": sink_id, "name": body.name, "region": body.region, "kind": body.kind, "priority": body.priority}


@router.get("/alert-sinks")
async def list_alert_sinks(app: ContainerDep) -> dict:
    async with app.sessions() as session:
        rows = await ScheduleStore(Store(session)).alert_sinks()
    return {"sinks": [{k: r[k] for k in ("id", "name", "region", "kind", "priority")} for r in rows]}


@health.get("/healthz")
async def healthz(app: ContainerDep) -> dict:
    try:
        async with app.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"database unavailable: {type(exc).__name__}") from exc
    return {"status": "ok", "telegram_bots": sorted(app.telegram)}
