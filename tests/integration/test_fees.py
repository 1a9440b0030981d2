"""Fees as people live them: a completed visit's bill in the customer's chat, the technician recording what was paid,
no price never a silent 0 (the dispatchers are told), and the parts a repair used on its bill."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from conversations.i18n import translate
from domain import commands as c
from domain.errors import DomainError
from domain.model import Visit
from services import backoffice, fees
from services.context import HandlerContext
from storage.fees import FeeStore
from storage.parts import PartsStore
from storage.repository import Store
from tests.support.harness import SHOP, World, keys
from tests.support.setups import booked_and_accepted, give


def price(kind: str = "delivery", category: str = "any", region: str = "any", urgency: str = "any", *, pricing: str = "fixed",
          minor: int = 15000, currency: str = "CNY", step: int = 30, name: str = "") -> c.PutPriceEntry:
    return c.PutPriceEntry(kind, category, region, urgency, pricing, minor, currency, step, name)


async def complete_delivery(driver, visit_id: int) -> list:
    """The driver's way through the delivery: on the way, check-in, the one checklist step, Complete."""
    await driver.press(f"go:{visit_id}")
    await driver.location(SHOP[0], SHOP[1] + 0.001)
    first = await driver.press(f"st:{visit_id}")
    done = await driver.press(first[0].button("ans").rsplit(":", 1)[0] + ":yes")
    completed = await driver.press(done[0].button("done"))
    assert keys(completed)[0] == "tech.completed"
    return completed


async def bills(world: World, job_id: int) -> list[dict]:
    async with world.container.sessions() as session:
        return (await backoffice.job_details(Store(session), job_id))["bills"]


async def test_a_completed_visit_shows_its_bill_to_the_customer_and_the_technician_records_the_payment(world: World):
    for entry in (price(minor=9900), price(category="sofa", minor=12000), price(category="sofa", region="Huangpu", minor=15000),
                  price(category="sofa", region="Jingan", minor=1)):
        await world.container.bus.run("test", entry)
    order, customer, driver, _group = await booked_and_accepted(world)
    visit_id = order.visits[0].id
    await customer.inbox()
    completed = await complete_delivery(driver, visit_id)

    told = await customer.inbox()
    # asked to confirm (and to tick what the delivery brought), then the bill, with the most specific price
    assert keys(told)[2:] == ["customer.completed", "customer.item_check", "fees.bill"]
    bill = told[-1]
    assert bill.params["total"] == "CNY 150.00"
    text = translate(bill.key, "en", bill.params)
    assert text.endswith("Questions about it? Just reply here.")  # the customer's next step
    assert "delivery: CNY 150.00" in text and "Total: CNY 150.00" in text
    assert "合计:CNY 150.00" in translate(bill.key, "zh", bill.params)

    # the driver sees the bill with the way to record what was paid on site
    assert keys(completed) == ["tech.completed", "fees.tech_bill"]
    card = completed[1]
    asked = await driver.press(card.button("pay"))
    assert keys(asked) == ["tech.payment_method"]
    cash = next(data for _label, data in asked[0].buttons if data.endswith(":cash"))
    assert keys(await driver.press(cash)) == ["tech.payment_amount"]
    # more than owed, not an amount: answered, nothing recorded, and the amount can be typed again
    assert keys(await driver.send("200")) == ["error.payment_over_owed"]
    assert keys(await driver.send("a hundred")) == ["error.money_amount_invalid"]
    assert keys(await driver.send("1.005")) == ["error.money_amount_too_precise"]
    assert (await bills(world, order.job.id))[0]["paid_minor"] == 0
    assert keys(await driver.send("100")) == ["tech.payment_recorded"]
    receipt = (await customer.inbox())[-1]
    assert receipt.key == "fees.payment_received_part" and receipt.params["owed"] == "CNY 50.00"

    [stored] = await bills(world, order.job.id)
    assert (stored["status"], stored["total_minor"], stored["paid_minor"], stored["outstanding_minor"]) == ("priced", 15000, 10000, 5000)
    assert [(line["kind"], line["quantity"], line["amount_minor"]) for line in stored["lines"]] == [("labour", 1, 15000)]
    assert [(p["method"], p["amount_minor"], p["recorded_by"].split(":")[0]) for p in stored["payments"]] == [("cash", 10000, "technician")]

    # the rest by transfer, through the back office; then nothing more can be paid
    await world.container.bus.run("test", c.RecordPayment(visit_id, 5000, "CNY", "transfer", None, "api"))
    assert (await customer.inbox())[-1].key == "fees.payment_received_all"
    try:
        await world.container.bus.run("test", c.RecordPayment(visit_id, 1, "CNY", "cash", None, "api"))
    except DomainError as refused:
        assert refused.code == "bill_already_paid"
    else:
        raise AssertionError("a paid bill took another payment")
    assert (await bills(world, order.job.id))[0]["outstanding_minor"] == 0


