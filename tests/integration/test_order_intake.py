"""Order intake from real sources: multi-line orders grouped into visits, updates and cancellations told to the people
they concern (or refused once a visit is under way), the merchant's review queue with a price, coverage per source
policy, field maps for a source's own JSON, CSV/XLSX imports reported row by row, and polling a source with a cursor."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import socket
from datetime import timedelta

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from openpyxl import Workbook
from sqlalchemy import func, select

from domain import commands as c
from domain.errors import DomainError
from services import intake
from services.actions import OnMyWay, encode
from domain.model import Job, Visit
from storage import tables
from storage.orders import OrderStore
from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.support import ROOT
from tests.support.api import Api
from tests.support.harness import SHOP, World, keys
from tests.support.setups import booked_and_accepted, dispatch_group, visit_row
from webhooks.order_routes import validate_order

SAMPLES = ROOT / "tests" / "data" / "orders"


def multi_body(ref: str = "MO-1", **changes) -> dict:
    """A sofa with delivery and assembly, four chairs to deliver, and cushions that need no service."""
    body = {
        "source": "shop",
        "external_ref": ref,
        "customer": {"name": "Wang Fang", "phone": "+86 138 0000 1234", "language": "en"},
        "address": {"text": "Huangpu District, 100 Nanjing East Road", "lat": SHOP[0], "lon": SHOP[1], "region": "Huangpu"},
        "items": [
            {"sku": "SOFA-3", "name": "3-seat sofa", "category": "sofa", "services": [{"kind": "delivery", "duration_minutes": 30}, {"kind": "installation"}]},
            {"sku": "CHAIR-D", "name": "Dining chair", "quantity": 4, "category": "sofa", "services": [{"kind": "delivery", "duration_minutes": 20}]},
            {"sku": "CUSH-2", "name": "Cushion", "quantity": 2},
        ],
        "notes": "Ring twice",
    }
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = body
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[leaf] = value
    return body


def world_order(ref: str = "SO-1", services=("delivery",), **changes) -> dict:
    """The order World.order placed, in the order model's shape: sending it again through intake changes nothing."""
    body = {
        "source": "erp", "external_ref": ref,
        "customer": {"name": "Zhang Wei", "phone": "13912345678", "language": "en"},
        "address": {"text": "Huangpu District, 100 Nanjing East Road", "lat": SHOP[0], "lon": SHOP[1], "region": "Huangpu"},
        "product": {"name": "3-seat sofa", "category": "sofa"},
        "services": [{"kind": k} for k in services],
    }
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = body
        for part in parents:
            target = target[part]
        target[leaf] = value
    return validate_order(body)


async def timeline_types(api: Api, job_id: int) -> list[str]:
    return [e["type"] for e in (await api.client.get(f"/api/v1/jobs/{job_id}")).json()["timeline"]]


# --- multi-line orders ------------------------------------------------------------------------------


async def test_lines_are_grouped_into_one_visit_per_work_type_and_goods_without_service_are_kept(api: Api):
    response = await api.client.post("/api/v1/orders", json=multi_body())
    assert response.status_code == 201, response.text
    job = response.json()["job"]
    delivery, installation = job["visits"]
    assert (delivery["kind"], installation["kind"]) == ("delivery", "installation")
    assert installation["depends_on_visit_id"] == delivery["id"]
    # the sofa and the chairs come in one delivery; the cushions are on the job and make no visit
    assert job["product"] == {"name": "3-seat sofa", "category": "sofa", "brand": None}
    async with api.container.sessions() as session:
        visits = await Store(session).visits_of_job(job["id"])
        stored = await Store(session).get(Job, job["id"])
    assert [v.duration_minutes for v in visits] == [50, 90]
    assert [i["sku"] for i in stored.items] == ["SOFA-3", "CHAIR-D", "CUSH-2"]


