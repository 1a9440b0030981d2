"""Nothing left unowned (issue 10): chased bookings, "no time fits", alerts with actions and overrides, dispatchers moving
visits and correcting addresses, acknowledgements that record who and when, complaints, jobs that close without the customer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import lifecycle
from domain.model import Visit
from services.backoffice import ServiceRequest
from storage.repository import Store
from tests.support.harness import SHOP, Chat, Msg, World, keys
from tests.support.setups import DELIVERY_STEPS, booked_and_accepted, dispatch_group, staff


@pytest.fixture
def database_url(sqlite_url) -> str:
    """These dialogues run on SQLite only."""
    return sqlite_url


def alerts(messages: list[Msg], key: str) -> list[Msg]:
    return [m for m in messages if m.key == key]


def rating_id(alert: Msg) -> int:
    return int(alert.button("ra").split(":")[1])


async def timeline(world: World, job_id: int) -> list[dict]:
    return (await world.job(job_id))["timeline"]


async def complete(driver: Chat, visit_id: int) -> None:
    """On the way, checked in at the address, the one-step delivery checklist, completed."""
    await driver.press(f"go:{visit_id}")
    await driver.location(*SHOP)
    await driver.press(f"st:{visit_id}")
    await driver.press(f"ans:{visit_id}:0:yes")
    await driver.press(f"done:{visit_id}")


async def status_of(world: World, visit_id: int) -> str:
    async with world.container.sessions() as session:
        visit = await Store(session).get(Visit, visit_id)
        return visit.status


# --- a visit nobody books is chased ------------------------------------------------------------------------


async def test_a_visit_the_customer_never_books_reminds_them_once_then_goes_to_the_dispatchers(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    await staff(world, "Wang", ["driver"])
    group = await dispatch_group(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")  # opens the link, books nothing
    visit = order.visits[0]

    world.clock.advance(timedelta(hours=23))
    await world.sweep()
    assert await customer.inbox() == [] and alerts(await group.inbox(), "alert.booking_overdue") == []

    world.clock.advance(timedelta(hours=2))
    await world.sweep()
    reminder = await customer.inbox()
    assert keys(reminder) == ["dispatch.customer_booking_reminder"]
    assert reminder[0].button("bk") == f"bk:{visit.id}"

    world.clock.advance(timedelta(hours=24))
    await world.sweep()
    overdue = alerts(await group.inbox(), "alert.booking_overdue")
    assert len(overdue) == 1 and overdue[0].params["visit"] == visit.id
    assert overdue[0].params["phone"] == "139****5678"  # masked in the group
    for prefix in ("dmv", "sc", "dcx", "dfa", "dcl"):
        assert overdue[0].has_button(prefix), prefix
    assert await customer.inbox() == []  # reminded once only

    # the dispatcher books it from the group: the customer is told the time
    days = await group.press(overdue[0].button("dmv"))
    assert keys(days) == ["dispatch.move_pick_day"]
    windows = await group.press(days[0].buttons[1][1])
    assert keys(windows) == ["dispatch.move_pick_window"]
    moved = await group.press(windows[0].buttons[0][1])
    assert keys(moved)[0] == "dispatch.moved"
    assert keys(await customer.inbox()) == ["dispatch.customer_visit_moved"]
    assert await status_of(world, visit.id) == "booked"
    types = [e["type"] for e in await timeline(world, order.job.id)]
    assert ["BookingReminderDue", "BookingOverdue", "VisitMovedByDispatcher"] == [t for t in types if t in (
        "BookingReminderDue", "BookingOverdue", "VisitMovedByDispatcher")]


async def test_a_booked_visit_is_not_chased(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    world.clock.advance(timedelta(days=3))
    await world.sweep()
    assert "BookingReminderDue" not in [e["type"] for e in await timeline(world, order.job.id)]


# --- no time fits ---------------------------------------------------------------------------------------


async def test_no_slot_fits_tells_the_dispatchers_at_once_with_actions(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    group = await dispatch_group(world)  # no technician at all: no time can fit
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    visit = order.visits[0]
    answer = await customer.press(f"bk:{visit.id}")
    assert "customer.no_slots" in keys(answer)
    alert = alerts(await group.inbox(), "alert.no_slot_fits")
    assert len(alert) == 1 and alert[0].params["visit"] == visit.id
    assert alert[0].has_button("dmv") and alert[0].has_button("sc") and alert[0].has_button("dcx")
    # asking again does not flood the group
    await customer.press(f"bk:{visit.id}")
    assert alerts(await group.inbox(), "alert.no_slot_fits") == []


# --- no technician available: assign anyone, with the conflict shown and an explicit override -------------


async def two_drivers_one_busy(world: World):
    """Two long deliveries in the same window: the first accepted by one driver, the second declined by the other."""
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    wang_id, wang = await staff(world, "Wang", ["driver"])
    chen_id, chen = await staff(world, "Chen", ["driver"])
    group = await dispatch_group(world)
    long_delivery = (ServiceRequest("delivery", duration_minutes=120),)
    first = await world.order("SO-1", services=long_delivery)
    second = await world.order("SO-2", services=long_delivery, phone="13900000002")
    chats = {wang_id: wang, chen_id: chen}
    c1 = world.chat("customer", "c1")
    await c1.press((await c1.send(f"/start {first.customer_token}"))[-1].buttons[0][1])
    offered = [tid for tid, chat in chats.items() if "tech.offer" in keys(await chat.inbox())]
    busy_id = offered[0]
    await chats[busy_id].press(f"acc:{first.visits[0].id}")
    c2 = world.chat("customer", "c2")
    await c2.press((await c2.send(f"/start {second.customer_token}"))[-1].buttons[0][1])
    other_id = next(tid for tid in chats if tid != busy_id)
    await chats[other_id].press(f"dec:{second.visits[0].id}")
    return first, second, busy_id, chats, group, c2


async def test_a_no_technician_alert_offers_anyone_skilled_with_the_conflict_and_an_explicit_override(world: World):
    first, second, busy_id, chats, group, customer = await two_drivers_one_busy(world)
    visit = second.visits[0]
    alert = alerts(await group.inbox(), "group.no_technician")
    assert len(alert) == 1
    for prefix in ("dan", "dmv", "sc", "dcx"):
        assert alert[0].has_button(prefix), prefix

    listing = await group.press(alert[0].button("dan"))
    assert keys(listing) == ["dispatch.pick_anyone"]
    busy = listing[0].button("dab")
    assert busy == f"dab:{visit.id}:{busy_id}"
    label = next(label for label, data in listing[0].buttons if data == busy)
    assert label == "dispatch.choice_busy"

    confirm = await group.press(busy)
    assert keys(confirm) == ["dispatch.override_confirm"]
    conflict = confirm[0].params["conflict"]
    assert conflict["key"] == "dispatch.conflict_busy" and conflict["params"]["visit"] == first.visits[0].id
    assert await status_of(world, visit.id) == "booked"  # nothing changed before the override is confirmed

    assert keys(await group.press(confirm[0].button("dao"))) == ["dispatch.overridden"]
    assert "tech.offer" in keys(await chats[busy_id].inbox())
    override = [e for e in await timeline(world, second.job.id) if e["type"] == "ConflictOverridden"]
    assert len(override) == 1 and override[0]["data"]["technician_id"] == busy_id
    assert override[0]["data"]["conflicts"][0]["visit_id"] == first.visits[0].id
    assert override[0]["data"]["dispatcher_id"] is not None


async def test_a_dispatcher_cancels_a_visit_from_a_no_technician_alert(world: World):
    _first, second, _busy, _chats, group, customer = await two_drivers_one_busy(world)
    alert = alerts(await group.inbox(), "group.no_technician")[0]
    ask = await group.press(alert.button("dcx"))
    assert keys(ask) == ["dispatcher.cancel_confirm"]
    assert keys(await group.press(ask[0].button("dcy"))) == ["dispatcher.visit_cancelled"]
    assert await status_of(world, second.visits[0].id) == "cancelled"
    assert "customer.visit_cancelled" in keys(await customer.inbox())


async def test_the_api_refuses_a_busy_technician_naming_the_conflict_and_force_records_the_override(world: World, sqlite_api):
    api = sqlite_api
    shared = World(api.container, api.container.clock, world.media)
    first, second, busy_id, _chats, _group, _customer = await two_drivers_one_busy(shared)
    visit_id = second.visits[0].id
    refused = await api.client.post(f"/api/v1/visits/{visit_id}/assign", json={"technician_id": busy_id})
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("technician_busy: busy ") and f"visit {first.visits[0].id}" in refused.json()["detail"]
    forced = await api.client.post(f"/api/v1/visits/{visit_id}/assign", json={"technician_id": busy_id, "force": True})
    assert forced.status_code == 200
    body = forced.json()
    assert body["override"]["technician_id"] == busy_id and body["override"]["conflicts"][0]["visit_id"] == first.visits[0].id
    assert body["visits"][0]["technician"]["id"] == busy_id
    assert "ConflictOverridden" in [e["type"] for e in body["timeline"]]
    bad = await api.client.post(f"/api/v1/visits/{visit_id}/assign", json={"technician_id": busy_id, "force": "yes"})
    assert bad.status_code == 422


# --- acknowledging records who and when; the card cannot be pressed twice ---------------------------------


async def test_acknowledge_records_who_and_when_edits_the_card_and_a_second_press_names_them(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"rp:{visit.id}")
    await driver.press(f"rr:{visit.id}:customer_unreachable")
    await driver.press("rskip")
    await driver.press("rsend")
    alert = alerts(await group.inbox(), "group.exception")[-1]
    card = alert.payload.get("card")

    pressed = await group.press(alert.button("xa"))
    edited = [m for m in pressed if m.payload.get("card") == card]
    assert len(edited) == 1 and not edited[0].has_button("xa")  # the same card, without its Acknowledge
    again = await group.press(alert.button("xa"))
    assert keys(again) == ["dispatch.already_acknowledged"]
    assert again[0].params["name"]["params"]["text"] == "Dora"
    acknowledged = [e for e in await timeline(world, order.job.id) if e["type"] == "ExceptionAcknowledged"]
    assert len(acknowledged) == 1
    assert acknowledged[0]["data"]["name"] == "Dora" and acknowledged[0]["data"]["at"]


# --- a complaint reaches the dispatchers ---------------------------------------------------------------


async def test_a_low_rating_comment_reaches_the_dispatchers_as_a_complaint_with_actions(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await complete(driver, visit.id)
    await customer.inbox()
    await customer.press(f"cf:{visit.id}")
    rated = await customer.press(f"rt:{visit.id}:1")
    assert keys(rated) == ["dispatch.customer_rated_low"]  # not "Thanks for rating 1/5"
    await group.inbox()
    answer = await customer.send("The driver scratched the floor, call me on 13912345678")
    assert keys(answer) == ["dispatch.customer_complaint_received"]
    complaint = alerts(await group.inbox(), "alert.complaint")
    assert len(complaint) == 1
    assert "13912345678" not in str(complaint[0].params["comment"])  # masked in the group
    for prefix in ("sc", "dro", "dno", "ra"):
        assert complaint[0].has_button(prefix), prefix

    # reopen with a reason typed by the dispatcher who pressed (others' chatter is ignored)
    closed = (await world.job(order.job.id))["status"]
    assert closed == "done"
    ask = await group.press(complaint[0].button("dro"))
    assert keys(ask) == ["dispatch.ask_reopen"]
    assert await group.send("unrelated chat", user_id="someone") == []
    assert keys(await group.send("Customer wants the floor checked")) == ["dispatch.job_reopened"]
    job = await world.job(order.job.id)
    assert job["status"] == "open"
    reopened = [e for e in job["timeline"] if e["type"] == "JobReopened"]
    assert reopened[0]["data"]["reason"] == "Customer wants the floor checked"

    await group.press(complaint[0].button("dno"))
    assert keys(await group.send("Called back, visit on Friday")) == ["dispatch.note_added"]
    assert "NoteAdded" in [e["type"] for e in await timeline(world, order.job.id)]

    # acknowledged: the one card (the low rating's, which the complaint edited) loses its Acknowledge; a second press names who
    edited = await group.press(complaint[0].button("ra"))
    assert [m.payload.get("card") for m in edited] == [f"rating:{rating_id(complaint[0])}"]
    assert not any(m.has_button("ra") for m in edited) and all(m.has_button("dro") for m in edited)
    assert keys(await group.press(complaint[0].button("ra"))) == ["dispatch.already_acknowledged"]
    assert "AlertAcknowledged" in [e["type"] for e in await timeline(world, order.job.id)]


async def test_a_high_rating_comment_is_thanked_and_alerts_nobody(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await complete(driver, visit.id)
    await customer.press(f"cf:{visit.id}")
    await customer.press(f"rt:{visit.id}:5")
    await group.inbox()
    assert keys(await customer.send("Great")) == ["customer.thanks"]
    assert alerts(await group.inbox(), "alert.complaint") == []


# --- reassigned: the customer is told who comes now -------------------------------------------------------


async def test_a_reassignment_tells_the_customer_who_comes_now(world: World, sqlite_api):
    api = sqlite_api
    shared = World(api.container, api.container.clock, world.media)
    order, customer, driver, group = await booked_and_accepted(shared)
    chen_id, chen = await staff(shared, "Chen", ["driver"])
    await customer.inbox()
    moved = await api.client.post(f"/api/v1/visits/{order.visits[0].id}/assign", json={"technician_id": chen_id})
    assert moved.status_code == 200
    told = await customer.inbox()
    assert keys(told) == ["dispatch.customer_new_technician"] and told[0].params["technician"] == "Chen"


# --- dispatchers correct addresses and move visits -------------------------------------------------------------


async def test_a_dispatcher_corrects_the_address_from_the_group_and_the_technician_is_told(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    await driver.inbox()
    # an alert about the job offers the button (any alert with job actions: booking overdue, no slot)
    ask = await group.press(f"dfa:{order.job.id}")
    assert keys(ask) == ["dispatch.ask_address"]
    assert keys(await group.send("Huangpu, 12 Henan Road, gate B; 31.2350,121.4800")) == ["dispatch.address_corrected"]
    told = await driver.inbox()
    assert keys(told) == ["dispatch.tech_address_corrected"] and "Henan Road" in told[0].params["address"]
    job = await world.job(order.job.id)
    corrected = [e for e in job["timeline"] if e["type"] == "AddressCorrected"][0]["data"]
    assert corrected["lat"] == 31.235 and corrected["lon"] == 121.48


async def test_the_api_moves_a_visit_corrects_an_address_and_closes_and_reopens_a_job(world: World, sqlite_api):
    api = sqlite_api
    shared = World(api.container, api.container.clock, world.media)
    order, customer, driver, group = await booked_and_accepted(shared)
    visit = order.visits[0]
    job = await shared.job(order.job.id)
    start = job["visits"][0]["slot_start"] + timedelta(days=1)
    end = job["visits"][0]["slot_end"] + timedelta(days=1)
    await customer.inbox()
    moved = await api.client.post(f"/api/v1/visits/{visit.id}/reschedule", json={"start": start.isoformat(), "end": end.isoformat()})
    assert moved.status_code == 200, moved.text
    assert "VisitMovedByDispatcher" in [e["type"] for e in moved.json()["timeline"]]
    assert "dispatch.customer_visit_moved" in keys(await customer.inbox())
    off_window = await api.client.post(f"/api/v1/visits/{visit.id}/reschedule",
                                       json={"start": (start + timedelta(minutes=5)).isoformat(), "end": end.isoformat()})
    assert off_window.status_code == 422 and off_window.json()["detail"] == "slot_invalid"
    naive = await api.client.post(f"/api/v1/visits/{visit.id}/reschedule", json={"start": "2026-11-25T10:00:00", "end": "2026-11-25T12:00:00"})
    assert naive.status_code == 422
    assert (await api.client.post("/api/v1/visits/0/reschedule", json={"start": start.isoformat(), "end": end.isoformat()})).status_code == 422

    address = await api.client.post(f"/api/v1/jobs/{order.job.id}/address", json={"text": "12 Henan Road", "lat": 31.235, "lon": 121.48})
    assert address.status_code == 200
    half = await api.client.post(f"/api/v1/jobs/{order.job.id}/address", json={"text": "12 Henan Road", "lat": 31.235})
    assert half.status_code == 422
    assert (await api.client.post("/api/v1/jobs/999/address", json={"text": "x"})).status_code == 404

    closed = await api.client.post(f"/api/v1/jobs/{order.job.id}/close", json={"reason": "customer moved away"})
    assert closed.status_code == 200 and closed.json()["status"] == "cancelled"
    assert closed.json()["visits"][0]["status"] == "cancelled"
    again = await api.client.post(f"/api/v1/jobs/{order.job.id}/close", json={"reason": "again"})
    assert again.status_code == 422 and again.json()["detail"] == "job_already_closed"
    assert (await api.client.post(f"/api/v1/jobs/{order.job.id}/close", json={"reason": ""})).status_code == 422
    reopened = await api.client.post(f"/api/v1/jobs/{order.job.id}/reopen", json={"reason": "came back"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"


# --- jobs close without the customer ----------------------------------------------------------------------


async def test_a_completed_visit_not_confirmed_is_reminded_once_then_closed_as_confirmed_by_timeout(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await complete(driver, visit.id)
    await customer.inbox()
    await driver.inbox()

    world.clock.advance(timedelta(hours=25))
    await world.sweep()
    reminder = await customer.inbox()
    assert keys(reminder) == ["dispatch.customer_confirm_reminder"] and reminder[0].has_button("cf")

    world.clock.advance(timedelta(hours=48))
    await world.sweep()
    assert keys(await customer.inbox()) == ["dispatch.customer_closed_by_timeout"]
    assert keys(await driver.inbox()) == ["dispatch.tech_confirmed_by_timeout"]
    job = await world.job(order.job.id)
    assert job["status"] == "done" and job["visits"][0]["status"] == "confirmed"
    confirmed = [e for e in job["timeline"] if e["type"] == "VisitConfirmed"]
    assert confirmed[0]["data"]["by"] == "timeout"

    world.clock.advance(timedelta(days=3))
    await world.sweep()
    assert await customer.inbox() == []  # nothing fires twice


async def test_a_customer_who_confirms_in_time_is_not_reminded(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await complete(driver, visit.id)
    await customer.press(f"cf:{visit.id}")
    await customer.inbox()
    world.clock.advance(timedelta(days=4))
    await world.sweep()
    assert "dispatch.customer_confirm_reminder" not in keys(await customer.inbox())


async def test_an_urgent_visit_booked_without_a_customer_chat_closes_by_timeout(world: World):
    await world.template("delivery", "washer", DELIVERY_STEPS)
    _id, driver = await staff(world, "Wang", ["driver"], ["washer"])
    order = await world.order("URG-1", services=("delivery",), category="washer", product="Washing machine", priority="urgent")
    visit = order.visits[0]
    offer = [m for m in await driver.inbox() if m.key == "tech.offer"]
    if not offer:  # the urgent replan runs in the sweep
        await world.sweep()
        offer = [m for m in await driver.inbox() if m.key == "tech.offer"]
    await driver.press(f"acc:{visit.id}")
    await complete(driver, visit.id)
    assert await status_of(world, visit.id) == "completed"
    world.clock.advance(timedelta(hours=73))
    await world.sweep()
    job = await world.job(order.job.id)
    assert job["status"] == "done" and job["visits"][0]["status"] == "confirmed"


async def test_a_dispatcher_closes_a_job_from_the_group_with_a_reason(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    group = await dispatch_group(world)
    order = await world.order(services=("delivery",))
    ask = await group.press(f"dcl:{order.job.id}")
    assert keys(ask) == ["dispatch.ask_close"]
    assert keys(await group.send("/cancel")) == ["common.cancelled"]
    assert (await world.job(order.job.id))["status"] == "open"
    await group.press(f"dcl:{order.job.id}")
    assert keys(await group.send("Duplicate of SO-7")) == ["dispatch.job_closed"]
    job = await world.job(order.job.id)
    assert job["status"] == "cancelled"
    closed = [e for e in job["timeline"] if e["type"] == "JobClosed"][0]["data"]
    assert closed["reason"] == "Duplicate of SO-7" and closed["by"] == "dispatcher"


async def test_a_visit_unbooked_and_not_booked_again_is_chased_from_when_it_was_unbooked(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit_id = order.visits[0].id
    world.clock.advance(timedelta(days=2))  # long after the job was created: the first chase is long cancelled

    async def unbook(ctx):
        visit = await ctx.store.load(Visit, visit_id)
        return [lifecycle.unbook(visit, visit.job_id)]

    await world.container.bus.run("test:unbook", unbook)
    await customer.inbox()
    world.clock.advance(timedelta(hours=23))
    await world.sweep()
    assert await customer.inbox() == []
    world.clock.advance(timedelta(hours=2))
    await world.sweep()
    assert keys(await customer.inbox()) == ["dispatch.customer_booking_reminder"]
    world.clock.advance(timedelta(hours=24))
    await world.sweep()
    assert len(alerts(await group.inbox(), "alert.booking_overdue")) == 1


async def test_any_visit_can_be_rescheduled_from_the_group_with_visit(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    assert keys(await group.send(f"/visit {visit.id}", user_id="nosy")) == ["dispatcher.not_allowed"]
    assert keys(await group.send("/visit 99999999999")) == ["dispatch.visit_usage"]
    card = await group.send(f"/visit {visit.id}")
    assert keys(card) == ["dispatch.visit_card"]
    for prefix in ("dan", "dmv", "sc", "dcx", "dfa", "dcl"):
        assert card[0].has_button(prefix), prefix
    before = (await world.job(order.job.id))["visits"][0]["slot_start"]
    days = await group.press(card[0].button("dmv"))
    windows = await group.press(days[0].buttons[2][1])
    await driver.inbox()
    await customer.inbox()
    assert keys(await group.press(windows[0].buttons[-2][1])) == ["dispatch.moved"]
    assert keys(await customer.inbox()) == ["dispatch.customer_visit_moved"]
    assert "tech.visit_rescheduled" in keys(await driver.inbox())  # it left the driver's list: offered again for the new time
    assert (await world.job(order.job.id))["visits"][0]["slot_start"] != before
