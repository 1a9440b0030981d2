"""The bus's tables in one place: which handler runs each command, and which reactions follow every event."""

from __future__ import annotations

from functools import partial

from domain import commands as c
from domain import events as ev
from services import backoffice, callbacks, completion_codes, dispatching, evidence, handlers, notifications as tell, relay_threads, replanning, timers
from services import intake, order_notices, robot_links
from services import devices
from services import signatures
from services import maintenance
from services import maintenance_notices  # who hears of plans' inspections (issue 14 part 8)
from services import parts  # parts, van stock and repair completion records (issue 14 parts 4-5)
from services import fees
from services import settlement, settlement_notices  # review periods and settlement statements (issue 14 part 7)
from services import price_changes  # price increases and discounts (issue 14 part 6)
from services import owner_check  # a device's owner proves who they are when scanning its code (issue 14 part 2)
from services.bus import Handler, Reaction, Reactions, handles

HANDLERS: dict[type[c.Command], Handler] = dict([
    *handlers.HANDLERS.items(),
    handles(c.TrackLocation, timers.track_location),
    handles(c.ExtendSla, timers.extend_sla),
    handles(c.SetDuty, replanning.set_duty),
    # nothing left unowned (issue 10): dispatchers' decisions
    handles(c.ReportNoSlotFits, dispatching.report_no_slot_fits),
    handles(c.ForceAssignVisit, dispatching.force_assign),
    handles(c.MoveVisit, dispatching.move_visit),
    handles(c.CorrectAddress, dispatching.correct_address),
    handles(c.CancelVisitAsDispatcher, dispatching.cancel_as_dispatcher),
    handles(c.CloseJob, dispatching.close_job),
    handles(c.ReopenJob, dispatching.reopen_job),
    handles(c.AddNote, dispatching.add_note),
    *relay_threads.HANDLERS,
    handles(c.RebookVisit, handlers.rebook_visit),
    handles(c.ConfirmAppointmentTime, handlers.confirm_appointment_time),
    handles(c.ForwardCustomerText, handlers.forward_customer_text),
    *callbacks.HANDLERS,  # status callbacks to order sources (issue 13 part 5)
    *completion_codes.HANDLERS,  # completion codes and the delivered-item check (issue 13 part 6)
    *intake.HANDLERS,  # orders from sources: place, cancel, review (issue 13 part 4)
    *signatures.HANDLERS,  # the customer signs on the technician's phone (issue 12 part 6)
    *devices.HANDLERS,  # devices, QR codes, repair requests from chat (issue 14 parts 1-3)
    *maintenance.HANDLERS,  # preventive maintenance plans (issue 14 part 8)
    *parts.HANDLERS,  # parts and stock, part requests, repair completion records, fault trees (issue 14 parts 4-5)
    *fees.HANDLERS,  # price lists, bills and payments (issue 14 part 6)
    *settlement.HANDLERS,  # releasing and adjusting frozen fees, closing a month, payout rules (issue 14 part 7)
    *price_changes.HANDLERS,  # price increases asked on site, their approvals, discounts (issue 14 part 6)
    *owner_check.HANDLERS,  # a scanning owner proves who they are with the phone number on file (issue 14 part 2)
])

