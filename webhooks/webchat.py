"""The demo web console: panes for customer, technicians and a dispatch group, on identities the server issues.

Served only in demo mode (``fieldchat serve --demo`` or FIELDCHAT_WEB_CONSOLE=true). A browser gets a
signed session cookie; every chat and user id is derived from that session on the server, so a page
can reach only its own chats, and nobody can claim another person's identity by posting an id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile, status
from fastapi import Path as FastPath
from fastapi.responses import FileResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bots.channels import WEB_CAPABILITIES
from bots.render import Unrenderable, fit
from bots.web import PLATFORM, WebUploads
from conversations.i18n import render
from services.messages import ChatRef, Inbound, InboundKind, Rendered, edits_card_in_place
from domain.model import MAX_ID
from scheduler.ratelimit import window_storage
from storage.repository import Store

STATIC = Path(__file__).parent / "static"
COOKIE = "fieldchat_console"
SESSION_DAYS = 30
UPLOAD_PATH = "/chat/api/photo"
PANE_PATTERN = r"^[a-z0-9]{1,12}$"
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# Generous for a person clicking through the demo, tight for a script: a burst of sends or uploads
# from one browser or one address is refused with 429 long before it fills the inbox or the disk.
# An address may be several people behind one router, so it gets more room than one session.
RATES: dict[str, dict[str, tuple[str, ...]]] = {
    "session": {"address": ("30/hour",)},  # new console sessions
    "send": {"session": ("60/minute", "300/hour"), "address": ("240/minute", "1200/hour")},
    "upload": {"session": ("6/minute", "30/hour"), "address": ("20/minute", "100/hour")},
    # each pane of an open page polls about once a second, all day, and an album's photos are fetched at once
    "read": {"session": ("40/second", "36000/hour"), "address": ("100/second", "144000/hour")},
}

router = APIRouter(tags=["web console"], include_in_schema=False)
log = logging.getLogger(__name__)


class ConsoleGuard:
    """Signs and checks the console's session cookie, derives chat identities from it, and keeps request rates."""

    def __init__(self, redis_url: str | None = None, rates: dict[str, dict[str, tuple[str, ...]]] | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(window_storage(redis_url, "fieldchat-console"))
        self._rates = {
            kind: {scope: tuple(parse(rate) for rate in limits) for scope, limits in scopes.items()}
            for kind, scopes in {**RATES, **(rates or {})}.items()
        }
        self._key: bytes | None = None

    async def key(self, sessions, now) -> bytes:
        if self._key is None:
            async with sessions() as session, session.begin():
                self._key = await Store(session).server_secret("web-console", now)
        return self._key

    def _serializer(self, key: bytes) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(key, salt="fieldchat-console-session")

    def new_cookie(self, key: bytes) -> tuple[str, str]:
        session_id = secrets.token_urlsafe(18)
        return session_id, self._serializer(key).dumps(session_id)

    def session_of(self, key: bytes, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            value = self._serializer(key).loads(cookie, max_age=SESSION_DAYS * 86400)
        except BadSignature:  # includes SignatureExpired
            return None
        return value if isinstance(value, str) else None

    async def allow(self, kind: str, *, session: str | None = None, address: str) -> None:
        """Count one request of ``kind`` against the session and the address; 429 when either is over."""
        for scope, key in (("session", session), ("address", address)):
            for rate in self._rates[kind].get(scope, ()) if key is not None else ():
                if not await self._limiter.hit(rate, kind, scope, key):
                    raise HTTPException(
                        status.HTTP_429_TOO_MANY_REQUESTS, f"too many requests; at most {rate} per {scope}",
                        headers={"Retry-After": str(rate.get_expiry())},
                    )


@dataclass(frozen=True)
class Caller:
    session_id: str
    key: bytes
    address: str

    def chat(self, pane: "Pane") -> tuple[str, str]:
        """The chat id and user id of one pane of this session: a private chat's id is its user's, as in Telegram.

        A group pane's user is the person of the private pane ``pane.user`` when it names one, so what the bot says to
        that person alone (a dispatcher's phone numbers after *Call*) shows in that pane."""
        base = f"{self.session_id}:{pane.bot}:{pane.chat_type}:{pane.key}"
        chat_id = _derive(self.key, base + ":chat")
        if pane.chat_type == "private":
            return chat_id, chat_id
        if pane.user:
            return chat_id, self.chat(Pane(key=pane.user, bot=pane.bot, chat_type="private"))[0]
        return chat_id, _derive(self.key, base + ":user")


def _derive(key: bytes, text: str) -> str:
    return "w" + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:24]


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def caller(request: Request) -> Caller:
    """The console session of this request; 401 without a valid one (the page gets one when it is opened)."""
    app = request.app.state.container
    guard: ConsoleGuard = request.app.state.console
    key = await guard.key(app.sessions, app.clock.now())
    session_id = guard.session_of(key, request.cookies.get(COOKIE))
    if session_id is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no console session: reload the page")
    return Caller(session_id, key, _address(request))


CallerDep = Annotated[Caller, Depends(caller)]


class Pane(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=PANE_PATTERN, description="the page's name for the pane, e.g. customer, driver, 3")
    bot: Literal["customer", "staff"]
    chat_type: Literal["private", "group"] = "private"
    user_name: str = Field("", max_length=100)
    language: Literal["en", "zh"] = "en"
    # in a group pane: the key of the private pane of the person who writes here (their own chat with the bot)
    user: str | None = Field(None, pattern=PANE_PATTERN)


class WebMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pane: Pane
    message_id: str = Field(pattern=MESSAGE_ID_PATTERN)
    kind: Literal["text", "button", "location", "contact"]
    text: str = Field("", max_length=4096)
    data: str = Field("", max_length=64)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    phone: str | None = Field(None, max_length=40)
    # a button's message, as the page shows it (its ``id`` in /chat/api/messages): an answer to a press edits the card
    # pressed in place, as on Telegram (``Outbound.answers``)
    pressed: int | None = Field(None, ge=1, le=MAX_ID)


def _inbound(who: Caller, pane: Pane, update: str, **fields) -> Inbound:
    chat_id, user_id = who.chat(pane)
    return Inbound(
        chat=ChatRef(PLATFORM, pane.bot, chat_id),
        # update ids (the page's message ids) come from the page, so they only have to be unique within their own chat
        update_id=f"{chat_id}:{update}",
        user_id=user_id,
        chat_type=pane.chat_type,
        language_code=pane.language,
        user_name=pane.user_name,
        **fields,
    )


def to_inbound(who: Caller, message: WebMessage) -> Inbound:
    pane, message_id = message.pane, message.message_id
    if message.kind == "text":
        text = message.text.strip()
        if not text:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "text is empty")
        if text.startswith("/"):
            head, _, payload = text[1:].partition(" ")
            return _inbound(who, pane, message_id, kind=InboundKind.COMMAND, text=head.lower(), payload=payload.strip())
        return _inbound(who, pane, message_id, kind=InboundKind.TEXT, text=message.text)
    if message.kind == "button":
        if not message.data:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "button data is empty")
        pressed = str(message.pressed) if message.pressed is not None else None
        return _inbound(who, pane, message_id, kind=InboundKind.BUTTON, text=message.data, message_id=pressed)
    if message.kind == "location":
        if message.latitude is None or message.longitude is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "latitude and longitude are required")
        # the page sends a pin: a browser shares no live location
        return _inbound(who, pane, message_id, kind=InboundKind.LOCATION, latitude=message.latitude, longitude=message.longitude,
                        live_possible=False)
    if not message.phone:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "phone is required")
    return _inbound(who, pane, message_id, kind=InboundKind.CONTACT, phone=message.phone)


