"""The WhatsApp Cloud API channel: webhook payloads as neutral events, sends within the 24-hour window or as templates,
two-step media downloads, and message statuses that only move forward."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import mimetypes
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from bots.base import Parts, RetryLater, Undeliverable
from bots.channels import WHATSAPP, WHATSAPP_CAPABILITIES, Capabilities
from bots.photos import MEGABYTE, PhotoLimits
from bots.telegram_common import keep_checked_photo
from bots.whatsapp_rules import (
    CannotSend, TemplateRef, Templates, UseTemplate, advances, choose_delivery, status_rank, template_parameter, window_open,
)
from conversations.engine import Engine, MediaUnavailable
from conversations.i18n import translate
from domain.clock import Clock
from services.messages import ChatRef, Inbound, InboundKind, Rendered
from storage.repository import Store
from storage.whatsapp import WhatsAppStore

log = logging.getLogger(__name__)

PLATFORM = WHATSAPP
SIGNATURE_HEADER = "X-Hub-Signature-256"
INTERACTIVE_BODY_LIMIT = 1024  # the body of a button or list message; a longer text goes first as a message of its own
REPLY_BUTTONS = 3  # more become a list message of up to ten rows
LIST_ROWS = 10
LIST_TITLE_LIMIT = 24
MEDIA_LIMIT = 100 * MEGABYTE  # the largest file the Cloud API hands over (documents); photos are held to their own cap
TIMEOUT = 30.0
WA_ID = re.compile(r"^\d{5,20}$")  # a person's WhatsApp id is their number, digits only
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.=:+/-]{1,200}$")
START = re.compile(r"^/?start\s+([A-Za-z0-9_-]{1,64})$", re.IGNORECASE)  # a wa.me link's prefilled text
CHINESE_NUMBERS = ("86", "852", "853", "886")  # WhatsApp says nothing of the reader's language; the number hints at it
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif")
# Graph error codes: the platform's throttles, and the one that says the 24-hour window is closed
THROTTLED = {4, 80007, 130429, 131056, 131048}
OUTSIDE_WINDOW = 131047
PAIR_RATE_SECONDS = 6.0
STATUS_RETENTION = timedelta(days=30)

# (platform, bot, chat_id, purpose, why, reason): one message could not reach the chat; the dispatchers are told
NotDeliveredHook = Callable[[str, str, str, str, str, str], Awaitable[None]]


class OutsideWindow(Undeliverable):
    """Outside the person's 24-hour window with no template for the message's purpose; the dispatchers were told."""


class NotWhatsApp(ValueError):
    """A webhook body that is not a WhatsApp Business Account notification."""


@dataclass(frozen=True)
class Number:
    """One business phone number: the id the Graph API addresses it by, and the number people see (for wa.me links)."""

    role: str  # customer | staff
    phone_number_id: str
    display: str | None


@dataclass(frozen=True)
class StatusReport:
    wamid: str
    bot: str
    chat_id: str
    status: str
    error: str | None


@dataclass(frozen=True)
class Notification:
    """What one webhook body carries for this service: messages (each with when it was written) and statuses."""

    messages: tuple[tuple[Inbound, datetime], ...]
    statuses: tuple[StatusReport, ...]


def signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    """W2: ``X-Hub-Signature-256`` is the HMAC-SHA256 of the raw body with the app secret, compared in constant time."""
    if not header:
        return False
    return hmac.compare_digest(header.strip().encode(), signature(app_secret, body).encode())


def _language(wa_id: str) -> str | None:
    return "zh" if wa_id.startswith(CHINESE_NUMBERS) else None


def _string(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _moment(raw: Any, now: datetime) -> datetime:
    """When the person wrote, as Meta says (their window runs from it); never later than now, never absurd."""
    try:
        seconds = int(raw)
    except (TypeError, ValueError):
        return now
    if not 0 < seconds < 2**34:
        return now
    return min(datetime.fromtimestamp(seconds, timezone.utc), now)


def _coordinate(value: Any, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and -bound <= number <= bound else None


def message_to_inbound(role: str, message: dict, contacts: Mapping[str, str]) -> Inbound | None:
    """One message of a webhook as a neutral event; None for what fieldchat does not act on (reactions, system
    notices) or what is malformed (a malformed one cannot become valid: it is dropped with a log line)."""
    wa_id, wamid = _string(message.get("from"), 20), _string(message.get("id"), 200)
    if wa_id is None or wamid is None or not WA_ID.match(wa_id) or not MESSAGE_ID.match(wamid):
        return None
    kind = message.get("type")
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    base: dict[str, Any] = dict(
        chat=ChatRef(PLATFORM, role, wa_id), update_id=wamid, user_id=wa_id, chat_type="private",
        language_code=_language(wa_id), user_name=contacts.get(wa_id, ""),
        message_id=_string(context.get("id"), 200) if context else None,
    )
    body = message.get(kind) if isinstance(kind, str) and isinstance(message.get(kind), (dict, list)) else None
    if kind == "text" and isinstance(body, dict) and (text := _string(body.get("body"), 4096)) is not None:
        stripped = text.strip()
        if start := START.match(stripped):
            return Inbound(kind=InboundKind.COMMAND, text="start", payload=start.group(1), **base)
        if stripped.startswith("/") and len(stripped) > 1:
            head, _, payload = stripped[1:].partition(" ")
            return Inbound(kind=InboundKind.COMMAND, text=head.lower(), payload=payload.strip(), **base)
        return Inbound(kind=InboundKind.TEXT, text=text, **base)
    if kind == "interactive" and isinstance(body, dict):
        reply = body.get("button_reply") or body.get("list_reply")
        data = _string(reply.get("id"), 256) if isinstance(reply, dict) else None
        if data is None or len(data.encode()) > WHATSAPP_CAPABILITIES.max_action_bytes:  # type: ignore[operator]
            return None
        return Inbound(kind=InboundKind.BUTTON, text=data, **base)
    if kind == "button" and isinstance(body, dict):  # a template's quick reply: its payload is the action we set
        data = _string(body.get("payload"), 256)
        return Inbound(kind=InboundKind.BUTTON, text=data, **base) if data else None
    if kind == "location" and isinstance(body, dict):
        latitude, longitude = _coordinate(body.get("latitude"), 90), _coordinate(body.get("longitude"), 180)
        if latitude is None or longitude is None:
            return None
        # the Cloud API hands businesses no live locations (they arrive as unsupported): a pin is the best a chat can do
        return Inbound(kind=InboundKind.LOCATION, latitude=latitude, longitude=longitude, live_possible=False, **base)
    if kind in ("image", "document") and isinstance(body, dict):
        media_id = _string(body.get("id"), 200)
        mime = str(body.get("mime_type") or "").split(";")[0].strip().lower()
        if media_id is not None and (kind == "image" or mime in IMAGE_TYPES):  # a photo sent as a file keeps its detail
            caption = _string(body.get("caption"), 1024) or ""
            return Inbound(kind=InboundKind.PHOTO, text=caption, file_id=media_id, **base)
        return Inbound(kind=InboundKind.UNSUPPORTED, **base)
    if kind == "audio" and isinstance(body, dict):
        # a voice note ("voice": true) or a recorded file: fetched like a photo where a step keeps one (a repair request's),
        # its bytes sniffed as audio and its size bounded before anything is stored (bots/voice.py)
        media_id = _string(body.get("id"), 200)
        mime = str(body.get("mime_type") or "").split(";")[0].strip().lower()
        if media_id is not None and (not mime or mime.startswith("audio/")):
            return Inbound(kind=InboundKind.VOICE, file_id=media_id, **base)
        return Inbound(kind=InboundKind.UNSUPPORTED, **base)
    if kind == "contacts" and isinstance(body, list) and body and isinstance(body[0], dict):
        phones = body[0].get("phones")
        phone = _string(phones[0].get("phone"), 40) if isinstance(phones, list) and phones and isinstance(phones[0], dict) else None
        return Inbound(kind=InboundKind.CONTACT, phone=phone, **base) if phone else Inbound(kind=InboundKind.UNSUPPORTED, **base)
    if kind in ("text", "interactive", "button", "location", "image", "document", "contacts", "audio"):
        return None  # a known kind without its content: malformed
    if kind in ("reaction", "system", "ephemeral", "request_welcome"):
        return None  # not addressed to a step
    return Inbound(kind=InboundKind.UNSUPPORTED, **base)  # video, stickers, unsupported: the step answers with a hint


def parse_notification(payload: Any, roles: Mapping[str, str], now: datetime) -> Notification:
    """A webhook body (already verified) as events and statuses of our numbers (``roles``: phone number id -> role)."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account" or not isinstance(payload.get("entry"), list):
        raise NotWhatsApp("not a WhatsApp Business Account notification")
    messages: list[tuple[Inbound, datetime]] = []
    statuses: list[StatusReport] = []
    for entry in payload["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else ():
            value = change.get("value") if isinstance(change, dict) and change.get("field") == "messages" else None
            if not isinstance(value, dict):
                continue
            metadata = value["metadata"] if isinstance(value.get("metadata"), dict) else {}
            role = roles.get(str(metadata.get("phone_number_id")))
            if role is None:
                log.info("whatsapp: a notification for a number this service does not run was ignored")
                continue
            contacts = {
                str(c.get("wa_id")): str((c.get("profile") or {}).get("name") or "")[:200]
                for c in value.get("contacts") or () if isinstance(c, dict) and isinstance(c.get("profile") or {}, dict)
            }
            for message in value.get("messages") or ():
                event = message_to_inbound(role, message, contacts) if isinstance(message, dict) else None
                if event is None:
                    log.info("whatsapp %s: a message was not for a step or malformed; dropped", role)
                    continue
                messages.append((event, _moment(message.get("timestamp"), now)))
            for status in value.get("statuses") or ():
                report = _status(role, status)
                if report is not None:
                    statuses.append(report)
    return Notification(tuple(messages), tuple(statuses))


def _status(role: str, status: Any) -> StatusReport | None:
    if not isinstance(status, dict):
        return None
    wamid, name, recipient = _string(status.get("id"), 200), _string(status.get("status"), 20), _string(status.get("recipient_id"), 20)
    if wamid is None or name is None or recipient is None or status_rank(name) is None:
        return None
    errors = status.get("errors")
    error = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        error = f"{errors[0].get('code')}: {str(errors[0].get('title') or '')[:200]}"
    return StatusReport(wamid, role, recipient, name, error)


# --- outbound ---------------------------------------------------------------------------------------


def _split(text: str, limit: int) -> tuple[list[str], str]:
    """Leading parts (each within the text limit) and a last part within ``limit`` for an interactive body, cut at a
    paragraph or line where one falls in reach."""
    if len(text) <= limit:
        return [], text
    head, tail = text[:-limit], text[-limit:]
    for mark in ("\n\n", "\n", " "):
        cut_at = tail.find(mark)
        if 0 <= cut_at < limit - 1:
            head, tail = text[: len(head) + cut_at], tail[cut_at + len(mark):]
            break
    parts = [head[i : i + WHATSAPP_CAPABILITIES.text_limit] for i in range(0, len(head), WHATSAPP_CAPABILITIES.text_limit)]
    return [p for p in parts if p.strip()], tail or "…"


def interactive(message: Rendered, body: str) -> dict:
    """Three or fewer buttons as reply buttons; four to ten as one list message (the renderer lists the rest in the text)."""
    flat = [button for row in message.buttons for button in row]
    if len(flat) <= REPLY_BUTTONS:
        buttons = [{"type": "reply", "reply": {"id": data, "title": label[:20]}} for label, data in flat]
        return {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}}
    rows = [{"id": data, "title": label[:LIST_TITLE_LIMIT]} for label, data in flat[:LIST_ROWS]]
    opener = translate("whatsapp.list_button", message.language)[:20]
    return {"type": "list", "body": {"text": body}, "action": {"button": opener, "sections": [{"rows": rows}]}}


