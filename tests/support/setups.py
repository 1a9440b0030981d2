"""The shop set-ups dialogue tests share: checklists, technicians signed in to the staff bot, a bound dispatch group,
booked and accepted visits, and the helpers replanning tests use to put visits into a state directly."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from domain.model import Visit
from services.actions import PickDay, encode
from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.support.harness import Chat, Msg, World
from tests.support.snapshots import played_once

DELIVERY_STEPS = [{"key": "intact", "kind": "yes_no", "prompt": {"en": "Packaging intact?", "zh": "包装完好?"}}]
INSTALL_STEPS = [
    {"key": "room_ready", "kind": "yes_no", "prompt": {"en": "Room ready?"}},
    {"key": "legs", "kind": "number", "prompt": {"en": "Legs fitted?"}, "min": 2, "max": 12},
    {"key": "fabric", "kind": "choice", "prompt": {"en": "Fabric"}, "choices": ["OK", "Marks"]},
    {"key": "after", "kind": "photo", "prompt": {"en": "Photo of the sofa"}},
]


async def staff(world: World, name: str, roles: list[str], skills=(), *, capacity: int | None = None,
                home: tuple[float, float] | None = None) -> tuple[int, Chat]:
    """A technician (see World.technician) signed in to the staff bot, their welcome already read."""
    technician_id, token = await world.technician(name, roles, list(skills), capacity=capacity, home=home)
    chat = world.chat("staff", f"tech-{name.lower()}")
    await chat.send(f"/start {token}")
    await chat.inbox()
    return technician_id, chat


async def dispatch_group(world: World, region: str | None = "Huangpu") -> Chat:
    """A group bound to ``region`` with Dora, a registered dispatcher, in it; its greetings already read."""
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group(region)}")
    await group.inbox()
    return group


async def pick_time(customer: Chat, prompt: Msg, slot: int) -> None:
    """Book the ``slot``-th of the first eight times offered (negative: from the eighth back), in order: the times the
    prompt shows at once (its first free day), then those behind its day buttons — what the list used to show."""
    times = [data for _label, data in prompt.buttons if data.startswith("sl:")]
    for day in [data for _label, data in prompt.buttons if data.startswith("bd:")]:
        if len(times) >= 8:
            break
        times += [data for _label, data in (await customer.press(day))[-1].buttons if data.startswith("sl:")]
    await customer.press(times[:8][slot])


async def delivery_offered(world: World, slot: int = 0):
    """A sofa delivery booked by its customer (the ``slot``-th time offered) and offered to Wang, the only driver."""
    return await played_once(world, "delivery_offered", (slot,), lambda: _delivery_offered(world, slot))


async def _delivery_offered(world: World, slot: int):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "driver")
    await driver.send(f"/start {token}")
    group = await dispatch_group(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    await pick_time(customer, welcome[-1], slot)
    await group.inbox()
    return order.visits[0], customer, driver, group


async def booked_and_accepted(world: World, *, services=("delivery",), slot: int = 0):
    """A driver with an accepted delivery, a bound group with a dispatcher, and the customer chat."""
    return await played_once(world, "booked_and_accepted", (services, slot), lambda: _booked_and_accepted(world, services, slot))


async def _booked_and_accepted(world: World, services, slot: int):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "driver")
    await driver.send(f"/start {token}")
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    order = await world.order(services=services)
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    await pick_time(customer, welcome[-1], slot)
    offer = (await driver.inbox())[-1]
    await driver.press(offer.button("acc"))
    await customer.inbox()
    return order, customer, driver, group


async def urgent_order(world: World, ref: str = "URG-1", phone: str = "13900000009"):
    """An urgent washing-machine delivery: booked by the intake for the next opening hours, replanned at once."""
    return await world.order(ref, services=("delivery",), category="washer", phone=phone, product="Washing machine", priority="urgent")


# --- replanning: visits put into a state directly, and what the sweeps left behind --------------------------


async def give(world: World, visit_id: int, technician_id: int | None, start: datetime, end: datetime,
               status: str = "accepted", planned: datetime | None = None) -> None:
    """Put a visit into a state directly, as earlier bookings and plans would have left it."""
    async def change(store: Store):
        visit = await store.get(Visit, visit_id)
        visit.status, visit.technician_id = status, technician_id
        visit.slot_start, visit.slot_end, visit.planned_start = start, end, planned

    await world._tx(change)


async def visit_row(world: World, visit_id: int) -> Visit:
    async with world.container.sessions() as session:
        return await Store(session).get(Visit, visit_id)


async def timers(world: World, kind: str) -> list[dict]:
    async with world.container.sessions() as session:
        return await ScheduleStore(Store(session)).timers_of_kind(kind)


def visits_in(messages: list[Msg], key: str) -> list[int]:
    return sorted(m.params["visit"] for m in messages if m.key == key)


async def declined_then_off_duty(world: World) -> tuple[list[int], date]:
    """On the real clock (as `fieldchat plan` runs): two drivers, two deliveries booked for tomorrow; whoever was offered
    the first one declines it, then the other driver goes off duty. Returns the visits and tomorrow's date."""
    world.clock.set(datetime.now(timezone.utc))
    tz = world.container.policy.tz
    chats = {}
    for name in ("Wang", "Chen"):
        _, token = await world.technician(name, ["driver"])
        chats[name] = world.chat("staff", name.lower())
        await chats[name].send(f"/start {token}")
    tomorrow = (world.clock.now() + timedelta(days=1)).astimezone(tz).date()
    booked = []
    for n in range(2):
        order = await world.order(f"SO-{n}", services=("delivery",), phone=f"1390000000{n}")
        customer = world.chat("customer", f"c{n}")
        welcome = await customer.send(f"/start {order.customer_token}")
        pick_tomorrow = encode(PickDay(order.visits[0].id, tomorrow))
        if any(d == pick_tomorrow for m in welcome for _, d in m.buttons):
            # today still has windows (the welcome shows them); tomorrow's are one press away
            welcome = await customer.press(pick_tomorrow)
        slot = next(d for m in welcome for _, d in m.buttons
                    if d.startswith("sl:") and datetime.fromtimestamp(int(d.split(":")[2]), tz).date() == tomorrow)
        await customer.press(slot)
        booked.append(order.visits[0].id)
    decliner = None
    for name, chat in chats.items():
        offers = [m for m in await chat.inbox() if m.has_button("dec") and m.button("dec") == f"dec:{booked[0]}"]
        if offers:
            decliner = name
            await chat.press(f"dec:{booked[0]}")
    other = next(name for name in chats if name != decliner)
    await chats[other].send("/offduty")
    return booked, tomorrow
