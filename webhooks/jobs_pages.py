"""The back office's jobs: a filtered, paged list with a CSV export, and one job's page with its visits, timeline and
evidence (answers, photos, problems, signature, rating, what people wrote) and the dispatcher's actions that fit its state."""

from __future__ import annotations

import csv
import html
import io
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from PIL import Image, UnidentifiedImageError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from conversations.i18n import catalog, translate
from domain import callbacks as cb
from domain import closing, lifecycle
from domain import commands as c
from domain.errors import DomainError
from domain.model import MAX_ID, Visit
from services import backoffice, evidence
from services.device_views import DeviceFile, files_of_job
from storage.fees import BillRow, FeeStore
from storage import job_search as search
from storage.callbacks import CallbackStore
from storage.repository import Store
from storage.signatures import SignatureView, signatures_of
from services.accounts import SignedIn
from webhooks.signin import HEADERS, Page, PageRefused, SignedInDep, language_of, require_session
from webhooks.staff_pages import Staff, StaffPage, bounded_int, read_staff_form

router = APIRouter(include_in_schema=False)

LIST_PATH = "/jobs"
EXPORT_PATH = "/jobs/export.csv"
THUMB_EDGE = 320  # pixels: the longer side of a thumbnail on the job page
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
MAX_REASON = 500
MAX_FIELD = 100
CSV_INJECTION = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula
ACTIONS = ("close", "reopen", "cancel_visit", "reschedule", "acknowledge", "resend_callback")
MOVABLE = ("created", "booked", "accepted")  # visits a dispatcher may give another time (not started)
# refusals a dispatcher meets on this page, in words; any other code is shown as it is beside a general sentence
KNOWN_REFUSALS = ("job_work_under_way", "job_already_closed", "job_not_closed", "reason_required", "visit_under_way", "slot_invalid",
                  "slot_too_soon", "slot_before_dependency", "book_dependency_first", "illegal_transition", "exception_already_acknowledged",
                  "concurrent_change")


def _app(request: Request) -> Any:
    return request.app.state.container


# --- reading the list's filters -------------------------------------------------------------------------


class BadFilter(Exception):
    """A filter that cannot be read: the page answers 400 naming it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _text(raw: str | None, limit: int = MAX_FIELD) -> str | None:
    if raw is None or not raw.strip():
        return None
    if len(raw) > limit or any(not ch.isprintable() for ch in raw):
        return ""  # a caller turns this into a refusal naming the field
    return raw.strip()


def _day(raw: str | None, name: str) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise BadFilter(name) from None


def read_filters(request: Request, regions: frozenset[str] | None, tz: Any) -> tuple[search.JobFilter, dict[str, str]]:
    """The list's filters from the query string, checked; also the values as given, to fill the form and the links.
    ``BadFilter`` names the first one that is wrong."""
    query = request.query_params
    kept: dict[str, str] = {}

    def field(name: str, limit: int = MAX_FIELD) -> str | None:
        value = _text(query.get(name), limit)
        if value == "":
            raise BadFilter(name)
        if value is not None:
            kept[name] = value
        return value

    status = field("status")
    if status is not None and status not in search.JOB_STATUSES:
        raise BadFilter("status")
    region, source, text = field("region"), field("source", 60), field("q", search.MAX_TEXT)
    numbers: dict[str, int | None] = {}
    for name in ("technician", "customer"):
        raw = query.get(name)
        numbers[name] = bounded_int(raw, low=1, high=MAX_ID)
        if raw and numbers[name] is None:
            raise BadFilter(name)
        if numbers[name] is not None:
            kept[name] = str(numbers[name])
    first = _day(query.get("day") or query.get("from"), "from")
    last = _day(query.get("day") or query.get("to"), "to")
    if first and last and last < first:
        raise BadFilter("to")
    if first:
        kept["from"] = first.isoformat()
    if last:
        kept["to"] = last.isoformat()
    wanted = search.JobFilter(
        regions=regions, status=status, region=region, source=source, text=text,
        technician_id=numbers["technician"], customer_id=numbers["customer"],
        slot_from=datetime.combine(first, datetime.min.time(), tz) if first else None,
        slot_until=datetime.combine(last + timedelta(days=1), datetime.min.time(), tz) if last else None,
    )
    return wanted, kept


def _refuse_filter(page: StaffPage, bad: BadFilter) -> Response:
    return page.refuse(400, "jobs.bad_filter", back=LIST_PATH, name=translate(f"jobs.filter.{bad.name}", page.language)).response


# --- formatting -----------------------------------------------------------------------------------------------


def _when(value: datetime | None, tz: Any) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""


def _span(start: datetime | None, end: datetime | None, tz: Any) -> str:
    if start is None:
        return ""
    return f"{_when(start, tz)}–{end.astimezone(tz).strftime('%H:%M')}" if end else _when(start, tz)


JOB_BADGES = {"open": "", "done": "ok", "cancelled": "muted"}
VISIT_BADGES = {"completed": "ok", "confirmed": "ok", "cancelled": "muted", "on_hold": "bad", "return_needed": "warn",
                "created": "warn", "en_route": "", "on_site": "", "in_progress": ""}


def _badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{text}</span>' if tone else f'<span class="badge">{text}</span>'


def _job_status(page: StaffPage, status: str) -> str:
    return _badge(page.tr(f"jobs.status.{status}"), JOB_BADGES.get(status, ""))


def _visit_status(page: StaffPage, status: str) -> str:
    return _badge(page.tr(f"status.{status}"), VISIT_BADGES.get(status, ""))


def event_label(event_type: str, language: str) -> str:
    """A timeline event in words; an event newer than the catalogs shows its name rather than nothing."""
    key = f"jobs.event.{event_type}"
    return translate(key, language) if key in catalog("en") else event_type


def _event_details(data: dict[str, Any], tz: Any, technicians: dict[int, str]) -> str:
    """A few of an event's facts in a line: times in the shop's time zone, technicians by name."""
    shown = []
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value) == "":
            continue
        if name == "technician_id" and isinstance(value, int):
            shown.append(technicians.get(value, f"#{value}"))
            continue
        if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
            try:
                value = _when(datetime.fromisoformat(value), tz)
            except ValueError:
                pass
        shown.append(f"{name}: {value}")
        if len(shown) == 4:
            break
    text = " · ".join(shown)
    return text if len(text) <= 160 else text[:159] + "…"


# --- the list -----------------------------------------------------------------------------------------------------


@router.get(LIST_PATH)
async def jobs_list(request: Request, who: Staff) -> Response:
    app = _app(request)
    page = StaffPage(request, who)
    tz = app.policy.tz
    try:
        wanted, kept = read_filters(request, who.principal.regions, tz)
    except BadFilter as bad:
        return _refuse_filter(page, bad)
    limit = bounded_int(request.query_params.get("limit"), low=1, high=search.MAX_PAGE, default=search.DEFAULT_PAGE)
    before = bounded_int(request.query_params.get("before"), low=1, high=MAX_ID)
    if limit is None or (request.query_params.get("before") and before is None):
        return _refuse_filter(page, BadFilter("limit" if limit is None else "before"))
    async with app.sessions() as session:
        found = await search.search_jobs(session, wanted, limit=limit, before=before)
        choices = await search.filter_choices(session, who.principal.regions)
    body = _filter_form(page, kept, choices) + _job_table(page, found, tz, kept, limit, before)
    return page.respond(translate("jobs.title", page.language), body, active=LIST_PATH)


def _options(selected: str | None, pairs: list[tuple[str, str]], anything: str) -> str:
    out = [f'<option value="">{anything}</option>']
    for value, label in pairs:
        mark = " selected" if value == selected else ""
        out.append(f'<option value="{html.escape(value)}"{mark}>{html.escape(label)}</option>')
    return "".join(out)


def _filter_form(page: StaffPage, kept: dict[str, str], choices: search.FilterChoices) -> str:
    tr = page.tr
    anything = tr("jobs.filter.any")
    statuses = [(s, translate(f"jobs.status.{s}", page.language)) for s in search.JOB_STATUSES]
    regions = [(r, r) for r in choices.regions]
    if kept.get("region") and kept["region"] not in choices.regions:
        regions.append((kept["region"], kept["region"]))
    technicians = [(str(i), name) for i, name in choices.technicians]
    sources = [(s, s) for s in choices.sources]
    customer = (f'<input type="hidden" name="customer" value="{html.escape(kept["customer"])}">'
                f'<span class="note">{tr("jobs.filter.customer_on", customer=kept["customer"])}</span>') if "customer" in kept else ""
    export = f'{EXPORT_PATH}?{urlencode(kept)}' if kept else EXPORT_PATH
    return f"""<form class="toolbar card" method="get" action="{LIST_PATH}" role="search">
