"""Gaps on the customer's side after issue 10: a photo sent while idle reaches people, a reopened job's link works again,
the day picker fits the channel's buttons, and a customer's contact change is forwarded only as one."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bots.channels import CAPABILITIES, TELEGRAM, WHATSAPP
from conversations import understanding
from conversations.flow import StepInput
from conversations.flows import customer as customer_flow
from conversations.flows.customer import CUSTOMER_FLOW
from conversations.understanding import Intent, Understood
from domain import commands as c
from domain.policy import ServicePolicy
from services.actions import MoreDays, PickDay, PickSlot, decode, encode
from services.messages import InboundKind
from tests.support.harness import World, keys
from tests.support.photos import photo_bytes
from tests.support.setups import booked_and_accepted, dispatch_group
from tests.unit.test_customer_paths import NOW, delivery, event, view_of


@pytest.fixture
def nothing_understood(monkeypatch):
    """Every text reads as not understood, so what happens does not hang on the parser (it has its own corpus)."""
    def understand(text, role, now, language=None):
        return Understood(Intent.UNKNOWN)

    monkeypatch.setattr(customer_flow, "UNDERSTAND", understand)
    monkeypatch.setattr(understanding, "understand", understand)


# --- 1. a photo sent while no step asks for one ------------------------------------------------------------


async def _upload(world: World, customer, data: bytes, caption: str = ""):
    """A photo as the web console hands it over: staged bytes the engine fetches and checks only if the state takes it."""
    file_id = world.container.web_uploads.stage(data)
    return await customer.deliver(customer.event(InboundKind.PHOTO, file_id=file_id, text=caption))


async def test_a_photo_sent_while_idle_is_checked_stored_and_relayed_to_the_assigned_technician(world: World, nothing_understood):
    order, customer, driver, group = await booked_and_accepted(world)
    await driver.inbox()
    await group.inbox()
    sent = await _upload(world, customer, photo_bytes(), caption="the scratch on the door frame")
    assert keys(sent) == ["relay.sent_customer"] and sent[0].has_button("thx")
    forwarded = await driver.inbox()
    assert keys(forwarded) == ["relay.to_technician"]
    album = forwarded[0].payload["album"]
    assert len(album) == 1 and album[0]["path"].startswith(str(world.container.settings.media_dir))  # the checked copy
    assert forwarded[0].params["text"]["params"]["text"] == "the scratch on the door frame"
    assert await group.inbox() == []
    # the photo joined the thread: what the customer writes next goes to the same one
    assert keys(await customer.send("and the hallway")) == ["relay.added"]
    assert (await driver.inbox())[0].button("th") == forwarded[0].button("th")
    timeline = [e["type"] for e in (await world.job(order.job.id))["timeline"]]
    assert timeline[-2:] == ["MessageRelayed", "MessageRelayed"]


async def test_a_photo_sent_before_a_technician_has_the_visit_goes_to_the_dispatchers(world: World, nothing_understood):
    group = await dispatch_group(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await customer.send("/cancel")  # idle, with nothing booked
    await customer.inbox()
    assert keys(await _upload(world, customer, photo_bytes("PNG"))) == ["relay.sent_customer"]
    alert = await group.inbox()
    assert keys(alert) == ["relay.to_group_from_customer"] and len(alert[0].payload["album"]) == 1


async def test_a_photo_that_fails_the_checks_is_refused_while_idle_and_nothing_is_relayed(world: World, nothing_understood):
    _order, customer, driver, _group = await booked_and_accepted(world)
    await driver.inbox()
    assert keys(await _upload(world, customer, b"%PDF-1.4 not a photo")) == ["photo.not_image"]
    assert await driver.inbox() == []
    # still idle: the next photo is relayed
    assert keys(await _upload(world, customer, photo_bytes())) == ["relay.sent_customer"]


# --- 2. a reopened job's customer link -----------------------------------------------------------------------


async def test_reopening_a_closed_job_makes_its_customer_link_work_again_until_it_closes_again(database_url, tmp_path):
    world = await World.create(database_url, tmp_path, customer_link_grace_days=2)
    try:
        order = await world.order("SO-11", services=("delivery",))
        job_id = order.job.id
        await world.container.bus.run("test:close", c.CloseJob(job_id, "customer moved abroad", None))
        world.clock.advance(timedelta(days=2, minutes=1))
        assert keys(await world.chat("customer", "c1").send(f"/start {order.customer_token}")) == ["error.link_expired"]

        await world.container.bus.run("test:reopen", c.ReopenJob(job_id, "customer is back", None))
        world.clock.advance(timedelta(days=5))  # longer than the grace: an open job's link lives as long as it is open
        again = await world.order("SO-11", services=("delivery",))
        assert again.customer_token == order.customer_token  # the link handed out works again, unused meanwhile

        await world.container.bus.run("test:close-again", c.CloseJob(job_id, "done after all", None))
        world.clock.advance(timedelta(days=2, minutes=1))  # and expires a grace after the job closes again
        assert keys(await world.chat("customer", "c2").send(f"/start {order.customer_token}")) == ["error.link_expired"]

        await world.container.bus.run("test:reopen-again", c.ReopenJob(job_id, "one more complaint", None))
        assert keys(await world.chat("customer", "c3").send(f"/start {order.customer_token}"))[0] == "customer.welcome"
    finally:
        await world.close()


# --- 3. the day picker fits the channel's buttons --------------------------------------------------------------


def _pick(platform: str, action) -> list:
    inp = StepInput(event(InboundKind.BUTTON, encode(action)), "idle", {}, view_of(delivery()), NOW, "en",
                    ServicePolicy(), max_buttons=CAPABILITIES[platform].max_buttons)
    result = CUSTOMER_FLOW.step(inp)
    assert len(result.replies) == 1
    return [[decode(b.data) for b in row] for row in result.replies[0].buttons]


@pytest.mark.parametrize("platform", [TELEGRAM, WHATSAPP])
def test_every_page_of_the_day_picker_fits_the_channels_buttons_and_together_they_offer_every_day(platform):
    limit = CAPABILITIES[platform].max_buttons
    rows = _pick(platform, customer_flow.Book(11))
    pages, days, seen = [rows], [], 0
    while True:
        shown = [a for row in pages[-1] for a in row]
        assert len(shown) <= limit
        days += sorted({a.start.astimezone(ServicePolicy().tz).date() for a in shown if isinstance(a, PickSlot)})
        days += [a.day for a in shown if isinstance(a, PickDay)]
        later = [a for a in shown if isinstance(a, MoreDays) and a.page > seen]
        if not later:
            break
        seen = later[0].page
        pages.append(_pick(platform, later[0]))
    assert days == [date(2026, 11, d) for d in range(23, 31)]  # the whole horizon, each day once, in order
    if platform == TELEGRAM:  # room enough: the first day's times at once and six days a page, as before
        assert len(pages) == 2 and any(isinstance(a, PickSlot) for a in rows[0])
    else:  # ten a page (a WhatsApp list message): the days still take more than one
        assert len(pages) >= 2


async def test_the_engine_gives_a_step_the_buttons_of_the_channel_the_customer_writes_on(world: World):
    await world.technician("Wang", ["driver"])  # someone to come, so there are times to offer
    on_whatsapp, on_web = world.chat("customer", "wa-1", platform=WHATSAPP), world.chat("customer", "web-1")
    narrow = (await on_whatsapp.send(f"/start {(await world.order('SO-1', services=('delivery',))).customer_token}"))[-1]
    wide = (await on_web.send(f"/start {(await world.order('SO-2', services=('delivery',))).customer_token}"))[-1]
    # at most ten on WhatsApp (one list message); the page of days is cut to fit (the day picker test above pages it)
    assert 1 < len(narrow.buttons) <= CAPABILITIES[WHATSAPP].max_buttons
    assert wide.key == "customer.choose_slot" and len([b for b in wide.buttons if b[1].startswith("bd:")]) == 6


# --- 5. what is forwarded to dispatchers outside a relay thread ------------------------------------------------


@pytest.mark.parametrize("topic", ["human", "complaint", "unknown"])
def test_only_a_contact_or_address_change_is_forwarded_outside_a_relay_thread(topic):
    assert c.ForwardCustomerText(7, 5, None, "change_contact", "new phone 13800001111").topic == "change_contact"
    with pytest.raises(ValueError):
        c.ForwardCustomerText(7, 5, None, topic, "a person please")  # these go to a relay thread (RelayToPeople)


# --- 4. what a customer means by a question that names a day, and by a phone number ---------------------------

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize("text, intent", [
    ("明天来吗", Intent.ETA),  # a question about the visit, not a wish to move it
    ("will you come tomorrow?", Intent.ETA),
    ("is the delivery still on for tomorrow?", Intent.ETA),
    ("where is my sofa, it was due today", Intent.ETA),
    ("明天能来吗？今天家里没人", Intent.RESCHEDULE),  # asking for a day is a request
    ("can you come tomorrow instead?", Intent.RESCHEDULE),
    ("13912345678", Intent.CHANGE_CONTACT),  # a number sent alone is given to be used
    ("my new number is 13912345678", Intent.CHANGE_CONTACT),
    ("your driver called me from 13800001111 and was really rude", Intent.COMPLAINT),
    ("a 13812345678 number called me, was that your driver?", Intent.UNKNOWN),
    ("刚才13812345678给我打电话，是你们的师傅吗", Intent.UNKNOWN),
])
def test_a_question_naming_a_day_asks_when_and_a_number_mentioned_is_no_new_contact(text, intent):
    assert understanding.understand(text, "customer", FRIDAY).intent is intent


def test_the_day_not_meant_after_rather_than_is_left_out():
    meant = understanding.understand("could you come on Saturday morning rather than today", "customer", FRIDAY)
    assert (meant.intent, meant.date, meant.part_of_day) == (Intent.RESCHEDULE, date(2026, 11, 28), understanding.PartOfDay.MORNING)
