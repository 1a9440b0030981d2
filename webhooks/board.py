"""The dispatch board (/board): one day per technician on a timeline, the queue of unassigned and at-risk visits, an offline
map, and the dispatcher's actions (assign, reassign, reschedule, cancel, re-plan) as the chat's commands on the bus."""

from __future__ import annotations

import functools
import html
import math
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from conversations.i18n import translate
from domain import commands as c
from domain import lifecycle
from domain.errors import DomainError
from domain.geo import haversine_m
from domain.model import MAX_ID, Job, Visit
from services import dispatching
from services.accounts import SignedIn
from services.context import HandlerContext
from services.replanning import queue_replan
from storage import board_view as bv
from storage.repository import Store
from webhooks.signin import HEADERS, Page, PageRefused, SignedInDep, language_of, require_session
from webhooks import review_pages
from webhooks.staff_pages import Staff, StaffPage, bounded_int, read_staff_form

router = APIRouter(include_in_schema=False)

PATH = "/board"
SCRIPT = FsPath(__file__).parent / "static" / "board.js"
DAYS_AROUND = 366  # how far from today a board may be opened, either way
ACTIONS = ("assign", "reschedule", "cancel", "replan")
MOVABLE = ("created", "booked", "accepted")  # visits a dispatcher may give another time (not started)
ASSIGNABLE = ("booked", "accepted", "en_route", "on_hold")  # lifecycle: offer or reassign  # visits that may get (another) technician from the board
KNOWN_REFUSALS = ("visit_under_way", "slot_invalid", "slot_too_soon", "slot_before_dependency", "book_dependency_first",
                  "illegal_transition", "concurrent_change")
STATUS_TONES = ("created", "booked", "accepted", "en_route", "on_site", "in_progress", "completed", "confirmed", "on_hold",
                "cancelled", "return_needed")
MAP_WIDTH = 400  # the SVG's own units: small enough that markers stay legible when a phone scales it down
MAP_MARGIN = 24

BOARD_STYLE = """
main{max-width:90rem}
.tl{min-width:44rem}
.tl-row{display:grid;grid-template-columns:9rem 1fr;align-items:stretch;border-bottom:1px solid var(--line)}
.tl-name{padding:.35rem .4rem;font-size:.9rem;overflow-wrap:anywhere}
.tl-track{position:relative;height:3.4rem;background-image:linear-gradient(to right,#eaeef2 1px,transparent 1px);
background-size:var(--hour) 100%}
.tl-axis{position:relative;height:1.3rem;font-size:.75rem;color:var(--muted)}
.tl-axis span{position:absolute;top:0;transform:translateX(-50%)}
.tl-block{position:absolute;top:.3rem;height:2rem;border-radius:.3rem;padding:0 .25rem;font-size:.75rem;line-height:2rem;overflow:hidden;
white-space:nowrap;text-decoration:none;border:1px solid rgba(0,0,0,.35);color:#111;min-width:.6rem}
.tl-actual{position:absolute;top:2.55rem;height:.45rem;border-radius:.2rem;background:#1f2328}
.tl-travel{position:absolute;top:1.2rem;height:0;border-top:2px dashed #8c959f}
.tl-now{position:absolute;top:0;bottom:0;border-left:2px solid var(--bad)}
.st-created,.st-booked{background:#fff8c5}.st-accepted{background:#ddf4ff}.st-en_route{background:#b6e3ff}
.st-on_site,.st-in_progress{background:#8dd3ff}.st-completed,.st-confirmed{background:#aceebb}
.st-on_hold{background:#ffcecb;border:2px solid #a40e26}.st-cancelled,.st-return_needed{background:#eaeef2;color:#57606a}
.risk{outline:3px solid #bf3989;outline-offset:1px}
.legend{display:flex;flex-wrap:wrap;gap:.4rem;font-size:.8rem;margin:.5rem 0}
.legend span{padding:.05rem .45rem;border-radius:.3rem;border:1px solid rgba(0,0,0,.25)}
.queue li{margin:.35rem 0}
.queue ul{padding-left:1.1rem;margin:.2rem 0}
svg.map{width:100%;height:auto;background:#f0f4f8;border:1px solid var(--line);border-radius:.4rem}
svg.map text{font:13px system-ui,sans-serif}
.board-grid{display:grid;gap:1rem;grid-template-columns:minmax(0,1fr) minmax(0,1fr)}
.choices li{margin:.5rem 0}
.conflict{color:var(--warn)}
.toolbar label.check{flex-direction:row;align-items:center;gap:.4rem;font-weight:400}
@media (max-width:48rem){.board-grid{grid-template-columns:1fr}.tl-row{grid-template-columns:6rem 1fr}.toolbar{gap:.4rem}}
"""


