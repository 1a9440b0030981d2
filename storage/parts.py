"""Queries for parts and stock: the catalogue, stock per location changed only by conditional statements (never below
zero, also when two sessions use the last unit at once), the movements ledger, part requests, fault trees, repair
completions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update

from domain.errors import DomainError
from domain.parts import WAREHOUSE, FaultTree, MovementKind, PartSpec, RequestStatus, parse_fault_tree
from storage import tables as t
from storage.repository import Store


@dataclass(frozen=True)
class PartRow:
    id: int
    code: str
    name: str
    unit: str
    price_minor: int
    currency: str
    category: str
    compatible: tuple[str, ...]
    min_stock: int

    def fits(self, product_category: str) -> bool:
        return not self.compatible or product_category in self.compatible


@dataclass(frozen=True)
class MovementRow:
    id: int
    part_id: int
    kind: str
    quantity: int
    source: str | None
    target: str | None
    job_id: int | None
    visit_id: int | None
    request_id: int | None
    actor: str
    note: str
    occurred_at: datetime


@dataclass(frozen=True)
class RequestRow:
    id: int
    part_id: int
    technician_id: int
    quantity: int
    note: str
    status: str
    dispatcher_id: int | None
    reason: str
    created_at: datetime
    decided_at: datetime | None


def _part(row: Any) -> PartRow:
    return PartRow(row["id"], row["code"], row["name"], row["unit"], int(row["price_minor"]), row["currency"], row["category"],
                   tuple(row["compatible"] or ()), row["min_stock"])


class PartsStore:
    """Parts and stock over one unit of work's session."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    # --- catalogue ---------------------------------------------------------------------------------------------

    async def save_part(self, spec: PartSpec, now: datetime) -> tuple[int, bool]:
        """Create the part, or update the one with its code; (id, created)."""
        values = {"name": spec.name, "unit": spec.unit, "price_minor": spec.price_minor, "currency": spec.currency,
                  "category": spec.category, "compatible": list(spec.compatible), "min_stock": spec.min_stock, "updated_at": now}
        found = (await self.session.execute(select(t.parts.c.id).where(t.parts.c.code == spec.code))).scalar_one_or_none()
        if found is not None:
            await self.session.execute(update(t.parts).where(t.parts.c.id == found).values(**values))
            return int(found), False
        result = await self.session.execute(insert(t.parts).values(code=spec.code, created_at=now, **values).returning(t.parts.c.id))
        return int(result.scalar_one()), True

    async def part(self, part_id: int) -> PartRow | None:
        row = (await self.session.execute(select(t.parts).where(t.parts.c.id == part_id))).mappings().first()
        return _part(row) if row else None

    async def parts(self, ids: Iterable[int] | None = None, *, after: int = 0, limit: int = 100) -> list[PartRow]:
        query = select(t.parts).order_by(t.parts.c.id)
        if ids is not None:
            query = query.where(t.parts.c.id.in_(sorted(set(ids))))
        else:
            query = query.where(t.parts.c.id > after).limit(limit)
        return [_part(row) for row in (await self.session.execute(query)).mappings()]

    # --- stock -------------------------------------------------------------------------------------------------

    async def level(self, part_id: int, location: str) -> int:
        found = (await self.session.execute(select(t.stock_levels.c.quantity).where(
            t.stock_levels.c.part_id == part_id, t.stock_levels.c.location == location))).scalar_one_or_none()
        return int(found or 0)

    async def levels_of(self, part_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """Each part's quantity per location (locations holding none are left out)."""
        ids = sorted(set(part_ids))
        out: dict[int, dict[str, int]] = {part_id: {} for part_id in ids}
        if ids:
            rows = await self.session.execute(select(t.stock_levels).where(t.stock_levels.c.part_id.in_(ids), t.stock_levels.c.quantity > 0))
            for row in rows.mappings():
                out[row["part_id"]][row["location"]] = row["quantity"]
        return out

    async def at_location(self, location: str) -> list[tuple[PartRow, int]]:
        """What a location holds, by part code (a van's stock for /stock)."""
        rows = await self.session.execute(
            select(t.parts, t.stock_levels.c.quantity).join(t.stock_levels, t.stock_levels.c.part_id == t.parts.c.id)
            .where(t.stock_levels.c.location == location, t.stock_levels.c.quantity > 0).order_by(t.parts.c.code))
        return [(_part(row), int(row["quantity"])) for row in rows.mappings()]

    async def take(self, part_id: int, location: str, quantity: int, now: datetime) -> int | None:
        """Take ``quantity`` out of a location, in one conditional UPDATE: the row changes only while it holds enough, so
        two sessions taking the last unit at once cannot both succeed (on PostgreSQL the second waits for the first's
        row lock and then finds too little). The quantity left, or None when there was not enough (nothing changed)."""
        result = await self.session.execute(
            update(t.stock_levels)
            .where(t.stock_levels.c.part_id == part_id, t.stock_levels.c.location == location, t.stock_levels.c.quantity >= quantity)
            .values(quantity=t.stock_levels.c.quantity - quantity, updated_at=now)
            .returning(t.stock_levels.c.quantity))
        left = result.scalar_one_or_none()
        return None if left is None else int(left)

    async def put(self, part_id: int, location: str, quantity: int, now: datetime) -> int:
        """Add to a location (its row made on first use); the quantity now there."""
        statement = self.store._insert(t.stock_levels).values(part_id=part_id, location=location, quantity=quantity, updated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=["part_id", "location"],
            set_={"quantity": t.stock_levels.c.quantity + quantity, "updated_at": now})
        result = await self.session.execute(statement.returning(t.stock_levels.c.quantity))
        return int(result.scalar_one())

    async def record_movement(self, *, part_id: int, kind: MovementKind, quantity: int, source: str | None, target: str | None,
                              actor: str, now: datetime, note: str = "", job_id: int | None = None, visit_id: int | None = None,
                              request_id: int | None = None) -> int:
        result = await self.session.execute(insert(t.stock_movements).values(
            part_id=part_id, kind=kind.value, quantity=quantity, source=source, target=target, job_id=job_id, visit_id=visit_id,
            request_id=request_id, actor=actor, note=note, occurred_at=now).returning(t.stock_movements.c.id))
        return int(result.scalar_one())

    async def movements(self, part_id: int, *, after: int = 0, limit: int = 100) -> list[MovementRow]:
        rows = await self.session.execute(select(t.stock_movements).where(t.stock_movements.c.part_id == part_id, t.stock_movements.c.id > after)
                                          .order_by(t.stock_movements.c.id).limit(limit))
        return [MovementRow(**dict(row)) for row in rows.mappings()]

    async def used_since(self, part_id: int, since: datetime) -> int:
        """How many of a part were used on jobs (or written off) since then: the reorder suggestion's rate."""
        found = await self.session.execute(select(func.coalesce(func.sum(_used_quantity()), 0)).where(
            t.stock_movements.c.part_id == part_id, t.stock_movements.c.occurred_at >= since,
            t.stock_movements.c.kind.in_((MovementKind.USE.value, MovementKind.WRITE_OFF.value, MovementKind.PUT_BACK.value))))
        return int(found.scalar_one())

    async def used_on_visits(self, visit_ids: Iterable[int]) -> dict[int, dict[int, int]]:
        """Per visit, the parts recorded as used on it so far (used less put back), by part id; none left out."""
        ids = sorted(set(visit_ids))
        out: dict[int, dict[int, int]] = {}
        if not ids:
            return out
        m = t.stock_movements.c
        rows = await self.session.execute(
            select(m.visit_id, m.part_id, func.sum(_used_quantity()).label("used"))
            .where(m.visit_id.in_(ids), m.kind.in_((MovementKind.USE.value, MovementKind.PUT_BACK.value)))
            .group_by(m.visit_id, m.part_id).order_by(m.visit_id, m.part_id))
        for visit_id, part_id, used in rows:
            if used > 0:
                out.setdefault(int(visit_id), {})[int(part_id)] = int(used)
        return out

    async def used_on_visit(self, visit_id: int) -> dict[int, int]:
        return (await self.used_on_visits([visit_id])).get(visit_id, {})

    async def warehouse_level(self, part_id: int) -> int:
        return await self.level(part_id, WAREHOUSE)

    # --- requests ----------------------------------------------------------------------------------------------

    async def add_request(self, *, part_id: int, technician_id: int, quantity: int, note: str, now: datetime) -> int:
        result = await self.session.execute(insert(t.part_requests).values(
            part_id=part_id, technician_id=technician_id, quantity=quantity, note=note, status=RequestStatus.PENDING.value,
            reason="", created_at=now).returning(t.part_requests.c.id))
        return int(result.scalar_one())

    async def request(self, request_id: int) -> RequestRow | None:
        row = (await self.session.execute(select(t.part_requests).where(t.part_requests.c.id == request_id))).mappings().first()
        return RequestRow(**dict(row)) if row else None

    async def decide(self, request_id: int, status: RequestStatus, dispatcher_id: int | None, reason: str, now: datetime) -> bool:
        """Settle a pending request; False when it was settled already (two dispatchers pressing at once: one wins)."""
        result = await self.session.execute(
            update(t.part_requests).where(t.part_requests.c.id == request_id, t.part_requests.c.status == RequestStatus.PENDING.value)
            .values(status=status.value, dispatcher_id=dispatcher_id, reason=reason, decided_at=now))
        return bool(getattr(result, "rowcount", 0))

    async def pending_of(self, technician_id: int) -> list[RequestRow]:
        rows = await self.session.execute(select(t.part_requests).where(
            t.part_requests.c.technician_id == technician_id, t.part_requests.c.status == RequestStatus.PENDING.value)
            .order_by(t.part_requests.c.id))
        return [RequestRow(**dict(row)) for row in rows.mappings()]

    async def group_regions(self) -> list[str]:
        """The regions the dispatch groups serve ("" for a group of every region): a shop-wide alert reaches them all."""
        rows = await self.session.execute(select(t.dispatch_groups.c.region).where(t.dispatch_groups.c.purpose == "dispatch").distinct())
        return sorted({region or "" for region in rows.scalars()})

    # --- fault trees and repair completions --------------------------------------------------------------------

    async def fault_trees(self) -> dict[str, FaultTree]:
        """The shop's own trees by product category (checked when set; a row that no longer parses is skipped)."""
        out: dict[str, FaultTree] = {}
        for row in (await self.session.execute(select(t.fault_trees))).mappings():
            try:
                out[row["product_category"]] = parse_fault_tree(row["tree"])
            except DomainError:
                continue
        return out

    async def put_fault_tree(self, product_category: str, tree: FaultTree | None, now: datetime) -> None:
        await self.session.execute(t.fault_trees.delete().where(t.fault_trees.c.product_category == product_category))
        if tree is not None:
            await self.session.execute(insert(t.fault_trees).values(product_category=product_category, tree=tree.to_json(), updated_at=now))

    async def add_completion(self, **values: Any) -> int:
        result = await self.session.execute(insert(t.repair_completions).values(**values).returning(t.repair_completions.c.id))
        return int(result.scalar_one())

    async def recorded_among(self, visit_ids: Iterable[int]) -> frozenset[int]:
        """Which of these visits have their repair record already."""
        ids = sorted(set(visit_ids))
        if not ids:
            return frozenset()
        rows = await self.session.execute(select(t.repair_completions.c.visit_id).where(t.repair_completions.c.visit_id.in_(ids)))
        return frozenset(int(r) for r in rows.scalars())

    async def completion_of(self, visit_id: int) -> dict[str, Any] | None:
        row = (await self.session.execute(select(t.repair_completions).where(t.repair_completions.c.visit_id == visit_id))).mappings().first()
        return dict(row) if row else None


def _used_quantity() -> Any:
    """A movement's quantity counted as use: a part put back counts against what was used."""
    return case((t.stock_movements.c.kind == MovementKind.PUT_BACK.value, -t.stock_movements.c.quantity), else_=t.stock_movements.c.quantity)
