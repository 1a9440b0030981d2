"""The service story of issue 14 end to end through the real aiogram adapter and the fake Bot API, on the shop's clock:
an air conditioner's installation files it as a device and its fee is settled; a year on its QR sticker leads the
customer to a repair request with a photo and a voice note; the repairer reads the device's history, gets a capacitor
into the van, asks on site for a price increase with a photo that a dispatcher and then a manager approve and the
customer agrees to; the completion records the part, the bill lists labour, the part and the increase; the customer
confirms, the review period passes, and the month's close sends the statement to the repairer's chat. Then the other
turns: an increase the customer declines leaves the bill as it was, and a low rating freezes the fee until a dispatcher
releases it, into the month of the release. Each step is checked in what each person reads in their own chat, and the
state at the end in the store."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from domain import commands as c
from domain.parts import van
from services import accounts, backoffice, qr
from services import parts as part_service
from services.context import HandlerContext
from storage import tables
from storage.devices import DEVICE, DeviceStore
from storage.parts import PartsStore
from storage.repository import Store
from tests.support.harness import SHOP, START
from tests.support.telegram import (
    CUSTOMER,
    CUSTOMER_CHAT,
    DISPATCHER_USER,
    GROUP,
    INSTALLER,
    JPEG,
    PHONE,
    STAFF,
    Shop,
    book_first_slot,
    button,
    inline_buttons,
    running,
)
from webhooks.devices_api import device_labels

pytestmark = pytest.mark.slow

REPAIRER = INSTALLER  # Li installs the unit and, a year on, repairs it
MANAGERS, MANAGER_USER = -6001, 8001  # the managers' group (the daily report's) and Mona, a manager in it
AIRCON_STEPS = [
    {"key": "serial", "kind": "text", "prompt": {"en": "Serial number"}},
    {"key": "model", "kind": "text", "prompt": {"en": "Model"}},
    {"key": "location", "kind": "text", "prompt": {"en": "Where is it?"}},
]
OGG = b"OggS\x00\x02" + bytes(200)  # a voice note's first page, as Telegram's clients record them (OGG/Opus)
LABOUR_MINOR, PART_MINOR, INSTALL_MINOR = 20000, 2350, 30000
INCREASE_MINOR = 25000  # above the managers' limit (price_increase_manager_above_minor, 200.00 by default)
WHY = "the customer's own wiring burnt the capacitor"


@pytest.fixture
async def shop(fake_telegram, database_url, tmp_path):
    """On SQLite and PostgreSQL (the settlement's periods and the price change's photos are dialect-sensitive reads)."""
    async with running(fake_telegram, database_url, tmp_path, telegram_driver="aiogram") as shop:
        yield shop


class Person:
    """Someone in one Telegram chat: what they type, press or send, and what ``reader`` (their own chat unless said)
    reads next containing a piece of text. Each waits only for what was sent after the act."""

    def __init__(self, shop: Shop, chat: int, token: str, **user) -> None:
        self.shop, self.chat, self.token, self.user = shop, chat, token, user

    async def _then(self, act, needle: str, reader: int | None) -> dict:
        since = self.shop.mark()
        act()
        return await self.shop.expect(self.chat if reader is None else reader, needle, since)

    async def says(self, text: str, needle: str, reader: int | None = None) -> dict:
        return await self._then(lambda: self.shop.say(self.chat, text, token=self.token, **self.user), needle, reader)

    async def presses(self, card: dict, label: str, needle: str, reader: int | None = None) -> dict:
        return await self._then(lambda: self.shop.press(self.chat, card, label, token=self.token, **self.user), needle, reader)

    async def sends_photo(self, name: str, needle: str) -> dict:
        return await self._then(lambda: self.shop.fake.photo_message(self.chat, f"AgACAg{name}", f"AQAD{name}", content=JPEG, token=self.token),
                                needle, None)

    async def sends_voice(self, name: str, needle: str) -> dict:
        return await self._then(lambda: self.shop.fake.voice_message(self.chat, f"AwACAg{name}", f"AgAD{name}", content=OGG, token=self.token),
                                needle, None)

    async def arrives(self, needle: str) -> dict:
        """Shares their location a few metres from the customer's address."""
        return await self._then(lambda: self.shop.fake.location_message(self.chat, SHOP[0], SHOP[1] + 0.001, token=self.token), needle, None)

    def press(self, card: dict, label: str) -> None:
        """Press and go on: the caller waits for what several chats read."""
        self.shop.press(self.chat, card, label, token=self.token, **self.user)


