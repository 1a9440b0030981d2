"""The technician asks for a price increase on site: the button on a visit under way, the amount typed, the reason typed,
photos of the cause if any, then a summary to send or drop. Each typed value is checked where it is typed (the handler
reads the amount in the bill's currency) and may be typed again; /cancel or Cancel drops it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from conversations.flow import FlowData, Guard, State, Step, StepInput, reply
from conversations.flows.common import hint, stale
from domain import commands as c
from domain.model import VisitStatus
from domain.price_changes import MAX_PHOTOS, MAX_REASON
from services.actions import (
    Action,
    AgreePriceIncrease,
    ApprovePriceIncrease,
    ContinueChecklist,
    DeclinePriceIncrease,
    ManagerApprovePriceIncrease,
    ManagerDeclinePriceIncrease,
    PhoneAgreedPriceIncrease,
    PhoneRefusedPriceIncrease,
    PriceIncreaseAsk,
    PriceIncreaseCancel,
    PriceIncreaseSend,
    RefusePriceIncrease,
    StartChecklist,
    encode,
)
from services.messages import Button, Keyboard, Outbound, StepResult, buttons, raw, t
from services.views import TechVisit

AMOUNT = "pricechg_amount"  # the amount is typed next
REASON = "pricechg_reason"  # then why
SUMMARY = "pricechg_summary"  # then photos, if any, and Send or Cancel
UNDER_WAY = (VisitStatus.ON_SITE.value, VisitStatus.IN_PROGRESS.value)  # checked in or started


@dataclass(frozen=True)
class IncreaseDraft(FlowData):
    """An increase being written: the visit, the amount as typed, the reason, and the photos."""

    visit: int
    amount: str = ""
    reason: str = ""
    photos: tuple[c.PhotoRef, ...] = ()


def ask_button(visit_id: int) -> Button:
    return Button(t("btn.pricechg_ask"), encode(PriceIncreaseAsk(visit_id)))


def _cancel_row() -> list[Button]:
    return [Button(t("btn.pricechg_cancel"), encode(PriceIncreaseCancel()))]


def _summary(draft: IncreaseDraft) -> Outbound:
    keyboard = buttons([Button(t("btn.pricechg_send"), encode(PriceIncreaseSend()))], _cancel_row())
    text = t("pricechg.summary", visit=draft.visit, amount=raw(draft.amount), reason=raw(draft.reason), photos=len(draft.photos),
             max=MAX_PHOTOS)
    return Outbound(text, keyboard)


def _visit(inp: StepInput, visit_id: int) -> TechVisit | None:
    """The technician's own visit under way (a crew member's increase is the lead's to ask)."""
    visit: TechVisit | None = inp.view.visit(visit_id)
    if visit is None or visit.status not in UNDER_WAY or visit.lead is not None:
        return None
    return visit


def _draft(inp: StepInput) -> IncreaseDraft | None:
    draft = inp.data
    return draft if isinstance(draft, IncreaseDraft) and _visit(inp, draft.visit) is not None else None


def _carry_on(inp: StepInput, visit_id: int) -> Keyboard:
    """Back to the visit's work: its checklist where it is under way."""
    visit = _visit(inp, visit_id)
    if visit is None:
        return ()
    action: Action = ContinueChecklist(visit.id) if visit.status == VisitStatus.IN_PROGRESS.value else StartChecklist(visit.id)
    key = "btn.continue_checklist" if visit.status == VisitStatus.IN_PROGRESS.value else "btn.start_checklist"
    return buttons([Button(t(key), encode(action))])


def on_ask(inp: StepInput, press: PriceIncreaseAsk) -> StepResult:
    """The amount is asked for; whether the visit may have one now (none open on it) is checked at once."""
    visit = _visit(inp, press.visit_id)
    technician_id = inp.view.technician_id
    if visit is None or technician_id is None:
        return stale()
    ask = Outbound(t("pricechg.ask_amount", visit=visit.id), buttons(_cancel_row()))
    return reply(ask, commands=[c.CheckPriceIncrease(visit.id, technician_id)], state=AMOUNT, data=IncreaseDraft(visit.id))


