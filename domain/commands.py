"""Commands, named as imperatives: what conversation steps and the API ask the domain to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar
from datetime import date, datetime

from domain.devices import DeviceFields, SiteFields


@dataclass(frozen=True)
class ChatIdentity:
    """Who is writing from where; copied from the inbound event so handlers can bind chats."""

    platform: str
    bot: str
    chat_id: str
    user_id: str
    language: str


@dataclass(frozen=True)
class Command:
    pass


@dataclass(frozen=True)
class BindCustomer(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class BindTechnician(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class RegisterDispatcher(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class BindDispatchGroup(Command):
    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class SetLanguage(Command):
    chat: ChatIdentity
    language: str


@dataclass(frozen=True)
class BookVisit(Command):
    visit_id: int
    customer_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CancelVisitByCustomer(Command):
    visit_id: int
    customer_id: int


@dataclass(frozen=True)
class ConfirmVisit(Command):
    visit_id: int
    customer_id: int


@dataclass(frozen=True)
class RateVisit(Command):
    visit_id: int
    customer_id: int
    score: int


@dataclass(frozen=True)
class CommentRating(Command):
    visit_id: int
    customer_id: int
    comment: str


@dataclass(frozen=True)
class AcceptOffer(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class DeclineOffer(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class Depart(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class CheckIn(Command):
    visit_id: int
    technician_id: int
    latitude: float
    longitude: float
    reason: str | None = None
    kind: str | None = None  # live | static | pin_only (domain.field_work.CheckinKind)


@dataclass(frozen=True)
class StartWork(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class PhotoRef:
    platform: str
    file_id: str
    path: str


@dataclass(frozen=True)
class AnswerStep(Command):
    visit_id: int
    technician_id: int
    step_key: str
    value: str
    photo: PhotoRef | None = None


@dataclass(frozen=True)
class CompleteVisit(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class ReportException(Command):
    visit_id: int
    technician_id: int
    reason: str
    note: str = ""
    photos: tuple[PhotoRef, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class AcknowledgeException(Command):
    exception_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class ReassignVisit(Command):
    exception_id: int
    technician_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class CancelVisitByDispatcher(Command):
    exception_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class AcknowledgeAlert(Command):
    """A dispatcher saw an alert that needs no change (e.g. a low rating)."""

    rating_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class AssignVisit(Command):
    """A dispatcher (or the API, with dispatcher_id None) picks the technician for a visit."""

    visit_id: int
    technician_id: int
    dispatcher_id: int | None


@dataclass(frozen=True)
class MarkContacted(Command):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class TrackLocation(Command):
    technician_id: int
    latitude: float
    longitude: float


@dataclass(frozen=True)
class ExtendSla(Command):
    visit_id: int
    stage: str
    minutes: int
    dispatcher_id: int


@dataclass(frozen=True)
class SetDuty(Command):
    """A technician (or the back office) says they stop or start taking visits."""

    technician_id: int
    on_duty: bool


# --- nothing left unowned (issue 10) --------------------------------------------------------------


@dataclass(frozen=True)
class ReportNoSlotFits(Command):
    """The customer's booking found no time: the dispatchers are told at once."""

    visit_id: int
    customer_id: int


@dataclass(frozen=True)
class ForceAssignVisit(Command):
    """Assign a technician who is not free at the visit's time: an explicit, recorded override of the candidates rule."""

    visit_id: int
    technician_id: int
    dispatcher_id: int | None  # None: the API


@dataclass(frozen=True)
class MoveVisit(Command):
    """A dispatcher (or the API) moves a visit to another window; the customer is told."""

    visit_id: int
    start: datetime
    end: datetime
    dispatcher_id: int | None


@dataclass(frozen=True)
class CorrectAddress(Command):
    job_id: int
    address: str
    lat: float | None
    lon: float | None
    dispatcher_id: int | None


@dataclass(frozen=True)
class CancelVisitAsDispatcher(Command):
    """Cancel a visit from an alert that is not a problem report (no technician, not booked, no slot)."""

    visit_id: int
    dispatcher_id: int | None


@dataclass(frozen=True)
class CloseJob(Command):
    job_id: int
    reason: str
    dispatcher_id: int | None


@dataclass(frozen=True)
class ReopenJob(Command):
    job_id: int
    reason: str
    dispatcher_id: int | None


@dataclass(frozen=True)
class AddNote(Command):
    job_id: int
    text: str
    dispatcher_id: int


