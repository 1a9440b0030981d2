"""The settlements API as the back office uses it: payout rules set per technician, fees under review listed, a frozen
fee adjusted or released, a month closed (once), statements read as JSON and exported as CSV — bad input refused with a
reason and nothing changed."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from domain import commands as c
from scheduler.sweeps import fire_due_timers
from domain.model import Job, Visit
from storage.repository import Store
from tests.integration.test_fees_api import PRICE, completed
from tests.support.api import Api

SHANGHAI = timezone(timedelta(hours=8))


async def confirmed(api: Api, done: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """A priced installation, done (``done``: already) and confirmed by its customer: (visit id, job id, technician id)."""
    if done is None:
        assert (await api.client.put("/api/v1/price-lists", json=PRICE)).status_code == 200
    visit_id, job_id = done or await completed(api)
    async with api.container.sessions() as session:
        visit = await Store(session).get(Visit, visit_id)
        assert visit is not None and visit.technician_id is not None
        technician_id = visit.technician_id
        job = await Store(session).get(Job, job_id)
        assert job is not None
        customer_id = job.customer_id
    await api.container.bus.run("test", c.ConfirmVisit(visit_id, customer_id))
    return visit_id, job_id, technician_id


async def test_payout_rules_fees_under_review_a_month_closed_once_and_its_statement_as_csv(api: Api):
    # the installer's rule, set before the customer confirms: monthly at 90 %
    assert (await api.client.get("/api/v1/technicians/2147483647/payout")).status_code == 404
    assert (await api.client.put("/api/v1/price-lists", json=PRICE)).status_code == 200
    done = await completed(api)
    async with api.container.sessions() as session:
        installer = (await Store(session).technicians())[0]
    rule = await api.client.get(f"/api/v1/technicians/{installer.id}/payout")
    assert rule.status_code == 200 and rule.json() | {"technician_id": 0} == {
        "technician_id": 0, "cycle": "monthly", "share_percent": 100, "own_cycle": None, "own_share_percent": None}
    for bad in ({"cycle": "weekly", "share_percent": 50}, {"cycle": "monthly", "share_percent": 101}, {"cycle": "monthly", "share_percent": -1},
                {"cycle": "monthly", "share_percent": 12.5}, {"cycle": "monthly"}, {"cycle": "monthly", "share_percent": 90, "extra": 1}):
        answer = await api.client.put(f"/api/v1/technicians/{installer.id}/payout", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    put = await api.client.put(f"/api/v1/technicians/{installer.id}/payout", json={"cycle": "monthly", "share_percent": 90})
    assert put.status_code == 200 and (put.json()["cycle"], put.json()["share_percent"], put.json()["own_share_percent"]) == ("monthly", 90, 90)

    visit_id, job_id, technician_id = await confirmed(api, done)
    assert technician_id == installer.id
    [item] = (await api.client.get("/api/v1/settlement-items", params={"status": "in_review"})).json()
    assert (item["visit_id"], item["job_id"], item["bill_total_minor"], item["share_percent"], item["earned_minor"]) == (visit_id, job_id, 30000, 90, 27000)
    assert (await api.client.get("/api/v1/settlement-items", params={"status": "frozen"})).json() == []
    for bad in ({"status": "lost"}, {"period": "2026-13"}, {"technician_id": 0}, {"limit": 0}, {"limit": 501}):
        assert (await api.client.get("/api/v1/settlement-items", params=bad)).status_code == 422, bad

    # released without being frozen: 409 with the reason; an unknown item: 404
    release = await api.client.post(f"/api/v1/settlement-items/{item['id']}/release")
    assert release.status_code == 409 and release.json()["detail"] == "settle_not_frozen"
    assert (await api.client.post("/api/v1/settlement-items/2147483647/release")).status_code == 404
    # adjusted: a wrong amount or no reason is refused and changes nothing
    for bad in ({"amount_minor": -1, "reason": "x"}, {"amount_minor": 100}, {"amount_minor": 100, "reason": ""}, {"amount_minor": "100", "reason": "x"},
                {"amount_minor": 10**12, "reason": "x"}, {"amount_minor": 100, "reason": "x" * 501}):
        answer = await api.client.post(f"/api/v1/settlement-items/{item['id']}/adjust", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    adjusted = await api.client.post(f"/api/v1/settlement-items/{item['id']}/adjust", json={"amount_minor": 25000, "reason": "=1+1 late by a day"})
    assert adjusted.status_code == 200, adjusted.text
    assert (adjusted.json()["amount_minor"], adjusted.json()["status"], adjusted.json()["adjusted_by"]) == (25000, "in_review", "api:admin_token:FIELDCHAT_API_TOKEN")

    # the month cannot be closed before it is over
    close = await api.client.post("/api/v1/settlements/close", json={"period": "2026-11"})
    assert close.status_code == 422 and close.json()["detail"] == "settle_month_not_over"
    for bad in ({"period": "2026-13"}, {"period": "26-11"}, {}, {"period": 202611}):
        assert (await api.client.post("/api/v1/settlements/close", json=bad)).status_code == 422, bad

    # the review period passes (the sweep makes it ready), then 1 December: the month is closed by hand before its timer
    clock = api.container.clock
    clock.set(clock.now() + timedelta(hours=73))
    await fire_due_timers(api.container.bus, api.container.sessions, clock)
    clock.set(datetime(2026, 12, 1, 0, 30, tzinfo=SHANGHAI).astimezone(timezone.utc))
    made = await api.client.post("/api/v1/settlements/close", json={"period": "2026-11"})
    assert made.status_code == 200, made.text
    [statement] = made.json()
    assert (statement["period"], statement["cycle"], statement["total_minor"], statement["total"], statement["line_count"]) == (
        "2026-11", "monthly", 25000, "CNY 250.00", 1)
    [line] = statement["lines"]
    assert (line["visit_id"], line["job_id"], line["status"], line["adjust_reason"]) == (visit_id, job_id, "settled", "=1+1 late by a day")
    again = await api.client.post("/api/v1/settlements/close", json={"period": "2026-11"})
    assert again.status_code == 200 and again.json() == []  # closing twice makes nothing new
    clock.set(clock.now() + timedelta(hours=2))
    await fire_due_timers(api.container.bus, api.container.sessions, clock)  # nor does its timer after it
    assert [s["id"] for s in (await api.client.get("/api/v1/settlements")).json()] == [statement["id"]]
    assert (await api.client.get("/api/v1/settlements", params={"period": "2026-10"})).json() == []
    assert (await api.client.get(f"/api/v1/settlements/{statement['id']}")).json() == statement
    assert (await api.client.get("/api/v1/settlements/2147483647")).status_code == 404
    assert (await api.client.get("/api/v1/settlements/2147483648")).status_code == 422

    # on a statement, a fee never changes again
    late = await api.client.post(f"/api/v1/settlement-items/{item['id']}/adjust", json={"amount_minor": 1, "reason": "late"})
    assert late.status_code == 409 and late.json()["detail"] == "settle_item_settled"

    exported = await api.client.get(f"/api/v1/settlements/{statement['id']}.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert f'{statement["number"]}.csv' in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["visit_id"], r["job_id"], r["kind"], r["bill_total_minor"], r["share_percent"], r["earned_minor"], r["amount_minor"], r["amount"])
            for r in rows] == [(str(visit_id), str(job_id), "installation", "30000", "90", "27000", "25000", "250.00"),
                               ("", "", "total", "", "", "", "25000", "250.00")]
    assert rows[0]["adjust_reason"] == "'=1+1 late by a day"  # a spreadsheet never runs it
    assert (await api.client.get("/api/v1/settlements/2147483647.csv")).status_code == 404


async def test_settlements_need_the_fees_scopes_and_every_region(api: Api):
    reader = await api.client.post("/api/v1/tokens", json={"name": "erp", "scopes": ["jobs:read"]})
    other = {"Authorization": f"Bearer {reader.json()['token']}"}
    assert (await api.client.get("/api/v1/settlements", headers=other)).status_code == 403
    scoped = await api.client.post("/api/v1/tokens", json={"name": "shop", "scopes": ["fees:read", "fees:write"], "regions": ["Huangpu"]})
    huangpu = {"Authorization": f"Bearer {scoped.json()['token']}"}
    refused = await api.client.get("/api/v1/settlements", headers=huangpu)
    assert refused.status_code == 403 and refused.json()["detail"].startswith("settlements_all_regions")
    assert (await api.client.post("/api/v1/settlements/close", json={"period": "2026-10"}, headers=huangpu)).status_code == 403
    # an item is its visit's: a token for another region may not release it
    await confirmed(api)
    [item] = (await api.client.get("/api/v1/settlement-items")).json()
    jingan = await api.client.post("/api/v1/tokens", json={"name": "far", "scopes": ["fees:write"], "regions": ["Jingan"]})
    far = {"Authorization": f"Bearer {jingan.json()['token']}"}
    assert (await api.client.post(f"/api/v1/settlement-items/{item['id']}/release", headers=far)).status_code == 403
    assert (await api.client.post(f"/api/v1/settlement-items/{item['id']}/release", headers=huangpu)).status_code == 409