def _app(request: Request) -> Any:
    return request.app.state.container


@functools.lru_cache(maxsize=1024)
def label(key: str, language: str) -> str:
    """A catalog text without parameters, HTML-escaped; the catalogs do not change while serving, and a board of a
    thousand visits asks for the same few status and kind names thousands of times."""
    return html.escape(translate(key, language))


def _filled(key: str, language: str, **params: str) -> str:
    """A cached catalog text with plain string parameters filled in (not escaped: the caller escapes the whole)."""
    text = _template(key, language)
    for name, value in params.items():
        text = text.replace("{" + name + "}", value)
    return text


@functools.lru_cache(maxsize=256)
def _template(key: str, language: str) -> str:
    return translate(key, language)


# --- the day -------------------------------------------------------------------------------------------------


def _today(app: Any) -> date:
    return app.clock.now().astimezone(app.policy.tz).date()


def read_day(page: StaffPage, raw: str | None, today: date) -> date:
    """``?day=YYYY-MM-DD`` within a year of today (today when absent); a 400 page naming the rule otherwise."""
    if raw is None or raw == "":
        return today
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        raise page.refuse(400, "board.bad_day", back=PATH, days=DAYS_AROUND) from None
    if abs((day - today).days) > DAYS_AROUND:
        raise page.refuse(400, "board.bad_day", back=PATH, days=DAYS_AROUND)
    return day


def _bounds(day: date, tz: Any) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tz)
    return start, datetime.combine(day + timedelta(days=1), time(0), tz)


def _hm(value: datetime | None, tz: Any) -> str:
    if value is None:
        return ""
    local = value.astimezone(tz)
    return f"{local.hour:02d}:{local.minute:02d}"


def _board_link(day: date, **extra: str) -> str:
    return f"{PATH}?{urlencode({'day': day.isoformat(), **extra})}"


async def _load(app: Any, who: SignedIn, day: date) -> bv.BoardDay:
    start, end = _bounds(day, app.policy.tz)
    async with app.sessions() as session:
        return await bv.board_day(session, start, end, who.principal.regions)


# --- the page ------------------------------------------------------------------------------------------------


@router.get(PATH)
async def board_page(request: Request, who: Staff) -> Response:
    app = _app(request)
    page = StaffPage(request, who)
    today = _today(app)
    day = read_day(page, request.query_params.get("day"), today)
    board = await _load(app, who, day)
    tr = page.tr
    notice = ""
    done = request.query_params.get("done")
    if done in ACTIONS:
        notice = f'<p class="notice" role="status">{tr(f"board.done.{done}")}</p>'
    toolbar = (
        f'<nav class="toolbar" aria-label="{tr("board.days")}">'
        f'<a class="button secondary" href="{html.escape(_board_link(day - timedelta(days=1)))}" rel="prev">{tr("board.prev")}</a>'
        f'<a class="button secondary" href="{html.escape(_board_link(today))}"{" aria-current=date" if day == today else ""}>{tr("board.today")}</a>'
        f'<a class="button secondary" href="{html.escape(_board_link(day + timedelta(days=1)))}" rel="next">{tr("board.next")}</a>'
        f'<form method="get" action="{PATH}" class="toolbar" style="margin:0"><label>{tr("board.day")}'
        f'<input type="date" name="day" value="{day.isoformat()}" required></label><button type="submit" class="secondary">{tr("board.show")}</button></form>'
        f"{_replan_form(page, day, today, board)}</nav>"
    )
    live = live_html(page, app, board, day)
    waiting = len(await review_pages.pending(app, who.principal.regions))
    if waiting:  # orders of sources that want review: confirmed or rejected on their own page (webhooks/review_pages.py)
        toolbar += f'<p class="notice"><a href="{review_pages.PATH}">{tr("review.waiting", count=waiting)}</a></p>'
    body = (f"{notice}{toolbar}<div id=\"board-live\" data-day=\"{day.isoformat()}\" data-version=\"{html.escape(board.version)}\" "
            f'aria-live="polite">{live}</div>'
            f'<p id="board-stale" class="note" hidden>{tr("board.stale")} <a href="{html.escape(_board_link(day))}">{tr("board.reload")}</a></p>')
    title = translate("board.title", page.language, {"day": day.isoformat()})
    head = f"<style>{BOARD_STYLE}</style><script src=\"{PATH}/board.js\" defer></script>"
    return page.respond(title, body, active=PATH, head=head)


