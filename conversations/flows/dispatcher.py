"""The dispatchers' group flow: bind the group, act on every alert (dispatchers only): assign anyone (with an explicit
override), move a visit, correct an address, cancel, close or reopen a job, note a complaint."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.actions import (
    AnswerInThread,
    Acknowledge,
    AcknowledgeRating,
    Action,
    Assign,
    AssignAnyone,
    AssignBusy,
    CallDetails,
    CancelFromAlert,
    CancelReported,
    ChooseLanguage,
    CloseJobAsk,
    CompleteForThem,
    ConfirmCancelFromAlert,
    ConfirmCancelReported,
    ConfirmOverride,
    ExtendDeadline,
    FixAddress,
    KeepReported,
    MoveVisitDay,
    MoveVisitMenu,
    MoveVisitTo,
    NeverMind,
    NewCodeFromAlert,
    NoteAsk,
    OnException,
    Reassign,
    ReassignLate,
    ReassignTo,
    ReopenJobAsk,
    ResendParkedCallback,
    SettleAdjust,
    SettleRelease,
    encode,
)
from conversations.flow import FlowData, FlowSpec, Guard, State, Step, StepInput, reply
from conversations.flows.common import hint, identity, language_menu, stale, switch_language
from conversations.flows import completion, relay
from conversations.flows import stock  # dispatchers approve or decline technicians' part requests (issue 14 part 5)
from conversations.flows import settlement  # dispatchers release or adjust a frozen fee (issue 14 part 7)
from conversations.flows import price_increase  # dispatchers, then managers above a threshold, decide price increases (issue 14 part 6)
from domain import commands as c
from domain.model import MAX_ID, ExceptionStatus
from domain.relay import Author
from services.messages import Button, Card, ChatRef, Inbound, InboundKind, Outbound, StepResult, Text, buttons, day_of, raw, span, t, when
from services.notifications import job_actions, visit_actions
from services.views import ChoiceInfo, DispatcherView, DispatcherViewRequest, ExceptionInfo

EXTEND_MINUTES = 30


class DispatcherState(enum.StrEnum):
    IDLE = "idle"
    AWAITING_TEXT = "awaiting_text"  # a dispatcher pressed a button whose next step is text they type


# the buttons about one visit, one job or one rating: the view loads that record (and who could take a visit)
VISIT_ACTIONS = (ReassignLate, CallDetails, AssignAnyone, AssignBusy, ConfirmOverride, MoveVisitMenu, MoveVisitDay, MoveVisitTo,
                 CancelFromAlert, ConfirmCancelFromAlert, Assign, SettleRelease, SettleAdjust)
JOB_ACTIONS = (FixAddress, CloseJobAsk, ReopenJobAsk, NoteAsk)
CHOICES_SHOWN = 8


@dataclass(frozen=True)
class Awaiting(FlowData):
    """What a dispatcher's next text is for: ``purpose`` address | close | reopen | note, on ``job_id``; only the
    dispatcher who pressed (``user_id``) is listened to — the others in the group go on talking among themselves."""

    job_id: int
    user_id: str
    purpose: str


def view_request(event: Inbound, action: Action | None) -> DispatcherViewRequest:
    """The record a button is about; who could take a visit over only for the buttons that list them."""
    token = event.payload.strip() if event.kind is InboundKind.COMMAND and event.text == "start" else ""
    return DispatcherViewRequest(
        event.chat,
        event.user_id,
        token=token or None,
        exception_id=action.exception_id if isinstance(action, OnException) else None,
        visit_id=action.visit_id if isinstance(action, VISIT_ACTIONS) else _visit_asked(event),
        candidates=isinstance(action, (Reassign, ReassignTo, ReassignLate)),
        job_id=action.job_id if isinstance(action, JOB_ACTIONS) else None,
        rating_id=action.rating_id if isinstance(action, AcknowledgeRating) else None,
        choices=isinstance(action, (AssignAnyone, AssignBusy)),
    )


def _visit_asked(event: Inbound) -> int | None:
    """/visit <id>: any visit's actions on demand, not only when an alert brings them (range-checked like a button)."""
    if event.kind is not InboundKind.COMMAND or event.text != "visit":
        return None
    text = event.payload.strip().lstrip("#")
    return int(text) if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_ID else None


