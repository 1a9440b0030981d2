"""Group-alert robots against the fake WeCom/DingTalk/Feishu/Slack server: signing, limits, error mapping, failover, secrecy."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from bots.base import RetryLater, Undeliverable
from bots.robots import (
    FailoverSender,
    RobotSender,
    RobotSink,
    Throttled,
    dingtalk_sign,
    escape_slack,
    feishu_sign,
)
from conversations.i18n import render
from services.messages import Button, Outbound, Rendered, buttons, t
from domain.clock import ManualClock
from domain.masking import mask_address, mask_name, mask_phone
from fieldchat.fakes.robot_servers import FakeRobots

START = datetime(2024, 5, 6, 9, 7, 13, tzinfo=timezone.utc)  # not :00/:30, which Feishu asks to avoid (G3)

TOKENS = {
    "wecom": "wk-3f9a2c71-8d4e-4b0a-9c6e-55aa11bb22cc",
    "dingtalk": "dt9e8d7c6b5a49382716a5b4c3d2e1f0aa",
    "feishu": "fs-6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "slack": "T0FAKETEAM/B0FAKEHOOK/XfakeSlackSecret789",
}
SECRETS = {"dingtalk": "SECa1b2c3d4e5f60718293a4b5c6d7e8f9", "feishu": "fsSignSecretQ1w2e3r4t5y6"}
LONG_ZH = "师傅上门安装空调，客户要求改到明天下午，请调度确认。" * 150  # ~11 KB of 3-byte characters


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeRobots]:
    async with FakeRobots(clock=lambda: clock.now().timestamp()) as server:
        for kind, token in TOKENS.items():
            server.add(kind, token, secret=SECRETS.get(kind))
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


def sink(fake: FakeRobots, kind: str, name: str | None = None, token: str | None = None, **options) -> RobotSink:
    """A sink configured with the platform's real URL, redirected to the fake by the base URL override."""
    if kind in SECRETS and "secret" not in options:
        options["secret"] = SECRETS[kind]
    return RobotSink(kind=kind, name=name or kind, url=FakeRobots.production_url(kind, token or TOKENS[kind]), base_url=fake.base_url, **options)


def sender(http, clock, *sinks: RobotSink) -> RobotSender:
    return RobotSender({s.name: s for s in sinks}, http, clock)


def alert_text(fake: FakeRobots, kind: str, payload: dict) -> str:
    """The human-readable text a robot received, whatever message form was used."""
    if kind == "wecom":
        return payload[payload["msgtype"]]["content"]
    if kind == "dingtalk":
        inner = payload[payload["msgtype"]]
        return inner.get("content") or inner.get("text")
    if kind == "feishu":
        if payload["msg_type"] == "text":
            return payload["content"]["text"]
        return json.dumps(payload["card"], ensure_ascii=False)
    return payload["text"]


# --- signing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
async def test_correct_signatures_are_accepted(fake, http, clock, kind):
    robots = sender(http, clock, sink(fake, kind))
    assert await robots.send("staff", kind, Rendered("门店告警 test")) is None
    call = fake.calls_to(kind)[-1]
    assert call.accepted, call.answer
    if kind == "dingtalk":
        assert call.query["timestamp"] == str(int(START.timestamp() * 1000))
        # URL-encoded exactly once: the fake decodes once and compares with the base64 digest
        assert f"&sign={dingtalk_sign(SECRETS[kind], int(START.timestamp() * 1000))}" in call.raw_query
        assert not re.search(r"sign=[^&]*[+/=]", call.raw_query)
    else:
        assert call.payload["timestamp"] == str(int(START.timestamp()))
        assert call.payload["sign"] == feishu_sign(SECRETS[kind], int(START.timestamp()))


@pytest.mark.parametrize(("kind", "code"), [("dingtalk", "310000"), ("feishu", "19021")])
async def test_wrong_secret_is_undeliverable(fake, http, clock, kind, code):
    robots = sender(http, clock, sink(fake, kind, secret="not-the-robot-secret"))
    with pytest.raises(Undeliverable, match=code):
        await robots.send("staff", kind, Rendered("告警"))
    assert fake.messages(kind, TOKENS[kind]) == []


