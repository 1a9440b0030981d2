"""Button actions as typed values, and the one codec between them and the short data strings buttons carry."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime, timezone
from typing import Any

from domain.completion_codes import MAX_CHECKED_ITEMS, ItemMark
from domain.devices import URGENCIES
from domain.field_work import ReturnReason
from domain.fees import PaymentMethod
from domain.model import MAX_ID, ExceptionReason, Language
from domain.sla import STAGES

MAX_TIMESTAMP = 2**33  # seconds since 1970: beyond the year 2200, so no real slot is ever cut off
MAX_INDEX = 99  # checklist steps and choices are counted in tens (the API allows 50 steps of 10 choices)
MAX_SCORE = 5


@dataclass(frozen=True)
class Action:
    """What a button asks for. Button data comes from the client and can be forged: every value in an
    action has been range-checked by ``decode``, but whether it names anything is the step's to check."""


# --- customer -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Book(Action):
    visit_id: int


@dataclass(frozen=True)
class PickSlot(Action):
    visit_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Reschedule(Action):
    visit_id: int


@dataclass(frozen=True)
class CancelVisit(Action):
    visit_id: int


@dataclass(frozen=True)
class ConfirmCancel(Action):
    visit_id: int


@dataclass(frozen=True)
class KeepVisit(Action):
    pass


@dataclass(frozen=True)
class ConfirmAppointment(Action):
    visit_id: int


@dataclass(frozen=True)
class ConfirmDone(Action):
    visit_id: int


@dataclass(frozen=True)
class AskToRate(Action):
    visit_id: int


@dataclass(frozen=True)
class Rate(Action):
    visit_id: int
    score: int


@dataclass(frozen=True)
class SkipComment(Action):
    pass


@dataclass(frozen=True)
class PickDay(Action):
    """A day of the booking horizon for a visit (to book or to move it): its windows are shown next."""

    visit_id: int
    day: date


@dataclass(frozen=True)
class MoreDays(Action):
    """Another page of the day picker, when the horizon has more days than one keyboard shows."""

    visit_id: int
    page: int


@dataclass(frozen=True)
class MoveBoth(Action):
    """Move a visit to [start, end) and its dependant (the installation after it) too: the days the dependant can go on."""

    visit_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class MoveBothDay(Action):
    """As MoveBoth, with the dependant's day picked: that day's windows."""

    visit_id: int
    start: datetime
    end: datetime
    day: date


@dataclass(frozen=True)
class KeepBoth(Action):
    """Leave a visit and its dependant where they are (the move is dropped)."""

    visit_id: int


# --- technician -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accept(Action):
    visit_id: int


@dataclass(frozen=True)
class Decline(Action):
    visit_id: int


@dataclass(frozen=True)
class OnMyWay(Action):
    visit_id: int


@dataclass(frozen=True)
class Arrived(Action):
    visit_id: int


@dataclass(frozen=True)
class StartChecklist(Action):
    visit_id: int


@dataclass(frozen=True)
class ContinueChecklist(Action):
    visit_id: int


@dataclass(frozen=True)
class Answer(Action):
    visit_id: int
    step: int  # the checklist step's index
    choice: str  # "yes", "no", or the index of a choice


@dataclass(frozen=True)
class Complete(Action):
    visit_id: int


@dataclass(frozen=True)
class Contacted(Action):
    visit_id: int


@dataclass(frozen=True)
class ReportProblem(Action):
    visit_id: int


@dataclass(frozen=True)
class PickReason(Action):
    visit_id: int
    reason: ExceptionReason


@dataclass(frozen=True)
class SkipNote(Action):
    pass


@dataclass(frozen=True)
class SendReport(Action):
    pass


@dataclass(frozen=True)
class VisitOptions(Action):
    """The less common things a technician can do with a visit: hand it back, ask for help, end it needing a return."""

    visit_id: int


@dataclass(frozen=True)
class HandBack(Action):
    visit_id: int


@dataclass(frozen=True)
class AskHelp(Action):
    visit_id: int


@dataclass(frozen=True)
class JoinCrew(Action):
    """Answer a colleague's call for help: join the visit's crew."""

    visit_id: int


@dataclass(frozen=True)
class NeedReturn(Action):
    visit_id: int