<label>{tr("jobs.filter.q")}<input type="search" name="q" maxlength="{search.MAX_TEXT}" value="{html.escape(kept.get("q", ""))}"
 placeholder="{tr("jobs.filter.q_hint")}"></label>
<label>{tr("jobs.filter.status")}<select name="status">{_options(kept.get("status"), statuses, anything)}</select></label>
<label>{tr("jobs.filter.region")}<select name="region">{_options(kept.get("region"), regions, anything)}</select></label>
<label>{tr("jobs.filter.from")}<input type="date" name="from" value="{html.escape(kept.get("from", ""))}"></label>
<label>{tr("jobs.filter.to")}<input type="date" name="to" value="{html.escape(kept.get("to", ""))}"></label>
<label>{tr("jobs.filter.technician")}<select name="technician">{_options(kept.get("technician"), technicians, anything)}</select></label>
<label>{tr("jobs.filter.source")}<select name="source">{_options(kept.get("source"), sources, anything)}</select></label>
{customer}
<button type="submit">{tr("jobs.filter.apply")}</button>
<a class="button secondary" href="{LIST_PATH}">{tr("jobs.filter.clear")}</a>
<a class="button secondary" href="{html.escape(export)}" download>{tr("jobs.export")}</a>
</form>"""


def _visit_cell(page: StaffPage, visits: tuple[search.VisitLine, ...], tz: Any) -> str:
    parts = []
    for v in visits:
        who = f" · {html.escape(v.technician)}" if v.technician else ""
        slot = f' <span class="note">{_span(v.slot_start, v.slot_end, tz)}</span>' if v.slot_start else ""
        parts.append(f"<div>{page.tr(f'kind.{v.kind}')} {_visit_status(page, v.status)}{who}{slot}</div>")
    return "".join(parts)


def _job_table(page: StaffPage, found: search.JobPage, tz: Any, kept: dict[str, str], limit: int, before: int | None) -> str:
    tr = page.tr
    if not found.rows:
        return (f'<div class="card"><p>{tr("jobs.empty")}</p><p><a href="{LIST_PATH}">{tr("jobs.filter.clear")}</a></p></div>')
    rows = []
    for job in found.rows:
        rows.append(
            f'<tr><td><a href="/jobs/{job.id}">#{job.id}</a><div class="note">{html.escape(job.source)} · {html.escape(job.external_ref)}</div></td>'
            f"<td>{_job_status(page, job.status)}{' ' + _badge(tr('jobs.urgent'), 'bad') if job.priority == 'urgent' else ''}</td>"
            f'<td>{html.escape(job.customer_name)}<div class="note">{html.escape(job.customer_phone)}</div></td>'
            f'<td>{html.escape(job.address)}<div class="note">{html.escape(job.region)}</div></td>'
            f"<td>{html.escape(job.product_name)}</td>"
            f"<td>{_visit_cell(page, job.visits, tz)}</td>"
            f'<td class="note">{_when(job.created_at, tz)}</td></tr>'
        )
    paging = []
    if before is not None:
        first = {k: v for k, v in kept.items()}
        if limit != search.DEFAULT_PAGE:
            first["limit"] = str(limit)
        paging.append(f'<a class="button secondary" href="{LIST_PATH}?{html.escape(urlencode(first))}">{tr("jobs.first_page")}</a>')
    if found.next_before is not None:
        following = {**kept, "before": str(found.next_before)}
        if limit != search.DEFAULT_PAGE:
            following["limit"] = str(limit)
        paging.append(f'<a class="button" rel="next" href="{LIST_PATH}?{html.escape(urlencode(following))}">{tr("jobs.next_page")}</a>')
    header = "".join(f'<th scope="col">{tr(k)}</th>' for k in (
        "jobs.col.job", "jobs.col.status", "jobs.col.customer", "jobs.col.address", "jobs.col.product", "jobs.col.visits", "jobs.col.created"))
    return (f'<div class="scroll"><table class="data"><caption class="sr-only">{tr("jobs.title")}</caption><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>'
            f'<p class="toolbar" style="margin-top:1rem">{"".join(paging)}<span class="note">{tr("jobs.shown", count=len(found.rows))}</span></p>')


# --- CSV export ---------------------------------------------------------------------------------------------


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_INJECTION) else text


CSV_COLUMNS = ("job", "source", "external_ref", "status", "region", "priority", "created", "customer", "phone", "address", "product", "visits")


def _csv_rows(rows: tuple[search.JobRow, ...], tz: Any, language: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for job in rows:
        visits = "; ".join(
            " ".join(filter(None, (translate(f"kind.{v.kind}", language), translate(f"status.{v.status}", language), v.technician,
                                   _span(v.slot_start, v.slot_end, tz))))
            for v in job.visits
        )
        writer.writerow([csv_cell(value) for value in (
            job.id, job.source, job.external_ref, translate(f"jobs.status.{job.status}", language), job.region, job.priority,
            _when(job.created_at, tz), job.customer_name, job.customer_phone, job.address, job.product_name, visits)])
    return out.getvalue()


@router.get(EXPORT_PATH)
async def jobs_export(request: Request, who: Staff) -> Response:
    """The filtered list as CSV (UTF-8 with a byte order mark, so spreadsheets read Chinese right), streamed in batches."""
    app = _app(request)
    page = StaffPage(request, who)
    tz = app.policy.tz
    try:
        wanted, _kept = read_filters(request, who.principal.regions, tz)
    except BadFilter as bad:
        return _refuse_filter(page, bad)
    language = page.language

    async def lines() -> AsyncIterator[str]:
        header = io.StringIO()
        csv.writer(header).writerow([translate(f"jobs.csv.{name}", language) for name in CSV_COLUMNS])
        yield "\ufeff" + header.getvalue()
        async for rows in search.export_batches(app.sessions, wanted):
            yield _csv_rows(rows, tz, language)

    stamp = app.clock.now().astimezone(tz).strftime("%Y%m%d-%H%M")
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="jobs-{stamp}.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)


# --- one job ------------------------------------------------------------------------------------------------


async def _visible_job(request: Request, page: StaffPage, raw_id: str) -> search.JobHead:
    """The job named in the path, if it exists and is in the viewer's regions; a 400 or 404 page otherwise (one answer
    for "no such job" and "not yours", so a dispatcher cannot learn which jobs other regions have)."""
    job_id = bounded_int(raw_id, low=1, high=MAX_ID)
    if job_id is None:
        raise page.refuse(400, "jobs.bad_id", back=LIST_PATH)
    async with _app(request).sessions() as session:
        head = await search.job_head(session, job_id)
    if head is None or not who_sees(page, head.region):
        raise page.refuse(404, "jobs.not_found", back=LIST_PATH)
    return head


def who_sees(page: StaffPage, region: str) -> bool:
    return page.who.principal.sees(region)


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, request: Request, who: Staff) -> Response:
    app = _app(request)
    page = StaffPage(request, who)
    head = await _visible_job(request, page, job_id)
    now = app.clock.now()
    async with app.sessions() as session, session.begin():  # signing photo links may create the signing key once
        store = Store(session)
        details = await backoffice.job_details(store, head.id)
        found = await evidence.job_evidence(store, head.id, now)
        visits = await store.visits_of_job(head.id)
        prompts = await search.template_prompts(session, {(v.kind, head.product_category) for v in visits})
        signatures = await signatures_of(store, [v.id for v in visits if v.id is not None])
        named = {e["data"].get("technician_id") for e in details["timeline"] if isinstance(e["data"], dict)}
        technicians = await search.technician_names(session, {i for i in named if isinstance(i, int) and not isinstance(i, bool)})
        parked = await CallbackStore(store).callbacks(state="parked", job_id=head.id) if page.can("jobs:write") else []
        # the bill(s) and the device's history, each for people whose role reads them (domain/access.py ROLE_SCOPES)
        bills = await FeeStore(store).bills_of_job(head.id) if page.can("fees:read") else None
        device_files = await files_of_job(store, head.id) if page.can("devices:read") else []
    tz = app.policy.tz
    notice = ""
    done = request.query_params.get("done")
    if done in ACTIONS:
        notice = f'<p class="notice" role="status">{page.tr(f"jobs.done.{done}")}</p>'
    sections = [
        notice,
        _summary(page, head, tz),
        _actions(page, head, visits, parked, found["exceptions"], now, app.policy) if page.can("jobs:write") else "",
        _visits(page, details["visits"], signatures, tz),
        _bills(page, bills, tz) if bills is not None else "",
        _devices(page, device_files, tz),
        _answers(page, head, details["visits"], found["checklist_answers"], prompts, tz),
        _photos(page, head.id, found["photos"], tz),
        _exceptions(page, head.id, found["exceptions"], tz),
        _ratings(page, found["ratings"], tz),
        _messages(page, head.id, found["messages"], tz),
        _timeline(page, details["timeline"], tz, technicians),
        f'<p><a href="{LIST_PATH}">{page.tr("jobs.back_to_list")}</a></p>',
    ]
    title = translate("jobs.job_title", page.language, {"id": head.id})
    return page.respond(title, "".join(sections), active=LIST_PATH)


def _summary(page: StaffPage, head: search.JobHead, tz: Any) -> str:
    tr = page.tr
    rows = [
        (tr("jobs.col.status"), _job_status(page, head.status) + (" " + _badge(tr("jobs.urgent"), "bad") if head.priority == "urgent" else "")),
        (tr("jobs.field.order"), f"{html.escape(head.source)} · {html.escape(head.external_ref)}"),
        (tr("jobs.col.customer"), f'{html.escape(head.customer_name)} · <a href="tel:{html.escape(head.customer_phone)}">'
                                  f'{html.escape(head.customer_phone)}</a> · <a href="{LIST_PATH}?customer={head.customer_id}">{tr("jobs.other_jobs")}</a>'),
        (tr("jobs.col.address"), f"{html.escape(head.address)} ({html.escape(head.region)})"),
        (tr("jobs.col.product"), html.escape(" · ".join(filter(None, (head.product_name, head.product_category, head.brand))))),
        (tr("jobs.col.created"), _when(head.created_at, tz)),
    ]
    if head.notes:
        rows.append((tr("jobs.field.notes"), html.escape(head.notes)))
    items = [i for i in head.items if i.get("name") or i.get("sku")]
    if items:
        listed = "".join(f"<li>{html.escape(str(i.get('name') or i.get('sku')))} × {html.escape(str(i.get('quantity', i.get('qty', 1))))}</li>"
                         for i in items[:50])
        rows.append((tr("jobs.field.items"), f"<ul>{listed}</ul>"))
    cells = "".join(f'<tr><th scope="row">{label}</th><td>{value}</td></tr>' for label, value in rows)
    return f'<section class="card" aria-labelledby="summary"><h2 id="summary">{tr("jobs.section.summary")}</h2><table class="data">{cells}</table></section>'


def _windows(now: datetime, policy: Any) -> list[tuple[datetime, datetime]]:
    """The shop's appointment windows still ahead within the booking horizon: what a visit may be moved to (the
    handler checks the same rule again)."""
    today = now.astimezone(policy.tz).date()
    spans = []
    for offset in range(policy.booking_days + 1):
        day = today + timedelta(days=offset)
        for window in policy.windows:
            start, end = datetime.combine(day, window.start, policy.tz), datetime.combine(day, window.end, policy.tz)
            if start > now:
                spans.append((start, end))
    return spans


def _actions(page: StaffPage, head: search.JobHead, visits: list[Visit], parked: list[Any], exceptions: list[dict[str, Any]],
             now: datetime, policy: Any) -> str:
    """The forms a dispatcher may use on this job now: each posts one command to the bus, as the group chat's buttons do."""
    tr = page.tr
    target = f"/jobs/{head.id}/actions"

    def form(action: str, inner: str, label: str, *, danger: bool = False) -> str:
        kind = ' class="danger"' if danger else ""
        return (f'<form method="post" action="{target}" class="toolbar">{page.csrf_field()}<input type="hidden" name="action" value="{action}">'
                f'{inner}<button type="submit"{kind}>{label}</button></form>')

    def reason(action: str) -> str:
        return (f'<label>{tr("jobs.action.reason")}<input type="text" name="reason" required maxlength="{MAX_REASON}" '
                f'id="reason-{action}"></label>')

    parts = []
    if head.status in closing.CLOSED:
        parts.append(form("reopen", reason("reopen"), tr("jobs.action.reopen")))
    else:
        if not any(v.state in closing.UNDER_WAY for v in visits):
            parts.append(form("close", reason("close"), tr("jobs.action.close"), danger=True))
        else:
            parts.append(f'<p class="note">{tr("jobs.action.close_later")}</p>')
        windows = _windows(now, policy)
        for visit in visits:
            label = f"{translate(f'kind.{visit.kind}', page.language)} #{visit.id}"
            hidden = f'<input type="hidden" name="visit_id" value="{visit.id}">'
            if visit.status in MOVABLE and windows:
                options = "".join(f'<option value="{s.isoformat()}|{e.isoformat()}">{_span(s, e, policy.tz)}</option>' for s, e in windows)
                parts.append(form("reschedule", hidden + f'<label>{tr("jobs.action.new_time", visit=label)}<select name="window">{options}</select></label>',
                                  tr("jobs.action.reschedule")))
            if lifecycle.allowed(visit, "cancel") and visit.status not in ("on_hold",):
                parts.append(form("cancel_visit", hidden + f'<span>{html.escape(label)}</span>', tr("jobs.action.cancel_visit"), danger=True))
    if page.who.principal.dispatcher_id is not None:
        for report in exceptions:
            if report["status"] == "open":
                parts.append(form("acknowledge", f'<input type="hidden" name="exception_id" value="{report["id"]}">'
                                  f'<span>{tr("jobs.exception_label", id=report["id"])}</span>', tr("jobs.action.acknowledge")))
    for row in parked:
        parts.append(form("resend_callback", f'<input type="hidden" name="callback_id" value="{row["id"]}">'
                          f'<span>{tr("jobs.callback_parked", id=row["id"])}</span>', tr("jobs.action.resend_callback")))
    body = "".join(parts) or f'<p class="note">{tr("jobs.no_actions")}</p>'
    return f'<section class="card" aria-labelledby="actions"><h2 id="actions">{tr("jobs.section.actions")}</h2>{body}</section>'


