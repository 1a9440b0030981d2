"""The API of order sources: per-source settings (field map, review, coverage, polling), orders in a source's own JSON,
CSV/XLSX imports with a per-row report, the review queue, and cancelling an order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, ValidationError, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from domain import commands as c
from domain.errors import DomainError
from domain.order_mapping import MappingError, apply, check_spec
from scheduler.order_polling import schedule_poll
from services import intake, order_import
from services.context import HandlerContext
from storage.orders import OrderStore
from storage.repository import Store
from webhooks.access import PrincipalDep, needs, refuse_region, require_token
from webhooks.api import (
    plain_http_allowed,
    BODY, CONFLICT, DISABLED, INVALID, NOT_FOUND, ORDER_ANSWERS, UNAUTHORIZED, Int, OrderIn, OrderOut, ServiceDep, StrictIn, _clash, _unstorable,
    answer_order, intake_http_error, require_json,
)

PRESETS = ("ecommerce", "erp_delivery_note")
MIN_POLL_SECONDS, MAX_POLL_SECONDS = 30, 86_400
SourcePath = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$", description="the `source` the orders carry, e.g. erp")]
RefPath = Annotated[str, Path(min_length=1, max_length=120, description="the order's external_ref")]

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["order sources"], responses={**UNAUTHORIZED, **DISABLED})


def validate_order(data: dict[str, Any]) -> dict[str, Any]:
    """A mapped order checked by the same model as POST /api/v1/orders; the reason names the field (and the line)."""
    try:
        order = OrderIn.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [str(part) for part in first["loc"]]
        line = int(first["loc"][1]) if len(first["loc"]) > 1 and first["loc"][0] == "items" and isinstance(first["loc"][1], int) else None
        raise order_import.InvalidOrder(f"{'.'.join(loc) or 'order'}: {first['msg']}", line) from err
    return order.model_dump(mode="json", exclude_none=True)


# --- settings ------------------------------------------------------------------------------------


class PollingIn(StrictIn):
    url: str = Field(min_length=8, max_length=500, description="fetched with GET: https://…, or http:// to localhost or a private network")
    interval_seconds: Int = Field(300, ge=MIN_POLL_SECONDS, le=MAX_POLL_SECONDS)
    cursor_param: str = Field("cursor", min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.\[\]-]+$",
                              description="the query parameter that carries the cursor the last page gave")
    authorization: str | None = Field(None, min_length=1, max_length=2000, description="sent as the Authorization header; never shown again")
    start_cursor: str | None = Field(None, max_length=1000, description="where to start; the cursor already kept stays when left out")

    @field_validator("url")
    @classmethod
    def _usable(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry a user or password: use authorization")
        if parts.scheme == "http" and not plain_http_allowed(parts.hostname):
            raise ValueError("must be https:// (plain http only to localhost or a private network address)")
        return value


class SourceIn(StrictIn):
    preset: Literal["ecommerce", "erp_delivery_note"] | None = Field(None, description="a field map shipped with fieldchat")
    mapping: dict[str, Any] | None = Field(None, description="a field map of your own (see the README); overrides preset")
    table_mapping: dict[str, Any] | None = Field(None, description="the field map for CSV/XLSX rows; default: the documented columns")
    review_required: StrictBool = Field(False, description="orders wait in the review queue until the merchant confirms them with a price")
    coverage_policy: Literal["refuse", "flag"] = Field("flag", description="a region nobody can serve: refuse the order (422), or accept it and alert the dispatchers")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    polling: PollingIn | None = Field(None, description="fetch orders from the source on a timer (needs a mapping with an orders path)")

    @model_validator(mode="after")
    def _maps_work(self) -> "SourceIn":
        for name in ("mapping", "table_mapping"):
            spec = getattr(self, name)
            if spec is not None:
                try:
                    check_spec(spec)
                except MappingError as err:
                    raise ValueError(f"{name}: {err}") from err
        if self.polling is not None and self.mapping is None and self.preset is None:
            raise ValueError("polling needs a mapping or a preset: it says where a page keeps its orders")
        return self


class PollingOut(BaseModel):
    url: str
    interval_seconds: int
    cursor_param: str
    has_authorization: bool
    cursor: str | None
    last_polled_at: datetime | None
    last_error: str | None


class SourceOut(BaseModel):
    name: str
    mapping: dict[str, Any] | None
    table_mapping: dict[str, Any] | None
    review_required: bool
    coverage_policy: str
    currency: str | None
    polling: PollingOut | None
    pending_review: int = Field(description="orders waiting in the review queue")


def _source_out(row: dict[str, Any], pending: int) -> SourceOut:
    polling = None
    if row["poll_url"]:
        polling = PollingOut(url=row["poll_url"], interval_seconds=row["poll_interval_seconds"], cursor_param=row["poll_cursor_param"] or "cursor",
                             has_authorization=bool(row["poll_auth_header"]), cursor=row["poll_cursor"], last_polled_at=row["poll_last_at"],
                             last_error=row["poll_last_error"])
    return SourceOut(name=row["name"], mapping=row["mapping"], table_mapping=row["table_mapping"], review_required=row["review_required"],
                     coverage_policy=row["coverage_policy"], currency=row["currency"], polling=polling, pending_review=pending)


async def _call(app: ServiceDep, origin: str, work) -> Any:
    try:
        return await app.bus.call(f"{origin}:{uuid.uuid4().hex}", work)
    except DomainError as err:
        raise intake_http_error(err) from err
    except (IntegrityError, StaleDataError) as exc:
        raise _clash(exc) from exc


@router.put("/order-sources/{source}", response_model=SourceOut, dependencies=[Depends(require_json), needs("settings:write")], responses={**BODY, **CONFLICT})
async def put_order_source(source: SourcePath, body: SourceIn, app: ServiceDep) -> SourceOut:
    """Set how a source's orders come in: its field map, review, coverage policy, currency and polling."""
    mapping = body.mapping if body.mapping is not None else (order_import.shipped_map(body.preset) if body.preset else None)
    if body.polling is not None and mapping is not None and "orders" not in mapping:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "polling needs a mapping with an orders path (where a page keeps its orders)")

    async def work(ctx: HandlerContext) -> tuple[SourceOut, list]:
        orders = OrderStore(ctx.store)
        before = await orders.source(source)
        values: dict[str, Any] = {
            "mapping": mapping, "table_mapping": body.table_mapping, "review_required": body.review_required,
            "coverage_policy": body.coverage_policy, "currency": body.currency,
            "poll_url": None, "poll_interval_seconds": None, "poll_cursor_param": None, "poll_auth_header": None,
        }
        if body.polling is not None:
            polling = body.polling
            values.update(poll_url=polling.url, poll_interval_seconds=polling.interval_seconds, poll_cursor_param=polling.cursor_param,
                          poll_auth_header=polling.authorization if polling.authorization is not None else (before or {}).get("poll_auth_header"))
            if polling.start_cursor is not None:
                values["poll_cursor"] = polling.start_cursor or None
            await schedule_poll(ctx, source, ctx.now)  # the first fetch at the next sweep; later ones every interval
        row = await orders.put_source(source, values, ctx.now)
        return _source_out(row, len(await orders.queue(source, "pending_review"))), []

    result: SourceOut = await _call(app, "order-source", work)
    return result