@router.get("/chat")
async def chat_page(request: Request) -> Response:
    """The page; a browser without a valid session cookie gets a new one (a few per address and hour)."""
    app = request.app.state.container
    guard: ConsoleGuard = request.app.state.console
    key = await guard.key(app.sessions, app.clock.now())
    response = FileResponse(STATIC / "chat.html", media_type="text/html", headers={"Cache-Control": "no-store"})
    if guard.session_of(key, request.cookies.get(COOKIE)) is None:
        await guard.allow("session", address=_address(request))
        _, cookie = guard.new_cookie(key)
        _set_cookie(response, cookie, app.settings.public_url)
    return response


@router.post("/chat/api/new-session")
async def new_session(request: Request, response: Response) -> dict:
    """Start over with new chats for every pane (the page's reset button)."""
    app = request.app.state.container
    guard: ConsoleGuard = request.app.state.console
    await guard.allow("session", address=_address(request))
    _, cookie = guard.new_cookie(await guard.key(app.sessions, app.clock.now()))
    _set_cookie(response, cookie, app.settings.public_url)
    return {"ok": True}


def _set_cookie(response: Response, cookie: str, public_url: str | None) -> None:
    response.set_cookie(
        COOKIE, cookie, max_age=SESSION_DAYS * 86400, httponly=True, samesite="strict",
        secure=(public_url or "").startswith("https://"), path="/chat",
    )


