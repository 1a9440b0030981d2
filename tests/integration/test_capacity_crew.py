"""Vehicle capacity, crews, brands and minimum gaps: from the API through the day plan to the people told."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta

import pytest

from domain import lifecycle
from domain.model import ServiceKind, Technician, Visit
from scheduler.routing.check import check_plan
from services import replanning, backoffice, planning
from storage.repository import Store
from tests.support.harness import SHOP, World, keys
from tests.support.setups import dispatch_group, staff
from tests.support.api import order_body, running_api

_phones = itertools.count(1)
FAR = (SHOP[0] + 0.2, SHOP[1])  # about 22 km north: a home base worth avoiding


def tomorrow(world: World):
    return (world.clock.now() + timedelta(days=1)).astimezone(world.container.policy.tz).date()


def order_result(world: World, ref: str, *services: backoffice.ServiceRequest, **options):
    """An order with a customer of its own (a phone nobody else has): each job here is somebody else's."""
    return world.order(ref, services, phone=f"139{next(_phones):08d}", address=f"Huangpu District, {ref}", **options)


async def order(world: World, ref: str, *services: backoffice.ServiceRequest, **options):
    return (await order_result(world, ref, *services, **options)).visits


async def book(world: World, visit: Visit, start: time, end: time) -> None:
    """Book a window tomorrow directly (the customer's booking would already refuse a full van)."""
    day, tz = tomorrow(world), world.container.policy.tz

    async def do(store):
        stored = await store.get(Visit, visit.id)
        dependency = await store.get(Visit, stored.depends_on_visit_id) if stored.depends_on_visit_id else None
        lifecycle.book(stored, stored.job_id, datetime.combine(day, start, tz), datetime.combine(day, end, tz), dependency)

    await world._tx(do)


async def plan_tomorrow(world: World, seconds: float = 0.5):
    """Tomorrow as `fieldchat plan` and the nightly run see it: the run (its routing problem in .dp) and the plan."""
    async with world.container.sessions() as session:
        run = await replanning.prepare(Store(session), tomorrow(world), world.container.policy, world.clock.now(), full=True)
    plan = await planning.plan_day(run.dp, time_limit_s=seconds)
    assert check_plan(run.dp.problem, plan) == []
    return run, plan


async def apply(world: World, problem, plan):
    return await world.container.bus.run("plan:test", lambda ctx: replanning.apply_replan(ctx, problem, plan))


def technicians_of(plan, visit_id: int) -> list[str]:
    return [route.technician_id for route in plan.routes for stop in route.stops if stop.visit_id == str(visit_id)]


DELIVERY = backoffice.ServiceRequest("delivery")


# -- the API -------------------------------------------------------------------------------------


async def test_the_api_refuses_impossible_capacities_volumes_crews_and_gaps_and_shows_good_ones(database_url, tmp_path):
    async with running_api(database_url, tmp_path) as api:
        technician = {"name": "Wang", "phone": "13800000001", "roles": ["driver"]}
        for bad in (-1, "lots", 2_000_000):
            answer = await api.client.post("/api/v1/technicians", json={**technician, "vehicle_capacity": bad})
            assert answer.status_code == 422, (bad, answer.text)
            assert "vehicle_capacity" in answer.text
        answer = await api.client.post("/api/v1/technicians", json={**technician, "vehicle_capacity": 1200})
        assert answer.status_code == 201, answer.text
        async with api.container.sessions() as session:
            assert (await Store(session).get(Technician, answer.json()["id"])).vehicle_capacity == 1200

        installation = {"kind": "installation"}
        bad_orders = [
            ({"volume_liters": -5}, "volume_liters"),
            ({"services": [{"kind": "delivery"}, {**installation, "crew_size": 0}]}, "crew_size"),
            ({"services": [{"kind": "delivery"}, {**installation, "crew_size": 5}]}, "crew_size"),
            ({"services": [{"kind": "delivery"}, {**installation, "min_gap_minutes": -1}]}, "min_gap_minutes"),
            ({"services": [{"kind": "delivery"}, {**installation, "min_gap_minutes": 1441}]}, "min_gap_minutes"),
            # a gap needs an earlier visit to wait for
            ({"services": [{**installation, "min_gap_minutes": 60}]}, "min_gap_without_predecessor"),
        ]
        for n, (changes, reason) in enumerate(bad_orders):
            answer = await api.client.post("/api/v1/orders", json={**order_body(f"BAD-{n}"), **changes})
            assert answer.status_code == 422, (changes, answer.text)
            assert reason in answer.text, answer.text

        good = {**order_body("GOOD"), "volume_liters": 900,
                "services": [{"kind": "delivery", "crew_size": 2}, {**installation, "crew_size": 3, "min_gap_minutes": 120}]}
        answer = await api.client.post("/api/v1/orders", json=good)
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["job"]["id"]
        shown = (await api.client.get(f"/api/v1/jobs/{job_id}")).json()
        assert shown["volume_liters"] == 900
        assert [(v["kind"], v["crew_size"], v["crew"], v["min_gap_minutes"]) for v in shown["visits"]] == [
            ("delivery", 2, [], 0), ("installation", 3, [], 120)]


