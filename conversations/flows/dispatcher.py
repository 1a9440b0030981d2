"""The dispatchers' group flow: bind the group, act on exception and low-rating alerts (dispatchers only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from conversations.flow import FlowSpec, State, StepInput, button_int
from conversations.flows.common import hint, identity, language_menu, switch_language
from services.messages import Button, ChatRef, Inbound, InboundKind, Outbound, StepResult, buttons, raw, reply, t
from domain import commands as c
from domain.model import Customer, ExceptionStatus, Job, ProblemReport, Technician, Visit
from domain.policy import ServicePolicy
from services.context import HandlerContext
from services.handlers import candidates
from storage.repository import Store

EXCEPTION_BUTTONS = ("xa", "xr", "xt", "xc", "xcy")
VISIT_BUTTONS = ("sr", "sc")
EXTEND_MINUTES = 30


@dataclass(frozen=True)
class ExceptionInfo:
    id: int
    status: str
    visit_id: int
    kind: str
    candidates: tuple[tuple[int, str], ...]  # technicians who could take the visit instead


@dataclass(frozen=True)
class VisitContacts:
    visit_id: int
    candidates: tuple[tuple[int, str], ...]  # free technicians for its slot, best first
    customer: str
    customer_phone: str
    technician: str
    technician_phone: str


@dataclass(frozen=True)
class DispatcherView:
    group_id: int | None
    dispatcher_id: int | None  # the person who wrote or pressed, when registered as a dispatcher
    token_kind: str | None
    exception: ExceptionInfo | None
    visit: VisitContacts | None = None


async def load_view(store: Store, event: Inbound, data: dict, policy: ServicePolicy, now: datetime) -> DispatcherView:
    chat = event.chat
    group = await store.binding(chat.platform, chat.bot, chat.chat_id, "group")
    dispatcher = await store.dispatcher_for_user(chat.platform, chat.bot, event.user_id)
    token_kind = None
    if event.kind is InboundKind.COMMAND and event.text == "start" and event.payload:
        for purpose in ("group", "dispatcher"):
            if await store.find_token(event.payload.strip(), purpose):
                token_kind = purpose
                break
    exception = visit_info = None
    # anyone in a group can press its buttons: nothing is looked up for someone who is not a dispatcher
    if event.kind is InboundKind.BUTTON and dispatcher is not None:
        prefix = event.text.split(":", 1)[0]
        record_id = button_int(event.text, 1, low=1)
        if prefix in EXCEPTION_BUTTONS and record_id is not None:
            exception = await _exception_info(store, record_id, policy, now)
        elif prefix in VISIT_BUTTONS and record_id is not None:
            visit_info = await _visit_contacts(store, record_id, policy, now)
    return DispatcherView(group.subject_id if group else None, dispatcher.subject_id if dispatcher else None, token_kind, exception, visit_info)


async def _exception_info(store: Store, exception_id: int, policy: ServicePolicy, now: datetime) -> ExceptionInfo | None:
    report = await store.get(ProblemReport, exception_id)
    if report is None:
        return None
    visit = await store.get(Visit, report.visit_id)
    others = await _others_free(store, visit, policy, now)
    return ExceptionInfo(report.id, report.status, visit.id, visit.kind, others)


async def _visit_contacts(store: Store, visit_id: int, policy: ServicePolicy, now: datetime) -> VisitContacts | None:
    visit = await store.get(Visit, visit_id)
    if visit is None:
        return None
    job = await store.get(Job, visit.job_id)
    customer = await store.get(Customer, job.customer_id)
    technician = await store.get(Technician, visit.technician_id) if visit.technician_id else None
    others = await _others_free(store, visit, policy, now)
    return VisitContacts(visit.id, others, customer.name, customer.phone,
                         technician.name if technician else "-", technician.phone if technician else "-")


async def _others_free(store: Store, visit: Visit, policy: ServicePolicy, now: datetime) -> tuple[tuple[int, str], ...]:
    """Who could take the visit instead of whoever has it: the same rule every assign path checks."""
    job = await store.get(Job, visit.job_id)
    ranked = await candidates(HandlerContext(store, now, policy), visit, job)
    names = {t.id: t.name for t in await store.technicians()}
    return tuple((tid, names[tid]) for tid in ranked if tid != visit.technician_id)


def _only_dispatchers(inp: StepInput) -> StepResult | None:
    """Buttons in a group may be pressed by anyone in it; only registered dispatchers change anything."""
    if inp.view.dispatcher_id is None:
        return hint("dispatcher.not_allowed", name=raw(inp.event.user_name or ""))
    return None


def _open_exception(inp: StepInput) -> ExceptionInfo | None:
    exception = inp.view.exception
    if exception is None or exception.status == ExceptionStatus.RESOLVED.value:
        return None
    return exception


def on_start(inp: StepInput) -> StepResult:
    token = inp.event.payload.strip()
    if not token:
        return hint("dispatcher.hint" if inp.view.group_id else "dispatcher.hint_new")
    if inp.view.token_kind == "group":
        return reply(Outbound(t("dispatcher.group_bound")), commands=[c.BindDispatchGroup(token, identity(inp))])
    if inp.view.token_kind == "dispatcher":
        return reply(Outbound(t("dispatcher.registered")), commands=[c.RegisterDispatcher(token, identity(inp))])
    return hint("error.link_invalid")


def on_acknowledge(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    return reply(
        Outbound(t("dispatcher.acknowledged", exception=exception.id, name=raw(inp.event.user_name))),
        commands=[c.AcknowledgeException(exception.id, inp.view.dispatcher_id)],
    )


def on_reassign(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    if not exception.candidates:
        return hint("dispatcher.no_candidates", visit=exception.visit_id)
    rows = [[Button(raw(name), f"xt:{exception.id}:{tech_id}")] for tech_id, name in exception.candidates[:10]]
    return reply(Outbound(t("dispatcher.pick_technician", visit=exception.visit_id), buttons(*rows)))


def on_reassign_to(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    exception = _open_exception(inp)
    technician_id = inp.int_arg(1)
    names = dict(exception.candidates) if exception else {}
    if exception is None or technician_id not in names:
        return hint("dispatcher.already_handled")
    return reply(
        Outbound(t("dispatcher.reassigned", visit=exception.visit_id, technician=raw(names[technician_id]))),
        commands=[c.ReassignVisit(exception.id, technician_id, inp.view.dispatcher_id)],
    )


def on_cancel_visit(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    keyboard = buttons([Button(t("btn.yes_cancel"), f"xcy:{exception.id}"), Button(t("btn.no_keep"), "xcn")])
    return reply(Outbound(t("dispatcher.cancel_confirm", visit=exception.visit_id), keyboard))


def on_cancel_yes(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    return reply(
        Outbound(t("dispatcher.visit_cancelled", visit=exception.visit_id)),
        commands=[c.CancelVisitByDispatcher(exception.id, inp.view.dispatcher_id)],
    )


def on_cancel_no(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    return hint("common.cancelled")


def on_rating_ack(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    rating_id = inp.int_arg()
    if rating_id is None:
        return hint("hint.stale_button")
    return reply(
        Outbound(t("dispatcher.rating_acknowledged", name=raw(inp.event.user_name))),
        commands=[c.AcknowledgeAlert(rating_id, inp.view.dispatcher_id)],
    )


def on_assign(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    visit_id, technician_id = inp.int_arg(0), inp.int_arg(1)
    if visit_id is None or technician_id is None:
        return hint("hint.stale_button")
    return reply(
        Outbound(t("dispatcher.assigned", visit=visit_id, name=raw(inp.event.user_name))),
        commands=[c.AssignVisit(visit_id, technician_id, inp.view.dispatcher_id)],
    )


def on_sla_reassign(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    visit = inp.view.visit
    if visit is None:
        return hint("hint.stale_button")
    if not visit.candidates:
        return hint("dispatcher.no_candidates", visit=visit.visit_id)
    rows = [[Button(raw(name), f"as:{visit.visit_id}:{tech_id}")] for tech_id, name in visit.candidates[:8]]
    return reply(Outbound(t("dispatcher.pick_technician", visit=visit.visit_id), buttons(*rows)))


def on_sla_extend(inp: StepInput) -> StepResult:
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    visit_id, stage = inp.int_arg(0), (inp.args[1] if len(inp.args) > 1 else "")
    if visit_id is None or not stage:
        return hint("hint.stale_button")
    return reply(
        Outbound(t("dispatcher.extended", visit=visit_id, minutes=EXTEND_MINUTES, name=raw(inp.event.user_name))),
        commands=[c.ExtendSla(visit_id, stage, EXTEND_MINUTES, inp.view.dispatcher_id)],
    )


def on_call_details(inp: StepInput) -> StepResult:
    """Phone numbers never go to the group: they go to the dispatcher's own chat with the bot."""
    if (refusal := _only_dispatchers(inp)) is not None:
        return refusal
    visit = inp.view.visit
    if visit is None:
        return hint("hint.stale_button")
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


DISPATCHER_FLOW = FlowSpec(
    name="dispatcher",
    initial="idle",
    states={
        "idle": State(
            hint="dispatcher.hint",
            text=on_group_chatter,
            photo=on_group_chatter,
            location=on_group_chatter,
            contact=on_group_chatter,
            other=on_group_chatter,
        ),
    },
    commands={"start": on_start, "help": on_help, "cancel": on_cancel, "lang": language_menu, "language": language_menu},
    buttons={
        "xa": on_acknowledge,
        "xr": on_reassign,
        "xt": on_reassign_to,
        "xc": on_cancel_visit,
        "xcy": on_cancel_yes,
        "xcn": on_cancel_no,
        "ra": on_rating_ack,
        "as": on_assign,
        "sr": on_sla_reassign,
        "sx": on_sla_extend,
        "sc": on_call_details,
        "lang": switch_language,
    },
)

