"""The fees API: put and list price-list entries, price a completed visit's bill again, and record payments on it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from domain import commands as c
from domain.fees import ANY, CURRENCIES, MAX_MINOR, MAX_NAME, MAX_REFERENCE, MAX_STEP_MINUTES, PriceEntry
from storage.fees import FeeStore, bill_out
from storage.repository import Store
from webhooks.access import PrincipalDep, guard_path_records, needs, refuse_region, require_token
from webhooks.api import BODY, CONFLICT, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, IdPath, Int, ServiceDep, ServiceKindName, StrictIn, _apply
from webhooks.api import require_json
from webhooks.fees_models import BillOut

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token), Depends(guard_path_records)],
                   tags=["fees"], responses={**UNAUTHORIZED, **DISABLED})

Currency = Literal[tuple(sorted(CURRENCIES))]  # type: ignore[valid-type]
Dimension = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
Minor = Annotated[Int, Field(ge=0, le=MAX_MINOR)]


class PriceEntryIn(StrictIn):
    service_kind: ServiceKindName
    product_category: Dimension = Field(ANY, description='a product category, or "any"', examples=["aircon"])
    region: Dimension = Field(ANY, description='a region, or "any"', examples=["Huangpu"])
    urgency: Literal["normal", "urgent", "any"] = "any"
    pricing: Literal["per_piece", "per_hour", "fixed"]
    unit_price_minor: Minor = Field(description="per piece, per hour or once, in the currency's minor units (fen, cents)", examples=[15000])
    currency: Currency = Field(description="ISO 4217 code", examples=["CNY"])  # type: ignore[valid-type]
    hour_step_minutes: Int = Field(30, ge=1, le=MAX_STEP_MINUTES, description="per_hour: time on site is rounded up to this step")
    name: str = Field("", max_length=MAX_NAME, description="the line's text on the bill; empty: the work type")


class PriceEntryOut(BaseModel):
    id: int
    service_kind: str
    product_category: str
    region: str
    urgency: str
    pricing: str
    unit_price_minor: int
    currency: str
    hour_step_minutes: int
    name: str


class PaymentIn(StrictIn):
    amount_minor: Int = Field(ge=1, le=MAX_MINOR, description="in the bill's currency's minor units; at most what is still owed")
    currency: Currency  # type: ignore[valid-type]
    method: Literal["cash", "transfer", "online"]
    reference: str | None = Field(None, max_length=MAX_REFERENCE, description="required for online payments")


def _entry_out(entry: PriceEntry) -> PriceEntryOut:
    assert entry.id is not None
    return PriceEntryOut(id=entry.id, service_kind=entry.service_kind, product_category=entry.product_category, region=entry.region,
                         urgency=entry.urgency, pricing=entry.pricing.value, unit_price_minor=entry.unit_price.amount,
                         currency=entry.unit_price.currency, hour_step_minutes=entry.hour_step_minutes, name=entry.name)


async def _bill_out(app: ServiceDep, visit_id: int) -> BillOut:
    async with app.sessions() as session:
        bill = await FeeStore(Store(session)).bill_of_visit(visit_id)
    if bill is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "bill_not_found")
    return BillOut(**bill_out(bill))


@router.put("/price-lists", response_model=PriceEntryOut, responses={**BODY}, dependencies=[Depends(require_json), needs("fees:manage")])
async def put_price_entry(body: PriceEntryIn, app: ServiceDep, who: PrincipalDep) -> PriceEntryOut:
    """Set the price of a work type × product category × region × urgency ("any" matches every value; the most specific
    entry prices a visit: category before region before urgency). The same four again replace the entry."""
    refuse_region(who, None if body.region == ANY else body.region)  # a token for some regions does not price every region
    await _apply(app, "api:price-list", c.PutPriceEntry(
        body.service_kind, body.product_category, body.region, body.urgency, body.pricing, body.unit_price_minor, body.currency,
        body.hour_step_minutes, body.name))
    async with app.sessions() as session:
        entries = await FeeStore(Store(session)).entries(service_kind=body.service_kind)
    entry = next(e for e in entries if (e.product_category, e.region, e.urgency) == (body.product_category, body.region, body.urgency))
    return _entry_out(entry)


@router.get("/price-lists", response_model=list[PriceEntryOut], responses={**INVALID}, dependencies=[needs("fees:read")])
async def list_price_entries(app: ServiceDep, service_kind: Annotated[ServiceKindName | None, Query()] = None) -> list[PriceEntryOut]:
    """The price list, by work type, category, region and urgency."""
    async with app.sessions() as session:
        return [_entry_out(entry) for entry in await FeeStore(Store(session)).entries(service_kind=service_kind)]


@router.post("/visits/{visit_id}/bill", response_model=BillOut, responses={**NOT_FOUND, **INVALID, **CONFLICT}, dependencies=[needs("fees:write")])
async def price_bill(visit_id: IdPath, app: ServiceDep) -> BillOut:
    """Price a completed visit's bill that had no price, once the price list has one for it (409 when it is priced
    already or the visit is not completed; 422 no_price_for_visit when the list still has none). The customer gets it."""
    await _apply(app, f"api:bill:{visit_id}", c.IssueBill(visit_id))
    return await _bill_out(app, visit_id)


@router.post("/visits/{visit_id}/payments", response_model=BillOut, status_code=status.HTTP_201_CREATED, responses={**BODY, **NOT_FOUND},
             dependencies=[Depends(require_json), needs("fees:write")])
async def record_payment(visit_id: IdPath, body: PaymentIn, app: ServiceDep, who: PrincipalDep) -> BillOut:
    """Record a payment on the visit's bill: more than zero, in the bill's currency, never more than is still owed
    (422 with the reason: payment_over_owed, money_currency_mismatch, bill_unpriced, payment_reference_missing …)."""
    await _apply(app, f"api:payment:{visit_id}", c.RecordPayment(
        visit_id, body.amount_minor, body.currency, body.method, body.reference, f"api:{who.kind}:{who.name}"[:100]))
    return await _bill_out(app, visit_id)
