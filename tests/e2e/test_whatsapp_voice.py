"""A repair request on WhatsApp with a voice note (issue 14): the "audio" message (voice: true) is fetched through the fake
Cloud API's two-step media download, checked as audio and bounded in size, and kept with the request like a photo;
a recording that is not audio, or one too large, is refused in words and nothing is stored."""

from __future__ import annotations

from urllib.parse import unquote

from sqlalchemy import select

from bots.channels import WHATSAPP
from storage import tables
from tests.e2e.test_whatsapp import shop_on_whatsapp  # noqa: F401 - the fixture: fieldchat serving the fake Cloud API

OGG = b"OggS\x00\x02" + bytes(300)  # a voice note's first page, as WhatsApp records them (OGG/Opus)


async def test_a_whatsapp_voice_note_is_fetched_checked_and_kept_with_the_repair_request(shop_on_whatsapp):  # noqa: F811
    shop, customer, fake = shop_on_whatsapp
    order = await shop.order()
    link = shop.container.channels.deep_link(WHATSAPP, "customer", order.customer_token)
    assert link is not None
    prefilled = link.split("text=", 1)[1]
    since = customer.mark()
    await customer.say(unquote(prefilled))
    await customer.expect("Here is your order.", since)

    since = customer.mark()
    await customer.say("/new")
    await customer.expect("Which product needs a repair?", since)
    since = customer.mark()
    await customer.say("washing machine")
    await customer.expect("What is wrong with your washing machine?", since)
    since = customer.mark()
    await customer.say("It does not spin")
    await customer.expect("or a voice note, then press Done", since)

    # not audio at all (a renamed file), then one claimed larger than the limit: refused in words, nothing kept
    since = customer.mark()
    await customer._deliver(fake.audio(customer.wa_id, b"%PDF-1.4 not a recording" + bytes(100)))
    await customer.expect("That recording could not be played", since)
    since = customer.mark()
    await customer._deliver(fake.audio(customer.wa_id, OGG, claimed_size=64 * 1024 * 1024))
    await customer.expect("too large", since)

    since = customer.mark()
    await customer._deliver(fake.audio(customer.wa_id, OGG))
    kept = await customer.expect("Voice note kept.", since)
    since = customer.mark()
    await customer.press(kept, "Done")
    urgency = await customer.expect("How urgent is it?", since)
    since = customer.mark()
    await customer.press(urgency, "Urgent")
    await customer.expect("Your urgent repair request is order #", since)

    rows = await shop.rows(select(tables.photos).where(tables.photos.c.purpose == "voice"))
    assert len(rows) == 1 and rows[0]["platform"] == "whatsapp" and rows[0]["path"].endswith(".ogg")
    with open(rows[0]["path"], "rb") as stored:
        assert stored.read() == OGG  # the checked copy, whole
    [job] = await shop.rows(select(tables.jobs).where(tables.jobs.c.source == "chat"))
    assert "🎤 × 1" in job["notes"] and "It does not spin" in job["notes"]
