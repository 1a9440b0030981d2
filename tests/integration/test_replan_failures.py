"""A replan that fails backs off and tells the dispatchers once; the solver is never handed an empty window."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from services import planning, replanning
from tests.support.harness import World, keys, local
from tests.support.setups import dispatch_group, give, staff, timers, urgent_order, visits_in


@pytest.fixture
def world_settings() -> dict:
    return {"replan_seconds": 0.5, "plan_seconds": 0.5}


class Fault:
    """Makes every solve fail, as OR-Tools did on an empty start window, until it is cleared."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        self._monkeypatch = monkeypatch
        self._real = planning.solve_in_worker
        monkeypatch.setattr(planning, "solve_in_worker", self._fail)

    async def _fail(self, problem, time_limit_s, pool=None):
        self.calls += 1
        raise Exception("CP Solver fail")

    def clear(self) -> None:
        self._monkeypatch.setattr(planning, "solve_in_worker", self._real)


async def pending(world: World, kind: str = replanning.REPLAN) -> list[dict]:
    return [t for t in await timers(world, kind) if t["status"] == "pending"]


def failures(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "services.replanning" and "failed" in r.getMessage()]




async def test_a_replan_that_keeps_failing_backs_off_tells_the_dispatchers_once_and_applies_once_the_fault_is_gone(world: World, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    group = await dispatch_group(world)
    order = await urgent_order(world)
    fault = Fault(monkeypatch)

    await world.sweep()
    assert fault.calls == 1
    [retry] = await pending(world)
    assert retry["due_at"] == world.clock.now() + timedelta(minutes=1)
    alert = await group.inbox()
    assert keys(alert) == ["group.replan_failed"]
    assert alert[0].params == {"day": "2026-11-23", "reason": "Exception: CP Solver fail"}

    world.clock.advance(timedelta(seconds=15))  # the next sweep: the replan waits instead of failing again
    assert await world.sweep() == 0 and fault.calls == 1

    for wait in (2, 4, 8):
        world.clock.set(retry["due_at"])
        await world.sweep()
        [retry] = await pending(world)
        assert retry["due_at"] - world.clock.now() == timedelta(minutes=wait)
    assert fault.calls == 4
    assert await group.inbox() == [] and await chen_chat.inbox() == []  # told once; nobody moved
    logged = failures(caplog)
    assert len(logged) == 4 and all("CP Solver fail" in r.getMessage() for r in logged)
    assert [r.exc_info is not None for r in logged] == [True, False, False, False]  # one traceback, then a line each
    timeline = (await world.job(order.job.id))["timeline"]
    assert [e["type"] for e in timeline].count("ReplanFailed") == 1

    fault.clear()
    world.clock.set(retry["due_at"])
    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [order.visits[0].id]
    assert await pending(world) == [] and await group.inbox() == []
    assert await world.sweep() == 0


async def test_a_new_trigger_while_backing_off_takes_the_retries_along_and_alerts_nobody_twice(world: World, monkeypatch):
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    group = await dispatch_group(world)
    first = await urgent_order(world, ref="URG-1", phone="13900000001")
    fault = Fault(monkeypatch)
    await world.sweep()
    assert keys(await group.inbox()) == ["group.replan_failed"]

    world.clock.advance(timedelta(seconds=30))
    second = await urgent_order(world, ref="URG-2", phone="13900000002")
    await world.sweep()
    assert fault.calls == 2  # at once: a new trigger is not held back by the others' pause
    retries = await pending(world)
    assert sorted(r["payload"]["visits"][0] for r in retries) == [first.visits[0].id, second.visits[0].id]
    assert {(r["payload"]["attempt"], r["due_at"] - world.clock.now()) for r in retries} == {(2, timedelta(minutes=2))}
    assert await group.inbox() == []

    fault.clear()
    world.clock.advance(timedelta(minutes=2))
    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [first.visits[0].id, second.visits[0].id]
    assert await pending(world) == []


async def test_after_a_success_the_next_failure_is_told_again(world: World, monkeypatch):
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    group = await dispatch_group(world)
    await urgent_order(world, ref="URG-1", phone="13900000001")
    fault = Fault(monkeypatch)
    await world.sweep()
    fault.clear()
    world.clock.advance(timedelta(minutes=1))
    await world.sweep()
    assert keys(await group.inbox()) == ["group.replan_failed"]

    fault = Fault(monkeypatch)
    world.clock.advance(timedelta(minutes=5))
    await urgent_order(world, ref="URG-2", phone="13900000002")
    await world.sweep()
    assert keys(await group.inbox()) == ["group.replan_failed"]
    assert [r["payload"]["attempt"] for r in await pending(world)] == [1]


async def test_a_replan_still_failing_when_its_day_is_over_stops(world: World, monkeypatch):
    await staff(world, "Chen", ["driver"])
    await urgent_order(world)
    fault = Fault(monkeypatch)
    world.clock.set(local(23, 23, 59))
    await world.sweep()
    assert len(await pending(world)) == 1

    world.clock.set(local(24, 0, 1))
    await world.sweep()
    assert fault.calls == 1 and await pending(world) == []


async def test_a_failing_nightly_plan_backs_off_too_and_plans_once_it_works(world: World, monkeypatch):
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    group = await dispatch_group(world)
    order = await world.order(ref="SO-1", services=("delivery",))
    await give(world, order.visits[0].id, None, local(24, 9), local(24, 11), status="booked")
    await world.container.replanner.ensure_nightly()
    fault = Fault(monkeypatch)
    world.clock.set(local(23, 20))
    await world.sweep()
    [retry] = await pending(world, replanning.NIGHTLY)
    assert (retry["payload"]["day"], retry["due_at"]) == ("2026-11-24", local(23, 20, 1))
    alert = await group.inbox()
    assert keys(alert) == ["group.replan_failed"] and alert[0].params["day"] == "2026-11-24"

    fault.clear()
    world.clock.set(local(23, 20, 1))
    await world.sweep()
    assert visits_in(await wang_chat.inbox(), "tech.offer") == [order.visits[0].id]
    assert [(t["key"], t["due_at"]) for t in await pending(world, replanning.NIGHTLY)] == [("nightly:2026-11-25", local(24, 20))]


async def test_a_timer_that_fails_holds_up_neither_the_other_timers_nor_the_replans(world: World, monkeypatch):
    import scheduler.sweeps as sweeps

    chen, chen_chat = await staff(world, "Chen", ["driver"])
    order = await urgent_order(world)
    async with world.container.sessions() as session, session.begin():
        from storage.repository import Store
        from storage.schedule import ScheduleStore

        await ScheduleStore(Store(session)).set_timer(key="broken", kind="reminder", due_at=world.clock.now(), now=world.clock.now())

    async def broken(ctx, timer_id):
        raise RuntimeError("a bug in one timer")

    monkeypatch.setattr(sweeps, "fire", broken)
    await world.sweep()
    assert visits_in(await chen_chat.inbox(), "tech.offer") == [order.visits[0].id]


async def test_a_failing_day_is_told_once_to_each_group_of_the_regions_with_work_that_day(world: World, monkeypatch):
    from services import backoffice

    chen, _ = await staff(world, "Chen", ["driver"])
    # Huangpu and Minhang have no group of their own, so the catch-all group hears of both; Jingan has one
    everywhere = world.chat("staff", "all", user_id="dora", chat_type="group", name="Dora")
    await everywhere.send(f"/start {await world.dispatcher()}")
    await everywhere.send(f"/start {await world.group(region=None)}")
    jingan = world.chat("staff", "jingan", user_id="dora", chat_type="group", name="Dora")
    await jingan.send(f"/start {await world.group(region='Jingan')}")
    await everywhere.inbox(), await jingan.inbox()
    for n, region in enumerate(("Jingan", "Minhang")):
        request = backoffice.OrderRequest(
            source="erp", external_ref=f"SO-{region}", customer_name="Li Na", customer_phone=f"1390000002{n}", customer_language="zh",
            address="somewhere", lat=31.23, lon=121.47, region=region, product_name="Sofa", product_category="sofa", brand=None,
            services=(backoffice.ServiceRequest("delivery"),),
        )
        order = await backoffice.place_order(world.container.bus, request)
        await give(world, order.visits[0].id, chen, local(23, 14), local(23, 16))
    await urgent_order(world)
    Fault(monkeypatch)
    await world.sweep()
    assert keys(await everywhere.inbox()) == ["group.replan_failed"]  # for Huangpu and Minhang, once
    assert keys(await jingan.inbox()) == ["group.replan_failed"]
