"""What the technician's parts and repair-record steps read: their van's stock, the catalogue to request from, the fault
trees, and which repairs are recorded already — loaded only for the steps that show them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime

from domain.model import VisitStatus
from domain.parts import FaultTree, tree_for, van
from domain.policy import ServicePolicy
from services.views import TechnicianView, TechnicianViewRequest
from storage.parts import PartRow, PartsStore
from storage.repository import Store

AT_WORK = (VisitStatus.ON_SITE.value, VisitStatus.IN_PROGRESS.value)  # where parts are used on a repair
CATALOGUE_SHOWN = 100  # the parts a technician can pick from in chat, by code (a page at a time); the API has all


@dataclass(frozen=True)
class PartsRequest(TechnicianViewRequest):
    """The technician view's request, and whether the step reads parts and fault trees."""

    parts: bool = False
    catalogue: bool = False  # the request menus pick from the catalogue; the repair record needs only the van


@dataclass(frozen=True)
class VanItem:
    part: PartRow
    quantity: int


@dataclass(frozen=True)
class PartsView(TechnicianView):
    van: tuple[VanItem, ...] = ()
    catalogue: tuple[PartRow, ...] = ()
    trees: Mapping[str, FaultTree] = field(default_factory=dict)
    recorded: frozenset[int] = frozenset()  # repair visits whose completion record is kept already
    used: Mapping[int, Mapping[int, int]] = field(default_factory=dict)  # per repair at work: part id → how many used on it so far
    fitted: tuple[PartRow, ...] = ()  # the parts named in ``used`` (one fitted may be the van's last)

    def used_on(self, visit_id: int) -> Mapping[int, int]:
        return self.used.get(visit_id, {})

    def tree(self, product_category: str) -> FaultTree:
        return tree_for(self.trees, product_category)

    def in_van(self, part_id: int) -> int:
        return next((item.quantity for item in self.van if item.part.id == part_id), 0)

    def part(self, part_id: int) -> PartRow | None:
        return (next((p for p in self.catalogue if p.id == part_id), None) or next((i.part for i in self.van if i.part.id == part_id), None)
                or next((p for p in self.fitted if p.id == part_id), None))


async def with_parts(store: Store, request: TechnicianViewRequest, view: TechnicianView, policy: ServicePolicy, now: datetime) -> TechnicianView:
    """The view as loaded, or with the parts data a parts step asks for (other updates add no query)."""
    if not isinstance(request, PartsRequest) or not request.parts or view.technician_id is None:
        return view
    parts = PartsStore(store)
    held = await parts.at_location(van(view.technician_id))
    catalogue = await parts.parts(limit=CATALOGUE_SHOWN) if request.catalogue else []
    repairs = [v.id for v in view.visits if v.kind == "repair"]
    recorded = await parts.recorded_among(repairs)
    at_work = [v.id for v in view.visits if v.kind == "repair" and v.status in AT_WORK and v.id not in recorded]
    used = await parts.used_on_visits(at_work)
    named = {p.id for p, _q in held} | {p.id for p in catalogue}
    unnamed = {part_id for on_visit in used.values() for part_id in on_visit} - named
    base = {f.name: getattr(view, f.name) for f in fields(TechnicianView)}
    return PartsView(**base, van=tuple(VanItem(p, q) for p, q in held), catalogue=tuple(catalogue), trees=await parts.fault_trees(),
                     recorded=recorded, used=used, fitted=tuple(await parts.parts(unnamed)) if unnamed else ())
