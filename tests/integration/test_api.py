"""The back-office HTTP API: auth, idempotent orders with working links, staff invites, templates, health and docs."""

from __future__ import annotations

import asyncio
import copy
import socket
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from fieldchat.fakes.telegram_server import FakeTelegram
from tests.support.api import AUTH, TOKEN, Api, error_locations, make_app, order_body, running_api, technician_body, token_of, TEMPLATE
from tests.support.harness import World, keys
from tests.support.telegram import CUSTOMER as CUSTOMER_BOT_TOKEN, STAFF as STAFF_BOT_TOKEN

# --- auth -----------------------------------------------------------------------------------------


async def test_api_refuses_requests_without_a_bearer_token_with_401_and_www_authenticate(sqlite_api: Api):
    response = await sqlite_api.client.get("/api/v1/jobs/1", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == "missing or wrong bearer token"


async def test_api_refuses_a_wrong_bearer_token_with_401_and_creates_nothing(sqlite_api: Api):
    client = sqlite_api.client
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        response = await client.post("/api/v1/orders", json=order_body(), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get("/api/v1/jobs/1")).status_code == 404


async def test_api_answers_503_naming_the_setting_when_no_api_token_is_configured(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path, api_token=None) as api:
        response = await api.client.post("/api/v1/orders", json=order_body())
        assert response.status_code == 503
        assert "FIELDCHAT_API_TOKEN" in response.json()["detail"]
        assert (await api.client.get("/healthz")).status_code == 200


# --- orders ---------------------------------------------------------------------------------------


async def test_new_order_creates_a_job_with_delivery_then_installation_and_a_web_chat_link(api: Api):
    response = await api.client.post("/api/v1/orders", json=order_body())
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["created"] is True
    job = answer["job"]
    assert (job["source"], job["external_ref"], job["region"]) == ("erp", "SO-1", "Huangpu")
    assert job["product"] == {"name": "3-seat sofa", "category": "sofa", "brand": "Nordhaus"}
    delivery, installation = job["visits"]
    assert (delivery["kind"], installation["kind"]) == ("delivery", "installation")
    assert delivery["depends_on_visit_id"] is None
    assert installation["depends_on_visit_id"] == delivery["id"]
    assert delivery["technician"] is None and delivery["slot_start"] is None
    link = urlsplit(answer["customer_link"])
    # the customer's own page, never the demo console (issue 12 part 5); the console's link stays for the demo
    assert (link.scheme, link.netloc, link.path) == ("http", "testserver", "/customer")
    assert token_of(answer["customer_link"], "customer")
    assert urlsplit(answer["web_link"]).path == "/chat"
    assert token_of(answer["web_link"], "customer") == token_of(answer["customer_link"], "customer")


async def test_repeating_an_order_returns_200_with_the_same_job_and_no_new_visits(api: Api):
    first = await api.client.post("/api/v1/orders", json=order_body())
    again = await api.client.post("/api/v1/orders", json=order_body(notes="sent twice"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] is False
    assert again.json()["job"]["id"] == first.json()["job"]["id"]
    assert [v["id"] for v in again.json()["job"]["visits"]] == [v["id"] for v in first.json()["job"]["visits"]]
    # a repeat hands out the link already given, not a second one
    assert token_of(again.json()["customer_link"], "customer") == token_of(first.json()["customer_link"], "customer")
    # another external_ref is another job
    other = await api.client.post("/api/v1/orders", json=order_body("SO-2"))
    assert other.status_code == 201 and other.json()["job"]["id"] != first.json()["job"]["id"]


async def test_outside_demo_mode_no_console_link_is_handed_out(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path, web_console=False) as api:
        order = (await api.client.post("/api/v1/orders", json=order_body())).json()
        # a customer without a messenger still gets a link: their own chat page, not the console
        assert urlsplit(order["customer_link"]).path == "/customer" and order["web_link"] is None
        invite = (await api.client.post("/api/v1/dispatchers", json={"name": "Dora"})).json()
        assert invite["invite_link"] is None and invite["web_link"] is None


async def test_customer_link_opens_the_order_in_the_chat(api: Api):
    answer = (await api.client.post("/api/v1/orders", json=order_body())).json()
    token = token_of(answer["customer_link"], "customer")
    world = World(api.container, api.container.clock, api.tmp_path)
    customer = world.chat("customer", "web-customer-1")
    welcome = await customer.send(f"/start {token}")
    assert "customer.order_summary" in keys(welcome)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"address.lat": 91}, ("body", "address", "lat")),
        ({"address.lon": -181}, ("body", "address", "lon")),
        ({"services": []}, ("body", "services")),
        ({"services": [{"kind": "teleportation"}]}, ("body", "services", 0, "kind")),
        ({"customer.phone": "call me maybe"}, ("body", "customer", "phone")),
        ({"external_ref": ""}, ("body", "external_ref")),
    ],
    ids=["lat-91", "lon-minus-181", "no-services", "unknown-service-kind", "bad-phone", "empty-external-ref"],
)
async def test_invalid_order_is_refused_with_422_naming_the_field(sqlite_api: Api, changes, field):
    response = await sqlite_api.client.post("/api/v1/orders", json=order_body(**changes))
    assert response.status_code == 422
    assert field in error_locations(response)
    assert (await sqlite_api.client.get("/api/v1/jobs/1")).status_code == 404


