"""The back office's devices (issue 14 parts 1-2) for a signed-in person with ``devices:read``: a list found by owner,
phone, serial or model; one device's page (its record, its life so far, every repair and visit with links to the jobs,
its QR sticker); the sticker as PNG and the printable sheets per customer or site. The stickers are drawn by the same
code as the API's (webhooks.devices_api.device_labels, services.qr): only the way in differs (a session, not a token).

Every record is in a region: a device's is its site's. A person scoped to regions gets the same 404 for a device of
another region as for one that does not exist, and a sheet only of the devices in their regions."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from conversations.i18n import catalog, translate
from domain.devices import under_warranty
from domain.model import MAX_ID, Customer
from services import qr
from services.device_views import device_file
from storage import device_search as search
from storage.devices import DeviceRow, DeviceStore, HistoryRow, SiteRow
from storage.repository import Store
from services.accounts import SignedIn
from webhooks.devices_api import SHEET_CSP, device_labels
from webhooks.jobs_pages import fault_tree, device_history
from webhooks.signin import HEADERS
from webhooks.staff_pages import StaffPage, bounded_int, staff_session

router = APIRouter(include_in_schema=False)

LIST_PATH = "/devices"
SHEET_PATH = "/devices/sheet"
SCOPE = "devices:read"
DeviceReader = Annotated[SignedIn, staff_session(SCOPE)]
SHEET_FORMATS = {"html", "pdf", "png"}


def _app(request: Request) -> Any:
    return request.app.state.container


def _when(value: datetime | None, tz: Any) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""


def _badge(text: str, tone: str = "") -> str:
    return f'<span class="badge {tone}">{text}</span>'


def _status(page: StaffPage, status: str) -> str:
    active = status == "active"
    return _badge(page.tr("jobpage.device.status." + ("active" if active else "retired")), "ok" if active else "muted")


def _warranty(page: StaffPage, until: Any, today: Any) -> str:
    """The warranty's end with its year, and whether it still runs."""
    if until is None:
        return "-"
    running = under_warranty(until, today)
    return f'{until.isoformat()} {_badge(page.tr("devices.warranty." + ("on" if running else "over")), "ok" if running else "muted")}'


# --- the list ---------------------------------------------------------------------------------------------------


class BadFilter(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def read_filter(request: Request, regions: frozenset[str] | None) -> tuple[search.DeviceFilter, dict[str, str], int, int | None]:
    """The list's search from the query string, checked (``BadFilter`` names the first field that is wrong); also the
    values as given, to fill the form and the paging links; the page size and the keyset."""
    query = request.query_params
    kept: dict[str, str] = {}
    text = query.get("q")
    if text is not None and text.strip():
        if len(text) > search.MAX_TEXT or any(not ch.isprintable() for ch in text):
            raise BadFilter("q")
        kept["q"] = text = text.strip()
    else:
        text = None
    status = query.get("status") or None
    if status is not None:
        if status not in search.DEVICE_STATUSES:
            raise BadFilter("status")
        kept["status"] = status
    numbers: dict[str, int | None] = {}
    for name in ("customer", "site"):
        raw = query.get(name)
        numbers[name] = bounded_int(raw, low=1, high=MAX_ID)
        if raw and numbers[name] is None:
            raise BadFilter(name)
        if numbers[name] is not None:
            kept[name] = str(numbers[name])
    limit = bounded_int(query.get("limit"), low=1, high=search.MAX_PAGE, default=search.DEFAULT_PAGE)
    if limit is None:
        raise BadFilter("limit")
    before = bounded_int(query.get("before"), low=1, high=MAX_ID)
    if query.get("before") and before is None:
        raise BadFilter("before")
    wanted = search.DeviceFilter(regions=regions, text=text, customer_id=numbers["customer"], site_id=numbers["site"], status=status)
    return wanted, kept, limit, before


@router.get(LIST_PATH, response_class=HTMLResponse)
async def devices_list(request: Request, who: DeviceReader) -> Response:
    app = _app(request)
    page = StaffPage(request, who)
    try:
        wanted, kept, limit, before = read_filter(request, who.principal.regions)
    except BadFilter as bad:
        name = translate(f"devices.filter.{bad.name}", page.language)
        return page.refuse(400, "devices.bad_filter", back=LIST_PATH, name=name).response
    async with app.sessions() as session:
        found = await search.search_devices(session, wanted, limit=limit, before=before)
    today = app.clock.now().astimezone(app.policy.tz).date()
    body = _search_form(page, kept) + _device_table(page, found, kept, limit, before, today)
    return page.respond(translate("devices.title", page.language), body, active=LIST_PATH)


def _search_form(page: StaffPage, kept: dict[str, str]) -> str:
    tr = page.tr
    statuses = "".join(
        f'<option value="{s}"{" selected" if kept.get("status") == s else ""}>{tr("jobpage.device.status." + s)}</option>'
        for s in search.DEVICE_STATUSES)
    narrowed = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(kept[name])}">'
        f'<span class="note">{tr(f"devices.filter.{name}_on", **{name: kept[name]})}</span>'
        for name in ("customer", "site") if name in kept)
    return f"""<form class="toolbar card" method="get" action="{LIST_PATH}" role="search">
<label>{tr("devices.filter.q")}<input type="search" name="q" maxlength="{search.MAX_TEXT}" value="{html.escape(kept.get("q", ""))}"
 placeholder="{tr("devices.filter.q_hint")}"></label>
<label>{tr("devices.filter.status")}<select name="status"><option value="">{tr("jobs.filter.any")}</option>{statuses}</select></label>
{narrowed}
<button type="submit">{tr("jobs.filter.apply")}</button>
<a class="button secondary" href="{LIST_PATH}">{tr("jobs.filter.clear")}</a>
</form>"""


