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
# OrderCancelled's reason for the job of an address the order no longer has: a code, which the ERP's callback carries as
# is and the dispatchers read in words (services.order_notices)
ADDRESS_REMOVED = "address_removed"


@dataclass(frozen=True)
class ItemService:
    kind: ServiceKind
    duration_minutes: int | None = None  # for all the item's units together
    crew_size: int = 1
    min_gap_minutes: int = 0


@dataclass(frozen=True)
class OrderAddress:
    """Where a line goes when it is not the order's own address: a job of its own needs the pin and the region too."""

    text: str
    lat: float
    lon: float
    region: str

    @property
    def key(self) -> str:
        return address_key(self.text)


@dataclass(frozen=True)
class OrderItem:
    name: str
    quantity: int
    services: tuple[ItemService, ...]
    sku: str | None = None
    address: OrderAddress | None = None  # when the line goes somewhere else than the order's address
    category: str | None = None  # the product category its services need skills for; None: the job's product


@dataclass(frozen=True)
class PlannedVisit:
    """One visit an order needs: a work type at an address, and the items it serves (their indexes) with the product
    categories those items need skills for."""

    kind: ServiceKind
    duration_minutes: int
    crew_size: int
    min_gap_minutes: int
    items: tuple[int, ...]
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedPart:
    """The visits an order needs at one address, which become one job: the order's own address (``address`` None) or
    a line's. ``items`` are the indexes of every line there, those needing no service included."""

    address: OrderAddress | None
    visits: tuple[PlannedVisit, ...]
    items: tuple[int, ...]

    @property
    def key(self) -> str | None:
        return self.address.key if self.address is not None else None


def plan_parts(items: Iterable[OrderItem], address: str) -> list[PlannedPart]:
    """Group the items that need a service into visits by address and work type: one part (a job) per address, the
    order's own first, then the others as the lines name them. Items needing no service make no visit; those at an
    address no visit goes to are kept with the first part. A line whose address is the order's own is the order's."""
    own = address_key(address)
    listed = list(items)
    places: dict[str | None, OrderAddress | None] = {None: None}
    at: dict[str | None, list[int]] = {None: []}
    for index, item in enumerate(listed):
        where = item.address.key if item.address is not None and item.address.key != own else None
        if where not in places:
            places[where] = item.address
            at[where] = []
        at[where].append(index)
    parts: list[PlannedPart] = []
    loose: list[int] = []
    for where, indexes in at.items():
        visits = _group([(i, listed[i]) for i in indexes])
        if visits:
            parts.append(PlannedPart(places[where], tuple(visits), tuple(indexes)))
        else:
            loose += indexes
    if not parts:
        raise InvalidInput("no_service_needed")
    first = parts[0]
    parts[0] = replace(first, items=tuple(sorted({*first.items, *loose})))
    return parts


def plan_visits(items: Iterable[OrderItem], address: str) -> list[PlannedVisit]:
    """The visits of an order served at one address; lines at several addresses are planned with ``plan_parts``."""
    parts = plan_parts(items, address)
    if len(parts) > 1:
        raise InvalidInput("items_at_several_addresses")
    return list(parts[0].visits)


def _group(served_items: list[tuple[int, OrderItem]]) -> list[PlannedVisit]:
    groups: dict[ServiceKind, list[tuple[int, ItemService, str | None]]] = {}
    for index, item in served_items:
        for service in item.services:
            groups.setdefault(service.kind, []).append((index, service, item.category))
    planned = []
    for kind, served in groups.items():
        minutes = sum(s.duration_minutes or DEFAULT_SERVICE_MINUTES[kind] for _i, s, _c in served)
        if minutes > MAX_VISIT_MINUTES:
            raise InvalidInput("visit_too_long")
        # a delivery needs no product skill (Technician.can_serve); the other work types need each line's category
        categories = () if kind is ServiceKind.DELIVERY else tuple(sorted({c for _i, _s, c in served if c}))
        planned.append(PlannedVisit(
            kind, minutes, max(s.crew_size for _i, s, _c in served), max(s.min_gap_minutes for _i, s, _c in served),
            tuple(sorted({i for i, _s, _c in served})), categories,
        ))
    # deliveries first: installations and inspections wait for them
    return sorted(planned, key=lambda p: (p.kind is not ServiceKind.DELIVERY, list(ServiceKind).index(p.kind)))


def address_key(text: str) -> str:
    """An address as compared: case and spacing do not make another place."""
    return " ".join(text.lower().split())


def content_hash(content: dict[str, Any]) -> str:
    """Equal for equal orders whatever the key order; a re-send with the same content changes nothing."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Each field whose value differs, as [old, new]."""
    return {name: [old.get(name), new.get(name)] for name in new if old.get(name) != new.get(name)}


@dataclass(frozen=True)
class VisitChange:
    """What an update does to the job's visits: kinds added, visits cancelled, visits resized (length, crew, gap or the
    categories their lines need)."""

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
        if kind in live and (live[kind].duration_minutes, live[kind].crew_size, live[kind].min_gap_minutes, tuple(live[kind].categories))
        != (p.duration_minutes, p.crew_size, p.min_gap_minutes, p.categories)
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
