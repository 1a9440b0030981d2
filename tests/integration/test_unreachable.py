"""A chat that blocked the bot: the dispatchers hear of every open job it matters for, masked."""

from __future__ import annotations

import pytest

from services.handlers import chat_unreachable
from tests.support.harness import World, keys
from tests.support.setups import booked_and_accepted


@pytest.fixture
def database_url(sqlite_url) -> str:
    """These dialogues run on SQLite only."""
    return sqlite_url


async def test_a_customer_or_technician_who_blocked_the_bot_is_reported_to_the_group(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    await group.inbox()
    bus = world.container.bus
    await bus.run("test:1", lambda ctx: chat_unreachable(ctx, "web", "customer", customer.ref.chat_id, "blocked"))
    alert = await group.inbox()
    assert keys(alert) == ["group.customer_unreachable"] and alert[0].params["phone"] == "139****5678"
    await bus.run("test:2", lambda ctx: chat_unreachable(ctx, "web", "staff", driver.ref.chat_id, "blocked"))
    assert keys(await group.inbox()) == ["group.technician_unreachable"]
    # a chat that is nobody's changes nothing
    assert await bus.run("test:3", lambda ctx: chat_unreachable(ctx, "web", "customer", "nobody", "blocked")) == []
