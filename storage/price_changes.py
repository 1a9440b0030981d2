"""Rows of price changes: a visit's price increases (with who decided at each level) and its discounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from domain.fees import Money
from domain.price_changes import OPEN, BilledChange, ChangeKind, ChangeStatus
from storage import tables as t
from storage.repository import Store


@dataclass(frozen=True)
class ChangeRow:
    id: int
    job_id: int
    visit_id: int
    kind: ChangeKind
    status: ChangeStatus
    amount: Money
    reason: str
    photo_ids: tuple[int, ...]
    technician_id: int | None
    requested_by: str
    dispatcher_by: str | None
    dispatcher_at: datetime | None
    manager_by: str | None
    manager_at: datetime | None
    customer_at: datetime | None
    created_at: datetime

    @property
    def billed(self) -> BilledChange:
        return BilledChange(self.kind, self.amount, self.reason)


def _row(row: Any) -> ChangeRow:
    return ChangeRow(row["id"], row["job_id"], row["visit_id"], ChangeKind(row["kind"]), ChangeStatus(row["status"]),
                     Money(row["amount_minor"], row["currency"]), row["reason"], tuple(row["photo_ids"] or ()), row["technician_id"],
                     row["requested_by"], row["dispatcher_by"], row["dispatcher_at"], row["manager_by"], row["manager_at"],
                     row["customer_at"], row["created_at"])


class PriceChangeStore:
    def __init__(self, store: Store) -> None:
        self.session = store.session

    async def add(self, *, job_id: int, visit_id: int, kind: ChangeKind, status: ChangeStatus, amount: Money, reason: str,
                  photo_ids: Sequence[int], technician_id: int | None, requested_by: str, now: datetime) -> int:
        """A new change; an open increase holds the visit's one open place (a second at once loses the unique key)."""
        inserted = await self.session.execute(insert(t.price_changes).values(
            job_id=job_id, visit_id=visit_id, kind=kind.value, status=status.value,
            open_visit_id=visit_id if status in OPEN else None, amount_minor=amount.amount, currency=amount.currency,
            reason=reason[:500], photo_ids=list(photo_ids), technician_id=technician_id, requested_by=requested_by[:100],
            created_at=now, updated_at=now).returning(t.price_changes.c.id))
        return int(inserted.scalar_one())

    async def change(self, change_id: int, *, for_update: bool = False) -> ChangeRow | None:
        query = select(t.price_changes).where(t.price_changes.c.id == change_id)
        # a decision locks its row: two dispatchers pressing at once take turns, and the second finds it decided
        found = (await self.session.execute(query.with_for_update() if for_update else query)).mappings().first()
        return _row(found) if found is not None else None

    async def open_of_visit(self, visit_id: int) -> ChangeRow | None:
        found = (await self.session.execute(
            select(t.price_changes).where(t.price_changes.c.open_visit_id == visit_id))).mappings().first()
        return _row(found) if found is not None else None

    async def of_visit(self, visit_id: int) -> list[ChangeRow]:
        rows = (await self.session.execute(
            select(t.price_changes).where(t.price_changes.c.visit_id == visit_id).order_by(t.price_changes.c.id))).mappings()
        return [_row(row) for row in rows]

    async def billed_of_visit(self, visit_id: int) -> list[BilledChange]:
        """What the visit's bill carries: accepted increases and given discounts, in the order they were made."""
        return [row.billed for row in await self.of_visit(visit_id) if row.status is ChangeStatus.ACCEPTED]

    async def set_status(self, change_id: int, status: ChangeStatus, now: datetime, **who: Any) -> None:
        """The new status (and who decided, at which level: dispatcher_by/_at, manager_by/_at, customer_at)."""
        await self.session.execute(update(t.price_changes).where(t.price_changes.c.id == change_id).values(
            status=status.value, open_visit_id=None if status not in OPEN else t.price_changes.c.visit_id, updated_at=now, **who))


def change_out(row: ChangeRow) -> dict[str, Any]:
    """A change as the API shows it."""
    return {
        "id": row.id, "visit_id": row.visit_id, "kind": row.kind.value, "status": row.status.value, "amount_minor": row.amount.amount,
        "currency": row.amount.currency, "amount": row.amount.text(), "reason": row.reason, "photo_ids": list(row.photo_ids),
        "technician_id": row.technician_id, "requested_by": row.requested_by, "dispatcher_by": row.dispatcher_by,
        "dispatcher_at": row.dispatcher_at, "manager_by": row.manager_by, "manager_at": row.manager_at, "customer_at": row.customer_at,
        "created_at": row.created_at,
    }