@dataclass(frozen=True)
class PickReturnReason(Action):
    visit_id: int
    return_reason: ReturnReason


@dataclass(frozen=True)
class PickFault(Action):
    """A repair's fault category, by its index in the product category's list (``ServicePolicy.repair_codes``)."""

    visit_id: int
    fault: int


@dataclass(frozen=True)
class PickMethod(Action):
    """A repair's method, with the fault picked before it: both are recorded as the visit is completed."""

    visit_id: int
    fault: int
    method: int


# --- parts, van stock and the repair's completion record (issue 14 parts 4-5) ------------------------


@dataclass(frozen=True)
class VanStock(Action):
    """The technician's van stock (as /stock)."""


@dataclass(frozen=True)
class PartRequestMenu(Action):
    """A page of the catalogue to request a part from."""

    page: int


@dataclass(frozen=True)
class PartRequestPick(Action):
    part_id: int


@dataclass(frozen=True)
class PartRequestQty(Action):
    part_id: int
    quantity: int


@dataclass(frozen=True)
class UsePartMenu(Action):
    """Technician: the van's parts to fit on this repair now, and those used on it so far (to put one back)."""

    visit_id: int


@dataclass(frozen=True)
class UsePartPick(Action):
    """Technician: this part from the van on the repair (how many is picked next)."""

    visit_id: int
    part_id: int


@dataclass(frozen=True)
class UsePartQty(Action):
    """Technician: record this many of the part as used on the repair now."""

    visit_id: int
    part_id: int
    quantity: int


@dataclass(frozen=True)
class PutBackPartPress(Action):
    """Technician: this many of a part used on the repair were not fitted after all: back into the van."""

    visit_id: int
    part_id: int
    quantity: int


@dataclass(frozen=True)
class ApprovePartRequest(Action):
    request_id: int


@dataclass(frozen=True)
class DeclinePartRequest(Action):
    request_id: int


@dataclass(frozen=True)
class RepairCause(Action):
    """The top of the fault tree (natural wear, improper use, damage by a person …), by index."""

    visit_id: int
    cause: int


@dataclass(frozen=True)
class RepairFault(Action):
    """A specific fault under the cause picked before, by index."""

    visit_id: int
    fault: int


@dataclass(frozen=True)
class RepairMethod(Action):
    visit_id: int
    method: int


@dataclass(frozen=True)
class RepairPart(Action):
    """One more of a part from the van on this repair."""

    visit_id: int
    part_id: int


@dataclass(frozen=True)
class RepairPartsClear(Action):
    visit_id: int


@dataclass(frozen=True)
class RepairPartsDone(Action):
    visit_id: int


@dataclass(frozen=True)
class RepairOutcomePick(Action):
    """Fixed, or a return visit (and why: a part missing, more work)."""

    visit_id: int
    outcome: str


@dataclass(frozen=True)
class RepairBack(Action):
    """One step back in the repair's record."""

    visit_id: int


@dataclass(frozen=True)
class RepairShow(Action):
    """The repair's record where it stands (after a note was typed, or a part requested meanwhile)."""

    visit_id: int


# --- dispatchers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnException(Action):
    """A button on a problem report's alert."""

    exception_id: int


@dataclass(frozen=True)
class Acknowledge(OnException):
    pass


@dataclass(frozen=True)
class Reassign(OnException):
    pass


@dataclass(frozen=True)
class ReassignTo(OnException):
    technician_id: int


@dataclass(frozen=True)
class CancelReported(OnException):
    pass


@dataclass(frozen=True)
class ConfirmCancelReported(OnException):
    pass


@dataclass(frozen=True)
class KeepReported(Action):
    pass


@dataclass(frozen=True)
class AcknowledgeRating(Action):
    rating_id: int


@dataclass(frozen=True)
class Assign(Action):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class ReassignLate(Action):
    """A deadline alert's Reassign: pick someone else for the visit."""

    visit_id: int


@dataclass(frozen=True)
class ExtendDeadline(Action):
    visit_id: int
    stage: str


@dataclass(frozen=True)
class CallDetails(Action):
    visit_id: int


# dispatchers: nothing left unowned (alerts about a visit, a job, a complaint)


