"""Group robots that act: an alert's buttons reach WeCom/DingTalk/Feishu/Slack as signed, expiring, single-use links whose
page confirms first (GET never acts), acts once through the bus (POST with a CSRF token) and explains used, expired and
forged links."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from bots.alerting import AlertSinks
from domain import commands as c
from domain.model import ProblemReport, Visit
from fieldchat.logs import redact
from fieldchat.fakes.robot_servers import FakeRobots
from services.actions import decode
from services.messages import Rendered
from services.robot_links import LINKABLE
from storage import tables as t
from storage.repository import Store
from storage.price_changes import PriceChangeStore
from storage.schedule import ScheduleStore
from tests.support.harness import World
from tests.support.setups import booked_and_accepted, give
from webhooks.app import create_app

PUBLIC = "https://fc.example"
LINK = re.compile(r"\((https://fc\.example/robot/a/[^)\s]+)\)")


@pytest.fixture
def world_settings() -> dict:
    return {"replan_seconds": 0.5, "public_url": PUBLIC}


@pytest.fixture
async def robots(world):
    fake = FakeRobots(clock=lambda: world.clock.now().timestamp())
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def web(world):
    """The app around the world's own container, in process, as a browser opening the links would reach it."""
    app = create_app(world.container, run_background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as client:
        yield client


async def drain(world: World) -> None:
    while await world.container.relay.drain_once():
        pass


async def wecom_robot(world: World, robots: FakeRobots) -> None:
    robots.add("wecom", "key-1")
    await world._tx(lambda store: ScheduleStore(store).put_alert_sink(
        name="huangpu-wecom", region="Huangpu", kind="wecom", url=robots.url("wecom", "key-1"), secret=None, keyword=None, priority=0))


async def reported(world: World, robots: FakeRobots):
    """A problem report on an accepted delivery: its alert goes to the group (web) and to the region's WeCom robot."""
    await wecom_robot(world, robots)
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    for data in (f"rp:{visit.id}", f"rr:{visit.id}:wrong_address", "rskip", "rsend"):
        await driver.press(data)
    await drain(world)
    return order, group


async def links_by_action(world: World, robots: FakeRobots, *, every: bool = False) -> dict[str, str]:
    """The links in the robot's last message (``every``: in all its messages, the newest winning), by the action each
    stands for (read back from the link rows)."""
    sent = robots.messages("wecom", "key-1") if every else robots.messages("wecom", "key-1")[-1:]
    urls = [url for message in sent for url in LINK.findall((message.get("markdown") or message.get("text") or {}).get("content", ""))]
    if not every:
        urls = LINK.findall(sent[-1]["markdown"]["content"])
    async with world.container.sessions() as session:
        rows = (await session.execute(select(t.robot_action_links.c.id, t.robot_action_links.c.action))).all()
    actions = {link_id: action for link_id, action in rows}
    found = {}
    for url in urls:
        link_id = int(url.rsplit("/", 1)[1].split(".", 1)[0])
        found[actions[link_id].split(":", 1)[0]] = url
    return found


async def report(world: World) -> ProblemReport:
    async with world.container.sessions() as session:
        return (await session.execute(select(ProblemReport))).scalars().one()


async def timeline_types(world: World, job_id: int) -> list[str]:
    async with world.container.sessions() as session:
        return [row["type"] for row in await Store(session).timeline(job_id)]


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def confirm(web: httpx.AsyncClient, url: str, **fields: str) -> httpx.Response:
    page = await web.get(url)
    assert page.status_code == 200, page.text
    return await web.post(url, data={"csrf": csrf_of(page.text), **fields})


async def test_a_robot_alert_carries_one_link_per_action_and_opening_one_changes_nothing(world, robots, web):
    order, _group = await reported(world, robots)
    links = await links_by_action(world, robots)
    assert set(links) == {"xa", "xr", "xc"}  # acknowledge, reassign, cancel: every button of the group's card
    content = robots.messages("wecom", "key-1")[-1]["markdown"]["content"]
    assert "[👌" not in content.split("\n\n")[0]  # no inert labels left in the text
    before = await timeline_types(world, order.job.id)
    for _ in range(3):  # chat apps open links to preview them: a GET must never act
        page = await web.get(links["xa"], headers={"Accept-Language": "en"})
        assert page.status_code == 200
        assert "Acknowledge problem report" in page.text and "<form method=\"post\"" in page.text
        assert "139****5678" in page.text and "13912345678" not in page.text  # the alert as the group saw it: masked
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert (await report(world)).acknowledged_by is None
    assert await timeline_types(world, order.job.id) == before
    async with world.container.sessions() as session:
        used = (await session.execute(select(t.robot_action_links.c.used_at))).scalars().all()
    assert used and all(u is None for u in used)


async def test_confirming_acts_once_as_a_dispatcher_of_the_group_and_updates_the_groups_cards(world, robots, web):
    order, group = await reported(world, robots)
    links = await links_by_action(world, robots)
    await group.inbox()  # what the group had before
    done = await confirm(web, links["xa"], **{})
    assert done.status_code == 200, done.text
    acknowledged = await report(world)
    assert acknowledged.acknowledged_by is not None
    async with world.container.sessions() as session:
        timeline = await Store(session).timeline(order.job.id)
    kinds = [row["type"] for row in timeline]
    assert kinds.count("ExceptionAcknowledged") == 1 and kinds.count("RobotLinkUsed") == 1
    used = next(row["data"] for row in timeline if row["type"] == "RobotLinkUsed")
    assert used["via"] == "robot_link" and used["route"] == "region:Huangpu" and used["action"].startswith("xa:")
    assert "Huangpu" in used["name"] and used["dispatcher_id"] == acknowledged.acknowledged_by
    # the group's card of the report is edited to say who acknowledged it, as a press in the group would
    cards = [m for m in await group.inbox() if m.key == "card.alert_acknowledged"]
    assert len(cards) == 1 and cards[0].params["name"]["params"]["text"] == used["name"]
    assert not cards[0].has_button("xa")
    # a robot's message cannot be edited: its group hears who did what, with no link left to press
    await drain(world)
    last = robots.messages("wecom", "key-1")[-1]
    told = (last.get("markdown") or last.get("text"))["content"]
    assert told.startswith("✅") and "已确认知悉" in told and used["name"] in told and "/robot/a/" not in told  # the route reads zh


async def test_a_used_link_says_what_happened_by_whom_and_does_nothing_again(world, robots, web):
    order, _group = await reported(world, robots)
    links = await links_by_action(world, robots)
    page = await web.get(links["xc"], headers={"Accept-Language": "en"})
    token = csrf_of(page.text)
    first = await web.post(links["xc"], data={"csrf": token}, headers={"Accept-Language": "en"})
    assert first.status_code == 200 and "cancelled" in first.text
    before = await timeline_types(world, order.job.id)
    again = await web.post(links["xc"], data={"csrf": token}, headers={"Accept-Language": "en"})
    assert again.status_code == 410
    assert "already used" in again.text and "Huangpu" in again.text and "cancelled" in again.text
    assert await timeline_types(world, order.job.id) == before
    reopened = await web.get(links["xc"], headers={"Accept-Language": "en"})
    assert reopened.status_code == 410 and "<form" not in reopened.text
    # the same alert's other links now explain that the report is settled, instead of acting
    other = await web.get(links["xa"], headers={"Accept-Language": "en"})
    assert other.status_code == 200 and "already been handled" in other.text and "<form" not in other.text


async def test_an_expired_link_is_refused_with_a_clear_page(world, robots, web):
    await reported(world, robots)
    links = await links_by_action(world, robots)
    page = await web.get(links["xa"])
    world.clock.advance(timedelta(hours=24, seconds=1))
    late = await web.post(links["xa"], data={"csrf": csrf_of(page.text)}, headers={"Accept-Language": "zh"})
    assert late.status_code == 410 and "已过期" in late.text
    assert (await report(world)).acknowledged_by is None
    assert (await web.get(links["xa"])).status_code == 410


@pytest.mark.parametrize("forge", [
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character of the signature
    lambda token: str(int(token.split(".")[0]) + 1) + "." + token.split(".")[1],  # another link's id, this signature
    lambda token: token.split(".")[0],  # no signature
    lambda token: "1." + "A" * 32,
    lambda token: "99999999999999999999." + token.split(".")[1],  # an id beyond any row
    lambda token: "x' OR '1'='1",
    lambda token: "%00",
])
async def test_forged_or_tampered_tokens_get_404_and_change_nothing(world, robots, web, forge):
    await reported(world, robots)
    links = await links_by_action(world, robots)
    base, token = links["xa"].rsplit("/", 1)
    page = await web.get(links["xa"])
    forged = f"{base}/{forge(token)}"
    assert (await web.get(forged)).status_code == 404
    answer = await web.post(forged, data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 404 and "Traceback" not in answer.text
    assert (await report(world)).acknowledged_by is None


async def test_a_post_without_the_pages_csrf_token_does_nothing(world, robots, web):
    await reported(world, robots)
    links = await links_by_action(world, robots)
    assert (await web.post(links["xa"], data={"choice": "1"})).status_code == 403  # no page opened: no cookie, no token
    page = await web.get(links["xa"])
    assert (await web.post(links["xa"], data={"csrf": "A" * 32})).status_code == 403
    web.cookies.clear()  # a form posted from another site carries none of this browser's cookies
    assert (await web.post(links["xa"], data={"csrf": csrf_of(page.text)})).status_code == 403
    assert (await web.post(links["xa"], content=b"{}", headers={"Content-Type": "application/json"})).status_code == 400
    assert (await report(world)).acknowledged_by is None


async def test_reassigning_through_a_link_takes_only_a_technician_the_page_offered(world, robots, web):
    order, _group = await reported(world, robots)
    li, _token = await world.technician("Li", ["driver"])
    links = await links_by_action(world, robots)
    page = await web.get(links["xr"], headers={"Accept-Language": "en"})
    assert f'value="{li}"' in page.text and "Li" in page.text
    forged = await web.post(links["xr"], data={"csrf": csrf_of(page.text), "choice": "999"}, headers={"Accept-Language": "en"})
    assert forged.status_code == 409 and "Pick one of the options" in forged.text
    done = await web.post(links["xr"], data={"csrf": csrf_of(page.text), "choice": str(li)}, headers={"Accept-Language": "en"})
    assert done.status_code == 200 and "offered to Li" in done.text
    async with world.container.sessions() as session:
        visit = await Store(session).load(Visit, order.visits[0].id)
    assert visit.technician_id == li


async def test_a_link_refused_by_what_happened_meanwhile_stays_usable_and_says_why(world, robots, web):
    _order, group = await reported(world, robots)
    links = await links_by_action(world, robots)
    page = await web.get(links["xa"], headers={"Accept-Language": "en"})
    await group.press(f"xa:{(await report(world)).id}")  # Dora acknowledges in the Telegram group first
    late = await web.post(links["xa"], data={"csrf": csrf_of(page.text)}, headers={"Accept-Language": "en"})
    assert late.status_code == 409 and "Already acknowledged by Dora" in late.text
    async with world.container.sessions() as session:
        used = (await session.execute(select(t.robot_action_links.c.used_at))).scalars().all()
    assert all(u is None for u in used)


async def test_call_details_show_the_numbers_only_after_confirming(world, robots, web):
    order, _group = await reported(world, robots)
    visit = order.visits[0]
    sinks = AlertSinks(world.container.sessions, world.clock, refresh_seconds=0, public_url=PUBLIC)
    try:
        await sinks.send("alerts", "region:Huangpu", Rendered("客户找不到", buttons=[[("📞 电话", f"sc:{visit.id}")]]))
    finally:
        await sinks.aclose()
    url = LINK.findall(robots.messages("wecom", "key-1")[-1]["markdown"]["content"])[0]
    page = await web.get(url, headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "13912345678" not in page.text
    shown = await web.post(url, data={"csrf": csrf_of(page.text)}, headers={"Accept-Language": "en"})
    assert shown.status_code == 200 and "13912345678" in shown.text
    again = await web.get(url, headers={"Accept-Language": "en"})
    assert again.status_code == 410 and "13912345678" not in again.text  # the numbers are never stored with the link
    assert "RobotLinkUsed" in await timeline_types(world, order.job.id)


async def test_the_page_speaks_the_readers_language_else_the_groups(world, robots, web):
    await reported(world, robots)
    links = await links_by_action(world, robots)
    assert "确认已知悉异常" in (await web.get(links["xa"])).text  # a WeCom group reads Chinese
    assert "Acknowledge problem report" in (await web.get(links["xa"], headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})).text
    assert "确认已知悉异常" in (await web.get(links["xa"] + "?lang=zh", headers={"Accept-Language": "en"})).text


async def test_a_retried_alert_reuses_its_links_and_without_a_public_url_buttons_stay_labels(world, robots):
    await wecom_robot(world, robots)
    alert = Rendered("异常 #9", buttons=[[("👌 已知悉", "xa:9")]])
    sinks = AlertSinks(world.container.sessions, world.clock, refresh_seconds=0, public_url=PUBLIC)
    plain = AlertSinks(world.container.sessions, world.clock, refresh_seconds=0)
    try:
        await sinks.send("alerts", "region:Huangpu", alert)
        world.clock.advance(timedelta(minutes=1))
        await sinks.send("alerts", "region:Huangpu", alert)
        world.clock.advance(timedelta(minutes=1))
        await plain.send("alerts", "region:Huangpu", alert)
    finally:
        await sinks.aclose()
        await plain.aclose()
    first, second, unlinked = robots.messages("wecom", "key-1")
    assert LINK.findall(first["markdown"]["content"]) == LINK.findall(second["markdown"]["content"])
    assert unlinked == {"msgtype": "text", "text": {"content": "异常 #9\n[👌 已知悉]"}}


async def test_every_action_a_robot_alert_can_carry_has_a_working_page(world, robots, web):
    """Each kind in services.robot_links.LINKABLE: its page opens (an offer or a clear refusal, never an error), and
    confirming what needs no pick or text acts or says why not."""
    order, _group = await reported(world, robots)
    li, _token = await world.technician("Li", ["driver"])
    visit, job = order.visits[0].id, order.job.id
    exception = (await report(world)).id
    data = {
        "xa": f"xa:{exception}", "xr": f"xr:{exception}", "xc": f"xc:{exception}", "ra": "ra:1", "as": f"as:{visit}:{li}",
        "sr": f"sr:{visit}", "sx": f"sx:{visit}:accept", "sc": f"sc:{visit}", "dan": f"dan:{visit}", "dmv": f"dmv:{visit}",
        "dcx": f"dcx:{visit}", "dfa": f"dfa:{job}", "dcl": f"dcl:{job}", "dro": f"dro:{job}", "dno": f"dno:{job}",
        "pca": "pca:9", "pcd": "pcd:9", "pcpy": "pcpy:9", "pcpn": "pcpn:9",  # no such price change: a clear refusal
    }
    assert {kind.__name__ for kind in LINKABLE} == {type(decode(d)).__name__ for d in data.values()}
    sinks = AlertSinks(world.container.sessions, world.clock, refresh_seconds=0, public_url=PUBLIC)
    try:
        await sinks.send("alerts", "region:Huangpu", Rendered("全部操作", buttons=[[(prefix, d)] for prefix, d in data.items()]))
    finally:
        await sinks.aclose()
    urls = LINK.findall(robots.messages("wecom", "key-1")[-1]["markdown"]["content"])
    assert len(urls) == len(data)
    for prefix, url in zip(data, urls):
        page = await web.get(url, headers={"Accept-Language": "en"})
        assert page.status_code == 200, (prefix, page.text)
        assert "<h1>" in page.text and ("<form" in page.text or "Nothing was" in page.text or "already" in page.text), prefix
    # a note typed on the page lands on the job's timeline, recorded as the group's robot-link dispatcher
    note = dict(zip(data, urls))["dno"]
    page = await web.get(note)
    assert (await web.post(note, data={"csrf": csrf_of(page.text), "text": "  "})).status_code == 409  # empty: asked again
    assert (await web.post(note, data={"csrf": csrf_of(page.text), "text": "Customer asked for a call first"})).status_code == 200
    async with world.container.sessions() as session:
        timeline = await Store(session).timeline(job)
    added = [row["data"] for row in timeline if row["type"] == "NoteAdded"]
    assert added and "Customer asked for a call first" in str(added[-1])


def test_a_links_token_never_reaches_the_logs():
    """The access log prints each request's path, and a robot link's path is enough to act."""
    token = "12.AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    line = redact(f'127.0.0.1:5123 - "POST /robot/a/{token}?lang=en HTTP/1.1" 200')
    assert token not in line and "/robot/a/***" in line


async def test_a_region_with_only_a_robot_decides_a_price_increase_and_records_the_customers_phone_answer_by_links(world, robots, web):
    """Seen on the walk of issue 14: a robot-only region got the increase's cards with inert labels, so nobody could
    approve it or record the answer of a customer who has no chat."""
    await wecom_robot(world, robots)
    await world.container.bus.run("test", c.PutPriceEntry("repair", "aircon", "any", "any", "fixed", 20000, "CNY", 30, "Repair call-out"))
    repairer_id, _invite = await world.technician("Li", ["repairer"], ["aircon"])
    order = await world.order("AC-9", services=("repair",), category="aircon", product="Split air conditioner")
    visit = order.visits[0]
    start = world.clock.now() + timedelta(hours=1)
    await give(world, visit.id, repairer_id, start, start + timedelta(hours=1), status="in_progress")
    await world.container.bus.run("test", c.RequestPriceIncrease(visit.id, repairer_id, "50", "Extra bracket"))
    await drain(world)
    links = await links_by_action(world, robots)
    assert {"pca", "pcd"} <= set(links), links
    page = await web.get(links["pca"], headers={"Accept-Language": "en"})
    assert "Approve the price increase on visit" in page.text and "+CNY 50.00" in page.text
    assert (await confirm(web, links["pca"])).status_code == 200

    async def status() -> str:
        async with world.container.sessions() as session:
            return (await PriceChangeStore(Store(session)).of_visit(visit.id))[0].status.value

    assert await status() == "approved"
    decided = await web.get(links["pcd"], headers={"Accept-Language": "en"})  # decided: the page says so, with nothing to confirm
    assert decided.status_code == 200 and "already decided (approved)" in decided.text and "<form" not in decided.text
    await drain(world)
    answers = await links_by_action(world, robots, every=True)  # the customer has no chat: call them, record the answer here
    assert {"pcpy", "pcpn"} <= set(answers), answers
    assert (await confirm(web, answers["pcpy"])).status_code == 200
    assert await status() == "accepted"
    refused = await web.get(answers["pcpn"], headers={"Accept-Language": "en"})
    assert "already decided (accepted)" in refused.text and "<form" not in refused.text and await status() == "accepted"
