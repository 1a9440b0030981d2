"""The bus's tables in one place: which handler runs each command, and which reactions follow every event."""

from __future__ import annotations

from functools import partial

from domain import commands as c
from domain import events as ev
from services import handlers, notifications as tell, replanning, timers
from services.bus import Handler, Reaction, Reactions, handles

HANDLERS: dict[type[c.Command], Handler] = dict([
    *handlers.HANDLERS.items(),
    handles(c.TrackLocation, timers.track_location),
    handles(c.ExtendSla, timers.extend_sla),
    handles(c.SetDuty, replanning.set_duty),
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
    (tell.tell_technicians_visit_rescheduled, (ev.VisitUnbooked,)),
    # customers
    (tell.tell_customer_who_comes, (ev.VisitAccepted,)),
    (tell.tell_customer_on_the_way, (ev.VisitEnRoute,)),
    (tell.tell_customer_eta, (ev.EtaUpdated,)),
    (tell.remind_customer_of_appointment, (ev.AppointmentReminderDue,)),
    (tell.tell_customer_arrived, (ev.VisitCheckedIn,)),
    (tell.ask_customer_to_confirm_completion, (ev.VisitCompleted,)),
    (tell.tell_customer_visit_cancelled, (ev.VisitCancelled,)),
    # dispatchers, in their groups and robots
    (tell.ask_dispatchers_to_pick_technician, (ev.ManualDispatchNeeded,)),
    (tell.alert_dispatchers_no_technician, (ev.NoTechnicianAvailable,)),
    (tell.alert_dispatchers_replan_failed, (ev.ReplanFailed,)),
    (tell.alert_dispatchers_sla_breached, (ev.SlaTierReached,)),
    (tell.alert_dispatchers_chat_unreachable, (ev.ChatUnreachable,)),
    (tell.alert_dispatchers_of_exception, (ev.ExceptionReported,)),
    (tell.alert_dispatchers_of_low_rating, (ev.LowRatingReceived,)),
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
    (timers.cancel_visit_timers, (ev.VisitCancelled, ev.VisitUnbooked)),
)

# Events nothing reacts to yet, on purpose: they are on the job's timeline (the API shows it), and what they
# would trigger is either told by the flow that raised them or not built yet (ERP callbacks, KPIs).
SILENT: frozenset[type[ev.Event]] = frozenset({
    ev.JobCreated,  # the shop that posted the order gets the customer's link back
    ev.VisitBooked,  # whoever booked (the customer, or the intake of an urgent order) is answered; dispatch has its own events
    ev.ChecklistAnswered,  # the technician is answered step by step in their chat
    ev.VisitResumed,  # comes with ExceptionAcknowledged, which tells the technician to carry on
    ev.JobCompleted,  # the customer's confirmation that closed it is answered in their chat
    ev.RatingGiven,  # a low one also raises LowRatingReceived, which alerts
    ev.SlaExtended,  # the extending dispatcher is answered in the group
})


def reactions() -> Reactions:
    """A fresh table (a test may add its own reaction without touching anyone else's); messages before timers."""
    table = Reactions()
    for reaction, event_types in (*NOTIFICATIONS, *TIMERS):
        table.add(reaction, *event_types)
    return table