# -- capacity ------------------------------------------------------------------------------------


async def test_two_deliveries_too_big_for_one_van_are_split_over_two_vans(world: World):
    near, _ = await staff(world, "Near", ["driver"], capacity=1000, home=SHOP)
    far, _ = await staff(world, "Far", ["driver"], capacity=1000, home=FAR)
    visits = [(await order(world, f"BIG-{n}", DELIVERY, volume=600))[0] for n in range(2)]
    for visit in visits:
        await book(world, visit, time(9), time(11))
    problem, plan = await plan_tomorrow(world)
    assert problem.dp.problem.capacity_names == ("volume_l",)
    assert [v.demand for v in problem.dp.problem.visits] == [(600,), (600,)]
    assert plan.unassigned == ()
    # without the capacity the nearby van would take both; 1,200 litres do not fit its 1,000
    assert sorted(technicians_of(plan, v.id)[0] for v in visits) == sorted([str(near), str(far)])


async def test_with_one_van_the_delivery_that_does_not_fit_is_escalated_with_reason_capacity(world: World):
    group = await dispatch_group(world)
    await staff(world, "Wang", ["driver"], capacity=1000)
    await staff(world, "Li", ["installer"], ["sofa"])  # no vehicle capacity: not limited, and does no deliveries
    visits = [(await order(world, f"BIG-{n}", DELIVERY, volume=600))[0] for n in range(2)]
    for visit in visits:
        await book(world, visit, time(9), time(11))
    problem, plan = await plan_tomorrow(world)
    assert [u.reason for u in plan.unassigned] == ["capacity"]
    assert sum(1 for v in visits if technicians_of(plan, v.id)) == 1
    await apply(world, problem, plan)
    alerts = await group.inbox()
    assert keys(alerts) == ["group.no_technician_planned"]
    assert alerts[0].params["reason"]["key"] == "plan_reason.capacity"
    left_out = int(plan.unassigned[0].visit_id)
    timeline = (await world.job(next(v.job_id for v in visits if v.id == left_out)))["timeline"]
    assert [e["data"]["reason"] for e in timeline if e["type"] == "NoTechnicianAvailable"] == ["capacity"]


async def test_a_customer_is_not_offered_a_window_on_a_day_the_only_van_is_already_too_full(world: World):
    driver, _ = await staff(world, "Wang", ["driver"], capacity=1000)
    (loaded,) = await order(world, "FIRST", DELIVERY, volume=600)
    await book(world, loaded, time(9), time(11))
    second = await order_result(world, "SECOND", DELIVERY, volume=600)
    customer = world.chat("customer", "c2")
    welcome = await customer.send(f"/start {second.customer_token}")
    tz = world.container.policy.tz
    offered = {datetime.fromtimestamp(int(d.split(":")[2]), tz).date() for _, d in welcome[-1].buttons if d.startswith("sl:")}
    assert offered and tomorrow(world) not in offered  # today's empty van still has room


# -- crews ---------------------------------------------------------------------------------------