@dataclass(frozen=True)
class HandBackVisit(Command):
    """A technician gives back one accepted visit, saying why."""

    visit_id: int
    technician_id: int
    reason: str


@dataclass(frozen=True)
class RequestAssistance(Command):
    """A technician on a visit asks for another pair of hands."""

    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class EndForReturn(Command):
    """The visit ends needing a return visit (a ``domain.field_work.ReturnReason``, and words for "other")."""

    visit_id: int
    technician_id: int
    reason: str
    note: str = ""


@dataclass(frozen=True)
class RecordRepair(Command):
    """A repair's fault category and method, recorded just before it is completed."""

    visit_id: int
    technician_id: int
    fault: str
    method: str


@dataclass(frozen=True)
class ReportLate(Command):
    """The technician says they will arrive this many minutes late."""

    visit_id: int
    technician_id: int
    minutes: int


# --- the customer's side (issue 10) ---------------------------------------------------------------


@dataclass(frozen=True)
class RebookVisit(Command):
    """The customer moves a booked visit to [start, end); its dependant too when ``dependant_id`` is set (to its
    own new window). Nothing moves unless everything can."""

    visit_id: int
    customer_id: int
    start: datetime
    end: datetime
    dependant_id: int | None = None
    dependant_start: datetime | None = None
    dependant_end: datetime | None = None


@dataclass(frozen=True)
class ConfirmAppointmentTime(Command):
    """The customer confirms the booked time (the appointment reminder's Confirm)."""

    visit_id: int
    customer_id: int


@dataclass(frozen=True)
class ForwardCustomerText(Command):
    """A customer's new phone number or address, for the dispatchers of their job. Anything else a customer writes to
    people (a wish to talk to someone, a complaint, what nothing understood) joins a relay thread: RelayToPeople."""

    customer_id: int
    job_id: int
    visit_id: int | None
    topic: str  # one of CONTACT_CHANGES
    text: str

    def __post_init__(self) -> None:
        if self.topic not in CONTACT_CHANGES:
            raise ValueError(f"{self.topic!r} is not a contact change; other texts to people go to a relay thread")


CONTACT_CHANGES = ("change_contact", "change_address")


@dataclass(frozen=True)
class RelayToPeople(Command):
    """Free text (or a photo) a customer or technician sends to people: it joins the writer's open relay thread, or opens
    one addressed by the rule in domain/relay.py. ``thread_id``: the thread the writer is answering in (None: their open one)."""

    origin: str  # domain.relay.Origin
    origin_id: int
    chat: ChatIdentity
    topic: str  # domain.relay.Topic
    text: str
    photo: PhotoRef | None = None
    thread_id: int | None = None


@dataclass(frozen=True)
class AnswerThread(Command):
    """A technician's or dispatcher's answer in a relay thread, for the writer who opened it."""

    thread_id: int
    author: str  # domain.relay.Author
    author_id: int | None
    text: str
    photo: PhotoRef | None = None


@dataclass(frozen=True)
class CloseThreads(Command):
    """The writer is done talking: their next free text opens a new thread, addressed afresh."""

    platform: str
    bot: str
    chat_id: str


@dataclass(frozen=True)
class JoinCrew(Command):
    """A technician answers a colleague's call for help on a visit."""

    visit_id: int
    technician_id: int


# --- status callbacks to order sources (issue 13 part 5) ------------------------------------------


@dataclass(frozen=True)
class SetCallbackEndpoint(Command):
    """Where an order source hears about its jobs' milestones, and the secret that signs what it hears."""

    source: str
    url: str
    secret: str


@dataclass(frozen=True)
class RemoveCallbackEndpoint(Command):
    source: str


@dataclass(frozen=True)
class ParkCallback(Command):
    """The relay gave up on a callback (too many failures, or its source has no endpoint any more): tell the dispatchers."""

    callback_id: int
    reason: str


@dataclass(frozen=True)
class ResendCallback(Command):
    """Send a parked callback again, and the ones parked behind it for its job, in their order."""

    callback_id: int


# --- completion codes and the delivered-item check (issue 13 part 6) -------------------------------


@dataclass(frozen=True)
class CompleteWithCode(Command):
    """The technician completes a visit with the code its customer gave them (``domain.completion_codes.normalise``d)."""

    visit_id: int
    technician_id: int
    code: str

    # the engine blanks the typed text in the inbox row of the update that carried it (conversations.engine)
    secret_input: ClassVar[bool] = True

    def __repr__(self) -> str:
        # a command may be logged with its failure: never with the code
        return f"CompleteWithCode(visit_id={self.visit_id}, technician_id={self.technician_id}, code='***')"


