"""The parts API: the catalogue, stock per location and its movements ledger, part requests' decisions, and the fault
trees repairs record from (per product category)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field

from domain import commands as c
from domain.errors import DomainError, NotFound
from domain.parts import DEFAULT_FAULT_TREE, MAX_PRICE_MINOR, MAX_QUANTITY, parse_location
from services import parts as part_service
from services.context import HandlerContext
from storage.parts import MovementRow, PartRow, PartsStore
from storage.repository import Store
from webhooks.access import needs, require_token
from webhooks.api import BODY, CONFLICT, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, IdPath, ServiceDep, StrictIn, require_json
from webhooks.service import Service

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["parts"], responses={**UNAUTHORIZED, **DISABLED})
Page = Annotated[int, Query(ge=0, le=2**31 - 1, description="the last id of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]
CategoryPath = Annotated[str, Path(min_length=1, max_length=100, description='a product category, or "*" for every category without its own')]
LocationText = Annotated[str, Field(min_length=1, max_length=40, description='"warehouse" or "van:<technician id>"')]


# --- bodies and answers --------------------------------------------------------------------------------------------


class PartIn(StrictIn):
    code: str = Field(min_length=1, max_length=60, description="the shop's code; saving the same code again updates the part")
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field("pc", min_length=1, max_length=20)
    price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR, description="the price in the currency's minor units (fen, cents)")
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    category: str = Field("", max_length=100)
    compatible: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50, description="product categories it fits; empty: any")
    min_stock: int = Field(0, ge=0, le=MAX_QUANTITY, description="the warehouse's reorder level: falling to it alerts the dispatchers")


class PartOut(BaseModel):
    id: int
    code: str
    name: str
    unit: str
    price_minor: int
    currency: str
    category: str
    compatible: list[str]
    min_stock: int
    stock: dict[str, int] = Field(description="quantity per location holding any (warehouse, van:<technician id>)")


class MovementIn(StrictIn):
    part_id: int = Field(ge=1, le=2**31 - 1)
    kind: Literal["receive", "issue", "transfer", "return", "write_off"] = Field(
        description="receive: into a location from a supplier; issue: warehouse → van; return: van → warehouse; transfer: "
                    "any two; write_off: out for good. Use on a job is recorded by the repair's completion in chat")
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    source: LocationText | None = Field(None, alias="from")
    target: LocationText | None = Field(None, alias="to")
    note: str = Field("", max_length=500)


class MovementOut(BaseModel):
    id: int
    part_id: int
    kind: str
    quantity: int
    source: str | None = Field(serialization_alias="from")
    target: str | None = Field(serialization_alias="to")
    job_id: int | None
    visit_id: int | None
    request_id: int | None
    actor: str
    note: str
    occurred_at: datetime


class MovedOut(BaseModel):
    part: PartOut


class StockLine(BaseModel):
    part_id: int
    code: str
    name: str
    unit: str
    quantity: int


class DecisionIn(StrictIn):
    reason: str = Field("", max_length=500)


class RequestOut(BaseModel):
    id: int
    part_id: int
    technician_id: int
    quantity: int
    status: str
    reason: str


class Label(StrictIn):
    en: str | None = Field(None, min_length=1, max_length=60)
    zh: str | None = Field(None, min_length=1, max_length=60)


class NodeIn(StrictIn):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,27}$")
    label: Label | None = None


class CauseIn(NodeIn):
    faults: list[NodeIn] = Field(min_length=1, max_length=20)


class FaultTreeIn(StrictIn):
    causes: list[CauseIn] = Field(min_length=1, max_length=10)
    methods: list[NodeIn] = Field(min_length=1, max_length=20)


class FaultTreeOut(BaseModel):
    product_category: str
    set_by: Literal["category", "catch_all", "default"]
    tree: dict[str, object]


# --- helpers ----------------------------------------------------------------------------------------------------------


def _refusal(err: DomainError) -> HTTPException:
    """Bad input is a 422 naming the rule; an unknown id 404; too little in stock (or a decided request) 409."""
    if isinstance(err, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, err.code)
    if err.code == "stock_not_enough":
        return HTTPException(status.HTTP_409_CONFLICT, f"stock_not_enough: {err.params.get('have')} {err.params.get('unit')} there")
    if err.code == "part_request_decided":
        return HTTPException(status.HTTP_409_CONFLICT, f"part_request_decided: {err.params.get('status')}")
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.code)


async def _part_out(store: Store, part: PartRow) -> PartOut:
    levels = (await PartsStore(store).levels_of([part.id]))[part.id]
    return PartOut(id=part.id, code=part.code, name=part.name, unit=part.unit, price_minor=part.price_minor, currency=part.currency,
                   category=part.category, compatible=list(part.compatible), min_stock=part.min_stock, stock=levels)


async def _read_part(app: Service, part_id: int) -> PartOut:
    async with app.sessions() as session:
        store = Store(session)
        part = await PartsStore(store).part(part_id)
        if part is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "part_not_found")
        return await _part_out(store, part)


async def _run(app: Service, origin: str, command: c.Command) -> None:
    try:
        await app.bus.run(f"api:{origin}:{uuid.uuid4().hex}", command)
    except DomainError as err:
        raise _refusal(err) from err


# --- the catalogue ----------------------------------------------------------------------------------------------------


@router.post("/parts", response_model=PartOut, status_code=201, dependencies=[Depends(require_json), needs("parts:write")],
             responses={200: {"description": "a part with that code existed: it is updated"}, **BODY})
async def save_part(body: PartIn, response: Response, app: ServiceDep) -> PartOut:
    """Add a part to the catalogue, or update the one with the same code (200)."""
    command = c.SavePart(body.code, body.name, body.unit, body.price_minor, body.currency, body.category, tuple(body.compatible), body.min_stock)

    async def work(ctx: HandlerContext) -> tuple[tuple[PartRow, bool], list]:
        return await part_service.save(ctx, command), []

    try:
        part, created = await app.bus.call(f"api:part:{uuid.uuid4().hex}", work)
    except DomainError as err:
        raise _refusal(err) from err
    if not created:
        response.status_code = status.HTTP_200_OK
    return await _read_part(app, part.id)


@router.get("/parts", response_model=list[PartOut], dependencies=[needs("parts:read")], responses=INVALID)
async def list_parts(app: ServiceDep, after: Page = 0, limit: Limit = 50) -> list[PartOut]:
    """The catalogue by id, a page at a time, with each part's stock per location."""
    async with app.sessions() as session:
        store = Store(session)
        rows = await PartsStore(store).parts(after=after, limit=limit)
        levels = await PartsStore(store).levels_of(p.id for p in rows)
        return [PartOut(id=p.id, code=p.code, name=p.name, unit=p.unit, price_minor=p.price_minor, currency=p.currency, category=p.category,
                        compatible=list(p.compatible), min_stock=p.min_stock, stock=levels[p.id]) for p in rows]


