"""The back office a new user walked (issue 14, walk report B-2, B-3, S-4, S-5, S-9, S-10, S-11): /me leads on to the
sections the role opens; the devices pages (list, record, history, QR sticker, printable sheets) for a signed-in session,
with the region rule and every id checked; the job page explains each visit's fee, labels its bill lines by kind, shows
the repair record in words with the technician's note, and reads its timeline as sentences, money and names."""

from __future__ import annotations

import io
import re
from html import unescape
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import update

from domain import commands as c
from domain.fees import Money
from domain.settlement import close_due_at
from domain.model import Visit
from storage import tables as t
from storage.repository import Store
from tests.integration.test_accounts import browser
from tests.integration.test_device_history import device_with_a_repair
from tests.integration.test_devices import device_rows
from tests.integration.test_jobs_pages import signed_in, world_of
from tests.integration.test_page_labels import Fields
from tests.integration.test_price_changes import ask, shop
from tests.integration.test_settlement import item_of, statements
from tests.support.api import Api
from tests.support.harness import World


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


async def _job_of(world: World, visit_id: int) -> int:
    async with world.container.sessions() as session:
        return (await Store(session).load(Visit, visit_id)).job_id


async def repaired_device(world: World, tmp_path) -> dict:
    """An installed air conditioner with a repair its owner asked for, recorded (default fault tree codes and a typed note)
    and completed: the ids the tests need."""
    found = await device_with_a_repair(world, tmp_path)
    # its installation's photo where the service keeps photos (the photo routes serve nothing from elsewhere)
    media = world.container.web_uploads.media_dir
    media.mkdir(parents=True, exist_ok=True)
    (media / "installed.jpg").write_bytes((tmp_path / "installed.jpg").read_bytes())
    async def moved(store: Store) -> None:
        await store.session.execute(update(t.photos).where(t.photos.c.file_id == "ph-installed").values(path=str(media / "installed.jpg")))
    await world._tx(moved)
    repairer_id = await _technician_of(world, found["repair"])
    async def under_way(store: Store) -> None:
        visit = await store.load(Visit, found["repair"])
        visit.status = "in_progress"
    await world._tx(under_way)
    await world.container.bus.run("test", c.RecordRepairCompletion(
        found["repair"], repairer_id, "natural_wear", "capacitor_failed", "part_replaced", "fixed", (), "Replaced the run capacitor"))
    async with world.container.sessions() as session:
        status = (await Store(session).load(Visit, found["repair"])).status
    if status != "completed":
        await world.container.bus.run("test", c.CompleteVisit(found["repair"], repairer_id))
    found["repair_job"] = await _job_of(world, found["repair"])
    return found


async def _technician_of(world: World, visit_id: int) -> int:
    async with world.container.sessions() as session:
        technician = (await Store(session).load(Visit, visit_id)).technician_id
    assert technician is not None
    return technician


# --- B-2: /me leads on ---------------------------------------------------------------------------------------------


async def test_me_has_the_navigation_bar_and_the_sections_the_role_opens(api: Api):
    dora = await signed_in(api)
    page = (await dora.get("/me")).text
    nav = page.split("</header>")[0]
    for path in ("/board", "/jobs", "/reports", "/maintenance", "/devices"):
        assert f'href="{path}"' in nav, path
        assert f'<li><a href="{path}">' in page, path  # and the list under it, each with what it is for
    assert "Customers' devices" in unescape(page) and "Dora" in page and "Dispatcher" in page
    chinese = (await dora.get("/me?lang=zh")).text
    assert "前往" in chinese and "设备" in chinese and "调度看板" in chinese


# --- B-3: the devices pages ----------------------------------------------------------------------------------------


