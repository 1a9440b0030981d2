"""The bill as the API shows it: on its own routes and in the job's details (kept apart so both can import it)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class BillLineOut(BaseModel):
    kind: str = Field(description="labour, part, increase (a price increase the customer agreed to) or discount (a manager's, negative)")
    description: str
    quantity: int = Field(description="pieces, or minutes for labour priced per hour")
    unit: str
    unit_price_minor: int
    amount_minor: int
    part_id: int | None


class PaymentOut(BaseModel):
    id: int
    amount_minor: int
    currency: str
    method: str
    reference: str | None
    recorded_by: str
    recorded_at: datetime


class BillOut(BaseModel):
    id: int
    visit_id: int
    status: Literal["priced", "unpriced"] = Field(description="unpriced: no price-list entry fits the visit yet; nothing is owed")
    currency: str
    total_minor: int
    paid_minor: int
    outstanding_minor: int | None = Field(description="what is still owed (none while unpriced)")
    total: str = Field(description="the total as people read it, e.g. CNY 1,234.50")
    lines: list[BillLineOut]
    payments: list[PaymentOut]
