"""End to end over WhatsApp: a running fieldchat (webhook served by uvicorn, the relay in the background) talks to the
fake Cloud API on 127.0.0.1; the customer is entirely on WhatsApp, the technician and the dispatchers on Telegram."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from sqlalchemy import select

from bots.channels import WHATSAPP
from scheduler.ratelimit import DEFAULT_LIMITS, SendLimiter
from services import backoffice
from storage import tables
from storage.repository import Store
from tests.support.harness import SHOP
from tests.support.setups import DELIVERY_STEPS
from tests.support.telegram import DRIVER, GROUP, INSTALLER, STAFF, Shop, make_container
from tests.support.whatsapp import ABROAD, CUSTOMER_NUMBER, CUSTOMER_NUMBER_ID, fake_whatsapp, whatsapp_settings
from webhooks.app import create_app

INSTALL_STEPS = [{"key": "room_ready", "kind": "yes_no", "prompt": {"en": "Room ready?"}}]


class Customer:
    """The customer on WhatsApp: writes and presses through Meta's signed webhook, reads what the fake API got."""

    def __init__(self, fake, url: str, wa_id: str) -> None:
        self.fake, self.url, self.wa_id = fake, url, wa_id

    def mark(self) -> int:
        return len(self.fake.sent)

    async def _deliver(self, message: dict) -> None:
        status = await self.fake.deliver(self.url, self.fake.notification(CUSTOMER_NUMBER_ID, messages=[message],
                                                                          contacts=[{"profile": {"name": "Zhang"}, "wa_id": self.wa_id}]))
        assert status == 200

    async def say(self, text: str) -> None:
        await self._deliver(self.fake.text(self.wa_id, text))

    async def press(self, sent, label: str) -> None:
        """The reply button or list row whose title shows ``label`` (titles are cut to 20 characters)."""
        found = [data for title, data in sent.actions() if label in title or (title.endswith("…") and title[:-1].split(" ", 1)[-1] in label)]
        assert len(found) == 1, f"no single {label!r} on {sent.text!r}: {sent.actions()}"
        await self._deliver(self.fake.reply(self.wa_id, sent, found[0]))

    async def press_data(self, sent, data: str) -> None:
        await self._deliver(self.fake.reply(self.wa_id, sent, data))

    async def expect(self, needle: str, since: int, timeout: float = 10):
        return await self.fake.wait_for_sent(lambda s: s.to == self.wa_id and needle in s.text, timeout, since=since)


