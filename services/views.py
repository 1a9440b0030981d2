"""Read models for the conversation steps: what each chat may see, loaded with batched queries as frozen snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.lifecycle import DONE, not_before
from domain.model import ChecklistStep, Customer, Job, ProblemReport, Technician, Visit, VisitStatus, stored_id
from domain.policy import ServicePolicy
from domain.slots import free_slots
from services import booking
from services.context import HandlerContext
from services.handlers import candidates
from services.lookups import booking_of
from services.messages import ChatRef
from storage.repository import Store

SLOTS_SHOWN = 8
CUSTOMER_JOBS_SHOWN = 5
TECHNICIAN_STATUSES = (
    VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE,
    VisitStatus.IN_PROGRESS, VisitStatus.ON_HOLD, VisitStatus.COMPLETED,
)

Span = tuple[datetime, datetime]


# --- the customer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerViewRequest:
    chat: ChatRef
    token: str | None = None  # /start <token>: the job behind it, peeked at before binding, with times for its next visit to book
    slots_for: int | None = None  # the visit whose bookable times the step offers


@dataclass(frozen=True)
class VisitInfo:
    id: int
    kind: str
    status: str
    slot_start: datetime | None
    slot_end: datetime | None
    rated: bool
    depends_on: int | None
    # the times offered for booking, best first; None: not looked for (routing runs only for a step that offers them)
    slots: tuple[Span, ...] | None = None


@dataclass(frozen=True)
class JobInfo:
    id: int
    product: str
    address: str
    visits: tuple[VisitInfo, ...]

    def next_to_book(self, after: int | None = None) -> VisitInfo | None:
        """The first visit still waiting for a booking, other than ``after``."""
        return next((v for v in self.visits if v.status == VisitStatus.CREATED.value and v.id != after), None)


@dataclass(frozen=True)
class CustomerView:
    customer_id: int | None
    name: str
    token_job: JobInfo | None  # the job behind a /start token, peeked before binding
    jobs: tuple[JobInfo, ...]

    def visit(self, visit_id: int | None) -> VisitInfo | None:
        for job in self.jobs if self.token_job is None else (*self.jobs, self.token_job):
            for visit in job.visits:
                if visit.id == visit_id:
                    return visit
        return None

    def job_of(self, visit_id: int) -> JobInfo | None:
        """The customer's job the visit belongs to."""
        return next((job for job in self.jobs if any(v.id == visit_id for v in job.visits)), None)


async def load_customer_view(store: Store, request: CustomerViewRequest, policy: ServicePolicy, now: datetime) -> CustomerView:
    chat = request.chat
    binding = await store.binding(chat.platform, chat.bot, chat.chat_id, "customer")
    customer_id = binding.subject_id if binding else None
    token_job = None
    if request.token:
        row = await store.find_token(request.token, "customer")
        token_job = await store.get(Job, row["subject_id"]) if row else None
        if token_job is not None:
            customer_id = token_job.customer_id  # the link's owner: the chat is about to be bound to them
    customer = await store.get(Customer, customer_id) if customer_id is not None else None
    jobs = await store.latest_jobs_of_customer(customer_id, CUSTOMER_JOBS_SHOWN) if customer_id is not None else []
    by_id = {stored_id(job): job for job in (*jobs, *((token_job,) if token_job else ()))}
    visits = await store.visits_of_jobs(by_id.keys())
    rated = await store.rated_visits(stored_id(v) for v in visits if v.state is VisitStatus.CONFIRMED)
    visits_of: dict[int, list[Visit]] = {job_id: [] for job_id in by_id}
    for visit in visits:
        visits_of[visit.job_id].append(visit)

    wanted: set[int] = set()
    if request.slots_for is not None:
        wanted.add(request.slots_for)
    if token_job is not None:  # the visit /start offers times for: JobInfo.next_to_book
        first = next((v for v in visits_of[stored_id(token_job)] if v.state is VisitStatus.CREATED), None)
        if first is not None:
            wanted.add(stored_id(first))
    slots = await _bookable_times(store, policy, now, [(v, by_id[v.job_id], visits_of[v.job_id]) for v in visits if v.id in wanted])

    infos = {
        job_id: JobInfo(
            job_id, job.product_name, job.address_text,
            tuple(
                VisitInfo(
                    stored_id(v), v.kind, v.status, v.slot_start, v.slot_end, v.id in rated, v.depends_on_visit_id, slots.get(stored_id(v))
                )
                for v in visits_of[job_id]
            ),
        )
        for job_id, job in by_id.items()
    }
    return CustomerView(
        customer_id,
        customer.name if customer else "",
        infos[stored_id(token_job)] if token_job is not None else None,
        tuple(infos[stored_id(job)] for job in jobs),
    )


