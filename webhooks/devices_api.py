"""The devices API: register (one, or a CSV import with a report per row), read with history, retire; QR codes per device
and per site as PNG, A4 sheets of them (PDF, PNG or a printable page), and renewing a code (the old sticker stops working)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urljoin

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from bots.web import PLATFORM as WEB
from conversations.i18n import translate
from domain import commands as c
from domain.access import Principal
from domain.devices import (
    MAX_WARRANTY_MONTHS,
    DeviceFields,
    SiteFields,
    add_months,
    read_row,
    under_warranty,
)
from domain.errors import DomainError, InvalidInput, NotFound
from domain.model import Customer
from services import devices as device_service
from services import qr
from services.context import HandlerContext
from services.order_import import CSV_TYPES, UnreadableFile, read_csv
from storage.devices import DEVICE, SITE, DeviceRow, DeviceStore, SiteRow
from storage.repository import Store
from webhooks import customer_page
from webhooks.access import PrincipalDep, needs, refuse_region, require_token
from webhooks.api import (
    BODY, CONFLICT, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, CustomerIn, IdPath, Int, ServiceDep, StrictIn, _clash, require_json,
)
from webhooks.service import Service

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["devices"], responses={**UNAUTHORIZED, **DISABLED})
MAX_IMPORT_ROWS = 2000  # per file: each row is its own unit of work
PNG = {200: {"content": {"image/png": {}}, "description": "the QR code as PNG"}}
SHEET_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
Text200 = Annotated[str, Field(max_length=200)]


def _iso_date(value: Any) -> Any:
    """A date as JSON carries it, "YYYY-MM-DD" text only: a number is no date (strict bodies coerce nothing else)."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("a date as YYYY-MM-DD") from exc
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})]


# --- bodies and answers --------------------------------------------------------------------------------


class SiteIn(StrictIn):
    address: str = Field(min_length=1, max_length=500)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    region: str = Field(min_length=1, max_length=100)
    name: Text200 = Field("", description="an area of the address for shared equipment (\"roof\"): its own QR code")


class ProductIn(StrictIn):
    category: str = Field(min_length=1, max_length=100, description="the product category technicians have skills for, e.g. aircon")
    name: str = Field(min_length=1, max_length=200)
    brand: Text200 | None = None
    model: Text200 | None = None


class DeviceIn(StrictIn):
    customer: CustomerIn
    site: SiteIn
    product: ProductIn
    serial: Text200 | None = Field(None, description="with the brand, names one unit: registering it again finds the same device")
    installed_on: IsoDate | None = Field(None, description="YYYY-MM-DD")
    warranty_until: IsoDate | None = Field(None, description="YYYY-MM-DD")
    warranty_months: Int | None = Field(None, ge=0, le=MAX_WARRANTY_MONTHS, description="instead of warranty_until, from installed_on")
    location: Text200 = Field("", description="where in the home or site: kitchen, roof unit 3")


class RetireIn(StrictIn):
    reason: str = Field(min_length=1, max_length=500)


class CodeOut(BaseModel):
    link: str | None = Field(description="what the QR code opens: the customer bot's deep link, else the customer's web page")
    chat_link: str | None = Field(description="the messenger deep link, when a messenger is configured")
    web_link: str = Field(description="the customer's own web chat page for this code")


class SiteOut(BaseModel):
    id: int
    name: str
    address: str
    region: str


class HistoryOut(BaseModel):
    kind: str
    job_id: int | None
    visit_id: int | None
    data: dict[str, Any]
    occurred_at: datetime


class DeviceOut(BaseModel):
    id: int
    customer_id: int
    site: SiteOut
    product_category: str
    product_name: str
    brand: str | None
    model: str | None
    serial: str | None
    installed_on: date | None
    warranty_until: date | None
    under_warranty: bool
    location: str
    status: Literal["active", "retired"]
    created_at: datetime
    code: CodeOut | None = Field(description="the device's QR code (none once retired)")
    history: list[HistoryOut] | None = Field(None, description="the device's timeline, oldest first (single reads only)")


