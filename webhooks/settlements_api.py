"""The settlements API: statements (JSON and CSV), the fees under review with their status, releasing and adjusting a
frozen fee, closing a month, and each technician's payout rule."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, Field

from domain import commands as c
from domain.fees import MAX_MINOR, Money
from domain.model import Technician
from domain.settlement import MAX_REASON
from services.settlement import statements_csv
from storage.repository import Store
from storage.settlement import MAX_PAGE, ItemRow, SettlementStore, StatementRow
from webhooks.access import PrincipalDep, guard_record, needs, require_token
from webhooks.api import BODY, CONFLICT, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, IdPath, Int, ServiceDep, StrictIn, _apply, require_json

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["settlements"], responses={**UNAUTHORIZED, **DISABLED})

Period = Annotated[str, Field(pattern=r"^(20\d\d|21\d\d|2200)-(0[1-9]|1[0-2])$", description="YYYY-MM", examples=["2026-11"])]
PeriodQuery = Annotated[str | None, Query(pattern=r"^(20\d\d|21\d\d|2200)-(0[1-9]|1[0-2])$", description="YYYY-MM")]
TechnicianQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


class ItemOut(BaseModel):
    id: int
    visit_id: int
    job_id: int
    order_ref: str = Field(description="the order's reference at its source")
    kind: str
    region: str
    technician_id: int
    status: Literal["in_review", "frozen", "ready", "settled"]
    currency: str
    bill_total_minor: int = Field(description="the visit's bill when its review started")
    base_minor: int = Field(description="what the share is of: the bill without its parts")
    share_percent: int
    earned_minor: int = Field(description="by the payout rule")
    amount_minor: int = Field(description="what is paid: earned, or the adjusted amount")
    amount: str
    confirmed_at: datetime
    review_ends_at: datetime
    freeze_reason: str | None
    frozen_at: datetime | None
    released_by: str | None
    released_at: datetime | None
    adjusted_by: str | None
    adjust_reason: str | None
    adjusted_at: datetime | None
    ready_at: datetime | None
    period: str | None = Field(description="YYYY-MM it is settled in: the month it became ready")
    statement_id: int | None


class StatementOut(BaseModel):
    id: int
    number: str
    technician_id: int
    technician: str
    period: str
    cycle: Literal["monthly", "per_order"]
    currency: str
    total_minor: int
    total: str
    line_count: int
    created_at: datetime
    lines: list[ItemOut]


class AdjustIn(StrictIn):
    amount_minor: Int = Field(ge=0, le=MAX_MINOR, description="what the visit pays the technician, in the fee's currency's minor units")
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class CloseIn(StrictIn):
    period: Period


class PayoutRuleIn(StrictIn):
    cycle: Literal["monthly", "per_order"] | None = Field(description="monthly (employees), per_order (partners); null: the shop's default")
    share_percent: Int | None = Field(ge=0, le=100, description="of the billed work (parts are the shop's); null: the shop's default")


class PayoutRuleOut(BaseModel):
    technician_id: int
    cycle: Literal["monthly", "per_order"] = Field(description="in effect (the technician's own, else the shop's default)")
    share_percent: int
    own_cycle: str | None = Field(description="the technician's own; null: the default applies")
    own_share_percent: int | None


def _item_out(item: ItemRow) -> ItemOut:
    return ItemOut(id=item.id, visit_id=item.visit_id, job_id=item.job_id, order_ref=item.job_ref, kind=item.kind, region=item.region,
                   technician_id=item.technician_id, status=item.status,  # type: ignore[arg-type]
                   currency=item.currency, bill_total_minor=item.bill_total_minor, base_minor=item.base_minor, share_percent=item.share_percent,
                   earned_minor=item.earned_minor, amount_minor=item.amount_minor, amount=Money(item.amount_minor, item.currency).text(),
                   confirmed_at=item.confirmed_at, review_ends_at=item.review_ends_at, freeze_reason=item.freeze_reason, frozen_at=item.frozen_at,
                   released_by=item.released_by, released_at=item.released_at, adjusted_by=item.adjusted_by, adjust_reason=item.adjust_reason,
                   adjusted_at=item.adjusted_at, ready_at=item.ready_at, period=item.period, statement_id=item.statement_id)


def _statement_out(statement: StatementRow) -> StatementOut:
    return StatementOut(id=statement.id, number=statement.number, technician_id=statement.technician_id, technician=statement.technician,
                        period=statement.period, cycle=statement.cycle,  # type: ignore[arg-type]
                        currency=statement.currency, total_minor=statement.total_minor, total=Money(statement.total_minor, statement.currency).text(),
                        line_count=statement.line_count, created_at=statement.created_at, lines=[_item_out(item) for item in statement.lines])


def _all_regions(who: PrincipalDep) -> None:
    """A statement sums a technician's work in every region: only a caller for every region sees or makes one."""
    if who.regions is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "settlements_all_regions: settlements span regions; this token or account is for some only")


