"""Staff-side gaps of "no dead ends" (issue 10 review): a call for help nobody answers, check-ins from a pin near the
address, the grab winner's one message, a dispatcher filling a short crew's seat, and an override that settles a report."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from domain.model import DispatchRule, ProblemReport, Visit
from services import backoffice
from storage.repository import Store
from storage.threads import ThreadStore
from tests.integration.test_capacity_crew import book, offered, order
from tests.integration.test_technician_paths import book_first, on_site
from tests.support.harness import SHOP, World, keys
from tests.support.setups import INSTALL_STEPS, booked_and_accepted, dispatch_group, give, staff


@pytest.fixture
def database_url(sqlite_url) -> str:
    """These dialogues run on SQLite only."""
    return sqlite_url


async def reports(world: World, visit_id: int) -> list[ProblemReport]:
    async with world.container.sessions() as session:
        return await ThreadStore(Store(session)).reports_of_visits([visit_id])


async def occupy(world: World, visit_id: int, technician_id: int, start, end) -> None:
    """The technician holds another visit for the whole of that window (it cannot share it with a second stop)."""
    await give(world, visit_id, technician_id, start, end)

    async def lengthen(store: Store):
        (await store.get(Visit, visit_id)).duration_minutes = int((end - start).total_seconds() // 60)

    await world._tx(lengthen)


async def timeline_types(world: World, job_id: int) -> list[str]:
    return [e["type"] for e in (await world.job(job_id))["timeline"]]


# --- 1. a call for help nobody answers does not hang -------------------------------------------------------


async def helping_hand(world: World, colleagues: int):
    """Li on site at an installation, ``colleagues`` free skilled installers, a bound group; Li asks for help."""
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, li = await staff(world, "Li", ["installer"], ["sofa"])
    others = [await staff(world, f"Mate{n}", ["installer"], ["sofa"]) for n in range(colleagues)]
    group = await dispatch_group(world)
    order_ = await world.order(services=("installation",))
    visit = order_.visits[0]
    await book_first(world, order_)
    await li.press((await li.inbox())[-1].button("acc"))
    await on_site(world, li, visit.id)
    await group.inbox()
    assert keys(await li.press(f"hlp:{visit.id}")) == ["tech.assistance_requested"]
    return li, others, group, visit


async def test_a_call_for_help_nobody_answers_goes_to_the_dispatchers_in_time_and_the_asker_is_told(world: World):
    li, [(zhou_id, zhou)], group, visit = await helping_hand(world, 1)
    asked = (await zhou.inbox())[-1]
    assert asked.key == "tech.assist_offer" and asked.has_button("jn")

    world.clock.advance(world.container.policy.assist_timeout - timedelta(minutes=1))
    await world.sweep()
    assert await li.inbox() == [] and await group.inbox() == []  # not yet

    world.clock.advance(timedelta(minutes=2))
    await world.sweep()
    told = await li.inbox()
    assert keys(told) == ["tech.assistance_timed_out_dispatchers"]
    alert = [m for m in await group.inbox() if m.key == "tech.to_group_assistance_timed_out"]
    assert len(alert) == 1 and alert[0].params["visit"] == visit.id
    for prefix in ("dan", "sc"):
        assert alert[0].has_button(prefix), prefix
    # the unanswered card loses its Join: the call is over
    expired = await zhou.inbox()
    assert keys(expired) == ["tech.assist_offer_expired"] and not expired[0].has_button("jn")
    assert expired[0].payload.get("card") == asked.payload.get("card") is not None
    assert "AssistanceTimedOut" in await timeline_types(world, visit.job_id)

    # nothing fires twice
    world.clock.advance(timedelta(hours=1))
    await world.sweep()
    assert await li.inbox() == [] and await group.inbox() == []

    # the dispatcher's "Assign anyone" fills the open seat: Li stays the lead, Zhou joins the crew
    listing = await group.press(alert[0].button("dan"))
    pick = next(data for _label, data in listing[0].buttons if data.endswith(f":{zhou_id}"))
    await group.press(pick)
    shown = (await world.job(visit.job_id))["visits"][0]
    assert shown["technician"]["name"] == "Li" and [m["name"] for m in shown["crew"]] == ["Mate0"]
    assert "tech.crew_assigned" in keys(await zhou.inbox())


async def test_a_call_for_help_nobody_answers_goes_on_to_the_next_free_colleagues(world: World):
    li, others, group, visit = await helping_hand(world, 4)
    first = [chat for _id, chat in others if "tech.assist_offer" in keys(await chat.inbox())]
    rest = [chat for _id, chat in others if chat not in first]
    assert len(first) == 3 and len(rest) == 1
    world.clock.advance(world.container.policy.assist_timeout + timedelta(minutes=1))
    await world.sweep()
    told = await li.inbox()
    assert keys(told) == ["tech.assistance_timed_out_next"] and told[0].params["count"] == 1
    assert "tech.assist_offer" in keys(await rest[0].inbox())
    for chat in first:
        assert keys(await chat.inbox()) == ["tech.assist_offer_expired"]
    assert await group.inbox() == []
    # the next one joins: Li hears who, and the second round's timer changes nothing any more
    assert keys(await rest[0].press(f"jn:{visit.id}")) == ["tech.crew_assigned"]
    assert keys(await li.inbox()) == ["tech.assistance_joined"]
    world.clock.advance(world.container.policy.assist_timeout + timedelta(minutes=1))
    await world.sweep()
    assert await li.inbox() == [] and await group.inbox() == []


# --- 2. a check-in from a pin near the address is told to the dispatchers ---------------------------------


async def test_a_check_in_from_a_pin_at_the_address_tells_the_dispatchers_once_and_the_customer_arrived(world: World):
    order_, customer, driver, group = await booked_and_accepted(world)
    visit = order_.visits[0]
    await driver.press(f"go:{visit.id}")
    await customer.inbox()
    await group.inbox()
    assert keys(await driver.location(SHOP[0], SHOP[1] + 0.001)) == ["tech.checked_in"]  # a pin, about 100 m away
    assert "customer.arrived" in keys(await customer.inbox())
    flagged = [m for m in await group.inbox() if m.key.startswith("tech.to_group_checkin")]
    assert len(flagged) == 1 and flagged[0].key == "tech.to_group_checkin_static"
    assert flagged[0].params["visit"] == visit.id and flagged[0].has_button("sc")
    job = await world.job(order_.job.id)
    assert job["visits"][0]["checkin_kind"] == "static" and job["visits"][0]["checkin_distance_m"] < 500
    assert (await timeline_types(world, order_.job.id)).count("CheckInFlagged") == 1


async def test_a_live_check_in_at_the_address_alerts_nobody_and_a_far_pin_alerts_once(world: World):
    order_, customer, driver, group = await booked_and_accepted(world)
    visit = order_.visits[0]
    await driver.press(f"go:{visit.id}")
    await group.inbox()
    await driver.location(SHOP[0], SHOP[1], live=True)
    assert not [m for m in await group.inbox() if m.key.startswith("tech.to_group_checkin")]

    # a second delivery for the same driver, checked in from a pin about 2.2 km away: static and far, still one alert
    other = await world.order("SO-2", services=("delivery",), phone="13900000002")
    await book_first(world, other, "c2")
    second = other.visits[0]
    await driver.press(f"acc:{second.id}")
    await driver.press(f"go:{second.id}")
    await group.inbox()
    await driver.location(SHOP[0] + 0.02, SHOP[1])
    await driver.send("Customer asked to meet at the warehouse")
    flagged = [m for m in await group.inbox() if m.key.startswith("tech.to_group_checkin")]
    assert keys(flagged) == ["tech.to_group_checkin_flagged"] and flagged[0].params["visit"] == second.id


# --- 3. the grab winner gets one message -------------------------------------------------------------------


async def test_the_grab_winner_gets_one_message_the_card_itself_with_the_details(world: World):
    await world.template("installation", "sofa", INSTALL_STEPS)
    await world._tx(lambda store: store.add(DispatchRule(mode="grab", region="Huangpu", service_kind="installation", grab_top_n=3, grab_minutes=30)))
    chats = [(await staff(world, f"Inst{n}", ["installer"], ["sofa"]))[1] for n in range(2)]
    order_ = await world.order(services=("installation",))
    await book_first(world, order_)
    cards = [(await chat.inbox())[-1] for chat in chats]
    won = await chats[0].press(cards[0].button("acc"))
    assert len(won) == 1  # before: "Accepted" and then the details, two messages for one press
    assert keys(won) == ["tech.offer_won_details"] and won[0].has_button("go") and won[0].params["phone"] == "13912345678"
    assert won[0].payload.get("card") == cards[0].payload.get("card") is not None  # edits the grab card in place
    lost = await chats[1].inbox()
    assert keys(lost) == ["tech.offer_lost"]


# --- 4. "Assign anyone" on a short crew fills the seat --------------------------------------------------------


async def test_an_override_on_a_short_crew_fills_the_missing_seat_and_keeps_the_lead(world: World):
    group = await dispatch_group(world)
    lead, lead_chat = await staff(world, "Wang", ["installer"], ["sofa"])
    (visit,) = await order(world, "PIANO", backoffice.ServiceRequest("installation", crew_size=2))
    await book(world, visit, time(14), time(16))
    await offered(world, visit, lead)
    # Chen holds another installation at that very time: he can only join by an override
    chen, chen_chat = await staff(world, "Chen", ["installer"], ["sofa"])
    (elsewhere,) = await order(world, "TABLE", backoffice.ServiceRequest("installation"))
    await book(world, elsewhere, time(14), time(16))
    shown = (await world.job(visit.job_id))["visits"][0]
    await occupy(world, elsewhere.id, chen, shown["slot_start"], shown["slot_end"])
    await lead_chat.press(f"acc:{visit.id}")
    alert = [m for m in await group.inbox() if m.key == "group.no_technician_planned"]
    assert len(alert) == 1

    listing = await group.press(alert[0].button("dan"))
    assert keys(listing) == ["dispatch.pick_anyone"]
    busy = listing[0].button("dab")
    assert busy == f"dab:{visit.id}:{chen}"
    confirm = await group.press(busy)
    assert keys(await group.press(confirm[0].button("dao"))) == ["dispatch.seat_filled"]  # not "offered": nobody is replaced
    shown = (await world.job(visit.job_id))["visits"][0]
    assert shown["technician"]["id"] == lead and [m["id"] for m in shown["crew"]] == [chen]
    assert shown["status"] == "accepted"
    assert "tech.crew_assigned" in keys(await chen_chat.inbox())
    assert "tech.visit_taken_away" not in keys(await lead_chat.inbox())
    assert "ConflictOverridden" in await timeline_types(world, visit.job_id)
    # the crew is full now: a second press does not replace anyone
    again = await group.press(confirm[0].button("dao"))
    assert "dispatch.seat_filled" not in keys(again) and "dispatch.overridden" not in keys(again)
    assert (await world.job(visit.job_id))["visits"][0]["technician"]["id"] == lead


# --- 5. an override from a problem report's alert settles the report ------------------------------------------


async def test_an_override_from_a_problem_reports_alert_resolves_it_and_edits_its_card(world: World):
    order_, customer, driver, group = await booked_and_accepted(world)
    visit = order_.visits[0]
    # Chen has a delivery of his own in the same window: taking this one over is an override
    chen_id, chen = await staff(world, "Chen", ["driver"])
    other = await world.order("SO-2", services=("delivery",), phone="13900000002")
    shown = (await world.job(order_.job.id))["visits"][0]
    await occupy(world, other.visits[0].id, chen_id, shown["slot_start"], shown["slot_end"])
    await driver.press(f"rp:{visit.id}")
    await driver.press(f"rr:{visit.id}:customer_unreachable")
    await driver.press("rskip")
    await driver.press("rsend")
    alert = [m for m in await group.inbox() if m.key == "group.exception"][-1]
    card = alert.payload["card"]

    options = await group.press(alert.button("xr"))
    listing = await group.press(options[0].button("dan"))
    confirm = await group.press(listing[0].button("dab"))
    answer = await group.press(confirm[0].button("dao"))
    assert "dispatch.overridden" in keys(answer)
    edited = [m for m in answer if m.payload.get("card") == card]
    assert len(edited) == 1 and keys(edited) == ["card.alert_resolved"]
    assert not edited[0].has_button("xa") and not edited[0].has_button("xr") and not edited[0].has_button("xc")
    job = await world.job(order_.job.id)
    [report] = await reports(world, visit.id)
    assert (report.status, report.resolution) == ("resolved", "reassigned")
    resolved = [e for e in job["timeline"] if e["type"] == "ExceptionResolved"]
    assert len(resolved) == 1 and resolved[0]["data"]["name"] == "Dora" and resolved[0]["data"]["at"]
    assert job["visits"][0]["technician"]["id"] == chen_id
    # the old card's buttons are stale now: pressing one says it was handled
    assert keys(await group.press(alert.button("xa"))) == ["dispatcher.already_handled"]


async def test_picking_a_free_technician_from_a_problem_reports_alert_resolves_it_too(world: World):
    order_, customer, driver, group = await booked_and_accepted(world)
    visit = order_.visits[0]
    chen_id, chen = await staff(world, "Chen", ["driver"])
    await driver.press(f"rp:{visit.id}")
    await driver.press(f"rr:{visit.id}:customer_unreachable")
    await driver.press("rskip")
    await driver.press("rsend")
    alert = [m for m in await group.inbox() if m.key == "group.exception"][-1]
    options = await group.press(alert.button("xr"))
    answer = await group.press(options[0].button("xt"))
    assert [m for m in answer if m.payload.get("card") == alert.payload["card"] and m.key == "card.alert_resolved"]
    job = await world.job(order_.job.id)
    assert [r.status for r in await reports(world, visit.id)] == ["resolved"]
    assert [e["data"]["name"] for e in job["timeline"] if e["type"] == "ExceptionResolved"] == ["Dora"]

