"""Robot action links opened by someone signed in act as that person (their dispatcher identity and name, held to
their regions), and two confirmations of one link at the same moment act once (PostgreSQL)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from domain.model import Dispatcher, ProblemReport
from fieldchat.fakes.robot_servers import FakeRobots
from services import accounts
from storage import tables as t
from storage.repository import Store
from tests.integration.test_robot_actions import PUBLIC, confirm, csrf_of, links_by_action, report, reported, timeline_types
from tests.support.harness import World
from webhooks.app import create_app
from webhooks.signin import SESSION_COOKIE

PASSWORD = "a long enough password"


@pytest.fixture
def world_settings() -> dict:
    return {"replan_seconds": 0.5, "public_url": PUBLIC}


@pytest.fixture
async def robots(world):
    fake = FakeRobots(clock=lambda: world.clock.now().timestamp())
    await fake.start()
    yield fake
    await fake.stop()


def browser(world: World) -> httpx.AsyncClient:
    """A browser on the public address, keeping its cookies (the session's among them)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(world.container, run_background=False)), base_url=PUBLIC)


async def account(world: World, username: str, *, role: str = "dispatcher", regions=None, dispatcher: str | None = None) -> int | None:
    """An account that signs in with a password; ``dispatcher``: with a dispatcher identity of that name. Its id."""
    async def work(ctx):
        dispatcher_id = (await ctx.store.add(Dispatcher(dispatcher))).id if dispatcher else None
        await accounts.add_account(ctx, username=username, display_name=dispatcher or username.title(), role=role, password=PASSWORD,
                                   regions=regions, dispatcher_id=dispatcher_id)
        return dispatcher_id, []

    return await world.container.bus.call(f"test:account:{username}", work)


async def signed_in(client: httpx.AsyncClient, username: str) -> None:
    form = await client.get("/signin")
    answer = await client.post("/signin", data={"csrf": csrf_of(form.text), "username": username, "password": PASSWORD, "next": "/me"})
    assert answer.status_code == 303, answer.text
    assert client.cookies.get(SESSION_COOKIE)


async def link_row(world: World, url: str) -> dict:
    link_id = int(url.rsplit("/", 1)[1].split(".", 1)[0])
    async with world.container.sessions() as session:
        row = (await session.execute(select(t.robot_action_links).where(t.robot_action_links.c.id == link_id))).mappings().one()
    return dict(row)


async def test_a_signed_in_dispatcher_acts_as_themselves_through_a_link(world, robots):
    order, _group = await reported(world, robots)
    mei = await account(world, "mei", regions=["Huangpu"], dispatcher="Mei")
    links = await links_by_action(world, robots)
    async with browser(world) as client:
        await signed_in(client, "mei")
        page = await client.get(links["xa"], headers={"Accept-Language": "en"})
        assert page.status_code == 200 and "Recorded as: Mei." in page.text
        done = await confirm(client, links["xa"])
    assert done.status_code == 200, done.text
    assert (await report(world)).acknowledged_by == mei
    used = await link_row(world, links["xa"])
    assert used["used_by"] == "Mei"
    async with world.container.sessions() as session:
        rows = await Store(session).timeline(order.job.id)
    [event] = [r for r in rows if r["type"] == "RobotLinkUsed"]
    assert (event["data"]["dispatcher_id"], event["data"]["name"]) == (mei, "Mei")


async def test_a_dispatcher_of_another_region_or_a_manager_cannot_act_through_a_link(world, robots):
    order, _group = await reported(world, robots)
    await account(world, "xu", regions=["Xuhui"], dispatcher="Xu")
    await account(world, "boss", role="manager")
    links = await links_by_action(world, robots)
    before = await timeline_types(world, order.job.id)
    for username, said in (("xu", "signed in as Xu, a dispatcher of other regions, and this alert is about Huangpu"),
                           ("boss", "signed in as Boss, whose account may not act on jobs")):
        async with browser(world) as client:
            await signed_in(client, username)
            page = await client.get(links["xc"], headers={"Accept-Language": "en"})
            assert page.status_code == 403, page.text
            assert said in page.text and 'name="csrf"' not in page.text  # no button to press: the reason and the way on
            # a form posted anyway (its CSRF pair from a signed-out look) is refused the same way
            async with browser(world) as anonymous:
                form = await anonymous.get(links["xc"])
                client.cookies.set("fc_robot_csrf", anonymous.cookies.get("fc_robot_csrf"), domain="fc.example", path="/robot/a/")
                refused = await client.post(links["xc"], data={"csrf": csrf_of(form.text)})
            assert refused.status_code == 403, refused.text
    assert await timeline_types(world, order.job.id) == before
    assert (await link_row(world, links["xc"]))["used_at"] is None  # the link still works for the group's dispatchers
    assert (await report(world)).status == "open"


@pytest.mark.postgres
@pytest.mark.slow
async def test_two_confirmations_of_one_link_at_the_same_moment_act_once(postgres_url, tmp_path):
    world = await World.create(postgres_url, tmp_path, replan_seconds=0.5, public_url=PUBLIC)
    robots = FakeRobots(clock=lambda: world.clock.now().timestamp())
    await robots.start()
    try:
        order, _group = await reported(world, robots)
        links = await links_by_action(world, robots)
        async with browser(world) as first, browser(world) as second:
            forms = [await client.get(links["xa"]) for client in (first, second)]
            answers = await asyncio.gather(*(client.post(links["xa"], data={"csrf": csrf_of(form.text)})
                                             for client, form in zip((first, second), forms)))
        assert sorted(a.status_code for a in answers) == [200, 410], [a.text for a in answers]
        late = next(a for a in answers if a.status_code == 410)
        assert "used" in late.text.lower() or "已" in late.text
        types = await timeline_types(world, order.job.id)
        assert types.count("RobotLinkUsed") == 1 and types.count("ExceptionAcknowledged") == 1
        async with world.container.sessions() as session:
            assert (await session.execute(select(ProblemReport))).scalars().one().acknowledged_by is not None
    finally:
        await robots.stop()
        await world.close()


async def test_an_admin_without_a_dispatcher_identity_acts_through_the_groups_under_their_own_name(world, robots):
    order, _group = await reported(world, robots)
    await account(world, "owner", role="admin")
    links = await links_by_action(world, robots)
    async with browser(world) as client:
        await signed_in(client, "owner")
        page = await client.get(links["xa"], headers={"Accept-Language": "en"})
        assert "Recorded as: Owner." in page.text
        assert (await confirm(client, links["xa"])).status_code == 200
    async with world.container.sessions() as session:
        rows = await Store(session).timeline(order.job.id)
        actor = (await session.execute(select(t.robot_link_actors.c.dispatcher_id))).scalar_one()
    [event] = [r for r in rows if r["type"] == "RobotLinkUsed"]
    assert (event["data"]["dispatcher_id"], event["data"]["name"]) == (actor, "Owner")
    assert (await report(world)).acknowledged_by == actor