@router.get("/order-sources/{source}", response_model=SourceOut, dependencies=[needs("settings:write")], responses={**NOT_FOUND, **INVALID})
async def get_order_source(source: SourcePath, app: ServiceDep) -> SourceOut:
    async with app.sessions() as session:
        orders = OrderStore(_store(session))
        row = await orders.source(source)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "order_source_not_found")
        return _source_out(row, len(await orders.queue(source, "pending_review")))


def _store(session: Any) -> Store:  # the read-only routes read without the bus, as the job routes do
    return Store(session)


# --- orders in the source's own shape ----------------------------------------------------------------


@router.post("/order-sources/{source}/orders", response_model=OrderOut, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(require_json), needs("orders:write")], responses={**BODY, **ORDER_ANSWERS, **NOT_FOUND},
             # the body is the source's own JSON object, read as it comes and turned into an order by its field map
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}})
async def post_source_order(source: SourcePath, request: Request, response: Response, app: ServiceDep, who: PrincipalDep) -> OrderOut | JSONResponse:
    """An order as the source has it (e.g. its webhook's JSON), turned into an order by the source's field map."""
    async with app.sessions() as session:
        row = await OrderStore(_store(session)).source(source)
    if row is None or not row["mapping"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the source has no field map: PUT /api/v1/order-sources/{source} with a mapping or preset")
    raw = await _json(request)
    try:
        content = validate_order({**apply(row["mapping"], raw), "source": source})
    except MappingError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"mapping_failed: {err}") from err
    except order_import.InvalidOrder as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid_order: {err.reason}") from err
    for region in sorted(intake.order_regions(content)):
        refuse_region(who, region)
    return await answer_order(app, request, response, content)