@router.get("/parts/{part_id}", response_model=PartOut, dependencies=[needs("parts:read")], responses={**NOT_FOUND, **INVALID})
async def get_part(part_id: IdPath, app: ServiceDep) -> PartOut:
    return await _read_part(app, part_id)


@router.get("/parts/{part_id}/movements", response_model=list[MovementOut], dependencies=[needs("parts:read")],
            responses={**NOT_FOUND, **INVALID})
async def part_movements(part_id: IdPath, app: ServiceDep, after: Page = 0, limit: Limit = 100) -> list[MovementOut]:
    """A part's history: every movement of its stock, oldest first (receipts, issues, uses on jobs, returns, transfers)."""
    async with app.sessions() as session:
        parts = PartsStore(Store(session))
        if await parts.part(part_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "part_not_found")
        rows: list[MovementRow] = await parts.movements(part_id, after=after, limit=limit)
    return [MovementOut(**vars(row)) for row in rows]


# --- stock --------------------------------------------------------------------------------------------------------------


@router.post("/stock-movements", response_model=MovedOut, status_code=201, dependencies=[Depends(require_json), needs("parts:write")],
             responses={**BODY, **NOT_FOUND, **CONFLICT})
async def move_stock(body: MovementIn, app: ServiceDep) -> MovedOut:
    """One movement of stock; more than the source holds is a 409 and changes nothing (stock never goes below zero)."""
    await _run(app, "stock", c.MoveStock(body.part_id, body.kind, body.quantity, body.source, body.target, body.note, "api"))
    return MovedOut(part=await _read_part(app, body.part_id))


