"""Read models for the conversation steps: what each chat may see, loaded with batched queries as frozen snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.access import region_allowed
from domain.field_work import job_brief, open_crew_seats
from domain.lifecycle import DONE, not_before
from domain.model import ChecklistStep, Customer, DispatchGroup, Dispatcher, Job, ProblemReport, Rating, Technician, Visit, VisitStatus, stored_id
from domain.policy import ServicePolicy
from domain.slots import free_slots
from services import accounts, booking, dispatching
from services.context import HandlerContext
from services.handlers import candidates
from services.lookups import booking_of
from services.messages import ChatRef
from storage.completion_codes import code_states, unchecked_deliveries
from storage.devices import jobs_with_devices
from storage.signatures import signature_states
from storage.repository import Store

CUSTOMER_JOBS_SHOWN = 5
FINISHED_SHOWN = timedelta(days=2)  # completed visits stay in a technician's view this long after their slot ends
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
    # free text that may name a time: times for every visit the customer could book or move (a step proposes one)
    slots_for_open: bool = False
    # (visit, start, end): times for the visits after this one, as though it were moved to [start, end)
    moved: tuple[int, datetime, datetime] | None = None
    text: str | None = None  # free text the customer wrote (the flow's loader reads whether it names a time)


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
    duration_minutes: int = 0
    min_gap_minutes: int = 0  # after the visit it depends on
    appointment_confirmed: bool = False  # the customer confirmed the booked time
    technician: str | None = None  # who comes, once someone accepted
    eta_minutes: int | None = None  # the last arrival estimate given, on the way
    planned_start: datetime | None = None  # when the day's route has them start it


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
    # finished deliveries whose items the customer has not checked yet: their items (domain.completion_codes.delivered_items)
    unchecked: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

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
    if request.slots_for_open:
        wanted.update(stored_id(v) for v in visits if v.state in (VisitStatus.CREATED, *MOVABLE))
    moved = None
    if request.moved is not None:
        moved_id, moved_start, moved_end = request.moved
        moved = next((v for v in visits if v.id == moved_id), None)
        if moved is not None:
            wanted.update(stored_id(v) for v in visits if v.depends_on_visit_id == moved_id)
            moved = _as_moved(moved, moved_start, moved_end)
    slots = await _bookable_times(
        store, policy, now, [(v, by_id[v.job_id], _with_moved(visits_of[v.job_id], moved)) for v in visits if v.id in wanted]
    )
    technicians = await store.get_many(Technician, (v.technician_id for v in visits if v.state in SHOWS_TECHNICIAN))

    infos = {
        job_id: JobInfo(
            job_id, job.product_name, job.address_text,
            tuple(
                VisitInfo(
                    stored_id(v), v.kind, v.status, v.slot_start, v.slot_end, v.id in rated, v.depends_on_visit_id, slots.get(stored_id(v)),
                    v.duration_minutes, v.min_gap_minutes, v.appointment_confirmed_at is not None,
                    _name_of(technicians, v.technician_id) if v.state in SHOWS_TECHNICIAN else None,
                    v.eta_minutes if v.state is VisitStatus.EN_ROUTE else None, v.planned_start,
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
        await unchecked_deliveries(store, [v for v in visits if v.job_id in {stored_id(j) for j in jobs}], by_id),
    )


MOVABLE = (VisitStatus.BOOKED, VisitStatus.ACCEPTED)  # what the customer may move to another time
SHOWS_TECHNICIAN = (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS, VisitStatus.COMPLETED)


def _name_of(technicians: dict[int, Technician], technician_id: int | None) -> str | None:
    technician = technicians.get(technician_id) if technician_id is not None else None
    return technician.name if technician else None


def _as_moved(visit: Visit, start: datetime, end: datetime) -> Visit:
    """A detached copy of the visit at another time: what its dependants' times are looked for against."""
    return Visit(visit.job_id, visit.kind, visit.sequence, visit.duration_minutes, status=VisitStatus.BOOKED.value,
                 depends_on_visit_id=visit.depends_on_visit_id, slot_start=start, slot_end=end, id=visit.id)


def _with_moved(siblings: list[Visit], moved: Visit | None) -> list[Visit]:
    return siblings if moved is None else [moved if v.id == moved.id else v for v in siblings]