async def _json(request: Request) -> Any:
    try:
        data = await request.json()
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not JSON") from exc
    reason = _unstorable(data)
    if reason:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, reason)
    return data


# --- CSV and XLSX ------------------------------------------------------------------------------------


class RowOut(BaseModel):
    row: int = Field(description="the line in the file; the header is row 1")
    status: Literal["created", "updated", "unchanged", "pending_review", "error"]
    external_ref: str | None
    job_id: int | None
    reason: str | None


class ImportOut(BaseModel):
    rows: list[RowOut]
    imported: int = Field(description="rows whose order was created or updated now")
    errors: int


@router.post(
    "/order-sources/{source}/import", response_model=ImportOut, dependencies=[needs("orders:write")],
    responses={**INVALID, **CONFLICT, 413: BODY[413], 415: BODY[415]},
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}},
                                                                  order_import.XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def import_orders(source: SourcePath, request: Request, app: ServiceDep, who: PrincipalDep) -> ImportOut:
    """Orders from a CSV (UTF-8, header row) or XLSX file (first sheet), one row per order line; rows sharing an
    external_ref are one order. Every row is reported; a bad row never keeps the good ones out, and importing the
    same file again imports nothing twice."""
    refuse_region(who, None)  # a file's rows may be anywhere: a token for some regions only cannot import
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in (*order_import.CSV_TYPES, order_import.XLSX_TYPE):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"send the file as text/csv or {order_import.XLSX_TYPE}")
    data = await request.body()
    try:
        rows = order_import.read_xlsx(data) if media_type == order_import.XLSX_TYPE else order_import.read_csv(data)
    except order_import.UnreadableFile as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    if not rows:
        # a header alone (or a body that is no table) is a mistake worth saying, not an import of nothing
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the file has no rows under its header row")
    async with app.sessions() as session:
        row = await OrderStore(_store(session)).source(source)
    spec = (row or {}).get("table_mapping") or order_import.shipped_map("table_default")
    try:
        report = await order_import.import_rows(app.bus, source, spec, rows, validate_order)
    except (IntegrityError, StaleDataError) as exc:
        raise _clash(exc) from exc
    return ImportOut(
        rows=[RowOut(row=r.row, status=r.status, external_ref=r.external_ref, job_id=r.job_id, reason=r.reason) for r in report.rows],  # type: ignore[arg-type]
        imported=report.count("created") + report.count("updated"), errors=report.count("error"),
    )


# --- review and cancel ---------------------------------------------------------------------------------


class QueuedOut(BaseModel):
    external_ref: str
    state: str
    price_minor: int | None = Field(description="the service price in minor units")
    currency: str | None
    received_at: datetime
    updated_at: datetime
    order: dict[str, Any] = Field(description="the order as last received")
    job_id: int | None
    job_ids: list[int] = Field(default_factory=list, description="every job of the order, one per address, the first one first")
    note: str | None


def _queued(row: dict[str, Any], job_ids: list[int] | None = None) -> QueuedOut:
    return QueuedOut(external_ref=row["external_ref"], state=row["state"], price_minor=row["price_minor"], currency=row["currency"],
                     received_at=row["received_at"], updated_at=row["updated_at"], order=row["content"], job_id=row["job_id"],
                     job_ids=job_ids if job_ids is not None else ([row["job_id"]] if row["job_id"] else []), note=row["review_note"])


def _region(row: dict[str, Any]) -> str | None:
    address = row["content"].get("address")
    return address.get("region") if isinstance(address, dict) else None


