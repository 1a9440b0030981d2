"""The customer's own chat page: opened by the customer link (token after "#"), bound to that link for as long as it is
valid (expiring with the job, revocable), mobile-first; it reads and writes only its own chat and takes no chat ids."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile, status
from fastapi import Path as FastPath
from fastapi.responses import FileResponse, JSONResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from bots.web import PLATFORM
from conversations.i18n import render, translate
from domain.model import MAX_ID, Customer, Job
from services.messages import ChatRef, Inbound, InboundKind
from storage import tables as t
from storage.devices import DEVICE, SITE, device_owner
from storage.repository import Store
from webhooks.signin import HEADERS, language_of, secure_cookies
from webhooks.webchat import MESSAGE_ID_PATTERN, Placement, handle_upload, place_cards

STATIC = Path(__file__).parent / "static"
PAGE_PATH = "/customer"
UPLOAD_PATH = PAGE_PATH + "/api/photo"  # webhooks/app.py lets photos past the 1 MB body limit here
COOKIE = "fc_customer"
BOT = "customer"
SECRET_NAME = "customer-page"
COOKIE_DAYS = 60  # the link's own expiry is checked on every request; the cookie only names the link
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; connect-src 'self'; "
            "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
PAGE_PURPOSES = ("customer", DEVICE, SITE)  # an order's link, and QR codes where the customer has no messenger
LABELS = ("title", "placeholder", "send", "location", "photo", "expired", "used", "invalid", "offline", "empty")

router = APIRouter(include_in_schema=False)


def page_link(public_url: str | None, token: str) -> str:
    """The customer page's link for a customer token (relative to this service when its public URL is not set)."""
    base = f"{public_url.rstrip('/')}" if public_url else ""
    return f"{base}{PAGE_PATH}#customer={token}"


@dataclass(frozen=True)
class Visitor:
    """A customer page's session: the link it was opened with and the one chat that link owns."""

    token_id: int
    job_id: int  # 0 for a device's or a site's QR code
    chat_id: str
    language: str

    @property
    def chat(self) -> ChatRef:
        return ChatRef(PLATFORM, BOT, self.chat_id)


async def _key(request: Request) -> bytes:
    app = request.app.state.container
    state = request.app.state
    if getattr(state, "customer_page_key", None) is None:
        async with app.sessions() as session, session.begin():
            state.customer_page_key = await Store(session).server_secret(SECRET_NAME, app.clock.now())
    key: bytes = state.customer_page_key
    return key


def _serializer(key: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt="fieldchat-customer-page")


def chat_of(key: bytes, token_id: int) -> str:
    """The page's chat id: derived from the link, so one link is one chat and no browser can name another."""
    return "cp" + hmac.new(key, f"customer-page:{token_id}".encode(), hashlib.sha256).hexdigest()[:24]


def _refused(request: Request, code: str, status_code: int) -> HTTPException:
    return HTTPException(status_code, {"code": code, "message": translate(f"customer_page.{code}", language_of(request))})


async def _visitor_of(request: Request, token_id: int, key: bytes) -> Visitor:
    """The link must still be valid, and either unused or used by this page's own chat (revoked = expired)."""
    app = request.app.state.container
    chat_id = chat_of(key, token_id)
    async with app.sessions() as session:
        store = Store(session)
        row = (await session.execute(select(t.link_tokens).where(t.link_tokens.c.id == token_id,
                                                                 t.link_tokens.c.purpose.in_(PAGE_PURPOSES)))).mappings().first()
        if row is None:
            raise _refused(request, "invalid", status.HTTP_403_FORBIDDEN)
        if row["expires_at"] <= app.clock.now():
            raise _refused(request, "expired", status.HTTP_403_FORBIDDEN)
        if row["used_by"] is not None and row["used_by"] != f"{PLATFORM}:{BOT}:{chat_id}":
            raise _refused(request, "used", status.HTTP_403_FORBIDDEN)
        if row["purpose"] != "customer":  # a device's or a site's QR code (issue 14): its owner's page, opening on the device
            owner = await device_owner(store, row["purpose"], row["subject_id"])
            customer = await store.get(Customer, owner) if owner is not None else None
            job = None
        else:
            job = await store.get(Job, row["subject_id"])
            customer = await store.get(Customer, job.customer_id) if job else None
    if customer is None:
        raise _refused(request, "invalid", status.HTTP_403_FORBIDDEN)
    language = customer.language if customer is not None and customer.language in ("en", "zh") else "zh"
    return Visitor(row["id"], row["subject_id"] if job is not None else 0, chat_id, language)


