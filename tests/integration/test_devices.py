"""Devices as the customer and the shop live them: an installation files the device, its QR code opens its menu in chat,
and a repair request from chat (picked device or described product, photos, urgency, days) becomes a bookable job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from domain import commands as c
from domain.devices import DeviceFields, SiteFields
from domain.errors import DomainError
from domain.model import Job, Visit
from services.messages import InboundKind
from services.actions import DeviceHistory, DeviceMenu, PickDay, RepairDay, RepairMediaDone, RepairSend, RepairUrgency, ReportFault, encode
from storage import tables
from storage.devices import DEVICE, SITE, DeviceStore
from storage.repository import Store
from tests.support.harness import SHOP, World, keys
from tests.support.photos import photo_bytes
from tests.support.setups import give, staff

AIRCON_STEPS = [
    {"key": "serial", "kind": "text", "prompt": {"en": "Serial number", "zh": "序列号"}},
    {"key": "model", "kind": "text", "prompt": {"en": "Model", "zh": "型号"}},
    {"key": "location", "kind": "text", "prompt": {"en": "Where is it?", "zh": "安装位置"}},
    {"key": "warranty_months", "kind": "number", "prompt": {"en": "Warranty (months)"}, "min": 0, "max": 120},
]


async def installed(world: World, *, answers: dict[str, str] | None = None, phone: str = "13912345678",
                    steps: list[dict] = AIRCON_STEPS) -> tuple[int, int]:
    """An air conditioner installed and completed with its checklist: (job id, installer id)."""
    if steps:
        await world.template("installation", "aircon", steps)
    installer, _token = await world.technician("Li", ["installer", "repairer"], ["aircon"])
    order = await world.order("AC-1", services=("installation",), category="aircon", product="Split air conditioner",
                              brand="Gree", phone=phone)
    visit = order.visits[0]
    start = world.clock.now() + timedelta(hours=2)
    await give(world, visit.id, installer, start, start + timedelta(hours=2), status="in_progress")
    given = answers if answers is not None else {"serial": "GR-778899", "model": "KFR-35GW", "location": "bedroom", "warranty_months": "24"}
    for key, value in given.items():
        await world.container.bus.run("test", c.AnswerStep(visit.id, installer, key, value))
    await world.container.bus.run("test", c.CompleteVisit(visit.id, installer))
    return order.job.id, installer


async def device_rows(world: World) -> list[dict]:
    async with world.container.sessions() as session:
        return [dict(r) for r in (await session.execute(select(tables.devices).order_by(tables.devices.c.id))).mappings()]


async def code_of(world: World, purpose: str, subject_id: int) -> str:
    async with world.container.sessions() as session, session.begin():
        return await DeviceStore(Store(session)).code(purpose, subject_id, world.clock.now())


async def test_an_installation_files_the_device_from_its_checklist_and_tells_the_customer(world: World):
    job_id, _installer = await installed(world)
    rows = await device_rows(world)
    assert len(rows) == 1
    device = rows[0]
    assert (device["product_name"], device["brand"], device["model"], device["serial"], device["location"]) == (
        "Split air conditioner", "Gree", "KFR-35GW", "GR-778899", "bedroom")
    assert device["installed_on"] == world.clock.now().date()
    assert (device["warranty_until"] - device["installed_on"]).days in (730, 731)
    async with world.container.sessions() as session:
        history = await DeviceStore(Store(session)).history(device["id"])
    assert [(h.kind, h.job_id) for h in history] == [("installed", job_id)]


async def test_without_device_steps_the_job_s_product_is_filed_with_the_default_warranty(world: World):
    await installed(world, answers={}, steps=[])
    [device] = await device_rows(world)
    assert (device["product_name"], device["brand"], device["serial"], device["location"]) == ("Split air conditioner", "Gree", None, "")
    assert device["warranty_until"].year == device["installed_on"].year + 1


async def owner_chat(world: World, job_id: int, name: str = "owner"):
    """The owner's own chat, bound by their order's link (as the shop sends it), its welcome read."""
    async with world.container.sessions() as session, session.begin():
        token = await Store(session).issue_token("customer", job_id, world.clock.now(), timedelta(days=30))
    chat = world.chat("customer", name)
    await chat.send(f"/start {token}")
    await chat.inbox()
    return chat


async def scanned(world: World):
    """The installed device's QR code scanned in its owner's chat: (customer chat, device id, messages)."""
    job_id, _installer = await installed(world)
    [device] = await device_rows(world)
    code = await code_of(world, DEVICE, device["id"])
    customer = await owner_chat(world, job_id)
    return customer, device["id"], await customer.send(f"/start {code}")


async def test_scanning_a_device_code_in_the_owner_s_chat_opens_the_device_menu(world: World):
    customer, device_id, opened = await scanned(world)
    assert keys(opened) == ["device.menu"]
    assert opened[-1].has_button("dvf") and opened[-1].has_button("dvh") and opened[-1].has_button("dvm")
    history = await customer.press(encode(DeviceHistory(device_id)))
    assert keys(history) == ["device.history"]


async def test_a_tampered_or_renewed_code_gets_a_friendly_answer_and_changes_nothing(world: World):
    await installed(world)
    [device] = await device_rows(world)
    code = await code_of(world, DEVICE, device["id"])
    stranger = world.chat("customer", "stranger")
    tampered = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert keys(await stranger.send(f"/start {tampered}")) == ["error.link_invalid"]
    await world.container.bus.run("test", c.RenewDeviceCode(DEVICE, device["id"]))
    assert keys(await stranger.send(f"/start {code}")) == ["error.link_invalid"]
    assert keys(await stranger.send("/status")) == ["customer.hint_new"]  # still bound to nobody
    fresh = await code_of(world, DEVICE, device["id"])
    # the fresh code works, but a stranger's chat is not the owner's: nothing of theirs is shown (tests/integration/test_qr_privacy.py)
    assert fresh != code and keys(await stranger.send(f"/start {fresh}")) == ["device.foreign_scan"]


async def test_a_chat_of_another_customer_cannot_open_someone_else_s_device(world: World):
    await installed(world)
    [device] = await device_rows(world)
    other = await world.order("SO-9", services=("delivery",), phone="13700000000", customer="Wang Fang")
    chat = world.chat("customer", "wang")
    await chat.send(f"/start {other.customer_token}")
    await chat.inbox()
    code = await code_of(world, DEVICE, device["id"])
    assert keys(await chat.send(f"/start {code}")) == ["device.foreign_scan"]  # no menu of someone else's device
    assert keys(await chat.press(encode(ReportFault(device["id"])))) == ["hint.stale_button"]


async def test_a_repair_request_from_the_device_menu_with_a_photo_becomes_a_job_to_book(world: World, tmp_path):
    customer, device_id, _opened = await scanned(world)
    described = await customer.press(encode(ReportFault(device_id)))
    assert keys(described) == ["repair.ask_description"]
    assert keys(await customer.send("Water drips from the indoor unit")) == ["repair.ask_media"]
    photo = tmp_path / "drip.jpg"
    photo.write_bytes(photo_bytes())
    assert keys(await customer.photo(photo)) == ["repair.photo_added"]
    assert keys(await customer.press(encode(RepairMediaDone()))) == ["repair.ask_urgency"]
    days = await customer.press(encode(RepairUrgency("normal")))
    assert keys(days) == ["repair.ask_days"]
    tomorrow = world.clock.now().date() + timedelta(days=1)
    assert "btn.repair_day_chosen" in [label for label, _data in (await customer.press(encode(RepairDay(tomorrow))))[-1].buttons]
    sent = await customer.press(encode(RepairSend()))
    assert keys(sent) == ["repair.sent", "repair.requested_days"]
    # the day picked is offered first (seen on the walk: the picker started over as if none was picked), any other after
    book = sent[-1].button("bk")
    preferred = sent[-1].button("bd")
    assert preferred == encode(PickDay(int(book.split(":")[1]), tomorrow)), preferred
    on_the_day = await customer.press(preferred)
    assert keys(on_the_day)[-1] in ("customer.choose_window", "customer.day_full")
    async with world.container.sessions() as session:
        store = Store(session)
        visit = await store.get(Visit, int(book.split(":")[1]))
        job = await store.get(Job, visit.job_id)
        photos = (await session.execute(select(tables.photos).where(tables.photos.c.visit_id == visit.id))).mappings().all()
        history = await DeviceStore(store).history(device_id)
    assert (visit.kind, visit.status, job.source, job.product_name, job.region) == ("repair", "created", "chat", "Split air conditioner", "Huangpu")
    assert "Water drips" in job.notes and "GR-778899" in job.notes and tomorrow.isoformat() in job.notes
    assert [p["purpose"] for p in photos] == ["repair"]
    assert [h.kind for h in history] == ["installed", "repair_requested"]
    assert keys(await customer.press(book))[0] in ("customer.choose_slot", "customer.choose_day")


async def test_free_text_naming_a_fault_starts_a_request_for_the_matching_device(world: World):
    customer, device_id, _opened = await scanned(world)
    started = await customer.send("my air conditioner is leaking")
    assert device_id
    assert keys(started) == ["repair.ask_media"]  # the words are the description, the device the one it names
    assert keys(await customer.press(encode(RepairMediaDone()))) == ["repair.ask_urgency"]
    sent = await customer.press(encode(RepairUrgency("urgent")))
    assert keys(sent) == ["repair.sent", "repair.requested_urgent"], keys(sent)


async def test_new_without_devices_asks_for_the_product_and_a_region_nobody_serves_is_refused_politely(world: World):
    order = await world.order("SO-5", services=("delivery",), region="Jiading")
    customer = world.chat("customer", "c5")
    await customer.send(f"/start {order.customer_token}")
    await customer.inbox()
    async with world.container.sessions() as session, session.begin():
        await session.execute(tables.order_sources.insert().values(name="chat", coverage_policy="refuse", updated_at=world.clock.now()))
    assert keys(await customer.send("/new")) == ["repair.ask_product"]
    assert keys(await customer.send("washing machine")) == ["repair.ask_description"]
    assert keys(await customer.send("it does not spin")) == ["repair.ask_media"]
    await customer.press(encode(RepairMediaDone()))
    await customer.press(encode(RepairUrgency("normal")))
    refused = await customer.press(encode(RepairSend()))
    assert keys(refused) == ["error.repair_region_not_covered"]
    assert refused[-1].params["region"] == "Jiading"
    async with world.container.sessions() as session:
        jobs = (await session.execute(select(tables.jobs.c.id).where(tables.jobs.c.source == "chat"))).all()
    assert jobs == []


async def test_api_registered_devices_and_a_site_code_open_a_pick_list(world: World):
    site = SiteFields("Store 12, 8 Huaihai Road", SHOP[0], SHOP[1], "Huangpu", "Roof")
    for unit in (1, 2):
        await world.container.bus.run("test", c.RegisterDevice(
            "13800000001", "Acme Store", "zh", site, DeviceFields("aircon", "Rooftop unit", "Daikin", "RZQ", f"DK-{unit}", location=f"roof unit {unit}")))
    rows = await device_rows(world)
    assert [r["location"] for r in rows] == ["roof unit 1", "roof unit 2"] and rows[0]["site_id"] == rows[1]["site_id"]
    code = await code_of(world, SITE, rows[0]["site_id"])
    # the store's own chat (bound by an order of theirs) opens the pick list; any other chat gets the private answer
    order = await world.order("ST-1", services=("delivery",), phone="13800000001", customer="Acme Store")
    assert keys(await world.chat("customer", "passer-by").send(f"/start {code}")) == ["device.foreign_scan_site"]
    chat = world.chat("customer", "staff-at-store")
    await chat.send(f"/start {order.customer_token}")
    await chat.inbox()
    opened = await chat.send(f"/start {code}")
    assert keys(opened) == ["device.site_pick"]
    assert [d for _l, d in opened[-1].buttons] == [encode(DeviceMenu(rows[0]["id"])), encode(DeviceMenu(rows[1]["id"]))]
    assert keys(await chat.press(encode(DeviceMenu(rows[1]["id"])))) == ["device.menu"]


async def test_a_repair_of_a_device_s_job_goes_on_its_timeline(world: World):
    customer, device_id, _opened = await scanned(world)
    await customer.press(encode(ReportFault(device_id)))
    await customer.send("No cold air")
    await customer.press(encode(RepairMediaDone()))
    await customer.press(encode(RepairUrgency("normal")))
    sent = await customer.press(encode(RepairSend()))
    visit_id = int(sent[-1].button("bk").split(":")[1])
    repairer, _chat = await staff(world, "Zhou", ["repairer"], ["aircon"])
    start = world.clock.now() + timedelta(days=1)
    await give(world, visit_id, repairer, start, start + timedelta(hours=1), status="in_progress")
    await world.container.bus.run("test", c.RecordRepair(visit_id, repairer, "electrical", "part_replaced"))
    await world.container.bus.run("test", c.CompleteVisit(visit_id, repairer))
    async with world.container.sessions() as session:
        history = await DeviceStore(Store(session)).history(device_id)
    assert [h.kind for h in history] == ["installed", "repair_requested", "repaired"]
    assert history[-1].data["technician_id"] == repairer


@pytest.mark.parametrize("bad", [
    {"kind": "delivery"}, {"description": ""}, {"urgency": "asap"}, {"days": ("2020-01-01",)}, {"device_id": 999},
])
async def test_a_bad_repair_command_changes_nothing(world: World, bad):
    await installed(world)
    [device] = await device_rows(world)
    fields = {"customer_id": device["customer_id"], "kind": "repair", "device_id": device["id"], "product": "", "category": "",
              "description": "broken", "urgency": "normal", "days": (), "photos": ()}
    with pytest.raises(DomainError):
        await world.container.bus.run("test", c.RequestRepair(**{**fields, **bad}))
    async with world.container.sessions() as session:
        assert (await session.execute(select(tables.jobs.c.id).where(tables.jobs.c.source == "chat"))).all() == []


async def test_a_voice_note_can_be_the_description_and_is_kept_like_a_photo(world: World, tmp_path):
    customer, device_id, _opened = await scanned(world)
    await customer.press(encode(ReportFault(device_id)))
    assert keys(await customer.sticker()) == ["repair.voice_unsupported"]  # a sticker is no description
    note = tmp_path / "note.ogg"
    note.write_bytes(b"OggS" + bytes(64))
    kept = await customer.deliver(customer.event(InboundKind.VOICE, file_id="voice-1", file_path=str(note)))
    assert keys(kept) == ["repair.voice_added", "repair.ask_media"]
    refused = await customer.deliver(customer.event(InboundKind.VOICE, file_id="voice-2", file_error="not_audio"))
    assert keys(refused) == ["repair.voice_not_audio"]
    await customer.press(encode(RepairMediaDone()))
    await customer.press(encode(RepairUrgency("normal")))
    sent = await customer.press(encode(RepairSend()))
    visit_id = int(sent[-1].button("bk").split(":")[1])
    async with world.container.sessions() as session:
        rows = (await session.execute(select(tables.photos).where(tables.photos.c.visit_id == visit_id))).mappings().all()
        job = await Store(session).get(Job, (await Store(session).get(Visit, visit_id)).job_id)
    assert [(r["purpose"], r["file_id"]) for r in rows] == [("voice", "voice-1")]
    assert "🎤 × 1" in job.notes