async def test_missing_signature_and_stale_timestamp_are_rejected(fake, http, clock):
    unsigned = sender(http, clock, sink(fake, "dingtalk", secret=None))
    with pytest.raises(Undeliverable, match="310000"):
        await unsigned.send("staff", "dingtalk", Rendered("告警"))
    # G2: the timestamp must be within 1 h of DingTalk's clock; this sender's clock is 2 h behind
    stale = sender(http, lambda: clock.now() - timedelta(hours=2), sink(fake, "dingtalk"))
    with pytest.raises(Undeliverable, match="310000"):
        await stale.send("staff", "dingtalk", Rendered("告警"))
    assert fake.messages("dingtalk", TOKENS["dingtalk"]) == []




# --- payload limits -----------------------------------------------------------------------------




async def test_wecom_long_chinese_text_stays_within_bytes(fake, http, clock):
    robots = sender(http, clock, sink(fake, "wecom", limits=()), sink(fake, "wecom", name="wecom-md", details_url="https://fc.example/j/7", limits=()))
    await robots.send("staff", "wecom", Rendered(LONG_ZH))
    await robots.send("staff", "wecom-md", Rendered(LONG_ZH, buttons=[[("已知悉", "xa:7")]]))
    text, markdown = fake.messages("wecom", TOKENS["wecom"])
    content = text["text"]["content"]
    assert 2048 - 6 <= len(content.encode()) <= 2048 and content.endswith("…") and LONG_ZH.startswith(content[:-1])
    md = markdown["markdown"]["content"]
    assert 4096 - 8 <= len(md.encode()) <= 4096
    assert md.endswith("[Open in fieldchat](https://fc.example/j/7)")  # the link survives truncation


async def test_feishu_body_stays_within_20kb(fake, http, clock):
    robots = sender(http, clock, sink(fake, "feishu", limits=()), sink(fake, "feishu", name="card", details_url="https://fc.example/j/7", limits=()))
    await robots.send("staff", "feishu", Rendered(LONG_ZH * 3))
    await robots.send("staff", "card", Rendered("标题\n" + LONG_ZH * 3, buttons=[[("已知悉", "xa:7")]]))
    plain, card = fake.calls_to("feishu")
    assert plain.accepted and card.accepted
    assert 19_000 < len(plain.body) <= 20_000 and 19_000 < len(card.body) <= 20_000
    assert card.payload["msg_type"] == "interactive"
    assert card.payload["card"]["elements"][-1]["actions"][0]["url"] == "https://fc.example/j/7"


async def test_slack_text_is_escaped_and_cut_without_breaking_entities(fake, http, clock):
    robots = sender(http, clock, sink(fake, "slack", limits=()))
    await robots.send("staff", "slack", Rendered("<!channel> pipes & fittings > 2m"))
    await robots.send("staff", "slack", Rendered("a&b<c>" * 1000))
    short, long = fake.messages("slack", TOKENS["slack"])
    assert short == {"text": "&lt;!channel&gt; pipes &amp; fittings &gt; 2m", "mrkdwn": False}
    assert len(long["text"]) <= 3000 and long["text"].endswith("…")
    assert not re.search(r"&(?!amp;|lt;|gt;)", long["text"])  # no entity cut in half
    assert escape_slack("<&>") == "&lt;&amp;&gt;"






async def test_dingtalk_keyword_check(fake, http, clock):
    fake.add("dingtalk", "kw-robot-token-0001", keyword="fieldchat")
    without = sender(http, clock, sink(fake, "dingtalk", token="kw-robot-token-0001", secret=None))
    with pytest.raises(Undeliverable, match="310000"):
        await without.send("staff", "dingtalk", Rendered("告警"))
    keyed = sender(http, clock, sink(fake, "dingtalk", token="kw-robot-token-0001", secret=None, keyword="fieldchat"))
    await keyed.send("staff", "dingtalk", Rendered("告警"))
    assert fake.messages("dingtalk", "kw-robot-token-0001")[0]["text"]["content"] == "fieldchat 告警"


# --- rate limits --------------------------------------------------------------------------------


async def test_wecom_over_20_per_minute_retries_after_a_minute(fake, http, clock):
    robots = sender(http, clock, sink(fake, "wecom", limits=()))  # our own window off, to meet the platform's
    for i in range(20):
        await robots.send("staff", "wecom", Rendered(f"#{i}"))
        clock.advance(timedelta(seconds=1))
    with pytest.raises(RetryLater) as caught:
        await robots.send("staff", "wecom", Rendered("#21"))
    assert caught.value.seconds == 60 and "45009" in str(caught.value)
    clock.advance(timedelta(seconds=41))  # the first send has left the minute window
    await robots.send("staff", "wecom", Rendered("#21 again"))


