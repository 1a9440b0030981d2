"""The steps of completion codes and the delivered-item check, for the technician's, customer's and dispatchers' flows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from conversations.flow import FlowData, StepInput, reply
from conversations.flows.common import VisitData, stale
from domain import commands as c
from domain.completion_codes import ItemMark, normalise
from domain.model import VisitStatus
from services.actions import (
    Complete,
    CompleteForThem,
    NeverMind,
    NewCodeFromAlert,
    ReportProblem,
    ResendCode,
    RestartItemCheck,
    SendItemCheck,
    SendItemMarks,
    TickItem,
    encode,
)
from services.completion_codes import item_question, items_card_key, locked_key
from services.messages import Button, Keyboard, Outbound, StepResult, buttons, raw, t

# the states these steps add to their flows
AWAIT_CODE = "await_code"  # technician: the customer's code is typed next
ITEM_CHECK = "item_check"  # customer: ticking a delivery's items


# --- technician: the code that completes a visit --------------------------------------------------------


def _code_keyboard(visit_id: int) -> Keyboard:
    return buttons([Button(t("btn.code_resend_to_customer"), encode(ResendCode(visit_id)))],
                   [Button(t("btn.code_never_mind"), encode(NeverMind()))])


def needs_code(inp: StepInput, visit_id: int) -> bool:
    """Whether the technician's visit completes only with the customer's code (it has one that is not used yet)."""
    return visit_id in inp.view.codes


def ask_for_code(inp: StepInput, visit_id: int, *commands: c.Command) -> StepResult:
    """Complete pressed on a visit with a code: type it (the customer gives it once satisfied), or a lock says who decides.
    ``commands`` run first (a repair's fault and method)."""
    state = inp.view.codes.get(visit_id)
    if state != "pending":
        # refused without a try: the dispatchers were alerted when it locked and can complete it or send a new code
        keyboard = buttons([Button(t("btn.report_problem"), encode(ReportProblem(visit_id)))])
        return reply(Outbound(t(locked_key(state), visit=visit_id), keyboard), commands=list(commands))
    return reply(Outbound(t("tech.code_ask", visit=visit_id), _code_keyboard(visit_id)), commands=list(commands),
                 state=AWAIT_CODE, data=VisitData(visit_id))


def on_code_text(inp: StepInput, otherwise: Callable[[StepInput], StepResult], idle: str) -> StepResult:
    """A typed code goes to the handler, which alone knows if it is right: the answer (completed, wrong with the tries
    left, locked) comes from its events. Text while no code is awaited any more (completed meanwhile) is free text."""
    waiting: VisitData | None = inp.data
    visit = inp.view.visit(waiting.visit) if waiting else None
    if visit is None or visit.status != VisitStatus.IN_PROGRESS.value or not needs_code(inp, visit.id):
        result = otherwise(inp)
        return result if result.state is not None else replace(result, state=idle, data={})
    state = inp.view.codes.get(visit.id)
    if state != "pending":
        return reply(Outbound(t(locked_key(state), visit=visit.id)), state=idle)
    code = normalise(inp.event.text)
    if code is None:
        # not six digits: no try is counted for what cannot be a code
        return reply(Outbound(t("tech.code_format", visit=visit.id), _code_keyboard(visit.id)))
    return reply(commands=[c.CompleteWithCode(visit.id, inp.view.technician_id, code)])


def on_code_never_mind(inp: StepInput, drop: NeverMind, idle: str) -> StepResult:
    """Not now: the visit stays as it is, with Complete to come back to."""
    waiting: VisitData | None = inp.data
    visit_id = waiting.visit if waiting else None
    keyboard = buttons([Button(t("btn.complete"), encode(Complete(visit_id)))]) if visit_id else ()
    return reply(Outbound(t("tech.code_later"), keyboard), state=idle)


def on_technician_resend(inp: StepInput, resend: ResendCode) -> StepResult:
    """The customer did not get the code (or lost it): a new one goes to them; the technician hears it went."""
    visit = inp.view.visit(resend.visit_id)
    if visit is None or visit.lead is not None or not needs_code(inp, visit.id):
        return stale()
    return reply(commands=[c.ResendCompletionCode(visit.id, technician_id=inp.view.technician_id)])


# --- customer: a new code, and the items a delivery brought ------------------------------------------------


def on_customer_resend(inp: StepInput, resend: ResendCode) -> StepResult:
    """The new code, in place of the old message (the handler says why not, e.g. the visit is done)."""
    if inp.view.visit(resend.visit_id) is None:
        return stale()
    return reply(commands=[c.ResendCompletionCode(resend.visit_id, customer_id=inp.view.customer_id)])


# a visit in these states may have a code waiting (services.completion_codes.CODE_STATES)
CODE_STATUSES = frozenset(s.value for s in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS,
                                            VisitStatus.ON_HOLD))


def on_customer_code(inp: StepInput) -> StepResult:
    """/code: the customer's current completion code(s) again, for the visits under way that need one. Only in their own
    chat: a code is never written where others read. The handler sends them (or says why not: none waiting, one sent
    a moment ago, too many asked for)."""
    if inp.event.chat_type != "private":
        return reply(Outbound(t("customer.code_private_only")))
    customer_id = inp.view.customer_id
    if customer_id is None:
        return reply(Outbound(t("customer.hint_new")))
    under_way = [v for job in inp.view.jobs for v in job.visits if v.status in CODE_STATUSES]
    if not under_way:
        return reply(Outbound(t("error.completion_code_none")))
    return reply(commands=[c.SendMyCompletionCodes(customer_id)])


