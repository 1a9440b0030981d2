"""Accounts and access: passwords (argon2id), Telegram sign-in checks, sessions, scoped API tokens, sign-in rate limits."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from limits import parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from domain.access import ROLE_SCOPES, Principal, Role, regions_of, valid_scopes
from domain.errors import DomainError
from services.context import HandlerContext
from storage.accounts import AccountStore, Row
from storage.repository import Store

PASSWORDS = PasswordHasher()  # argon2id with the library's current parameters (RFC 9106 low-memory profile)
MIN_PASSWORD = 10
MAX_PASSWORD = 200  # argon2 takes any length; a bound keeps a megabyte "password" from costing a request
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,99}$")
TOKEN_PREFIX = "fct_"  # recognisable in a leaked file or a secret scanner

# a password guesser is slowed per account and per address; a person mistyping has room to spare
SIGN_IN_RATES = {"account": ("5/minute", "20/hour"), "address": ("20/minute", "100/hour")}


class AccessRefused(DomainError):
    """A sign-in or token refused; ``code`` says why (the pages and the CLI translate it)."""


def digest(secret: str) -> str:
    """Session cookies and API tokens are 256 random bits: a plain SHA-256 is enough to keep the table from giving them away."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --- passwords ------------------------------------------------------------------------------------


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccessRefused("password_length")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return PASSWORDS.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored or len(password) > MAX_PASSWORD:
        return False
    try:
        return PASSWORDS.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# a wrong username costs the same time as a wrong password (no telling which accounts exist)
_DUMMY_HASH = PASSWORDS.hash("fieldchat-no-such-account")


# --- sign-in rate limits --------------------------------------------------------------------------