async def test_repeated_service_kind_is_refused_with_422_services_repeated(sqlite_api: Api):
    body = order_body(services=[{"kind": "delivery"}, {"kind": "delivery"}])
    response = await sqlite_api.client.post("/api/v1/orders", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == "services_repeated"


async def test_job_status_lists_visits_and_a_timeline_starting_with_job_created(api: Api):
    created = (await api.client.post("/api/v1/orders", json=order_body())).json()["job"]
    response = await api.client.get(f"/api/v1/jobs/{created['id']}")
    assert response.status_code == 200
    job = response.json()
    assert job["id"] == created["id"] and job["status"] == created["status"]
    assert [v["id"] for v in job["visits"]] == [v["id"] for v in created["visits"]]
    assert job["timeline"][0]["type"] == "JobCreated"
    assert job["timeline"][0]["data"]["visits"] == [v["id"] for v in created["visits"]]


async def test_unknown_job_answers_404_job_not_found(sqlite_api: Api):
    response = await sqlite_api.client.get("/api/v1/jobs/999999")
    assert response.status_code == 404
    assert response.json()["detail"] == "job_not_found"


async def test_two_identical_orders_at_the_same_moment_make_exactly_one_job(api: Api):
    first, second = await asyncio.gather(
        api.client.post("/api/v1/orders", json=order_body("SO-RACE")),
        api.client.post("/api/v1/orders", json=order_body("SO-RACE")),
    )
    assert first.status_code in (200, 201), first.text
    assert second.status_code in (200, 201), second.text
    assert first.json()["job"]["id"] == second.json()["job"]["id"]
    assert sorted([first.status_code, second.status_code]) in ([200, 201], [201, 201])
    job = (await api.client.get(f"/api/v1/jobs/{first.json()['job']['id']}")).json()
    assert [v["kind"] for v in job["visits"]] == ["delivery", "installation"]
    assert [e["type"] for e in job["timeline"]].count("JobCreated") == 1
    assert (await api.client.get(f"/api/v1/jobs/{job['id'] + 1}")).status_code == 404


# --- staff, groups, templates ---------------------------------------------------------------------


async def test_new_technician_with_roles_skills_and_hours_gets_an_invite_link(sqlite_api: Api):
    response = await sqlite_api.client.post("/api/v1/technicians", json=technician_body())
    assert response.status_code == 201, response.text
    answer = response.json()
    assert isinstance(answer["id"], int)
    assert answer["invite_link"] == answer["web_link"]
    assert urlsplit(answer["invite_link"]).path == "/chat"
    assert token_of(answer["invite_link"], "installer")
    driver = await sqlite_api.client.post("/api/v1/technicians", json=technician_body(name="Wang", phone="13800002222", roles=["driver"]))
    assert driver.status_code == 201
    assert token_of(driver.json()["invite_link"], "driver")


async def test_technician_invite_link_registers_the_technician_in_the_chat(sqlite_api: Api):
    answer = (await sqlite_api.client.post("/api/v1/technicians", json=technician_body())).json()
    world = World(sqlite_api.container, sqlite_api.container.clock, sqlite_api.tmp_path)
    staff = world.chat("staff", "web-installer-1")
    assert keys(await staff.send(f"/start {token_of(answer['invite_link'], 'installer')}")) == ["tech.welcome"]


@pytest.mark.parametrize(
    "hours",
    [
        {"weekdays": [0, 1], "start": "18:00", "end": "09:00"},
        {"weekdays": [0, 1], "start": "09:00", "end": "09:00"},
        {"weekdays": [7], "start": "09:00", "end": "18:00"},
    ],
    ids=["end-before-start", "empty-shift", "weekday-7"],
)
async def test_technician_with_impossible_working_hours_is_refused_with_422(sqlite_api: Api, hours):
    response = await sqlite_api.client.post("/api/v1/technicians", json=technician_body(working_hours=hours))
    assert response.status_code == 422
    assert response.json()["detail"] == "working_hours_invalid"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"roles": []}, ("body", "roles")),
        ({"roles": ["astronaut"]}, ("body", "roles", 0)),
        ({"working_hours": {"start": "9am"}}, ("body", "working_hours", "start")),
        ({"home": {"lat": 95, "lon": 0}}, ("body", "home", "lat")),
    ],
    ids=["no-roles", "unknown-role", "bad-time", "bad-home"],
)
async def test_invalid_technician_is_refused_with_422_naming_the_field(sqlite_api: Api, changes, field):
    response = await sqlite_api.client.post("/api/v1/technicians", json=technician_body(**changes))
    assert response.status_code == 422
    assert field in error_locations(response)


