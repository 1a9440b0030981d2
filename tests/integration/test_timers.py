"""Timers as data: SLA tiers, reminders, day plans and live arrival estimates, with an injected clock."""

from __future__ import annotations

from datetime import timedelta


from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.support.harness import SHANGHAI_OFFSET, SHOP, World, keys, local
from tests.support.setups import delivery_offered

async def test_an_unanswered_offer_reminds_then_warns_then_alerts_the_group_once_each(world: World):
    visit, customer, driver, group = await delivery_offered(world)
    assert keys(await driver.inbox()) == ["tech.offer"]
    # offered at 08:00 Monday; the 30 business minutes run from opening at 09:00
    world.clock.set(local(23, 9, 14))
    assert await world.sweep() == 0
    world.clock.set(local(23, 9, 15))
    await world.sweep()
    assert keys(await driver.inbox()) == ["tech.sla_accept_reminder"]
    world.clock.set(local(23, 9, 24))
    await world.sweep()
    assert keys(await driver.inbox()) == ["tech.sla_accept_warning"]
    world.clock.set(local(23, 9, 30))
    await world.sweep()
    alert = await group.inbox()
    assert keys(alert) == ["group.sla_breached"]
    assert {d.split(":")[0] for _, d in alert[0].buttons} == {"sr", "sx", "sc"}
    assert alert[0].params["phone"] == "139****5678"
    # a second sweep finds nothing left to fire
    assert await world.sweep() == 0
    assert await group.inbox() == [] and await driver.inbox() == []


async def test_accepting_stops_the_acceptance_clock_and_starts_contact_and_arrival(world: World):
    visit, customer, driver, group = await delivery_offered(world)
    await driver.press(f"acc:{visit.id}")
    world.clock.set(local(23, 9, 31))
    await world.sweep()
    assert "tech.sla_accept_reminder" not in keys(await driver.inbox())
    assert await group.inbox() == []
    # contacting the customer stops the contact clock: nothing more about it
    await driver.press(f"ct:{visit.id}")
    async with world.container.sessions() as session:
        timers = await ScheduleStore(Store(session)).timers_of(visit.id)
    contact = [t for t in timers if ":contact:" in t["key"]]
    assert contact and all(t["status"] in ("cancelled", "done") for t in contact)
    arrival = [t for t in timers if ":arrival:" in t["key"]]
    assert arrival and max(t["due_at"] for t in arrival) == (await world.job(visit.job_id))["visits"][0]["slot_end"]


async def test_a_dispatcher_extends_the_deadline_or_gets_phone_numbers_in_private(world: World):
    visit, customer, driver, group = await delivery_offered(world)
    world.clock.set(local(23, 9, 30))
    await world.sweep()
    alert = (await group.inbox())[-1]
    extended = await group.press(alert.button("sx"))
    assert keys(extended) == ["dispatcher.extended"]
    world.clock.set(local(23, 9, 59))
    await world.sweep()
    assert await group.inbox() == []
    world.clock.set(local(23, 10, 0))
    await world.sweep()
    assert keys(await group.inbox()) == ["group.sla_breached"]

    details = await group.press(alert.button("sc"))
    assert keys(details) == ["dispatcher.details_sent"]
    private = world.chat("staff", "dora")
    sent = await private.inbox()
    assert keys(sent) == ["dispatcher.call_details"] and sent[0].params["customer_phone"] == {"key": "=", "params": {"text": "13912345678"}}
    # nobody else may ask
    assert keys(await group.press(alert.button("sc"), user_id="nosy")) == ["dispatcher.not_allowed"]


async def test_the_customer_is_reminded_the_evening_before_and_the_technician_gets_the_day_plan(world: World):
    visit, customer, driver, group = await delivery_offered(world, slot=-1)
    await driver.press(f"acc:{visit.id}")
    await customer.inbox()
    await driver.inbox()
    job = await world.job(visit.job_id)
    slot_start = job["visits"][0]["slot_start"]
    day = (slot_start + SHANGHAI_OFFSET).day
    world.clock.set(local(day - 1, 18, 0))
    await world.sweep()
    reminder = await customer.inbox()
    assert keys(reminder) == ["customer.reminder"]
    assert keys(await customer.press(reminder[0].button("ok"))) == ["customer.appointment_confirmed"]
    world.clock.set(local(day, 7, 30))
    await world.sweep()
    plan = [m for m in await driver.inbox() if m.key == "tech.day_plan"]
    assert len(plan) == 1 and plan[0].params["count"] == 1


async def test_cancelling_a_visit_cancels_its_timers(world: World):
    visit, customer, driver, group = await delivery_offered(world, slot=-1)
    await driver.press(f"acc:{visit.id}")
    await customer.press(f"cx:{visit.id}")
    await customer.press(f"cxy:{visit.id}")
    async with world.container.sessions() as session:
        timers = await ScheduleStore(Store(session)).timers_of(visit.id)
    assert timers and all(t["status"] != "pending" for t in timers)
    world.clock.advance(timedelta(days=10))
    await world.sweep()
    assert "customer.reminder" not in keys(await customer.inbox())


async def test_live_location_updates_the_estimate_and_says_almost_there_once(world: World):
    visit, customer, driver, group = await delivery_offered(world)
    await driver.press(f"acc:{visit.id}")
    await driver.press(f"go:{visit.id}")
    await customer.inbox()
    assert await driver.location(SHOP[0] + 0.09, SHOP[1], live=True) == []  # ~10 km away
    first = await customer.inbox()
    assert keys(first) == ["customer.eta"] and first[0].params["minutes"] >= 20
    await driver.location(SHOP[0] + 0.088, SHOP[1], live=True)  # barely moved
    assert await customer.inbox() == []
    await driver.location(SHOP[0] + 0.005, SHOP[1], live=True)  # ~550 m
    assert keys(await customer.inbox()) == ["customer.almost_there"]
    await driver.location(SHOP[0] + 0.0048, SHOP[1], live=True)
    assert await customer.inbox() == []
    # arriving with live location on checks the technician in
    assert keys(await driver.location(SHOP[0] + 0.001, SHOP[1], live=True)) == ["tech.checked_in"]
    assert keys(await customer.inbox()) == ["customer.arrived"]


async def test_with_auto_reassign_an_unanswered_offer_moves_to_the_next_technician(world: World):
    await world._tx(lambda store: ScheduleStore(store).put_sla_policy(
        region=None, service_kind=None, stage="accept", minutes=30, tiers=[100], auto_reassign=True))
    visit, customer, driver, group = await delivery_offered(world)
    _, token = await world.technician("Chen", ["driver"])
    other = world.chat("staff", "other")
    await other.send(f"/start {token}")
    await driver.inbox()
    world.clock.set(local(23, 9, 30))
    await world.sweep()
    assert keys(await other.inbox()) == ["tech.offer"]
    assert keys(await group.inbox()) == ["group.sla_breached"]
    assert keys(await driver.press(f"acc:{visit.id}")) == ["tech.offer_gone"]
