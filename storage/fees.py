"""Rows of fees: price-list entries, each visit's bill with its lines, and the payments made on it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from domain.fees import BillLine, BillStatus, Money, PaymentMethod, PriceEntry, Pricing
from storage import tables as t
from storage.repository import Store


@dataclass(frozen=True)
class PaymentRow:
    id: int
    amount: Money
    method: str
    reference: str | None
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True)
class BillRow:
    id: int
    job_id: int
    visit_id: int
    status: str  # domain.fees.BillStatus
    total: Money
    paid: Money
    price_entry_id: int | None
    created_at: datetime
    lines: tuple[BillLine, ...] = ()
    payments: tuple[PaymentRow, ...] = ()

    @property
    def outstanding(self) -> Money:
        return self.total - self.paid


def _entry(row: Any) -> PriceEntry:
    return PriceEntry(row["service_kind"], row["product_category"], row["region"], row["urgency"], Pricing(row["pricing"]),
                      Money(row["unit_price_minor"], row["currency"]), row["hour_step_minutes"], row["name"], row["id"])


def _line(row: Any, currency: str) -> BillLine:
    return BillLine(row["kind"], row["description"], row["quantity"], row["unit"], Money(row["unit_price_minor"], currency),
                    Money(row["amount_minor"], currency), row["part_id"])


class FeeStore:
    def __init__(self, store: Store) -> None:
        self.session = store.session

    # --- the price list ---

    async def put_entry(self, entry: PriceEntry, now: datetime) -> int:
        """Insert or replace the entry of the same key; its id."""
        e = t.price_list_entries
        values = {"pricing": entry.pricing.value, "unit_price_minor": entry.unit_price.amount, "currency": entry.unit_price.currency,
                  "hour_step_minutes": entry.hour_step_minutes, "name": entry.name, "updated_at": now}
        key = (e.c.service_kind == entry.service_kind, e.c.product_category == entry.product_category, e.c.region == entry.region,
               e.c.urgency == entry.urgency)
        found = (await self.session.execute(select(e.c.id).where(*key))).scalar()
        if found is not None:
            await self.session.execute(update(e).where(e.c.id == found).values(**values))
            return int(found)
        # two puts of a new key at once: the second loses the unique key and the bus retries it, finding the row
        inserted = await self.session.execute(insert(e).values(
            service_kind=entry.service_kind, product_category=entry.product_category, region=entry.region, urgency=entry.urgency,
            **values).returning(e.c.id))
        return int(inserted.scalar_one())

    async def entries(self, *, service_kind: str | None = None) -> list[PriceEntry]:
        e = t.price_list_entries
        query = select(e).order_by(e.c.service_kind, e.c.product_category, e.c.region, e.c.urgency)
        if service_kind is not None:
            query = query.where(e.c.service_kind == service_kind)
        return [_entry(row) for row in (await self.session.execute(query)).mappings()]

    async def has_entries(self) -> bool:
        return (await self.session.execute(select(t.price_list_entries.c.id).limit(1))).first() is not None

    # --- bills ---

    async def bill_id_of(self, visit_id: int, *, for_update: bool = False) -> int | None:
        query = select(t.bills.c.id).where(t.bills.c.visit_id == visit_id)
        # a payment locks its bill so two at once cannot both fit under what is owed
        found = (await self.session.execute(query.with_for_update() if for_update else query)).scalar()
        return int(found) if found is not None else None

    async def save_bill(self, *, bill_id: int | None, job_id: int, visit_id: int, status: str, currency: str, lines: Sequence[BillLine],
                        total: Money, price_entry_id: int | None, now: datetime) -> int:
        """A new bill, or a bill priced again (its lines replaced; what was paid stays)."""
        values = {"status": status, "currency": currency, "total_minor": total.amount, "price_entry_id": price_entry_id, "updated_at": now}
        if bill_id is None:
            inserted = await self.session.execute(insert(t.bills).values(
                job_id=job_id, visit_id=visit_id, paid_minor=0, created_at=now, **values).returning(t.bills.c.id))
            bill_id = int(inserted.scalar_one())
        else:
            await self.session.execute(update(t.bills).where(t.bills.c.id == bill_id).values(**values))
            await self.session.execute(delete(t.bill_lines).where(t.bill_lines.c.bill_id == bill_id))
        if lines:
            await self.session.execute(insert(t.bill_lines), [
                {"bill_id": bill_id, "position": position, "kind": line.kind, "description": line.description[:200], "quantity": line.quantity,
                 "unit": line.unit[:20], "unit_price_minor": line.unit_price.amount, "amount_minor": line.amount.amount, "part_id": line.part_id}
                for position, line in enumerate(lines)
            ])
        return bill_id

    async def add_payment(self, bill_id: int, amount: Money, method: PaymentMethod, reference: str | None, recorded_by: str,
                          now: datetime) -> int:
        """The payment, and the bill's paid sum with it (the caller holds the bill's row lock)."""
        inserted = await self.session.execute(insert(t.payments).values(
            bill_id=bill_id, amount_minor=amount.amount, currency=amount.currency, method=method.value, reference=reference,
            recorded_by=recorded_by[:100], recorded_at=now).returning(t.payments.c.id))
        await self.session.execute(update(t.bills).where(t.bills.c.id == bill_id).values(
            paid_minor=t.bills.c.paid_minor + amount.amount, updated_at=now))
        return int(inserted.scalar_one())

    async def bill(self, bill_id: int) -> BillRow | None:
        found = await self._bills(t.bills.c.id == bill_id)
        return found[0] if found else None

    async def bill_of_visit(self, visit_id: int) -> BillRow | None:
        found = await self._bills(t.bills.c.visit_id == visit_id)
        return found[0] if found else None

    async def bills_of_job(self, job_id: int) -> list[BillRow]:
        return await self._bills(t.bills.c.job_id == job_id)

    async def _bills(self, where: Any) -> list[BillRow]:
        """Bills with their lines and payments: three queries, however many."""
        rows = (await self.session.execute(select(t.bills).where(where).order_by(t.bills.c.id))).mappings().all()
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        currency = {row["id"]: row["currency"] for row in rows}
        lines: dict[int, list[BillLine]] = defaultdict(list)
        for line in (await self.session.execute(
                select(t.bill_lines).where(t.bill_lines.c.bill_id.in_(ids)).order_by(t.bill_lines.c.bill_id, t.bill_lines.c.position))).mappings():
            lines[line["bill_id"]].append(_line(line, currency[line["bill_id"]]))
        paid: dict[int, list[PaymentRow]] = defaultdict(list)
        for pay in (await self.session.execute(
                select(t.payments).where(t.payments.c.bill_id.in_(ids)).order_by(t.payments.c.id))).mappings():
            paid[pay["bill_id"]].append(PaymentRow(pay["id"], Money(pay["amount_minor"], pay["currency"]), pay["method"], pay["reference"],
                                                   pay["recorded_by"], pay["recorded_at"]))
        return [
            BillRow(row["id"], row["job_id"], row["visit_id"], row["status"], Money(row["total_minor"], row["currency"]),
                    Money(row["paid_minor"], row["currency"]), row["price_entry_id"], row["created_at"], tuple(lines[row["id"]]),
                    tuple(paid[row["id"]]))
            for row in rows
        ]


def bill_out(bill: BillRow) -> dict[str, Any]:
    """A bill as the job details show it."""
    return {
        "id": bill.id, "visit_id": bill.visit_id, "status": bill.status, "currency": bill.total.currency, "total_minor": bill.total.amount,
        "paid_minor": bill.paid.amount, "outstanding_minor": bill.outstanding.amount if bill.status == BillStatus.PRICED.value else None,
        "total": bill.total.text(),
        "lines": [{"kind": line.kind, "description": line.description, "quantity": line.quantity, "unit": line.unit,
                   "unit_price_minor": line.unit_price.amount, "amount_minor": line.amount.amount, "part_id": line.part_id} for line in bill.lines],
        "payments": [{"id": p.id, "amount_minor": p.amount.amount, "currency": p.amount.currency, "method": p.method, "reference": p.reference,
                      "recorded_by": p.recorded_by, "recorded_at": p.recorded_at} for p in bill.payments],
    }


async def job_bills(store: Store, job_id: int) -> list[dict[str, Any]]:
    """The job's bills as its details show them, one per billed visit."""
    return [bill_out(bill) for bill in await FeeStore(store).bills_of_job(job_id)]
