"""The gaps left by price changes and settlement (issue 14): a customer with no chat is asked by phone and the dispatcher
records the answer; the customer's question card and the frozen-fee alert show the decision without their buttons; the
job's details show each visit's fee; one maintenance plan read by id."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from domain import commands as c
from domain.model import Visit
from services import accounts
from storage import tables as t
from storage.repository import Store
from tests.integration.test_maintenance import QUARTERLY, rooftop_units
from tests.integration.test_price_changes import ask, bill, changes, complete_repair, managers, shop
from tests.integration.test_price_changes_api import token, under_way
from tests.integration.test_settlement import at, confirmed_delivery, item_of, statements
from tests.integration.test_fees_api import PRICE, completed
from tests.integration.test_settlement_api import confirmed
from tests.support.api import Api
from tests.support.harness import Chat, World, keys
from tests.support.setups import give


async def shop_without_customer_chat(world: World) -> tuple[int, int, Chat, Chat, int]:
    """As tests/integration/test_price_changes.shop, but the customer never opened a chat with us:
    (visit id, job id, repairer, group, repairer's id)."""
    await world.container.bus.run("test", c.PutPriceEntry("repair", "aircon", "any", "any", "fixed", 20000, "CNY", 30, "Repair call-out"))
    repairer_id, invite = await world.technician("Li", ["repairer"], ["aircon"])
    repairer = world.chat("staff", "li")
    await repairer.send(f"/start {invite}")
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    order = await world.order("AC-9", services=("repair",), category="aircon", product="Split air conditioner")
    visit = order.visits[0]
    start = world.clock.now() + timedelta(hours=1)
    await give(world, visit.id, repairer_id, start, start + timedelta(hours=1), status="in_progress")
    for chat in (repairer, group):
        await chat.inbox()
    return visit.id, order.job.id, repairer, group, repairer_id


def text_of(param: object) -> object:
    """A raw text parameter as the message carries it ({"key": "=", "params": {"text": …}})."""
    return param["params"]["text"] if isinstance(param, dict) else param


# --- 1. a customer with no chat: the dispatchers call and record the answer -----------------------------------------


async def test_a_customer_without_a_chat_is_called_and_the_dispatchers_answer_for_them_puts_it_on_the_bill(world: World):
    visit_id, job_id, repairer, group, repairer_id = await shop_without_customer_chat(world)
    await ask(world, repairer, visit_id, "50", "Extra bracket the order did not include")
    [card] = await group.inbox()
    # nobody to ask in a chat: the region card says so, with the call and the two answers (no dead end)
    [call] = await group.press(card.button("pca"))
    assert keys(await repairer.inbox()) == ["pricechg.tech_approved"]
    assert call.key == "pricechg.group_card_call_customer" and call.payload["card"] == card.payload["card"]
    assert call.has_button("pcpy") and call.has_button("pcpn") and call.has_button("sc")
    assert call.params["phone"] == "139****5678"
    # the call button sends the customer's number to the dispatcher's own chat
    assert keys(await group.press(call.button("sc"))) == ["dispatcher.details_sent"]
    # someone in the group who is not a dispatcher records nothing
    assert keys(await group.press(call.button("pcpy"), user_id="nosy")) == ["dispatcher.not_allowed"]
    assert (await changes(world, visit_id))[0].status.value == "approved"

    # the dispatcher's press: the card shows who recorded the yes, without buttons; the technician hears it
    [done] = await group.press(call.button("pcpy"))
    assert (done.key, done.payload["card"], done.buttons) == ("pricechg.group_card_accepted_by", card.payload["card"], [])
    assert text_of(done.params["name"]) == "Dora"
    told = await repairer.inbox()
    assert keys(told) == ["pricechg.tech_accepted"] and told[0].has_button("ck")
    [row] = await changes(world, visit_id)
    assert row.status.value == "accepted" and row.customer_at is not None
    # decided once: the other answer (a stale card) changes nothing
    assert keys(await group.press(call.button("pcpn"))) == ["error.pricechg_decided"]

    # the timeline says who recorded it, and the bill made at completion carries it
    details = await world.job(job_id)
    [accepted] = [entry for entry in details["timeline"] if entry["type"] == "PriceIncreaseAccepted"]
    assert accepted["data"]["by"].startswith("dispatcher:") and accepted["data"]["name"] == "Dora"
    await complete_repair(world, visit_id, repairer_id)
    billed = await bill(world, job_id)
    assert [line["kind"] for line in billed["lines"]] == ["labour", "part", "increase"] and billed["total_minor"] == 29700


async def test_a_dispatcher_of_another_region_cannot_record_the_answer_and_a_decline_leaves_the_bill(world: World):
    visit_id, job_id, repairer, group, repairer_id = await shop_without_customer_chat(world)
    await ask(world, repairer, visit_id, "80", "Wall had to be opened")
    [card] = await group.inbox()
    [call] = await group.press(card.button("pca"))
    await repairer.inbox()

    async with world.container.sessions() as session:
        dora = await Store(session).dispatcher_for_user("web", "staff", "dora")
    assert dora is not None

    async def scoped(ctx):
        return await accounts.add_account(ctx, username="dora", display_name="Dora", role="dispatcher", password=None,
                                          regions=["Jingan"], dispatcher_id=dora.subject_id), []

    account_id = await world.container.bus.call("test:scoped", scoped)
    assert keys(await group.press(call.button("pcpn"))) == ["error.pricechg_not_your_region"]
    assert (await changes(world, visit_id))[0].status.value == "approved"

    async def everywhere(store: Store) -> None:
        await store.session.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(regions=None))

    await world._tx(everywhere)
    [done] = await group.press(call.button("pcpn"))
    assert (done.key, done.payload["card"], done.buttons) == ("pricechg.group_card_refused_by", card.payload["card"], [])
    assert keys(await repairer.inbox()) == ["pricechg.tech_refused"]
    assert (await changes(world, visit_id))[0].status.value == "refused"
    await complete_repair(world, visit_id, repairer_id)
    assert [line["kind"] for line in (await bill(world, job_id))["lines"]] == ["labour", "part"]