def _visits(page: StaffPage, visits: list[dict[str, Any]], signatures: dict[int, SignatureView], tz: Any) -> str:
    tr = page.tr
    rows = []
    for v in visits:
        people = [v["technician"]["name"]] if v["technician"] and v["technician"]["name"] else []
        people += [m["name"] for m in v["crew"] if m["name"]]
        facts = []
        if v["checkin_distance_m"] is not None:
            facts.append(tr("jobs.visit.checkin", metres=round(v["checkin_distance_m"])))
        if v["late_minutes"]:
            facts.append(tr("jobs.visit.late", minutes=v["late_minutes"]))
        if v["return_reason"]:
            facts.append(tr("jobs.visit.return", reason=v["return_reason"]))
        if v["fault_category"] or v["repair_method"]:
            facts.append(html.escape(" · ".join(filter(None, (v["fault_category"], v["repair_method"])))))
        rows.append(
            f'<tr><td>#{v["id"]} {tr("kind." + v["kind"])}</td><td>{_visit_status(page, v["status"])}</td>'
            f'<td>{html.escape(", ".join(people)) or tr("jobs.nobody")}</td><td>{_span(v["slot_start"], v["slot_end"], tz)}</td>'
            f'<td>{"<br>".join(facts)}</td><td>{_signature(page, signatures.get(v["id"]), tz)}</td></tr>'
        )
    header = "".join(f'<th scope="col">{tr(k)}</th>' for k in (
        "jobs.col.visit", "jobs.col.status", "jobs.col.technician", "jobs.col.slot", "jobs.col.facts", "jobs.col.signature"))
    return (f'<section class="card" aria-labelledby="visits"><h2 id="visits">{tr("jobs.section.visits")}</h2>'
            f'<div class="scroll"><table class="data"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>')