def _device_table(page: StaffPage, found: search.DevicePage, kept: dict[str, str], limit: int, before: int | None, today: Any) -> str:
    tr = page.tr
    if not found.rows:
        return f'<div class="card"><p>{tr("devices.empty")}</p><p><a href="{LIST_PATH}">{tr("jobs.filter.clear")}</a></p></div>'
    rows = []
    for d in found.rows:
        model = " ".join(p for p in (d.brand, d.model) if p)
        where = " · ".join(p for p in (d.location, d.site_name, d.address) if p)
        rows.append(
            f'<tr><td><a href="/devices/{d.id}">#{d.id} {html.escape(d.product_name)}</a>'
            f'<div class="note">{html.escape(" · ".join(p for p in (d.product_category, model) if p))}</div></td>'
            f'<td><a href="{LIST_PATH}?customer={d.customer_id}">{html.escape(d.customer_name)}</a>'
            f'<div class="note">{html.escape(d.customer_phone)}</div></td>'
            f'<td>{html.escape(d.serial or "-")}</td>'
            f'<td>{html.escape(where)}<div class="note">{html.escape(d.region)}</div></td>'
            f'<td>{_warranty(page, d.warranty_until, today)}</td><td>{_status(page, d.status)}</td></tr>')
    paging = []
    sized = {"limit": str(limit)} if limit != search.DEFAULT_PAGE else {}
    if before is not None:
        paging.append(f'<a class="button secondary" href="{LIST_PATH}?{html.escape(urlencode({**kept, **sized}))}">{tr("jobs.first_page")}</a>')
    if found.next_before is not None:
        following = {**kept, "before": str(found.next_before), **sized}
        paging.append(f'<a class="button" rel="next" href="{LIST_PATH}?{html.escape(urlencode(following))}">{tr("jobs.next_page")}</a>')
    if "customer" in kept:
        paging.append(f'<a class="button secondary" href="{SHEET_PATH}?customer={kept["customer"]}" target="_blank" rel="noopener">'
                      f'{tr("devices.qr_customer_sheet")}</a>')
    header = "".join(f'<th scope="col">{tr(k)}</th>' for k in (
        "devices.col.device", "devices.col.owner", "jobpage.device.serial", "devices.col.where", "jobpage.device.warranty", "jobs.col.status"))
    return (f'<div class="scroll"><table class="data"><caption class="sr-only">{tr("devices.title")}</caption><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>'
            f'<p class="toolbar" style="margin-top:1rem">{"".join(paging)}<span class="note">{tr("devices.shown", count=len(found.rows))}</span></p>')


# --- one device ---------------------------------------------------------------------------------------------------


async def _visible_device(request: Request, page: StaffPage, raw_id: str, store: Store) -> tuple[DeviceRow, SiteRow]:
    """The device named in the path if it exists and its site is in the viewer's regions; a 400 or 404 page otherwise
    (one answer for "no such device" and "not yours")."""
    device_id = bounded_int(raw_id, low=1, high=MAX_ID)
    if device_id is None:
        raise page.refuse(400, "devices.bad_id", back=LIST_PATH)
    codes = DeviceStore(store)
    device = await codes.device(device_id)
    site = await codes.site(device.site_id) if device is not None else None
    if device is None or site is None or not page.who.principal.sees(site.region):
        raise page.refuse(404, "devices.not_found", back=LIST_PATH)
    return device, site


