"""The price-changes API as the back office uses it: a visit's increases listed, approved by a dispatcher's token and above
the managers' limit only by one with fees:manage, a manager's discount on the bill — and bad input refused with a reason,
changing nothing."""

from __future__ import annotations

from domain import commands as c
from domain.model import Job, Visit
from storage.repository import Store
from tests.support.api import Api, booked_visit

PRICE = {"service_kind": "installation", "product_category": "sofa", "region": "Huangpu", "urgency": "any", "pricing": "fixed",
         "unit_price_minor": 30000, "currency": "CNY", "name": "Sofa installation"}


async def under_way(api: Api) -> tuple[int, int, int]:
    """A booked installation its installer has started: (visit id, installer id, customer id)."""
    assert (await api.client.put("/api/v1/price-lists", json=PRICE)).status_code == 200
    visit_id = await booked_visit(api)
    async with api.container.sessions() as session, session.begin():
        store = Store(session)
        visit = await store.get(Visit, visit_id)
        installer = (await store.technicians())[0]
        visit.status, visit.technician_id = "in_progress", installer.id
        customer_id = (await store.get(Job, visit.job_id)).customer_id
        return visit_id, installer.id, customer_id


async def token(api: Api, *scopes: str) -> dict:
    made = await api.client.post("/api/v1/tokens", json={"name": f"desk-{'-'.join(s.replace(':', '') for s in scopes)}", "scopes": list(scopes)})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


