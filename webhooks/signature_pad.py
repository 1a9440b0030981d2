"""The signature pad behind a technician's single-use link: GET shows a canvas the customer signs on, POST keeps the
PNG with the visit through the bus. The link's token is the credential (signed, bound to one visit, expiring, used
once); the POST is JSON from this site only (Origin checked), so no other site's form can post one."""

from __future__ import annotations

import base64
import binascii
import html
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image, ImageChops

from bots.photos import PhotoRefused, check_photo, sniff
from conversations.i18n import translate
from domain import commands as c
from domain.errors import DomainError, IllegalTransition
from domain.model import Customer, Job, Visit, stored_id
from services.signatures import CAPTURE_STATES, MAX_PNG_BYTES, MAX_SIDE, MIN_SIDE, PATH, verified
from storage.repository import Store
from storage.signatures import RequestRow
from webhooks.signin import language_of, same_origin

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
SCRIPT_PATH = "/sign-pad.js"
BODY_LIMIT = MAX_PNG_BYTES * 4 // 3 + 4096  # the PNG as base64 in a small JSON object
TOKEN_CHARS = 100
INK_MIN_SIDE = 8  # a signature is more than a tap: its ink spans at least this many pixels one way
STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:0;background:#f6f8fa;
color:#1f2328;line-height:1.45}
main{max-width:40rem;margin:0 auto;padding:1rem}
h1{font-size:1.3rem;margin:.2rem 0 .4rem}
.meta{color:#57606a;margin:0 0 .8rem}
.lang{float:right;font-size:.9rem;color:#0969da}
.pad{position:relative;background:#fff;border:2px solid #57606a;border-radius:.5rem;touch-action:none}
.pad canvas{display:block;width:100%;height:14rem;touch-action:none;cursor:crosshair;border-radius:.4rem}
.pad .line{position:absolute;left:1.2rem;right:1.2rem;bottom:3rem;border-bottom:1px dashed #8c959f;pointer-events:none}
.actions{display:flex;gap:.8rem;margin-top:.8rem}
button{font:inherit;font-size:1.05rem;border-radius:.45rem;padding:.7rem 1.2rem;cursor:pointer}
button.save{flex:1;background:#1a7f37;color:#fff;border:0}
button.clear{background:#fff;color:#1f2328;border:1px solid #8c959f}
button:focus,canvas:focus,a:focus{outline:3px solid #0969da;outline-offset:2px}
button[disabled]{opacity:.6;cursor:wait}
.status{min-height:1.5rem;margin:.8rem 0;font-weight:600}
.status.bad{color:#a40e26} .status.ok{color:#1a7f37}
.note{color:#57606a;font-size:.9rem}
.result{--tone:#1a7f37;background:#fff;border:1px solid #d0d7de;border-left:.35rem solid var(--tone);border-radius:.4rem;padding:.9rem}
"""


def content_security_policy() -> str:
    """Scripts of this site only, fetches to it only. Telegram's web client shows a Mini App in a frame: it may frame the pad."""
    return ("default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'self' https://web.telegram.org; base-uri 'none'")


HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the link is the credential: no page it leads to may learn it
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": content_security_policy(),
}


@dataclass
class Pad:
    """One response of the pad, in the reader's language."""

    language: str
    tz: Any

    def tr(self, key: str, **params: Any) -> str:
        return translate(key, self.language, params, self.tz)

    def at(self, key: str, moment: datetime, **params: Any) -> str:
        """A text with a moment in it, shown in the shop's time zone as the chats show moments."""
        return self.tr(key, at={"_dt": moment.isoformat()}, **params)

    def document(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        other = "en" if self.language == "zh" else "zh"
        page = f"""<!doctype html>
<html lang="{'zh-CN' if self.language == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex, nofollow">
<title>{html.escape(title)} · {html.escape(self.tr('sign.title'))}</title><style>{STYLE}</style></head><body>
<main><a class="lang" href="?lang={other}" hreflang="{other}">{'English' if other == 'en' else '中文'}</a>
{body}
</main></body></html>"""
        return HTMLResponse(page, status_code=status, headers=HEADERS)

    def ending(self, status: int, title_key: str, message: str, tone: str) -> HTMLResponse:
        """A page with nothing left to do here: what happened, and who can make a new link."""
        colour = {"stop": "#9a6700", "error": "#a40e26", "done": "#1a7f37"}[tone]
        title = self.tr(title_key)
        body = (f'<h1>{html.escape(title)}</h1><div class="result" role="alert" style="--tone:{colour}">'
                f'<p>{html.escape(message)}</p></div>')
        return self.document(title, body, status)


# --- the link and who reads it ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A verified link with its visit, or the page that says why it can do nothing (404 forged, 410 used/expired/closed)."""

    request: RequestRow | None
    visit: Visit | None
    job: Job | None
    pad: Pad
    ended: tuple[int, str, str] | None = None  # status, title key, message


async def _found(request: Request, token: str) -> Found:
    app = request.app.state.container
    now = app.clock.now()
    async with app.sessions() as session:
        store = Store(session)
        link = await verified(store, token[:TOKEN_CHARS], now)
        visit = await store.get(Visit, link["visit_id"]) if link else None
        job = await store.get(Job, visit.job_id) if visit else None
        customer = await store.get(Customer, job.customer_id) if job else None
    fallback = customer.language if customer is not None and customer.language in ("en", "zh") else "zh"
    pad = Pad(language_of(request, fallback), app.policy.tz)
    if link is None or visit is None:
        return Found(None, None, None, pad, (404, "sign.invalid_title", pad.tr("sign.invalid")))
    if link["used_at"] is not None:
        return Found(link, visit, job, pad, (410, "sign.used_title", pad.at("sign.used", link["used_at"])))
    if link["expires_at"] <= now:
        return Found(link, visit, job, pad, (410, "sign.expired_title", pad.at("sign.expired", link["expires_at"])))
    if visit.state not in CAPTURE_STATES:
        closed = pad.tr("sign.closed", visit=stored_id(visit), status={"key": f"status.{visit.status}"})
        return Found(link, visit, job, pad, (410, "sign.invalid_title", closed))
    return Found(link, visit, job, pad)


# --- the pad ------------------------------------------------------------------------------------------------------------


@router.get(SCRIPT_PATH)
async def script() -> Response:
    return FileResponse(STATIC / "signature.js", media_type="text/javascript", headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get(PATH + "{token}", response_class=HTMLResponse)
async def show(token: str, request: Request) -> HTMLResponse:
    """The pad. Opening it changes nothing (chat apps open links to preview them); only Save uses the link."""
    found = await _found(request, token)
    if found.ended is not None:
        status, title_key, message = found.ended
        return found.pad.ending(status, title_key, message, "error" if status == 404 else "stop")
    assert found.request is not None and found.visit is not None and found.job is not None
    pad, link, visit, job = found.pad, found.request, found.visit, found.job
    title = pad.tr(f"sign.heading_{link['stage']}")
    texts = {key: pad.tr(f"sign.{key}") for key in ("empty", "saving", "network", "saved_title")}
    data = " ".join(f'data-{key}="{html.escape(value)}"' for key, value in texts.items())
    meta = pad.tr("sign.visit", visit=stored_id(visit), kind={"key": f"kind.{visit.kind}"}, product=job.product_name)
    body = f"""<div id="pad-page" data-post="{html.escape(str(request.url.path))}" {data}>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(meta)}</p>
<p>{html.escape(pad.tr('sign.instructions'))}</p>
<div class="pad"><canvas id="pad" tabindex="0" role="img" aria-label="{html.escape(pad.tr('sign.pad_label'))}"></canvas><div class="line"></div></div>
<div class="actions"><button type="button" class="clear" id="clear">{html.escape(pad.tr('sign.clear'))}</button>
<button type="button" class="save" id="save">{html.escape(pad.tr('sign.save'))}</button></div>
<p class="status" id="status" role="status" aria-live="polite"></p>
<p class="note">{html.escape(pad.at('sign.single_use', link['expires_at']))}</p>
</div>
<script src="{SCRIPT_PATH}" defer></script>"""
    return pad.document(title, body)


def _refused(pad: Pad, status: int, reason_key: str) -> JSONResponse:
    """A save that did not happen: the reason, in the reader's language, for the page to show (the link still works)."""
    reason = pad.tr(reason_key)
    return JSONResponse({"detail": reason_key.removeprefix("sign."), "message": pad.tr("sign.failed", reason=reason)}, status_code=status,
                        headers={"Cache-Control": "no-store"})


def _ended(pad: Pad, status: int, title_key: str, message: str) -> JSONResponse:
    """A link that can do nothing any more: the page replaces the pad with this."""
    return JSONResponse({"detail": "gone" if status == 410 else "invalid", "title": pad.tr(title_key), "message": message, "ended": True},
                        status_code=status, headers={"Cache-Control": "no-store"})


def checked_png(data: bytes) -> tuple[bytes, int, int] | str:
    """The signature as a PNG safe to keep (decoded and re-encoded by Pillow), with its size; else the catalog key of why not."""
    if len(data) > MAX_PNG_BYTES:
        return "sign.too_big"
    if sniff(data) != "PNG":
        return "sign.bad_image"
    try:
        checked = check_photo(data, max_bytes=MAX_PNG_BYTES, max_pixels=MAX_SIDE * MAX_SIDE)
    except PhotoRefused as refused:
        return "sign.too_big" if str(refused) in ("too_big", "too_many_pixels") else "sign.bad_image"
    if checked.extension != ".png" or not (MIN_SIDE <= checked.width <= MAX_SIDE and MIN_SIDE <= checked.height <= MAX_SIDE):
        return "sign.bad_image"
    if not _has_ink(checked.data):
        return "sign.blank"
    return checked.data, checked.width, checked.height


def _has_ink(png: bytes) -> bool:
    """Some dark, visible strokes spanning more than a tap: a blank (or all-white) pad is no signature."""
    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
    visible = rgba.getchannel("A").point(lambda v: 255 if v > 32 else 0)
    dark = rgba.convert("RGB").convert("L").point(lambda v: 255 if v < 160 else 0)
    box = ImageChops.multiply(visible, dark).getbbox()
    return box is not None and max(box[2] - box[0], box[3] - box[1]) >= INK_MIN_SIDE


async def _png_from(request: Request) -> bytes | str:
    """The posted image's bytes, or the catalog key of what is wrong with the request."""
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
        return "sign.bad_image"
    body = await request.body()
    if len(body) > BODY_LIMIT:
        return "sign.too_big"
    try:
        posted = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "sign.bad_image"
    value = posted.get("png") if isinstance(posted, dict) else None
    if not isinstance(value, str):
        return "sign.bad_image"
    value = value.removeprefix("data:image/png;base64,")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "sign.bad_image"


@router.post(PATH + "{token}")
async def save(token: str, request: Request) -> JSONResponse:
    """Keeps the signature once: the PNG checked here, the link used up with the command in one unit of work."""
    found = await _found(request, token)
    pad = found.pad
    if not same_origin(request):
        return _refused(pad, 403, "sign.origin")
    if found.ended is not None:
        return _ended(pad, *found.ended)
    assert found.request is not None and found.visit is not None
    posted = await _png_from(request)
    if isinstance(posted, str):
        return _refused(pad, 413 if posted == "sign.too_big" else 400, posted)
    checked = checked_png(posted)
    if isinstance(checked, str):
        return _refused(pad, 413 if checked == "sign.too_big" else 400, checked)
    png, width, height = checked
    app = request.app.state.container
    try:
        await app.bus.run(f"signature:{found.request['id']}", c.CaptureSignature(found.request["id"], png, width, height))
    except (IllegalTransition, DomainError) as err:
        # another tab saved first, it expired meanwhile, or the visit was cancelled: the page says which
        again = await _found(request, token)
        if again.ended is not None:
            return _ended(pad, *again.ended)
        return _refused(pad, 409, "sign.bad_image" if err.code == "signature_image_invalid" else "sign.network")
    visit_id = stored_id(found.visit)
    return JSONResponse({"ok": True, "title": pad.tr("sign.saved_title"), "message": pad.tr("sign.saved", visit=visit_id)},
                        headers={"Cache-Control": "no-store"})