def _bills(page: StaffPage, bills: list[BillRow], tz: Any) -> str:
    """Each billed visit's bill (issue 14 part 6): its lines, total, what was paid and is still owed, and the payments."""
    tr = page.tr
    if not bills:
        body = f'<p class="note">{tr("jobpage.bill.none")}</p>'
    else:
        blocks = []
        for bill in bills:
            priced = bill.status == "priced"
            state = _badge(tr("jobpage.bill.unpriced"), "warn") if not priced else (
                _badge(tr("jobpage.bill.paid_up"), "ok") if bill.outstanding.amount <= 0 else _badge(tr("jobpage.bill.owed"), "bad"))
            lines = "".join(
                f'<tr><td>{tr("jobpage.bill.kind." + ("part" if line.kind == "part" else "labour"))}</td><td>{_bill_words(page, line.description, "kind.")}</td>'
                f'<td>{line.quantity} {_bill_words(page, line.unit, "jobpage.bill.unit.")}</td><td>{html.escape(line.unit_price.text())}</td>'
                f'<td style="text-align:right">{html.escape(line.amount.text())}</td></tr>'
                for line in bill.lines)
            header = "".join(f'<th scope="col">{tr(k)}</th>' for k in (
                "jobpage.bill.col.kind", "jobpage.bill.col.what", "jobpage.bill.col.quantity", "jobpage.bill.col.unit_price", "jobpage.bill.col.amount"))
            sums = [(tr("jobpage.bill.total"), bill.total.text()), (tr("jobpage.bill.paid"), bill.paid.text())]
            if priced:
                sums.append((tr("jobpage.bill.outstanding"), bill.outstanding.text()))
            foot = "".join(f'<tr><th scope="row" colspan="4">{label}</th><td style="text-align:right"><strong>{html.escape(value)}</strong></td></tr>'
                           for label, value in sums)
            paid = "".join(
                f'<li>{_when(p.recorded_at, tz)} · {html.escape(p.amount.text())} · {_bill_words(page, p.method, "jobpage.bill.method.")}'
                f'{" · " + html.escape(p.reference) if p.reference else ""} <span class="note">({html.escape(p.recorded_by)})</span></li>'
                for p in bill.payments)
            payments = f'<h4>{tr("jobpage.bill.payments")}</h4><ul>{paid}</ul>' if paid else f'<p class="note">{tr("jobpage.bill.no_payments")}</p>'
            blocks.append(
                f'<h3>{tr("jobpage.bill.title", id=bill.id, visit=bill.visit_id)} {state}</h3>'
                f'<div class="scroll"><table class="data"><thead><tr>{header}</tr></thead><tbody>{lines}</tbody>'
                f'<tfoot>{foot}</tfoot></table></div>{payments}')
        body = "".join(blocks)
    return f'<section class="card" aria-labelledby="bills"><h2 id="bills">{tr("jobpage.section.bills")}</h2>{body}</section>'


