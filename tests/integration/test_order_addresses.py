"""Issue 13 leftovers on orders: lines at several addresses make one job per address under one order (updated and
cancelled whole, through the HTTP API), a grouped visit needs the skills of its own lines' categories, and a crew made
bigger on an accepted visit is offered to further colleagues (or the dispatchers are told)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from domain.model import Job, Visit
from services import intake
from services.actions import JoinCrew, encode
from services.planning import visit_skills
from storage import tables
from storage.repository import Store
from tests.support.api import ALL_WEEK, Api, technician_body
from tests.support.harness import SHOP, World, keys
from tests.support.setups import dispatch_group, pick_time, staff, visit_row
from services.messages import ChatRef, Inbound, InboundKind
from webhooks.order_routes import validate_order

OTHER = {"text": "Xuhui District, 7 Tianyaoqiao Road", "lat": 31.19, "lon": 121.44, "region": "Xuhui"}
THIRD = {"text": "Huangpu District, 9 Middle Henan Road", "lat": 31.235, "lon": 121.48, "region": "Huangpu"}


def two_addresses(ref: str = "MA-1", *, other=OTHER, notes: str = "Ring twice", chairs_minutes: int = 20) -> dict:
    """A sofa delivered and assembled at the order's address, and a wardrobe delivered and assembled at another one
    (the customer's second flat); cushions need nothing."""
    return {
        "source": "shop", "external_ref": ref,
        "customer": {"name": "Wang Fang", "phone": "+86 138 0000 1234", "language": "en"},
        "address": {"text": "Huangpu District, 100 Nanjing East Road", "lat": SHOP[0], "lon": SHOP[1], "region": "Huangpu"},
        "items": [
            {"sku": "SOFA-3", "name": "3-seat sofa", "category": "sofa", "services": [{"kind": "delivery", "duration_minutes": 30}, {"kind": "installation"}]},
            {"sku": "CHAIR-D", "name": "Dining chair", "quantity": 4, "category": "sofa", "services": [{"kind": "delivery", "duration_minutes": chairs_minutes}]},
            {"sku": "WARD-2", "name": "Wardrobe", "category": "wardrobe", "address": other,
             "services": [{"kind": "delivery", "duration_minutes": 40}, {"kind": "installation", "duration_minutes": 120}]},
            {"sku": "CUSH-2", "name": "Cushion", "quantity": 2},
        ],
        "notes": notes,
    }


async def jobs_of(api: Api, ref: str) -> list[Job]:
    async with api.container.sessions() as session:
        return await Store(session).jobs_by_ref("shop", ref)


async def set_status(api: Api, visit_id: int, status: str) -> None:
    async with api.container.sessions() as session, session.begin():
        (await Store(session).get(Visit, visit_id)).status = status


# --- one order, one job per address ------------------------------------------------------------------------


async def test_an_order_at_two_addresses_makes_one_job_per_address_under_the_same_order(api: Api):
    response = await api.client.post("/api/v1/orders", json=two_addresses())
    assert response.status_code == 201, response.text
    answer = response.json()
    first, [second] = answer["job"], answer["other_jobs"]
    assert (first["part"], first["address"], first["region"]) == (1, "Huangpu District, 100 Nanjing East Road", "Huangpu")
    assert (second["part"], second["address"], second["region"]) == (2, OTHER["text"], "Xuhui")
    assert first["external_ref"] == second["external_ref"] == "MA-1"
    state = (await api.client.get("/api/v1/order-sources/shop/orders/MA-1")).json()
    assert state["job_ids"] == [first["id"], second["id"]] and state["job_id"] == first["id"]  # the order names all its jobs
    # each address has its own visits by work type: the sofa and chairs in one delivery, the wardrobe in its own
    assert [(v["kind"], v["depends_on_visit_id"] is not None) for v in first["visits"]] == [("delivery", False), ("installation", True)]
    assert [v["kind"] for v in second["visits"]] == ["delivery", "installation"]
    assert second["product"]["category"] == "wardrobe"
    jobs = await jobs_of(api, "MA-1")
    assert [[i["sku"] for i in j.items] for j in jobs] == [["SOFA-3", "CHAIR-D", "CUSH-2"], ["WARD-2"]]
    assert [(j.lat, j.lon) for j in jobs] == [(SHOP[0], SHOP[1]), (OTHER["lat"], OTHER["lon"])]  # routing uses each job's pin
    async with api.container.sessions() as session:
        durations = [v.duration_minutes for v in await Store(session).visits_of_job(second["id"])]
    assert durations == [40, 120]
    # the same order again changes nothing and answers both jobs
    again = await api.client.post("/api/v1/orders", json=two_addresses())
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
    assert [j["id"] for j in again.json()["other_jobs"]] == [second["id"]]
    state = await api.client.get("/api/v1/order-sources/shop/orders/MA-1")
    assert state.json()["state"] == "accepted" and state.json()["job_id"] == first["id"]
    # the customer opens the link: /status shows each address's job, with its own address and Book buttons
    chat = ChatRef("web", "customer", "c1")
    token = answer["customer_link"].split("customer=")[1]
    await api.container.engine.handle(Inbound(chat=chat, update_id="1", kind=InboundKind.COMMAND, user_id="c1", text="start", payload=token))
    await api.container.engine.handle(Inbound(chat=chat, update_id="2", kind=InboundKind.COMMAND, user_id="c1", text="status"))
    async with api.container.sessions() as session:
        rows = await Store(session).outbox_for_chat("web", "customer", "c1", 0)
    summaries = {r["payload"]["text"]["params"]["order"]: r["payload"] for r in rows if r["payload"]["text"].get("key") == "customer.order_summary"}
    assert set(summaries) == {first["id"], second["id"]}
    assert summaries[second["id"]]["text"]["params"]["address"] == OTHER["text"] and summaries[second["id"]]["buttons"]


async def test_an_update_moves_addresses_whole_and_a_refusal_changes_no_job(api: Api):
    created = (await api.client.post("/api/v1/orders", json=two_addresses())).json()
    first_id, second_id = created["job"]["id"], created["other_jobs"][0]["id"]
    # the wardrobe goes to a third address instead: its old job is cancelled, a new one made; the notes change on job 1
    moved = await api.client.post("/api/v1/orders", json=two_addresses(other=THIRD, notes="Ring three times"))
    assert moved.status_code == 200, moved.text
    answer = moved.json()
    assert answer["outcome"] == "updated"
    assert answer["changes"]["notes"] == ["Ring twice", "Ring three times"]
    [third] = answer["other_jobs"][1:]
    assert answer["changes"]["jobs_added"] == [third["id"]] and answer["changes"]["jobs_cancelled"] == [second_id]
    assert third["part"] == 3 and third["address"] == THIRD["text"]
    assert answer["other_jobs"][0]["status"] == "cancelled"
    assert {v["status"] for v in answer["other_jobs"][0]["visits"]} == {"cancelled"}
    # the third address's delivery is on the way: an update that would touch it is refused, and job 1 keeps its
    # delivery's length although that part of the update alone would have been allowed
    await set_status(api, third["visits"][0]["id"], "en_route")
    refused = await api.client.post("/api/v1/orders", json=two_addresses(other=OTHER, notes="Ring three times", chairs_minutes=50))
    assert refused.status_code == 409, refused.text
    assert f"visit {third['visits'][0]['id']} (delivery) is en_route" in refused.json()["detail"]
    async with api.container.sessions() as session:
        first_visits = await Store(session).visits_of_job(first_id)
        jobs = await Store(session).jobs_by_ref("shop", "MA-1")
    assert first_visits[0].duration_minutes == 50  # 30 + 20, as before
    assert [j.status for j in jobs] == ["open", "cancelled", "open"] and len(jobs) == 3
    # cancelling the order is refused whole too, then goes through for every job once nothing is under way
    cancel = await api.client.post("/api/v1/order-sources/shop/orders/MA-1/cancel", json={"reason": "moved abroad"})
    assert cancel.status_code == 409 and "en_route" in cancel.json()["detail"]
    assert [j.status for j in await jobs_of(api, "MA-1")] == ["open", "cancelled", "open"]
    await set_status(api, third["visits"][0]["id"], "booked")
    cancel = await api.client.post("/api/v1/order-sources/shop/orders/MA-1/cancel", json={"reason": "moved abroad"})
    assert cancel.status_code == 200, cancel.text
    assert [j.status for j in await jobs_of(api, "MA-1")] == ["cancelled"] * 3
    for job_id in (first_id, third["id"]):
        timeline = [e["type"] for e in (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["timeline"]]
        assert timeline[-1] == "OrderCancelled"


async def test_a_line_address_given_as_text_only_must_be_the_orders_and_a_scoped_token_must_cover_every_region(api: Api):
    body = two_addresses()
    body["items"][2]["address"] = "Huangpu district,  100 NANJING East Road"  # the order's own, written differently
    same = await api.client.post("/api/v1/orders", json=body)
    assert same.status_code == 201 and same.json()["other_jobs"] == []
    body = two_addresses("MA-2")
    body["items"][2]["address"] = OTHER["text"]
    assert (await api.client.post("/api/v1/orders", json=body)).json()["detail"] == "item_address_needs_pin"
    token = await api.client.post("/api/v1/tokens", json={"name": "huangpu shop", "scopes": ["orders:write"], "regions": ["Huangpu"]})
    assert token.status_code == 201, token.text
    scoped = {"Authorization": f"Bearer {token.json()['token']}"}
    refused = await api.client.post("/api/v1/orders", json=two_addresses("MA-3"), headers=scoped)
    assert refused.status_code == 403, refused.text
    assert await jobs_of(api, "MA-3") == []


async def test_the_migrated_jobs_table_keeps_one_job_per_order_and_part(api: Api):
    await api.client.post("/api/v1/orders", json=two_addresses())
    constraint = {tuple(c.columns.keys()) for c in tables.jobs.constraints if c.name == "uq_jobs_source_ref_part"}
    assert constraint == {("source", "external_ref", "part")}
    async with api.container.sessions() as session:
        parts = (await session.execute(select(tables.jobs.c.part, tables.jobs.c.part_address).order_by(tables.jobs.c.part))).all()
    assert [tuple(p) for p in parts] == [(1, None), (2, OTHER["text"])]


# --- a grouped visit needs the skills of its own lines ------------------------------------------------------------


def grouped_installation() -> dict:
    """A sofa (category sofa, the job's product) and a ceiling lamp (category lighting), both installed in one visit."""
    return {
        "source": "shop", "external_ref": "GI-1",
        "customer": {"name": "Wang Fang", "phone": "+86 138 0000 1234", "language": "en"},
        "address": {"text": "Huangpu District, 100 Nanjing East Road", "lat": SHOP[0], "lon": SHOP[1], "region": "Huangpu"},
        "items": [
            {"sku": "SOFA-3", "name": "3-seat sofa", "category": "sofa", "services": [{"kind": "installation"}]},
            {"sku": "LAMP-1", "name": "Ceiling lamp", "category": "lighting", "services": [{"kind": "installation", "duration_minutes": 30}]},
        ],
    }


async def test_a_grouped_visit_is_offered_only_to_someone_skilled_in_each_of_its_lines_categories(api: Api):
    sofa_only = (await api.client.post("/api/v1/technicians", json=technician_body(
        name="Sofa Li", phone="13800001111", skills=["sofa"], working_hours=ALL_WEEK, home={"lat": SHOP[0], "lon": SHOP[1]}))).json()["id"]
    both = (await api.client.post("/api/v1/technicians", json=technician_body(
        name="Both Chen", phone="13800002222", skills=["sofa", "lighting"], working_hours=ALL_WEEK, home={"lat": 31.0, "lon": 121.0}))).json()["id"]
    order = (await api.client.post("/api/v1/orders", json=grouped_installation())).json()
    [visit] = order["job"]["visits"]
    assert order["job"]["product"]["category"] == "sofa"
    async with api.container.sessions() as session:
        stored = await Store(session).get(Visit, visit["id"])
        job = await Store(session).get(Job, order["job"]["id"])
    assert stored.categories == ["lighting", "sofa"]
    # the plan checker asks the optimizer for both categories
    assert {"cat:sofa", "cat:lighting"} <= visit_skills(stored, job)
    # the customer books it in the chat: the offer goes to the one skilled in both, though the other lives next door
    chat = ChatRef("web", "customer", "c1")
    engine = api.container.engine
    token = order["customer_link"].split("customer=")[1]
    await engine.handle(Inbound(chat=chat, update_id="1", kind=InboundKind.COMMAND, user_id="c1", text="start", payload=token))
    async with api.container.sessions() as session:
        rows = await Store(session).outbox_for_chat("web", "customer", "c1", 0)
    slot = rows[-1]["payload"]["buttons"][0][0]["data"]
    await engine.handle(Inbound(chat=chat, update_id="2", kind=InboundKind.BUTTON, user_id="c1", text=slot))
    timeline = (await api.client.get(f"/api/v1/jobs/{order['job']['id']}")).json()["timeline"]
    offers = [e["data"]["technician_id"] for e in timeline if e["type"] == "OfferMade"]
    assert offers == [both]
    candidates = (await api.client.get(f"/api/v1/visits/{visit['id']}/candidates")).json()["candidates"]
    assert sofa_only not in [c["technician_id"] for c in candidates]
    # a dispatcher cannot force it on the one lacking the lamp's skill either
    assign = await api.client.post(f"/api/v1/visits/{visit['id']}/assign", json={"technician_id": sofa_only, "force": True})
    assert (assign.status_code, assign.json()["detail"]) == (422, "technician_not_eligible")


# --- a crew made bigger on an accepted visit -----------------------------------------------------------------------


def crew_order(crew: int) -> dict:
    return validate_order({
        "source": "erp", "external_ref": "CR-1",
        "customer": {"name": "Zhang Wei", "phone": "13912345678", "language": "en"},
        "address": {"text": "Huangpu District, 100 Nanjing East Road", "lat": SHOP[0], "lon": SHOP[1], "region": "Huangpu"},
        "product": {"name": "3-seat sofa", "category": "sofa"},
        "services": [{"kind": "delivery", "crew_size": crew}],
    })


async def accepted_crew_visit(world: World, helpers: int) -> tuple[int, object, list]:
    """A delivery for one booked and accepted by Wang, with ``helpers`` more drivers on the roster."""
    _wang, driver = await staff(world, "Wang", ["driver"])
    others = [await staff(world, name, ["driver"]) for name in ("Zhao", "Qian", "Sun", "Zhou")[:helpers]]
    group = await dispatch_group(world)
    receipt = await intake.place(world.container.bus, crew_order(1))
    async with world.container.sessions() as session:
        [visit] = await Store(session).visits_of_job(receipt.job_id)
        token = await Store(session).current_token("customer", receipt.job_id, world.clock.now())
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {token}")
    await pick_time(customer, welcome[-1], 0)
    offer = (await driver.inbox())[-1]
    await driver.press(offer.button("acc"))
    await group.inbox()
    for _tid, chat in others:
        await chat.inbox()
    assert (await visit_row(world, visit.id)).status == "accepted"
    return visit.id, group, others


async def test_raising_the_crew_of_an_accepted_visit_offers_the_open_places_to_free_colleagues(world: World):
    visit_id, group, others = await accepted_crew_visit(world, helpers=2)
    updated = await intake.place(world.container.bus, crew_order(2))
    assert updated.outcome == "updated"
    asked = [chat for _tid, chat in others if "tech.assist_offer_crew" in keys(await chat.inbox())]
    assert len(asked) == 2  # both free drivers are asked; the first to join gets the place
    await asked[0].press(encode(JoinCrew(visit_id)))
    assert len((await visit_row(world, visit_id)).crew_ids) == 1
    assert "tech.assist_offer_crew" not in keys(await group.inbox())


async def test_a_bigger_crew_nobody_joins_goes_on_to_the_next_colleagues_then_the_dispatchers(world: World):
    visit_id, group, others = await accepted_crew_visit(world, helpers=4)
    await intake.place(world.container.bus, crew_order(2))
    first = [chat for _tid, chat in others if "tech.assist_offer_crew" in keys(await chat.inbox())]
    rest = [chat for _tid, chat in others if chat not in first]
    assert len(first) == 3 and len(rest) == 1  # the best three free ones first, for the one open place
    world.clock.advance(world.container.policy.assist_timeout + timedelta(minutes=1))
    await world.sweep()
    for chat in first:
        assert keys(await chat.inbox()) == ["tech.assist_offer_expired"]
    assert keys(await rest[0].inbox()) == ["tech.assist_offer_crew"]  # the next one, in the same words
    assert await group.inbox() == []
    world.clock.advance(world.container.policy.assist_timeout + timedelta(minutes=1))
    await world.sweep()
    alert = [m for m in await group.inbox() if m.key == "tech.to_group_assistance_timed_out"]
    assert len(alert) == 1 and alert[0].has_button("dan")  # Assign anyone fills the open place
    assert (await visit_row(world, visit_id)).crew_ids == []


async def test_raising_the_crew_with_nobody_free_tells_the_dispatchers(world: World):
    visit_id, group, _others = await accepted_crew_visit(world, helpers=0)
    await intake.place(world.container.bus, crew_order(3))
    alert = await group.inbox()
    assert keys(alert) == ["group.no_technician_planned"]
    assert alert[0].params["reason"]["key"] == "plan_reason.not_enough_technicians"
    assert alert[0].buttons  # the dispatchers' ways out (assign anyone, call …) are on it
    visit = await visit_row(world, visit_id)
    assert (visit.crew_size, visit.crew_ids, visit.status) == (3, [], "accepted")


async def test_an_unchanged_crew_asks_nobody(world: World):
    _visit_id, _group, others = await accepted_crew_visit(world, helpers=1)
    assert (await intake.place(world.container.bus, crew_order(1))).outcome == "unchanged"
    for _tid, chat in others:
        assert await chat.inbox() == []


async def test_an_address_taken_out_of_the_order_is_told_to_its_regions_dispatchers_in_words(world: World):
    group = await dispatch_group(world, region="Xuhui")
    bus = world.container.bus
    created = await intake.place(bus, validate_order(two_addresses()))
    assert len(created.job_ids) == 2
    body = two_addresses()
    del body["items"][2]  # the wardrobe is no longer ordered: its address goes
    updated = await intake.place(bus, validate_order(body))
    assert updated.outcome == "updated" and updated.changes == {"jobs_cancelled": [created.job_ids[1]]}
    [alert] = [m for m in await group.inbox() if m.key == "order.group_cancelled"]
    assert alert.params["reason"] == {"key": "order.reason_address_removed", "params": {}}
    async with world.container.sessions() as session:
        jobs = await Store(session).jobs_by_ref("shop", "MA-1")
    assert [j.status for j in jobs] == ["open", "cancelled"]