def _replan_form(page: StaffPage, day: date, today: date, board: bv.BoardDay) -> str:
    if not page.can("jobs:write") or day < today:
        return ""
    return (f'<form method="post" action="{PATH}/actions" style="margin:0">{page.csrf_field()}'
            f'<input type="hidden" name="action" value="replan"><input type="hidden" name="day" value="{day.isoformat()}">'
            f'<button type="submit">{page.tr("board.replan")}</button></form>')


def live_html(page: StaffPage, app: Any, board: bv.BoardDay, day: date) -> str:
    """What the poller redraws when something changed: the timeline, the queue and the map."""
    tz = app.policy.tz
    now = app.clock.now()
    return (f'<section class="card" aria-labelledby="tl-h"><h2 id="tl-h">{page.tr("board.timeline")}</h2>{_legend(page)}'
            f'<div class="scroll">{_timeline(page, board, day, tz, now)}</div></section>'
            f'<div class="board-grid"><section class="card queue" aria-labelledby="q-h"><h2 id="q-h">{page.tr("board.queue")}</h2>'
            f'{_queue(page, board, day, tz)}</section>'
            f'<section class="card" aria-labelledby="m-h"><h2 id="m-h">{page.tr("board.map")}</h2>{_map(page, board, day)}</section></div>')


def _legend(page: StaffPage) -> str:
    shown = ("booked", "accepted", "en_route", "in_progress", "completed", "on_hold", "cancelled")
    items = "".join(f'<span class="st-{s}">{page.tr(f"status.{s}")}</span>' for s in shown)
    return (f'<div class="legend" aria-label="{page.tr("board.legend")}">{items}<span class="risk">{page.tr("board.at_risk")}</span>'
            f'<span>{page.tr("board.legend_actual")}</span></div>')


def _hours(board: bv.BoardDay, day: date, tz: Any) -> tuple[int, int]:
    """The timeline's span in whole hours: the working day, widened to every visit of the board."""
    first, last = 8, 20
    for v in board.visits:
        if v.start is None:
            continue
        begin = v.start.astimezone(tz)
        finish = begin + timedelta(minutes=v.duration_minutes)
        if begin.date() == day:
            first = min(first, begin.hour)
        last = max(last, min(24, finish.hour + (1 if finish.minute else 0)) if finish.date() == day else 24)
    return first, last


def _timeline(page: StaffPage, board: bv.BoardDay, day: date, tz: Any, now: datetime) -> str:
    if not board.technicians and not board.visits:
        return f'<p>{page.tr("board.nobody")}</p>'
    first, last = _hours(board, day, tz)
    origin = datetime.combine(day, time(first), tz)
    span_minutes = (last - first) * 60

    def pct(moment: datetime) -> float:
        return max(0.0, min(100.0, (moment - origin).total_seconds() / 60 / span_minutes * 100))

    axis = "".join(f'<span style="left:{(h - first) / (last - first) * 100:.2f}%">{h:02d}</span>' for h in range(first, last, 2))
    hour_width = f"{100 / (last - first):.3f}%"
    now_line = f'<div class="tl-now" style="left:{pct(now):.2f}%" title="{page.tr("board.now")}"></div>' if origin <= now < origin + timedelta(minutes=span_minutes) else ""
    rows = [f'<div class="tl-row" aria-hidden="true"><div></div><div class="tl-axis">{axis}</div></div>']
    by_tech: dict[int | None, list[bv.BoardVisit]] = {}
    for v in board.visits:
        if v.status == "cancelled":
            continue
        for person in {v.technician_id, *v.crew_ids}:
            by_tech.setdefault(person, []).append(v)
    names = {p.id: p for p in board.technicians}
    for person in board.technicians:
        rows.append(_row(page, person.name, person, by_tech.get(person.id, []), day, tz, pct, hour_width, now_line, names))
    unassigned = by_tech.get(None, [])
    if unassigned:
        rows.append(_row(page, translate("board.unassigned", page.language), None, unassigned, day, tz, pct, hour_width, now_line, names))
    return f'<div class="tl" role="list" aria-label="{page.tr("board.timeline")}">{"".join(rows)}</div>'


