"""The dispatchers' side of a frozen fee (issue 14 part 7): Release it as it is, or Adjust it — the amount and the reason
typed next in the group, by the dispatcher who pressed."""

from __future__ import annotations

from dataclasses import dataclass

from conversations.flow import FlowData, Guard, State, Step, StepInput, reply
from conversations.flows.common import stale
from domain import commands as c
from services.actions import Action, NeverMind, SettleAdjust, SettleRelease, encode
from services.messages import Button, Outbound, StepResult, buttons, raw, t

ADJUST = "settle_adjust"  # the dispatcher's next text is the adjusted amount and its reason


@dataclass(frozen=True)
class AdjustData(FlowData):
    """The visit whose fee is being adjusted, and who pressed Adjust: only their next text is the answer."""

    visit_id: int
    user_id: str


def on_release(inp: StepInput, press: SettleRelease) -> StepResult:
    if inp.view.visit is None:
        return stale()
    # the frozen alert card itself is edited to say who released it, without its buttons (services.settlement_notices)
    return reply(commands=[c.ReleaseSettlement(press.visit_id, f"dispatcher:{inp.view.dispatcher_id}", inp.view.dispatcher_id)])


def on_adjust_ask(inp: StepInput, press: SettleAdjust) -> StepResult:
    if inp.view.visit is None:
        return stale()
    keyboard = buttons([Button(t("btn.dispatch_never_mind"), encode(NeverMind()))])
    # a reply request: a Telegram group in privacy mode shows the bot the typed text only as a reply to it
    prompt = Outbound(t("settle.ask_adjust", visit=press.visit_id, name=raw(inp.event.user_name)), keyboard, request="reply")
    return reply(prompt, state=ADJUST, data=AdjustData(press.visit_id, inp.event.user_id))


def _adjust_text(idle: str) -> Step:
    def on_adjust_text(inp: StepInput) -> StepResult:
        data: AdjustData | None = inp.data
        if data is None:
            return reply(Outbound(t("hint.stale_button")), state=idle)
        if inp.event.user_id != data.user_id or inp.view.dispatcher_id is None:
            return reply()  # someone else talking in the group
        text = inp.event.text.strip()
        if not text:
            return reply(Outbound(t("settle.ask_adjust", visit=data.visit_id, name=raw(inp.event.user_name)), request="reply"))
        # a wrong amount or no reason comes back as the error, and the dispatcher may type it again (the state stays)
        return reply(Outbound(t("settle.adjusted_group", visit=data.visit_id, name=raw(inp.event.user_name))),
                     commands=[c.AdjustSettlementTyped(data.visit_id, text, inp.view.dispatcher_id)], state=idle)

    return Step(on_adjust_text, leads_to=(idle,))


def adjust_state(idle: str) -> State:
    """Waiting for the amount and reason of whoever pressed Adjust; Never mind (or /cancel) leaves it."""
    return State(hint="settle.adjust_hint", data=AdjustData, text=_adjust_text(idle))


def dispatcher_buttons(guard: Guard) -> dict[type[Action], Step]:
    return {SettleRelease: Step(on_release, requires=guard), SettleAdjust: Step(on_adjust_ask, leads_to=(ADJUST,), requires=guard)}
