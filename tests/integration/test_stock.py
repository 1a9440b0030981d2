"""Parts and van stock through the engine and the bus: a repair's completion record (cause, fault, method, parts from the
van, fixed or a return visit), /stock and part requests approved or declined in the group, the low-stock alert, and two
concurrent uses of the last unit on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from conversations.i18n import render
from domain import commands as c
from domain.errors import DomainError
from domain.parts import MovementKind, van
from services import parts as part_service
from services.context import HandlerContext
from storage.parts import PartsStore
from storage.repository import Store
from tests.support.harness import SHOP, World, keys
from tests.support.setups import dispatch_group, staff


async def part(world: World, code: str = "CAP-35", *, warehouse: int = 0, min_stock: int = 0, compatible=("washer",)) -> int:
    """A part in the catalogue with ``warehouse`` units received."""
    async def save(ctx: HandlerContext):
        saved, _created = await part_service.save(ctx, c.SavePart(code, f"Capacitor {code}", "pc", 1250, "CNY", "electrical", tuple(compatible), min_stock))
        return saved.id, []

    part_id = await world.container.bus.call("test:part", save)
    if warehouse:
        await world.container.bus.run("test:receive", c.MoveStock(part_id, "receive", warehouse, None, "warehouse"))
    return part_id


async def level(world: World, part_id: int, location: str) -> int:
    async with world.container.sessions() as session:
        return await PartsStore(Store(session)).level(part_id, location)


async def repair_in_progress(world: World, name: str = "Sun"):
    """A washer repair booked, accepted, checked in and started by ``name``; (technician id, chat, order, visit)."""
    technician_id, repairer = await staff(world, name, ["repairer"], ["washer"])
    order = await world.order(services=("repair",), category="washer", product="Washing machine")
    visit = order.visits[0]
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    await customer.press(next(data for m in welcome for _l, data in m.buttons if data.startswith("sl:")))
    await repairer.press((await repairer.inbox())[-1].button("acc"))
    await repairer.press(f"go:{visit.id}")
    assert keys(await repairer.location(SHOP[0], SHOP[1] + 0.001)) == ["tech.checked_in"]
    await repairer.press(f"st:{visit.id}")
    await repairer.inbox()
    return technician_id, repairer, order, visit


def readable(messages) -> None:
    """Every message and button reads whole in both languages: no placeholder left, no catalog key shown as text."""
    for message in messages:
        for language in ("en", "zh"):
            shown = render(message.payload, language)
            words = [shown.text, *(label for row in shown.buttons for label, _data in row)]
            assert not any("{" in w or w.startswith(("tech.", "btn.", "repair.", "stock.")) for w in words), (language, words)


def button(message, label_key: str) -> str:
    return next(data for label, data in message.buttons if label == label_key)


async def test_a_repair_records_cause_fault_method_and_the_van_parts_it_used_with_a_way_back_at_each_step(world: World):
    technician_id, repairer, order, visit = await repair_in_progress(world)
    capacitor = await part(world, warehouse=5)
    await world.container.bus.run("test:issue", c.MoveStock(capacitor, "issue", 1, "warehouse", van(technician_id)))
    causes = await repairer.press(f"done:{visit.id}")
    assert keys(causes) == ["tech.repair_cause"]
    assert [label for label, _d in causes[0].buttons] == ["repair.cause.natural_wear", "repair.cause.improper_use", "repair.cause.human_damage",
                                                         "btn.repair_later"]
    misuse = await repairer.press(button(causes[0], "repair.cause.improper_use"))
    assert keys(misuse) == ["tech.repair_fault_pick"] and misuse[0].has_button("rcb")
    again = await repairer.press(misuse[0].button("rcb"))  # back: the causes again
    assert keys(again) == ["tech.repair_cause"]
    faults = await repairer.press(button(again[0], "repair.cause.natural_wear"))
    methods = await repairer.press(button(faults[0], "repair.fault.capacitor_failed"))
    assert keys(methods) == ["tech.repair_method_pick"]
    parts_menu = await repairer.press(button(methods[0], "repair.method.part_replaced"))
    assert keys(parts_menu) == ["tech.repair_parts"]
    add = parts_menu[0].button("rcp")
    assert keys(await repairer.press(add)) == ["tech.repair_parts"]
    refused = await repairer.press(add)  # the van holds one: a second is refused, the menu stays
    assert keys(refused) == ["tech.repair_part_none_left", "tech.repair_parts"]
    kept = await repairer.send("Customer says it hummed for a week")  # typed text is kept as the note, never lost
    assert keys(kept) == ["tech.repair_note_kept"]
    shown = await repairer.press(kept[0].button("rcs"))
    outcome = await repairer.press(shown[0].button("rcd"))
    assert keys(outcome) == ["tech.repair_outcome"]
    done = await repairer.press(outcome[0].button("rco"))  # the first outcome: fixed
    assert keys(done) == ["tech.repair_completed"]
    readable([*causes, *misuse, *faults, *methods, *parts_menu, *refused, *kept, *outcome, *done])
    job = await world.job(order.job.id)
    assert job["visits"][0]["status"] == "completed"
    assert (job["visits"][0]["fault_category"], job["visits"][0]["repair_method"]) == ("natural_wear/capacitor_failed", "part_replaced")
    assert "RepairRecorded" in [e["type"] for e in job["timeline"]]
    assert await level(world, capacitor, van(technician_id)) == 0
    async with world.container.sessions() as session:
        parts = PartsStore(Store(session))
        record = await parts.completion_of(visit.id)
        ledger = await parts.movements(capacitor)
    assert record is not None and record["outcome"] == "fixed" and record["note"] == "Customer says it hummed for a week"
    assert [(p["part_id"], p["quantity"], p["price_minor"]) for p in record["parts"]] == [(capacitor, 1, 1250)]
    assert [(m.kind, m.quantity, m.source, m.target, m.job_id) for m in ledger] == [
        ("receive", 5, None, "warehouse", None), ("issue", 1, "warehouse", van(technician_id), None),
        ("use", 1, van(technician_id), None, order.job.id),
    ]


async def test_a_part_used_while_at_work_leaves_the_van_now_can_be_put_back_and_the_record_lists_it_once(world: World):
    """Fitted before the price is talked over with the customer: on the job now, on its record and bill at the end."""
    technician_id, repairer, order, visit = await repair_in_progress(world)
    capacitor = await part(world, warehouse=5)
    await world.container.bus.run("test:issue", c.MoveStock(capacitor, "issue", 3, "warehouse", van(technician_id)))
    options = await repairer.press(f"vo:{visit.id}")
    menu = await repairer.press(options[0].button("upm"))
    assert keys(menu) == ["tech.use_part_menu"] and menu[0].has_button("dhb")  # the way back to the visit
    how_many = await repairer.press(menu[0].button("upp"))
    assert keys(how_many) == ["tech.use_part_qty"]
    assert [data for _l, data in how_many[0].buttons if data.startswith("upq:")] == [f"upq:{visit.id}:{capacitor}:{q}" for q in (1, 2, 3)]
    used = await repairer.press(f"upq:{visit.id}:{capacitor}:2")
    assert keys(used) == ["tech.part_used"] and await level(world, capacitor, van(technician_id)) == 1
    undone = await repairer.press(used[0].button("upb"))  # a slip: both back into the van
    assert keys(undone) == ["tech.part_put_back"] and await level(world, capacitor, van(technician_id)) == 3
    assert keys(await repairer.press(f"upb:{visit.id}:{capacitor}:1")) == ["hint.stale_button"]  # none left on the repair
    assert keys(await repairer.press(f"upq:{visit.id}:{capacitor}:1")) == ["tech.part_used"]
    again = await repairer.press(f"upm:{visit.id}")
    assert again[0].has_button("upb")  # what is on the repair can be put back from the menu
    too_many = await repairer.press(f"upq:{visit.id}:{capacitor}:5")  # the van holds two now
    assert keys(too_many) == ["tech.repair_part_none_left", "tech.use_part_menu"]
    readable([*menu, *how_many, *used, *undone, *again, *too_many])
    assert "StockMoved" in [e["type"] for e in (await world.job(order.job.id))["timeline"]]  # on the job before completion
    # the record at completion: the part fitted at work is listed (not taken twice), one more picked on the record
    causes = await repairer.press(f"done:{visit.id}")
    faults = await repairer.press(button(causes[0], "repair.cause.natural_wear"))
    methods = await repairer.press(button(faults[0], "repair.fault.capacitor_failed"))
    parts_menu = await repairer.press(button(methods[0], "repair.method.part_replaced"))
    assert "tech.repair_part_line_used" in str(parts_menu[0].payload)
    await repairer.press(parts_menu[0].button("rcp"))
    outcome = await repairer.press(f"rcd:{visit.id}")
    assert keys(await repairer.press(outcome[0].button("rco"))) == ["tech.repair_completed"]
    assert await level(world, capacitor, van(technician_id)) == 1
    async with world.container.sessions() as session:
        record = await PartsStore(Store(session)).completion_of(visit.id)
    assert record is not None and [(p["part_id"], p["quantity"]) for p in record["parts"]] == [(capacitor, 2)]
    # done: nothing more is used or put back on it
    for late in (c.UsePartOnRepair(visit.id, technician_id, capacitor, 1), c.PutBackPart(visit.id, technician_id, capacitor, 1)):
        with pytest.raises(DomainError):
            await world.container.bus.run("test:late", late)


async def test_parts_on_a_repair_are_the_technicians_own_and_counted(world: World):
    technician_id, _repairer, _order, visit = await repair_in_progress(world)
    other_id, _other = await staff(world, "Li", ["repairer"], ["washer"])
    capacitor = await part(world, warehouse=2)
    await world.container.bus.run("test:issue", c.MoveStock(capacitor, "issue", 1, "warehouse", van(technician_id)))
    bad = [
        (c.UsePartOnRepair(visit.id, other_id, capacitor, 1), "not_your_visit"),
        (c.UsePartOnRepair(visit.id, technician_id, capacitor, 2), "stock_not_enough"),
        (c.UsePartOnRepair(visit.id, technician_id, capacitor, 0), "stock_quantity_invalid"),
        (c.UsePartOnRepair(visit.id, technician_id, 9999, 1), "part_not_found"),
        (c.PutBackPart(visit.id, technician_id, capacitor, 1), "part_not_used_on_visit"),
        (c.MoveStock(capacitor, "put_back", 1, None, van(technician_id)), "stock_use_on_repair"),
    ]
    for command, code in bad:
        with pytest.raises(DomainError) as refused:
            await world.container.bus.run("test:bad", command)
        assert refused.value.code == code
    assert await level(world, capacitor, van(technician_id)) == 1 and await level(world, capacitor, "warehouse") == 1


async def test_a_repair_that_needs_a_return_visit_is_recorded_and_the_return_visit_is_created(world: World):
    _technician_id, repairer, order, visit = await repair_in_progress(world)
    causes = await repairer.press(f"done:{visit.id}")
    faults = await repairer.press(button(causes[0], "repair.cause.human_damage"))
    methods = await repairer.press(button(faults[0], "repair.fault.impact"))
    parts_menu = await repairer.press(button(methods[0], "repair.method.no_action"))
    assert keys(parts_menu) == ["tech.repair_parts_van_empty"]  # nothing in the van: request one, or go on without
    outcome = await repairer.press(parts_menu[0].button("rcd"))
    missing = next(data for _l, data in outcome[0].buttons if data.endswith(":missing_part"))
    assert keys(await repairer.press(missing)) == ["tech.repair_return_created"]
    job = await world.job(order.job.id)
    first = next(v for v in job["visits"] if v["id"] == visit.id)
    follow_up = next(v for v in job["visits"] if v["follow_up_of_visit_id"] == visit.id)
    assert first["status"] == "return_needed" and first["fault_category"] == "human_damage/impact"
    assert follow_up["kind"] == "repair" and follow_up["status"] == "created"


async def test_a_technician_requests_a_part_from_chat_and_a_dispatcher_approves_it_into_the_van(world: World):
    technician_id, repairer = await staff(world, "Sun", ["repairer"], ["washer"])
    group = await dispatch_group(world)
    capacitor = await part(world, warehouse=3)
    empty = await repairer.send("/stock")
    assert keys(empty) == ["tech.van_stock_empty"]
    menu = await repairer.press(empty[0].button("prm"))
    assert keys(menu) == ["tech.part_request_pick"]
    amounts = await repairer.press(menu[0].button("prp"))
    assert keys(amounts) == ["tech.part_request_qty"]
    two = next(data for _l, data in amounts[0].buttons if data == f"prq:{capacitor}:2")
    assert keys(await repairer.press(two)) == ["tech.part_requested"]
    card = (await group.inbox())[-1]
    assert card.key == "stock.request_card" and card.has_button("pra") and card.has_button("prd")
    decided = await group.press(card.button("pra"))
    assert keys(decided) == ["stock.request_card_approved"] and not decided[0].buttons  # the card loses its buttons
    told = await repairer.inbox()
    assert keys(told) == ["stock.request_approved"] and told[0].params["van"] == 2
    assert await level(world, capacitor, "warehouse") == 1 and await level(world, capacitor, van(technician_id)) == 2
    assert keys(await group.press(card.button("prd"))) == ["error.part_request_decided"]  # decided once
    stock = await repairer.send("/stock")
    assert keys(stock) == ["tech.van_stock"] and stock[0].params["lines"][0]["params"]["quantity"] == 2
    readable([*empty, *menu, *amounts, card, *decided, *told, *stock])


async def test_the_demo_shop_has_parts_in_its_warehouse_and_the_repairers_van_stocked_once(world: World):
    from fieldchat.demo import load_demo

    await load_demo(world.container.bus)
    await load_demo(world.container.bus)  # a second run finds the parts by code and moves nothing
    async with world.container.sessions() as session:
        parts = PartsStore(Store(session))
        listed = await parts.parts()
        levels = await parts.levels_of(p.id for p in listed)
    assert [p.code for p in listed] == ["CAP-35UF", "PUMP-DR1", "LEG-OAK"]
    assert [sum(levels[p.id].values()) for p in listed] == [6, 3, 20]
    assert any(location.startswith("van:") for location in levels[listed[0].id])


async def test_an_approval_the_warehouse_cannot_cover_changes_nothing_and_says_how_many_are_there(world: World):
    technician_id, _repairer = await staff(world, "Sun", ["repairer"], ["washer"])
    group = await dispatch_group(world)
    capacitor = await part(world, warehouse=1)
    await world.container.bus.run("test:request", c.RequestPart(technician_id, capacitor, 3))
    card = (await group.inbox())[-1]
    refused = await group.press(card.button("pra"))
    assert keys(refused) == ["error.stock_not_enough"] and refused[0].params["have"] == 1
    assert await level(world, capacitor, "warehouse") == 1 and await level(world, capacitor, van(technician_id)) == 0
    declined = await group.press(card.button("prd"))  # still pending: it can be declined
    assert keys(declined) == ["stock.request_card_declined"]


async def test_the_warehouse_falling_to_its_reorder_level_alerts_the_dispatchers_once_with_a_suggestion(world: World):
    technician_id, _repairer = await staff(world, "Sun", ["repairer"], ["washer"])
    group = await dispatch_group(world)
    capacitor = await part(world, warehouse=6, min_stock=3)
    await world.container.bus.run("test:issue", c.MoveStock(capacitor, "issue", 2, "warehouse", van(technician_id)))
    assert keys(await group.inbox()) == []  # 4 left: above the level
    await world.container.bus.run("test:issue", c.MoveStock(capacitor, "issue", 1, "warehouse", van(technician_id)))
    alert = await group.inbox()
    assert keys(alert) == ["stock.low_alert"]
    readable(alert)
    assert alert[0].params["on_hand"] == 3 and alert[0].params["suggestion"] == 1  # no use on jobs yet: back above the level
    await world.container.bus.run("test:issue", c.MoveStock(capacitor, "issue", 1, "warehouse", van(technician_id)))
    assert keys(await group.inbox()) == []  # told once when it crossed, not on every movement below


async def test_bad_stock_input_gets_a_clear_answer_and_changes_nothing(world: World):
    technician_id, _repairer = await staff(world, "Sun", ["repairer"], ["washer"])
    capacitor = await part(world, warehouse=2)
    bad = [
        (c.MoveStock(capacitor, "issue", 3, "warehouse", van(technician_id)), "stock_not_enough"),
        (c.MoveStock(capacitor, "issue", -1, "warehouse", van(technician_id)), "stock_quantity_invalid"),
        (c.MoveStock(capacitor, "issue", 1, "warehouse", "van:999"), "technician_not_found"),
        (c.MoveStock(capacitor, "return", 1, "warehouse", van(technician_id)), "stock_movement_ends_invalid"),
        (c.MoveStock(capacitor, "use", 1, "warehouse", None), "stock_use_on_repair"),
        (c.MoveStock(9999, "receive", 1, None, "warehouse"), "part_not_found"),
        (c.MoveStock(capacitor, "receive", 1, None, "shelf"), "stock_location_invalid"),
        (c.RequestPart(technician_id, 9999, 1), "part_not_found"),
    ]
    for command, code in bad:
        with pytest.raises(DomainError) as refused:
            await world.container.bus.run("test:bad", command)
        assert refused.value.code == code
    assert await level(world, capacitor, "warehouse") == 2 and await level(world, capacitor, van(technician_id)) == 0


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_concurrent_uses_of_the_last_unit_on_postgresql_exactly_one_wins(postgres_url, tmp_path):
    world = await World.create(postgres_url, tmp_path, replan_seconds=0.5)
    try:
        technician_id, _token = await world.technician("Sun", ["repairer"], ["washer"])
        capacitor = await part(world, warehouse=1)
        await world.container.bus.run("test:issue", c.MoveStock(capacitor, "issue", 1, "warehouse", van(technician_id)))
        both_read = asyncio.Barrier(2)

        def use(n: int):
            async def work(ctx: HandlerContext):
                row = await PartsStore(ctx.store).part(capacitor)
                assert row is not None and await PartsStore(ctx.store).level(capacitor, van(technician_id)) == 1  # both see the last one
                await both_read.wait()  # both transactions are open before either takes it
                events = await part_service.move(ctx, row, MovementKind.USE, 1, source=van(technician_id), target=None, actor=f"test:{n}")
                return n, events
            return world.container.bus.call(f"test:use:{n}", work)

        outcomes = await asyncio.gather(use(1), use(2), return_exceptions=True)
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(won) == 1 and len(lost) == 1
        assert isinstance(lost[0], DomainError) and lost[0].code == "stock_not_enough"
        assert await level(world, capacitor, van(technician_id)) == 0
        async with world.container.sessions() as session:
            uses = [m for m in await PartsStore(Store(session)).movements(capacitor) if m.kind == "use"]
        assert len(uses) == 1
    finally:
        await world.close()


async def test_a_dispatcher_kept_to_other_regions_cannot_decide_a_technicians_request(world: World):
    from services import accounts
    from sqlalchemy import select
    from storage import tables as t

    technician_id, _repairer = await staff(world, "Sun", ["repairer"], ["washer"])  # works in Huangpu
    group = await dispatch_group(world, region=None)  # Dora, in a group of every region
    async with world.container.sessions() as session:
        dispatcher_id = (await session.execute(select(t.dispatchers.c.id))).scalar_one()

    async def account(ctx: HandlerContext):
        return await accounts.add_account(ctx, username="dora", display_name="Dora", role="dispatcher", password=None, regions=["Pudong"],
                                          dispatcher_id=dispatcher_id), []

    await world.container.bus.call("test:account", account)
    capacitor = await part(world, warehouse=2)
    await world.container.bus.run("test:request", c.RequestPart(technician_id, capacitor, 1))
    card = (await group.inbox())[-1]
    assert keys(await group.press(card.button("pra"))) == ["error.part_request_not_your_region"]
    assert await level(world, capacitor, "warehouse") == 2 and await level(world, capacitor, van(technician_id)) == 0