@dataclass(frozen=True)
class ItemDraft(FlowData):
    """A delivery's items ticked so far, in order."""

    visit: int
    marks: tuple[ItemMark, ...] = ()


def _items(inp: StepInput, visit_id: int) -> tuple[str, ...] | None:
    items: tuple[str, ...] | None = inp.view.unchecked.get(visit_id)
    return items


def on_tick_item(inp: StepInput, tick: TickItem) -> StepResult:
    """One item's mark; the next item's question takes the card's place, or after the last the summary to send. A mark
    for an earlier item (an older copy of the card) goes back to it: the items after it are asked again."""
    items = _items(inp, tick.visit_id)
    if inp.view.customer_id is None or items is None or tick.index >= len(items):
        return stale()
    draft = inp.data if isinstance(inp.data, ItemDraft) and inp.data.visit == tick.visit_id else ItemDraft(tick.visit_id)
    if tick.index > len(draft.marks):
        return stale()  # a later item's button before this one's: not from a card the customer was shown
    marks = (*draft.marks[:tick.index], tick.mark)
    data = ItemDraft(tick.visit_id, marks)
    if len(marks) < len(items):
        text, keyboard = item_question(tick.visit_id, items, len(marks))
        return reply(Outbound(text, keyboard, card=items_card_key(tick.visit_id)), state=ITEM_CHECK, data=data)
    lines = [t(f"customer.item_line_{mark.value}", item=raw(item)) for item, mark in zip(items, marks, strict=True)]
    keyboard = buttons([Button(t("btn.items_send"), encode(SendItemMarks(tick.visit_id, marks)))],
                       [Button(t("btn.items_restart"), encode(RestartItemCheck(tick.visit_id)))])
    return reply(Outbound(t("customer.items_summary", lines=lines), keyboard, card=items_card_key(tick.visit_id)), state=ITEM_CHECK, data=data)


def _draft_for(inp: StepInput, visit_id: int) -> tuple[ItemDraft, tuple[str, ...]] | None:
    draft = inp.data if isinstance(inp.data, ItemDraft) and inp.data.visit == visit_id else None
    items = _items(inp, visit_id)
    if draft is None or items is None:
        return None
    return draft, items


def on_send_items(inp: StepInput, send: SendItemCheck, idle: str) -> StepResult:
    found = _draft_for(inp, send.visit_id)
    if found is None or len(found[0].marks) != len(found[1]):
        return reply(Outbound(t("hint.stale_button")), state=idle)
    draft, _items_ = found
    problem = any(mark is not ItemMark.RECEIVED for mark in draft.marks)
    answer = Outbound(t("customer.items_problem_reported" if problem else "customer.items_all_received"), card=items_card_key(send.visit_id))
    command = c.CheckDeliveredItems(send.visit_id, inp.view.customer_id, tuple(mark.value for mark in draft.marks))
    return reply(answer, commands=[command], state=idle)


def on_send_marks(inp: StepInput, send: SendItemMarks, idle: str) -> StepResult:
    """The check as its summary showed it, whatever the customer did since (confirmed the visit, rated it): sent once,
    for the items the delivery has. The state moves on only out of the check itself; a rating asked meanwhile stays."""
    items = _items(inp, send.visit_id)
    if inp.view.customer_id is None or items is None or len(send.marks) != len(items):
        return stale()
    problem = any(mark is not ItemMark.RECEIVED for mark in send.marks)
    answer = Outbound(t("customer.items_problem_reported" if problem else "customer.items_all_received"), card=items_card_key(send.visit_id))
    command = c.CheckDeliveredItems(send.visit_id, inp.view.customer_id, tuple(mark.value for mark in send.marks))
    return reply(answer, commands=[command], state=idle if inp.state == ITEM_CHECK else None)


def on_restart_items(inp: StepInput, restart: RestartItemCheck) -> StepResult:
    items = _items(inp, restart.visit_id)
    if items is None:
        return stale()
    text, keyboard = item_question(restart.visit_id, items, 0)
    return reply(Outbound(text, keyboard, card=items_card_key(restart.visit_id)), state=ITEM_CHECK, data=ItemDraft(restart.visit_id))


# --- dispatchers: the ways out of a lockout -------------------------------------------------------------------


def on_complete_for_them(inp: StepInput, press: CompleteForThem) -> StepResult:
    return reply(Outbound(t("dispatch.code_completed_for_them", visit=press.visit_id, name=raw(inp.event.user_name or ""))),
                 commands=[c.CompleteForTechnician(press.visit_id, inp.view.dispatcher_id)])


def on_new_code_from_alert(inp: StepInput, press: NewCodeFromAlert) -> StepResult:
    return reply(Outbound(t("dispatch.code_new_sent", visit=press.visit_id, name=raw(inp.event.user_name or ""))),
                 commands=[c.ResendCompletionCode(press.visit_id, dispatcher_id=inp.view.dispatcher_id)])
