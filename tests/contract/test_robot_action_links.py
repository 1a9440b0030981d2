"""Each robot kind carries an alert's action links in its own link form, and its fake platform accepts the payload."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import httpx
import pytest

from bots.robots import RobotSender, RobotSink, build_payload
from domain.clock import ManualClock
from fieldchat.fakes.robot_servers import FakeRobots
from services.messages import Rendered

START = datetime(2024, 5, 6, 9, 7, 13, tzinfo=timezone.utc)
TOKENS = {"wecom": "wk-robot-links-1", "dingtalk": "dt-robot-links-1", "feishu": "fs-robot-links-1", "slack": "T0/B0/Xlinks1"}
SECRETS = {"dingtalk": "SECrobotlinks0123456789", "feishu": "fsRobotLinksSecret01"}
ACK = "https://fc.example/robot/a/12.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
REASSIGN = "https://fc.example/robot/a/13.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
CANCEL = "https://fc.example/robot/a/14.CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
# a problem report's card as a robot gets it: two links in the first row, one in the second, and a button no link stands for
ALERT = Rendered("⚠️ 异常 #7 上门 #5\n客户:张**,139****5678\n[备注] a|b <c>",
                 buttons=[[("👌 已知悉", ACK), ("🔁 改派", REASSIGN)], [("❌ 取消上门", CANCEL), ("🗒 备注", "dno:3")]])


def links_in(kind: str, payload: dict) -> list[tuple[str, str]]:
    """(label, URL) of every link the payload shows, read the way each platform reads its own link form."""
    if kind == "wecom":
        return [(label.replace("\\", ""), url) for label, url in re.findall(r"(?<!\\)\[((?:\\.|[^\]\\])+)\]\((https://[^)]+)\)", payload["markdown"]["content"])]
    if kind == "dingtalk":
        card = payload["actionCard"]
        return [(b["title"], b["actionURL"]) for b in card["btns"]]
    if kind == "feishu":
        action = next(e for e in payload["card"]["elements"] if e["tag"] == "action")
        return [(b["text"]["content"], b["url"]) for b in action["actions"]]
    return [(label, url) for url, label in re.findall(r"<(https://[^|>]+)\|([^>]+)>", payload["blocks"][-1]["text"]["text"])]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeRobots]:
    async with FakeRobots(clock=lambda: clock.now().timestamp()) as server:
        for kind, token in TOKENS.items():
            server.add(kind, token, secret=SECRETS.get(kind))
        yield server


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "feishu", "slack"])
async def test_every_action_link_reaches_the_robot_as_a_link_of_its_own(kind, fake, clock):
    sink = RobotSink(kind=kind, name=kind, url=FakeRobots.production_url(kind, TOKENS[kind]), base_url=fake.base_url,
                     secret=SECRETS.get(kind), limits=())
    async with httpx.AsyncClient(timeout=2.0) as http:
        await RobotSender({kind: sink}, http, clock).send("alerts", kind, ALERT)
    (call,) = fake.calls_to(kind)
    assert call.accepted, call
    shown = links_in(kind, call.payload)
    assert [url for _, url in shown] == [ACK, REASSIGN, CANCEL]
    assert [label for label, _ in shown] == ["👌 已知悉", "🔁 改派", "❌ 取消上门"]
    assert "🗒 备注" in str(call.payload)  # the button no link stands for is still shown, as a label


def test_one_link_keeps_the_single_button_forms_and_labels_cannot_break_out_of_a_link():
    one = Rendered("异常 #7", buttons=[[("👌 已知悉", ACK)]])
    ding = build_payload(RobotSink("dingtalk", "d", "https://oapi.dingtalk.com/robot/send?access_token=x1234"), one)
    assert ding["actionCard"]["singleURL"] == ACK and ding["actionCard"]["singleTitle"] == "👌 已知悉"
    tricky = Rendered("x", buttons=[[("a](https://evil.example) [b", ACK), ("c|<https://evil.example|d>", REASSIGN)]])
    wecom = build_payload(RobotSink("wecom", "w", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1234"), tricky)
    assert "](https://evil.example)" not in wecom["markdown"]["content"]
    slack = build_payload(RobotSink("slack", "s", "https://hooks.slack.com/services/T1/B1/X1234"), tricky)
    line = slack["blocks"][-1]["text"]["text"]
    assert "<https://evil.example" not in line and line.count("<") == 2
