"""End to end through Telegram: the real adapter, on each driver (aiogram, python-telegram-bot), talks HTTP to a fake Bot
API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
import uvicorn
from PIL import Image
from sqlalchemy import func, select

from domain.model import ProblemReport, Visit
from services import backoffice
from storage import tables
from storage.repository import Store
from tests.support.harness import SHOP, parts
from tests.support.setups import DELIVERY_STEPS
from tests.support.telegram import (
    BYSTANDER_USER,
    CUSTOMER,
    CUSTOMER_CHAT,
    DISPATCHER_USER,
    DRIVER,
    DRIVERS,
    GROUP,
    INSTALLER,
    JPEG,
    MASKED_PHONE,
    PHONE,
    SECOND_INSTALLER,
    STAFF,
    Shop,
    book_first_slot,
    button,
    inline_buttons,
    make_container,
    running,
)
from webhooks.app import create_app


@pytest.fixture(params=DRIVERS)
def telegram_driver(request) -> str:
    return request.param


# tests/e2e/conftest.py's shops, on each driver
@pytest.fixture
async def shop(fake_telegram, database_url, tmp_path, telegram_driver):
    async with running(fake_telegram, database_url, tmp_path, telegram_driver=telegram_driver) as shop:
        yield shop


@pytest.fixture
async def sqlite_shop(fake_telegram, sqlite_url, tmp_path, telegram_driver):
    async with running(fake_telegram, sqlite_url, tmp_path, telegram_driver=telegram_driver) as shop:
        yield shop


INSTALL_STEPS = [
    {"key": "room_ready", "kind": "yes_no", "prompt": {"en": "Room ready?"}},
    {"key": "after", "kind": "photo", "prompt": {"en": "Photo of the sofa"}},
]


# --- 1. the whole lifecycle -----------------------------------------------------------------------


async def test_a_sofa_goes_from_deep_link_to_low_rating_alert_over_real_telegram_polling(shop: Shop):
    fake = shop.fake
    await shop.template("delivery", "sofa", DELIVERY_STEPS)
    await shop.template("installation", "sofa", INSTALL_STEPS)
    await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
    await shop.staff_and_group({INSTALLER: "Li"})
    order = await shop.order()
    delivery, installation = order.visits

    # the deep link: greeting, order summary and slot buttons, in that order
    since = shop.mark()
    shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER, first_name="Zhang")
    choose = await shop.expect(CUSTOMER_CHAT, "Pick a time for the delivery:", since)
    # one message, not three: each message to a chat waits its turn at Telegram's per-chat pace
    [card] = shop.texts(CUSTOMER_CHAT, since)
    welcome, summary = card.split("\n\n")[:2]
    assert welcome == "Hello Zhang Wei! Here is your order."
    assert summary.startswith(f"Order #{order.job.id}: 3-seat sofa\nAddress: Huangpu District, 100 Nanjing East Road")
    slots = inline_buttons(choose)
    assert slots[0]["text"] == "Mon 23 Nov 11:00–13:00"  # 08:00 now + 2 h lead: the 09:00 window is gone

    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, choose, slots[0]["callback_data"], token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Booked: delivery on Mon 23 Nov 11:00–13:00. We'll tell you who is coming.", since)
    book_next = await shop.expect(CUSTOMER_CHAT, "Now pick a time for the installation.", since)
    offer = await shop.expect(DRIVER, f"New delivery #{delivery.id}: 3-seat sofa\nWhen: Mon 23 Nov 11:00–13:00", since)

    since = shop.mark()
    shop.press(CUSTOMER_CHAT, book_next, "Book installation", token=CUSTOMER)
    choose = await shop.expect(CUSTOMER_CHAT, "Pick a time for the installation:", since)
    delivery_end = int(slots[0]["callback_data"].split(":")[3])
    # the first day's windows, then a button per later day: every window offered starts after the delivery
    windows = [b for b in inline_buttons(choose) if b["callback_data"].startswith("sl:")]
    assert windows and all(int(b["callback_data"].split(":")[2]) >= delivery_end for b in windows)
    since = shop.mark()
    shop.press_data(CUSTOMER_CHAT, choose, inline_buttons(choose)[0]["callback_data"], token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Booked: installation on", since)
    install_offer = await shop.expect(INSTALLER, f"New installation #{installation.id}: 3-seat sofa", since)

    # both accept; the customer learns who comes
    since = shop.mark()
    shop.press(DRIVER, offer, "Accept", token=STAFF)
    driver_accepted = await shop.expect(DRIVER, f"Accepted visit #{delivery.id}.", since)
    await shop.expect(CUSTOMER_CHAT, "Your delivery on Mon 23 Nov 11:00–13:00: Wang will come.", since)
    since = shop.mark()
    shop.press(INSTALLER, install_offer, "Accept", token=STAFF)
    installer_accepted = await shop.expect(INSTALLER, f"Accepted visit #{installation.id}.", since)
    await shop.expect(CUSTOMER_CHAT, "Li will come.", since)

    # the driver: on my way, shares the location, answers the checklist, completes
    since = shop.mark()
    shop.press(DRIVER, driver_accepted, "On my way", token=STAFF)
    share = await shop.expect(DRIVER, "When you arrive, share your location to check in", since)
    assert share["reply_markup"]["keyboard"][0][0]["request_location"] is True
    await shop.expect(CUSTOMER_CHAT, "Wang is on the way for your delivery.", since)
    since = shop.mark()
    fake.location_message(DRIVER, SHOP[0], SHOP[1] + 0.001, token=STAFF)
    checked_in = await shop.expect(DRIVER, "Checked in.", since)
    await shop.expect(CUSTOMER_CHAT, "Wang has arrived.", since)
    since = shop.mark()
    shop.press(DRIVER, checked_in, "Start checklist", token=STAFF)
    step = await shop.expect(DRIVER, "Step 1/1: Packaging intact?", since)
    since = shop.mark()
    shop.press(DRIVER, step, "Yes", token=STAFF)
    done = await shop.expect(DRIVER, "Checklist done.", since)
    since = shop.mark()
    shop.press(DRIVER, done, "Complete visit", token=STAFF)
    await shop.expect(DRIVER, f"Visit #{delivery.id} completed.", since)
    finished = await shop.expect(CUSTOMER_CHAT, "Wang has finished the delivery. Please check and confirm.", since)

    # the customer confirms the delivery and rates it well: no alert for that
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, finished, "Confirm it's done", token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Thank you for confirming the delivery!", since)
    rate = await shop.expect(CUSTOMER_CHAT, "How would you rate the service?", since)
    await shop.expect(DRIVER, f"The customer confirmed visit #{delivery.id}.", since)
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rate, "5", token=CUSTOMER)
    rated = await shop.expect(CUSTOMER_CHAT, "Thanks for rating 5/5.", since)
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rated, "Skip", token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Thank you! Send /status any time", since)

    # the installer: on the way, checks in, checklist with a photo the adapter downloads
    since = shop.mark()
    shop.press(INSTALLER, installer_accepted, "On my way", token=STAFF)
    await shop.expect(INSTALLER, "share your location", since)
    since = shop.mark()
    fake.location_message(INSTALLER, SHOP[0] + 0.001, SHOP[1], token=STAFF)
    checked_in = await shop.expect(INSTALLER, "Checked in.", since)
    since = shop.mark()
    shop.press(INSTALLER, checked_in, "Start checklist", token=STAFF)
    step = await shop.expect(INSTALLER, "Step 1/2: Room ready?", since)
    since = shop.mark()
    shop.press(INSTALLER, step, "Yes", token=STAFF)
    await shop.expect(INSTALLER, "Step 2/2: Photo of the sofa\n📷 Send a photo.", since)
    since, calls = shop.mark(), len(fake.calls)
    fake.photo_message(INSTALLER, "AgACAgSofaPhoto", "AQADSofaPhoto", content=JPEG, token=STAFF)
    done = await shop.expect(INSTALLER, "Checklist done.", since)
    got = await fake.wait_for_call("getFile", token=STAFF, since=calls, predicate=lambda c: c.params.get("file_id") == "AgACAgSofaPhoto")
    assert got.status == 200
    stored = sorted((shop.media / "telegram" / "staff").iterdir())
    assert [p.suffix for p in stored] == [".jpg"] and Image.open(stored[0]).size == (32, 24)  # the checked copy
    photos = await shop.rows(select(tables.photos))
    assert [(p["file_id"], p["path"], p["purpose"]) for p in photos] == [("AgACAgSofaPhoto", str(stored[0]), "checklist")]
    since = shop.mark()
    shop.press(INSTALLER, done, "Complete visit", token=STAFF)
    await shop.expect(INSTALLER, f"Visit #{installation.id} completed.", since)
    finished = await shop.expect(CUSTOMER_CHAT, "Li has finished the installation. Please check and confirm.", since)

    # the customer confirms and rates 2: the dispatchers' group hears about it, masked
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, finished, "Confirm it's done", token=CUSTOMER)
    rate = await shop.expect(CUSTOMER_CHAT, "How would you rate the service?", since)
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rate, "2", token=CUSTOMER)
    rated = await shop.expect(CUSTOMER_CHAT, "We are sorry it was only 2/5. What went wrong?", since)
    alert = await shop.expect(GROUP, f"⭐ Low rating 2/5 for installation #{installation.id} by Li", since)
    assert f"Customer: Z**, {MASKED_PHONE}" in alert["text"]
    assert "Address: Huangpu *** (Huangpu)" in alert["text"]
    assert button(alert, "Acknowledge").startswith("ra:")
    since = shop.mark()
    shop.press(CUSTOMER_CHAT, rated, "Skip", token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Thank you! Send /status any time", since)

    group_texts = shop.texts(GROUP)
    assert len([t for t in group_texts if "Low rating" in t]) == 1  # the 5/5 raised nothing
    for text in group_texts:
        assert PHONE not in text and "Nanjing" not in text and "Zhang Wei" not in text

    # every button press was answered, so no client keeps spinning
    for callback_id in shop.callback_ids:
        answer = await fake.wait_for_call("answerCallbackQuery", predicate=lambda c, i=callback_id: c.params.get("callback_query_id") == i)
        assert answer.status == 200, answer.response

    async with shop.container.sessions() as session:
        job = await backoffice.job_details(Store(session), order.job.id)
    assert job["status"] == "done"
    assert [v["status"] for v in job["visits"]] == ["confirmed", "confirmed"]
    assert "LowRatingReceived" in [e["type"] for e in job["timeline"]]


# --- 2. an exception handled in the group -------------------------------------------------------


async def test_a_damage_report_alerts_the_group_and_only_a_dispatcher_can_reassign_it(sqlite_shop: Shop):
    shop, fake = sqlite_shop, sqlite_shop.fake
    names = {INSTALLER: "Li", SECOND_INSTALLER: "Chen"}
    await shop.staff_and_group(names)
    order = await shop.order(services=("installation",))
    (visit,) = order.visits

    since = shop.mark()
    await book_first_slot(shop, order, "installation")
    offer = await fake.wait_for_sent(
        lambda s: s["chat_id"] in (str(INSTALLER), str(SECOND_INSTALLER)) and f"New installation #{visit.id}" in s["text"], since=since
    )
    first = int(offer["chat_id"])
    other = SECOND_INSTALLER if first == INSTALLER else INSTALLER
    since = shop.mark()
    shop.press(first, offer, "Accept", token=STAFF)
    await shop.expect(first, f"Accepted visit #{visit.id}", since)

    # the installer reports damaged goods with a photo
    since = shop.mark()
    shop.say(first, "/visits", token=STAFF)
    card = await shop.expect(first, f"#{visit.id} installation — confirmed", since)
    since = shop.mark()
    shop.press(first, card, "Report a problem", token=STAFF)
    reasons = await shop.expect(first, "What is the problem?", since)
    since = shop.mark()
    shop.press(first, reasons, "Goods damaged", token=STAFF)
    await shop.expect(first, "Describe it in a few words, or press Skip.", since)
    since = shop.mark()
    shop.say(first, "Back leg snapped in transit", token=STAFF)
    await shop.expect(first, "Please send at least one photo", since)
    since = shop.mark()
    fake.photo_message(first, "AgACAgDamage", "AQADDamage", content=JPEG, token=STAFF)
    added = await shop.expect(first, "Photo 1 added.", since)
    since = shop.mark()
    shop.press(first, added, "Send report", token=STAFF)
    await shop.expect(first, "Reported. The dispatchers have been alerted", since)
    alert = await shop.expect(GROUP, "⚠️ Problem #", since)
    assert f"on installation #{visit.id}: Goods damaged" in alert["text"]
    assert "Note: Back leg snapped in transit\nPhotos: 1" in alert["text"]
    assert f"Technician: {names[first]}" in alert["text"] and MASKED_PHONE in alert["text"]
    assert [b["text"] for b in inline_buttons(alert)] == ["👌 Acknowledge", "🔁 Reassign", "🚫 Cancel visit"]
    report_id = int(button(alert, "Acknowledge").split(":")[1])
    assert (await shop.entity(Visit, visit.id)).status == "on_hold"

    # someone in the group who is not a dispatcher presses Acknowledge: politely refused, nothing changes
    outbox_before = (await shop.rows(select(func.max(tables.outbox.c.id).label("last"))))[0]["last"]
    since = shop.mark()
    shop.press(GROUP, alert, "Acknowledge", token=STAFF, user_id=BYSTANDER_USER, first_name="Bob")
    await shop.expect(GROUP, "Sorry Bob, only registered dispatchers can do that.", since)
    assert (await shop.entity(ProblemReport, report_id)).status == "open"
    assert (await shop.entity(Visit, visit.id)).status == "on_hold"
    written = await shop.rows(select(tables.outbox).where(tables.outbox.c.id > outbox_before))
    assert [(r["chat_id"], r["payload"]["text"]["key"]) for r in written] == [(str(GROUP), "dispatcher.not_allowed")]

    # the dispatcher reassigns it to the other installer, who gets the offer
    since = shop.mark()
    shop.press(GROUP, alert, "Reassign", token=STAFF, user_id=DISPATCHER_USER, first_name="Dora")
    pick = await shop.expect(GROUP, f"Reassign visit #{visit.id} to:", since)
    # the free colleague, then the way to anyone skilled (busy ones only with an explicit override)
    assert [b["text"] for b in inline_buttons(pick)] == [names[other], "👷 Assign anyone skilled"]
    since = shop.mark()
    shop.press(GROUP, pick, names[other], token=STAFF, user_id=DISPATCHER_USER, first_name="Dora")
    await shop.expect(GROUP, f"Visit #{visit.id} offered to {names[other]}.", since)
    new_offer = await shop.expect(other, f"New installation #{visit.id}: 3-seat sofa", since)
    await shop.expect(first, f"Visit #{visit.id} was reassigned to someone else.", since)
    assert (await shop.entity(ProblemReport, report_id)).status == "resolved"

    since = shop.mark()
    shop.press(other, new_offer, "Accept", token=STAFF)
    await shop.expect(other, f"Accepted visit #{visit.id}", since)
    await shop.expect(CUSTOMER_CHAT, f"{names[other]} will come.", since)
    assert (await shop.entity(Visit, visit.id)).status == "accepted"


# --- 3. duplicates ----------------------------------------------------------------------------------


async def test_a_resent_update_gets_no_second_reply_and_no_second_state_change(shop: Shop):
    fake = shop.fake
    await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
    order = await shop.order(services=("delivery",))
    (delivery,) = order.visits

    since = shop.mark()
    start = shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER, first_name="Zhang")
    choose = await shop.expect(CUSTOMER_CHAT, "Pick a time for the delivery:", since)
    since = shop.mark()
    press = shop.press_data(CUSTOMER_CHAT, choose, inline_buttons(choose)[0]["callback_data"], token=CUSTOMER)
    await shop.expect(CUSTOMER_CHAT, "Booked: delivery on", since)
    await shop.expect(DRIVER, f"New delivery #{delivery.id}", since)

    # Telegram did not get our confirmation and sends both updates again
    since = shop.mark()
    fake.resend(CUSTOMER, start)
    fake.resend(CUSTOMER, press)
    await fake.wait_until_confirmed(CUSTOMER, start["update_id"])
    await fake.wait_until_confirmed(CUSTOMER, press["update_id"])
    # a fresh update in the same chat is processed and sent after anything the duplicates could have caused
    shop.say(CUSTOMER_CHAT, "/status", token=CUSTOMER, first_name="Zhang")
    await shop.expect(CUSTOMER_CHAT, f"Order #{order.job.id}: 3-seat sofa", since)

    # the relay sends a chat's rows in order, so a reply to a duplicate would have come before this one
    assert len(shop.texts(CUSTOMER_CHAT, since)) == 1
    rows = await shop.rows(select(tables.outbox).where(tables.outbox.c.chat_id == str(CUSTOMER_CHAT)).order_by(tables.outbox.c.id))
    assert [key for r in rows for key in parts(r["payload"]["text"])] == [
        "customer.welcome", "customer.order_summary", "customer.choose_slot", "customer.booked", "customer.order_summary",
    ]
    assert shop.texts(DRIVER, since) == []
    assert len([t for t in shop.texts(DRIVER) if t.startswith(f"New delivery #{delivery.id}")]) == 1
    timeline = await shop.timeline(order.job.id)
    assert timeline.count("VisitBooked") == 1 and timeline.count("OfferMade") == 1
    inbox = await shop.rows(select(tables.inbox).where(tables.inbox.c.bot == "customer").order_by(tables.inbox.c.id))
    assert [(r["update_id"], r["status"], r["attempts"]) for r in inbox] == [
        (str(start["update_id"]), "processed", 1),
        (str(press["update_id"]), "processed", 1),
        (str(start["update_id"] + 2), "processed", 1),
    ]


# --- 4. webhook mode ------------------------------------------------------------------------------


async def test_webhook_mode_books_a_slot_and_refuses_wrong_secrets_and_bad_bodies(fake_telegram, sqlite_url, tmp_path, telegram_driver):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    container, clock = make_container(
        fake_telegram, sqlite_url, tmp_path, telegram_mode="webhook", public_url=base, telegram_driver=telegram_driver
    )
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not serving.done(), serving.exception()
                await asyncio.sleep(0.02)
        shop = Shop(fake_telegram, container, clock, tmp_path / "media")

        # the container registered both webhooks with their secrets
        for token, role in ((CUSTOMER, "customer"), (STAFF, "staff")):
            hook = await fake_telegram.wait_for_call("setWebhook", token=token)
            assert hook.params["url"] == f"{base}/telegram/{role}/webhook"
            assert hook.params["secret_token"] == container.settings.webhook_secret(token)

        await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
        order = await shop.order(services=("delivery",))
        booked = await book_first_slot(shop, order, "delivery")
        assert booked["text"].endswith("We'll tell you who is coming.")
        await shop.expect(DRIVER, f"New delivery #{order.visits[0].id}", 0)
        assert fake_telegram.deliveries and all(d.status == 200 for d in fake_telegram.deliveries)

        url = f"{base}/telegram/customer/webhook"
        secret = container.settings.webhook_secret(CUSTOMER)
        stranger = fake_telegram.text_message(3003, "/start", token=CUSTOMER, queue=False)
        async with httpx.AsyncClient(timeout=10) as client:
            # a wrong or missing secret is refused before anything is stored
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}, {}):
                refused = await client.post(url, json=stranger, headers=headers)
                assert refused.status_code == 401
            assert await shop.rows(select(tables.inbox).where(tables.inbox.c.update_id == str(stranger["update_id"]))) == []

            # bodies that are not updates are dropped without crashing the server
            good = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
            for body in (b"{not json", b"[1, 2]", json.dumps({"update_id": "x", "message": 5}).encode()):
                answer = await client.post(url, content=body, headers=good)
                assert answer.status_code == 200 and answer.json() == {"ok": False}, (body, answer.text)

            # and the server still takes a genuine update with the right secret
            since = shop.mark()
            accepted = await client.post(url, json=stranger, headers=good)
            assert accepted.status_code == 200 and accepted.json() == {"ok": True}
            await shop.expect(3003, "Please open the link you received with your order.", since)
        assert [s["chat_id"] for s in fake_telegram.sent()[since:]] == ["3003"]
    finally:
        server.should_exit = True
        await serving


# --- 5. outbound errors ---------------------------------------------------------------------------
