"""The technician's signature steps: a pad link for the customer on request, the signature a completion policy asks for
first, and "the customer cannot sign" with its reason, so a required signature is never a dead end."""

from __future__ import annotations

from collections.abc import Callable

from conversations.flow import StepInput, reply
from conversations.flows.common import VisitData, hint, stale
from domain import commands as c
from domain.model import VisitStatus
from domain.signatures import SIGNING_STATES, SignatureState
from services.actions import AskSignature, CannotSign, ContinueChecklist, StartChecklist, encode
from services.messages import Button, Outbound, StepResult, buttons, t
from services.views import TechVisit

REASON = "signature_reason"  # the technician's state: why the customer cannot sign is typed next


def signature_button(visit_id: int) -> Button:
    return Button(t("btn.signature"), encode(AskSignature(visit_id)))


def cannot_sign_button(visit_id: int) -> Button:
    return Button(t("btn.signature_cannot"), encode(CannotSign(visit_id)))


def _signing_visit(inp: StepInput, visit_id: int) -> TechVisit | None:
    """The technician's own visit at the address (a crew member's pad would sign for the lead's visit: not theirs to ask)."""
    visit: TechVisit | None = inp.view.visit(visit_id)
    if visit is None or visit.lead is not None or visit.masked or VisitStatus(visit.status) not in SIGNING_STATES:
        return None
    return visit


def needed(inp: StepInput, visit_id: int) -> bool:
    """Whether completing this visit waits for the customer's signature (or the reason they cannot give one)."""
    state: str | None = inp.view.signatures.get(visit_id)
    return state == SignatureState.REQUIRED.value


def ask_first(visit_id: int) -> StepResult:
    """Complete pressed where the policy wants a signature: the pad link, or the way out."""
    keyboard = buttons([signature_button(visit_id)], [cannot_sign_button(visit_id)])
    return reply(Outbound(t("tech.signature_required", visit=visit_id), keyboard))


def on_ask(inp: StepInput, ask: AskSignature) -> StepResult:
    """A fresh single-use link; the reaction to the request sends it (the link is signed where the key is)."""
    visit = _signing_visit(inp, ask.visit_id)
    if visit is None:
        return stale()
    return reply(commands=[c.RequestSignature(visit.id, inp.view.technician_id)])


def on_cannot_sign(inp: StepInput, press: CannotSign) -> StepResult:
    visit = _signing_visit(inp, press.visit_id)
    if visit is None:
        return stale()
    return reply(Outbound(t("tech.signature_reason_ask", visit=visit.id)), state=REASON, data=VisitData(visit.id))


Completion = Callable[[StepInput, TechVisit, c.Command], StepResult]


def on_reason(inp: StepInput, complete: Completion, idle: str) -> StepResult:
    """The reason is kept with the visit; a visit whose checklist is done goes on to completion at once (``complete``,
    with the skip as its first command), any other gets its next step."""
    waiting: VisitData | None = inp.data
    visit = _signing_visit(inp, waiting.visit) if waiting else None
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state=idle)
    reason = inp.event.text.strip()
    if not reason:
        return hint("tech.signature_reason_ask", visit=visit.id)
    skip = c.SkipSignature(visit.id, inp.view.technician_id, reason[:500])
    if visit.status == VisitStatus.IN_PROGRESS.value and visit.next_step() is None:
        return complete(inp, visit, skip)
    if visit.status == VisitStatus.ON_SITE.value:
        keyboard = buttons([Button(t("btn.start_checklist"), encode(StartChecklist(visit.id)))])
    else:
        keyboard = buttons([Button(t("btn.continue_checklist"), encode(ContinueChecklist(visit.id)))])
    return reply(Outbound(t("tech.signature_skipped", visit=visit.id), keyboard), commands=[skip], state=idle)
