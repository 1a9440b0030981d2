"""Completion codes (核销码) and the delivered-item check, as the customer, the driver and the dispatchers live them."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from sqlalchemy import select

from domain.completion_codes import MAX_WRONG_PER_CODE, MAX_WRONG_PER_TECHNICIAN_DAY
from domain.model import ProblemReport, Visit
from fieldchat import logs
from services import backoffice
from storage import tables
from storage.completion_codes import CodeStore
from storage.repository import Store
from storage.threads import ThreadStore
from tests.support.harness import SHOP, Chat, Msg, World, keys
from tests.support.setups import booked_and_accepted


@pytest.fixture
def world_settings() -> dict:
    return {"replan_seconds": 0.5, "completion_codes": "delivery"}


def code_in(messages: list[Msg]) -> str:
    """The code as the customer's chat shows it (its message's parameters: never anywhere else)."""
    found = [m.params["code"] for m in messages if m.key in ("customer.completion_code", "customer.completion_code_new")]
    assert found, [m.key for m in messages]
    return found[-1]


async def at_work(world: World, *, photo: bool = False):
    """A delivery booked and accepted; the driver sets off (the code goes to the customer), checks in and answers the
    checklist. Returns the order, the chats and the code the customer got."""
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    set_off = await driver.press(f"go:{visit.id}")
    code = code_in(await customer.inbox())
    assert "tech.code_will_be_needed" in keys(set_off)
    assert keys(await driver.location(SHOP[0], SHOP[1], live=True)) == ["tech.checked_in"]
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    await group.inbox()
    return order, customer, driver, group, code


def wrong(code: str, n: int = 1) -> str:
    """Another code of the same shape: the real one turned by ``n``."""
    return f"{(int(code) + n) % 10**6:06d}"


async def visit_status(world: World, visit_id: int) -> str:
    async with world.container.sessions() as session:
        return (await Store(session).get(Visit, visit_id)).status


async def test_the_code_goes_to_the_customer_on_set_off_and_completion_waits_for_it(world: World):
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    assert re.fullmatch(r"\d{6}", code)

    # Complete asks for the code instead of completing; the visit is still in progress
    asked = await driver.press(f"done:{visit.id}")
    assert keys(asked) == ["tech.code_ask"] and asked[0].has_button("ccn") and asked[0].has_button("dnm")
    assert await visit_status(world, visit.id) == "in_progress"

    # a completion without the code (an old button, the API's command) is refused
    async with world.container.sessions() as session, session.begin():
        from services.context import HandlerContext
        from services.handlers import complete_visit
        from domain import commands as c
        from domain.errors import DomainError
        ctx = HandlerContext(Store(session), world.clock.now(), world.container.policy)
        with pytest.raises(DomainError, match="completion_code_required"):
            await complete_visit(ctx, c.CompleteVisit(visit.id, (await Store(session).get(Visit, visit.id)).technician_id))
        await session.rollback()

    # not six digits: no try counted; a wrong one: tries left; the right one (typed with spaces) completes
    assert keys(await driver.send("12ab")) == ["tech.code_format"]
    told = await driver.send(wrong(code))
    assert keys(told) == ["tech.code_wrong"] and told[0].params["tries"] == MAX_WRONG_PER_CODE - 1
    assert await visit_status(world, visit.id) == "in_progress"
    done = await driver.send(f"{code[:3]} {code[3:]}")
    assert "tech.code_accepted" in keys(done)
    assert await visit_status(world, visit.id) == "completed"
    assert "customer.completed" in keys(await customer.inbox())
    timeline = [e["type"] for e in (await world.job(order.job.id))["timeline"]]
    assert timeline.index("CompletionCodeAccepted") < timeline.index("VisitCompleted")

    # the code was used once: text afterwards is free text again, and the same code completes nothing
    after = await driver.send(code)
    assert "tech.code_accepted" not in keys(after)


async def test_a_visit_its_policy_does_not_ask_a_code_of_completes_as_before(world: World):
    order, customer, driver, group = await booked_and_accepted(world, services=("delivery",))
    visit = order.visits[0]
    async with world.container.sessions() as session, session.begin():
        await CodeStore(Store(session)).put_source_policy("erp", "installation", world.clock.now())
    await driver.press(f"go:{visit.id}")
    assert not [m for m in await customer.inbox() if m.key.startswith("customer.completion_code")]
    await driver.location(SHOP[0], SHOP[1], live=True)
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    assert keys(await driver.press(f"done:{visit.id}")) == ["tech.completed"]


async def test_five_wrong_tries_lock_the_code_and_alert_the_dispatchers_who_can_send_a_new_one(world: World):
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    await driver.press(f"done:{visit.id}")
    for n in range(1, MAX_WRONG_PER_CODE):
        assert keys(await driver.send(wrong(code, n))) == ["tech.code_wrong"]
    assert keys(await driver.send(wrong(code, MAX_WRONG_PER_CODE))) == ["tech.code_locked"]
    # locked: even the right code is refused now, without being compared or counted
    assert keys(await driver.send(code)) == ["tech.code_locked"]
    assert await visit_status(world, visit.id) == "in_progress"
    alerts = [m for m in await group.inbox() if m.key == "group.code_locked_code"]
    assert len(alerts) == 1
    alert = alerts[0]
    for prefix in ("ccf", "ccr", "sc"):
        assert alert.has_button(prefix), prefix
    assert code not in str(alert.payload)

    # the dispatcher sends a new code: the old one is dead, the new one works
    assert keys(await group.press(alert.button("ccr"))) == ["dispatch.code_new_sent"]
    fresh = code_in(await customer.inbox())
    await driver.press(f"done:{visit.id}")
    if fresh != code:
        assert keys(await driver.send(code)) == ["tech.code_wrong"]
    assert "tech.code_accepted" in keys(await driver.send(fresh))
    assert await visit_status(world, visit.id) == "completed"


async def test_a_dispatcher_can_complete_a_locked_visit_for_the_technician(world: World):
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    await driver.press(f"done:{visit.id}")
    for n in range(1, MAX_WRONG_PER_CODE + 1):
        await driver.send(wrong(code, n))
    alert = next(m for m in await group.inbox() if m.key == "group.code_locked_code")
    assert keys(await group.press(alert.button("ccf"))) == ["dispatch.code_completed_for_them"]
    assert await visit_status(world, visit.id) == "completed"
    assert "tech.completed_by_dispatcher" in keys(await driver.inbox())
    assert "CompletionCodeWaived" in [e["type"] for e in (await world.job(order.job.id))["timeline"]]


async def test_a_technician_is_stopped_after_100_wrong_tries_in_a_day_and_the_dispatchers_are_told(world: World):
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    technician_id = (await world.job(order.job.id))["visits"][0]["technician"]["id"]
    # 99 wrong tries earlier today, on other visits' codes
    day = world.clock.now().astimezone(world.container.policy.tz).date().isoformat()

    async def tired(store: Store):
        for _ in range(MAX_WRONG_PER_TECHNICIAN_DAY - 1):
            await CodeStore(store).count_wrong_today(technician_id, day)

    await world._tx(tired)
    await driver.press(f"done:{visit.id}")
    assert keys(await driver.send(wrong(code))) == ["tech.code_locked_technician"]
    assert keys(await driver.send(code)) == ["tech.code_locked_technician"]  # the right one too: nothing is compared
    assert await visit_status(world, visit.id) == "in_progress"
    alert = next(m for m in await group.inbox() if m.key == "group.code_locked_technician")
    assert alert.has_button("ccf") and alert.has_button("sc")

    # tomorrow the count starts again
    from datetime import timedelta
    world.clock.advance(timedelta(days=1))
    await driver.press(f"done:{visit.id}")
    assert "tech.code_accepted" in keys(await driver.send(code))


async def test_the_customer_can_ask_for_a_new_code_and_the_old_one_stops_working(world: World):
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    fresh = code_in(await customer.press(f"ccn:{visit.id}"))
    await driver.press(f"done:{visit.id}")
    if fresh != code:
        assert keys(await driver.send(code)) == ["tech.code_wrong"]
    assert "tech.code_accepted" in keys(await driver.send(fresh))


@pytest.fixture
def captured():
    """The product's own log set-up (as `fieldchat serve` makes it) at DEBUG, writing into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("DEBUG", [], stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


