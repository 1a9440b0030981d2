"""Nothing lost, nothing doubled: replays, crashes before and after commit, failing steps, concurrent presses."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select

from bots.base import RetryLater, Undeliverable
from conversations.flows import customer as customer_flow
from services.messages import InboundKind, Rendered
from scheduler.relay import OutboxRelay
from scheduler.sweeps import forget_old_updates
from storage import tables
from storage.repository import Store
from tests.support.harness import World, keys
from tests.support.setups import DELIVERY_STEPS


async def count(world: World, table) -> int:
    async with world.container.sessions() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def events_named(world: World, name: str) -> int:
    async with world.container.sessions() as session:
        statement = select(func.count()).select_from(tables.domain_events).where(tables.domain_events.c.type == name)
        return (await session.execute(statement)).scalar_one()


class RecordingSender:
    """Stands in for a platform: records deliveries, optionally failing first."""

    def __init__(self, failures: list[Exception] | None = None, by_chat: dict[str, list[Exception]] | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.failures = list(failures or [])
        self.by_chat = by_chat or {}  # failures for one chat, whatever order the chats' sends race in

    async def send(self, bot: str, chat_id: str, message: Rendered) -> str:
        if self.by_chat.get(chat_id):
            raise self.by_chat[chat_id].pop(0)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((bot, chat_id, message.text))
        return str(len(self.sent))


async def test_a_replayed_update_changes_nothing(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    _, token = await world.technician("Wang", ["driver"])
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    press = customer.event(InboundKind.BUTTON, text=welcome[-1].buttons[0][1])
    first = await customer.deliver(press)
    assert keys(first) == ["customer.booked"]
    rows_before = await count(world, tables.outbox)
    again = await customer.deliver(press)
    assert again == []
    assert await count(world, tables.outbox) == rows_before
    assert await events_named(world, "VisitBooked") == 1
    assert await events_named(world, "OfferMade") == 1


async def test_an_update_stored_before_a_crash_is_processed_after_restart(world: World, database_url, tmp_path):
    order = await world.order()
    customer = world.chat("customer", "c")
    event = customer.event(InboundKind.COMMAND, text="start", payload=order.customer_token)
    # the adapter stored the update and acknowledged it, then the process died
    assert await world.container.engine.receive(event) is True
    await world.close()

    restarted = await World.create(database_url, tmp_path)
    try:
        assert await restarted.container.engine.process_pending() == 1
        customer.world = restarted
        assert keys(await customer.inbox())[:2] == ["customer.welcome", "customer.order_summary"]
        assert await restarted.container.engine.process_pending() == 0
    finally:
        await restarted.close()


async def test_messages_committed_before_a_crash_are_sent_once_after_restart(world: World, database_url, tmp_path):
    order = await world.order()
    customer = world.chat("customer", "42", platform="telegram")
    await world.container.engine.handle(customer.event(InboundKind.COMMAND, text="start", payload=order.customer_token))
    await world.container.engine.handle(customer.event(InboundKind.COMMAND, text="help"))
    written = len(await customer.inbox())
    # committed but never sent: the process died before its relay ran
    sender = RecordingSender()
    relay = OutboxRelay(sessions=world.container.sessions, senders={"telegram": sender}, clock=world.clock, tz=world.container.policy.tz)
    while await relay.drain_once():
        pass
    assert written >= 2 and [chat for _, chat, _ in sender.sent] == ["42"] * written
    assert sender.sent[0][2].startswith("Hello Zhang Wei")
    while await relay.drain_once():
        pass
    assert len(sender.sent) == written


async def test_the_relay_keeps_chat_order_through_transient_failures_and_drops_permanent_ones(world: World):
    order = await world.order()
    customer = world.chat("customer", "42", platform="telegram")
    await world.container.engine.handle(customer.event(InboundKind.COMMAND, text="start", payload=order.customer_token))
    await world.container.engine.handle(customer.event(InboundKind.COMMAND, text="help"))
    blocked = world.chat("customer", "43", platform="telegram")
    await world.container.engine.handle(blocked.event(InboundKind.TEXT, text="hi"))
    written = len(await customer.inbox())
    sender = RecordingSender(by_chat={"42": [RetryLater("429", seconds=3)], "43": [Undeliverable("blocked")]})
    relay = OutboxRelay(sessions=world.container.sessions, senders={"telegram": sender}, clock=world.clock, tz=world.container.policy.tz)
    await relay.drain_once()
    assert sender.sent == []  # chat 42 must wait 3 s; chat 43 blocked the bot
    await relay.drain_once()
    assert sender.sent == []
    world.clock.advance(timedelta(seconds=3))
    while await relay.drain_once():
        pass
    texts = [text for _, chat, text in sender.sent if chat == "42"]
    assert written >= 2 and len(texts) == written and texts[0].startswith("Hello")
    async with world.container.sessions() as session:
        counts = await Store(session).outbox_counts()
    assert counts == {"sent": written, "failed": 1}


async def test_a_step_that_fails_leaves_the_update_to_be_retried_and_finally_apologises(world: World, monkeypatch):
    order = await world.order()
    customer = world.chat("customer", "c")
    event = customer.event(InboundKind.COMMAND, text="start", payload=order.customer_token)
    calls = {"n": 0}
    original = customer_flow.on_start

    def flaky(inp):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug on first try")
        return original(inp)

    monkeypatch.setitem(customer_flow.CUSTOMER_FLOW.commands, "start", flaky)
    assert await customer.deliver(event) == []  # rolled back: no reply, no binding
    assert await world.container.engine.process_pending() == 1
    assert keys(await customer.inbox())[0] == "customer.welcome"

    def broken(inp):
        raise RuntimeError("always")

    monkeypatch.setitem(customer_flow.CUSTOMER_FLOW.commands, "status", broken)
    status = customer.event(InboundKind.COMMAND, text="status")
    await customer.deliver(status)
    await world.container.engine.process_pending()
    await world.container.engine.process_pending()
    assert keys(await customer.inbox()) == ["error.internal"]
    assert await world.container.engine.process_pending() == 0


async def test_two_presses_of_accept_at_once_accept_once(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "d")
    await driver.send(f"/start {token}")
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    await customer.press(welcome[-1].buttons[0][1])
    offer = (await driver.inbox())[-1]
    press = driver.event(InboundKind.BUTTON, text=offer.button("acc"))
    other = replace(press, update_id=press.update_id + "b")
    engine = world.container.engine
    await asyncio.gather(engine.handle(press), engine.handle(other))
    assert sorted(keys(await driver.inbox())) == ["tech.accepted", "tech.offer_gone"]
    assert await events_named(world, "VisitAccepted") == 1


async def test_two_customers_racing_for_the_last_free_slot_cannot_both_get_it(world: World):
    await world.template("installation", "sofa", DELIVERY_STEPS)
    _, token = await world.technician("Li", ["installer"], ["sofa"])
    chats, slots = [], []
    for n in range(2):
        order = await world.order(ref=f"SO-{n}", services=("installation",), phone=f"1391234567{n}")
        chat = world.chat("customer", f"c{n}")
        welcome = await chat.send(f"/start {order.customer_token}")
        chats.append(chat)
        slots.append(welcome[-1].buttons[0][1])
    # both saw the same free window; the 90-minute installations cannot both fit its two hours
    assert slots[0].split(":")[2:] == slots[1].split(":")[2:]
    presses = [chat.event(InboundKind.BUTTON, text=slot) for chat, slot in zip(chats, slots)]
    await asyncio.gather(*(world.container.engine.handle(p) for p in presses))
    outcomes = sorted(keys(await chats[0].inbox()) + keys(await chats[1].inbox()))
    assert outcomes == ["customer.booked", "error.slot_taken"]
    assert await events_named(world, "OfferMade") == 1


async def test_processed_updates_are_forgotten_after_two_days_so_a_reused_update_id_gets_through(world: World):
    now = world.clock.now()
    async with world.container.sessions() as session, session.begin():
        store = Store(session)
        for update_id, status, age in (("old", "processed", 3), ("failed", "failed", 3), ("recent", "processed", 1)):
            assert await store.inbox_add("telegram", "customer", update_id, "42", {}, now - timedelta(days=age))
            row = await store.inbox_row("telegram", "customer", update_id)
            await store.inbox_mark(row["id"], status, now - timedelta(days=age))
    assert await forget_old_updates(world.container.sessions, world.clock) == 1
    async with world.container.sessions() as session, session.begin():
        store = Store(session)
        # Telegram's ids restart at random after a week of silence: the old id is a new update now
        assert await store.inbox_add("telegram", "customer", "old", "42", {}, now)
        assert not await store.inbox_add("telegram", "customer", "recent", "42", {}, now)
        assert await store.inbox_row("telegram", "customer", "failed") is not None
