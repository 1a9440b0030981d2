"""What a new user's walk through the demo console found: each case as that user met it."""

from __future__ import annotations

from datetime import date

import pytest

from tests.integration.test_customer_paths import book_on, shop
from tests.integration.test_living_messages import CHAT, add, calls, card_payload
from tests.support.harness import World, keys
from tests.support.relay import drain, outbox
from tests.support.setups import booked_and_accepted, visit_row
from tests.support.telegram import STAFF


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


async def test_a_typed_move_of_the_delivery_past_its_installation_asks_before_anything_moves(world: World):
    """Seen: "can you come Friday instead?" proposed moving only the delivery, past its installation."""
    await shop(world)
    order = await world.order(services=("delivery", "installation"))
    delivery, installation = (v.id for v in order.visits)
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await book_on(customer, delivery, date(2026, 11, 25))
    install_old = await book_on(customer, installation, date(2026, 11, 25))
    await customer.inbox()
    proposal = await customer.send("can you come Friday instead?")  # the real parser: Fri 27 Nov
    assert keys(proposal) == ["customer.propose_move"]
    asked = await customer.press(proposal[0].button("sl"))
    assert keys(asked) == ["customer.dependant_must_move"]
    assert asked[0].has_button("mb") and asked[0].has_button("kb")
    assert (await visit_row(world, delivery)).slot_start.day == 25  # nothing moved yet
    installed = await visit_row(world, installation)
    assert (installed.slot_start, installed.slot_end) == install_old


async def test_a_cards_later_copy_that_asks_for_a_location_is_new_and_the_old_copy_loses_its_buttons(sqlite_db, relays, fake_telegram):
    """Seen: a card sent anew because it carries a request (or a photo, an album) left its older copy pressable."""
    relay = relays(sqlite_db)
    await add(sqlite_db, "a", card_payload("Offer #9", card="offer:9", buttons=[("On my way", "go:9")]))
    await drain(relay)
    shown = (await outbox(sqlite_db))[0]["platform_message_id"]
    asking = card_payload("Share your location at the door", card="offer:9", purpose="reply", answers=shown)
    asking["request"] = "location"
    await add(sqlite_db, "b", asking)
    await drain(relay)
    assert len(calls(fake_telegram, "sendMessage")) == 2 and not calls(fake_telegram, "editMessageText")
    [cleared] = calls(fake_telegram, "editMessageReplyMarkup")
    assert str(cleared.params["message_id"]) == shown
    assert "reply_markup" not in fake_telegram.message(STAFF, CHAT, int(shown))


async def test_on_my_way_retires_the_accepted_card_it_was_pressed_on(world: World):
    """Seen on the walk: the accepted card kept On my way after it was pressed (its answer asks for a location, so
    it is sent anew; as the card's later copy it takes the older copy's buttons away)."""
    order, _customer, driver, _group = await booked_and_accepted(world)
    visit = order.visits[0].id
    [answer] = await driver.press(f"go:{visit}")
    assert answer.payload["card"] == f"offer:{visit}" and answer.payload["request"] == "location"
    assert keys([answer]) == ["tech.en_route", "tech.share_location"]
