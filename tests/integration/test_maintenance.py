"""Preventive maintenance as a shop runs it: a quarterly plan on a site's rooftop units creates its inspections ahead of
their days (each once, by the timer alone), chases nothing twice, stops when told, and reports each period."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import insert, select, update

from scheduler.sweeps import fire_due_timers
from storage import tables as t
from tests.support.api import Api

ROOF = {"address": "8 Huaihai Road", "lat": 31.2204, "lon": 121.4737, "region": "Huangpu", "name": "Roof"}
OWNER = {"name": "Acme Store", "phone": "13800000001", "language": "en"}
QUARTERLY = "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1"


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


async def rooftop_units(api: Api, count: int = 2) -> list[dict]:
    made = []
    for n in range(1, count + 1):
        body = {"customer": OWNER, "site": ROOF, "product": {"category": "aircon", "name": "Rooftop unit", "brand": "Daikin"},
                "serial": f"DK-{n}", "installed_on": "2025-03-01", "location": f"roof unit {n}"}
        answer = await api.client.post("/api/v1/devices", json=body)
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    return made


async def maintenance_jobs(api: Api) -> list[tuple[str, str]]:
    async with api.container.sessions() as session:
        rows = (await session.execute(select(t.jobs.c.external_ref, t.visits.c.kind).join(t.visits, t.visits.c.job_id == t.jobs.c.id)
                                      .where(t.jobs.c.source == "maintenance").order_by(t.jobs.c.id))).all()
    return [tuple(row) for row in rows]


async def at_morning(api: Api, day: date) -> int:
    """Move the clock to 06:30 in Shanghai on ``day`` and run the timer sweep, as the worker does."""
    api.container.clock.set(datetime(day.year, day.month, day.day, 6, 30, tzinfo=timezone(timedelta(hours=8))).astimezone(timezone.utc))
    return await fire_due_timers(api.container.bus, api.container.sessions, api.container.clock)


async def test_a_quarterly_plan_creates_each_inspection_ahead_once_by_its_timer_and_reports_the_period(api: Api):
    units = await rooftop_units(api)
    site_id = units[0]["site"]["id"]
    answer = await api.client.post("/api/v1/maintenance-plans", json={
        "name": "Rooftop units, quarterly", "site_id": site_id, "rule": QUARTERLY, "starts_on": "2026-12-01", "lead_days": 14})
    assert answer.status_code == 201, answer.text
    plan = answer.json()
    # today is 23 November: the 1 December inspection is within the lead time, so it is there at once
    assert plan["created_through"] == "2026-12-01" and plan["active"]
    assert (plan["assignee"], plan["team_ids"], plan["reviewed_through"]) == ("automatic", [], None)
    assert await maintenance_jobs(api) == [(f"plan-{plan['id']}-2026-12-01", "inspection")]
    again = await api.client.post(f"/api/v1/maintenance-plans/{plan['id']}/generate")
    assert again.status_code == 200 and len(await maintenance_jobs(api)) == 1  # asked twice: made once

    # nothing more until the morning 14 days before 1 March; the timer alone creates it, and firing again makes nothing
    await at_morning(api, date(2027, 2, 14))
    assert len(await maintenance_jobs(api)) == 1
    await at_morning(api, date(2027, 2, 15))
    await at_morning(api, date(2027, 2, 16))
    assert [ref for ref, _ in await maintenance_jobs(api)] == [f"plan-{plan['id']}-2026-12-01", f"plan-{plan['id']}-2027-03-01"]
    devices = (await api.client.get(f"/api/v1/devices/{units[0]['id']}")).json()
    assert [h["kind"] for h in devices["history"]].count("maintenance_requested") == 2

    # the December inspection was done with a finding (stamped here as the technician's completion would), and the
    # report of its period says so; the March one is planned; a report asked in mid-March sees March overdue
    async with api.container.sessions() as session, session.begin():
        visit_id = (await session.execute(select(t.maintenance_inspections.c.visit_id).where(
            t.maintenance_inspections.c.occurs_on == date(2026, 12, 1)))).scalar_one()
        await session.execute(update(t.visits).where(t.visits.c.id == visit_id).values(status="confirmed"))
        await session.execute(insert(t.checklist_answers).values(visit_id=visit_id, step_key="filters", value="dirty, cleaned",
                                                                 answered_at=api.container.clock.now()))
    report = (await api.client.get(f"/api/v1/maintenance-plans/{plan['id']}/report", params={"day": "2026-12-20"})).json()
    assert (report["period_start"], report["period_end"]) == ("2026-12-01", "2027-02-28")
    assert report["devices"] == ["Rooftop unit (roof unit 1)", "Rooftop unit (roof unit 2)"]
    assert [(line["day"], line["state"], line["findings"]) for line in report["lines"]] == [("2026-12-01", "done", ["filters: dirty, cleaned"])]
    assert report["done"] == 1 and report["overdue"] == 0
    api.container.clock.set(datetime(2027, 3, 10, 2, tzinfo=timezone.utc))
    later = (await api.client.get(f"/api/v1/maintenance-plans/{plan['id']}/report")).json()
    assert [(line["day"], line["state"]) for line in later["lines"]] == [("2027-03-01", "overdue")] and later["overdue"] == 1
    sheet = await api.client.get(f"/api/v1/maintenance-plans/{plan['id']}/report", params={"day": "2026-12-20", "format": "csv"})
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    assert "attachment" in sheet.headers["content-disposition"] and "dirty, cleaned" in sheet.text

    # stopped: the next mornings create nothing more
    assert (await api.client.post(f"/api/v1/maintenance-plans/{plan['id']}/stop")).json()["active"] is False
    await at_morning(api, date(2027, 5, 20))
    assert len(await maintenance_jobs(api)) == 2


@pytest.mark.parametrize(("change", "status", "reason"), [
    ({"rule": "FREQ=HOURLY"}, 422, "plan_rule_frequency"),
    ({"rule": "FREQ=MONTHLY;BYMONTHDAY=40"}, 422, "plan_rule_invalid"),
    ({"site_id": 999}, 404, "site_not_found"),
    ({"device_ids": [999]}, 422, "plan_device_not_at_site"),
    ({"technician_id": 999}, 404, "technician_not_found"),
    ({"team_ids": [999]}, 404, "technician_not_found"),
    ({"team_ids": [5, 5]}, 422, "plan_team_invalid"),
    ({"technician_id": 5, "team_ids": [6]}, 422, "plan_assignee_twice"),
    ({"reviewer_dispatcher_id": 999}, 404, "plan_reviewer_not_found"),
])
async def test_a_plan_that_cannot_be_followed_is_refused_with_its_reason_and_nothing_is_made(api: Api, change, status, reason):
    units = await rooftop_units(api, 1)
    body = {"name": "Roof", "site_id": units[0]["site"]["id"], "rule": QUARTERLY, "starts_on": "2026-12-01", **change}
    answer = await api.client.post("/api/v1/maintenance-plans", json=body)
    assert (answer.status_code, answer.json()["detail"]) == (status, reason)
    assert await maintenance_jobs(api) == [] and (await api.client.get("/api/v1/maintenance-plans")).json() == []


async def test_numbers_out_of_range_are_refused_by_the_schema(api: Api):
    for change in ({"lead_days": 91}, {"lead_days": -1}, {"duration_minutes": 5}, {"site_id": 2**31}, {"device_ids": [0]},
                   {"starts_on": 0}, {"starts_on": "2026-12-1"}, {"starts_on": "1900-01-01"}, {"starts_on": "2026-02-30"},
                   {"team_ids": list(range(1, 14))}, {"team_ids": [0]}, {"team_ids": ["1"]}):
        body = {"name": "Roof", "site_id": 1, "rule": QUARTERLY, "starts_on": "2026-12-01", **change}
        answer = await api.client.post("/api/v1/maintenance-plans", json=body)
        assert answer.status_code == 422, (change, answer.text)


async def test_another_regions_token_neither_sees_nor_makes_plans_there(api: Api):
    units = await rooftop_units(api, 1)
    made = await api.client.post("/api/v1/maintenance-plans", json={"name": "Roof", "site_id": units[0]["site"]["id"], "rule": QUARTERLY, "starts_on": "2026-12-01"})
    plan_id = made.json()["id"]
    token = (await api.client.post("/api/v1/tokens", json={"name": "pudong", "scopes": ["devices:read", "devices:write"], "regions": ["Pudong"]})).json()["token"]
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://testserver", headers={"Authorization": f"Bearer {token}"})
    async with other:
        assert (await other.get("/api/v1/maintenance-plans")).json() == []
        assert (await other.get(f"/api/v1/maintenance-plans/{plan_id}/report")).status_code == 403
        refused = await other.post("/api/v1/maintenance-plans", json={"name": "x", "site_id": units[0]["site"]["id"], "rule": QUARTERLY, "starts_on": "2026-12-01"})
        assert refused.status_code == 403


async def test_the_report_page_shows_a_period_to_staff_of_the_sites_region_only(api: Api):
    from tests.integration.test_accounts import add_account, browser, sign_in

    units = await rooftop_units(api, 1)
    plan = (await api.client.post("/api/v1/maintenance-plans", json={
        "name": "Rooftop units", "site_id": units[0]["site"]["id"], "rule": QUARTERLY, "starts_on": "2026-12-01"})).json()
    await add_account(api, "huangpu", regions=["Huangpu"])
    await add_account(api, "pudong", regions=["Pudong"])
    async with browser(api) as stranger:
        answer = await stranger.get(f"/maintenance/{plan['id']}")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=/maintenance/")
    async with browser(api) as client:
        await sign_in(client, "huangpu")
        listing = await client.get("/maintenance?lang=en")
        assert "Rooftop units" in listing.text and 'aria-current=page>Maintenance' in listing.text
        assert "<th scope=\"col\">Assignee</th>" in listing.text and "automatic dispatch" in listing.text
        page = await client.get(f"/maintenance/{plan['id']}?lang=en&day=2026-12-05")
        assert page.status_code == 200 and "2026-12-01 – 2027-02-28" in page.text and "planned" in page.text
        assert "Rooftop unit (roof unit 1)" in page.text
        assert "Assignee" in page.text and "automatic dispatch" in page.text  # nobody named: the region's usual dispatch
        first = await client.get(f"/maintenance/{plan['id']}?lang=en")  # no day, before the first inspection: the first period
        assert first.status_code == 200 and "2026-12-01 – 2027-02-28" in first.text
        chinese = await client.get(f"/maintenance/{plan['id']}?lang=zh")
        assert "保养计划" in chinese.text
        sheet = await client.get(f"/maintenance/{plan['id']}/report.csv?day=2026-12-05")
        assert sheet.status_code == 200 and sheet.text.startswith("plan,site,period_start")
        for bad in (f"/maintenance/{plan['id']}?day=2026-13-01", f"/maintenance/{plan['id']}?day=2026-11-01"):
            refused = await client.get(bad + "&lang=en")
            assert refused.status_code == 400 and 'role="alert"' in refused.text, bad
        for missing in ("/maintenance/0", "/maintenance/99999999999", "/maintenance/x", "/maintenance/999"):
            assert (await client.get(missing)).status_code == 404, missing
    async with browser(api) as client:
        await sign_in(client, "pudong")
        assert "Rooftop units" not in (await client.get("/maintenance")).text
        assert (await client.get(f"/maintenance/{plan['id']}")).status_code == 404
        assert (await client.get(f"/maintenance/{plan['id']}/report.csv")).status_code == 404