async def test_codes_never_reach_groups_the_timeline_or_the_log(world: World, captured):
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    await driver.press(f"done:{visit.id}")
    for n in range(1, MAX_WRONG_PER_CODE + 1):
        await driver.send(wrong(code, n))
    await group.press(f"ccr:{visit.id}")
    fresh = code_in(await customer.inbox())
    await driver.press(f"done:{visit.id}")
    await driver.send(fresh)
    for message in await group.inbox():
        assert code not in str(message.payload) and fresh not in str(message.payload)
    job = await world.job(order.job.id)
    assert code not in str(job) and fresh not in str(job)
    # the customer's messages carry the codes as secrets: the relay blanks them in the outbox once they are out
    async with world.container.sessions() as session:
        payloads = (await session.execute(select(tables.outbox.c.payload))).scalars().all()
    holding = [payload for payload in payloads if code in json.dumps(payload) or fresh in json.dumps(payload)]
    assert len(holding) >= 2 and all(payload.get("secret") == ["code"] for payload in holding)
    logging.getLogger("conversations.engine").debug("probe: the log is on, at its most talkative")
    text = captured.getvalue()
    assert "probe: the log is on" in text
    assert code not in text and fresh not in text
    async with world.container.sessions() as session:
        stored = await CodeStore(Store(session)).code_of(visit.id)
    assert stored is not None and fresh not in stored.code_hash and code not in stored.code_hash and stored.outcome == "verified"