def is_dispatcher(inp: StepInput) -> bool:
    """A registered dispatcher, acting on a record of their regions (the view leaves out what is outside them)."""
    return inp.view.dispatcher_id is not None and getattr(inp.view, "out_of_region", None) is None


def not_a_dispatcher(inp: StepInput) -> StepResult:
    """Buttons in a group may be pressed by anyone in it; only registered dispatchers change anything, and each only
    in their own regions (told which region it is, and that its dispatchers handle it)."""
    if inp.view.dispatcher_id is not None:
        return hint("dispatcher.region_denied", name=raw(inp.event.user_name or ""), region=raw(inp.view.out_of_region))
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
    if view.token_kind in ("group", "reports_group"):
        bound = "dispatcher.group_bound" if view.token_kind == "group" else "dispatcher.reports_group_bound"
        return reply(Outbound(t(bound)), commands=[c.BindDispatchGroup(token, identity(inp))])
    if view.token_kind == "dispatcher":
        return reply(Outbound(t("dispatcher.registered")), commands=[c.RegisterDispatcher(token, identity(inp))])
    return hint("error.link_invalid")


def _already_acknowledged(name: str | None, at: datetime | None) -> StepResult:
    return hint("dispatch.already_acknowledged", name=raw(name or "-"), at=when(at) if at else "-")


def on_acknowledge(inp: StepInput, acknowledge: Acknowledge) -> StepResult:
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    if exception.acknowledged_by is not None or exception.status != ExceptionStatus.OPEN.value:
        return _already_acknowledged(exception.acknowledged_by, exception.acknowledged_at)
    # the alert card itself is edited to say who and when (services.notifications), in every group that has it
    return reply(commands=[c.AcknowledgeException(exception.id, inp.view.dispatcher_id)])


def on_reassign(inp: StepInput, reassign: Reassign) -> StepResult:
    exception = _open_exception(inp)
    if exception is None:
        return hint("dispatcher.already_handled")
    anyone = [Button(t("btn.dispatch_assign_anyone"), encode(AssignAnyone(exception.visit_id)))]
    if not exception.candidates:
        # nobody free is not the end: anyone skilled (with an override), another time, a call, or cancelling
        return reply(Outbound(t("dispatcher.no_candidates", visit=exception.visit_id), visit_actions(exception.visit_id)))
    rows = [[Button(raw(name), encode(ReassignTo(exception.id, tech_id)))] for tech_id, name in exception.candidates[:10]]
    return reply(Outbound(t("dispatcher.pick_technician", visit=exception.visit_id), buttons(*rows, anyone)))


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
    rating = inp.view.rating
    if rating is None:
        return stale()
    if rating.acknowledged_by is not None:
        return _already_acknowledged(rating.acknowledged_by, rating.acknowledged_at)
    return reply(commands=[c.AcknowledgeAlert(acknowledge.rating_id, inp.view.dispatcher_id)])


def _assigned_key(inp: StepInput, offered: str) -> str:
    """A crew short of hands takes the pick beside its lead (services.dispatching): the group is told that, not an offer."""
    visit = inp.view.visit
    return "dispatch.seat_filled" if visit is not None and visit.open_seats > 0 else offered


def on_assign(inp: StepInput, assign: Assign) -> StepResult:
    return reply(
        Outbound(t(_assigned_key(inp, "dispatcher.assigned"), visit=assign.visit_id, name=raw(inp.event.user_name))),
        commands=[c.AssignVisit(assign.visit_id, assign.technician_id, inp.view.dispatcher_id)],
    )


