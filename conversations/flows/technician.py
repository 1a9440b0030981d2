"""The technician's and driver's flow: offers, the day's visits, on the way, check-in, checklist, problems."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from services.actions import (
    AnswerInThread,
    AskSignature,
    CannotSign,
    Accept,
    Action,
    Answer,
    Arrived,
    AskHelp,
    ChooseLanguage,
    Complete,
    Contacted,
    ContinueChecklist,
    Decline,
    HandBack,
    JoinCrew,
    NeedReturn,
    NeverMind,
    OnMyWay,
    PickReason,
    PickReturnReason,
    ReportProblem,
    ResendCode,
    SendReport,
    SkipNote,
    StartChecklist,
    VisitOptions,
    encode,
)
from conversations.flow import FlowData, FlowSpec, Guard, State, Step, StepInput, reply
from conversations.flows.common import VisitData, help_for, hint, identity, language_menu, stale, switch_language
from conversations.flows import completion, relay, signature
from conversations.flows import stock  # van stock, part requests and a repair's completion record (issue 14 parts 4-5)
from conversations.flows import payment  # fees (issue 14 part 6): a payment recorded after completion
from conversations.flows import price_increase  # a price increase asked on site (issue 14 part 6)
from conversations.flows import device_history  # the device's history before going (issue 14 part 1)
from services.actions import PickPaymentMethod, RecordPaymentAsk
from domain import commands as c
from conversations import understanding
from conversations.understanding import Intent
from domain.errors import InvalidInput
from domain.relay import Author, Origin, Topic
from domain.field_work import CheckinKind, ReturnReason
from domain.geo import haversine_m, map_link
from domain.model import ChecklistStep, ExceptionReason, ServiceKind, StepKind, VisitStatus, parse_number
from services.messages import Button, Card, Inbound, InboundKind, Outbound, StepResult, Text, buttons, joined, link_button, raw, span, t
from services.messages import distance as distance_text
from services.views import TechnicianView, TechnicianViewRequest, TechVisit
from services.notifications import offer_card_key

PHOTO_REQUIRED_REASONS = (ExceptionReason.GOODS_DAMAGED, ExceptionReason.PARTS_MISSING)
UNDER_WAY = (VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS, VisitStatus.ON_HOLD)


class TechnicianState(enum.StrEnum):
    NEW = "new"
    IDLE = "idle"
    AWAIT_LOCATION = "await_location"
    CHECKIN_REASON = "checkin_reason"
    CHECKLIST = "checklist"
    REPORT_REASON = "report_reason"
    REPORT_NOTE = "report_note"
    REPORT_PHOTO = "report_photo"
    HAND_BACK_REASON = "hand_back_reason"
    RETURN_REASON = "return_reason"
    RETURN_NOTE = "return_note"
    # a repair's record (cause, fault, method, parts, outcome) is conversations/flows/stock.py's RECORD state


S = TechnicianState


@dataclass(frozen=True)
class CheckinAway(FlowData):
    """A check-in too far from the address, waiting for the reason."""

    visit: int
    lat: float
    lon: float
    live: bool = False  # shared as live location (rows from before this field: a pin)


@dataclass(frozen=True)
class ChecklistAt(FlowData):
    """The checklist step being asked."""

    visit: int
    step: int


@dataclass(frozen=True)
class ProblemDraft(FlowData):
    """A problem report being written: its reason, then a note, then photos."""

    visit: int
    reason: ExceptionReason
    photos: tuple[c.PhotoRef, ...] = ()
    note: str = ""


def view_request(event: Inbound, action: Action | None) -> TechnicianViewRequest:
    token = event.payload.strip() if event.kind is InboundKind.COMMAND and event.text == "start" else ""
    board = event.kind is InboundKind.COMMAND and event.text == "board"
    base = TechnicianViewRequest(event.chat, token=token or None, user_id=event.user_id if board else None, board=board)
    base = device_history.view_request(action, base)  # a history button reads the visit's device files
    return stock.view_request(event, action, base)  # parts steps read the van and the fault trees too


# --- rendering helpers --------------------------------------------------------------------------


def _kind(kind: str) -> Text:
    return t(f"kind.{kind}")


def _report_button(visit_id: int) -> Button:
    return Button(t("btn.report_problem"), encode(ReportProblem(visit_id)))


def _complete_button(visit_id: int) -> Button:
    return Button(t("btn.complete"), encode(Complete(visit_id)))


def _send_report_button() -> Button:
    return Button(t("btn.send_report"), encode(SendReport()))


def visit_card(visit: TechVisit) -> Outbound:
    """One visit with the next action the technician can take on it."""
    status = VisitStatus(visit.status)
    slot = span(visit.slot_start, visit.slot_end) if visit.slot_start and visit.slot_end else "-"
    if visit.lead is not None:  # crew: the lead checks in and walks the checklist, the crew turns up with them
        return Outbound(_with_brief(t(
            "tech.crew_visit_card", visit=visit.id, kind=_kind(visit.kind), status=t(f"status.{visit.status}"), lead=visit.lead,
            slot=slot, product=visit.product, address=visit.address, map=map_link(visit.lat, visit.lon),
        ), visit))
    if visit.masked:  # a grab offer not yet won: as its card, the district and the job only
        offer = t("tech.offer_grab", visit=visit.id, kind=_kind(visit.kind), product=visit.product, slot=slot, region=visit.address)
        choice = buttons([Button(t("btn.accept"), encode(Accept(visit.id))), Button(t("btn.decline"), encode(Decline(visit.id)))],
                         *([[device_history.history_button(visit.id)]] if visit.device else []))
        return Outbound(_with_brief(offer, visit), choice)
    actions: list[list[Button]] = []
    if status is VisitStatus.BOOKED:
        actions.append([Button(t("btn.accept"), encode(Accept(visit.id))), Button(t("btn.decline"), encode(Decline(visit.id)))])
    elif status is VisitStatus.ACCEPTED:
        actions.append([Button(t("btn.on_my_way"), encode(OnMyWay(visit.id))), Button(t("btn.arrived"), encode(Arrived(visit.id)))])
        actions.append([Button(t("btn.contacted"), encode(Contacted(visit.id)))])
    elif status is VisitStatus.EN_ROUTE:
        actions.append([Button(t("btn.arrived"), encode(Arrived(visit.id)))])
    elif status is VisitStatus.ON_SITE:
        actions.append([Button(t("btn.start_checklist"), encode(StartChecklist(visit.id)))])
    elif status is VisitStatus.IN_PROGRESS:
        actions.append([Button(t("btn.continue_checklist"), encode(ContinueChecklist(visit.id)))])
    if status in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS):
        actions.append([_report_button(visit.id), _options_button(visit.id)])
    if status in (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS):  # found on site (the customer's own wiring): ask for more
        actions.append([price_increase.ask_button(visit.id)])
    if visit.device and status not in (VisitStatus.COMPLETED, VisitStatus.CONFIRMED, VisitStatus.CANCELLED):
        actions.append([device_history.history_button(visit.id)])  # what was done to this device before
    text = t(
        "tech.visit_card", visit=visit.id, kind=_kind(visit.kind), status=t(f"status.{visit.status}"),
        slot=slot, product=visit.product, address=visit.address, customer=visit.customer, phone=visit.phone,
        map=map_link(visit.lat, visit.lon),
    )
    return Outbound(_with_brief(text, visit), buttons(*actions))


def _with_brief(text: Text, visit: TechVisit) -> Text:
    """The job's notes and items under a card ("call first, 3rd floor, no lift"): on the offer, in /today, at check-in."""
    return t("tech.with_brief", card=text, brief=raw(visit.brief)) if visit.brief else text


