"""The API of signatures: an order source's own policy of which visits complete only with the customer's signature."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from domain import commands as c
from domain.errors import DomainError
from domain.signatures import SignaturePolicy
from storage.repository import Store
from storage.signatures import SignatureStore
from webhooks.access import needs
from webhooks.api import BODY, DISABLED, INVALID, UNAUTHORIZED, ServiceDep, StrictIn, require_json, require_token
from webhooks.completion_codes_api import SourcePath

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["signatures"], responses={**UNAUTHORIZED, **DISABLED})


class SignaturePolicyIn(StrictIn):
    policy: str | None = Field(max_length=200, description="off, all, or service kinds (delivery,installation); null: the shop's "
                                                            "default (FIELDCHAT_SIGNATURES) again")


class SignaturePolicyOut(BaseModel):
    source: str
    policy: str = Field(description="what applies to this source's orders now: off, all, or service kinds")
    set_by: Literal["source", "default"] = Field(description="the source's own policy, or the shop's default")


async def _policy(app: ServiceDep, source: str) -> SignaturePolicyOut:
    async with app.sessions() as session:
        own = await SignatureStore(Store(session)).source_policy(source)
    if own is not None:
        return SignaturePolicyOut(source=source, policy=SignaturePolicy.parse(own).text, set_by="source")
    return SignaturePolicyOut(source=source, policy=app.policy.signatures.text, set_by="default")


@router.get("/order-sources/{source}/signatures", response_model=SignaturePolicyOut, responses=INVALID,
            dependencies=[needs("settings:write")])
async def get_signature_policy(source: SourcePath, app: ServiceDep) -> SignaturePolicyOut:
    """Which of this source's visits complete only with the customer's signature (or the reason they could not sign)."""
    return await _policy(app, source)


@router.put("/order-sources/{source}/signatures", response_model=SignaturePolicyOut, responses=BODY,
            dependencies=[Depends(require_json), needs("settings:write")])
async def put_signature_policy(source: SourcePath, body: SignaturePolicyIn, app: ServiceDep) -> SignaturePolicyOut:
    """Set this source's own policy (or null: back to the shop's default). It applies from the technician's next Complete."""
    try:
        await app.bus.run(f"api:signatures:{uuid.uuid4().hex}", c.SetSignaturePolicy(source, body.policy))
    except DomainError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.code) from err
    return await _policy(app, source)
