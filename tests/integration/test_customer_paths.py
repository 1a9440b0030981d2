"""The customer's side through the engine (issue 10): the whole booking horizon, moving a booking without losing it,
visits named on /status, the reminder's Confirm recorded, free text understood or passed on, cancellations told."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from conversations.flows import customer as customer_flow
from conversations.understanding import Intent, PartOfDay, Understood
from domain.model import Visit
from services.actions import PickDay, decode, encode
from tests.support.harness import Chat, Msg, World, keys
from tests.support.setups import DELIVERY_STEPS, INSTALL_STEPS, booked_and_accepted, dispatch_group, visit_row


@pytest.fixture
def database_url(sqlite_url) -> str:
    """These dialogues run on SQLite only."""
    return sqlite_url


def day_button(visit_id: int, day: date) -> str:
    return encode(PickDay(visit_id, day))


def slots_in(message: Msg) -> list[tuple[datetime, datetime]]:
    return [(a.start, a.end) for _label, data in message.buttons if data.startswith("sl:") and (a := decode(data))]


async def shop(world: World) -> tuple[Chat, Chat, Chat]:
    """A sofa shop with a driver and an installer signed in and a dispatch group; (driver, installer, group)."""
    from tests.support.setups import staff

    await world.template("delivery", "sofa", DELIVERY_STEPS)
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, driver = await staff(world, "Wang", ["driver"])
    _, installer = await staff(world, "Li", ["installer"], ["sofa"])
    group = await dispatch_group(world)
    return driver, installer, group


async def book_on(customer: Chat, visit_id: int, day: date, window: int = 0) -> tuple[datetime, datetime]:
    """Book (or move) a visit on a day through the day picker: its day button, then its ``window``-th time."""
    windows = await customer.press(day_button(visit_id, day))
    assert keys(windows) == ["customer.choose_window"], keys(windows)
    slot = slots_in(windows[0])[window]
    await customer.press(windows[0].buttons[window][1])
    return slot


async def test_booking_reaches_the_last_day_of_the_horizon(world: World):
    """Seen: only the first 8 windows (about two days) of a 7-day horizon were offered, with no way to later dates."""
    await shop(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    prompt = welcome[-1]  # the welcome card ends with the times to pick
    days = [decode(data).day for _label, data in prompt.buttons if data.startswith("bd:")]
    # Monday's own windows at once, then a button for each later day of the page, and "later days" for the rest
    assert days == [date(2026, 11, d) for d in range(24, 30)]
    later = await customer.press(prompt.button("bm"))
    assert keys(later) == ["customer.choose_day"]
    assert [decode(data).day for _label, data in later[0].buttons if data.startswith("bd:")] == [date(2026, 11, 30)]
    assert later[0].has_button("bm")  # earlier days, back again
    windows = await customer.press(later[0].button("bd"))
    assert keys(windows) == ["customer.choose_window"]
    assert keys(await customer.press(windows[0].button("sl"))) == ["customer.booked"]
    visit = await visit_row(world, order.visits[0].id)
    assert visit.status == "booked" and visit.slot_start.date() == date(2026, 11, 30)


async def test_a_booked_visit_moves_only_when_the_new_time_is_picked(world: World):
    """Seen: Reschedule dropped the booking at once; abandoning the new pick left the customer with nothing."""
    driver, _installer, _group = await shop(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    visit_id = order.visits[0].id
    old = await book_on(customer, visit_id, date(2026, 11, 25))
    offer = (await driver.inbox())[-1]
    await driver.press(offer.button("acc"))
    await customer.inbox()

    status = await customer.send("/status")
    prompt = await customer.press(status[-1].button("rs"))
    assert keys(prompt) == ["customer.choose_slot"]
    # the customer looks and walks away: the booking is exactly as it was
    await customer.send("/cancel")
    kept = await visit_row(world, visit_id)
    assert (kept.status, kept.slot_start, kept.slot_end) == ("accepted", *old)
    assert keys(await driver.inbox()) == []

    new = await book_on(customer, visit_id, date(2026, 11, 27), window=1)
    moved = await visit_row(world, visit_id)
    assert (moved.status, moved.slot_start, moved.slot_end) == ("booked", *new)
    assert keys(await driver.inbox()) == ["tech.visit_rescheduled", "tech.offer"]
    timeline = [e["type"] for e in (await world.job(order.job.id))["timeline"]]
    assert "VisitRescheduled" in timeline and "VisitUnbooked" not in timeline


async def test_moving_the_delivery_past_its_installation_asks_first_and_says_what_moved(world: World):
    """Seen: Reschedule dropped the installation too and did not tell the customer about it."""
    await shop(world)
    order = await world.order(services=("delivery", "installation"))
    delivery, installation = (v.id for v in order.visits)
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await book_on(customer, delivery, date(2026, 11, 25))  # Wed 11:00–13:00
    install_old = await book_on(customer, installation, date(2026, 11, 25))  # Wed 14:00–16:00
    await customer.inbox()

    async def pick_thursday() -> list[Msg]:
        await customer.press(f"rs:{delivery}")
        windows = await customer.press(day_button(delivery, date(2026, 11, 26)))
        return await customer.press(windows[0].button("sl"))

    asked = await pick_thursday()
    assert keys(asked) == ["customer.dependant_must_move"]
    assert asked[0].has_button("mb") and asked[0].has_button("kb")
    kept = await customer.press(asked[0].button("kb"))
    assert keys(kept)[0] == "customer.kept_both"
    assert (await visit_row(world, delivery)).slot_start.day == 25
    assert ((await visit_row(world, installation)).slot_start, (await visit_row(world, installation)).slot_end) == install_old

    asked = await pick_thursday()
    days = await customer.press(asked[0].button("mb"))
    assert keys(days) == ["customer.choose_dependant_day"]
    picked_days = [decode(d).day for _l, d in days[0].buttons if d.startswith("mbd:")]
    assert picked_days[0] == date(2026, 11, 26)  # nothing before the new delivery
    windows = await customer.press(days[0].button("mbd"))
    assert keys(windows) == ["customer.choose_window"]
    new_install = slots_in(windows[0])[0]
    done = await customer.press(windows[0].button("sl"))
    assert keys(done) == ["customer.moved_both"]
    assert done[0].params["dependant"] == {"key": "kind.installation", "params": {}}
    moved_delivery, moved_install = await visit_row(world, delivery), await visit_row(world, installation)
    assert moved_delivery.slot_start.day == 26 and moved_delivery.status == "booked"
    assert (moved_install.slot_start, moved_install.slot_end) == new_install and moved_install.status == "booked"


async def test_status_names_the_visit_on_each_button(world: World):
    """Seen: /status showed identical "reschedule / cancel" rows with nothing saying which visit they belong to."""
    await shop(world)
    order = await world.order(services=("delivery", "installation"))
    delivery, installation = (v.id for v in order.visits)
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await book_on(customer, delivery, date(2026, 11, 25))
    await book_on(customer, installation, date(2026, 11, 26))
    status = (await customer.send("/status"))[-1]
    labels = [b["label"] for row in status.payload["buttons"] for b in row]
    assert [(label["key"], label["params"]["kind"]["key"]) for label in labels] == [
        ("btn.reschedule_kind", "kind.delivery"), ("btn.cancel_kind", "kind.delivery"),
        ("btn.reschedule_kind", "kind.installation"), ("btn.cancel_kind", "kind.installation"),
    ]


async def test_the_reminders_confirm_is_recorded_and_shown_to_dispatchers(world: World):
    """Seen: the appointment reminder's Confirm recorded nothing."""
    order, customer, driver, group = await booked_and_accepted(world)
    visit_id = order.visits[0].id
    assert keys(await customer.press(f"ok:{visit_id}")) == ["customer.appointment_confirmed"]
    assert (await visit_row(world, visit_id)).appointment_confirmed_at == world.clock.now()
    job = await world.job(order.job.id)
    assert job["visits"][0]["appointment_confirmed_at"] == world.clock.now()
    assert [e for e in job["timeline"] if e["type"] == "AppointmentConfirmed"]
    assert keys(await customer.press(f"ok:{visit_id}")) == ["customer.appointment_already_confirmed"]
    # a problem alert about the visit says the customer expects them
    await group.inbox()
    await driver.press(f"rp:{visit_id}")
    await driver.press(f"rr:{visit_id}:customer_unreachable")
    await driver.press("rskip")
    await driver.press("rsend")
    alerts = [m for m in await group.inbox() if m.key == "customer.group_with_confirmation"]
    assert alerts and alerts[0].params["alert"]["key"] == "group.exception"


