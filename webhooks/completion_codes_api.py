"""The API of completion codes: an order source's own policy of which visits complete only with the customer's code."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from domain import commands as c
from domain.completion_codes import CodePolicy
from domain.errors import DomainError
from storage.completion_codes import CodeStore
from storage.repository import Store
from webhooks.access import needs
from webhooks.api import BODY, DISABLED, INVALID, UNAUTHORIZED, ServiceDep, StrictIn, require_json, require_token

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["completion codes"], responses={**UNAUTHORIZED, **DISABLED})
SourcePath = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$", description="the `source` the orders carry, e.g. erp")]


class CodePolicyIn(StrictIn):
    policy: str | None = Field(max_length=200, description="off, all, or service kinds (delivery,installation); null: the shop's "
                                                            "default (FIELDCHAT_COMPLETION_CODES) again")


class CodePolicyOut(BaseModel):
    source: str
    policy: str = Field(description="what applies to this source's orders now: off, all, or service kinds")
    set_by: Literal["source", "default"] = Field(description="the source's own policy, or the shop's default")


async def _policy(app: ServiceDep, source: str) -> CodePolicyOut:
    async with app.sessions() as session:
        own = await CodeStore(Store(session)).source_policy(source)
    if own is not None:
        return CodePolicyOut(source=source, policy=CodePolicy.parse(own).text, set_by="source")
    return CodePolicyOut(source=source, policy=app.policy.completion_codes.text, set_by="default")


@router.get("/order-sources/{source}/completion-codes", response_model=CodePolicyOut, responses=INVALID,
            dependencies=[needs("settings:write")])
async def get_completion_code_policy(source: SourcePath, app: ServiceDep) -> CodePolicyOut:
    """Which of this source's visits complete only with the customer's one-time code."""
    return await _policy(app, source)


@router.put("/order-sources/{source}/completion-codes", response_model=CodePolicyOut, responses=BODY,
            dependencies=[Depends(require_json), needs("settings:write")])
async def put_completion_code_policy(source: SourcePath, body: CodePolicyIn, app: ServiceDep) -> CodePolicyOut:
    """Set this source's own policy (or null: back to the shop's default). It applies from the next technician who sets off."""
    try:
        await app.bus.run(f"api:completion-codes:{uuid.uuid4().hex}", c.SetCompletionCodePolicy(source, body.policy))
    except DomainError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, err.code) from err
    return await _policy(app, source)
