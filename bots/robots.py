"""Group-alert robots (WeCom, DingTalk, Feishu/Lark, Slack incoming webhooks) as outbox Senders, with failover."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

import httpx

from bots.base import RetryLater, Undeliverable
from bots.channels import TextMeasure
from bots.render import ELLIPSIS, cut
from services.messages import Rendered

log = logging.getLogger(__name__)

KINDS = ("wecom", "dingtalk", "feishu", "slack")

# G1: WeCom counts UTF-8 bytes of the content.
WECOM_TEXT_BYTES = 2048
WECOM_MARKDOWN_BYTES = 4096
# DingTalk publishes no size in platform-facts; a conservative cap keeps a runaway text from being rejected.
DINGTALK_TEXT_BYTES = 20_000
# G3: the whole request body; 20 000 rather than 20 480 so either reading of "20 KB" holds.
FEISHU_BODY_BYTES = 20_000
# Slack caps a section block's text at 3000 characters; the plain text uses the same cap to stay simple.
SLACK_TEXT_CHARS = 3000

LINK_LABEL = "Open in fieldchat"

# The language a robot's group most likely reads, until each sink is given its own: the Chinese office suites'
# groups read Chinese, the Slack workspaces that use fieldchat English.
LANGUAGES: dict[str, str] = {"wecom": "zh", "dingtalk": "zh", "feishu": "zh", "slack": "en"}

# Sliding windows (count, seconds) per robot from G1–G4; sending within them avoids DingTalk's 10-minute block.
DEFAULT_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "wecom": ((20, 60.0),),
    "dingtalk": ((20, 60.0),),
    "feishu": ((5, 1.0), (100, 60.0)),
    "slack": ((1, 1.0),),
}

# How long a platform's rate-limit answer should keep us away when it gives no Retry-After.
THROTTLE_SECONDS: dict[str, float | None] = {
    "wecom": 60.0,  # 20 per minute: the minute window has cleared after 60 s
    "dingtalk": 600.0,  # G2: going over throttles the robot for 10 minutes
    "feishu": 60.0,  # 100 per minute is the longer of its two windows
    "slack": None,  # Slack always sends Retry-After; without it the relay's back-off decides
}
RATE_CODES: dict[str, frozenset[int]] = {
    "wecom": frozenset({45009}),
    "dingtalk": frozenset({130101}),
    "feishu": frozenset({11232, 9499}),
    "slack": frozenset(),
}
BUSY_CODES = frozenset({-1})  # WeCom/DingTalk "system busy"

# Path words that are the same for every robot; everything else in a webhook URL may identify it.
_PUBLIC_PATH_WORDS = frozenset({"", "cgi-bin", "webhook", "send", "robot", "open-apis", "bot", "v2", "hook", "services"})


# --- secrets never reach the logs ---------------------------------------------------------------


class _Redactor(logging.Filter):
    """Replaces robot URLs, tokens and signing secrets in records of the HTTP libraries.

    httpx logs every request line at INFO, and for WeCom/Slack the URL is the credential.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self.secrets.update(v for v in values if v and len(v) >= 4)

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):  # longest first: a URL before its key
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the logging module's problem, not ours
                return True
            scrubbed = self.scrub(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


_REDACTOR = _Redactor()


def known_secrets() -> set[str]:
    """Robot URLs and signing secrets seen so far, for the log formatter to mask wherever they appear."""
    return set(_REDACTOR.secrets)
_REDACTED_LOGGERS = ("httpx", "httpcore", __name__)


def _install_redactor() -> None:
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class RobotSink:
    """One group robot. ``url`` is the webhook as the platform shows it (for WeCom and Slack it IS the secret).

    ``secret``: signing secret (DingTalk "加签", Feishu "签名校验"). ``keyword``: a DingTalk/Feishu keyword
    check, put in front of texts that lack it. ``details_url``: where button presses go instead, since
    robots cannot receive callbacks. ``base_url``: replaces scheme and host of ``url`` (tests, proxies).
    ``limits``: client-side (count, seconds) windows; None takes the platform's, () turns them off.
    """

    kind: str
    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    keyword: str | None = None
    details_url: str | None = None
    base_url: str | None = None
    limits: tuple[tuple[int, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"robot kind must be one of {KINDS}, not {self.kind!r}")
        if not self.name:
            raise ValueError("a robot sink needs a name")
        parts = urlsplit(self.url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # the message must not quote the URL: it is a credential
            raise ValueError(f"robot sink {self.name!r}: the webhook URL is not an http(s) URL")

    def __repr__(self) -> str:
        secret = "<hidden>" if self.secret else None
        return (
            f"RobotSink(kind={self.kind!r}, name={self.name!r}, url=<hidden>, secret={secret}, "
            f"keyword={self.keyword!r}, details_url={self.details_url!r}, base_url={self.base_url!r})"
        )

    __str__ = __repr__

    @property
    def endpoint(self) -> str:
        """The URL requests go to: ``url`` with scheme and host from ``base_url`` when set."""
        if not self.base_url:
            return self.url
        base, target = urlsplit(self.base_url), urlsplit(self.url)
        return urlunsplit((base.scheme, base.netloc, target.path, target.query, ""))

    @property
    def window_limits(self) -> tuple[tuple[int, float], ...]:
        return DEFAULT_LIMITS[self.kind] if self.limits is None else self.limits

    def secrets(self) -> list[str]:
        """Every string that would let someone post into the group."""
        parts = urlsplit(self.url)
        values = [self.url, self.endpoint, parts.path + ("?" + parts.query if parts.query else "")]
        values += [value for _, value in parse_qsl(parts.query)]
        segments = [s for s in parts.path.split("/") if s not in _PUBLIC_PATH_WORDS]
        values += segments
        if len(segments) > 1:
            values.append("/".join(segments))  # Slack's T…/B…/X… together
        if self.secret:
            values.append(self.secret)
        return [v for v in values if v]


# --- signing (G2, G3) -----------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """G2: urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}"))), ready for a query string."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """G3: base64(HMAC-SHA256(key=f"{timestamp_s}\\n{secret}", msg=b"")) — the string to sign is the KEY."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# --- payload shaping ------------------------------------------------------------------------------


def _fit(text: str, build: Callable[[str], Any], size: Callable[[Any], int], limit: int) -> Any:
    """``build(text)``, or ``build`` of the longest prefix + ellipsis whose ``size`` stays within ``limit``.

    A search rather than arithmetic because escaping (Slack, JSON) changes sizes unevenly.
    """
    whole = build(text)
    if size(whole) <= limit:
        return whole
    low, high = 0, len(text)  # invariant: prefix of length low fits (checked below for 0)
    if size(build(ELLIPSIS)) > limit:
        raise Undeliverable("the message does not fit the robot's size limit even when empty")
    while low < high:
        mid = (low + high + 1) // 2
        if size(build(text[:mid] + ELLIPSIS)) <= limit:
            low = mid
        else:
            high = mid - 1
    return build(text[:low] + ELLIPSIS)


def escape_slack(text: str) -> str:
    """Slack's three control characters; everything else is shown as is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in "\\`*_[]~|"})


def escape_markdown(text: str) -> str:
    """Masked data like "张**, 138****5678" must not turn into bold; lines must not become headings or quotes."""
    lines = []
    for line in text.translate(_MARKDOWN_SPECIALS).split("\n"):
        if line.startswith(("#", ">", "-", "+")):
            line = "\\" + line
        lines.append(line)
    return "  \n".join(lines)  # two trailing spaces: a hard line break in markdown


_MENTION = re.compile(r"<(?=\s*(?:at\b|@))", re.IGNORECASE)


def defang_mentions(text: str) -> str:
    """A zero-width space after "<" keeps texts like '<at user_id="all">' (Feishu) or '<@id>' (WeCom
    markdown) in someone's note from pinging the whole group; readers see no difference."""
    return _MENTION.sub("<\u200b", text)


def is_link(data: str) -> bool:
    """A button whose action is a URL (a signed action link, services/robot_links.py): robots can show it as a link."""
    return data.startswith(("https://", "http://"))


def _labels(message: Rendered) -> list[str]:
    return [label for row in message.buttons for label, _ in row]


def _inert(message: Rendered) -> list[str]:
    """Labels of buttons that are no link: a robot cannot call back, so they can only be shown."""
    return [label for row in message.buttons for label, data in row if not is_link(data)]


def _links(sink: RobotSink, message: Rendered) -> list[tuple[str, str]]:
    """(label, URL) per button that is a link; without any, the sink's ``details_url`` for the lot (if it has one)."""
    links = [(label, data) for row in message.buttons for label, data in row if is_link(data)]
    if links:
        return links
    return [(LINK_LABEL, sink.details_url)] if sink.details_url and _labels(message) else []


def _utf8(text: str) -> int:
    return len(text.encode())


def _body_bytes(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _with_keyword(sink: RobotSink, text: str) -> str:
    # prefixed, so truncation at the end can never cut the keyword away
    if sink.keyword and sink.keyword not in text:
        return f"{sink.keyword} {text}"
    return text


def _plain(sink: RobotSink, message: Rendered) -> tuple[str, str]:
    """Body text and the line standing in for buttons that are not links (robots cannot call back)."""
    labels = _labels(message)
    if not labels:
        tail = ""
    elif sink.details_url and not any(is_link(data) for row in message.buttons for _, data in row):
        tail = f"{LINK_LABEL}: {sink.details_url}"
    else:
        tail = " ".join(f"[{label}]" for label in _inert(message))
    return _with_keyword(sink, message.text), tail


def _join(body: str, tail: str) -> str:
    return f"{body}\n{tail}" if tail else body


_LINK_TEXT = str.maketrans({"[": "［", "]": "］", "\n": " "})


def _markdown_label(label: str) -> str:
    # brackets become their full-width look-alikes: a name with "](…)" in it must not end the link text early
    return label.translate(_LINK_TEXT).translate(_MARKDOWN_SPECIALS)


def _slack_label(label: str) -> str:
    # "|" ends a Slack link's URL part: the label keeps a look-alike instead
    return escape_slack(label).replace("|", "\u00a6").replace("\n", " ")


def build_payload(sink: RobotSink, message: Rendered, timestamp_s: int | None = None) -> dict:
    """The JSON a robot gets for one message, within the platform's limits.

    Plain text, unless some buttons are links (signed action links) or the message has buttons and the sink a
    ``details_url``: then the platform's link form (WeCom markdown links, DingTalk actionCard buttons, Feishu
    interactive card buttons, Slack blocks), one link per button. Buttons that are no link stay as ``[labels]``.
    Photos are not uploaded: robots take images only by URL or base64, so alerts carry text.
    """
    body, tail = _plain(sink, message)
    links = _links(sink, message)
    if tail and any(is_link(data) for row in message.buttons for _, data in row):
        body = f"{body}\n{tail}"  # beside action links, the buttons that cannot be one are still shown
    if sink.kind == "wecom":
        if links:
            suffix = "\n".join(f"[{_markdown_label(label)}]({url})" for label, url in links)
            content = _fit(body, lambda t: f"{defang_mentions(escape_markdown(t))}\n\n{suffix}", _utf8, WECOM_MARKDOWN_BYTES)
            return {"msgtype": "markdown", "markdown": {"content": content}}
        content = _fit(body, lambda t: _join(t, tail), _utf8, WECOM_TEXT_BYTES)
        return {"msgtype": "text", "text": {"content": content}}
    if sink.kind == "dingtalk":
        title = cut(body.split("\n", 1)[0], 64, TextMeasure.UTF8_BYTES)
        if links:
            text = _fit(body, escape_markdown, _utf8, DINGTALK_TEXT_BYTES)
            if len(links) == 1:
                (label, url), = links
                return {"msgtype": "actionCard", "actionCard": {"title": title, "text": text, "singleTitle": label, "singleURL": url}}
            # "0": the buttons one under another, which keeps long labels readable
            buttons = [{"title": label, "actionURL": url} for label, url in links]
            return {"msgtype": "actionCard", "actionCard": {"title": title, "text": text, "btnOrientation": "0", "btns": buttons}}
        content = _fit(body, lambda t: _join(t, tail), _utf8, DINGTALK_TEXT_BYTES)
        return {"msgtype": "text", "text": {"content": content}}
    if sink.kind == "feishu":
        signed: dict = {}
        if sink.secret:
            ts = int(timestamp_s if timestamp_s is not None else datetime.now(timezone.utc).timestamp())
            signed = {"timestamp": str(ts), "sign": feishu_sign(sink.secret, ts)}
        if links:
            actions = [
                {"tag": "button", "text": {"tag": "plain_text", "content": label}, "url": url, "type": "primary" if index == 0 else "default"}
                for index, (label, url) in enumerate(links)
            ]

            def card(t: str) -> dict:
                title, _, rest = t.partition("\n")
                elements: list[dict] = []
                if rest:
                    elements.append({"tag": "div", "text": {"tag": "plain_text", "content": rest}})
                elements.append({"tag": "action", "actions": actions})
                header = {"title": {"tag": "plain_text", "content": title}, "template": "red"}
                return {**signed, "msg_type": "interactive", "card": {"header": header, "elements": elements}}

            return _fit(body, card, lambda p: len(_body_bytes(p)), FEISHU_BODY_BYTES)
        return _fit(
            body,
            lambda t: {**signed, "msg_type": "text", "content": {"text": defang_mentions(_join(t, tail))}},
            lambda p: len(_body_bytes(p)),
            FEISHU_BODY_BYTES,
        )
    # slack: the top-level text is parsed as mrkdwn by default, so it is escaped; "mrkdwn": false keeps
    # masked data like "138****5678" from turning bold (mrkdwn has no backslash escapes)
    if links:
        line = " · ".join(f"<{url}|{_slack_label(label)}>" for label, url in links)

        def blocks(t: str) -> dict:
            return {
                "text": escape_slack(t),  # the notification's fallback text
                "blocks": [
                    {"type": "section", "text": {"type": "plain_text", "text": t, "emoji": True}},  # plain_text is never parsed
                    {"type": "section", "text": {"type": "mrkdwn", "text": line}},
                ],
            }

        return _fit(body, blocks, lambda p: len(p["text"]), SLACK_TEXT_CHARS)
    return _fit(body, lambda t: {"text": escape_slack(_join(t, tail)), "mrkdwn": False}, lambda p: len(p["text"]), SLACK_TEXT_CHARS)


# --- clocks and client-side rate windows ----------------------------------------------------------

# a callable returning an aware datetime, or the project's domain.clock.Clock (anything with .now())
ClockLike = Any


def _now_function(clock: ClockLike | None) -> Callable[[], datetime]:
    if clock is None:
        return lambda: datetime.now(timezone.utc)
    return clock.now if hasattr(clock, "now") else clock


class Throttled(RetryLater):
    """Held back on our side to stay inside the robot's published rate; the robot itself is fine."""


class _Windows:
    """Sliding-window log of request times for one robot."""

    def __init__(self, limits: tuple[tuple[int, float], ...]) -> None:
        self.limits = limits
        self.horizon = max((period for _, period in limits), default=0.0)
        self.times: deque[float] = deque()

    def wait(self, now: float) -> float:
        while self.times and self.times[0] <= now - self.horizon:
            self.times.popleft()
        wait = 0.0
        for count, period in self.limits:
            recent = [t for t in self.times if t > now - period]
            if len(recent) >= count:
                wait = max(wait, recent[-count] + period - now)
        return wait

    def record(self, now: float) -> None:
        self.times.append(now)


# --- the sender -----------------------------------------------------------------------------------


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # the HTTP-date form: the platform default applies


class RobotSender:
    """Sender for group robots: ``chat_id`` is the sink's name; ``bot`` is ignored (robots have no roles).

    Raises RetryLater for 429/rate-limit codes/5xx/network, Undeliverable for other 4xx and error codes,
    Throttled (a RetryLater) when sending now would exceed the robot's published rate. Returns None:
    robots return no message id.
    """

    def __init__(self, sinks: Mapping[str, RobotSink], http: httpx.AsyncClient | None = None, clock: ClockLike | None = None, timeout: float = 10.0) -> None:
        for key, sink in sinks.items():
            if key != sink.name:
                raise ValueError(f"sink registered as {key!r} is named {sink.name!r}")
        self.sinks = dict(sinks)
        self._now = _now_function(clock)
        self._http = http
        self._own_http = http is None
        self._timeout = timeout
        self._windows = {name: _Windows(sink.window_limits) for name, sink in self.sinks.items()}
        for sink in self.sinks.values():
            _REDACTOR.add(sink.secrets())
        _install_redactor()

    def keep_windows_of(self, previous: RobotSender) -> None:
        """After a configuration reload: sinks that still post to the same robot keep the sends they already made."""
        for name, sink in self.sinks.items():
            old = previous.sinks.get(name)
            if old is not None and (old.kind, old.url) == (sink.kind, sink.url) and old.window_limits == sink.window_limits:
                self._windows[name] = previous._windows[name]

    def now(self) -> datetime:
        moment = self._now()
        if moment.tzinfo is None:
            raise ValueError("the robot clock must return aware datetimes")
        return moment

    async def __aenter__(self) -> RobotSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None:
        sink = self.sinks.get(chat_id)
        if sink is None:
            raise Undeliverable(f"no robot sink named {chat_id!r}")
        now = self.now()
        seconds = now.timestamp()
        window = self._windows[sink.name]
        wait = window.wait(seconds)
        if wait > 0:
            raise Throttled(f"{sink.kind} {sink.name}: holding back to stay within the robot's rate", wait)
        url = sink.endpoint
        if sink.kind == "dingtalk" and sink.secret:
            ts_ms = int(seconds * 1000)
            url += ("&" if urlsplit(url).query else "?") + f"timestamp={ts_ms}&sign={dingtalk_sign(sink.secret, ts_ms)}"
        payload = build_payload(sink, message, timestamp_s=int(seconds))
        window.record(seconds)
        try:
            response = await self._client().post(url, content=_body_bytes(payload), headers={"Content-Type": "application/json; charset=utf-8"})
        except httpx.TimeoutException:
            # "from None": httpx exceptions carry the request, whose URL is the credential
            raise RetryLater(f"{sink.kind} {sink.name}: timeout") from None
        except httpx.HTTPError as exc:
            raise RetryLater(f"{sink.kind} {sink.name}: {type(exc).__name__}") from None
        _check(sink, response)
        return None


def _platform_code(kind: str, data: Any) -> tuple[int | None, str]:
    if not isinstance(data, dict):
        return None, ""
    if kind == "feishu":
        code = data.get("code", data.get("StatusCode"))
        msg = data.get("msg", data.get("StatusMessage", ""))
    else:
        code, msg = data.get("errcode"), data.get("errmsg", "")
    return (code if isinstance(code, int) else None), str(msg)


def _is_rate_code(kind: str, code: int | None, msg: str) -> bool:
    if code not in RATE_CODES[kind]:
        return False
    if kind == "feishu" and code == 9499:
        # 9499 is Feishu's generic gateway code: also "Bad Request" for a malformed body, which resending cannot fix
        return any(word in msg.lower() for word in ("too many", "frequen", "limit"))
    return True


def _check(sink: RobotSink, response: httpx.Response) -> None:
    """Map one robot answer to success, RetryLater or Undeliverable."""
    where = f"{sink.kind} {sink.name}"
    status = response.status_code
    retry_after = _retry_after(response.headers)
    text = response.text

    def said(detail: str) -> str:
        return _REDACTOR.scrub(detail.strip())[:200]

    if status == 429:
        raise RetryLater(f"{where}: HTTP 429 {said(text)}", retry_after if retry_after is not None else THROTTLE_SECONDS[sink.kind])
    if status >= 500 or status == 408:
        raise RetryLater(f"{where}: HTTP {status}", retry_after)
    if sink.kind == "slack":
        if status >= 400:  # 400 invalid_payload, 403 invalid_token, 404 no_service, 410 channel_is_archived
            raise Undeliverable(f"{where}: HTTP {status} {said(text)}")
        if text.strip() == "ok":
            return
        raise RetryLater(f"{where}: unexpected answer {said(text)}")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    code, msg = _platform_code(sink.kind, data)
    if _is_rate_code(sink.kind, code, msg):
        seconds = retry_after if retry_after is not None else THROTTLE_SECONDS[sink.kind]
        raise RetryLater(f"{where}: rate limited ({code} {said(msg)})", seconds)
    if code in BUSY_CODES:
        raise RetryLater(f"{where}: busy ({code} {said(msg)})", retry_after)
    if status >= 400:
        raise Undeliverable(f"{where}: HTTP {status} {code if code is not None else ''} {said(msg or text)}".rstrip())
    if code == 0:
        return
    if code is None:
        # a proxy or captive portal answering 200 with HTML is a network problem, not the robot's verdict
        raise RetryLater(f"{where}: unexpected answer (HTTP {status})")
    raise Undeliverable(f"{where}: error {code} {said(msg)}")


# --- failover -------------------------------------------------------------------------------------


@dataclass
class _Health:
    failing_since: datetime | None = None
    skip_until: datetime | None = None


class FailoverSender:
    """Sender over alert routes: ``chat_id`` names a route, an ordered list of sink names.

    The rule (all times from the injected clock; state lives in memory, so a restart starts afresh):

    1. A send tries the route's sinks in order and stops at the first success.
    2. A sink's failure streak starts at its first RetryLater/Undeliverable and ends at its next success.
       ``Throttled`` (our own rate keeping) neither starts nor ends a streak and is passed through.
    3. A failure on a sink that is not the route's last, when its streak is ``window`` old or older
       (default 2 minutes), makes it *down*: the same send moves on to the next sink at once, and the
       sink is skipped for another ``window``; after that one send probes it again (success revives it,
       failure moves on again straight away).
    4. A failure on a sink whose streak is younger than ``window`` raises RetryLater with
       ``min(the sink's own wait or retry_in, time left until the streak is window old)`` — Undeliverable
       included, since the next sink may still take the alert. So the relay retries no later than when
       failover becomes due, and an alert leaves a failing sink within ``window`` of its first failure.
    5. The route's last sink is never skipped, and its errors pass through unchanged.
    """

    def __init__(
        self,
        robots: RobotSender,
        routes: Mapping[str, Sequence[str]],
        clock: ClockLike | None = None,
        window: timedelta = timedelta(minutes=2),
        retry_in: timedelta = timedelta(seconds=30),
    ) -> None:
        for route, names in routes.items():
            if not names:
                raise ValueError(f"route {route!r} has no sinks")
            unknown = [n for n in names if n not in robots.sinks]
            if unknown:
                raise ValueError(f"route {route!r} names unknown sinks {unknown}")
        self.robots = robots
        self.routes = {route: tuple(names) for route, names in routes.items()}
        self._now = _now_function(clock) if clock is not None else robots.now
        self.window = window
        self.retry_in = retry_in
        self._health: dict[str, _Health] = {}

    def is_down(self, sink: str) -> bool:
        health = self._health.get(sink)
        return bool(health and health.skip_until and self._now() < health.skip_until)

    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None:
        names = self.routes.get(chat_id)
        if names is None:
            raise Undeliverable(f"no alert route named {chat_id!r}")
        for position, name in enumerate(names):
            last = position == len(names) - 1
            health = self._health.setdefault(name, _Health())
            if not last and self.is_down(name):
                continue
            try:
                result = await self.robots.send(bot, name, message)
            except Throttled:
                raise
            except (RetryLater, Undeliverable) as exc:
                now = self._now()
                if health.failing_since is None:
                    health.failing_since = now
                if last:
                    raise
                failing_for = now - health.failing_since
                if failing_for >= self.window:
                    health.skip_until = now + self.window
                    log.warning("alert route %s: sink %s failing for %ss, failing over: %s", chat_id, name, int(failing_for.total_seconds()), exc)
                    continue
                own = exc.seconds if isinstance(exc, RetryLater) and exc.seconds is not None else self.retry_in.total_seconds()
                left = (self.window - failing_for).total_seconds()
                raise RetryLater(f"{exc} (failover to the next sink in {left:.0f}s)", min(own, left)) from None
            health.failing_since = None
            health.skip_until = None
            return result
        raise RetryLater(f"alert route {chat_id!r}: no sink available")  # unreachable: the last sink is always tried