def on_amount(inp: StepInput, idle: str) -> StepResult:
    """A refused amount (not a number, zero, too large, too precise for the currency) is answered and the state stays."""
    draft = _draft(inp)
    if draft is None:
        return reply(Outbound(t("hint.stale_button")), state=idle)
    text = (inp.event.text or "").strip()[:40]
    if not text:
        return hint("pricechg.ask_amount", visit=draft.visit)
    ask = Outbound(t("pricechg.ask_reason", amount=raw(text), max=MAX_REASON), buttons(_cancel_row()))
    return reply(ask, commands=[c.CheckPriceIncrease(draft.visit, inp.view.technician_id, text)], state=REASON,
                 data=replace(draft, amount=text))


def on_reason(inp: StepInput, idle: str) -> StepResult:
    draft = _draft(inp)
    if draft is None:
        return reply(Outbound(t("hint.stale_button")), state=idle)
    reason = " ".join((inp.event.text or "").split())
    if not reason:
        return hint("pricechg.ask_reason", amount=raw(draft.amount), max=MAX_REASON)
    if len(reason) > MAX_REASON:
        return hint("error.pricechg_reason_too_long", max=MAX_REASON)
    done = replace(draft, reason=reason)
    return reply(_summary(done), state=SUMMARY, data=done)


def on_photo(inp: StepInput, idle: str) -> StepResult:
    draft = _draft(inp)
    if draft is None:
        return reply(Outbound(t("hint.stale_button")), state=idle)
    event = inp.event
    if event.file_error or not event.file_id or not event.file_path:
        return reply(Outbound(t("tech.photo_failed")), _summary(draft))
    if len(draft.photos) >= MAX_PHOTOS:
        return reply(Outbound(t("error.pricechg_too_many_photos", max=MAX_PHOTOS)), _summary(draft))
    more = replace(draft, photos=(*draft.photos, c.PhotoRef(event.chat.platform, event.file_id, event.file_path)))
    return reply(_summary(more), data=more)


def on_summary_text(inp: StepInput) -> StepResult:
    """Words typed at the summary: the photos or the buttons are what it waits for."""
    draft = _draft(inp)
    if draft is None:
        return hint("hint.stale_button")
    return reply(Outbound(t("pricechg.hint_summary")), _summary(draft))


def on_send(inp: StepInput, press: PriceIncreaseSend, idle: str) -> StepResult:
    """Sent to the dispatchers; refused (another one opened meanwhile, the visit ended) the summary stays to cancel."""
    draft = _draft(inp)
    if draft is None or not draft.amount or not draft.reason:
        return reply(Outbound(t("hint.stale_button")), state=idle)
    command = c.RequestPriceIncrease(draft.visit, inp.view.technician_id, draft.amount, draft.reason, draft.photos)
    return reply(Outbound(t("pricechg.sent", visit=draft.visit), _carry_on(inp, draft.visit)), commands=[command], state=idle)


def on_cancel(inp: StepInput, press: PriceIncreaseCancel, idle: str) -> StepResult:
    draft = inp.data if isinstance(inp.data, IncreaseDraft) else None
    if draft is None:
        return reply(Outbound(t("pricechg.cancelled_none")), state=idle)
    return reply(Outbound(t("pricechg.cancelled", visit=draft.visit), _carry_on(inp, draft.visit)), state=idle)


def states(guard: Guard, idle: str) -> dict[str, State]:
    """The technician flow's states for the request (its visit card's button leads here)."""
    def amount(inp: StepInput) -> StepResult:
        return on_amount(inp, idle)

    def reason(inp: StepInput) -> StepResult:
        return on_reason(inp, idle)

    def photo(inp: StepInput) -> StepResult:
        return on_photo(inp, idle)

    def send(inp: StepInput, press: PriceIncreaseSend) -> StepResult:
        return on_send(inp, press, idle)

    amount.__name__, reason.__name__, photo.__name__, send.__name__ = (
        "on_pricechg_amount", "on_pricechg_reason", "on_pricechg_photo", "on_pricechg_send")
    return {
        AMOUNT: State(hint="pricechg.hint_amount", data=IncreaseDraft, text=Step(amount, leads_to=(REASON, idle))),
        REASON: State(hint="pricechg.hint_reason", data=IncreaseDraft, text=Step(reason, leads_to=(SUMMARY, idle))),
        SUMMARY: State(
            hint="pricechg.hint_summary", data=IncreaseDraft, wants_photo=True, text=Step(on_summary_text),
            photo=Step(photo, leads_to=(idle,)),
            buttons={PriceIncreaseSend: Step(send, leads_to=(idle,), requires=guard)},
        ),
    }


