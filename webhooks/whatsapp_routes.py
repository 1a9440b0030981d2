"""WhatsApp webhook endpoints: Meta's verification handshake, and notifications stored only once their signature holds."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bots.whatsapp import SIGNATURE_HEADER, NotWhatsApp, WhatsAppChannel
from scheduler.logthrottle import LogThrottle

log = logging.getLogger(__name__)
dropped = LogThrottle(log)
router = APIRouter(tags=["whatsapp"], include_in_schema=False)
PATH = "/whatsapp/webhook"
BODY_LIMIT = 3 * 1024 * 1024  # W3: Meta's notifications are at most 3 MB


def _channel(request: Request) -> WhatsAppChannel:
    channel = request.app.state.container.whatsapp
    if channel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "WhatsApp is not configured")
    return channel


@router.get(PATH)
async def verify(
    request: Request,
    mode: str = Query("", alias="hub.mode", max_length=20),
    token: str = Query("", alias="hub.verify_token", max_length=256),
    challenge: str = Query("", alias="hub.challenge", max_length=256),
) -> PlainTextResponse:
    """W1: Meta subscribes with the verify token the shop chose; the challenge is echoed back as plain text."""
    if not _channel(request).verifies(mode, token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong verify token")
    if not challenge.isalnum():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "hub.challenge must be letters and digits")
    return PlainTextResponse(challenge)


@router.post(PATH)
async def notification(request: Request) -> dict:
    """W2, W3: the signature over the raw body is checked before anything is read into the store; a stored
    notification is answered 200, one that could not be stored 503 (Meta sends it again)."""
    channel = _channel(request)
    body = await request.body()
    if not channel.signed(body, request.headers.get(SIGNATURE_HEADER)):
        dropped.warning(("signature",), "whatsapp webhook: a notification with a missing or wrong signature was refused")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing or wrong {SIGNATURE_HEADER}")
    try:
        await channel.receive(body)
    except (NotWhatsApp, ValueError, json.JSONDecodeError, RecursionError) as exc:
        # signed by Meta, yet not something we act on: it cannot become valid, so it is answered 200 and dropped
        dropped.warning((type(exc).__name__,), "whatsapp webhook: notification dropped (%s)", type(exc).__name__)
        return {"ok": False}
    except StarletteHTTPException:
        raise
    except Exception as exc:
        log.exception("whatsapp webhook: storing the notification failed")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "try again") from exc
    return {"ok": True}