def _bill_words(page: StaffPage, word: str, prefix: str) -> str:
    """A bill's stored word (a service kind, a unit, a payment method) in the page's language where the catalog has it;
    a part's own unit or a shop's own wording as it is."""
    return page.tr(prefix + word) if prefix + word in catalog("en") else html.escape(word)


def _devices(page: StaffPage, files: list[DeviceFile], tz: Any) -> str:
    """The device(s) the job is for and their history: the record, then every visit with what it left (issue 14 part 1)."""
    if not files:
        return ""  # a job for no device on file: nothing to show
    tr = page.tr
    blocks = []
    for file in files:
        d = file.device
        facts = [
            (tr("jobpage.device.product"), " · ".join(filter(None, (d.product, d.category, d.brand, d.model)))),
            (tr("jobpage.device.serial"), d.serial or "-"),
            (tr("jobpage.device.where"), " · ".join(filter(None, (d.location, d.site))) or "-"),
            (tr("jobpage.device.installed"), d.installed_on.isoformat() if d.installed_on else "-"),
            (tr("jobpage.device.warranty"), d.warranty_until.isoformat() if d.warranty_until else "-"),
        ]
        cells = "".join(f'<tr><th scope="row">{label}</th><td>{html.escape(value)}</td></tr>' for label, value in facts)
        rows = []
        for r in reversed(file.visits):  # the latest first
            said = []
            if r.outcome:
                said.append(tr("jobpage.device.outcome", outcome=translate(f"device.outcome.{r.outcome}", page.language)))
            if r.fault or r.method:
                said.append(tr("jobpage.device.fault", fault=r.fault or "-", method=r.method or "-"))
            if r.parts:
                said.append(tr("jobpage.device.parts", parts=", ".join(r.parts)))
            if r.answers:
                said.append(html.escape("; ".join(f"{key}: {value}" for key, value in r.answers)))
            thumbs = "".join(_thumb(page, r.job_id, pid, tr("jobs.photo.other", id=pid)) for pid in r.photo_ids[:6])
            rows.append(
                f'<tr><td>{_when(r.day, tz) or "-"}</td><td><a href="/jobs/{r.job_id}">{tr("jobs.job_title", id=r.job_id)}</a> · {tr("kind." + r.kind)} #{r.visit_id}</td>'
                f'<td>{_visit_status(page, r.status)}</td><td>{"<br>".join(said)}<div class="toolbar">{thumbs}</div></td></tr>')
        header = "".join(f'<th scope="col">{tr(k)}</th>' for k in ("jobs.col.when", "jobs.col.visit", "jobs.col.status", "jobs.col.facts"))
        history = (f'<div class="scroll"><table class="data"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
                   if rows else f'<p class="note">{tr("jobpage.device.no_visits")}</p>')
        blocks.append(f'<h3>{html.escape(d.label)} {_badge(tr("jobpage.device.status." + ("active" if file.status == "active" else "retired")), "")}</h3>'
                      f'<table class="data">{cells}</table><h4>{tr("jobpage.device.history")}</h4>{history}')
    return f'<section class="card" aria-labelledby="devices"><h2 id="devices">{tr("jobpage.section.devices")}</h2>{"".join(blocks)}</section>'