async def test_the_devices_list_finds_a_device_by_owner_phone_serial_and_model_and_links_to_its_page(api: Api, tmp_path):
    world = world_of(api)
    found = await repaired_device(world, api.tmp_path)
    other = await world.order("SO-9", services=("delivery",), phone="13700001111", customer="Li Na")
    assert other.job.id
    dora = await signed_in(api, regions=["Huangpu"])
    everything = await dora.get("/devices")
    assert everything.status_code == 200
    assert f'href="/devices/{found["device"]}"' in everything.text and "Devices on this page: 1" in everything.text
    for query in ("zhang", "13912345678", "139 1234 5678", "GR-7788", "kfr-35", "gree"):
        answer = await dora.get("/devices", params={"q": query})
        assert f'href="/devices/{found["device"]}"' in answer.text, query
    nothing = await dora.get("/devices", params={"q": "Li Na"})
    assert nothing.status_code == 200 and "No devices match" in nothing.text
    retired = await dora.get("/devices", params={"status": "retired"})
    assert "No devices match" in retired.text
    # the customer's devices, with their printable sheet
    mine = (await dora.get("/devices", params={"customer": str((await device_rows(world))[0]["customer_id"])})).text
    assert f'href="/devices/{found["device"]}"' in mine and "/devices/sheet?customer=" in mine
    # a region the device is not in: not listed, and its page is "no such device"
    pudong = await signed_in(api, "pia", regions=["Pudong"])
    assert "No devices match" in (await pudong.get("/devices")).text
    assert (await pudong.get(f"/devices/{found['device']}")).status_code == 404
    assert (await pudong.get(f"/devices/{found['device']}/qr.png")).status_code == 404
    customer = (await device_rows(world))[0]["customer_id"]
    assert (await pudong.get("/devices/sheet", params={"customer": str(customer)})).status_code == 404


async def test_the_devices_list_pages_through_devices_newest_first(api: Api, tmp_path):
    world = world_of(api)
    await repaired_device(world, api.tmp_path)
    for number in range(3):
        made = await api.client.post("/api/v1/devices", json={
            "customer": {"name": "Wang Fang", "phone": f"1370000200{number}", "language": "en"},
            "site": {"address": "Huangpu District, 1 Fuzhou Road", "lat": 31.23, "lon": 121.47, "region": "Huangpu"},
            "product": {"category": "washer", "name": "Washing machine", "brand": "Haier", "model": f"W-{number}"},
            "serial": f"HA-{number}", "installed_on": "2026-01-05", "warranty_months": 12})
        assert made.status_code == 201, made.text
    dora = await signed_in(api, regions=["Huangpu"])
    first = (await dora.get("/devices", params={"limit": "2"})).text
    ids = [int(n) for n in re.findall(r'<a href="/devices/(\d+)">#', first)]
    assert ids == sorted(ids, reverse=True) and len(ids) == 2
    following = re.search(r'rel="next" href="([^"]+)"', first)
    assert following
    second = (await dora.get(following.group(1).replace("&amp;", "&"))).text
    more = [int(n) for n in re.findall(r'<a href="/devices/(\d+)">#', second)]
    assert more and max(more) < min(ids) and "First page" in second
    # the warranty's end is shown with its year
    assert "2027-01-05" in first or "2027-01-05" in second


@pytest.mark.parametrize("query", [
    {"q": "x" * 101}, {"q": "bad\x00"}, {"status": "broken"}, {"customer": "abc"}, {"customer": "0"}, {"customer": "-1"},
    {"customer": "99999999999999"}, {"site": "1.5"}, {"limit": "0"}, {"limit": "201"}, {"before": "x"}, {"customer": "３"},
])
async def test_a_bad_search_is_answered_400_with_the_reason(api: Api, query: dict):
    dora = await signed_in(api)
    answer = await dora.get("/devices", params=query)
    assert answer.status_code == 400 and "This search cannot be read" in answer.text and 'href="/devices"' in answer.text