async def test_new_dispatcher_gets_a_web_invite_link(sqlite_api: Api):
    response = await sqlite_api.client.post("/api/v1/dispatchers", json={"name": "Dora"})
    assert response.status_code == 201
    assert token_of(response.json()["invite_link"], "dispatcher")


async def test_new_dispatch_group_gets_a_startgroup_link_falling_back_to_the_web_chat(sqlite_api: Api):
    response = await sqlite_api.client.post("/api/v1/dispatch-groups", json={"name": "Ops Huangpu", "region": "Huangpu", "language": "en"})
    assert response.status_code == 201
    answer = response.json()
    assert answer["startgroup_link"] == answer["web_link"]
    assert token_of(answer["startgroup_link"], "group")


async def test_links_name_the_telegram_bots_from_get_me_when_tokens_are_configured(sqlite_url, tmp_path):
    fake = await FakeTelegram().start()
    try:
        fake.add_bot(CUSTOMER_BOT_TOKEN, "shop_care_bot")
        fake.add_bot(STAFF_BOT_TOKEN, "shop_crew_bot")
        async with running_api(
            sqlite_url, tmp_path, telegram_api_url=fake.base_url,
            telegram_customer_token=CUSTOMER_BOT_TOKEN, telegram_staff_token=STAFF_BOT_TOKEN,
        ) as api:
            client = api.client
            order = (await client.post("/api/v1/orders", json=order_body())).json()
            assert order["customer_link"].startswith("https://t.me/shop_care_bot?start=")
            assert token_of(order["customer_link"], "start") == token_of(order["web_link"], "customer")
            assert urlsplit(order["web_link"]).path == "/chat"

            tech = (await client.post("/api/v1/technicians", json=technician_body())).json()
            assert tech["invite_link"].startswith("https://t.me/shop_crew_bot?start=")
            assert token_of(tech["invite_link"], "start") == token_of(tech["web_link"], "installer")

            dispatcher = (await client.post("/api/v1/dispatchers", json={"name": "Dora"})).json()
            assert dispatcher["invite_link"].startswith("https://t.me/shop_crew_bot?start=")

            group = (await client.post("/api/v1/dispatch-groups", json={"name": "Ops"})).json()
            assert group["startgroup_link"].startswith("https://t.me/shop_crew_bot?startgroup=")
            assert token_of(group["startgroup_link"], "startgroup") == token_of(group["web_link"], "group")

            health = (await client.get("/healthz")).json()
            assert health["telegram_bots"] == ["customer", "staff"]
    finally:
        await fake.stop()
    assert {c.method for c in fake.calls} >= {"getMe"}


