"""Order rules, pure: items grouped into visits, what an update changes, when a visit is past changing, coverage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Iterable

from domain.errors import InvalidInput
from domain.model import DEFAULT_SERVICE_MINUTES, ServiceKind, Technician, Visit, VisitStatus

MAX_VISIT_MINUTES = 720  # a grouped visit longer than a working day is two visits, which the sender should say
# a visit in these states may still change with its order; later, the technician is on the way or the work is done
CHANGEABLE = (VisitStatus.CREATED, VisitStatus.BOOKED, VisitStatus.ACCEPTED)
IGNORED = (VisitStatus.CANCELLED,)
# job fields an order sets; a change to any of them concerns every live visit of the job
JOB_FIELDS = ("address_text", "lat", "lon", "region", "product_category", "product_name", "brand", "volume_liters", "priority")
INFORMATIONAL = ("items", "notes")  # shown to the people, but they move no visit


@dataclass(frozen=True)
class ItemService:
    kind: ServiceKind
    duration_minutes: int | None = None  # for all the item's units together
    crew_size: int = 1
    min_gap_minutes: int = 0


@dataclass(frozen=True)
class OrderItem:
    name: str
    quantity: int
    services: tuple[ItemService, ...]
    sku: str | None = None
    address: str | None = None  # when the line goes somewhere else than the order's address


@dataclass(frozen=True)
class PlannedVisit:
    """One visit an order needs: a work type at an address, and the items it serves (their indexes)."""

    kind: ServiceKind
    duration_minutes: int
    crew_size: int
    min_gap_minutes: int
    items: tuple[int, ...]


def plan_visits(items: Iterable[OrderItem], address: str) -> list[PlannedVisit]:
    """Group the items that need a service into visits by work type and address; items needing none make no visit.
    A job is served at one address, so lines at several addresses are refused: the sender splits such an order."""
    groups: dict[tuple[ServiceKind, str], list[tuple[int, ItemService]]] = {}
    addresses: set[str] = set()
    for index, item in enumerate(items):
        where = _address_key(item.address or address)
        for service in item.services:
            groups.setdefault((service.kind, where), []).append((index, service))
            addresses.add(where)
    if len(addresses) > 1:
        raise InvalidInput("items_at_several_addresses")
    planned = []
    for (kind, _where), served in groups.items():
        minutes = sum(s.duration_minutes or DEFAULT_SERVICE_MINUTES[kind] for _i, s in served)
        if minutes > MAX_VISIT_MINUTES:
            raise InvalidInput("visit_too_long")
        planned.append(PlannedVisit(
            kind, minutes, max(s.crew_size for _i, s in served), max(s.min_gap_minutes for _i, s in served),
            tuple(sorted({i for i, _s in served})),
        ))
    if not planned:
        raise InvalidInput("no_service_needed")
    # deliveries first: installations and inspections wait for them
    return sorted(planned, key=lambda p: (p.kind is not ServiceKind.DELIVERY, list(ServiceKind).index(p.kind)))


def _address_key(text: str) -> str:
    return " ".join(text.lower().split())


def content_hash(content: dict[str, Any]) -> str:
    """Equal for equal orders whatever the key order; a re-send with the same content changes nothing."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Each field whose value differs, as [old, new]."""
    return {name: [old.get(name), new.get(name)] for name in new if old.get(name) != new.get(name)}


@dataclass(frozen=True)
class VisitChange:
    """What an update does to the job's visits: kinds added, visits cancelled, visits resized (id -> fields)."""

    add: tuple[PlannedVisit, ...]
    cancel: tuple[Visit, ...]
    resize: tuple[tuple[Visit, PlannedVisit], ...]

    @property
    def empty(self) -> bool:
        return not (self.add or self.cancel or self.resize)


def visit_changes(visits: list[Visit], planned: list[PlannedVisit]) -> VisitChange:
    live = {v.kind: v for v in visits if v.state not in IGNORED}
    wanted = {p.kind.value: p for p in planned}
    add = tuple(p for kind, p in wanted.items() if kind not in live)
    cancel = tuple(v for kind, v in live.items() if kind not in wanted)
    resize = tuple(
        (live[kind], p) for kind, p in wanted.items()
        if kind in live and (live[kind].duration_minutes, live[kind].crew_size, live[kind].min_gap_minutes)
        != (p.duration_minutes, p.crew_size, p.min_gap_minutes)
    )
    return VisitChange(add, cancel, resize)


def too_late(visit: Visit) -> str | None:
    """Why this visit may no longer change with its order, or None while it may."""
    if visit.state in CHANGEABLE or visit.state in IGNORED:
        return None
    return f"visit {visit.id} ({visit.kind}) is {visit.status}: too late to change it"


def refusal(visits: list[Visit], job_changes: dict[str, Any], change: VisitChange) -> str | None:
    """The reason an update is refused (409), or None when it may be applied. A change to the job's own fields
    (address, product …) concerns every live visit; a visit added, cancelled or resized concerns only itself."""
    concerned: list[Visit] = []
    if any(name in JOB_FIELDS for name in job_changes) or "customer_phone" in job_changes:
        concerned = [v for v in visits if v.state not in IGNORED]
    concerned += [*change.cancel, *(v for v, _p in change.resize)]
    for visit in concerned:
        reason = too_late(visit)
        if reason:
            return reason
    return None


def cancel_refusal(visits: list[Visit]) -> str | None:
    for visit in visits:
        reason = too_late(visit)
        if reason:
            return reason
    return None


def uncovered(kinds: Iterable[ServiceKind], category: str, brand: str | None, region: str,
              technicians: Iterable[Technician]) -> list[str]:
    """The work types nobody on the roster could do in the region (off duty today still counts: coverage is about
    the region being served at all, not about who works tomorrow)."""
    roster = list(technicians)
    # replace() on a mapped object makes a plain transient copy: the stored technician is not touched
    able = [replace(t, on_duty=True) for t in roster]
    return [k.value for k in kinds if not any(t.can_serve(k, category, brand, region) for t in able)]
