"""The dispatchers' side of a frozen fee (issue 14 part 7): Release it as it is, or Adjust it — the amount and the reason
typed next in the group, by the dispatcher who pressed. An amount that pays more than the visit's whole bill (the rule:
domain.settlement.adjustment_needs_confirming) is asked to be confirmed, or typed again, before it is saved. The
question is one card ("settle_adjust", visit): its answer takes its buttons away, and its own Never mind is valid only
while the answer is awaited — pressed later, it is stale, never a "nothing was changed" after a change."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from conversations.flow import FlowData, Guard, State, Step, StepInput, reply
from conversations.flows.common import hint, stale
from domain import commands as c
from domain.errors import DomainError
from domain.fees import Money, parse_amount
from domain.policy import ServicePolicy
from domain.settlement import adjustment_needs_confirming
from services import settlement_views, views
from services.actions import Action, SettleAdjust, SettleAdjustCancel, SettleAdjustConfirm, SettleAdjustRetype, SettleRelease, encode
from services.messages import Button, Card, Outbound, StepResult, buttons, raw, t
from services.settlement_views import FeeRequest, FeeView
from services.views import DispatcherView, DispatcherViewRequest
from storage.repository import Store

ADJUST = "settle_adjust"  # the dispatcher's next text is the adjusted amount and its reason


@dataclass(frozen=True)
class AdjustData(FlowData):
    """The visit whose fee is being adjusted, and who pressed Adjust: only their next text is the answer. What the fee
    pays, what the rule gave and the bill (in ``currency``) as they were when Adjust was pressed (None: not known, so
    nothing is asked to be confirmed); ``pending``: a typed answer waiting for its confirmation."""

    visit_id: int
    user_id: str
    currency: str = ""
    earned_minor: int | None = None
    bill_total_minor: int | None = None
    pending: str = ""


def view_request(action: Action | None, base: DispatcherViewRequest) -> DispatcherViewRequest:
    """The dispatcher's request, asking for the fee only when Adjust was pressed."""
    if isinstance(action, SettleAdjust):
        return FeeRequest(**vars(base), fee_of=action.visit_id)
    return base


async def load_view(store: Store, request: DispatcherViewRequest, policy: ServicePolicy, now: datetime) -> DispatcherView:
    view = await views.load_dispatcher_view(store, request, policy, now)
    return await settlement_views.with_fee(store, request, view, policy, now)


def ask_card(visit_id: int) -> Card:
    """The question for a fee's adjustment in a group: its answer (saved, or to confirm) takes its buttons away."""
    return ("settle_adjust", visit_id)


def on_release(inp: StepInput, press: SettleRelease) -> StepResult:
    if inp.view.visit is None:
        return stale()
    # the frozen alert card itself is edited to say who released it, without its buttons (services.settlement_notices)
    return reply(commands=[c.ReleaseSettlement(press.visit_id, f"dispatcher:{inp.view.dispatcher_id}", inp.view.dispatcher_id)])


def _cancel_row(visit_id: int) -> list[Button]:
    return [Button(t("btn.dispatch_never_mind"), encode(SettleAdjustCancel(visit_id)))]


def _ask(visit_id: int, name: str) -> Outbound:
    # a reply request: a Telegram group in privacy mode shows the bot the typed text only as a reply to it
    return Outbound(t("settle.ask_adjust", visit=visit_id, name=raw(name)), buttons(_cancel_row(visit_id)), request="reply",
                    card=ask_card(visit_id))


def on_adjust_ask(inp: StepInput, press: SettleAdjust) -> StepResult:
    if inp.view.visit is None:
        return stale()
    fee = inp.view.fee if isinstance(inp.view, FeeView) and inp.view.fee is not None and inp.view.fee.visit_id == press.visit_id else None
    data = AdjustData(press.visit_id, inp.event.user_id)
    if fee is not None:
        data = replace(data, currency=fee.currency, earned_minor=fee.earned_minor, bill_total_minor=fee.bill_total_minor)
    return reply(_ask(press.visit_id, inp.event.user_name), state=ADJUST, data=data)


def _to_confirm(data: AdjustData, text: str) -> Money | None:
    """The typed amount when it must be confirmed first; None when it is saved (or refused by the handler) at once."""
    first, _, reason = text.partition(" ")
    if data.earned_minor is None or data.bill_total_minor is None or not data.currency or not reason.strip():
        return None  # nothing known to compare with, or no reason (the handler asks for it)
    try:
        amount = parse_amount(first, data.currency)
    except DomainError:
        return None  # not an amount: the handler says so where it was typed
    return amount if adjustment_needs_confirming(amount.amount, data.earned_minor, data.bill_total_minor) else None


