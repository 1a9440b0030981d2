"""The dispatchers' group flow: bind the group, act on exception and low-rating alerts (dispatchers only)."""

from __future__ import annotations

import enum

from services.actions import (
    Acknowledge,
    AcknowledgeRating,
    Action,
    Assign,
    CallDetails,
    CancelReported,
    ChooseLanguage,
    ConfirmCancelReported,
    ExtendDeadline,
    KeepReported,
    OnException,
    Reassign,
    ReassignLate,
    ReassignTo,
    encode,
)
from conversations.flow import FlowSpec, Guard, State, Step, StepInput, reply
from conversations.flows.common import hint, identity, language_menu, stale, switch_language
from domain import commands as c
from domain.model import ExceptionStatus
from services.messages import Button, ChatRef, Inbound, InboundKind, Outbound, StepResult, buttons, raw, t
from services.views import DispatcherView, DispatcherViewRequest, ExceptionInfo

EXTEND_MINUTES = 30


class DispatcherState(enum.StrEnum):
    IDLE = "idle"


def view_request(event: Inbound, action: Action | None) -> DispatcherViewRequest:
    """The record a button is about; who could take a visit over only for the buttons that list them."""
    token = event.payload.strip() if event.kind is InboundKind.COMMAND and event.text == "start" else ""
    return DispatcherViewRequest(
        event.chat,
        event.user_id,
        token=token or None,
        exception_id=action.exception_id if isinstance(action, OnException) else None,
        visit_id=action.visit_id if isinstance(action, (ReassignLate, CallDetails)) else None,
        candidates=isinstance(action, (Reassign, ReassignTo, ReassignLate)),
    )


def is_dispatcher(inp: StepInput) -> bool:
    return inp.view.dispatcher_id is not None


def not_a_dispatcher(inp: StepInput) -> StepResult:
    """Buttons in a group may be pressed by anyone in it; only registered dispatchers change anything."""
    return hint("dispatcher.not_allowed", name=raw(inp.event.user_name or ""))


DISPATCHER = Guard("dispatchers", is_dispatcher, not_a_dispatcher)


def _open_exception(inp: StepInput) -> ExceptionInfo | None:
    view: DispatcherView = inp.view
    exception = view.exception
    if exception is None or exception.status == ExceptionStatus.RESOLVED.value:
        return None
    return exception


def on_start(inp: StepInput) -> StepResult:
    view: DispatcherView = inp.view
    token = inp.event.payload.strip()
    if not token:
        return hint("dispatcher.hint" if view.group_id else "dispatcher.hint_new")
    if view.token_kind == "group":
        return reply(Outbound(t("dispatcher.group_bound")), commands=[c.BindDispatchGroup(token, identity(inp))])
    if view.token_kind == "dispatcher":
        return reply(Outbound(t("dispatcher.registered")), commands=[c.RegisterDispatcher(token, identity(inp))])
    return hint("error.link_invalid")


def on_acknowledge(inp: StepInput, acknowledge: Acknowledge) -> StepResult:
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    return reply(
        Outbound(t("dispatcher.acknowledged", exception=exception.id, name=raw(inp.event.user_name))),
        commands=[c.AcknowledgeException(exception.id, inp.view.dispatcher_id)],
    )


def on_reassign(inp: StepInput, reassign: Reassign) -> StepResult:
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    if not exception.candidates:
        return hint("dispatcher.no_candidates", visit=exception.visit_id)
    rows = [[Button(raw(name), encode(ReassignTo(exception.id, tech_id)))] for tech_id, name in exception.candidates[:10]]
    return reply(Outbound(t("dispatcher.pick_technician", visit=exception.visit_id), buttons(*rows)))


def on_reassign_to(inp: StepInput, reassign: ReassignTo) -> StepResult:
    exception = _open_exception(inp)
    names = dict(exception.candidates or ()) if exception else {}
    if exception is None or reassign.technician_id not in names:
        return hint("dispatcher.already_handled")
    return reply(
        Outbound(t("dispatcher.reassigned", visit=exception.visit_id, technician=raw(names[reassign.technician_id]))),
        commands=[c.ReassignVisit(exception.id, reassign.technician_id, inp.view.dispatcher_id)],
    )


def on_cancel_visit(inp: StepInput, cancel: CancelReported) -> StepResult:
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    keyboard = buttons([
        Button(t("btn.yes_cancel"), encode(ConfirmCancelReported(exception.id))),
        Button(t("btn.no_keep"), encode(KeepReported())),
    ])
    return reply(Outbound(t("dispatcher.cancel_confirm", visit=exception.visit_id), keyboard))