async def _bookable_times(
    store: Store, policy: ServicePolicy, now: datetime, wanted: list[tuple[Visit, Job, list[Visit]]]
) -> dict[int, tuple[Span, ...]]:
    """Times each visit can be booked in, or moved to, over the whole horizon: free in someone's hours and
    reachable on their route, driving included (its own booking does not count against it).

    A visit waiting for another (an installation after its delivery) has none until that one is booked.
    """
    bookable = []
    for visit, job, siblings in wanted:
        dependency = next((v for v in siblings if v.id == visit.depends_on_visit_id), None)
        if visit.state in (VisitStatus.CREATED, *MOVABLE) and (dependency is None or dependency.slot_end is not None):
            bookable.append((visit, job, dependency))
    if not bookable:
        return {}
    technicians = await store.technicians()
    busy = await store.bookings_between(now - timedelta(days=1), now + timedelta(days=policy.booking_days + 2))
    times: dict[int, tuple[Span, ...]] = {}
    for visit, job, dependency in bookable:
        found = free_slots(
            visit=visit, job=job, technicians=technicians,
            bookings=[booking_of(v) for v in busy if v.id != visit.id], now=now, tz=policy.tz, windows=policy.windows,
            days_ahead=policy.booking_days, lead=policy.booking_lead,
            not_before=not_before(visit, dependency), limit=(policy.booking_days + 1) * len(policy.windows),
        )
        # offer only windows whose route can really take the visit, driving included
        feasible = await booking.feasible_slots(store, policy, now, visit, job, found)
        times[stored_id(visit)] = tuple((slot.start, slot.end) for slot in feasible)
    return times


# --- technicians ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TechnicianViewRequest:
    chat: ChatRef
    token: str | None = None  # /start <token>: whose link it is, technician's or dispatcher's
    user_id: str | None = None  # who wrote (for /board: the account bound to them)
    board: bool = False  # /board: look up the sign-in link of the dispatch board for this person


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
    brief: str = ""  # what the ERP said for whoever goes there, and the items (domain.field_work.job_brief)
    product_category: str = ""  # repairs record a fault and method from this category's lists
    masked: bool = False  # a grab offer not yet won: address is the district, no customer, no phone
    device: bool = False  # the job names a device on file: the card offers its history (issue 14 part 1)

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
    # visits that complete only with the customer's code, by how it stands: pending | locked (services.completion_codes)
    codes: Mapping[int, str] = field(default_factory=dict)
    # visits whose signature is required and missing, signed or skipped (domain.signatures.SignatureState; absent: optional)
    signatures: Mapping[int, str] = field(default_factory=dict)
    # /board: where the dispatch board opens for the writer, signed in by the chat (None: no active account is bound to them)
    board_url: str | None = None

    def visit(self, visit_id: int | None) -> TechVisit | None:
        return next((v for v in self.visits if v.id == visit_id), None)


BOARD_SIGN_IN = "/signin/webapp?next=/board"  # the sign-in page that verifies the in-chat app's data, then the board


async def _board_url(store: Store, request: TechnicianViewRequest, policy: ServicePolicy) -> str | None:
    """The dispatch board's in-chat sign-in link for the writer when an active account is bound to them (absolute with the
    shop's public address: an in-chat app opens only a full https address; the channel degrades it otherwise)."""
    if request.user_id is None:
        return None
    row = await accounts.account_of_chat_user(store, request.chat.platform, request.chat.bot, request.user_id)
    if row is None or row["disabled_at"] is not None:
        return None
    return f"{policy.public_url.rstrip('/')}{BOARD_SIGN_IN}" if policy.public_url else BOARD_SIGN_IN


