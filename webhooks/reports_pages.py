"""The reports pages: KPIs per technician, region or product category and per day, week or month, with charts, and the
daily report as a page; managers and dispatchers read them, each only for their regions."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from conversations.i18n import translate
from domain import kpis
from scheduler.daily_report import average, daily_chart, minutes, percent
from services import report_charts
from storage.reports import ReportFacts, ReportStore
from storage.repository import Store
from webhooks.signin import HEADERS
from webhooks.staff_pages import Staff, StaffPage

router = APIRouter(include_in_schema=False)

DEFAULT_DAYS = 7
EARLIEST = date(2000, 1, 1)  # no shop has figures before this: a year 1 in the address is a typo, not a question


@dataclass(frozen=True)
class Query:
    """A report's question, checked: the period (local days, both included), the grouping and the time buckets."""

    first: date
    last: date
    grouping: kpis.Grouping
    bucket: kpis.Bucket

    def params(self, **extra: str) -> str:
        return urlencode({"from": self.first.isoformat(), "to": self.last.isoformat(), "by": self.grouping.value,
                          "per": self.bucket.value, **extra})


def _today(request: Request) -> date:
    app = request.app.state.container
    today: date = app.clock.now().astimezone(app.policy.tz).date()
    return today


def _day(raw: str | None, page: StaffPage, name: str, default: date) -> date:
    if raw is None or raw == "":
        return default
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        value = date.fromisoformat(raw)
    except ValueError:
        raise page.refuse(400, "reports.bad_day", back="/reports", field=name) from None
    if not EARLIEST <= value <= date(2100, 12, 31):
        raise page.refuse(400, "reports.bad_day", back="/reports", field=name)
    return value


