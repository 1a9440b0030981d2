"""API routes for access: integrations' scoped tokens (admin only) and revoking a customer's page link."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from domain.access import SCOPES
from domain.model import MAX_ID, Job
from services import accounts
from services.context import HandlerContext
from storage.accounts import AccountStore
from storage.repository import Store
from webhooks.access import PrincipalDep, guard_path_records, needs, require_token
from webhooks.api import BODY, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, ServiceDep, StrictIn, require_json

router = APIRouter(
    prefix="/api/v1", dependencies=[Depends(require_token), Depends(guard_path_records)],
    tags=["access"], responses={**UNAUTHORIZED, **DISABLED},
)
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
Region = Annotated[str, Field(min_length=1, max_length=100)]
ScopeName = Annotated[str, Field(pattern=r"^[a-z]+(:[a-z]+)?$", max_length=40, json_schema_extra={"enum": list(SCOPES)})]


class TokenIn(StrictIn):
    name: str = Field(min_length=1, max_length=100, description="the integration the token is for, e.g. erp")
    scopes: list[ScopeName] = Field(min_length=1, max_length=len(SCOPES), description=", ".join(f"{k}: {v}" for k, v in SCOPES.items()))
    regions: list[Region] | None = Field(None, max_length=100, description="only records of these regions; none: every region")


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the token's first characters, to recognise it; the rest is never shown again")
    scopes: list[str]
    regions: list[str] | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="the bearer token: shown this once, only its hash is kept")


class TokensOut(BaseModel):
    tokens: list[TokenOut]


def _http(err: accounts.AccessRefused) -> HTTPException:
    if err.code == "token_not_found":
        return HTTPException(status.HTTP_404_NOT_FOUND, err.code)
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.code)


@router.post("/tokens", response_model=NewTokenOut, status_code=status.HTTP_201_CREATED, responses=BODY, dependencies=[Depends(require_json)])
async def create_token(body: TokenIn, app: ServiceDep, who: PrincipalDep) -> NewTokenOut:
    """A named, scoped token for one integration (admin only)."""

    async def work(ctx: HandlerContext):
        token_id, token = await accounts.create_api_token(ctx, name=body.name, scopes=body.scopes, regions=body.regions, created_by=who.name)
        rows = await AccountStore(ctx.store).api_tokens()
        return (next(r for r in rows if r["id"] == token_id), token), []

    try:
        row, token = await app.bus.call(f"api:token:{uuid.uuid4().hex}", work)
    except accounts.AccessRefused as err:
        raise _http(err) from err
    return NewTokenOut(**accounts.token_listing(row), token=token)


@router.get("/tokens", response_model=TokensOut)
async def list_tokens(app: ServiceDep) -> TokensOut:
    """Every token, revoked ones too, by prefix (admin only)."""
    async with app.sessions() as session:
        rows = await AccountStore(Store(session)).api_tokens()
    return TokensOut(tokens=[TokenOut(**accounts.token_listing(r)) for r in rows])


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **INVALID})
async def revoke_token(token_id: IdPath, app: ServiceDep) -> None:
    """Revoke a token: it is refused from the next request on (admin only)."""

    async def work(ctx: HandlerContext):
        await accounts.revoke_api_token(ctx, token_id)
        return None, []

    try:
        await app.bus.call(f"api:token-revoke:{token_id}:{uuid.uuid4().hex}", work)
    except accounts.AccessRefused as err:
        raise _http(err) from err


@router.post("/jobs/{job_id}/customer-link/revoke", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **INVALID},
             dependencies=[needs("jobs:write")])
async def revoke_customer_link(job_id: IdPath, app: ServiceDep) -> None:
    """End the customer's links of a job now: the customer page (and a chat link not yet opened) stops working; a new
    link is handed out when the order is posted again."""

    async def work(ctx: HandlerContext):
        if await ctx.store.get(Job, job_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "job_not_found")
        await ctx.store.expire_tokens("customer", job_id, ctx.now)
        return None, []

    await app.bus.call(f"api:customer-link-revoke:{job_id}:{uuid.uuid4().hex}", work)