@pytest.fixture
async def shop_on_whatsapp(fake_telegram, database_url, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    async with fake_whatsapp(None) as fake:
        container, clock = make_container(fake_telegram, database_url, tmp_path, telegram_mode="polling", public_url=base,
                                          **whatsapp_settings(fake))
        fake.clock = lambda: clock.now().timestamp()  # Meta's time is the test's injected clock
        # WhatsApp's pair rate (one message per person per 6 s) would make this story take minutes; the limiter's own
        # test (tests/contract/test_whatsapp.py) shows it holds them. Telegram keeps its rates.
        container.relay.limiter = SendLimiter({"telegram": DEFAULT_LIMITS["telegram"]})
        server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    assert not serving.done(), serving.exception()
                    await asyncio.sleep(0.02)
            yield Shop(fake_telegram, container, clock, tmp_path / "media"), Customer(fake, f"{base}/whatsapp/webhook", ABROAD), fake
        finally:
            server.should_exit = True
            await serving


async def test_the_sofa_customer_books_confirms_and_rates_on_whatsapp_and_outside_24_hours_templates_or_an_alert_go(shop_on_whatsapp):
    shop, customer, fake = shop_on_whatsapp
    assert "whatsapp clean-up" in shop.container.running  # old statuses are dropped hourly where timers run
    await shop.template("delivery", "sofa", DELIVERY_STEPS)
    await shop.template("installation", "sofa", INSTALL_STEPS)
    await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
    await shop.staff_and_group({INSTALLER: "Li"})
    order = await shop.order()
    delivery, installation = order.visits

    # the customer's link opens the shop's number with their code prefilled; sending it signs them in
    link = shop.container.channels.deep_link(WHATSAPP, "customer", order.customer_token)
    assert link is not None and link.startswith(f"https://wa.me/{CUSTOMER_NUMBER}?text=")
    prefilled = parse_qs(urlsplit(link).query)["text"][0]
    since = customer.mark()
    await customer.say(prefilled)
    choose = await customer.expect("Pick a time for the delivery:", since)
    assert choose.type == "interactive" and "Hello Zhang Wei! Here is your order." in choose.text
    slots = [data for _title, data in choose.actions() if data.startswith("sl:")]
    assert slots and len(choose.actions()) <= 10

    since = customer.mark()
    await customer.press_data(choose, slots[0])
    await customer.expect("Booked: delivery on", since)
    book_next = await customer.expect("Now pick a time for the installation.", since)
    offer = await shop.expect(DRIVER, f"New delivery #{delivery.id}: 3-seat sofa", 0)
    since = customer.mark()
    await customer.press(book_next, "Book installation")
    choose = await customer.expect("Pick a time for the installation:", since)
    since = customer.mark()
    await customer.press_data(choose, next(data for _t, data in choose.actions() if data.startswith("sl:")))
    await customer.expect("Booked: installation on", since)
    install_offer = await shop.expect(INSTALLER, f"New installation #{installation.id}: 3-seat sofa", 0)

    # the driver (on Telegram) accepts, sets off, checks in, completes; the customer hears each step on WhatsApp
    since, theirs = shop.mark(), customer.mark()
    shop.press(DRIVER, offer, "Accept", token=STAFF)
    accepted = await shop.expect(DRIVER, f"Accepted visit #{delivery.id}.", since)
    await customer.expect("Wang will come.", theirs)
    since, theirs = shop.mark(), customer.mark()
    shop.press(DRIVER, accepted, "On my way", token=STAFF)
    await shop.expect(DRIVER, "share your location", since)
    await customer.expect("Wang is on the way for your delivery.", theirs)
    since, theirs = shop.mark(), customer.mark()
    fake_telegram = shop.fake
    fake_telegram.location_message(DRIVER, SHOP[0], SHOP[1] + 0.001, token=STAFF)
    checked_in = await shop.expect(DRIVER, "Checked in.", since)
    await customer.expect("Wang has arrived.", theirs)
    since = shop.mark()
    shop.press(DRIVER, checked_in, "Start checklist", token=STAFF)
    step = await shop.expect(DRIVER, "Step 1/1: Packaging intact?", since)
    since = shop.mark()
    shop.press(DRIVER, step, "Yes", token=STAFF)
    done = await shop.expect(DRIVER, "Checklist done.", since)
    since, theirs = shop.mark(), customer.mark()
    shop.press(DRIVER, done, "Complete visit", token=STAFF)
    await shop.expect(DRIVER, f"Visit #{delivery.id} completed.", since)
    finished = await customer.expect("Wang has finished the delivery. Please check and confirm.", theirs)

    # the customer confirms and rates, pressing WhatsApp reply buttons
    theirs = customer.mark()
    await customer.press(finished, "Confirm it")
    rate = await customer.expect("How would you rate the service?", theirs)
    await shop.expect(DRIVER, f"The customer confirmed visit #{delivery.id}.", 0)
    theirs = customer.mark()
    await customer.press_data(rate, next(data for title, data in rate.actions() if title.startswith("5")))
    rated = await customer.expect("Thanks for rating 5/5.", theirs)
    theirs = customer.mark()
    await customer.press(rated, "Skip")
    await customer.expect("Thank you!", theirs)
    assert fake.refused == [] and all(s.type != "template" for s in fake.sent)  # all inside the window

    # a day later the customer has not written: status news goes as the approved template; the request to confirm
    # has no template, so the dispatchers' group is told to call instead of the message being lost
    shop.clock.advance(timedelta(hours=25))
    since, theirs = shop.mark(), customer.mark()
    shop.press(INSTALLER, install_offer, "Accept", token=STAFF)
    accepted = await shop.expect(INSTALLER, f"Accepted visit #{installation.id}.", since)
    who = await customer.expect("Li will come.", theirs)
    assert who.type == "template" and who.body["template"]["name"] == "visit_update"
    since = shop.mark()
    shop.press(INSTALLER, accepted, "On my way", token=STAFF)
    await shop.expect(INSTALLER, "share your location", since)
    since = shop.mark()
    fake_telegram.location_message(INSTALLER, SHOP[0] + 0.001, SHOP[1], token=STAFF)
    checked_in = await shop.expect(INSTALLER, "Checked in.", since)
    since = shop.mark()
    shop.press(INSTALLER, checked_in, "Start checklist", token=STAFF)
    step = await shop.expect(INSTALLER, "Step 1/1: Room ready?", since)
    since = shop.mark()
    shop.press(INSTALLER, step, "Yes", token=STAFF)
    done = await shop.expect(INSTALLER, "Checklist done.", since)
    since = shop.mark()
    shop.press(INSTALLER, done, "Complete visit", token=STAFF)
    await shop.expect(INSTALLER, f"Visit #{installation.id} completed.", since)
    alert = await shop.expect(GROUP, f"A message to the customer of order #{order.job.id} did not reach them", since)
    assert "(a request to confirm and rate)" in alert["text"] and "Please call them." in alert["text"]
    assert alert["reply_markup"]["inline_keyboard"]  # a next step for the dispatcher
    assert "Zhang Wei" not in alert["text"]  # masked in the group
    assert not any("finished the installation" in s.text for s in fake.sent_to(ABROAD))
    rows = await shop.rows(select(tables.outbox).where(tables.outbox.c.platform == WHATSAPP, tables.outbox.c.status == "failed"))
    assert len(rows) == 1 and "no template for 'survey'" in rows[0]["last_error"]

    # every message sent is recorded, and Meta's statuses land on them
    statuses = await shop.rows(select(tables.whatsapp_messages))
    assert {row["wamid"] for row in statuses} == {s.wamid for s in fake.sent}
    assert {row["template"] for row in statuses if row["template"]} == {"visit_update"}
    last = fake.sent_to(ABROAD)[-1]
    for status in ("read", "delivered"):
        await fake.deliver(customer.url, fake.notification(CUSTOMER_NUMBER_ID, statuses=[fake.status(last, status)]))
    [row] = await shop.rows(select(tables.whatsapp_messages).where(tables.whatsapp_messages.c.wamid == last.wamid))
    assert row["status"] == "read"

    async with shop.container.sessions() as session:
        job = await backoffice.job_details(Store(session), order.job.id)
    assert [v["status"] for v in job["visits"]][0] == "confirmed"
    assert "MessageNotDelivered" in [e["type"] for e in job["timeline"]]
    assert all(re.fullmatch(r"wamid\.in\d+", row["update_id"]) for row in await shop.rows(
        select(tables.inbox).where(tables.inbox.c.platform == WHATSAPP)))