def _row(page: StaffPage, label: str, person: bv.BoardTechnician | None, visits: list[bv.BoardVisit], day: date, tz: Any, pct: Any,
         hour_width: str, now_line: str, names: dict[int, bv.BoardTechnician]) -> str:
    parts = []
    ordered = sorted((v for v in visits if v.start is not None), key=lambda v: (v.start, v.id))
    previous: bv.BoardVisit | None = None
    for v in ordered:
        assert v.start is not None
        begin, end = v.start, v.start + timedelta(minutes=v.duration_minutes)
        if previous is not None and previous.start is not None and person is not None:
            gap_from = previous.start + timedelta(minutes=previous.duration_minutes)
            km = haversine_m(previous.lat, previous.lon, v.lat, v.lon) / 1000
            if begin > gap_from:
                title = _filled("board.travel", page.language, km=f"{km:.1f}", minutes=str(int((begin - gap_from).total_seconds() // 60)))
                parts.append(f'<div class="tl-travel" style="left:{pct(gap_from):.2f}%;width:{pct(begin) - pct(gap_from):.2f}%" '
                             f'title="{html.escape(title)}"></div>')
        left, width = pct(begin), max(0.6, pct(end) - pct(begin))
        planned = f"{_hm(begin, tz)}–{_hm(end, tz)}"
        actual = ""
        if v.checked_in_at:
            actual_end = v.completed_at or page_now(v, tz)
            actual_title = _filled("board.actual", page.language, start=_hm(v.checked_in_at, tz), end=_hm(v.completed_at, tz) or "…")
            actual = (f'<div class="tl-actual" style="left:{pct(v.checked_in_at):.2f}%;width:{max(0.4, pct(actual_end) - pct(v.checked_in_at)):.2f}%" '
                      f'title="{html.escape(actual_title)}"></div>')
        risk = " risk" if v.at_risk else ""
        title = " · ".join(filter(None, (
            f"#{v.id}", _template(f"kind.{v.kind}", page.language), _template(f"status.{v.status}", page.language),
            _filled("board.planned", page.language, span=planned),
            _filled("board.actual", page.language, start=_hm(v.checked_in_at, tz), end=_hm(v.completed_at, tz) or "…") if v.checked_in_at else "",
            v.customer, v.address)))
        parts.append(f'<a role="listitem" class="tl-block st-{v.status if v.status in STATUS_TONES else "booked"}{risk}" '
                     f'href="{html.escape(_visit_link(v.id, day))}" style="left:{left:.2f}%;width:{width:.2f}%" title="{html.escape(title)}" '
                     f'data-visit="{v.id}">#{v.id} {_hm(begin, tz)}</a>{actual}')
        previous = v
    duty = "" if person is None or person.on_duty else f' <span class="badge muted">{page.tr("board.off_duty")}</span>'
    count = f'<div class="note">{html.escape(_filled("board.count", page.language, count=str(len(ordered))))}</div>'
    return (f'<div class="tl-row" role="listitem"><div class="tl-name">{html.escape(label)}{duty}{count}</div>'
            f'<div class="tl-track" style="--hour:{hour_width}">{now_line}{"".join(parts)}</div></div>')


def page_now(visit: bv.BoardVisit, tz: Any) -> datetime:
    """Work under way with no completion yet: the actual bar runs to its planned end (a later redraw extends it)."""
    assert visit.checked_in_at is not None
    return max(visit.checked_in_at + timedelta(minutes=visit.duration_minutes), visit.checked_in_at)


def _visit_link(visit_id: int, day: date) -> str:
    return f"{PATH}/visits/{visit_id}?day={day.isoformat()}"  # an ISO date needs no quoting


def _queue(page: StaffPage, board: bv.BoardDay, day: date, tz: Any) -> str:
    tr = page.tr
    groups: dict[str, list[bv.BoardVisit]] = {"unassigned": [], "declined": [], "at_risk": [], "no_slot": []}
    for v in board.visits:
        if v.status in bv.FINISHED:
            continue
        if v.at_risk:
            groups["at_risk"].append(v)
        elif v.technician_id is None and v.declined:
            groups["declined"].append(v)
        elif v.technician_id is None:
            groups["unassigned"].append(v)
    groups["no_slot"] = list(board.unbooked)
    sections = []
    for name, items in groups.items():
        if not items:
            continue
        lines = "".join(f"<li>{_queue_line(page, v, day, tz)}</li>" for v in items)
        sections.append(f'<h3>{tr(f"board.queue.{name}")} <span class="badge">{len(items)}</span></h3><ul>{lines}</ul>')
    return "".join(sections) or f'<p>{tr("board.queue_empty")}</p>'


def _queue_line(page: StaffPage, v: bv.BoardVisit, day: date, tz: Any) -> str:
    tr = page.tr
    when = f"{_hm(v.slot_start, tz)}–{_hm(v.slot_end, tz)}" if v.slot_start else tr("board.no_time")
    return (f'<a href="{html.escape(_visit_link(v.id, day))}">#{v.id} {label(f"kind.{v.kind}", page.language)}</a> '
            f'<span class="badge st-{v.status if v.status in STATUS_TONES else "booked"}">{label(f"status.{v.status}", page.language)}</span> {when} · '
            f'{html.escape(v.customer)} · {html.escape(v.address)} {_badges(page, v)}')


def _badges(page: StaffPage, v: bv.BoardVisit) -> str:
    """Why a visit needs attention: urgency, an SLA tier reached, open problems, refusals, no time found."""
    tr = page.tr
    badges = []
    if v.urgent:
        badges.append(f'<span class="badge bad">{tr("jobs.urgent")}</span>')
    if v.sla_tier:
        badges.append(f'<span class="badge {"bad" if v.sla_tier >= 100 else "warn"}">{tr("board.sla", stage=translate(f"board.stage.{v.sla_stage}", page.language), tier=v.sla_tier)}</span>')
    for report_id, reason in v.open_reports:
        badges.append(f'<span class="badge bad">{tr("board.report", id=report_id, reason=translate(f"reason.{reason}", page.language))}</span>')
    if v.declined:
        badges.append(f'<span class="badge warn">{tr("board.declined", count=v.declined)}</span>')
    if v.no_slot_fits:
        badges.append(f'<span class="badge warn">{tr("board.no_slot_fits")}</span>')
    return " ".join(badges)


def _map(page: StaffPage, board: bv.BoardDay, day: date) -> str:
    """The day's visits and the technicians' last positions on an SVG of the points' bounding box (equirectangular,
    longitude scaled by the middle latitude's cosine): drawn here, so it needs nothing from the internet."""
    visits = [v for v in board.visits if v.status != "cancelled"]
    people = [p for p in board.technicians if p.last_lat is not None and p.last_lon is not None]
    points = [(v.lat, v.lon) for v in visits] + [(p.last_lat, p.last_lon) for p in people if p.last_lat is not None and p.last_lon is not None]
    if not points:
        return f'<p>{page.tr("board.map_empty")}</p>'
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    pad = 0.005  # about half a kilometre, so that one point is a map too
    south, north, west, east = south - pad, north + pad, west - pad, east + pad
    scale_x = math.cos(math.radians((south + north) / 2))
    span_x, span_y = (east - west) * scale_x, north - south
    inner = MAP_WIDTH - 2 * MAP_MARGIN
    height = int(max(200, min(400, inner * span_y / span_x + 2 * MAP_MARGIN)))
    factor = min(inner / span_x, (height - 2 * MAP_MARGIN) / span_y)

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return MAP_MARGIN + (lon - west) * scale_x * factor, height - MAP_MARGIN - (lat - south) * factor

    marks = []
    for v in visits:
        x, y = xy(v.lat, v.lon)
        label = f"#{v.id} {_template(f'status.{v.status}', page.language)} · {v.address}"
        marks.append(f'<a href="{html.escape(_visit_link(v.id, day))}" aria-label="{html.escape(label)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="8" '
                     f'class="st-{v.status if v.status in STATUS_TONES else "booked"}" style="fill:var(--c)" stroke="#1f2328" stroke-width="1.5">'
                     f'<title>{html.escape(label)}</title></circle></a>')
    for p in people:
        assert p.last_lat is not None and p.last_lon is not None
        x, y = xy(p.last_lat, p.last_lon)
        label = translate("board.position", page.language, {"name": p.name})
        marks.append(f'<g><rect x="{x - 7:.1f}" y="{y - 7:.1f}" width="14" height="14" fill="#0550ae" stroke="#fff" stroke-width="2">'
                     f'<title>{html.escape(label)}</title></rect><text x="{x + 9:.1f}" y="{y + 4:.1f}" fill="#0550ae">{html.escape(p.name)}</text></g>')
    colours = "".join(f".map .st-{s}{{--c:{c}}}" for s, c in (
        ("created", "#d4a72c"), ("booked", "#d4a72c"), ("accepted", "#54aeff"), ("en_route", "#218bff"), ("on_site", "#0969da"),
        ("in_progress", "#0969da"), ("completed", "#2da44e"), ("confirmed", "#2da44e"), ("on_hold", "#cf222e"), ("return_needed", "#8c959f")))
    return (f'<svg class="map" viewBox="0 0 {MAP_WIDTH} {height}" role="img" aria-label="{page.tr("board.map_label")}">'
            f"<style>{colours}</style>{''.join(marks)}</svg>"
            f'<p class="note">{page.tr("board.map_note")}</p>')


# --- live updates ---------------------------------------------------------------------------------------------


@router.get(f"{PATH}/changes")
async def board_changes(request: Request, who: Staff) -> Response:
    """Polled by the page: ``{"version"}`` alone when nothing changed since ``since`` (two aggregate reads), else also the
    redrawn timeline, queue and map as ``html``."""
    app = _app(request)
    page = StaffPage(request, who)
    day = read_day(page, request.query_params.get("day"), _today(app))
    since = request.query_params.get("since", "")[:40]
    async with app.sessions() as session:
        version = await bv.board_version(session)
    if version == since:
        return JSONResponse({"version": version, "changed": False}, headers=HEADERS)
    board = await _load(app, who, day)
    return JSONResponse({"version": board.version, "changed": True, "html": live_html(page, app, board, day)}, headers=HEADERS)


@router.get(f"{PATH}/board.js")
async def board_script() -> Response:
    return FileResponse(SCRIPT, media_type="text/javascript", headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


# --- one visit: what may be done with it ----------------------------------------------------------------------


async def _visible_visit(request: Request, page: StaffPage, raw_id: str, back: str) -> bv.BoardVisit:
    """The visit named in the path if it exists in the viewer's regions; 400 or 404 otherwise (one answer for "none" and
    "not yours")."""
    visit_id = bounded_int(raw_id, low=1, high=MAX_ID)
    if visit_id is None:
        raise page.refuse(400, "board.bad_visit", back=back)
    async with _app(request).sessions() as session:
        visit = await bv.visit_of_board(session, visit_id)
    if visit is None or not page.who.principal.sees(visit.region):
        raise page.refuse(404, "board.visit_not_found", back=back)
    return visit


async def _choices(app: Any, visit_id: int) -> list[Any]:
    """Everyone skilled for the visit, free ones first, with what an override would accept (the chat's own rule)."""
    async with app.sessions() as session:
        ctx = HandlerContext(Store(session), app.clock.now(), app.policy)
        visit = await ctx.store.get(Visit, visit_id)
        if visit is None or visit.slot_start is None:
            return []
        job = await ctx.store.load(Job, visit.job_id)
        return await dispatching.choices(ctx, visit, job)


def _conflict(page: StaffPage, choice: Any, tz: Any) -> str:
    if choice.conflicts:
        held = choice.conflicts[0]
        more = len(choice.conflicts) - 1
        return page.tr("board.conflict_busy", start=_hm(held.start, tz), end=_hm(held.end, tz), visit=held.visit_id, job=held.job_id,
                       more=f" +{more}" if more else "")
    return page.tr("board.conflict_off_shift" if choice.off_shift else "board.conflict_no_route")


def _windows(now: datetime, policy: Any, first: date) -> list[tuple[datetime, datetime]]:
    """The shop's appointment windows ahead from ``first`` within the booking horizon (the handler checks again)."""
    today = now.astimezone(policy.tz).date()
    spans = []
    for offset in range(policy.booking_days + 1):
        day = today + timedelta(days=offset)
        if day < first:
            continue
        for window in policy.windows:
            start, end = datetime.combine(day, window.start, policy.tz), datetime.combine(day, window.end, policy.tz)
            if start > now:
                spans.append((start, end))
    return spans


@router.get(f"{PATH}/visits/{{visit_id}}")
async def visit_page(visit_id: str, request: Request, who: Staff) -> Response:
    app = _app(request)
    page = StaffPage(request, who)
    day = read_day(page, request.query_params.get("day"), _today(app))
    back = _board_link(day)
    visit = await _visible_visit(request, page, visit_id, back)
    tz = app.policy.tz
    tr = page.tr
    facts = [
        (tr("jobs.col.status"), f'<span class="badge st-{visit.status if visit.status in STATUS_TONES else "booked"}">{tr(f"status.{visit.status}")}</span>'),
        (tr("board.col.job"), f'<a href="/jobs/{visit.job_id}">#{visit.job_id}</a> · {html.escape(visit.product)}'),
        (tr("jobs.col.customer"), html.escape(visit.customer)),
        (tr("jobs.col.address"), f"{html.escape(visit.address)} ({html.escape(visit.region)})"),
        (tr("jobs.col.slot"), f"{visit.slot_start.astimezone(tz):%Y-%m-%d} {_hm(visit.slot_start, tz)}–{_hm(visit.slot_end, tz)}" if visit.slot_start else tr("board.no_time")),
    ]
    if visit.start is not None:
        facts.append((tr("board.col.planned"), f"{_hm(visit.start, tz)}–{_hm(visit.start + timedelta(minutes=visit.duration_minutes), tz)}"))
    if visit.checked_in_at:
        facts.append((tr("board.col.actual"), f"{_hm(visit.checked_in_at, tz)}–{_hm(visit.completed_at, tz) or '…'}"))
    risks = _badges(page, visit)
    cells = "".join(f'<tr><th scope="row">{label}</th><td>{value}</td></tr>' for label, value in facts)
    sections = [f'<section class="card"><table class="data">{cells}</table>{f"<p>{risks}</p>" if risks else ""}</section>']
    if page.can("jobs:write"):
        sections.append(await _visit_actions(page, app, visit, day))
    sections.append(f'<p><a href="{html.escape(back)}">{tr("board.back")}</a></p>')
    title = translate("board.visit_title", page.language, {"id": visit.id, "kind": translate(f"kind.{visit.kind}", page.language)})
    return page.respond(title, "".join(sections), active=PATH, head=f"<style>{BOARD_STYLE}</style>")


def _form(page: StaffPage, action: str, visit_id: int, day: date, inner: str, label: str, *, danger: bool = False) -> str:
    kind = ' class="danger"' if danger else ""
    return (f'<form method="post" action="{PATH}/actions" class="toolbar">{page.csrf_field()}'
            f'<input type="hidden" name="action" value="{action}"><input type="hidden" name="visit_id" value="{visit_id}">'
            f'<input type="hidden" name="day" value="{day.isoformat()}">{inner}<button type="submit"{kind}>{label}</button></form>')


async def _visit_actions(page: StaffPage, app: Any, visit: bv.BoardVisit, day: date) -> str:
    tr = page.tr
    tz = app.policy.tz
    parts = []
    if visit.status in ASSIGNABLE and visit.slot_start is not None:
        choices = await _choices(app, visit.id)
        heading = tr("board.reassign_to" if visit.technician_id else "board.assign_to")
        items = []
        for choice in choices[:20]:
            hidden = f'<input type="hidden" name="technician_id" value="{choice.technician_id}">'
            if not choice.needs_override:
                items.append(f"<li>{_form(page, 'assign', visit.id, day, hidden + f'<span>{html.escape(choice.name)}</span>', tr('board.assign'))}</li>")
            else:
                box = (f'<span>{html.escape(choice.name)} — <span class="conflict">{_conflict(page, choice, tz)}</span></span>'
                       f'<label class="check"><input type="checkbox" name="force" value="1" required> {tr("board.accept_conflict")}</label>')
                items.append(f"<li>{_form(page, 'assign', visit.id, day, hidden + box, tr('board.assign_anyway'))}</li>")
        listed = f'<ul class="choices">{"".join(items)}</ul>' if items else f'<p>{tr("board.no_choices")}</p>'
        parts.append(f"<h2>{heading}</h2>{listed}")
    if visit.status in MOVABLE:
        windows = _windows(app.clock.now(), app.policy, app.clock.now().astimezone(tz).date())
        if windows:
            options = "".join(f'<option value="{s.isoformat()}|{e.isoformat()}">{s.astimezone(tz):%Y-%m-%d} {_hm(s, tz)}–{_hm(e, tz)}</option>'
                              for s, e in windows)
            parts.append(f"<h2>{tr('board.reschedule')}</h2>" + _form(
                page, "reschedule", visit.id, day, f'<label>{tr("board.new_time")}<select name="window">{options}</select></label>', tr("board.move")))
    if visit.status != "on_hold" and visit.status in {s.value for s in lifecycle.TRANSITIONS["cancel"][0]}:
        parts.append(f"<h2>{tr('board.cancel')}</h2>" + _form(
            page, "cancel", visit.id, day, f'<label class="check"><input type="checkbox" name="sure" value="1" required> {tr("board.cancel_sure")}</label>',
            tr("board.cancel_visit"), danger=True))
    if visit.open_reports:
        parts.append(f'<p class="note">{tr("board.reports_in_job")} <a href="/jobs/{visit.job_id}">{tr("board.open_job")}</a></p>')
    body = "".join(parts) or f'<p class="note">{tr("board.no_actions")}</p>'
    return f'<section class="card" aria-labelledby="act-h"><h2 id="act-h" class="sr-only">{tr("board.actions")}</h2>{body}</section>'


# --- actions ----------------------------------------------------------------------------------------------------


async def writer(request: Request, who: SignedInDep) -> SignedIn:
    """A form's sender: signed in with jobs:write. Without a session a POST is 401 with the way to sign in (a redirect
    would drop what was posted and look like success); without the scope (managers read only), 403."""
    if who is None:
        page = Page(language_of(request), status=401)
        body = (f'<p class="error" role="alert">{page.tr("board.signed_out")}</p>'
                f'<p><a href="/signin?next={PATH}">{page.tr("access.back_to_signin")}</a></p>')
        raise PageRefused(page.respond("access.signin_title", body))
    return await require_session("jobs:write")(request, who)


def _window(raw: str) -> tuple[datetime, datetime] | None:
    start, _, end = raw.partition("|")
    try:
        begin, finish = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        return None
    return (begin, finish) if begin.tzinfo and finish.tzinfo and begin < finish else None


@router.post(f"{PATH}/actions")
async def board_action(request: Request, who: Annotated[SignedIn, Depends(writer)]) -> Response:
    """One dispatcher action as a command on the bus (the rules of the chat and the API); back to the board with a notice,
    or a page saying why not — for an assignment that needs an override, the conflict and a confirmation."""
    app = _app(request)
    page = StaffPage(request, who)
    form = await read_staff_form(request, page)
    today = _today(app)
    day = read_day(page, form.get("day"), today)
    back = _board_link(day)
    action = form.get("action", "")
    if action not in ACTIONS:
        raise page.refuse(400, "board.bad_action", back=back)
    dispatcher = who.principal.dispatcher_id
    if action == "replan":
        return await _replan(app, page, who, day, today, back)
    visit = await _visible_visit(request, page, form.get("visit_id", ""), back)
    here = _visit_link(visit.id, day)
    command: c.Command
    if action == "assign":
        technician_id = bounded_int(form.get("technician_id"), low=1, high=MAX_ID)
        if technician_id is None:
            raise page.refuse(400, "board.bad_technician", back=here)
        force = form.get("force") == "1"
        if form.get("force") not in (None, "", "1"):
            raise page.refuse(400, "board.bad_action", back=here)
        command = c.ForceAssignVisit(visit.id, technician_id, dispatcher) if force else c.AssignVisit(visit.id, technician_id, dispatcher)
    elif action == "reschedule":
        window = _window(form.get("window", "")[:120])
        if window is None:
            raise page.refuse(400, "board.bad_window", back=here)
        command = c.MoveVisit(visit.id, window[0], window[1], dispatcher)
    else:
        if form.get("sure") != "1":
            raise page.refuse(400, "board.cancel_unconfirmed", back=here)
        command = c.CancelVisitAsDispatcher(visit.id, dispatcher)
    try:
        await app.bus.run(f"board:{action}:{visit.id}:{uuid.uuid4().hex}", command)
    except DomainError as err:
        if action == "assign" and err.code == "technician_not_eligible":
            raise await _needs_override(page, app, visit, day, int(form["technician_id"])) from err
        raise _refused(page, err.code, here) from err
    except (IntegrityError, StaleDataError) as exc:
        raise _refused(page, "concurrent_change", here) from exc
    return RedirectResponse(_board_link(day, done=action), status_code=303, headers=HEADERS)


async def _needs_override(page: StaffPage, app: Any, visit: bv.BoardVisit, day: date, technician_id: int) -> PageRefused:
    """Not free at the visit's time: the conflict, and a form that assigns anyway only when that is ticked (recorded as
    an override); not skilled at all: a plain refusal."""
    choice = next((ch for ch in await _choices(app, visit.id) if ch.technician_id == technician_id), None)
    here = _visit_link(visit.id, day)
    if choice is None or not choice.needs_override:
        return page.refuse(409, "board.not_eligible", back=here)
    page.status = 409
    hidden = f'<input type="hidden" name="technician_id" value="{technician_id}">'
    box = f'<label class="check"><input type="checkbox" name="force" value="1" required> {page.tr("board.accept_conflict")}</label>'
    body = (f'<p class="error" role="alert">{page.tr("board.override_needed", name=choice.name)} {_conflict(page, choice, app.policy.tz)}</p>'
            f'{_form(page, "assign", visit.id, day, hidden + box, page.tr("board.assign_anyway"))}'
            f'<p><a href="{html.escape(here)}">{page.tr("board.back_to_visit")}</a></p>')
    return PageRefused(page.respond(translate("board.override_title", page.language), body, active=PATH))


async def _replan(app: Any, page: StaffPage, who: SignedIn, day: date, today: date, back: str) -> Response:
    """Ask for a re-plan of the day's visits nobody has (of the dispatcher's regions): a replan timer written on the bus,
    solved by the sweep like any other trigger; the others keep their people."""
    if day < today:
        raise page.refuse(400, "board.replan_past", back=back)
    board = await _load(app, who, day)
    waiting = [v.id for v in board.visits if v.technician_id is None and v.status == "booked"]
    if not waiting:
        raise page.refuse(409, "board.replan_nothing", back=back)

    async def work(ctx: HandlerContext) -> tuple[None, list[Any]]:
        await queue_replan(ctx.store, ctx.now, day, "board", f"{who.principal.id}:{int(ctx.now.timestamp())}", visits=waiting)
        return None, []

    await app.bus.call(f"board:replan:{day.isoformat()}:{uuid.uuid4().hex}", work)
    return RedirectResponse(_board_link(day, done="replan"), status_code=303, headers=HEADERS)


def _refused(page: StaffPage, code: str, back: str) -> Exception:
    if code in KNOWN_REFUSALS:
        return page.refuse(409, f"jobs.refused.{code}", back=back)
    return page.refuse(409, "jobs.refused", back=back, reason=code)