@router.post("/chat/api/send")
async def send(message: WebMessage, request: Request, who: CallerDep) -> dict:
    await request.app.state.console.allow("send", session=who.session_id, address=who.address)
    await request.app.state.container.engine.handle(to_inbound(who, message))
    return {"ok": True}


@router.post(UPLOAD_PATH)
async def send_photo(
    request: Request,
    who: CallerDep,
    pane: Annotated[str, Form(max_length=1000)],
    message_id: Annotated[str, Form(pattern=MESSAGE_ID_PATTERN)],
    file: Annotated[UploadFile, File()],
) -> dict:
    try:
        parsed = Pane.model_validate_json(pane)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "pane is not valid") from exc
    await request.app.state.console.allow("upload", session=who.session_id, address=who.address)
    await handle_upload(request, file, lambda file_id: _inbound(who, parsed, message_id, kind=InboundKind.PHOTO, file_id=file_id))
    return {"ok": True}


async def handle_upload(request: Request, file: UploadFile, photo_event: Callable[[str], Inbound]) -> None:
    """A photo posted from a web page (the console or the customer page): size-checked, staged for the step that takes
    it, handled, and the staged copy dropped."""
    app = request.app.state.container
    uploads: WebUploads = app.web_uploads
    content = await file.read(uploads.limits.max_bytes + 1)
    if len(content) > uploads.limits.max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"photos are limited to {uploads.limits.max_mb:g} MB")
    if not content:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the file is empty")
    # what the bytes are is decided by their content when (and if) the flow takes the photo, not by the name
    file_id = uploads.stage(content)
    try:
        await app.engine.handle(photo_event(file_id))
    finally:
        uploads.discard(file_id)


POLL_PATH = "/chat/api/messages"
POLL_SAMPLE_SECONDS = 60.0


class QuietPolling(logging.Filter):
    """Keeps the console's polling out of the access log: each open pane asks every second or two, which would bury
    every other line. A failed poll is always logged; of the answered ones, one a minute shows it still runs."""

    def __init__(self, sample_seconds: float = POLL_SAMPLE_SECONDS, clock=time.monotonic) -> None:
        super().__init__()
        self.sample_seconds = sample_seconds
        self._clock = clock
        self._last: float | None = None
        self.suppressed = 0

    def restart(self) -> None:
        """Forget the last sample: the next answered poll is logged (one process may build the app more than once)."""
        self._last = None
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        # uvicorn's access record: (client, method, path with query, http version, status)
        if len(args) < 5 or not str(args[2]).startswith(POLL_PATH) or not isinstance(args[4], int) or args[4] >= 400:
            return True
        now = self._clock()
        if self._last is not None and now - self._last < self.sample_seconds:
            self.suppressed += 1
            return False
        self._last = now
        self.suppressed = 0
        return True


def quiet_polling_in_access_log() -> QuietPolling:
    """Install the filter on uvicorn's access logger once (an app built again, e.g. in tests, reuses it)."""
    access = logging.getLogger("uvicorn.access")
    for existing in access.filters:
        if isinstance(existing, QuietPolling):
            return existing
    quiet = QuietPolling()
    access.addFilter(quiet)
    return quiet


@dataclass(frozen=True)
class Placement:
    """Where the page shows one message: ``shows`` is the id of the message it is shown as (its own id when it is new,
    an earlier copy of its card when it edits that copy in place); ``retires`` is an older copy that loses its buttons."""

    shows: int
    retires: int | None = None


def place_cards(rows: list[dict]) -> dict[int, Placement]:
    """Where each row of a chat's cards shows, given every row of those cards in the chat in order (id, card, payload).

    The console cannot edit what a browser already shows, but it can tell the page to, by the relay's own rule
    (``services.messages.edits_card_in_place``).
    """
    shown: dict[str, int] = {}
    placed: dict[int, Placement] = {}
    for row in rows:
        card, payload = row["card"], row["payload"]
        previous = shown.get(card)
        if previous is None:
            placement = Placement(row["id"])
        elif edits_card_in_place(payload, str(previous)):
            placement = Placement(previous)
        else:
            placement = Placement(row["id"], retires=previous)
        shown[card] = placement.shows
        placed[row["id"]] = placement
    return placed