def _options_button(visit_id: int) -> Button:
    return Button(t("btn.visit_options"), encode(VisitOptions(visit_id)))


def checklist_card_key(visit_id: int) -> Card:
    """A visit's checklist in the technician's chat: each step's question, then "all done", then "completed", in one
    message edited in place, so no answered step's buttons stay to be pressed (a typed answer or a photo comes as a
    new copy and the older one loses its buttons)."""
    return ("checklist", visit_id)


def step_prompt(visit: TechVisit, index: int) -> Outbound:
    step = visit.steps[index]
    progress = f"{index + 1}/{len(visit.steps)}"
    rows: list[list[Button]] = []
    if step.kind is StepKind.YES_NO:
        rows.append([
            Button(t("btn.yes"), encode(Answer(visit.id, index, "yes"))),
            Button(t("btn.no"), encode(Answer(visit.id, index, "no"))),
        ])
    elif step.kind is StepKind.CHOICE:
        rows.extend([Button(raw(choice), encode(Answer(visit.id, index, str(n))))] for n, choice in enumerate(step.choices))
    rows.append([_report_button(visit.id), _options_button(visit.id)])
    key = {
        StepKind.YES_NO: "tech.step_yes_no",
        StepKind.CHOICE: "tech.step_choice",
        StepKind.NUMBER: "tech.step_number",
        StepKind.TEXT: "tech.step_text",
        StepKind.PHOTO: "tech.step_photo",
    }[step.kind]
    return Outbound(
        t(key, progress=progress, prompt=raw_prompt(step), min=_fmt(step.minimum), max=_fmt(step.maximum)),
        buttons(*rows),
        card=checklist_card_key(visit.id),
    )


def raw_prompt(step: ChecklistStep) -> Text:
    # the shop writes prompts per language; the renderer picks the recipient's one
    return {"key": "=lang", "params": dict(step.prompt)}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else str(value)


def _after_answer(visit: TechVisit, answered_key: str) -> tuple[list[Outbound], S, ChecklistAt | None]:
    """What follows an answer: the next unanswered step, or the Complete button."""
    answered = visit.answered | {answered_key}
    remaining = [i for i, s in enumerate(visit.steps) if s.key not in answered]
    if remaining:
        return [step_prompt(visit, remaining[0])], S.CHECKLIST, ChecklistAt(visit.id, remaining[0])
    # the customer can sign before Complete (a required signature is asked for by Complete itself)
    keyboard = buttons([_complete_button(visit.id)], [signature.signature_button(visit.id)], [_report_button(visit.id)])
    return [Outbound(t("tech.checklist_done"), keyboard, card=checklist_card_key(visit.id))], S.IDLE, None


# --- steps --------------------------------------------------------------------------------------


def is_technician(inp: StepInput) -> bool:
    return inp.view.technician_id is not None


def not_a_technician(inp: StepInput) -> StepResult:
    return hint("tech.hint_new")


TECHNICIAN = Guard("technicians", is_technician, not_a_technician)


def on_start(inp: StepInput) -> StepResult:
    view: TechnicianView = inp.view
    token = inp.event.payload.strip()
    if token:
        if view.token_kind == "technician":
            return reply(Outbound(t("tech.welcome")), commands=[c.BindTechnician(token, identity(inp))], state=S.IDLE)
        if view.token_kind == "dispatcher":
            return reply(Outbound(t("dispatcher.registered")), commands=[c.RegisterDispatcher(token, identity(inp))])
        return hint("error.link_invalid")
    if view.technician_id is None:
        return hint("tech.hint_new")
    return on_today(inp)


