"""The maintenance pages of the back office: the plans a signed-in person may see, and a plan period's inspection report
(what was inspected, what was found, what is overdue) with its CSV file."""

from __future__ import annotations

import html
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.access import region_allowed
from domain.errors import DomainError
from domain.model import Dispatcher, Technician
from services import maintenance
from storage.devices import DeviceStore
from storage.maintenance import MaintenanceStore, PlanRow
from storage.repository import Store
from webhooks.maintenance_api import report_csv
from webhooks.staff_pages import Staff, StaffPage, bounded_int

router = APIRouter(include_in_schema=False)
STATE_TONE = {"done": "ok", "overdue": "bad", "planned": "", "cancelled": "muted"}


def _day(raw: str | None) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw[:10]) if len(raw) == 10 else None
    except ValueError:
        return None


@router.get("/maintenance", response_class=HTMLResponse)
async def plans_page(request: Request, who: Staff) -> HTMLResponse:
    page = StaffPage(request, who)
    app = request.app.state.container
    async with app.sessions() as session:
        store = Store(session)
        plans = await MaintenanceStore(store).plans(limit=200)
        sites = await DeviceStore(store).sites({p.site_id for p in plans})
        technicians = {technician.id: technician.name for technician in await store.technicians(on_duty_only=False)}
    names = {plan.id: ", ".join(technicians.get(i, f"#{i}") for i in plan.assignees) for plan in plans}
    rows = []
    for plan in plans:
        site = sites.get(plan.site_id)
        if site is None or not region_allowed(who.principal.regions, site.region):
            continue
        state = page.tr("maintenance.active") if plan.active else page.tr("maintenance.stopped")
        rows.append(f"<tr><td><a href=\"/maintenance/{plan.id}\">{html.escape(plan.name)}</a></td><td>{html.escape(site.address_text)}"
                    f"{' · ' + html.escape(site.name) if site.name else ''}</td><td><code>{html.escape(plan.rule)}</code></td>"
                    f"<td>{html.escape(names.get(plan.id) or '') or page.tr('maintenance.assignee.automatic')}</td>"
                    f"<td>{plan.created_through or '-'}</td><td>{state}</td></tr>")
    body = (f'<p class="note">{page.tr("maintenance.intro")}</p>' + (
        f'<div class="scroll"><table class="data"><thead><tr><th scope="col">{page.tr("maintenance.plan")}</th>'
        f'<th scope="col">{page.tr("maintenance.site")}</th><th scope="col">{page.tr("maintenance.rule")}</th>'
        f'<th scope="col">{page.tr("maintenance.assignee")}</th>'
        f'<th scope="col">{page.tr("maintenance.created_through")}</th><th scope="col">{page.tr("maintenance.state")}</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>' if rows else f'<p class="card">{page.tr("maintenance.none")}</p>'))
    return page.respond(page.tr("maintenance.title"), body, active="/maintenance")


async def _report(request: Request, who: Staff, plan_id: int, page: StaffPage) -> maintenance.PlanReport:
    app = request.app.state.container
    today = app.clock.now().astimezone(app.policy.tz).date()
    raw_day = request.query_params.get("day")
    day = _day(raw_day)
    if raw_day and day is None:
        raise page.refuse(400, "maintenance.bad_day", back=f"/maintenance/{plan_id}")
    async with app.sessions() as session:
        store = Store(session)
        plan = await MaintenanceStore(store).plan(plan_id)
        site = await DeviceStore(store).site(plan.site_id) if plan else None
        if plan is None or site is None or not region_allowed(who.principal.regions, site.region):
            raise page.refuse(404, "maintenance.not_found", back="/maintenance")  # another region's plan: as if none
        try:
            return await maintenance.plan_report(store, plan_id, day, today)
        except DomainError as err:
            raise page.refuse(400, f"error.{err.code}", back=f"/maintenance/{plan_id}") from err


