"""The repairer reads the device's whole history before going (issue 14): the visit card of a job that names a device has
"Device history" — the record, every earlier visit with its outcome, checklist answers, parts and photos — shown only to the
technician the visit is offered or assigned to; the back office's job page shows the device, its history and the bill."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conversations.i18n import render
from domain import commands as c
from domain.model import Customer, Job, Photo, Visit
from services.actions import BackToVisit, RepairMediaDone, RepairSend, RepairUrgency, ReportFault, VisitDeviceHistory, VisitDevicePhotos, encode
from services.notifications import offer_card
from services.device_views import files_of_job
from storage.devices import DEVICE
from storage.repository import Store
from tests.integration.test_devices import code_of, device_rows, installed, owner_chat
from tests.integration.test_fees import price
from tests.integration.test_jobs_pages import signed_in, world_of
from tests.support.api import Api
from tests.support.harness import World, keys
from tests.support.photos import photo_bytes
from tests.support.setups import give, staff


CARDS = ("tech.visit_card", "tech.with_brief")  # a visit card, bare or with the job's notes under it


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


async def device_with_a_repair(world: World, tmp_path) -> dict:
    """An installed air conditioner (checklist answers, a photo, a bill partly paid) and a repair its owner asked for in
    chat, accepted by Zhou: the ids the tests need."""
    await world.container.bus.run("test", price("installation", minor=30000))
    job_id, installer = await installed(world)
    [device] = await device_rows(world)
    async with world.container.sessions() as session, session.begin():
        store = Store(session)
        [installation] = await store.visits_of_job(job_id)
        picture = tmp_path / "installed.jpg"
        picture.write_bytes(photo_bytes())
        await store.add(Photo(installation.id, "test", "ph-installed", str(picture), "checklist", created_at=world.clock.now()))
    await world.container.bus.run("test", c.RecordPayment(installation.id, 10000, "CNY", "cash", None, "api"))
    owner = await owner_chat(world, job_id)
    await owner.send(f"/start {await code_of(world, DEVICE, device['id'])}")
    await owner.press(encode(ReportFault(device["id"])))
    await owner.send("No cold air")
    await owner.press(encode(RepairMediaDone()))
    await owner.press(encode(RepairUrgency("normal")))
    sent = await owner.press(encode(RepairSend()))
    repair_visit = int(sent[-1].button("bk").split(":")[1])
    repairer, chat = await staff(world, "Zhou", ["repairer"], ["aircon"])
    start = world.clock.now() + timedelta(days=1)
    await give(world, repair_visit, repairer, start, start + timedelta(hours=1), status="accepted")
    return {"job": job_id, "installation": installation.id, "installer": installer, "device": device["id"], "repair": repair_visit,
            "repairer": repairer, "chat": chat}


async def test_the_repairer_reads_the_device_s_history_with_its_photos_and_goes_back_to_the_visit(world: World, tmp_path):
    shop = await device_with_a_repair(world, tmp_path)
    chat, visit = shop["chat"], shop["repair"]
    cards = await chat.send("/visits")
    [card] = [m for m in cards if m.key in CARDS]
    assert card.button("dhv") == encode(VisitDeviceHistory(visit))

    history = await chat.press(encode(VisitDeviceHistory(visit)))
    assert keys(history) == ["device.file.for_visit"]
    text = render(history[0].payload, "en").text
    for expected in ("Split air conditioner (Gree KFR-35GW)", "Serial: GR-778899 · Where: bedroom", "installation #",
                     "checklist: serial: GR-778899; model: KFR-35GW; location: bedroom", "📷 1"):
        assert expected in text, (expected, text)
    assert f"#{visit}" in text.splitlines()[0] and f"repair #{visit}" not in text  # the visit being prepared has no past yet
    assert "上门记录" in render(history[0].payload, "zh").text
    assert history[0].has_button("dhp") and history[0].has_button("dhb")  # the photos, and the way back

    photos = await chat.press(history[0].button("dhp"))
    assert keys(photos) == ["device.file.photos_sent"] and len(photos[0].payload["album"]) == 1
    assert photos[0].has_button("dhb")
    back = await chat.press(encode(BackToVisit(visit)))
    assert keys(back)[0] in CARDS and back[0].has_button("dhv")


async def test_nobody_else_sees_the_history_and_a_job_without_a_device_says_so(world: World, tmp_path):
    shop = await device_with_a_repair(world, tmp_path)
    _other, wu = await staff(world, "Wu", ["repairer"], ["aircon"])
    for forged in (VisitDeviceHistory(shop["repair"]), VisitDevicePhotos(shop["repair"]), BackToVisit(shop["repair"])):
        answer = await wu.press(encode(forged))
        assert keys(answer) == ["device.file.not_yours"]
        assert "GR-778899" not in render(answer[0].payload, "en").text
    assert keys(await wu.press(encode(VisitDeviceHistory(999999)))) == ["device.file.not_yours"]
    # Zhou's own visit of a job that names no device: no button on its card, and a forged press says there is none
    sofa = await world.order("SO-7", services=("delivery",), phone="13600000000")
    start = world.clock.now() + timedelta(days=2)
    await give(world, sofa.visits[0].id, shop["repairer"], start, start + timedelta(hours=1), status="accepted")
    cards = [m for m in await shop["chat"].send("/visits") if m.key in CARDS]
    plain = [m for m in cards if m.has_button("go") and m.button("go") == f"go:{sofa.visits[0].id}"]
    assert plain and not plain[0].has_button("dhv")
    none = await shop["chat"].press(encode(VisitDeviceHistory(sofa.visits[0].id)))
    assert keys(none) == ["device.file.none"] and none[0].has_button("dhb")


async def test_the_offer_card_has_the_history_button_only_for_a_job_that_names_a_device(world: World, tmp_path):
    shop = await device_with_a_repair(world, tmp_path)
    async with world.container.sessions() as session:
        store = Store(session)
        visit = await store.load(Visit, shop["repair"])
        job = await store.load(Job, visit.job_id)
        customer = await store.load(Customer, job.customer_id)
        files = await files_of_job(store, shop["job"])
    assert [f.device.serial for f in files] == ["GR-778899"]
    assert files[0].visits[0].answers[0] == ("serial", "GR-778899") and files[0].photo_count == 1
    _text, with_device = offer_card(visit, job, customer, device=True)
    _text, without = offer_card(visit, job, customer)
    assert [b.data for row in with_device for b in row][-1] == encode(VisitDeviceHistory(shop["repair"]))
    assert not any(b.data.startswith("dhv") for row in without for b in row)


async def test_the_job_page_shows_the_bill_and_the_device_s_history_in_english_and_chinese(api: Api, tmp_path):
    world = world_of(api)
    shop = await device_with_a_repair(world, tmp_path)
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/jobs/{shop['job']}")
    assert page.status_code == 200
    text = page.text
    for expected in ("Bill", f"visit #{shop['installation']}", "CNY 300.00", "Total", "Paid", "CNY 100.00", "Outstanding", "CNY 200.00",
                     "payment due", "Payments", "Cash", "Device and its history", "GR-778899", "bedroom", "Every visit"):
        assert expected in text, expected
    # the device's earlier photo is linked under its own job, where the photo route serves it
    assert f'/jobs/{shop["job"]}/photos/' in text
    repair_page = (await dora.get(f"/jobs/{await _job_of(world, shop['repair'])}")).text
    assert "Device and its history" in repair_page and "GR-778899" in repair_page and "No bill yet" in repair_page
    chinese = (await dora.get(f"/jobs/{shop['job']}", headers={"Accept-Language": "zh-CN"})).text
    for expected in ("账单", "合计", "已付", "未付", "付款记录", "设备及其档案", "全部上门记录"):
        assert expected in chinese, expected
    mona = await signed_in(api, "mona", role="manager")  # managers read bills and devices too (read-only everywhere)
    seen = (await mona.get(f"/jobs/{shop['job']}")).text
    assert "CNY 200.00" in seen and "GR-778899" in seen and 'name="action"' not in seen


async def _job_of(world: World, visit_id: int) -> int:
    async with world.container.sessions() as session:
        return (await Store(session).load(Visit, visit_id)).job_id