async def test_above_the_limit_the_managers_card_says_the_dispatchers_call_and_only_the_region_card_records(world: World):
    visit_id, _job_id, repairer, group, _repairer_id = await shop_without_customer_chat(world)
    boss = await managers(world)
    await ask(world, repairer, visit_id, "250", "The customer's own wiring burnt the control board")
    [card] = await group.inbox()
    await group.press(card.button("pca"))
    [manager_card] = await boss.inbox()
    approved = await boss.press(manager_card.button("pcma"))
    assert [(m.key, m.buttons, m.payload["card"]) for m in approved] == [("pricechg.group_card_approved_phone", [], manager_card.payload["card"])]
    [call] = await group.inbox()
    assert call.key == "pricechg.group_card_call_customer" and call.has_button("pcpy")


async def test_an_answer_taken_by_phone_also_closes_the_customers_question_in_their_chat(world: World):
    visit_id, _job_id, repairer, group, customer, _repairer_id = await shop(world)
    await ask(world, repairer, visit_id, "50", "Extra bracket")
    [card] = await group.inbox()
    approved = await group.press(card.button("pca"))
    [asked] = await customer.inbox()
    assert keys(approved) == ["pricechg.group_card_approved"] and approved[0].buttons == []  # asked in their chat
    [row] = await changes(world, visit_id)

    await world.container.bus.run("test", c.RecordPriceIncreaseAnswer(row.id, True, actor="api:token:desk"))
    [closed] = await customer.inbox()
    assert (closed.key, closed.payload["card"], closed.buttons) == ("pricechg.customer_card_agreed_phone", asked.payload["card"], [])
    [done] = await group.inbox()
    assert done.key == "pricechg.group_card_accepted_by" and text_of(done.params["name"]) == "api:token:desk"
    # the customer's own button now finds it decided
    assert keys(await customer.press(asked.button("pcy"))) == ["error.pricechg_decided"]