def on_today(inp: StepInput) -> StepResult:
    view: TechnicianView = inp.view
    local_today = inp.now.astimezone(inp.policy.tz).date()
    booked = sorted(((v.slot_start, v) for v in view.visits if v.slot_start), key=lambda pair: pair[0])
    # a visit under way is today's work whatever day it was booked for (started early, or running past midnight)
    today = [v for start, v in booked if start.astimezone(inp.policy.tz).date() == local_today or VisitStatus(v.status) in UNDER_WAY]
    later = [v for v in view.visits if v not in today and v.status != VisitStatus.COMPLETED.value]
    messages = [Outbound(t("tech.today_header", count=len(today), later=len(later)))]
    messages.extend(visit_card(v) for v in today)
    # open offers for later days still need an answer, so show them too
    messages.extend(visit_card(v) for v in later if v.status == VisitStatus.BOOKED.value)
    return reply(*messages)


def on_visits(inp: StepInput) -> StepResult:
    upcoming = [v for v in inp.view.visits if v.status != VisitStatus.COMPLETED.value]
    if not upcoming:
        return hint("tech.no_visits")
    return reply(*[visit_card(v) for v in upcoming])


def _visit_in(inp: StepInput, visit_id: int, *statuses: VisitStatus) -> TechVisit | None:
    view: TechnicianView = inp.view
    visit = view.visit(visit_id)
    if visit is None or (statuses and VisitStatus(visit.status) not in statuses):
        return None
    return visit


def on_accept(inp: StepInput, accept: Accept) -> StepResult:
    visit = _visit_in(inp, accept.visit_id, VisitStatus.BOOKED)
    if visit is None:
        return hint("tech.offer_gone")
    if visit.masked:
        # a grab offer: the winner's answer is the won card with the customer's details, which only the accept reveals
        # (services.notifications.grab_winner_details, in this card's place); a lost race answers with its error
        return reply(commands=[c.AcceptOffer(visit.id, inp.view.technician_id)])
    keyboard = buttons([Button(t("btn.on_my_way"), encode(OnMyWay(visit.id)))])
    # the answer takes the offer card's place: its Accept / Decline cannot be pressed again
    answer = Outbound(t("tech.accepted", visit=visit.id), keyboard, card=offer_card_key(visit.id))
    return reply(answer, commands=[c.AcceptOffer(visit.id, inp.view.technician_id)])


def on_decline(inp: StepInput, decline: Decline) -> StepResult:
    visit = _visit_in(inp, decline.visit_id, VisitStatus.BOOKED)
    if visit is None:
        return hint("tech.offer_gone")
    answer = Outbound(t("tech.declined", visit=visit.id), card=offer_card_key(visit.id))
    return reply(answer, commands=[c.DeclineOffer(visit.id, inp.view.technician_id)])


def _ask_location() -> Outbound:
    return Outbound(t("tech.share_location"), request="location")


def on_depart(inp: StepInput, depart: OnMyWay) -> StepResult:
    visit = _visit_in(inp, depart.visit_id, VisitStatus.ACCEPTED)
    if visit is None:
        return stale()
    # one message: the next question with it; on the offer's card, so the accepted card's On my way goes (a message
    # that asks for a location is sent anew, and the card's older copy loses its buttons)
    return reply(
        joined(Outbound(t("tech.en_route", visit=visit.id), card=offer_card_key(visit.id)), _ask_location()),
        commands=[c.Depart(visit.id, inp.view.technician_id)],
        state=S.AWAIT_LOCATION,
        data=VisitData(visit.id),
    )


def on_arrived(inp: StepInput, arrived: Arrived) -> StepResult:
    visit = _visit_in(inp, arrived.visit_id, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE)
    if visit is None:
        return stale()
    return reply(_ask_location(), state=S.AWAIT_LOCATION, data=VisitData(visit.id))


def _checked_in(visit: TechVisit) -> Outbound:
    keyboard = buttons([Button(t("btn.start_checklist"), encode(StartChecklist(visit.id)))], [_report_button(visit.id), _options_button(visit.id)])
    # the checklist's first card: Start turns it into the first question, so its Start cannot be pressed twice
    return Outbound(_with_brief(t("tech.checked_in"), visit), keyboard, card=checklist_card_key(visit.id))


def _kind_of(event: Inbound) -> str:
    if not event.live and not event.live_possible:
        return CheckinKind.PIN_ONLY.value
    return _checkin_kind(event.live)


def _checkin_kind(live: bool) -> str:
    return CheckinKind.LIVE.value if live else CheckinKind.STATIC.value


def on_location(inp: StepInput) -> StepResult:
    going: VisitData | None = inp.data
    visit = inp.view.visit(going.visit) if going else None
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    lat, lon = inp.event.latitude, inp.event.longitude
    if lat is None or lon is None:
        return hint("tech.hint_location")
    distance = haversine_m(visit.lat, visit.lon, lat, lon)
    if distance > inp.policy.checkin_radius_m:
        return reply(
            Outbound(t("tech.too_far", distance=distance_text(distance), radius=int(inp.policy.checkin_radius_m))),
            state=S.CHECKIN_REASON,
            data=CheckinAway(visit.id, lat, lon, inp.event.live),
        )
    return reply(_checked_in(visit), commands=[c.CheckIn(visit.id, inp.view.technician_id, lat, lon, kind=_kind_of(inp.event))], state=S.IDLE)


def on_checkin_reason(inp: StepInput) -> StepResult:
    away: CheckinAway | None = inp.data
    visit = inp.view.visit(away.visit) if away else None
    reason = inp.event.text.strip()
    if away is None or visit is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    if not reason:
        return hint("tech.hint_checkin_reason")
    return reply(
        _checked_in(visit),
        commands=[c.CheckIn(visit.id, inp.view.technician_id, away.lat, away.lon, reason[:500], _checkin_kind(away.live))],
        state=S.IDLE,
    )


