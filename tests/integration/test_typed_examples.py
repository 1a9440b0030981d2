"""The issue's own examples typed by a customer, through the engine with the real parser: each gets an answer that
moves them on (rendered in the chat's language), never the bare "use the buttons" hint with the text thrown away."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from conversations.i18n import render
from services.actions import decode
from tests.support.harness import Chat, World, keys
from tests.support.setups import booked_and_accepted, dispatch_group, staff

SHANGHAI = ZoneInfo("Asia/Shanghai")
# the hints a state gives when it did not understand: what these texts got before
BARE_HINTS = {"customer.hint_idle", "customer.hint_new"}


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


async def waiting_to_book(world: World) -> Chat:
    """A customer who opened their link (Monday morning) and has not booked the delivery yet."""
    await staff(world, "Wang", ["driver"])
    await dispatch_group(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    return customer


@pytest.mark.parametrize(("text", "day", "hours"), [
    ("can you come Friday instead?", date(2026, 11, 27), range(0, 24)),
    ("明天下午再来", date(2026, 11, 24), range(12, 19)),
    ("next Monday morning", date(2026, 11, 30), range(6, 12)),
])
async def test_a_day_in_words_is_proposed_as_a_time_on_that_day_with_buttons(world: World, text: str, day: date, hours: range):
    customer = await waiting_to_book(world)  # Monday 23 Nov, morning
    replies = await customer.send(text)
    assert keys(replies) == ["customer.propose_booking"], keys(replies)
    start = decode(replies[0].button("sl")).start.astimezone(SHANGHAI)
    assert start.date() == day and start.hour in hours, start


@pytest.mark.parametrize("text", ["师傅几点到", "the driver is late, where is he?"])
async def test_where_is_the_technician_is_answered(world: World, text: str):
    _order, customer, _driver, _group = await booked_and_accepted(world)
    replies = await customer.send(text)
    assert keys(replies)[0].startswith("customer.eta"), keys(replies)


@pytest.mark.parametrize("text", ["I want to talk to a person", "找人工", "asdf qwer"])
async def test_what_is_not_understood_or_asks_for_a_person_goes_to_people(world: World, text: str):
    _order, customer, _driver, group = await booked_and_accepted(world)
    replies = await customer.send(text)
    assert not BARE_HINTS & set(keys(replies)), keys(replies)
    assert any(key.startswith("relay.") for key in keys(replies)), keys(replies)


async def test_answers_are_rendered_in_the_chats_language():
    rendered = render({"text": {"key": "customer.eta_booked", "params": {}}}, "zh")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in rendered.text), rendered.text