def leftovers(message: Rendered, template: TemplateRef) -> bool:
    """Whether the message carries what its template cannot: more actions than its quick replies, photos, a request
    for the person's location."""
    actions = sum(len(row) for row in message.buttons)
    return actions > template.buttons or bool(message.photo_path or message.album) or message.request == "location"


def literal_payload(message: Rendered) -> dict:
    """A rendered message as an outbox payload that renders back to the same message (the texts kept as they read)."""
    literal = lambda text: {"key": "=", "params": {"text": text}}  # noqa: E731
    payload: dict[str, Any] = {
        "text": literal(message.text), "buttons": [[{"label": literal(label), "data": data} for label, data in row] for row in message.buttons],
        "language": message.language, "purpose": message.purpose,
    }
    if message.request:
        payload["request"] = message.request
    if message.photo_path:
        payload["photo_path"] = message.photo_path
    if message.album:
        payload["album"] = [{"id": photo.id, "path": photo.path} for photo in message.album]
    return payload


def template_message(message: Rendered, choice: UseTemplate) -> dict:
    """The approved template for the message's purpose, its text as the one body parameter, and the message's first
    actions as the payloads of the template's quick-reply buttons (a press comes back as a ``button`` message). When
    the message carries more than the template can, the parameter ends by telling the reader that a reply brings it."""
    text = message.text
    if leftovers(message, choice.template):
        text = f"{text}\n{translate('whatsapp.reply_for_the_rest', message.language)}"
    components: list[dict] = [{"type": "body", "parameters": [{"type": "text", "text": template_parameter(text)}]}]
    actions = [data for row in message.buttons for _label, data in row][: choice.template.buttons]
    for index, data in enumerate(actions):
        components.append({"type": "button", "sub_type": "quick_reply", "index": str(index), "parameters": [{"type": "payload", "payload": data}]})
    return {"type": "template", "template": {"name": choice.template.name, "language": {"code": choice.language}, "components": components}}


