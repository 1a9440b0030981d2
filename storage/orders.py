"""Queries for order intake: per-source settings and every order as last received (its review state and price)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from storage import tables as t
from storage.repository import Store

Row = dict[str, Any]


class OrderStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    async def source(self, name: str) -> Row | None:
        row = (await self.session.execute(select(t.order_sources).where(t.order_sources.c.name == name))).mappings().first()
        return dict(row) if row is not None else None

    async def sources(self) -> list[Row]:
        rows = (await self.session.execute(select(t.order_sources).order_by(t.order_sources.c.name))).mappings()
        return [dict(r) for r in rows]

    async def put_source(self, name: str, values: Row, now: datetime) -> Row:
        """Create or replace a source's settings; its polling cursor stays where it is unless ``values`` moves it."""
        values = {**values, "updated_at": now}
        existing = await self.source(name)
        if existing is None:
            await self.session.execute(
                self.store._insert(t.order_sources).values(name=name, **values).on_conflict_do_nothing(index_elements=["name"])
            )
        else:
            await self.session.execute(update(t.order_sources).where(t.order_sources.c.name == name).values(**values))
        found = await self.source(name)
        assert found is not None
        return found

    async def update_source(self, name: str, **values: Any) -> None:
        await self.session.execute(update(t.order_sources).where(t.order_sources.c.name == name).values(**values))

    async def intake(self, source: str, external_ref: str, *, lock: bool = False) -> Row | None:
        statement = select(t.order_intakes).where(t.order_intakes.c.source == source, t.order_intakes.c.external_ref == external_ref)
        if lock and self.store.is_postgres:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).mappings().first()
        return dict(row) if row is not None else None

    async def intake_of_job(self, job_id: int) -> Row | None:
        row = (await self.session.execute(select(t.order_intakes).where(t.order_intakes.c.job_id == job_id))).mappings().first()
        return dict(row) if row is not None else None

    async def add_intake(self, values: Row) -> int:
        """A new order; losing the race to another copy of it raises IntegrityError, which the bus retries."""
        key = (await self.store._write(t.order_intakes.insert().values(**values))).inserted_primary_key
        if key is None:
            raise RuntimeError("order intake row was not inserted")
        inserted: int = key[0]
        return inserted

    async def update_intake(self, intake_id: int, **values: Any) -> None:
        await self.session.execute(update(t.order_intakes).where(t.order_intakes.c.id == intake_id).values(**values))

    async def review_queue(self, limit: int = 200) -> list[Row]:
        """Orders of every source waiting for the merchant's review, oldest first (the board's review queue)."""
        statement = (
            select(t.order_intakes)
            .where(t.order_intakes.c.state == "pending_review")
            .order_by(t.order_intakes.c.received_at, t.order_intakes.c.id)
            .limit(limit)
        )
        return [dict(r) for r in (await self.session.execute(statement)).mappings()]

    async def queue(self, source: str, state: str, limit: int = 200) -> list[Row]:
        statement = (
            select(t.order_intakes)
            .where(t.order_intakes.c.source == source, t.order_intakes.c.state == state)
            .order_by(t.order_intakes.c.received_at, t.order_intakes.c.id)
            .limit(limit)
        )
        return [dict(r) for r in (await self.session.execute(statement)).mappings()]
