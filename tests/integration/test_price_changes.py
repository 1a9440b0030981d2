"""Price increases as people live them: the repairer asks on site with a photo, the dispatchers (and above the limit a
manager) approve, the customer agrees in their chat, and the bill shows labour, parts and the increase; a customer's no
leaves the bill as it was; bad input and forged or stale buttons are answered and change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from domain import commands as c
from domain.errors import DomainError
from domain.model import Visit
from services import accounts, backoffice, price_changes
from services.context import HandlerContext
from sqlalchemy import update

from storage import tables as t
from storage.parts import PartsStore
from storage.price_changes import PriceChangeStore
from storage.repository import Store
from tests.support.harness import Chat, World, keys
from tests.support.setups import give

PART = {"part_id": 1, "code": "CAP-35", "name": "Capacitor 35µF", "quantity": 2, "unit": "piece", "price_minor": 2350, "currency": "CNY"}


async def shop(world: World) -> tuple[int, int, Chat, Chat, Chat, int]:
    """A repair price, a repairer with a repair in progress, the Huangpu group with its dispatcher, the customer's chat:
    (visit id, job id, repairer, group, customer, repairer's id)."""
    await world.container.bus.run("test", c.PutPriceEntry("repair", "aircon", "any", "any", "fixed", 20000, "CNY", 30, "Repair call-out"))
    repairer_id, token = await world.technician("Li", ["repairer"], ["aircon"])
    repairer = world.chat("staff", "li")
    await repairer.send(f"/start {token}")
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    order = await world.order("AC-9", services=("repair",), category="aircon", product="Split air conditioner")
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    visit = order.visits[0]
    start = world.clock.now() + timedelta(hours=1)
    await give(world, visit.id, repairer_id, start, start + timedelta(hours=1), status="in_progress")
    for chat in (repairer, group, customer):
        await chat.inbox()
    return visit.id, order.job.id, repairer, group, customer, repairer_id


async def managers(world: World) -> Chat:
    """The managers' group (purpose "reports") bound in the staff bot, and Mia, a manager whose account names her chat user."""
    async def create(store: Store) -> str:
        _group, token = await backoffice.create_dispatch_group(store, name="Managers", region=None, language="en", now=world.clock.now(),
                                                               policy=world.container.policy, purpose="reports")
        return token

    token = await world._tx(create)

    async def manager(ctx):
        return await accounts.add_account(ctx, username="mia", display_name="Mia", role="manager", password=None, chat_user_id="777"), []

    await world.container.bus.call("test:manager", manager)
    chat = world.chat("staff", "m", user_id="777", chat_type="group", name="Mia")
    await chat.send(f"/start {token}")
    await chat.inbox()
    return chat


async def ask(world: World, repairer: Chat, visit_id: int, amount: str, reason: str, *, photo: bool = False) -> None:
    assert keys(await repairer.press(f"pc:{visit_id}")) == ["pricechg.ask_amount"]
    assert keys(await repairer.send(amount)) == ["pricechg.ask_reason"]
    assert keys(await repairer.send(reason)) == ["pricechg.summary"]
    if photo:
        path = world.media / "burnt.jpg"
        path.write_bytes(b"\xff\xd8 jpeg")
        added = await repairer.photo(path)
        assert keys(added) == ["pricechg.summary"] and added[0].params["photos"] == 1
    assert keys(await repairer.press("pcs")) == ["pricechg.sent"]


async def changes(world: World, visit_id: int):
    async with world.container.sessions() as session:
        return await PriceChangeStore(Store(session)).of_visit(visit_id)


async def bill(world: World, job_id: int) -> dict:
    [found] = (await world.job(job_id))["bills"]
    return found


async def complete_repair(world: World, visit_id: int, repairer_id: int) -> None:
    async def record(store: Store) -> None:  # the repair record the stock module keeps, as its completion step leaves it
        recorded = await store.get(Visit, visit_id)
        recorded.fault_category, recorded.repair_method = "wear/capacitor", "replace"
        await PartsStore(store).add_completion(visit_id=visit_id, technician_id=repairer_id, cause="wear", fault="capacitor", method="replace",
                                               outcome="fixed", parts=[PART], note="", recorded_at=world.clock.now())

    await world._tx(record)
    await world.container.bus.run("test", c.CompleteVisit(visit_id, repairer_id))


async def test_an_increase_above_the_limit_goes_dispatcher_then_manager_then_customer_and_lands_on_the_bill(world: World):
    visit_id, job_id, repairer, group, customer, repairer_id = await shop(world)
    boss = await managers(world)

    # the amount is checked where it is typed, and typed again
    assert keys(await repairer.press(f"pc:{visit_id}")) == ["pricechg.ask_amount"]
    for typed, refused in (("0", "error.pricechg_amount_not_positive"), ("2000000", "error.pricechg_amount_too_large"),
                           ("a lot", "error.money_amount_invalid"), ("1.005", "error.money_amount_too_precise")):
        assert keys(await repairer.send(typed)) == [refused]
    assert keys(await repairer.send("250")) == ["pricechg.ask_reason"]
    assert keys(await repairer.send("The customer's own wiring burnt the control board")) == ["pricechg.summary"]
    path = world.media / "burnt.jpg"
    path.write_bytes(b"\xff\xd8 jpeg")
    assert keys(await repairer.photo(path)) == ["pricechg.summary"]
    assert keys(await repairer.press("pcs")) == ["pricechg.sent"]
    # one open at a time
    assert keys(await repairer.press(f"pc:{visit_id}")) == ["error.pricechg_already_open"]

    # the region's dispatchers: the card (above the limit: a manager decides too), then the photo
    card, photos = await group.inbox()
    assert (card.key, photos.key) == ("pricechg.group_card_manager", "pricechg.photos")
    assert card.params["amount"] == "CNY 250.00" and card.params["photos"] == 1 and card.params["phone"] == "139****5678"
    assert len(photos.payload["album"]) == 1
    assert keys(await group.press(card.button("pca"), user_id="nosy")) == ["dispatcher.not_allowed"]
    assert (await changes(world, visit_id))[0].status.value == "pending"

    assert "pricechg.group_card_escalated" in keys(await group.press(card.button("pca")))
    assert keys(await repairer.inbox()) == ["pricechg.tech_escalated"]
    manager_card, manager_photos = await boss.inbox()
    assert (manager_card.key, manager_photos.key) == ("pricechg.manager_card", "pricechg.photos")
    assert manager_card.params["limit"] == "CNY 200.00"
    # the dispatcher cannot take the manager's decision, by either button; a second dispatcher's press finds it decided
    assert keys(await group.press(manager_card.button("pcma"))) == ["error.pricechg_manager_needed"]
    assert keys(await group.press(card.button("pca"))) == ["error.pricechg_manager_needed"]
    assert keys(await boss.press(manager_card.button("pcma"), user_id="12345")) == ["error.pricechg_managers_only"]
    assert (await changes(world, visit_id))[0].status.value == "escalated"

    await boss.press(manager_card.button("pcma"))
    [asked] = await customer.inbox()
    # the call-out and the increase (no part fitted yet); further parts come on top, the customer reads
    assert asked.key == "pricechg.customer_ask_total_parts" and asked.params["total"] == "CNY 450.00"
    assert asked.has_button("pcy") and asked.has_button("pcn")
    assert keys(await repairer.inbox()) == ["pricechg.tech_approved"]
    [row] = await changes(world, visit_id)
    assert (row.status.value, row.dispatcher_by, row.manager_by) == ("approved", row.dispatcher_by, "manager:mia")
    assert row.dispatcher_by and row.dispatcher_by.startswith("dispatcher:")

    # someone else's customer cannot answer it; the customer agrees
    stranger = world.chat("customer", "x")
    assert keys(await stranger.press(asked.button("pcy"))) == ["customer.hint_new"]
    # the answer is shown by the question card itself, which loses its buttons (the same card: edited in place)
    [answered] = await customer.press(asked.button("pcy"))
    assert answered.key == "pricechg.customer_card_agreed" and answered.payload["card"] == asked.payload["card"] == f"price_increase_ask:{row.id}"
    assert answered.payload["buttons"] == [] and answered.params["amount"] == "CNY 250.00"
    assert keys(await customer.press(asked.button("pcn"))) == ["error.pricechg_decided"]
    told = await repairer.inbox()
    assert keys(told) == ["pricechg.tech_accepted"] and told[0].has_button("ck")

    # completion bills labour, parts and the increase, and the customer reads it
    await complete_repair(world, visit_id, repairer_id)
    billed = await bill(world, job_id)
    assert [(line["kind"], line["description"], line["amount_minor"]) for line in billed["lines"]] == [
        ("labour", "Repair call-out", 20000), ("part", "Capacitor 35µF", 4700),
        ("increase", "The customer's own wiring burnt the control board", 25000)]
    assert billed["total_minor"] == 49700
    sent = next(m for m in await customer.inbox() if m.key == "fees.bill")
    assert sent.params["total"] == "CNY 497.00"
    # the photo is the visit's evidence, and the request is on the job's timeline
    details = await world.job(job_id)
    assert "PriceIncreaseAccepted" in [entry["type"] for entry in details["timeline"]]


async def test_with_no_managers_group_a_manager_decides_on_the_region_s_card(world: World):
    """A shop that set up no managers' group: the escalated card keeps the managers' buttons in the region's group, so the
    request never waits for a group that does not exist; a dispatcher's press there is still refused."""
    visit_id, _job_id, repairer, group, customer, _repairer_id = await shop(world)

    async def manager(ctx):
        return await accounts.add_account(ctx, username="mia", display_name="Mia", role="manager", password=None, chat_user_id="777"), []

    await world.container.bus.call("test:manager", manager)
    await ask(world, repairer, visit_id, "250", "The customer's own wiring burnt the control board")
    [card] = await group.inbox()
    escalated = await group.press(card.button("pca"))
    [waiting] = [m for m in escalated if m.key == "pricechg.group_card_escalated_here"]
    assert waiting.has_button("pcma") and waiting.has_button("pcmd")
    assert keys(await group.press(waiting.button("pcma"))) == ["error.pricechg_manager_needed"]
    assert (await changes(world, visit_id))[0].status.value == "escalated"
    await group.press(waiting.button("pcma"), user_id="777")
    assert (await changes(world, visit_id))[0].status.value == "approved"
    assert [m.key for m in await customer.inbox()] == ["pricechg.customer_ask_total_parts"]


async def test_a_customer_who_declines_leaves_the_bill_as_it_was_and_everyone_is_told(world: World):
    visit_id, job_id, repairer, group, customer, repairer_id = await shop(world)
    await ask(world, repairer, visit_id, "50", "Extra bracket the order did not include")
    [card] = await group.inbox()
    assert card.key == "pricechg.group_card"  # up to the limit: the dispatcher's approval is enough
    await group.press(card.button("pca"))
    assert keys(await repairer.inbox()) == ["pricechg.tech_approved"]
    [asked] = await customer.inbox()
    assert asked.params["total"] == "CNY 250.00"
    [answered] = await customer.press(asked.button("pcn"))
    assert (answered.key, answered.payload["card"], answered.payload["buttons"]) == ("pricechg.customer_card_refused", asked.payload["card"], [])
    assert keys(await repairer.inbox()) == ["pricechg.tech_refused"]
    assert "pricechg.group_card_refused" in keys(await group.inbox())

    # a stale card: decided already, and forged ids
    assert keys(await group.press(card.button("pca"))) == ["error.pricechg_decided"]
    assert keys(await group.press("pca:999999")) == ["error.pricechg_not_found"]
    assert keys(await customer.press("pcy:999999")) == ["error.pricechg_not_found"]

    await complete_repair(world, visit_id, repairer_id)
    billed = await bill(world, job_id)
    assert [line["kind"] for line in billed["lines"]] == ["labour", "part"] and billed["total_minor"] == 24700
    # a new one may be asked once the last is settled, but only while the visit is under way (completed now: not any more)
    await repairer.inbox()
    assert keys(await repairer.press(f"pc:{visit_id}")) == ["hint.stale_button"]


async def test_a_decline_by_the_dispatcher_tells_the_technician_to_carry_on(world: World):
    visit_id, _job_id, repairer, group, customer, _repairer_id = await shop(world)
    await ask(world, repairer, visit_id, "80", "Wall had to be opened")
    [card] = await group.inbox()
    # a dispatcher whose account keeps them to another region decides nothing here
    async with world.container.sessions() as session:
        dora = await Store(session).dispatcher_for_user("web", "staff", "dora")
    assert dora is not None

    async def scoped(ctx):
        return await accounts.add_account(ctx, username="dora", display_name="Dora", role="dispatcher", password=None,
                                          regions=["Jingan"], dispatcher_id=dora.subject_id), []

    account_id = await world.container.bus.call("test:scoped", scoped)
    assert keys(await group.press(card.button("pca"))) == ["error.pricechg_not_your_region"]
    assert (await changes(world, visit_id))[0].status.value == "pending"

    async def everywhere(store: Store) -> None:
        await store.session.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(regions=None))

    await world._tx(everywhere)
    assert "pricechg.group_card_declined" in keys(await group.press(card.button("pcd")))
    told = await repairer.inbox()
    assert keys(told) == ["pricechg.tech_declined"] and told[0].has_button("ck")
    assert await customer.inbox() == []  # never asked
    # declined: a new request may follow
    assert keys(await repairer.press(f"pc:{visit_id}")) == ["pricechg.ask_amount"]


