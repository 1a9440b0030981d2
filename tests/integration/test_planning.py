"""Planning a day from the database: the optimizer's plan holds every rule, is applied, and reaches people."""

from __future__ import annotations

from datetime import datetime, timedelta


from domain.model import Technician, Visit
from scheduler.routing.check import check_plan
from services import planning, replanning
from services.actions import decode
from storage.repository import Store
from tests.support.harness import SHOP, World, keys, local
from tests.support.setups import DELIVERY_STEPS


async def book_tomorrow(world: World, count: int):
    """Orders booked for Tuesday's first window, spread around the shop."""
    visits = []
    for n in range(count):
        order = await world.order(ref=f"SO-{n}", services=("delivery",), phone=f"139123456{n:02d}",
                                  lat=SHOP[0] + 0.01 * (n % 3), lon=SHOP[1] + 0.01 * (n // 3))
        customer = world.chat("customer", f"c{n}")
        welcome = await customer.send(f"/start {order.customer_token}")
        tz = world.container.policy.tz
        tomorrow = (world.clock.now() + timedelta(days=1)).astimezone(tz).date()
        # tomorrow's times are behind its day button (the prompt shows today's at once)
        day = next(d for _, d in welcome[-1].buttons if d.startswith("bd:") and decode(d).day == tomorrow)
        times = (await customer.press(day))[-1]
        tuesday = [d for _, d in times.buttons if d.startswith("sl:") and datetime.fromtimestamp(int(d.split(":")[2]), tz).date() == tomorrow][0]
        assert keys(await customer.press(tuesday)) == ["customer.booked"]
        visits.append(order.visits[0])
    return visits


async def test_a_planned_day_assigns_every_visit_within_its_window_and_tells_the_technicians(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    drivers = []
    for name in ("Wang", "Chen"):
        _, token = await world.technician(name, ["driver"])
        chat = world.chat("staff", name)
        await chat.send(f"/start {token}")
        drivers.append(chat)
    visits = await book_tomorrow(world, 4)
    day = (world.clock.now() + timedelta(days=1)).astimezone(world.container.policy.tz).date()
    async with world.container.sessions() as session:
        problem = await replanning.prepare(Store(session), day, world.container.policy, world.clock.now(), full=True)
    assert {v.id for v in problem.dp.problem.visits} == {str(v.id) for v in visits}
    plan = await planning.plan_day(problem.dp, time_limit_s=0.5)
    assert plan.unassigned == ()
    assert check_plan(problem.dp.problem, plan) == []
    events = await world.container.bus.run("plan:test", lambda ctx: replanning.apply_replan(ctx, problem, plan))
    job = await world.job(visits[0].job_id)
    assert job["visits"][0]["technician"] is not None
    async with world.container.sessions() as session:
        planned = [await Store(session).get(Visit, v.id) for v in visits]
    assert all(v.planned_start is not None for v in planned)
    assert all(v.slot_start <= v.planned_start <= v.slot_end for v in planned)
    # whoever's plan changed got an offer card for it
    offers = [m for chat in drivers for m in await chat.inbox() if m.key == "tech.offer"]
    assert len(offers) >= len([e for e in events if e.name in ("OfferMade", "VisitReassigned")])


async def test_a_visit_nobody_can_do_is_left_out_with_its_reason_and_escalated(world: World):
    _, token = await world.technician("Li", ["installer"], ["wardrobe"])
    group = world.chat("staff", "g", user_id="dora", chat_type="group")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    _, sofa_token = await world.technician("Zhao", ["installer"], ["sofa"])
    order = await world.order(services=("installation",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    await customer.press(welcome[-1].buttons[0][1])
    # the sofa installer goes off duty after the booking
    async with world.container.sessions() as session, session.begin():

        zhao = [t for t in await Store(session).technicians() if t.name == "Zhao"][0]
        zhao.on_duty = False
    day = world.clock.now().astimezone(world.container.policy.tz).date()
    async with world.container.sessions() as session:
        problem = await replanning.prepare(Store(session), day, world.container.policy, world.clock.now(), full=True)
    plan = await planning.plan_day(problem.dp, time_limit_s=0.5)
    assert [u.reason for u in plan.unassigned] == ["no_skilled_technician"]
    await group.inbox()
    await world.container.bus.run("plan:test", lambda ctx: replanning.apply_replan(ctx, problem, plan))
    alerts = await group.inbox()
    assert keys(alerts) == ["group.no_technician_planned"]
    assert alerts[0].params["reason"]["key"] == "plan_reason.no_skilled_technician"




async def test_booking_offers_only_windows_a_route_can_reach_with_the_driving_included(world: World):
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "d")
    await driver.send(f"/start {token}")
    far = await world.order(ref="FAR", services=("delivery",), phone="13900000001", lat=SHOP[0] + 0.36, lon=SHOP[1])
    first = world.chat("customer", "far")
    welcome = await first.send(f"/start {far.customer_token}")
    taken = welcome[-1].buttons[0][1]
    await first.press(taken)
    await driver.press((await driver.inbox())[-1].button("acc"))

    near = await world.order(ref="NEAR", services=("delivery",), phone="13900000002")
    second = world.chat("customer", "near")
    offered = [d for _, d in (await second.send(f"/start {near.customer_token}"))[-1].buttons]
    # 45 + 45 minutes fit a two-hour window on paper, but not with 100 minutes of driving between them
    assert [d.split(":")[2:] for d in offered if d.split(":")[2:] == taken.split(":")[2:]] == []
    assert offered  # later windows are still offered


async def test_a_day_nobody_works_leaves_every_visit_out_with_its_reason_instead_of_failing(world: World):
    await world.technician("Wang", ["driver"])
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    await customer.press(welcome[-1].buttons[0][1])
    async with world.container.sessions() as session, session.begin():
        for technician in await Store(session).technicians(on_duty_only=False):
            technician.on_duty = False
    async with world.container.sessions() as session:
        visit = await Store(session).get(type(order.visits[0]), order.visits[0].id)
        day = visit.slot_start.astimezone(world.container.policy.tz).date()
        problem = await planning.load_day(Store(session), day, world.container.policy, world.clock.now())
    assert problem.problem.technicians == () and len(problem.problem.visits) == 1
    plan = await planning.plan_day(problem, time_limit_s=0.5)
    assert [u.reason for u in plan.unassigned] == ["no_skilled_technician"] and plan.routes == ()


async def test_planning_today_after_a_shift_ended_leaves_that_technician_out_and_moves_their_visits(world: World):
    ids = {}
    chats = {}
    for name, hours in (("Wang", ("09:00", "17:00", range(7))), ("Chen", ("09:00", "20:00", range(7))), ("Zhao", ("09:00", "20:00", (5, 6)))):
        ids[name], token = await world.technician(name, ["driver"])
        chats[name] = world.chat("staff", name)
        await chats[name].send(f"/start {token}")
        await chats[name].inbox()

        async def set_hours(store, technician_id=ids[name], hours=hours):
            (await store.get(Technician, technician_id)).working_hours = {"weekdays": list(hours[2]), "start": hours[0], "end": hours[1]}

        await world._tx(set_hours)
    evening = await world.order(ref="SO-1", services=("delivery",), phone="13900000001")

    async def accepted_by_wang(store):
        visit = await store.get(Visit, evening.visits[0].id)
        visit.status, visit.technician_id = "accepted", ids["Wang"]
        visit.slot_start, visit.slot_end = local(23, 18), local(23, 20)

    await world._tx(accepted_by_wang)
    world.clock.set(local(23, 18, 30))  # Monday: Wang finished at 17:00, Zhao works weekends only
    day = world.clock.now().astimezone(world.container.policy.tz).date()
    async with world.container.sessions() as session:
        problem = await replanning.prepare(Store(session), day, world.container.policy, world.clock.now(), full=True)
    assert [t.id for t in problem.dp.problem.technicians] == [str(ids["Chen"])]
    assert sorted((u.technician_id, u.reason) for u in problem.dp.unavailable) == sorted(
        [(str(ids["Wang"]), "shift_over"), (str(ids["Zhao"]), "not_working_that_day")])
    plan = await planning.plan_day(problem.dp, time_limit_s=0.5)
    assert plan.unassigned == () and check_plan(problem.dp.problem, plan) == []
    lines = planning.summary_lines(problem.dp, plan, world.container.policy.tz)
    assert any("Wang" in line and "shift_over" in line for line in lines)
    assert any("Zhao" in line and "not_working_that_day" in line for line in lines)

    await world.container.bus.run("plan:test", lambda ctx: replanning.apply_replan(ctx, problem, plan))
    assert [m.params["visit"] for m in await chats["Chen"].inbox() if m.key == "tech.offer"] == [evening.visits[0].id]
    assert [m.params["visit"] for m in await chats["Wang"].inbox() if m.key == "tech.visit_taken_away"] == [evening.visits[0].id]