async def set_up_the_shop(shop: Shop) -> tuple[int, int]:
    """The back office: a checklist filing the device, a price list, the capacitor in the warehouse, Li (installer and
    repairer) signed in to the staff bot, and Dora's dispatch group bound. Returns (Li's id, the capacitor's id)."""
    await shop.template("installation", "aircon", AIRCON_STEPS)
    for kind, minor, name in (("installation", INSTALL_MINOR, "Installation"), ("repair", LABOUR_MINOR, "Repair call-out")):
        await shop.container.bus.run("test", c.PutPriceEntry(kind, "aircon", "any", "any", "fixed", minor, "CNY", 30, name))

    async def save(ctx: HandlerContext):
        saved, _created = await part_service.save(ctx, c.SavePart("CAP-35", "Capacitor 35µF", "pc", PART_MINOR, "CNY", "electrical", ("aircon",)))
        return saved.id, []

    capacitor = await shop.container.bus.call("test:part", save)
    await shop.container.bus.run("test", c.MoveStock(capacitor, "receive", 5, None, "warehouse"))

    async def hire(store: Store):
        return await backoffice.create_technician(
            store, name="Li", phone="13800000002", roles=["installer", "repairer"], skills=["aircon"], regions=["Huangpu"],
            working_hours={"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "09:00", "end": "18:00"},
            home_lat=None, home_lon=None, language="en", now=shop.clock.now(), policy=shop.container.policy,
        )

    li, invite = await shop._tx(hire)
    await shop.onboard(REPAIRER, invite, "You're registered")
    await shop.onboard(GROUP, await shop.dispatcher_token(), "You are registered as a dispatcher.", user_id=DISPATCHER_USER, first_name="Dora")
    await shop.onboard(GROUP, await shop.group_token(), "This group now receives fieldchat alerts.", user_id=DISPATCHER_USER, first_name="Dora")

    # the managers' group: Dora binds it for the reports; Mona's account (a manager) names her Telegram user
    async def reports_group(store: Store):
        return (await backoffice.create_dispatch_group(store, name="Managers", region=None, language="en", now=shop.clock.now(),
                                                      policy=shop.container.policy, purpose="reports"))[1]

    await shop.onboard(MANAGERS, await shop.dispatcher_token(), "You are registered as a dispatcher.", user_id=DISPATCHER_USER, first_name="Dora")
    await shop.onboard(MANAGERS, await shop._tx(reports_group), "This group now receives the daily report", user_id=DISPATCHER_USER, first_name="Dora")

    async def mona(ctx: HandlerContext):
        await accounts.add_account(ctx, username="mona", display_name="Mona Lin", role="manager", password=None, chat_user_id=str(MANAGER_USER))
        return None, []

    await shop.container.bus.call("test:accounts", mona)
    return li.id, capacitor


async def sweep(shop: Shop) -> None:
    """The timer sweep, as the background one would run it: twice, since what one timer does may set another due now."""
    await shop.container.sweep_timers()
    await shop.container.sweep_timers()


async def test_the_service_story_from_installation_to_the_settlement_statement_through_telegram(shop: Shop):
    li_id, capacitor = await set_up_the_shop(shop)
    tz = shop.container.policy.tz
    li = Person(shop, REPAIRER, STAFF)
    zhang = Person(shop, CUSTOMER_CHAT, CUSTOMER)
    dora = Person(shop, GROUP, STAFF, user_id=DISPATCHER_USER, first_name="Dora")
    dora_with_managers = Person(shop, MANAGERS, STAFF, user_id=DISPATCHER_USER, first_name="Dora")
    mona = Person(shop, MANAGERS, STAFF, user_id=MANAGER_USER, first_name="Mona")

    # 1. the installation: booked by the customer, accepted, on site; the checklist's answers file the device
    order = await backoffice.place_order(shop.container.bus, backoffice.OrderRequest(
        source="erp", external_ref="AC-1", customer_name="Zhang Wei", customer_phone=PHONE, customer_language="en",
        address="Huangpu District, 100 Nanjing East Road", lat=SHOP[0], lon=SHOP[1], region="Huangpu",
        product_name="Split air conditioner", product_category="aircon", brand="Gree",
        services=(backoffice.ServiceRequest("installation"),),
    ))
    [installation] = order.visits
    since = shop.mark()
    await book_first_slot(shop, order, "installation")
    offer = await shop.expect(REPAIRER, f"New installation #{installation.id}", since)
    accepted = await li.presses(offer, "Accept", f"Accepted visit #{installation.id}.")
    await li.presses(accepted, "On my way", "share your location")
    checked_in = await li.arrives("Checked in.")
    await li.presses(checked_in, "Start checklist", "Step 1/3: Serial number")
    await li.says("GR-778899", "Step 2/3: Model")
    await li.says("KFR-35GW", "Step 3/3: Where is it?")
    done = await li.says("bedroom", "Checklist done.")
    since = shop.mark()
    li.press(done, "Complete visit")
    filed = await shop.expect(CUSTOMER_CHAT, "Your Split air conditioner is now on file (where: bedroom", since)
    assert button(filed, "My device").startswith("dv:")
    installed = await shop.expect(CUSTOMER_CHAT, "Li has finished the installation. Please check and confirm.", since)
    await shop.expect(CUSTOMER_CHAT, f"Your bill for the installation (visit #{installation.id})", since)
    await zhang.presses(installed, "Confirm it's done", "Thank you for confirming the installation!")
    [device] = await shop.rows(select(tables.devices))
    assert (device["serial"], device["model"], device["location"], device["brand"]) == ("GR-778899", "KFR-35GW", "bedroom", "Gree")

    # 2. the QR sticker the shop prints for it: the PNG decodes to the customer bot's deep link
    async with shop.container.sessions() as session, session.begin():
        store = Store(session)
        rows = await DeviceStore(store).of_customer(device["customer_id"])
        [label] = await device_labels(shop.container, store, rows, [], "http://127.0.0.1:8000/")
        code = await DeviceStore(store).code(DEVICE, device["id"], shop.clock.now())
    [scanned] = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.code_png(label))))]
    assert scanned.startswith("https://t.me/")
    [payload] = parse_qs(urlparse(scanned).query)["start"]
    assert payload == code

    # the installation's fee: in review for 72 hours, ready, then on Li's statement for November at the month's close
    shop.clock.advance(shop.container.policy.review_period + timedelta(minutes=1))
    await sweep(shop)
    shop.clock.set(datetime(2026, 12, 1, 1, 1, tzinfo=tz))
    since = shop.mark()
    await sweep(shop)
    first_statement = await shop.expect(REPAIRER, "Settlement statement", since)
    assert "for 2026-11:" in first_statement["text"], first_statement["text"]
    assert f"#{installation.id} · order #{installation.job_id} AC-1 · Mon 23 Nov · installation · bill CNY 300.00 · 100% → CNY 300.00" in first_statement["text"]

    # 3. a year on, the customer scans it: the device's menu; a fault with a photo and a voice note, urgency, days
    shop.clock.set(START + timedelta(days=365))
    menu = await zhang.says(f"/start {payload}", "Split air conditioner (Gree KFR-35GW)")
    await zhang.presses(menu, "Report a fault", "What is wrong with your Split air conditioner?")
    await zhang.says("It stopped cooling and clicks", "Send photos of the problem")
    await zhang.sends_photo("Unit", "Photo 1 of 5 added.")
    added = await zhang.sends_voice("Click", "Voice note kept.")
    urgency = await zhang.presses(added, "Done", "How urgent is it?")
    days = await zhang.presses(urgency, "In the next days", "Which days suit you?")
    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, days, inline_buttons(days)[1]["callback_data"], token=CUSTOMER)
    days = await shop.expect(CUSTOMER_CHAT, "Which days suit you?", since)
    requested = await zhang.presses(days, "Send request", "Your repair request is order #")

    # 4. booked on the day they preferred (offered first) and offered to the repairer, who reads the device's file
    preferred = inline_buttons(requested)[0]["text"]
    assert preferred == inline_buttons(days)[1]["text"].replace("✓", "📅"), (preferred, inline_buttons(days)[1]["text"])
    choose = await zhang.presses(requested, preferred, f"Pick a time for the repair on {preferred.removeprefix('📅 ')}")
    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, choose, next(b["callback_data"] for b in inline_buttons(choose) if b["callback_data"].startswith("sl:")), token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Booked: repair on", since)
    repair_offer = await shop.expect(REPAIRER, "New repair #", since)
    [repair] = await shop.rows(select(tables.visits).where(tables.visits.c.kind == "repair"))
    for seen in ("It stopped cooling and clicks", "Gree KFR-35GW", "S/N GR-778899", "bedroom", "🎤 × 1"):
        assert seen in repair_offer["text"], (seen, repair_offer["text"])
    file = await li.presses(repair_offer, "Device history", f"Device history for visit #{repair['id']}:")
    for seen in ("Split air conditioner (Gree KFR-35GW)", "Serial: GR-778899 · Where: bedroom", f"installation #{installation.id}",
                 "serial: GR-778899", "location: bedroom"):
        assert seen in file["text"], (seen, file["text"])
    assert button(file, "Back to the visit")
    since = shop.mark()
    li.press(repair_offer, "Accept")
    repair_accepted = await shop.expect(REPAIRER, f"Accepted visit #{repair['id']}.", since)
    await shop.expect(CUSTOMER_CHAT, "Li will come.", since)

    # 5. a capacitor for the van: Li asks in chat, Dora approves it in the group
    empty = await li.says("/stock", "Your van holds no parts")
    pick = await li.presses(empty, "Request a part", "Which part do you need?")
    amounts = await li.presses(pick, "Capacitor 35µF", "Capacitor 35µF (CAP-35): how many (pc)? Your van holds 0.")
    since = shop.mark()
    li.press(amounts, "1")
    await shop.expect(REPAIRER, "Sent to the dispatchers: 1 pc of Capacitor 35µF", since)
    card = await shop.expect(GROUP, "Li asks for 1 pc of Capacitor 35µF", since)
    since = shop.mark()
    dora.press(card, "Approve and issue")
    await shop.expect(GROUP, "Approved: 1", since)
    await shop.expect(REPAIRER, "Your request was approved", since)

    # 6. on site: on the way, checked in, started (a repair has no checklist here)
    await li.presses(repair_accepted, "On my way", "share your location")
    checked_in = await li.arrives("Checked in.")
    started = await li.presses(checked_in, "Start checklist", "This visit has no checklist. Tap Complete when you're done.")

    # 7. the capacitor is burnt: Li fits the van's one and records it on the job now, from the visit's options
    visit_card = await li.says("/visits", f"#{repair['id']} repair — in progress")
    options = await li.presses(visit_card, "More", f"Visit #{repair['id']}")
    use_menu = await li.presses(options, "Use a part from the van", f"Repair #{repair['id']}: tap the part you fit now")
    how_many = await li.presses(use_menu, "Capacitor 35µF (1 left)", f"How many pc of Capacitor 35µF (CAP-35) do you fit on repair #{repair['id']}?")
    fitted = await li.presses(how_many, "1", f"Recorded on repair #{repair['id']}: 1 pc Capacitor 35µF, out of your van.")
    assert button(fitted, "Undo: back into the van") and button(fitted, "Back to the visit")

    # 8. the customer's own wiring burnt it: Li asks for +250.00 with a photo, from the visit's card
    await li.presses(visit_card, "Ask for a price increase", f"Price increase for visit #{repair['id']}: type how much more")
    await li.says("250", "+250: now type why")
    await li.says(WHY, f"Price increase for visit #{repair['id']}\nAmount: +250\nWhy: {WHY}\nPhotos: 0")
    summary = await li.sends_photo("Wiring", "Photos: 1")
    since = shop.mark()
    li.press(summary, "Send the request")
    await shop.expect(REPAIRER, f"Sent: the dispatchers decide on the increase for visit #{repair['id']}", since)
    asked = await shop.expect(GROUP, f"Price increase asked on visit #{repair['id']} (repair) by Li: +CNY 250.00 — above the managers' limit", since)
    assert f"Why: {WHY}\nPhotos: 1" in asked["text"], asked["text"]
    await shop.fake.wait_for_sent(lambda s: s["chat_id"] == str(GROUP) and s["method"] in ("sendPhoto", "sendMediaGroup"), since=since)

    # the dispatcher approves; above the limit it goes on to the managers, where a dispatcher cannot decide it
    since = shop.mark()
    dora.press(asked, "Approve")
    await shop.expect(REPAIRER, f"Visit #{repair['id']}: the dispatchers approved +CNY 250.00; as it is above their limit a manager decides too", since)
    await shop.expect(GROUP, "it is above the managers' limit, so it waits for a manager", since)
    manager_card = await shop.expect(MANAGERS, f"A manager's decision: price increase on visit #{repair['id']} (repair) by Li: +CNY 250.00 (above CNY 200.00)", since)
    since = shop.mark()
    await dora_with_managers.presses(manager_card, "Approve", "only a manager may decide it now. Nothing changed.")
    assert not [t for t in shop.texts(CUSTOMER_CHAT, since) if "asks for +" in t]
    since = shop.mark()
    mona.press(manager_card, "Approve")
    await shop.expect(REPAIRER, f"Visit #{repair['id']}: +CNY 250.00 was approved; the customer is asked to agree", since)
    consent = await shop.expect(CUSTOMER_CHAT, f"About your repair (visit #{repair['id']}): the technician found more to do", since)
    # labour, the capacitor fitted and the increase: what the bill below says
    assert (f"+CNY 250.00.\nWhy: {WHY}\nExpected total with it: CNY 473.50, with the parts fitted so far; any further part is added at its price."
            in consent["text"]), consent["text"]

    # 9. the customer agrees in their chat: Li and the dispatchers hear it
    since = shop.mark()
    zhang.press(consent, "I agree")
    # the question becomes the answer, in place and without its buttons
    answered = await shop.expect(CUSTOMER_CHAT, f"About your repair (visit #{repair['id']}): you agreed to the increase of +CNY 250.00", since)
    assert answered["method"] == "editMessageText" and answered["reply_markup"] is None, answered
    await shop.expect(REPAIRER, f"Visit #{repair['id']}: the customer agreed to +CNY 250.00; it is on the bill.", since)
    await shop.expect(GROUP, f"The customer agreed to the increase on visit #{repair['id']} (repair): +CNY 250.00 is on the bill.", since)

    # 10. complete: cause (the customer's own wiring), fault, method, the capacitor fitted already listed, fixed
    causes = await li.presses(started, "Complete visit", f"Repair of visit #{repair['id']}: what caused the fault?")
    faults = await li.presses(causes, "Improper use", "Improper use: which fault?")
    methods = await li.presses(faults, "Wrong power supply", "Wrong power supply: how was it fixed?")
    parts_menu = await li.presses(methods, "Part replaced", "Your van holds no parts for this product")
    assert "• 1 pc Capacitor 35µF (fitted already)" in parts_menu["text"], parts_menu["text"]  # the van's only one is on the job
    outcome = await li.presses(parts_menu, "These are all the parts", f"Repair of visit #{repair['id']}:\nCause: Improper use")
    assert "Fault: Wrong power supply" in outcome["text"] and "Method: Part replaced" in outcome["text"], outcome["text"]
    since = shop.mark()
    li.press(outcome, "Fixed — complete")
    await shop.expect(REPAIRER, f"Visit #{repair['id']} completed (", since)
    tech_bill = await shop.expect(REPAIRER, f"Bill for visit #{repair['id']}", since)
    finished = await shop.expect(CUSTOMER_CHAT, "Li has finished the repair. Please check and confirm.", since)
    bill = await shop.expect(CUSTOMER_CHAT, f"Your bill for the repair (visit #{repair['id']})", since)

    # 11. the bill the customer reads: labour, the part and the increase
    lines = ["• Repair call-out: CNY 200.00", "• Capacitor 35µF: CNY 23.50", f"• Price increase — {WHY}: +CNY 250.00"]
    assert bill["text"].splitlines()[1:5] == [*lines, "Total: CNY 473.50"], bill["text"]
    assert bill["text"].endswith("Questions about it? Just reply here.")
    assert tech_bill["text"].splitlines()[1:5] == [*lines, "Total: CNY 473.50 · still to pay: CNY 473.50"], tech_bill["text"]
    assert button(tech_bill, "Record payment")

    # 12. the customer confirms the repair and rates it; Li hears of it
    since = shop.mark()
    zhang.press(finished, "Confirm it's done")
    rate = await shop.expect(CUSTOMER_CHAT, "How would you rate the service?", since)
    await shop.expect(CUSTOMER_CHAT, "Thank you for confirming the repair!", since)
    await shop.expect(REPAIRER, f"The customer confirmed visit #{repair['id']}.", since)
    rated = await zhang.presses(rate, "5", "Thanks for rating 5/5.")
    await zhang.presses(rated, "Skip", "Thank you! Send /status any time")

    # 13. the review period passes without a complaint: the fee is ready, and waits for the month's close
    shop.clock.advance(shop.container.policy.review_period + timedelta(minutes=1))
    await sweep(shop)
    [item] = await shop.rows(select(tables.settlement_items).where(tables.settlement_items.c.visit_id == repair["id"]))
    assert (item["status"], item["period"], item["base_minor"], item["amount_minor"]) == ("ready", "2027-11", LABOUR_MINOR + INCREASE_MINOR,
                                                                                           LABOUR_MINOR + INCREASE_MINOR)
    assert len(await shop.rows(select(tables.settlement_statements))) == 1  # the installation's, a year ago: nothing new yet

    # 14. the monthly close (01:00 on 1 December): the statement with the repair's line reaches Li's chat
    shop.clock.set(datetime(2027, 12, 1, 1, 1, tzinfo=tz))
    since = shop.mark()
    await sweep(shop)
    statement = await shop.expect(REPAIRER, "Settlement statement", since)
    assert "for 2027-11:" in statement["text"], statement["text"]
    # the day it was confirmed; the work's share is of labour and the increase (the part is the shop's)
    # a job asked for in chat is known by its number (its source's reference is made up by fieldchat)
    assert (f"#{repair['id']} · order #{repair['job_id']} · Tue 23 Nov · repair · bill CNY 473.50 · 100% → CNY 450.00"
            in statement["text"]), statement["text"]
    assert "1 line(s) · Total: CNY 450.00" in statement["text"] and "Reply here with its visit number" in statement["text"]

    # the groups read the customer masked; every button press was answered, so no client keeps spinning
    for text in shop.texts(GROUP) + shop.texts(MANAGERS):
        assert PHONE not in (text or "") and "Nanjing" not in (text or "") and "Zhang Wei" not in (text or ""), text
    for callback_id in shop.callback_ids:
        answer = await shop.fake.wait_for_call("answerCallbackQuery", predicate=lambda c, i=callback_id: c.params.get("callback_query_id") == i)
        assert answer.status == 200, answer.response

    # the store at the end: the device's timeline, the repair's record with the van's capacitor, the bill, the ledger
    repair_job = repair["job_id"]
    details = await shop.rows(select(tables.visits.c.status, tables.visits.c.fault_category, tables.visits.c.repair_method)
                              .where(tables.visits.c.id == repair["id"]))
    assert details == [{"status": "confirmed", "fault_category": "improper_use/wrong_power_supply", "repair_method": "part_replaced"}]
    history = await shop.rows(select(tables.device_events.c.kind).where(tables.device_events.c.device_id == device["id"])
                              .order_by(tables.device_events.c.id))
    assert [h["kind"] for h in history] == ["installed", "repair_requested", "repaired"]
    photos = await shop.rows(select(tables.photos).where(tables.photos.c.visit_id == repair["id"]).order_by(tables.photos.c.id))
    assert [(p["purpose"], p["file_id"]) for p in photos] == [("repair", "AgACAgUnit"), ("voice", "AwACAgClick"), ("price_increase", "AgACAgWiring")]
    [increase] = await shop.rows(select(tables.price_changes))
    assert (increase["visit_id"], increase["kind"], increase["status"], increase["amount_minor"], increase["reason"]) == (
        repair["id"], "increase", "accepted", INCREASE_MINOR, WHY)
    assert increase["dispatcher_by"].startswith("dispatcher:") and increase["manager_by"] == "manager:mona"
    assert increase["photo_ids"] == [photos[-1]["id"]]
    async with shop.container.sessions() as session:
        store = Store(session)
        job = await backoffice.job_details(store, repair_job)
        parts = PartsStore(store)
        record = await parts.completion_of(repair["id"])
        ledger = [(m.kind, m.quantity, m.source, m.target, m.job_id) for m in await parts.movements(capacitor)]
        van_level = await parts.level(capacitor, van(li_id))
    assert record is not None and record["outcome"] == "fixed"
    assert [(p["part_id"], p["quantity"], p["price_minor"]) for p in record["parts"]] == [(capacitor, 1, PART_MINOR)]
    assert ledger == [("receive", 5, None, "warehouse", None), ("issue", 1, "warehouse", van(li_id), None), ("use", 1, van(li_id), None, repair_job)]
    assert van_level == 0
    [repair_bill] = job["bills"]
    assert [(line["kind"], line["description"], line["amount_minor"]) for line in repair_bill["lines"]] == [
        ("labour", "Repair call-out", LABOUR_MINOR), ("part", "Capacitor 35µF", PART_MINOR), ("increase", WHY, INCREASE_MINOR)]
    assert (repair_bill["status"], repair_bill["total_minor"]) == ("priced", LABOUR_MINOR + PART_MINOR + INCREASE_MINOR)
    items = await shop.rows(select(tables.settlement_items).order_by(tables.settlement_items.c.id))
    statements = await shop.rows(select(tables.settlement_statements).order_by(tables.settlement_statements.c.id))
    assert [(i["visit_id"], i["status"], i["period"], i["amount_minor"]) for i in items] == [
        (installation.id, "settled", "2026-11", INSTALL_MINOR), (repair["id"], "settled", "2027-11", LABOUR_MINOR + INCREASE_MINOR)]
    assert [(st["technician_id"], st["period"], st["cycle"], st["total_minor"], st["line_count"]) for st in statements] == [
        (li_id, "2026-11", "monthly", INSTALL_MINOR, 1), (li_id, "2027-11", "monthly", LABOUR_MINOR + INCREASE_MINOR, 1)]
    assert [i["statement_id"] for i in items] == [st["id"] for st in statements]
    timeline = [e["type"] for e in job["timeline"]]
    for happened in ("RepairRequested", "OfferMade", "PriceIncreaseRequested", "PriceIncreaseEscalated", "PriceIncreaseApproved",
                     "PriceIncreaseAccepted", "RepairRecorded", "VisitCompleted", "BillIssued", "VisitConfirmed",
                     "SettlementReviewStarted", "SettlementItemReady"):
        assert happened in timeline, (happened, timeline)