async def test_an_increase_accepted_after_completion_prices_the_bill_again_and_what_was_paid_stays(world: World):
    visit_id, job_id, repairer, group, customer, repairer_id = await shop(world)
    await ask(world, repairer, visit_id, "60.50", "Customer asked for a second outlet")
    [card] = await group.inbox()
    await group.press(card.button("pca"))
    [asked] = await customer.inbox()
    await complete_repair(world, visit_id, repairer_id)
    await world.container.bus.run("test", c.RecordPayment(visit_id, 10000, "CNY", "cash", None, "api"))
    assert (await bill(world, job_id))["total_minor"] == 24700
    await customer.inbox()

    # the answer, then the bill priced again: what was paid stays, what is owed grows by the increase
    agreed, again = await customer.press(asked.button("pcy"))
    assert (agreed.key, again.key) == ("pricechg.customer_card_agreed", "fees.bill_part_paid") and again.params["owed"] == "CNY 207.50"
    billed = await bill(world, job_id)
    assert (billed["total_minor"], billed["paid_minor"], billed["outstanding_minor"]) == (30750, 10000, 20750)
    assert [line["kind"] for line in billed["lines"]] == ["labour", "part", "increase"]


async def test_bad_requests_are_refused_and_change_nothing(world: World):
    visit_id, _job_id, repairer, _group, _customer, repairer_id = await shop(world)
    other_id, token = await world.technician("Zhou", ["repairer"], ["aircon"])
    other = world.chat("staff", "zhou")
    await other.send(f"/start {token}")
    # someone else's visit: not in their view, and refused by the handler too
    assert keys(await other.press(f"pc:{visit_id}")) == ["hint.stale_button"]
    for command, code in [
        (c.RequestPriceIncrease(visit_id, other_id, "100", "x"), "not_your_visit"),
        (c.RequestPriceIncrease(visit_id, repairer_id, "-100", "x"), "money_amount_invalid"),
        (c.RequestPriceIncrease(visit_id, repairer_id, "100", "   "), "pricechg_reason_missing"),
        (c.RequestPriceIncrease(visit_id, repairer_id, "0", "x"), "pricechg_amount_not_positive"),
        (c.DecidePriceIncrease(1, True, manager=True), "pricechg_not_found"),
        (c.AnswerPriceIncrease(1, 1, True), "pricechg_not_found"),
    ]:
        try:
            await world.container.bus.run("test", command)
        except DomainError as refused:
            assert refused.code == code, command
        else:
            raise AssertionError(f"{command} was taken")
    assert await changes(world, visit_id) == []

    # the customer's chat cannot start one, and a visit not under way has none
    async def accepted(store: Store) -> None:
        (await store.get(Visit, visit_id)).status = "accepted"

    await world._tx(accepted)
    try:
        await world.container.bus.run("test", c.RequestPriceIncrease(visit_id, repairer_id, "100", "x"))
    except DomainError as refused:
        assert refused.code == "pricechg_visit_not_under_way"
    else:
        raise AssertionError("an increase on a visit not under way")
    assert keys(await repairer.press("pcs")) == ["hint.stale_button"]  # no draft: nothing sent


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_requests_at_once_on_postgresql_leave_one_open_increase(postgres_url, tmp_path):
    world = await World.create(postgres_url, tmp_path)
    try:
        visit_id, _job_id, _repairer, _group, _customer, repairer_id = await shop(world)
        both_checked = asyncio.Barrier(2)
        tries: list[int] = []

        def request(n: int):
            async def work(ctx: HandlerContext):
                tries.append(n)
                if tries.count(n) == 1:  # the first try of each: both see none open before either writes (a retry waits for nobody)
                    await price_changes.check_price_increase(ctx, c.CheckPriceIncrease(visit_id, repairer_id, "100"))
                    await both_checked.wait()
                return n, await price_changes.request_price_increase(ctx, c.RequestPriceIncrease(visit_id, repairer_id, "100", f"reason {n}"))
            return world.container.bus.call(f"test:ask:{n}", work)

        outcomes = await asyncio.gather(request(1), request(2), return_exceptions=True)
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(lost) == 1 and isinstance(lost[0], DomainError) and lost[0].code == "pricechg_already_open", outcomes
        assert [row.status.value for row in await changes(world, visit_id)] == ["pending"]
        assert len(tries) == 3  # the loser hit the visit's one open place (the unique key), was retried and told
    finally:
        await world.close()