def on_start_work(inp: StepInput, start: StartChecklist) -> StepResult:
    visit = _visit_in(inp, start.visit_id, VisitStatus.ON_SITE)
    if visit is None:
        return stale()
    if not visit.dependency_done:
        return hint("error.dependency_not_completed", kind=_kind("delivery"))
    command = c.StartWork(visit.id, inp.view.technician_id)
    if not visit.steps:
        keyboard = buttons([_complete_button(visit.id)], [_options_button(visit.id)])
        return reply(Outbound(t("tech.no_checklist"), keyboard, card=checklist_card_key(visit.id)), commands=[command], state=S.IDLE)
    first = visit.next_step() or 0
    return reply(step_prompt(visit, first), commands=[command], state=S.CHECKLIST, data=ChecklistAt(visit.id, first))


def on_continue(inp: StepInput, resume: ContinueChecklist) -> StepResult:
    visit = _visit_in(inp, resume.visit_id, VisitStatus.IN_PROGRESS)
    if visit is None:
        return stale()
    index = visit.next_step()
    if index is None:
        messages, state, data = _after_answer(visit, "")
        return reply(*messages, state=state, data=data)
    return reply(step_prompt(visit, index), state=S.CHECKLIST, data=ChecklistAt(visit.id, index))


def _current_step(inp: StepInput) -> tuple[TechVisit, int] | None:
    at: ChecklistAt | None = inp.data
    visit = inp.view.visit(at.visit) if at else None
    if at is None or visit is None or at.step >= len(visit.steps) or visit.status != VisitStatus.IN_PROGRESS.value:
        return None
    return visit, at.step


def _answer(inp: StepInput, visit: TechVisit, index: int, value: str, photo: c.PhotoRef | None = None) -> StepResult:
    step = visit.steps[index]
    messages, state, data = _after_answer(visit, step.key)
    return reply(
        *messages,
        commands=[c.AnswerStep(visit.id, inp.view.technician_id, step.key, value, photo)],
        state=state,
        data=data,
    )


def on_answer_button(inp: StepInput, answer: Answer) -> StepResult:
    current = _current_step(inp)
    if current is None or answer.visit_id != current[0].id or answer.step != current[1]:
        return stale()
    visit, index = current
    step = visit.steps[index]
    if step.kind is StepKind.YES_NO and answer.choice in ("yes", "no"):
        return _answer(inp, visit, index, answer.choice)
    if step.kind is StepKind.CHOICE and answer.choice.isdigit() and int(answer.choice) < len(step.choices):
        return _answer(inp, visit, index, step.choices[int(answer.choice)])
    return stale()


def on_checklist_text(inp: StepInput) -> StepResult:
    current = _current_step(inp)
    if current is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    visit, index = current
    step = visit.steps[index]
    text = inp.event.text.strip()
    if step.kind is StepKind.NUMBER:
        try:
            value = parse_number(text, step)
        except InvalidInput as err:
            return reply(joined(Outbound(t(f"error.{err.code}", min=_fmt(step.minimum), max=_fmt(step.maximum))), step_prompt(visit, index)))
        return _answer(inp, visit, index, _fmt(value))
    if step.kind is StepKind.TEXT and text:
        return _answer(inp, visit, index, text[:2000])
    why = Outbound(t("tech.hint_use_buttons" if step.kind in (StepKind.YES_NO, StepKind.CHOICE) else "tech.hint_send_photo"))
    return reply(joined(why, step_prompt(visit, index)))


def _photo_ref(inp: StepInput) -> c.PhotoRef | None:
    event = inp.event
    if not event.file_id:
        return None
    return c.PhotoRef(event.chat.platform, event.file_id, event.file_path or "")


def _photo_refused(event: Inbound) -> Outbound:
    """Why a photo was not kept, in words the sender can act on; the state stays, so they can send another."""
    refusals = {
        "too_big": t("photo.too_big", max_mb=_fmt(event.file_limit_mb)),
        "not_image": t("photo.not_image"),
        "too_many_pixels": t("photo.too_many_pixels"),
    }
    return Outbound(refusals.get(event.file_error or "", t("tech.photo_failed")))


def on_checklist_photo(inp: StepInput) -> StepResult:
    current = _current_step(inp)
    if current is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    visit, index = current
    if visit.steps[index].kind is not StepKind.PHOTO:
        return reply(joined(Outbound(t("tech.hint_not_photo")), step_prompt(visit, index)))
    if inp.event.file_error:
        return reply(joined(_photo_refused(inp.event), step_prompt(visit, index)))
    photo = _photo_ref(inp)
    if photo is None or not photo.path:
        return hint("tech.photo_failed")
    return _answer(inp, visit, index, "photo", photo)


def on_complete(inp: StepInput, complete: Complete) -> StepResult:
    visit = _visit_in(inp, complete.visit_id, VisitStatus.IN_PROGRESS)
    if visit is None:
        return stale()
    if signature.needed(inp, visit.id):  # the policy wants the customer's signature first (or why they cannot sign)
        return signature.ask_first(visit.id)
    return _complete(inp, visit)


def _complete(inp: StepInput, visit: TechVisit, *first: c.Command) -> StepResult:
    """Completion once nothing waits for a signature; ``first`` runs before (a skipped signature's reason)."""
    if visit.kind == ServiceKind.REPAIR.value:  # a repair says what was wrong and what was done before it is complete
        return stock.start(inp, visit, first, S.IDLE)  # cause, fault, method, parts, fixed or a return visit
    if completion.needs_code(inp, visit.id):  # the customer's one-time code completes it
        return completion.ask_for_code(inp, visit.id, *first)
    return reply(Outbound(t("tech.completed", visit=visit.id), card=checklist_card_key(visit.id)),
                 commands=[*first, c.CompleteVisit(visit.id, inp.view.technician_id)], state=S.IDLE)