async def visitor(request: Request) -> Visitor:
    """The customer page session of this request; 401 without one, 403 once its link has expired or was revoked."""
    key = await _key(request)
    cookie = request.cookies.get(COOKIE)
    try:
        token_id = _serializer(key).loads(cookie, max_age=COOKIE_DAYS * 86400) if cookie and len(cookie) < 200 else None
    except BadSignature:
        token_id = None
    if not isinstance(token_id, int):
        raise _refused(request, "invalid", status.HTTP_401_UNAUTHORIZED)
    return await _visitor_of(request, token_id, key)


VisitorDep = Annotated[Visitor, Depends(visitor)]


def _inbound(who: Visitor, update: str, **fields: Any) -> Inbound:
    return Inbound(chat=who.chat, update_id=f"{who.chat_id}:{update}", user_id=who.chat_id, language_code=who.language, **fields)


# --- the page and its session ------------------------------------------------------------------------------


@router.get(PAGE_PATH)
async def page(request: Request) -> Response:
    return FileResponse(STATIC / "customer.html", media_type="text/html", headers={**HEADERS, "Content-Security-Policy": PAGE_CSP})


@router.get(PAGE_PATH + "/app.js")
async def script(request: Request) -> Response:
    return FileResponse(STATIC / "customer.js", media_type="text/javascript", headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


class OpenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=10, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def labels(language: str) -> dict[str, str]:
    return {name: translate(f"customer_page.{name}", language) for name in LABELS}


@router.post(PAGE_PATH + "/api/session")
async def open_session(body: OpenIn, request: Request) -> Response:
    """Exchange the link's token for this page's cookie; the first time, the chat is bound to the customer (/start)."""
    app = request.app.state.container
    async with app.sessions() as session:
        store = Store(session)
        row = await store.find_token(body.token, "customer") or await store.find_token(body.token, DEVICE) or await store.find_token(body.token, SITE)
    if row is None:
        raise _refused(request, "invalid", status.HTTP_403_FORBIDDEN)
    key = await _key(request)
    who = await _visitor_of(request, row["id"], key)
    if row["used_by"] is None:  # a QR code is never used up: each scan opens the device's menu again
        await app.engine.handle(_inbound(who, "open", kind=InboundKind.COMMAND, text="start", payload=body.token))
    response = JSONResponse({"ok": True, "labels": labels(who.language), "language": who.language}, headers=HEADERS)
    response.set_cookie(COOKIE, _serializer(key).dumps(row["id"]), max_age=COOKIE_DAYS * 86400, httponly=True, samesite="strict",
                        secure=secure_cookies(request), path=PAGE_PATH)
    return response


@router.get(PAGE_PATH + "/api/labels")
async def page_labels(who: VisitorDep) -> dict[str, Any]:
    return {"labels": labels(who.language), "language": who.language}


# --- reading and writing its own chat ----------------------------------------------------------------------


class CustomerMessage(BaseModel):
    """What the page sends: no chat, user or pane, so nothing here can point at another chat."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(pattern=MESSAGE_ID_PATTERN)
    kind: Literal["text", "button", "location"]
    text: str = Field("", max_length=4096)
    data: str = Field("", max_length=64)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    pressed: int | None = Field(None, ge=1, le=MAX_ID)


@router.post(PAGE_PATH + "/api/send")
async def send(message: CustomerMessage, request: Request, who: VisitorDep) -> dict[str, Any]:
    engine = request.app.state.container.engine
    if message.kind == "text":
        text = message.text.strip()
        if not text:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "text is empty")
        if text.startswith("/"):
            head, _, payload = text[1:].partition(" ")
            if head.lower() == "start":  # the page's link is its only sign-in; another token here would bind another job
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "open a new link instead")
            event = _inbound(who, message.message_id, kind=InboundKind.COMMAND, text=head.lower(), payload=payload.strip())
        else:
            event = _inbound(who, message.message_id, kind=InboundKind.TEXT, text=message.text)
    elif message.kind == "button":
        if not message.data:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "button data is empty")
        pressed = str(message.pressed) if message.pressed is not None else None
        event = _inbound(who, message.message_id, kind=InboundKind.BUTTON, text=message.data, message_id=pressed)
    else:
        if message.latitude is None or message.longitude is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "latitude and longitude are required")
        event = _inbound(who, message.message_id, kind=InboundKind.LOCATION, latitude=message.latitude, longitude=message.longitude,
                         live_possible=False)
    await engine.handle(event)
    return {"ok": True}


@router.post(UPLOAD_PATH)
async def send_photo(request: Request, who: VisitorDep, message_id: Annotated[str, Form(pattern=MESSAGE_ID_PATTERN)],
                     file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    await handle_upload(request, file, lambda file_id: _inbound(who, message_id, kind=InboundKind.PHOTO, file_id=file_id))
    return {"ok": True}


def _photo_paths(payload: dict[str, Any]) -> list[str]:
    album = [str(photo["path"]) for photo in payload.get("album") or ()]
    return album or ([str(payload["photo_path"])] if payload.get("photo_path") else [])


@router.get(PAGE_PATH + "/api/messages")
async def messages(request: Request, who: VisitorDep, after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> dict[str, Any]:
    """This page's chat after ``after``: the only chat it can name is its own (no parameter names a chat)."""
    app = request.app.state.container
    async with app.sessions() as session:
        store = Store(session)
        rows = await store.outbox_for_chat(PLATFORM, BOT, who.chat_id, after)
        cards = {row["card"] for row in rows if row["card"]}
        placed = place_cards(await store.outbox_card_history(PLATFORM, BOT, who.chat_id, cards, rows[-1]["id"])) if cards else {}
    out = []
    for row in rows:
        rendered = render(row["payload"], row["payload"].get("language", who.language), app.policy.tz)
        placement = placed.get(row["id"], Placement(row["id"]))
        out.append({
            "id": row["id"], "shows": placement.shows, "retires": placement.retires, "text": rendered.text,
            "buttons": [[{"label": label, "data": data} for label, data in line] for line in rendered.buttons],
            "request": rendered.request,
            "photos": [f"{PAGE_PATH}/api/photos/{row['id']}/{index}" for index in range(len(_photo_paths(row["payload"])))],
        })
    return {"messages": out}


@router.get(PAGE_PATH + "/api/photos/{row_id}/{index}")
async def photo(request: Request, who: VisitorDep, row_id: Annotated[int, FastPath(ge=1, le=MAX_ID)],
                index: Annotated[int, FastPath(ge=0, le=100)]) -> FileResponse:
    """A photo a message of this page's own chat carries; any other message is told nothing (404)."""
    app = request.app.state.container
    async with app.sessions() as session:
        payload = await Store(session).outbox_payload_in_chat(row_id, PLATFORM, BOT, who.chat_id)
    paths = _photo_paths(payload) if payload is not None else []
    if index >= len(paths):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such photo")
    root = app.web_uploads.media_dir.parent.resolve()
    path = Path(paths[index]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such photo")
    return FileResponse(path, media_type=PHOTO_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"})