async def test_dingtalk_over_20_per_minute_is_blocked_for_ten_minutes(fake, http, clock):
    robots = sender(http, clock, sink(fake, "dingtalk", limits=()))
    for i in range(20):
        await robots.send("staff", "dingtalk", Rendered(f"#{i}"))
    for wait in (timedelta(0), timedelta(minutes=5)):  # still blocked long after the minute is over
        clock.advance(wait)
        with pytest.raises(RetryLater) as caught:
            await robots.send("staff", "dingtalk", Rendered("one too many"))
        assert caught.value.seconds == 600 and "130101" in str(caught.value)
    clock.advance(timedelta(minutes=5, seconds=1))
    await robots.send("staff", "dingtalk", Rendered("after the block"))


async def test_feishu_over_5_per_second_retries(fake, http, clock):
    robots = sender(http, clock, sink(fake, "feishu", limits=()))
    for i in range(5):
        await robots.send("staff", "feishu", Rendered(f"#{i}"))
    with pytest.raises(RetryLater) as caught:
        await robots.send("staff", "feishu", Rendered("#6"))
    assert caught.value.seconds == 60
    clock.advance(timedelta(seconds=1))
    await robots.send("staff", "feishu", Rendered("#6 again"))


async def test_slack_429_uses_retry_after(fake, http, clock):
    robots = sender(http, clock, sink(fake, "slack", limits=()))
    for i in range(3):  # the fake's burst
        await robots.send("staff", "slack", Rendered(f"#{i}"))
    with pytest.raises(RetryLater) as caught:
        await robots.send("staff", "slack", Rendered("#4"))
    assert caught.value.seconds == 1
    clock.advance(timedelta(seconds=1))
    await robots.send("staff", "slack", Rendered("#4 again"))


async def test_own_window_holds_back_before_dingtalk_blocks(fake, http, clock):
    robots = sender(http, clock, sink(fake, "dingtalk"))  # default: 20 per minute
    for i in range(20):
        await robots.send("staff", "dingtalk", Rendered(f"#{i}"))
    with pytest.raises(Throttled) as caught:
        await robots.send("staff", "dingtalk", Rendered("#21"))
    assert caught.value.seconds == pytest.approx(60)
    assert len(fake.calls_to("dingtalk")) == 20  # never sent, so the robot is not blocked
    clock.advance(timedelta(seconds=60))
    await robots.send("staff", "dingtalk", Rendered("#21"))


ERROR_CASES = [
    ("wecom", 200, {"errcode": 93000, "errmsg": "invalid webhook url"}, {}, Undeliverable, None),
    ("wecom", 200, {"errcode": -1, "errmsg": "system busy"}, {}, RetryLater, None),
    ("wecom", 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, {}, RetryLater, 60),
    ("wecom", 502, "bad gateway", {}, RetryLater, None),
    ("wecom", 200, "<html>portal</html>", {}, RetryLater, None),
    ("dingtalk", 200, {"errcode": 130101, "errmsg": "send too fast"}, {}, RetryLater, 600),
    ("dingtalk", 200, {"errcode": 300001, "errmsg": "token is not exist"}, {}, Undeliverable, None),
    ("feishu", 200, {"code": 11232, "msg": "frequency limited"}, {}, RetryLater, 60),
    ("feishu", 400, {"code": 9499, "msg": "too many request"}, {}, RetryLater, 60),
    ("feishu", 400, {"code": 9499, "msg": "Bad Request"}, {}, Undeliverable, None),  # 9499 is also a malformed body
    ("feishu", 200, {"StatusCode": 19001, "StatusMessage": "token invalid"}, {}, Undeliverable, None),
    ("feishu", 503, {"code": 1, "msg": "unavailable"}, {"Retry-After": "5"}, RetryLater, 5),
    ("slack", 429, "rate_limited", {"Retry-After": "7"}, RetryLater, 7),
    ("slack", 403, "invalid_token", {}, Undeliverable, None),
    ("slack", 404, "no_service", {}, Undeliverable, None),
    ("slack", 500, "rollup_error", {}, RetryLater, None),
]


