"""The back-office API under hostile input: ranges, strict types, one error shape, and every status documented."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from domain import lifecycle
from domain.model import Visit
from storage import tables
from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.support.harness import World
from tests.support.setups import delivery_offered
from tests.support.api import ALL_WEEK, TEMPLATE, TOKEN, Api, booked_visit, error_locations, order_body, running_api, technician_body

MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns on PostgreSQL
OUT_OF_RANGE = [MAX_ID + 1, 2**70, 0, -1]
ID_ROUTES = [
    ("GET", "/api/v1/jobs/{}", None, "job_id"),
    ("GET", "/api/v1/visits/{}/candidates", None, "visit_id"),
    ("POST", "/api/v1/visits/{}/assign", {"technician_id": 1}, "visit_id"),
    ("PATCH", "/api/v1/technicians/{}", {"on_duty": False}, "technician_id"),
    ("POST", "/api/v1/visits/{}/reschedule", {"start": "2026-11-24T09:00:00+08:00", "end": "2026-11-24T11:00:00+08:00"}, "visit_id"),
    ("POST", "/api/v1/jobs/{}/address", {"text": "12 Henan Road"}, "job_id"),
    ("POST", "/api/v1/jobs/{}/close", {"reason": "duplicate"}, "job_id"),
    ("POST", "/api/v1/jobs/{}/reopen", {"reason": "came back"}, "job_id"),
]
ROUTE_IDS = ["job", "candidates", "assign", "duty", "reschedule", "address", "close", "reopen"]


# --- ids are range-checked ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body", "parameter"), ID_ROUTES, ids=ROUTE_IDS)
async def test_an_out_of_range_id_in_the_path_is_refused_with_422_naming_it(api: Api, method, path, body, parameter):
    for number in OUT_OF_RANGE:  # one app per route: the check is the path's validation, before any database work
        response = await api.client.request(method, path.format(number), json=body)
        assert response.status_code == 422, (number, response.text)
        assert ("path", parameter) in error_locations(response), number
        assert parameter in response.json()["detail"], number


@pytest.mark.parametrize(("method", "path", "body", "parameter"), ID_ROUTES, ids=ROUTE_IDS)
async def test_the_largest_id_is_in_range_and_answers_404_with_its_reason(api: Api, method, path, body, parameter):
    response = await api.client.request(method, path.format(MAX_ID), json=body)
    assert response.status_code == 404, response.text
    assert response.json() == {"detail": f"{parameter.removesuffix('_id')}_not_found"}


@pytest.mark.parametrize("technician_id", [MAX_ID + 1, 2**70, 0, "1", 1.5, True], ids=["2^31", "2^70", "zero", "string", "fraction", "bool"])
async def test_assigning_an_out_of_range_or_mistyped_technician_id_is_refused_naming_it(api: Api, technician_id):
    visit_id = await booked_visit(api)
    response = await api.client.post(f"/api/v1/visits/{visit_id}/assign", json={"technician_id": technician_id})
    assert response.status_code == 422, response.text
    assert ("body", "technician_id") in error_locations(response)


async def test_assigning_a_cancelled_visit_is_a_409_conflict_with_its_state(api: Api):
    visit_id = await booked_visit(api)

    async def cancel(ctx):
        visit = await ctx.store.get(Visit, visit_id)
        return [lifecycle.cancel(visit, visit.job_id, "customer")]

    await api.container.bus.run("test:cancel", cancel)
    technician_id = (await api.client.post("/api/v1/technicians", json=technician_body(name="Second", working_hours=ALL_WEEK))).json()["id"]
    response = await api.client.post(f"/api/v1/visits/{visit_id}/assign", json={"technician_id": technician_id})
    assert response.status_code == 409, response.text
    assert response.json() == {"detail": "illegal_transition"}


# --- body fields are strict -----------------------------------------------------------------------


ORDER_MISTYPED = [
    ({"volume_liters": "5"}, ("body", "volume_liters")),
    ({"volume_liters": 5.5}, ("body", "volume_liters")),
    ({"volume_liters": True}, ("body", "volume_liters")),
    ({"services": [{"kind": "delivery"}, {"kind": "installation", "min_gap_minutes": "30"}]}, ("body", "services", 1, "min_gap_minutes")),
    ({"services": [{"kind": "delivery", "crew_size": 2.5}]}, ("body", "services", 0, "crew_size")),
    ({"services": [{"kind": "delivery", "duration_minutes": "60"}]}, ("body", "services", 0, "duration_minutes")),
    ({"address.lat": "31.2"}, ("body", "address", "lat")),
    ({"customer.phone": 13912345678}, ("body", "customer", "phone")),
    ({"volume_litres": 500}, ("body", "volume_litres")),
    ({"customer.nickname": "Wei"}, ("body", "customer", "nickname")),
]


@pytest.mark.parametrize(("changes", "field"), ORDER_MISTYPED, ids=[
    "volume-string", "volume-fraction", "volume-bool", "gap-string", "crew-fraction", "duration-string",
    "lat-string", "phone-number", "unknown-field", "unknown-nested-field",
])
async def test_an_order_with_a_mistyped_or_unknown_field_is_refused_naming_it_and_nothing_is_created(api: Api, changes, field):
    response = await api.client.post("/api/v1/orders", json=order_body(**changes))
    assert response.status_code == 422, response.text
    assert field in error_locations(response)
    assert (await api.client.get("/api/v1/jobs/1")).status_code == 404


async def test_a_whole_number_written_as_a_float_is_the_integer_json_schema_says_it_is(api: Api):
    body = order_body(volume_liters=500.0, services=[{"kind": "delivery", "crew_size": 2.0, "duration_minutes": 60.0}])
    response = await api.client.post("/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    job = response.json()["job"]
    assert job["volume_liters"] == 500 and isinstance(job["volume_liters"], int)
    assert (job["visits"][0]["crew_size"], job["visits"][0]["min_gap_minutes"]) == (2, 0)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/technicians", technician_body(vehicle_capacity="800"), ("body", "vehicle_capacity")),
        ("POST", "/api/v1/technicians", technician_body(working_hours={"weekdays": ["1"]}), ("body", "working_hours", "weekdays", 0)),
        ("POST", "/api/v1/technicians", technician_body(home={"lat": 31.2, "lon": 121.4, "alt": 4}), ("body", "home", "alt")),
        ("PUT", "/api/v1/dispatch-rules", {"mode": "grab", "grab_top_n": "3"}, ("body", "grab_top_n")),
        ("PUT", "/api/v1/sla-policies", {"stage": "accept", "minutes": 30.5}, ("body", "accept", "minutes")),
        ("PUT", "/api/v1/sla-policies", {"stage": "accept", "minutes": 30, "tiers": [50, "100"]}, ("body", "accept", "tiers", 1)),
        ("PUT", "/api/v1/sla-policies", {"stage": "accept", "minutes": 30, "auto_reassign": "yes"}, ("body", "accept", "auto_reassign")),
        ("PUT", "/api/v1/alert-sinks", {"name": "x", "kind": "slack", "url": "https://h.example/x", "priority": "1"}, ("body", "priority")),
        ("PUT", "/api/v1/checklist-templates", {**TEMPLATE, "steps": [{**TEMPLATE["steps"][1], "min": "2"}]}, ("body", "steps", 0, "min")),
        ("PUT", "/api/v1/checklist-templates", {**TEMPLATE, "steps": [{**TEMPLATE["steps"][1], "min": 12, "max": 2}]}, ("body", "steps", 0)),
        ("PATCH", "/api/v1/technicians/1", {"on_duty": False, "reason": "ill"}, ("body", "reason")),
        ("POST", "/api/v1/dispatchers", {"name": "Dora", "role": "boss"}, ("body", "role")),
    ],
    ids=["capacity-string", "weekday-string", "home-extra", "top-n-string", "minutes-fraction", "tier-string",
         "auto-reassign-string", "priority-string", "step-min-string", "step-min-above-max", "duty-extra", "dispatcher-extra"],
)
async def test_other_bodies_are_strict_too(sqlite_api: Api, method, path, body, field):
    response = await sqlite_api.client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert field in error_locations(response)


@pytest.mark.parametrize(
    "changes",
    [
        {"customer.name": "Zhang\x00Wei"},
        {"notes": "call\x00first"},
        {"items": [{"sku\x00": 1}]},
        {"product.category": "\ud800sofa"},
    ],
    ids=["nul-in-name", "nul-in-notes", "nul-in-item-key", "lone-surrogate"],
)
async def test_text_a_database_cannot_store_is_refused_with_422_on_both_databases(api: Api, changes):
    response = await api.client.post("/api/v1/orders", content=json.dumps(order_body(**changes)), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "body" in error_locations(response)[0]
    assert (await api.client.get("/api/v1/jobs/1")).status_code == 404


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (json.dumps(order_body()).replace('"lat": 31.2304', '"lat": NaN'), "/api/v1/orders"),
        (json.dumps(order_body(items=[{"qty": 1.5}])).replace("1.5", "Infinity"), "/api/v1/orders"),
        (json.dumps({**TEMPLATE, "steps": [{**TEMPLATE["steps"][1], "max": 1.5}]}).replace("1.5", "Infinity"), "/api/v1/checklist-templates"),
        (json.dumps(order_body(items=[{"a": 1}])).replace('{"a": 1}', '{"a": ' * 40 + "1" + "}" * 40), "/api/v1/orders"),
    ],
    ids=["nan-latitude", "infinite-item-value", "infinite-step-max", "deeply-nested-item"],
)
async def test_numbers_json_cannot_carry_and_absurd_nesting_are_refused_with_422(api: Api, raw, path):
    method = "POST" if path.endswith("orders") else "PUT"
    response = await api.client.request(method, path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


async def test_a_body_that_is_not_text_is_refused_with_400(sqlite_api: Api):
    response = await sqlite_api.client.post("/api/v1/dispatchers", content=b'{"name": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}


async def test_a_body_that_is_not_json_is_refused_with_415(sqlite_api: Api):
    response = await sqlite_api.client.post("/api/v1/orders", content=json.dumps(order_body()), headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json() == {"detail": "send the body as application/json"}
    assert (await sqlite_api.client.get("/api/v1/jobs/1")).status_code == 404


async def test_a_body_over_the_limit_is_refused_with_413(sqlite_api: Api):
    body = order_body(items=[{"text": "x" * 20_000} for _ in range(60)])
    response = await sqlite_api.client.post("/api/v1/orders", json=body)
    assert response.status_code == 413
    assert response.json()["detail"].startswith("request body too large")


# --- SLA policies ---------------------------------------------------------------------------------


async def test_an_arrival_policy_needs_no_minutes_and_its_tiers_are_used_up_to_the_end_of_the_window(api: Api):
    response = await api.client.put("/api/v1/sla-policies", json={"stage": "arrival", "tiers": [100]})
    assert response.status_code == 200, response.text
    assert response.json()["minutes"] is None
    async with api.container.sessions() as session:
        rows = await ScheduleStore(Store(session)).sla_policies()
    assert [(r["stage"], r["minutes"], r["tiers"]) for r in rows] == [("arrival", None, [100])]

    world = World(api.container, api.container.clock, api.tmp_path)
    visit, _customer, driver, _group = await delivery_offered(world)
    await driver.press(f"acc:{visit.id}")
    async with api.container.sessions() as session:
        timers = await ScheduleStore(Store(session)).timers_of(visit.id)
    arrival = [t for t in timers if ":arrival:" in t["key"]]
    assert [t["due_at"] for t in arrival] == [(await world.job(visit.job_id))["visits"][0]["slot_end"]]


async def test_an_arrival_policy_keeps_minutes_given_for_visits_without_a_window(sqlite_api: Api):
    response = await sqlite_api.client.put("/api/v1/sla-policies", json={"stage": "arrival", "minutes": 90})
    assert response.status_code == 200, response.text
    async with sqlite_api.container.sessions() as session:
        rows = await ScheduleStore(Store(session)).sla_policies()
    assert [(r["stage"], r["minutes"]) for r in rows] == [("arrival", 90)]


async def test_other_stages_still_need_minutes_and_the_schema_says_so(sqlite_api: Api):
    response = await sqlite_api.client.put("/api/v1/sla-policies", json={"stage": "completion"})
    assert response.status_code == 422
    assert error_locations(response) == [("body", "completion", "minutes")]
    schema = (await sqlite_api.client.get("/openapi.json")).json()["components"]["schemas"]
    assert "minutes" in schema["TimedSlaPolicyIn"]["required"]
    assert "minutes" not in schema["ArrivalSlaPolicyIn"].get("required", [])


# --- concurrent upserts ---------------------------------------------------------------------------


@pytest.mark.slow  # PostgreSQL only: SQLite has one writer at a time, so there is no race to lose
async def test_a_put_racing_an_uncommitted_insert_of_the_same_template_retries_and_wins(postgres_url, tmp_path):
    """The API's insert waits on the unique index, fails when the other transaction commits, then updates."""
    async with running_api(postgres_url, tmp_path) as api:
        async with api.container.sessions() as other, other.begin():
            await other.execute(tables.checklist_templates.insert().values(
                service_kind="installation", product_category="sofa", name="theirs", steps=[]))
            put = asyncio.create_task(api.client.put("/api/v1/checklist-templates", json=TEMPLATE))
            async with api.container.sessions() as observer:
                # the other transaction commits only once the API's insert is waiting for it
                waiting = 0
                while not waiting and not put.done():
                    waiting = (await observer.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO checklist_templates%'"
                    ))).scalar_one()
                    await observer.rollback()
            assert waiting, "the API did not wait on the uncommitted row"
        response = await put
        assert response.status_code == 200, response.text
        assert response.json()["steps"][0]["key"] == "room_ready"