def on_signature_reason(inp: StepInput) -> StepResult:
    return signature.on_reason(inp, _complete, S.IDLE)


def on_payment_amount(inp: StepInput) -> StepResult:
    return payment.on_amount(inp, S.IDLE)


def on_report(inp: StepInput, report: ReportProblem) -> StepResult:
    visit = _visit_in(
        inp, report.visit_id, VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS,
    )
    if visit is None:
        return stale()
    rows = [[Button(t(f"reason.{reason.value}"), encode(PickReason(visit.id, reason)))] for reason in ExceptionReason]
    return reply(Outbound(t("tech.report_reason"), buttons(*rows)), state=S.REPORT_REASON, data=VisitData(visit.id))


def on_report_reason(inp: StepInput, pick: PickReason) -> StepResult:
    visit = inp.view.visit(pick.visit_id)
    if visit is None:
        return stale()
    keyboard = buttons([Button(t("btn.skip"), encode(SkipNote()))])
    return reply(Outbound(t("tech.report_note"), keyboard), state=S.REPORT_NOTE, data=ProblemDraft(visit.id, pick.reason))


def _photo_step(draft: ProblemDraft) -> Outbound:
    required = draft.reason in PHOTO_REQUIRED_REASONS
    return Outbound(t("tech.report_photo_required" if required else "tech.report_photo"), buttons([_send_report_button()]))


def _noted(inp: StepInput, note: str) -> StepResult:
    draft: ProblemDraft | None = inp.data
    if draft is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    noted = replace(draft, note=note)
    return reply(_photo_step(noted), state=S.REPORT_PHOTO, data=noted)


def on_report_note(inp: StepInput) -> StepResult:
    return _noted(inp, inp.event.text.strip()[:1000])


def on_report_skip(inp: StepInput, skip: SkipNote) -> StepResult:
    return _noted(inp, "")


def on_report_photo(inp: StepInput) -> StepResult:
    draft: ProblemDraft | None = inp.data
    if draft is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    if inp.event.file_error:
        return reply(_photo_refused(inp.event), _photo_step(draft))
    photo = _photo_ref(inp)
    if photo is None or not photo.path:
        return hint("tech.photo_failed")
    more = replace(draft, photos=(*draft.photos, photo))
    return reply(Outbound(t("tech.report_photo_added", count=len(more.photos)), buttons([_send_report_button()])), data=more)


def on_report_send(inp: StepInput, send: SendReport) -> StepResult:
    draft: ProblemDraft | None = inp.data
    if draft is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    if draft.reason in PHOTO_REQUIRED_REASONS and not draft.photos:
        return hint("tech.report_photo_required")
    command = c.ReportException(draft.visit, inp.view.technician_id, draft.reason.value, draft.note, draft.photos)
    return reply(Outbound(t("tech.report_sent")), commands=[command], state=S.IDLE)


def on_contacted(inp: StepInput, contacted: Contacted) -> StepResult:
    visit = _visit_in(inp, contacted.visit_id, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE)
    if visit is None:
        return stale()
    return reply(Outbound(t("tech.contacted", visit=visit.id)), commands=[c.MarkContacted(visit.id, inp.view.technician_id)])


def on_live_location(inp: StepInput) -> StepResult:
    if inp.view.technician_id is None or inp.event.latitude is None or inp.event.longitude is None:
        return reply()
    track = c.TrackLocation(inp.view.technician_id, inp.event.latitude, inp.event.longitude)
    going = inp.data if inp.state == S.AWAIT_LOCATION else None
    visit = inp.view.visit(going.visit) if going else None
    if visit is not None and haversine_m(visit.lat, visit.lon, inp.event.latitude, inp.event.longitude) <= inp.policy.checkin_radius_m:
        # live location that reaches the address is a check-in too; on the way it only tracks
        checked_in = on_location(inp)
        return replace(checked_in, commands=(*checked_in.commands, track))
    # otherwise silent: the customer hears about it, the technician is driving
    return reply(commands=[track])


def on_off_duty(inp: StepInput) -> StepResult:
    return reply(Outbound(t("tech.off_duty")), commands=[c.SetDuty(inp.view.technician_id, False)])


def on_on_duty(inp: StepInput) -> StepResult:
    return reply(Outbound(t("tech.on_duty")), commands=[c.SetDuty(inp.view.technician_id, True)])


def on_cancel(inp: StepInput) -> StepResult:
    """Whatever was being asked is dropped; a checklist under way picks up at its first unanswered step (kept in the
    visit's answers, so a problem menu, a report or a restart in between loses nothing)."""
    if inp.view.technician_id is None:
        return reply(Outbound(t("tech.hint_new")), state=S.NEW)
    view: TechnicianView = inp.view
    about = view.visit(getattr(inp.data, "visit", None))
    if about is not None and about.status == VisitStatus.IN_PROGRESS.value:
        index = about.next_step()
        if index is not None:
            return reply(Outbound(t("common.cancelled")), step_prompt(about, index), state=S.CHECKLIST, data=ChecklistAt(about.id, index))
        messages, state, data = _after_answer(about, "")
        return reply(Outbound(t("common.cancelled")), *messages, state=state, data=data)
    if about is not None and VisitStatus(about.status) in (*UNDER_WAY, VisitStatus.ACCEPTED):
        return reply(Outbound(t("common.cancelled")), visit_card(about), state=S.IDLE)
    return reply(Outbound(t("common.cancelled")), state=S.IDLE)