@dataclass(frozen=True)
class AssignAnyone(Action):
    """List everyone skilled for the visit, free first, each busy one with what they hold then."""

    visit_id: int


@dataclass(frozen=True)
class AssignBusy(Action):
    """A technician who is not free was picked: show the conflict and ask to override."""

    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class ConfirmOverride(Action):
    visit_id: int
    technician_id: int


@dataclass(frozen=True)
class MoveVisitMenu(Action):
    """Reschedule a visit from the group: the days of the horizon."""

    visit_id: int


@dataclass(frozen=True)
class MoveVisitDay(Action):
    visit_id: int
    day_start: datetime  # the day's local midnight


@dataclass(frozen=True)
class MoveVisitTo(Action):
    visit_id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CancelFromAlert(Action):
    visit_id: int


@dataclass(frozen=True)
class ConfirmCancelFromAlert(Action):
    visit_id: int


@dataclass(frozen=True)
class FixAddress(Action):
    """The presser's next text in the group is the job's corrected address (optionally with "lat,lon")."""

    job_id: int


@dataclass(frozen=True)
class CloseJobAsk(Action):
    """The presser's next text is the reason, and the job closes."""

    job_id: int


@dataclass(frozen=True)
class ReopenJobAsk(Action):
    job_id: int


@dataclass(frozen=True)
class NoteAsk(Action):
    job_id: int


@dataclass(frozen=True)
class NeverMind(Action):
    """Drop what a dispatcher's button started (a choice, a confirmation, an awaited text)."""


@dataclass(frozen=True)
class ResendParkedCallback(Action):
    """Send a parked status callback to its order source again (and those parked behind it for the job)."""

    callback_id: int


# --- relay threads (customer, technician and dispatcher chats) -------------------------------------


@dataclass(frozen=True)
class AnswerInThread(Action):
    """Answer in a relay thread: the presser's next text (or photo) goes to the other side through the bot."""

    thread_id: int


@dataclass(frozen=True)
class WriteInThread(Action):
    """The writer goes on in the thread people answered them in: their next texts and photos join it."""

    thread_id: int


@dataclass(frozen=True)
class DoneTalking(Action):
    """The writer is done talking to people: back to the buttons."""


# --- completion codes and the delivered-item check (issue 13 part 6) -----------------------------------


@dataclass(frozen=True)
class ResendCode(Action):
    """A new completion code for the visit's customer (pressed by the customer, or by the technician waiting for it)."""

    visit_id: int


@dataclass(frozen=True)
class TickItem(Action):
    """The customer's mark for one delivered item, by its index in the delivery's list."""

    visit_id: int
    index: int
    mark: ItemMark


@dataclass(frozen=True)
class SendItemCheck(Action):
    visit_id: int


@dataclass(frozen=True)
class SendItemMarks(Action):
    """The customer sends their delivered-item check as its summary showed it: the marks ride on the button, so a step
    taken meanwhile (confirming the visit, say) cannot drop them."""

    visit_id: int
    marks: tuple[ItemMark, ...]


@dataclass(frozen=True)
class RestartItemCheck(Action):
    visit_id: int


@dataclass(frozen=True)
class CompleteForThem(Action):
    """A dispatcher completes a visit for its technician, without the code (a lockout alert's way out)."""

    visit_id: int


@dataclass(frozen=True)
class NewCodeFromAlert(Action):
    """A dispatcher sends the customer a new code, which also lifts the code's lock."""

    visit_id: int


# --- devices and repair requests (issue 14 parts 1-3) ----------------------------------------------


@dataclass(frozen=True)
class DeviceMenu(Action):
    """A device's menu: report a fault, see its history, book maintenance."""

    device_id: int


@dataclass(frozen=True)
class ReportFault(Action):
    device_id: int


@dataclass(frozen=True)
class DeviceHistory(Action):
    device_id: int


@dataclass(frozen=True)
class BookMaintenance(Action):
    device_id: int


@dataclass(frozen=True)
class OtherProduct(Action):
    """A repair for a product not among the customer's devices: they describe it."""


@dataclass(frozen=True)
class RepairMediaDone(Action):
    """No more photos for the repair request."""


@dataclass(frozen=True)
class RepairUrgency(Action):
    level: str  # domain.devices.URGENCIES


