"""Completion codes, the leftovers: what a technician typed as a code is blanked in the stored update once handled,
and the customer's /code gives them their current code again (only in their own chat, not too often), or says there
is none with the way on."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from domain.completion_codes import MAX_RESENDS
from storage import tables
from tests.integration.test_completion_codes import at_work, captured, code_in, visit_status, wrong  # noqa: F401 - fixture
from tests.support.harness import World, keys
from tests.support.setups import booked_and_accepted


@pytest.fixture
def world_settings() -> dict:
    return {"replan_seconds": 0.5, "completion_codes": "delivery"}


async def inbox_payloads(world: World, chat_id: str) -> list[dict]:
    async with world.container.sessions() as session:
        rows = (await session.execute(select(tables.inbox.c.payload, tables.inbox.c.status).where(tables.inbox.c.chat_id == chat_id))).all()
    return [dict(payload, status=status) for payload, status in rows]


async def test_a_typed_code_is_blanked_in_the_inbox_row_once_handled_wrong_or_right(world: World):
    order, _customer, driver, _group, code = await at_work(world)
    visit = order.visits[0]
    await driver.press(f"done:{visit.id}")
    assert keys(await driver.send(wrong(code))) == ["tech.code_wrong"]
    assert keys(await driver.send("12ab")) == ["tech.code_format"]  # not a code: no try, and nothing secret in it
    assert "tech.code_accepted" in keys(await driver.send(f"{code[:3]} {code[3:]}"))
    rows = await inbox_payloads(world, driver.ref.chat_id)
    typed = [row for row in rows if row["kind"] == "text"]
    assert [row["status"] for row in typed] == ["processed"] * 3  # the rows stay: a replay of either changes nothing
    assert [row["text"] for row in typed] == ["", "12ab", ""]
    dumped = json.dumps(rows)
    assert code not in dumped and wrong(code) not in dumped and f"{code[:3]} {code[3:]}" not in dumped
    assert await visit_status(world, visit.id) == "completed"


async def test_code_gives_the_customer_their_code_again_and_the_old_one_stops_working(world: World, captured):  # noqa: F811
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    await customer.inbox()  # "arrived", from the check-in
    world.clock.advance(timedelta(minutes=2))
    again = await customer.send("/code")
    fresh = code_in(again)
    assert [m.key for m in again] == ["customer.completion_code_new"] and again[0].has_button("ccn")
    # asked again at once: the code is just above, nothing new is made
    repeat = await customer.send("/code")
    assert keys(repeat) == ["error.completion_code_just_sent"]
    await driver.press(f"done:{visit.id}")
    if fresh != code:
        assert keys(await driver.send(code)) == ["tech.code_wrong"]
    assert "tech.code_accepted" in keys(await driver.send(fresh))
    # the visit is done: no code waits any more, and the answer says what comes instead
    await customer.inbox()  # "completed", and the items to tick
    assert keys(await customer.send("/code")) == ["error.completion_code_none"]
    for message in await group.inbox():
        assert fresh not in str(message.payload)
    assert fresh not in captured.getvalue()


async def test_code_before_the_technician_sets_off_or_in_a_group_or_too_often_says_why(world: World):
    order, customer, _driver, _group = await booked_and_accepted(world)
    assert keys(await customer.send("/code")) == ["error.completion_code_none"]  # accepted, but nobody set off yet
    in_group = world.chat("customer", "family-group", chat_type="group")
    assert keys(await in_group.send("/code")) == ["customer.code_private_only"]
    stranger = world.chat("customer", "stranger")
    assert keys(await stranger.send("/code")) == ["customer.hint_new"]
    # on the way: a code waits; past the new codes a visit allows, a dispatcher has to send one
    visit = order.visits[0]
    await _driver.press(f"go:{visit.id}")
    await customer.inbox()
    async with world.container.sessions() as session, session.begin():
        await session.execute(update(tables.completion_codes).values(resends=MAX_RESENDS))
    world.clock.advance(timedelta(minutes=2))
    assert keys(await customer.send("/code")) == ["error.completion_code_resend_limit"]


async def test_help_tells_the_customer_about_code(world: World):
    _order, customer, _driver, _group = await booked_and_accepted(world)
    assert "customer.help_code" in keys(await customer.send("/help"))