async def test_device_ids_are_checked_and_strangers_are_sent_to_sign_in(api: Api, tmp_path):
    world = world_of(api)
    found = await repaired_device(world, api.tmp_path)
    dora = await signed_in(api)
    for bad in ("abc", "0", "-3", "1.0", "99999999999999", "１"):
        for path in (f"/devices/{bad}", f"/devices/{bad}/qr.png"):
            answer = await dora.get(path)
            assert answer.status_code == 400 and "A device number is a whole number" in answer.text, path
    assert (await dora.get("/devices/424242")).status_code == 404
    assert (await dora.get("/devices/424242/qr.png")).status_code == 404
    for query in ({}, {"customer": "1", "site": "1"}, {"customer": "x"}, {"site": "0"}, {"customer": "1", "format": "docx"},
                  {"customer": "1", "page": "0"}, {"customer": "1", "page": "x"}):
        answer = await dora.get("/devices/sheet", params=query)
        assert answer.status_code == 400 and "A sheet is for one customer or one site" in answer.text, query
    assert (await dora.get("/devices/sheet", params={"customer": "424242"})).status_code == 404
    assert (await dora.get("/devices/sheet", params={"site": "424242"})).status_code == 404
    past = await dora.get("/devices/sheet", params={"customer": "1", "format": "png", "page": "9"})
    assert past.status_code == 400 and "The sheet cannot be made" in past.text
    async with browser(api) as stranger:
        for path in ("/devices", f"/devices/{found['device']}", f"/devices/{found['device']}/qr.png", "/devices/sheet?customer=1"):
            answer = await stranger.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=/devices"), path