# Who is told what. An event's reactions run in this order, which is the order of their messages in the
# outbox (the cancelled visit's technicians hear before its customer, a new card before "taken away").
NOTIFICATIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    # technicians
    (tell.offer_card_to_technician, (ev.OfferMade, ev.VisitReassigned)),
    (tell.tell_previous_technician_visit_taken_away, (ev.VisitReassigned,)),
    (tell.offer_cards_to_candidates, (ev.OffersBroadcast,)),
    (tell.close_offer_cards, (ev.OffersClosed,)),
    (tell.tell_crew_member_assigned, (ev.CrewAssigned,)),
    (tell.tell_crew_member_released, (ev.CrewReleased,)),
    (tell.remind_technician_of_sla, (ev.SlaTierReached,)),
    (tell.send_day_plan, (ev.DayPlanDue,)),
    (tell.send_changed_day_plan, (ev.DayPlanChanged,)),
    (tell.tell_technician_customer_confirmed, (ev.VisitConfirmed,)),
    (tell.tell_technician_report_acknowledged, (ev.ExceptionAcknowledged,)),
    (tell.tell_technicians_visit_cancelled, (ev.VisitCancelled,)),
    (tell.tell_technicians_visit_rescheduled, (ev.VisitUnbooked, ev.VisitRescheduled)),
    (tell.grab_winner_details, (ev.VisitAccepted,)),
    (tell.tell_technicians_dependency_done, (ev.VisitCompleted,)),
    (tell.ask_colleagues_to_assist, (ev.AssistanceRequested,)),
    (tell.tell_requester_assistance_joined, (ev.AssistanceJoined,)),
    # customers
    (tell.tell_customer_who_comes, (ev.VisitAccepted,)),
    (tell.tell_customer_on_the_way, (ev.VisitEnRoute,)),
    (tell.tell_customer_eta, (ev.EtaUpdated,)),
    (tell.remind_customer_of_appointment, (ev.AppointmentReminderDue,)),
    (tell.tell_customer_arrived, (ev.VisitCheckedIn,)),
    (tell.ask_customer_to_confirm_completion, (ev.VisitCompleted,)),
    (tell.tell_customer_visit_cancelled, (ev.VisitCancelled,)),
    (tell.tell_customer_return_visit, (ev.ReturnVisitNeeded,)),
    (tell.tell_customer_running_late, (ev.RunningLate,)),
    # relay threads: the writer's text to people, their answers back
    (relay_threads.forward_to_people, (ev.MessageRelayed,)),
    (relay_threads.deliver_answer, (ev.ThreadAnswered,)),
    # dispatchers, in their groups and robots
    (tell.ask_dispatchers_to_pick_technician, (ev.ManualDispatchNeeded,)),
    (tell.alert_dispatchers_no_technician, (ev.NoTechnicianAvailable,)),
    (tell.alert_dispatchers_replan_failed, (ev.ReplanFailed,)),
    (tell.alert_dispatchers_sla_breached, (ev.SlaTierReached,)),
    (tell.alert_dispatchers_chat_unreachable, (ev.ChatUnreachable, ev.MessageNotDelivered)),
    (tell.alert_dispatchers_of_exception, (ev.ExceptionReported,)),
    (evidence.send_exception_photos, (ev.ExceptionReported,)),  # right after its alert
    (tell.refresh_exception_card, (ev.ExceptionAcknowledged,)),
    (tell.alert_dispatchers_of_low_rating, (ev.LowRatingReceived,)),
    # nothing left unowned (issue 10): chased bookings, no time, complaints, reassignments, moves, closing
    (tell.alert_dispatchers_no_slot_fits, (ev.NoSlotFits,)),
    (tell.remind_customer_to_book, (ev.BookingReminderDue,)),
    (tell.alert_dispatchers_booking_overdue, (ev.BookingOverdue,)),
    (tell.tell_customer_visit_moved, (ev.VisitMovedByDispatcher,)),
    (tell.tell_technicians_address_corrected, (ev.AddressCorrected,)),
    (tell.tell_customer_who_comes_now, (ev.VisitReassigned,)),
    (tell.remind_customer_to_confirm, (ev.CompletionReminderDue,)),
    (tell.tell_customer_confirmed_by_timeout, (ev.VisitConfirmed,)),
    (tell.alert_dispatchers_of_complaint, (ev.ComplaintReceived,)),
    (tell.refresh_rating_cards, (ev.AlertAcknowledged,)),
    (tell.alert_dispatchers_no_assistance, (ev.AssistanceUnavailable,)),
    (tell.alert_dispatchers_checkin_flagged, (ev.CheckInFlagged,)),
    (tell.alert_dispatchers_customer_cancelled, (ev.VisitCancelled,)),
    (tell.alert_dispatchers_customer_wrote, (ev.CustomerWrote,)),
    # staff-side gaps (issue 10 review): a call for help nobody answered, a problem report settled by a decision
    (tell.expire_assist_offers, (ev.AssistanceTimedOut,)),
    (tell.tell_requester_assistance_timed_out, (ev.AssistanceTimedOut,)),
    (tell.alert_dispatchers_assistance_timed_out, (ev.AssistanceTimedOut,)),
    (tell.refresh_resolved_exception_card, (ev.ExceptionResolved,)),
    # status callbacks (issue 13 part 5): one the order source's system kept refusing waits for a dispatcher's Resend
    (callbacks.alert_dispatchers_callback_parked, (ev.CallbackParked,)),
    # order intake (issue 13 part 4): a source's change reaches whoever it concerns
    (order_notices.tell_technicians_order_updated, (ev.OrderUpdated,)),
    (order_notices.tell_customer_order_updated, (ev.OrderUpdated,)),
    (order_notices.alert_dispatchers_order_cancelled, (ev.OrderCancelled,)),
    (order_notices.alert_dispatchers_coverage_gap, (ev.CoverageGapFlagged,)),
    # robots that act (issue 13 part 3): a robot message cannot be edited, so its group hears that a link was used
    (robot_links.tell_route_link_used, (ev.RobotLinkUsed,)),
)