def _save(inp: StepInput, data: AdjustData, text: str, idle: str) -> StepResult:
    # a wrong amount or no reason comes back as the error, and the dispatcher may type it again (the state stays); saved,
    # the answer is the question's card, so its Never mind goes
    said = Outbound(t("settle.adjusted_group", visit=data.visit_id, name=raw(inp.event.user_name)), card=ask_card(data.visit_id))
    return reply(said, commands=[c.AdjustSettlementTyped(data.visit_id, text, inp.view.dispatcher_id)], state=idle)


def _adjust_text(idle: str) -> Step:
    def on_adjust_text(inp: StepInput) -> StepResult:
        data: AdjustData | None = inp.data
        if data is None:
            return reply(Outbound(t("hint.stale_button")), state=idle)
        if inp.event.user_id != data.user_id or inp.view.dispatcher_id is None:
            return reply()  # someone else talking in the group
        text = inp.event.text.strip()
        if not text:
            return reply(_ask(data.visit_id, inp.event.user_name))
        amount = _to_confirm(data, text)
        if amount is None:
            return _save(inp, data, text, idle)
        bill = Money(data.bill_total_minor or 0, data.currency)
        earned = Money(data.earned_minor or 0, data.currency)
        key, limit = ("settle.confirm_over_bill", bill) if (data.bill_total_minor or 0) > 0 else ("settle.confirm_over_fee", earned)
        keyboard = buttons([Button(t("btn.settle_confirm", amount=amount.text()), encode(SettleAdjustConfirm(data.visit_id)))],
                           [Button(t("btn.settle_retype"), encode(SettleAdjustRetype(data.visit_id)))], _cancel_row(data.visit_id))
        ask = Outbound(t(key, visit=data.visit_id, amount=amount.text(), limit=limit.text(), earned=earned.text(), name=raw(inp.event.user_name)),
                       keyboard, card=ask_card(data.visit_id))
        return reply(ask, data=replace(data, pending=text))

    return Step(on_adjust_text, leads_to=(idle,))


def _own(inp: StepInput, visit_id: int) -> AdjustData | None:
    """The adjustment awaited for this visit, when the one pressing is who started it."""
    data = inp.data if isinstance(inp.data, AdjustData) else None
    if data is None or data.visit_id != visit_id or inp.event.user_id != data.user_id or inp.view.dispatcher_id is None:
        return None
    return data


def _refused(inp: StepInput) -> StepResult:
    """Someone in the group who is not a dispatcher is told so (as for every dispatcher button); anyone else pressing
    a question that is not theirs, or no longer open, finds it stale."""
    if inp.view.dispatcher_id is None:
        return hint("dispatcher.not_allowed", name=raw(inp.event.user_name or ""))
    return stale()


def _buttons(idle: str) -> dict[type[Action], Step]:
    def on_adjust_confirm(inp: StepInput, press: SettleAdjustConfirm) -> StepResult:
        data = _own(inp, press.visit_id)
        if data is None or not data.pending:
            return _refused(inp)
        return _save(inp, data, data.pending, idle)

    def on_adjust_retype(inp: StepInput, press: SettleAdjustRetype) -> StepResult:
        data = _own(inp, press.visit_id)
        if data is None:
            return _refused(inp)
        return reply(_ask(data.visit_id, inp.event.user_name), data=replace(data, pending=""))

    def on_adjust_cancel(inp: StepInput, press: SettleAdjustCancel) -> StepResult:
        data = _own(inp, press.visit_id)
        if data is None:
            return _refused(inp)
        # pressed on the question: "cancelled" takes its place, so Never mind cannot be pressed again
        return reply(Outbound(t("common.cancelled"), card=ask_card(data.visit_id)), state=idle)

    return {
        SettleAdjustConfirm: Step(on_adjust_confirm, leads_to=(idle,)),
        SettleAdjustRetype: Step(on_adjust_retype),
        SettleAdjustCancel: Step(on_adjust_cancel, leads_to=(idle,)),
    }


def adjust_state(idle: str) -> State:
    """Waiting for the amount and reason of whoever pressed Adjust (and, for an amount above the bill, their confirmation);
    its own Never mind (or /cancel) leaves it. Its buttons are valid only here: after the answer they are stale."""
    return State(hint="settle.adjust_hint", data=AdjustData, text=_adjust_text(idle), buttons=_buttons(idle))


def dispatcher_buttons(guard: Guard) -> dict[type[Action], Step]:
    return {SettleRelease: Step(on_release, requires=guard), SettleAdjust: Step(on_adjust_ask, leads_to=(ADJUST,), requires=guard)}