async def test_a_crew_of_two_starts_together_both_are_told_and_both_see_it_in_their_day_plan(world: World):
    first, first_chat = await staff(world, "Wang", ["installer"], ["sofa"])
    second, second_chat = await staff(world, "Chen", ["installer"], ["sofa"])
    (visit,) = await order(world, "WARDROBE", backoffice.ServiceRequest("installation", crew_size=2))
    await book(world, visit, time(14), time(16))
    problem, plan = await plan_tomorrow(world)
    assert problem.dp.problem.visits[0].technicians == 2
    assert plan.unassigned == ()
    stops = [stop for route in plan.routes for stop in route.stops if stop.visit_id == str(visit.id)]
    assert sorted(technicians_of(plan, visit.id)) == sorted([str(first), str(second)])
    assert stops[0].start == pytest.approx(stops[1].start)
    assert any("(crew of 2)" in line for line in planning.summary_lines(problem.dp, plan, world.container.policy.tz))

    await apply(world, problem, plan)
    job = await world.job(visit.job_id)
    lead, crew = job["visits"][0]["technician"], job["visits"][0]["crew"]
    assert {lead["id"], *(c["id"] for c in crew)} == {first, second} and len(crew) == 1
    chats = {first: first_chat, second: second_chat}
    lead_chat, member_chat = chats[lead["id"]], chats[crew[0]["id"]]
    offer = await lead_chat.inbox()
    assert keys(offer) == ["tech.offer"]
    told = await member_chat.inbox()
    assert keys(told) == ["tech.crew_assigned"]
    assert told[0].params["lead"] == lead["name"] and told[0].params["visit"] == visit.id
    # planning the same day again changes nobody's crew and tells nobody twice
    await apply(world, problem, plan)
    assert await member_chat.inbox() == []

    await lead_chat.press(offer[0].button("acc"))
    await lead_chat.inbox()
    tz = world.container.policy.tz
    world.clock.set(datetime.combine(tomorrow(world), time(7, 30), tz))
    await world.sweep()
    for chat in (lead_chat, member_chat):
        day_plan = [m for m in await chat.inbox() if m.key == "tech.day_plan"]
        assert len(day_plan) == 1
        assert [stop["params"]["visit"] for stop in day_plan[0].params["stops"]] == [visit.id]


async def test_an_accepted_lead_keeps_the_crew_visit_and_the_plan_finds_the_rest_of_the_crew(world: World):
    lead, lead_chat = await staff(world, "Wang", ["installer"], ["sofa"])
    member, member_chat = await staff(world, "Chen", ["installer"], ["sofa"])
    (visit,) = await order(world, "WARDROBE", backoffice.ServiceRequest("installation", crew_size=2))
    await book(world, visit, time(14), time(16))

    async def accepted(store):
        stored = await store.get(Visit, visit.id)
        lifecycle.offer(stored, stored.job_id, lead)
        lifecycle.accept(stored, stored.job_id, lead)

    await world._tx(accepted)
    problem, plan = await plan_tomorrow(world)
    assert problem.dp.problem.visits[0].pinned_technicians == ()  # a crew of one so far: the plan picks the rest
    await apply(world, problem, plan)
    shown = (await world.job(visit.job_id))["visits"][0]
    assert shown["technician"]["id"] == lead and [c["id"] for c in shown["crew"]] == [member]
    assert keys(await member_chat.inbox()) == ["tech.crew_assigned"]
    assert await lead_chat.inbox() == []
    # complete now: the next plan keeps the whole crew where it is
    problem, plan = await plan_tomorrow(world)
    assert set(problem.dp.problem.visits[0].pinned_technicians) == {str(lead), str(member)}


async def test_a_crew_bigger_than_the_staff_is_escalated_as_not_enough_technicians(world: World):
    group = await dispatch_group(world)
    await staff(world, "Wang", ["installer"], ["sofa"])
    (visit,) = await order(world, "PIANO", backoffice.ServiceRequest("installation", crew_size=3))
    await book(world, visit, time(14), time(16))
    problem, plan = await plan_tomorrow(world, seconds=1)
    assert [u.reason for u in plan.unassigned] == ["not_enough_technicians"]
    await apply(world, problem, plan)
    alerts = await group.inbox()
    assert alerts[0].params["reason"]["key"] == "plan_reason.not_enough_technicians"


# -- brands --------------------------------------------------------------------------------------