class ImportRowOut(BaseModel):
    row: int = Field(description="the row's number in the file, the header being row 1")
    status: Literal["created", "exists", "error"]
    device_id: int | None
    reason: str | None


class ImportOut(BaseModel):
    rows: list[ImportRowOut]
    created: int
    errors: int


# --- links and labels ----------------------------------------------------------------------------------


def code_links(app: Service, token: str, base_url: str | None) -> CodeOut:
    """A code's links: a messenger's deep link when one is configured (never the demo console), and the customer page's;
    the code opens the first of them. Links relative to this service resolve against ``base_url``."""
    chat = next((link for name in app.channels if name != WEB and (link := app.channels.deep_link(name, "customer", token))), None)
    web = customer_page.page_link(app.settings.public_url, token)
    if base_url:
        chat, web = (urljoin(base_url, chat) if chat else None), urljoin(base_url, web)
    return CodeOut(link=chat or web, chat_link=chat, web_link=web)


async def device_labels(app: Service, store: Store, devices: Sequence[DeviceRow], sites: Sequence[SiteRow], base_url: str | None) -> list[qr.Label]:
    """A sticker per site code, then one per device, in the owner's language (product and where on the sticker)."""
    codes = DeviceStore(store)
    now = app.clock.now()
    owners = await store.get_many(Customer, [*(d.customer_id for d in devices), *(s.customer_id for s in sites)])
    site_names = {s.id: s for s in await _sites(codes, devices)} | {s.id: s for s in sites}
    labels = []
    for site in sites:
        language = owners[site.customer_id].language if site.customer_id in owners else "en"
        link = code_links(app, await codes.code(SITE, site.id, now), base_url).link
        labels.append(qr.Label(link or "", site.name or site.address_text, (site.address_text[:60], _hint(language))))
    for device in devices:
        language = owners[device.customer_id].language if device.customer_id in owners else "en"
        link = code_links(app, await codes.code(DEVICE, device.id, now), base_url).link
        site = site_names.get(device.site_id)
        where = device.location or (site.name or site.address_text if site else "")
        lines = tuple(x for x in (" ".join(p for p in (device.brand, device.model) if p), where, _hint(language)) if x)
        labels.append(qr.Label(link or "", device.product_name, lines))
    return labels


def _hint(language: str) -> str:
    """What a sticker asks for, in the owner's language, with English beside Chinese (a PNG drawn without a Chinese
    font keeps the English: services.qr.drawable)."""
    english = translate("qr.label_hint", "en")
    return english if language == "en" else f"{translate('qr.label_hint', language)} · {english}"


async def _sites(codes: DeviceStore, devices: Sequence[DeviceRow]) -> list[SiteRow]:
    return list((await codes.sites(d.site_id for d in devices)).values())


def _base(request: Request) -> str:
    return str(request.base_url)


# --- reading -------------------------------------------------------------------------------------------


async def _device_out(app: Service, store: Store, device: DeviceRow, base_url: str, *, history: bool = False) -> DeviceOut:
    codes = DeviceStore(store)
    site = await codes.site(device.site_id)
    assert site is not None  # a device's site is a foreign key
    today = app.clock.now().astimezone(app.policy.tz).date()
    code = code_links(app, await codes.code(DEVICE, device.id, app.clock.now()), base_url) if device.active else None
    lines = [HistoryOut(kind=h.kind, job_id=h.job_id, visit_id=h.visit_id, data=h.data, occurred_at=h.occurred_at)
             for h in await codes.history(device.id)] if history else None
    return DeviceOut(
        id=device.id, customer_id=device.customer_id, site=SiteOut(id=site.id, name=site.name, address=site.address_text, region=site.region),
        product_category=device.product_category, product_name=device.product_name, brand=device.brand, model=device.model,
        serial=device.serial, installed_on=device.installed_on, warranty_until=device.warranty_until,
        under_warranty=under_warranty(device.warranty_until, today), location=device.location,
        status=device.status,  # type: ignore[arg-type]
        created_at=device.created_at, code=code, history=lines,
    )