def on_help(inp: StepInput) -> StepResult:
    return help_for(inp, "tech.help", TECHNICIAN_FLOW.states)


def on_board(inp: StepInput) -> StepResult:
    """/board in the staff bot's private chat: the dispatch board as an app inside the chat for someone whose account is
    bound to them (it signs them in with the chat's signed data); anyone else is told how to get one."""
    url = inp.view.board_url
    if url is None:
        return hint("tech.board_no_account")
    return reply(Outbound(t("tech.board_open"), buttons([link_button(t("btn.open_board"), url, app=True)])))


def on_idle_text(inp: StepInput) -> StepResult:
    """Free text: what it means (``conversations.understanding``) does what the matching button does — with a button to
    press first whenever that changes a visit's state; what is not understood goes to people (``_to_people``)."""
    view: TechnicianView = inp.view
    text = inp.event.text.strip()
    if view.technician_id is None:
        return hint("tech.hint_new")
    if not text:
        return hint("tech.hint_idle")
    meant = understanding.understand(text, "technician", inp.now.astimezone(inp.policy.tz), inp.language)
    visit = _current_visit(view)
    if meant.intent is Intent.UNKNOWN or visit is None:
        return _to_people(inp, text)
    status = VisitStatus(visit.status)
    if meant.intent is Intent.LATE and meant.minutes and status in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE):
        return reply(
            Outbound(t("tech.late_noted", visit=visit.id, minutes=meant.minutes)),
            commands=[c.ReportLate(visit.id, view.technician_id, meant.minutes)],
        )
    if meant.intent is Intent.ON_MY_WAY and status is VisitStatus.ACCEPTED:
        keyboard = buttons([Button(t("btn.on_my_way"), encode(OnMyWay(visit.id)))])
        return reply(Outbound(t("tech.confirm_on_my_way", visit=visit.id, address=visit.address), keyboard))
    if meant.intent is Intent.ARRIVED and status in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE):
        # the button asks for the location (checking in is the location's to do), and answers for the right visit
        keyboard = buttons([Button(t("btn.arrived"), encode(Arrived(visit.id)))])
        return reply(Outbound(t("tech.confirm_arrived", visit=visit.id, address=visit.address), keyboard))
    if meant.intent is Intent.PROBLEM and status in (VisitStatus.BOOKED, VisitStatus.ACCEPTED, *UNDER_WAY):
        return reply(Outbound(t("tech.confirm_problem", visit=visit.id), buttons([_report_button(visit.id)])))
    if meant.intent is Intent.DONE and status in (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS):
        return _done_path(visit)
    return _to_people(inp, text)


def on_text_on_the_way(inp: StepInput) -> StepResult:
    """Waiting for the location (on the way): "running late" and the like are understood; anything else gets the
    location hint, as the location is what this state needs."""
    meant = understanding.understand(inp.event.text.strip(), "technician", inp.now.astimezone(inp.policy.tz), inp.language)
    if meant.intent is Intent.UNKNOWN:
        return hint("tech.hint_location")
    result = on_idle_text(inp)
    return result if result.state is None else hint("tech.hint_location")


def _current_visit(view: TechnicianView) -> TechVisit | None:
    """The visit free text is most likely about: the one furthest along today, else the next accepted one."""
    order = (VisitStatus.IN_PROGRESS, VisitStatus.ON_SITE, VisitStatus.EN_ROUTE, VisitStatus.ACCEPTED, VisitStatus.ON_HOLD)
    mine = [v for v in view.visits if v.lead is None and VisitStatus(v.status) in order]
    if not mine:
        return None
    return min(mine, key=lambda v: (order.index(VisitStatus(v.status)), v.slot_start.timestamp() if v.slot_start else float("inf")))


def _done_path(visit: TechVisit) -> StepResult:
    """"Done" typed: the button that finishes from here — start or continue the checklist, or complete it."""
    if visit.status == VisitStatus.ON_SITE.value:
        keyboard = buttons([Button(t("btn.start_checklist"), encode(StartChecklist(visit.id)))])
        return reply(Outbound(t("tech.done_start_first", visit=visit.id), keyboard))
    if visit.next_step() is not None:
        keyboard = buttons([Button(t("btn.continue_checklist"), encode(ContinueChecklist(visit.id)))])
        return reply(Outbound(t("tech.done_checklist_left", visit=visit.id), keyboard))
    keyboard = buttons([_complete_button(visit.id)], [_report_button(visit.id)])
    return reply(Outbound(t("tech.confirm_complete", visit=visit.id), keyboard))


def _to_people(inp: StepInput, text: str) -> StepResult:
    """Text no step understood reaches people instead of being thrown away: a relay thread to the dispatchers
    (conversations/flows/relay.py), whose answers come back here; the technician's next texts and photos join it."""
    view: TechnicianView = inp.view
    if view.technician_id is None:
        return hint("tech.hint_new")  # not signed in: nobody to pass it on for
    return relay.to_people(inp, Origin.TECHNICIAN, view.technician_id, Topic.UNKNOWN, text)


def _technician_id(inp: StepInput) -> int | None:
    technician_id: int | None = inp.view.technician_id
    return technician_id


# --- hand back, help, return visit ------------------------------------------------------------------