async def test_a_customers_cancellation_reaches_the_dispatchers(world: World):
    """Seen: a customer's cancellation was told only to the technician."""
    driver, _installer, group = await shop(world)
    order = await world.order(services=("delivery",))
    visit_id = order.visits[0].id
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await book_on(customer, visit_id, date(2026, 11, 25))  # beyond the cut-off
    await driver.press((await driver.inbox())[-1].button("acc"))
    await group.inbox()
    await customer.inbox()
    confirm = await customer.press(f"cx:{visit_id}")
    assert keys(await customer.press(confirm[0].button("cxy"))) == ["customer.cancelled"]
    alert = (await group.inbox())[-1]
    assert alert.key == "customer.group_cancelled" and alert.params["phone"] == "139****5678"
    assert alert.has_button("sc")
    assert keys(await driver.inbox()) == ["tech.visit_cancelled"]


# --- free text ------------------------------------------------------------------------------------


@pytest.fixture
def understood(monkeypatch):
    """Substitute the parser: each test says what the text means (the real one is tested on its own corpus)."""
    said: dict[str, Understood] = {}
    monkeypatch.setattr(customer_flow, "UNDERSTAND", lambda text, role, now, language: said.get(text, Understood(Intent.UNKNOWN)))
    return said


async def test_a_typed_day_and_part_of_day_is_proposed_and_moves_only_on_yes(world: World, understood):
    """Seen: "can you come Friday instead?" got the canned "use the buttons" hint, and nobody saw the text."""
    driver, _installer, group = await shop(world)
    order = await world.order(services=("delivery",))
    visit_id = order.visits[0].id
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    old = await book_on(customer, visit_id, date(2026, 11, 25))
    understood["can you come Friday afternoon instead?"] = Understood(Intent.RESCHEDULE, date(2026, 11, 27), PartOfDay.AFTERNOON)
    proposal = await customer.send("can you come Friday afternoon instead?")
    assert keys(proposal) == ["customer.propose_move"]
    yes = decode(proposal[0].button("sl"))
    assert yes.start.astimezone(world.container.policy.tz).hour == 14 and yes.start.day == 27
    assert proposal[0].has_button("rs")  # other times
    unchanged = await visit_row(world, visit_id)
    assert (unchanged.slot_start, unchanged.slot_end) == old  # nothing moves before Yes
    assert keys(await customer.press(proposal[0].button("sl"))) == ["customer.moved"]
    assert (await visit_row(world, visit_id)).slot_start == yes.start


