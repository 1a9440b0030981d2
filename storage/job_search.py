"""Read models of the back office's job pages: a filtered, keyset-paged job list (and its CSV batches) and one job's page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t

MAX_PAGE = 200  # rows a page may ask for; a CSV export reads the whole list in batches of this size
DEFAULT_PAGE = 50
MAX_TEXT = 100  # characters of a text search: longer is refused by the page before it reaches here
JOB_STATUSES = ("open", "done", "cancelled")
LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class JobFilter:
    """What a job list is narrowed to. ``regions`` is the viewer's region rule (None: every region), applied in the
    query itself so that a dispatcher of region A never receives a row of region B; ``region`` is the viewer's choice."""

    regions: frozenset[str] | None = None
    status: str | None = None
    region: str | None = None
    slot_from: datetime | None = None  # a visit of the job booked at or after this (aware)
    slot_until: datetime | None = None  # … and before this
    technician_id: int | None = None  # a visit of the job led by this technician
    customer_id: int | None = None
    source: str | None = None
    text: str | None = None  # customer name or phone, address, order number: contains, case-insensitive


@dataclass(frozen=True)
class VisitLine:
    id: int
    kind: str
    status: str
    technician: str | None
    slot_start: datetime | None
    slot_end: datetime | None


@dataclass(frozen=True)
class JobRow:
    id: int
    source: str
    external_ref: str
    status: str
    region: str
    priority: str
    created_at: datetime
    product_name: str
    customer_id: int
    customer_name: str
    customer_phone: str
    address: str
    visits: tuple[VisitLine, ...] = ()


@dataclass(frozen=True)
class JobPage:
    rows: tuple[JobRow, ...]
    next_before: int | None  # the keyset of the next page (jobs with a smaller id); None: this is the last page


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern: its own % and _ match only themselves."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def _digits_only(column: ColumnElement[Any]) -> ColumnElement[Any]:
    # phones are stored as the order gave them ("+86 139 1234 5678"); typed digits should find them anyway
    for mark in (" ", "-", "(", ")", "+"):
        column = func.replace(column, mark, "")
    return column


def _conditions(wanted: JobFilter) -> list[ColumnElement[bool]]:
    jobs, customers, visits = t.jobs, t.customers, t.visits
    conditions: list[ColumnElement[bool]] = []
    if wanted.regions is not None:
        conditions.append(jobs.c.region.in_(sorted(wanted.regions)) if wanted.regions else jobs.c.id.is_(None))
    if wanted.region is not None:
        conditions.append(jobs.c.region == wanted.region)
    if wanted.status is not None:
        conditions.append(jobs.c.status == wanted.status)
    if wanted.source is not None:
        conditions.append(jobs.c.source == wanted.source)
    if wanted.customer_id is not None:
        conditions.append(jobs.c.customer_id == wanted.customer_id)
    visit_terms: list[ColumnElement[bool]] = []
    if wanted.slot_from is not None:
        visit_terms.append(visits.c.slot_start >= wanted.slot_from)
    if wanted.slot_until is not None:
        visit_terms.append(visits.c.slot_start < wanted.slot_until)
    if wanted.technician_id is not None:
        visit_terms.append(visits.c.technician_id == wanted.technician_id)
    if visit_terms:
        # one uncorrelated IN: the planner reads the few matching visits by their index, not every job's visits
        conditions.append(jobs.c.id.in_(select(visits.c.job_id).where(*visit_terms)))
    if wanted.text:
        pattern = f"%{escape_like(wanted.text.strip().lower())}%"
        terms = [
            func.lower(customers.c.name).like(pattern, escape=LIKE_ESCAPE),
            func.lower(jobs.c.address_text).like(pattern, escape=LIKE_ESCAPE),
            func.lower(jobs.c.external_ref).like(pattern, escape=LIKE_ESCAPE),
            customers.c.phone.like(pattern, escape=LIKE_ESCAPE),
        ]
        digits = "".join(ch for ch in wanted.text if ch.isdigit())
        if len(digits) >= 3:
            terms.append(_digits_only(customers.c.phone).like(f"%{digits}%"))
        conditions.append(or_(*terms))
    return conditions


def _listing(wanted: JobFilter) -> Select[Any]:
    jobs, customers = t.jobs, t.customers
    return (
        select(jobs.c.id, jobs.c.source, jobs.c.external_ref, jobs.c.status, jobs.c.region, jobs.c.priority, jobs.c.created_at,
               jobs.c.product_name, jobs.c.customer_id, customers.c.name, customers.c.phone, jobs.c.address_text)
        .join(customers, customers.c.id == jobs.c.customer_id)
        .where(*_conditions(wanted))
        .order_by(jobs.c.id.desc())
    )


async def search_jobs(session: AsyncSession, wanted: JobFilter, *, limit: int = DEFAULT_PAGE, before: int | None = None) -> JobPage:
    """One page of the filtered list, newest first; ``before`` is the keyset (the last id of the previous page).
    Two statements whatever the page size: the jobs, then their visits with the technicians' names."""
    limit = max(1, min(limit, MAX_PAGE))
    statement = _listing(wanted).limit(limit + 1)
    if before is not None:
        statement = statement.where(t.jobs.c.id < before)
    found = (await session.execute(statement)).all()
    more = len(found) > limit
    found = found[:limit]
    lines = await _visit_lines(session, [row.id for row in found])
    rows = tuple(
        JobRow(row.id, row.source, row.external_ref, row.status, row.region, row.priority, row.created_at, row.product_name,
               row.customer_id, row.name, row.phone, row.address_text, tuple(lines.get(row.id, ())))
        for row in found
    )
    return JobPage(rows, rows[-1].id if more and rows else None)