async def _bookable_times(
    store: Store, policy: ServicePolicy, now: datetime, wanted: list[tuple[Visit, Job, list[Visit]]]
) -> dict[int, tuple[Span, ...]]:
    """Times each visit can be booked in: free in someone's hours and reachable on their route, driving included.

    A visit waiting for another (an installation after its delivery) has none until that one is booked.
    """
    bookable = []
    for visit, job, siblings in wanted:
        dependency = next((v for v in siblings if v.id == visit.depends_on_visit_id), None)
        if visit.state is VisitStatus.CREATED and (dependency is None or dependency.slot_end is not None):
            bookable.append((visit, job, dependency))
    if not bookable:
        return {}
    technicians = await store.technicians()
    busy = await store.bookings_between(now - timedelta(days=1), now + timedelta(days=policy.booking_days + 2))
    bookings = [booking_of(v) for v in busy]
    times: dict[int, tuple[Span, ...]] = {}
    for visit, job, dependency in bookable:
        found = free_slots(
            visit=visit, job=job, technicians=technicians,
            bookings=bookings, now=now, tz=policy.tz, windows=policy.windows,
            days_ahead=policy.booking_days, lead=policy.booking_lead,
            not_before=not_before(visit, dependency), limit=2 * SLOTS_SHOWN,
        )
        # offer only windows whose route can really take the visit, driving included
        feasible = await booking.feasible_slots(store, policy, now, visit, job, found)
        times[stored_id(visit)] = tuple((slot.start, slot.end) for slot in feasible[:SLOTS_SHOWN])
    return times


# --- technicians ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TechnicianViewRequest:
    chat: ChatRef
    token: str | None = None  # /start <token>: whose link it is, technician's or dispatcher's


@dataclass(frozen=True)
class TechVisit:
    id: int
    kind: str
    status: str
    slot_start: datetime | None
    slot_end: datetime | None
    product: str
    address: str
    lat: float
    lon: float
    customer: str
    phone: str
    steps: tuple[ChecklistStep, ...]
    answered: frozenset[str]
    dependency_done: bool
    lead: str | None = None  # set when this technician is crew on someone else's visit: the lead's name

    def next_step(self) -> int | None:
        for index, step in enumerate(self.steps):
            if step.key not in self.answered:
                return index
        return None


@dataclass(frozen=True)
class TechnicianView:
    technician_id: int | None
    name: str
    token_kind: str | None  # "technician" or "dispatcher" when /start carries a valid-looking token
    token_name: str
    visits: tuple[TechVisit, ...]

    def visit(self, visit_id: int | None) -> TechVisit | None:
        return next((v for v in self.visits if v.id == visit_id), None)


async def load_technician_view(store: Store, request: TechnicianViewRequest, policy: ServicePolicy, now: datetime) -> TechnicianView:
    chat = request.chat
    token_kind = None
    if request.token:
        for purpose in ("technician", "dispatcher"):
            if await store.find_token(request.token, purpose):
                token_kind = purpose
                break
    binding = await store.binding(chat.platform, chat.bot, chat.chat_id, "technician")
    if binding is None:
        return TechnicianView(None, "", token_kind, "", ())
    technician = await store.load(Technician, binding.subject_id)
    technician_id = stored_id(technician)
    mine = await store.visits_of_technician(technician_id, TECHNICIAN_STATUSES)
    crew = await store.crew_visits_of(technician_id, TECHNICIAN_STATUSES)
    # grab offers: the visit has no technician yet, but this one may take it
    offered = await store.visits_offered_to(technician_id)
    visits = [*mine, *crew, *offered]
    jobs = await store.get_many(Job, (v.job_id for v in visits))
    customers = await store.get_many(Customer, (job.customer_id for job in jobs.values()))
    templates = await store.templates_for((v.kind, jobs[v.job_id].product_category) for v in visits)
    dependencies = await store.get_many(Visit, (v.depends_on_visit_id for v in visits))
    answered = await store.answered_steps(stored_id(v) for v in visits)
    leads = await store.get_many(Technician, (v.technician_id for v in crew))
    crew_ids = {v.id for v in crew}
    cards = []
    for visit in visits:
        job = jobs[visit.job_id]
        customer = customers[job.customer_id]
        template = templates.get((visit.kind, job.product_category))
        dependency = dependencies.get(visit.depends_on_visit_id) if visit.depends_on_visit_id else None
        cards.append(
            TechVisit(
                stored_id(visit), visit.kind, visit.status, visit.slot_start, visit.slot_end, job.product_name,
                job.address_text, job.lat, job.lon, customer.name, customer.phone,
                tuple(template.parsed_steps()) if template else (),
                frozenset(answered[stored_id(visit)]),
                dependency is None or dependency.state in DONE,
                _lead_name(leads, visit) if visit.id in crew_ids else None,
            )
        )
    return TechnicianView(technician_id, technician.name, token_kind, "", tuple(cards))


