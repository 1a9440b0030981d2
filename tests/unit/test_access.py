"""Access rules without a database: argon2 passwords, Telegram sign-in data checked as Telegram documents it, scopes and
the region rule."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest

from domain.access import ADMIN, ROLE_SCOPES, SCOPES, Principal, Role, region_allowed, valid_scopes
from bots import telegram_login
from services import accounts

BOT_TOKEN = "123456:TEST-bot-token-for-signatures"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


def widget_data(bot_token: str = BOT_TOKEN, auth_date: datetime = NOW, **fields: str) -> dict[str, str]:
    """Login Widget data signed as Telegram signs it: HMAC-SHA256 of the sorted key=value lines, keyed by SHA256(token)."""
    data = {"id": "777001", "first_name": "Dora", "username": "dora_dispatch", "auth_date": str(int(auth_date.timestamp())), **fields}
    check = "\n".join(f"{k}={data[k]}" for k in sorted(data))
    data["hash"] = hmac.new(hashlib.sha256(bot_token.encode()).digest(), check.encode(), hashlib.sha256).hexdigest()
    return data


def init_data(bot_token: str = BOT_TOKEN, auth_date: datetime = NOW, user_id: int = 777001) -> str:
    """Mini App initData signed as Telegram signs it: secret = HMAC-SHA256(key "WebAppData", token)."""
    data = {"query_id": "AAHdF6IQAAAAAN0XohDhrOrc", "user": json.dumps({"id": user_id, "first_name": "Dora"}),
            "auth_date": str(int(auth_date.timestamp()))}
    check = "\n".join(f"{k}={data[k]}" for k in sorted(data))
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    data["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(data)


# --- passwords ---------------------------------------------------------------------------------------


def test_a_password_is_stored_as_an_argon2id_hash_that_verifies_only_the_same_password():
    stored = accounts.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert accounts.verify_password(stored, "correct horse battery")
    assert not accounts.verify_password(stored, "correct horse batterz")
    assert not accounts.verify_password(None, "correct horse battery")
    assert not accounts.verify_password("not a hash", "correct horse battery")
    # the same password hashes differently each time (a salt per hash)
    assert accounts.hash_password("correct horse battery") != stored


@pytest.mark.parametrize("password", ["short", "x" * (accounts.MAX_PASSWORD + 1)])
def test_passwords_outside_the_length_rules_are_refused(password):
    with pytest.raises(accounts.AccessRefused) as refused:
        accounts.hash_password(password)
    assert refused.value.code == "password_length"


# --- Telegram Login Widget ------------------------------------------------------------------------------


def test_login_widget_data_signed_with_the_bot_token_gives_the_telegram_user():
    assert telegram_login.verify_login_widget(widget_data(), BOT_TOKEN, NOW) == "777001"


def _refusal(check, *args) -> str:
    with pytest.raises(accounts.AccessRefused) as refused:
        check(*args)
    return refused.value.code


def test_login_widget_data_with_a_changed_field_a_wrong_hash_or_another_bot_is_refused():
    tampered = widget_data()
    tampered["id"] = "777002"  # someone else's id under Dora's signature
    assert _refusal(telegram_login.verify_login_widget, tampered, BOT_TOKEN, NOW) == "telegram_invalid"
    wrong_hash = {**widget_data(), "hash": "0" * 64}
    assert _refusal(telegram_login.verify_login_widget, wrong_hash, BOT_TOKEN, NOW) == "telegram_invalid"
    other_bot = widget_data(bot_token="999:another-bot")
    assert _refusal(telegram_login.verify_login_widget, other_bot, BOT_TOKEN, NOW) == "telegram_invalid"
    unsigned = {k: v for k, v in widget_data().items() if k != "hash"}
    assert _refusal(telegram_login.verify_login_widget, unsigned, BOT_TOKEN, NOW) == "telegram_invalid"


def test_login_widget_data_older_than_the_age_limit_is_refused():
    old = widget_data(auth_date=NOW - timedelta(hours=25))
    assert _refusal(telegram_login.verify_login_widget, old, BOT_TOKEN, NOW) == "telegram_expired"
    # within a shorter configured limit only
    recent = widget_data(auth_date=NOW - timedelta(minutes=30))
    assert telegram_login.verify_login_widget(recent, BOT_TOKEN, NOW, timedelta(hours=1)) == "777001"
    assert _refusal(telegram_login.verify_login_widget, recent, BOT_TOKEN, NOW, timedelta(minutes=10)) == "telegram_expired"
    from_the_future = widget_data(auth_date=NOW + timedelta(hours=1))
    assert _refusal(telegram_login.verify_login_widget, from_the_future, BOT_TOKEN, NOW) == "telegram_expired"


# --- Mini App initData ----------------------------------------------------------------------------------


def test_mini_app_init_data_signed_with_the_bot_token_gives_the_telegram_user():
    assert telegram_login.verify_init_data(init_data(), BOT_TOKEN, NOW) == "777001"


def test_mini_app_init_data_tampered_wrongly_signed_repeated_or_old_is_refused():
    good = init_data()
    tampered = good.replace("777001", "777002")
    assert _refusal(telegram_login.verify_init_data, tampered, BOT_TOKEN, NOW) == "telegram_invalid"
    assert _refusal(telegram_login.verify_init_data, init_data(bot_token="999:another-bot"), BOT_TOKEN, NOW) == "telegram_invalid"
    wrong_hash = good.rsplit("hash=", 1)[0] + "hash=" + "f" * 64
    assert _refusal(telegram_login.verify_init_data, wrong_hash, BOT_TOKEN, NOW) == "telegram_invalid"
    # a field given twice: which value was signed is ambiguous
    assert _refusal(telegram_login.verify_init_data, good + "&auth_date=1", BOT_TOKEN, NOW) == "telegram_invalid"
    old = init_data(auth_date=NOW - timedelta(days=2))
    assert _refusal(telegram_login.verify_init_data, old, BOT_TOKEN, NOW) == "telegram_expired"
    assert _refusal(telegram_login.verify_init_data, "", BOT_TOKEN, NOW) == "telegram_invalid"
    assert _refusal(telegram_login.verify_init_data, "x" * 5000, BOT_TOKEN, NOW) == "telegram_invalid"


# --- scopes and regions ----------------------------------------------------------------------------


def test_admin_may_do_everything_and_other_scopes_only_their_own():
    admin = Principal("token", 1, "ops", frozenset({ADMIN}))
    reader = Principal("token", 2, "bi", frozenset({"jobs:read"}))
    assert admin.can("orders:write") and admin.can("jobs:read") and admin.is_admin
    assert reader.can("jobs:read") and not reader.can("orders:write") and not reader.can(ADMIN)
    # managers read everything and change nothing; dispatchers also keep devices, stock, bills and payments
    # ... and have a manager's say on prices (fees:manage: increases above the managers' limit, discounts; issue 14 part 6)
    assert ROLE_SCOPES[Role.MANAGER] == frozenset({"jobs:read", "devices:read", "parts:read", "fees:read", "fees:manage"})
    assert ROLE_SCOPES[Role.DISPATCHER] == frozenset(
        {"jobs:read", "jobs:write", "devices:read", "devices:write", "parts:read", "parts:write", "fees:read", "fees:write"})
    assert all(scope in SCOPES for scopes in ROLE_SCOPES.values() for scope in scopes)


def test_unknown_or_no_scopes_are_refused():
    assert valid_scopes(["jobs:read", "orders:write", "jobs:read"]) == ["jobs:read", "orders:write"]
    with pytest.raises(ValueError, match="unknown scope"):
        valid_scopes(["jobs:delete"])
    with pytest.raises(ValueError):
        valid_scopes([])


def test_the_region_rule_lets_a_scoped_person_act_only_in_their_regions():
    assert region_allowed(None, "Huangpu") and region_allowed(None, None)
    assert region_allowed(frozenset({"Huangpu"}), "Huangpu")
    assert not region_allowed(frozenset({"Huangpu"}), "Pudong")
    assert not region_allowed(frozenset({"Huangpu"}), None)
