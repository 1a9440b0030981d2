"""In-process fake Telegram Bot API HTTP server that real aiogram / python-telegram-bot clients can use."""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from fieldchat.fakes.loopback import serve_on_loopback

__all__ = ["Call", "Delivery", "FakeTelegram", "StoredFile", "UploadedFile", "Violation"]

# Telegram treats method names case-insensitively; we log the canonical spelling.
_METHODS = [
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "sendMessage",
    "sendPhoto",
    "sendMediaGroup",
    "sendDocument",
    "editMessageText",
    "editMessageCaption",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    "getFile",
    "sendChatAction",
    "deleteMessage",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "getChat",
]
_CANONICAL = {name.lower(): name for name in _METHODS}

SENT_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendMediaGroup",
        "sendDocument",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
    }
)
# Telegram answers a blocked user with 403 on anything that targets the chat, not only sends.
_CHAT_TARGETED = SENT_METHODS | {"sendChatAction"}

# Updates Telegram withholds unless explicitly listed in allowed_updates.
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Fields that always carry JSON when sent as form data.
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
        "media",
        "results",
        "options",
        "menu_button",
        "rights",
        "permissions",
        "input_message_content",
        "explanation_entities",
        "question_entities",
        "prices",
        "shipping_options",
        "reaction",
    }
)
# Free-text fields must never be JSON-decoded even if the user typed "[...]".
_TEXT_FIELDS = frozenset(
    {
        "text",
        "caption",
        "data",
        "callback_data",
        "title",
        "description",
        "short_description",
        "name",
        "question",
        "explanation",
        "secret_token",
        "url",
        "query",
        "message_text",
        "address",
        "first_name",
        "last_name",
        "vcard",
        "emoji",
        "payload",
        "callback_query_id",
        "inline_message_id",
        "file_id",
        "chat_id",
        "parse_mode",
        "action",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_HTML_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_ENTITY_NAMES = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_DOWNLOAD = 20 * 1024 * 1024
GROUP_USER_ID = 5_550_001
"""Sender used by group-chat update builders when no user_id is given."""


@dataclass
class Call:
    """One API request as the fake received it; status/response are filled in once answered."""

    token: str
    method: str
    params: dict[str, Any]
    at: float
    status: int | None = None
    response: Any = None


@dataclass
class Violation:
    """A send over one of the enforced rates (answered 429): kind is private, group or bot."""

    kind: str
    token: str
    chat_id: str
    at: float
    count: int
    seconds: float


@dataclass
class UploadedFile:
    """A file part of a multipart request (what the app uploaded)."""

    filename: str
    content: bytes
    content_type: str | None = None


@dataclass
class StoredFile:
    """A file the fake can serve via getFile and the /file/ download route."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    reported_size: int | None = None  # what getFile says instead of len(content), as a stale or lying server might

    @property
    def size(self) -> int:
        return len(self.content) if self.reported_size is None else self.reported_size


@dataclass
class Delivery:
    """One webhook POST attempt; status is None when the connection itself failed."""

    token: str
    update_id: int
    url: str
    status: int | None
    error: str | None
    at: float


@dataclass(eq=False)  # identity equality: a resent duplicate must not be removed with the original
class _Queued:
    update: dict[str, Any]
    resent: bool = False
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])

    @property
    def kind(self) -> str:
        return next((k for k in self.update if k != "update_id"), "")


@dataclass
class _Failure:
    token: str | None
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _Bot:
    token: str
    username: str
    bot_id: int
    first_name: str
    queue: list[_Queued] = field(default_factory=list)
    next_update_id: int = 1
    allowed_updates: list[str] = field(default_factory=list)
    confirmed: set[int] = field(default_factory=set)
    poll_generation: int = 0
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_max_connections: int = 40
    webhook_task: asyncio.Task[None] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name, "username": self.username}


class ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _utf16_len(text: str) -> int:
    # Telegram measures text limits in UTF-16 code units, so emoji count double.
    return len(text.encode("utf-16-le")) // 2


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()) is not None


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1"}
    return bool(value)


def _decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and key not in _TEXT_FIELDS:
            stripped = value.strip()
            looks_json = stripped[:1] in {"{", "["}
            if key in _JSON_FIELDS or looks_json:
                try:
                    value = json.loads(stripped)
                except ValueError:
                    pass
        out[key] = value
    return out


def _parse_html(text: str) -> str:
    """Validates Telegram HTML and returns the plain text a client would see."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while True:
        lt = text.find("<", pos)
        if lt < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:lt])
        offset = len(text[:lt].encode())
        match = _HTML_TAG_RE.match(text, lt)
        if match is None:
            raise _bad(f'can\'t parse entities: Unsupported start tag "" at byte offset {offset}')
        closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
        if closing:
            if not stack:
                raise _bad(f"can't parse entities: Unexpected end tag at byte offset {offset}")
            if stack[-1] != name:
                raise _bad(
                    f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                    f'expected "</{stack[-1]}>", found "</{name}>"'
                )
            stack.pop()
        else:
            if name not in _HTML_TAGS or (name == "span" and "tg-spoiler" not in attrs):
                raise _bad(f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {offset}')
            stack.append(name)
        pos = match.end()
    if stack:
        raise _bad(f'can\'t parse entities: Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return html.unescape("".join(out))


def _parse_markdown_v2(text: str) -> str:
    """Validates MarkdownV2 the way Telegram does for the common mistakes; returns plain text."""
    out: list[str] = []
    open_at: dict[str, int] = {}
    link_depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        offset = len(text[:i].encode())
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if c == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = i + len(fence)
            while True:
                end = text.find(fence, end)
                if end < 0:
                    name = "Pre" if fence == "```" else "Code"
                    raise _bad(f"can't parse entities: Can't find end of {name} entity at byte offset {offset}")
                if text[end - 1] != "\\":
                    break
                end += 1
            body = text[i + len(fence) : end]
            if fence == "```" and "\n" in body:
                first, rest = body.split("\n", 1)
                body = rest if re.fullmatch(r"[\w+-]*", first) else body
            out.append(re.sub(r"\\(.)", r"\1", body))
            i = end + len(fence)
            continue
        token = None
        for candidate in ("__", "||", "*", "_", "~"):
            if text.startswith(candidate, i):
                token = candidate
                break
        if token is not None:
            if token in open_at:
                del open_at[token]
            else:
                open_at[token] = offset
            i += len(token)
            continue
        if c == "[":
            link_depth += 1
            i += 1
            continue
        if c == "]" and link_depth:
            link_depth -= 1
            if text.startswith("(", i + 1):
                close = text.find(")", i + 2)
                if close < 0:
                    raise _bad(f"can't parse entities: Can't find end of a URL at byte offset {offset}")
                i = close + 1
            else:
                i += 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1
            continue
        if c in _MDV2_RESERVED:
            raise _bad(f"can't parse entities: Character '{c}' is reserved and must be escaped with the preceding '\\'")
        out.append(c)
        i += 1
    if open_at:
        token, offset = min(open_at.items(), key=lambda kv: kv[1])
        raise _bad(f"can't parse entities: Can't find end of {_MDV2_ENTITY_NAMES[token]} entity at byte offset {offset}")
    if link_depth:
        raise _bad("can't parse entities: Can't find end of a TextUrl entity")
    return "".join(out)


def _parse_markdown_legacy(text: str) -> str:
    out: list[str] = []
    open_char: str | None = None
    open_offset = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if c in "_*`":
            if open_char is None:
                open_char, open_offset = c, len(text[:i].encode())
            elif open_char == c:
                open_char = None
            else:
                out.append(c)
            i += 1
            continue
        out.append(c)
        i += 1
    if open_char is not None:
        raise _bad(f"can't parse entities: Can't find end of the entity starting at byte offset {open_offset}")
    return "".join(out)


def _plain_text(text: str, parse_mode: Any) -> str:
    mode = (parse_mode or "").strip().lower() if isinstance(parse_mode, str) else ""
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown_legacy(text)
    if mode:
        raise _bad("unsupported parse_mode")
    return text


def _validate_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Returns the inline keyboard to echo on the Message (reply keyboards are never echoed)."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
            raise _bad("can't parse reply keyboard markup JSON object")
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    actions = (
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    )
    for row in rows:
        for button in row:
            if not isinstance(button, dict):
                raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            if not str(button.get("text", "")).strip():
                raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
            if not any(k in button for k in actions):
                raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode())
                if not 1 <= size <= MAX_CALLBACK_DATA:
                    raise _bad("BUTTON_DATA_INVALID")
            if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                raise _bad("BUTTON_URL_INVALID")
    return {"inline_keyboard": rows}


class FakeTelegram:
    """Fake Bot API server: start() it, add_bot() tokens, point a real client at base_url."""

    def __init__(
        self,
        *,
        long_poll_cap: float = 1.0,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 5.0,
        send_answer_delay: float = 0.0,
    ) -> None:
        self.long_poll_cap = long_poll_cap
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        # A slow network: a send is recorded at once but answered this much later, so a client that dies
        # meanwhile never learns its message went out. `unanswered_sends` counts the answers held right now.
        self.send_answer_delay = send_answer_delay
        self.unanswered_sends = 0
        self.calls: list[Call] = []
        self.deliveries: list[Delivery] = []
        self.downloads: list[str] = []  # file paths requested from the /file/ route, in order
        self._sent: list[dict[str, Any]] = []
        self._bots: dict[str, _Bot] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._messages: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        self._last_message_id: dict[tuple[str, str], int] = {}
        self._chats: dict[str, dict[str, Any]] = {}
        self._callbacks: dict[str, bool] = {}  # id -> answered
        self._failures: dict[str, list[_Failure]] = {}
        self._blocked: set[str] = set()
        self._migrated: dict[str, str] = {}
        self._random_failures: dict[str, tuple[float, int, int | None, random.Random]] = {}
        self._rates: dict[str, tuple[int, float]] = {}
        self._rate_jitter = 0.0
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self.violations: list[Violation] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeTelegram:
        self._closing = False
        self._changed = asyncio.Event()  # bind to the running loop of this test
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        # Short shutdown: open long polls are woken on stop, so nothing should linger.
        self._runner, self._port = await serve_on_loopback(app)
        self._client = aiohttp.ClientSession()
        for bot in self._bots.values():
            if bot.webhook_url:
                self._restart_webhook(bot)
        return self

    async def stop(self) -> None:
        self._closing = True
        self._bump()
        for bot in self._bots.values():
            await self._stop_webhook_task(bot)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started")
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ configuration

    def add_bot(self, token: str, username: str, bot_id: int | None = None, first_name: str | None = None) -> dict[str, Any]:
        """Registers a bot token; returns its User object (as getMe would)."""
        if bot_id is None:
            prefix = token.split(":", 1)[0]
            bot_id = int(prefix) if prefix.isdigit() else 1_000_000 + len(self._bots)
        bot = _Bot(token=token, username=username, bot_id=bot_id, first_name=first_name or username)
        self._bots[token] = bot
        return bot.user

    def add_file(
        self,
        file_id: str,
        content: bytes,
        file_unique_id: str | None = None,
        file_path: str | None = None,
    ) -> StoredFile:
        n = next(self._ids)
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=file_unique_id or f"uniq{n}",
            file_path=file_path or f"documents/file_{n}",
            content=bytes(content),
        )
        self._files[file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def file_content(self, file_id: str) -> bytes:
        return self._files[file_id].content

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 3,
        description: str | None = None,
        count: int = 1,
        *,
        token: str | None = None,
    ) -> None:
        """Answers the next `count` calls of `method` (any bot, or only `token`) with an error."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                400: "Bad Request",
                401: "Unauthorized",
                403: "Forbidden: bot was blocked by the user",
                404: "Not Found",
                409: "Conflict",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(status, "Error")
        failure = _Failure(
            token=token,
            status=status,
            description=description,
            retry_after=retry_after if status == 429 else None,
            remaining=count,
        )
        self._failures.setdefault(method.lower(), []).append(failure)

    def fail_randomly(
        self, method: str, probability: float, status: int = 429, retry_after: int | None = 3, *, seed: int = 0
    ) -> None:
        """Answers each call of `method` with an error at random (reproducible by seed); probability 0 turns it off."""
        if probability <= 0:
            self._random_failures.pop(method.lower(), None)
        else:
            self._random_failures[method.lower()] = (probability, status, retry_after, random.Random(seed))

    def enforce_limits(
        self,
        *,
        private: tuple[int, float] | None = (1, 1.0),
        group: tuple[int, float] | None = (20, 60.0),
        bot: tuple[int, float] | None = (30, 1.0),
        jitter: float = 0.1,
    ) -> None:
        """Rate limits as Telegram's FAQ states them (T8): at most count sends in any `seconds`, per private
        chat, per group (negative id) and per bot. A send over one is answered 429 with retry_after and
        logged in `violations`; sends that were refused do not count.

        The sender counts on its own clock before the request travels, so windows here are `jitter`
        seconds shorter: only a real overrun is a violation, not scheduling noise."""
        self._rates = {kind: rate for kind, rate in (("private", private), ("group", group), ("bot", bot)) if rate}
        self._rate_jitter = jitter
        self._windows.clear()

    def migrate_chat(self, chat_id: int | str, new_chat_id: int | str) -> None:
        """The group became a supergroup: sends to the old id get 400 with migrate_to_chat_id (T9)."""
        self._migrated[str(chat_id)] = str(new_chat_id)
        old = self._chats.get(str(chat_id), {})
        self._chats[str(new_chat_id)] = {"id": int(new_chat_id), "type": "supergroup", "title": old.get("title", "Group")}

    def block_chat(self, chat_id: int | str) -> None:
        self._blocked.add(str(chat_id))

    def unblock_chat(self, chat_id: int | str) -> None:
        self._blocked.discard(str(chat_id))

    # ------------------------------------------------------------------ inspection

    def sent(self, token: str | None = None, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Successful sendMessage/sendPhoto/sendDocument/editMessage* calls, oldest first."""
        return [
            s
            for s in self._sent
            if (token is None or s["token"] == token) and (chat_id is None or s["chat_id"] == str(chat_id))
        ]

    async def wait_for_sent(
        self,
        predicate: Callable[[dict[str, Any]], bool] | str,
        timeout: float = 10,
        *,
        token: str | None = None,
        since: int = 0,
    ) -> dict[str, Any]:
        """Returns the first sent message matching; a str predicate means "text contains".

        `since` is an index into the unfiltered sent() log, e.g. len(fake.sent()) taken
        before the action, so earlier look-alike messages are ignored.
        """
        if isinstance(predicate, str):
            needle = predicate

            def matches(s: dict[str, Any]) -> bool:
                return needle in (s.get("text") or "")

        else:
            matches = predicate

        def find() -> dict[str, Any] | None:
            for s in self._sent[since:]:
                if (token is None or s["token"] == token) and matches(s):
                    return s
            return None

        try:
            return await self._wait(find, timeout)
        except TimeoutError:
            lines = [
                f"  {s['method']} chat={s['chat_id']} text={s['text']!r} markup={s['reply_markup']!r}"
                for s in self._sent[since:]
                if token is None or s["token"] == token
            ]
            raise AssertionError(
                f"no matching message sent within {timeout}s; sent were:\n" + ("\n".join(lines) or "  (nothing)")
            ) from None

    async def wait_for_call(
        self,
        method: str,
        timeout: float = 10,
        *,
        token: str | None = None,
        predicate: Callable[[Call], bool] | None = None,
        since: int = 0,
    ) -> Call:
        """Waits until the API receives `method` (answered or still pending)."""
        wanted = _CANONICAL.get(method.lower(), method)

        def find() -> Call | None:
            for c in self.calls[since:]:
                if c.method == wanted and (token is None or c.token == token) and (predicate is None or predicate(c)):
                    return c
            return None

        try:
            return await self._wait(find, timeout)
        except TimeoutError:
            seen = ", ".join(c.method for c in self.calls[since:]) or "nothing"
            raise AssertionError(f"{method} not called within {timeout}s; calls: {seen}") from None

    async def wait_until_confirmed(self, token: str, update_id: int, timeout: float = 10) -> None:
        """Resolves once the bot confirmed the update (getUpdates offset past it, or webhook 2xx)."""
        bot = self._bot(token)

        def done() -> bool:
            return update_id in bot.confirmed and not any(e.update_id == update_id for e in bot.queue)

        try:
            await self._wait(done, timeout)
        except TimeoutError:
            raise AssertionError(
                f"update {update_id} not confirmed within {timeout}s; pending="
                f"{[e.update_id for e in bot.queue]} confirmed={sorted(bot.confirmed)}"
            ) from None

    def pending_updates(self, token: str) -> list[dict[str, Any]]:
        return [e.update for e in self._bot(token).queue]

    def message(self, token: str, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The fake's current view of a message (after edits), or None if unknown/deleted."""
        return self._messages.get((token, str(chat_id)), {}).get(int(message_id))

    # ------------------------------------------------------------------ update builders

    def push_update(self, token: str, update: dict[str, Any]) -> int:
        """Queues a raw Bot API update; assigns the next update_id if missing and returns it."""
        bot = self._bot(token)
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = bot.next_update_id
        bot.next_update_id = max(bot.next_update_id, int(update["update_id"]) + 1)
        self._register_update(bot, update)
        bot.queue.append(_Queued(update))
        self._bump()
        return int(update["update_id"])

    def resend(self, token: str, update: dict[str, Any]) -> int:
        """Queues the very same update again (same update_id), as Telegram does on lost confirmations."""
        bot = self._bot(token)
        if "update_id" not in update:
            raise ValueError("resend() needs an update that already has an update_id")
        bot.queue.append(_Queued(dict(update), resent=True))
        self._bump()
        return int(update["update_id"])

    def text_message(
        self,
        chat_id: int,
        text: str,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Ann",
        *,
        last_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        token: str | None = None,
        queue: bool = True,
    ) -> dict[str, Any]:
        """Builds (and by default queues) a message update; the result's "update_id" is the assigned id."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0] if text.strip() else text
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]
        return self._message_update(
            token, chat_id, content, user_id, chat_type, language_code, first_name, last_name, username, title, queue
        )

    def location_message(
        self,
        chat_id: int,
        lat: float,
        lon: float,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Ann",
        *,
        horizontal_accuracy: float | None = None,
        live_period: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        token: str | None = None,
        queue: bool = True,
    ) -> dict[str, Any]:
        location: dict[str, Any] = {"latitude": lat, "longitude": lon}
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = horizontal_accuracy
        if live_period is not None:
            location["live_period"] = live_period
        return self._message_update(
            token,
            chat_id,
            {"location": location},
            user_id,
            chat_type,
            language_code,
            first_name,
            last_name,
            username,
            title,
            queue,
        )

    def photo_message(
        self,
        chat_id: int,
        file_id: str,
        file_unique_id: str,
        caption: str | None = None,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Ann",
        *,
        content: bytes | None = None,
        file_size: int | None = None,
        last_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        token: str | None = None,
        queue: bool = True,
    ) -> dict[str, Any]:
        """Photo update with thumbnails first and `file_id` as the largest (last) size, like Telegram.

        `file_size` is what the update and getFile claim for every size instead of the content's length."""
        sizes = []
        for suffix, (w, h) in (("_s", (90, 68)), ("_m", (320, 240)), ("", (1280, 960))):
            fid, uid = f"{file_id}{suffix}", f"{file_unique_id}{suffix}"
            self._ensure_file(fid, uid, content, "photos", ".jpg")
            self._files[fid].reported_size = file_size
            size = self._files[fid].size
            sizes.append({"file_id": fid, "file_unique_id": uid, "width": w, "height": h, "file_size": size})
        body: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            body["caption"] = caption
        return self._message_update(
            token, chat_id, body, user_id, chat_type, language_code, first_name, last_name, username, title, queue
        )

    def voice_message(
        self,
        chat_id: int,
        file_id: str,
        file_unique_id: str,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Ann",
        *,
        content: bytes | None = None,
        duration: int = 3,
        token: str | None = None,
        queue: bool = True,
    ) -> dict[str, Any]:
        """Voice note update (OGG/Opus, as Telegram's clients record them); getFile and the download serve ``content``."""
        self._ensure_file(file_id, file_unique_id, content, "voice", ".oga")
        size = self._files[file_id].size
        body = {"voice": {"file_id": file_id, "file_unique_id": file_unique_id, "duration": duration, "mime_type": "audio/ogg", "file_size": size}}
        return self._message_update(token, chat_id, body, user_id, chat_type, language_code, first_name, None, None, None, queue)

    def contact_message(
        self,
        chat_id: int,
        phone_number: str = "+15550001111",
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Ann",
        *,
        contact_first_name: str | None = None,
        contact_last_name: str | None = None,
        contact_user_id: int | None = -1,
        last_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        token: str | None = None,
        queue: bool = True,
    ) -> dict[str, Any]:
        """Contact update; by default the sender shares their own contact (contact.user_id == sender).

        Pass contact_user_id=None for a contact without a Telegram account, or another id.
        """
        sender = user_id if user_id is not None else self._default_user(chat_id, chat_type)
        contact: dict[str, Any] = {"phone_number": phone_number, "first_name": contact_first_name or first_name}
        if contact_last_name or (contact_first_name is None and last_name):
            contact["last_name"] = contact_last_name or last_name
        if contact_user_id == -1:
            contact["user_id"] = sender
        elif contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self._message_update(
            token,
            chat_id,
            {"contact": contact},
            sender,
            chat_type,
            language_code,
            first_name,
            last_name,
            username,
            title,
            queue,
        )

    def sticker_message(
        self,
        chat_id: int,
        file_id: str = "CAACAgIAAxkBAAEfakeSticker",
        file_unique_id: str = "AgADfakeSticker",
        emoji: str | None = "👍",
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Ann",
        *,
        last_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        token: str | None = None,
        queue: bool = True,
    ) -> dict[str, Any]:
        self._ensure_file(file_id, file_unique_id, None, "stickers", ".webp")
        sticker: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        if emoji:
            sticker["emoji"] = emoji
        return self._message_update(
            token,
            chat_id,
            {"sticker": sticker},
            user_id,
            chat_type,
            language_code,
            first_name,
            last_name,
            username,
            title,
            queue,
        )

    def callback(
        self,
        chat_id: int,
        data: str,
        message_id: int,
        user_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "en",
        first_name: str = "Ann",
        *,
        last_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        token: str | None = None,
        queue: bool = True,
    ) -> dict[str, Any]:
        """callback_query update for a button press on bot message `message_id` in `chat_id`.

        The embedded message is the fake's current copy of that bot message; unknown ids get
        a placeholder bot message registered so the app can still edit/delete it.
        """
        bot = self._bot(self._token(token))
        chat = self._chat_for_builder(chat_id, chat_type, first_name, last_name, username, title)
        key = (bot.token, str(chat_id))
        message = self._messages.get(key, {}).get(int(message_id))
        if message is None:
            message = {
                "message_id": int(message_id),
                "from": bot.user,
                "chat": chat,
                "date": int(time.time()),
                "text": "…",
            }
            self._store_message(bot.token, message)
        sender = user_id if user_id is not None else self._default_user(chat_id, chat_type)
        user = self._user(sender, first_name, last_name, username, language_code)
        query = {
            "id": str(4_000_000_000_000_000 + next(self._ids)),
            "from": user,
            "message": json.loads(json.dumps(message)),
            "chat_instance": str(abs(hash((bot.token, chat_id))) % 10**18),
            "data": data,
        }
        return self._finish_update(bot, {"callback_query": query}, queue)

    # ------------------------------------------------------------------ internals: state

    def _bot(self, token: str) -> _Bot:
        try:
            return self._bots[token]
        except KeyError:
            raise KeyError(f"unknown bot token {token!r}; call add_bot() first") from None

    def _token(self, token: str | None) -> str:
        if token is not None:
            return token
        if len(self._bots) != 1:
            raise ValueError("several bots are registered: pass token=")
        return next(iter(self._bots))

    def _bump(self) -> None:
        # A fresh Event per change lets any number of waiters wake without polling.
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait(self, predicate: Callable[[], Any], timeout: float | None) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            event = self._changed
            if deadline is None:
                await event.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    def _default_user(self, chat_id: int, chat_type: str) -> int:
        return int(chat_id) if chat_type == "private" else GROUP_USER_ID

    @staticmethod
    def _user(
        user_id: int, first_name: str, last_name: str | None, username: str | None, language_code: str | None
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": int(user_id), "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        return user

    def _chat_for_builder(
        self,
        chat_id: int,
        chat_type: str,
        first_name: str,
        last_name: str | None,
        username: str | None,
        title: str | None,
    ) -> dict[str, Any]:
        chat_id = int(chat_id)
        if chat_type == "private":
            if chat_id <= 0:
                raise ValueError("private chats have positive ids (the user's id)")
            chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": first_name}
            if last_name:
                chat["last_name"] = last_name
            if username:
                chat["username"] = username
        elif chat_type in {"group", "supergroup", "channel"}:
            if chat_id >= 0:
                raise ValueError(f"{chat_type} chats have negative ids (supergroups look like -100...)")
            chat = {"id": chat_id, "type": chat_type, "title": title or "Test group"}
        else:
            raise ValueError(f"unknown chat_type {chat_type!r}")
        self._chats[str(chat_id)] = chat
        return chat

    def _chat_obj(self, chat_key: str) -> dict[str, Any]:
        if chat_key in self._chats:
            return dict(self._chats[chat_key])
        chat_id = int(chat_key)
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        kind = "supergroup" if chat_key.startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": "Group"}

    def _message_update(
        self,
        token: str | None,
        chat_id: int,
        content: dict[str, Any],
        user_id: int | None,
        chat_type: str,
        language_code: str | None,
        first_name: str,
        last_name: str | None,
        username: str | None,
        title: str | None,
        queue: bool,
    ) -> dict[str, Any]:
        bot = self._bot(self._token(token))
        chat = self._chat_for_builder(chat_id, chat_type, first_name, last_name, username, title)
        sender = user_id if user_id is not None else self._default_user(chat_id, chat_type)
        key = (bot.token, str(chat["id"]))
        message = {
            "message_id": self._last_message_id.get(key, 0) + 1,
            "from": self._user(sender, first_name, last_name, username, language_code),
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        return self._finish_update(bot, {"message": message}, queue)

    def _finish_update(self, bot: _Bot, body: dict[str, Any], queue: bool) -> dict[str, Any]:
        update = {"update_id": bot.next_update_id, **body}
        if queue:
            self.push_update(bot.token, update)
        else:
            bot.next_update_id += 1
            self._register_update(bot, update)
        return update

    def _register_update(self, bot: _Bot, update: dict[str, Any]) -> None:
        # Lets the app later reply to / delete / answer what the test pushed, as on real Telegram.
        for key in ("message", "edited_message", "channel_post"):
            message = update.get(key)
            if isinstance(message, dict) and "chat" in message and "message_id" in message:
                self._chats.setdefault(str(message["chat"]["id"]), message["chat"])
                self._store_message(bot.token, message)
        query = update.get("callback_query")
        if isinstance(query, dict) and "id" in query:
            self._callbacks.setdefault(str(query["id"]), False)
            message = query.get("message")
            if isinstance(message, dict) and "chat" in message and "message_id" in message:
                self._chats.setdefault(str(message["chat"]["id"]), message["chat"])
                if self.message(bot.token, message["chat"]["id"], message["message_id"]) is None:
                    self._store_message(bot.token, message)

    def _store_message(self, token: str, message: dict[str, Any]) -> None:
        key = (token, str(message["chat"]["id"]))
        mid = int(message["message_id"])
        self._messages.setdefault(key, {})[mid] = message
        self._last_message_id[key] = max(self._last_message_id.get(key, 0), mid)

    def _ensure_file(self, file_id: str, unique_id: str, content: bytes | None, folder: str, ext: str) -> None:
        if content is not None or file_id not in self._files:
            n = next(self._ids)
            self.add_file(file_id, content or b"", unique_id, f"{folder}/file_{n}{ext}")

    def _allowed(self, bot: _Bot, entry: _Queued) -> bool:
        if bot.allowed_updates:
            return entry.kind in bot.allowed_updates
        return entry.kind not in _DEFAULT_EXCLUDED_UPDATES

    def _confirm(self, bot: _Bot, entries: list[_Queued]) -> None:
        if not entries:
            return
        gone = {id(e) for e in entries}
        bot.queue = [e for e in bot.queue if id(e) not in gone]
        bot.confirmed.update(e.update_id for e in entries)
        self._bump()

    # ------------------------------------------------------------------ internals: HTTP

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except ApiError as err:
            return web.json_response(err.payload(), status=err.status)
        status, body = await self.dispatch(token, method, params)
        if self.send_answer_delay and status == 200 and _CANONICAL.get(method.lower()) in SENT_METHODS:
            self.unanswered_sends += 1
            try:
                await asyncio.sleep(self.send_answer_delay)
            finally:
                self.unanswered_sends -= 1
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self._bots:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        self.downloads.append(request.match_info["file_path"])
        self._bump()
        stored = self._files_by_path.get(request.match_info["file_path"])
        if stored is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=stored.content, content_type="application/octet-stream")

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.body_exists:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise _bad("can't parse JSON") from None
                if not isinstance(body, dict):
                    raise _bad("can't parse JSON")
                params.update(body)
            elif ctype == "multipart/form-data":
                params.update(await self._read_multipart(await request.multipart()))
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return _decode_json_fields(params)

    @staticmethod
    async def _read_multipart(reader: aiohttp.MultipartReader) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        uploads: dict[str, UploadedFile] = {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            data = bytes(await part.read(decode=True))
            if part.filename is not None:
                ctype = part.headers.get(aiohttp.hdrs.CONTENT_TYPE)
                uploads[part.name] = UploadedFile(filename=part.filename, content=data, content_type=ctype)
            else:
                fields[part.name] = data.decode(part.get_charset(default="utf-8"))
        # aiogram sends files as `photo=attach://<key>` plus a part named <key>; PTB names the part `photo`.
        for key, value in list(fields.items()):
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
                fields[key] = uploads.pop(value[9:])
        fields.update(uploads)
        return fields

    async def dispatch(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Executes one API call as the HTTP layer would; returns (status, JSON body)."""
        canonical = _CANONICAL.get(method.lower(), method)
        call = Call(token=token, method=canonical, params=params, at=time.time())
        self.calls.append(call)
        self._bump()
        try:
            bot = self._bots.get(token)
            if bot is None:
                raise ApiError(401, "Unauthorized")
            handler = getattr(self, f"_m_{method.lower()}", None) if method.lower() in _CANONICAL else None
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            self._inject_failure(token, canonical)
            if canonical in _CHAT_TARGETED and "chat_id" in params:
                self._check_blocked(str(params["chat_id"]))
                self._check_migrated(str(params["chat_id"]))
            if canonical in SENT_METHODS and self._rates and _is_int(params.get("chat_id")):
                self._check_rate(token, str(int(params["chat_id"])))
            result = handler(bot, params)
            if asyncio.iscoroutine(result):
                result = await result
            # Copy so the call log keeps what was answered, not the stored message after later edits.
            status, body = 200, {"ok": True, "result": json.loads(json.dumps(result))}
        except ApiError as err:
            status, body = err.status, err.payload()
        call.status, call.response = status, body
        self._bump()
        return status, body

    def _inject_failure(self, token: str, method: str) -> None:
        for failure in self._failures.get(method.lower(), []):
            if failure.remaining > 0 and failure.token in (None, token):
                failure.remaining -= 1
                params = {"retry_after": failure.retry_after} if failure.retry_after is not None else None
                raise ApiError(failure.status, failure.description, params)
        chance = self._random_failures.get(method.lower())
        if chance is not None:
            probability, status, retry_after, rng = chance
            if rng.random() < probability:
                if status == 429:
                    raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
                raise ApiError(status, "Internal Server Error" if status >= 500 else "Error")

    def _check_migrated(self, chat_key: str) -> None:
        if chat_key in self._migrated:
            raise ApiError(
                400, "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": int(self._migrated[chat_key])},
            )

    def _check_rate(self, token: str, chat_key: str) -> None:
        now = time.monotonic()
        kind = "group" if chat_key.startswith("-") else "private"
        windows = [("bot", token, "")] + ([(kind, f"{token}/{chat_key}", chat_key)] if kind in self._rates else [])
        for name, key, chat in windows:
            if name not in self._rates:
                continue
            count, seconds = self._rates[name]
            times = self._windows.setdefault((name, key), deque())
            while times and times[0] <= now - (seconds - self._rate_jitter):
                times.popleft()
            if len(times) >= count:
                self.violations.append(Violation(name, token, chat_key, time.time(), len(times) + 1, seconds))
                retry_after = max(1, math.ceil(times[0] + seconds - now))
                raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        for name, key, _ in windows:
            if name in self._rates:
                self._windows[(name, key)].append(now)

    def _check_blocked(self, chat_key: str) -> None:
        if chat_key in self._blocked:
            if chat_key.startswith("-"):
                raise ApiError(403, "Forbidden: bot was kicked from the group chat")
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    # ------------------------------------------------------------------ internals: webhook delivery

    def _restart_webhook(self, bot: _Bot) -> None:
        if bot.webhook_task is not None:
            bot.webhook_task.cancel()
        if self._client is not None:
            bot.webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop(bot))

    async def _stop_webhook_task(self, bot: _Bot) -> None:
        task, bot.webhook_task = bot.webhook_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _next_for_webhook(self, bot: _Bot) -> _Queued | None:
        dropped = [e for e in bot.queue if not self._allowed(bot, e)]
        self._confirm(bot, dropped)
        return bot.queue[0] if bot.queue else None

    async def _webhook_loop(self, bot: _Bot) -> None:
        # One update in flight per bot keeps delivery ordered, as Telegram does.
        url = bot.webhook_url
        while not self._closing and bot.webhook_url == url and url:
            entry = await self._wait(lambda: self._next_for_webhook(bot), None)
            if await self._deliver(bot, url, entry):
                continue
            await asyncio.sleep(self.webhook_retry_delay)

    async def _deliver(self, bot: _Bot, url: str, entry: _Queued) -> bool:
        assert self._client is not None
        headers = {}
        if bot.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = bot.webhook_secret
        reply: dict[str, Any] | None = None
        entry.delivered = True
        try:
            async with self._client.post(
                url,
                json=entry.update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as resp:
                status, reason = resp.status, resp.reason
                if 200 <= status < 300:
                    reply = await self._read_webhook_reply(resp)
                else:
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"Connection error: {type(exc).__name__}: {exc}"
            self.deliveries.append(Delivery(bot.token, entry.update_id, url, None, message, time.time()))
            bot.last_error_date, bot.last_error_message = int(time.time()), message
            self._bump()
            return False
        ok = 200 <= status < 300
        error = None if ok else f"Wrong response from the webhook: {status} {reason}"
        self.deliveries.append(Delivery(bot.token, entry.update_id, url, status, error, time.time()))
        if not ok:
            bot.last_error_date, bot.last_error_message = int(time.time()), error
            self._bump()
            return False
        self._confirm(bot, [entry])
        if reply and isinstance(reply.get("method"), str):
            method = reply.pop("method")
            await self.dispatch(bot.token, method, _decode_json_fields(reply))
        return True

    async def _read_webhook_reply(self, resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
        # Telegram executes a method returned in the webhook response body (aiogram uses multipart).
        try:
            if resp.content_type == "application/json":
                body = await resp.json()
                return body if isinstance(body, dict) else None
            if resp.content_type == "multipart/form-data":
                return await self._read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
            if resp.content_type == "application/x-www-form-urlencoded":
                return dict(parse_qsl(await resp.text()))
            await resp.read()
        except (ValueError, aiohttp.ClientError):
            return None
        return None

    # ------------------------------------------------------------------ internals: param helpers

    @staticmethod
    def _int(params: dict[str, Any], key: str, default: int | None = None, *, empty: str | None = None) -> int | None:
        value = params.get(key)
        if value is None or value == "":
            if empty is not None:
                raise _bad(empty)
            return default
        if not _is_int(value):
            raise _bad(f"invalid {key} specified")
        return int(value)

    def _chat_key(self, params: dict[str, Any]) -> str:
        value = params.get("chat_id")
        if value is None or value == "":
            raise _bad("chat_id is empty")
        if not _is_int(value):
            raise _bad("chat not found")
        return str(int(value))

    def _text_param(self, params: dict[str, Any], key: str = "text") -> str:
        value = params.get(key)
        if value is None:
            return ""
        return value if isinstance(value, str) else str(value)

    def _reply_to(self, bot: _Bot, chat_key: str, params: dict[str, Any]) -> dict[str, Any] | None:
        reply_parameters = params.get("reply_parameters")
        target: int | None = None
        allow_missing = _as_bool(params.get("allow_sending_without_reply", False))
        if isinstance(reply_parameters, dict) and reply_parameters.get("message_id") is not None:
            target = int(reply_parameters["message_id"])
            allow_missing = allow_missing or _as_bool(reply_parameters.get("allow_sending_without_reply", False))
        elif params.get("reply_to_message_id") not in (None, ""):
            target = self._int(params, "reply_to_message_id")
        if target is None:
            return None
        original = self._messages.get((bot.token, chat_key), {}).get(target)
        if original is None and not allow_missing:
            raise _bad("message to be replied not found")
        return original

    def _new_message(self, bot: _Bot, chat_key: str, params: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        inline = _validate_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_to(bot, chat_key, params)
        key = (bot.token, chat_key)
        message: dict[str, Any] = {
            "message_id": self._last_message_id.get(key, 0) + 1,
            "from": bot.user,
            "chat": self._chat_obj(chat_key),
            "date": int(time.time()),
            **body,
        }
        if reply_to is not None:
            message["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        if inline is not None:
            message["reply_markup"] = inline
        self._store_message(bot.token, message)
        return message

    def _record_sent(self, bot: _Bot, method: str, chat_key: str, params: dict[str, Any], message: dict[str, Any]) -> None:
        markup = params.get("reply_markup")
        self._sent.append(
            {
                "method": method,
                "token": bot.token,
                "chat_id": chat_key,
                "message_id": message.get("message_id"),
                # What the app asked for (markup included), falling back to the message for markup-only edits.
                "text": params.get("text", params.get("caption", message.get("text", message.get("caption")))),
                "caption": params.get("caption"),
                "parse_mode": params.get("parse_mode"),
                "reply_markup": markup if isinstance(markup, dict) else None,
                "photo": params.get("photo"),
                "document": params.get("document"),
                "params": params,
                "message": json.loads(json.dumps(message)),  # snapshot: later edits must not rewrite history
                "at": time.time(),
            }
        )

    def _caption(self, params: dict[str, Any]) -> dict[str, Any]:
        caption = self._text_param(params, "caption")
        if not caption:
            return {}
        plain = _plain_text(caption, params.get("parse_mode"))
        if _utf16_len(plain) > MAX_CAPTION:
            raise _bad("message caption is too long")
        return {"caption": plain} if plain.strip() else {}

    def _input_file(self, params: dict[str, Any], key: str, folder: str, ext: str) -> StoredFile:
        value = params.get(key)
        if isinstance(value, UploadedFile):
            n = next(self._ids)
            return self.add_file(f"fake-{key}-{n}", value.content, f"uniq-{key}-{n}", f"{folder}/file_{n}{ext}")
        if isinstance(value, str) and value:
            if value in self._files:
                return self._files[value]
            if re.match(r"^https?://", value):
                n = next(self._ids)
                return self.add_file(f"fake-{key}-{n}", b"", f"uniq-{key}-{n}", f"{folder}/file_{n}{ext}")
            raise _bad("wrong file identifier/HTTP URL specified")
        raise _bad(f"there is no {key} in the request")

    def _find_editable(self, bot: _Bot, params: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if params.get("inline_message_id"):
            return None
        chat_key = self._chat_key(params)
        message_id = self._int(params, "message_id", empty="message identifier is not specified")
        message = self._messages.get((bot.token, chat_key), {}).get(message_id)
        if message is None:
            raise _bad("message to edit not found")
        if message.get("from", {}).get("id") != bot.bot_id:
            raise _bad("message can't be edited")
        return chat_key, message

    def _apply_edit(
        self, bot: _Bot, method: str, chat_key: str, message: dict[str, Any], params: dict[str, Any], changes: dict[str, Any]
    ) -> dict[str, Any]:
        inline = _validate_reply_markup(params.get("reply_markup"))
        if all(message.get(k) == v for k, v in changes.items()) and message.get("reply_markup") == inline:
            raise _bad(
                "message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message"
            )
        message.update(changes)
        for k in [k for k, v in changes.items() if v is None]:
            del message[k]
        if inline is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = inline
        message["edit_date"] = int(time.time())
        self._record_sent(bot, method, chat_key, params, message)
        return message

    # ------------------------------------------------------------------ API methods

    def _m_getme(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **bot.user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_getupdates(self, bot: _Bot, params: dict[str, Any]) -> list[dict[str, Any]]:
        if bot.webhook_url:
            raise ApiError(
                409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
            )
        offset = self._int(params, "offset", 0) or 0
        limit = max(1, min(100, self._int(params, "limit", 100) or 100))
        timeout = max(0, self._int(params, "timeout", 0) or 0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = [str(a) for a in allowed]

        if offset > 0:
            # A resent duplicate must reach the client once before an old offset can drop it.
            self._confirm(bot, [e for e in bot.queue if e.update_id < offset and not (e.resent and not e.delivered)])
        elif offset < 0:
            self._confirm(bot, bot.queue[: max(0, len(bot.queue) + offset)])

        # A newer getUpdates terminates the older one, like Telegram's "only one instance" rule.
        bot.poll_generation += 1
        generation = bot.poll_generation
        self._bump()

        def ready() -> list[_Queued] | str | None:
            if self._closing:
                return "closing"
            if bot.poll_generation != generation:
                return "superseded"
            if bot.webhook_url:
                return "webhook"
            self._confirm(bot, [e for e in bot.queue if not self._allowed(bot, e)])
            return bot.queue[:limit] or None

        try:
            outcome = await self._wait(ready, min(timeout, self.long_poll_cap))
        except TimeoutError:
            return []
        if outcome == "superseded":
            raise ApiError(
                409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
            )
        if isinstance(outcome, str):
            return []
        for entry in outcome:
            entry.delivered = True
        return [json.loads(json.dumps(e.update)) for e in outcome]

    def _m_setwebhook(self, bot: _Bot, params: dict[str, Any]) -> bool:
        url = self._text_param(params, "url")
        secret = params.get("secret_token")
        if secret not in (None, "") and not _SECRET_RE.match(str(secret)):
            raise _bad("secret token contains unallowed characters")
        if url and not re.match(r"^https?://", url):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        if _as_bool(params.get("drop_pending_updates", False)):
            self._confirm(bot, list(bot.queue))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = [str(a) for a in allowed]
        bot.webhook_secret = str(secret) if secret not in (None, "") else None
        bot.webhook_max_connections = self._int(params, "max_connections", 40) or 40
        changed = bot.webhook_url != (url or None)
        bot.webhook_url = url or None
        if changed:
            bot.last_error_date = bot.last_error_message = None
            if bot.webhook_url:
                self._restart_webhook(bot)
            elif bot.webhook_task is not None:
                bot.webhook_task.cancel()
                bot.webhook_task = None
        self._bump()
        return True

    def _m_deletewebhook(self, bot: _Bot, params: dict[str, Any]) -> bool:
        if bot.webhook_task is not None:
            bot.webhook_task.cancel()
            bot.webhook_task = None
        bot.webhook_url = bot.webhook_secret = None
        bot.last_error_date = bot.last_error_message = None
        if _as_bool(params.get("drop_pending_updates", False)):
            self._confirm(bot, list(bot.queue))
        self._bump()
        return True

    def _m_getwebhookinfo(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": bot.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.queue),
        }
        if bot.webhook_url:
            info["max_connections"] = bot.webhook_max_connections
            info["ip_address"] = "127.0.0.1"
            if bot.allowed_updates:
                info["allowed_updates"] = list(bot.allowed_updates)
        if bot.last_error_date is not None:
            info["last_error_date"] = bot.last_error_date
            info["last_error_message"] = bot.last_error_message
        return info

    def _m_sendmessage(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        chat_key = self._chat_key(params)
        plain = _plain_text(self._text_param(params), params.get("parse_mode"))
        if not plain.strip():
            raise _bad("message text is empty")
        if _utf16_len(plain) > MAX_TEXT:
            raise _bad("message is too long")
        message = self._new_message(bot, chat_key, params, {"text": plain})
        self._record_sent(bot, "sendMessage", chat_key, params, message)
        return message

    def _m_sendphoto(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        chat_key = self._chat_key(params)
        caption = self._caption(params)
        stored = self._input_file(params, "photo", "photos", ".jpg")
        sizes = []
        for suffix, (w, h) in (("_s", (90, 90)), ("_m", (320, 320)), ("", (800, 800))):
            fid = f"{stored.file_id}{suffix}"
            if suffix and fid not in self._files:
                self.add_file(fid, stored.content, f"{stored.file_unique_id}{suffix}", f"{stored.file_path}{suffix}")
            sizes.append(
                {
                    "file_id": fid,
                    "file_unique_id": self._files[fid].file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": len(stored.content),
                }
            )
        message = self._new_message(bot, chat_key, params, {"photo": sizes, **caption})
        self._record_sent(bot, "sendPhoto", chat_key, params, message)
        return message

    def _m_sendmediagroup(self, bot: _Bot, params: dict[str, Any]) -> list[dict[str, Any]]:
        """An album: 2–10 photos (or videos), each an InputMedia; a file is a file_id, a URL, or ``attach://<part>``.
        No reply_markup (Telegram ignores it on albums); a caption per item. Every item becomes a message of its own,
        sharing a media_group_id; one send is logged per message."""
        chat_key = self._chat_key(params)
        media = params.get("media")
        if not isinstance(media, list):
            raise _bad("can't parse media JSON array")
        if not 2 <= len(media) <= 10:
            raise _bad("wrong number of media items: must include 2-10 items")
        group_id = str(next(self._ids))
        messages = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in ("photo", "video", "document", "audio"):
                raise _bad("can't parse InputMedia: media type must be specified")
            reference = item.get("media")
            if isinstance(reference, str) and reference.startswith("attach://"):
                reference = params.get(reference[len("attach://"):])
                if not isinstance(reference, UploadedFile):
                    raise _bad("wrong file identifier/HTTP URL specified: attached file not found")
            stored = self._input_file({"photo": reference}, "photo", "photos", ".jpg")
            size = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "width": 800, "height": 800,
                    "file_size": len(stored.content)}
            caption = self._caption({"caption": item["caption"]}) if item.get("caption") else {}
            item_params = {"chat_id": params.get("chat_id"), **({"caption": item["caption"]} if item.get("caption") else {}),
                           "photo": reference}
            message = self._new_message(bot, chat_key, {"chat_id": params.get("chat_id")}, {"photo": [size], "media_group_id": group_id, **caption})
            self._record_sent(bot, "sendMediaGroup", chat_key, item_params, message)
            messages.append(message)
        return messages

    def _m_senddocument(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        chat_key = self._chat_key(params)
        caption = self._caption(params)
        value = params.get("document")
        stored = self._input_file(params, "document", "documents", "")
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }
        if isinstance(value, UploadedFile):
            document["file_name"] = value.filename
            if value.content_type:
                document["mime_type"] = value.content_type
        message = self._new_message(bot, chat_key, params, {"document": document, **caption})
        self._record_sent(bot, "sendDocument", chat_key, params, message)
        return message

    def _m_editmessagetext(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any] | bool:
        plain = _plain_text(self._text_param(params), params.get("parse_mode"))
        if not plain.strip():
            raise _bad("message text is empty")
        if _utf16_len(plain) > MAX_TEXT:
            raise _bad("message is too long")
        found = self._find_editable(bot, params)
        if found is None:
            _validate_reply_markup(params.get("reply_markup"))
            return True
        chat_key, message = found
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        return self._apply_edit(bot, "editMessageText", chat_key, message, params, {"text": plain})

    def _m_editmessagecaption(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any] | bool:
        caption = self._caption(params)
        found = self._find_editable(bot, params)
        if found is None:
            _validate_reply_markup(params.get("reply_markup"))
            return True
        chat_key, message = found
        if "text" in message:
            raise _bad("there is no caption in the message to edit")
        return self._apply_edit(
            bot, "editMessageCaption", chat_key, message, params, {"caption": caption.get("caption")}
        )

    def _m_editmessagereplymarkup(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any] | bool:
        found = self._find_editable(bot, params)
        if found is None:
            _validate_reply_markup(params.get("reply_markup"))
            return True
        chat_key, message = found
        return self._apply_edit(bot, "editMessageReplyMarkup", chat_key, message, params, {})

    def _m_answercallbackquery(self, bot: _Bot, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if not query_id:
            raise _bad("callback_query_id is empty")
        if self._callbacks.get(query_id, True):
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        if _utf16_len(self._text_param(params)) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        self._callbacks[query_id] = True
        return True

    def _m_getfile(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id") or "")
        if not file_id:
            raise _bad("file_id is empty")
        stored = self._files.get(file_id)
        if stored is None:
            raise _bad("invalid file_id")
        if stored.size > MAX_DOWNLOAD:
            raise _bad("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    def _m_sendchataction(self, bot: _Bot, params: dict[str, Any]) -> bool:
        self._chat_key(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _m_deletemessage(self, bot: _Bot, params: dict[str, Any]) -> bool:
        chat_key = self._chat_key(params)
        message_id = self._int(params, "message_id", empty="message identifier is not specified")
        messages = self._messages.get((bot.token, chat_key), {})
        if messages.pop(message_id, None) is None:
            raise _bad("message to delete not found")
        return True

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> str:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)

    def _m_setmycommands(self, bot: _Bot, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("too many commands")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        bot.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _m_getmycommands(self, bot: _Bot, params: dict[str, Any]) -> list[dict[str, Any]]:
        return list(bot.commands.get(self._commands_key(params), []))

    def _m_deletemycommands(self, bot: _Bot, params: dict[str, Any]) -> bool:
        bot.commands.pop(self._commands_key(params), None)
        return True

    def _m_getchat(self, bot: _Bot, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat_obj(self._chat_key(params))
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