def on_sla_reassign(inp: StepInput, reassign: ReassignLate) -> StepResult:
    visit = inp.view.visit
    if visit is None:
        return stale()
    if not visit.candidates:
        return reply(Outbound(t("dispatcher.no_candidates", visit=visit.visit_id), visit_actions(visit.visit_id)))
    rows = [[Button(raw(name), encode(Assign(visit.visit_id, tech_id)))] for tech_id, name in visit.candidates[:8]]
    anyone = [Button(t("btn.dispatch_assign_anyone"), encode(AssignAnyone(visit.visit_id)))]
    return reply(Outbound(t("dispatcher.pick_technician", visit=visit.visit_id), buttons(*rows, anyone)))


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


# --- nothing left unowned: assign anyone, move, cancel, correct, close, reopen, note ----------------------


def _conflict_line(choice: ChoiceInfo) -> Text:
    if choice.conflicts:
        visit_id, start, end = choice.conflicts[0]
        return t("dispatch.conflict_busy", slot=span(start, end), visit=visit_id or "-", more=len(choice.conflicts) - 1)
    return t("dispatch.conflict_off_shift" if choice.off_shift else "dispatch.conflict_no_route")


def _choice_label(choice: ChoiceInfo) -> Text:
    if choice.free:
        return t("dispatch.choice_free", name=raw(choice.name))
    return t("dispatch.choice_busy", name=raw(choice.name), conflict=_conflict_line(choice))


def on_assign_anyone(inp: StepInput, ask: AssignAnyone) -> StepResult:
    """Everyone skilled, free first; a busy one leads to a confirmation that names the conflict."""
    visit = inp.view.visit
    if visit is None or visit.choices is None:
        return stale()
    if not visit.choices:
        return reply(Outbound(t("dispatch.nobody_skilled", visit=visit.visit_id), visit_actions(visit.visit_id, assign=False)))
    rows = []
    for choice in visit.choices[:CHOICES_SHOWN]:
        action = Assign(visit.visit_id, choice.technician_id) if choice.free else AssignBusy(visit.visit_id, choice.technician_id)
        rows.append([Button(_choice_label(choice), encode(action))])
    rows.append([Button(t("btn.dispatch_never_mind"), encode(NeverMind()))])
    return reply(Outbound(t("dispatch.pick_anyone", visit=visit.visit_id), buttons(*rows)))


def on_assign_busy(inp: StepInput, pick: AssignBusy) -> StepResult:
    visit = inp.view.visit
    choice = next((ch for ch in visit.choices or () if ch.technician_id == pick.technician_id), None) if visit else None
    if visit is None or choice is None:
        return stale()
    keyboard = buttons(
        [Button(t("btn.dispatch_override"), encode(ConfirmOverride(visit.visit_id, choice.technician_id)))],
        [Button(t("btn.dispatch_back"), encode(AssignAnyone(visit.visit_id)))],
    )
    text = t("dispatch.override_confirm", name=raw(choice.name), visit=visit.visit_id, conflict=_conflict_line(choice))
    return reply(Outbound(text, keyboard))


def on_override(inp: StepInput, confirm: ConfirmOverride) -> StepResult:
    visit = inp.view.visit
    if visit is None:
        return stale()
    return reply(
        Outbound(t(_assigned_key(inp, "dispatch.overridden"), visit=visit.visit_id, name=raw(inp.event.user_name))),
        commands=[c.ForceAssignVisit(visit.visit_id, confirm.technician_id, inp.view.dispatcher_id)],
    )


def _days(inp: StepInput) -> list[datetime]:
    """The local midnights of the days a visit can be moved to: today (if a window is still ahead) to the horizon."""
    policy = inp.policy
    today = inp.now.astimezone(policy.tz).date()
    days = []
    for offset in range(policy.booking_days + 1):
        midnight = datetime.combine(today + timedelta(days=offset), datetime.min.time(), policy.tz)
        if _windows(inp, midnight):
            days.append(midnight)
    return days