async def _visible(store: Store, who: Principal, device_id: int) -> DeviceRow:
    codes = DeviceStore(store)
    device = await codes.device(device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device_not_found")
    site = await codes.site(device.site_id)
    refuse_region(who, site.region if site else None)
    return device


async def _visible_site(store: Store, who: Principal, site_id: int) -> SiteRow:
    site = await DeviceStore(store).site(site_id)
    if site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "site_not_found")
    refuse_region(who, site.region)
    return site


@router.get("/devices/{device_id}", response_model=DeviceOut, dependencies=[needs("devices:read")], responses={**NOT_FOUND, **INVALID})
async def get_device(device_id: IdPath, request: Request, app: ServiceDep, who: PrincipalDep) -> DeviceOut:
    """A device with its site, warranty, QR code links and its whole timeline (installed, repairs, inspections …)."""
    async with app.sessions() as session, session.begin():  # the first read of a code makes it: a write
        store = Store(session)
        device = await _visible(store, who, device_id)
        return await _device_out(app, store, device, _base(request), history=True)


@router.get("/devices", response_model=list[DeviceOut], dependencies=[needs("devices:read")], responses={**INVALID})
async def list_devices(
    request: Request, app: ServiceDep, who: PrincipalDep,
    customer_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None, site_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    after: Annotated[int, Query(ge=0, le=2**31 - 1, description="the last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[DeviceOut]:
    """Devices by id, a page at a time, of one customer or site (or all); a token for some regions sees theirs only."""
    async with app.sessions() as session, session.begin():
        store = Store(session)
        codes = DeviceStore(store)
        rows = await codes.listed(customer_id=customer_id, site_id=site_id, after=after, limit=limit)
        sites = await codes.sites(d.site_id for d in rows)
        return [await _device_out(app, store, d, _base(request)) for d in rows if who.sees(sites[d.site_id].region if d.site_id in sites else None)]


# --- writing -------------------------------------------------------------------------------------------


def _fields(body: DeviceIn) -> tuple[SiteFields, DeviceFields]:
    until = body.warranty_until
    if body.warranty_months is not None:
        if until is not None or body.installed_on is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "warranty_months needs installed_on, and not warranty_until too")
        until = add_months(body.installed_on, body.warranty_months)
    site = SiteFields(body.site.address, body.site.lat, body.site.lon, body.site.region, body.site.name)
    product = body.product
    return site, DeviceFields(product.category, product.name, product.brand, product.model, body.serial, body.installed_on, until, body.location)


def _refusal(err: DomainError) -> HTTPException:
    if isinstance(err, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, err.code)
    if isinstance(err, InvalidInput):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.code)
    return HTTPException(status.HTTP_409_CONFLICT, err.code)


@router.post("/devices", response_model=DeviceOut, status_code=status.HTTP_201_CREATED, dependencies=[Depends(require_json), needs("devices:write")],
             responses={200: {"model": DeviceOut, "description": "the serial was registered for this customer already: that device"},
                        **BODY, **CONFLICT})
async def post_device(body: DeviceIn, request: Request, response: Response, app: ServiceDep, who: PrincipalDep) -> DeviceOut:
    """Register a device for a customer (by phone; a new one is made) at a site; 409 when its serial is another customer's."""
    refuse_region(who, body.site.region)
    site, fields = _fields(body)
    command = c.RegisterDevice(body.customer.phone, body.customer.name, body.customer.language, site, fields, "api")

    async def work(ctx: HandlerContext) -> tuple[tuple[DeviceRow, bool], list[Any]]:
        device, created, events = await device_service.register(ctx, command)
        return (device, created), events

    try:
        device, created = await app.bus.call(f"api:device:{uuid.uuid4().hex}", work)
    except DomainError as err:
        raise _refusal(err) from err
    except (IntegrityError, StaleDataError) as exc:
        raise _clash(exc) from exc
    if not created:
        response.status_code = status.HTTP_200_OK
    async with app.sessions() as session, session.begin():
        return await _device_out(app, Store(session), device, _base(request))


@router.post("/devices/{device_id}/retire", response_model=DeviceOut, dependencies=[Depends(require_json), needs("devices:write")],
             responses={**BODY, **NOT_FOUND, **CONFLICT})
async def retire_device(device_id: IdPath, body: RetireIn, request: Request, app: ServiceDep, who: PrincipalDep) -> DeviceOut:
    """Take a device out of service: its QR code opens nothing any more; its file and timeline stay."""
    async with app.sessions() as session:
        await _visible(Store(session), who, device_id)
    try:
        await app.bus.run(f"api:device-retire:{uuid.uuid4().hex}", c.RetireDevice(device_id, body.reason))
    except DomainError as err:
        raise _refusal(err) from err
    async with app.sessions() as session, session.begin():
        store = Store(session)
        return await _device_out(app, store, await _visible(store, who, device_id), _base(request), history=True)


@router.post(
    "/devices/import", response_model=ImportOut, dependencies=[needs("devices:write")],
    responses={**INVALID, 413: BODY[413], 415: BODY[415]},
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_devices(request: Request, app: ServiceDep, who: PrincipalDep) -> ImportOut:
    """Devices from a CSV file (UTF-8, header row): customer_phone, customer_name, address, lat, lon, region, category,
    product (needed), customer_language, site, brand, model, serial, installed_on, warranty_until or warranty_months,
    location. Every row is reported; a bad row never keeps the good ones out, and importing the file again adds nothing."""
    refuse_region(who, None)  # a file's rows may be anywhere: a token for some regions only cannot import
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in CSV_TYPES:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the file as text/csv")
    try:
        rows = read_csv(await request.body())
    except UnreadableFile as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    if not rows:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the file has no rows under its header row")
    if len(rows) > MAX_IMPORT_ROWS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"more than {MAX_IMPORT_ROWS} rows: split the file")
    today = app.clock.now().astimezone(app.policy.tz).date()
    report: list[ImportRowOut] = []
    for number, cells in enumerate(rows, start=2):
        try:
            row = read_row(cells, today)
            command = c.RegisterDevice(row.customer_phone, row.customer_name, row.customer_language, row.site, row.fields, "import")

            async def work(ctx: HandlerContext, command: c.RegisterDevice = command) -> tuple[tuple[DeviceRow, bool], list[Any]]:
                device, created, events = await device_service.register(ctx, command)
                return (device, created), events

            device, created = await app.bus.call(f"api:device-import:{uuid.uuid4().hex}", work)
            report.append(ImportRowOut(row=number, status="created" if created else "exists", device_id=device.id, reason=None))
        except DomainError as err:
            report.append(ImportRowOut(row=number, status="error", device_id=None, reason=err.code))
        except (IntegrityError, StaleDataError):
            report.append(ImportRowOut(row=number, status="error", device_id=None, reason="concurrent_change: import the row again"))
    return ImportOut(rows=report, created=sum(r.status == "created" for r in report), errors=sum(r.status == "error" for r in report))


# --- QR codes ------------------------------------------------------------------------------------------


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/devices/{device_id}/qr", response_class=Response, dependencies=[needs("devices:read")], responses={**PNG, **NOT_FOUND, **CONFLICT, **INVALID})
async def device_qr(device_id: IdPath, request: Request, app: ServiceDep, who: PrincipalDep) -> Response:
    """The device's sticker as PNG: the code (the customer bot's deep link, else the customer's web page) and its label."""
    async with app.sessions() as session, session.begin():
        store = Store(session)
        device = await _visible(store, who, device_id)
        if not device.active:
            raise HTTPException(status.HTTP_409_CONFLICT, "device_already_retired")
        [label] = await device_labels(app, store, [device], [], _base(request))
    return _png(qr.code_png(label))


@router.get("/device-sites/{site_id}/qr", response_class=Response, dependencies=[needs("devices:read")], responses={**PNG, **NOT_FOUND, **INVALID})
async def site_qr(site_id: IdPath, request: Request, app: ServiceDep, who: PrincipalDep) -> Response:
    """A site's (or an area's) sticker for shared equipment: scanning it lists the devices there."""
    async with app.sessions() as session, session.begin():
        store = Store(session)
        site = await _visible_site(store, who, site_id)
        [label] = await device_labels(app, store, [], [site], _base(request))
    return _png(qr.code_png(label))


class RenewedOut(BaseModel):
    code: CodeOut


@router.post("/devices/{device_id}/qr/renew", response_model=RenewedOut, dependencies=[needs("devices:write")], responses={**NOT_FOUND, **CONFLICT, **INVALID})
async def renew_device_qr(device_id: IdPath, request: Request, app: ServiceDep, who: PrincipalDep) -> RenewedOut:
    """Revoke the device's code (a lost or copied sticker stops working at once) and make a new one to print."""
    return await _renew(app, request, who, DEVICE, device_id)


@router.post("/device-sites/{site_id}/qr/renew", response_model=RenewedOut, dependencies=[needs("devices:write")], responses={**NOT_FOUND, **INVALID})
async def renew_site_qr(site_id: IdPath, request: Request, app: ServiceDep, who: PrincipalDep) -> RenewedOut:
    """Revoke the site's code and make a new one to print."""
    return await _renew(app, request, who, SITE, site_id)


async def _renew(app: Service, request: Request, who: Principal, purpose: str, subject_id: int) -> RenewedOut:
    async with app.sessions() as session:
        store = Store(session)
        await (_visible(store, who, subject_id) if purpose == DEVICE else _visible_site(store, who, subject_id))
    try:
        await app.bus.run(f"api:qr-renew:{uuid.uuid4().hex}", c.RenewDeviceCode(purpose, subject_id))
    except DomainError as err:
        raise _refusal(err) from err
    async with app.sessions() as session, session.begin():
        token = await DeviceStore(Store(session)).code(purpose, subject_id, app.clock.now())
    return RenewedOut(code=code_links(app, token, _base(request)))


@router.get(
    "/device-sheets", response_class=Response, dependencies=[needs("devices:read")],
    responses={200: {"content": {"application/pdf": {}, "image/png": {}, "text/html": {}}, "description": "the A4 sheet"},
               **NOT_FOUND, **INVALID},
)
async def sheet(
    request: Request, app: ServiceDep, who: PrincipalDep,
    customer_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None, site_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    format: Annotated[Literal["pdf", "png", "html"], Query(description="pdf: every page; png: one page; html: a printable page")] = "pdf",
    page: Annotated[int, Query(ge=1, le=qr.MAX_LABELS, description="png only: which page")] = 1,
) -> Response:
    """A4 stickers (12 a page) for every active device of a site (with the site's own code first) or of a customer."""
    if (customer_id is None) == (site_id is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give customer_id or site_id")
    async with app.sessions() as session, session.begin():
        store = Store(session)
        codes = DeviceStore(store)
        if site_id is not None:
            site = await _visible_site(store, who, site_id)
            sites, devices = [site], await codes.at_site(site.id)
        else:
            assert customer_id is not None
            devices = await codes.of_customer(customer_id, limit=qr.MAX_LABELS)
            places = await codes.sites(d.site_id for d in devices)
            devices = [d for d in devices if who.sees(places[d.site_id].region if d.site_id in places else None)]
            sites = []
        if not devices and not sites:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no_devices")
        labels = await device_labels(app, store, devices, sites, _base(request))
    try:
        if format == "html":
            return HTMLResponse(qr.sheet_html(labels, title="QR"), headers={"Content-Security-Policy": SHEET_CSP, "Cache-Control": "no-store"})
        if format == "png":
            return _png(qr.sheet_png(labels, page))
        return Response(qr.sheet_pdf(labels), media_type="application/pdf", headers={"Cache-Control": "no-store"})
    except ValueError as err:
        return JSONResponse({"detail": str(err)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