@dataclass(frozen=True)
class ResendCompletionCode(Command):
    """A new code for the visit's customer (the old one stops working). Exactly one of who asks is set; a dispatcher's
    request also lifts a code's lock."""

    visit_id: int
    customer_id: int | None = None
    technician_id: int | None = None
    dispatcher_id: int | None = None


@dataclass(frozen=True)
class SendMyCompletionCodes(Command):
    """The customer's /code: their current code for each visit under way that needs one, sent to their own chat (codes are
    kept only as hashes, so "current" is a fresh one in place of the old; services.completion_codes limits how often)."""

    customer_id: int


@dataclass(frozen=True)
class CompleteForTechnician(Command):
    """A dispatcher completes a visit for its technician without the code (locked out, or the customer cannot get it)."""

    visit_id: int
    dispatcher_id: int


@dataclass(frozen=True)
class CheckDeliveredItems(Command):
    """The customer's marks for a delivery's items, in the order ``domain.completion_codes.delivered_items`` lists them."""

    visit_id: int
    customer_id: int
    marks: tuple[str, ...]


# --- order intake (issue 13 part 4) ---------------------------------------------------------------


@dataclass(frozen=True)
class PlaceOrder(Command):
    """An order as a source sent it, already in the order model's shape (services/intake.py reads it): new, a repeat,
    or an update of the same source + external_ref."""

    content: dict[str, object] = field(hash=False)


@dataclass(frozen=True)
class CancelOrder(Command):
    source: str
    external_ref: str
    reason: str = ""


@dataclass(frozen=True)
class ConfirmOrder(Command):
    """The merchant confirms an order waiting in the review queue, with the service price in minor units."""

    source: str
    external_ref: str
    price_minor: int | None = None
    currency: str | None = None
    note: str = ""


@dataclass(frozen=True)
class RejectOrder(Command):
    source: str
    external_ref: str
    reason: str


@dataclass(frozen=True)
class SetCompletionCodePolicy(Command):
    """An order source's own completion-code policy (``domain.completion_codes.CodePolicy`` text); None: the shop's default."""

    source: str
    policy: str | None


# --- devices, QR codes and repair requests (issue 14 parts 1-3) -----------------------------------


@dataclass(frozen=True)
class RegisterDevice(Command):
    """A device from the API or an import row: the customer by phone (made if new), its site, and what it is."""

    customer_phone: str
    customer_name: str
    customer_language: str
    site: SiteFields
    fields: DeviceFields
    via: str = "api"  # api | import


@dataclass(frozen=True)
class RetireDevice(Command):
    device_id: int
    reason: str = ""


@dataclass(frozen=True)
class RenewDeviceCode(Command):
    """Revoke a device's (or a site's) QR code and make a new one: printed stickers with the old one stop working."""

    purpose: str  # device | site
    subject_id: int


@dataclass(frozen=True)
class OpenDeviceCode(Command):
    """A scanned QR code, from the owner's own chat: checked, never binding a chat (a sticker is seen by anyone)."""

    token: str
    chat: ChatIdentity


@dataclass(frozen=True)
class ReportFaultOnCode(Command):
    """Someone not (known as) the owner scanned a device's or a site's code and describes a fault: the dispatchers are
    asked to check it with the owner; nothing of the owner is shown to the reporter and no chat is bound."""

    token: str
    chat: ChatIdentity
    reporter: str  # the name their messenger shows
    description: str


@dataclass(frozen=True)
class VerifyDeviceOwner(Command):
    """A chat bound to nobody that scanned a code says it is the owner's and proves it with the phone number on file:
    ``via`` whatsapp (the chat id is the number), contact (Telegram: the sender's own contact) or typed. A match binds
    the chat to the owner; a wrong number is counted (``domain.owner_check.MAX_TRIES_PER_DAY``)."""

    token: str
    chat: ChatIdentity
    phone: str
    via: str  # whatsapp | contact | typed

    @property
    def secret_input(self) -> bool:
        # a typed number is personal data: the engine blanks the update's text in the inbox row (conversations.engine)
        return self.via == "typed"

    def __repr__(self) -> str:
        # a command may be logged with its failure: never with the number
        return f"VerifyDeviceOwner(chat={self.chat.platform}:{self.chat.bot}, via={self.via}, phone='***')"


