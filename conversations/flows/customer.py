"""The customer's flow: open the order link, book slots, follow the visit, confirm and rate."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from services.actions import (
    Action,
    AskToRate,
    Book,
    CancelVisit,
    ChooseLanguage,
    ConfirmAppointment,
    ConfirmCancel,
    ConfirmDone,
    KeepBoth,
    KeepVisit,
    MoreDays,
    MoveBoth,
    MoveBothDay,
    PickDay,
    PickSlot,
    Rate,
    Reschedule,
    ResendCode,
    RestartItemCheck,
    SendItemCheck,
    SendItemMarks,
    SkipComment,
    TickItem,
    encode,
)
from conversations.flow import FlowData, FlowSpec, Guard, State, Step, StepInput, reply
from conversations.flows.common import VisitData, hint, identity, language_menu, stale, switch_language
from conversations.flows import completion, relay, repair
from conversations.flows import price_increase  # the customer agrees to a price increase, or not (issue 14 part 6)
from conversations.flows import scan_report  # a QR code scanned from a chat that is not its owner's (issue 14)
from conversations.flows import owner_check  # the owner proves it is their code with the number on file (issue 14)
from conversations.understanding import Intent, Understood, understand
from domain import commands as c
from domain.lifecycle import would_move_with
from domain.model import VisitStatus
from domain.relay import Origin, Topic
from domain.policy import ServicePolicy
from domain.wishes import first_fitting
from services import device_views, views
from services.messages import Button, Card, Inbound, InboundKind, Outbound, StepResult, Text, buttons, day_of, joined, raw, span, t, when
from services.views import CustomerView, CustomerViewRequest, JobInfo, VisitInfo
from storage.repository import Store


class CustomerState(enum.StrEnum):
    NEW = "new"
    IDLE = "idle"
    CHOOSE_SLOT = "choose_slot"
    CONFIRM_CANCEL = "confirm_cancel"
    RATE = "rate"
    COMMENT = "comment"
    CONFIRM_MOVE = "confirm_move"  # the new time would push the installation: move both, or keep both?
    CHOOSE_DEPENDANT = "choose_dependant"  # moving both: the installation's new time


S = CustomerState
MOVABLE = (VisitStatus.BOOKED.value, VisitStatus.ACCEPTED.value)  # what a customer may move to another time
DAYS_PER_PAGE = 6  # day buttons under one message at most (with "earlier" / "later" 8 — a keyboard a phone shows whole)
PAGING_BUTTONS = 2  # "earlier" and "later"

# How free text is read; a test substitutes its own (the parser is pure and offline either way).
UNDERSTAND: Callable[[str, Any, datetime, str | None], Understood] = understand


@dataclass(frozen=True)
class MoveData(FlowData):
    """A move the customer is deciding on: the visit and the new window it would go to."""

    visit: int
    start: datetime
    end: datetime


def view_request(event: Inbound, action: Action | None) -> CustomerViewRequest:
    """Times to book are looked for only when a step offers them: a link opened, a Book, Reschedule or day button,
    or free text that may name a time (``load_view`` decides that by what the text says)."""
    token = event.payload.strip() if event.kind is InboundKind.COMMAND and event.text == "start" else ""
    slots_for = action.visit_id if isinstance(action, (Book, Reschedule, PickDay, MoreDays)) else None
    moved = (action.visit_id, action.start, action.end) if isinstance(action, (MoveBoth, MoveBothDay)) else None
    text = event.text.strip() if event.kind is InboundKind.TEXT else None
    request = CustomerViewRequest(event.chat, token=token or None, slots_for=slots_for, moved=moved, text=text or None)
    return repair.view_request(request, event, action)  # devices only for a step that shows them (issue 14)


def understood_text(text: str, now: datetime, policy: ServicePolicy, language: str | None) -> Understood:
    """What the text means; relative dates ("tomorrow", "明天") resolve in the shop's time zone."""
    return UNDERSTAND(text, "customer", now.astimezone(policy.tz), language)


def _names_a_time(understood: Understood) -> bool:
    return understood.intent is Intent.RESCHEDULE or (understood.intent is Intent.UNKNOWN and understood.date is not None)


async def load_view(store: Store, request: CustomerViewRequest, policy: ServicePolicy, now: datetime) -> CustomerView:
    """The customer's view; routing for free text runs only when the text asks to (re)book."""
    if request.text is not None and _names_a_time(understood_text(request.text, now, policy, None)):
        request = replace(request, slots_for_open=True)
    view = await views.load_customer_view(store, request, policy, now)
    return await device_views.with_devices(store, request, view, policy, now)


# --- rendering helpers --------------------------------------------------------------------------


def _kind(kind: str) -> Text:
    return t(f"kind.{kind}")


def _visit_line(visit: VisitInfo) -> Text:
    if visit.slot_start and visit.slot_end:
        return t("customer.visit_line_booked", kind=_kind(visit.kind), status=t(f"status.{visit.status}"), slot=span(visit.slot_start, visit.slot_end))
    return t("customer.visit_line", kind=_kind(visit.kind), status=t(f"status.{visit.status}"))


def _book_button(visit: VisitInfo) -> Button:
    return Button(t("btn.book", kind=_kind(visit.kind)), encode(Book(visit.id)))


