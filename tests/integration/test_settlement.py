"""Settlement as a shop lives it: a confirmed visit's fee is reviewed, then ready, then on the technician's monthly
statement in their chat; a complaint freezes it until a dispatcher releases it (after the period: into the month of the
release) or adjusts it; a per-order partner gets a statement per order; closing a month twice makes nothing new."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conversations.i18n import translate
from domain import commands as c
from domain.errors import DomainError
from storage.repository import Store
from storage.settlement import SettlementStore
from tests.integration.test_fees import complete_delivery, price
from tests.support.harness import World, keys
from tests.support.setups import booked_and_accepted, timers, visit_row

SHANGHAI = timezone(timedelta(hours=8))


def at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, tzinfo=SHANGHAI).astimezone(timezone.utc)


async def item_of(world: World, visit_id: int):
    async with world.container.sessions() as session:
        return await SettlementStore(Store(session)).item_of_visit(visit_id)


async def statements(world: World, **filters):
    async with world.container.sessions() as session:
        return await SettlementStore(Store(session)).statements(**filters)


async def refused(world: World, command: c.Command) -> str:
    try:
        await world.container.bus.run("test", command)
    except DomainError as err:
        return err.code
    raise AssertionError(f"{command} was not refused")


async def confirmed_delivery(world: World, *, minor: int = 15000):
    """A delivery priced at ``minor`` (fixed), completed by Wang and confirmed by its customer."""
    await world.container.bus.run("test", price(minor=minor))
    order, customer, driver, group = await booked_and_accepted(world)
    visit_id = order.visits[0].id
    await complete_delivery(driver, visit_id)
    told = await customer.inbox()
    done = next(m for m in told if m.key == "customer.completed")
    after = await customer.press(done.button("cf"))
    await driver.inbox()
    await group.inbox()
    return order, customer, driver, group, visit_id, after


async def test_a_confirmed_fee_is_reviewed_then_ready_then_on_the_monthly_statement_sent_to_the_technician(world: World):
    order, _customer, driver, _group, visit_id, _after = await confirmed_delivery(world)
    item = await item_of(world, visit_id)
    assert item is not None and item.status == "in_review"
    assert (item.bill_total_minor, item.base_minor, item.share_percent, item.earned_minor, item.amount_minor) == (15000, 15000, 100, 15000, 15000)
    assert item.review_ends_at == world.clock.now() + timedelta(hours=72)
    assert [row["key"] for row in await timers(world, "settle_review")] == [f"settle:review:{item.id}"]

    # not before its period ends
    world.clock.set(item.review_ends_at - timedelta(minutes=1))
    await world.sweep()
    assert (await item_of(world, visit_id)).status == "in_review"
    world.clock.set(item.review_ends_at + timedelta(minutes=1))
    await world.sweep()
    ready = await item_of(world, visit_id)
    assert (ready.status, ready.period, ready.statement_id) == ("ready", "2026-11", None)
    assert [row["key"] for row in await timers(world, "settle_close")] == ["settle:close:2026-11"]
    assert await driver.inbox() == []  # a monthly technician hears at the month's close

    # the month's close runs early on 1 December, by its timer
    world.clock.set(at(2026, 12, 1, 2))
    await world.sweep()
    [statement] = await statements(world)
    assert (statement.period, statement.cycle, statement.total_minor, statement.line_count) == ("2026-11", "monthly", 15000, 1)
    assert statement.number == f"ST-2026-11-T{ready.technician_id}-1"
    [line] = statement.lines
    assert (line.visit_id, line.job_id, line.job_ref, line.kind, line.status) == (visit_id, order.job.id, "SO-1", "delivery", "settled")
    [sent] = await driver.inbox()
    assert sent.key == "settle.statement" and sent.params["total"] == "CNY 150.00"
    text = translate(sent.key, "en", sent.params)
    assert f"#{visit_id} · order #{order.job.id} SO-1" in text and "100% → CNY 150.00" in text and "Reply here" in text
    assert "合计:CNY 150.00" in translate(sent.key, "zh", sent.params)

    # closing again (the CLI, or the timer firing twice) makes nothing new
    await world.container.bus.run("test", c.CloseSettlementMonth("2026-11", "test"))
    assert len(await statements(world)) == 1
    assert await driver.inbox() == []


async def test_a_complaint_freezes_the_fee_until_a_dispatcher_releases_it_into_the_month_of_the_release(world: World):
    _order, customer, _driver, group, visit_id, after = await confirmed_delivery(world)
    rate = next(m for m in after if m.has_button("rt"))
    low = next(data for _label, data in rate.buttons if data == f"rt:{visit_id}:1")
    await customer.press(low)
    frozen = await item_of(world, visit_id)
    assert (frozen.status, frozen.freeze_reason) == ("frozen", "low_rating")
    alert = next(m for m in await group.inbox() if m.key == "settle.group_frozen")
    assert alert.has_button("stl") and alert.has_button("sta")
    assert alert.params["amount"] == "CNY 150.00"

    # the period ends: a frozen fee stays frozen (and the November close passes it by)
    world.clock.set(at(2026, 12, 1, 2))
    await world.sweep()
    assert (await item_of(world, visit_id)).status == "frozen"
    assert await statements(world) == []

    # someone in the group who is not a dispatcher cannot release it
    stranger = await group.press(alert.button("stl"), user_id="stranger")
    assert keys(stranger) == ["dispatcher.not_allowed"]
    assert (await item_of(world, visit_id)).status == "frozen"

    # released on 3 December: ready in December, the month of the release, not November when its review ended
    world.clock.set(at(2026, 12, 3))
    # the alert card itself says who released it, and loses its buttons (the same card: edited where it is)
    [card] = await group.press(alert.button("stl"))
    assert (card.key, card.payload["card"], card.buttons) == ("settle.group_frozen_released", alert.payload["card"], [])
    assert card.params["name"]["params"]["text"] == "Dora" and card.params["amount"] == "CNY 150.00"
    released = await item_of(world, visit_id)
    assert (released.status, released.period, released.released_by) == ("ready", "2026-12", f"dispatcher:{1}")
    # pressing again: it is not frozen any more
    assert keys(await group.press(alert.button("stl"))) == ["error.settle_not_frozen"]

    # the November close (again) does not take it; December's does
    await world.container.bus.run("test", c.CloseSettlementMonth("2026-11", "test"))
    assert await statements(world) == []
    assert await refused(world, c.CloseSettlementMonth("2026-12", "test")) == "settle_month_not_over"
    world.clock.set(at(2027, 1, 1, 3))
    await world.sweep()
    [statement] = await statements(world)
    assert (statement.period, statement.total_minor) == ("2026-12", 15000)


async def test_a_dispatcher_adjusts_a_frozen_fee_by_typing_the_amount_and_the_reason(world: World):
    _order, customer, driver, group, visit_id, after = await confirmed_delivery(world)
    rate = next(m for m in after if m.has_button("rt"))
    await customer.press(f"rt:{visit_id}:2")
    await customer.send("The sofa arrived scratched")  # the comment: a complaint too (frozen already: nothing more)
    alert = next(m for m in await group.inbox() if m.key == "settle.group_frozen")
    assert rate is not None

    asked = await group.press(alert.button("sta"))
    assert keys(asked) == ["settle.ask_adjust"] and asked[0].request == "reply"
    # someone else talking in the group is not the answer
    assert await group.send("lunch?", user_id="stranger") == []
    assert keys(await group.send("a lot")) == ["error.money_amount_invalid"]
    assert keys(await group.send("80")) == ["error.settle_reason_missing"]
    assert keys(await group.send("-5 nope")) == ["error.money_amount_invalid"]
    assert (await item_of(world, visit_id)).amount_minor == 15000  # nothing changed
    said, card = await group.send("80.50 the scratch was ours")
    assert said.key == "settle.adjusted_group"  # answered where it was typed; the alert card shows it, without buttons
    assert (card.key, card.payload["card"], card.buttons) == ("settle.group_frozen_adjusted", alert.payload["card"], [])
    assert (card.params["earned"], card.params["amount"], card.params["reason"]["params"]["text"]) == ("CNY 150.00", "CNY 80.50", "the scratch was ours")

    adjusted = await item_of(world, visit_id)
    # adjusted within its period: back in review (a new complaint may freeze it again), paying the adjusted amount
    assert (adjusted.status, adjusted.earned_minor, adjusted.amount_minor, adjusted.adjust_reason) == ("in_review", 15000, 8050, "the scratch was ours")
    told = await driver.inbox()
    assert keys(told) == ["settle.tech_adjusted"] and told[0].params["amount"] == "CNY 80.50"

    world.clock.set(adjusted.review_ends_at + timedelta(minutes=1))
    await world.sweep()
    assert (await item_of(world, visit_id)).status == "ready"
    world.clock.set(at(2026, 12, 1, 2))
    await world.sweep()
    [statement] = await statements(world)
    assert statement.total_minor == 8050
    [sent] = await driver.inbox()
    text = translate(sent.key, "en", sent.params)
    assert "adjusted to CNY 80.50 (the scratch was ours)" in text
    # on a statement: it never changes again
    assert await refused(world, c.AdjustSettlement(visit_id, 100, "late", "api")) == "settle_item_settled"


async def test_a_per_order_partner_gets_a_statement_of_their_share_as_soon_as_the_review_ends(world: World):
    await world.container.bus.run("test", price(minor=12345))
    order, customer, driver, _group = await booked_and_accepted(world)
    visit_id = order.visits[0].id
    technician_id = (await visit_row(world, visit_id)).technician_id
    assert await refused(world, c.SetPayoutRule(technician_id, "weekly", 80)) == "settle_cycle_unknown"
    assert await refused(world, c.SetPayoutRule(technician_id, "per_order", 101)) == "settle_share_invalid"
    assert await refused(world, c.SetPayoutRule(99999, "per_order", 80)) == "technician_not_found"
    await world.container.bus.run("test", c.SetPayoutRule(technician_id, "per_order", 80))
    await complete_delivery(driver, visit_id)
    done = next(m for m in await customer.inbox() if m.key == "customer.completed")
    await customer.press(done.button("cf"))
    await driver.inbox()
    item = await item_of(world, visit_id)
    assert (item.share_percent, item.earned_minor) == (80, 9876)  # 123.45 × 80 % = 98.76

    world.clock.set(item.review_ends_at + timedelta(seconds=1))
    await world.sweep()
    [statement] = await statements(world, technician_id=technician_id)
    assert (statement.cycle, statement.period, statement.total_minor) == ("per_order", "2026-11", 9876)
    [sent] = await driver.inbox()
    assert sent.key == "settle.statement" and sent.params["total"] == "CNY 98.76"
    assert await timers(world, "settle_close") == []  # nothing waits for a month's close


async def test_bad_input_is_refused_and_changes_nothing(world: World):
    _order, _customer, _driver, _group, visit_id, _after = await confirmed_delivery(world)
    assert await refused(world, c.CloseSettlementMonth("2026-13", "test")) == "settle_period_invalid"
    assert await refused(world, c.CloseSettlementMonth("November", "test")) == "settle_period_invalid"
    assert await refused(world, c.CloseSettlementMonth("2026-11", "test")) == "settle_month_not_over"
    assert await refused(world, c.ReleaseSettlement(visit_id, "api")) == "settle_not_frozen"
    assert await refused(world, c.ReleaseSettlement(99999, "api")) == "settle_item_not_found"
    assert await refused(world, c.AdjustSettlement(visit_id, -1, "why", "api")) == "settle_amount_invalid"
    assert await refused(world, c.AdjustSettlement(visit_id, 100, "  ", "api")) == "settle_reason_missing"
    assert await refused(world, c.AdjustSettlement(visit_id, 100, "x" * 501, "api")) == "settle_reason_too_long"
    item = await item_of(world, visit_id)
    assert (item.status, item.amount_minor, item.adjusted_by) == ("in_review", 15000, None)


@pytest.mark.parametrize("score", [5])
async def test_a_good_rating_and_an_unpriced_bill_freeze_nothing_and_settle_nothing(world: World, score: int):
    await world.container.bus.run("test", price(kind="installation"))  # deliveries have no price
    order, customer, driver, _group = await booked_and_accepted(world)
    visit_id = order.visits[0].id
    await complete_delivery(driver, visit_id)
    done = next(m for m in await customer.inbox() if m.key == "customer.completed")
    await customer.press(done.button("cf"))
    assert await item_of(world, visit_id) is None  # no price, nothing to settle yet
    # priced later: its fee enters review then
    await world.container.bus.run("test", price(minor=5000))
    await world.container.bus.run("test", c.IssueBill(visit_id))
    item = await item_of(world, visit_id)
    assert (item.status, item.amount_minor) == ("in_review", 5000)
    await customer.press(f"rt:{visit_id}:{score}")
    assert (await item_of(world, visit_id)).status == "in_review"
