"""The customer's flow: open the order link, book slots, follow the visit, confirm and rate."""

from __future__ import annotations

import enum
from datetime import datetime

from services.actions import (
    Action,
    AskToRate,
    Book,
    CancelVisit,
    ChooseLanguage,
    ConfirmAppointment,
    ConfirmCancel,
    ConfirmDone,
    KeepVisit,
    PickSlot,
    Rate,
    Reschedule,
    SkipComment,
    encode,
)
from conversations.flow import FlowSpec, Guard, State, Step, StepInput, reply
from conversations.flows.common import VisitData, help_for, hint, identity, language_menu, stale, switch_language
from domain import commands as c
from domain.model import VisitStatus
from services.messages import Button, Inbound, InboundKind, Outbound, StepResult, Text, buttons, raw, span, t
from services.views import CustomerView, CustomerViewRequest, JobInfo, VisitInfo


class CustomerState(enum.StrEnum):
    NEW = "new"
    IDLE = "idle"
    CHOOSE_SLOT = "choose_slot"
    CONFIRM_CANCEL = "confirm_cancel"
    RATE = "rate"
    COMMENT = "comment"


S = CustomerState


def view_request(event: Inbound, action: Action | None) -> CustomerViewRequest:
    """Times to book are looked for only when a step offers them: a link opened, or a Book button."""
    token = event.payload.strip() if event.kind is InboundKind.COMMAND and event.text == "start" else ""
    return CustomerViewRequest(event.chat, token=token or None, slots_for=action.visit_id if isinstance(action, Book) else None)


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
        row.append(Button(t("btn.reschedule"), encode(Reschedule(visit.id))))
        row.append(Button(t("btn.cancel_visit"), encode(CancelVisit(visit.id))))
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
    )


def _slot_prompt(visit: VisitInfo) -> Outbound:
    if not visit.slots:
        return Outbound(t("customer.no_slots", kind=_kind(visit.kind)))
    rows = [[Button(_slot_label(start, end), encode(PickSlot(visit.id, start, end)))] for start, end in visit.slots]
    return Outbound(t("customer.choose_slot", kind=_kind(visit.kind)), buttons(*rows))


def _slot_label(start: datetime, end: datetime) -> Text:
    return t("slot.label", slot=span(start, end))


def _rating_prompt(visit_id: int) -> Outbound:
    row = [Button(raw(str(score)), encode(Rate(visit_id, score))) for score in range(1, 6)]
    return Outbound(t("customer.rate_prompt"), buttons(row))


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
            return hint("error.link_invalid")
        messages = [Outbound(t("customer.welcome", name=raw(view.name))), _status_message(inp, job)]
        bind = c.BindCustomer(token, identity(inp))
        first = job.next_to_book()
        if first is not None and first.slots:
            messages.append(_slot_prompt(first))
            return reply(*messages, commands=[bind], state=S.CHOOSE_SLOT, data=VisitData(first.id))
        return reply(*messages, commands=[bind], state=S.IDLE)
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
    return reply(_slot_prompt(visit), state=S.CHOOSE_SLOT, data=VisitData(visit.id))


def on_slot(inp: StepInput, pick: PickSlot) -> StepResult:
    view: CustomerView = inp.view
    visit = view.visit(pick.visit_id)
    if view.customer_id is None:
        return not_a_customer(inp)  # the CUSTOMER guard lets nobody else through
    if visit is None or visit.status != VisitStatus.CREATED.value:
        return stale()
    messages = [Outbound(t("customer.booked", kind=_kind(visit.kind), slot=span(pick.start, pick.end)))]
    job = view.job_of(visit.id)
    following = job.next_to_book(after=visit.id) if job else None
    if following is not None:
        messages.append(Outbound(t("customer.book_next", kind=_kind(following.kind)), buttons([_book_button(following)])))
    return reply(*messages, commands=[c.BookVisit(visit.id, view.customer_id, pick.start, pick.end)], state=S.IDLE)


def on_reschedule(inp: StepInput, reschedule: Reschedule) -> StepResult:
    visit = inp.view.visit(reschedule.visit_id)
    if visit is None or visit.status not in (VisitStatus.BOOKED.value, VisitStatus.ACCEPTED.value):
        return stale()
    return reply(
        Outbound(t("customer.rescheduled", kind=_kind(visit.kind)), buttons([_book_button(visit)])),
        commands=[c.RescheduleVisit(visit.id, inp.view.customer_id)],
        state=S.IDLE,
    )


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
    if visit is None or visit.status not in (VisitStatus.BOOKED.value, VisitStatus.ACCEPTED.value):
        return stale()
    return hint("customer.appointment_confirmed", kind=_kind(visit.kind))