def _signature(page: StaffPage, view: SignatureView | None, tz: Any) -> str:
    """The visit's signature captured on the technician's phone (issue 12 part 6), or why there is none."""
    if view is None:
        return f'<span class="note">{page.tr("jobs.signature.none")}</span>'
    stage = page.tr(f"jobs.signature.stage.{view.stage}")
    when = f'<div class="note">{stage} · {_when(view.captured_at, tz)}</div>'
    image = view.data_url()
    if image is None:
        return f'<span class="badge warn">{page.tr("jobs.signature.skipped")}</span> {html.escape(view.skip_reason or "")}{when}'
    alt = page.tr("jobs.signature.alt", visit=view.visit_id)
    return (f'<img src="{image}" alt="{alt}" style="max-width:12rem;height:auto;background:#fff;border:1px solid var(--line);'
            f'border-radius:.3rem">{when}')


def _photo_url(job_id: int, photo_id: int, thumb: bool = False) -> str:
    return f"/jobs/{job_id}/photos/{photo_id}" + ("?size=thumb" if thumb else "")


def _thumb(page: StaffPage, job_id: int, photo_id: int, caption: str) -> str:
    return (f'<a href="{_photo_url(job_id, photo_id)}" target="_blank" rel="noopener"><img src="{_photo_url(job_id, photo_id, True)}" '
            f'alt="{html.escape(caption)}" loading="lazy" width="160" height="120" style="object-fit:cover;border-radius:.3rem;'
            f'border:1px solid var(--line);background:#eaeef2"></a>')


def _answers(page: StaffPage, head: search.JobHead, visits: list[dict[str, Any]], answers: list[dict[str, Any]],
             prompts: dict[tuple[str, str], dict[str, Any]], tz: Any) -> str:
    tr = page.tr
    kinds = {v["id"]: v["kind"] for v in visits}
    rows = []
    for a in answers:
        step = prompts.get((kinds.get(a["visit_id"], ""), head.product_category), {}).get(a["step"], {})
        label = translate("=lang", page.language, step.get("prompt") or {}) or a["step"]
        value = _thumb(page, head.id, a["photo_id"], label) if a["photo_id"] else html.escape(_answer_value(page, a["value"]))
        rows.append(f'<tr><td>#{a["visit_id"]}</td><td>{html.escape(label)}</td><td>{value}</td><td class="note">{_when(a["answered_at"], tz)}</td></tr>')
    if not rows:
        body = f'<p class="note">{tr("jobs.answers.none")}</p>'
    else:
        header = "".join(f'<th scope="col">{tr(k)}</th>' for k in ("jobs.col.visit", "jobs.col.step", "jobs.col.answer", "jobs.col.when"))
        body = f'<div class="scroll"><table class="data"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    return f'<section class="card" aria-labelledby="answers"><h2 id="answers">{tr("jobs.section.answers")}</h2>{body}</section>'


def _answer_value(page: StaffPage, value: str) -> str:
    if value in ("yes", "no"):
        return translate(f"jobs.answer.{value}", page.language)
    return value


def _photo_key(purpose: str) -> str:
    key = f"jobs.photo.{purpose}"
    return key if key in catalog("en") else "jobs.photo.other"  # a purpose newer than this page