@dataclass(frozen=True)
class RepairDay(Action):
    """Prefer (or no longer prefer) a day for the repair."""

    day: date


@dataclass(frozen=True)
class RepairSend(Action):
    """Send the repair request as it stands."""


# --- every chat -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChooseLanguage(Action):
    language: Language


# --- the codec ------------------------------------------------------------------------------------


# --- signatures (issue 12 part 6) ---------------------------------------------------------------------


@dataclass(frozen=True)
class AskSignature(Action):
    """Technician: a single-use signature pad link for the customer of this visit."""

    visit_id: int


@dataclass(frozen=True)
class CannotSign(Action):
    """Technician: the customer is not available to sign (the reason is typed next)."""

    visit_id: int


# --- fees (issue 14 part 6) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordPaymentAsk(Action):
    """Technician: record what the customer paid on this visit's bill (the method is picked next)."""

    visit_id: int


@dataclass(frozen=True)
class PickPaymentMethod(Action):
    """Technician: how the customer paid (the amount is typed next)."""

    visit_id: int
    paid_by: PaymentMethod


# --- price increases (issue 14 part 6) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceIncreaseAsk(Action):
    """Technician: ask for a price increase on this visit under way (the amount is typed next)."""

    visit_id: int


@dataclass(frozen=True)
class PriceIncreaseSend(Action):
    """Technician: send the increase as the summary shows it."""


@dataclass(frozen=True)
class PriceIncreaseCancel(Action):
    """Technician: drop the increase being written."""


@dataclass(frozen=True)
class ApprovePriceIncrease(Action):
    """A dispatcher of the job's region approves an increase (above the managers' threshold it goes on to them)."""

    request_id: int


@dataclass(frozen=True)
class DeclinePriceIncrease(Action):
    request_id: int


@dataclass(frozen=True)
class ManagerApprovePriceIncrease(Action):
    """A manager, in the managers' group, approves an increase above the threshold."""

    request_id: int


@dataclass(frozen=True)
class ManagerDeclinePriceIncrease(Action):
    request_id: int


@dataclass(frozen=True)
class AgreePriceIncrease(Action):
    """Customer: agree to the approved increase."""

    request_id: int


@dataclass(frozen=True)
class RefusePriceIncrease(Action):
    """Customer: decline the increase (the bill stays as it was)."""

    request_id: int


# --- the device's history for the repairer (issue 14 part 1) ---------------------------------------------------------


@dataclass(frozen=True)
class VisitDeviceHistory(Action):
    """Technician: the history of the device this offered or assigned visit is for."""

    visit_id: int


@dataclass(frozen=True)
class VisitDevicePhotos(Action):
    """Technician: the photos of that device's earlier visits."""

    visit_id: int


@dataclass(frozen=True)
class BackToVisit(Action):
    """Technician: this visit's card again, with its next step."""

    visit_id: int


@dataclass(frozen=True)
class ScanReportCancel(Action):
    """Someone who scanned another customer's code: not now (nothing is sent)."""


@dataclass(frozen=True)
class OwnerCheckStart(Action):
    """Someone who scanned a code says it is theirs: they prove it with the phone number on file (domain.owner_check)."""


@dataclass(frozen=True)
class OwnerCheckCancel(Action):
    """Not now: the owner check is dropped (nothing bound, nothing counted)."""


# --- review periods and settlement (issue 14 part 7) ---------------------------------------------------------------


@dataclass(frozen=True)
class SettleRelease(Action):
    """Dispatcher: release this visit's frozen fee as it is."""

    visit_id: int


@dataclass(frozen=True)
class SettleAdjust(Action):
    """Dispatcher: set what this visit's fee pays (the amount and the reason are typed next)."""

    visit_id: int


# --- the gaps of issue 14: a customer's answer to a price increase, taken by phone ---------------------------------


@dataclass(frozen=True)
class PhoneAgreedPriceIncrease(Action):
    """Dispatcher: the customer (no chat, or called) agreed to the approved increase by phone."""

    request_id: int


@dataclass(frozen=True)
class PhoneRefusedPriceIncrease(Action):
    """Dispatcher: the customer declined the approved increase by phone (the bill stays as it was)."""

    request_id: int


