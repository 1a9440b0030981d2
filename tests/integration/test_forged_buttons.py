"""Forged and out-of-range button data through the engine: a stale-button answer or a refusal, never a failed update."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from storage import tables
from tests.support.harness import World, keys

BIG = str(2**63)
HUGE = str(2**70)


async def _failed_updates(world: World) -> int:
    async with world.container.sessions() as session:
        query = select(func.count()).select_from(tables.inbox).where(tables.inbox.c.status != "processed")
        return await session.scalar(query)


async def test_out_of_range_numbers_in_group_buttons_are_answered_and_strangers_are_refused_first(database_url, tmp_path, caplog):
    world = await World.create(database_url, tmp_path)
    try:
        group = world.chat("staff", "-1001", chat_type="group", user_id="dora")
        await group.send(f"/start {await world.dispatcher()}")
        await group.send(f"/start {await world.group()}")
        await group.inbox()
        caplog.set_level(logging.WARNING)

        # a group member who is not a dispatcher: refused before anything is looked up
        for data in (f"xa:{BIG}", f"xr:{BIG}", f"xt:{BIG}:{BIG}", f"xc:{HUGE}", f"sr:{BIG}", f"sc:{BIG}", "xa:-1", "xa:1e9"):
            assert keys(await group.press(data, user_id="stranger")) == ["dispatcher.not_allowed"], data

        # the dispatcher, with ids no record can have
        answers = {}
        for data in (f"xa:{BIG}", f"xr:{BIG}", f"xt:1:{BIG}", f"xc:{BIG}", f"xcy:{BIG}", f"ra:{BIG}",
                     f"as:{BIG}:1", f"as:1:{BIG}", f"sr:{BIG}", f"sx:{BIG}:accept", f"sc:{BIG}", "xa:", "as:x:y"):
            answers[data] = keys(await group.press(data))
        assert all(len(k) == 1 and k[0] in ("hint.stale_button", "dispatcher.already_handled") or k[0].startswith("error.")
                   for k in answers.values()), answers
        assert "error.internal" not in {k[0] for k in answers.values()}
        assert await _failed_updates(world) == 0
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await world.close()


async def test_forged_slot_buttons_cannot_book_outside_the_shops_windows(database_url, tmp_path, caplog):
    world = await World.create(database_url, tmp_path)
    try:
        await world.technician("Wang", ["driver"])
        order = await world.order(services=("delivery",))
        customer = world.chat("customer", "c1")
        offered = await customer.send(f"/start {order.customer_token}")
        visit = order.visits[0].id
        real = next(m for m in offered if m.key == "customer.choose_slot").buttons[0][1]
        _, _, start, end = real.split(":")
        caplog.set_level(logging.WARNING)

        assert keys(await customer.press(f"sl:{visit}:{BIG}:{BIG}")) == ["hint.stale_button"]
        assert keys(await customer.press(f"sl:{BIG}:{start}:{end}")) == ["hint.stale_button"]
        night = datetime.fromtimestamp(int(start), world.container.policy.tz).replace(hour=3, minute=0)
        week = int(start) + 7 * 86400 * 3  # one of the windows, but weeks beyond the booking horizon
        for forged in (
            f"sl:{visit}:{int(night.timestamp())}:{int((night + timedelta(hours=20)).timestamp())}",
            f"sl:{visit}:{week}:{int(end) + 7 * 86400 * 3}",
            f"sl:{visit}:{end}:{start}",
            f"sl:{visit}:{2**31}:{2**31 + 7200}",
        ):
            assert keys(await customer.press(forged)) == ["error.slot_invalid"], forged
        # the real button still books
        assert keys(await customer.press(real))[0] == "customer.booked"
        assert await _failed_updates(world) == 0
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await world.close()