@pytest.mark.parametrize(("changes", "detail"), [
    # another address as a text alone: a job there could not be routed to (give {text, lat, lon, region})
    ({"items.1.address": "7 Other Road, Xuhui"}, "item_address_needs_pin"),
    ({"items": [{"sku": "CUSH-2", "name": "Cushion", "category": "textile"}]}, None),
    ({"items.0.services": [{"kind": "delivery"}, {"kind": "delivery"}]}, "services_repeated"),
])
async def test_orders_intake_cannot_serve_are_refused_with_422_and_the_reason(sqlite_api: Api, changes, detail):
    response = await sqlite_api.client.post("/api/v1/orders", json=multi_body(**changes))
    assert response.status_code == 422, response.text
    if detail:
        assert response.json()["detail"] == detail
    else:  # nothing needs a service: the field to fill in is named
        assert response.json()["errors"][0]["loc"] == ["body", "services"]
    assert (await sqlite_api.client.get("/api/v1/jobs/1")).status_code == 404


# --- updates and cancellations ----------------------------------------------------------------------------


async def test_a_changed_order_updates_its_job_and_the_change_is_on_the_timeline(api: Api):
    first = (await api.client.post("/api/v1/orders", json=multi_body())).json()["job"]
    changed = multi_body(notes="Ring three times")
    changed["items"].append({"sku": "TV-55", "name": "TV 55 inch", "category": "sofa", "services": [{"kind": "repair"}]})
    response = await api.client.post("/api/v1/orders", json=changed)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["outcome"] == "updated" and answer["created"] is False
    assert answer["changes"]["notes"] == ["Ring twice", "Ring three times"]
    assert [v["kind"] for v in answer["job"]["visits"]] == ["delivery", "installation", "repair"]
    assert answer["job"]["id"] == first["id"]
    update = next(e for e in answer["job"]["timeline"] if e["type"] == "OrderUpdated")
    assert update["data"]["visits_added"] == [answer["job"]["visits"][2]["id"]]
    # the new visit can be booked at once: its booking chase runs like a new job's
    assert any(t["visit_id"] == answer["job"]["visits"][2]["id"] for t in await timers_of(api, "booking"))
    # the same content again: unchanged, nothing new on the timeline
    again = await api.client.post("/api/v1/orders", json=changed)
    assert again.json()["outcome"] == "unchanged"
    assert (await timeline_types(api, first["id"])).count("OrderUpdated") == 1
    # dropping the installation cancels its visit
    fewer = copy.deepcopy(changed)
    fewer["items"][0]["services"] = [{"kind": "delivery", "duration_minutes": 30}]
    dropped = (await api.client.post("/api/v1/orders", json=fewer)).json()
    assert [v["status"] for v in dropped["job"]["visits"]] == ["created", "cancelled", "created"]


async def timers_of(api: Api, kind: str) -> list:
    async with api.container.sessions() as session:
        return await ScheduleStore(Store(session)).timers_of_kind(kind)


async def test_an_order_updated_after_booking_tells_the_driver_and_the_customer(world: World):
    order, customer, driver, _group = await booked_and_accepted(world)
    bus = world.container.bus
    unchanged = await intake.place(bus, world_order())
    assert unchanged.outcome == "unchanged"  # a job from before intake kept its content: the same order changes nothing
    moved = await intake.place(bus, world_order(**{"address.text": "Huangpu District, 200 Nanjing East Road", "address.lat": SHOP[0] + 0.001}))
    assert moved.outcome == "updated" and set(moved.changes) == {"address_text", "lat"}
    told = await driver.inbox()
    assert keys(told) == ["order.technician_updated"]
    assert told[0].params["address"] == "Huangpu District, 200 Nanjing East Road"
    assert told[0].has_button("go")  # the next step of the visit, right there
    heard = await customer.inbox()
    assert keys(heard) == ["order.customer_updated_keep"] and heard[0].has_button("rs")
    assert (await world.job(order.job.id))["timeline"][-1]["type"] == "OrderUpdated"