def _windows(inp: StepInput, midnight: datetime) -> list[tuple[datetime, datetime]]:
    tz = inp.policy.tz
    day = midnight.astimezone(tz).date()
    spans = [(datetime.combine(day, w.start, tz), datetime.combine(day, w.end, tz)) for w in inp.policy.windows]
    return [(start, end) for start, end in spans if start > inp.now]


def on_move_menu(inp: StepInput, move: MoveVisitMenu) -> StepResult:
    visit = inp.view.visit
    if visit is None:
        return stale()
    rows = [[Button(t("dispatch.day_label", day=day_of(day.date())), encode(MoveVisitDay(visit.visit_id, day)))] for day in _days(inp)]
    rows.append([Button(t("btn.dispatch_never_mind"), encode(NeverMind()))])
    return reply(Outbound(t("dispatch.move_pick_day", visit=visit.visit_id), buttons(*rows)))


def on_move_day(inp: StepInput, pick: MoveVisitDay) -> StepResult:
    visit = inp.view.visit
    windows = _windows(inp, pick.day_start)
    if visit is None or not windows:
        return stale()
    rows = [[Button(t("dispatch.window_label", slot=span(start, end)), encode(MoveVisitTo(visit.visit_id, start, end)))] for start, end in windows]
    rows.append([Button(t("btn.dispatch_back"), encode(MoveVisitMenu(visit.visit_id)))])
    return reply(Outbound(t("dispatch.move_pick_window", visit=visit.visit_id), buttons(*rows)))


def on_move_to(inp: StepInput, move: MoveVisitTo) -> StepResult:
    visit = inp.view.visit
    if visit is None:
        return stale()
    return reply(
        Outbound(t("dispatch.moved", visit=visit.visit_id, slot=span(move.start, move.end), name=raw(inp.event.user_name))),
        commands=[c.MoveVisit(visit.visit_id, move.start, move.end, inp.view.dispatcher_id)],
    )


def on_cancel_from_alert(inp: StepInput, cancel: CancelFromAlert) -> StepResult:
    visit = inp.view.visit
    if visit is None:
        return stale()
    keyboard = buttons([
        Button(t("btn.yes_cancel"), encode(ConfirmCancelFromAlert(visit.visit_id))),
        Button(t("btn.no_keep"), encode(NeverMind())),
    ])
    return reply(Outbound(t("dispatcher.cancel_confirm", visit=visit.visit_id), keyboard))


def on_cancel_from_alert_yes(inp: StepInput, confirm: ConfirmCancelFromAlert) -> StepResult:
    visit = inp.view.visit
    if visit is None:
        return stale()
    return reply(
        Outbound(t("dispatcher.visit_cancelled", visit=visit.visit_id)),
        commands=[c.CancelVisitAsDispatcher(visit.visit_id, inp.view.dispatcher_id)],
    )


ASK_FOR = {FixAddress: "address", CloseJobAsk: "close", ReopenJobAsk: "reopen", NoteAsk: "note"}


def ask_card_key(job_id: int) -> Card:
    """The question for a job's address, reason or note in a group: its answer, or Never mind, takes its buttons away."""
    return ("ask", job_id)


def on_ask_text(inp: StepInput, ask: FixAddress | CloseJobAsk | ReopenJobAsk | NoteAsk) -> StepResult:
    """The next text of the dispatcher who pressed is the address, the reason or the note."""
    job = inp.view.job
    if job is None:
        return stale()
    purpose = ASK_FOR[type(ask)]
    keyboard = buttons([Button(t("btn.dispatch_never_mind"), encode(NeverMind()))])
    # a reply request: in a Telegram group with privacy mode the bot sees the typed text only when it replies to the
    # bot (as the relay thread's answer prompt); where replies cannot be requested the text still asks for one
    prompt = Outbound(t(f"dispatch.ask_{purpose}", order=job.id, name=raw(inp.event.user_name)), keyboard, request="reply",
                      card=ask_card_key(job.id))
    return reply(prompt, state=DispatcherState.AWAITING_TEXT, data=Awaiting(job.id, inp.event.user_id, purpose))


