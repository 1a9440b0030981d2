"""Event-triggered local replanning and the nightly plan: timers as data, solved outside transactions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.model import Technician
from services import replanning
from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.support.harness import SHOP, World, keys, local
from tests.support.setups import give, staff, timers, urgent_order, visit_row, visits_in
from tests.support.api import order_body, running_api, technician_body


@pytest.fixture
def world_settings() -> dict:
    """Short optimizer runs: these days have a handful of visits."""
    return {"replan_seconds": 0.5, "plan_seconds": 0.5}


# --- off duty -------------------------------------------------------------------------------------


async def test_going_off_duty_moves_visits_not_started_to_a_colleague_and_tells_only_those_concerned(world: World):
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    li, li_chat = await staff(world, "Li", ["installer"], ["wardrobe"])
    first = await world.order(ref="SO-1", services=("delivery",), phone="13900000001")
    second = await world.order(ref="SO-2", services=("delivery",), phone="13900000002", lat=SHOP[0] + 0.01)
    under_way = await world.order(ref="SO-3", services=("delivery",), phone="13900000003")
    wardrobe = await world.order(ref="SO-4", services=("installation",), category="wardrobe", phone="13900000004")
    tomorrow = await world.order(ref="SO-5", services=("delivery",), phone="13900000005")
    v1, v2, v3, v4, v5 = (o.visits[0].id for o in (first, second, under_way, wardrobe, tomorrow))
    await give(world, v1, wang, local(23, 11), local(23, 13))
    await give(world, v2, wang, local(23, 14), local(23, 16))
    await give(world, v3, wang, local(23, 9), local(23, 11), status="en_route")
    await give(world, v4, li, local(23, 14), local(23, 16), planned=local(23, 15))
    await give(world, v5, wang, local(24, 9), local(24, 11))
    customer = world.chat("customer", "c1")
    await customer.send(f"/start {first.customer_token}")
    await customer.inbox()
    world.clock.set(local(23, 10))

    assert keys(await wang_chat.send("/offduty")) == ["tech.off_duty"]
    world.clock.advance(timedelta(minutes=1))
    assert keys(await wang_chat.send("/offduty")) == ["tech.off_duty"]  # said twice, replanned once
    queued = await timers(world, "replan")
    assert sorted((t["payload"]["day"], t["due_at"]) for t in queued) == [("2026-11-23", local(23, 10)), ("2026-11-24", local(23, 18))]

    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [v1, v2]
    assert visits_in(await wang_chat.inbox(), "tech.visit_taken_away") == [v1, v2]
    assert await li_chat.inbox() == []  # her day did not change: no message, and her planned start stays
    assert (await visit_row(world, v4)).planned_start == local(23, 15)
    started = await visit_row(world, v3)
    assert (started.technician_id, started.status) == (wang, "en_route")
    assert (await visit_row(world, v5)).technician_id == wang  # a later day waits for the evening before

    await chen_chat.press(f"acc:{v1}")
    told = await customer.inbox()
    # told at the reassignment who is asked now, and again when they said yes
    assert keys(told) == ["dispatch.customer_new_technician", "customer.assigned"]
    assert [m.params["technician"] for m in told] == ["Chen", "Chen"]
    assert await world.sweep() == 0
    assert await chen_chat.inbox() == [] and await wang_chat.inbox() == []

    world.clock.set(local(23, 18))
    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [v5]
    assert visits_in(await wang_chat.inbox(), "tech.visit_taken_away") == [v5]
    assert keys(await wang_chat.send("/onduty")) == ["tech.on_duty"]
    async with world.container.sessions() as session:
        assert (await Store(session).get(Technician, wang)).on_duty is True


async def test_back_on_duty_before_the_evening_keeps_a_later_days_visits(world: World):
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    order = await world.order(services=("delivery",))
    await give(world, order.visits[0].id, wang, local(24, 9), local(24, 11))
    await wang_chat.send("/offduty")
    await wang_chat.send("/onduty")
    world.clock.set(local(23, 18))
    await world.sweep()
    assert (await visit_row(world, order.visits[0].id)).technician_id == wang
    assert await chen_chat.inbox() == [] and await wang_chat.inbox() == []


# --- urgent orders --------------------------------------------------------------------------------


async def test_an_urgent_order_gets_the_next_hours_today_and_a_replan_offers_it(world: World):
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    li, li_chat = await staff(world, "Li", ["installer"], ["wardrobe"])
    wardrobe = await world.order(ref="SO-4", services=("installation",), category="wardrobe", phone="13900000004")
    await give(world, wardrobe.visits[0].id, li, local(23, 14), local(23, 16), planned=local(23, 15))
    order = await urgent_order(world)
    visit = await visit_row(world, order.visits[0].id)
    # Monday 08:00: opening at 09:00, four hours from then, no booking by the customer
    assert (visit.status, visit.technician_id, visit.slot_start, visit.slot_end) == ("booked", None, local(23, 9), local(23, 13))
    async with world.container.sessions() as session:
        run = await replanning.prepare(Store(session), local(23, 9).date(), world.container.policy, world.clock.now())
    assert run.dp.problem.visit(str(visit.id)).priority == replanning.URGENT_PRIORITY
    customer = world.chat("customer", "urgent")
    await customer.send(f"/start {order.customer_token}")
    await customer.inbox()

    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [visit.id]
    assert await li_chat.inbox() == []
    await chen_chat.press(f"acc:{visit.id}")
    told = await customer.inbox()
    assert keys(told) == ["customer.assigned"] and told[0].params["technician"] == "Chen"
    assert told[0].params["slot"] == {"_span": [local(23, 9).isoformat(), local(23, 13).isoformat()]}
    assert await world.sweep() == 0


async def test_an_urgent_order_nobody_can_take_is_escalated_and_goes_to_whoever_comes_on_duty(world: World):
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    await group.inbox()
    await chen_chat.send("/offduty")
    order = await urgent_order(world)
    await world.sweep()
    alert = await group.inbox()
    assert keys(alert) == ["group.no_technician_planned"] and alert[0].params["visit"] == order.visits[0].id

    assert keys(await chen_chat.send("/onduty")) == ["tech.on_duty"]
    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [order.visits[0].id]
    assert await group.inbox() == []


async def test_a_crash_between_solving_and_applying_leaves_the_replan_to_fire_again(world: World, monkeypatch):
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    order = await urgent_order(world)

    async def crash(ctx, run, plan):
        raise RuntimeError("power cut")

    monkeypatch.setattr(replanning, "apply_replan", crash)
    await world.sweep()
    # the apply rolled back; the replan fires again a minute later (a failure backs off, see test_replan_failures)
    assert [(t["status"], t["due_at"]) for t in await timers(world, "replan")] == [
        ("done", world.clock.now()), ("pending", world.clock.now() + timedelta(minutes=1))]
    assert await chen_chat.inbox() == []
    assert (await visit_row(world, order.visits[0].id)).technician_id is None

    monkeypatch.undo()
    world.clock.advance(timedelta(minutes=1))
    await world.sweep()
    assert [t["status"] for t in await timers(world, "replan")] == ["done", "done"]
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [order.visits[0].id]
    assert await world.sweep() == 0  # fired once: a second sweep changes nothing
    assert await chen_chat.inbox() == []


# --- overruns -------------------------------------------------------------------------------------


async def start_work(world: World, chat, visit_id: int) -> None:
    await chat.press(f"go:{visit_id}")
    await chat.location(*SHOP)
    await chat.press(f"st:{visit_id}")
    await chat.inbox()


async def overrun_day(world: World, next_window: tuple[datetime, datetime]):
    """Wang works on a 45-minute delivery from 09:00; his next stop was planned for 10:00."""
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    first = await world.order(ref="SO-1", services=("delivery",), phone="13900000001")
    second = await world.order(ref="SO-2", services=("delivery",), phone="13900000002", lat=SHOP[0] + 0.01)
    v1, v2 = first.visits[0].id, second.visits[0].id
    await give(world, v1, wang, local(23, 9), local(23, 11), planned=local(23, 9))
    await give(world, v2, wang, *next_window, planned=local(23, 10))
    world.clock.set(local(23, 9))
    await start_work(world, wang_chat, v1)
    return v1, v2, wang, wang_chat, chen_chat


async def test_work_still_going_past_its_end_moves_the_rest_of_the_day_and_tells_the_technician(world: World):
    v1, v2, wang, wang_chat, chen_chat = await overrun_day(world, (local(23, 9), local(23, 11)))
    world.clock.set(local(23, 9, 59))
    await world.sweep()
    assert await timers(world, "replan") == []  # planned end 09:45 + 15 minutes' grace not reached yet

    world.clock.set(local(23, 10))
    await world.sweep()
    told = [m for m in await wang_chat.inbox() if not m.key.startswith("tech.sla_")]
    assert keys(told) == ["tech.day_plan_changed"] and told[0].params["count"] == 1
    moved = await visit_row(world, v2)
    assert moved.technician_id == wang and moved.planned_start >= local(23, 10, 15)
    assert await chen_chat.inbox() == []
    assert [t["status"] for t in await timers(world, "overrun")] == ["done"]

    await world.sweep()  # fired once; firing the same sweep again changes nothing
    assert [m for m in await wang_chat.inbox() if not m.key.startswith("tech.sla_")] == []
    assert len(await timers(world, "replan")) == 1


async def test_an_overrun_that_would_miss_the_next_window_gives_that_visit_to_a_colleague(world: World):
    v1, v2, wang, wang_chat, chen_chat = await overrun_day(world, (local(23, 9), local(23, 10, 10)))
    world.clock.set(local(23, 10))
    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [v2]
    assert visits_in(await wang_chat.inbox(), "tech.visit_taken_away") == [v2]
    assert (await visit_row(world, v1)).technician_id == wang  # the work under way stays


async def test_work_finished_in_time_replans_nothing(world: World):
    v1, v2, wang, wang_chat, chen_chat = await overrun_day(world, (local(23, 9), local(23, 11)))
    world.clock.set(local(23, 9, 40))
    await wang_chat.press(f"done:{v1}")
    world.clock.set(local(23, 10))
    await world.sweep()
    assert [t["status"] for t in await timers(world, "overrun")] == ["done"]
    assert await timers(world, "replan") == []
    assert "tech.day_plan_changed" not in keys(await wang_chat.inbox())
    assert (await visit_row(world, v2)).planned_start == local(23, 10)


# --- the nightly plan -----------------------------------------------------------------------------


async def test_the_nightly_run_plans_tomorrow_and_sets_the_next_night(world: World):
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    orders = [await world.order(ref=f"SO-{n}", services=("delivery",), phone=f"1390000000{n}", lat=SHOP[0] + 0.01 * n) for n in range(2)]
    for order in orders:
        await give(world, order.visits[0].id, None, local(24, 9), local(24, 11), status="booked")
    await world.container.replanner.ensure_nightly()
    await world.container.replanner.ensure_nightly()  # idempotent, so every start may call it
    assert [(t["key"], t["due_at"]) for t in await timers(world, replanning.NIGHTLY)] == [("nightly:2026-11-24", local(23, 20))]

    world.clock.set(local(23, 19, 59))
    assert await world.sweep() == 0
    world.clock.set(local(23, 20))
    await world.sweep()
    offers = await wang_chat.inbox() + await chen_chat.inbox()
    assert visits_in(offers, "tech.offer") == sorted(o.visits[0].id for o in orders)
    assert "tech.day_plan_changed" not in keys(offers)  # tomorrow's order reaches them with the morning plan
    nightly = await timers(world, replanning.NIGHTLY)
    assert [(t["key"], t["status"], t["due_at"]) for t in nightly] == [
        ("nightly:2026-11-24", "done", local(23, 20)), ("nightly:2026-11-25", "pending", local(24, 20))]
    assert await world.sweep() == 0


# --- the API --------------------------------------------------------------------------------------


async def test_patch_technician_sets_duty_and_validates_its_body(database_url, tmp_path):
    async with running_api(database_url, tmp_path) as api:
        client = api.client
        created = await client.post("/api/v1/technicians", json=technician_body())
        technician_id = created.json()["id"]
        assert (await client.patch("/api/v1/technicians/9999", json={"on_duty": False})).status_code == 404
        for bad in ({}, {"on_duty": "maybe"}, {"on_duty": 0}, {"on_duty": False, "name": "x"}):
            assert (await client.patch(f"/api/v1/technicians/{technician_id}", json=bad)).status_code == 422, bad
        off = await client.patch(f"/api/v1/technicians/{technician_id}", json={"on_duty": False})
        assert off.status_code == 200 and off.json() == {"id": technician_id, "name": "Li", "on_duty": False}
        async with api.container.sessions() as session:
            assert (await Store(session).get(Technician, technician_id)).on_duty is False
        on = await client.patch(f"/api/v1/technicians/{technician_id}", json={"on_duty": True})
        assert on.json()["on_duty"] is True


async def test_an_urgent_api_order_is_booked_for_the_next_hours_and_a_bad_priority_is_refused(database_url, tmp_path):
    async with running_api(database_url, tmp_path) as api:
        assert (await api.client.post("/api/v1/orders", json=order_body(priority="asap"))).status_code == 422
        created = (await api.client.post("/api/v1/orders", json=order_body(priority="urgent"))).json()
        delivery, installation = created["job"]["visits"]
        assert (delivery["kind"], delivery["status"]) == ("delivery", "booked")
        assert datetime.fromisoformat(delivery["slot_start"]) == local(23, 9)
        assert datetime.fromisoformat(delivery["slot_end"]) == local(23, 13)
        assert installation["status"] == "created"  # the customer books the installation after the delivery
        async with api.container.sessions() as session:
            queued = await ScheduleStore(Store(session)).timers_of_kind("replan")
        assert [t["payload"]["visits"] for t in queued] == [[delivery["id"]]]


# --- shifts that have ended -----------------------------------------------------------------------


@pytest.fixture
async def late_world(database_url, tmp_path):
    """Open until 21:00, so that an urgent order at 18:30 is for today."""
    world = await World.create(database_url, tmp_path, replan_seconds=0.5, plan_seconds=0.5, business_hours="09:00-21:00")
    yield world
    await world.close()


async def shift(world: World, technician_id: int, start: str, end: str, weekdays=(0, 1, 2, 3, 4, 5, 6)) -> None:
    async def change(store: Store):
        technician = await store.get(Technician, technician_id)
        technician.working_hours = {"weekdays": list(weekdays), "start": start, "end": end}

    await world._tx(change)


async def test_an_urgent_order_after_one_shift_has_ended_goes_to_whoever_still_works(late_world: World, caplog):
    world = late_world
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    await shift(world, wang, "09:00", "17:00")
    await shift(world, chen, "09:00", "20:00")
    world.clock.set(local(23, 18, 30))
    order = await urgent_order(world)
    visit = order.visits[0].id

    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [visit]
    assert await wang_chat.inbox() == []
    assert [t["status"] for t in await timers(world, "replan")] == ["done"]
    assert not [r for r in caplog.records if r.levelno >= 30 and r.name.startswith("services")]
    async with world.container.sessions() as session:
        run = await replanning.prepare(Store(session), local(23, 18).date(), world.container.policy, world.clock.now())
    assert [(u.technician_id, u.reason) for u in run.dp.unavailable] == [(str(wang), "shift_over")]
    assert [t.id for t in run.dp.problem.technicians] == [str(chen)]


async def test_going_off_duty_after_a_colleagues_shift_ended_moves_both_their_visits_to_whoever_still_works(late_world: World):
    world = late_world
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    li, li_chat = await staff(world, "Li", ["driver"])
    await shift(world, wang, "09:00", "17:00")
    await shift(world, chen, "09:00", "20:00")
    await shift(world, li, "09:00", "21:00")
    missed = await world.order(ref="SO-1", services=("delivery",), phone="13900000001")
    evening = await world.order(ref="SO-2", services=("delivery",), phone="13900000002", lat=SHOP[0] + 0.01)
    v1, v2 = missed.visits[0].id, evening.visits[0].id
    # Wang's visit is still open, but his shift is over: it needs someone else like any visit without a technician
    await give(world, v1, wang, local(23, 18), local(23, 20), planned=local(23, 16))
    await give(world, v2, chen, local(23, 19), local(23, 20), planned=local(23, 19))
    world.clock.set(local(23, 18, 30))

    assert keys(await chen_chat.send("/offduty")) == ["tech.off_duty"]
    await world.sweep()
    assert visits_in(await li_chat.inbox(), "tech.offer") == [v1, v2]
    assert visits_in(await wang_chat.inbox(), "tech.visit_taken_away") == [v1]
    assert visits_in(await chen_chat.inbox(), "tech.visit_taken_away") == [v2]
    assert [t["status"] for t in await timers(world, "replan")] == ["done"]


async def test_a_visit_whose_window_is_over_is_escalated_with_that_reason_while_the_urgent_order_is_placed(late_world: World):
    world = late_world
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    await shift(world, wang, "09:00", "17:00")
    await shift(world, chen, "09:00", "20:00")
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    await group.inbox()
    missed = await world.order(ref="SO-1", services=("delivery",), phone="13900000001")
    await give(world, missed.visits[0].id, wang, local(23, 16), local(23, 18), planned=local(23, 16))
    world.clock.set(local(23, 18, 30))

    urgent = await urgent_order(world)
    await world.sweep()
    alerts = await group.inbox()
    assert keys(alerts) == ["group.no_technician_planned"] and alerts[0].params["visit"] == missed.visits[0].id
    assert alerts[0].params["reason"]["key"] == "plan_reason.window_passed"
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [urgent.visits[0].id]
    assert (await visit_row(world, missed.visits[0].id)).technician_id == wang  # nobody else can take it: as it was
    assert [t["status"] for t in await timers(world, "replan")] == ["done"]


async def test_the_nightly_run_gives_the_visits_of_someone_not_working_tomorrow_to_a_colleague(world: World):
    zhao, zhao_chat = await staff(world, "Zhao", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    await shift(world, zhao, "09:00", "18:00", weekdays=(5, 6))  # weekends only; tomorrow is a Tuesday
    order = await world.order(services=("delivery",))
    await give(world, order.visits[0].id, zhao, local(24, 9), local(24, 11))
    async with world.container.sessions() as session:
        run = await replanning.prepare(Store(session), local(24, 9).date(), world.container.policy, world.clock.now(), full=True)
    assert [(u.technician_id, u.reason) for u in run.dp.unavailable] == [(str(zhao), "not_working_that_day")]

    await world.container.replanner.ensure_nightly()
    world.clock.set(local(23, 20))
    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [order.visits[0].id]
    assert visits_in(await zhao_chat.inbox(), "tech.visit_taken_away") == [order.visits[0].id]
