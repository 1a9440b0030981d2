"""Rows of settlement: each confirmed visit's fee under review (an item), the statements items end on, and each
technician's payout rule."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm.exc import StaleDataError

from domain.model import ExceptionStatus
from storage import tables as t
from storage.repository import Store

MAX_PAGE = 500


@dataclass(frozen=True)
class ItemRow:
    """A visit's fee on its way to a statement, with what makes its line traceable (the job's reference, the work type)."""

    id: int
    visit_id: int
    job_id: int
    technician_id: int
    bill_id: int
    status: str  # domain.settlement.ItemStatus
    currency: str
    bill_total_minor: int
    base_minor: int
    share_percent: int
    earned_minor: int
    amount_minor: int
    confirmed_at: datetime
    review_ends_at: datetime
    freeze_reason: str | None
    freeze_ref: int | None
    frozen_at: datetime | None
    released_by: str | None
    released_at: datetime | None
    adjusted_by: str | None
    adjust_reason: str | None
    adjusted_at: datetime | None
    ready_at: datetime | None
    period: str | None
    statement_id: int | None
    created_at: datetime
    job_ref: str = ""  # the order's reference at its source
    job_source: str = ""  # the order source ("chat" and "maintenance" make their own references)
    kind: str = ""  # the visit's work type
    region: str = ""


@dataclass(frozen=True)
class StatementRow:
    id: int
    number: str
    technician_id: int
    period: str
    cycle: str
    currency: str
    total_minor: int
    line_count: int
    created_at: datetime
    technician: str = ""
    lines: tuple[ItemRow, ...] = ()


_ITEM_COLUMNS = [column.name for column in t.settlement_items.columns if column.name not in ("updated_at",)]


def _item(row: Any) -> ItemRow:
    return ItemRow(**{name: row[name] for name in _ITEM_COLUMNS}, job_ref=row["external_ref"] or "", job_source=row["source"],
                   kind=row["kind"], region=row["region"])


class SettlementStore:
    def __init__(self, store: Store) -> None:
        self.session = store.session

    # --- payout rules ---

    async def payout_rule(self, technician_id: int) -> tuple[str | None, int | None] | None:
        """The technician's own cycle and share (each None: the shop's default); None when there is no such technician."""
        c = t.technicians.c
        row = (await self.session.execute(select(c.settlement_cycle, c.payout_share_percent).where(c.id == technician_id))).first()
        return (row[0], row[1]) if row is not None else None

    async def set_payout_rule(self, technician_id: int, cycle: str | None, share_percent: int | None) -> None:
        await self.session.execute(update(t.technicians).where(t.technicians.c.id == technician_id).values(
            settlement_cycle=cycle, payout_share_percent=share_percent))

    async def technician_names(self, ids: list[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = await self.session.execute(select(t.technicians.c.id, t.technicians.c.name).where(t.technicians.c.id.in_(ids)))
        return {row[0]: row[1] for row in rows}

    # --- items ---

    def _items_query(self) -> Any:
        i, v, j = t.settlement_items, t.visits, t.jobs
        return (select(i, j.c.external_ref, j.c.source, j.c.region, v.c.kind).join(v, v.c.id == i.c.visit_id).join(j, j.c.id == i.c.job_id))

    async def add_item(self, **values: Any) -> int:
        inserted = await self.session.execute(insert(t.settlement_items).values(**values).returning(t.settlement_items.c.id))
        return int(inserted.scalar_one())

    async def update_item(self, item_id: int, now: datetime, **values: Any) -> None:
        await self.session.execute(update(t.settlement_items).where(t.settlement_items.c.id == item_id).values(updated_at=now, **values))

    async def item_of_visit(self, visit_id: int, *, for_update: bool = False) -> ItemRow | None:
        if for_update:
            # taken before it is read: a release and a timer at once change it one after the other (PostgreSQL)
            await self.session.execute(select(t.settlement_items.c.id).where(t.settlement_items.c.visit_id == visit_id).with_for_update())
        row = (await self.session.execute(self._items_query().where(t.settlement_items.c.visit_id == visit_id))).mappings().first()
        return _item(row) if row is not None else None

    async def item(self, item_id: int) -> ItemRow | None:
        row = (await self.session.execute(self._items_query().where(t.settlement_items.c.id == item_id))).mappings().first()
        return _item(row) if row is not None else None

    async def items(self, *, technician_id: int | None = None, status: str | None = None, period: str | None = None,
                    job_id: int | None = None, statement_id: int | None = None, unstated: bool = False, limit: int = MAX_PAGE,
                    offset: int = 0) -> list[ItemRow]:
        i = t.settlement_items
        query = self._items_query().order_by(i.c.id).limit(min(limit, MAX_PAGE)).offset(offset)
        for column, value in ((i.c.technician_id, technician_id), (i.c.status, status), (i.c.period, period), (i.c.job_id, job_id),
                              (i.c.statement_id, statement_id)):
            if value is not None:
                query = query.where(column == value)
        if unstated:
            query = query.where(i.c.statement_id.is_(None))
        return [_item(row) for row in (await self.session.execute(query)).mappings()]

    async def ready_to_state(self, period: str, *, technician_id: int | None = None) -> list[ItemRow]:
        """Every item ready in the period and on no statement yet, all of them (a month's close takes them whole)."""
        i = t.settlement_items
        query = self._items_query().where(i.c.status == "ready", i.c.period == period, i.c.statement_id.is_(None)).order_by(i.c.id)
        if technician_id is not None:
            query = query.where(i.c.technician_id == technician_id)
        return [_item(row) for row in (await self.session.execute(query)).mappings()]

    # --- what freezes a fee ---

    async def open_exception(self, visit_id: int) -> int | None:
        """A problem report of the visit not resolved yet (its id)."""
        p = t.problem_reports
        found = (await self.session.execute(select(p.c.id).where(p.c.visit_id == visit_id, p.c.status != ExceptionStatus.RESOLVED.value)
                                            .order_by(p.c.id).limit(1))).scalar()
        return int(found) if found is not None else None

    async def low_rating(self, job_id: int, visit_id: int, threshold: int) -> int | None:
        """A rating of the visit (or of its whole job) at or below the low-rating threshold (its id)."""
        r = t.ratings
        found = (await self.session.execute(select(r.c.id).where(
            r.c.job_id == job_id, (r.c.visit_id == visit_id) | r.c.visit_id.is_(None), r.c.score <= threshold).order_by(r.c.id).limit(1))).scalar()
        return int(found) if found is not None else None

    # --- statements ---

    async def next_sequence(self, period: str, technician_id: int) -> int:
        s = t.settlement_statements
        count = (await self.session.execute(select(func.count()).select_from(s).where(s.c.period == period, s.c.technician_id == technician_id))).scalar()
        return int(count or 0) + 1

    async def add_statement(self, *, number: str, technician_id: int, period: str, cycle: str, currency: str, items: list[ItemRow],
                            now: datetime) -> int:
        """The statement and its lines: the items are settled on it (the caller checked they are ready and unstated)."""
        inserted = await self.session.execute(insert(t.settlement_statements).values(
            number=number, technician_id=technician_id, period=period, cycle=cycle, currency=currency,
            total_minor=sum(item.amount_minor for item in items), line_count=len(items), created_at=now).returning(t.settlement_statements.c.id))
        statement_id = int(inserted.scalar_one())
        i = t.settlement_items
        # only items still unstated: a close racing another loses here (fewer rows) and is rolled back by the caller
        done = await self.session.execute(update(i).where(i.c.id.in_([item.id for item in items]), i.c.statement_id.is_(None), i.c.status == "ready")
                                          .values(statement_id=statement_id, status="settled", updated_at=now))
        if int(getattr(done, "rowcount", 0) or 0) != len(items):
            raise StatementRace()
        return statement_id

    async def statement(self, statement_id: int) -> StatementRow | None:
        found = await self._statements(t.settlement_statements.c.id == statement_id)
        return found[0] if found else None

    async def statements(self, *, technician_id: int | None = None, period: str | None = None, limit: int = MAX_PAGE,
                         offset: int = 0) -> list[StatementRow]:
        s = t.settlement_statements
        where = [s.c.id > 0]
        if technician_id is not None:
            where.append(s.c.technician_id == technician_id)
        if period is not None:
            where.append(s.c.period == period)
        return await self._statements(*where, limit=limit, offset=offset)

    async def _statements(self, *where: Any, limit: int = MAX_PAGE, offset: int = 0) -> list[StatementRow]:
        """Statements with their lines and their technician's name: three queries, however many."""
        s = t.settlement_statements
        rows = (await self.session.execute(select(s).where(*where).order_by(s.c.id).limit(min(limit, MAX_PAGE)).offset(offset))).mappings().all()
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        lines: dict[int, list[ItemRow]] = defaultdict(list)
        query = self._items_query().where(t.settlement_items.c.statement_id.in_(ids)).order_by(t.settlement_items.c.confirmed_at, t.settlement_items.c.id)
        for row in (await self.session.execute(query)).mappings():
            lines[row["statement_id"]].append(_item(row))
        names = await self.technician_names(sorted({row["technician_id"] for row in rows}))
        return [StatementRow(row["id"], row["number"], row["technician_id"], row["period"], row["cycle"], row["currency"], row["total_minor"],
                             row["line_count"], row["created_at"], names.get(row["technician_id"], ""), tuple(lines[row["id"]]))
                for row in rows]


class StatementRace(StaleDataError):
    """Another close settled some of these items first: the bus rolls this unit of work back and runs it again."""