@router.get("/stock", response_model=list[StockLine], dependencies=[needs("parts:read")], responses=INVALID)
async def stock_at(app: ServiceDep, location: Annotated[str, Query(min_length=1, max_length=40, description='"warehouse" or "van:<technician id>"')]
                   ) -> list[StockLine]:
    """What one location holds, by part code."""
    try:
        where = parse_location(location)
    except DomainError as err:
        raise _refusal(err) from err
    async with app.sessions() as session:
        held = await PartsStore(Store(session)).at_location(where)
    return [StockLine(part_id=p.id, code=p.code, name=p.name, unit=p.unit, quantity=q) for p, q in held]


async def _decide(app: Service, request_id: int, approve: bool, reason: str) -> RequestOut:
    await _run(app, "part-request", c.DecidePartRequest(request_id, None, approve, reason))
    async with app.sessions() as session:
        row = await PartsStore(Store(session)).request(request_id)
    assert row is not None  # decided just now
    return RequestOut(id=row.id, part_id=row.part_id, technician_id=row.technician_id, quantity=row.quantity, status=row.status, reason=row.reason)


@router.post("/part-requests/{request_id}/approve", response_model=RequestOut, dependencies=[Depends(require_json), needs("parts:write")],
             responses={**BODY, **NOT_FOUND, **CONFLICT})
async def approve_request(request_id: IdPath, body: DecisionIn, app: ServiceDep) -> RequestOut:
    """Approve a technician's request: the parts go from the warehouse into their van (409 when it holds too few)."""
    return await _decide(app, request_id, True, body.reason)


@router.post("/part-requests/{request_id}/decline", response_model=RequestOut, dependencies=[Depends(require_json), needs("parts:write")],
             responses={**BODY, **NOT_FOUND, **CONFLICT})
async def decline_request(request_id: IdPath, body: DecisionIn, app: ServiceDep) -> RequestOut:
    return await _decide(app, request_id, False, body.reason)


# --- fault trees --------------------------------------------------------------------------------------------------------


async def _tree_out(app: Service, category: str) -> FaultTreeOut:
    async with app.sessions() as session:
        trees = await PartsStore(Store(session)).fault_trees()
    if category in trees:
        return FaultTreeOut(product_category=category, set_by="category", tree=trees[category].to_json())
    if "*" in trees:
        return FaultTreeOut(product_category=category, set_by="catch_all", tree=trees["*"].to_json())
    return FaultTreeOut(product_category=category, set_by="default", tree=DEFAULT_FAULT_TREE.to_json())


@router.get("/fault-trees/{category}", response_model=FaultTreeOut, dependencies=[needs("parts:read")], responses=INVALID)
async def get_fault_tree(category: CategoryPath, app: ServiceDep) -> FaultTreeOut:
    """The tree a repair of this product category records from: its own, the catch-all's, or the default (seed 004)."""
    return await _tree_out(app, category)


@router.put("/fault-trees/{category}", response_model=FaultTreeOut, dependencies=[Depends(require_json), needs("settings:write")],
            responses=BODY)
async def put_fault_tree(category: CategoryPath, body: FaultTreeIn, app: ServiceDep) -> FaultTreeOut:
    """Set a product category's tree: causes with their specific faults, and methods (codes a-z0-9_, labels en/zh)."""
    await _run(app, "fault-tree", c.SetFaultTree(category, body.model_dump(exclude_none=True)))
    return await _tree_out(app, category)


@router.delete("/fault-trees/{category}", response_model=FaultTreeOut, dependencies=[needs("settings:write")], responses=INVALID)
async def delete_fault_tree(category: CategoryPath, app: ServiceDep) -> FaultTreeOut:
    """Back to the catch-all's (or the default) tree for this category."""
    await _run(app, "fault-tree", c.SetFaultTree(category, None))
    return await _tree_out(app, category)