# --- 2. the frozen fee's alert card, through the API -------------------------------------------------------------------


async def test_a_fee_released_through_the_api_changes_the_groups_alert_card_too(world: World):
    _order, customer, _driver, group, visit_id, after = await confirmed_delivery(world)
    await customer.press(f"rt:{visit_id}:1")
    alert = next(m for m in await group.inbox() if m.key == "settle.group_frozen")
    item = await item_of(world, visit_id)
    await world.container.bus.run("test", c.ReleaseSettlement(visit_id, "api:token:desk"))
    [card] = await group.inbox()
    assert (card.key, card.payload["card"], card.buttons) == ("settle.group_frozen_released", f"settle_frozen:{item.id}", [])
    assert alert.payload["card"] == card.payload["card"] and text_of(card.params["name"]) == "api:token:desk"
    # an adjustment of a fee no longer frozen has no card to change: the group hears nothing
    await world.container.bus.run("test", c.AdjustSettlement(visit_id, 100, "goodwill", "api:token:desk"))
    assert await group.inbox() == []


# --- 4. the job's details show each visit's fee ----------------------------------------------------------------------


async def test_the_job_details_show_each_visits_fee_as_it_moves_to_a_statement(world: World):
    order, _customer, _driver, _group, visit_id, _after = await confirmed_delivery(world)
    [visit] = (await world.job(order.job.id))["visits"]
    item = await item_of(world, visit_id)
    assert visit["settlement"] == {"item_id": item.id, "status": "in_review", "amount_minor": 15000, "currency": "CNY",
                                   "review_ends_at": item.review_ends_at, "period": None, "statement_id": None}
    world.clock.set(item.review_ends_at + timedelta(minutes=1))
    await world.sweep()
    ready = (await world.job(order.job.id))["visits"][0]["settlement"]
    assert ready["status"] == "ready" and ready["period"] == "2026-11" and ready["statement_id"] is None
    world.clock.set(at(2026, 12, 1, 2))  # the November close
    await world.sweep()
    [statement] = await statements(world)
    settled = (await world.job(order.job.id))["visits"][0]["settlement"]
    assert (settled["status"], settled["statement_id"]) == ("settled", statement.id)


