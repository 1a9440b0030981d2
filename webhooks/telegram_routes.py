"""Telegram webhook endpoints: check the secret header, store the update, answer 200 only once it is stored."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from scheduler.logthrottle import LogThrottle

log = logging.getLogger(__name__)
dropped = LogThrottle(log)  # whoever floods us with junk gets one line a minute, not one per request
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
    except (ValueError, ValidationError, RecursionError) as exc:
        # a malformed or absurdly nested body would be re-sent forever: it cannot become valid, so
        # it is answered 200 and dropped, with a log line (UnicodeDecodeError is a ValueError)
        dropped.warning((role, type(exc).__name__), "telegram %s webhook: malformed update dropped (%s)", role, type(exc).__name__)
        return {"ok": False}
    except StarletteHTTPException:
        raise  # e.g. the body ran past its cap while being read: 413
    except Exception as exc:
        log.exception("telegram %s webhook: storing the update failed", role)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "try again") from exc
    return {"ok": True}