def _lead_name(leads: dict[int, Technician], visit: Visit) -> str:
    lead = leads.get(visit.technician_id) if visit.technician_id is not None else None
    return lead.name if lead else "-"


# --- dispatchers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatcherViewRequest:
    chat: ChatRef
    user_id: str  # who wrote or pressed: a group's buttons may be pressed by anyone in it
    token: str | None = None  # /start <token>: a group's link or a dispatcher's
    exception_id: int | None = None  # the problem report a button is about
    visit_id: int | None = None  # the visit a deadline alert's button is about
    candidates: bool = False  # who else could take the visit (routing runs only for a step that lists them)


@dataclass(frozen=True)
class ExceptionInfo:
    id: int
    status: str
    visit_id: int
    kind: str
    candidates: tuple[tuple[int, str], ...] | None  # technicians who could take the visit instead; None: not looked for


@dataclass(frozen=True)
class VisitContacts:
    visit_id: int
    candidates: tuple[tuple[int, str], ...] | None  # free technicians for its slot, best first; None: not looked for
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


async def load_dispatcher_view(store: Store, request: DispatcherViewRequest, policy: ServicePolicy, now: datetime) -> DispatcherView:
    chat = request.chat
    group = await store.binding(chat.platform, chat.bot, chat.chat_id, "group")
    dispatcher = await store.dispatcher_for_user(chat.platform, chat.bot, request.user_id)
    token_kind = None
    if request.token:
        for purpose in ("group", "dispatcher"):
            if await store.find_token(request.token, purpose):
                token_kind = purpose
                break
    exception = contacts = None
    # anyone in a group can press its buttons: nothing is looked up for someone who is not a dispatcher
    if dispatcher is not None:
        context = HandlerContext(store, now, policy)
        if request.exception_id is not None:
            exception = await _exception_info(context, request.exception_id, request.candidates)
        if request.visit_id is not None:
            contacts = await _visit_contacts(context, request.visit_id, request.candidates)
    return DispatcherView(group.subject_id if group else None, dispatcher.subject_id if dispatcher else None, token_kind, exception, contacts)


async def _exception_info(context: HandlerContext, exception_id: int, with_candidates: bool) -> ExceptionInfo | None:
    report = await context.store.get(ProblemReport, exception_id)
    if report is None:
        return None
    visit = await context.store.load(Visit, report.visit_id)
    others = await _others_free(context, visit) if with_candidates else None
    return ExceptionInfo(exception_id, report.status, report.visit_id, visit.kind, others)


async def _visit_contacts(context: HandlerContext, visit_id: int, with_candidates: bool) -> VisitContacts | None:
    store = context.store
    visit = await store.get(Visit, visit_id)
    if visit is None:
        return None
    job = await store.load(Job, visit.job_id)
    customer = await store.load(Customer, job.customer_id)
    technician = await store.get(Technician, visit.technician_id) if visit.technician_id else None
    others = await _others_free(context, visit) if with_candidates else None
    return VisitContacts(visit_id, others, customer.name, customer.phone,
                         technician.name if technician else "-", technician.phone if technician else "-")


async def _others_free(context: HandlerContext, visit: Visit) -> tuple[tuple[int, str], ...]:
    """Who could take the visit instead of whoever has it: the same rule every assign path checks."""
    job = await context.store.load(Job, visit.job_id)
    ranked = await candidates(context, visit, job)
    names = {t.id: t.name for t in await context.store.technicians()}
    return tuple((tid, names[tid]) for tid in ranked if tid != visit.technician_id)
