"""In-process fake WeCom, DingTalk, Feishu/Lark and Slack group robots that check signatures, sizes and rates."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fieldchat.fakes.loopback import serve_on_loopback

__all__ = ["FakeRobot", "FakeRobots", "RobotCall", "PRODUCTION_HOSTS", "webhook_path"]

PRODUCTION_HOSTS = {
    "wecom": "https://qyapi.weixin.qq.com",
    "dingtalk": "https://oapi.dingtalk.com",
    "feishu": "https://open.feishu.cn",
    "slack": "https://hooks.slack.com",
}

WECOM_LIMITS = {"text": 2048, "markdown": 4096}  # G1, UTF-8 bytes of the content
FEISHU_BODY_LIMIT = 20_000  # G3 "≤20 KB", read strictly
SLACK_SECTION_LIMIT = 3000  # characters in one section block's text

_DINGTALK_TYPES = {"text", "markdown", "actionCard", "link", "feedCard"}
_FEISHU_TYPES = {"text", "post", "image", "share_chat", "interactive"}


def webhook_path(kind: str, token: str) -> str:
    """Path and query of a robot's webhook, the same on the fake as on the platform."""
    return {
        "wecom": f"/cgi-bin/webhook/send?key={token}",
        "dingtalk": f"/robot/send?access_token={token}",
        "feishu": f"/open-apis/bot/v2/hook/{token}",
        "slack": f"/services/{token}",
    }[kind]


@dataclass
class RobotCall:
    """One request as the fake received it; ``at`` is the arrival time on the fake's clock (epoch seconds)."""

    kind: str
    token: str
    at: float
    query: dict[str, str]
    raw_query: str  # as sent, before percent-decoding
    body: bytes
    payload: Any
    status: int = 0
    answer: Any = None
    accepted: bool = False


@dataclass
class FakeRobot:
    kind: str
    token: str
    secret: str | None = None
    keyword: str | None = None
    messages: list[dict] = field(default_factory=list)
    arrivals: deque = field(default_factory=deque)  # accepted request times for the per-minute windows
    blocked_until: float = 0.0  # DingTalk's 10-minute penalty
    bucket: float = -1.0  # Slack token bucket (-1: not yet filled)
    bucket_at: float = 0.0


@dataclass
class _Injection:
    kind: str
    token: str | None
    status: int
    body: Any
    headers: dict[str, str]
    delay: float
    remaining: int


