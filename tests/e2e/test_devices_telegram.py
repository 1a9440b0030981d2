"""End to end through Telegram: an air conditioner is installed, its device file is made from the checklist, its QR code
(decoded from the PNG) is the customer bot's deep link, and a scan leads to a repair request with a photo that is booked
and dispatched to a repairer."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from services import backoffice, qr
from storage import tables
from storage.devices import DEVICE, DeviceStore
from storage.repository import Store
from tests.support.harness import SHOP
from tests.support.telegram import CUSTOMER, CUSTOMER_CHAT, INSTALLER, JPEG, PHONE, STAFF, Shop, book_first_slot, button, inline_buttons, running
from webhooks.devices_api import device_labels

pytestmark = pytest.mark.slow
DRIVER_UNDER_TEST = "aiogram"  # both parse voice notes the same (telegram_common); test_telegram.py runs each driver

AIRCON_STEPS = [
    {"key": "serial", "kind": "text", "prompt": {"en": "Serial number"}},
    {"key": "model", "kind": "text", "prompt": {"en": "Model"}},
    {"key": "location", "kind": "text", "prompt": {"en": "Where is it?"}},
]
OGG = b"OggS\x00\x02" + bytes(200)  # a voice note's first page, as Telegram's clients record them (OGG/Opus)
HOUSEMATE = CUSTOMER_CHAT  # the owner's own chat (bound by their order's link) scans the sticker and asks for the repair
GUEST = 2002  # someone else scans it: their chat is not bound and sees nothing of the owner's


@pytest.fixture
async def shop(fake_telegram, sqlite_url, tmp_path):
    async with running(fake_telegram, sqlite_url, tmp_path, telegram_driver=DRIVER_UNDER_TEST) as shop:
        yield shop


async def test_install_files_the_device_and_its_qr_code_leads_to_a_dispatched_repair(shop: Shop):
    await shop.template("installation", "aircon", AIRCON_STEPS)
    await shop.onboard(INSTALLER, await shop.technician("Li", ["installer", "repairer"], ["aircon"], phone="13800000002"), "You're registered")
    order = await backoffice.place_order(shop.container.bus, backoffice.OrderRequest(
        source="erp", external_ref="AC-1", customer_name="Zhang Wei", customer_phone=PHONE, customer_language="en",
        address="Huangpu District, 100 Nanjing East Road", lat=SHOP[0], lon=SHOP[1], region="Huangpu",
        product_name="Split air conditioner", product_category="aircon", brand="Gree",
        services=(backoffice.ServiceRequest("installation"),),
    ))
    [installation] = order.visits

    # booked, accepted, installed: the checklist's serial, model and place are typed in
    since = shop.mark()
    await book_first_slot(shop, order, "installation")
    offer = await shop.expect(INSTALLER, f"New installation #{installation.id}", since)
    since = shop.mark()
    shop.press(INSTALLER, offer, "Accept", token=STAFF)
    accepted = await shop.expect(INSTALLER, f"Accepted visit #{installation.id}.", since)
    since = shop.mark()
    shop.press(INSTALLER, accepted, "On my way", token=STAFF)
    await shop.expect(INSTALLER, "share your location", since)
    since = shop.mark()
    shop.fake.location_message(INSTALLER, SHOP[0], SHOP[1] + 0.001, token=STAFF)
    checked_in = await shop.expect(INSTALLER, "Checked in.", since)
    since = shop.mark()
    shop.press(INSTALLER, checked_in, "Start checklist", token=STAFF)
    await shop.expect(INSTALLER, "Step 1/3: Serial number", since)
    for answer, following in (("GR-778899", "Step 2/3: Model"), ("KFR-35GW", "Step 3/3: Where is it?"), ("bedroom", "Checklist done.")):
        since = shop.mark()
        shop.say(INSTALLER, answer, token=STAFF)
        done = await shop.expect(INSTALLER, following, since)
    since = shop.mark()
    shop.press(INSTALLER, done, "Complete visit", token=STAFF)
    filed = await shop.expect(CUSTOMER_CHAT, "Your Split air conditioner is now on file (where: bedroom", since)
    assert button(filed, "My device").startswith("dv:")
    [device] = await shop.rows(select(tables.devices))
    assert (device["serial"], device["model"], device["location"], device["brand"]) == ("GR-778899", "KFR-35GW", "bedroom", "Gree")

    # the sticker: its PNG decodes to the customer bot's deep link
    async with shop.container.sessions() as session, session.begin():
        store = Store(session)
        code = await DeviceStore(store).code(DEVICE, device["id"], shop.clock.now())
        rows = await DeviceStore(store).of_customer(device["customer_id"])
        [label] = await device_labels(shop.container, store, rows, [], "http://127.0.0.1:8000/")
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.code_png(label))))]
    assert decoded == [label.link] and label.link.startswith("https://t.me/") and label.link.endswith(f"?start={code}")

    # a guest scans it: nothing of the owner's is shown and the chat is not bound (tests/integration/test_qr_privacy.py)
    since = shop.mark()
    shop.say(GUEST, f"/start {code}", token=CUSTOMER, first_name="Mei")
    private = await shop.expect(GUEST, "Their details stay private", since)
    assert "Zhang" not in private["text"] and "GR-778899" not in private["text"] and button(private, "Not now") == "dhx"
    # the owner scans it in their own chat: the device's menu
    since = shop.mark()
    shop.say(HOUSEMATE, f"/start {code}", token=CUSTOMER, first_name="Zhang")
    menu = await shop.expect(HOUSEMATE, "Split air conditioner (Gree KFR-35GW)", since)
    since = shop.mark()
    shop.press(HOUSEMATE, menu, "Report a fault", token=CUSTOMER)
    await shop.expect(HOUSEMATE, "What is wrong with your Split air conditioner?", since)
    since = shop.mark()
    shop.say(HOUSEMATE, "Water drips from the indoor unit", token=CUSTOMER)
    await shop.expect(HOUSEMATE, "Send photos of the problem", since)
    since = shop.mark()
    shop.fake.photo_message(HOUSEMATE, "AgACAgDrip", "AQADDrip", content=JPEG, token=CUSTOMER)
    await shop.expect(HOUSEMATE, "Photo 1 of 5 added.", since)
    since = shop.mark()
    shop.fake.voice_message(HOUSEMATE, "AwACAgDripVoice", "AgADDripVoice", content=OGG, token=CUSTOMER)
    added = await shop.expect(HOUSEMATE, "Voice note kept.", since)
    since = shop.mark()
    shop.press(HOUSEMATE, added, "Done", token=CUSTOMER)
    urgency = await shop.expect(HOUSEMATE, "How urgent is it?", since)
    since = shop.mark()
    shop.press(HOUSEMATE, urgency, "In the next days", token=CUSTOMER)
    days = await shop.expect(HOUSEMATE, "Which days suit you?", since)
    since = shop.mark()
    shop.press_data(HOUSEMATE, days, inline_buttons(days)[1]["callback_data"], token=CUSTOMER)
    days = await shop.expect(HOUSEMATE, "Which days suit you?", since)
    assert inline_buttons(days)[1]["text"].startswith("✓")
    since = shop.mark()
    shop.press(HOUSEMATE, days, "Send request", token=CUSTOMER)
    requested = await shop.expect(HOUSEMATE, "Your repair request is order #", since)

    # booked like any order, and offered to the repairer
    since = shop.mark()
    shop.press(HOUSEMATE, requested, "Book", token=CUSTOMER)
    choose = await shop.expect(HOUSEMATE, "Pick a time for the repair", since)
    since = shop.mark()
    shop.press_data(HOUSEMATE, choose, next(b["callback_data"] for b in inline_buttons(choose) if b["callback_data"].startswith("sl:")), token=CUSTOMER)
    await shop.expect(HOUSEMATE, "Booked: repair on", since)
    repair_offer = await shop.expect(INSTALLER, "New repair #", since)
    assert "Water drips from the indoor unit" in repair_offer["text"] and "GR-778899" in repair_offer["text"]
    # before going, the repairer reads the device's history: the installation with its checklist
    since = shop.mark()
    shop.press(INSTALLER, repair_offer, "Device history", token=STAFF)
    history = await shop.expect(INSTALLER, "Device history for visit #", since)
    assert "installation #" in history["text"] and "serial: GR-778899" in history["text"] and button(history, "Back to the visit").startswith("dhb:")
    since = shop.mark()
    shop.press(INSTALLER, repair_offer, "Accept", token=STAFF)
    await shop.expect(HOUSEMATE, "Li will come.", since)
    [repair] = await shop.rows(select(tables.visits).where(tables.visits.c.kind == "repair"))
    assert repair["status"] == "accepted"
    photos = await shop.rows(select(tables.photos).where(tables.photos.c.visit_id == repair["id"]).order_by(tables.photos.c.id))
    assert [(p["purpose"], p["file_id"], p["path"].rsplit(".", 1)[1]) for p in photos] == [("repair", "AgACAgDrip", "jpg"), ("voice", "AwACAgDripVoice", "ogg")]
    assert "🎤 × 1" in repair_offer["text"]
    history = await shop.rows(select(tables.device_events.c.kind).order_by(tables.device_events.c.id))
    assert [h["kind"] for h in history] == ["installed", "repair_requested"]