def _visit_buttons(inp: StepInput, visit: VisitInfo) -> list[Button]:
    state = VisitStatus(visit.status)
    row = []
    if state is VisitStatus.CREATED:
        row.append(_book_button(visit))
    elif state in (VisitStatus.BOOKED, VisitStatus.ACCEPTED) and _before_cutoff(inp, visit):
        # each row names its visit: a delivery's and an installation's buttons must not look the same
        row.append(Button(t("btn.reschedule_kind", kind=_kind(visit.kind)), encode(Reschedule(visit.id))))
        row.append(Button(t("btn.cancel_kind", kind=_kind(visit.kind)), encode(CancelVisit(visit.id))))
    elif state is VisitStatus.COMPLETED:
        row.append(Button(t("btn.confirm_done"), encode(ConfirmDone(visit.id))))
    elif state is VisitStatus.CONFIRMED and not visit.rated:
        row.append(Button(t("btn.rate"), encode(AskToRate(visit.id))))
    return row


def _before_cutoff(inp: StepInput, visit: VisitInfo) -> bool:
    return visit.slot_start is None or visit.slot_start - inp.now >= inp.policy.reschedule_cutoff


def _status_message(inp: StepInput, job: JobInfo) -> Outbound:
    rows = [_visit_buttons(inp, v) for v in job.visits]
    return Outbound(
        t("customer.order_summary", order=job.id, product=job.product, address=job.address, visits=[_visit_line(v) for v in job.visits]),
        buttons(*rows),
        card=order_card_key(job.id),
    )


def order_card_key(job_id: int) -> Card:
    """The order summary in the customer's chat: a booking made from it replaces it with what was booked."""
    return ("order", job_id)


def _booking_card(inp: StepInput, visit_id: int) -> Card | None:
    """The card a visit's booking or move lives on: its order's, so the link's first message, the day picker, a day's
    windows, "move both?" and what was booked are one message edited in place, and no older list keeps window
    buttons that would start a booking or a move again when pressed later."""
    job = inp.view.job_of(visit_id)
    return order_card_key(job.id) if job else None


def _offered(inp: StepInput, visit: VisitInfo) -> dict[date, list[tuple[datetime, datetime]]]:
    """The visit's times by local day, without the window it holds now (moving there changes nothing)."""
    days: dict[date, list[tuple[datetime, datetime]]] = {}
    for start, end in visit.slots or ():
        if (start, end) != (visit.slot_start, visit.slot_end):
            days.setdefault(start.astimezone(inp.policy.tz).date(), []).append((start, end))
    return dict(sorted(days.items()))


def _window_rows(visit_id: int, windows: list[tuple[datetime, datetime]]) -> list[list[Button]]:
    return [[Button(_slot_label(start, end), encode(PickSlot(visit_id, start, end)))] for start, end in windows]


def _day_rows(visit: VisitInfo, days: list[date], page: int, pages: int) -> list[list[Button]]:
    rows = [[Button(t("btn.day", day=day_of(day)), encode(PickDay(visit.id, day)))] for day in days]
    paging = []
    if page > 0:
        paging.append(Button(t("btn.earlier_days"), encode(MoreDays(visit.id, page - 1))))
    if page + 1 < pages:
        paging.append(Button(t("btn.later_days"), encode(MoreDays(visit.id, page + 1))))
    return [*rows, paging]


def days_per_page(max_buttons: int | None) -> int:
    """Day buttons on one page of the picker: what the channel shows besides earlier / later, at most DAYS_PER_PAGE."""
    return DAYS_PER_PAGE if max_buttons is None else max(1, min(DAYS_PER_PAGE, max_buttons - PAGING_BUTTONS))