async def test_a_brand_job_goes_only_to_technicians_certified_for_it_or_to_generalists(world: World):
    other, _ = await staff(world, "Other", ["installer"], ["sofa", "brand:Other"], home=SHOP)  # right there, wrong brand
    acme, _ = await staff(world, "Acme", ["installer"], ["sofa", "brand:Acme"], home=FAR)
    anyone, _ = await staff(world, "Anyone", ["installer"], ["sofa"], home=FAR)  # no brand skills: every brand
    (acme_visit,) = await order(world, "ACME", backoffice.ServiceRequest("installation"), brand="Acme")
    (zeta_visit,) = await order(world, "ZETA", backoffice.ServiceRequest("installation"), brand="Zeta")
    await book(world, acme_visit, time(9), time(11))
    await book(world, zeta_visit, time(14), time(16))
    problem, plan = await plan_tomorrow(world)
    assert plan.unassigned == ()
    assert technicians_of(plan, acme_visit.id)[0] in (str(acme), str(anyone))
    assert technicians_of(plan, zeta_visit.id) == [str(anyone)]  # nobody is certified for Zeta
    assert {"brand:Acme", "brand:Zeta"} <= problem.dp.problem.technician(str(anyone)).skills
    # the dispatcher's own rule agrees
    async with world.container.sessions() as session:
        techs = {t.id: t for t in await Store(session).technicians()}
    kind = ServiceKind.INSTALLATION
    assert techs[acme].can_serve(kind, "sofa", "Acme", "Huangpu") and techs[anyone].can_serve(kind, "sofa", "Acme", "Huangpu")
    assert not techs[other].can_serve(kind, "sofa", "Acme", "Huangpu")


# -- minimum gap ---------------------------------------------------------------------------------


async def test_an_installation_starts_at_least_its_minimum_gap_after_the_delivery_ends(world: World):
    await staff(world, "Wang", ["driver"])
    await staff(world, "Li", ["installer"], ["sofa"])
    delivery, installation = await order(world, "GAP", DELIVERY, backoffice.ServiceRequest("installation", min_gap_minutes=180))
    await book(world, delivery, time(9), time(11))
    await book(world, installation, time(11), time(13))
    problem, plan = await plan_tomorrow(world)
    routed = {v.id: v for v in problem.dp.problem.visits}
    assert routed[str(installation.id)].after == str(delivery.id) and routed[str(installation.id)].min_gap == 180
    assert plan.unassigned == ()
    ends = {stop.visit_id: stop for route in plan.routes for stop in route.stops}
    assert ends[str(installation.id)].start >= ends[str(delivery.id)].end + 180 - 1e-6
    await apply(world, problem, plan)
    async with world.container.sessions() as session:
        stored = {v.id: v for v in await Store(session).visits_of_job(delivery.job_id)}
    gap = stored[installation.id].planned_start - stored[delivery.id].planned_start
    assert gap >= timedelta(minutes=delivery.duration_minutes + 180)


async def offered(world: World, visit: Visit, technician_id: int) -> None:
    async def offer(store):
        stored = await store.get(Visit, visit.id)
        lifecycle.offer(stored, stored.job_id, technician_id)

    await world._tx(offer)


async def test_when_the_lead_accepts_the_best_free_installer_joins_the_crew_and_is_told(world: World):
    lead, lead_chat = await staff(world, "Wang", ["installer"], ["sofa"])
    near, near_chat = await staff(world, "Chen", ["installer"], ["sofa"], home=SHOP)
    far, far_chat = await staff(world, "Liu", ["installer"], ["sofa"], home=FAR)
    (visit,) = await order(world, "WARDROBE", backoffice.ServiceRequest("installation", crew_size=2))
    await book(world, visit, time(14), time(16))
    await offered(world, visit, lead)
    await lead_chat.press(f"acc:{visit.id}")
    shown = (await world.job(visit.job_id))["visits"][0]
    assert shown["technician"]["id"] == lead and [c["id"] for c in shown["crew"]] == [near]
    assert keys(await near_chat.inbox()) == ["tech.crew_assigned"]
    assert await far_chat.inbox() == []
    # the helper sees the visit among theirs, led by Wang, with nothing to press: the lead runs it
    (card,) = await near_chat.send("/visits")
    assert card.key == "tech.crew_visit_card" and card.params["lead"] == "Wang" and card.buttons == []
    assert "phone" not in card.params  # the lead keeps in touch with the customer


async def test_a_lead_without_anyone_free_to_help_is_reported_to_the_dispatchers(world: World):
    group = await dispatch_group(world)
    lead, lead_chat = await staff(world, "Wang", ["installer"], ["sofa"])
    (visit,) = await order(world, "PIANO", backoffice.ServiceRequest("installation", crew_size=2))
    await book(world, visit, time(14), time(16))
    await offered(world, visit, lead)
    await lead_chat.press(f"acc:{visit.id}")
    assert (await world.job(visit.job_id))["visits"][0]["crew"] == []
    alerts = [m for m in await group.inbox() if m.key == "group.no_technician_planned"]
    assert len(alerts) == 1 and alerts[0].params["reason"]["key"] == "plan_reason.not_enough_technicians"