async def _visit_lines(session: AsyncSession, job_ids: list[int]) -> dict[int, list[VisitLine]]:
    if not job_ids:
        return {}
    visits, technicians = t.visits, t.technicians
    statement = (
        select(visits.c.job_id, visits.c.id, visits.c.kind, visits.c.status, technicians.c.name, visits.c.slot_start, visits.c.slot_end)
        .outerjoin(technicians, technicians.c.id == visits.c.technician_id)
        .where(visits.c.job_id.in_(job_ids))
        .order_by(visits.c.job_id, visits.c.sequence, visits.c.id)
    )
    lines: dict[int, list[VisitLine]] = {}
    for row in (await session.execute(statement)).all():
        lines.setdefault(row.job_id, []).append(VisitLine(row.id, row.kind, row.status, row.name, row.slot_start, row.slot_end))
    return lines


async def export_batches(sessions: Any, wanted: JobFilter, batch: int = MAX_PAGE) -> AsyncIterator[tuple[JobRow, ...]]:
    """The whole filtered list in keyset batches, each read in a session of its own (a long export holds no transaction
    open between batches and never has more than one batch in memory)."""
    before: int | None = None
    while True:
        async with sessions() as session:
            page = await search_jobs(session, wanted, limit=batch, before=before)
        if page.rows:
            yield page.rows
        if page.next_before is None:
            return
        before = page.next_before


@dataclass(frozen=True)
class FilterChoices:
    """What the list's pickers offer, within the viewer's regions."""

    regions: tuple[str, ...]
    sources: tuple[str, ...]
    technicians: tuple[tuple[int, str], ...]


async def filter_choices(session: AsyncSession, regions: frozenset[str] | None) -> FilterChoices:
    jobs, technicians = t.jobs, t.technicians
    if regions is None:
        region_names = tuple(r for (r,) in (await session.execute(select(jobs.c.region).distinct().order_by(jobs.c.region))).all())
        scope: list[ColumnElement[bool]] = []
    else:
        region_names = tuple(sorted(regions))
        scope = [jobs.c.region.in_(region_names)] if region_names else [jobs.c.id.is_(None)]
    sources = tuple(s for (s,) in (await session.execute(select(jobs.c.source).where(*scope).distinct().order_by(jobs.c.source))).all())
    people = (await session.execute(select(technicians.c.id, technicians.c.name, technicians.c.regions).order_by(technicians.c.name))).all()
    # a scoped viewer picks among the technicians working in one of their regions
    shown = tuple((p.id, p.name) for p in people if regions is None or set(p.regions or ()) & regions)
    return FilterChoices(region_names, sources, shown)


# --- one job's page ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobHead:
    id: int
    source: str
    external_ref: str
    status: str
    region: str
    priority: str
    created_at: datetime
    product_name: str
    product_category: str
    brand: str | None
    notes: str
    address: str
    customer_id: int
    customer_name: str
    customer_phone: str
    items: tuple[dict[str, Any], ...] = field(default_factory=tuple)


async def job_head(session: AsyncSession, job_id: int) -> JobHead | None:
    jobs, customers = t.jobs, t.customers
    statement = (
        select(jobs, customers.c.name.label("customer_name"), customers.c.phone.label("customer_phone"))
        .join(customers, customers.c.id == jobs.c.customer_id)
        .where(jobs.c.id == job_id)
    )
    row = (await session.execute(statement)).mappings().first()
    if row is None:
        return None
    return JobHead(
        row["id"], row["source"], row["external_ref"], row["status"], row["region"], row["priority"], row["created_at"],
        row["product_name"], row["product_category"], row["brand"], row["notes"] or "", row["address_text"], row["customer_id"],
        row["customer_name"], row["customer_phone"], tuple(i for i in (row["items"] or ()) if isinstance(i, dict)),
    )


async def photo_of_job(session: AsyncSession, job_id: int, photo_id: int) -> str | None:
    """The stored path of a photo that belongs to this job — taken on one of its visits, or sent in one of its relay
    threads — else None (a photo id of another job is not served under this one's page, whatever the viewer may see)."""
    photos, visits, messages, threads = t.photos, t.visits, t.relay_messages, t.relay_threads
    of_visit = select(photos.c.path).join(visits, visits.c.id == photos.c.visit_id).where(photos.c.id == photo_id, visits.c.job_id == job_id)
    found = (await session.execute(of_visit)).scalar()
    if found is not None:
        return str(found)
    relayed = (
        select(photos.c.path)
        .join(messages, messages.c.photo_id == photos.c.id)
        .join(threads, threads.c.id == messages.c.thread_id)
        .where(photos.c.id == photo_id, threads.c.job_id == job_id)
        .limit(1)
    )
    found = (await session.execute(relayed)).scalar()
    return None if found is None else str(found)


async def template_prompts(session: AsyncSession, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The checklist steps of these (service kind, product category) templates by step key, for labelling answers."""
    if not pairs:
        return {}
    templates = t.checklist_templates
    statement = select(templates.c.service_kind, templates.c.product_category, templates.c.steps).where(
        or_(*(and_(templates.c.service_kind == kind, templates.c.product_category == category) for kind, category in pairs))
    )
    prompts: dict[tuple[str, str], dict[str, Any]] = {}
    for row in (await session.execute(statement)).all():
        prompts[(row.service_kind, row.product_category)] = {str(s.get("key")): s for s in row.steps or () if isinstance(s, dict)}
    return prompts


async def technician_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = (await session.execute(select(t.technicians.c.id, t.technicians.c.name).where(t.technicians.c.id.in_(sorted(ids))))).all()
    return {row.id: row.name for row in rows}