async def test_the_device_page_shows_the_record_its_life_every_repair_and_its_qr_sticker(api: Api, tmp_path):
    world = world_of(api)
    found = await repaired_device(world, api.tmp_path)
    [device] = await device_rows(world)
    dora = await signed_in(api, regions=["Huangpu"])
    answer = await dora.get(f"/devices/{found['device']}")
    assert answer.status_code == 200
    page = answer.text
    for expected in ("Zhang Wei", "13912345678", "Huangpu District, 100 Nanjing East Road", "Split air conditioner", "Gree", "KFR-35GW",
                     "GR-778899", "bedroom", device["warranty_until"].isoformat(), "under warranty", "in service",
                     # its life so far, and every visit with a link to its job
                     "Its life so far", "installed", "repair requested", "repaired", f'href="/jobs/{found["job"]}"',
                     f'href="/jobs/{found["repair_job"]}"',
                     # the repair in words, with the technician's note
                     "Natural wear", "Capacitor failed", "Part replaced", "Replaced the run capacitor",
                     # the sticker and the sheets
                     f'src="/devices/{found["device"]}/qr.png"', f"/devices/sheet?customer={device['customer_id']}",
                     f"/devices/sheet?site={device['site_id']}"):
        assert expected in page, expected
    assert "capacitor_failed" not in page and "part_replaced" not in page
    thumbs = re.findall(r'src="(/jobs/\d+/photos/\d+\?size=thumb)"', page)
    assert thumbs
    for src in thumbs:
        assert (await dora.get(src)).headers["content-type"] == "image/jpeg", src
    assert 'aria-current=page' in page.split('href="/devices"')[1][:20]  # the navigation marks the section
    chinese = (await dora.get(f"/devices/{found['device']}?lang=zh")).text
    for expected in ("设备档案", "设备经历", "维修和上门记录", "二维码", "在保"):
        assert expected in chinese, expected

    png = await dora.get(f"/devices/{found['device']}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size[0] == 480
    sheet = await dora.get("/devices/sheet", params={"customer": str(device["customer_id"])})
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64," in sheet.text and "Split air conditioner" in sheet.text
    assert "img-src data:" in sheet.headers["content-security-policy"]
    site = await dora.get("/devices/sheet", params={"site": str(device["site_id"])})
    assert site.status_code == 200 and site.text.count("<div class=cell>") == 2  # the site's own code, then the device's
    pdf = await dora.get("/devices/sheet", params={"customer": str(device["customer_id"]), "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    one = await dora.get("/devices/sheet", params={"customer": str(device["customer_id"]), "format": "png"})
    assert one.status_code == 200 and Image.open(io.BytesIO(one.content)).size == (1240, 1754)

    # the job page names the device with a link to its page
    job = (await dora.get(f"/jobs/{found['repair_job']}")).text
    assert f'href="/devices/{found["device"]}"' in job

    # retired: no sticker any more, the record stays
    retired = await api.client.post(f"/api/v1/devices/{found['device']}/retire", json={"reason": "replaced by a new unit"})
    assert retired.status_code == 200, retired.text
    after = (await dora.get(f"/devices/{found['device']}")).text
    assert "A retired device has no working QR code." in after and "qr.png" not in after.split('id="qr"')[1]
    assert (await dora.get(f"/devices/{found['device']}/qr.png")).status_code == 409


# --- S-4, S-5, S-9, S-10, S-11: the job page ---------------------------------------------------------------------------


async def test_the_job_page_explains_the_fee_the_bill_the_repair_and_the_timeline_in_words(api: Api):
    world = world_of(api)
    visit_id, job_id, repairer, group, customer, repairer_id = await shop(world)
    await ask(world, repairer, visit_id, "150", "The drain line is blocked")
    [card] = await group.inbox()
    await group.press(card.button("pca"))
    [asked] = await customer.inbox()
    await customer.press(asked.button("pcy"))
    await world.container.bus.run("test", c.RecordRepairCompletion(
        visit_id, repairer_id, "natural_wear", "capacitor_failed", "part_replaced", "fixed", (), "Replaced the run capacitor"))
    async with world.container.sessions() as session:
        status = (await Store(session).load(Visit, visit_id)).status
    if status != "completed":
        await world.container.bus.run("test", c.CompleteVisit(visit_id, repairer_id))
    told = await customer.inbox()
    done = next(m for m in told if m.has_button("cf"))
    await customer.press(done.button("cf"))
    item = await item_of(world, visit_id)
    assert item is not None and item.status == "in_review"

    dora = await signed_in(api, regions=["Huangpu"])
    page = unescape((await dora.get(f"/jobs/{job_id}")).text)
    until = item.review_ends_at.astimezone(world.container.policy.tz).strftime("%Y-%m-%d %H:%M")
    fee = Money(item.amount_minor, item.currency).text()
    for expected in ("Technician's fee", f"In review until {until}", fee,
                     # the bill's lines by their kind
                     "Price increase", "The drain line is blocked",
                     # the repair record in words, and the typed note
                     "Cause: Natural wear · fault: Capacitor failed · method: Part replaced", "Technician's note: Replaced the run capacitor",
                     # the timeline in sentences, with money as money
                     "Price increase requested", "Price increase approved", "Price increase accepted by the customer",
                     "Technician's fee in review", "amount: CNY 150.00"):
        assert expected in page, expected
    for raw in ("PriceIncreaseRequested", "SettlementReviewStarted", "amount: 15000", "currency: CNY", "natural_wear", "capacitor_failed",
                "dispatcher:1", "change_id", "item_id"):
        assert raw not in page, raw

    # a low rating freezes it: the page says why; an adjustment names the dispatcher, from what to what and why
    await customer.press(f"rt:{visit_id}:1")
    frozen = unescape((await dora.get(f"/jobs/{job_id}")).text)
    assert "Frozen because of a low rating" in frozen and "Technician's fee frozen" in frozen and "reason: a low rating" in frozen
    async with world.container.sessions() as session:
        dispatcher = await Store(session).dispatcher_for_user("web", "staff", "dora")
    assert dispatcher is not None
    await world.container.bus.run("test", c.AdjustSettlement(visit_id, item.amount_minor + 9000, "goodwill for the wait",
                                                             f"dispatcher:{dispatcher.subject_id}", dispatcher.subject_id))
    adjusted = unescape((await dora.get(f"/jobs/{job_id}")).text)
    after = Money(item.amount_minor + 9000, item.currency).text()
    assert f"Adjusted from {fee} to {after} by Dora: goodwill for the wait" in adjusted
    assert "dispatcher:" not in adjusted and "Technician's fee adjusted" in adjusted and "status: in review" in adjusted
    assert "Released by" not in adjusted  # an adjustment releases it too: said once, as the adjustment

    # later: ready in its month, then settled on a statement with its number
    ready_at = (await item_of(world, visit_id)).review_ends_at + timedelta(minutes=1)
    world.clock.set(ready_at)
    await world.sweep()
    ready = await item_of(world, visit_id)
    assert ready.status == "ready"
    dora = await signed_in(api, "dora2", regions=["Huangpu"])  # days later: a new session
    assert f"Ready: settled in the statement of {ready.period}" in (await dora.get(f"/jobs/{job_id}")).text
    world.clock.set(close_due_at(ready.period, world.container.policy.tz) + timedelta(hours=1))
    await world.sweep()
    [statement] = await statements(world)
    dora = await signed_in(api, "dora3", regions=["Huangpu"])
    assert f"Settled in statement {statement.number} ({ready.period})" in (await dora.get(f"/jobs/{job_id}")).text
    chinese = (await dora.get(f"/jobs/{job_id}?lang=zh")).text
    for expected in ("师傅服务费", "可结算", "加价", "师傅申请加价", "CNY 150.00"):
        assert expected in chinese, expected


async def test_the_devices_pages_name_their_fields_and_have_one_heading_in_both_languages(api: Api, tmp_path):
    world = world_of(api)
    found = await repaired_device(world, api.tmp_path)
    dora = await signed_in(api, regions=["Huangpu"])
    for language in ("en", "zh"):
        for path in ("/devices", "/devices?q=zhang", f"/devices/{found['device']}", "/me", f"/jobs/{found['repair_job']}"):
            answer = await dora.get(path, params={"lang": language})
            assert answer.status_code == 200, path
            page = Fields()
            page.feed(answer.text)
            assert page.lang == ("zh-CN" if language == "zh" else "en") and page.h1 == 1, path
            assert page.unlabelled() == [] and page.images_without_alt == [], (path, page.unlabelled(), page.images_without_alt)


@pytest.mark.slow
@pytest.mark.postgres
async def test_the_device_search_reads_the_same_on_postgresql(postgres_url, tmp_path):
    """What the dialect decides: case-insensitive LIKE with its escape over nullable columns, the phone's digits, the
    region rule, the keyset."""
    from storage import device_search as search
    from tests.support.api import running_api

    async with running_api(postgres_url, tmp_path) as api:
        for number, (name, region, serial) in enumerate((("Zhang Wei", "Huangpu", "GR-1"), ("Percent_Man", "Pudong", None))):
            made = await api.client.post("/api/v1/devices", json={
                "customer": {"name": name, "phone": f"+86 139 0000 000{number}", "language": "en"},
                "site": {"address": f"{region}, {number} Road", "lat": 31.23, "lon": 121.47, "region": region},
                "product": {"category": "aircon", "name": "Split air conditioner", "brand": "Gree", "model": f"KFR-{number}"},
                "serial": serial})
            assert made.status_code == 201, made.text
        async with api.container.sessions() as session:
            async def found(**wanted) -> list[str]:
                return [row.customer_name for row in (await search.search_devices(session, search.DeviceFilter(**wanted))).rows]

            assert await found(text="ZHANG") == ["Zhang Wei"] and await found(text="gr-1") == ["Zhang Wei"]
            assert await found(text="8613900000001") == ["Percent_Man"] and await found(text="kfr") == ["Percent_Man", "Zhang Wei"]
            assert await found(text="t_m") == ["Percent_Man"] and await found(text="zhang_wei") == []  # "_" unescaped would match the space
            assert await found(regions=frozenset({"Pudong"})) == ["Percent_Man"] and await found(regions=frozenset()) == []
            first = await search.search_devices(session, search.DeviceFilter(), limit=1)
            assert first.next_before == first.rows[0].id
            rest = await search.search_devices(session, search.DeviceFilter(), limit=1, before=first.next_before)
            assert [r.customer_name for r in rest.rows] == ["Zhang Wei"] and rest.next_before is None