def on_visit_options(inp: StepInput, options: VisitOptions) -> StepResult:
    visit = _visit_in(inp, options.visit_id, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
    if visit is None or visit.lead is not None:
        return stale()
    rows: list[list[Button]] = []
    if VisitStatus(visit.status) in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE):
        rows.append([Button(t("btn.hand_back"), encode(HandBack(visit.id)))])
    rows.append([Button(t("btn.ask_help"), encode(AskHelp(visit.id)))])
    if VisitStatus(visit.status) in (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS):
        rows.append([signature.signature_button(visit.id)])  # the customer signs on this phone (delivery, completion)
        if visit.kind == "repair":
            rows.append([stock.use_part_button(visit.id)])  # fitted now, so the bill and the price talk know of it
        rows.append([price_increase.ask_button(visit.id)])  # found on site, where the cause is found
        rows.append([Button(t("btn.need_return"), encode(NeedReturn(visit.id)))])
    rows.append([_report_button(visit.id)])
    return reply(Outbound(t("tech.visit_options", visit=visit.id), buttons(*rows)))


def on_hand_back(inp: StepInput, hand_back: HandBack) -> StepResult:
    visit = _visit_in(inp, hand_back.visit_id, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE)
    if visit is None or visit.lead is not None:
        return stale()
    return reply(Outbound(t("tech.hand_back_reason", visit=visit.id)), state=S.HAND_BACK_REASON, data=VisitData(visit.id))


def on_hand_back_reason(inp: StepInput) -> StepResult:
    going: VisitData | None = inp.data
    visit = _visit_in(inp, going.visit, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE) if going else None
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    reason = inp.event.text.strip()
    if not reason:
        return hint("tech.hint_hand_back_reason")
    command = c.HandBackVisit(visit.id, inp.view.technician_id, reason[:500])
    return reply(Outbound(t("tech.handed_back", visit=visit.id)), commands=[command], state=S.IDLE)


