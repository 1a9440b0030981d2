"""API authentication: the bearer token's principal, each route's declared scope, and the region rule on records."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import exists, select

from domain.access import ADMIN, Principal
from domain.model import Job, Photo, Visit
from services import accounts
from storage import tables as t
from storage.repository import Store

if TYPE_CHECKING:
    from webhooks.service import Service

bearer = HTTPBearer(auto_error=False)
ADMIN_TOKEN_NAME = "FIELDCHAT_API_TOKEN"


class Needs:
    """A route's declared scope. It is a marker: ``require_token`` (every API router's dependency) finds it on the route
    and checks it, so a route that declares nothing needs ``admin`` (secure by default)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self) -> None:
        return None


def needs(scope: str) -> DependsParam:
    marker: DependsParam = Depends(Needs(scope))
    return marker


def declared_scope(request: Request) -> str:
    route = request.scope.get("route")
    for dependency in getattr(route, "dependencies", ()) or ():
        if isinstance(dependency.dependency, Needs):
            return dependency.dependency.scope
    return ADMIN


def _unauthorized(detail: str = "missing or wrong bearer token") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def _any_live_token(app: Service) -> bool:
    async with app.sessions() as session:
        query = select(exists().where(t.api_tokens.c.revoked_at.is_(None)))
        return bool((await session.execute(query)).scalar())


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """Who calls: FIELDCHAT_API_TOKEN (admin), or an integration's token; 401 for anything else, 403 when the token lacks
    the route's scope; 503 while no token at all is configured."""
    app = request.app.state.container
    given = credentials.credentials if credentials else ""
    expected = app.settings.api_token
    principal: Principal | None = None
    if expected is not None and hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        principal = Principal("admin_token", None, ADMIN_TOKEN_NAME, frozenset({ADMIN}))
    elif given:
        async with app.sessions() as session:
            principal = await accounts.token_principal(Store(session), given)
    if principal is None:
        if expected is None and not await _any_live_token(app):
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the API is disabled: set FIELDCHAT_API_TOKEN, or create a token with `fieldchat token add`",
            )
        raise _unauthorized()
    scope = declared_scope(request)
    if not principal.can(scope):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the scope {scope}")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(require_token)]


def refuse_region(principal: Principal, region: str | None) -> None:
    """403 when the caller is scoped to regions and the record is in none of them."""
    if not principal.sees(region):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "outside_your_regions: the record is in a region this token or account is not for")


async def region_of(store: Store, *, job_id: int | None = None, visit_id: int | None = None, photo_id: int | None = None) -> str | None:
    """The region of the job a job, visit or photo belongs to; None when there is no such record (its route answers 404)."""
    if photo_id is not None:
        photo = await store.get(Photo, photo_id)
        visit_id = photo.visit_id if photo is not None else None
        if visit_id is None:
            return None
    if visit_id is not None:
        visit = await store.get(Visit, visit_id)
        job_id = visit.job_id if visit is not None else None
    job = await store.get(Job, job_id) if job_id is not None else None
    return job.region if job is not None else None


async def guard_record(app: Service, principal: Principal, **record: int) -> None:
    """The region rule for one record named in a route (job_id=, visit_id= or photo_id=): a scoped caller is refused a
    record of another region; an unscoped one is not looked up at all."""
    if principal.regions is None:
        return
    async with app.sessions() as session:
        store = Store(session)
        region = await region_of(store, **record)
        # a photo of no visit (a relayed one) has no region to check: only unscoped callers get it
        orphan = region is None and "photo_id" in record and await store.get(Photo, record["photo_id"]) is not None
    if region is not None or orphan:
        refuse_region(principal, region)


RECORD_PARAMS = ("job_id", "visit_id", "photo_id")


async def guard_path_records(request: Request, who: PrincipalDep) -> None:
    """Every API route naming a job, visit or photo in its path gets the region rule, declared once on the router (a
    route added later is covered without remembering to)."""
    for name in RECORD_PARAMS:
        raw = request.path_params.get(name)
        # a malformed id is the route's own validation's to answer (422)
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 12:
            await guard_record(request.app.state.container, who, **{name: int(raw)})