def free_form_plan(message: Rendered) -> list[dict]:
    """The Graph messages for a message inside the window: photos first, then the text with its buttons or its location
    request (both with a body of at most 1024 characters: a longer text goes first on its own). A photo is named by its
    file here and uploaded only when its part is sent (a retry that goes on after it uploads nothing)."""
    payloads: list[dict] = []
    photos = [message.photo_path] if message.photo_path else [photo.path for photo in message.album]
    plain = not message.buttons and message.request != "location"
    for index, path in enumerate(photos):
        image: dict[str, Any] = {"path": path}
        if index == 0 and plain and message.text:
            image["caption"] = message.text[: WHATSAPP_CAPABILITIES.caption_limit]
        payloads.append({"type": "image", "image": image})
    if photos and plain:
        return payloads
    if message.request == "location":
        lead, body = _split(message.text or "📍", INTERACTIVE_BODY_LIMIT)
        payloads += [{"type": "text", "text": {"body": part}} for part in lead]
        payloads.append({"type": "interactive", "interactive": {
            "type": "location_request_message", "body": {"text": body}, "action": {"name": "send_location"}}})
    elif message.buttons:
        lead, body = _split(message.text or "…", INTERACTIVE_BODY_LIMIT)
        payloads += [{"type": "text", "text": {"body": part}} for part in lead]
        payloads.append({"type": "interactive", "interactive": interactive(message, body)})
    else:
        payloads.append({"type": "text", "text": {"body": message.text or "…", "preview_url": False}})
    return payloads