def read_query(request: Request, page: StaffPage) -> Query:
    """The period and pickers from the address, or a 400 page naming what is wrong (never a 500)."""
    params = request.query_params
    today = _today(request)
    last = _day(params.get("to"), page, "to", today)
    first = _day(params.get("from"), page, "from", last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise page.refuse(400, "reports.bad_period", back="/reports")
    if (last - first).days + 1 > kpis.MAX_PERIOD_DAYS:
        raise page.refuse(400, "reports.too_long", back="/reports", days=kpis.MAX_PERIOD_DAYS)
    try:
        grouping = kpis.Grouping(params.get("by") or kpis.Grouping.TECHNICIAN.value)
        bucket = kpis.Bucket(params.get("per") or kpis.Bucket.DAY.value)
    except ValueError:
        raise page.refuse(400, "reports.bad_choice", back="/reports") from None
    return Query(first, last, grouping, bucket)


async def load(request: Request, page: StaffPage, first: date, last: date) -> ReportFacts:
    """The period's facts within the reader's regions (the region rule, in the query itself)."""
    app = request.app.state.container
    async with app.sessions() as session:
        return await ReportStore(Store(session)).facts(first, last, tz=app.policy.tz, regions=page.who.principal.regions,
                                                       first_time_fix_days=app.settings.first_time_fix_days)


def _ftf_days(request: Request) -> int:
    return int(request.app.state.container.settings.first_time_fix_days)


# --- rendering -----------------------------------------------------------------------------------------------------

COLUMNS = ("reports.col.visits", "reports.col.done", "reports.col.on_time", "reports.col.ftf", "reports.col.csat",
           "reports.col.csat_good", "reports.col.accept", "reports.col.completion", "reports.col.exceptions")


def _cells(f: kpis.Figures) -> list[str]:
    return [str(f.visits), str(f.done), percent(f.on_time), percent(f.first_time_fix), average(f.csat_average), percent(f.csat_good),
            minutes(f.accept_minutes), minutes(f.completion_minutes), str(f.exceptions)]


def figures_table(page: StaffPage, first_header: str, rows: list[tuple[str, kpis.Figures]], caption: str) -> str:
    if not rows:
        return f'<p class="note">{page.tr("reports.none")}</p>'
    head = "".join(f'<th scope="col">{page.tr(key)}</th>' for key in COLUMNS)
    body = "".join(
        f'<tr><th scope="row">{html.escape(label)}</th>' + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(f)) + "</tr>"
        for label, f in rows)
    return (f'<div class="scroll"><table class="data"><caption class="sr-only">{html.escape(caption)}</caption>'
            f'<thead><tr><th scope="col">{html.escape(first_header)}</th>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def summary_cards(page: StaffPage, f: kpis.Figures, days: int) -> str:
    cards = [
        ("reports.col.visits", str(f.visits), page.tr("reports.done_of", done=f.done)),
        ("reports.col.on_time", percent(f.on_time), page.tr("reports.explain.on_time")),
        ("reports.col.ftf", percent(f.first_time_fix), page.tr("reports.explain.ftf", days=days)),
        ("reports.col.csat", average(f.csat_average), page.tr("reports.explain.csat", good=percent(f.csat_good), n=f.ratings)),
        ("reports.col.accept", minutes(f.accept_minutes), page.tr("reports.explain.accept", n=f.accepted)),
        ("reports.col.completion", minutes(f.completion_minutes), page.tr("reports.explain.completion", n=f.completions)),
        ("reports.col.exceptions", str(f.exceptions), page.tr("reports.explain.exceptions")),
    ]
    return '<div class="grid kpis">' + "".join(
        f'<div class="card"><div class="muted">{page.tr(key)}</div><div class="kpi">{html.escape(value)}</div>'
        f'<div class="note">{note}</div></div>' for key, value, note in cards) + "</div>"


def reasons_table(page: StaffPage, f: kpis.Figures) -> str:
    if not f.exceptions_by_reason:
        return f'<p class="note">{page.tr("reports.no_exceptions")}</p>'
    rows = "".join(f'<tr><th scope="row">{page.tr("reason." + reason)}</th><td>{count}</td></tr>' for reason, count in f.exceptions_by_reason)
    return (f'<table class="data"><thead><tr><th scope="col">{page.tr("reports.col.reason")}</th>'
            f'<th scope="col">{page.tr("reports.col.count")}</th></tr></thead><tbody>{rows}</tbody></table>')


def _group_rows(page: StaffPage, facts: ReportFacts, grouping: kpis.Grouping, days: int) -> list[tuple[str, kpis.Figures]]:
    rows = kpis.by_group(facts.visits, facts.exceptions, facts.repeats, grouping, first_time_fix_days=days)
    return [(label or translate("reports.unassigned", page.language), f) for label, f in rows]


def _bucket_label(start: date, bucket: kpis.Bucket) -> str:
    if bucket is kpis.Bucket.MONTH:
        return start.strftime("%Y-%m")
    if bucket is kpis.Bucket.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return start.isoformat()


def _bucket_rows(facts: ReportFacts, bucket: kpis.Bucket, days: int) -> list[tuple[str, kpis.Figures]]:
    return [(_bucket_label(start, bucket), f)
            for start, f in kpis.by_bucket(facts.visits, facts.exceptions, facts.repeats, bucket, first_time_fix_days=days)]


EXTRA_STYLE = ".kpi{font-size:1.6rem;font-weight:700;margin:.2rem 0} .chart{max-width:100%;height:auto;display:block;" \
              "background:#fff;border:1px solid var(--line);border-radius:.4rem} .links{display:flex;flex-wrap:wrap;gap:.4rem 1rem}"


def _options(page: StaffPage, name: str, choices: list[tuple[str, str]], chosen: str) -> str:
    options = "".join(f'<option value="{value}"{" selected" if value == chosen else ""}>{page.tr(key)}</option>' for value, key in choices)
    return f'<select id="{name}" name="{name}">{options}</select>'


def pickers(page: StaffPage, q: Query) -> str:
    by = _options(page, "by", [(g.value, f"reports.by.{g.value}") for g in kpis.Grouping], q.grouping.value)
    per = _options(page, "per", [(b.value, f"reports.per.{b.value}") for b in kpis.Bucket], q.bucket.value)
    return (f'<form class="toolbar" method="get" action="/reports" aria-label="{page.tr("reports.pickers")}">'
            f'<label for="from">{page.tr("reports.from")}<input type="date" id="from" name="from" value="{q.first.isoformat()}" required></label>'
            f'<label for="to">{page.tr("reports.to")}<input type="date" id="to" name="to" value="{q.last.isoformat()}" required></label>'
            f'<label for="by">{page.tr("reports.group_by")}{by}</label><label for="per">{page.tr("reports.per_label")}{per}</label>'
            f'<input type="hidden" name="lang" value="{page.language}">'
            f'<button type="submit">{page.tr("reports.show")}</button></form>')


def quick_links(page: StaffPage, today: date, q: Query) -> str:
    monday = today - timedelta(days=today.weekday())
    month_start = today.replace(day=1)
    previous_month = (month_start - timedelta(days=1)).replace(day=1)
    spans = [
        ("reports.quick.last7", today - timedelta(days=6), today, kpis.Bucket.DAY),
        ("reports.quick.last_week", monday - timedelta(days=7), monday - timedelta(days=1), kpis.Bucket.DAY),
        ("reports.quick.last30", today - timedelta(days=29), today, kpis.Bucket.WEEK),
        ("reports.quick.last_month", previous_month, month_start - timedelta(days=1), kpis.Bucket.WEEK),
        ("reports.quick.year", today - timedelta(days=364), today, kpis.Bucket.MONTH),
    ]
    links = "".join(
        f'<a href="/reports?{html.escape(Query(first, last, q.grouping, bucket).params(lang=page.language))}">{page.tr(key)}</a>'
        for key, first, last, bucket in spans)
    daily = f'<a href="/reports/daily?{urlencode({"day": today.isoformat(), "lang": page.language})}">{page.tr("reports.daily.link")}</a>'
    return f'<nav class="links" aria-label="{page.tr("reports.quick.label")}">{links}{daily}</nav>'


def scope_note(page: StaffPage) -> str:
    regions = page.who.principal.regions
    if regions is None:
        return f'<p class="note">{page.tr("reports.scope_all")}</p>'
    return f'<p class="note">{page.tr("reports.scope_regions", regions=", ".join(sorted(regions)) or "—")}</p>'


def _png(data: bytes) -> Response:
    # private: figures of the reader's regions; never kept by a shared cache, nor sniffed as anything else
    return Response(data, media_type="image/png", headers={**HEADERS, "Cache-Control": "private, no-store"})


@router.get("/reports")
async def reports_page(request: Request, who: Staff) -> HTMLResponse:
    page = StaffPage(request, who)
    q = read_query(request, page)
    days = _ftf_days(request)
    facts = await load(request, page, q.first, q.last)
    total = kpis.figures(facts.visits, facts.exceptions, facts.repeats, first_time_fix_days=days)
    group_header = translate(f"reports.by.{q.grouping.value}", page.language)
    per_header = translate(f"reports.per.{q.bucket.value}", page.language)
    trend = f"/reports/chart.png?{html.escape(q.params(kind='trend', lang=page.language))}"
    groups = f"/reports/chart.png?{html.escape(q.params(kind='groups', lang=page.language))}"
    body = (
        pickers(page, q) + quick_links(page, _today(request), q) + scope_note(page)
        + f'<h2>{page.tr("reports.summary", first=q.first.isoformat(), last=q.last.isoformat())}</h2>' + summary_cards(page, total, days)
        + f'<h2>{page.tr("reports.charts")}</h2><div class="grid">'
        f'<img class="chart" src="{trend}" width="800" height="400" alt="{page.tr("reports.chart.trend_alt", per=per_header)}">'
        f'<img class="chart" src="{groups}" width="800" height="400" alt="{page.tr("reports.chart.groups_alt", by=group_header)}"></div>'
        + f'<h2>{page.tr("reports.per_group", by=group_header)}</h2>'
        + figures_table(page, group_header, _group_rows(page, facts, q.grouping, days), group_header)
        + f'<h2>{page.tr("reports.per_period", per=per_header)}</h2>'
        + figures_table(page, per_header, _bucket_rows(facts, q.bucket, days), per_header)
        + f'<h2>{page.tr("reports.by_reason")}</h2>' + reasons_table(page, total)
        + f'<p class="note">{page.tr("reports.definitions", days=days)}</p>'
    )
    return page.respond(translate("reports.title", page.language), body, active="/reports", head=f"<style>{EXTRA_STYLE}</style>")


@router.get("/reports/chart.png")
async def reports_chart(request: Request, who: Staff) -> Response:
    page = StaffPage(request, who)
    q = read_query(request, page)
    kind = request.query_params.get("kind", "trend")
    if kind not in ("trend", "groups"):
        raise page.refuse(400, "reports.bad_choice", back="/reports")
    days = _ftf_days(request)
    facts = await load(request, page, q.first, q.last)
    def tr(key: str, **params: Any) -> str:
        return translate(key, page.language, params)  # the chart's labels, in the reader's language

    names = (tr("reports.col.on_time"), tr("reports.col.ftf"), tr("reports.col.csat_good"))
    if kind == "trend":
        rows = _bucket_rows(facts, q.bucket, days)
        title = tr("reports.chart.trend_title", per=tr(f"reports.per.{q.bucket.value}"))
    else:
        rows = [(label, f) for label, f in _group_rows(page, facts, q.grouping, days) if f.visits][:20]  # the chart's first 20
        title = tr("reports.chart.groups_title", by=tr(f"reports.by.{q.grouping.value}"))

    def draw() -> bytes:  # in a worker thread: drawing takes a tenth of a second the event loop should not wait
        labels, series = [label for label, _ in rows], _rate_series(names, rows)
        if kind == "trend":
            return report_charts.lines(title, labels, series, empty=tr("reports.none"))
        return report_charts.bars(title, labels, series, percent=True, empty=tr("reports.none"))

    return _png(await run_in_threadpool(draw))


def _rate_series(names: tuple[str, str, str], rows: list[tuple[str, kpis.Figures]]) -> list[report_charts.Series]:
    return [(names[0], [f.on_time.rate for _, f in rows]), (names[1], [f.first_time_fix.rate for _, f in rows]),
            (names[2], [f.csat_good.rate for _, f in rows])]


def _daily_day(request: Request, page: StaffPage) -> date:
    return _day(request.query_params.get("day"), page, "day", _today(request))


@router.get("/reports/daily")
async def daily_page(request: Request, who: Staff) -> HTMLResponse:
    page = StaffPage(request, who)
    day = _daily_day(request, page)
    days = _ftf_days(request)
    facts = await load(request, page, day, day)
    total = kpis.figures(facts.visits, facts.exceptions, facts.repeats, first_time_fix_days=days)
    previous, following = day - timedelta(days=1), day + timedelta(days=1)
    nav = (f'<nav class="links" aria-label="{page.tr("reports.quick.label")}">'
           f'<a href="/reports/daily?{urlencode({"day": previous.isoformat(), "lang": page.language})}">{page.tr("reports.daily.previous")}</a>'
           + (f'<a href="/reports/daily?{urlencode({"day": following.isoformat(), "lang": page.language})}">{page.tr("reports.daily.next")}</a>'
              if following <= _today(request) else "")
           + f'<a href="/reports?{html.escape(Query(day - timedelta(days=6), day, kpis.Grouping.TECHNICIAN, kpis.Bucket.DAY).params(lang=page.language))}">'
           f'{page.tr("reports.daily.week")}</a></nav>')
    chart = f"/reports/daily.png?{urlencode({'day': day.isoformat(), 'lang': page.language})}"
    body = (
        nav + scope_note(page) + summary_cards(page, total, days)
        + f'<img class="chart" src="{html.escape(chart)}" width="800" height="400" alt="{page.tr("reports.chart.daily_alt")}">'
        + f'<h2>{page.tr("reports.per_group", by=translate("reports.by.technician", page.language))}</h2>'
        + figures_table(page, translate("reports.by.technician", page.language), _group_rows(page, facts, kpis.Grouping.TECHNICIAN, days),
                        translate("reports.by.technician", page.language))
        + f'<h2>{page.tr("reports.by_reason")}</h2>' + reasons_table(page, total)
        + f'<p class="note">{page.tr("reports.definitions", days=days)}</p>'
    )
    title = translate("reports.daily.title", page.language, {"day": {"_day": day.isoformat()}})
    return page.respond(title, body, active="/reports", head=f"<style>{EXTRA_STYLE}</style>")


@router.get("/reports/daily.png")
async def daily_png(request: Request, who: Staff) -> Response:
    page = StaffPage(request, who)
    day = _daily_day(request, page)
    facts = await load(request, page, day, day)
    days = _ftf_days(request)
    return _png(await run_in_threadpool(lambda: daily_chart(day, facts, page.language, first_time_fix_days=days)))
