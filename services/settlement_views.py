"""What the dispatchers' Adjust step reads of a frozen fee: what it pays, what the rule gave and the visit's bill, so
the typed amount is checked against them (domain.settlement.adjustment_needs_confirming) before anything is saved.
Loaded only for the Adjust button: every other update in a group loads nothing more."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from domain.policy import ServicePolicy
from services.views import DispatcherView, DispatcherViewRequest
from storage.repository import Store
from storage.settlement import SettlementStore


@dataclass(frozen=True)
class FeeRequest(DispatcherViewRequest):
    """The dispatcher view's request, and the visit whose fee an Adjust press is about."""

    fee_of: int | None = None


@dataclass(frozen=True)
class FeeFacts:
    visit_id: int
    currency: str
    amount_minor: int  # what it pays now
    earned_minor: int  # what the payout rule gave
    bill_total_minor: int  # the visit's whole bill (0: none priced)


@dataclass(frozen=True)
class FeeView(DispatcherView):
    fee: FeeFacts | None = None


async def with_fee(store: Store, request: DispatcherViewRequest, view: DispatcherView, policy: ServicePolicy, now: datetime) -> DispatcherView:
    """The view as loaded, or with the fee of the asked visit: only for a dispatcher the view let see the visit (one of
    their regions); anyone else loads nothing and the step refuses as before."""
    if not isinstance(request, FeeRequest) or request.fee_of is None or view.visit is None or view.dispatcher_id is None:
        return view
    item = await SettlementStore(store).item_of_visit(request.fee_of)
    fee = FeeFacts(item.visit_id, item.currency, item.amount_minor, item.earned_minor, item.bill_total_minor) if item is not None else None
    base = {f.name: getattr(view, f.name) for f in fields(DispatcherView)}
    return FeeView(**base, fee=fee)