class _Answer(Exception):
    """Ends request handling with this status, body and headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class FakeRobots:
    """All four robot endpoints on one 127.0.0.1 port: add robots, point senders at ``base_url``.

    ``clock`` gives epoch seconds for arrival times, rate windows and signature timestamps, so tests
    can move time without sleeping. ``slack_burst`` is an assumption: Slack documents "short bursts"
    without a number. ``timestamp_tolerance`` is G2's 1 h; Feishu's tolerance is unconfirmed (a gap in
    platform-facts) and uses the same value, so tests must not probe its edge.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        slack_burst: int = 3,
        dingtalk_block: float = 600.0,
        timestamp_tolerance: float = 3600.0,
    ) -> None:
        self.clock = clock
        self.slack_burst = slack_burst
        self.dingtalk_block = dingtalk_block
        self.timestamp_tolerance = timestamp_tolerance
        self.calls: list[RobotCall] = []
        self._robots: dict[tuple[str, str], FakeRobot] = {}
        self._injections: list[_Injection] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeRobots:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/cgi-bin/webhook/send", self._wecom)
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._feishu)
        app.router.add_post("/services/{token:.+}", self._slack)
        # no access log: request lines carry the robot keys, which tests check never reach a log
        self._runner, self._port = await serve_on_loopback(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeRobots:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeRobots is not started")
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ configuration

    def add(self, kind: str, token: str, *, secret: str | None = None, keyword: str | None = None) -> FakeRobot:
        """Registers a robot; ``token`` is the WeCom key, DingTalk access_token, Feishu hook token or Slack "T/B/X"."""
        if kind not in PRODUCTION_HOSTS:
            raise ValueError(kind)
        robot = FakeRobot(kind, token, secret, keyword)
        self._robots[(kind, token)] = robot
        return robot

    def url(self, kind: str, token: str) -> str:
        """The webhook on this fake."""
        return self.base_url + webhook_path(kind, token)

    @staticmethod
    def production_url(kind: str, token: str) -> str:
        """The webhook as the platform would show it (use with a base URL override)."""
        return PRODUCTION_HOSTS[kind] + webhook_path(kind, token)

    def robot(self, kind: str, token: str) -> FakeRobot:
        return self._robots[(kind, token)]

    def fail_next(
        self,
        kind: str,
        *,
        token: str | None = None,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        count: int = 1,
    ) -> None:
        """Answers the next ``count`` requests to ``kind`` (any robot, or only ``token``) with this answer.

        ``body`` is JSON (dict) or text; ``delay`` (real seconds) holds the answer back to provoke timeouts.
        """
        self._injections.append(_Injection(kind, token, status, body, dict(headers or {}), delay, count))

    def messages(self, kind: str, token: str) -> list[dict]:
        """Accepted payloads of one robot, oldest first."""
        return self.robot(kind, token).messages

    def calls_to(self, kind: str, token: str | None = None) -> list[RobotCall]:
        return [c for c in self.calls if c.kind == kind and (token is None or c.token == token)]

    # ------------------------------------------------------------------ handlers

    async def _handle(self, kind: str, token: str, request: web.Request, check: Callable[[FakeRobot, RobotCall], None], ok: Any) -> web.Response:
        body = await request.read()
        call = RobotCall(kind=kind, token=token, at=self.clock(), query=dict(request.query), raw_query=request.rel_url.raw_query_string, body=body, payload=None)
        self.calls.append(call)
        try:
            call.payload = json.loads(body.decode()) if body else None
        except (ValueError, UnicodeDecodeError):
            call.payload = None
        try:
            injected = self._take_injection(kind, token)
            if injected is not None:
                if injected.delay:
                    await asyncio.sleep(injected.delay)
                raise _Answer(injected.status, injected.body, injected.headers)
            robot = self._robots.get((kind, token))
            if robot is None:
                raise _Answer(*_unknown(kind))
            check(robot, call)
            robot.messages.append(call.payload)
            call.accepted = True
            raise _Answer(200, ok)
        except _Answer as answer:
            call.status, call.answer = answer.status, answer.body
            if isinstance(answer.body, (dict, list)):
                return web.json_response(answer.body, status=answer.status, headers=answer.headers)
            return web.Response(text="" if answer.body is None else str(answer.body), status=answer.status, headers=answer.headers)

    def _take_injection(self, kind: str, token: str) -> _Injection | None:
        for injection in self._injections:
            if injection.kind == kind and injection.token in (None, token) and injection.remaining > 0:
                injection.remaining -= 1
                if injection.remaining == 0:
                    self._injections.remove(injection)
                return injection
        return None

    async def _wecom(self, request: web.Request) -> web.Response:
        return await self._handle("wecom", request.query.get("key", ""), request, self._check_wecom, {"errcode": 0, "errmsg": "ok"})

    async def _dingtalk(self, request: web.Request) -> web.Response:
        return await self._handle("dingtalk", request.query.get("access_token", ""), request, self._check_dingtalk, {"errcode": 0, "errmsg": "ok"})

    async def _feishu(self, request: web.Request) -> web.Response:
        return await self._handle("feishu", request.match_info["token"], request, self._check_feishu, {"code": 0, "data": {}, "msg": "success"})

    async def _slack(self, request: web.Request) -> web.Response:
        return await self._handle("slack", request.match_info["token"], request, self._check_slack, "ok")

    # ------------------------------------------------------------------ per platform

    def _check_wecom(self, robot: FakeRobot, call: RobotCall) -> None:
        payload = call.payload
        if not isinstance(payload, dict):
            raise _Answer(200, {"errcode": 40001 if payload is None else 44004, "errmsg": "invalid json"})
        msgtype = payload.get("msgtype")
        if msgtype not in WECOM_LIMITS:
            raise _Answer(200, {"errcode": 40008, "errmsg": "invalid message type"})
        content = (payload.get(msgtype) or {}).get("content")
        if not isinstance(content, str) or not content:
            raise _Answer(200, {"errcode": 44004, "errmsg": "empty content"})
        limit = WECOM_LIMITS[msgtype]
        if len(content.encode()) > limit:
            raise _Answer(200, {"errcode": 40058, "errmsg": f"{msgtype}.content exceed max length {limit}"})
        # G1: at most 20 per minute per robot
        if self._window_full(robot, call.at, 20, 60.0):
            raise _Answer(200, {"errcode": 45009, "errmsg": "api freq out of limit"})
        robot.arrivals.append(call.at)

    def _check_dingtalk(self, robot: FakeRobot, call: RobotCall) -> None:
        if robot.secret:
            timestamp, sign = call.query.get("timestamp", ""), call.query.get("sign", "")
            if not timestamp.isdigit() or abs(int(timestamp) / 1000 - call.at) > self.timestamp_tolerance:
                raise _Answer(200, {"errcode": 310000, "errmsg": "invalid timestamp"})
            # aiohttp decoded the query once, as DingTalk does: a double-encoded sign fails here
            expected = base64.b64encode(hmac.new(robot.secret.encode(), f"{timestamp}\n{robot.secret}".encode(), hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(sign.encode(), expected.encode()):
                raise _Answer(200, {"errcode": 310000, "errmsg": "sign not match"})
        payload = call.payload
        if not isinstance(payload, dict) or payload.get("msgtype") not in _DINGTALK_TYPES:
            raise _Answer(200, {"errcode": 40035, "errmsg": "缺少参数 json"})
        text = _dingtalk_text(payload)
        if not text:
            raise _Answer(200, {"errcode": 40035, "errmsg": "缺少参数 content"})
        if robot.keyword and robot.keyword not in text:
            raise _Answer(200, {"errcode": 310000, "errmsg": "keywords not in content"})
        # G2: 20 per minute; going over throttles the robot for 10 minutes
        if call.at < robot.blocked_until:
            raise _Answer(200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
        if self._window_full(robot, call.at, 20, 60.0):
            robot.blocked_until = call.at + self.dingtalk_block
            raise _Answer(200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
        robot.arrivals.append(call.at)

    def _check_feishu(self, robot: FakeRobot, call: RobotCall) -> None:
        if len(call.body) > FEISHU_BODY_LIMIT:
            raise _Answer(400, {"code": 9499, "msg": "Bad Request: request body too large", "data": {}})
        payload = call.payload
        if not isinstance(payload, dict):
            raise _Answer(400, {"code": 9499, "msg": "Bad Request", "data": {}})
        if robot.secret:
            timestamp, sign = str(payload.get("timestamp", "")), str(payload.get("sign", ""))
            expected = ""
            if timestamp.isdigit():
                key = f"{timestamp}\n{robot.secret}".encode()
                expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            fresh = timestamp.isdigit() and abs(int(timestamp) - call.at) <= self.timestamp_tolerance
            if not fresh or not hmac.compare_digest(sign.encode(), expected.encode()):
                raise _Answer(200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time", "data": {}})
        msg_type = payload.get("msg_type")
        if msg_type not in _FEISHU_TYPES:
            raise _Answer(200, {"code": 19002, "msg": "params error, msg_type need"})
        text = _feishu_text(payload)
        if msg_type in ("text", "interactive") and not text:
            raise _Answer(400, {"code": 9499, "msg": "Bad Request", "data": {}})
        if robot.keyword and robot.keyword not in text:
            raise _Answer(200, {"code": 19024, "msg": "Key Words Not Found", "data": {}})
        # G3: 5 per second and 100 per minute per bot
        if self._window_full(robot, call.at, 5, 1.0) or self._window_full(robot, call.at, 100, 60.0):
            raise _Answer(200, {"code": 9499, "msg": "too many request", "data": {}})
        robot.arrivals.append(call.at)

    def _check_slack(self, robot: FakeRobot, call: RobotCall) -> None:
        payload = call.payload
        if not isinstance(payload, dict):
            raise _Answer(400, "invalid_payload")
        text = payload.get("text")
        blocks = payload.get("blocks")
        if not text and not blocks:
            raise _Answer(400, "no_text")
        if blocks is not None:
            for block in blocks if isinstance(blocks, list) else [None]:
                section = (block or {}).get("text") if isinstance(block, dict) else None
                if not isinstance(section, dict) or len(section.get("text", "")) > SLACK_SECTION_LIMIT:
                    raise _Answer(400, "invalid_blocks")
        # G4: 1 per second with short bursts: a token bucket of slack_burst, refilled at 1/s
        if robot.bucket < 0:
            robot.bucket, robot.bucket_at = float(self.slack_burst), call.at
        robot.bucket = min(float(self.slack_burst), robot.bucket + (call.at - robot.bucket_at))
        robot.bucket_at = call.at
        if robot.bucket < 1:
            raise _Answer(429, "rate_limited", {"Retry-After": str(max(1, math.ceil(1 - robot.bucket)))})
        robot.bucket -= 1

    @staticmethod
    def _window_full(robot: FakeRobot, now: float, count: int, period: float) -> bool:
        while robot.arrivals and robot.arrivals[0] <= now - 60.0:  # the longest window any platform has
            robot.arrivals.popleft()
        return sum(1 for t in robot.arrivals if t > now - period) >= count


def _unknown(kind: str) -> tuple[int, Any]:
    return {
        "wecom": (200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [fake]"}),
        "dingtalk": (200, {"errcode": 300001, "errmsg": "token is not exist"}),
        "feishu": (200, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid", "data": {}}),
        "slack": (404, "no_service"),
    }[kind]


def _dingtalk_text(payload: dict) -> str:
    msgtype = payload["msgtype"]
    inner = payload.get(msgtype) or {}
    if msgtype == "text":
        return str(inner.get("content") or "")
    return " ".join(str(inner.get(k) or "") for k in ("title", "text")).strip()


def _feishu_text(payload: dict) -> str:
    if payload.get("msg_type") == "text":
        return str((payload.get("content") or {}).get("text") or "")
    if payload.get("msg_type") == "interactive":
        return json.dumps(payload.get("card") or {}, ensure_ascii=False) if payload.get("card") else ""
    return json.dumps(payload.get("content") or {}, ensure_ascii=False)