@dataclass(frozen=True)
class Part:
    """One value after the prefix: how its text is read back (None: not a valid value), how it is written, and its longest text."""

    read: Callable[[str], Any]
    write: Callable[[Any], str]
    longest: str


def number(low: int, high: int) -> Part:
    def read(text: str) -> int | None:
        # ASCII digits only: no sign, no spaces, no exponent, and never a number the database cannot hold
        if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
            return None
        value = int(text)
        return value if low <= value <= high else None

    return Part(read, str, str(high))


def member_of(kind: type[enum.Enum]) -> Part:
    by_value = {str(member.value): member for member in kind}
    return Part(by_value.get, lambda member: str(member.value), max(by_value, key=len))


def item_marks() -> Part:
    """A delivered-item check's marks, a letter an item (r, m, d): every item of the longest check in one button."""
    letters = {member.value[0]: member for member in ItemMark}

    def read(text: str) -> tuple[ItemMark, ...] | None:
        if not 1 <= len(text) <= MAX_CHECKED_ITEMS or any(letter not in letters for letter in text):
            return None
        return tuple(letters[letter] for letter in text)

    return Part(read, lambda marks: "".join(mark.value[0] for mark in marks), "r" * MAX_CHECKED_ITEMS)


def one_of(values: tuple[str, ...]) -> Part:
    return Part(lambda text: text if text in values else None, str, max(values, key=len))


ID = number(1, MAX_ID)
INDEX = number(0, MAX_INDEX)
SCORE = number(1, MAX_SCORE)
SECONDS = number(0, MAX_TIMESTAMP)


def _read_moment(text: str) -> datetime | None:
    seconds = SECONDS.read(text)
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


def _read_choice(text: str) -> str | None:
    return text if text in ("yes", "no") or INDEX.read(text) is not None else None


MOMENT = Part(_read_moment, lambda moment: str(int(moment.timestamp())), SECONDS.longest)
MAX_DAY = date(2200, 1, 1).toordinal()  # as far as moments go


def _read_day(text: str) -> date | None:
    ordinal = number(1, MAX_DAY).read(text)
    return None if ordinal is None else date.fromordinal(ordinal)


DAY = Part(_read_day, lambda day: str(day.toordinal()), str(MAX_DAY))
CHOICE = Part(_read_choice, str, max(("yes", "no", INDEX.longest), key=len))
REASON = member_of(ExceptionReason)
RETURN_REASON = member_of(ReturnReason)
STAGE = one_of(STAGES)
LANGUAGE = member_of(Language)
ITEM_MARK = member_of(ItemMark)
PAYMENT_METHOD = member_of(PaymentMethod)
URGENCY = one_of(URGENCIES)


@dataclass(frozen=True)
class Format:
    """How one kind of action is written: its prefix, then its fields in order, separated by colons."""

    kind: type[Action]
    prefix: str
    parts: tuple[Part, ...] = ()


