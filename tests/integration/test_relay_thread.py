"""Relay threads: what a customer (or technician) types that no step understands reaches a person, whose answer comes back
through the bot, phones masked both ways, photos along, persisted and on the job's timeline."""

from __future__ import annotations

import pytest

from conversations import understanding
from conversations.flows import customer as customer_flow
from conversations.understanding import Intent, Understood
from tests.support.harness import World, keys
from tests.support.setups import booked_and_accepted, staff
from tests.support.telegram import CUSTOMER, CUSTOMER_CHAT, DISPATCHER_USER, GROUP, STAFF, inline_buttons, running

# what the parser is asked to say about the texts of these tests (it is tested on its own corpus elsewhere)
MEANING = {"I want to talk to a person": Intent.HUMAN, "The driver was rude": Intent.COMPLAINT}


@pytest.fixture(autouse=True)
def fixed_understanding(monkeypatch):
    def understand(text, role, now, language=None):
        return Understood(MEANING.get(text, Intent.UNKNOWN))

    monkeypatch.setattr(customer_flow, "UNDERSTAND", understand)
    monkeypatch.setattr(understanding, "understand", understand)


async def test_a_customer_question_nobody_understood_reaches_the_assigned_technician_and_the_answer_comes_back(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    await driver.inbox()
    # today: the bare "use the buttons" hint, and the text thrown away
    sent = await customer.send("Can you also take the old sofa away? My wife's number is 13812345678")
    assert keys(sent) == ["relay.sent_customer"] and sent[0].has_button("thx")

    forwarded = await driver.inbox()
    assert keys(forwarded) == ["relay.to_technician"]
    shown = forwarded[0].params["text"]["params"]["text"]
    assert "13812345678" not in shown and "138****5678" in shown  # masked on the way to the technician
    assert await group.inbox() == []  # a question about the visit goes to its technician, not the group

    prompt = await driver.press(forwarded[0].button("th"))
    assert keys(prompt) == ["relay.answer_prompt"] and prompt[0].request == "reply"
    assert keys(await driver.send("Yes, 10 yuan extra. Call me on 13900001111")) == ["relay.answer_sent"]

    answer = await customer.inbox()
    assert keys(answer) == ["relay.answer_from_technician"]
    text = answer[0].params["text"]["params"]["text"]
    assert "13900001111" not in text and "139****1111" in text  # masked on the way back too
    assert answer[0].has_button("thw") and answer[0].has_button("thx")

    timeline = [e["type"] for e in (await world.job(order.job.id))["timeline"]]
    assert timeline[-2:] == ["MessageRelayed", "ThreadAnswered"]


async def test_talk_to_a_person_goes_to_the_dispatchers_and_only_a_dispatcher_may_answer_from_the_group(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    await group.inbox()
    assert keys(await customer.send("I want to talk to a person")) == ["relay.sent_customer"]
    assert await driver.inbox() == []
    alert = await group.inbox()
    assert keys(alert) == ["relay.to_group_from_customer"]
    assert alert[0].params["customer"]["params"]["text"] == "Z**"  # many read a group: the name masked
    assert alert[0].params["topic"]["key"] == "relay.topic_human"

    assert keys(await group.press(alert[0].button("th"), user_id="bystander")) == ["dispatcher.not_allowed"]
    assert keys(await group.press(alert[0].button("th"))) == ["relay.answer_prompt"]
    # someone else talking in the group meanwhile is not the answer
    assert await group.send("lunch anyone?", user_id="bystander") == []
    assert await customer.inbox() == []
    assert keys(await group.send("We will call you within the hour.")) == ["relay.answer_sent"]
    assert keys(await customer.inbox()) == ["relay.answer_from_team"]


async def test_a_complaint_goes_to_the_dispatchers_even_while_a_technician_has_the_visit(world: World):
    _order, customer, driver, group = await booked_and_accepted(world)
    await group.inbox()
    await driver.inbox()
    await customer.send("The driver was rude")
    assert await driver.inbox() == []
    alert = await group.inbox()
    assert alert[0].params["topic"]["key"] == "relay.topic_complaint"


async def test_photos_and_further_texts_while_talking_join_the_same_thread_until_done(world: World):
    _order, customer, driver, _group = await booked_and_accepted(world)
    await driver.inbox()
    await customer.send("Where should I leave the parcel?")
    picture = world.media / "doorway.jpg"
    picture.write_bytes(b"\xff\xd8 jpeg")
    assert keys(await customer.photo(picture)) == ["relay.added"]
    assert keys(await customer.send("This is the doorway")) == ["relay.added"]
    forwarded = await driver.inbox()
    assert keys(forwarded) == ["relay.to_technician"] * 3
    assert len({m.button("th") for m in forwarded}) == 1  # one thread
    assert [p["path"] for p in forwarded[1].payload["album"]] == [str(picture)]

    assert keys(await customer.press("thx")) == ["relay.done"]
    await customer.send("One more thing")
    again = await driver.inbox()
    assert again[0].button("th") != forwarded[0].button("th")  # after Done a new thread starts


async def test_a_technicians_text_nobody_understood_reaches_the_dispatchers_and_their_answer_the_technician(world: World):
    _order, _customer, driver, group = await booked_and_accepted(world)
    await group.inbox()
    await driver.inbox()
    assert keys(await driver.send("The lift is broken, can I use the stairs with the sofa?")) == ["relay.sent_technician"]
    alert = await group.inbox()
    assert keys(alert) == ["relay.to_group_from_technician"]
    await group.press(alert[0].button("th"))
    await group.send("Yes, go ahead")
    assert keys(await driver.inbox()) == ["relay.answer_to_technician"]


async def test_another_technician_cannot_answer_a_thread_that_is_not_theirs(world: World):
    _order, customer, driver, _group = await booked_and_accepted(world)
    await driver.inbox()
    await customer.send("Is the sofa wrapped?")
    forwarded = await driver.inbox()
    _, other = await staff(world, "Li", ["driver"])
    await other.press(forwarded[0].button("th"))
    assert keys(await other.send("sure")) == ["error.relay_not_yours"]
    assert await customer.inbox() == []


async def test_a_thread_survives_a_restart(world: World, database_url, tmp_path):
    _order, customer, driver, _group = await booked_and_accepted(world)
    await driver.inbox()
    await customer.send("Please ring twice")
    forwarded = await driver.inbox()

    restarted = await World.create(database_url, tmp_path)
    try:
        driver_again = restarted.chat("staff", "driver")
        customer_again = restarted.chat("customer", "c")
        driver_again.seen, customer_again.seen = driver.seen, customer.seen
        await driver_again.press(forwarded[0].button("th"))
        assert keys(await driver_again.send("Will do")) == ["relay.answer_sent"]
        assert keys(await customer_again.inbox()) == ["relay.answer_from_technician"]
    finally:
        await restarted.close()


async def test_over_telegram_the_dispatcher_answers_as_a_reply_to_the_bots_prompt_and_the_customer_gets_it(fake_telegram, sqlite_url, tmp_path):
    # in a group with privacy mode the bot sees plain text only when it replies to the bot: the prompt forces a reply
    async with running(fake_telegram, sqlite_url, tmp_path) as shop:
        await shop.staff_and_group({})
        order = await shop.order()
        since = shop.mark()
        shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER, first_name="Zhang")
        await fake_telegram.wait_for_sent(lambda s: s["chat_id"] == str(CUSTOMER_CHAT), since=since)

        since = shop.mark()
        shop.say(CUSTOMER_CHAT, "I want to talk to a person", token=CUSTOMER, first_name="Zhang")
        forwarded = await shop.expect(GROUP, "asks for a person", since)
        assert "Zhang" not in forwarded["text"]

        since = shop.mark()
        shop.press(GROUP, forwarded["message"], "Reply", token=STAFF, user_id=DISPATCHER_USER, first_name="Dora")
        prompt = await shop.expect(GROUP, "Type your answer", since)
        assert prompt["reply_markup"] == {"force_reply": True}

        since = shop.mark()
        shop.say(GROUP, "We call you in ten minutes", token=STAFF, user_id=DISPATCHER_USER, first_name="Dora")
        answer = await shop.expect(CUSTOMER_CHAT, "We call you in ten minutes", since)
        assert answer["text"].startswith("💬 Our team answers")
        assert [b["text"] for b in inline_buttons(answer["message"])] == ["↩️ Reply", "✅ Done"]
