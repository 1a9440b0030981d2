"""Telegram sign-in data checked as Telegram documents it: the Login Widget's fields and a Mini App's initData, each
signed with the bot token (https://core.telegram.org/widgets/login, https://core.telegram.org/bots/webapps)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from services.accounts import AccessRefused

MAX_AGE = timedelta(hours=24)  # Login Widget / initData older than this is refused (auth_date)

# Both are a few lines of HMAC over the documented data-check string; aiogram has helpers, but importing it costs a web
# process seconds and ~100 MiB (container.py imports a Telegram library only for a configured driver).


def _data_check_string(fields: Mapping[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def _fresh(fields: Mapping[str, str], now: datetime, max_age: timedelta) -> None:
    raw = fields.get("auth_date", "")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise AccessRefused("telegram_invalid")
    age = now.timestamp() - int(raw)
    if age > max_age.total_seconds() or age < -300:  # five minutes of clock skew the other way
        raise AccessRefused("telegram_expired")


def verify_login_widget(fields: Mapping[str, str], bot_token: str, now: datetime, max_age: timedelta = MAX_AGE) -> str:
    """The Telegram user id of Login Widget data, checked: hash = HMAC-SHA256(data-check-string, SHA256(bot token))."""
    given = fields.get("hash", "")
    secret = hashlib.sha256(bot_token.encode()).digest()
    expected = hmac.new(secret, _data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AccessRefused("telegram_invalid")
    _fresh(fields, now, max_age)
    user_id = fields.get("id", "")
    if not user_id.isascii() or not user_id.isdigit():
        raise AccessRefused("telegram_invalid")
    return user_id


def verify_init_data(init_data: str, bot_token: str, now: datetime, max_age: timedelta = MAX_AGE) -> str:
    """The Telegram user id of a Mini App's initData, checked: secret = HMAC-SHA256("WebAppData", bot token), hash =
    HMAC-SHA256(data-check-string, secret)."""
    if len(init_data) > 4096:
        raise AccessRefused("telegram_invalid")
    pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=False)
    fields = dict(pairs)
    if len(fields) != len(pairs):  # a field twice: which one was signed is ambiguous
        raise AccessRefused("telegram_invalid")
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    expected = hmac.new(secret, _data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(fields.get("hash", "").encode(), expected.encode()):
        raise AccessRefused("telegram_invalid")
    _fresh(fields, now, max_age)
    try:
        user = json.loads(fields.get("user", ""))
        user_id = str(int(user["id"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise AccessRefused("telegram_invalid") from exc
    return user_id