def technician_buttons(guard: Guard, idle: str) -> dict[type[Action], Step]:
    """The buttons valid in every state of the technician's flow."""
    def ask(inp: StepInput, press: PriceIncreaseAsk) -> StepResult:
        return on_ask(inp, press)

    def cancel(inp: StepInput, press: PriceIncreaseCancel) -> StepResult:
        return on_cancel(inp, press, idle)

    ask.__name__, cancel.__name__ = "on_pricechg_ask", "on_pricechg_cancel"
    return {
        PriceIncreaseAsk: Step(ask, leads_to=(AMOUNT,), requires=guard),
        PriceIncreaseCancel: Step(cancel, leads_to=(idle,)),
    }


# --- dispatchers and managers, in their groups ---------------------------------------------------------------------


def _chat_user(inp: StepInput) -> tuple[str, str, str]:
    """Who pressed, as their chat knows them: their account says whether they are a manager (services/price_changes.py)."""
    event = inp.event
    return event.chat.platform, event.chat.bot, event.user_id


def _decide(inp: StepInput, request_id: int, approve: bool) -> StepResult:
    # the card changes in place (or a new one says it waits for a manager); a refusal is answered where it was pressed
    return reply(commands=[c.DecidePriceIncrease(request_id, approve, inp.view.dispatcher_id, _chat_user(inp))])


def on_approve(inp: StepInput, press: ApprovePriceIncrease | ManagerApprovePriceIncrease) -> StepResult:
    return _decide(inp, press.request_id, True)


def on_decline(inp: StepInput, press: DeclinePriceIncrease | ManagerDeclinePriceIncrease) -> StepResult:
    return _decide(inp, press.request_id, False)


def on_phone_answer(inp: StepInput, press: PhoneAgreedPriceIncrease | PhoneRefusedPriceIncrease) -> StepResult:
    # the customer answered the dispatcher on the phone: recorded as theirs, the cards change in place (services/price_changes.py)
    agree = isinstance(press, PhoneAgreedPriceIncrease)
    return reply(commands=[c.RecordPriceIncreaseAnswer(press.request_id, agree, inp.view.dispatcher_id)])


def dispatcher_buttons(guard: Guard) -> dict[type[Action], Step]:
    """The region's card is for its dispatchers (the guard); the managers' card is for managers, whom their account
    names: anyone else pressing it is told so by the handler, and nothing changes."""
    return {
        ApprovePriceIncrease: Step(on_approve, requires=guard),
        DeclinePriceIncrease: Step(on_decline, requires=guard),
        PhoneAgreedPriceIncrease: Step(on_phone_answer, requires=guard),
        PhoneRefusedPriceIncrease: Step(on_phone_answer, requires=guard),
        ManagerApprovePriceIncrease: Step(on_approve),
        ManagerDeclinePriceIncrease: Step(on_decline),
    }


# --- the customer ------------------------------------------------------------------------------------------------------


# the answer is shown by the question card itself, which loses its buttons (services/price_changes.tell_customer_answer);
# a refusal (decided already, someone else's) is answered where it was pressed


def on_agree(inp: StepInput, press: AgreePriceIncrease) -> StepResult:
    return reply(commands=[c.AnswerPriceIncrease(press.request_id, inp.view.customer_id, True)])


def on_refuse(inp: StepInput, press: RefusePriceIncrease) -> StepResult:
    return reply(commands=[c.AnswerPriceIncrease(press.request_id, inp.view.customer_id, False)])


def customer_buttons(guard: Guard) -> dict[type[Action], Step]:
    return {AgreePriceIncrease: Step(on_agree, requires=guard), RefusePriceIncrease: Step(on_refuse, requires=guard)}