# --- every status is documented, with the body it really has --------------------------------------


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        if path.startswith("/api/v1"):
            for method, operation in item.items():
                yield method.upper(), path, operation


def _concrete(path: str) -> str:
    return path.replace("{job_id}", "1").replace("{visit_id}", "1").replace("{technician_id}", "1").replace("{photo_id}", "1").replace("{token_id}", "1") \
        .replace("{device_id}", "1").replace("{site_id}", "1") \
        .replace("{part_id}", "1").replace("{request_id}", "1").replace("{category}", "washer") \
        .replace("{plan_id}", "1").replace("{change_id}", "1") \
        .replace("{statement_id}", "1").replace("{item_id}", "1")  # parts (issue 14 part 5), maintenance plans (part 8), settlements (part 7)


def _assert_documented(schema: dict, operation: dict, response) -> None:
    documented = operation["responses"]
    assert str(response.status_code) in documented, (response.status_code, list(documented))
    reference = documented[str(response.status_code)]["content"]["application/json"]["schema"]["$ref"]
    assert reference == "#/components/schemas/ErrorOut"
    assert set(response.json()) <= set(schema["components"]["schemas"]["ErrorOut"]["properties"])
    assert isinstance(response.json()["detail"], str)


async def test_every_api_operation_answers_401_without_or_with_a_wrong_token_as_documented(sqlite_api: Api):
    schema = (await sqlite_api.client.get("/openapi.json")).json()
    operations = list(_operations(schema))
    assert len(operations) == 23 + 4 + 9 + 2 + 10 + 2 + 4 + 11 + 5 + 9 + 4 + 2  # a price increase answered by phone and one maintenance plan (2, issue 14 gaps); price changes (4, issue 14 part 6); settlements (9, issue 14 part 7); maintenance plans (5, issue 14 part 8); + tokens (3) and revoking a customer link (issue 12); order intake (9, issue 13 part 4); completion codes (2, part 6); devices (10, issue 14); signature policy (2, issue 12 part 6); fees (4, issue 14 part 6); parts and stock (11, issue 14 part 5)
    for method, path, operation in operations:
        for authorization in ("", "Bearer wrong-token-of-24-chars-or-more", f"Basic {TOKEN}"):
            response = await sqlite_api.client.request(method, _concrete(path), json={}, headers={"Authorization": authorization})
            assert response.status_code == 401, (method, path, response.text)
            _assert_documented(schema, operation, response)


