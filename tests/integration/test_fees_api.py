"""The fees API as the back office uses it: the price list put and read, a completed visit's bill in the job, payments
recorded on it — and bad input (negative, unknown currency, more than owed) refused with a reason, changing nothing."""

from __future__ import annotations

from domain import commands as c
from domain.access import ROLE_SCOPES, Role
from domain.model import Technician, Visit
from storage.repository import Store
from tests.support.api import Api, booked_visit

PRICE = {"service_kind": "installation", "product_category": "sofa", "region": "Huangpu", "urgency": "any", "pricing": "fixed",
         "unit_price_minor": 30000, "currency": "CNY", "name": "Sofa installation"}


async def completed(api: Api) -> tuple[int, int]:
    """A booked installation, done by its installer: (visit id, job id)."""
    visit_id = await booked_visit(api)
    async with api.container.sessions() as session, session.begin():
        store = Store(session)
        visit = await store.get(Visit, visit_id)
        installer = (await store.technicians())[0]
        visit.status, visit.technician_id = "in_progress", installer.id
        job_id, technician_id = visit.job_id, installer.id
    await api.container.bus.run("test", c.CompleteVisit(visit_id, technician_id))
    return visit_id, job_id


async def test_the_price_list_is_put_replaced_and_listed(api: Api):
    put = await api.client.put("/api/v1/price-lists", json=PRICE)
    assert put.status_code == 200, put.text
    first = put.json()
    again = await api.client.put("/api/v1/price-lists", json=PRICE | {"unit_price_minor": 32000})
    assert again.json()["id"] == first["id"] and again.json()["unit_price_minor"] == 32000  # the same four: replaced
    await api.client.put("/api/v1/price-lists", json=PRICE | {"product_category": "any", "pricing": "per_hour", "hour_step_minutes": 15})
    listed = (await api.client.get("/api/v1/price-lists", params={"service_kind": "installation"})).json()
    assert [(e["product_category"], e["pricing"], e["unit_price_minor"]) for e in listed] == [("any", "per_hour", 30000), ("sofa", "fixed", 32000)]
    assert (await api.client.get("/api/v1/price-lists", params={"service_kind": "delivery"})).json() == []

    for bad, field in [({"unit_price_minor": -1}, "unit_price_minor"), ({"unit_price_minor": 12.5}, "unit_price_minor"),
                       ({"currency": "XYZ"}, "currency"), ({"urgency": "soon"}, "urgency"), ({"pricing": "per_day"}, "pricing"),
                       ({"hour_step_minutes": 0}, "hour_step_minutes"), ({"region": " "}, "region")]:
        refused = await api.client.put("/api/v1/price-lists", json=PRICE | bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["errors"][0]["loc"][:2] == ["body", field]
    assert len((await api.client.get("/api/v1/price-lists")).json()) == 2  # nothing changed


async def test_the_price_list_is_a_managers_say_a_dispatchers_token_prices_bills_and_takes_payments_only(api: Api):
    async def token(*scopes: str) -> dict:
        made = await api.client.post("/api/v1/tokens", json={"name": f"desk-{'-'.join(s.replace(':', '') for s in scopes)}", "scopes": list(scopes)})
        assert made.status_code == 201, made.text
        return {"Authorization": f"Bearer {made.json()['token']}"}

    visit_id, _job_id = await completed(api)  # no price yet: its bill waits, unpriced
    dispatcher = await token(*sorted(ROLE_SCOPES[Role.DISPATCHER]))
    refused = await api.client.put("/api/v1/price-lists", json=PRICE, headers=dispatcher)
    assert refused.status_code == 403 and "fees:manage" in refused.json()["detail"], refused.text
    assert (await api.client.get("/api/v1/price-lists", headers=dispatcher)).json() == []  # nothing set; reading is theirs
    manager = await token(*sorted(ROLE_SCOPES[Role.MANAGER]))
    assert (await api.client.put("/api/v1/price-lists", json=PRICE, headers=manager)).status_code == 200
    assert (await api.client.post(f"/api/v1/visits/{visit_id}/bill", headers=dispatcher)).status_code == 200  # pricing a bill is theirs


async def test_a_bill_is_paid_through_the_api_and_bad_payments_change_nothing(api: Api):
    assert (await api.client.put("/api/v1/price-lists", json=PRICE)).status_code == 200
    visit_id, job_id = await completed(api)
    [bill] = (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["bills"]
    assert (bill["visit_id"], bill["status"], bill["total_minor"], bill["outstanding_minor"], bill["total"]) == (
        visit_id, "priced", 30000, 30000, "CNY 300.00")
    assert [(line["kind"], line["description"], line["amount_minor"]) for line in bill["lines"]] == [("labour", "Sofa installation", 30000)]

    url = f"/api/v1/visits/{visit_id}/payments"
    for body, reason in [
        ({"amount_minor": -100, "currency": "CNY", "method": "cash"}, None),  # negative: the schema refuses it
        ({"amount_minor": 0, "currency": "CNY", "method": "cash"}, None),
        ({"amount_minor": 100, "currency": "XYZ", "method": "cash"}, None),  # unknown currency
        ({"amount_minor": 100, "currency": "CNY", "method": "cheque"}, None),
        ({"amount_minor": "100", "currency": "CNY", "method": "cash"}, None),
        ({"amount_minor": 30001, "currency": "CNY", "method": "cash"}, "payment_over_owed"),
        ({"amount_minor": 100, "currency": "USD", "method": "cash"}, "money_currency_mismatch"),
        ({"amount_minor": 100, "currency": "CNY", "method": "online"}, "payment_reference_missing"),
    ]:
        refused = await api.client.post(url, json=body)
        assert refused.status_code == 422, (body, refused.text)
        if reason:
            assert refused.json()["detail"] == reason
        else:
            assert refused.json()["errors"]
    assert (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["bills"][0]["payments"] == []  # nothing changed

    paid = await api.client.post(url, json={"amount_minor": 10000, "currency": "CNY", "method": "online", "reference": "WX-778899"})
    assert paid.status_code == 201, paid.text
    assert (paid.json()["paid_minor"], paid.json()["outstanding_minor"]) == (10000, 20000)
    assert paid.json()["payments"][0]["reference"] == "WX-778899"
    over = await api.client.post(url, json={"amount_minor": 20001, "currency": "CNY", "method": "transfer"})
    assert over.status_code == 422 and over.json()["detail"] == "payment_over_owed"
    rest = await api.client.post(url, json={"amount_minor": 20000, "currency": "CNY", "method": "transfer"})
    assert rest.json()["outstanding_minor"] == 0
    assert (await api.client.post(url, json={"amount_minor": 1, "currency": "CNY", "method": "cash"})).json()["detail"] == "bill_already_paid"

    # pricing again a priced bill is refused; an unknown visit has no bill
    assert (await api.client.post(f"/api/v1/visits/{visit_id}/bill")).status_code == 409
    missing = await api.client.post("/api/v1/visits/999/payments", json={"amount_minor": 1, "currency": "CNY", "method": "cash"})
    assert missing.status_code == 404


async def test_an_unpriced_bill_is_priced_once_the_list_has_a_price(api: Api):
    assert (await api.client.put("/api/v1/price-lists", json=PRICE | {"service_kind": "delivery"})).status_code == 200
    visit_id, job_id = await completed(api)
    [bill] = (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["bills"]
    assert (bill["status"], bill["outstanding_minor"]) == ("unpriced", None)
    unpriced = await api.client.post(f"/api/v1/visits/{visit_id}/payments", json={"amount_minor": 1, "currency": "CNY", "method": "cash"})
    assert unpriced.json()["detail"] == "bill_unpriced"
    still = await api.client.post(f"/api/v1/visits/{visit_id}/bill")
    assert still.status_code == 422 and still.json()["detail"] == "no_price_for_visit"
    await api.client.put("/api/v1/price-lists", json=PRICE | {"region": "any", "pricing": "per_piece", "unit_price_minor": 5000})
    priced = await api.client.post(f"/api/v1/visits/{visit_id}/bill")
    assert priced.status_code == 200, priced.text
    assert (priced.json()["status"], priced.json()["total_minor"]) == ("priced", 5000)  # one sofa


async def test_a_token_without_the_fees_scopes_is_refused(api: Api):
    async with api.container.sessions() as session:
        assert await Store(session).get(Technician, 1) is None  # nothing set up: the scope is checked first
    created = await api.client.post("/api/v1/tokens", json={"name": "erp", "scopes": ["jobs:read"]})
    assert created.status_code == 201, created.text
    other = {"Authorization": f"Bearer {created.json()['token']}"}
    refused = await api.client.put("/api/v1/price-lists", json=PRICE, headers=other)
    assert refused.status_code == 403 and "fees:manage" in refused.json()["detail"]
    assert (await api.client.get("/api/v1/price-lists", headers=other)).status_code == 403
    # a token for one region prices that region, not every region nor another one
    huangpu = await api.client.post("/api/v1/tokens", json={"name": "shop", "scopes": ["fees:manage", "fees:read"], "regions": ["Huangpu"]})
    scoped = {"Authorization": f"Bearer {huangpu.json()['token']}"}
    assert (await api.client.put("/api/v1/price-lists", json=PRICE, headers=scoped)).status_code == 200
    assert (await api.client.put("/api/v1/price-lists", json=PRICE | {"region": "any"}, headers=scoped)).status_code == 403
    assert (await api.client.put("/api/v1/price-lists", json=PRICE | {"region": "Jingan"}, headers=scoped)).status_code == 403
    assert len((await api.client.get("/api/v1/price-lists")).json()) == 1
