"""The price-changes API: a visit's price increases and discounts, the back office's decision on an increase (a manager's
above the managers' limit), and a manager's discount on a bill."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from domain import commands as c
from domain.access import Principal
from domain.model import Visit
from domain.price_changes import MAX_CHANGE_MINOR, MAX_PERCENT, MAX_REASON, ChangeStatus
from storage.fees import FeeStore, bill_out
from storage.price_changes import ChangeRow, PriceChangeStore, change_out
from storage.repository import Store
from webhooks.access import PrincipalDep, guard_path_records, needs, require_token
from webhooks.api import BODY, CONFLICT, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, IdPath, Int, ServiceDep, StrictIn, _apply, _error, require_json
from webhooks.fees_models import BillOut

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token), Depends(guard_path_records)],
                   tags=["fees"], responses={**UNAUTHORIZED, **DISABLED})

MANAGE = "fees:manage"


class PriceChangeOut(BaseModel):
    id: int
    visit_id: int
    kind: Literal["increase", "discount"]
    status: Literal["pending", "escalated", "approved", "accepted", "declined", "refused"] = Field(
        description="pending: a dispatcher decides; escalated: above the managers' limit, a manager decides; approved: the customer "
                    "is asked; accepted: on the bill; declined: by the shop; refused: by the customer")
    amount_minor: int = Field(description="positive, in the currency's minor units (a discount takes it off the bill)")
    currency: str
    amount: str = Field(description="as people read it, e.g. CNY 150.00")
    reason: str
    photo_ids: list[int] = Field(description="photos of the cause (GET /api/v1/photos/{id})")
    technician_id: int | None
    requested_by: str
    dispatcher_by: str | None
    dispatcher_at: datetime | None
    manager_by: str | None
    manager_at: datetime | None
    customer_at: datetime | None
    created_at: datetime


class DiscountIn(StrictIn):
    amount_minor: Int | None = Field(None, ge=1, le=MAX_CHANGE_MINOR, description="the discount in the bill's minor units; or percent")
    percent: Int | None = Field(None, ge=1, le=MAX_PERCENT, description="a whole percent of the bill's total (rounded half up); or amount_minor")
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON, pattern=r"\S", description="shown on the bill and to the customer")]


def _actor(who: Principal) -> str:
    return f"api:{who.kind}:{who.name}"[:100]


async def _visit_changes(app: ServiceDep, visit_id: int) -> list[ChangeRow]:
    async with app.sessions() as session:
        store = Store(session)
        if await store.get(Visit, visit_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "visit_not_found")
        return await PriceChangeStore(store).of_visit(visit_id)


@router.get("/visits/{visit_id}/price-changes", response_model=list[PriceChangeOut], responses={**NOT_FOUND, **INVALID},
            dependencies=[needs("fees:read")])
async def list_price_changes(visit_id: IdPath, app: ServiceDep) -> list[PriceChangeOut]:
    """The visit's price increases (with who decided at each level) and discounts, oldest first."""
    return [PriceChangeOut(**change_out(row)) for row in await _visit_changes(app, visit_id)]


async def _decide(app: ServiceDep, who: Principal, visit_id: int, change_id: int, approve: bool) -> PriceChangeOut:
    found = next((row for row in await _visit_changes(app, visit_id) if row.id == change_id and row.kind.value == "increase"), None)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "pricechg_not_found")
    if found.status is ChangeStatus.ESCALATED and not who.can(MANAGE):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"pricechg_manager_needed: above the managers' limit a token with {MANAGE} decides")
    await _apply(app, f"api:price-change:{change_id}", c.DecidePriceIncrease(change_id, approve, manager=who.can(MANAGE), actor=_actor(who)))
    changed = next(row for row in await _visit_changes(app, visit_id) if row.id == change_id)
    return PriceChangeOut(**change_out(changed))