@router.get(SHEET_PATH)
async def device_sheet(request: Request, who: DeviceReader) -> Response:
    """The A4 sticker sheet of a customer's devices or of a site (its own code first), as a printable page (the default),
    a PDF, or one page as PNG; only the devices in the viewer's regions. Registered before ``/devices/{id}``."""
    app = _app(request)
    page = StaffPage(request, who)
    query = request.query_params
    customer_id = bounded_int(query.get("customer"), low=1, high=MAX_ID)
    site_id = bounded_int(query.get("site"), low=1, high=MAX_ID)
    form = query.get("format", "html")
    sheet_page = bounded_int(query.get("page"), low=1, high=qr.MAX_LABELS, default=1)
    given = [name for name in ("customer", "site") if query.get(name)]
    if (len(given) != 1 or (customer_id is None and site_id is None) or form not in SHEET_FORMATS or sheet_page is None):
        raise page.refuse(400, "devices.bad_sheet", back=LIST_PATH)
    async with app.sessions() as session, session.begin():  # the first read of a code makes it: a write
        store = Store(session)
        codes = DeviceStore(store)
        sites: list[SiteRow] = []
        if site_id is not None:
            site = await codes.site(site_id)
            if site is None or not who.principal.sees(site.region):
                raise page.refuse(404, "devices.sheet_empty", back=LIST_PATH)
            sites, devices = [site], await codes.at_site(site.id)
        else:
            assert customer_id is not None
            devices = await codes.of_customer(customer_id, limit=qr.MAX_LABELS)
            places = await codes.sites(d.site_id for d in devices)
            devices = [d for d in devices if d.site_id in places and who.principal.sees(places[d.site_id].region)]
        if not devices and not sites:
            raise page.refuse(404, "devices.sheet_empty", back=LIST_PATH)
        labels = await device_labels(app, store, devices, sites, str(request.base_url))
    headers = {**HEADERS, "Cache-Control": "no-store"}
    try:
        if form == "html":
            title = translate("devices.sheet_title", page.language)
            return HTMLResponse(qr.sheet_html(labels, title=title), headers={**headers, "Content-Security-Policy": SHEET_CSP})
        if form == "png":
            return Response(qr.sheet_png(labels, sheet_page), media_type="image/png", headers=headers)
        return Response(qr.sheet_pdf(labels), media_type="application/pdf", headers=headers)
    except ValueError as err:  # a page past the last, or more codes than a sheet takes
        raise page.refuse(400, "devices.sheet_too_big", back=LIST_PATH, reason=str(err)) from None


@router.get("/devices/{device_id}/qr.png")
async def device_qr(device_id: str, request: Request, who: DeviceReader) -> Response:
    """The device's sticker as PNG (its code and label), as the API's /api/v1/devices/{id}/qr draws it."""
    app = _app(request)
    page = StaffPage(request, who)
    async with app.sessions() as session, session.begin():
        store = Store(session)
        device, _site = await _visible_device(request, page, device_id, store)
        if not device.active:
            raise page.refuse(409, "devices.qr_retired", back=f"/devices/{device.id}")
        [label] = await device_labels(app, store, [device], [], str(request.base_url))
    return Response(qr.code_png(label), media_type="image/png", headers={**HEADERS, "Cache-Control": "no-store"})


@router.get("/devices/{device_id}", response_class=HTMLResponse)
async def device_page(device_id: str, request: Request, who: DeviceReader) -> Response:
    app = _app(request)
    page = StaffPage(request, who)
    async with app.sessions() as session:
        store = Store(session)
        device, site = await _visible_device(request, page, device_id, store)
        owner = await store.get(Customer, device.customer_id)
        file = await device_file(store, device.id)
        lines = await DeviceStore(store).history(device.id)
        tree = await fault_tree(store, device.product_category)
    tz = app.policy.tz
    today = app.clock.now().astimezone(tz).date()
    tr = page.tr
    sections = [
        _record(page, device, site, owner, today),
        f'<section class="card" aria-labelledby="history"><h2 id="history">{tr("devices.section.history")}</h2>'
        f'{device_history(page, file, tz, tree) if file is not None else ""}</section>',
        _timeline(page, lines, tz),
        _qr(page, device, site),
        f'<p><a href="{LIST_PATH}">{tr("devices.back")}</a></p>',
    ]
    title = translate("devices.device_title", page.language, {"id": device.id, "product": device.product_name})
    return page.respond(title, "".join(sections), active=LIST_PATH)