# The wire format of buttons already sitting in people's chats: change a prefix or an order and those buttons go stale.
FORMATS = (
    Format(AskSignature, "sig", (ID,)),
    Format(CannotSign, "sgx", (ID,)),
    Format(Book, "bk", (ID,)),
    Format(PickSlot, "sl", (ID, MOMENT, MOMENT)),
    Format(Reschedule, "rs", (ID,)),
    Format(CancelVisit, "cx", (ID,)),
    Format(ConfirmCancel, "cxy", (ID,)),
    Format(KeepVisit, "cxn"),
    Format(ConfirmAppointment, "ok", (ID,)),
    Format(ConfirmDone, "cf", (ID,)),
    Format(AskToRate, "rq", (ID,)),
    Format(Rate, "rt", (ID, SCORE)),
    Format(SkipComment, "skip"),
    Format(PickDay, "bd", (ID, DAY)),
    Format(MoreDays, "bm", (ID, INDEX)),
    Format(MoveBoth, "mb", (ID, MOMENT, MOMENT)),
    Format(MoveBothDay, "mbd", (ID, MOMENT, MOMENT, DAY)),
    Format(KeepBoth, "kb", (ID,)),
    Format(Accept, "acc", (ID,)),
    Format(Decline, "dec", (ID,)),
    Format(OnMyWay, "go", (ID,)),
    Format(Arrived, "arr", (ID,)),
    Format(StartChecklist, "st", (ID,)),
    Format(ContinueChecklist, "ck", (ID,)),
    Format(Answer, "ans", (ID, INDEX, CHOICE)),
    Format(Complete, "done", (ID,)),
    Format(Contacted, "ct", (ID,)),
    Format(ReportProblem, "rp", (ID,)),
    Format(PickReason, "rr", (ID, REASON)),
    Format(SkipNote, "rskip"),
    Format(SendReport, "rsend"),
    Format(VisitOptions, "vo", (ID,)),
    Format(HandBack, "hb", (ID,)),
    Format(AskHelp, "hlp", (ID,)),
    Format(NeedReturn, "rv", (ID,)),
    Format(JoinCrew, "jn", (ID,)),
    Format(PickReturnReason, "rvr", (ID, RETURN_REASON)),
    Format(PickFault, "flt", (ID, INDEX)),
    Format(PickMethod, "mth", (ID, INDEX, INDEX)),
    Format(Acknowledge, "xa", (ID,)),
    Format(Reassign, "xr", (ID,)),
    Format(ReassignTo, "xt", (ID, ID)),
    Format(CancelReported, "xc", (ID,)),
    Format(ConfirmCancelReported, "xcy", (ID,)),
    Format(KeepReported, "xcn"),
    Format(AcknowledgeRating, "ra", (ID,)),
    Format(Assign, "as", (ID, ID)),
    Format(ReassignLate, "sr", (ID,)),
    Format(ExtendDeadline, "sx", (ID, STAGE)),
    Format(CallDetails, "sc", (ID,)),
    Format(AssignAnyone, "dan", (ID,)),
    Format(AssignBusy, "dab", (ID, ID)),
    Format(ConfirmOverride, "dao", (ID, ID)),
    Format(MoveVisitMenu, "dmv", (ID,)),
    Format(MoveVisitDay, "dmd", (ID, MOMENT)),
    Format(MoveVisitTo, "dmt", (ID, MOMENT, MOMENT)),
    Format(CancelFromAlert, "dcx", (ID,)),
    Format(ConfirmCancelFromAlert, "dcy", (ID,)),
    Format(FixAddress, "dfa", (ID,)),
    Format(CloseJobAsk, "dcl", (ID,)),
    Format(ReopenJobAsk, "dro", (ID,)),
    Format(NoteAsk, "dno", (ID,)),
    Format(NeverMind, "dnm"),
    Format(ResendParkedCallback, "cbr", (ID,)),
    Format(AnswerInThread, "th", (ID,)),
    Format(DoneTalking, "thx"),
    Format(WriteInThread, "thw", (ID,)),
    Format(ChooseLanguage, "lang", (LANGUAGE,)),
    Format(ResendCode, "ccn", (ID,)),
    Format(TickItem, "itm", (ID, INDEX, ITEM_MARK)),
    Format(SendItemCheck, "itms", (ID,)),
    Format(SendItemMarks, "itmk", (ID, item_marks())),
    Format(RestartItemCheck, "itmr", (ID,)),
    Format(CompleteForThem, "ccf", (ID,)),
    Format(NewCodeFromAlert, "ccr", (ID,)),
    # devices and repair requests (issue 14 parts 1-3)
    Format(DeviceMenu, "dv", (ID,)),
    Format(ReportFault, "dvf", (ID,)),
    Format(DeviceHistory, "dvh", (ID,)),
    Format(BookMaintenance, "dvm", (ID,)),
    Format(OtherProduct, "dvo"),
    Format(RepairMediaDone, "rpm"),
    Format(RepairUrgency, "rpu", (URGENCY,)),
    Format(RepairDay, "rpy", (DAY,)),
    Format(RepairSend, "rps"),
    # parts, van stock and the repair's completion record (issue 14 parts 4-5)
    Format(VanStock, "stk"),
    Format(PartRequestMenu, "prm", (INDEX,)),
    Format(PartRequestPick, "prp", (ID,)),
    Format(PartRequestQty, "prq", (ID, number(1, 20))),
    Format(UsePartMenu, "upm", (ID,)),
    Format(UsePartPick, "upp", (ID, ID)),
    Format(UsePartQty, "upq", (ID, ID, number(1, 20))),
    Format(PutBackPartPress, "upb", (ID, ID, number(1, 20))),
    Format(ApprovePartRequest, "pra", (ID,)),
    Format(DeclinePartRequest, "prd", (ID,)),
    Format(RepairCause, "rcc", (ID, INDEX)),
    Format(RepairFault, "rcf", (ID, INDEX)),
    Format(RepairMethod, "rcm", (ID, INDEX)),
    Format(RepairPart, "rcp", (ID, ID)),
    Format(RepairPartsClear, "rcx", (ID,)),
    Format(RepairPartsDone, "rcd", (ID,)),
    Format(RepairOutcomePick, "rco", (ID, one_of(("fixed", "missing_part", "more_work")))),
    Format(RepairBack, "rcb", (ID,)),
    Format(RepairShow, "rcs", (ID,)),
    # fees (issue 14 part 6)
    Format(RecordPaymentAsk, "pay", (ID,)),
    Format(PickPaymentMethod, "paym", (ID, PAYMENT_METHOD)),
    # price increases (issue 14 part 6)
    Format(PriceIncreaseAsk, "pc", (ID,)),
    Format(PriceIncreaseSend, "pcs"),
    Format(PriceIncreaseCancel, "pcx"),
    Format(ApprovePriceIncrease, "pca", (ID,)),
    Format(DeclinePriceIncrease, "pcd", (ID,)),
    Format(ManagerApprovePriceIncrease, "pcma", (ID,)),
    Format(ManagerDeclinePriceIncrease, "pcmd", (ID,)),
    Format(AgreePriceIncrease, "pcy", (ID,)),
    Format(RefusePriceIncrease, "pcn", (ID,)),
    # the device's history for the repairer (issue 14 part 1)
    Format(VisitDeviceHistory, "dhv", (ID,)),
    Format(VisitDevicePhotos, "dhp", (ID,)),
    Format(BackToVisit, "dhb", (ID,)),
    Format(ScanReportCancel, "dhx"),
    # review periods and settlement (issue 14 part 7)
    Format(SettleRelease, "stl", (ID,)),
    Format(SettleAdjust, "sta", (ID,)),
    # a customer's answer to a price increase, taken by phone (issue 14 gaps)
    Format(PhoneAgreedPriceIncrease, "pcpy", (ID,)),
    Format(PhoneRefusedPriceIncrease, "pcpn", (ID,)),
    # a device's owner proves who they are when scanning its code (issue 14 part 2)
    Format(OwnerCheckStart, "dvy"),
    Format(OwnerCheckCancel, "dvn"),
)
BY_KIND = {wire.kind: wire for wire in FORMATS}
BY_PREFIX = {wire.prefix: wire for wire in FORMATS}