def _photos(page: StaffPage, job_id: int, photos: list[dict[str, Any]], tz: Any) -> str:
    tr = page.tr
    if not photos:
        body = f'<p class="note">{tr("jobs.photos.none")}</p>'
    else:
        figures = "".join(
            f'<figure style="margin:0">{_thumb(page, job_id, p["id"], translate(_photo_key(p["purpose"]), page.language, {"id": p["id"]}))}'
            f'<figcaption class="note">{tr(_photo_key(p["purpose"]), id=p["id"])}'
            f'{" · #" + str(p["visit_id"]) if p["visit_id"] else ""}<br>{_when(p["created_at"], tz)}</figcaption></figure>'
            for p in photos
        )
        body = f'<div class="toolbar" style="align-items:flex-start">{figures}</div>'
    return f'<section class="card" aria-labelledby="photos"><h2 id="photos">{tr("jobs.section.photos")}</h2>{body}</section>'


def _exceptions(page: StaffPage, job_id: int, reports: list[dict[str, Any]], tz: Any) -> str:
    tr = page.tr
    if not reports:
        body = f'<p class="note">{tr("jobs.exceptions.none")}</p>'
    else:
        items = []
        for r in reports:
            tone = "bad" if r["status"] == "open" else "ok" if r["status"] == "resolved" else "warn"
            handled = tr(f"jobs.exception.{r['status']}") + (f" · {html.escape(r['resolution'])}" if r["resolution"] else "")
            photos = "".join(_thumb(page, job_id, pid, tr("jobs.photo.exception", id=pid)) for pid in r["photo_ids"])
            items.append(f'<li><strong>{tr("reason." + r["reason"])}</strong> · #{r["visit_id"]} · {_badge(handled, tone)} '
                         f'<span class="note">{_when(r["created_at"], tz)}</span>'
                         f'{"<div>" + html.escape(r["note"]) + "</div>" if r["note"] else ""}<div class="toolbar">{photos}</div></li>')
        body = f'<ul>{"".join(items)}</ul>'
    return f'<section class="card" aria-labelledby="exceptions"><h2 id="exceptions">{tr("jobs.section.exceptions")}</h2>{body}</section>'


def _ratings(page: StaffPage, ratings: list[dict[str, Any]], tz: Any) -> str:
    tr = page.tr
    if not ratings:
        body = f'<p class="note">{tr("jobs.ratings.none")}</p>'
    else:
        body = "".join(
            f'<p><span aria-label="{tr("jobs.rating_of", score=r["score"])}">{"★" * r["score"]}{"☆" * (5 - r["score"])}</span> '
            f'{_badge(str(r["score"]) + "/5", "bad" if r["score"] <= 2 else "ok" if r["score"] >= 4 else "warn")}'
            f'{" · #" + str(r["visit_id"]) if r["visit_id"] else ""} <span class="note">{_when(r["created_at"], tz)}</span>'
            f'{"<br>“" + html.escape(r["comment"]) + "”" if r["comment"] else ""}</p>'
            for r in ratings
        )
    return f'<section class="card" aria-labelledby="ratings"><h2 id="ratings">{tr("jobs.section.ratings")}</h2>{body}</section>'


def _messages(page: StaffPage, job_id: int, messages: list[dict[str, Any]], tz: Any) -> str:
    tr = page.tr
    if not messages:
        body = f'<p class="note">{tr("jobs.messages.none")}</p>'
    else:
        rows = "".join(
            f'<tr><td>{tr("jobs.author." + m["author"])}</td><td>{html.escape(m["text"])}'
            f'{_thumb(page, job_id, m["photo_id"], tr("jobs.photo.relay", id=m["photo_id"])) if m["photo_id"] else ""}</td>'
            f'<td class="note">{_when(m["created_at"], tz)}</td></tr>'
            for m in messages[-100:]  # the latest hundred: a long thread is an excerpt here, the API has it all
        )
        header = "".join(f'<th scope="col">{tr(k)}</th>' for k in ("jobs.col.author", "jobs.col.text", "jobs.col.when"))
        body = f'<div class="scroll"><table class="data"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div>'
    return f'<section class="card" aria-labelledby="messages"><h2 id="messages">{tr("jobs.section.messages")}</h2>{body}</section>'


def _timeline(page: StaffPage, events: list[dict[str, Any]], tz: Any, technicians: dict[int, str]) -> str:
    tr = page.tr
    rows = "".join(
        f'<tr><td class="note">{_when(e["occurred_at"], tz)}</td><td>{html.escape(event_label(e["type"], page.language))}'
        f'{" · #" + str(e["visit_id"]) if e["visit_id"] else ""}</td><td class="note">{html.escape(_event_details(e["data"] or {}, tz, technicians))}</td></tr>'
        for e in events
    )
    header = "".join(f'<th scope="col">{tr(k)}</th>' for k in ("jobs.col.when", "jobs.col.event", "jobs.col.details"))
    return (f'<section class="card" aria-labelledby="timeline"><h2 id="timeline">{tr("jobs.section.timeline")}</h2>'
            f'<div class="scroll"><table class="data"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div></section>')


# --- photos, for people allowed to see the job -----------------------------------------------------------------


def _thumbnail(path: FsPath) -> bytes:
    with Image.open(path) as image:
        image.draft("RGB", (THUMB_EDGE * 2, THUMB_EDGE * 2))  # JPEG: decode at a fraction of the size, far quicker
        image.thumbnail((THUMB_EDGE, THUMB_EDGE))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=80)
        return out.getvalue()


