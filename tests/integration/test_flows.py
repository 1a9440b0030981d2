"""Conversation flows through the engine: problems on site, dispatcher rights, rebooking, bad input, language."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.harness import SHOP, World, keys
from tests.support.setups import DELIVERY_STEPS, booked_and_accepted


@pytest.fixture
def database_url(sqlite_url) -> str:
    """These dialogues run on SQLite only."""
    return sqlite_url


async def test_a_damaged_delivery_reaches_the_group_and_only_dispatchers_can_act(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"go:{visit.id}")
    await driver.location(*SHOP)
    await group.inbox()  # a check-in from a pin is told to the dispatchers (tests/integration/test_staff_gaps.py)
    reasons = await driver.press(f"rp:{visit.id}")
    assert keys(reasons) == ["tech.report_reason"]
    assert keys(await driver.press(f"rr:{visit.id}:goods_damaged")) == ["tech.report_note"]
    assert keys(await driver.send("Corner crushed")) == ["tech.report_photo_required"]
    # a damaged-goods report needs a photo before it can be sent
    assert keys(await driver.press("rsend")) == ["tech.report_photo_required"]
    photo = world.media / "crushed.jpg"
    photo.write_bytes(b"\xff\xd8 jpeg")
    assert keys(await driver.photo(photo)) == ["tech.report_photo_added"]
    assert keys(await driver.press("rsend")) == ["tech.report_sent"]

    alert, album = await group.inbox()  # the photos follow the alert (tests/integration/test_evidence.py)
    assert (alert.key, album.key) == ("group.exception", "evidence.exception_photos")
    assert alert.params["photos"] == 1 and alert.params["note"] == "Corner crushed"
    assert alert.params["phone"] == "139****5678" and alert.params["customer"] == "Z**"

    # someone in the group who is not a dispatcher is refused, and nothing changes
    refused = await group.press(alert.button("xa"), user_id="nosy")
    assert keys(refused) == ["dispatcher.not_allowed"]
    assert (await world.job(order.job.id))["visits"][0]["status"] == "on_hold"

    # the dispatcher acknowledges: the driver may carry on where they stopped
    assert keys(await group.press(alert.button("xa"))) == ["card.alert_acknowledged"]  # the alert card, edited
    assert keys(await driver.inbox()) == ["tech.exception_acknowledged"]
    assert (await world.job(order.job.id))["visits"][0]["status"] == "on_site"
    assert keys(await group.press(alert.button("xa"))) == ["dispatch.already_acknowledged"]


async def test_a_dispatcher_reassigns_a_visit_to_another_eligible_technician(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    _, other_token = await world.technician("Chen", ["driver"])
    other = world.chat("staff", "other")
    await other.send(f"/start {other_token}")
    visit = order.visits[0]
    await driver.press(f"rp:{visit.id}")
    await driver.press(f"rr:{visit.id}:customer_unreachable")
    await driver.press("rskip")
    await driver.press("rsend")
    alert = (await group.inbox())[-1]
    picks = await group.press(alert.button("xr"))
    assert keys(picks) == ["dispatcher.pick_technician"]
    assert [label for label, _ in picks[0].buttons] == ["=", "btn.dispatch_assign_anyone"]  # the free one, then anyone skilled
    # the report's own card is edited too: resolved, by whom, without its stale buttons
    assert keys(await group.press(picks[0].button("xt"))) == ["dispatcher.reassigned", "card.alert_resolved"]
    assert keys(await other.inbox()) == ["tech.offer"]
    assert keys(await driver.inbox()) == ["tech.visit_taken_away"]
    accepted = await other.press(f"acc:{visit.id}")
    assert keys(accepted) == ["tech.accepted"]
    # the old driver's buttons are stale now
    assert keys(await driver.press(f"go:{visit.id}")) == ["hint.stale_button"]


async def test_a_dispatcher_cancels_a_visit_and_the_customer_is_told(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"rp:{visit.id}")
    await driver.press(f"rr:{visit.id}:wrong_address")
    await driver.send("No such building")
    await driver.press("rsend")
    alert = (await group.inbox())[-1]
    confirm = await group.press(alert.button("xc"))
    assert keys(confirm) == ["dispatcher.cancel_confirm"]
    assert keys(await group.press(confirm[0].button("xcy"))) == ["dispatcher.visit_cancelled", "card.alert_resolved"]
    assert keys(await customer.inbox()) == ["customer.visit_cancelled"]
    job = await world.job(order.job.id)
    assert job["status"] == "cancelled"


async def test_a_declined_offer_goes_to_the_next_technician_and_then_to_the_group(world: World):
    order, customer, driver, group = await booked_and_accepted(world, services=("delivery", "installation"))
    _, first_token = await world.technician("Li", ["installer"], ["sofa"])
    _, second_token = await world.technician("Zhao", ["installer"], ["sofa"])
    first, second = world.chat("staff", "i1"), world.chat("staff", "i2")
    await first.send(f"/start {first_token}")
    await second.send(f"/start {second_token}")
    installation = order.visits[1]
    choose = await customer.press(f"bk:{installation.id}")
    await customer.press(choose[0].buttons[0][1])
    offer = (await first.inbox())[-1]
    assert keys(await first.press(offer.button("dec"))) == ["tech.declined"]
    offer = (await second.inbox())[-1]
    assert offer.key == "tech.offer"
    assert keys(await second.press(offer.button("dec"))) == ["tech.declined"]
    assert (await group.inbox())[-1].key == "group.no_technician"
    # the first technician's old card is stale
    assert keys(await first.press(f"acc:{installation.id}")) == ["tech.offer_gone"]


async def test_checking_in_far_from_the_address_needs_a_reason(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"arr:{visit.id}")
    far = await driver.location(SHOP[0] + 0.05, SHOP[1])
    assert keys(far) == ["tech.too_far"] and far[0].params["distance"]["key"] == "unit.km"
    assert float(far[0].params["distance"]["params"]["n"]) > 5.0
    assert keys(await driver.send("Customer asked to meet at the warehouse")) == ["tech.checked_in"]
    job = await world.job(order.job.id)
    assert job["visits"][0]["status"] == "on_site" and job["visits"][0]["checkin_distance_m"] > 5000


async def test_the_customer_reschedules_before_the_cutoff_but_not_after(world: World):
    order, customer, driver, group = await booked_and_accepted(world, slot=-1)
    visit = order.visits[0]
    status = await customer.send("/status")
    assert status[0].has_button("rs")
    again = await customer.press(f"rs:{visit.id}")
    # the times to move to; nothing changes until one is picked (issue 10)
    assert keys(again) == ["customer.choose_slot"] and keys(await driver.inbox()) == []
    # move it five days ahead, then move the clock to within the cut-off
    later = [data for _label, data in again[0].buttons if data.startswith("bd:")][4]
    late = (await customer.press(later))[0].buttons[-2][1]
    assert keys(await customer.press(late)) == ["customer.moved"]
    assert keys(await driver.inbox()) == ["tech.visit_rescheduled", "tech.offer"]
    await driver.press(f"acc:{visit.id}")
    assert keys(await customer.inbox()) == ["customer.assigned"]
    start = int(late.split(":")[2])
    world.clock.set(datetime.fromtimestamp(start, timezone.utc) - timedelta(hours=2))
    assert keys(await customer.press(f"rs:{visit.id}")) == ["error.past_cutoff"]
    assert keys(await customer.press(f"cx:{visit.id}")) == ["customer.cancel_confirm"]
    assert keys(await customer.press(f"cxy:{visit.id}")) == ["error.past_cutoff"]


async def test_the_customer_cancels_a_delivery_and_its_installation_goes_too(world: World):
    order, customer, driver, group = await booked_and_accepted(world, services=("delivery", "installation"), slot=-1)
    delivery = order.visits[0]
    assert keys(await customer.press(f"cx:{delivery.id}")) == ["customer.cancel_confirm"]
    assert keys(await customer.press(f"cxy:{delivery.id}")) == ["customer.cancelled"]
    assert keys(await driver.inbox()) == ["tech.visit_cancelled"]
    job = await world.job(order.job.id)
    assert [v["status"] for v in job["visits"]] == ["cancelled", "cancelled"]


async def test_links_are_single_chat_and_bad_tokens_get_a_clear_answer(world: World):
    order = await world.order()
    first, second = world.chat("customer", "a"), world.chat("customer", "b")
    assert keys(await first.send("/start nonsense")) == ["error.link_invalid"]
    assert keys(await first.send(f"/start {order.customer_token}"))[0] == "customer.welcome"
    # opening it again in the same chat is fine; in another chat it is refused
    assert keys(await first.send(f"/start {order.customer_token}"))[0] == "customer.welcome"
    assert keys(await second.send(f"/start {order.customer_token}")) == ["error.link_used"]
    _, token = await world.technician("Wang", ["driver"])
    world.clock.advance(timedelta(days=8))
    assert keys(await world.chat("staff", "late").send(f"/start {token}")) == ["error.link_expired"]


async def test_every_state_answers_help_cancel_and_unexpected_input(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    assert keys(await driver.press(f"arr:{visit.id}")) == ["tech.share_location"]
    assert keys(await driver.sticker()) == ["tech.hint_location"]
    assert keys(await driver.send("I am here")) == ["tech.hint_location"]
    assert keys(await driver.send("/help")) == ["tech.help", "tech.hint_location"]
    assert keys(await driver.send("/dance")) == ["hint.unknown_command", "tech.hint_location"]
    assert keys(await driver.send("/cancel")) == ["common.cancelled", "tech.visit_card"]  # the visit, with its buttons
    assert keys(await driver.location(*SHOP)) == ["tech.hint_idle"]
    assert keys(await driver.press("nonsense:1")) == ["hint.stale_button"]
    assert keys(await driver.press("acc:99999")) == ["tech.offer_gone"]
    assert keys(await customer.sticker()) == ["customer.hint_idle"]
    assert keys(await customer.send("/help")) == ["customer.help", "customer.help_code", "customer.help_repair", "customer.hint_idle"]
    stranger = world.chat("customer", "stranger")
    assert keys(await stranger.send("hello?")) == ["customer.hint_new"]
    assert keys(await stranger.press("cf:1")) == ["customer.hint_new"]
    # in the group, chatter between people is not answered; commands are
    assert keys(await group.send("lunch?")) == []
    assert keys(await group.sticker()) == []
    assert keys(await group.send("/help")) == ["dispatcher.help"]


async def test_language_follows_the_client_and_can_be_switched(world: World):
    order = await world.order()
    customer = world.chat("customer", "zh-chat", language="zh-hans")
    welcome = await customer.send(f"/start {order.customer_token}")
    assert {m.payload["language"] for m in welcome} == {"zh"}
    menu = await customer.send("/lang")
    assert keys(menu) == ["lang.choose"]
    switched = await customer.press("lang:en")
    assert switched[0].payload["language"] == "en"
    assert (await customer.send("/status"))[0].payload["language"] == "en"


async def test_today_lists_the_day_in_order_with_the_next_action_on_each(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    _, token = await world.technician("Wang", ["driver"])
    driver = world.chat("staff", "driver")
    await driver.send(f"/start {token}")
    assert keys(await driver.send("/today")) == ["tech.today_header"]
    booked = []
    for n in range(2):
        order = await world.order(ref=f"SO-{n}", services=("delivery",), phone=f"1391234567{n}")
        customer = world.chat("customer", f"c{n}")
        welcome = await customer.send(f"/start {order.customer_token}")
        # the later slot first, so /today has to sort
        await customer.press(welcome[-1].buttons[1 - n][1])
        booked.append(order.visits[0].id)
    offers = await driver.inbox()
    await driver.press(offers[0].button("acc"))
    today = await driver.send("/today")
    assert keys(today) == ["tech.today_header", "tech.visit_card", "tech.visit_card"]
    assert today[0].params["count"] == 2
    assert [m.params["visit"] for m in today[1:]] == [booked[1], booked[0]]
    # the accepted one offers "on my way", the open offer still Accept / Decline
    assert today[2].has_button("go") and today[1].has_button("acc")