def plan_shape(payloads: list[dict], template: str | None) -> str:
    """What a retry compares before going on after the parts sent: how many parts, of which kinds (texts that read a
    little differently on the retry, a later moment, do not make the accepted parts unsent)."""
    if template is not None:
        return f"template:{template}"
    kinds = [p["type"] + (f":{p['interactive']['type']}" if p["type"] == "interactive" else "") for p in payloads]
    return ",".join(kinds)


class GraphError(Exception):
    def __init__(self, status: int, code: int | None, text: str) -> None:
        super().__init__(f"{status} {code}: {text}")
        self.status, self.code = status, code


class WhatsAppChannel:
    """The WhatsApp channel: one Cloud API access token, a business number per role (customers, and technicians
    where the shop gives them one), the shop's approved templates by purpose."""

    capabilities: Capabilities = WHATSAPP_CAPABILITIES

    def __init__(
        self, *, token: str, app_secret: str, verify_token: str, numbers: list[Number], graph_url: str, graph_version: str, templates: Templates,
        sessions: async_sessionmaker, clock: Clock, engine: Engine | None, media_dir: Path, photo_limits: PhotoLimits | None = None,
        on_not_delivered: NotDeliveredHook | None = None, http: httpx.AsyncClient | None = None,
    ) -> None:
        self._token = token
        self._app_secret = app_secret
        self._verify_token = verify_token
        self.numbers = {number.role: number for number in numbers}
        self._roles = {number.phone_number_id: number.role for number in numbers}
        self._base = f"{graph_url.rstrip('/')}/{graph_version.strip('/')}"
        self.templates = templates
        self.sessions = sessions
        self.clock = clock
        self.engine = engine
        self.media_dir = media_dir / PLATFORM
        self.photo_limits = photo_limits or PhotoLimits()
        self.on_not_delivered = on_not_delivered
        self._http = http
        self._own_http = http is None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # the token goes in a header, never in a URL, so no request line can show it
            self._http = httpx.AsyncClient(timeout=TIMEOUT, headers={"Authorization": f"Bearer {self._token}"})
        return self._http

    def _number(self, bot: str) -> Number:
        number = self.numbers.get(bot)
        if number is None:
            raise Undeliverable(f"no whatsapp {bot} number configured")
        return number

    def deep_link(self, role: str, token: str) -> str | None:
        """``https://wa.me/<number>?text=/start <token>``: the person's first message carries their sign-in token."""
        if role == "group":
            return None  # WhatsApp has no groups for bots
        number = self.numbers.get("customer" if role == "customer" else "staff")
        if number is None or not number.display:
            return None
        return f"https://wa.me/{number.display}?text={quote(f'/start {token}')}"

    # --- inbound -------------------------------------------------------------------------------

    def verifies(self, mode: str, token: str) -> bool:
        """W1: Meta's subscription handshake presents the verify token the shop chose."""
        return mode == "subscribe" and hmac.compare_digest(token.encode(), self._verify_token.encode())

    def signed(self, body: bytes, header: str | None) -> bool:
        return signature_valid(self._app_secret, body, header)

    async def receive(self, body: bytes) -> int:
        """A verified webhook body: each person's window is moved, each message stored and handled before the webhook
        is answered, each status applied. Returns how many messages were handled now. NotWhatsApp / ValueError for a
        body that can never become valid (answered 200 and dropped)."""
        notification = parse_notification(json.loads(body), self._roles, self.clock.now())
        handled = 0
        now = self.clock.now()
        for event, written in notification.messages:
            async with self.sessions() as session, session.begin():
                store = WhatsAppStore(Store(session))
                await store.saw_inbound(event.chat.bot, event.chat.chat_id, written)
                if window_open(written, now):
                    # the window is open again: what their templates could not carry goes out now, before the answer
                    # to this message (queued behind the chat's rows, in the same transaction as the window)
                    pressed = event.message_id if event.kind is InboundKind.BUTTON else None
                    await store.release_owed(event.chat.bot, event.chat.chat_id, now, answered=pressed)
            if self.engine is not None and (await self.engine.handle(event)).processed:
                handled += 1
        for report in notification.statuses:
            await self.apply_status(report)
        return handled

    async def apply_status(self, report: StatusReport) -> bool:
        """W4: a status moves the message forward only; a first failure tells the dispatchers. True when it moved."""
        rank = status_rank(report.status)
        if rank is None:
            return False
        async with self.sessions() as session, session.begin():
            store = WhatsAppStore(Store(session))
            known = await store.message(report.wamid)
            if known is not None and not advances(known["status"], report.status):
                return False
            moved = await store.advance_status(
                report.wamid, report.status, rank, bot=report.bot, chat_id=report.chat_id, error=report.error, now=self.clock.now(),
            )
        if moved and report.status == "failed":
            purpose = known["purpose"] if known and known["purpose"] != "unknown" else "status"
            await self._tell(report.bot, report.chat_id, purpose, "failed", report.error or "failed")
        return moved

    # --- outbound ------------------------------------------------------------------------------

    # the relay hands each send its Parts: a message that becomes several Graph messages paces them one by one
    sends_parts = True

    async def send(self, bot: str, chat_id: str, message: Rendered, *, parts: Parts | None = None) -> str | None:
        try:
            return await self._send(bot, chat_id, message, parts)
        except OutsideWindow:
            raise  # told already
        except Undeliverable as exc:  # the number is not on WhatsApp, a refused template…: never dropped unseen
            await self._tell(bot, chat_id, message.purpose, "failed", str(exc))
            raise

    async def _send(self, bot: str, chat_id: str, message: Rendered, parts: Parts | None) -> str | None:
        number = self._number(bot)
        if not WA_ID.match(chat_id):
            raise Undeliverable("not a WhatsApp id")
        async with self.sessions() as session:
            last = await WhatsAppStore(Store(session)).last_inbound(bot, chat_id)
        choice = choose_delivery(last, self.clock.now(), message.purpose, message.language, self.templates)
        if isinstance(choice, CannotSend):
            return await self._cannot_send(bot, chat_id, message, choice.reason)
        if isinstance(choice, UseTemplate):
            return await self._post_template(number, chat_id, message, choice, parts)
        try:
            return await self._post_all(number, chat_id, message, free_form_plan(message), None, parts)
        except GraphError as exc:
            if exc.code != OUTSIDE_WINDOW:
                raise self._mapped(exc) from None
            # Meta's clock says the window closed: a template if one fits, else the dispatchers hear of it
            template = self.templates.for_purpose(message.purpose)
            if template is None:
                return await self._cannot_send(bot, chat_id, message, "outside the 24-hour window (131047); no template")
            fallback = UseTemplate(template, template.language_for(message.language))
            return await self._post_template(number, chat_id, message, fallback, parts)

    async def _post_template(self, number: Number, chat_id: str, message: Rendered, choice: UseTemplate, parts: Parts | None) -> str | None:
        """The message as its purpose's template; what the template cannot carry is owed until the person writes."""
        owed = literal_payload(message) if leftovers(message, choice.template) else None
        return await self._post_all(number, chat_id, message, [template_message(message, choice)], choice.template.name, parts, owed)

    async def _cannot_send(self, bot: str, chat_id: str, message: Rendered, reason: str) -> str | None:
        await self._tell(bot, chat_id, message.purpose, "window", reason)
        raise OutsideWindow(f"{reason}; the dispatchers were told")

    async def _tell(self, bot: str, chat_id: str, purpose: str, why: str, reason: str) -> None:
        if self.on_not_delivered is None:
            log.warning("whatsapp %s: a %s message was not delivered (%s) and nobody is wired to be told", bot, purpose, why)
            return
        try:
            await self.on_not_delivered(PLATFORM, bot, chat_id, purpose, why, reason)
        except Exception as exc:
            # never dropped: the relay tries the message again, and with it the telling
            log.exception("whatsapp %s: telling the dispatchers failed", bot)
            raise RetryLater(f"telling the dispatchers failed: {type(exc).__name__}") from exc

    async def _post_all(
        self, number: Number, chat_id: str, message: Rendered, payloads: list[dict], template: str | None, parts: Parts | None,
        owed: dict | None = None,
    ) -> str | None:
        """Send each part, after those an earlier attempt got accepted (``parts``, from the relay: each part takes its
        own rate place); returns the last one's id (the part that carries the buttons). Every accepted id is recorded,
        and with a template, what it could not carry (``owed``) in the same transaction."""
        plan = plan_shape(payloads, template)
        done = parts.done(plan) if parts is not None else []
        last = done[-1] if done else None
        for payload in payloads[len(done):]:
            if payload["type"] == "image" and "path" in payload["image"]:
                image = dict(payload["image"])
                image["id"] = await self._upload(number, Path(image.pop("path")))
                payload = {**payload, "image": image}
            if parts is not None:
                await parts.slot()
            try:
                answer = await self._graph("POST", f"/{number.phone_number_id}/messages", json={
                    "messaging_product": "whatsapp", "recipient_type": "individual", "to": chat_id, **payload,
                })
            except GraphError as exc:
                if exc.code == OUTSIDE_WINDOW and template is None and last is None:
                    raise  # nothing of it went out: the caller falls back to a template
                raise self._mapped(exc) from None
            ids = answer.get("messages") if isinstance(answer, dict) else None
            wamid = ids[0].get("id") if isinstance(ids, list) and ids and isinstance(ids[0], dict) else None
            if not isinstance(wamid, str):
                raise RetryLater("the Graph API answered without a message id")
            last = wamid
            async with self.sessions() as session, session.begin():
                store = WhatsAppStore(Store(session))
                await store.sent(wamid, bot=number.role, chat_id=chat_id, purpose=message.purpose, template=template, now=self.clock.now())
                if owed is not None:
                    # the chat's row locked first: a message of theirs stored meanwhile is seen here, or sees the owed row
                    last_inbound = await store.last_inbound(number.role, chat_id, lock=True)
                    await store.owe(wamid, bot=number.role, chat_id=chat_id, payload=owed, now=self.clock.now())
                    if window_open(last_inbound, self.clock.now()):
                        # they wrote while the template was on its way (that message found nothing owed yet): it goes now
                        await store.release_owed(number.role, chat_id, self.clock.now())
            if parts is not None:
                await parts.accepted(plan, wamid)
        return last

    @staticmethod
    def _mapped(exc: GraphError) -> Exception:
        if exc.code in THROTTLED or exc.status == 429:
            return RetryLater(f"throttled ({exc.code})", PAIR_RATE_SECONDS if exc.code == 131056 else None)
        if exc.status >= 500 or exc.status == 0:
            return RetryLater(f"graph {exc.status}")
        return Undeliverable(str(exc)[:300])

    async def _graph(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client().request(method, f"{self._base}{path}", **kwargs)
        except (httpx.HTTPError, asyncio.TimeoutError) as exc:
            raise GraphError(0, None, type(exc).__name__) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            error: dict[str, Any] = answer["error"] if isinstance(answer, dict) and isinstance(answer.get("error"), dict) else {}
            code = error.get("code") if isinstance(error.get("code"), int) else None
            raise GraphError(response.status_code, code, str(error.get("message") or "")[:200])
        return answer

    async def _upload(self, number: Number, path: Path) -> str:
        data = await asyncio.to_thread(path.read_bytes)
        mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
        try:
            answer = await self._graph(
                "POST", f"/{number.phone_number_id}/media",
                data={"messaging_product": "whatsapp", "type": mime}, files={"file": (path.name, data, mime)},
            )
        except GraphError as exc:
            raise self._mapped(exc) from None
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(media_id, str):
            raise RetryLater("the media upload answered without an id")
        return media_id

    # --- media ---------------------------------------------------------------------------------

    async def fetch(self, event: Inbound) -> Inbound:
        """Two steps (media id -> URL -> bytes, both with the token), each size claim checked and the download cut off
        past the limit; the bytes are checked as a photo and only the checked copy is stored."""
        limits = self.photo_limits

        def refused(code: str) -> Inbound:
            log.info("whatsapp %s: photo of message %s refused: %s", event.chat.bot, event.update_id, code)
            return replace(event, file_error=code, file_limit_mb=limits.max_mb)

        try:
            meta = await self._graph("GET", f"/{quote(event.file_id or '', safe='')}")
        except GraphError as exc:
            if 400 <= exc.status < 500:
                return refused("unavailable")  # an id Meta no longer knows: trying again cannot help
            raise MediaUnavailable(f"whatsapp media lookup: {exc.status}") from None
        url = meta.get("url") if isinstance(meta, dict) else None
        size = meta.get("file_size") if isinstance(meta, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return refused("unavailable")
        if isinstance(size, int) and size > limits.max_bytes:
            return refused("too_big")
        try:
            data = await self._download(url, min(limits.max_bytes, MEDIA_LIMIT))
        except httpx.HTTPStatusError as exc:
            if 400 <= exc.response.status_code < 500:
                return refused("unavailable")
            raise MediaUnavailable(f"whatsapp media download: {exc.response.status_code}") from None
        except (httpx.HTTPError, asyncio.TimeoutError) as exc:
            # only the type: the media URL is a credential of its own for a while
            raise MediaUnavailable(f"whatsapp media download: {type(exc).__name__}") from None
        if data is None:
            return refused("too_big")
        return await keep_checked_photo(event, data, limits, self.media_dir / event.chat.bot, refused)

    async def _download(self, url: str, max_bytes: int) -> bytes | None:
        received = bytearray()
        async with asyncio.timeout(TIMEOUT * 2), self._client().stream("GET", url) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > max_bytes:
                    return None
        return bytes(received)

    async def forget_old_statuses(self) -> int:
        """Statuses are worth keeping while someone may ask how a message went: a month (a sweep calls this hourly)."""
        async with self.sessions() as session, session.begin():
            return await WhatsAppStore(Store(session)).forget_statuses(self.clock.now() - STATUS_RETENTION)

    async def aclose(self) -> None:
        if self._http is not None and self._own_http:
            await self._http.aclose()
        self._http = None
