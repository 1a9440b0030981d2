"""End to end through Telegram (issue 14 part 2): a rooftop unit filed by the API, its owner's chat never bound; the owner
scans the sticker, says it is theirs, a forwarded contact is refused, their own contact binds the chat, the menu opens."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from domain import commands as c
from domain.devices import DeviceFields, SiteFields
from storage import tables
from storage.devices import DEVICE, DeviceStore
from storage.repository import Store
from tests.support.harness import SHOP
from tests.support.telegram import CUSTOMER, PHONE, Shop, running

pytestmark = pytest.mark.slow
OWNER = 3003  # the owner's Telegram chat: never bound by an order link


@pytest.fixture
async def shop(fake_telegram, sqlite_url, tmp_path):
    async with running(fake_telegram, sqlite_url, tmp_path, telegram_driver="ptb") as shop:
        yield shop


async def test_the_owner_s_own_contact_binds_the_chat_and_opens_the_device(shop: Shop):
    site = SiteFields("100 Nanjing East Road", SHOP[0], SHOP[1], "Huangpu", "Roof")
    await shop.container.bus.run("test", c.RegisterDevice(PHONE, "Zhang Wei", "en", site, DeviceFields("aircon", "Rooftop unit", "Daikin", "RZQ", "DK-1", location="roof")))
    [device] = await shop.rows(select(tables.devices))
    async with shop.container.sessions() as session, session.begin():
        code = await DeviceStore(Store(session)).code(DEVICE, device["id"], shop.clock.now())

    since = shop.mark()
    shop.say(OWNER, f"/start {code}", token=CUSTOMER)
    private = await shop.expect(OWNER, "details stay private", since)
    assert "Zhang Wei" not in private["text"] and PHONE not in private["text"]
    since = shop.mark()
    shop.press(OWNER, private, "It's mine: confirm with my phone number", token=CUSTOMER)
    share = await shop.expect(OWNER, "share your own number", since)
    assert share["reply_markup"]["keyboard"][0][0]["request_contact"] is True

    since = shop.mark()
    shop.fake.contact_message(OWNER, "+86" + PHONE, contact_user_id=555, token=CUSTOMER)  # someone else's card
    await shop.expect(OWNER, "is not your own", since)
    assert await shop.rows(select(tables.chat_bindings).where(tables.chat_bindings.c.chat_id == str(OWNER))) == []

    since = shop.mark()
    shop.fake.contact_message(OWNER, "+86" + PHONE, token=CUSTOMER)  # their own: contact.user_id is the sender's
    confirmed = await shop.expect(OWNER, "Confirmed", since)
    since = shop.mark()
    shop.press(OWNER, confirmed, "Rooftop unit · roof", token=CUSTOMER)
    await shop.expect(OWNER, "Rooftop unit", since)
    assert len(await shop.rows(select(tables.chat_bindings).where(tables.chat_bindings.c.chat_id == str(OWNER)))) == 1