@pytest.mark.parametrize(("kind", "status", "body", "headers", "error", "seconds"), ERROR_CASES)
async def test_error_mapping(fake, http, clock, kind, status, body, headers, error, seconds):
    fake.fail_next(kind, status=status, body=body, headers=headers)
    with pytest.raises(error) as caught:
        await sender(http, clock, sink(fake, kind)).send("staff", kind, Rendered("告警"))
    if error is RetryLater:
        assert caught.value.seconds == seconds


async def test_older_feishu_answer_counts_as_success(fake, http, clock):
    fake.fail_next("feishu", body={"Extra": None, "StatusCode": 0, "StatusMessage": "success"})
    await sender(http, clock, sink(fake, "feishu")).send("staff", "feishu", Rendered("告警"))


async def test_timeouts_and_refused_connections_are_transient(fake, clock):
    fake.fail_next("wecom", delay=0.5)
    async with httpx.AsyncClient(timeout=0.1) as impatient:
        with pytest.raises(RetryLater, match="timeout"):
            await sender(impatient, clock, sink(fake, "wecom")).send("staff", "wecom", Rendered("告警"))
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    nowhere = RobotSink("slack", "slack", FakeRobots.production_url("slack", TOKENS["slack"]), base_url=closed)
    async with RobotSender({"slack": nowhere}, None, clock) as robots:  # its own client
        with pytest.raises(RetryLater):
            await robots.send("staff", "slack", Rendered("告警"))


# --- failover -----------------------------------------------------------------------------------


async def test_failover_to_the_next_sink_after_the_window(fake, http, clock):
    primary, backup = sink(fake, "dingtalk", name="primary"), sink(fake, "wecom", name="backup")
    robots = sender(http, clock, primary, backup)
    failover = FailoverSender(robots, {"ops": ["primary", "backup"]})
    fake.fail_next("dingtalk", status=502, body="bad gateway", count=4)

    with pytest.raises(RetryLater) as first:
        await failover.send("staff", "ops", Rendered("告警 1"))
    assert first.value.seconds == 30  # our default retry, well inside the 2-minute window
    clock.advance(timedelta(seconds=100))
    with pytest.raises(RetryLater) as second:
        await failover.send("staff", "ops", Rendered("告警 1"))
    assert second.value.seconds == pytest.approx(20)  # never later than the moment failover is due
    clock.advance(timedelta(seconds=20))
    await failover.send("staff", "ops", Rendered("告警 1"))  # primary fails a 3rd time: 2 minutes, so backup
    assert [m["text"]["content"] for m in fake.messages("wecom", TOKENS["wecom"])] == ["告警 1"]
    assert failover.is_down("primary")

    calls = len(fake.calls_to("dingtalk"))
    clock.advance(timedelta(seconds=30))
    await failover.send("staff", "ops", Rendered("告警 2"))  # primary is skipped, not even tried
    assert len(fake.calls_to("dingtalk")) == calls
    clock.advance(timedelta(seconds=91))
    await failover.send("staff", "ops", Rendered("告警 3"))  # probe after a window: still failing, backup again
    assert len(fake.calls_to("dingtalk")) == calls + 1
    assert len(fake.messages("wecom", TOKENS["wecom"])) == 3
    clock.advance(timedelta(seconds=121))
    await failover.send("staff", "ops", Rendered("告警 4"))  # injected failures are used up: primary is back
    assert [m["text"]["content"] for m in fake.messages("dingtalk", TOKENS["dingtalk"])] == ["告警 4"]
    assert not failover.is_down("primary")


async def test_failover_caps_long_platform_waits_and_keeps_alerts_alive(fake, http, clock):
    primary, backup = sink(fake, "dingtalk", name="primary"), sink(fake, "slack", name="backup")
    failover = FailoverSender(sender(http, clock, primary, backup), {"ops": ["primary", "backup"]}, window=timedelta(minutes=2))
    fake.fail_next("dingtalk", body={"errcode": 130101, "errmsg": "send too fast"})
    with pytest.raises(RetryLater) as caught:
        await failover.send("staff", "ops", Rendered("告警"))
    assert caught.value.seconds == 120  # DingTalk says 600 s; failover is due after 120 s
    # Undeliverable on a sink with a successor becomes RetryLater: the backup may still take the alert
    fake.fail_next("dingtalk", body={"errcode": 310000, "errmsg": "sign not match"})
    clock.advance(timedelta(seconds=60))
    with pytest.raises(RetryLater) as caught:
        await failover.send("staff", "ops", Rendered("告警"))
    assert caught.value.seconds == 30