@dataclass(frozen=True)
class RequestRepair(Command):
    """A customer's repair (or maintenance) request from chat: a job of that kind for a device of theirs, or for a
    product they describe, at the device's site (else their latest order's address)."""

    customer_id: int
    kind: str  # repair | inspection
    device_id: int | None
    product: str
    category: str
    description: str
    urgency: str  # normal | urgent
    days: tuple[str, ...] = ()  # preferred days, ISO dates
    photos: tuple[PhotoRef, ...] = ()
    voice_notes: tuple[PhotoRef, ...] = ()  # kept like photos (purpose "voice")


# --- signatures (issue 12 part 6) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSignature(Command):
    """The technician asks for a single-use signature pad link for the customer (domain/signatures.py)."""

    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class CaptureSignature(Command):
    """The pad saved the customer's signature through the link ``request_id`` (the PNG already checked at the edge)."""

    request_id: int
    png: bytes
    width: int
    height: int

    def __repr__(self) -> str:
        # a command may be logged with its failure: never with the image's bytes
        return f"CaptureSignature(request_id={self.request_id}, {self.width}x{self.height}, {len(self.png)} bytes)"


@dataclass(frozen=True)
class SkipSignature(Command):
    """The customer cannot sign (not there, unwilling): the technician says why, and completion goes on without it."""

    visit_id: int
    technician_id: int
    reason: str


@dataclass(frozen=True)
class SetSignaturePolicy(Command):
    """An order source's own signature policy (``domain.signatures.SignaturePolicy`` text); None: the shop's default."""

    source: str
    policy: str | None


# --- preventive maintenance (issue 14 part 8) ----------------------------------------------------------------------


@dataclass(frozen=True)
class CreateMaintenancePlan(Command):
    """A plan on a site: inspections by ``rule`` (an RRULE) from ``starts_on``, created ``lead_days`` ahead."""

    name: str
    site_id: int
    rule: str
    starts_on: date
    lead_days: int = 14
    device_ids: tuple[int, ...] = ()
    technician_id: int | None = None
    reviewer_dispatcher_id: int | None = None
    duration_minutes: int | None = None
    team_ids: tuple[int, ...] = ()  # technicians offered each inspection together; excludes technician_id


@dataclass(frozen=True)
class GenerateInspections(Command):
    plan_id: int


@dataclass(frozen=True)
class StopMaintenancePlan(Command):
    plan_id: int


# --- fees (issue 14 part 6) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PutPriceEntry(Command):
    """One price-list entry, replacing the one of the same service kind × category × region × urgency ("any" matches all)."""

    service_kind: str
    product_category: str
    region: str
    urgency: str
    pricing: str
    unit_price_minor: int
    currency: str
    hour_step_minutes: int = 30
    name: str = ""


@dataclass(frozen=True)
class IssueBill(Command):
    """Price a completed visit's bill again (one that had no price, after the price list got one)."""

    visit_id: int


@dataclass(frozen=True)
class RecordPayment(Command):
    """A payment on a visit's bill, by the back office (``technician_id`` None) or by its technician in chat."""

    visit_id: int
    amount_minor: int
    currency: str
    method: str
    reference: str | None
    recorded_by: str
    technician_id: int | None = None


# --- parts and van stock, and what a repair records at completion (issue 14 parts 4-5) --------------------------------


@dataclass(frozen=True)
class SavePart(Command):
    """A catalogue entry, created or (same code) updated; money in minor units (``domain.parts.PartSpec``)."""

    code: str
    name: str
    unit: str
    price_minor: int
    currency: str
    category: str = ""
    compatible: tuple[str, ...] = ()
    min_stock: int = 0


@dataclass(frozen=True)
class MoveStock(Command):
    """One movement of stock (``domain.parts.MovementKind``) between locations (``warehouse``, ``van:<technician id>``)."""

    part_id: int
    kind: str
    quantity: int
    source: str | None = None
    target: str | None = None
    note: str = ""
    actor: str = "api"


@dataclass(frozen=True)
class RequestPart(Command):
    """A technician asks for parts for their van; a dispatcher approves (issued from the warehouse) or declines."""

    technician_id: int
    part_id: int
    quantity: int
    note: str = ""


@dataclass(frozen=True)
class DecidePartRequest(Command):
    request_id: int
    dispatcher_id: int | None
    approve: bool
    reason: str = ""


@dataclass(frozen=True)
class UsePartOnRepair(Command):
    """A part from the technician's van fitted on a repair in progress, recorded now (before the price is settled with
    the customer, say); the repair's completion record lists it without taking it from the van again."""

    visit_id: int
    technician_id: int
    part_id: int
    quantity: int