def on_ask_help(inp: StepInput, ask: AskHelp) -> StepResult:
    visit = _visit_in(inp, ask.visit_id, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
    if visit is None or visit.lead is not None:
        return stale()
    # who joins (or that the dispatchers are looking) follows as its own message
    return reply(Outbound(t("tech.assistance_requested", visit=visit.id)), commands=[c.RequestAssistance(visit.id, inp.view.technician_id)])


def on_join_crew(inp: StepInput, join: JoinCrew) -> StepResult:
    # the crew card that follows is the answer (or why not: taken, no longer free)
    return reply(commands=[c.JoinCrew(join.visit_id, inp.view.technician_id)])


def on_need_return(inp: StepInput, need: NeedReturn) -> StepResult:
    visit = _visit_in(inp, need.visit_id, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
    if visit is None or visit.lead is not None:
        return stale()
    rows = [[Button(t(f"tech.return_reason.{reason.value}"), encode(PickReturnReason(visit.id, reason)))] for reason in ReturnReason]
    return reply(Outbound(t("tech.return_reason_ask", visit=visit.id), buttons(*rows)), state=S.RETURN_REASON, data=VisitData(visit.id))


def _end_for_return(inp: StepInput, visit: TechVisit, reason: ReturnReason, note: str) -> StepResult:
    command = c.EndForReturn(visit.id, inp.view.technician_id, reason.value, note)
    return reply(Outbound(t("tech.return_visit_created", visit=visit.id)), commands=[command], state=S.IDLE)


def on_return_reason(inp: StepInput, pick: PickReturnReason) -> StepResult:
    visit = _visit_in(inp, pick.visit_id, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    if pick.return_reason is ReturnReason.OTHER:
        return reply(Outbound(t("tech.return_note")), state=S.RETURN_NOTE, data=VisitData(visit.id))
    return _end_for_return(inp, visit, pick.return_reason, "")


def on_return_note(inp: StepInput) -> StepResult:
    about: VisitData | None = inp.data
    visit = _visit_in(inp, about.visit, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS) if about else None
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state=S.IDLE)
    note = inp.event.text.strip()
    if not note:
        return hint("tech.return_note")
    return _end_for_return(inp, visit, ReturnReason.OTHER, note[:500])


def on_code_text(inp: StepInput) -> StepResult:
    return completion.on_code_text(inp, on_idle_text, S.IDLE)


def on_code_never_mind(inp: StepInput, drop: NeverMind) -> StepResult:
    return completion.on_code_never_mind(inp, drop, S.IDLE)


CHECKLIST_NEXT = (S.CHECKLIST, S.IDLE)  # the next step, or the Complete button
FREE_TEXT_NEXT = (relay.RELAY,)  # understood text answers with the button to press; the rest goes to people

TECHNICIAN_FLOW = FlowSpec(
    name="technician",
    initial=S.NEW,
    states={
        S.NEW: State(hint="tech.hint_new", text=Step(on_idle_text, leads_to=FREE_TEXT_NEXT)),  # bound, yet new: a restored chat
        S.IDLE: State(hint="tech.hint_idle", text=Step(on_idle_text, leads_to=FREE_TEXT_NEXT)),
        S.AWAIT_LOCATION: State(
            hint="tech.hint_location", data=VisitData, location=Step(on_location, leads_to=(S.IDLE, S.CHECKIN_REASON)),
            text=Step(on_text_on_the_way),
        ),
        S.HAND_BACK_REASON: State(hint="tech.hint_hand_back_reason", data=VisitData, text=Step(on_hand_back_reason, leads_to=(S.IDLE,))),
        S.RETURN_REASON: State(
            hint="tech.hint_return_reason", data=VisitData,
            buttons={PickReturnReason: Step(on_return_reason, leads_to=(S.IDLE, S.RETURN_NOTE), requires=TECHNICIAN)},
        ),
        S.RETURN_NOTE: State(hint="tech.return_note", data=VisitData, text=Step(on_return_note, leads_to=(S.IDLE,))),
        stock.RECORD: stock.record_state(TECHNICIAN, S.IDLE),
        completion.AWAIT_CODE: State(
            hint="tech.hint_code", data=VisitData, text=Step(on_code_text, leads_to=(S.IDLE, *FREE_TEXT_NEXT)),
            buttons={NeverMind: Step(on_code_never_mind, leads_to=(S.IDLE,), requires=TECHNICIAN)},
        ),
        payment.AMOUNT: State(hint="tech.hint_payment_amount", data=payment.PaymentDraft, text=Step(on_payment_amount, leads_to=(S.IDLE,))),
        **price_increase.states(TECHNICIAN, S.IDLE),  # amount, reason, photos and the summary (issue 14 part 6)
        signature.REASON: State(
            hint="tech.hint_signature_reason", data=VisitData,
            text=Step(on_signature_reason, leads_to=(S.IDLE, stock.RECORD, completion.AWAIT_CODE)),
        ),
        S.CHECKIN_REASON: State(hint="tech.hint_checkin_reason", data=CheckinAway, text=Step(on_checkin_reason, leads_to=(S.IDLE,))),
        S.CHECKLIST: State(
            hint="tech.hint_checklist", data=ChecklistAt, wants_photo=True,
            text=Step(on_checklist_text, leads_to=CHECKLIST_NEXT),
            photo=Step(on_checklist_photo, leads_to=CHECKLIST_NEXT),
            buttons={Answer: Step(on_answer_button, leads_to=CHECKLIST_NEXT)},
        ),
        S.REPORT_REASON: State(
            hint="tech.hint_report_reason", data=VisitData, buttons={PickReason: Step(on_report_reason, leads_to=(S.REPORT_NOTE,))},
        ),
        S.REPORT_NOTE: State(
            hint="tech.hint_report_note", data=ProblemDraft,
            text=Step(on_report_note, leads_to=(S.REPORT_PHOTO, S.IDLE)),
            buttons={SkipNote: Step(on_report_skip, leads_to=(S.REPORT_PHOTO, S.IDLE))},
        ),
        S.REPORT_PHOTO: State(
            hint="tech.hint_report_photo", data=ProblemDraft, wants_photo=True,
            photo=Step(on_report_photo, leads_to=(S.IDLE,)),
            buttons={SendReport: Step(on_report_send, leads_to=(S.IDLE,))},
        ),
        relay.RELAY: relay.writer_state(Origin.TECHNICIAN, _technician_id, S.IDLE),
        relay.ANSWER: relay.answer_state(Author.TECHNICIAN, _technician_id, S.IDLE),
    },
    commands={
        "start": Step(on_start, leads_to=(S.IDLE,)),
        "today": Step(on_today, requires=TECHNICIAN),
        "visits": Step(on_visits, requires=TECHNICIAN),
        "stock": Step(stock.on_stock, requires=TECHNICIAN),  # the van's stock
        "offduty": Step(on_off_duty, requires=TECHNICIAN),
        "onduty": Step(on_on_duty, requires=TECHNICIAN),
        "help": Step(on_help),
        "board": Step(on_board),  # the dispatch board as an in-chat app, for staff with an account
        "cancel": Step(on_cancel, leads_to=(S.NEW, S.IDLE, S.CHECKLIST)),
        "lang": Step(language_menu),
        "language": Step(language_menu),
    },
    buttons={
        Accept: Step(on_accept, requires=TECHNICIAN),
        Decline: Step(on_decline, requires=TECHNICIAN),
        OnMyWay: Step(on_depart, leads_to=(S.AWAIT_LOCATION,), requires=TECHNICIAN),
        Arrived: Step(on_arrived, leads_to=(S.AWAIT_LOCATION,), requires=TECHNICIAN),
        StartChecklist: Step(on_start_work, leads_to=CHECKLIST_NEXT, requires=TECHNICIAN),
        ContinueChecklist: Step(on_continue, leads_to=CHECKLIST_NEXT, requires=TECHNICIAN),
        Complete: Step(on_complete, leads_to=(S.IDLE, stock.RECORD, completion.AWAIT_CODE), requires=TECHNICIAN),
        ResendCode: Step(completion.on_technician_resend, requires=TECHNICIAN),
        VisitOptions: Step(on_visit_options, requires=TECHNICIAN),
        HandBack: Step(on_hand_back, leads_to=(S.HAND_BACK_REASON,), requires=TECHNICIAN),
        AskHelp: Step(on_ask_help, requires=TECHNICIAN),
        JoinCrew: Step(on_join_crew, requires=TECHNICIAN),
        NeedReturn: Step(on_need_return, leads_to=(S.RETURN_REASON,), requires=TECHNICIAN),
        ReportProblem: Step(on_report, leads_to=(S.REPORT_REASON,), requires=TECHNICIAN),
        Contacted: Step(on_contacted, requires=TECHNICIAN),
        AskSignature: Step(signature.on_ask, requires=TECHNICIAN),
        CannotSign: Step(signature.on_cannot_sign, leads_to=(signature.REASON,), requires=TECHNICIAN),
        RecordPaymentAsk: Step(payment.on_ask, requires=TECHNICIAN),
        PickPaymentMethod: Step(payment.on_method, leads_to=(payment.AMOUNT,), requires=TECHNICIAN),
        ChooseLanguage: Step(switch_language),
        AnswerInThread: relay.answer_step(TECHNICIAN),
        **stock.technician_buttons(TECHNICIAN),
        **price_increase.technician_buttons(TECHNICIAN, S.IDLE),
        **device_history.technician_buttons(TECHNICIAN, visit_card),
        **relay.writer_buttons(_technician_id, S.IDLE),
    },
    live_location=Step(on_live_location, leads_to=(S.IDLE,)),
)
