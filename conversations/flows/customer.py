"""The customer's flow: open the order link, book slots, follow the visit, confirm and rate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from conversations.flow import MAX_TIMESTAMP, FlowSpec, State, StepInput
from conversations.flows.common import help_for, hint, identity, language_menu, switch_language
from services.messages import Button, Inbound, InboundKind, Outbound, StepResult, buttons, raw, reply, span, t
from domain import commands as c
from domain.lifecycle import ACTIVE, not_before
from domain.model import Customer, Job, VisitStatus
from domain.policy import ServicePolicy
from domain.slots import Booking, free_slots
from services.booking import feasible_slots
from storage.repository import Store

SLOTS_SHOWN = 8


@dataclass(frozen=True)
class VisitInfo:
    id: int
    kind: str
    status: str
    slot_start: datetime | None
    slot_end: datetime | None
    technician: str | None
    rated: bool
    depends_on: int | None
    slots: tuple[tuple[datetime, datetime], ...]


@dataclass(frozen=True)
class JobInfo:
    id: int
    product: str
    address: str
    visits: tuple[VisitInfo, ...]


@dataclass(frozen=True)
class CustomerView:
    customer_id: int | None
    name: str
    token_job: JobInfo | None  # the job behind a /start token, peeked before binding
    jobs: tuple[JobInfo, ...]

    def visit(self, visit_id: int | None) -> VisitInfo | None:
        for job in (*self.jobs, *((self.token_job,) if self.token_job else ())):
            for visit in job.visits:
                if visit.id == visit_id:
                    return visit
        return None


async def _job_info(store: Store, job: Job, policy: ServicePolicy, now: datetime, technicians, bookings) -> JobInfo:
    visits = await store.visits_of_job(job.id)
    by_id = {v.id: v for v in visits}
    names = {t.id: t.name for t in technicians}
    infos = []
    for visit in visits:
        slots: tuple = ()
        dependency = by_id.get(visit.depends_on_visit_id)
        if visit.state is VisitStatus.CREATED and (dependency is None or dependency.slot_end is not None):
            found = free_slots(
                visit=visit, job=job, technicians=technicians,
                bookings=bookings, now=now, tz=policy.tz, windows=policy.windows,
                days_ahead=policy.booking_days, lead=policy.booking_lead,
                not_before=not_before(visit, dependency), limit=2 * SLOTS_SHOWN,
            )
            # offer only windows whose route can really take the visit, driving included
            feasible = await feasible_slots(store, policy, now, visit, job, found)
            slots = tuple((s.start, s.end) for s in feasible[:SLOTS_SHOWN])
        rated = visit.state is VisitStatus.CONFIRMED and await store.rating_of(visit.id) is not None
        infos.append(
            VisitInfo(visit.id, visit.kind, visit.status, visit.slot_start, visit.slot_end,
                      names.get(visit.technician_id) if visit.state in (*ACTIVE, VisitStatus.COMPLETED, VisitStatus.CONFIRMED) else None,
                      rated, visit.depends_on_visit_id, slots)
        )
    return JobInfo(job.id, job.product_name, job.address_text, tuple(infos))


async def load_view(store: Store, event: Inbound, data: dict, policy: ServicePolicy, now: datetime) -> CustomerView:
    chat = event.chat
    binding = await store.binding(chat.platform, chat.bot, chat.chat_id, "customer")
    customer_id = binding.subject_id if binding else None
    token_job = None
    technicians = await store.technicians()
    busy = await store.bookings_between(now - timedelta(days=1), now + timedelta(days=policy.booking_days + 2))
    bookings = [Booking(v.technician_id, v.slot_start, v.slot_end, v.duration_minutes) for v in busy]
    if event.kind is InboundKind.COMMAND and event.text == "start" and event.payload:
        row = await store.find_token(event.payload.strip(), "customer")
        job = await store.get(Job, row["subject_id"]) if row else None
        if job is not None:
            token_job = await _job_info(store, job, policy, now, technicians, bookings)
            customer_id = customer_id if customer_id == job.customer_id else job.customer_id
    if customer_id is None:
        return CustomerView(None, "", token_job, ())
    customer = await store.get(Customer, customer_id)
    jobs = await store.jobs_of_customer(customer_id, open_only=False)
    infos = tuple([await _job_info(store, job, policy, now, technicians, bookings) for job in jobs[-5:]])
    return CustomerView(customer_id, customer.name if customer else "", token_job, infos)


# --- rendering helpers --------------------------------------------------------------------------


def _kind(kind: str) -> dict:
    return t(f"kind.{kind}")


def _visit_line(visit: VisitInfo) -> dict:
    if visit.slot_start and visit.slot_end:
        return t("customer.visit_line_booked", kind=_kind(visit.kind), status=t(f"status.{visit.status}"), slot=span(visit.slot_start, visit.slot_end))
    return t("customer.visit_line", kind=_kind(visit.kind), status=t(f"status.{visit.status}"))


def _visit_buttons(inp: StepInput, visit: VisitInfo) -> list[Button]:
    state = VisitStatus(visit.status)
    row = []
    if state is VisitStatus.CREATED:
        row.append(Button(t("btn.book", kind=_kind(visit.kind)), f"bk:{visit.id}"))
    elif state in (VisitStatus.BOOKED, VisitStatus.ACCEPTED) and _before_cutoff(inp, visit):
        row.append(Button(t("btn.reschedule"), f"rs:{visit.id}"))
        row.append(Button(t("btn.cancel_visit"), f"cx:{visit.id}"))
    elif state is VisitStatus.COMPLETED:
        row.append(Button(t("btn.confirm_done"), f"cf:{visit.id}"))
    elif state is VisitStatus.CONFIRMED and not visit.rated:
        row.append(Button(t("btn.rate"), f"rq:{visit.id}"))
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
    rows = [
        [Button(_slot_label(start, end), f"sl:{visit.id}:{int(start.timestamp())}:{int(end.timestamp())}")]
        for start, end in visit.slots
    ]
    return Outbound(t("customer.choose_slot", kind=_kind(visit.kind)), buttons(*rows))


def _slot_label(start: datetime, end: datetime) -> dict:
    return t("slot.label", slot=span(start, end))


def _next_to_book(job: JobInfo, after: int | None = None) -> VisitInfo | None:
    for visit in job.visits:
        if visit.status == VisitStatus.CREATED.value and visit.id != after:
            return visit
    return None


# --- steps --------------------------------------------------------------------------------------


def on_start(inp: StepInput) -> StepResult:
    view: CustomerView = inp.view
    token = inp.event.payload.strip()
    if token:
        job = view.token_job
        if job is None:
            return hint("error.link_invalid")
        messages = [Outbound(t("customer.welcome", name=raw(view.name))), _status_message(inp, job)]
        first = _next_to_book(job)
        if first is not None and first.slots:
            messages.append(_slot_prompt(first))
            return reply(*messages, commands=[c.BindCustomer(token, identity(inp))], state="choose_slot", data={"visit": first.id})
        return reply(*messages, commands=[c.BindCustomer(token, identity(inp))], state="idle", data={})
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


def _require_customer(inp: StepInput) -> StepResult | None:
    if inp.view.customer_id is None:
        return hint("customer.hint_new")
    return None


def on_book(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit = inp.view.visit(inp.int_arg())
    if visit is None or visit.status != VisitStatus.CREATED.value:
        return hint("hint.stale_button")
    if visit.depends_on is not None:
        dependency = inp.view.visit(visit.depends_on)
        if dependency is not None and dependency.slot_start is None:
            return hint("error.book_dependency_first", kind=_kind(dependency.kind))
    return reply(_slot_prompt(visit), state="choose_slot", data={"visit": visit.id})


def on_slot(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit = inp.view.visit(inp.int_arg(0))
    start_ts, end_ts = inp.int_arg(1, high=MAX_TIMESTAMP), inp.int_arg(2, high=MAX_TIMESTAMP)
    if visit is None or start_ts is None or end_ts is None or visit.status != VisitStatus.CREATED.value:
        return hint("hint.stale_button")
    start = datetime.fromtimestamp(start_ts, timezone.utc)
    end = datetime.fromtimestamp(end_ts, timezone.utc)
    messages = [Outbound(t("customer.booked", kind=_kind(visit.kind), slot=span(start, end)))]
    job = next((j for j in inp.view.jobs if any(v.id == visit.id for v in j.visits)), None)
    following = _next_to_book(job, after=visit.id) if job else None
    if following is not None:
        messages.append(Outbound(t("customer.book_next", kind=_kind(following.kind)), buttons([Button(t("btn.book", kind=_kind(following.kind)), f"bk:{following.id}")])))
    return reply(*messages, commands=[c.BookVisit(visit.id, inp.view.customer_id, start, end)], state="idle", data={})


def on_reschedule(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit = inp.view.visit(inp.int_arg())
    if visit is None or visit.status not in (VisitStatus.BOOKED.value, VisitStatus.ACCEPTED.value):
        return hint("hint.stale_button")
    keyboard = buttons([Button(t("btn.book", kind=_kind(visit.kind)), f"bk:{visit.id}")])
    return reply(
        Outbound(t("customer.rescheduled", kind=_kind(visit.kind)), keyboard),
        commands=[c.RescheduleVisit(visit.id, inp.view.customer_id)],
        state="idle",
        data={},
    )


def on_cancel_visit(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit = inp.view.visit(inp.int_arg())
    if visit is None or visit.status in (VisitStatus.CANCELLED.value, VisitStatus.COMPLETED.value, VisitStatus.CONFIRMED.value):
        return hint("hint.stale_button")
    keyboard = buttons([Button(t("btn.yes_cancel"), f"cxy:{visit.id}"), Button(t("btn.no_keep"), "cxn")])
    return reply(Outbound(t("customer.cancel_confirm", kind=_kind(visit.kind)), keyboard), state="confirm_cancel", data={"visit": visit.id})


def on_cancel_yes(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit = inp.view.visit(inp.int_arg())
    if visit is None:
        return hint("hint.stale_button")
    return reply(
        Outbound(t("customer.cancelled", kind=_kind(visit.kind))),
        commands=[c.CancelVisitByCustomer(visit.id, inp.view.customer_id)],
        state="idle",
        data={},
    )


def on_appointment_ok(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit = inp.view.visit(inp.int_arg())
    if visit is None or visit.status not in (VisitStatus.BOOKED.value, VisitStatus.ACCEPTED.value):
        return hint("hint.stale_button")
    return hint("customer.appointment_confirmed", kind=_kind(visit.kind))


def on_cancel_no(inp: StepInput) -> StepResult:
    return reply(Outbound(t("customer.kept")), state="idle", data={})


def _rating_prompt(visit_id: int) -> Outbound:
    row = [Button(raw(str(n)), f"rt:{visit_id}:{n}") for n in range(1, 6)]
    return Outbound(t("customer.rate_prompt"), buttons(row))


def on_confirm(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit = inp.view.visit(inp.int_arg())
    if visit is None or visit.status != VisitStatus.COMPLETED.value:
        return hint("hint.stale_button")
    return reply(
        Outbound(t("customer.confirmed", kind=_kind(visit.kind))),
        _rating_prompt(visit.id),
        commands=[c.ConfirmVisit(visit.id, inp.view.customer_id)],
        state="rate",
        data={"visit": visit.id},
    )


def on_rate_request(inp: StepInput) -> StepResult:
    visit = inp.view.visit(inp.int_arg())
    if visit is None or visit.status != VisitStatus.CONFIRMED.value or visit.rated:
        return hint("hint.stale_button")
    return reply(_rating_prompt(visit.id), state="rate", data={"visit": visit.id})


def on_rate(inp: StepInput) -> StepResult:
    if (refusal := _require_customer(inp)) is not None:
        return refusal
    visit_id, score = inp.int_arg(0), inp.int_arg(1)
    visit = inp.view.visit(visit_id)
    if visit is None or score is None or not 1 <= score <= 5 or visit.rated:
        return hint("hint.stale_button")
    keyboard = buttons([Button(t("btn.skip"), "skip")])
    return reply(
        Outbound(t("customer.rated", score=score), keyboard),
        commands=[c.RateVisit(visit.id, inp.view.customer_id, score)],
        state="comment",
        data={"visit": visit.id},
    )


def on_comment(inp: StepInput) -> StepResult:
    text = inp.event.text.strip()
    if not text:
        return hint("customer.hint_comment")
    return reply(
        Outbound(t("customer.thanks")),
        commands=[c.CommentRating(inp.data["visit"], inp.view.customer_id, text)],
        state="idle",
        data={},
    )


def on_skip(inp: StepInput) -> StepResult:
    if inp.state != "comment":
        return hint("hint.stale_button")
    return reply(Outbound(t("customer.thanks")), state="idle", data={})


def on_cancel(inp: StepInput) -> StepResult:
    if inp.view.customer_id is None:
        return reply(Outbound(t("customer.hint_new")), state="new", data={})
    return reply(Outbound(t("common.cancelled")), state="idle", data={})


def on_help(inp: StepInput) -> StepResult:
    return help_for(inp, "customer.help", CUSTOMER_FLOW.states)


def on_idle_text(inp: StepInput) -> StepResult:
    if inp.view.customer_id is None:
        return hint("customer.hint_new")
    return hint("customer.hint_idle")


CUSTOMER_FLOW = FlowSpec(
    name="customer",
    initial="new",
    states={
        "new": State(hint="customer.hint_new", text=on_idle_text, leads_to=("choose_slot", "idle")),
        "idle": State(hint="customer.hint_idle", text=on_idle_text, leads_to=("choose_slot", "confirm_cancel", "rate")),
        "choose_slot": State(hint="customer.hint_choose_slot", leads_to=("idle",)),
        "confirm_cancel": State(hint="customer.hint_confirm_cancel", leads_to=("idle",)),
        "rate": State(hint="customer.hint_rate", leads_to=("comment",)),
        "comment": State(hint="customer.hint_comment", text=on_comment, leads_to=("idle",)),
    },
    commands={
        "start": on_start,
        "status": on_status,
        "help": on_help,
        "cancel": on_cancel,
        "lang": language_menu,
        "language": language_menu,
    },
    buttons={
        "bk": on_book,
        "sl": on_slot,
        "rs": on_reschedule,
        "cx": on_cancel_visit,
        "cxy": on_cancel_yes,
        "cxn": on_cancel_no,
        "ok": on_appointment_ok,
        "cf": on_confirm,
        "rq": on_rate_request,
        "rt": on_rate,
        "skip": on_skip,
        "lang": switch_language,
    },
)