async def _statement(app: ServiceDep, statement_id: int) -> StatementRow:
    async with app.sessions() as session:
        found = await SettlementStore(Store(session)).statement(statement_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "statement_not_found")
    return found


async def _item(app: ServiceDep, who: PrincipalDep, item_id: int) -> ItemRow:
    async with app.sessions() as session:
        found = await SettlementStore(Store(session)).item(item_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "settle_item_not_found")
    await guard_record(app, who, visit_id=found.visit_id)  # a fee is its visit's: a token for other regions is refused
    return found


@router.get("/settlements", response_model=list[StatementOut], responses={**INVALID}, dependencies=[needs("fees:read")])
async def list_statements(app: ServiceDep, who: PrincipalDep, technician_id: TechnicianQuery = None, period: PeriodQuery = None,
                          limit: Limit = 100, offset: Offset = 0) -> list[StatementOut]:
    """Settlement statements, oldest first, by technician and period."""
    _all_regions(who)
    async with app.sessions() as session:
        found = await SettlementStore(Store(session)).statements(technician_id=technician_id, period=period, limit=limit, offset=offset)
    return [_statement_out(statement) for statement in found]


@router.get("/settlements/{statement_id}.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND, **INVALID},
            dependencies=[needs("fees:read")])
async def statement_csv(statement_id: IdPath, app: ServiceDep, who: PrincipalDep) -> Response:
    """The statement as a spreadsheet: a row per line (visit, order, day, work type, bill, share, amount, adjustment and
    its reason), then the total."""
    _all_regions(who)
    statement = await _statement(app, statement_id)
    return Response(statements_csv([statement], app.policy.tz), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{statement.number}.csv"'})


@router.get("/settlements/{statement_id}", response_model=StatementOut, responses={**NOT_FOUND, **INVALID},
            dependencies=[needs("fees:read")])
async def get_statement(statement_id: IdPath, app: ServiceDep, who: PrincipalDep) -> StatementOut:
    """One statement with its lines, each traceable to its visit and order."""
    _all_regions(who)
    return _statement_out(await _statement(app, statement_id))


@router.post("/settlements/close", response_model=list[StatementOut], responses={**BODY},
             dependencies=[Depends(require_json), needs("fees:write")])
async def close_month(body: CloseIn, app: ServiceDep, who: PrincipalDep) -> list[StatementOut]:
    """Close a month that is over: a statement per technician of every fee ready in it and on none yet, each sent to its
    technician. Closing again makes nothing new (an empty list); 422 settle_month_not_over for a month not over yet.
    The month is also closed by itself early on the first day of the next."""
    _all_regions(who)
    events = await _apply(app, "api:settlements-close", c.CloseSettlementMonth(body.period, f"api:{who.kind}:{who.name}"[:100]))
    made = [event.data["statement_id"] for event in events if event.name == "StatementIssued"]
    return [_statement_out(await _statement(app, statement_id)) for statement_id in made]


@router.get("/settlement-items", response_model=list[ItemOut], responses={**INVALID}, dependencies=[needs("fees:read")])
async def list_items(app: ServiceDep, who: PrincipalDep, technician_id: TechnicianQuery = None,
                     status_: Annotated[Literal["in_review", "frozen", "ready", "settled"] | None, Query(alias="status")] = None,
                     period: PeriodQuery = None, limit: Limit = 100, offset: Offset = 0) -> list[ItemOut]:
    """Confirmed visits' fees: under review, frozen (waiting for a dispatcher), ready (waiting for a statement) or settled."""
    _all_regions(who)
    async with app.sessions() as session:
        found = await SettlementStore(Store(session)).items(technician_id=technician_id, status=status_, period=period, limit=limit, offset=offset)
    return [_item_out(item) for item in found]


@router.post("/settlement-items/{item_id}/release", response_model=ItemOut, responses={**NOT_FOUND, **CONFLICT, **INVALID},
             dependencies=[needs("fees:write")])
async def release_item(item_id: IdPath, app: ServiceDep, who: PrincipalDep) -> ItemOut:
    """Release a frozen fee as it is: back in review within its period, else ready at once in the current month
    (409 settle_not_frozen, settle_item_settled)."""
    item = await _item(app, who, item_id)
    await _apply(app, f"api:settle-release:{item_id}", c.ReleaseSettlement(item.visit_id, f"api:{who.kind}:{who.name}"[:100]))
    return _item_out(await _item(app, who, item_id))


@router.post("/settlement-items/{item_id}/adjust", response_model=ItemOut, responses={**BODY, **NOT_FOUND, **CONFLICT},
             dependencies=[Depends(require_json), needs("fees:write")])
async def adjust_item(item_id: IdPath, body: AdjustIn, app: ServiceDep, who: PrincipalDep) -> ItemOut:
    """Set what the visit pays the technician, with the reason (on the statement line); a frozen fee is released by it.
    The technician is told. 409 settle_item_settled once it is on a statement."""
    item = await _item(app, who, item_id)
    await _apply(app, f"api:settle-adjust:{item_id}", c.AdjustSettlement(item.visit_id, body.amount_minor, body.reason,
                                                                         f"api:{who.kind}:{who.name}"[:100]))
    return _item_out(await _item(app, who, item_id))


async def _rule_out(app: ServiceDep, technician_id: int) -> PayoutRuleOut:
    async with app.sessions() as session:
        store = Store(session)
        if await store.get(Technician, technician_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "technician_not_found")
        own = await SettlementStore(store).payout_rule(technician_id)
    cycle, share = own if own is not None else (None, None)
    return PayoutRuleOut(technician_id=technician_id, cycle=cycle or app.policy.settlement_cycle,  # type: ignore[arg-type]
                         share_percent=share if share is not None else app.policy.payout_share_percent, own_cycle=cycle, own_share_percent=share)


@router.get("/technicians/{technician_id}/payout", response_model=PayoutRuleOut, responses={**NOT_FOUND, **INVALID},
            dependencies=[needs("fees:read")])
async def get_payout_rule(technician_id: IdPath, app: ServiceDep, who: PrincipalDep) -> PayoutRuleOut:
    """The technician's settlement cycle and share in effect."""
    _all_regions(who)
    return await _rule_out(app, technician_id)


@router.put("/technicians/{technician_id}/payout", response_model=PayoutRuleOut, responses={**BODY, **NOT_FOUND},
            dependencies=[Depends(require_json), needs("fees:write")])
async def put_payout_rule(technician_id: IdPath, body: PayoutRuleIn, app: ServiceDep, who: PrincipalDep) -> PayoutRuleOut:
    """Set how the technician is settled: monthly or per order, and their share of billed work (null: the shop's default,
    FIELDCHAT_SETTLEMENT_CYCLE and FIELDCHAT_PAYOUT_SHARE_PERCENT). Fees already under review keep their share."""
    _all_regions(who)
    await _apply(app, f"api:payout:{technician_id}", c.SetPayoutRule(technician_id, body.cycle, body.share_percent))
    return await _rule_out(app, technician_id)