def on_cancel_no(inp: StepInput, keep: KeepVisit) -> StepResult:
    return reply(Outbound(t("customer.kept")), state=S.IDLE)


def on_confirm(inp: StepInput, confirm: ConfirmDone) -> StepResult:
    visit = inp.view.visit(confirm.visit_id)
    if visit is None or visit.status != VisitStatus.COMPLETED.value:
        return stale()
    return reply(
        Outbound(t("customer.confirmed", kind=_kind(visit.kind))),
        _rating_prompt(visit.id),
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
    return reply(
        Outbound(t("customer.rated", score=rate.score), buttons([Button(t("btn.skip"), encode(SkipComment()))])),
        commands=[c.RateVisit(visit.id, inp.view.customer_id, rate.score)],
        state=S.COMMENT,
        data=VisitData(visit.id),
    )


def on_comment(inp: StepInput) -> StepResult:
    rated: VisitData | None = inp.data
    text = inp.event.text.strip()
    if rated is None:
        return reply(Outbound(t("customer.hint_idle")), state=S.IDLE)
    if not text:
        return hint("customer.hint_comment")
    return reply(
        Outbound(t("customer.thanks")),
        commands=[c.CommentRating(rated.visit, inp.view.customer_id, text)],
        state=S.IDLE,
    )


def on_skip(inp: StepInput, skip: SkipComment) -> StepResult:
    return reply(Outbound(t("customer.thanks")), state=S.IDLE)


def on_cancel(inp: StepInput) -> StepResult:
    if inp.view.customer_id is None:
        return reply(Outbound(t("customer.hint_new")), state=S.NEW)
    return reply(Outbound(t("common.cancelled")), state=S.IDLE)


def on_help(inp: StepInput) -> StepResult:
    return help_for(inp, "customer.help", CUSTOMER_FLOW.states)


def on_idle_text(inp: StepInput) -> StepResult:
    if inp.view.customer_id is None:
        return hint("customer.hint_new")
    return hint("customer.hint_idle")


CUSTOMER_FLOW = FlowSpec(
    name="customer",
    initial=S.NEW,
    states={
        S.NEW: State(hint="customer.hint_new", text=Step(on_idle_text)),
        S.IDLE: State(hint="customer.hint_idle", text=Step(on_idle_text)),
        S.CHOOSE_SLOT: State(hint="customer.hint_choose_slot", data=VisitData),
        S.CONFIRM_CANCEL: State(hint="customer.hint_confirm_cancel", data=VisitData),
        S.RATE: State(hint="customer.hint_rate", data=VisitData),
        S.COMMENT: State(
            hint="customer.hint_comment", data=VisitData,
            text=Step(on_comment, leads_to=(S.IDLE,)),
            buttons={SkipComment: Step(on_skip, leads_to=(S.IDLE,))},
        ),
    },
    commands={
        "start": Step(on_start, leads_to=(S.CHOOSE_SLOT, S.IDLE)),
        "status": Step(on_status),
        "help": Step(on_help),
        "cancel": Step(on_cancel, leads_to=(S.NEW, S.IDLE)),
        "lang": Step(language_menu),
        "language": Step(language_menu),
    },
    buttons={
        Book: Step(on_book, leads_to=(S.CHOOSE_SLOT,), requires=CUSTOMER),
        PickSlot: Step(on_slot, leads_to=(S.IDLE,), requires=CUSTOMER),
        Reschedule: Step(on_reschedule, leads_to=(S.IDLE,), requires=CUSTOMER),
        CancelVisit: Step(on_cancel_visit, leads_to=(S.CONFIRM_CANCEL,), requires=CUSTOMER),
        ConfirmCancel: Step(on_cancel_yes, leads_to=(S.IDLE,), requires=CUSTOMER),
        KeepVisit: Step(on_cancel_no, leads_to=(S.IDLE,)),
        ConfirmAppointment: Step(on_appointment_ok, requires=CUSTOMER),
        ConfirmDone: Step(on_confirm, leads_to=(S.RATE,), requires=CUSTOMER),
        AskToRate: Step(on_rate_request, leads_to=(S.RATE,)),
        Rate: Step(on_rate, leads_to=(S.COMMENT,), requires=CUSTOMER),
        ChooseLanguage: Step(switch_language),
    },
)
