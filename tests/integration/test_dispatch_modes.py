"""Dispatch modes: grab orders (first Accept wins, the others' cards turn to "taken"), expiry fallback, manual picks."""

from __future__ import annotations

import asyncio
from datetime import timedelta


from services.messages import InboundKind
from domain.dispatch import rule_for
from domain.model import DispatchRule
from tests.support.harness import World, keys
from tests.support.setups import INSTALL_STEPS


async def setup(world: World, mode: str, installers: int = 3):
    await world.template("installation", "sofa", INSTALL_STEPS)
    await world._tx(lambda store: store.add(DispatchRule(mode=mode, region="Huangpu", service_kind="installation", grab_top_n=3, grab_minutes=30)))
    chats = []
    for n in range(installers):
        _, token = await world.technician(f"Inst{n}", ["installer"], ["sofa"])
        chat = world.chat("staff", f"inst{n}")
        await chat.send(f"/start {token}")
        chats.append(chat)
    group = world.chat("staff", "g", user_id="dora", chat_type="group", name="Dora")
    await group.send(f"/start {await world.dispatcher()}")
    await group.send(f"/start {await world.group()}")
    order = await world.order(services=("installation",))
    customer = world.chat("customer", "c")
    welcome = await customer.send(f"/start {order.customer_token}")
    assert keys(await customer.press(welcome[-1].buttons[0][1])) == ["customer.booked"]
    return order.visits[0], customer, chats, group


async def test_a_grab_offer_reaches_the_top_technicians_and_only_the_first_accept_wins(world: World):
    visit, customer, installers, group = await setup(world, "grab")
    cards = [await chat.inbox() for chat in installers]
    assert [keys(c) for c in cards] == [["tech.offer_grab"]] * 3  # district and job only, until won
    first, second, third = installers
    presses = [chat.event(InboundKind.BUTTON, text=f"acc:{visit.id}") for chat in (first, second)]
    await asyncio.gather(*(world.container.engine.handle(p) for p in presses))
    answers = sorted(keys(await first.inbox()) + keys(await second.inbox()))
    # the winner is told it is theirs; the loser's card is edited to "taken", and their press answered
    # "gone" (it came after) or "taken" (it raced the winner's commit and lost)
    assert answers in (
        # the winner's one message is the won card with the customer's details (tests/integration/test_staff_gaps.py)
        ["tech.offer_gone", "tech.offer_lost", "tech.offer_won_details"],
        ["error.offer_taken", "tech.offer_lost", "tech.offer_won_details"],
    )
    edits = await third.inbox()
    assert keys(edits) == ["tech.offer_lost"] and edits[0].payload["card"] == f"offer:{visit.id}"
    assert keys(await customer.inbox()) == ["customer.assigned"]
    job = await world.job(visit.job_id)
    assert job["visits"][0]["status"] == "accepted"
    assert sum(e["type"] == "VisitAccepted" for e in job["timeline"]) == 1


async def test_grab_offers_nobody_takes_expire_and_fall_back_to_automatic_dispatch(world: World):
    visit, customer, installers, group = await setup(world, "grab")
    for chat in installers:
        await chat.inbox()
    assert await world.sweep() == 0
    world.clock.advance(timedelta(minutes=29))
    await world.sweep()
    assert [keys(await chat.inbox()) for chat in installers] == [[], [], []]
    world.clock.advance(timedelta(minutes=2))
    await world.sweep()
    inboxes = [keys(await chat.inbox()) for chat in installers]
    assert all(inbox[0] == "tech.offer_expired" for inbox in inboxes)
    assert sorted(len(inbox) for inbox in inboxes) == [1, 1, 2]  # one of them now has a direct offer
    assert ["tech.offer_expired", "tech.offer"] in inboxes
    # a second sweep finds nothing to do
    await world.sweep()
    assert [keys(await chat.inbox()) for chat in installers] == [[], [], []]


async def test_when_every_grab_offer_is_declined_the_dispatchers_are_alerted(world: World):
    visit, customer, installers, group = await setup(world, "grab")
    for chat in installers:
        assert keys(await chat.inbox()) == ["tech.offer_grab"]
        assert keys(await chat.press(f"dec:{visit.id}")) == ["tech.declined"]
    assert (await group.inbox())[-1].key == "group.no_technician"


async def test_in_manual_mode_a_dispatcher_picks_from_a_ranked_list(world: World):
    visit, customer, installers, group = await setup(world, "manual")
    assert [keys(await chat.inbox()) for chat in installers] == [[], [], []]
    alert = (await group.inbox())[-1]
    # the three ranked installers, then the ways out when none of them will do (anyone skilled, move, call, cancel)
    assert alert.key == "group.pick_technician" and [data.split(":")[0] for _label, data in alert.buttons][:3] == ["as"] * 3
    assert alert.has_button("dan") and alert.has_button("dmv") and alert.has_button("dcx")
    pick = alert.buttons[1][1]
    assert keys(await group.press(pick, user_id="nosy")) == ["dispatcher.not_allowed"]
    assert keys(await group.press(pick)) == ["dispatcher.assigned"]
    name = alert.payload["buttons"][1][0]["label"]["params"]["text"]
    chosen = installers[int(name.removeprefix("Inst"))]
    offer = (await chosen.inbox())[-1]
    assert offer.key == "tech.offer"
    assert keys(await chosen.press(offer.button("acc"))) == ["tech.accepted"]


def test_the_most_specific_dispatch_rule_wins():
    rules = [
        DispatchRule("auto"),
        DispatchRule("grab", region="Huangpu"),
        DispatchRule("manual", region="Huangpu", service_kind="repair"),
        DispatchRule("grab", service_kind="delivery"),
    ]
    assert rule_for(rules, "Huangpu", "repair").mode == "manual"
    assert rule_for(rules, "Huangpu", "installation").mode == "grab"
    assert rule_for(rules, "Pudong", "delivery").mode == "grab"
    assert rule_for(rules, "Pudong", "installation").mode == "auto"
    assert rule_for([], "Pudong", "installation").mode == "auto"
