"""Queries for customer signatures: the single-use pad links technicians ask for, the signatures (or the reasons there
are none) kept with their visits, the order sources' own signature policies, and the snapshot the job page shows."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import delete, func, insert, select, update

from domain.kind_policy import policy_for
from domain.signatures import SignaturePolicy, state_of
from storage import tables as t
from storage.repository import Store
from storage.rows import shaped


class RequestRow(TypedDict):
    id: int
    visit_id: int
    technician_id: int
    stage: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class SignatureView:
    """One visit's signature as pages show it; ``png`` is None when the customer could not sign (``skip_reason``)."""

    id: int
    visit_id: int
    stage: str  # delivery | completion
    technician_id: int
    captured_at: datetime
    png: bytes | None
    width: int | None
    height: int | None
    skip_reason: str | None

    @property
    def signed(self) -> bool:
        return self.png is not None

    def data_url(self) -> str | None:
        """The image inline (``<img src=…>``): the staff pages' CSP allows data: images, and no extra route is needed."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode() if self.png is not None else None


def _view(row: Any) -> SignatureView:
    return SignatureView(row["id"], row["visit_id"], row["stage"], row["technician_id"], row["created_at"], row["png"],
                         row["width"], row["height"], row["skip_reason"])


async def signatures_of(store: Store, visit_ids: Iterable[int]) -> dict[int, SignatureView]:
    """Each visit's latest signature (or skip), in one query; visits with neither are absent."""
    ids = sorted(set(visit_ids))
    if not ids:
        return {}
    c = t.signatures.c
    latest = select(func.max(c.id)).where(c.visit_id.in_(ids)).group_by(c.visit_id)
    rows = (await store.session.execute(select(t.signatures).where(c.id.in_(latest)))).mappings()
    return {row["visit_id"]: _view(row) for row in rows}


async def signature_of(store: Store, visit_id: int) -> SignatureView | None:
    """The visit's latest signature (or the reason there is none); None when it has neither."""
    return (await signatures_of(store, [visit_id])).get(visit_id)


class SignatureStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    async def add_request(self, *, visit_id: int, technician_id: int, stage: str, now: datetime, expires_at: datetime) -> RequestRow:
        values = dict(visit_id=visit_id, technician_id=technician_id, stage=stage, created_at=now, expires_at=expires_at)
        key = (await self.store._write(insert(t.signature_requests).values(**values))).inserted_primary_key
        found = await self.request(key[0]) if key else None
        if found is None:
            raise RuntimeError("signature request was not inserted")
        return found

    async def request(self, request_id: int) -> RequestRow | None:
        query = select(t.signature_requests).where(t.signature_requests.c.id == request_id)
        row = (await self.session.execute(query)).mappings().first()
        return shaped(row, RequestRow) if row else None

    async def use(self, request_id: int, now: datetime) -> bool:
        """Mark a link used, if nobody did and it has not expired; False: too late (another tab won, or it expired)."""
        c = t.signature_requests.c
        result = await self.store._write(
            update(t.signature_requests).where(c.id == request_id, c.used_at.is_(None), c.expires_at > now).values(used_at=now)
        )
        return result.rowcount == 1

    async def add(self, *, visit_id: int, technician_id: int, stage: str, now: datetime, request_id: int | None = None,
                  png: bytes | None = None, width: int | None = None, height: int | None = None, skip_reason: str | None = None) -> int:
        values = dict(visit_id=visit_id, technician_id=technician_id, stage=stage, created_at=now, request_id=request_id, png=png,
                      width=width, height=height, skip_reason=skip_reason)
        key = (await self.store._write(insert(t.signatures).values(**values))).inserted_primary_key
        if key is None:
            raise RuntimeError("signature was not inserted")
        signature_id: int = key[0]
        return signature_id

    async def kept(self, visit_ids: Iterable[int]) -> dict[int, tuple[bool, bool]]:
        """(signed, skipped) per visit that has either: what the technician's flow needs, without the images' bytes."""
        ids = sorted(set(visit_ids))
        if not ids:
            return {}
        c = t.signatures.c
        query = select(c.visit_id, func.max(c.request_id), func.max(c.skip_reason)).where(c.visit_id.in_(ids)).group_by(c.visit_id)
        return {visit_id: (request_id is not None, reason is not None) for visit_id, request_id, reason in (await self.session.execute(query)).all()}

    async def source_policies(self, sources: Iterable[str]) -> dict[str, str]:
        names = sorted(set(sources))
        if not names:
            return {}
        c = t.signature_sources.c
        rows = await self.session.execute(select(c.source, c.policy).where(c.source.in_(names)))
        return {source: policy for source, policy in rows.all()}

    async def source_policy(self, source: str) -> str | None:
        return (await self.source_policies([source])).get(source)

    async def put_source_policy(self, source: str, policy: str | None, now: datetime) -> None:
        """The source's own policy; None: it follows the shop's default again."""
        await self.store._write(delete(t.signature_sources).where(t.signature_sources.c.source == source))
        if policy is not None:
            await self.store._write(insert(t.signature_sources).values(source=source, policy=policy, updated_at=now))


async def signature_states(store: Store, visits: Iterable[Any], jobs: Mapping[int, Any], default: SignaturePolicy) -> dict[int, str]:
    """How each of a technician's visits stands with its signature (``domain.signatures.SignatureState``): required by
    its source's or the shop's policy and missing, signed, or skipped; visits with none of these are absent."""
    chosen = [v for v in visits if v.id is not None]
    if not chosen:
        return {}
    signatures = SignatureStore(store)
    kept = await signatures.kept(v.id for v in chosen)
    overrides = await signatures.source_policies(jobs[v.job_id].source for v in chosen)
    states: dict[int, str] = {}
    for visit in chosen:
        required = policy_for(default, overrides, jobs[visit.job_id].source).requires(visit.kind)
        signed, skipped = kept.get(visit.id, (False, False))
        state = state_of(required, signed, skipped)
        if state is not None:
            states[visit.id] = state.value
    return states
