"""Dispatcher alerts also reach the region's group robots (WeCom, DingTalk…), masked, with failover."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bots.alerting import AlertSinks
from bots.robots import Throttled
from services.messages import Rendered
from storage.repository import Store
from storage.schedule import ScheduleStore
from fieldchat.fakes.robot_servers import FakeRobots
from tests.support.api import running_api
from tests.support.harness import World
from tests.support.setups import booked_and_accepted


@pytest.fixture
def database_url(sqlite_url) -> str:
    """These dialogues run on SQLite only."""
    return sqlite_url


@pytest.fixture
async def robots(world):
    fake = FakeRobots(clock=lambda: world.clock.now().timestamp())
    await fake.start()
    yield fake
    await fake.stop()


async def add_sink(world: World, **sink) -> None:
    defaults = {"region": None, "secret": None, "keyword": None, "priority": 0}
    await world._tx(lambda store: ScheduleStore(store).put_alert_sink(**{**defaults, **sink}))


async def drain(world: World) -> None:
    while await world.container.relay.drain_once():
        pass


async def report_damage(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"rp:{visit.id}")
    await driver.press(f"rr:{visit.id}:wrong_address")
    await driver.press("rskip")
    await driver.press("rsend")
    return order


async def test_an_exception_alert_reaches_the_regions_robot_masked(world: World, robots: FakeRobots):
    robots.add("wecom", "key-1")
    robots.add("dingtalk", "tok-1", secret="SEC1")
    await add_sink(world, name="huangpu-wecom", region="Huangpu", kind="wecom", url=robots.url("wecom", "key-1"))
    await add_sink(world, name="all-dingtalk", kind="dingtalk", url=robots.url("dingtalk", "tok-1"), secret="SEC1", priority=5)
    await report_damage(world)
    await drain(world)
    texts = [m["text"]["content"] for m in robots.messages("wecom", "key-1")]
    assert len(texts) == 1 and "Wrong address" not in texts[0]  # robots get Chinese by default
    assert "地址错误" in texts[0] and "139****5678" in texts[0] and "13912345678" not in texts[0]
    assert "Nanjing East Road" not in texts[0]
    assert robots.messages("dingtalk", "tok-1") == []  # the fallback is only for failures


async def test_a_robot_that_keeps_failing_hands_over_to_the_next_within_two_minutes(world: World, robots: FakeRobots):
    robots.add("wecom", "key-1")
    robots.add("dingtalk", "tok-1", secret="SEC1")
    await add_sink(world, name="huangpu-wecom", region="Huangpu", kind="wecom", url=robots.url("wecom", "key-1"))
    await add_sink(world, name="all-dingtalk", kind="dingtalk", url=robots.url("dingtalk", "tok-1"), secret="SEC1", priority=5)
    robots.fail_next("wecom", status=500, count=100)
    await report_damage(world)
    await drain(world)
    assert robots.messages("dingtalk", "tok-1") == []
    for _ in range(5):
        world.clock.advance(timedelta(seconds=30))
        await drain(world)
    delivered = robots.messages("dingtalk", "tok-1")
    assert len(delivered) == 1 and "139****5678" in str(delivered[0])


async def test_alert_sinks_are_managed_over_the_api_without_showing_their_secrets(tmp_path, sqlite_url):

    async with running_api(sqlite_url, tmp_path) as api:
        body = {"name": "ops-slack", "kind": "slack", "url": "https://hooks.slack.example/services/T/B/SECRETX"}
        assert (await api.client.put("/api/v1/alert-sinks", json=body)).status_code == 200
        listed = (await api.client.get("/api/v1/alert-sinks")).text
        assert "ops-slack" in listed and "SECRETX" not in listed
        bad = await api.client.put("/api/v1/alert-sinks", json={**body, "kind": "fax"})
        assert bad.status_code == 422
        policy = {"stage": "accept", "minutes": 20, "tiers": [50, 100], "auto_reassign": True}
        assert (await api.client.put("/api/v1/sla-policies", json=policy)).status_code == 200
        assert (await api.client.put("/api/v1/sla-policies", json={**policy, "tiers": [50]})).status_code == 422
        async with api.container.sessions() as session:
            rows = await ScheduleStore(Store(session)).sla_policies()
        assert rows[0]["minutes"] == 20 and rows[0]["auto_reassign"] is True


async def test_a_configuration_reload_keeps_each_robots_recent_sends(world: World, robots: FakeRobots):
    robots.add("slack", "T1/B1/X1")
    await add_sink(world, name="ops-slack", kind="slack", url=robots.url("slack", "T1/B1/X1"))
    sinks = AlertSinks(world.container.sessions, world.clock, refresh_seconds=0)
    try:
        await sinks.send("alerts", "all", Rendered("first"))
        robots.add("wecom", "key-2")
        await add_sink(world, name="later-wecom", region="Huangpu", kind="wecom", url=robots.url("wecom", "key-2"))
        with pytest.raises(Throttled):  # Slack takes one per second, reload or not
            await sinks.send("alerts", "all", Rendered("second"))
        world.clock.advance(timedelta(seconds=1))
        await sinks.send("alerts", "all", Rendered("second"))
        assert [m["text"] for m in robots.messages("slack", "T1/B1/X1")] == ["first", "second"]
        assert await sinks.routes() == {"all": ("ops-slack",), "region:Huangpu": ("later-wecom", "ops-slack")}
    finally:
        await sinks.aclose()
