"""The web chat: a page with customer, technician and dispatcher panes driving the same engine."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError

from conversations.i18n import render
from conversations.messages import ChatRef, Inbound, InboundKind
from storage.repository import Store

PLATFORM = "web"
STATIC = Path(__file__).parent / "static"
MAX_PHOTO_BYTES = 10 * 1024 * 1024
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

router = APIRouter(tags=["web chat"])


class Pane(BaseModel):
    bot: Literal["customer", "staff"]
    chat_id: str = Field(pattern=ID_PATTERN)
    chat_type: Literal["private", "group"] = "private"
    user_id: str = Field(pattern=ID_PATTERN)
    user_name: str = Field("", max_length=100)
    language: Literal["en", "zh"] = "en"


class WebMessage(BaseModel):
    pane: Pane
    message_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,100}$")
    kind: Literal["text", "button", "location", "contact"]
    text: str = Field("", max_length=4096)
    data: str = Field("", max_length=64)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    phone: str | None = Field(None, max_length=40)


def _inbound(pane: Pane, message_id: str, **fields) -> Inbound:
    return Inbound(
        chat=ChatRef(PLATFORM, pane.bot, pane.chat_id),
        # message ids come from browsers, so they only have to be unique within their own chat
        update_id=f"{pane.chat_id}:{message_id}",
        user_id=pane.user_id,
        chat_type=pane.chat_type,
        language_code=pane.language,
        user_name=pane.user_name,
        **fields,
    )


def to_inbound(message: WebMessage) -> Inbound:
    if message.kind == "text":
        text = message.text.strip()
        if not text:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "text is empty")
        if text.startswith("/"):
            head, _, payload = text[1:].partition(" ")
            return _inbound(message.pane, message.message_id, kind=InboundKind.COMMAND, text=head.lower(), payload=payload.strip())
        return _inbound(message.pane, message.message_id, kind=InboundKind.TEXT, text=message.text)
    if message.kind == "button":
        if not message.data:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "button data is empty")
        return _inbound(message.pane, message.message_id, kind=InboundKind.BUTTON, text=message.data)
    if message.kind == "location":
        if message.latitude is None or message.longitude is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "latitude and longitude are required")
        return _inbound(message.pane, message.message_id, kind=InboundKind.LOCATION, latitude=message.latitude, longitude=message.longitude)
    if not message.phone:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "phone is required")
    return _inbound(message.pane, message.message_id, kind=InboundKind.CONTACT, phone=message.phone)


@router.get("/chat", include_in_schema=False)
async def chat_page() -> FileResponse:
    return FileResponse(STATIC / "chat.html", media_type="text/html")


@router.post("/chat/api/send")
async def send(message: WebMessage, request: Request) -> dict:
    await request.app.state.container.engine.handle(to_inbound(message))
    return {"ok": True}


@router.post("/chat/api/photo")
async def send_photo(
    request: Request,
    pane: Annotated[str, Form()],
    message_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9_-]{1,100}$")],
    file: Annotated[UploadFile, File()],
) -> dict:
    try:
        parsed = Pane.model_validate_json(pane)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "pane is not valid") from exc
    if not (file.content_type or "").startswith("image/"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "only images can be sent")
    content = await file.read(MAX_PHOTO_BYTES + 1)
    if len(content) > MAX_PHOTO_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "photos are limited to 10 MB")
    if not content:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the file is empty")
    app = request.app.state.container
    digest = hashlib.sha256(content).hexdigest()[:32]
    suffix = Path(file.filename or "").suffix.lower()
    target = Path(app.settings.media_dir) / PLATFORM / f"{digest}{suffix if suffix in ('.jpg', '.jpeg', '.png', '.webp', '.gif') else '.jpg'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.write_bytes(content)
    event = _inbound(parsed, message_id, kind=InboundKind.PHOTO, file_id=f"web-{digest}", file_path=str(target))
    await app.engine.handle(event)
    return {"ok": True}


@router.get("/chat/api/messages")
async def messages(
    request: Request,
    bot: Literal["customer", "staff"],
    chat_id: Annotated[str, Query(pattern=ID_PATTERN)],
    after: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    app = request.app.state.container
    async with app.sessions() as session:
        rows = await Store(session).outbox_for_chat(PLATFORM, bot, chat_id, after)
    out = []
    for row in rows:
        rendered = render(row["payload"], row["payload"].get("language", "en"), app.policy.tz)
        out.append(
            {
                "id": row["id"],
                "text": rendered.text,
                "buttons": [[{"label": label, "data": data} for label, data in line] for line in rendered.buttons],
                "request": rendered.request,
                "photo_url": None,
            }
        )
    return {"messages": out}