def _record(page: StaffPage, device: DeviceRow, site: SiteRow, owner: Customer | None, today: Any) -> str:
    tr = page.tr
    who = (f'{html.escape(owner.name)} · <a href="tel:{html.escape(owner.phone)}">{html.escape(owner.phone)}</a>' if owner is not None
           else f"#{device.customer_id}")
    links = [f'<a href="{LIST_PATH}?customer={device.customer_id}">{tr("devices.other_devices")}</a>']
    if page.can("jobs:read"):
        links.append(f'<a href="/jobs?customer={device.customer_id}">{tr("devices.jobs_of_customer")}</a>')
    place = " · ".join(p for p in (site.name, site.address_text) if p)
    rows = [
        (tr("devices.field.owner"), f'{who}<div class="note">{" · ".join(links)}</div>'),
        (tr("devices.field.site"), f"{html.escape(place)} ({html.escape(site.region)})"),
        (tr("jobpage.device.product"), html.escape(" · ".join(p for p in (device.product_name, device.product_category) if p))),
        (tr("devices.field.brand"), html.escape(device.brand or "-")),
        (tr("devices.field.model"), html.escape(device.model or "-")),
        (tr("jobpage.device.serial"), html.escape(device.serial or "-")),
        (tr("jobpage.device.installed"), device.installed_on.isoformat() if device.installed_on else "-"),
        (tr("jobpage.device.warranty"), _warranty(page, device.warranty_until, today)),
        (tr("devices.field.location"), html.escape(device.location or "-")),
        (tr("devices.field.status"), _status(page, device.status)),
    ]
    cells = "".join(f'<tr><th scope="row">{label}</th><td>{value}</td></tr>' for label, value in rows)
    return f'<section class="card" aria-labelledby="record"><h2 id="record">{tr("devices.section.record")}</h2><table class="data">{cells}</table></section>'


def _timeline(page: StaffPage, lines: list[HistoryRow], tz: Any) -> str:
    """The device's own timeline, the latest first: registered, repair requested, repaired, new QR code …"""
    tr = page.tr
    if not lines:
        body = f'<p class="note">{tr("devices.timeline.none")}</p>'
    else:
        rows = []
        for line in reversed(lines):
            key = f"device.event.{line.kind}"
            said = translate(key, page.language) if key in catalog("en") else line.kind  # a kind newer than the catalogs
            job = f' · <a href="/jobs/{line.job_id}">{tr("jobs.job_title", id=line.job_id)}</a>' if line.job_id else ""
            visit = f" · {tr('jobs.col.visit')} #{line.visit_id}" if line.visit_id else ""
            rows.append(f'<tr><td class="note">{_when(line.occurred_at, tz)}</td><td>{html.escape(said)}{job}{visit}</td></tr>')
        header = "".join(f'<th scope="col">{tr(k)}</th>' for k in ("jobs.col.when", "jobs.col.event"))
        body = f'<div class="scroll"><table class="data"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    return f'<section class="card" aria-labelledby="life"><h2 id="life">{tr("devices.section.timeline")}</h2>{body}</section>'


def _qr(page: StaffPage, device: DeviceRow, site: SiteRow) -> str:
    tr = page.tr
    sheets = (f'<p class="toolbar"><a class="button secondary" href="{SHEET_PATH}?customer={device.customer_id}" target="_blank" rel="noopener">'
              f'{tr("devices.qr_customer_sheet")}</a>'
              f'<a class="button secondary" href="{SHEET_PATH}?site={site.id}" target="_blank" rel="noopener">{tr("devices.qr_site_sheet")}</a>'
              f'<a class="button secondary" href="{SHEET_PATH}?customer={device.customer_id}&amp;format=pdf">{tr("devices.qr_pdf")}</a></p>')
    if not device.active:
        body = f'<p class="note">{tr("devices.qr_retired")}</p>'
    else:
        image = f"/devices/{device.id}/qr.png"
        body = (f'<p><img src="{image}" alt="{tr("devices.qr_alt", product=device.product_name)}" width="240" '
                f'style="height:auto;border:1px solid var(--line);border-radius:.3rem;background:#fff"></p>'
                f'<p class="note">{tr("devices.qr_hint")}</p><p><a href="{image}" download="device-{device.id}-qr.png">{tr("devices.qr_png")}</a></p>')
    return f'<section class="card" aria-labelledby="qr"><h2 id="qr">{tr("devices.section.qr")}</h2>{body}{sheets}</section>'