# The timers an event starts or stops; a stage's clock stops before the next one starts.
TIMERS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (partial(timers.stop_sla_clock, stage="accept"), (ev.VisitAccepted, ev.OfferDeclined)),
    (partial(timers.stop_sla_clock, stage="contact"), (ev.CustomerContacted, ev.VisitEnRoute, ev.VisitCheckedIn)),
    (partial(timers.stop_sla_clock, stage="arrival"), (ev.VisitCheckedIn,)),
    (partial(timers.stop_sla_clock, stage="completion"), (ev.VisitCompleted,)),
    (partial(timers.start_sla_clock, stage="accept"), (ev.OfferMade, ev.OffersBroadcast, ev.VisitReassigned)),
    (partial(timers.start_sla_clock, stage="contact"), (ev.VisitAccepted,)),
    (partial(timers.start_sla_clock, stage="arrival"), (ev.VisitAccepted,)),
    (partial(timers.start_sla_clock, stage="completion"), (ev.VisitCheckedIn,)),
    (timers.set_appointment_timers, (ev.VisitAccepted,)),
    (timers.set_overrun_timer, (ev.VisitStarted,)),
    # given back: the next technician's clocks start with their offer; ended for a return: nothing of it fires any more
    (partial(timers.stop_sla_clock, stage="contact"), (ev.VisitHandedBack,)),
    (partial(timers.stop_sla_clock, stage="arrival"), (ev.VisitHandedBack,)),
    (timers.cancel_visit_timers, (ev.ReturnVisitNeeded,)),
    (timers.cancel_visit_timers, (ev.VisitCancelled, ev.VisitUnbooked, ev.VisitRescheduled)),
    # after the cancel above: an unbooked visit is chased again from now (remind the customer, then the dispatchers)
    (timers.start_booking_chase, (ev.JobCreated, ev.VisitUnbooked, ev.VisitBooked, ev.ReturnVisitNeeded)),
    (timers.stop_booking_chase, (ev.VisitBooked,)),
    (timers.start_confirmation_clock, (ev.VisitCompleted,)),
    (timers.stop_confirmation_clock, (ev.VisitConfirmed,)),
    # a call for help nobody joins in time moves on to the next colleagues, else to the dispatchers
    (timers.set_assist_timer, (ev.AssistanceRequested,)),
    (timers.stop_assist_timer, (ev.AssistanceJoined,)),
    # a link is a clock too: closing a job shortens the customer's (in its handler), reopening it lengthens it again
    (backoffice.renew_customer_link, (ev.JobReopened,)),
)

# Events nothing reacts to yet, on purpose: they are on the job's timeline (the API shows it), and what they
# would trigger is either told by the flow that raised them or not built yet (KPIs).
SILENT: frozenset[type[ev.Event]] = frozenset({
    ev.ChecklistAnswered,  # the technician is answered step by step in their chat
    ev.VisitResumed,  # comes with ExceptionAcknowledged, which tells the technician to carry on
    ev.RatingGiven,  # a low one also raises LowRatingReceived, which alerts
    ev.SlaExtended,  # the extending dispatcher is answered in the group
    ev.ConflictOverridden,  # the overriding dispatcher is answered in the group; the offer it led to tells the technician
    ev.NoteAdded,  # a note for the timeline: the dispatcher who wrote it is answered
    ev.AppointmentConfirmed,  # on the timeline and the visit; dispatchers see it in the job and on alerts about the visit
    ev.CompletionCodeIssued,  # raised by the reaction that sent the code to the customer
    ev.DeliveredItemsChecked,  # the customer is answered in their chat; a problem found raises ExceptionReported, which alerts
    ev.CallbackResent,  # whoever resent them is answered (the API, or the dispatcher who pressed Resend)
})
SILENT = SILENT | devices.SILENT  # devices (issue 14): retiring and renewing a code are answered by the API
SILENT = SILENT | parts.SILENT  # parts: the ledger and the repair record are answered where they were made
SILENT = SILENT | maintenance.SILENT  # maintenance plans: the inspection job is told like any order's
SILENT = SILENT | fees.SILENT  # fees: a price-list entry is answered by the API
SILENT = SILENT | settlement.SILENT  # settlement: answered where released, adjusted or closed; a ready fee by its statement
SILENT = SILENT | price_changes.SILENT  # a discount: the bill priced again tells the customer
# signatures (issue 12 part 6): the technician who gave the reason is answered in their chat; the job page shows it
SILENT = SILENT | {ev.SignatureSkipped}


def reactions() -> Reactions:
    """A fresh table (a test may add its own reaction without touching anyone else's); messages before timers."""
    table = Reactions()
    # completion codes and the delivered-item check (issue 13 part 6) after the notifications of the same events
    for reaction, event_types in (*NOTIFICATIONS, *completion_codes.REACTIONS, *devices.REACTIONS, *signatures.REACTIONS, *parts.REACTIONS, *fees.REACTIONS, *price_changes.REACTIONS, *owner_check.REACTIONS, *TIMERS):
        table.add(reaction, *event_types)
    # settlement (issue 14 part 7): a confirmed visit's fee enters review, is frozen, made ready, stated and sent
    for reaction, event_types in (*settlement.REACTIONS, *settlement_notices.REACTIONS):
        table.add(reaction, *event_types)
    # maintenance plans (issue 14 part 8): a finished inspection may complete its period; overdue, unassignable, done
    for reaction, event_types in (*maintenance.REACTIONS, *maintenance_notices.REACTIONS):
        table.add(reaction, *event_types)
    # the order source hears each milestone after the people (services/callbacks.py)
    # (JobCompleted and JobClosed tell nobody in a chat: the customer's confirmation and the closing dispatcher are
    # answered where they acted; their order source hears of them here)
    for reaction, event_types in callbacks.reactions():
        table.add(reaction, *event_types)
    return table