async def test_every_api_operation_answers_503_when_the_api_is_off_as_documented(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path, api_token=None) as api:
        schema = (await api.client.get("/openapi.json")).json()
        for method, path, operation in _operations(schema):
            response = await api.client.request(method, _concrete(path), json={})
            assert response.status_code == 503, (method, path, response.text)
            _assert_documented(schema, operation, response)


async def test_validation_errors_and_reasons_share_one_documented_shape(sqlite_api: Api):
    schema = (await sqlite_api.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps([operation for _method, _path, operation in _operations(schema)])
    operation = schema["paths"]["/api/v1/orders"]["post"]
    invalid = await sqlite_api.client.post("/api/v1/orders", json=order_body(**{"address.lat": 91}))
    _assert_documented(schema, operation, invalid)
    assert invalid.json()["detail"] == "body.address.lat: Input should be less than or equal to 90"
    assert invalid.json()["errors"] == [{"loc": ["body", "address", "lat"], "msg": "Input should be less than or equal to 90", "type": "less_than_equal"}]
    refused = await sqlite_api.client.post("/api/v1/orders", json=order_body(services=[{"kind": "delivery"}, {"kind": "delivery"}]))
    _assert_documented(schema, operation, refused)
    assert refused.json() == {"detail": "services_repeated"}
    broken = await sqlite_api.client.post("/api/v1/orders", content=b'{"source": ', headers={"Content-Type": "application/json"})
    _assert_documented(schema, operation, broken)
    assert broken.status_code == 422 and broken.json()["errors"][0]["type"] == "json_invalid"


async def test_the_documented_statuses_of_each_operation(sqlite_api: Api):
    schema = (await sqlite_api.client.get("/openapi.json")).json()
    statuses = {(method, path): set(operation["responses"]) for method, path, operation in _operations(schema)}
    every = {"401", "403", "503"}  # 403: the token lacks the scope, or the record is outside its regions
    body = every | {"400", "413", "415", "422"}
    assert statuses == {
        ("POST", "/api/v1/orders"): body | {"200", "201", "202", "409"},
        ("GET", "/api/v1/jobs/{job_id}"): every | {"200", "404", "422"},
        ("GET", "/api/v1/photos/{photo_id}"): every | {"200", "404", "422"},
        ("POST", "/api/v1/technicians"): body | {"201"},
        ("PATCH", "/api/v1/technicians/{technician_id}"): body | {"200", "404", "409"},
        ("POST", "/api/v1/dispatchers"): body | {"201"},
        ("POST", "/api/v1/dispatch-groups"): body | {"201"},
        ("PUT", "/api/v1/checklist-templates"): body | {"200", "409"},
        ("PUT", "/api/v1/dispatch-rules"): body | {"200", "409"},
        ("GET", "/api/v1/visits/{visit_id}/candidates"): every | {"200", "404", "422"},
        ("POST", "/api/v1/visits/{visit_id}/assign"): body | {"200", "404", "409"},
        ("POST", "/api/v1/visits/{visit_id}/reschedule"): body | {"200", "404", "409"},
        ("POST", "/api/v1/jobs/{job_id}/address"): body | {"200", "404", "409"},
        ("POST", "/api/v1/jobs/{job_id}/close"): body | {"200", "404", "409"},
        ("POST", "/api/v1/jobs/{job_id}/reopen"): body | {"200", "404", "409"},
        ("PUT", "/api/v1/sla-policies"): body | {"200", "409"},
        ("PUT", "/api/v1/alert-sinks"): body | {"200", "409"},
        ("GET", "/api/v1/alert-sinks"): every | {"200"},
        ("POST", "/api/v1/tokens"): body | {"201"},
        ("GET", "/api/v1/tokens"): every | {"200"},
        ("DELETE", "/api/v1/tokens/{token_id}"): every | {"204", "404", "422"},
        ("POST", "/api/v1/jobs/{job_id}/customer-link/revoke"): every | {"204", "404", "422"},
        ("PUT", "/api/v1/order-sources/{source}/callback"): body | {"200", "409"},
        ("GET", "/api/v1/order-sources/{source}/callback"): every | {"200", "404", "422"},
        # order intake (issue 13 part 4)
        ("PUT", "/api/v1/order-sources/{source}"): body | {"200", "409"},
        ("GET", "/api/v1/order-sources/{source}"): every | {"200", "404", "422"},
        ("POST", "/api/v1/order-sources/{source}/orders"): body | {"200", "201", "202", "404", "409"},
        ("POST", "/api/v1/order-sources/{source}/import"): every | {"200", "409", "413", "415", "422"},
        ("GET", "/api/v1/order-sources/{source}/review"): every | {"200", "422"},
        ("GET", "/api/v1/order-sources/{source}/orders/{external_ref}"): every | {"200", "404", "422"},
        ("POST", "/api/v1/order-sources/{source}/review/{external_ref}/confirm"): body | {"200", "404", "409"},
        ("POST", "/api/v1/order-sources/{source}/review/{external_ref}/reject"): body | {"200", "404", "409"},
        ("POST", "/api/v1/order-sources/{source}/orders/{external_ref}/cancel"): body | {"200", "404", "409"},
        ("DELETE", "/api/v1/order-sources/{source}/callback"): every | {"204", "404", "422"},
        ("GET", "/api/v1/callbacks"): every | {"200", "422"},
        ("GET", "/api/v1/order-sources/{source}/completion-codes"): every | {"200", "422"},
        ("PUT", "/api/v1/order-sources/{source}/completion-codes"): body | {"200"},
        ("GET", "/api/v1/order-sources/{source}/signatures"): every | {"200", "422"},  # signatures (issue 12 part 6)
        ("PUT", "/api/v1/order-sources/{source}/signatures"): body | {"200"},
        ("POST", "/api/v1/callbacks/{callback_id}/resend"): every | {"200", "404", "409", "422"},
        # devices and their QR codes (issue 14 parts 1-2)
        ("POST", "/api/v1/devices"): body | {"200", "201", "409"},
        ("GET", "/api/v1/devices"): every | {"200", "422"},
        ("GET", "/api/v1/devices/{device_id}"): every | {"200", "404", "422"},
        ("POST", "/api/v1/devices/{device_id}/retire"): body | {"200", "404", "409"},
        ("POST", "/api/v1/devices/import"): every | {"200", "413", "415", "422"},
        ("GET", "/api/v1/devices/{device_id}/qr"): every | {"200", "404", "409", "422"},
        ("GET", "/api/v1/device-sites/{site_id}/qr"): every | {"200", "404", "422"},
        ("POST", "/api/v1/devices/{device_id}/qr/renew"): every | {"200", "404", "409", "422"},
        ("POST", "/api/v1/device-sites/{site_id}/qr/renew"): every | {"200", "404", "422"},
        ("GET", "/api/v1/device-sheets"): every | {"200", "404", "422"},
        # parts, stock and fault trees (issue 14 parts 4-5)
        ("POST", "/api/v1/parts"): body | {"200", "201"},
        ("GET", "/api/v1/parts"): every | {"200", "422"},
        ("GET", "/api/v1/parts/{part_id}"): every | {"200", "404", "422"},
        ("GET", "/api/v1/parts/{part_id}/movements"): every | {"200", "404", "422"},
        ("POST", "/api/v1/stock-movements"): body | {"201", "404", "409"},
        ("GET", "/api/v1/stock"): every | {"200", "422"},
        ("POST", "/api/v1/part-requests/{request_id}/approve"): body | {"200", "404", "409"},
        ("POST", "/api/v1/part-requests/{request_id}/decline"): body | {"200", "404", "409"},
        ("GET", "/api/v1/fault-trees/{category}"): every | {"200", "422"},
        ("PUT", "/api/v1/fault-trees/{category}"): body | {"200"},
        ("DELETE", "/api/v1/fault-trees/{category}"): every | {"200", "422"},
        # price lists, bills and payments (issue 14 part 6)
        ("PUT", "/api/v1/price-lists"): body | {"200"},
        ("GET", "/api/v1/price-lists"): every | {"200", "422"},
        ("POST", "/api/v1/visits/{visit_id}/bill"): every | {"200", "404", "409", "422"},
        ("POST", "/api/v1/visits/{visit_id}/payments"): body | {"201", "404"},
        # price increases and discounts (issue 14 part 6)
        ("GET", "/api/v1/visits/{visit_id}/price-changes"): every | {"200", "404", "422"},
        ("POST", "/api/v1/visits/{visit_id}/price-changes/{change_id}/approve"): every | {"200", "404", "409", "422"},
        ("POST", "/api/v1/visits/{visit_id}/price-changes/{change_id}/decline"): every | {"200", "404", "409", "422"},
        ("POST", "/api/v1/visits/{visit_id}/price-changes/{change_id}/customer"): body | {"200", "404", "409"},  # answered by phone
        ("POST", "/api/v1/visits/{visit_id}/discount"): body | {"201", "404", "409"},
        # maintenance plans (issue 14 part 8)
        ("POST", "/api/v1/maintenance-plans"): body | {"201", "404"},
        ("GET", "/api/v1/maintenance-plans"): every | {"200", "422"},
        ("GET", "/api/v1/maintenance-plans/{plan_id}"): every | {"200", "404", "422"},
        ("POST", "/api/v1/maintenance-plans/{plan_id}/generate"): every | {"200", "404", "422"},
        ("POST", "/api/v1/maintenance-plans/{plan_id}/stop"): every | {"200", "404", "422"},
        ("GET", "/api/v1/maintenance-plans/{plan_id}/report"): every | {"200", "404", "422"},
        # review periods and settlement statements (issue 14 part 7)
        ("GET", "/api/v1/settlements"): every | {"200", "422"},
        ("GET", "/api/v1/settlements/{statement_id}.csv"): every | {"200", "404", "422"},
        ("GET", "/api/v1/settlements/{statement_id}"): every | {"200", "404", "422"},
        ("POST", "/api/v1/settlements/close"): body | {"200"},
        ("GET", "/api/v1/settlement-items"): every | {"200", "422"},
        ("POST", "/api/v1/settlement-items/{item_id}/release"): every | {"200", "404", "409", "422"},
        ("POST", "/api/v1/settlement-items/{item_id}/adjust"): body | {"200", "404", "409"},
        ("GET", "/api/v1/technicians/{technician_id}/payout"): every | {"200", "404", "422"},
        ("PUT", "/api/v1/technicians/{technician_id}/payout"): body | {"200", "404"},
    }
    assert set(schema["paths"]["/healthz"]["get"]["responses"]) == {"200", "503"}
    job_id = schema["paths"]["/api/v1/jobs/{job_id}"]["get"]["parameters"][0]["schema"]
    assert (job_id["type"], job_id["minimum"], job_id["maximum"]) == ("integer", 1, MAX_ID)