async def test_last_sink_errors_pass_through_and_throttling_is_not_failure(fake, http, clock):
    only = sink(fake, "slack", name="only")
    failover = FailoverSender(sender(http, clock, only), {"solo": ["only"]})
    fake.fail_next("slack", status=404, body="no_service")
    with pytest.raises(Undeliverable):
        await failover.send("staff", "solo", Rendered("告警"))

    first, second = sink(fake, "slack", name="first"), sink(fake, "wecom", name="second")
    failover = FailoverSender(sender(http, clock, first, second), {"ops": ["first", "second"]}, window=timedelta(0))
    await failover.send("staff", "ops", Rendered("#1"))
    with pytest.raises(Throttled):  # 1/s on our side: wait, do not fail over
        await failover.send("staff", "ops", Rendered("#2"))
    assert not failover.is_down("first") and fake.messages("wecom", TOKENS["wecom"]) == []


# --- secrets ------------------------------------------------------------------------------------


async def test_urls_and_secrets_never_reach_repr_or_logs(fake, http, clock, caplog):
    caplog.set_level(logging.DEBUG)
    sinks = [sink(fake, kind) for kind in TOKENS] + [sink(fake, "dingtalk", name="bad-sign", secret="SECwrong-secret-value-000")]
    secrets = [*TOKENS.values(), *SECRETS.values(), "SECwrong-secret-value-000", *(s.url for s in sinks), *(s.endpoint for s in sinks)]
    for s in sinks:
        assert not any(secret in repr(s) or secret in str(s) for secret in secrets)
    robots = RobotSender({s.name: s for s in sinks}, http, clock)
    failover = FailoverSender(robots, {"ops": ["bad-sign", "wecom"]}, window=timedelta(0))
    errors: list[str] = []
    for s in sinks:
        try:
            await robots.send("staff", s.name, Rendered("告警"))
        except (RetryLater, Undeliverable) as exc:
            errors.append(str(exc))
    fake.fail_next("wecom", body={"errcode": 93000, "errmsg": f"invalid webhook url {TOKENS['wecom']}"})
    with pytest.raises(Undeliverable) as echoed:  # even a platform echoing the key back is scrubbed
        await failover.send("staff", "ops", Rendered("告警"))
    errors.append(str(echoed.value))
    assert len(errors) == 2
    logged = [record.getMessage() for record in caplog.records]
    assert any("HTTP Request" in line and "***" in line for line in logged)  # httpx did log, redacted
    for text in logged + errors:
        assert not any(secret in text for secret in secrets), text


# --- a real alert, end to end -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "feishu", "slack"])
@pytest.mark.parametrize("link", [False, True])
async def test_masked_alert_reaches_each_kind(fake, http, clock, kind, link):
    alert = Outbound(
        t(
            "group.exception",
            exception=7,
            visit=12,
            kind=t("kind.installation"),
            reason=t("reason.customer_unreachable"),
            note="门口没人 <b>&</b>",
            photos=2,
            technician="李师傅",
            customer=mask_name("王小明"),
            phone=mask_phone("138 1234 5678"),
            address=mask_address("上海市 浦东新区 世纪大道100号"),
            product="格力空调",
            region="浦东",
        ),
        buttons([Button(t("btn.acknowledge"), "xa:7"), Button(t("btn.reassign"), "xr:7")]),
    )
    rendered = render(alert.payload(), "zh", timezone.utc)
    details = {"details_url": "https://fc.example/x/7"} if link else {}
    await sender(http, clock, sink(fake, kind, **details)).send("staff", kind, rendered)
    (payload,) = fake.messages(kind, TOKENS[kind])
    text = alert_text(fake, kind, payload)
    assert "1234" not in text and "王小明" not in text and "世纪大道" not in text
    assert re.search(r"138(\\?\*){4}5678", text)  # masked phone, possibly markdown-escaped
    if link:
        assert "https://fc.example/x/7" in json.dumps(payload)
    else:
        assert "[👌 已知悉] [🔁 改派]" in text
    if kind == "slack":
        assert "&lt;b&gt;&amp;&lt;/b&gt;" in text
