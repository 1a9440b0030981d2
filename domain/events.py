"""Domain events, named in the past tense; stored on the job's timeline and turned into notifications."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    job_id: int
    visit_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobCreated(Event): ...
class VisitBooked(Event): ...
class VisitUnbooked(Event): ...
class OfferMade(Event): ...
class OfferDeclined(Event): ...
class OffersBroadcast(Event): ...
class OffersClosed(Event): ...
class ManualDispatchNeeded(Event): ...
class NoTechnicianAvailable(Event): ...
class VisitAccepted(Event): ...
class VisitEnRoute(Event): ...
class VisitCheckedIn(Event): ...
class VisitStarted(Event): ...
class ChecklistAnswered(Event): ...
class VisitCompleted(Event): ...
class VisitConfirmed(Event): ...
class ExceptionReported(Event): ...
class ExceptionAcknowledged(Event): ...
class VisitReassigned(Event): ...
class VisitResumed(Event): ...
class VisitCancelled(Event): ...
class JobCompleted(Event): ...
class RatingGiven(Event): ...
class LowRatingReceived(Event): ...


EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in Event.__subclasses__()}


def stamp(event: Event, at: datetime) -> dict[str, Any]:
    """The row written to the timeline for an event."""
    return {"type": event.name, "job_id": event.job_id, "visit_id": event.visit_id, "data": event.data, "occurred_at": at}


class SlaTierReached(Event):
    """data: stage, tier (percent), deadline; tier 100 means the deadline passed."""


class AppointmentReminderDue(Event): ...


class DayPlanDue(Event):
    """data: technician_id, day (ISO date)."""


class CustomerContacted(Event): ...


class EtaUpdated(Event):
    """data: technician_id, minutes, close (bool)."""


class SlaExtended(Event): ...


class ReplanFailed(Event):
    """Automatic (re)planning of a day keeps failing and backs off; told once per run of failures. The job is one
    the day concerns (events live on a job's timeline). data: day (ISO date), triggers, reason, regions."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class ChatUnreachable(Event):
    """A customer's or technician's chat refuses our messages (blocked the bot); data: who, reason."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class CrewAssigned(Event):
    """A planned crew visit gained a member besides its lead; data: technician_id (the member)."""


class CrewReleased(Event):
    """A crew member is no longer needed on a visit; data: technician_id (the member)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class DayPlanChanged(Event):
    """A replan reordered or moved a technician's remaining stops today; data: technician_id, day (ISO date)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class VisitHandedBack(Event):
    """A technician gave back a visit they had accepted; data: technician_id, reason, crew_ids."""


class ReturnVisitNeeded(Event):
    """A visit ended needing another; data: technician_id, reason, note, follow_up_visit_id."""


class AssistanceJoined(Event):
    """A technician asked for help on a visit and another joined its crew; data: technician_id (who asked), member."""


class AssistanceUnavailable(Event):
    """A technician asked for help on a visit and nobody skilled is free; data: technician_id (who asked)."""


class RunningLate(Event):
    """The technician says they will be late; data: technician_id, minutes, estimate (ISO moment)."""


class CheckInFlagged(Event):
    """A check-in from a static pin or beyond the radius; data: technician_id, distance_m, kind."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- nothing left unowned (issue 10): chasing, dispatcher decisions, closing jobs ------------------


class NoSlotFits(Event):
    """The customer was offered no bookable time for a visit; the dispatchers must arrange one."""


class BookingReminderDue(Event):
    """A visit still waits for its booking a while after it could be booked: the customer is reminded once."""


class BookingOverdue(Event):
    """A visit is still not booked after the reminder: the dispatchers take it over."""


class ConflictOverridden(Event):
    """A dispatcher (or the API) assigned a technician who is not free, knowingly; data: technician_id,
    dispatcher_id (None: the API), conflicts (what the technician holds at that time)."""


class VisitMovedByDispatcher(Event):
    """A dispatcher moved a visit to a new window; data: start, end, dispatcher_id, previous_start."""


class AddressCorrected(Event):
    """A dispatcher corrected the job's address; data: address, lat, lon (None: unchanged), dispatcher_id."""


class AlertAcknowledged(Event):
    """A dispatcher saw a low-rating or complaint alert; data: rating_id, dispatcher_id, name, at."""


class CompletionReminderDue(Event):
    """A completed visit the customer has not confirmed yet: reminded once before it closes by timeout."""


class JobClosed(Event):
    """A job closed without the customer's last word; data: reason, by (dispatcher | timeout | api), dispatcher_id."""


class JobReopened(Event):
    """A closed job (or a confirmed visit) opened again; data: reason, dispatcher_id."""


class ComplaintReceived(Event):
    """The comment a customer left with a low rating; data: rating_id, score, comment."""


class NoteAdded(Event):
    """A dispatcher's note on a job's timeline; data: text, dispatcher_id."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- the customer's side (issue 10) ---------------------------------------------------------------


class VisitRescheduled(Event):
    """The customer moved a booked visit to another window in one step; data: start, end, previous_start,
    previous_end, technician_id and crew_ids (who had it and is released), by."""


class AppointmentConfirmed(Event):
    """The customer confirmed a booked appointment (the reminder's Confirm); data: at, technician_id."""


class CustomerWrote(Event):
    """A customer's new phone number or address for the dispatchers; data: topic (change_contact, change_address), text."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class MessageRelayed(Event):
    """A customer's or technician's text went to people; data: thread_id, message_id, origin, audience, technician_id,
    topic, text (phones masked), photo_id. job_id is domain.relay.NO_JOB for a technician's thread about no job."""


class ThreadAnswered(Event):
    """People answered in a relay thread; data: thread_id, message_id, author, author_id, text (phones masked), photo_id."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


class AssistanceRequested(Event):
    """A technician asked for help on a visit; data: technician_id (who asked), candidates (free colleagues asked to join)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- staff-side gaps (issue 10 review) ------------------------------------------------------------


class AssistanceTimedOut(Event):
    """Nobody joined a call for help in time; data: technician_id (who asked), offers (the colleagues whose call is over),
    next (the colleagues asked now; empty: the dispatchers take it over), minutes."""


class ExceptionResolved(Event):
    """A dispatcher settled a problem report by what they did about its visit; data: exception_id, resolution,
    dispatcher_id (None: the API), name, at."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- the WhatsApp channel (issue 13 part 2) -------------------------------------------------------


class MessageNotDelivered(Event):
    """One message could not reach a customer's or technician's chat (outside a session window with no template for
    it, or the platform reported it failed); data: who, purpose, why (window | failed), reason, technician_id."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- status callbacks to order sources (issue 13 part 5) ------------------------------------------


class CallbackParked(Event):
    """A status callback to the job's order source kept failing and waits for someone; data: callback_id, type
    (the milestone), event_id, attempts, reason."""


class CallbackResent(Event):
    """Parked callbacks of the job were queued again; data: callback_ids (in their order)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- completion codes and the delivered-item check (issue 13 part 6) -------------------------------
# No event carries a code: events are on the job's timeline, which the API shows; only its hash is stored.


class CompletionCodeIssued(Event):
    """A visit's completion code was sent to its customer; data: technician_id, by (set_off | customer | technician |
    dispatcher)."""


class CompletionCodeRequested(Event):
    """Someone asked for a new code for the visit (the old one stops working); data: by, dispatcher_id."""


class CompletionCodeRejected(Event):
    """A technician's try at a visit's code failed; data: technician_id, outcome (wrong | code_locked |
    technician_locked), tries_left."""


class CompletionCodeLocked(Event):
    """Wrong tries locked a code (5 on it) or a technician (100 today); data: technician_id, scope (code | technician)."""


class CompletionCodeAccepted(Event):
    """The technician entered the customer's code: the visit completes with it; data: technician_id."""


class CompletionCodeWaived(Event):
    """A dispatcher completed the visit for its technician without the code; data: technician_id, dispatcher_id, name."""


class DeliveredItemsChecked(Event):
    """The customer ticked what a delivery brought; data: items ([name, mark] each), problems (how many not received)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- order intake (issue 13 part 4) ---------------------------------------------------------------


class OrderUpdated(Event):
    """The source sent its order again, changed; data: source, external_ref, changes (field -> [old, new]),
    visits_added, visits_cancelled, visits_changed (ids)."""


class OrderCancelled(Event):
    """The source cancelled its order; data: source, external_ref, reason, visits (the ids cancelled with it)."""


class OrderConfirmed(Event):
    """The merchant confirmed the order out of the review queue; data: source, external_ref, price_minor, currency."""


class CoverageGapFlagged(Event):
    """Accepted although nobody on the roster can do some of its work in its region; data: region, kinds."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- robots that act (issue 13 part 3) -------------------------------------------------------------------------------


class RobotLinkUsed(Event):
    """A dispatcher acted through a group robot alert's single-use link (the action's own events come with it); data:
    link_id, route (the robot route the alert went to), action (the button's data), dispatcher_id, name, via."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- devices, QR codes and repair requests (issue 14 parts 1-3) -------------------------------------------------------
# A device's events belong to a job when there is one (the installation that made it, the repair a request made);
# a device registered or retired through the API has none, and its events carry job_id 0 ("no job").


class DeviceRegistered(Event):
    """A device record was made; data: device_id, customer_id, via (installation | api | import), product."""


class DeviceRetired(Event):
    """A device was taken out of service (its QR codes open nothing any more); data: device_id, reason."""


class RepairRequested(Event):
    """A customer asked for a repair (or maintenance) from chat and a job was made; data: device_id, kind, urgency, days,
    photo_ids, customer_id."""


class FaultReportedByScan(Event):
    """Someone who is not the owner scanned a device's or a site's code and reported a fault: no job is made, the
    dispatchers check it with the owner; data: device_ids, site_id, region, description, reporter, platform,
    reporter_customer_id (their own record when their chat is bound to one)."""


class DeviceCodeRenewed(Event):
    """A QR code was revoked and a new one made; data: purpose (device | site), subject_id."""


class DeviceOwnerVerified(Event):
    """A chat that scanned a code proved it is the owner's (the phone number on file) and was bound to them; data:
    customer_id, device_ids, site_id, via (whatsapp | contact | typed), platform."""


class DeviceOwnerCheckFailed(Event):
    """A number given to prove a scanned code's ownership was not the one on file (counted per chat for 24 hours); data:
    chat_key (``domain.owner_check.chat_key``: never the chat id), via, site_id, tries_left."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- signatures (issue 12 part 6) ----------------------------------------------------------------------------------


class SignatureRequested(Event):
    """The technician got a single-use pad link for the customer; data: request_id, technician_id, stage, expires_at."""


class SignatureCaptured(Event):
    """The customer signed on the pad; data: signature_id, request_id, technician_id, stage, width, height, bytes."""


class SignatureSkipped(Event):
    """The customer could not sign; data: signature_id, technician_id, stage, reason."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- preventive maintenance (issue 14 part 8) ----------------------------------------------------------------------


class MaintenancePlanCreated(Event):
    """A maintenance plan was made; data: plan_id, site_id, devices."""


class MaintenancePlanStopped(Event):
    """A maintenance plan creates no more inspections; data: plan_id."""


class InspectionScheduled(Event):
    """A plan's inspection job was created ahead of its day; data: plan_id, day, devices."""


class InspectionAssigneeUnavailable(Event):
    """The plan's technician (or none of its team) is free and able on the inspection's day: it went to normal dispatch;
    data: plan_id, day, assignees, outcome (dispatched: booked on the day for the region's dispatch; unbooked: nobody
    was free that day, the customer or a dispatcher books it)."""


class InspectionOverdue(Event):
    """A plan's inspection was not done by the end of its day; data: plan_id, day, status."""


class InspectionPeriodDone(Event):
    """Every inspection of a plan period is done (or called off); data: plan_id, period_start, period_end, done,
    reviewer_dispatcher_id."""


# --- fees (issue 14 part 6) ----------------------------------------------------------------------------------------


class PriceListChanged(Event):
    """A price-list entry was put; data: entry_id, service_kind, product_category, region, urgency."""


class BillIssued(Event):
    """A completed visit's bill was priced; data: bill_id, total, currency."""


class BillUnpriced(Event):
    """No price-list entry fits a completed visit: its bill waits for a price; data: bill_id, service_kind,
    product_category, region, urgency."""


class PaymentRecorded(Event):
    """A payment was recorded on a bill; data: bill_id, payment_id, amount, currency, method, outstanding, technician_id."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- parts and van stock, and what a repair records at completion (issue 14 parts 4-5) --------------------------------
# Stock events about no job carry job_id 0 ("no job"), as devices' do; a part used on a repair is on that job's timeline.


class StockMoved(Event):
    """Stock changed (the ledger row); data: movement_id, part_id, kind, quantity, from, to, technician_id, request_id."""


class StockLow(Event):
    """A part in the warehouse fell to its reorder level; data: part_id, on_hand, min_stock, used_recently, suggestion."""


class PartRequested(Event):
    """A technician asked for parts for their van; data: request_id, part_id, quantity, technician_id, note."""


class PartRequestDecided(Event):
    """A dispatcher approved (the parts are issued to the van) or declined a request; data: request_id, part_id, quantity,
    technician_id, status, dispatcher_id, reason."""


class RepairRecorded(Event):
    """A repair's completion record; data: technician_id, cause, fault, method, outcome, parts [{part_id, quantity}]."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- price increases and discounts (issue 14 part 6) -------------------------------------------------------------------


class PriceIncreaseRequested(Event):
    """A technician asked for a price increase on a visit under way; data: change_id, amount, currency, reason, photos,
    technician_id."""


class PriceIncreaseEscalated(Event):
    """A dispatcher approved an increase above the managers' threshold: a manager decides; data: change_id, amount,
    currency, by."""


class PriceIncreaseApproved(Event):
    """The shop approved an increase (a dispatcher, or a manager): the customer is asked; data: change_id, amount,
    currency, by, level."""


class PriceIncreaseDeclined(Event):
    """A dispatcher or a manager declined an increase; data: change_id, amount, currency, by, level."""


class PriceIncreaseAccepted(Event):
    """The customer agreed to an increase: it is on the visit's bill; data: change_id, amount, currency."""


class PriceIncreaseRefused(Event):
    """The customer declined an increase: the bill stays as it was; data: change_id, amount, currency."""


class DiscountGiven(Event):
    """A manager gave a discount on a visit's bill; data: change_id, bill_id, amount, currency, reason, by."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})


# --- review periods and settlement (issue 14 part 7) ----------------------------------------------------------------
# A statement and a month's close are about no job (job_id 0); an item's events are on its visit's job timeline.


class SettlementReviewStarted(Event):
    """A confirmed visit's fee entered its review period; data: item_id, technician_id, amount, currency, review_ends_at,
    frozen (a reason when it starts frozen: an exception still open, a low rating given before)."""


class SettlementFrozen(Event):
    """A complaint, a low rating or an open exception froze a visit's fee in its review period; data: item_id, reason, ref,
    technician_id, amount, currency."""


class SettlementReleased(Event):
    """A dispatcher released a frozen fee; data: item_id, by, dispatcher_id, status, period."""


class SettlementAdjusted(Event):
    """A dispatcher set the amount a visit's fee pays; data: item_id, by, dispatcher_id, earned, amount, currency, reason,
    status, period."""


class SettlementItemReady(Event):
    """A visit's fee is settleable in its period; data: item_id, technician_id, period, cycle."""


class StatementIssued(Event):
    """A settlement statement was made for a technician; data: statement_id, number, technician_id, period, cycle, total,
    currency, lines."""


class SettlementMonthClosed(Event):
    """A month was closed; data: period, statements (ids), by."""


class PayoutRuleSet(Event):
    """A technician's payout rule was set; data: technician_id, cycle, share_percent (None: the shop's default)."""


EVENT_TYPES.update({cls.__name__: cls for cls in Event.__subclasses__()})