def _slot_prompt(inp: StepInput, visit: VisitInfo, page: int = 0) -> Outbound:
    """The whole horizon, a day at a time: the first free day's windows to pick at once, then a button for each
    other day with a free window (a page of them, with earlier / later when they do not fit one keyboard). Where the
    first day's windows and a page of days do not fit the channel's buttons together (three on WhatsApp), every day,
    the first too, is a day button, so no page of the picker spills into numbered text (one day's windows, shown when
    its button is pressed, still may on a channel with fewer buttons than windows)."""
    card = _booking_card(inp, visit.id)
    days = _offered(inp, visit)
    if not days:
        return Outbound(t("customer.no_slots", kind=_kind(visit.kind)), card=card)
    per_page = days_per_page(inp.max_buttons)
    first, *others = days
    # the first day's windows, a page of days and "later" under one message
    inline = inp.max_buttons is None or len(days[first]) + per_page + 1 <= inp.max_buttons
    listed = others if inline else [first, *others]
    pages = max(1, -(-len(listed) // per_page))
    page = min(page, pages - 1)
    shown = listed[page * per_page:(page + 1) * per_page]
    if page == 0 and inline:
        rows = _window_rows(visit.id, days[first]) + _day_rows(visit, shown, page, pages)
        return Outbound(t("customer.choose_slot", kind=_kind(visit.kind), day=day_of(first)), buttons(*rows), card=card)
    return Outbound(t("customer.choose_day", kind=_kind(visit.kind)), buttons(*_day_rows(visit, shown, page, pages)), card=card)


def _day_prompt(inp: StepInput, visit: VisitInfo, day: date) -> Outbound | None:
    """The windows of one day, and the way back to the other days; None: that day has none free."""
    windows = _offered(inp, visit).get(day)
    if not windows:
        return None
    rows = [*_window_rows(visit.id, windows), [Button(t("btn.other_days"), encode(MoreDays(visit.id, 0)))]]
    return Outbound(t("customer.choose_window", kind=_kind(visit.kind), day=day_of(day)), buttons(*rows), card=_booking_card(inp, visit.id))


def _slot_label(start: datetime, end: datetime) -> Text:
    return t("slot.label", slot=span(start, end))


def rating_card_key(visit_id: int) -> Card:
    """The 1–5 question in the customer's chat: the score and then the comment (or Skip) take its place, so none of
    its buttons stays to be pressed again."""
    return ("rate", visit_id)


def _rating_prompt(visit_id: int) -> Outbound:
    row = [Button(raw(str(score)), encode(Rate(visit_id, score))) for score in range(1, 6)]
    return Outbound(t("customer.rate_prompt"), buttons(row), card=rating_card_key(visit_id))


# --- steps --------------------------------------------------------------------------------------


def is_customer(inp: StepInput) -> bool:
    return inp.view.customer_id is not None


def not_a_customer(inp: StepInput) -> StepResult:
    return hint("customer.hint_new")


CUSTOMER = Guard("customers", is_customer, not_a_customer)


def on_start(inp: StepInput) -> StepResult:
    view: CustomerView = inp.view
    token = inp.event.payload.strip()
    if token:
        job = view.token_job
        if job is None:
            return repair.on_scan(inp)  # a device's or a site's QR code (issue 14), else a link that does not work
        welcome, summary = Outbound(t("customer.welcome", name=raw(view.name))), _status_message(inp, job)
        bind = c.BindCustomer(token, identity(inp))
        first = job.next_to_book()
        if first is not None and first.slots:
            # one message, not three: the order and its first question (the summary's own Book buttons would repeat it)
            card = joined(welcome, replace(summary, buttons=()), _slot_prompt(inp, first))
            return reply(card, commands=[bind], state=S.CHOOSE_SLOT, data=VisitData(first.id))
        return reply(joined(welcome, summary), commands=[bind], state=S.IDLE)
    if view.customer_id is None:
        return hint("customer.hint_new")
    return on_status(inp)


def on_status(inp: StepInput) -> StepResult:
    view: CustomerView = inp.view
    if view.customer_id is None:
        return hint("customer.hint_new")
    if not view.jobs:
        return hint("customer.no_orders")
    return reply(*[_status_message(inp, job) for job in view.jobs])


def on_book(inp: StepInput, book: Book) -> StepResult:
    view: CustomerView = inp.view
    visit = view.visit(book.visit_id)
    if visit is None or visit.status != VisitStatus.CREATED.value:
        return stale()
    if visit.depends_on is not None:
        dependency = view.visit(visit.depends_on)
        if dependency is not None and dependency.slot_start is None:
            return hint("error.book_dependency_first", kind=_kind(dependency.kind))
    # no time fits: "a dispatcher will contact you" must be true, so the dispatchers are told at once (NoSlotFits)
    nobody = not _offered(inp, visit) and view.customer_id is not None
    commands = [c.ReportNoSlotFits(visit.id, view.customer_id)] if nobody and view.customer_id is not None else []
    return reply(_slot_prompt(inp, visit), commands=commands, state=S.CHOOSE_SLOT, data=VisitData(visit.id))


def _choosable(inp: StepInput, visit_id: int) -> VisitInfo | None:
    """A visit the customer may pick a time for now: waiting for its booking, or booked and still movable."""
    visit: VisitInfo | None = inp.view.visit(visit_id)
    if visit is None:
        return None
    if visit.status == VisitStatus.CREATED.value or (visit.status in MOVABLE and _before_cutoff(inp, visit)):
        return visit
    return None


def on_pick_day(inp: StepInput, pick: PickDay) -> StepResult:
    visit = _choosable(inp, pick.visit_id)
    if visit is None:
        return stale()
    prompt = _day_prompt(inp, visit, pick.day)
    if prompt is None:  # taken meanwhile: the days as they are now
        return reply(joined(Outbound(t("customer.day_full", day=day_of(pick.day))), _slot_prompt(inp, visit)),
                     state=S.CHOOSE_SLOT, data=VisitData(visit.id))
    return reply(prompt, state=S.CHOOSE_SLOT, data=VisitData(visit.id))


def on_more_days(inp: StepInput, more: MoreDays) -> StepResult:
    visit = _choosable(inp, more.visit_id)
    if visit is None:
        return stale()
    return reply(_slot_prompt(inp, visit, more.page), state=S.CHOOSE_SLOT, data=VisitData(visit.id))


def on_slot(inp: StepInput, pick: PickSlot) -> StepResult:
    view: CustomerView = inp.view
    visit = view.visit(pick.visit_id)
    if view.customer_id is None:
        return not_a_customer(inp)  # the CUSTOMER guard lets nobody else through
    if visit is not None and visit.status in MOVABLE:
        return _move(inp, visit, pick)
    if visit is None or visit.status != VisitStatus.CREATED.value:
        return stale()
    job = view.job_of(visit.id)
    # the order's card: pressed on it, the booking takes its place (its time buttons are spent)
    messages = [Outbound(t("customer.booked", kind=_kind(visit.kind), slot=span(pick.start, pick.end)),
                         card=order_card_key(job.id) if job else None)]
    following = job.next_to_book(after=visit.id) if job else None
    if following is not None:
        messages.append(Outbound(t("customer.book_next", kind=_kind(following.kind)), buttons([_book_button(following)])))
    return reply(joined(*messages), commands=[c.BookVisit(visit.id, view.customer_id, pick.start, pick.end)], state=S.IDLE)


def _dependants(inp: StepInput, visit: VisitInfo) -> list[VisitInfo]:
    job = inp.view.job_of(visit.id)
    return [v for v in job.visits if v.depends_on == visit.id] if job else []


def _pushed(inp: StepInput, visit: VisitInfo, start: datetime, end: datetime) -> VisitInfo | None:
    """The booked dependant (an installation after this delivery) that would no longer fit after the new window."""
    for dependant in _dependants(inp, visit):
        if dependant.status in MOVABLE and would_move_with(dependant.slot_start, dependant.min_gap_minutes, visit.duration_minutes, start, end):
            return dependant
    return None


def _move(inp: StepInput, visit: VisitInfo, pick: PickSlot) -> StepResult:
    """A booked visit to a new window: one command moves it, so the old window holds until then. When its
    installation would no longer fit after it, the customer says first whether both move."""
    if not _before_cutoff(inp, visit):
        return hint("error.past_cutoff", hours=int(inp.policy.reschedule_cutoff.total_seconds() // 3600))
    pushed = _pushed(inp, visit, pick.start, pick.end)
    if pushed is not None and pushed.slot_start is not None and pushed.slot_end is not None:
        keyboard = buttons(
            [Button(t("btn.move_both", kind=_kind(pushed.kind)), encode(MoveBoth(visit.id, pick.start, pick.end)))],
            [Button(t("btn.keep_both"), encode(KeepBoth(visit.id)))],
        )
        text = t("customer.dependant_must_move", kind=_kind(visit.kind), slot=span(pick.start, pick.end),
                 dependant=_kind(pushed.kind), dependant_slot=span(pushed.slot_start, pushed.slot_end))
        return reply(Outbound(text, keyboard, card=_booking_card(inp, visit.id)), state=S.CONFIRM_MOVE,
                     data=MoveData(visit.id, pick.start, pick.end))
    return reply(
        Outbound(t("customer.moved", kind=_kind(visit.kind), slot=span(pick.start, pick.end)), card=_booking_card(inp, visit.id)),
        commands=[c.RebookVisit(visit.id, inp.view.customer_id, pick.start, pick.end)],
        state=S.IDLE,
    )


def on_reschedule(inp: StepInput, reschedule: Reschedule) -> StepResult:
    """Times to move to, the old one kept meanwhile: nothing changes until the customer picks one."""
    visit = inp.view.visit(reschedule.visit_id)
    if visit is None or visit.status not in MOVABLE:
        return stale()
    if not _before_cutoff(inp, visit):
        return hint("error.past_cutoff", hours=int(inp.policy.reschedule_cutoff.total_seconds() // 3600))
    if not _offered(inp, visit):
        return hint("customer.no_other_slots", kind=_kind(visit.kind))
    return reply(_slot_prompt(inp, visit), state=S.CHOOSE_SLOT, data=VisitData(visit.id))


def _moving(inp: StepInput, visit_id: int) -> tuple[VisitInfo, VisitInfo] | None:
    """The visit being moved and its booked dependant, while a move of both is being decided."""
    visit = inp.view.visit(visit_id)
    if visit is None or visit.status not in MOVABLE:
        return None
    dependant = next((d for d in _dependants(inp, visit) if d.status in MOVABLE), None)
    return (visit, dependant) if dependant is not None else None


def _dependant_days(inp: StepInput, move: MoveBoth) -> Outbound:
    visit, dependant = _moving(inp, move.visit_id) or (None, None)
    assert visit is not None and dependant is not None
    days = _offered(inp, dependant)
    card = _booking_card(inp, visit.id)
    if not days:
        return Outbound(t("customer.no_dependant_slots", kind=_kind(dependant.kind)),
                        buttons([Button(t("btn.keep_both"), encode(KeepBoth(visit.id)))]), card=card)
    rows = [[Button(t("btn.day", day=day_of(day)), encode(MoveBothDay(visit.id, move.start, move.end, day)))] for day in days]
    return Outbound(t("customer.choose_dependant_day", kind=_kind(dependant.kind)),
                    buttons(*rows, [Button(t("btn.keep_both"), encode(KeepBoth(visit.id)))]), card=card)


def on_move_both(inp: StepInput, move: MoveBoth) -> StepResult:
    if _moving(inp, move.visit_id) is None:
        return stale()
    return reply(_dependant_days(inp, move), state=S.CHOOSE_DEPENDANT, data=MoveData(move.visit_id, move.start, move.end))


def on_move_both_day(inp: StepInput, move: MoveBothDay) -> StepResult:
    moving = _moving(inp, move.visit_id)
    if moving is None:
        return stale()
    visit, dependant = moving
    windows = _offered(inp, dependant).get(move.day)
    data = MoveData(visit.id, move.start, move.end)
    if not windows:
        return reply(joined(Outbound(t("customer.day_full", day=day_of(move.day))), _dependant_days(inp, MoveBoth(visit.id, move.start, move.end))),
                     state=S.CHOOSE_DEPENDANT, data=data)
    rows = [*_window_rows(dependant.id, windows), [Button(t("btn.other_days"), encode(MoveBoth(visit.id, move.start, move.end)))]]
    return reply(Outbound(t("customer.choose_window", kind=_kind(dependant.kind), day=day_of(move.day)), buttons(*rows),
                          card=_booking_card(inp, visit.id)),
                 state=S.CHOOSE_DEPENDANT, data=data)


def on_dependant_slot(inp: StepInput, pick: PickSlot) -> StepResult:
    """Both move in one command: the visit to the window picked before, its dependant to this one."""
    move: MoveData | None = inp.data
    moving = _moving(inp, move.visit) if move is not None else None
    if move is None or moving is None or moving[1].id != pick.visit_id:
        return on_slot(inp, pick)  # a time for another visit, from an older message
    visit, dependant = moving
    text = t("customer.moved_both", kind=_kind(visit.kind), slot=span(move.start, move.end),
             dependant=_kind(dependant.kind), dependant_slot=span(pick.start, pick.end))
    command = c.RebookVisit(visit.id, inp.view.customer_id, move.start, move.end, dependant.id, pick.start, pick.end)
    return reply(Outbound(text, card=_booking_card(inp, visit.id)), commands=[command], state=S.IDLE)


def on_keep_both(inp: StepInput, keep: KeepBoth) -> StepResult:
    visit = inp.view.visit(keep.visit_id)
    if visit is None:
        return stale()
    job = inp.view.job_of(visit.id)
    kept = Outbound(t("customer.kept_both"))
    # the order as it stands takes the question's place (its card), with the buttons that are live now
    return reply(joined(kept, _status_message(inp, job)) if job else kept, state=S.IDLE)


def on_cancel_visit(inp: StepInput, cancel: CancelVisit) -> StepResult:
    visit = inp.view.visit(cancel.visit_id)
    if visit is None or visit.status in (VisitStatus.CANCELLED.value, VisitStatus.COMPLETED.value, VisitStatus.CONFIRMED.value):
        return stale()
    keyboard = buttons([Button(t("btn.yes_cancel"), encode(ConfirmCancel(visit.id))), Button(t("btn.no_keep"), encode(KeepVisit()))])
    return reply(Outbound(t("customer.cancel_confirm", kind=_kind(visit.kind)), keyboard), state=S.CONFIRM_CANCEL, data=VisitData(visit.id))


def on_cancel_yes(inp: StepInput, confirm: ConfirmCancel) -> StepResult:
    visit = inp.view.visit(confirm.visit_id)
    if visit is None:
        return stale()
    return reply(
        Outbound(t("customer.cancelled", kind=_kind(visit.kind))),
        commands=[c.CancelVisitByCustomer(visit.id, inp.view.customer_id)],
        state=S.IDLE,
    )


def on_appointment_ok(inp: StepInput, confirm: ConfirmAppointment) -> StepResult:
    visit = inp.view.visit(confirm.visit_id)
    if visit is None or visit.status not in MOVABLE:
        return stale()
    if visit.appointment_confirmed:
        return hint("customer.appointment_already_confirmed", kind=_kind(visit.kind))
    return reply(
        Outbound(t("customer.appointment_confirmed", kind=_kind(visit.kind))),
        commands=[c.ConfirmAppointmentTime(visit.id, inp.view.customer_id)],
    )


def on_cancel_no(inp: StepInput, keep: KeepVisit) -> StepResult:
    return reply(Outbound(t("customer.kept")), state=S.IDLE)


def on_confirm(inp: StepInput, confirm: ConfirmDone) -> StepResult:
    visit = inp.view.visit(confirm.visit_id)
    if visit is None or visit.status != VisitStatus.COMPLETED.value:
        return stale()
    return reply(
        # one message for one press: the thanks and the rating question, on the rating's card
        joined(Outbound(t("customer.confirmed", kind=_kind(visit.kind))), _rating_prompt(visit.id)),
        commands=[c.ConfirmVisit(visit.id, inp.view.customer_id)],
        state=S.RATE,
        data=VisitData(visit.id),
    )


def on_rate_request(inp: StepInput, ask: AskToRate) -> StepResult:
    visit = inp.view.visit(ask.visit_id)
    if visit is None or visit.status != VisitStatus.CONFIRMED.value or visit.rated:
        return stale()
    return reply(_rating_prompt(visit.id), state=S.RATE, data=VisitData(visit.id))


def on_rate(inp: StepInput, rate: Rate) -> StepResult:
    visit = inp.view.visit(rate.visit_id)
    if visit is None or visit.rated:
        return stale()
    # a low score is not thanked for: the customer is asked what went wrong, and their words go to the dispatchers
    low = rate.score <= inp.policy.low_rating_threshold
    return reply(
        Outbound(t("dispatch.customer_rated_low" if low else "customer.rated", score=rate.score),
                 buttons([Button(t("btn.skip"), encode(SkipComment()))]), card=rating_card_key(visit.id)),
        commands=[c.RateVisit(visit.id, inp.view.customer_id, rate.score)],
        state=S.COMMENT,
        data=RatedVisit(visit.id, low),
    )


@dataclass(frozen=True)
class RatedVisit(FlowData):
    """The visit just rated, waiting for a comment; ``low``: the comment is a complaint for the dispatchers."""

    visit: int
    low: bool = False


def on_comment(inp: StepInput) -> StepResult:
    rated: RatedVisit | None = inp.data
    text = inp.event.text.strip()
    if rated is None:
        return reply(Outbound(t("customer.hint_idle")), state=S.IDLE)
    if not text:
        return hint("customer.hint_comment")
    # typed, not pressed: the answer comes as a new message and the question's older copy loses its Skip
    return reply(
        Outbound(t("dispatch.customer_complaint_received" if rated.low else "customer.thanks"), card=rating_card_key(rated.visit)),
        commands=[c.CommentRating(rated.visit, inp.view.customer_id, text)],
        state=S.IDLE,
    )


def on_skip(inp: StepInput, skip: SkipComment) -> StepResult:
    rated: RatedVisit | None = inp.data
    return reply(Outbound(t("customer.thanks"), card=rating_card_key(rated.visit) if rated else None), state=S.IDLE)


def on_cancel(inp: StepInput) -> StepResult:
    if inp.view.customer_id is None:
        return reply(Outbound(t("customer.hint_new")), state=S.NEW)
    return reply(Outbound(t("common.cancelled")), state=S.IDLE)


def on_help(inp: StepInput) -> StepResult:
    """The commands (/code told beside them, issue 13 part 6), then what the current step waits for."""
    state = CUSTOMER_FLOW.states.get(inp.state)
    parts = [Outbound(t("customer.help")), Outbound(t("customer.help_code")), Outbound(t("customer.help_repair"))]  # /new: issue 14
    if state is not None:
        parts.append(Outbound(t(state.hint)))
    return reply(joined(*parts))


def on_idle_text(inp: StepInput) -> StepResult:
    """What a customer types outside a question that takes text: understood, or passed on to people — never dropped."""
    view: CustomerView = inp.view
    text = inp.event.text.strip()
    if view.customer_id is None:
        return hint("customer.hint_new")  # no order link opened yet: nobody to pass it to, the link is the way in
    if repair.is_fault_text(inp):  # "my washing machine leaks": a repair request (issue 14), unless it asks something else
        fault = understood_text(text, inp.now, inp.policy, inp.language)
        if fault.intent in (Intent.UNKNOWN, Intent.COMPLAINT) and not _names_a_time(fault):
            return repair.on_fault_text(inp)
    if not view.jobs:
        return hint("customer.no_orders")
    understood = understood_text(text, inp.now, inp.policy, inp.language)
    if _names_a_time(understood):
        return _reschedule_text(inp, understood)
    if understood.intent is Intent.CANCEL:
        return _cancel_text(inp)
    if understood.intent is Intent.ETA:
        return _eta_text(inp)
    if understood.intent is Intent.DONE:
        return _done_text(inp)
    if understood.intent in (Intent.CHANGE_CONTACT, Intent.CHANGE_ADDRESS):
        return reply(Outbound(t(f"customer.noted_{understood.intent.value}")), commands=[_forward(inp, understood.intent.value)])
    return _to_people(inp, understood)


def on_idle_photo(inp: StepInput) -> StepResult:
    """A photo no step asked for (a scratch, the doorway): passed on to people like a text, never answered with a hint.
    The engine fetched it only because this state takes photos, so it passed the same checks as any evidence."""
    view: CustomerView = inp.view
    if view.customer_id is None:
        return hint("customer.hint_new")
    if not view.jobs:
        return hint("customer.no_orders")
    return relay.photo_to_people(inp, Origin.CUSTOMER, view.customer_id)


def _current(inp: StepInput) -> VisitInfo | None:
    """The visit a text is most likely about: the one the conversation is on, else the next that is coming."""
    view: CustomerView = inp.view
    data = inp.data
    if isinstance(data, (VisitData, MoveData)):
        visit = view.visit(data.visit)
        if visit is not None:
            return visit
    order = {status: rank for rank, status in enumerate((
        VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS, VisitStatus.ACCEPTED, VisitStatus.BOOKED,
        VisitStatus.ON_HOLD, VisitStatus.CREATED, VisitStatus.COMPLETED,
    ))}
    visits = [v for job in view.jobs for v in job.visits if VisitStatus(v.status) in order]
    return min(visits, key=lambda v: (order[VisitStatus(v.status)], v.slot_start or inp.now, v.id), default=None)


def _to_move(inp: StepInput) -> VisitInfo | None:
    """The visit a "can you come on Friday instead" is about: the one being booked or moved, else the next booked
    one still movable, else the next waiting for its booking."""
    view: CustomerView = inp.view
    data = inp.data
    if isinstance(data, (VisitData, MoveData)):
        visit = _choosable(inp, data.visit)
        if visit is not None:
            return visit
    visits = [v for job in view.jobs for v in job.visits]
    movable = sorted((v for v in visits if v.status in MOVABLE and _before_cutoff(inp, v)), key=lambda v: (v.slot_start or inp.now, v.id))
    if movable:
        return movable[0]
    return next((v for v in visits if v.status == VisitStatus.CREATED.value and v.slots), None)


def _reschedule_text(inp: StepInput, understood: Understood) -> StepResult:
    """A time named in words: the first window that fits is proposed (nothing changes before Yes); no usable
    date, or nothing fits: the day picker."""
    visit = _to_move(inp)
    if visit is None:
        return reply(Outbound(t("customer.nothing_to_move")), *[_status_message(inp, job) for job in inp.view.jobs])
    if not _offered(inp, visit):
        return hint("customer.no_other_slots", kind=_kind(visit.kind))
    if understood.date is not None:
        windows = [w for day in _offered(inp, visit).values() for w in day]
        fit = first_fitting(windows, inp.policy.tz, day=understood.date, after=understood.after, before=understood.before,
                            part_of_day=understood.part_of_day.value if understood.part_of_day else None)
        if fit is not None:
            other = Reschedule(visit.id) if visit.status in MOVABLE else Book(visit.id)
            keyboard = buttons([Button(t("btn.yes"), encode(PickSlot(visit.id, *fit))), Button(t("btn.other_times"), encode(other))])
            key = "customer.propose_move" if visit.status in MOVABLE else "customer.propose_booking"
            proposal = Outbound(t(key, kind=_kind(visit.kind), slot=span(*fit)), keyboard, card=_booking_card(inp, visit.id))
            return reply(proposal, state=S.CHOOSE_SLOT, data=VisitData(visit.id))
        return reply(joined(Outbound(t("customer.no_fitting_window", day=day_of(understood.date))), _slot_prompt(inp, visit)),
                     state=S.CHOOSE_SLOT, data=VisitData(visit.id))
    return reply(_slot_prompt(inp, visit), state=S.CHOOSE_SLOT, data=VisitData(visit.id))


def _cancel_text(inp: StepInput) -> StepResult:
    view: CustomerView = inp.view
    cancellable = [
        v for job in view.jobs for v in job.visits
        if v.status in (VisitStatus.CREATED.value, *MOVABLE) and _before_cutoff(inp, v)
    ]
    if len(cancellable) == 1:
        return on_cancel_visit(inp, CancelVisit(cancellable[0].id))
    if not cancellable:
        return reply(Outbound(t("customer.nothing_to_cancel")), *[_status_message(inp, job) for job in view.jobs])
    rows = [[Button(t("btn.cancel_kind", kind=_kind(v.kind)), encode(CancelVisit(v.id)))] for v in cancellable]
    return reply(Outbound(t("customer.which_to_cancel"), buttons(*rows)))


def _eta_text(inp: StepInput) -> StepResult:
    """Where the technician is, in one line: their estimate on the way, the planned or booked time, or the state."""
    visit = _current(inp)
    if visit is None:
        return on_status(inp)
    kind, technician = _kind(visit.kind), visit.technician or "-"
    status = VisitStatus(visit.status)
    slot = span(visit.slot_start, visit.slot_end) if visit.slot_start and visit.slot_end else "-"
    if status is VisitStatus.EN_ROUTE and visit.eta_minutes is not None:
        line = t("customer.eta_on_the_way", kind=kind, technician=technician, minutes=visit.eta_minutes)
    elif status is VisitStatus.EN_ROUTE:
        line = t("customer.eta_on_the_way_slot", kind=kind, technician=technician, slot=slot)
    elif status in (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS):
        line = t("customer.eta_on_site", kind=kind, technician=technician)
    elif status is VisitStatus.ACCEPTED and visit.planned_start is not None:
        line = t("customer.eta_planned", kind=kind, technician=technician, slot=slot, planned=when(visit.planned_start))
    elif status is VisitStatus.ACCEPTED:
        line = t("customer.eta_accepted", kind=kind, technician=technician, slot=slot)
    elif status is VisitStatus.BOOKED:
        line = t("customer.eta_booked", kind=kind, slot=slot)
    else:
        line = t("customer.state_line", kind=kind, status=t(f"status.{visit.status}"))
    return reply(Outbound(line, buttons(_visit_buttons(inp, visit))))


def _done_text(inp: StepInput) -> StepResult:
    """ "It's done": the confirmation prompt for a finished visit, else what state the visit is in."""
    view: CustomerView = inp.view
    completed = next((v for job in view.jobs for v in job.visits if v.status == VisitStatus.COMPLETED.value), None)
    if completed is not None:
        keyboard = buttons([Button(t("btn.confirm_done"), encode(ConfirmDone(completed.id)))])
        return reply(Outbound(t("customer.done_prompt", kind=_kind(completed.kind)), keyboard))
    visit = _current(inp)
    if visit is None:
        return on_status(inp)
    line = t("customer.not_done_yet", kind=_kind(visit.kind), status=t(f"status.{visit.status}"))
    return reply(Outbound(line, buttons(_visit_buttons(inp, visit))))


def _forward(inp: StepInput, topic: str) -> c.ForwardCustomerText:
    """The command that puts the customer's words before the dispatchers of the job they are about."""
    view: CustomerView = inp.view
    if view.customer_id is None or not view.jobs:
        raise ValueError("free text is passed on only for a customer with an order (on_idle_text checks it first)")
    visit = _current(inp)
    job = (view.job_of(visit.id) if visit else None) or view.jobs[0]
    return c.ForwardCustomerText(view.customer_id, job.id, visit.id if visit else None, topic, inp.event.text.strip())


# ====== people: talk to a person, a complaint, anything not understood ============================
# The relay thread (conversations/flows/relay.py): the text goes to the visit's technician or the dispatchers, their
# answers come back here, and the customer's next texts and photos join the thread until they press Done.
def _to_people(inp: StepInput, understood: Understood) -> StepResult:
    topic = Topic(understood.intent.value) if understood.intent in (Intent.HUMAN, Intent.COMPLAINT) else Topic.UNKNOWN
    return relay.to_people(inp, Origin.CUSTOMER, inp.view.customer_id, topic, inp.event.text.strip())


def _customer_id(inp: StepInput) -> int | None:
    customer_id: int | None = inp.view.customer_id
    return customer_id
# ==================================================================================================


def on_send_items(inp: StepInput, send: SendItemCheck) -> StepResult:
    return completion.on_send_items(inp, send, S.IDLE)


def on_send_item_marks(inp: StepInput, send: SendItemMarks) -> StepResult:
    return completion.on_send_marks(inp, send, S.IDLE)


FREE_TEXT = Step(on_idle_text, leads_to=(S.CHOOSE_SLOT, S.CONFIRM_CANCEL, relay.RELAY, repair.PICK, repair.PRODUCT, repair.MEDIA))
# wherever text is read freely, a photo is taken too (and so fetched and checked by the engine): it goes to people
FREE_PHOTO = Step(on_idle_photo, leads_to=(relay.RELAY,))

CUSTOMER_FLOW = FlowSpec(
    name="customer",
    initial=S.NEW,
    states={
        S.NEW: State(hint="customer.hint_new", text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True),
        S.IDLE: State(hint="customer.hint_idle", text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True),
        S.CHOOSE_SLOT: State(hint="customer.hint_choose_slot", data=VisitData, text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True),
        S.CONFIRM_CANCEL: State(hint="customer.hint_confirm_cancel", data=VisitData, text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True),
        S.RATE: State(hint="customer.hint_rate", data=VisitData, text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True),
        S.CONFIRM_MOVE: State(hint="customer.hint_confirm_move", data=MoveData, text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True),
        S.CHOOSE_DEPENDANT: State(
            hint="customer.hint_choose_slot", data=MoveData, text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True,
            buttons={PickSlot: Step(on_dependant_slot, leads_to=(S.IDLE, S.CONFIRM_MOVE), requires=CUSTOMER)},
        ),
        S.COMMENT: State(
            hint="customer.hint_comment", data=RatedVisit,
            text=Step(on_comment, leads_to=(S.IDLE,)),
            buttons={SkipComment: Step(on_skip, leads_to=(S.IDLE,))},
        ),
        relay.RELAY: relay.writer_state(Origin.CUSTOMER, _customer_id, S.IDLE),
        # a delivery's items ticked one by one (issue 13 part 6), then sent
        completion.ITEM_CHECK: State(
            hint="customer.hint_item_check", data=completion.ItemDraft, text=FREE_TEXT, photo=FREE_PHOTO, wants_photo=True,
            buttons={SendItemCheck: Step(on_send_items, leads_to=(S.IDLE,), requires=CUSTOMER)},
        ),
        **repair.states(CUSTOMER),  # a repair or maintenance request from chat (issue 14 part 3)
        **scan_report.states(owner_check.MINE),  # someone else's QR code scanned: a fault for the dispatchers to check (issue 14)
        **owner_check.states(),  # ... or the owner's own new chat, proved by the phone number on file (issue 14)
    },
    commands={
        "start": Step(on_start, leads_to=(S.CHOOSE_SLOT, S.IDLE, scan_report.REPORT)),  # someone else's QR code: a fault to tell
        "status": Step(on_status),
        "code": Step(completion.on_customer_code),  # the completion code again, for visits under way (issue 13 part 6)
        "help": Step(on_help),
        "cancel": Step(on_cancel, leads_to=(S.NEW, S.IDLE)),
        "lang": Step(language_menu),
        "language": Step(language_menu),
        "new": repair.NEW,
    },
    buttons={
        Book: Step(on_book, leads_to=(S.CHOOSE_SLOT,), requires=CUSTOMER),
        PickDay: Step(on_pick_day, leads_to=(S.CHOOSE_SLOT,), requires=CUSTOMER),
        MoreDays: Step(on_more_days, leads_to=(S.CHOOSE_SLOT,), requires=CUSTOMER),
        PickSlot: Step(on_slot, leads_to=(S.IDLE, S.CONFIRM_MOVE), requires=CUSTOMER),
        Reschedule: Step(on_reschedule, leads_to=(S.CHOOSE_SLOT,), requires=CUSTOMER),
        MoveBoth: Step(on_move_both, leads_to=(S.CHOOSE_DEPENDANT,), requires=CUSTOMER),
        MoveBothDay: Step(on_move_both_day, leads_to=(S.CHOOSE_DEPENDANT,), requires=CUSTOMER),
        KeepBoth: Step(on_keep_both, leads_to=(S.IDLE,), requires=CUSTOMER),
        CancelVisit: Step(on_cancel_visit, leads_to=(S.CONFIRM_CANCEL,), requires=CUSTOMER),
        ConfirmCancel: Step(on_cancel_yes, leads_to=(S.IDLE,), requires=CUSTOMER),
        KeepVisit: Step(on_cancel_no, leads_to=(S.IDLE,)),
        ConfirmAppointment: Step(on_appointment_ok, requires=CUSTOMER),
        ConfirmDone: Step(on_confirm, leads_to=(S.RATE,), requires=CUSTOMER),
        AskToRate: Step(on_rate_request, leads_to=(S.RATE,)),
        Rate: Step(on_rate, leads_to=(S.COMMENT,), requires=CUSTOMER),
        ChooseLanguage: Step(switch_language),
        **relay.writer_buttons(_customer_id, S.IDLE),
        ResendCode: Step(completion.on_customer_resend, requires=CUSTOMER),
        TickItem: Step(completion.on_tick_item, leads_to=(completion.ITEM_CHECK,), requires=CUSTOMER),
        RestartItemCheck: Step(completion.on_restart_items, leads_to=(completion.ITEM_CHECK,), requires=CUSTOMER),
        SendItemMarks: Step(on_send_item_marks, leads_to=(S.IDLE,), requires=CUSTOMER),
        **repair.buttons_anywhere(CUSTOMER),  # a device's menu (issue 14)
        **price_increase.customer_buttons(CUSTOMER),
    },
)