# --- the delivered-item check -----------------------------------------------------------------------------


async def delivered(world: World, items: list[dict] | None = None):
    """A delivery completed with its code, the driver's checklist photo of it on file."""
    order, customer, driver, group, code = await at_work(world)
    visit = order.visits[0]
    if items is not None:
        async def with_items(store: Store):
            from domain.model import Job
            (await store.get(Job, order.job.id)).items = items
        await world._tx(with_items)
    photo = world.media / "load.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    async with world.container.sessions() as session, session.begin():
        from domain.model import Photo
        await Store(session).add(Photo(visit.id, "web", "f-load", str(photo), "checklist", created_at=world.clock.now()))
    await driver.press(f"done:{visit.id}")
    await driver.send(code)
    return order, customer, driver, group


async def test_a_damaged_item_raises_a_problem_report_with_the_drivers_photos(world: World):
    order, customer, driver, group = await delivered(world, [{"name": "3-seat sofa", "qty": 1}, {"name": "Cushion", "qty": 2}])
    visit = order.visits[0]
    first = next(m for m in await customer.inbox() if m.key == "customer.item_check")
    assert first.params["count"] == 2 and [d.split(":")[0] for _l, d in first.buttons] == ["itm"] * 3
    second = await customer.press(f"itm:{visit.id}:0:received")
    assert keys(second) == ["customer.item_check"] and second[0].params["item"] == "Cushion × 2"
    summary = await customer.press(f"itm:{visit.id}:1:damaged")
    assert keys(summary) == ["customer.items_summary"]
    assert keys(await customer.press(summary[0].button("itmk"))) == ["customer.items_problem_reported"]

    async with world.container.sessions() as session:
        reports = await ThreadStore(Store(session)).reports_of_visits([visit.id])
    assert len(reports) == 1
    report: ProblemReport = reports[0]
    assert report.reason == "goods_damaged" and "Cushion × 2: damaged" in report.note and report.photo_ids
    told = await group.inbox()
    assert "group.exception" in keys(told) and "evidence.exception_photos" in keys(told)
    # once only
    assert keys(await customer.press(f"itm:{visit.id}:0:received")) == ["hint.stale_button"]