async def _people(request: Request, plan: PlanRow) -> tuple[str, str | None]:
    """Who does the plan's inspections (the technician, or the team, by name; "" for automatic dispatch) and who reviews."""
    app = request.app.state.container
    async with app.sessions() as session:
        store = Store(session)
        names = [technician.name if technician else f"#{technician_id}" for technician_id in plan.assignees
                 for technician in [await store.get(Technician, technician_id)]]
        reviewer = await store.get(Dispatcher, plan.reviewer_dispatcher_id) if plan.reviewer_dispatcher_id else None
    return ", ".join(names), reviewer.name if reviewer else None


@router.get("/maintenance/{plan_id}", response_class=HTMLResponse)
async def report_page(plan_id: str, request: Request, who: Staff) -> HTMLResponse:
    page = StaffPage(request, who)
    number = bounded_int(plan_id, low=1, high=2**31 - 1)
    if number is None:
        raise page.refuse(404, "maintenance.not_found", back="/maintenance")
    found = await _report(request, who, number, page)
    result = found.report
    start, end = result.period
    who_does, reviewer = await _people(request, found.plan)
    lines = "".join(
        f'<tr><td>{line.occurs_on}</td><td><span class="badge {STATE_TONE[line.state]}">{page.tr("maintenance.line." + line.state)}</span></td>'
        f'<td><a href="/jobs/{line.job_id}">#{line.job_id}</a></td><td>{html.escape(line.technician or "-")}</td>'
        f'<td>{line.completed_at.astimezone(page.request.app.state.container.policy.tz).strftime("%Y-%m-%d %H:%M") if line.completed_at else "-"}</td>'
        f'<td>{"<br>".join(html.escape(f) for f in line.findings) or "-"}</td><td>{line.photos}</td></tr>'
        for line in result.lines)
    table = (f'<div class="scroll"><table class="data"><caption class="sr-only">{page.tr("maintenance.report_caption")}</caption><thead><tr>'
             + "".join(f'<th scope="col">{page.tr(k)}</th>' for k in ("maintenance.day", "maintenance.state", "maintenance.job", "maintenance.technician",
                                                                       "maintenance.completed", "maintenance.findings", "maintenance.photos"))
             + f"</tr></thead><tbody>{lines}</tbody></table></div>") if result.lines else f'<p class="card">{page.tr("maintenance.no_lines")}</p>'
    body = f"""<p>{html.escape(found.site.address_text)}{' · ' + html.escape(found.site.name) if found.site.name else ''}</p>
<div class="grid"><div class="card"><strong>{page.tr('maintenance.period')}</strong><br>{start} – {end}</div>
<div class="card"><strong>{page.tr('maintenance.done_count', count=result.done)}</strong><br>{page.tr('maintenance.overdue_count', count=result.overdue)}</div>
<div class="card"><strong>{page.tr('maintenance.devices')}</strong><br>{'<br>'.join(html.escape(d) for d in result.devices)}</div>
<div class="card"><strong>{page.tr('maintenance.assignee')}</strong><br>{html.escape(who_does) if who_does else page.tr('maintenance.assignee.automatic')}<br>
<strong>{page.tr('maintenance.reviewer')}</strong><br>{html.escape(reviewer or '-')}</div></div>
<form class="toolbar" method="get" action="/maintenance/{found.plan.id}"><label>{page.tr('maintenance.pick_day')}
<input type="date" name="day" value="{start.isoformat()}"></label><button type="submit">{page.tr('maintenance.show')}</button>
<a class="button secondary" href="/maintenance/{found.plan.id}/report.csv?day={start.isoformat()}">{page.tr('maintenance.download')}</a></form>
{table}<p><a href="/maintenance">{page.tr('maintenance.back')}</a></p>"""
    return page.respond(found.plan.name, body, active="/maintenance")


@router.get("/maintenance/{plan_id}/report.csv")
async def report_file(plan_id: str, request: Request, who: Staff) -> Response:
    page = StaffPage(request, who)
    number = bounded_int(plan_id, low=1, high=2**31 - 1)
    if number is None:
        raise page.refuse(404, "maintenance.not_found", back="/maintenance")
    found = await _report(request, who, number, page)
    return report_csv(found)