async def test_a_declined_increase_leaves_the_bill_and_a_low_rating_freezes_the_fee_until_a_dispatcher_releases_it(shop: Shop):
    li_id, _capacitor = await set_up_the_shop(shop)
    tz = shop.container.policy.tz
    li = Person(shop, REPAIRER, STAFF)
    zhang = Person(shop, CUSTOMER_CHAT, CUSTOMER)
    dora = Person(shop, GROUP, STAFF, user_id=DISPATCHER_USER, first_name="Dora")
    order = await backoffice.place_order(shop.container.bus, backoffice.OrderRequest(
        source="erp", external_ref="AC-2", customer_name="Zhang Wei", customer_phone=PHONE, customer_language="en",
        address="Huangpu District, 100 Nanjing East Road", lat=SHOP[0], lon=SHOP[1], region="Huangpu",
        product_name="Split air conditioner", product_category="aircon", brand="Gree", services=(backoffice.ServiceRequest("repair"),),
    ))
    [repair] = order.visits
    since = shop.mark()
    await book_first_slot(shop, order, "repair")
    offer = await shop.expect(REPAIRER, f"New repair #{repair.id}", since)
    accepted = await li.presses(offer, "Accept", f"Accepted visit #{repair.id}.")
    await li.presses(accepted, "On my way", "share your location")
    checked_in = await li.arrives("Checked in.")
    started = await li.presses(checked_in, "Start checklist", "This visit has no checklist. Tap Complete when you're done.")

    # +80.00 is within the dispatchers' limit: Dora's approval is enough; the customer says no
    card = await li.says("/visits", f"#{repair.id} repair — in progress")
    await li.presses(card, "Ask for a price increase", "type how much more")
    await li.says("80", "+80: now type why")
    summary = await li.says("the outdoor unit needs a new bracket", "Photos: 0")
    asked = await li.presses(summary, "Send the request", f"Price increase asked on visit #{repair.id} (repair) by Li: +CNY 80.00\n", reader=GROUP)
    since = shop.mark()
    dora.press(asked, "Approve")
    consent = await shop.expect(CUSTOMER_CHAT, "asks for +CNY 80.00", since)
    assert "Expected total with it: CNY 280.00, with the parts fitted so far; any further part" in consent["text"], consent["text"]
    assert not [t for t in shop.texts(MANAGERS, since) if "price increase" in (t or "")]
    since = shop.mark()
    zhang.press(consent, "No, keep the price")
    refused = await shop.expect(CUSTOMER_CHAT, "you declined the increase of +CNY 80.00, so the price stays as it was", since)
    assert refused["method"] == "editMessageText" and refused["reply_markup"] is None, refused
    await shop.expect(REPAIRER, f"Visit #{repair.id}: the customer declined +CNY 80.00; the bill stays as it was", since)
    await shop.expect(GROUP, f"The customer declined the increase on visit #{repair.id} (repair), +CNY 80.00", since)

    # completed without parts: the bill is the labour alone
    causes = await li.presses(started, "Complete visit", f"Repair of visit #{repair.id}: what caused the fault?")
    faults = await li.presses(causes, "Natural wear", "Natural wear: which fault?")
    methods = await li.presses(faults, "Component aged", "Component aged: how was it fixed?")
    parts_menu = await li.presses(methods, "Adjusted", "Your van holds no parts for this product.")
    outcome = await li.presses(parts_menu, "No parts used", f"Repair of visit #{repair.id}:\nCause: Natural wear")
    since = shop.mark()
    li.press(outcome, "Fixed — complete")
    finished = await shop.expect(CUSTOMER_CHAT, "Li has finished the repair. Please check and confirm.", since)
    bill = await shop.expect(CUSTOMER_CHAT, f"Your bill for the repair (visit #{repair.id})", since)
    assert bill["text"].splitlines()[1:3] == ["• Repair call-out: CNY 200.00", "Total: CNY 200.00"], bill["text"]

    # confirmed, then rated 2: the fee freezes and the dispatchers are asked to release or adjust it
    since = shop.mark()
    zhang.press(finished, "Confirm it's done")
    rate = await shop.expect(CUSTOMER_CHAT, "How would you rate the service?", since)
    since = shop.mark()
    zhang.press(rate, "2")
    rated = await shop.expect(CUSTOMER_CHAT, "We are sorry it was only 2/5. What went wrong?", since)
    frozen = await shop.expect(GROUP, f"The fee of visit #{repair.id} (order #{order.job.id}, repair) is frozen because of a low rating", since)
    assert "Li would be paid CNY 200.00" in frozen["text"] and PHONE not in frozen["text"], frozen["text"]
    await zhang.presses(rated, "Skip", "Thank you! Send /status any time")

    # its review period ends frozen: nothing is settled at November's close
    shop.clock.advance(shop.container.policy.review_period + timedelta(minutes=1))
    await sweep(shop)
    shop.clock.set(datetime(2026, 12, 1, 1, 1, tzinfo=tz))
    await sweep(shop)
    [item] = await shop.rows(select(tables.settlement_items))
    assert (item["status"], item["freeze_reason"], item["period"], item["statement_id"]) == ("frozen", "low_rating", None, None)

    # released on 2 December: ready in December (the month of the release), on Li's statement at December's close
    shop.clock.set(datetime(2026, 12, 2, 10, 0, tzinfo=tz))
    # the alert becomes what was done, in place and without its buttons
    released = await dora.presses(frozen, "Release", f"The fee of visit #{repair.id} (order #{repair.job_id}, repair) was released by Dora")
    assert released["method"] == "editMessageText" and released["reply_markup"] is None, released
    [item] = await shop.rows(select(tables.settlement_items))
    assert (item["status"], item["period"]) == ("ready", "2026-12")
    shop.clock.set(datetime(2027, 1, 1, 1, 1, tzinfo=tz))
    since = shop.mark()
    await sweep(shop)
    statement = await shop.expect(REPAIRER, "Settlement statement", since)
    assert "for 2026-12:" in statement["text"] and f"#{repair.id} · order #{repair.job_id} AC-2 · " in statement["text"], statement["text"]
    assert "bill CNY 200.00 · 100% → CNY 200.00" in statement["text"] and "Total: CNY 200.00" in statement["text"], statement["text"]

    [change] = await shop.rows(select(tables.price_changes))
    assert (change["status"], change["amount_minor"], change["manager_by"]) == ("refused", 8000, None)
    [stored] = await shop.rows(select(tables.bills))
    assert (stored["total_minor"], stored["status"]) == (LABOUR_MINOR, "priced")
    assert [line["kind"] for line in await shop.rows(select(tables.bill_lines))] == ["labour"]
    statements = await shop.rows(select(tables.settlement_statements))
    assert [(st["technician_id"], st["period"], st["total_minor"]) for st in statements] == [(li_id, "2026-12", LABOUR_MINOR)]