# decimals required: "Building 5, 12" is an address, "31.2304,121.4737" a pin
COORDINATES = re.compile(r"[\s;,]*(-?\d{1,2}\.\d+)\s*,\s*(-?\d{1,3}\.\d+)\s*$")


def parse_address(text: str) -> tuple[str, float | None, float | None]:
    """An address as typed, with an optional "lat,lon" at its end (no geocoder offline: the dispatcher may add the pin)."""
    match = COORDINATES.search(text)
    if match is None:
        return text.strip(), None, None
    return text[: match.start()].strip(), float(match.group(1)), float(match.group(2))


def on_awaited_text(inp: StepInput) -> StepResult:
    awaiting: Awaiting | None = inp.data
    if awaiting is None:
        return reply(state=DispatcherState.IDLE)
    if inp.event.user_id != awaiting.user_id or inp.view.dispatcher_id is None:
        return reply()  # someone else talking in the group
    text = inp.event.text.strip()
    dispatcher_id = inp.view.dispatcher_id
    name = raw(inp.event.user_name)
    card = ask_card_key(awaiting.job_id)  # typed, the answer comes anew and the question's copy loses its Never mind
    if awaiting.purpose == "address":
        address, lat, lon = parse_address(text)
        if not address:
            return hint("dispatch.ask_address", order=awaiting.job_id, name=name)
        return reply(Outbound(t("dispatch.address_corrected", order=awaiting.job_id, address=raw(address), name=name), card=card),
                     commands=[c.CorrectAddress(awaiting.job_id, address, lat, lon, dispatcher_id)], state=DispatcherState.IDLE)
    if awaiting.purpose == "note":
        return reply(Outbound(t("dispatch.note_added", order=awaiting.job_id, name=name), card=card),
                     commands=[c.AddNote(awaiting.job_id, text, dispatcher_id)], state=DispatcherState.IDLE)
    if awaiting.purpose == "reopen":
        return reply(Outbound(t("dispatch.job_reopened", order=awaiting.job_id, name=name), card=card),
                     commands=[c.ReopenJob(awaiting.job_id, text, dispatcher_id)], state=DispatcherState.IDLE)
    return reply(Outbound(t("dispatch.job_closed", order=awaiting.job_id, name=name), card=card),
                 commands=[c.CloseJob(awaiting.job_id, text, dispatcher_id)], state=DispatcherState.IDLE)


def on_never_mind(inp: StepInput, drop: NeverMind) -> StepResult:
    awaiting = inp.data if isinstance(inp.data, Awaiting) else None
    # pressed on the question: "cancelled" takes its place, so Never mind cannot be pressed again
    return reply(Outbound(t("common.cancelled"), card=ask_card_key(awaiting.job_id) if awaiting else None), state=DispatcherState.IDLE)


def on_resend_callback(inp: StepInput, resend: ResendParkedCallback) -> StepResult:
    """A parked status callback's alert: once the order source's system takes callbacks again, it goes out again (a
    refusal — sent meanwhile, or resent already — comes back as an error reply instead)."""
    return reply(Outbound(t("dispatcher.callback_resent", callback=resend.callback_id)), commands=[c.ResendCallback(resend.callback_id)])


def on_visit_command(inp: StepInput) -> StepResult:
    """A visit's card with every action a dispatcher has on it: move, assign anyone, call, cancel, correct, close."""
    visit = inp.view.visit
    if visit is None:
        return hint("dispatch.visit_usage")
    keyboard = buttons(*visit_actions(visit.visit_id), job_actions(visit.job_id) if visit.job_id else [])
    return reply(Outbound(t("dispatch.visit_card", visit=visit.visit_id, order=visit.job_id, kind=t(f"kind.{visit.kind}"),
                            status=t(f"status.{visit.status}")), keyboard))


