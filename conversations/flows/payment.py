"""The technician records a payment after completion: the bill's button, how the customer paid, then the amount typed
(with the payment's reference after it); a wrong amount is answered and may be typed again, /cancel drops it."""

from __future__ import annotations

from dataclasses import dataclass

from conversations.flow import FlowData, StepInput, reply
from conversations.flows.common import hint
from domain import commands as c
from domain.fees import PaymentMethod
from services.actions import PickPaymentMethod, RecordPaymentAsk, encode
from services.messages import Button, Outbound, StepResult, buttons, t

AMOUNT = "payment_amount"  # the technician's state: the amount received is typed next


@dataclass(frozen=True)
class PaymentDraft(FlowData):
    visit: int
    method: str


def on_ask(inp: StepInput, press: RecordPaymentAsk) -> StepResult:
    """How the customer paid: one button per method (whether the bill is theirs and still owed is checked on recording)."""
    keyboard = buttons(*[[Button(t(f"fees.method_{method.value}"), encode(PickPaymentMethod(press.visit_id, method)))] for method in PaymentMethod])
    return reply(Outbound(t("tech.payment_method", visit=press.visit_id), keyboard))


def on_method(inp: StepInput, press: PickPaymentMethod) -> StepResult:
    key = "tech.payment_amount_online" if press.paid_by is PaymentMethod.ONLINE else "tech.payment_amount"
    return reply(Outbound(t(key, visit=press.visit_id, method=t(f"fees.method_{press.paid_by.value}"))), state=AMOUNT,
                 data=PaymentDraft(press.visit_id, press.paid_by.value))


def on_amount(inp: StepInput, idle: str) -> StepResult:
    """The typed amount goes to the bill; a refusal (not a number, more than owed, no reference) is answered as an
    error and the state stays, so the technician types it again or leaves with /cancel."""
    draft: PaymentDraft | None = inp.data
    technician_id: int | None = inp.view.technician_id
    if draft is None or technician_id is None:
        return reply(Outbound(t("hint.stale_button")), state=idle)
    text = (inp.event.text or "").strip()
    if not text:
        return hint("tech.payment_amount", visit=draft.visit, method=t(f"fees.method_{draft.method}"))
    command = c.RecordPaymentTyped(draft.visit, technician_id, draft.method, text[:200])
    return reply(Outbound(t("tech.payment_recorded", visit=draft.visit)), commands=[command], state=idle)
