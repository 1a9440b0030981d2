"""One rule each: who may take a visit (every assign and reassign path), and how a plan is applied."""

from __future__ import annotations

import asyncio

from domain.model import Visit
from fieldchat import cli
from storage.repository import Store
from tests.support.cli import cli_environment
from tests.support.harness import World, keys
from tests.support.setups import INSTALL_STEPS, declined_then_off_duty


async def _installation_accepted(world: World, technician_chats: dict, customer_chat: str, ref: str, phone: str):
    order = await world.order(ref, services=("installation",), phone=phone)
    customer = world.chat("customer", customer_chat)
    welcome = await customer.send(f"/start {order.customer_token}")
    await customer.press(next(m for m in welcome if m.key == "customer.choose_slot").buttons[0][1])
    for chat in technician_chats.values():
        for message in await chat.inbox():
            if message.has_button("acc"):
                await chat.press(message.button("acc"))
    return order


async def test_a_reassign_never_offers_someone_already_busy_at_that_time(sqlite_url, tmp_path):
    world = await World.create(sqlite_url, tmp_path)
    try:
        await world.template("installation", "sofa", INSTALL_STEPS)
        installers = {}
        for name in ("Li", "Zhao"):
            _, token = await world.technician(name, ["installer"], ["sofa"])
            installers[name] = world.chat("staff", name.lower())
            await installers[name].send(f"/start {token}")
        group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
        await group.send(f"/start {await world.dispatcher()}")
        await group.send(f"/start {await world.group()}")
        # two 90-minute installations in the same two-hour window: one each
        first = await _installation_accepted(world, installers, "c1", "SO-1", "13900000001")
        second = await _installation_accepted(world, installers, "c2", "SO-2", "13900000002")
        jobs = [await world.job(first.job.id), await world.job(second.job.id)]
        owners = {job["visits"][0]["technician"]["name"] for job in jobs}
        assert owners == {"Li", "Zhao"}
        holder = jobs[0]["visits"][0]["technician"]["name"]
        visit = first.visits[0].id
        chat = installers[holder]
        await chat.press(f"rp:{visit}")
        await chat.press(f"rr:{visit}:customer_unreachable")
        await chat.press("rskip")
        await chat.press("rsend")
        alert = (await group.inbox())[-1]
        # the only other installer is busy then: nobody to offer it to
        assert keys(await group.press(alert.button("xr"))) == ["dispatcher.no_candidates"]
        other_id = jobs[1]["visits"][0]["technician"]["id"]
        exception_id = alert.button("xr").split(":")[1]
        forged = await group.press(f"xt:{exception_id}:{other_id}")
        assert keys(forged) in (["dispatcher.already_handled"], ["error.technician_not_eligible"])
        assert (await world.job(first.job.id))["visits"][0]["technician"]["name"] == holder
    finally:
        await world.close()


async def test_plan_apply_skips_a_technician_who_declined_instead_of_aborting_the_whole_plan(sqlite_url, tmp_path, monkeypatch, capsys):
    """`fieldchat plan --apply` applies the plan the way the nightly run does, with its guards (run here in this process;
    as a process of its own in e2e/test_cli.py)."""
    world = await World.create(sqlite_url, tmp_path)
    try:
        booked, tomorrow = await declined_then_off_duty(world)
    finally:
        await world.close()

    argv = ["plan", "--date", tomorrow.isoformat(), "--time-limit", "0.5", "--apply"]
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_DATABASE_URL=sqlite_url, FIELDCHAT_MEDIA_DIR=str(tmp_path / "m"),
                         FIELDCHAT_LOG_LEVEL="WARNING"):
        assert await asyncio.to_thread(cli.main, argv) == 0  # the command runs its own event loop
    assert "plan applied" in capsys.readouterr().out

    world = await World.create(sqlite_url, tmp_path)
    try:
        async with world.container.sessions() as session:
            first, second = [await Store(session).get(Visit, v) for v in booked]
        # the visit the only working driver declined is not forced on him; the rest of the plan applied
        assert first.technician_id is None or first.technician_id not in first.declined_by
        assert second.planned_start is not None
    finally:
        await world.close()


async def test_booking_itself_keeps_the_minimum_gap_after_the_delivery(sqlite_url, tmp_path):
    """The gap rule lived only in the customer's slot list; a forged button could book inside the gap."""
    from datetime import datetime

    from services import backoffice

    world = await World.create(sqlite_url, tmp_path)
    try:
        await world.technician("Wang", ["driver"])
        await world.technician("Li", ["installer"], ["sofa"])
        request = backoffice.OrderRequest(
            source="erp", external_ref="SO-GAP", customer_name="Zhang Wei", customer_phone="13912345678", customer_language="en",
            address="Huangpu District, 100 Nanjing East Road", lat=31.2304, lon=121.4737, region="Huangpu",
            product_name="3-seat sofa", product_category="sofa", brand=None,
            services=(backoffice.ServiceRequest("delivery"), backoffice.ServiceRequest("installation", None, 1, 180)),
        )
        order = await backoffice.place_order(world.container.bus, request)
        customer = world.chat("customer", "c")
        welcome = await customer.send(f"/start {order.customer_token}")
        delivery_slot = next(m for m in welcome if m.key == "customer.choose_slot").buttons[0][1]
        _, delivery_id, start, end = delivery_slot.split(":")
        assert keys(await customer.press(delivery_slot))[0] == "customer.booked"
        tz = world.container.policy.tz
        delivery_start = datetime.fromtimestamp(int(start), tz)
        installation = next(v for v in order.visits if v.kind == "installation")
        # 45 minutes of delivery plus 180 minutes of gap: the window right after the delivery's is too early
        early = delivery_start.replace(hour=14, minute=0)
        forged = f"sl:{installation.id}:{int(early.timestamp())}:{int(early.replace(hour=16).timestamp())}"
        assert delivery_start.hour == 11
        assert keys(await customer.press(forged)) == ["error.slot_before_dependency"]
        later = early.replace(hour=16)
        assert keys(await customer.press(f"sl:{installation.id}:{int(later.timestamp())}:{int(later.replace(hour=18).timestamp())}"))[0] == "customer.booked"
    finally:
        await world.close()