async def test_an_order_cannot_change_or_be_cancelled_once_the_driver_is_on_the_way(world: World):
    order, customer, driver, _group = await booked_and_accepted(world)
    await driver.press(encode(OnMyWay(order.visits[0].id)))
    await driver.inbox(), await customer.inbox()
    bus = world.container.bus
    with pytest.raises(intake.OrderRefused) as refused:
        await intake.place(bus, world_order(**{"address.text": "Somewhere else 1"}))
    assert refused.value.code == "order_past_change_point"
    assert f"visit {order.visits[0].id} (delivery) is en_route" in refused.value.reason
    with pytest.raises(intake.OrderRefused):
        await intake.run(bus, c.CancelOrder("erp", "SO-1", "customer changed their mind"))
    # nothing changed and nobody was told anything
    assert (await visit_row(world, order.visits[0].id)).status == "en_route"
    assert await driver.inbox() == [] and await customer.inbox() == []
    # notes are for the people, and move no visit: they still reach the job
    noted = await intake.place(bus, world_order(notes="Parking at the back"))
    assert noted.outcome == "updated"


async def test_cancelling_an_accepted_order_cancels_its_visits_and_tells_driver_customer_and_dispatchers(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    await group.inbox()
    await intake.run(world.container.bus, c.CancelOrder("erp", "SO-1", "out of stock"))
    assert (await visit_row(world, order.visits[0].id)).status == "cancelled"
    assert keys(await driver.inbox()) == ["tech.visit_cancelled"]
    assert keys(await customer.inbox()) == ["customer.visit_cancelled"]
    alert = await group.inbox()
    assert keys(alert) == ["order.group_cancelled"] and alert[0].params["reason"] == "out of stock"
    assert (await world.job(order.job.id))["status"] == "cancelled"
    # a second cancel changes nothing; the same order sent again is refused with the reason
    await intake.run(world.container.bus, c.CancelOrder("erp", "SO-1"))
    assert await driver.inbox() == [] and await customer.inbox() == []
    with pytest.raises(intake.OrderRefused, match="order_cancelled"):
        await intake.place(world.container.bus, world_order())


async def test_the_cancel_route_answers_409_past_completion_and_404_for_an_unknown_order(api: Api):
    job = (await api.client.post("/api/v1/orders", json=multi_body())).json()["job"]
    for visit in job["visits"]:
        await give_api(api, visit["id"], "completed")
    refused = await api.client.post("/api/v1/order-sources/shop/orders/MO-1/cancel", json={"reason": "late"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"].startswith("order_past_change_point: visit ")
    assert "completed" in refused.json()["detail"]
    changed = await api.client.post("/api/v1/orders", json=multi_body(notes="x", **{"address.text": "Elsewhere 5"}))
    assert changed.status_code == 409 and "too late" in changed.json()["detail"]
    missing = await api.client.post("/api/v1/order-sources/shop/orders/NOPE/cancel", json={})
    assert missing.status_code == 404


async def give_api(api: Api, visit_id: int, status: str) -> None:
    async with api.container.sessions() as session, session.begin():
        (await Store(session).get(Visit, visit_id)).status = status


async def test_a_ref_with_slashes_is_cancelled_through_the_route(sqlite_api: Api):
    body = multi_body("DN/2026/42")
    assert (await sqlite_api.client.post("/api/v1/orders", json=body)).status_code == 201
    cancelled = await sqlite_api.client.post("/api/v1/order-sources/shop/orders/DN/2026/42/cancel", json={"reason": "dup"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"


# --- the merchant's review --------------------------------------------------------------------------------


async def test_a_reviewed_source_queues_orders_until_the_merchant_confirms_them_with_a_price(api: Api):
    put = await api.client.put("/api/v1/order-sources/shop", json={"review_required": True, "currency": "CNY"})
    assert put.status_code == 200, put.text
    queued = await api.client.post("/api/v1/orders", json=multi_body())
    assert queued.status_code == 202, queued.text
    assert queued.json() == {"source": "shop", "external_ref": "MO-1", "outcome": "pending_review", "price_minor": None}
    assert (await api.client.get("/api/v1/jobs/1")).status_code == 404  # no job, no visit, nobody told yet
    # changed while queued: the queue holds the latest
    await api.client.post("/api/v1/orders", json=multi_body(notes="Ring three times", price_minor=9900))
    queue = (await api.client.get("/api/v1/order-sources/shop/review")).json()
    assert [(q["external_ref"], q["price_minor"], q["order"]["notes"]) for q in queue] == [("MO-1", 9900, "Ring three times")]
    assert (await api.client.get("/api/v1/order-sources/shop")).json()["pending_review"] == 1
    confirmed = await api.client.post("/api/v1/order-sources/shop/review/MO-1/confirm", json={"price_minor": 12000})
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["state"], confirmed.json()["price_minor"], confirmed.json()["currency"]) == ("accepted", 12000, "CNY")
    job_id = confirmed.json()["job_id"]
    assert {"JobCreated", "OrderConfirmed"} <= set(await timeline_types(api, job_id))
    assert (await api.client.get("/api/v1/order-sources/shop/review")).json() == []
    again = await api.client.post("/api/v1/orders", json=multi_body(notes="Ring three times", price_minor=9900))
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged" and again.json()["price_minor"] == 12000


async def test_confirming_without_any_price_is_refused_and_a_rejected_order_stays_out(sqlite_api: Api):
    api = sqlite_api
    await api.client.put("/api/v1/order-sources/shop", json={"review_required": True})
    await api.client.post("/api/v1/orders", json=multi_body())
    no_price = await api.client.post("/api/v1/order-sources/shop/review/MO-1/confirm", json={})
    assert no_price.status_code == 422 and no_price.json()["detail"] == "price_required"
    rejected = await api.client.post("/api/v1/order-sources/shop/review/MO-1/reject", json={"reason": "fake order"})
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    resent = await api.client.post("/api/v1/orders", json=multi_body())
    assert resent.status_code == 409 and "fake order" in resent.json()["detail"]
    late = await api.client.post("/api/v1/order-sources/shop/review/MO-1/confirm", json={"price_minor": 100})
    assert late.status_code == 409 and late.json()["detail"].startswith("order_not_in_review")


# --- coverage -----------------------------------------------------------------------------------------------


async def test_a_refusing_source_gets_422_for_a_region_nobody_can_serve_until_someone_can(api: Api):
    await api.client.put("/api/v1/order-sources/shop", json={"coverage_policy": "refuse"})
    refused = await api.client.post("/api/v1/orders", json=multi_body())
    assert refused.status_code == 422
    assert refused.json()["detail"] == "region_not_covered: no technician in region 'Huangpu' can do: delivery, installation"
    for body in (
        {"name": "Wang", "phone": "13800001111", "roles": ["driver"], "skills": [], "regions": ["Huangpu"]},
        {"name": "Li", "phone": "13800002222", "roles": ["installer"], "skills": ["sofa"], "regions": ["Huangpu"]},
    ):
        assert (await api.client.post("/api/v1/technicians", json=body)).status_code == 201
    # off duty today still covers the region: coverage is about being served at all
    accepted = await api.client.post("/api/v1/orders", json=multi_body())
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["coverage_gap"] == []


async def test_a_flagging_source_accepts_the_order_and_alerts_the_regions_dispatchers(world: World):
    group = await dispatch_group(world)
    async with world.container.sessions() as session, session.begin():
        await OrderStore(Store(session)).put_source("shop", {"coverage_policy": "flag"}, world.clock.now())
    receipt = await intake.place(world.container.bus, validate_order(multi_body()))
    assert receipt.outcome == "created" and receipt.coverage_gap == ["delivery", "installation"]
    alert = await group.inbox()
    assert keys(alert) == ["order.group_coverage_gap"]
    assert alert[0].has_button("dan")  # assign anyone skilled: the alert is no dead end


# --- a source's own JSON through its field map ------------------------------------------------------------


@pytest.mark.parametrize(("preset", "sample", "ref", "kinds"), [
    ("ecommerce", "ecommerce_order", "EC-5001234", ["delivery", "installation"]),
    ("erp_delivery_note", "erp_delivery_note", "2026000042", ["delivery", "installation"]),
])
async def test_a_sources_own_json_becomes_an_order_through_its_shipped_map(api: Api, preset, sample, ref, kinds):
    assert (await api.client.put("/api/v1/order-sources/acme", json={"preset": preset})).status_code == 200
    raw = json.loads((SAMPLES / f"{sample}.json").read_text(encoding="utf-8"))
    response = await api.client.post("/api/v1/order-sources/acme/orders", json=raw)
    assert response.status_code == 201, response.text
    job = response.json()["job"]
    assert (job["source"], job["external_ref"]) == ("acme", ref)
    assert [v["kind"] for v in job["visits"]] == kinds
    # the same JSON again is the same order
    assert (await api.client.post("/api/v1/order-sources/acme/orders", json=raw)).json()["outcome"] == "unchanged"


async def test_a_source_json_the_map_cannot_read_is_refused_with_the_field_named(sqlite_api: Api):
    await sqlite_api.client.put("/api/v1/order-sources/acme", json={"preset": "ecommerce"})
    raw = json.loads((SAMPLES / "ecommerce_order.json").read_text(encoding="utf-8"))
    raw["service_fee"] = "12.345"
    bad_fee = await sqlite_api.client.post("/api/v1/order-sources/acme/orders", json=raw)
    assert bad_fee.status_code == 422 and bad_fee.json()["detail"].startswith("mapping_failed: price_minor:")
    raw["service_fee"] = "12.00"
    del raw["buyer"]
    no_buyer = await sqlite_api.client.post("/api/v1/order-sources/acme/orders", json=raw)
    assert no_buyer.status_code == 422 and no_buyer.json()["detail"].startswith("invalid_order: customer")
    unknown = await sqlite_api.client.post("/api/v1/order-sources/nobody/orders", json=raw)
    assert unknown.status_code == 404
    bad_map = await sqlite_api.client.put("/api/v1/order-sources/acme", json={"mapping": {"fields": {"x": {"path": "a", "transform": ["eval"]}}}})
    assert bad_map.status_code == 422 and "transform is a list of" in bad_map.json()["detail"]


# --- CSV and XLSX ---------------------------------------------------------------------------------------------

HEADER = "order_ref,customer_name,customer_phone,customer_language,address,lat,lon,region,sku,item_name,quantity,category,services,price\n"


def csv_file(orders: int, bad: set[int]) -> tuple[bytes, set[int]]:
    """``orders`` orders of two lines each (a sofa to deliver and install, cushions alone); the orders in ``bad``
    carry one wrong cell on their second line. Returns the file and the file rows that are wrong."""
    lines, wrong = [HEADER], set()
    for n in range(orders):
        ref, phone = f"CSV-{n:04d}", f"139{n:08d}"
        common = f"{ref},Customer {n},{phone},en,\"{n} Nanjing East Road, Huangpu\",{SHOP[0]},{SHOP[1]},Huangpu"
        lines.append(f"{common},SOFA-3,Sofa,1,sofa,delivery;installation,120.00\n")
        quantity = "two" if n in bad else "2"
        lines.append(f"{common},CUSH-2,Cushion,{quantity},textile,none,120.00\n")
        if n in bad:
            wrong.add(len(lines))  # the row number in the file: the header is row 1
    return "".join(lines).encode(), wrong


@pytest.mark.parametrize("orders", [pytest.param(20, id="40-rows"), pytest.param(500, id="1000-rows", marks=pytest.mark.slow)])
async def test_a_csv_with_bad_rows_reports_each_row_and_imports_good_rows_once(api: Api, orders: int):
    data, wrong = csv_file(orders, bad={3, orders // 2, orders - 1})
    rows = 2 * orders
    first = await api.client.post("/api/v1/order-sources/shop/import", content=data, headers={"Content-Type": "text/csv"})
    assert first.status_code == 200, first.text
    report = first.json()
    assert len(report["rows"]) == rows and [r["row"] for r in report["rows"]] == list(range(2, rows + 2))
    errors = {r["row"]: r["reason"] for r in report["rows"] if r["status"] == "error"}
    # each bad row says why; its order's other line says which row spoiled it
    assert wrong <= set(errors) and len(errors) == 6
    assert all("quantity: 'two' is not a valid int" in errors[row] for row in wrong)
    assert all(errors[row].startswith(f"row {row + 1} of the same order is wrong") for row in errors if row not in wrong)
    assert report["imported"] == rows - 6 and {r["status"] for r in report["rows"] if r["row"] not in errors} == {"created"}
    jobs_after_first = await count_jobs(api)
    assert jobs_after_first == orders - 3
    again = (await api.client.post("/api/v1/order-sources/shop/import", content=data, headers={"Content-Type": "text/csv"})).json()
    assert again["imported"] == 0 and again["errors"] == 6
    assert {r["status"] for r in again["rows"] if r["row"] not in errors} == {"unchanged"}
    assert await count_jobs(api) == jobs_after_first


async def count_jobs(api: Api) -> int:
    async with api.container.sessions() as session:
        return (await session.execute(select(func.count()).select_from(tables.jobs))).scalar_one()


async def test_an_xlsx_file_imports_like_a_csv_and_other_files_are_refused(sqlite_api: Api):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER.strip().split(","))
    sheet.append(["X-1", "Li", "13900000001", "zh", "1 Nanjing East Road", SHOP[0], SHOP[1], "Huangpu", "WM-8", "Washer", 1, "washer", "delivery", 80])
    sheet.append(["X-2", "Wu", "13900000002", "en", "2 Nanjing East Road", SHOP[0], SHOP[1], "Huangpu", "WM-8", "Washer", 1, "washer", "teleport", 80])
    buffer = io.BytesIO()
    workbook.save(buffer)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = await sqlite_api.client.post("/api/v1/order-sources/shop/import", content=buffer.getvalue(), headers={"Content-Type": xlsx})
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert (rows[0]["row"], rows[0]["status"]) == (2, "created")
    assert (rows[1]["row"], rows[1]["status"]) == (3, "error") and "'teleport' is not one of" in rows[1]["reason"]
    garbage = await sqlite_api.client.post("/api/v1/order-sources/shop/import", content=b"PK\x03\x04nonsense", headers={"Content-Type": xlsx})
    assert garbage.status_code == 422 and garbage.json()["detail"] == "the file is not an XLSX workbook"
    wrong_type = await sqlite_api.client.post("/api/v1/order-sources/shop/import", content=b"{}", headers={"Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    huge_cell = await sqlite_api.client.post("/api/v1/order-sources/shop/import", content=b"order_ref\n" + b"x" * 140_000,
                                             headers={"Content-Type": "text/csv"})
    assert huge_cell.status_code == 422 and huge_cell.json()["detail"].startswith("the CSV cannot be read at line")
    header_only = await sqlite_api.client.post("/api/v1/order-sources/shop/import", content=HEADER.encode(), headers={"Content-Type": "text/csv"})
    assert header_only.status_code == 422 and header_only.json()["detail"] == "the file has no rows under its header row"


# --- polling a source ------------------------------------------------------------------------------------------


class FakeSource:
    """An ERP's order feed on 127.0.0.1: pages of delivery notes by cursor; it records what it was asked."""

    def __init__(self) -> None:
        self.pages: dict[str | None, dict] = {}
        self.requests: list[tuple[str | None, str | None]] = []
        self.fail_with: int | None = None
        app = FastAPI()

        @app.get("/notes")
        async def notes(request: Request):
            cursor = request.query_params.get("after")
            self.requests.append((cursor, request.headers.get("authorization")))
            if self.fail_with:
                return JSONResponse({"error": "down"}, self.fail_with)
            return self.pages.get(cursor, {"value": [], "next_cursor": cursor})

        self.app = app

    async def __aenter__(self) -> str:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()  # connections wait in the backlog until uvicorn accepts them: no waiting for it to start
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self.task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}/notes"

    async def __aexit__(self, *exc) -> None:
        self.server.should_exit = True
        await self.task
        self.socket.close()


def note(number: int, **changes) -> dict:
    raw = json.loads((SAMPLES / "erp_delivery_note.json").read_text(encoding="utf-8"))
    raw["DocNum"], raw["Phone1"] = number, f"1390000{number:04d}"
    raw.update(changes)
    return raw


async def test_polling_fetches_from_the_persisted_cursor_and_moves_it_only_after_the_orders_are_stored(api: Api):
    fake = FakeSource()
    async with fake as url:
        fake.pages[None] = {"value": [note(1), note(2)], "next_cursor": "c1"}
        fake.pages["c1"] = {"value": [note(3), note(4, ShipTo="nowhere")], "next_cursor": "c2"}
        put = await api.client.put("/api/v1/order-sources/sap", json={
            "preset": "erp_delivery_note", "coverage_policy": "flag",
            "polling": {"url": url, "interval_seconds": 60, "cursor_param": "after", "authorization": "Bearer feed-secret-123"},
        })
        assert put.status_code == 200, put.text
        assert put.json()["polling"]["has_authorization"] is True and "feed-secret" not in put.text
        poller = api.container.order_poller
        assert await poller.run_due() == 1
        assert fake.requests == [(None, "Bearer feed-secret-123"), ("c1", "Bearer feed-secret-123"), ("c2", "Bearer feed-secret-123")]
        source = (await api.client.get("/api/v1/order-sources/sap")).json()
        assert source["polling"]["cursor"] == "c2"
        assert "order 2 of the page" in source["polling"]["last_error"]  # the bad note is reported, and skipped
        assert await count_jobs(api) == 3
        # not due again until the interval has passed; then it goes on from the cursor
        assert await poller.run_due() == 0
        api.container.clock.advance(timedelta(seconds=61))
        fake.pages["c2"] = {"value": [note(3, Comments="Leave at the door")], "next_cursor": "c3"}
        fake.requests.clear()
        assert await poller.run_due() == 1
        assert [r[0] for r in fake.requests] == ["c2", "c3"]
        assert (await api.client.get("/api/v1/order-sources/sap")).json()["polling"]["cursor"] == "c3"
        assert await count_jobs(api) == 3  # note 3 again, changed: its job was updated, not made twice
        # the feed down: the cursor stays, the error is kept, the next poll is set
        api.container.clock.advance(timedelta(seconds=61))
        fake.fail_with = 503
        assert await poller.run_due() == 1
        down = (await api.client.get("/api/v1/order-sources/sap")).json()["polling"]
        assert down["cursor"] == "c3" and down["last_error"] == "fetch answered HTTP 503"
        assert len([t for t in await timers_of(api, "order_poll") if t["status"] == "pending"]) == 1


async def test_a_polling_url_must_be_https_unless_it_is_local(sqlite_api: Api):
    response = await sqlite_api.client.put("/api/v1/order-sources/sap", json={
        "preset": "erp_delivery_note", "polling": {"url": "http://erp.example.com/notes", "interval_seconds": 60},
    })
    assert response.status_code == 422 and "must be https://" in response.json()["detail"]
    too_often = await sqlite_api.client.put("/api/v1/order-sources/sap", json={
        "preset": "erp_delivery_note", "polling": {"url": "https://erp.example.com/notes", "interval_seconds": 1},
    })
    assert too_often.status_code == 422


async def test_domain_errors_of_intake_are_described_with_their_reason():
    err = intake.OrderRefused("order_cancelled", "send a new order")
    assert intake.describe(err) == "order_cancelled: send a new order"
    assert intake.describe(DomainError("price_required")) == "price_required"