async def test_checklist_template_is_stored_and_replaced_on_a_second_put(sqlite_api: Api):
    first = await sqlite_api.client.put("/api/v1/checklist-templates", json=TEMPLATE)
    assert first.status_code == 200, first.text
    stored = first.json()
    assert (stored["service_kind"], stored["product_category"]) == ("installation", "sofa")
    assert [s["key"] for s in stored["steps"]] == ["room_ready", "legs", "fabric", "after"]
    assert stored["steps"][2]["choices"] == ["OK", "Marks"]
    assert stored["steps"][1]["min"] == 2 and stored["steps"][1]["max"] == 12
    shorter = {**TEMPLATE, "steps": TEMPLATE["steps"][:1]}
    second = await sqlite_api.client.put("/api/v1/checklist-templates", json=shorter)
    assert second.status_code == 200
    assert second.json()["id"] == stored["id"]
    assert [s["key"] for s in second.json()["steps"]] == ["room_ready"]


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ([{"key": "fabric", "kind": "choice", "prompt": {"en": "Fabric"}}], "checklist_choice_without_choices"),
        ([{"key": "a", "kind": "text", "prompt": {"en": "A"}}, {"key": "a", "kind": "photo", "prompt": {"en": "B"}}], "checklist_keys_repeated"),
    ],
    ids=["choice-without-choices", "repeated-keys"],
)
async def test_impossible_checklist_template_is_refused_with_422_and_its_reason(sqlite_api: Api, steps, reason):
    response = await sqlite_api.client.put("/api/v1/checklist-templates", json={**TEMPLATE, "steps": steps})
    assert response.status_code == 422
    assert response.json()["detail"] == reason


async def test_checklist_template_with_unknown_step_kind_is_refused_with_422_naming_the_field(sqlite_api: Api):
    template = copy.deepcopy(TEMPLATE)
    template["steps"][0]["kind"] = "signature"
    response = await sqlite_api.client.put("/api/v1/checklist-templates", json=template)
    assert response.status_code == 422
    assert ("body", "steps", 0, "kind") in error_locations(response)


# --- health and docs ------------------------------------------------------------------------------


async def test_healthz_answers_200_without_a_token(sqlite_api: Api):
    response = await sqlite_api.client.get("/healthz", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "telegram_bots": []}


async def test_openapi_lists_the_back_office_routes_and_docs_answer(sqlite_api: Api):
    schema = (await sqlite_api.client.get("/openapi.json")).json()
    paths = schema["paths"]
    assert {"post"} <= set(paths["/api/v1/orders"])
    assert {"get"} <= set(paths["/api/v1/jobs/{job_id}"])
    assert {"post"} <= set(paths["/api/v1/technicians"])
    assert {"post"} <= set(paths["/api/v1/dispatchers"])
    assert {"post"} <= set(paths["/api/v1/dispatch-groups"])
    assert {"put"} <= set(paths["/api/v1/checklist-templates"])
    assert {"get"} <= set(paths["/healthz"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    docs = await sqlite_api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# --- a real server --------------------------------------------------------------------------------


async def test_real_uvicorn_server_takes_an_order_and_reports_the_job(sqlite_url, tmp_path):
    _container, app = make_app(sqlite_url, tmp_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.025)
        assert server.started, "uvicorn did not start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=10) as client:
            created = await client.post("/api/v1/orders", json=order_body("SO-REAL"))
            assert created.status_code == 201, created.text
            assert created.json()["customer_link"].startswith(f"http://127.0.0.1:{port}/customer#customer=")
            job = await client.get(f"/api/v1/jobs/{created.json()['job']['id']}")
            assert job.status_code == 200
            assert [v["kind"] for v in job.json()["visits"]] == ["delivery", "installation"]
            assert job.json()["timeline"][0]["type"] == "JobCreated"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()