async def test_a_reschedule_without_a_date_opens_the_day_picker(world: World, understood):
    await shop(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await book_on(customer, order.visits[0].id, date(2026, 11, 25))
    understood["I need another day"] = Understood(Intent.RESCHEDULE)
    assert keys(await customer.send("I need another day")) == ["customer.choose_slot"]


async def test_text_nobody_understands_reaches_the_dispatchers_with_phones_masked(world: World, understood):
    _driver, _installer, group = await shop(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await customer.inbox()
    answer = await customer.send("the box is huge, call my wife on 13811112222")
    # passed to people (the relay thread, conversations/flows/relay.py), never the bare hint
    assert keys(answer) and not keys(answer)[0].startswith("customer.hint")
    told = [m for m in await group.inbox() + await _driver.inbox() if "13811112222" not in str(m.params)]
    assert any("138****2222" in str(m.params) for m in told), [m.key for m in told]


async def test_a_change_of_address_is_acknowledged_and_told(world: World, understood):
    _driver, _installer, group = await shop(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    understood["we moved to 5 Fuzhou Road"] = Understood(Intent.CHANGE_ADDRESS)
    assert keys(await customer.send("we moved to 5 Fuzhou Road")) == ["customer.noted_change_address"]
    assert (await group.inbox())[-1].key == "customer.group_wrote_change_address"


async def test_where_is_the_technician_answers_in_one_line(world: World, understood):
    order, customer, driver, group = await booked_and_accepted(world)
    understood["师傅几点到"] = Understood(Intent.ETA)
    answer = await customer.send("师傅几点到")
    assert keys(answer) == ["customer.eta_accepted"] and answer[0].params["technician"] == "Wang"
    await driver.press(f"go:{order.visits[0].id}")
    await customer.inbox()
    assert keys(await customer.send("师傅几点到"))[0].startswith("customer.eta_on_the_way")


async def test_its_done_before_the_visit_is_finished_says_where_it_stands(world: World, understood):
    order, customer, driver, group = await booked_and_accepted(world)
    understood["it's done"] = Understood(Intent.DONE)
    answer = await customer.send("it's done")
    assert keys(answer) == ["customer.not_done_yet"]


async def test_cancel_in_words_asks_the_usual_confirmation(world: World, understood):
    await shop(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    await book_on(customer, order.visits[0].id, date(2026, 11, 25))
    understood["please cancel"] = Understood(Intent.CANCEL)
    asked = await customer.send("please cancel")
    assert keys(asked) == ["customer.cancel_confirm"] and asked[0].has_button("cxy")
    assert (await visit_row(world, order.visits[0].id)).status == "booked"


async def test_a_bare_date_while_choosing_shows_that_days_times(world: World, understood):
    await shop(world)
    order = await world.order(services=("delivery",))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    understood["28/11"] = Understood(Intent.UNKNOWN, date(2026, 11, 28))
    proposal = await customer.send("28/11")
    assert keys(proposal) == ["customer.propose_booking"]
    assert decode(proposal[0].button("sl")).start.day == 28
    assert keys(await customer.press(proposal[0].button("sl"))) == ["customer.booked"]
    assert isinstance(await visit_row(world, order.visits[0].id), Visit)