def on_cancel_yes(inp: StepInput, confirm: ConfirmCancelReported) -> StepResult:
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    return reply(
        Outbound(t("dispatcher.visit_cancelled", visit=exception.visit_id)),
        commands=[c.CancelVisitByDispatcher(exception.id, inp.view.dispatcher_id)],
    )


def on_cancel_no(inp: StepInput, keep: KeepReported) -> StepResult:
    return hint("common.cancelled")


def on_rating_ack(inp: StepInput, acknowledge: AcknowledgeRating) -> StepResult:
    return reply(
        Outbound(t("dispatcher.rating_acknowledged", name=raw(inp.event.user_name))),
        commands=[c.AcknowledgeAlert(acknowledge.rating_id, inp.view.dispatcher_id)],
    )


def on_assign(inp: StepInput, assign: Assign) -> StepResult:
    return reply(
        Outbound(t("dispatcher.assigned", visit=assign.visit_id, name=raw(inp.event.user_name))),
        commands=[c.AssignVisit(assign.visit_id, assign.technician_id, inp.view.dispatcher_id)],
    )


def on_sla_reassign(inp: StepInput, reassign: ReassignLate) -> StepResult:
    visit = inp.view.visit
    if visit is None:
        return stale()
    if not visit.candidates:
        return hint("dispatcher.no_candidates", visit=visit.visit_id)
    rows = [[Button(raw(name), encode(Assign(visit.visit_id, tech_id)))] for tech_id, name in visit.candidates[:8]]
    return reply(Outbound(t("dispatcher.pick_technician", visit=visit.visit_id), buttons(*rows)))


def on_sla_extend(inp: StepInput, extend: ExtendDeadline) -> StepResult:
    return reply(
        Outbound(t("dispatcher.extended", visit=extend.visit_id, minutes=EXTEND_MINUTES, name=raw(inp.event.user_name))),
        commands=[c.ExtendSla(extend.visit_id, extend.stage, EXTEND_MINUTES, inp.view.dispatcher_id)],
    )


def on_call_details(inp: StepInput, call: CallDetails) -> StepResult:
    """Phone numbers never go to the group: they go to the dispatcher's own chat with the bot."""
    visit = inp.view.visit
    if visit is None:
        return stale()
    private = ChatRef(inp.event.chat.platform, inp.event.chat.bot, inp.event.user_id)
    details = t("dispatcher.call_details", visit=visit.visit_id, customer=raw(visit.customer), customer_phone=raw(visit.customer_phone),
                technician=raw(visit.technician), technician_phone=raw(visit.technician_phone))
    return reply(Outbound(details, to=private, language=inp.language), Outbound(t("dispatcher.details_sent", name=raw(inp.event.user_name))))


def on_help(inp: StepInput) -> StepResult:
    return hint("dispatcher.help")


def on_cancel(inp: StepInput) -> StepResult:
    return hint("common.cancelled")


def on_group_chatter(inp: StepInput) -> StepResult:
    # people talk among themselves in a group; the bot answers only what is addressed to it
    return reply()


CHATTER = Step(on_group_chatter)

DISPATCHER_FLOW = FlowSpec(
    name="dispatcher",
    initial=DispatcherState.IDLE,
    states={
        DispatcherState.IDLE: State(hint="dispatcher.hint", text=CHATTER, photo=CHATTER, location=CHATTER, contact=CHATTER, other=CHATTER),
    },
    commands={
        "start": Step(on_start),
        "help": Step(on_help),
        "cancel": Step(on_cancel),
        "lang": Step(language_menu),
        "language": Step(language_menu),
    },
    buttons={
        Acknowledge: Step(on_acknowledge, requires=DISPATCHER),
        Reassign: Step(on_reassign, requires=DISPATCHER),
        ReassignTo: Step(on_reassign_to, requires=DISPATCHER),
        CancelReported: Step(on_cancel_visit, requires=DISPATCHER),
        ConfirmCancelReported: Step(on_cancel_yes, requires=DISPATCHER),
        KeepReported: Step(on_cancel_no, requires=DISPATCHER),
        AcknowledgeRating: Step(on_rating_ack, requires=DISPATCHER),
        Assign: Step(on_assign, requires=DISPATCHER),
        ReassignLate: Step(on_sla_reassign, requires=DISPATCHER),
        ExtendDeadline: Step(on_sla_extend, requires=DISPATCHER),
        CallDetails: Step(on_call_details, requires=DISPATCHER),
        ChooseLanguage: Step(switch_language),
    },
)