async def test_the_job_details_api_shows_the_fee_of_a_confirmed_visit_and_none_before(api: Api):
    assert (await api.client.put("/api/v1/price-lists", json=PRICE)).status_code == 200
    done = await completed(api)
    [visit] = (await api.client.get(f"/api/v1/jobs/{done[1]}")).json()["visits"]
    assert visit["settlement"] is None  # completed, not confirmed yet: no fee under review
    visit_id, job_id, _technician_id = await confirmed(api, done)
    [visit] = (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["visits"]
    [item] = (await api.client.get("/api/v1/settlement-items", params={"status": "in_review"})).json()
    assert visit["id"] == visit_id == item["visit_id"]
    assert visit["settlement"] == {"item_id": item["id"], "status": "in_review", "amount_minor": 30000, "currency": "CNY",
                                   "review_ends_at": item["review_ends_at"], "period": None, "statement_id": None}


# --- through the API -------------------------------------------------------------------------------------------------


async def test_the_customers_answer_recorded_through_the_api(api: Api):
    visit_id, installer_id, customer_id = await under_way(api)
    await api.container.bus.run("test", c.RequestPriceIncrease(visit_id, installer_id, "100", "Second wall opened"))
    url = f"/api/v1/visits/{visit_id}/price-changes"
    [listed] = (await api.client.get(url)).json()
    change = listed["id"]
    desk, reader = await token(api, "fees:write"), await token(api, "fees:read")
    # not approved yet: nothing to answer; bad bodies and ids: refused with a reason, nothing changed
    early = await api.client.post(f"{url}/{change}/customer", json={"agreed": True}, headers=desk)
    assert early.status_code == 422 and early.json()["detail"].startswith("pricechg_decided")
    for bad in ({}, {"agreed": "yes"}, {"agreed": 1}, {"agreed": True, "extra": 1}):
        assert (await api.client.post(f"{url}/{change}/customer", json=bad, headers=desk)).status_code == 422, bad
    assert (await api.client.post(f"{url}/{change}/customer", json={"agreed": True}, headers=reader)).status_code == 403
    assert (await api.client.post(f"{url}/999999/customer", json={"agreed": True})).status_code == 404
    assert (await api.client.post(f"/api/v1/visits/999999/price-changes/{change}/customer", json={"agreed": True})).status_code == 404
    assert (await api.client.post(url + f"/{change}/approve", headers=desk)).json()["status"] == "approved"

    # another region's token may not; the desk's may, even though the customer has a chat
    made = await api.client.post("/api/v1/tokens", json={"name": "pudong-desk", "scopes": ["fees:write"], "regions": ["Pudong"]})
    pudong = {"Authorization": f"Bearer {made.json()['token']}"}
    assert (await api.client.post(f"{url}/{change}/customer", json={"agreed": True}, headers=pudong)).status_code == 403
    assert (await api.client.get(url)).json()[0]["status"] == "approved"
    answered = await api.client.post(f"{url}/{change}/customer", json={"agreed": True}, headers=desk)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "accepted" and answered.json()["customer_at"] is not None
    again = await api.client.post(f"{url}/{change}/customer", json={"agreed": False}, headers=desk)
    assert again.status_code == 422 and again.json()["detail"].startswith("pricechg_decided")

    # the customer's question in their chat shows the answer without its buttons
    async with api.container.sessions() as session:
        rows = await Store(session).outbox_for_chat("web", "customer", "c1", 0)
    cards = [row["payload"] for row in rows if row["payload"].get("card") == f"price_increase_ask:{change}"]
    assert [payload["text"]["key"] for payload in cards] == ["pricechg.customer_ask_total_parts", "pricechg.customer_card_agreed_phone"]
    assert cards[-1]["buttons"] == []

    # the job's timeline names the token that recorded it
    job = (await api.client.get(f"/api/v1/jobs/{await job_of(api, visit_id)}")).json()
    [accepted] = [entry for entry in job["timeline"] if entry["type"] == "PriceIncreaseAccepted"]
    assert accepted["data"]["by"] == "api:token:desk-feeswrite"


async def job_of(api: Api, visit_id: int) -> int:
    async with api.container.sessions() as session:
        visit = await Store(session).get(Visit, visit_id)
        assert visit is not None
        return visit.job_id


async def test_one_maintenance_plan_is_read_by_its_id_within_the_tokens_regions(api: Api):
    units = await rooftop_units(api, 1)
    made = await api.client.post("/api/v1/maintenance-plans", json={"name": "Roof", "site_id": units[0]["site"]["id"], "rule": QUARTERLY,
                                                                      "starts_on": "2026-12-01"})
    plan = made.json()
    one = await api.client.get(f"/api/v1/maintenance-plans/{plan['id']}")
    assert one.status_code == 200 and one.json() == plan == (await api.client.get("/api/v1/maintenance-plans")).json()[0]
    assert (await api.client.get("/api/v1/maintenance-plans/999999")).json() == {"detail": "plan_not_found"}
    assert (await api.client.get("/api/v1/maintenance-plans/0")).status_code == 422
    made = await api.client.post("/api/v1/tokens", json={"name": "pudong", "scopes": ["devices:read"], "regions": ["Pudong"]})
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://testserver",
                              headers={"Authorization": f"Bearer {made.json()['token']}"})
    async with other:
        assert (await other.get(f"/api/v1/maintenance-plans/{plan['id']}")).status_code == 403
    fees_only = await token(api, "fees:read")
    assert (await api.client.get(f"/api/v1/maintenance-plans/{plan['id']}", headers=fees_only)).status_code == 403