@dataclass(frozen=True)
class PutBackPart(Command):
    """A part recorded as used on a repair in progress, not fitted after all: back into the technician's van."""

    visit_id: int
    technician_id: int
    part_id: int
    quantity: int


@dataclass(frozen=True)
class RecordRepairCompletion(Command):
    """What a repair visit found and did (from its product category's fault tree), the parts it used from the
    technician's van, and how it ends: fixed (completed next) or needing a return visit."""

    visit_id: int
    technician_id: int
    cause: str
    fault: str
    method: str
    outcome: str  # domain.parts.Outcome
    parts: tuple[tuple[int, int], ...] = ()  # (part id, quantity)
    note: str = ""


@dataclass(frozen=True)
class SetFaultTree(Command):
    """A product category's fault tree ("*": every category without its own); None: back to the default."""

    product_category: str
    tree: dict[str, object] | None


@dataclass(frozen=True)
class RecordPaymentTyped(Command):
    """What a technician typed for a payment ("120.50", then a reference if any), read in the bill's currency."""

    visit_id: int
    technician_id: int
    method: str
    text: str


# --- price increases and discounts (issue 14 part 6) -------------------------------------------------------------------


@dataclass(frozen=True)
class CheckPriceIncrease(Command):
    """Whether the technician may ask for an increase on the visit now (theirs, under way, none open), and with
    ``amount_text`` whether it reads as an amount in the shop's currency within range; changes nothing."""

    visit_id: int
    technician_id: int
    amount_text: str | None = None


@dataclass(frozen=True)
class RequestPriceIncrease(Command):
    """A technician asks for a price increase on their visit under way: the amount as typed (read in the bill's
    currency), why, and photos of the cause."""

    visit_id: int
    technician_id: int
    amount_text: str
    reason: str
    photos: tuple[PhotoRef, ...] = ()


@dataclass(frozen=True)
class DecidePriceIncrease(Command):
    """A dispatcher or a manager approves or declines an increase. ``chat_user`` (platform, bot, user id): who pressed
    in a group chat, whose account says whether they are a manager; ``manager``: the API caller holds fees:manage."""

    change_id: int
    approve: bool
    dispatcher_id: int | None = None
    chat_user: tuple[str, str, str] | None = None
    manager: bool = False
    actor: str = ""


@dataclass(frozen=True)
class AnswerPriceIncrease(Command):
    """The customer agrees to an approved increase, or declines it."""

    change_id: int
    customer_id: int
    agree: bool


@dataclass(frozen=True)
class GiveDiscount(Command):
    """A manager's discount on a visit's priced bill: an amount or a percent of its total, with the reason."""

    visit_id: int
    amount_minor: int | None
    percent: int | None
    reason: str
    actor: str


# --- review periods and settlement (issue 14 part 7) ----------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseSettlement(Command):
    """A dispatcher (or the back office) releases a visit's frozen fee."""

    visit_id: int
    by: str  # "dispatcher:<id>" or the API principal
    dispatcher_id: int | None = None


@dataclass(frozen=True)
class AdjustSettlement(Command):
    """Set what a visit's fee pays the technician (minor units of the bill's currency), with the reason; releases it."""

    visit_id: int
    amount_minor: int
    reason: str
    by: str
    dispatcher_id: int | None = None


@dataclass(frozen=True)
class AdjustSettlementTyped(Command):
    """What a dispatcher typed in the group for an adjustment ("80 the customer's complaint was half right"), read in
    the bill's currency."""

    visit_id: int
    text: str
    dispatcher_id: int


@dataclass(frozen=True)
class CloseSettlementMonth(Command):
    """Make the month's statements: one per technician of everything ready in it not yet on a statement."""

    period: str  # YYYY-MM
    by: str


@dataclass(frozen=True)
class SetPayoutRule(Command):
    """A technician's settlement cycle and share of billed work; None: the shop's default."""

    technician_id: int
    cycle: str | None
    share_percent: int | None


# --- the gaps of issue 14: a customer's answer to a price increase recorded by the shop --------------------------------


@dataclass(frozen=True)
class RecordPriceIncreaseAnswer(Command):
    """The customer's answer to an approved increase, taken by the shop (by phone: no chat, or they called): a
    dispatcher's press in the region's group (``dispatcher_id``, region rule) or the back office's API call (``actor``).
    It counts as the customer's own answer; the timeline names who recorded it."""

    change_id: int
    agree: bool
    dispatcher_id: int | None = None
    actor: str = ""