async def test_everything_received_raises_nothing(world: World):
    order, customer, driver, group = await delivered(world)
    visit = order.visits[0]
    first = next(m for m in await customer.inbox() if m.key == "customer.item_check")
    assert first.params["count"] == 1 and first.params["item"] == "3-seat sofa"  # a job without lines: its one product
    summary = await customer.press(f"itm:{visit.id}:0:received")
    assert keys(await customer.press(summary[0].button("itmk"))) == ["customer.items_all_received"]
    assert "group.exception" not in keys(await group.inbox())
    assert "DeliveredItemsChecked" in [e["type"] for e in (await world.job(order.job.id))["timeline"]]


async def test_the_items_ticked_are_sent_even_after_the_customer_confirmed_the_visit_first(world: World):
    """Seen on the walk: ticked, then *Confirm it's done* (the rating's question), then *Send* answered "no longer valid"
    and the check was lost. The summary's Send carries the marks, so no other step in between can drop them."""
    order, customer, driver, group = await delivered(world, [{"name": "3-seat sofa", "qty": 1}, {"name": "Cushion", "qty": 2}])
    visit = order.visits[0]
    shown = await customer.inbox()
    confirm = next(m for m in shown if m.key == "customer.completed")
    await customer.press(f"itm:{visit.id}:0:received")
    summary = await customer.press(f"itm:{visit.id}:1:missing")
    assert keys(summary) == ["customer.items_summary"]
    rating = await customer.press(confirm.button("cf"))
    assert keys(rating) == ["customer.confirmed", "customer.rate_prompt"]
    assert keys(await customer.press(summary[0].button("itmk"))) == ["customer.items_problem_reported"]
    timeline = (await world.job(order.job.id))["timeline"]
    checked = [e for e in timeline if e["type"] == "DeliveredItemsChecked"]
    assert len(checked) == 1 and checked[0]["data"]["items"] == [["3-seat sofa", "received"], ["Cushion × 2", "missing"]], checked
    # the rating's question is still there to answer, and the check is not sent twice
    assert keys(await customer.press(summary[0].button("itmk"))) == ["hint.stale_button"]


async def test_item_buttons_for_someone_elses_delivery_or_a_forged_index_change_nothing(world: World):
    order, customer, driver, group = await delivered(world)
    visit = order.visits[0]
    await customer.inbox()
    stranger = world.chat("customer", "stranger")
    assert "customer.item_check" not in keys(await stranger.press(f"itm:{visit.id}:0:damaged"))
    assert keys(await customer.press(f"itm:{visit.id}:5:damaged")) == ["hint.stale_button"]
    assert keys(await customer.press(f"itms:{visit.id}")) == ["hint.stale_button"]
    assert keys(await customer.press(f"itmk:{visit.id}:rr")) == ["hint.stale_button"]  # marks for two items of a one-item delivery


__all__ = ["Chat", "backoffice"]


# --- an order source's own policy, by the API ---------------------------------------------------------------


async def test_a_source_sets_its_own_policy_by_the_api_and_bad_input_gets_a_reason(sqlite_api):
    client = sqlite_api.client
    shown = await client.get("/api/v1/order-sources/erp/completion-codes")
    assert shown.status_code == 200 and shown.json() == {"source": "erp", "policy": "off", "set_by": "default"}
    put = await client.put("/api/v1/order-sources/erp/completion-codes", json={"policy": "Delivery, installation"})
    assert put.status_code == 200 and put.json() == {"source": "erp", "policy": "delivery,installation", "set_by": "source"}
    async with sqlite_api.container.sessions() as session:
        assert await CodeStore(Store(session)).source_policy("erp") == "delivery,installation"
    bad = await client.put("/api/v1/order-sources/erp/completion-codes", json={"policy": "shipping"})
    assert bad.status_code == 422 and "completion_codes_invalid" in bad.text
    assert (await client.put("/api/v1/order-sources/erp/completion-codes", json={"policy": "all", "x": 1})).status_code == 422
    assert (await client.put("/api/v1/order-sources/bad%20name/completion-codes", json={"policy": "all"})).status_code == 422
    back = await client.put("/api/v1/order-sources/erp/completion-codes", json={"policy": None})
    assert back.json()["set_by"] == "default"
    anonymous = await client.get("/api/v1/order-sources/erp/completion-codes", headers={"Authorization": ""})
    assert anonymous.status_code == 401
