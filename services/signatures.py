"""Customer signatures on the bus: the technician's single-use pad link, the signature it saves (or the reason the
customer could not sign), the order sources' own policies, and the messages that tell the technician."""

from __future__ import annotations

from datetime import datetime

from domain import commands as c
from domain import events as ev
from domain.errors import DomainError, IllegalTransition, InvalidInput, NotFound
from domain.model import Job, Visit, VisitStatus, stored_id
from domain.signatures import LINK_TTL, SIGNING_STATES, SKIP_REASON_CHARS, SignaturePolicy, stage_for
from domain.kind_policy import policy_for, source_override
from services import actions as a, signed_links
from services.actions import encode
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.handlers import _technician_visit
from services.lookups import visit_of
from services.messages import Button, Card, Keyboard, Outbound, Purpose, buttons, link_button, t, when
from services.notifications import _send, _technician_chats
from storage.repository import Store
from storage.signatures import RequestRow, SignatureStore

SECRET_NAME = "signature-links"  # the server secret (server_secrets) pad links are signed with
PATH = "/sign/"  # where the pad is served (webhooks/signature_pad.py)
CARD = "signature"
# what a stored signature may be: a PNG of a pad's size, a few hundred kilobytes at most (webhooks/signature_pad.py checks)
MAX_PNG_BYTES = 512 * 1024
MIN_SIDE, MAX_SIDE = 60, 2400
# the visit may have moved on while the customer signed (the technician completed it): the signature still counts
CAPTURE_STATES = (*SIGNING_STATES, VisitStatus.COMPLETED, VisitStatus.CONFIRMED)


def card_key(visit_id: int) -> Card:
    """The pad link in the technician's chat, replaced by "saved" once the customer signed: a used link is not left to press."""
    return (CARD, visit_id)


# --- links ----------------------------------------------------------------------------------------------------------


def _mac(key: bytes, request: RequestRow) -> str:
    return signed_links.mac(key, "signature-pad", request["id"], request["visit_id"], request["technician_id"], request["stage"],
                            int(request["expires_at"].timestamp()))


async def link_key(store: Store, now: datetime) -> bytes:
    return await store.server_secret(SECRET_NAME, now)


async def pad_path(store: Store, request: RequestRow, now: datetime) -> str:
    """The pad's path with the link's token (the token is the credential: single use, bound to the visit, expiring)."""
    return f"{PATH}{signed_links.token(request['id'], _mac(await link_key(store, now), request))}"


async def verified(store: Store, token: str, now: datetime) -> RequestRow | None:
    """The request a token names, if its signature holds; used or expired ones included: the page says which."""
    parsed = signed_links.parse_token(token)
    if parsed is None:
        return None
    request = await SignatureStore(store).request(parsed[0])
    if request is None or not signed_links.matches(_mac(await link_key(store, now), request), parsed[1]):
        return None
    return request


async def policy_of(ctx: HandlerContext, job: Job) -> SignaturePolicy:
    """The signature policy for a job: its source's own, else the shop's."""
    override = await SignatureStore(ctx.store).source_policy(job.source)
    return policy_for(ctx.policy.signatures, {job.source: override} if override is not None else {}, job.source)


# --- handlers --------------------------------------------------------------------------------------------------------


async def request_signature(ctx: HandlerContext, cmd: c.RequestSignature) -> list[ev.Event]:
    """A fresh pad link for the customer, while the technician is at the address (earlier links keep working until they
    expire: whichever the customer uses first counts, and each works once)."""
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.state not in SIGNING_STATES:
        raise IllegalTransition(visit.status, "sign")
    stage = stage_for(visit.kind).value
    request = await SignatureStore(ctx.store).add_request(
        visit_id=stored_id(visit), technician_id=cmd.technician_id, stage=stage, now=ctx.now, expires_at=ctx.now + LINK_TTL)
    return [ev.SignatureRequested(visit.job_id, visit.id, {
        "request_id": request["id"], "technician_id": cmd.technician_id, "stage": stage, "expires_at": request["expires_at"].isoformat(),
    })]


