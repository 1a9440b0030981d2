"""Queries for timers, SLA policies and alert sinks: rows with a due time, swept by idempotent workers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from storage import tables as t
from storage.repository import Store
from storage.rows import AlertSinkRow, Json, TimerRow, all_shaped, shaped


class ScheduleStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    async def set_timer(self, *, key: str, kind: str, due_at: datetime, now: datetime, visit_id: int | None = None,
                        technician_id: int | None = None, payload: Json | None = None) -> None:
        """Create the timer unless one with this key exists: setting a timer twice is a no-op."""
        await self.session.execute(
            self.store._insert(t.timers)
            .values(key=key, kind=kind, due_at=due_at, visit_id=visit_id, technician_id=technician_id,
                    payload=payload or {}, status="pending", created_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )

    async def cancel_timers(self, visit_id: int, kind: str | None = None, stage: str | None = None) -> None:
        statement = update(t.timers).where(t.timers.c.visit_id == visit_id, t.timers.c.status == "pending")
        if kind:
            statement = statement.where(t.timers.c.kind == kind)
        if stage:
            statement = statement.where(t.timers.c.key.like(f"sla:{visit_id}:{stage}:%"))
        await self.session.execute(statement.values(status="cancelled"))

    async def due_timer_ids(self, now: datetime, limit: int = 100, exclude_kinds: tuple[str, ...] = ()) -> list[int]:
        statement = (
            select(t.timers.c.id)
            .where(t.timers.c.status == "pending", t.timers.c.due_at <= now)
            .order_by(t.timers.c.due_at, t.timers.c.id)
            .limit(limit)
        )
        if exclude_kinds:
            statement = statement.where(t.timers.c.kind.not_in(exclude_kinds))
        return list((await self.session.execute(statement)).scalars())

    async def due_timers(self, now: datetime, kinds: tuple[str, ...], limit: int = 100) -> list[TimerRow]:
        """Due timers of these kinds, read without claiming them (the caller claims them when it applies)."""
        statement = (
            select(t.timers)
            .where(t.timers.c.status == "pending", t.timers.c.due_at <= now, t.timers.c.kind.in_(kinds))
            .order_by(t.timers.c.due_at, t.timers.c.id)
            .limit(limit)
        )
        return all_shaped((await self.session.execute(statement)).mappings(), TimerRow)

    async def timers_of_kind(self, kind: str) -> list[TimerRow]:
        rows = (await self.session.execute(select(t.timers).where(t.timers.c.kind == kind).order_by(t.timers.c.id))).mappings()
        return all_shaped(rows, TimerRow)

    async def claim_timer(self, timer_id: int, now: datetime) -> TimerRow | None:
        """Take a due timer for firing; None when another worker fired or cancelled it first."""
        statement = select(t.timers).where(t.timers.c.id == timer_id, t.timers.c.status == "pending")
        if self.store.is_postgres:
            statement = statement.with_for_update(skip_locked=True)
        row = (await self.session.execute(statement)).mappings().first()
        if row is None:
            return None
        await self.session.execute(update(t.timers).where(t.timers.c.id == timer_id).values(status="done", fired_at=now))
        return shaped(row, TimerRow)

    async def timers_of(self, visit_id: int) -> list[TimerRow]:
        rows = (await self.session.execute(select(t.timers).where(t.timers.c.visit_id == visit_id).order_by(t.timers.c.due_at))).mappings()
        return all_shaped(rows, TimerRow)

    async def alert_sinks_for(self, region: str) -> list[AlertSinkRow]:
        statement = select(t.alert_sinks).where((t.alert_sinks.c.region == region) | t.alert_sinks.c.region.is_(None))
        return all_shaped((await self.session.execute(statement)).mappings(), AlertSinkRow)

    async def put_alert_sink(self, *, name: str, region: str | None, kind: str, url: str, secret: str | None, keyword: str | None, priority: int) -> int:
        values = dict(name=name, region=region, kind=kind, url=url, secret=secret, keyword=keyword, priority=priority)
        existing: int | None = (await self.session.execute(select(t.alert_sinks.c.id).where(t.alert_sinks.c.name == name))).scalar_one_or_none()
        if existing is None:
            key = (await self.store._write(t.alert_sinks.insert().values(**values))).inserted_primary_key
            if key is None:
                raise RuntimeError(f"alert sink {name!r} was not inserted")
            inserted: int = key[0]
            return inserted
        await self.session.execute(update(t.alert_sinks).where(t.alert_sinks.c.id == existing).values(**values))
        return existing

    async def alert_sinks(self) -> list[AlertSinkRow]:
        statement = select(t.alert_sinks).order_by(t.alert_sinks.c.priority, t.alert_sinks.c.id)
        return all_shaped((await self.session.execute(statement)).mappings(), AlertSinkRow)

    async def sla_policies(self) -> list[dict[str, Any]]:
        """As domain.sla.policy_for reads them."""
        return [dict(r) for r in (await self.session.execute(select(t.sla_policies))).mappings()]

    async def put_sla_policy(self, *, region: str | None, service_kind: str | None, stage: str, minutes: int | None, tiers: list[int], auto_reassign: bool) -> None:
        """Set a stage's policy; minutes may be None for arrival, which runs to the end of the booked window."""
        existing = (
            await self.session.execute(
                select(t.sla_policies.c.id).where(
                    t.sla_policies.c.stage == stage,
                    t.sla_policies.c.region.is_(None) if region is None else t.sla_policies.c.region == region,
                    t.sla_policies.c.service_kind.is_(None) if service_kind is None else t.sla_policies.c.service_kind == service_kind,
                )
            )
        ).scalar_one_or_none()
        values = dict(region=region, service_kind=service_kind, stage=stage, minutes=minutes, tiers=tiers, auto_reassign=auto_reassign)
        if existing is None:
            await self.session.execute(t.sla_policies.insert().values(**values))
        else:
            await self.session.execute(update(t.sla_policies).where(t.sla_policies.c.id == existing).values(**values))