def encode(action: Action) -> str:
    """The button data for an action, e.g. ``Accept(12)`` -> ``"acc:12"``."""
    wire = BY_KIND[type(action)]
    values = [getattr(action, f.name) for f in fields(action)]
    data = ":".join([wire.prefix, *(part.write(value) for part, value in zip(wire.parts, values, strict=True))])
    if decode(data) != action:
        # out of range, or more than the format carries (a fraction of a second): a bug to fix, not a button to send
        raise ValueError(f"{action!r} cannot be carried by a button")
    return data


def decode(data: str) -> Action | None:
    """The action behind button data; None for anything unknown, malformed or out of range (a stale or forged button)."""
    prefix, *texts = data.split(":")
    wire = BY_PREFIX.get(prefix)
    if wire is None or len(texts) != len(wire.parts):
        return None
    values = [part.read(text) for part, text in zip(wire.parts, texts)]
    if any(value is None for value in values):
        return None
    return wire.kind(*values)


def kind_of(data: str) -> type[Action] | None:
    """The kind of action button data names by its prefix alone: a flow may refuse someone for who they are
    before it reads what they sent."""
    wire = BY_PREFIX.get(data.split(":", 1)[0])
    return wire.kind if wire else None


def longest_data(kind: type[Action]) -> str:
    """The longest data an action of this kind can have: what a channel's payload limit must hold."""
    wire = BY_KIND[kind]
    return ":".join([wire.prefix, *(part.longest for part in wire.parts)])
