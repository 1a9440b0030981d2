"""The read models: batched queries whatever the number of visits, routing only for steps that offer times, old rows still read."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event, select, update

from scheduler.routing import insertion
from services import booking, views
from services.messages import ChatRef
from storage import tables
from storage.repository import Store
from tests.support.harness import SHOP, World, keys
from tests.support.setups import DELIVERY_STEPS


@pytest.fixture
def routing(monkeypatch) -> Counter:
    """Counts every way into slot finding and route insertion."""
    calls: Counter = Counter()

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(insertion.Board, "__init__", counted("insertion", insertion.Board.__init__))
    monkeypatch.setattr(views, "free_slots", counted("free_slots", views.free_slots))
    monkeypatch.setattr(booking, "feasible_slots", counted("feasible_slots", booking.feasible_slots))
    monkeypatch.setattr(views, "candidates", counted("candidates", views.candidates))
    return calls


async def test_a_customers_help_cancel_text_lang_and_status_run_no_routing_and_only_booking_does(world: World, routing: Counter):
    await world.technician("Wang", ["driver"])
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    assert keys(welcome)[-1] == "customer.choose_slot" and routing["feasible_slots"] == 1 and routing["insertion"] > 0

    for say in ("/help", "/cancel", "hello", "/lang", "/status"):
        routing.clear()
        answer = await customer.send(say)
        assert answer and routing == Counter(), (say, routing)
    routing.clear()
    assert keys(await customer.press("lang:zh")) == ["lang.switched"] and routing == Counter()

    offered = await customer.press(f"bk:{order.visits[0].id}")
    assert keys(offered) == ["customer.choose_slot"] and routing["feasible_slots"] == 1


async def _queries_during(world: World, load) -> int:
    async with world.container.sessions() as session:
        executed = []
        engine = session.bind.sync_engine

        def count(*_args) -> None:
            executed.append(1)

        event.listen(engine, "before_cursor_execute", count)
        try:
            await load(Store(session))
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(executed)


async def _book(world: World, ref: str, chat: str) -> None:
    order = await world.order(ref=ref, services=("delivery",))
    customer = world.chat("customer", chat)
    welcome = await customer.send(f"/start {order.customer_token}")
    await customer.press(welcome[-1].buttons[0][1])


async def test_the_technician_and_customer_views_take_as_many_queries_for_four_visits_as_for_one(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "driver")
    await driver.send(f"/start {token}")
    policy, now = world.container.policy, world.clock.now()
    technician = views.TechnicianViewRequest(driver.ref)
    customer = views.CustomerViewRequest(ChatRef(driver.ref.platform, "customer", "c"))

    await _book(world, "SO-1", "c")
    one = await _queries_during(world, lambda store: views.load_technician_view(store, technician, policy, now))
    one_customer = await _queries_during(world, lambda store: views.load_customer_view(store, customer, policy, now))
    for n in range(2, 5):
        await _book(world, f"SO-{n}", "c")  # the same customer: one phone
    async with world.container.sessions() as session:
        loaded = await views.load_technician_view(Store(session), technician, policy, now)
        mine = await views.load_customer_view(Store(session), customer, policy, now)
    assert len(loaded.visits) == 4 and all(v.steps and v.customer == "Zhang Wei" for v in loaded.visits)
    assert len(mine.jobs) == 4 and all(len(job.visits) == 1 for job in mine.jobs)
    assert await _queries_during(world, lambda store: views.load_technician_view(store, technician, policy, now)) == one
    assert await _queries_during(world, lambda store: views.load_customer_view(store, customer, policy, now)) == one_customer


async def test_a_dispatcher_view_looks_for_candidates_only_for_a_reassign(world: World, routing: Counter):
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "driver")
    await driver.send(f"/start {token}")
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.press((await customer.send(f"/start {order.customer_token}"))[-1].buttons[0][1])
    await driver.press((await driver.inbox())[-1].button("acc"))
    visit = order.visits[0].id
    await driver.press(f"rp:{visit}")
    await driver.press(f"rr:{visit}:customer_unreachable")
    await driver.press("rskip")
    await driver.press("rsend")
    alert = (await group.inbox())[-1]

    routing.clear()
    assert keys(await group.press(alert.button("xr"))) == ["dispatcher.no_candidates"]
    assert routing["candidates"] == 1
    routing.clear()
    # acknowledged: the alert card itself is edited to say by whom and when (no separate reply)
    assert keys(await group.press(alert.button("xa"))) == ["card.alert_acknowledged"]
    assert routing["candidates"] == 0


async def _rewrite(world: World, chat: ChatRef, data: dict) -> dict:
    """Put data in the conversation row as it is, returning what was there: a row as older code wrote it."""
    where = (tables.conversations.c.platform == chat.platform, tables.conversations.c.bot == chat.bot, tables.conversations.c.chat_id == chat.chat_id)
    async with world.container.sessions() as session, session.begin():
        before = (await session.execute(select(tables.conversations.c.data).where(*where))).scalar_one()
        await session.execute(update(tables.conversations).where(*where).values(data=data))
    return before


async def test_conversation_rows_written_before_data_had_versions_still_load(world: World):
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "driver")
    await driver.send(f"/start {token}")
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.press((await customer.send(f"/start {order.customer_token}"))[-1].buttons[0][1])
    visit = order.visits[0].id
    await driver.press((await driver.inbox())[-1].button("acc"))
    assert keys(await driver.press(f"arr:{visit}")) == ["tech.share_location"]

    assert await _rewrite(world, driver.ref, {"visit": visit}) == {"visit": visit, "version": 1}
    far = (SHOP[0] + 0.05, SHOP[1])
    assert keys(await driver.location(*far)) == ["tech.too_far"]
    written = await _rewrite(world, driver.ref, {"visit": visit, "lat": far[0], "lon": far[1]})
    assert written == {"visit": visit, "lat": far[0], "lon": far[1], "live": False, "version": 1}
    assert keys(await driver.send("Met at the warehouse")) == ["tech.checked_in"]
    job = await world.job(order.job.id)
    assert job["visits"][0]["status"] == "on_site" and job["visits"][0]["checkin_distance_m"] > 5000
