"""In-process fake WhatsApp Cloud API (Graph send and media endpoints) that also delivers signed webhooks, for tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from fieldchat.fakes.loopback import serve_on_loopback

__all__ = ["FakeWhatsApp", "Sent", "Template"]

WINDOW_SECONDS = 24 * 3600
WA_ID = re.compile(r"^\d{5,20}$")


@dataclass(frozen=True)
class Template:
    """An approved template: its languages and how many quick-reply buttons it has."""

    languages: tuple[str, ...]
    buttons: int = 0


@dataclass
class Sent:
    """One message the service sent: who from and to, and the Graph body as it came."""

    wamid: str
    phone_number_id: str
    to: str
    body: dict[str, Any]
    at: float

    @property
    def type(self) -> str:
        return self.body["type"]

    @property
    def text(self) -> str:
        """What the person reads: the text, the interactive body, the caption, or a template's parameter."""
        body = self.body
        if body["type"] == "text":
            return body["text"]["body"]
        if body["type"] == "interactive":
            return body["interactive"]["body"]["text"]
        if body["type"] == "image":
            return body["image"].get("caption", "")
        if body["type"] == "template":
            parameters = [p for c in body["template"].get("components", []) if c["type"] == "body" for p in c["parameters"]]
            return " ".join(p.get("text", "") for p in parameters)
        return ""

    def actions(self) -> list[tuple[str, str]]:
        """(title, id) of every reply button or list row; for a template, ("", payload) of its quick replies."""
        body = self.body
        if body["type"] == "interactive":
            interactive = body["interactive"]
            if interactive["type"] == "button":
                return [(b["reply"]["title"], b["reply"]["id"]) for b in interactive["action"]["buttons"]]
            if interactive["type"] == "list":
                return [(r["title"], r["id"]) for s in interactive["action"]["sections"] for r in s["rows"]]
        if body["type"] == "template":
            return [("", p["payload"]) for c in body["template"].get("components", []) if c["type"] == "button" for p in c["parameters"]]
        return []