@router.get("/jobs/{job_id}/photos/{photo_id}")
async def job_photo(job_id: str, photo_id: str, request: Request, who: Staff) -> Response:
    """A photo of this job for a signed-in person who may see the job (a stranger is sent to sign in; a dispatcher of
    another region gets the same 404 as for a photo that does not exist); ``size=thumb`` for a small JPEG."""
    app = _app(request)
    page = StaffPage(request, who)
    head = await _visible_job(request, page, job_id)
    number = bounded_int(photo_id, low=1, high=MAX_ID)
    size = request.query_params.get("size", "full")
    if number is None or size not in ("full", "thumb"):
        raise page.refuse(400, "jobs.bad_photo", back=f"/jobs/{head.id}")
    async with app.sessions() as session:
        stored = await search.photo_of_job(session, head.id, number)
    root = app.web_uploads.media_dir.parent.resolve()  # the media directory every channel stores under
    path = FsPath(stored).resolve() if stored else None
    if path is None or not path.is_relative_to(root) or not path.is_file():
        raise page.refuse(404, "jobs.photo_not_found", back=f"/jobs/{head.id}")
    headers = {**HEADERS, "Content-Security-Policy": "default-src 'none'; sandbox"}
    if size == "thumb":
        try:
            small = await run_in_threadpool(_thumbnail, path)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            raise page.refuse(404, "jobs.photo_not_found", back=f"/jobs/{head.id}") from None
        return Response(small, media_type="image/jpeg", headers=headers)
    return FileResponse(path, media_type=PHOTO_TYPES.get(path.suffix.lower(), "application/octet-stream"), headers=headers)


# --- actions ----------------------------------------------------------------------------------------------------


def _window(raw: str) -> tuple[datetime, datetime] | None:
    start, _, end = raw.partition("|")
    try:
        begin, finish = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        return None
    return (begin, finish) if begin.tzinfo and finish.tzinfo else None


async def writer(request: Request, who: SignedInDep) -> SignedIn:
    """A form's sender: signed in with jobs:write. Without a session a POST is answered 401 with the way to sign in
    (a redirect would drop what was posted and look like success); without the scope, 403."""
    if who is None:
        page = Page(language_of(request), status=401)
        back = html.escape(f"/signin?next={request.url.path.removesuffix('/actions')}")
        body = f'<p class="error" role="alert">{page.tr("jobs.signed_out")}</p><p><a href="{back}">{page.tr("access.back_to_signin")}</a></p>'
        raise PageRefused(page.respond("access.signin_title", body))
    return await require_session("jobs:write")(request, who)


@router.post("/jobs/{job_id}/actions")
async def job_action(job_id: str, request: Request, who: Annotated[SignedIn, Depends(writer)]) -> Response:
    """One dispatcher action on the job, as a command on the bus (the same rules as the group chat and the API);
    back to the job's page with a notice, or a page saying why not."""
    app = _app(request)
    page = StaffPage(request, who)
    head = await _visible_job(request, page, job_id)
    back = f"/jobs/{head.id}"
    form = await read_staff_form(request, page)
    action = form.get("action", "")
    if action not in ACTIONS:
        raise page.refuse(400, "jobs.bad_action", back=back)
    principal = who.principal
    dispatcher = principal.dispatcher_id
    command: c.Command
    if action in ("close", "reopen"):
        reason = " ".join(form.get("reason", "").split())
        if not reason or len(reason) > MAX_REASON:
            raise page.refuse(400, "jobs.bad_reason", back=back)
        command = c.CloseJob(head.id, reason, dispatcher) if action == "close" else c.ReopenJob(head.id, reason, dispatcher)
    elif action in ("cancel_visit", "reschedule"):
        visit_id = bounded_int(form.get("visit_id"), low=1, high=MAX_ID)
        async with app.sessions() as session:
            ours = visit_id is not None and visit_id in {v.id for v in await Store(session).visits_of_job(head.id)}
        if not ours or visit_id is None:
            raise page.refuse(400, "jobs.bad_visit", back=back)
        if action == "cancel_visit":
            command = c.CancelVisitAsDispatcher(visit_id, dispatcher)
        else:
            window = _window(form.get("window", "")[:120])
            if window is None:
                raise page.refuse(400, "jobs.bad_window", back=back)
            command = c.MoveVisit(visit_id, window[0], window[1], dispatcher)
    elif action == "acknowledge":
        exception_id = bounded_int(form.get("exception_id"), low=1, high=MAX_ID)
        async with app.sessions() as session:
            found = await evidence.job_evidence(Store(session), head.id, app.clock.now()) if exception_id else {"exceptions": []}
        if exception_id is None or exception_id not in {r["id"] for r in found["exceptions"]}:
            raise page.refuse(400, "jobs.bad_exception", back=back)
        if dispatcher is None:
            raise page.refuse(403, "jobs.needs_dispatcher", back=back)
        command = c.AcknowledgeException(exception_id, dispatcher)
    else:  # resend_callback: as the Resend button of the group's "callback parked" alert
        callback_id = bounded_int(form.get("callback_id"), low=1, high=MAX_ID)
        async with app.sessions() as session:
            row = await CallbackStore(Store(session)).callback(callback_id) if callback_id else None
        if callback_id is None or row is None or row["chat_id"] != cb.chat_of(head.id):
            raise page.refuse(400, "jobs.bad_callback", back=back)
        command = c.ResendCallback(callback_id)
    try:
        await app.bus.run(f"page:{action}:{head.id}:{uuid.uuid4().hex}", command)
    except DomainError as err:
        raise _refused(page, err.code, back, err.params) from err
    except (IntegrityError, StaleDataError) as exc:
        raise _refused(page, "concurrent_change", back) from exc
    return RedirectResponse(f"{back}?done={action}", status_code=303, headers=HEADERS)


def _refused(page: StaffPage, code: str, back: str, params: dict[str, Any] | None = None) -> Exception:
    """409 with the reason in words: this page's own, else the chats' text for the domain's code, else the code."""
    if code in KNOWN_REFUSALS:
        return page.refuse(409, f"jobs.refused.{code}", back=back)
    if f"error.{code}" in catalog("en"):
        return page.refuse(409, f"error.{code}", back=back, **(params or {}))
    return page.refuse(409, "jobs.refused", back=back, reason=code)
