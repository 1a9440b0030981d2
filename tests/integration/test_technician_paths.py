"""Technicians' paths through the engine on a database: hand back, assistance, return visits, repair codes, the
installer told the delivery is done, job notes on cards, the checklist's place kept, honest check-ins, private grab offers."""

from __future__ import annotations

from conversations import understanding
from conversations.understanding import Intent, Understood
from domain.model import DispatchRule
from services import backoffice
from tests.support.harness import SHOP, World, keys
from tests.support.setups import DELIVERY_STEPS, INSTALL_STEPS, booked_and_accepted, dispatch_group, staff

ADDRESS = "Huangpu District, 100 Nanjing East Road"


async def order_with_notes(world: World, services=("delivery",), category: str = "sofa"):
    request = backoffice.OrderRequest(
        source="erp", external_ref="SO-N", customer_name="Zhang Wei", customer_phone="13912345678", customer_language="en",
        address=ADDRESS, lat=SHOP[0], lon=SHOP[1], region="Huangpu", product_name="3-seat sofa", product_category=category, brand=None,
        services=tuple(backoffice.ServiceRequest(k) for k in services), items=({"name": "Sofa", "qty": 1}, {"name": "Legs", "qty": 4}),
        notes="call first, 3rd floor, no lift",
    )
    return await backoffice.place_order(world.container.bus, request)


def first_slot(messages) -> str:
    """The first bookable time offered (however the booking screens are laid out)."""
    return next(data for m in messages for _label, data in m.buttons if data.startswith("sl:"))


async def book_first(world: World, order, customer_id: str = "c"):
    customer = world.chat("customer", customer_id)
    welcome = await customer.send(f"/start {order.customer_token}")
    await customer.press(first_slot(welcome))
    return customer


async def on_site(world: World, chat, visit_id: int):
    await chat.press(f"go:{visit_id}")
    assert keys(await chat.location(SHOP[0], SHOP[1] + 0.001)) == ["tech.checked_in"]


