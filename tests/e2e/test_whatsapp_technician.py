"""End to end over WhatsApp for a technician: a shop that gives its technicians a WhatsApp number of their own; the
installer registers through the wa.me link, gets the offer (a day later, so first as a template, the rest once they
write back), accepts, sets off, checks in with a location, walks the checklist (yes/no, a number, a choice, a photo) and
completes, all through the served webhook and the fake Cloud API. The customer is on Telegram."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from sqlalchemy import select

from bots.channels import WHATSAPP
from domain.model import Visit
from scheduler.ratelimit import DEFAULT_LIMITS, SendLimiter
from storage import tables
from tests.support.harness import SHOP
from tests.support.photos import photo_bytes
from tests.support.setups import INSTALL_STEPS
from tests.support.telegram import Shop, book_first_slot, make_container
from fieldchat.fakes.whatsapp_server import Template
from tests.support.whatsapp import STAFF_NUMBER, STAFF_NUMBER_ID, TEMPLATES_SETTING, fake_whatsapp, whatsapp_settings
from webhooks.app import create_app

pytestmark = pytest.mark.slow

# the shop's approved templates, and one for new jobs with one quick reply (the offer's first action, Accept)
TEMPLATES = TEMPLATES_SETTING[:-1] + ', "assignment": {"name": "new_job", "languages": {"en": "en_US"}, "buttons": 1}}'
TECHNICIAN = "447700900456"  # the installer's own WhatsApp number (abroad: they read English)


class OnWhatsApp:
    """A person writing to the shop's staff number through Meta's signed webhook; reads what the fake API got."""

    def __init__(self, fake, url: str, wa_id: str, name: str) -> None:
        self.fake, self.url, self.wa_id, self.name = fake, url, wa_id, name

    def mark(self) -> int:
        return len(self.fake.sent)

    async def _deliver(self, message: dict) -> None:
        payload = self.fake.notification(STAFF_NUMBER_ID, messages=[message], contacts=[{"profile": {"name": self.name}, "wa_id": self.wa_id}])
        assert await self.fake.deliver(self.url, payload) == 200

    async def say(self, text: str) -> None:
        await self._deliver(self.fake.text(self.wa_id, text))

    async def press(self, sent, label: str) -> None:
        found = [data for title, data in sent.actions() if title == label] or [data for title, data in sent.actions() if label in title]
        assert len(found) == 1, f"no single {label!r} on {sent.text!r}: {sent.actions()}"
        await self._deliver(self.fake.reply(self.wa_id, sent, found[0]))

    async def location(self, latitude: float, longitude: float) -> None:
        await self._deliver(self.fake.location(self.wa_id, latitude, longitude))

    async def photo(self, content: bytes) -> None:
        await self._deliver(self.fake.image(self.wa_id, content))

    async def expect(self, needle: str, since: int, timeout: float = 10):
        return await self.fake.wait_for_sent(lambda s: s.to == self.wa_id and needle in s.text, timeout, since=since)


@pytest.fixture
async def shop_with_whatsapp_staff(fake_telegram, database_url, tmp_path: Path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    async with fake_whatsapp(None) as fake:
        fake.templates["new_job"] = Template(("en_US",), buttons=1)
        container, clock = make_container(
            fake_telegram, database_url, tmp_path, telegram_mode="polling", public_url=base,
            **{**whatsapp_settings(fake), "whatsapp_templates": TEMPLATES},
            whatsapp_staff_phone_number_id=STAFF_NUMBER_ID, whatsapp_staff_number=STAFF_NUMBER,
        )
        fake.clock = lambda: clock.now().timestamp()
        # WhatsApp's pair rate (one message per person per 6 s) would make the story take minutes; its own tests
        # (tests/contract/test_whatsapp.py, test_whatsapp_parts.py) show the limiter holds it. Telegram keeps its rates.
        container.relay.limiter = SendLimiter({"telegram": DEFAULT_LIMITS["telegram"]})
        server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    assert not serving.done(), serving.exception()
                    await asyncio.sleep(0.02)
            yield Shop(fake_telegram, container, clock, tmp_path / "media"), OnWhatsApp(fake, f"{base}/whatsapp/webhook", TECHNICIAN, "Li"), fake
        finally:
            server.should_exit = True
            await serving


async def test_an_installer_on_whatsapp_registers_accepts_checks_in_walks_the_checklist_with_a_photo_and_completes(shop_with_whatsapp_staff):
    shop, installer, fake = shop_with_whatsapp_staff
    await shop.template("installation", "sofa", INSTALL_STEPS)
    token = await shop.technician("Li", ["installer"], ["sofa"], phone="13700001111")

    # the invite opens the shop's staff number with the code prefilled; sending it registers the installer
    link = shop.container.channels.deep_link(WHATSAPP, "installer", token)
    assert link is not None and link.startswith(f"https://wa.me/{STAFF_NUMBER}?text=")
    since = installer.mark()
    await installer.say(parse_qs(urlsplit(link).query)["text"][0])
    await installer.expect("You're registered", since)

    # a day later (their 24-hour window has closed) the customer (on Telegram) books: the offer reaches the installer
    # as the approved template, carrying its first action and telling them that a reply brings the rest
    shop.clock.advance(timedelta(hours=25))
    order = await shop.order(services=("installation",))
    [visit] = order.visits
    since = installer.mark()
    await book_first_slot(shop, order, "installation")
    template = await installer.expect(f"New installation #{visit.id}: 3-seat sofa", since)
    assert template.type == "template" and template.body["template"]["name"] == "new_job" and len(template.actions()) == 1
    assert "Reply to this message to see it in full" in template.text
    # they write back: the whole offer comes, with every button (kept in the database meanwhile, not in memory)
    since = installer.mark()
    await installer.say("hello?")
    offer = await fake.wait_for_sent(lambda s: s.to == TECHNICIAN and s.type == "interactive" and f"New installation #{visit.id}" in s.text,
                                     10, since=since)
    assert len(offer.actions()) > 1

    since = installer.mark()
    await installer.press(offer, "Accept")
    accepted = await installer.expect(f"Accepted visit #{visit.id}.", since)
    since = installer.mark()
    await installer.press(accepted, "On my way")
    share = await installer.expect("share your location", since)
    assert share.body["interactive"]["type"] == "location_request_message"  # WhatsApp's own location request

    since = installer.mark()
    await installer.location(SHOP[0] + 0.001, SHOP[1])
    checked_in = await installer.expect("Checked in.", since)
    since = installer.mark()
    await installer.press(checked_in, "Start checklist")
    step = await installer.expect("Room ready?", since)
    since = installer.mark()
    await installer.press(step, "Yes")
    await installer.expect("Legs fitted?", since)
    since = installer.mark()
    await installer.say("4")
    step = await installer.expect("Fabric", since)
    since = installer.mark()
    await installer.press(step, "OK")
    await installer.expect("Photo of the sofa", since)
    since = installer.mark()
    await installer.photo(photo_bytes(size=(64, 48)))
    done = await installer.expect("Checklist done.", since)
    since = installer.mark()
    await installer.press(done, "Complete visit")
    await installer.expect(f"Visit #{visit.id} completed.", since)

    assert fake.refused == []
    finished = await shop.entity(Visit, visit.id)
    assert finished.status == "completed"
    # the checklist's photo was fetched in two steps and stored as evidence; the inbox holds the installer's updates once
    stored = list((shop.media / WHATSAPP / "staff").glob("*.jpg"))
    assert len(stored) == 1
    updates = await shop.rows(select(tables.inbox).where(tables.inbox.c.platform == WHATSAPP, tables.inbox.c.bot == "staff"))
    assert updates and all(row["status"] == "processed" for row in updates) and all(row["chat_id"] == TECHNICIAN for row in updates)