DECIDE_ANSWERS = {
    **NOT_FOUND, **INVALID, **CONFLICT,
    403: _error("the token lacks fees:write, or the increase is above the managers' limit and it lacks fees:manage, or the visit "
                "is outside its regions"),
}


@router.post("/visits/{visit_id}/price-changes/{change_id}/approve", response_model=PriceChangeOut, responses=DECIDE_ANSWERS,
             dependencies=[needs("fees:write")])
async def approve_price_increase(visit_id: IdPath, change_id: IdPath, app: ServiceDep, who: PrincipalDep) -> PriceChangeOut:
    """Approve a technician's increase. Up to the managers' limit (FIELDCHAT_PRICE_INCREASE_MANAGER_ABOVE_MINOR) fees:write is
    enough and the customer is asked next; above it the request goes on to a manager (status escalated) unless the token
    holds fees:manage too, whose approval is a manager's (422 pricechg_decided when it was decided already)."""
    return await _decide(app, who, visit_id, change_id, True)


@router.post("/visits/{visit_id}/price-changes/{change_id}/decline", response_model=PriceChangeOut, responses=DECIDE_ANSWERS,
             dependencies=[needs("fees:write")])
async def decline_price_increase(visit_id: IdPath, change_id: IdPath, app: ServiceDep, who: PrincipalDep) -> PriceChangeOut:
    """Decline a technician's increase (an escalated one needs fees:manage); the technician is told to carry on at the agreed price."""
    return await _decide(app, who, visit_id, change_id, False)


class CustomerAnswerIn(StrictIn):
    agreed: bool = Field(description="true: the customer agreed (the increase goes on the bill); false: they declined")


@router.post("/visits/{visit_id}/price-changes/{change_id}/customer", response_model=PriceChangeOut,
             responses={**BODY, **NOT_FOUND, **CONFLICT}, dependencies=[Depends(require_json), needs("fees:write")])
async def record_customer_answer(visit_id: IdPath, change_id: IdPath, body: CustomerAnswerIn, app: ServiceDep,
                                 who: PrincipalDep) -> PriceChangeOut:
    """The customer's answer to an approved increase, taken by the office (by phone: they have no chat, or they called).
    It counts as the customer's own — the bill is priced again, the technician and the dispatchers are told, the
    customer's question in their chat loses its buttons — and the job's timeline names the token that recorded it
    (422 pricechg_decided when it is not waiting for the customer)."""
    found = next((row for row in await _visit_changes(app, visit_id) if row.id == change_id and row.kind.value == "increase"), None)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "pricechg_not_found")
    await _apply(app, f"api:price-change-customer:{change_id}", c.RecordPriceIncreaseAnswer(change_id, body.agreed, actor=_actor(who)))
    changed = next(row for row in await _visit_changes(app, visit_id) if row.id == change_id)
    return PriceChangeOut(**change_out(changed))


@router.post("/visits/{visit_id}/discount", response_model=BillOut, status_code=status.HTTP_201_CREATED,
             responses={**BODY, **NOT_FOUND, **CONFLICT}, dependencies=[Depends(require_json), needs(MANAGE)])
async def give_discount(visit_id: IdPath, body: DiscountIn, app: ServiceDep, who: PrincipalDep) -> BillOut:
    """A manager's discount on the visit's priced bill: amount_minor or percent (one of the two) and the reason. It becomes a
    "discount" line; the total never goes below zero nor below what was paid (422 with the reason:
    pricechg_discount_over_total, pricechg_discount_below_paid, pricechg_discount_needs_bill …). The customer gets the bill."""
    if (body.amount_minor is None) == (body.percent is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "pricechg_discount_one_of: give amount_minor or percent, one of the two")
    await _apply(app, f"api:discount:{visit_id}", c.GiveDiscount(visit_id, body.amount_minor, body.percent, body.reason, _actor(who)))
    async with app.sessions() as session:
        bill = await FeeStore(Store(session)).bill_of_visit(visit_id)
    assert bill is not None  # the discount was given on it
    return BillOut(**bill_out(bill))