async def test_an_increase_above_the_limit_needs_a_managers_token_after_the_dispatchers(api: Api):
    visit_id, installer_id, customer_id = await under_way(api)
    await api.container.bus.run("test", c.RequestPriceIncrease(visit_id, installer_id, "300", "Wall anchors the order lacked"))
    url = f"/api/v1/visits/{visit_id}/price-changes"
    [listed] = (await api.client.get(url)).json()
    assert (listed["kind"], listed["status"], listed["amount_minor"], listed["amount"], listed["reason"]) == (
        "increase", "pending", 30000, "CNY 300.00", "Wall anchors the order lacked")
    change = listed["id"]

    desk, reader = await token(api, "fees:write"), await token(api, "fees:read")
    assert (await api.client.post(f"{url}/{change}/approve", headers=reader)).status_code == 403  # reading is not deciding
    approved = await api.client.post(f"{url}/{change}/approve", headers=desk)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "escalated" and approved.json()["dispatcher_by"].startswith("api:token:")
    # the dispatcher's token cannot take the manager's decision either way; nothing changes
    for action in ("approve", "decline"):
        refused = await api.client.post(f"{url}/{change}/{action}", headers=desk)
        assert refused.status_code == 403 and refused.json()["detail"].startswith("pricechg_manager_needed"), refused.text
    assert (await api.client.get(url)).json()[0]["status"] == "escalated"

    manager = await token(api, "fees:write", "fees:manage")
    done = await api.client.post(f"{url}/{change}/approve", headers=manager)
    assert done.status_code == 200 and done.json()["status"] == "approved" and done.json()["manager_by"].startswith("api:token:")
    again = await api.client.post(f"{url}/{change}/decline", headers=manager)
    assert again.status_code == 422 and again.json()["detail"] == "pricechg_decided"

    # ids that name nothing, or another visit's change
    assert (await api.client.post(f"{url}/999999/approve")).status_code == 404
    assert (await api.client.post(f"{url}/0/approve")).status_code == 422
    assert (await api.client.post(f"/api/v1/visits/999999/price-changes/{change}/approve")).status_code == 404
    assert (await api.client.get("/api/v1/visits/999999/price-changes")).status_code == 404

    # the customer agrees; completion bills it
    await api.container.bus.run("test", c.AnswerPriceIncrease(change, customer_id, True))
    await api.container.bus.run("test", c.CompleteVisit(visit_id, installer_id))
    async with api.container.sessions() as session:
        job_id = (await Store(session).get(Visit, visit_id)).job_id
    [bill] = (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["bills"]
    assert [(line["kind"], line["amount_minor"]) for line in bill["lines"]] == [("labour", 30000), ("increase", 30000)]
    assert bill["total_minor"] == 60000


async def test_a_managers_discount_goes_on_the_bill_never_below_zero_and_bad_ones_change_nothing(api: Api):
    visit_id, installer_id, _customer_id = await under_way(api)
    url = f"/api/v1/visits/{visit_id}/discount"
    # no bill yet: a discount is given on a priced bill
    early = await api.client.post(url, json={"percent": 10, "reason": "Loyal customer"})
    assert early.status_code == 422 and early.json()["detail"] == "pricechg_discount_needs_bill"
    await api.container.bus.run("test", c.CompleteVisit(visit_id, installer_id))

    desk = await token(api, "fees:write")
    refused = await api.client.post(url, json={"percent": 10, "reason": "Loyal customer"}, headers=desk)
    assert refused.status_code == 403 and "fees:manage" in refused.json()["detail"]  # a plain dispatcher gives no discounts
    manager = await token(api, "fees:manage")

    for body, status in [
        ({"amount_minor": 100, "percent": 10, "reason": "x"}, 422),  # one of the two
        ({"reason": "x"}, 422),
        ({"percent": 0, "reason": "x"}, 422),
        ({"percent": 101, "reason": "x"}, 422),
        ({"amount_minor": -1, "reason": "x"}, 422),
        ({"amount_minor": 0, "reason": "x"}, 422),
        ({"amount_minor": 10**12, "reason": "x"}, 422),
        ({"amount_minor": 12.5, "reason": "x"}, 422),
        ({"amount_minor": 30001, "reason": "x"}, 422),  # more than the total
        ({"amount_minor": 100, "reason": ""}, 422),
        ({"amount_minor": 100, "reason": "x" * 501}, 422),
        ({"amount_minor": 100}, 422),
        ({"amount_minor": 100, "reason": "x", "extra": 1}, 422),
    ]:
        answered = await api.client.post(url, json=body, headers=manager)
        assert answered.status_code == status, (body, answered.text)
    over = await api.client.post(url, json={"amount_minor": 30001, "reason": "x"}, headers=manager)
    assert over.json()["detail"] == "pricechg_discount_over_total"
    assert (await api.client.get(f"/api/v1/visits/{visit_id}/price-changes")).json() == []  # nothing changed

    given = await api.client.post(url, json={"percent": 10, "reason": "Loyal customer"}, headers=manager)
    assert given.status_code == 201, given.text
    bill = given.json()
    assert (bill["total_minor"], bill["outstanding_minor"]) == (27000, 27000)
    assert [(line["kind"], line["description"], line["amount_minor"]) for line in bill["lines"]] == [
        ("labour", "Sofa installation", 30000), ("discount", "Loyal customer", -3000)]
    # the customer gets the bill with its new total, the discount on it
    async with api.container.sessions() as session:
        rows = await Store(session).outbox_for_chat("web", "customer", "c1", 0)
    told = rows[-1]["payload"]["text"]
    assert (told["key"], told["params"]["total"]) == ("fees.bill", "CNY 270.00")
    # the rest free: the total reaches zero, never below it
    free = await api.client.post(url, json={"amount_minor": 27000, "reason": "Goodwill"}, headers=manager)
    assert free.status_code == 201 and free.json()["total_minor"] == 0
    assert (await api.client.post(url, json={"amount_minor": 1, "reason": "More"}, headers=manager)).status_code == 422
    [first, second] = (await api.client.get(f"/api/v1/visits/{visit_id}/price-changes")).json()
    assert [(d["kind"], d["status"], d["amount_minor"]) for d in (first, second)] == [("discount", "accepted", 3000), ("discount", "accepted", 27000)]
    assert (await api.client.post("/api/v1/visits/999999/discount", json={"percent": 5, "reason": "x"})).status_code == 404