async def load_technician_view(store: Store, request: TechnicianViewRequest, policy: ServicePolicy, now: datetime) -> TechnicianView:
    chat = request.chat
    token_kind = None
    if request.token:
        for purpose in ("technician", "dispatcher"):
            if await store.find_token(request.token, purpose):
                token_kind = purpose
                break
    board_url = await _board_url(store, request, policy) if request.board else None
    binding = await store.binding(chat.platform, chat.bot, chat.chat_id, "technician")
    if binding is None:
        return TechnicianView(None, "", token_kind, "", (), board_url=board_url)
    technician = await store.load(Technician, binding.subject_id)
    technician_id = stored_id(technician)
    # grab offers: the visit has no technician yet, but this one may take it
    mine, crew, offered = await store.technician_visits(technician_id, TECHNICIAN_STATUSES, now - FINISHED_SHOWN)
    visits = [*mine, *crew, *offered]
    jobs = await store.get_many(Job, (v.job_id for v in visits))
    customers = await store.get_many(Customer, (job.customer_id for job in jobs.values()))
    templates = await store.templates_for((v.kind, jobs[v.job_id].product_category) for v in visits)
    dependencies = await store.get_many(Visit, (v.depends_on_visit_id for v in visits))
    answered = await store.answered_steps(stored_id(v) for v in visits)
    leads = await store.get_many(Technician, (v.technician_id for v in crew))
    crew_ids = {v.id for v in crew}
    with_devices = await jobs_with_devices(store, jobs)  # one query: which of these jobs name a device (its history button)
    cards = []
    for visit in visits:
        job = jobs[visit.job_id]
        customer = customers[job.customer_id]
        template = templates.get((visit.kind, job.product_category))
        dependency = dependencies.get(visit.depends_on_visit_id) if visit.depends_on_visit_id else None
        # a grab offer not yet won: the district and the job only, as on its card (the winner gets the rest)
        hidden = visit.technician_id is None
        cards.append(
            TechVisit(
                stored_id(visit), visit.kind, visit.status, visit.slot_start, visit.slot_end, job.product_name,
                job.region if hidden else job.address_text, job.lat, job.lon, "" if hidden else customer.name, "" if hidden else customer.phone,
                tuple(template.parsed_steps()) if template else (),
                frozenset(answered[stored_id(visit)]),
                dependency is None or dependency.state in DONE,
                _lead_name(leads, visit) if visit.id in crew_ids else None,
                job_brief(job),
                job.product_category,
                hidden,
                visit.job_id in with_devices,
            )
        )
    codes = await code_states(store, [stored_id(v) for v in mine], technician_id, now.astimezone(policy.tz).date().isoformat())
    signatures = await signature_states(store, mine, jobs, policy.signatures)
    return TechnicianView(technician_id, technician.name, token_kind, "", tuple(cards), codes, signatures, board_url=board_url)


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
    job_id: int | None = None  # the job a button is about (address, close, reopen, note)
    rating_id: int | None = None  # the rating a low-rating or complaint alert's button is about
    choices: bool = False  # everyone skilled for the visit, with their conflicts (for an override)


@dataclass(frozen=True)
class ExceptionInfo:
    id: int
    status: str
    visit_id: int
    kind: str
    candidates: tuple[tuple[int, str], ...] | None  # technicians who could take the visit instead; None: not looked for
    acknowledged_by: str | None = None  # the dispatcher's name
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class VisitContacts:
    visit_id: int
    candidates: tuple[tuple[int, str], ...] | None  # free technicians for its slot, best first; None: not looked for
    customer: str
    customer_phone: str
    technician: str
    technician_phone: str
    job_id: int = 0
    kind: str = ""
    status: str = ""
    choices: tuple[ChoiceInfo, ...] | None = None  # everyone skilled, free first; None: not looked for
    open_seats: int = 0  # places open in its crew beside the lead (domain.field_work.open_crew_seats): a pick joins them


@dataclass(frozen=True)
class ChoiceInfo:
    """A skilled technician for a visit and what an override would accept (services.dispatching.choices)."""

    technician_id: int
    name: str
    conflicts: tuple[tuple[int | None, datetime, datetime], ...]  # (visit, start, end) they hold at that time
    off_shift: bool
    no_route: bool

    @property
    def free(self) -> bool:
        return not (self.conflicts or self.off_shift or self.no_route)


@dataclass(frozen=True)
class JobBrief:
    id: int
    status: str


@dataclass(frozen=True)
class RatingBrief:
    id: int
    visit_id: int | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class DispatcherView:
    group_id: int | None
    dispatcher_id: int | None  # the person who wrote or pressed, when registered as a dispatcher
    token_kind: str | None  # "group", "reports_group" (the managers' group) or "dispatcher" for a /start with a valid token
    exception: ExceptionInfo | None
    visit: VisitContacts | None = None
    job: JobBrief | None = None
    rating: RatingBrief | None = None
    # the region of the record a button is about, when it is outside the pressing dispatcher's regions (nothing of the
    # record is loaded then); the flow's dispatcher guard refuses with it (domain.access.region_allowed)
    out_of_region: str | None = None


async def _record_region(store: Store, request: DispatcherViewRequest) -> str | None:
    """The region of the job the button's record belongs to (exception, visit, job or rating), if it names one."""
    visit_id = request.visit_id
    if visit_id is None and request.exception_id is not None:
        report = await store.get(ProblemReport, request.exception_id)
        visit_id = report.visit_id if report else None
    if visit_id is None and request.rating_id is not None:
        rating = await store.get(Rating, request.rating_id)
        visit_id = rating.visit_id if rating else None
    job_id = request.job_id
    if visit_id is not None:
        visit = await store.get(Visit, visit_id)
        job_id = visit.job_id if visit else job_id
    job = await store.get(Job, job_id) if job_id is not None else None
    return job.region if job else None