class SignInLimiter:
    """Failed sign-ins counted per account and per client address (shared through Redis when it is configured)."""

    def __init__(self, storage: Storage, rates: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._rates = {scope: tuple(parse(rate) for rate in limits) for scope, limits in {**SIGN_IN_RATES, **(rates or {})}.items()}

    def _keys(self, username: str, address: str) -> list[tuple[str, str]]:
        return [("account", username.strip().lower()[:100]), ("address", address)]

    async def check(self, username: str, address: str) -> None:
        """AccessRefused("too_many_attempts") while either count is full; the attempt itself is not counted here."""
        for scope, key in self._keys(username, address):
            for rate in self._rates[scope]:
                if not await self._limiter.test(rate, "signin", scope, key):
                    raise AccessRefused("too_many_attempts")

    async def failed(self, username: str, address: str) -> None:
        for scope, key in self._keys(username, address):
            for rate in self._rates[scope]:
                await self._limiter.hit(rate, "signin", scope, key)


# --- principals -----------------------------------------------------------------------------------


def account_principal(row: Row) -> Principal:
    role = Role(row["role"])
    return Principal("account", row["id"], row["display_name"], ROLE_SCOPES[role], regions_of(row["regions"]), role, row["dispatcher_id"])


@dataclass(frozen=True)
class SignedIn:
    """A live web session: who, and the CSRF token its forms carry."""

    principal: Principal
    session_id: int
    csrf: str
    username: str
    language: str
    via: str


async def session_of(store: Store, cookie: str | None, now: datetime) -> SignedIn | None:
    if not cookie or len(cookie) > 200:
        return None
    row = await AccountStore(store).live_session(digest(cookie), now)
    if row is None:
        return None
    return SignedIn(account_principal(row), row["session_id"], row["csrf"], row["username"], row["language"], row["via"])


async def token_principal(store: Store, token: str) -> Principal | None:
    """The integration a bearer token belongs to, while it is not revoked; None for any other string."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = await AccountStore(store).live_api_token(digest(token))
    if row is None:
        return None
    return Principal("token", row["id"], row["name"], frozenset(row["scopes"]), regions_of(row["regions"]))


async def account_of_chat_user(store: Store, platform: str, bot: str, chat_user_id: str) -> Row | None:
    """The account a messenger user (verified by the channel's adapter) signs in as: one naming their user id, else the
    one of the dispatcher identity their user is bound to in that bot's chats."""
    accounts = AccountStore(store)
    found = await accounts.account_by_chat_user(chat_user_id)
    if found is None:
        binding = await store.dispatcher_for_user(platform, bot, chat_user_id)
        if binding is not None:
            found = await accounts.account_by_dispatcher(binding.subject_id)
    return found


async def dispatcher_regions(store: Store, dispatcher_id: int) -> frozenset[str] | None:
    """The regions a chat dispatcher identity acts in: its account's; every region (None) without an account."""
    row = await AccountStore(store).account_by_dispatcher(dispatcher_id)
    return regions_of(row["regions"]) if row is not None else None


# --- writes (each run on the bus, as one unit of work) ------------------------------------------


def _username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise AccessRefused("username_invalid")
    return name


def _regions(regions: Iterable[str] | None) -> list[str] | None:
    if regions is None:
        return None
    cleaned = sorted({r.strip() for r in regions if r.strip()})
    if any(len(r) > 100 for r in cleaned):
        raise AccessRefused("region_invalid")
    return cleaned or None


async def add_account(
    ctx: HandlerContext, *, username: str, display_name: str, role: str, password: str | None, regions: Iterable[str] | None = None,
    chat_user_id: str | None = None, dispatcher_id: int | None = None, language: str = "zh",
) -> int:
    accounts = AccountStore(ctx.store)
    name = _username(username)
    try:
        chosen = Role(role)
    except ValueError as exc:
        raise AccessRefused("role_invalid") from exc
    if await accounts.account_by_username(name) is not None:
        raise AccessRefused("username_taken")
    if chat_user_id is not None and (not chat_user_id.isdigit() or await accounts.account_by_chat_user(chat_user_id)):
        raise AccessRefused("chat_user_taken" if chat_user_id.isdigit() else "chat_user_invalid")
    if password is None and chat_user_id is None and dispatcher_id is None:
        raise AccessRefused("no_way_to_sign_in")
    return await accounts.add_account(
        username=name, display_name=(display_name.strip() or name)[:200], role=chosen.value, regions=_regions(regions),
        password_hash=hash_password(password) if password is not None else None, chat_user_id=chat_user_id,
        dispatcher_id=dispatcher_id, language=language if language in ("en", "zh") else "zh", created_at=ctx.now,
    )


async def disable_account(ctx: HandlerContext, username: str) -> int:
    """Disable an account and end its sessions at once; the number of sessions ended."""
    accounts = AccountStore(ctx.store)
    row = await accounts.account_by_username(username)
    if row is None:
        raise AccessRefused("account_not_found")
    if row["disabled_at"] is None:
        await accounts.update_account(row["id"], disabled_at=ctx.now)
    return await accounts.revoke_sessions_of(row["id"], ctx.now)


async def password_sign_in(ctx: HandlerContext, username: str, password: str) -> Row:
    """The account these credentials open; AccessRefused("wrong_credentials") for any wrong part, told apart from nothing."""
    row = await AccountStore(ctx.store).account_by_username(username[:100])
    if row is None or row["disabled_at"] is not None or not row["password_hash"]:
        verify_password(_DUMMY_HASH, password)  # the same work as a real check
        raise AccessRefused("wrong_credentials")
    if not verify_password(row["password_hash"], password):
        raise AccessRefused("wrong_credentials")
    if PASSWORDS.check_needs_rehash(row["password_hash"]):
        await AccountStore(ctx.store).update_account(row["id"], password_hash=PASSWORDS.hash(password))
    return row


async def start_session(ctx: HandlerContext, account_id: int, *, via: str, address: str, ttl: timedelta) -> tuple[str, str]:
    """A new session row; the cookie value (only its hash is stored) and the session's CSRF token."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await AccountStore(ctx.store).add_session(
        token_hash=digest(cookie), account_id=account_id, csrf=csrf, via=via, address=address[:64], created_at=ctx.now,
        expires_at=ctx.now + ttl,
    )
    return cookie, csrf


async def chat_sign_in(ctx: HandlerContext, platform: str, bot: str, chat_user_id: str, *, username: str, display_name: str) -> Row:
    """The account of a messenger user the channel's adapter verified. A dispatcher bound in that bot who has no account
    yet gets one under ``username`` (role dispatcher, every region, as their group buttons allow today); anyone else is
    refused."""
    row = await account_of_chat_user(ctx.store, platform, bot, chat_user_id)
    if row is None:
        binding = await ctx.store.dispatcher_for_user(platform, bot, chat_user_id)
        if binding is None:
            raise AccessRefused("chat_user_unknown")
        account_id = await add_account(
            ctx, username=username, display_name=display_name, role=Role.DISPATCHER.value,
            password=None, dispatcher_id=binding.subject_id, language=binding.language,
        )
        row = await AccountStore(ctx.store).account(account_id)
    if row is None or row["disabled_at"] is not None:
        raise AccessRefused("account_disabled")
    return row


async def create_api_token(ctx: HandlerContext, *, name: str, scopes: Iterable[str], regions: Iterable[str] | None, created_by: str) -> tuple[int, str]:
    """A new token for an integration: its id and the token itself, shown this once (only a hash and a prefix are kept)."""
    label = name.strip()
    if not 1 <= len(label) <= 100:
        raise AccessRefused("token_name_invalid")
    try:
        chosen = valid_scopes(scopes)
    except ValueError as exc:
        raise AccessRefused("scope_invalid") from exc
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = await AccountStore(ctx.store).add_api_token(
        name=label, prefix=token[:12], token_hash=digest(token), scopes=chosen, regions=_regions(regions),
        created_by=created_by[:200], created_at=ctx.now,
    )
    return token_id, token


async def revoke_api_token(ctx: HandlerContext, token_id: int) -> None:
    if not await AccountStore(ctx.store).revoke_api_token(token_id, ctx.now):
        raise AccessRefused("token_not_found")


def token_listing(row: Mapping[str, Any]) -> dict[str, Any]:
    """A token as listings show it: never more of the secret than its prefix."""
    return {
        "id": row["id"], "name": row["name"], "prefix": row["prefix"], "scopes": list(row["scopes"]),
        "regions": row["regions"], "created_by": row["created_by"], "created_at": row["created_at"], "revoked_at": row["revoked_at"],
    }