def on_help(inp: StepInput) -> StepResult:
    return hint("dispatcher.help")


def on_cancel(inp: StepInput) -> StepResult:
    return reply(Outbound(t("common.cancelled")), state=DispatcherState.IDLE)


def on_group_chatter(inp: StepInput) -> StepResult:
    # people talk among themselves in a group; the bot answers only what is addressed to it
    return reply()


CHATTER = Step(on_group_chatter)

def _dispatcher_id(inp: StepInput) -> int | None:
    dispatcher_id: int | None = inp.view.dispatcher_id
    return dispatcher_id


DISPATCHER_FLOW = FlowSpec(
    name="dispatcher",
    initial=DispatcherState.IDLE,
    states={
        DispatcherState.IDLE: State(hint="dispatcher.hint", text=CHATTER, photo=CHATTER, location=CHATTER, contact=CHATTER, other=CHATTER),
        DispatcherState.AWAITING_TEXT: State(
            hint="dispatcher.hint", data=Awaiting, text=Step(on_awaited_text, leads_to=(DispatcherState.IDLE,)),
            photo=CHATTER, location=CHATTER, contact=CHATTER, other=CHATTER,
        ),
        relay.ANSWER: relay.answer_state(Author.DISPATCHER, _dispatcher_id, DispatcherState.IDLE),
        settlement.ADJUST: settlement.adjust_state(DispatcherState.IDLE),
    },
    commands={
        "start": Step(on_start),
        "help": Step(on_help),
        "cancel": Step(on_cancel, leads_to=(DispatcherState.IDLE,)),
        "visit": Step(on_visit_command, requires=DISPATCHER),
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
        AssignAnyone: Step(on_assign_anyone, requires=DISPATCHER),
        AssignBusy: Step(on_assign_busy, requires=DISPATCHER),
        ConfirmOverride: Step(on_override, requires=DISPATCHER),
        MoveVisitMenu: Step(on_move_menu, requires=DISPATCHER),
        MoveVisitDay: Step(on_move_day, requires=DISPATCHER),
        MoveVisitTo: Step(on_move_to, requires=DISPATCHER),
        CancelFromAlert: Step(on_cancel_from_alert, requires=DISPATCHER),
        ConfirmCancelFromAlert: Step(on_cancel_from_alert_yes, requires=DISPATCHER),
        FixAddress: Step(on_ask_text, leads_to=(DispatcherState.AWAITING_TEXT,), requires=DISPATCHER),
        CloseJobAsk: Step(on_ask_text, leads_to=(DispatcherState.AWAITING_TEXT,), requires=DISPATCHER),
        ReopenJobAsk: Step(on_ask_text, leads_to=(DispatcherState.AWAITING_TEXT,), requires=DISPATCHER),
        NoteAsk: Step(on_ask_text, leads_to=(DispatcherState.AWAITING_TEXT,), requires=DISPATCHER),
        NeverMind: Step(on_never_mind, leads_to=(DispatcherState.IDLE,), requires=DISPATCHER),
        CompleteForThem: Step(completion.on_complete_for_them, requires=DISPATCHER),  # a completion-code lockout's ways out
        NewCodeFromAlert: Step(completion.on_new_code_from_alert, requires=DISPATCHER),
        ResendParkedCallback: Step(on_resend_callback, requires=DISPATCHER),
        ChooseLanguage: Step(switch_language),
        AnswerInThread: relay.answer_step(DISPATCHER),  # only dispatchers answer a customer from a group
        **stock.dispatcher_buttons(DISPATCHER),
        **settlement.dispatcher_buttons(DISPATCHER),
        **price_increase.dispatcher_buttons(DISPATCHER),
    },
)