def _photo_paths(payload: dict) -> list[str]:
    """The stored photos a message carries, in the order shown: its album, or its one photo."""
    album = [str(photo["path"]) for photo in payload.get("album") or ()]
    return album or ([str(payload["photo_path"])] if payload.get("photo_path") else [])


def photo_url(row_id: int, index: int, pane: "Pane") -> str:
    """Where the page fetches a photo a message carries: only with this browser's session, and only from its own chat."""
    return f"{PHOTO_PATH}/{row_id}/{index}?bot={pane.bot}&pane={pane.key}&chat_type={pane.chat_type}"


PHOTO_PATH = "/chat/api/photos"
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


@router.get(POLL_PATH)
async def messages(
    request: Request,
    who: CallerDep,
    bot: Literal["customer", "staff"],
    pane: Annotated[str, Query(pattern=PANE_PATTERN)],
    chat_type: Literal["private", "group"] = "private",
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict:
    """The chat's messages after ``after``, each with where it shows (a card edited in place shows as its earlier copy,
    which the page changes) and the links of its photos."""
    await request.app.state.console.allow("read", session=who.session_id, address=who.address)
    shown_as = Pane(key=pane, bot=bot, chat_type=chat_type)
    chat_id, _ = who.chat(shown_as)
    app = request.app.state.container
    async with app.sessions() as session:
        rows = await Store(session).outbox_for_chat(PLATFORM, bot, chat_id, after)
        cards = {row["card"] for row in rows if row["card"]}
        placed = place_cards(await Store(session).outbox_card_history(PLATFORM, bot, chat_id, cards, rows[-1]["id"])) if cards else {}
    out = []
    for row in rows:
        rendered = _fitted(render(row["payload"], row["payload"].get("language", "en"), app.policy.tz), row["id"])
        placement = placed.get(row["id"], Placement(row["id"]))
        out.append(
            {
                "id": row["id"],
                "shows": placement.shows,
                "retires": placement.retires,
                "text": rendered.text,
                "buttons": [[{"label": label, "data": data} for label, data in line] for line in rendered.buttons],
                "request": rendered.request,
                "photos": [photo_url(row["id"], index, shown_as) for index in range(len(_photo_paths(row["payload"])))],
            }
        )
    return {"chat_id": chat_id, "messages": out}


def _fitted(message: Rendered, row_id: int) -> Rendered:
    """The message as the console's capability record says it can show it, as the relay does for the channels it sends
    to: buttons past its number listed in the text, labels and text cut. An action longer than the page carries back
    could never be pressed: the message shows without its buttons rather than failing the whole poll."""
    try:
        return fit(message, WEB_CAPABILITIES)
    except Unrenderable as exc:
        log.warning("console message %s: buttons left out (%s)", row_id, exc)
        return fit(replace(message, buttons=[]), WEB_CAPABILITIES)


@router.get(PHOTO_PATH + "/{row_id}/{index}")
async def photo(
    request: Request,
    who: CallerDep,
    row_id: Annotated[int, FastPath(ge=1, le=MAX_ID)],
    index: Annotated[int, FastPath(ge=0, le=100)],
    bot: Literal["customer", "staff"],
    pane: Annotated[str, Query(pattern=PANE_PATTERN)],
    chat_type: Literal["private", "group"] = "private",
) -> FileResponse:
    """A photo a message of this browser's own chat carries; any other message, chat or session is told nothing (404)."""
    await request.app.state.console.allow("read", session=who.session_id, address=who.address)
    chat_id, _ = who.chat(Pane(key=pane, bot=bot, chat_type=chat_type))
    app = request.app.state.container
    async with app.sessions() as session:
        payload = await Store(session).outbox_payload_in_chat(row_id, PLATFORM, bot, chat_id)
    paths = _photo_paths(payload) if payload is not None else []
    if index >= len(paths):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such photo")
    # only what the service stored itself, under its media directory, is ever served
    root = app.web_uploads.media_dir.parent.resolve()
    path = Path(paths[index]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such photo")
    return FileResponse(
        path, media_type=PHOTO_TYPES.get(path.suffix.lower(), "application/octet-stream"),
        # the message's photo never changes, and it is this browser's alone
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