async def load_dispatcher_view(store: Store, request: DispatcherViewRequest, policy: ServicePolicy, now: datetime) -> DispatcherView:
    chat = request.chat
    group = await store.binding(chat.platform, chat.bot, chat.chat_id, "group")
    dispatcher = await store.dispatcher_for_user(chat.platform, chat.bot, request.user_id)
    token_kind = None
    if request.token:
        for purpose in ("group", "dispatcher"):
            if link := await store.find_token(request.token, purpose):
                token_kind = purpose
                if purpose == "group":
                    # the managers' group is bound alike but told what it gets: the daily report, not alerts
                    bound = await store.get(DispatchGroup, link["subject_id"])
                    token_kind = "reports_group" if bound is not None and bound.purpose == "reports" else purpose
                break
    exception = contacts = None
    job: JobBrief | None = None
    rating: RatingBrief | None = None
    out_of_region = None
    if dispatcher is not None:
        regions = await accounts.dispatcher_regions(store, dispatcher.subject_id)
        region = await _record_region(store, request) if regions is not None else None
        out_of_region = region if region is not None and not region_allowed(regions, region) else None
    # anyone in a group can press its buttons: nothing is looked up for someone who is not a dispatcher, or for a record
    # outside the dispatcher's regions
    if dispatcher is not None and out_of_region is None:
        context = HandlerContext(store, now, policy)
        if request.exception_id is not None:
            exception = await _exception_info(context, request.exception_id, request.candidates)
        if request.visit_id is not None:
            contacts = await _visit_contacts(context, request.visit_id, request.candidates, request.choices)
        if request.job_id is not None:
            found = await store.get(Job, request.job_id)
            job = JobBrief(request.job_id, found.status) if found else None
        if request.rating_id is not None:
            rating = await _rating_brief(store, request.rating_id)
    return DispatcherView(group.subject_id if group else None, dispatcher.subject_id if dispatcher else None, token_kind, exception, contacts,
                          job, rating, out_of_region)


async def _dispatcher_name(store: Store, dispatcher_id: int | None) -> str | None:
    found = await store.get(Dispatcher, dispatcher_id) if dispatcher_id is not None else None
    return found.name if found else None


async def _rating_brief(store: Store, rating_id: int) -> RatingBrief | None:
    rating = await store.get(Rating, rating_id)
    if rating is None:
        return None
    return RatingBrief(rating_id, rating.visit_id, await _dispatcher_name(store, rating.acknowledged_by), rating.acknowledged_at)


async def _exception_info(context: HandlerContext, exception_id: int, with_candidates: bool) -> ExceptionInfo | None:
    report = await context.store.get(ProblemReport, exception_id)
    if report is None:
        return None
    visit = await context.store.load(Visit, report.visit_id)
    others = await _others_free(context, visit) if with_candidates else None
    return ExceptionInfo(exception_id, report.status, report.visit_id, visit.kind, others,
                         await _dispatcher_name(context.store, report.acknowledged_by), report.acknowledged_at)


async def _visit_contacts(context: HandlerContext, visit_id: int, with_candidates: bool, with_choices: bool = False) -> VisitContacts | None:
    store = context.store
    visit = await store.get(Visit, visit_id)
    if visit is None:
        return None
    job = await store.load(Job, visit.job_id)
    customer = await store.load(Customer, job.customer_id)
    technician = await store.get(Technician, visit.technician_id) if visit.technician_id else None
    others = await _others_free(context, visit) if with_candidates else None
    skilled = None
    if with_choices and visit.slot_start is not None:
        skilled = tuple(
            ChoiceInfo(ch.technician_id, ch.name, tuple((b.visit_id, b.start, b.end) for b in ch.conflicts), ch.off_shift, ch.no_route)
            for ch in await dispatching.choices(context, visit, job) if ch.technician_id != visit.technician_id
        )
    return VisitContacts(visit_id, others, customer.name, customer.phone,
                         technician.name if technician else "-", technician.phone if technician else "-",
                         job.id or 0, visit.kind, visit.status, skilled, open_crew_seats(visit))


async def _others_free(context: HandlerContext, visit: Visit) -> tuple[tuple[int, str], ...]:
    """Who could take the visit instead of whoever has it: the same rule every assign path checks."""
    job = await context.store.load(Job, visit.job_id)
    ranked = await candidates(context, visit, job)
    names = {t.id: t.name for t in await context.store.technicians()}
    return tuple((tid, names[tid]) for tid in ranked if tid != visit.technician_id)