class GraphRefusal(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Media:
    content: bytes
    mime_type: str
    claimed_size: int | None = None  # what the lookup says, when a test wants it to lie


@dataclass
class _Failure:
    status: int
    code: int
    message: str
    after: int = 0  # sends still let through before this one is refused


class FakeWhatsApp:
    """Checks what Meta checks on a send (the token, the shapes and limits of interactive messages, the 24-hour
    window from the last message the person sent through ``deliver``, approved templates) and records what goes out.

    ``clock`` gives Meta's time (seconds); the service's injected clock and this one should agree in tests.
    """

    def __init__(
        self, *, token: str, app_secret: str, numbers: dict[str, str], version: str = "v21.0",
        clock: Callable[[], float] = time.time, templates: dict[str, Template] | None = None,
    ) -> None:
        self.token = token
        self.app_secret = app_secret
        self.numbers = dict(numbers)  # phone number id -> display number
        self.version = version
        self.clock = clock
        self.templates = dict(templates or {})
        self.sent: list[Sent] = []
        self.refused: list[tuple[str, int]] = []  # (to, error code) of sends refused
        self.media: dict[str, _Media] = {}
        self.media_requests: list[tuple[str, bool]] = []  # (path, with the token) of every media lookup and download
        self.deliveries: list[tuple[int, dict]] = []  # (status our server answered, payload) of every webhook delivered
        self.last_inbound: dict[tuple[str, str], float] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._http: aiohttp.ClientSession | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> FakeWhatsApp:
        app = web.Application(client_max_size=120 * 1024 * 1024)
        app.router.add_post(f"/{self.version}/{{number}}/messages", self._messages)
        app.router.add_post(f"/{self.version}/{{number}}/media", self._upload)
        app.router.add_get("/media-files/{media_id}", self._download)
        app.router.add_get(f"/{self.version}/{{media_id}}", self._lookup)
        self._runner, self._port = await serve_on_loopback(app)
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeWhatsApp:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What FIELDCHAT_WHATSAPP_GRAPH_URL points at (the version is added by the client)."""
        return f"http://127.0.0.1:{self._port}"

    # --- test controls -------------------------------------------------------------------------

    def fail_next(self, status: int, code: int, message: str = "injected", *, after: int = 0) -> None:
        """The next send (``after``: the one after that many more) is refused with this Graph error (130429 throttled,
        131056 pair rate, 131026 undeliverable, 131047 window…)."""
        self._failures.append(_Failure(status, code, message, after))

    def add_media(self, content: bytes, mime_type: str = "image/jpeg", *, claimed_size: int | None = None) -> str:
        media_id = f"{next(self._ids):016d}"
        self.media[media_id] = _Media(content, mime_type, claimed_size)
        return media_id

    def sent_to(self, to: str) -> list[Sent]:
        return [s for s in self.sent if s.to == to]

    async def wait_for_sent(self, predicate: Callable[[Sent], bool], timeout: float = 10, since: int = 0) -> Sent:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for sent in self.sent[since:]:
                if predicate(sent):
                    return sent
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                shown = [(s.to, s.text[:80]) for s in self.sent[since:]]
                raise AssertionError(f"no such message sent within {timeout}s; sent since {since}: {shown}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    # --- webhooks to the service ---------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    def notification(self, phone_number_id: str, *, messages: Sequence[dict[str, Any]] = (), statuses: Sequence[dict[str, Any]] = (),
                     contacts: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """A notification as Meta sends it (one entry, one change)."""
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": self.numbers[phone_number_id], "phone_number_id": phone_number_id},
        }
        if contacts:
            value["contacts"] = list(contacts)
        if messages:
            value["messages"] = list(messages)
        if statuses:
            value["statuses"] = list(statuses)
        return {"object": "whatsapp_business_account", "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}]}

    def message(self, wa_id: str, kind: str, content: Any, *, context: str | None = None) -> dict:
        """One inbound message of ``kind`` with its ``content`` object, stamped with this fake's clock."""
        message: dict[str, Any] = {"from": wa_id, "id": f"wamid.in{next(self._ids)}", "timestamp": str(int(self.clock())), "type": kind, kind: content}
        if context:
            message["context"] = {"from": "bot", "id": context}
        return message

    def text(self, wa_id: str, body: str) -> dict:
        return self.message(wa_id, "text", {"body": body})

    def reply(self, wa_id: str, sent: Sent, action_id: str) -> dict:
        """The person presses a reply button, picks a list row, or presses a template's quick reply, of ``sent``."""
        titles = {data: title for title, data in sent.actions()}
        assert action_id in titles, f"{action_id!r} is not on the message {sent.text!r}: {sent.actions()}"
        if sent.type == "template":
            return self.message(wa_id, "button", {"payload": action_id, "text": "…"}, context=sent.wamid)
        kind = "button_reply" if sent.body["interactive"]["type"] == "button" else "list_reply"
        return self.message(wa_id, "interactive", {"type": kind, kind: {"id": action_id, "title": titles[action_id]}}, context=sent.wamid)

    def location(self, wa_id: str, latitude: float, longitude: float) -> dict:
        return self.message(wa_id, "location", {"latitude": latitude, "longitude": longitude})

    def image(self, wa_id: str, content: bytes, *, caption: str = "", claimed_size: int | None = None) -> dict:
        media_id = self.add_media(content, "image/jpeg", claimed_size=claimed_size)
        return self.message(wa_id, "image", {"id": media_id, "mime_type": "image/jpeg", "sha256": hashlib.sha256(content).hexdigest(), "caption": caption})

    def document(self, wa_id: str, content: bytes, mime_type: str, filename: str) -> dict:
        media_id = self.add_media(content, mime_type)
        return self.message(wa_id, "document", {"id": media_id, "mime_type": mime_type, "filename": filename})

    def audio(self, wa_id: str, content: bytes, *, voice: bool = True, mime_type: str = "audio/ogg; codecs=opus",
              claimed_size: int | None = None) -> dict:
        """A voice note (``voice``: recorded in the app, as Meta marks it) or an audio file."""
        media_id = self.add_media(content, mime_type.split(";")[0], claimed_size=claimed_size)
        return self.message(wa_id, "audio", {"id": media_id, "mime_type": mime_type, "sha256": hashlib.sha256(content).hexdigest(), "voice": voice})

    def status(self, sent: Sent | str, status: str, *, to: str | None = None, error: int | None = None) -> dict:
        wamid = sent.wamid if isinstance(sent, Sent) else sent
        report: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(self.clock())),
                                  "recipient_id": to or (sent.to if isinstance(sent, Sent) else "0")}
        if error is not None:
            report["errors"] = [{"code": error, "title": "injected"}]
        return report

    async def deliver(self, url: str, payload: dict, *, body: bytes | None = None, signature: str | None = "sign") -> int:
        """POST a notification to the service with a correct signature (``signature``: a given header; None: none at
        all); a person's message opens their 24-hour window here too, as Meta would count it, once it is accepted."""
        raw = body if body is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Hub-Signature-256"] = self.sign(raw)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        # Meta has the person's message before it notifies us, and counts it whatever our server answers: an answer
        # the service sends while the webhook is still being handled already falls inside the window
        self.note(payload)
        async with self._http.post(url, data=raw, headers=headers) as response:
            status = response.status
        self.deliveries.append((status, payload))
        return status

    def note(self, payload: dict) -> None:
        """The person's messages in ``payload`` reached Meta: their 24-hour window opens (for a test that hands the
        notification to the service without HTTP)."""
        for entry in payload.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value", {})
                number = value.get("metadata", {}).get("phone_number_id")
                for message in value.get("messages", []):
                    key = (number, message.get("from"))
                    self.last_inbound[key] = max(self.last_inbound.get(key, 0.0), float(message.get("timestamp", 0)))

    # --- the Graph API -------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.json_response({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "fake"}}, status=status)

    async def _messages(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 190, "Invalid OAuth access token")
        number = request.match_info["number"]
        if number not in self.numbers:
            return self._error(400, 100, "Unsupported post request: unknown phone number id")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, 100, "Invalid JSON")
        to = body.get("to") if isinstance(body, dict) else None
        try:
            if not isinstance(to, str) or not WA_ID.match(to):
                raise GraphRefusal(400, 100, "Invalid parameter: to")
            if body.get("messaging_product") != "whatsapp":
                raise GraphRefusal(400, 100, "messaging_product must be whatsapp")
            if self._failures and self._failures[0].after > 0:
                self._failures[0].after -= 1
            elif self._failures:
                failure = self._failures.pop(0)
                raise GraphRefusal(failure.status, failure.code, failure.message)
            self._check(number, to, body)
        except GraphRefusal as refusal:
            self.refused.append((str(to), refusal.code))
            return self._error(refusal.status, refusal.code, refusal.message)
        wamid = f"wamid.out{next(self._ids)}"
        self.sent.append(Sent(wamid, number, to, body, self.clock()))
        self._changed.set()
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": wamid}]})

    def _check(self, number: str, to: str, body: dict) -> None:
        kind = body.get("type")
        if kind == "template":
            template = body.get("template") or {}
            approved = self.templates.get(template.get("name"))
            if approved is None or (template.get("language") or {}).get("code") not in approved.languages:
                raise GraphRefusal(404, 132001, "Template name does not exist in the translation")
            buttons = [c for c in template.get("components", []) if c.get("type") == "button"]
            if len(buttons) > approved.buttons:
                raise GraphRefusal(400, 132000, "Number of button parameters does not match the expected number")
            for component in template.get("components", []):
                for parameter in component.get("parameters", []):
                    text = parameter.get("text", "")
                    if "\n" in text or "\t" in text or "     " in text:
                        raise GraphRefusal(400, 132018, "Param text cannot have new-line/tab characters or more than 4 consecutive spaces")
            return
        opened = self.last_inbound.get((number, to))
        if opened is None or self.clock() >= opened + WINDOW_SECONDS:
            raise GraphRefusal(400, 131047, "Re-engagement message: more than 24 hours since the customer last replied")
        if kind == "text":
            text = (body.get("text") or {}).get("body")
            if not isinstance(text, str) or not 0 < len(text) <= 4096:
                raise GraphRefusal(400, 100, "text.body must be 1-4096 characters")
        elif kind == "image":
            media_id = (body.get("image") or {}).get("id")
            if media_id not in self.media:
                raise GraphRefusal(400, 131053, "Media upload error: unknown media id")
            if len((body.get("image") or {}).get("caption", "")) > 1024:
                raise GraphRefusal(400, 100, "caption too long")
        elif kind == "interactive":
            self._check_interactive(body.get("interactive") or {})
        else:
            raise GraphRefusal(400, 100, f"unsupported type {kind!r}")

    @staticmethod
    def _check_interactive(interactive: dict) -> None:
        text = (interactive.get("body") or {}).get("text")
        if not isinstance(text, str) or not 0 < len(text) <= 1024:
            raise GraphRefusal(400, 131009, "interactive body.text must be 1-1024 characters")
        kind, action = interactive.get("type"), interactive.get("action") or {}
        if kind == "button":
            buttons = action.get("buttons") or []
            ids = [b["reply"]["id"] for b in buttons]
            if not 1 <= len(buttons) <= 3 or len(set(ids)) != len(ids):
                raise GraphRefusal(400, 131009, "1-3 buttons with unique ids")
            for button in buttons:
                if not 0 < len(button["reply"]["title"]) <= 20 or not 0 < len(button["reply"]["id"].encode()) <= 256:
                    raise GraphRefusal(400, 131009, "button title 1-20 characters, id 1-256")
        elif kind == "list":
            rows = [row for section in action.get("sections") or [] for row in section.get("rows") or []]
            ids = [row["id"] for row in rows]
            if not 1 <= len(rows) <= 10 or len(set(ids)) != len(ids):
                raise GraphRefusal(400, 131009, "1-10 rows with unique ids")
            if not 0 < len(action.get("button") or "") <= 20:
                raise GraphRefusal(400, 131009, "list button 1-20 characters")
            for row in rows:
                if not 0 < len(row["title"]) <= 24 or not 0 < len(row["id"].encode()) <= 200:
                    raise GraphRefusal(400, 131009, "row title 1-24 characters, id 1-200")
        elif kind == "location_request_message":
            if action.get("name") != "send_location":
                raise GraphRefusal(400, 131009, "action.name must be send_location")
        else:
            raise GraphRefusal(400, 131009, f"unsupported interactive type {kind!r}")

    async def _upload(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 190, "Invalid OAuth access token")
        form = await request.post()
        upload = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not isinstance(upload, web.FileField):
            return self._error(400, 100, "messaging_product and file are required")
        media_id = self.add_media(upload.file.read(), str(form.get("type") or upload.content_type))
        return web.json_response({"id": media_id})

    async def _lookup(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        self.media_requests.append((request.path, self._authorised(request)))
        if not self._authorised(request):
            return self._error(401, 190, "Invalid OAuth access token")
        media = self.media.get(media_id)
        if media is None:
            return self._error(400, 100, "Unsupported get request: unknown media id")
        size = media.claimed_size if media.claimed_size is not None else len(media.content)
        return web.json_response({
            "messaging_product": "whatsapp", "id": media_id, "mime_type": media.mime_type, "file_size": size,
            "sha256": hashlib.sha256(media.content).hexdigest(), "url": f"{self.base_url}/media-files/{media_id}?ext=1",
        })

    async def _download(self, request: web.Request) -> web.Response:
        self.media_requests.append((request.path, self._authorised(request)))
        if not self._authorised(request):  # Meta's media URLs need the token too
            return web.Response(status=401, text="unauthorised")
        media = self.media.get(request.match_info["media_id"])
        if media is None:
            return web.Response(status=404)
        return web.Response(body=media.content, content_type=media.mime_type.split(";")[0])