async def test_the_installer_is_told_when_the_delivery_is_done(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, driver = await staff(world, "Wang", ["driver"])
    _, installer = await staff(world, "Li", ["installer"], ["sofa"])
    order = await world.order()
    delivery, installation = order.visits
    customer = await book_first(world, order)
    await driver.press((await driver.inbox())[-1].button("acc"))
    choose = await customer.press(f"bk:{installation.id}")
    await customer.press(first_slot(choose))
    await installer.press((await installer.inbox())[-1].button("acc"))
    await on_site(world, installer, installation.id)
    await on_site(world, driver, delivery.id)
    first = await driver.press(f"st:{delivery.id}")
    await driver.press(first[0].button("ans").rsplit(":", 1)[0] + ":yes")
    await driver.press(f"done:{delivery.id}")
    told = await installer.inbox()
    assert keys(told) == ["tech.dependency_done"] and told[0].button("st") == f"st:{installation.id}"
    assert keys(await installer.press(f"st:{installation.id}")) == ["tech.step_yes_no"]


async def test_job_notes_and_items_are_on_the_offer_in_today_and_at_check_in(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    _, driver = await staff(world, "Wang", ["driver"])
    order = await order_with_notes(world)
    await book_first(world, order)
    offer = (await driver.inbox())[-1]
    assert offer.key == "tech.with_brief" and offer.params["card"]["key"] == "tech.offer"
    assert "3rd floor" in offer.params["brief"]["params"]["text"] and "Legs × 4" in offer.params["brief"]["params"]["text"]
    await driver.press(offer.button("acc"))
    today = await driver.send("/today")
    assert today[1].key == "tech.with_brief" and "no lift" in today[1].params["brief"]["params"]["text"]
    await driver.press(f"go:{order.visits[0].id}")
    checked_in = await driver.location(SHOP[0], SHOP[1])
    assert keys(checked_in) == ["tech.with_brief"] and checked_in[0].params["card"]["key"] == "tech.checked_in"


async def test_the_checklist_place_survives_cancel_in_the_problem_menu_a_report_and_a_restart(world: World, database_url, tmp_path):
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, installer = await staff(world, "Li", ["installer"], ["sofa"])
    group = await dispatch_group(world)
    order = await world.order(services=("installation",))
    visit = order.visits[0]
    await book_first(world, order)
    await installer.press((await installer.inbox())[-1].button("acc"))
    await on_site(world, installer, visit.id)
    first = await installer.press(f"st:{visit.id}")
    second = await installer.press(first[0].button("ans").rsplit(":", 1)[0] + ":yes")
    assert keys(second) == ["tech.step_number"]

    # /today mid-visit counts the visit under way, with the button that carries on
    today = await installer.send("/today")
    assert today[0].params["count"] == 1 and today[1].has_button("ck")

    # the problem menu, then /cancel: back at the step where it stopped
    await installer.press(f"rp:{visit.id}")
    back = await installer.send("/cancel")
    assert keys(back) == ["common.cancelled", "tech.step_number"]

    # a report sent and acknowledged: the acknowledgement carries on from the same step
    await installer.press(f"rp:{visit.id}")
    await installer.press(f"rr:{visit.id}:other")
    await installer.press("rskip")
    await installer.press("rsend")
    alert = (await group.inbox())[-1]
    await group.press(alert.button("xa"))
    acknowledged = await installer.inbox()
    assert keys(acknowledged) == ["tech.exception_acknowledged"]
    assert keys(await installer.press(acknowledged[0].button("ck"))) == ["tech.step_number"]

    # a restart: a new process on the same database still knows the place
    await world.close()
    again = await World.create(database_url, tmp_path)
    try:
        installer = again.chat("staff", "tech-li")
        await installer.inbox()  # what was sent before the restart
        assert keys(await installer.send("7")) == ["tech.step_choice"]
    finally:
        await again.close()
        world.container = again.container  # the fixture closes it once more, harmlessly


async def test_a_technician_hands_back_one_visit_and_it_is_offered_to_the_next(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    wang_id, wang = await staff(world, "Wang", ["driver"])
    _, chen = await staff(world, "Chen", ["driver"])
    order = await world.order(services=("delivery",))
    visit = order.visits[0]
    await book_first(world, order)
    offered = [chat for chat in (wang, chen) if any(m.key == "tech.offer" for m in await chat.inbox())]
    first, other = offered[0], (chen if offered[0] is wang else wang)
    await first.press(f"acc:{visit.id}")
    options = await first.press(f"vo:{visit.id}")
    assert options[0].has_button("hb")
    assert keys(await first.press(f"hb:{visit.id}")) == ["tech.hand_back_reason"]
    assert keys(await first.send("Van broke down")) == ["tech.handed_back"]
    offer = (await other.inbox())[-1]
    assert offer.key == "tech.offer" and offer.params["visit"] == visit.id
    job = await world.job(visit.job_id)
    handed = [e for e in job["timeline"] if e["type"] == "VisitHandedBack"]
    assert handed and handed[0]["data"]["reason"] == "Van broke down"
    assert keys(await first.press(f"acc:{visit.id}")) == ["tech.offer_gone"]  # not offered to them again


async def test_asking_for_assistance_brings_a_free_skilled_colleague_or_tells_the_dispatchers(world: World):
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, li = await staff(world, "Li", ["installer"], ["sofa"])
    group = await dispatch_group(world)
    order = await world.order(services=("installation",))
    visit = order.visits[0]
    await book_first(world, order)
    await li.press((await li.inbox())[-1].button("acc"))
    await on_site(world, li, visit.id)
    # nobody else: the dispatchers are told, with a way to act
    assert keys(await li.press(f"hlp:{visit.id}")) == ["tech.assistance_requested"]
    alert = (await group.inbox())[-1]
    assert alert.key == "tech.to_group_no_assistance" and alert.has_button("sc")
    # free colleagues are asked; the first to join gets the place and the address, and the requester is told who
    _, zhou = await staff(world, "Zhou", ["installer"], ["sofa"])
    _, wu = await staff(world, "Wu", ["installer"], ["sofa"])
    assert keys(await li.press(f"hlp:{visit.id}")) == ["tech.assistance_requested"]
    asked = (await zhou.inbox())[-1]
    assert asked.key == "tech.assist_offer" and "address" not in asked.params and (await wu.inbox())[-1].key == "tech.assist_offer"
    assert keys(await zhou.press(asked.button("jn"))) == ["tech.crew_assigned"]
    told = await li.inbox()
    assert keys(told) == ["tech.assistance_joined"] and told[0].params["name"] == "Zhou"
    assert keys(await wu.press(f"jn:{visit.id}")) == ["error.assistance_not_needed"]  # the place is taken
    job = await world.job(visit.job_id)
    assert [m["name"] for m in job["visits"][0]["crew"]] == ["Zhou"]


async def test_a_visit_ending_needing_a_return_creates_a_follow_up_the_customer_books(world: World):
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, driver = await staff(world, "Wang", ["driver"])
    _, installer = await staff(world, "Li", ["installer"], ["sofa"])
    order = await world.order()
    delivery, installation = order.visits
    customer = await book_first(world, order)
    await driver.press((await driver.inbox())[-1].button("acc"))
    await on_site(world, driver, delivery.id)
    await customer.inbox()
    await driver.press(f"rv:{delivery.id}")
    await driver.press(f"rvr:{delivery.id}:other")
    assert keys(await driver.send("Wrong colour delivered")) == ["tech.return_visit_created"]
    told = await customer.inbox()
    assert keys(told) == ["tech.to_customer_return_visit"]
    book = told[0].button("bk")
    job = await world.job(order.job.id)
    by_id = {v["id"]: v for v in job["visits"]}
    follow_up = next(v for v in job["visits"] if v["follow_up_of_visit_id"] == delivery.id)
    assert book == f"bk:{follow_up['id']}" and follow_up["status"] == "created" and follow_up["kind"] == "delivery"
    assert by_id[delivery.id]["status"] == "return_needed" and by_id[delivery.id]["return_reason"] == "other: Wrong colour delivered"
    assert by_id[installation.id]["depends_on_visit_id"] == follow_up["id"]  # the installation now waits for the return visit
    chosen = await customer.press(book)
    assert keys(chosen) and chosen[0].buttons  # the customer gets times to pick


async def test_a_repair_records_its_fault_category_and_method_shown_in_the_job(world: World):
    _, repairer = await staff(world, "Sun", ["repairer"], ["washer"])
    order = await world.order(services=("repair",), category="washer", product="Washing machine")
    visit = order.visits[0]
    await book_first(world, order)
    await repairer.press((await repairer.inbox())[-1].button("acc"))
    await on_site(world, repairer, visit.id)
    started = await repairer.press(f"st:{visit.id}")
    causes = await repairer.press(started[0].button("done"))
    assert keys(causes) == ["tech.repair_cause"]  # the fault tree (conversations/flows/stock.py, tests/integration/test_stock.py)
    wear = next(data for label, data in causes[0].buttons if label == "repair.cause.natural_wear")
    faults = await repairer.press(wear)
    seal = next(data for label, data in faults[0].buttons if label == "repair.fault.seal_worn")
    methods = await repairer.press(seal)
    replaced = next(data for label, data in methods[0].buttons if label == "repair.method.part_replaced")
    no_parts = (await repairer.press(replaced))[0].button("rcd")
    fixed = next(data for _label, data in (await repairer.press(no_parts))[0].buttons if data.endswith(":fixed"))
    assert keys(await repairer.press(fixed)) == ["tech.repair_completed"]
    job = await world.job(order.job.id)
    assert job["visits"][0]["status"] == "completed"
    assert (job["visits"][0]["fault_category"], job["visits"][0]["repair_method"]) == ("natural_wear/seal_worn", "part_replaced")


async def test_grab_cards_hide_the_customer_until_won_then_the_winner_gets_the_details(world: World):
    await world.template("installation", "sofa", INSTALL_STEPS)
    await world._tx(lambda store: store.add(DispatchRule(mode="grab", region="Huangpu", service_kind="installation", grab_top_n=3, grab_minutes=30)))
    chats = [(await staff(world, f"Inst{n}", ["installer"], ["sofa"]))[1] for n in range(2)]
    order = await world.order(services=("installation",))
    await book_first(world, order)
    cards = [(await chat.inbox())[-1] for chat in chats]
    for card in cards:
        assert card.key == "tech.offer_grab" and card.params["region"] == "Huangpu"
        assert "customer" not in card.params and "phone" not in card.params and "address" not in card.params
    details = [m for m in await chats[0].press(cards[0].button("acc")) if m.key == "tech.offer_won_details"]
    assert details and details[0].params["phone"] == "13912345678" and details[0].params["address"] == ADDRESS
    assert not [m for m in await chats[1].inbox() if "phone" in m.params]


async def test_a_check_in_far_away_is_not_told_to_the_customer_and_is_recorded_with_its_kind(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await group.inbox()
    await driver.press(f"arr:{visit.id}")
    await driver.location(SHOP[0] + 0.02, SHOP[1])  # about 2.2 km away
    assert keys(await driver.send("Customer asked to meet at the warehouse")) == ["tech.checked_in"]
    assert "customer.arrived" not in keys(await customer.inbox())
    flagged = (await group.inbox())[-1]
    assert flagged.key == "tech.to_group_checkin_flagged" and flagged.params["distance"]["key"] == "unit.km" and float(flagged.params["distance"]["params"]["n"]) > 2.0 and flagged.has_button("sc")
    job = await world.job(order.job.id)
    assert job["visits"][0]["checkin_kind"] == "static" and job["visits"][0]["checkin_distance_m"] > 2000


async def test_live_location_at_the_address_checks_in_as_live_and_the_customer_is_told(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"go:{visit.id}")
    await customer.inbox()
    await driver.location(SHOP[0], SHOP[1], live=True)
    assert "customer.arrived" in keys(await customer.inbox())
    job = await world.job(order.job.id)
    assert job["visits"][0]["checkin_kind"] == "live"


async def test_late_typed_in_free_text_gives_the_customer_a_new_estimate(world: World, monkeypatch):
    monkeypatch.setattr(understanding, "understand", lambda text, role, now, language=None: Understood(Intent.LATE, minutes=20))
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    assert keys(await driver.send("堵车了，晚到20分钟")) == ["tech.late_noted"]
    told = await customer.inbox()
    assert keys(told) == ["tech.to_customer_running_late"] and told[0].params["minutes"] == 20
    job = await world.job(order.job.id)
    assert job["visits"][0]["late_minutes"] == 20
    assert any(e["type"] == "RunningLate" for e in job["timeline"])
    assert visit.id == job["visits"][0]["id"]


async def test_a_grab_candidate_listing_their_visits_sees_no_more_than_the_card(world: World):
    await world.template("installation", "sofa", INSTALL_STEPS)
    await world._tx(lambda store: store.add(DispatchRule(mode="grab", region="Huangpu", service_kind="installation", grab_top_n=3, grab_minutes=30)))
    _, candidate = await staff(world, "Inst0", ["installer"], ["sofa"])
    order = await world.order(services=("installation",))
    await book_first(world, order)
    await candidate.inbox()
    listed = await candidate.send("/visits")
    assert keys(listed) == ["tech.offer_grab"] and listed[0].has_button("acc")
    assert "13912345678" not in str(listed[0].payload) and "Zhang Wei" not in str(listed[0].payload)