async def test_no_price_for_the_visit_tells_the_customer_the_bill_follows_and_alerts_the_dispatchers(world: World):
    await world.container.bus.run("test", price(kind="installation"))  # the list prices installations only
    order, customer, driver, group = await booked_and_accepted(world)
    visit_id = order.visits[0].id
    await customer.inbox()
    await group.inbox()
    await complete_delivery(driver, visit_id)

    assert "fees.bill_follows" in keys(await customer.inbox())
    alert = next(m for m in await group.inbox() if m.key == "fees.group_unpriced")
    assert alert.buttons  # call the customer, or note what was agreed
    assert alert.params["category"] == "sofa" and alert.params["region"] == "Huangpu"
    [unpriced] = await bills(world, order.job.id)
    assert (unpriced["status"], unpriced["outstanding_minor"]) == ("unpriced", None)
    # nothing is owed, so nothing can be paid
    try:
        await world.container.bus.run("test", c.RecordPayment(visit_id, 100, "CNY", "cash", None, "api"))
    except DomainError as refused:
        assert refused.code == "bill_unpriced"
    else:
        raise AssertionError("an unpriced bill took a payment")

    # a price for deliveries by the hour, then the bill is priced and reaches the customer
    await world.container.bus.run("test", price(pricing="per_hour", minor=8000, step=30))
    await world.container.bus.run("test", c.IssueBill(visit_id))
    bill = (await customer.inbox())[-1]
    assert bill.key == "fees.bill"
    [priced] = await bills(world, order.job.id)
    assert priced["status"] == "priced" and priced["lines"][0]["unit"] == "minute" and priced["lines"][0]["quantity"] % 30 == 0
    assert priced["total_minor"] == 8000 * priced["lines"][0]["quantity"] // 60


async def test_a_shop_without_a_price_list_bills_nothing(world: World):
    order, customer, driver, _group = await booked_and_accepted(world)
    await customer.inbox()
    await complete_delivery(driver, order.visits[0].id)
    assert not [k for k in keys(await customer.inbox()) if k.startswith("fees.")]
    assert await bills(world, order.job.id) == []


async def test_a_repairs_bill_lists_the_parts_it_used_at_their_price(world: World):
    await world.container.bus.run("test", price(kind="repair", category="aircon", minor=20000, name="Repair call-out"))
    repairer, _token = await world.technician("Li", ["repairer"], ["aircon"])
    order = await world.order("AC-9", services=("repair",), category="aircon", product="Split air conditioner")
    visit = order.visits[0]
    start = world.clock.now() + timedelta(hours=1)
    await give(world, visit.id, repairer, start, start + timedelta(hours=1), status="in_progress")

    async def record(store: Store) -> None:  # the repair record the stock module keeps, as its completion step leaves it
        recorded = await store.get(Visit, visit.id)
        recorded.fault_category, recorded.repair_method = "wear/capacitor", "replace"
        await PartsStore(store).add_completion(
            visit_id=visit.id, technician_id=repairer, cause="wear", fault="capacitor", method="replace", outcome="fixed",
            parts=[{"part_id": 1, "code": "CAP-35", "name": "Capacitor 35µF", "quantity": 2, "unit": "piece", "price_minor": 2350, "currency": "CNY"}],
            note="", recorded_at=world.clock.now())

    await world._tx(record)
    await world.container.bus.run("test", c.CompleteVisit(visit.id, repairer))
    [bill] = await bills(world, order.job.id)
    assert [(line["kind"], line["description"], line["quantity"], line["amount_minor"]) for line in bill["lines"]] == [
        ("labour", "Repair call-out", 1, 20000), ("part", "Capacitor 35µF", 2, 4700)]
    assert bill["total_minor"] == 24700


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_concurrent_payments_on_postgresql_never_pay_more_than_was_owed(postgres_url, tmp_path):
    world = await World.create(postgres_url, tmp_path)
    try:
        await world.container.bus.run("test", price(minor=15000))
        driver, _token = await world.technician("Wang", ["driver"])
        order = await world.order("SO-7", services=("delivery",))
        visit = order.visits[0]
        start = world.clock.now() + timedelta(hours=1)
        await give(world, visit.id, driver, start, start + timedelta(hours=1), status="in_progress")
        await world.container.bus.run("test", c.CompleteVisit(visit.id, driver))
        both_read = asyncio.Barrier(2)

        def pay(n: int):
            async def work(ctx: HandlerContext):
                bill = await FeeStore(ctx.store).bill_of_visit(visit.id)
                assert bill is not None and bill.outstanding.amount == 15000  # both see all of it owed
                await both_read.wait()  # both transactions are open before either records
                return n, await fees.record_payment(ctx, c.RecordPayment(visit.id, 10000, "CNY", "cash", None, f"test:{n}"))
            return world.container.bus.call(f"test:pay:{n}", work)

        outcomes = await asyncio.gather(pay(1), pay(2), return_exceptions=True)
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(won) == 1 and len(lost) == 1
        assert isinstance(lost[0], DomainError) and lost[0].code == "payment_over_owed"
        [bill] = await bills(world, order.job.id)
        assert (bill["paid_minor"], bill["outstanding_minor"], len(bill["payments"])) == (10000, 5000, 1)
    finally:
        await world.close()
