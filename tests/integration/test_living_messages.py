"""Living messages: cards edited in place over the fake Bot API, one message per action in the dialogues (issue 10, part 8)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from bots.channels import PlatformLimits
from domain.clock import SystemClock
from scheduler.ratelimit import SendLimiter
from services.messages import InboundKind
from storage import tables
from storage.repository import Store
from tests.support.harness import World, keys
from tests.support.relay import drain, outbox
from tests.support.setups import booked_and_accepted
from tests.support.telegram import STAFF

CHAT = "1001"


def unlimited() -> SendLimiter:
    """No send rates: these cards go to one chat, and Telegram's one message a second there would only make the tests
    wait (the rates have their own tests in test_relay.py)."""
    return SendLimiter({"telegram": PlatformLimits()})


def card_payload(text: str, *, card: str, buttons: list[tuple[str, str]] = (), purpose: str = "assignment", answers: str | None = None) -> dict:
    payload = {
        "text": {"key": "=", "params": {"text": text}},
        "buttons": [[{"label": {"key": "=", "params": {"text": label}}, "data": data} for label, data in buttons]] if buttons else [],
        "language": "en", "purpose": purpose, "card": card,
    }
    if answers is not None:
        payload["answers"] = answers
    return payload


async def add(sessions, key: str, payload: dict, chat_id: str = CHAT) -> None:
    async with sessions() as session, session.begin():
        await Store(session).outbox_add(platform="telegram", bot="staff", chat_id=chat_id, payload=payload, dedup_key=key,
                                        now=SystemClock().now(), card=payload.get("card"))


def calls(fake, method: str) -> list:
    return [c for c in fake.calls if c.method == method and c.status == 200]


async def test_news_about_a_card_edits_it_in_place_and_takes_its_buttons_away(sqlite_db, relays, fake_telegram):
    relay = relays(sqlite_db, limiter=unlimited())
    await add(sqlite_db, "a", card_payload("Offer #7", card="offer:7", buttons=[("Accept", "acc:7"), ("Decline", "dec:7")]))
    await drain(relay)
    first = (await outbox(sqlite_db))[0]
    await add(sqlite_db, "b", card_payload("Visit #7 was taken by another technician.", card="offer:7"))
    await drain(relay)
    assert len(calls(fake_telegram, "sendMessage")) == 1  # before: a second message, and the first kept Accept / Decline
    [edit] = calls(fake_telegram, "editMessageText")
    assert str(edit.params["message_id"]) == first["platform_message_id"]
    shown = fake_telegram.message(STAFF, CHAT, int(first["platform_message_id"]))
    assert shown["text"] == "Visit #7 was taken by another technician." and "reply_markup" not in shown
    rows = await outbox(sqlite_db)
    assert [r["status"] for r in rows] == ["sent", "sent"] and rows[1]["platform_message_id"] == first["platform_message_id"]


async def test_an_answer_pressed_on_the_card_edits_it_and_one_pressed_elsewhere_is_new_and_retires_the_old_copy(
    sqlite_db, relays, fake_telegram
):
    relay = relays(sqlite_db, limiter=unlimited())
    await add(sqlite_db, "a", card_payload("Offer #8", card="offer:8", buttons=[("Accept", "acc:8")]))
    await drain(relay)
    shown = (await outbox(sqlite_db))[0]["platform_message_id"]
    # pressed on the card itself: the answer takes its place
    await add(sqlite_db, "b", card_payload("Accepted #8", card="offer:8", buttons=[("On my way", "go:8")], purpose="reply", answers=shown))
    await drain(relay)
    assert len(calls(fake_telegram, "sendMessage")) == 1 and len(calls(fake_telegram, "editMessageText")) == 1
    # pressed on another message (a /today list): the answer appears where the reader looks, and the card's old copy
    # loses its buttons, so only one copy can be pressed
    await add(sqlite_db, "c", card_payload("Declined #8", card="offer:8", buttons=[("Undo", "acc:8")], purpose="reply", answers="999"))
    await drain(relay)
    assert len(calls(fake_telegram, "sendMessage")) == 2
    [cleared] = calls(fake_telegram, "editMessageReplyMarkup")
    assert str(cleared.params["message_id"]) == shown
    assert "reply_markup" not in fake_telegram.message(STAFF, CHAT, int(shown))
    # a typed command's answer is new too (an edit far up the chat would go unseen)
    await add(sqlite_db, "d", card_payload("Offer #8 status", card="offer:8", purpose="reply"))
    await drain(relay)
    assert len(calls(fake_telegram, "sendMessage")) == 3


async def test_a_card_whose_message_is_gone_is_sent_anew_and_the_same_text_again_is_no_error(sqlite_db, relays, fake_telegram):
    relay = relays(sqlite_db, limiter=unlimited())
    await add(sqlite_db, "a", card_payload("Alert #3", card="exception:3", buttons=[("Acknowledge", "xa:3")]))
    await drain(relay)
    await add(sqlite_db, "b", card_payload("Alert #3", card="exception:3", buttons=[("Acknowledge", "xa:3")]))
    await drain(relay)
    # Telegram answers 400 "message is not modified" to an identical edit: the card already shows it
    assert [r["status"] for r in await outbox(sqlite_db)] == ["sent", "sent"]
    assert any(c.method == "editMessageText" and c.status == 400 for c in fake_telegram.calls)
    async with sqlite_db() as session, session.begin():  # the message was deleted in the chat
        await session.execute(update(tables.outbox).values(platform_message_id="4242"))
    await add(sqlite_db, "c", card_payload("Alert #3: acknowledged", card="exception:3"))
    await drain(relay)
    rows = await outbox(sqlite_db)
    assert rows[-1]["status"] == "sent" and len(calls(fake_telegram, "sendMessage")) == 2


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


async def test_opening_the_link_and_booking_each_answer_in_one_message(world: World):
    order = await world.order()
    customer = world.chat("customer", "c1")
    welcome = await customer.send(f"/start {order.customer_token}")
    # before: welcome, order summary and the time question as three messages, each waiting its turn at the chat's rate
    assert len(welcome) == 1 and keys(welcome)[:2] == ["customer.welcome", "customer.order_summary"]
    assert welcome[0].payload["card"] == f"order:{order.job.id}"


async def test_losing_and_accepting_offers_and_acknowledging_an_alert_change_their_cards(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"rp:{visit.id}")
    await driver.press(f"rr:{visit.id}:customer_unreachable")
    await driver.press("rskip")
    await driver.press("rsend")
    alert = (await group.inbox())[-1]
    assert alert.payload["card"].startswith("exception:")
    answer = await group.press(alert.button("xa"))
    [card] = [m for m in answer if m.payload.get("card") == alert.payload["card"]]
    assert not card.has_button("xa") and card.has_button("xr")  # Acknowledge cannot be pressed twice


async def test_the_technicians_answer_to_an_offer_is_its_card(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    async with world.container.sessions() as session:
        rows = await Store(session).outbox_for_chat(driver.ref.platform, driver.ref.bot, driver.ref.chat_id, 0)
    cards = {r["payload"]["text"]["key"]: r["payload"].get("card") for r in rows}
    visit = order.visits[0]
    assert cards["tech.offer"] == cards["tech.accepted"] == f"offer:{visit.id}"
    # the engine marks an answer to a press with the pressed message, so the relay edits only that very card
    await world.container.engine.handle(driver.event(InboundKind.BUTTON, text=f"go:{visit.id}", message_id="77"))
    # On my way's answer is the offer's card too: it asks for a location, so the relay sends it anew and takes the
    # pressed copy's buttons away (tests/integration/test_walk_findings.py)
    [going] = await driver.inbox()
    assert (going.payload["card"], going.payload["answers"], going.payload["request"]) == (f"offer:{visit.id}", "77", "location")


async def test_a_change_to_an_alert_card_edits_it_even_when_alerts_queue_for_a_digest(sqlite_db, relays, fake_telegram):
    relay = relays(sqlite_db, limiter=unlimited())
    group = "-5001"
    alert = card_payload("Problem #3", card="exception:3", buttons=[("Acknowledge", "xa:3")], purpose="alert")
    alert["alert"] = True
    await add(sqlite_db, "a", alert, chat_id=group)
    await drain(relay)
    shown = (await outbox(sqlite_db, group))[0]["platform_message_id"]
    acknowledged = {**card_payload("Problem #3\n✅ Acknowledged by Dora", card="exception:3", purpose="alert"), "alert": True}
    other = {**card_payload("Problem #4", card="exception:4", purpose="alert"), "alert": True}
    await add(sqlite_db, "b", acknowledged, chat_id=group)
    await add(sqlite_db, "c", other, chat_id=group)
    async with sqlite_db() as session, session.begin():  # the group was busy: both queued behind its rate
        await session.execute(update(tables.outbox).where(tables.outbox.c.dedup_key.in_(["b", "c"])).values(held_since=SystemClock().now()))
    await drain(relay)
    [edit] = calls(fake_telegram, "editMessageText")
    assert str(edit.params["message_id"]) == shown and edit.params["text"].endswith("Acknowledged by Dora")
    assert [c.params["text"] for c in calls(fake_telegram, "sendMessage")] == ["Problem #3", "Problem #4"]