@router.get("/order-sources/{source}/review", response_model=list[QueuedOut], dependencies=[needs("orders:write")], responses={**INVALID})
async def review_queue(source: SourcePath, app: ServiceDep, who: PrincipalDep) -> list[QueuedOut]:
    """Orders waiting for the merchant's confirmation, oldest first, with their service price."""
    async with app.sessions() as session:
        return [_queued(r) for r in await OrderStore(_store(session)).queue(source, "pending_review") if who.sees(_region(r))]


async def _intake_row(app: ServiceDep, who: PrincipalDep, source: str, external_ref: str) -> dict[str, Any]:
    """The order's intake row, 404 when there is none, 403 when it is in a region the caller is not for."""
    async with app.sessions() as session:
        orders = OrderStore(_store(session))
        row = await orders.intake(source, external_ref)
        job = await _store(session).job_by_ref(source, external_ref) if row is None else None
    if row is None and job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order_not_found")
    refuse_region(who, _region(row) if row is not None else job.region if job is not None else None)
    return row or {}


@router.get("/order-sources/{source}/orders/{external_ref:path}", response_model=QueuedOut, dependencies=[needs("orders:write")],
            responses={**NOT_FOUND, **INVALID})
async def order_state(source: SourcePath, external_ref: RefPath, app: ServiceDep, who: PrincipalDep) -> QueuedOut:
    """Where an order stands in intake: pending_review, accepted (with its job), rejected or cancelled."""
    row = await _intake_row(app, who, source, external_ref)
    if not row:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order_not_found: the job came before order intake kept orders")
    async with app.sessions() as session:
        jobs = await _store(session).jobs_by_ref(source, external_ref)
    return _queued(row, [j.id for j in jobs if j.id is not None])


class ConfirmIn(StrictIn):
    price_minor: Int | None = Field(None, ge=0, le=intake.MAX_PRICE_MINOR, description="the service price in minor units; needed unless the order has one")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    note: str = Field("", max_length=500)


class ReasonIn(StrictIn):
    reason: str = Field("", max_length=500)


REVIEW_ANSWERS = {**BODY, **NOT_FOUND, 409: ORDER_ANSWERS[409]}


async def _order_command(app: ServiceDep, who: PrincipalDep, command: c.Command, source: str, external_ref: str) -> QueuedOut:
    await _intake_row(app, who, source, external_ref)

    async def work(ctx: HandlerContext) -> tuple[None, list]:
        return None, await app.bus.execute(ctx, [command])

    await _call(app, f"order:{type(command).__name__}", work)
    async with app.sessions() as session:
        row = await OrderStore(_store(session)).intake(source, external_ref)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order_not_found")
    return _queued(row)


@router.post("/order-sources/{source}/review/{external_ref:path}/confirm", response_model=QueuedOut,
             dependencies=[Depends(require_json), needs("orders:write")], responses=REVIEW_ANSWERS)
async def confirm_order(source: SourcePath, external_ref: RefPath, body: ConfirmIn, app: ServiceDep, who: PrincipalDep) -> QueuedOut:
    """The merchant confirms a queued order with its service price: its job and visits are made now."""
    command = c.ConfirmOrder(source, external_ref, body.price_minor, body.currency, body.note)
    return await _order_command(app, who, command, source, external_ref)


@router.post("/order-sources/{source}/review/{external_ref:path}/reject", response_model=QueuedOut,
             dependencies=[Depends(require_json), needs("orders:write")], responses=REVIEW_ANSWERS)
async def reject_order(source: SourcePath, external_ref: RefPath, body: ReasonIn, app: ServiceDep, who: PrincipalDep) -> QueuedOut:
    """The merchant rejects a queued order (a fake order, a duplicate): no job is made, and sending it again is refused."""
    return await _order_command(app, who, c.RejectOrder(source, external_ref, body.reason or "rejected in review"), source, external_ref)


@router.post("/order-sources/{source}/orders/{external_ref:path}/cancel", response_model=QueuedOut,
             dependencies=[Depends(require_json), needs("orders:write")], responses=REVIEW_ANSWERS)
async def cancel_order(source: SourcePath, external_ref: RefPath, body: ReasonIn, app: ServiceDep, who: PrincipalDep) -> QueuedOut:
    """The source cancels its order: its visits are cancelled and the people told, or 409 with the reason when a
    visit is already under way or done. Cancelling twice changes nothing."""
    return await _order_command(app, who, c.CancelOrder(source, external_ref, body.reason), source, external_ref)
