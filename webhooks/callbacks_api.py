"""The API of status callbacks: each order source's callback endpoint, the callbacks sent and parked, and resending them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from domain import commands as c
from domain.errors import DomainError, NotFound
from domain.events import Event
from domain.model import MAX_ID
from storage.callbacks import STATES, CallbackStore
from storage.repository import Store
from storage.rows import OutboxRow
from webhooks.access import needs
from webhooks.api import BODY, CONFLICT, DISABLED, INVALID, NOT_FOUND, UNAUTHORIZED, ErrorOut, ServiceDep, StrictIn, plain_http_allowed, require_json, require_token

MIN_SECRET = 16  # a shorter secret could be guessed from a few signed callbacks' worth of tries

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], tags=["status callbacks"], responses={**UNAUTHORIZED, **DISABLED})
SourcePath = Annotated[str, Path(min_length=1, max_length=60, description="the `source` the orders carry, e.g. erp")]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
State = Literal["pending", "sent", "parked"]


class CallbackEndpointIn(StrictIn):
    model_config = ConfigDict(json_schema_extra={"examples": [{"url": "https://erp.example.com/fieldchat", "secret": "a-long-random-secret"}]})

    url: str = Field(min_length=8, max_length=2000, description="where callbacks are POSTed: https://…, or http:// to localhost or a "
                                                                  "private network address")
    secret: str = Field(min_length=MIN_SECRET, max_length=200, description="signs every callback (HMAC-SHA256); never shown again")

    @field_validator("url")
    @classmethod
    def _usable(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not carry a user or password: the signature authenticates fieldchat to you")
        if parts.fragment:
            raise ValueError("must not have a #fragment")
        if parts.scheme == "http" and not plain_http_allowed(parts.hostname):
            raise ValueError("must be https:// (plain http only to localhost or a private network address)")
        return value

    @field_validator("secret")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or value != value.strip():
            raise ValueError("must be printable, without surrounding spaces")
        return value


class CallbackEndpointOut(BaseModel):
    source: str
    url: str
    updated_at: datetime
    secret_set: Literal[True] = Field(True, description="the secret is stored; it is never shown")


class CallbackOut(BaseModel):
    id: int = Field(description="the callback's id (for resend)")
    job_id: int
    source: str
    event_id: str = Field(description="the body's `id`, also the X-Fieldchat-Event-Id header: the same on every retry")
    type: str = Field(description="the milestone, e.g. visit.completed")
    state: State
    attempts: int
    last_error: str | None
    maybe_sent: int = Field(description="how often a send may have reached the receiver without being recorded (a relay died mid-send)")
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None = Field(description="pending only: when it is tried next")


class CallbacksOut(BaseModel):
    callbacks: list[CallbackOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null: this was the last")


class ResentOut(BaseModel):
    resent: list[int] = Field(description="the callback and those parked behind it for its job, queued again in this order")


def _out(row: OutboxRow) -> CallbackOut:
    body = row["payload"].get("callback", {})
    return CallbackOut(
        id=row["id"], job_id=int(row["chat_id"]), source=body.get("order", {}).get("source", ""), event_id=body.get("id", ""),
        type=body.get("type", ""), state=cast(State, row["status"] if row["status"] in STATES else "parked"), attempts=row["attempts"],
        last_error=row["last_error"], maybe_sent=row["maybe_sent"], created_at=row["created_at"], sent_at=row["sent_at"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
    )


async def _run(app: ServiceDep, origin: str, command: c.Command) -> list[Event]:
    try:
        return await app.bus.run(f"{origin}:{uuid.uuid4().hex}", command)
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, err.code) from err
    except DomainError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, err.code) from err
    except (IntegrityError, StaleDataError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "concurrent_change") from exc


async def _endpoint(app: ServiceDep, source: str) -> CallbackEndpointOut:
    async with app.sessions() as session:
        row = await CallbackStore(Store(session)).endpoint(source)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "callback_endpoint_not_found")
    return CallbackEndpointOut(source=row["source"], url=row["url"], updated_at=row["updated_at"], secret_set=True)


@router.put("/order-sources/{source}/callback", response_model=CallbackEndpointOut, dependencies=[Depends(require_json), needs("settings:write")],
            responses={**BODY, **CONFLICT})
async def put_callback_endpoint(source: SourcePath, body: CallbackEndpointIn, app: ServiceDep) -> CallbackEndpointOut:
    """Set where this source's orders report their milestones, and the secret that signs the callbacks (see the README
    on verifying them). Callbacks already queued go to the new URL with the new secret."""
    await _run(app, "api:callback-endpoint", c.SetCallbackEndpoint(source, body.url, body.secret))
    return await _endpoint(app, source)


@router.get("/order-sources/{source}/callback", response_model=CallbackEndpointOut, responses={**NOT_FOUND, **INVALID},
            dependencies=[needs("settings:write")])
async def get_callback_endpoint(source: SourcePath, app: ServiceDep) -> CallbackEndpointOut:
    return await _endpoint(app, source)


@router.delete("/order-sources/{source}/callback", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **INVALID},
               dependencies=[needs("settings:write")])
async def delete_callback_endpoint(source: SourcePath, app: ServiceDep) -> Response:
    """No more callbacks for this source's milestones; those queued are parked when their turn comes."""
    await _run(app, "api:callback-endpoint", c.RemoveCallbackEndpoint(source))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# listing and resending stay admin-only (no scope declared): the list spans every region's jobs
@router.get("/callbacks", response_model=CallbacksOut, responses=INVALID)
async def list_callbacks(
    app: ServiceDep,
    state: Annotated[State | None, Query(description="only callbacks in this state")] = None,
    job_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="only ids above this (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CallbacksOut:
    """Status callbacks, oldest first: `state=parked` lists those waiting for someone to resend them."""
    async with app.sessions() as session:
        rows = await CallbackStore(Store(session)).callbacks(state=state, after_id=after, limit=limit, job_id=job_id)
    return CallbacksOut(callbacks=[_out(row) for row in rows], next_after=rows[-1]["id"] if len(rows) == limit else None)


@router.post("/callbacks/{callback_id}/resend", response_model=ResentOut,
             responses={**NOT_FOUND, **INVALID, 409: {"model": ErrorOut, "description": "the callback is not parked (sent, or queued already)"}})
async def resend_callback(callback_id: IdPath, app: ServiceDep) -> ResentOut:
    """Queue a parked callback again, with the ones parked behind it for the same job, in their order. No body."""
    events = await _run(app, "api:callback-resend", c.ResendCallback(callback_id))
    return ResentOut(resent=[i for e in events for i in e.data.get("callback_ids", [])])
