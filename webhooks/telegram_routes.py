"""Telegram webhook endpoints: check the secret header, store the update, answer 200 only once it is stored."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import ValidationError

log = logging.getLogger(__name__)
router = APIRouter(tags=["telegram"], include_in_schema=False)


@router.post("/telegram/{role}/webhook")
async def telegram_webhook(role: str, request: Request) -> dict:
    app = request.app.state.container
    bot = app.telegram.get(role)
    if bot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such bot")
    expected = app.settings.webhook_secret(app.settings.bot_tokens()[role])
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong secret token")
    try:
        update = await request.json()
        await bot.receive(update)
    except (ValueError, ValidationError) as exc:
        # malformed updates would be re-sent forever; they cannot become valid, so drop them loudly
        log.warning("telegram %s webhook: malformed update dropped: %s", role, type(exc).__name__)
        return {"ok": False}
    except Exception as exc:
        log.exception("telegram %s webhook: storing the update failed", role)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "try again") from exc
    return {"ok": True}
