"""Reactions to events: every event is handled or silent on purpose, every message says its purpose, and a reaction's events cascade."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass


from domain import events as ev
from domain.model import Job, Photo, ProblemReport, Visit
from domain.relay import RelayThread
from services import registry
from services.context import HandlerContext
from services.messages import Outbound, Purpose
from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.support.harness import World, keys
from tests.support.setups import booked_and_accepted

CUSTOMER_NAME, CUSTOMER_PHONE = "Zhang Wei", "13912345678"  # what the harness orders with


def test_every_event_type_has_a_reaction_or_is_silent_on_purpose():
    table = registry.reactions()
    for event_type in ev.EVENT_TYPES.values():
        reacted = bool(table.to(event_type(job_id=1, visit_id=1)))
        # an event that is both would be a stale entry in SILENT; one that is neither was forgotten
        assert reacted != (event_type in registry.SILENT), event_type.__name__


@dataclass(frozen=True)
class Shop:
    """A job with an accepted visit, its driver, a second technician, a bound group and a region robot."""

    job_id: int
    visit_id: int
    driver_id: int
    other_id: int
    report_id: int
    day: str
    thread_ids: tuple[int, int] = (1, 2)  # relay threads: the customer's to the dispatchers, and to the driver


# Events as the handlers, timers and replans raise them, for every event type someone is told about; where a
# reaction tells only in some cases (a breached deadline, a cancellation not by the customer) the case that tells.
SAMPLES: dict[type[ev.Event], Callable[[Shop], list[ev.Event]]] = {
    ev.OfferMade: lambda s: [ev.OfferMade(s.job_id, s.visit_id, {"technician_id": s.driver_id})],
    ev.VisitReassigned: lambda s: [ev.VisitReassigned(s.job_id, s.visit_id, {"technician_id": s.driver_id, "previous_technician_id": s.other_id})],
    ev.OffersBroadcast: lambda s: [ev.OffersBroadcast(s.job_id, s.visit_id, {"offers": [[1, s.driver_id], [2, s.other_id]]})],
    ev.OffersClosed: lambda s: [ev.OffersClosed(s.job_id, s.visit_id, {"offers": [[2, s.other_id]], "outcome": "lost"})],
    ev.CrewAssigned: lambda s: [ev.CrewAssigned(s.job_id, s.visit_id, {"technician_id": s.other_id})],
    ev.CrewReleased: lambda s: [ev.CrewReleased(s.job_id, s.visit_id, {"technician_id": s.other_id})],
    ev.SlaTierReached: lambda s: [
        ev.SlaTierReached(s.job_id, s.visit_id, {"stage": "contact", "tier": tier, "technician_id": s.driver_id}) for tier in (50, 80, 100)
    ],
    ev.DayPlanDue: lambda s: [ev.DayPlanDue(s.job_id, None, {"technician_id": s.driver_id, "day": s.day})],
    ev.DayPlanChanged: lambda s: [ev.DayPlanChanged(s.job_id, None, {"technician_id": s.driver_id, "day": s.day})],
    ev.VisitConfirmed: lambda s: [ev.VisitConfirmed(s.job_id, s.visit_id, {}), ev.VisitConfirmed(s.job_id, s.visit_id, {"by": "timeout"})],
    ev.ExceptionAcknowledged: lambda s: [ev.ExceptionAcknowledged(s.job_id, s.visit_id, {"exception_id": s.report_id})],
    ev.VisitCancelled: lambda s: [
        ev.VisitCancelled(s.job_id, s.visit_id, {"technician_id": s.driver_id, "by": by}) for by in ("dispatcher", "customer")
    ],
    ev.VisitRescheduled: lambda s: [ev.VisitRescheduled(s.job_id, s.visit_id, {"technician_id": s.driver_id, "crew_ids": [s.other_id]})],
    ev.CustomerWrote: lambda s: [
        ev.CustomerWrote(s.job_id, s.visit_id, {"topic": topic, "text": "new number 13800001111"})
        for topic in ("change_contact", "change_address", "human", "complaint", "unknown")
    ],
    ev.VisitUnbooked: lambda s: [ev.VisitUnbooked(s.job_id, s.visit_id, {"technician_id": s.driver_id, "crew_ids": [s.other_id]})],
    ev.VisitAccepted: lambda s: [
        ev.VisitAccepted(s.job_id, s.visit_id, {"technician_id": s.driver_id, "grabbed": grabbed}) for grabbed in (False, True)
    ],
    ev.ReturnVisitNeeded: lambda s: [
        ev.ReturnVisitNeeded(s.job_id, s.visit_id, {"technician_id": s.driver_id, "reason": "missing_part", "note": "", "follow_up_visit_id": s.visit_id})
    ],
    ev.AssistanceRequested: lambda s: [ev.AssistanceRequested(s.job_id, s.visit_id, {"technician_id": s.driver_id, "candidates": [s.other_id]})],
    ev.AssistanceJoined: lambda s: [ev.AssistanceJoined(s.job_id, s.visit_id, {"technician_id": s.driver_id, "member": s.other_id})],
    ev.AssistanceUnavailable: lambda s: [ev.AssistanceUnavailable(s.job_id, s.visit_id, {"technician_id": s.driver_id})],
    ev.RunningLate: lambda s: [
        ev.RunningLate(s.job_id, s.visit_id, {"technician_id": s.driver_id, "minutes": 20, "estimate": "2026-11-24T02:20:00+00:00"})
    ],
    ev.CheckInFlagged: lambda s: [
        ev.CheckInFlagged(s.job_id, s.visit_id, {"technician_id": s.driver_id, "distance_m": 2200.0, "kind": "static", "reason": "gate"}),
        ev.CheckInFlagged(s.job_id, s.visit_id, {"technician_id": s.driver_id, "distance_m": 80.0, "kind": "static", "reason": None,
                                                 "flags": ["static"]}),
    ],
    # a call for help nobody answered: others asked, or (nobody left) the dispatchers
    ev.AssistanceTimedOut: lambda s: [
        ev.AssistanceTimedOut(s.job_id, s.visit_id, {"technician_id": s.driver_id, "offers": [s.other_id], "next": following, "minutes": 15})
        for following in ([s.other_id], [])
    ],
    ev.ExceptionResolved: lambda s: [ev.ExceptionResolved(s.job_id, s.visit_id, {
        "exception_id": s.report_id, "resolution": "reassigned", "dispatcher_id": None, "name": "Dora", "at": "2026-11-23T02:00:00+00:00",
    })],
    # order intake (issue 13 part 4)
    ev.OrderUpdated: lambda s: [ev.OrderUpdated(s.job_id, None, {
        "source": "erp", "external_ref": "SO-1", "changes": {"address_text": ["a", "b"], "notes": ["", "x"]},
        "visits_added": [], "visits_cancelled": [], "visits_changed": [s.visit_id],
    })],
    ev.OrderCancelled: lambda s: [ev.OrderCancelled(s.job_id, None, {"source": "erp", "external_ref": "SO-1", "reason": "out of stock", "visits": [s.visit_id]})],
    ev.CoverageGapFlagged: lambda s: [ev.CoverageGapFlagged(s.job_id, None, {"region": "Huangpu", "kinds": ["delivery"]})],
    ev.VisitEnRoute: lambda s: [ev.VisitEnRoute(s.job_id, s.visit_id, {"technician_id": s.driver_id})],
    ev.EtaUpdated: lambda s: [
        ev.EtaUpdated(s.job_id, s.visit_id, {"technician_id": s.driver_id, "minutes": minutes, "close": close}) for minutes, close in ((12, False), (2, True))
    ],
    ev.AppointmentReminderDue: lambda s: [ev.AppointmentReminderDue(s.job_id, s.visit_id, {})],
    ev.VisitCheckedIn: lambda s: [ev.VisitCheckedIn(s.job_id, s.visit_id, {"technician_id": s.driver_id, "distance_m": 20})],
    ev.VisitCompleted: lambda s: [ev.VisitCompleted(s.job_id, s.visit_id, {"technician_id": s.driver_id})],
    ev.ManualDispatchNeeded: lambda s: [ev.ManualDispatchNeeded(s.job_id, s.visit_id, {"candidates": [s.driver_id, s.other_id]})],
    ev.NoTechnicianAvailable: lambda s: [
        ev.NoTechnicianAvailable(s.job_id, s.visit_id, {"start": s.day}),
        ev.NoTechnicianAvailable(s.job_id, s.visit_id, {"start": s.day, "reason": "not_enough_technicians"}),
    ],
    ev.ReplanFailed: lambda s: [ev.ReplanFailed(s.job_id, None, {"day": s.day, "triggers": ["overrun"], "reason": "timeout", "regions": ["Huangpu"]})],
    ev.MessageNotDelivered: lambda s: [
        ev.MessageNotDelivered(s.job_id, None, {"who": "customer", "purpose": "survey", "why": "window", "reason": "no template"}),
        ev.MessageNotDelivered(s.job_id, s.visit_id, {"who": "technician", "purpose": "assignment", "why": "failed", "reason": "131026",
                                                       "technician_id": s.driver_id}),
    ],
    ev.ChatUnreachable: lambda s: [
        ev.ChatUnreachable(s.job_id, None, {"who": "customer", "reason": "blocked"}),
        ev.ChatUnreachable(s.job_id, s.visit_id, {"who": "technician", "reason": "blocked", "technician_id": s.driver_id}),
    ],
    ev.ExceptionReported: lambda s: [ev.ExceptionReported(s.job_id, s.visit_id, {"exception_id": s.report_id, "technician_id": s.driver_id})],
    ev.LowRatingReceived: lambda s: [ev.LowRatingReceived(s.job_id, s.visit_id, {"score": 1, "rating_id": 1, "technician_id": s.driver_id})],
    ev.MessageRelayed: lambda s: [
        ev.MessageRelayed(s.job_id, s.visit_id, {"thread_id": thread, "topic": "unknown", "text": "where is he?", "photo_id": None})
        for thread in s.thread_ids
    ],
    ev.NoSlotFits: lambda s: [ev.NoSlotFits(s.job_id, s.visit_id, {"kind": "delivery"})],
    ev.BookingReminderDue: lambda s: [ev.BookingReminderDue(s.job_id, s.visit_id, {"kind": "delivery"})],
    ev.BookingOverdue: lambda s: [ev.BookingOverdue(s.job_id, s.visit_id, {"kind": "delivery"})],
    ev.VisitMovedByDispatcher: lambda s: [ev.VisitMovedByDispatcher(s.job_id, s.visit_id, {"dispatcher_id": 1})],
    ev.AddressCorrected: lambda s: [ev.AddressCorrected(s.job_id, None, {"address": "12 Henan Road", "lat": None, "lon": None})],
    ev.CompletionReminderDue: lambda s: [ev.CompletionReminderDue(s.job_id, s.visit_id, {"technician_id": s.driver_id})],
    ev.ComplaintReceived: lambda s: [ev.ComplaintReceived(s.job_id, s.visit_id, {"rating_id": 1, "score": 1, "comment": "call 13912345678"})],
    ev.AlertAcknowledged: lambda s: [ev.AlertAcknowledged(s.job_id, s.visit_id, {"rating_id": 1, "dispatcher_id": 1, "name": "Dora"})],
    ev.CallbackParked: lambda s: [
        ev.CallbackParked(s.job_id, None, {"callback_id": 7, "type": "visit.completed", "event_id": "evt_1", "attempts": 20, "reason": "HTTP 500"})
    ],
    ev.RobotLinkUsed: lambda s: [ev.RobotLinkUsed(s.job_id, s.visit_id, {
        "link_id": 1, "route": "region:Huangpu", "action": f"xa:{s.visit_id}", "dispatcher_id": 1, "name": "Dora", "via": "robot_link",
        "done": {"key": "robot.done_acknowledged", "params": {"name": {"key": "=", "params": {"text": "Dora"}}}},
    })],
    ev.ThreadAnswered: lambda s: [
        ev.ThreadAnswered(s.job_id, s.visit_id, {"thread_id": s.thread_ids[0], "author": "dispatcher", "author_id": 1, "text": "soon"})
    ],
}


async def told(world: World) -> dict[str, list[Outbound]]:
    """What each notification reaction writes, in a shop where everyone it may tell has a chat."""
    order, _customer, _driver, _group = await booked_and_accepted(world)
    _, token = await world.technician("Li", ["driver"])
    await world.chat("staff", "li").send(f"/start {token}")
    await world._tx(lambda store: ScheduleStore(store).put_alert_sink(
        name="huangpu-wecom", region="Huangpu", kind="wecom", url="http://127.0.0.1:9/robot", secret=None, keyword=None, priority=0,
    ))
    written: dict[str, list[Outbound]] = {}
    async with world.container.sessions() as session, session.begin():
        ctx = HandlerContext(Store(session), world.clock.now(), world.container.policy)
        visit = await ctx.store.get(Visit, order.visits[0].id)
        photo = await ctx.store.add(Photo(visit.id, "web", "f1", "/tmp/evidence.jpg", "exception", created_at=ctx.now))
        report = await ctx.store.add(
            ProblemReport(visit.id, visit.technician_id, "wrong_address", "gate locked", [photo.id], created_at=ctx.now)
        )
        others = [t.id for t in await ctx.store.technicians() if t.id != visit.technician_id]
        # an installation after the delivery, someone else's: told when the delivery is done
        await ctx.store.add(Visit(visit.job_id, "installation", 2, 90, status="accepted", depends_on_visit_id=visit.id,
                                  technician_id=others[0], slot_start=visit.slot_end, slot_end=visit.slot_end))
        job = await ctx.store.get(Job, order.job.id)
        customer_chat = (await ctx.store.bindings_of("customer", job.customer_id))[0]
        threads = [
            await ctx.store.add(RelayThread(
                "customer", job.customer_id, customer_chat.platform, customer_chat.bot, customer_chat.chat_id, audience, "unknown",
                job.region, job.id, visit.id, visit.technician_id if audience == "technician" else None, created_at=ctx.now, updated_at=ctx.now,
            ))
            for audience in ("dispatchers", "technician")
        ]
        shop = Shop(order.job.id, visit.id, visit.technician_id, others[0], report.id,
                    visit.slot_start.astimezone(ctx.policy.tz).date().isoformat(), (threads[0].id, threads[1].id))
        for reaction, event_types in registry.NOTIFICATIONS:
            for event_type in event_types:
                for event in SAMPLES[event_type](shop):
                    written.setdefault(reaction.__name__, []).extend(await reaction(ctx, event))
        await session.rollback()  # reading only: nothing of this is meant to be sent
    return written


def test_there_is_a_sample_for_every_event_someone_is_told_about():
    told_about = {event_type for _reaction, event_types in registry.NOTIFICATIONS for event_type in event_types}
    assert told_about <= SAMPLES.keys()


async def test_every_message_a_notification_reaction_writes_says_what_it_is_for(world: World):
    written = await told(world)
    assert set(written) == {reaction.__name__ for reaction, _types in registry.NOTIFICATIONS}
    for name, messages in written.items():
        assert messages, f"{name} told nobody: the test shop lacks someone it tells"
        for message in messages:
            assert message.purpose is not Purpose.REPLY, (name, message.text["key"])
            assert message.payload()["purpose"] == message.purpose.value  # what the relay and channels read
            # the alert flag (a busy group may digest alerts) and the purpose agree
            assert message.alert == (message.purpose is Purpose.ALERT), (name, message.text["key"])
    purposes = {name: {m.purpose for m in messages} for name, messages in written.items()}
    assert purposes["offer_card_to_technician"] == {Purpose.ASSIGNMENT}
    assert purposes["remind_customer_of_appointment"] == {Purpose.REMINDER}
    assert purposes["send_day_plan"] == {Purpose.SCHEDULE}
    assert purposes["ask_customer_to_confirm_completion"] == {Purpose.SURVEY}
    assert purposes["tell_customer_on_the_way"] == {Purpose.STATUS}
    assert purposes["alert_dispatchers_of_exception"] == {Purpose.ALERT}


async def test_alerts_reach_groups_and_robots_with_the_customer_masked(world: World):
    written = await told(world)
    alerts = [m for messages in written.values() for m in messages if m.purpose is Purpose.ALERT]
    assert {m.to.platform for m in alerts} == {"web", "robot"}
    for message in alerts:
        shown = json.dumps(message.text, ensure_ascii=False)
        assert CUSTOMER_PHONE not in shown and CUSTOMER_NAME not in shown, message.text["key"]
    # the technician's own offer card does show them: that technician is going there
    card = written["offer_card_to_technician"][0].text["params"]
    assert (card["customer"], card["phone"]) == (CUSTOMER_NAME, CUSTOMER_PHONE)


async def test_an_event_a_reaction_raises_is_reacted_to_and_on_the_timeline(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    details = await world.job(order.job.id)
    driver_id = details["visits"][0]["technician"]["id"]

    async def watch_ratings(ctx, event):
        # as a KPI reaction could: a poor score becomes an event of its own, which the dispatchers are alerted to
        if event.data["score"] > 2:
            return []
        return [ev.LowRatingReceived(event.job_id, event.visit_id, event.data)]

    world.container.bus.reactions.add(watch_ratings, ev.RatingGiven)

    def rated(score: int):
        async def work(ctx):
            return [ev.RatingGiven(order.job.id, visit.id, {"score": score, "rating_id": score, "technician_id": driver_id})]
        return work

    good = await world.container.bus.run("test:rated-4", rated(4))
    assert [e.name for e in good] == ["RatingGiven"]
    assert await group.inbox() == []

    poor = await world.container.bus.run("test:rated-1", rated(1))
    assert [e.name for e in poor] == ["RatingGiven", "LowRatingReceived"]
    timeline = [entry["type"] for entry in (await world.job(order.job.id))["timeline"]]
    assert timeline[-3:] == ["RatingGiven", "RatingGiven", "LowRatingReceived"]
    alert = await group.inbox()
    assert keys(alert) == ["group.low_rating"]
    assert alert[0].params["score"] == 1 and alert[0].payload["purpose"] == "alert"
    assert alert[0].button("ra") == "ra:1"