async def capture_signature(ctx: HandlerContext, cmd: c.CaptureSignature) -> list[ev.Event]:
    """The pad's PNG (checked by the page before it got here) kept with the visit; the link is used up in the same unit
    of work, so two tabs saving at once keep one signature."""
    store = SignatureStore(ctx.store)
    request = await store.request(cmd.request_id)
    if request is None:
        raise NotFound("signature_link_invalid")
    if not 0 < len(cmd.png) <= MAX_PNG_BYTES or not (MIN_SIDE <= cmd.width <= MAX_SIDE and MIN_SIDE <= cmd.height <= MAX_SIDE):
        raise InvalidInput("signature_image_invalid")
    visit = await ctx.store.load(Visit, request["visit_id"])
    if visit.state not in CAPTURE_STATES:
        raise IllegalTransition(visit.status, "sign")
    if not await store.use(request["id"], ctx.now):
        raise DomainError("signature_link_used")
    signature_id = await store.add(visit_id=request["visit_id"], technician_id=request["technician_id"], stage=request["stage"], now=ctx.now,
                                   request_id=request["id"], png=cmd.png, width=cmd.width, height=cmd.height)
    return [ev.SignatureCaptured(visit.job_id, visit.id, {
        "signature_id": signature_id, "request_id": request["id"], "technician_id": request["technician_id"], "stage": request["stage"],
        "width": cmd.width, "height": cmd.height, "bytes": len(cmd.png),
    })]


async def skip_signature(ctx: HandlerContext, cmd: c.SkipSignature) -> list[ev.Event]:
    """No signature this time, and why: on the timeline and kept with the visit, so completion goes on."""
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.state not in SIGNING_STATES:
        raise IllegalTransition(visit.status, "sign")
    reason = cmd.reason.strip()[:SKIP_REASON_CHARS]
    if not reason:
        raise InvalidInput("signature_reason_missing")
    stage = stage_for(visit.kind).value
    signature_id = await SignatureStore(ctx.store).add(visit_id=stored_id(visit), technician_id=cmd.technician_id, stage=stage, now=ctx.now,
                                                       skip_reason=reason)
    return [ev.SignatureSkipped(visit.job_id, visit.id, {
        "signature_id": signature_id, "technician_id": cmd.technician_id, "stage": stage, "reason": reason,
    })]


async def set_signature_policy(ctx: HandlerContext, cmd: c.SetSignaturePolicy) -> list[ev.Event]:
    """A source's override, checked as the setting is: off, all, or service kinds. It applies from the next Complete."""
    source, text = source_override(SignaturePolicy, cmd.source, cmd.policy, "signatures_invalid")
    await SignatureStore(ctx.store).put_source_policy(source, text, ctx.now)
    return []


HANDLERS = (
    handles(c.RequestSignature, request_signature),
    handles(c.CaptureSignature, capture_signature),
    handles(c.SkipSignature, skip_signature),
    handles(c.SetSignaturePolicy, set_signature_policy),
)


# --- reactions -------------------------------------------------------------------------------------------------------


def _url(ctx: HandlerContext, path: str) -> str:
    # absolute where the public address is known; else site-relative, which the web console opens (bots/render.py)
    return f"{ctx.policy.public_url.rstrip('/')}{path}" if ctx.policy.public_url else path


async def send_pad_link(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The technician's link to the pad, as an app inside the chat where the channel has them; with the way out when the
    visit cannot complete without a signature."""
    store = SignatureStore(ctx.store)
    request = await store.request(event.data["request_id"])
    if request is None:
        return []
    visit_id = visit_of(event)
    visit = await ctx.store.load(Visit, visit_id)
    job = await ctx.store.load(Job, visit.job_id)
    rows: list[list[Button]] = [[link_button(t("btn.signature_pad"), _url(ctx, await pad_path(ctx.store, request, ctx.now)), app=True)]]
    if (await policy_of(ctx, job)).requires(visit.kind):
        rows.append([Button(t("btn.signature_cannot"), encode(a.CannotSign(visit_id)))])
    text = t(f"tech.signature_link_{request['stage']}", visit=visit_id, until=when(request["expires_at"]))
    return _send(await _technician_chats(ctx, request["technician_id"]), text, buttons(*rows), purpose=Purpose.STATUS, card=card_key(visit_id))


def next_step(visit: Visit) -> Keyboard:
    """What the technician does after the customer signed: start or carry on with the checklist (which ends in Complete)."""
    visit_id = stored_id(visit)
    if visit.state is VisitStatus.ON_SITE:
        return buttons([Button(t("btn.start_checklist"), encode(a.StartChecklist(visit_id)))])
    if visit.state is VisitStatus.IN_PROGRESS:
        return buttons([Button(t("btn.continue_checklist"), encode(a.ContinueChecklist(visit_id)))])
    return ()


async def tell_technician_signed(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Saved: in the link's place (its button goes), with the next step."""
    visit = await ctx.store.load(Visit, visit_of(event))
    keyboard = next_step(visit)
    key = "tech.signature_saved" if keyboard else "tech.signature_saved_done"
    chats = await _technician_chats(ctx, event.data["technician_id"])
    return _send(chats, t(key, visit=stored_id(visit)), keyboard, purpose=Purpose.STATUS, card=card_key(stored_id(visit)))


REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (send_pad_link, (ev.SignatureRequested,)),
    (tell_technician_signed, (ev.SignatureCaptured,)),
)
