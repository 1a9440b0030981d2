"""Queries for accounts, their web sessions and the integrations' API tokens (only hashes of secrets are stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from storage import tables as t
from storage.repository import Store

Row = dict[str, Any]


class AccountStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    # --- accounts ----------------------------------------------------------------------------------

    async def add_account(self, **values: Any) -> int:
        result = await self.session.execute(insert(t.accounts).values(**values).returning(t.accounts.c.id))
        return int(result.scalar_one())

    async def _one(self, *conditions: Any) -> Row | None:
        row = (await self.session.execute(select(t.accounts).where(*conditions))).mappings().first()
        return dict(row) if row else None

    async def account(self, account_id: int) -> Row | None:
        return await self._one(t.accounts.c.id == account_id)

    async def account_by_username(self, username: str) -> Row | None:
        return await self._one(t.accounts.c.username == username.strip().lower())

    async def account_by_chat_user(self, chat_user_id: str) -> Row | None:
        """The account naming this messenger user id (the staff bot's Telegram user, the only kind so far)."""
        return await self._one(t.accounts.c.chat_user_id == chat_user_id)

    async def account_by_dispatcher(self, dispatcher_id: int) -> Row | None:
        """The enabled account of a chat dispatcher identity, if one has it."""
        return await self._one(t.accounts.c.dispatcher_id == dispatcher_id, t.accounts.c.disabled_at.is_(None))

    async def accounts(self) -> list[Row]:
        rows = (await self.session.execute(select(t.accounts).order_by(t.accounts.c.id))).mappings()
        return [dict(row) for row in rows]

    async def update_account(self, account_id: int, **values: Any) -> None:
        await self.session.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(**values))

    async def count_admins(self) -> int:
        query = select(func.count()).select_from(t.accounts).where(t.accounts.c.role == "admin", t.accounts.c.disabled_at.is_(None))
        return int((await self.session.execute(query)).scalar_one())

    # --- sessions ----------------------------------------------------------------------------------

    async def add_session(self, **values: Any) -> int:
        result = await self.session.execute(insert(t.web_sessions).values(**values).returning(t.web_sessions.c.id))
        return int(result.scalar_one())

    async def live_session(self, token_hash: str, now: datetime) -> Row | None:
        """The session with this cookie, and its account, while neither is ended; None otherwise."""
        s, a = t.web_sessions, t.accounts
        query = (
            select(s.c.id.label("session_id"), s.c.csrf, s.c.via, s.c.expires_at, a)
            .join(a, a.c.id == s.c.account_id)
            .where(s.c.token_hash == token_hash, s.c.revoked_at.is_(None), s.c.expires_at > now, a.c.disabled_at.is_(None))
        )
        row = (await self.session.execute(query)).mappings().first()
        return dict(row) if row else None

    async def revoke_session(self, session_id: int, now: datetime) -> None:
        await self.session.execute(
            update(t.web_sessions).where(t.web_sessions.c.id == session_id, t.web_sessions.c.revoked_at.is_(None)).values(revoked_at=now)
        )

    async def revoke_sessions_of(self, account_id: int, now: datetime) -> int:
        result = await self.session.execute(
            update(t.web_sessions)
            .where(t.web_sessions.c.account_id == account_id, t.web_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- API tokens --------------------------------------------------------------------------------

    async def add_api_token(self, **values: Any) -> int:
        result = await self.session.execute(insert(t.api_tokens).values(**values).returning(t.api_tokens.c.id))
        return int(result.scalar_one())

    async def live_api_token(self, token_hash: str) -> Row | None:
        query = select(t.api_tokens).where(t.api_tokens.c.token_hash == token_hash, t.api_tokens.c.revoked_at.is_(None))
        row = (await self.session.execute(query)).mappings().first()
        return dict(row) if row else None

    async def api_tokens(self) -> list[Row]:
        rows = (await self.session.execute(select(t.api_tokens).order_by(t.api_tokens.c.id))).mappings()
        return [dict(row) for row in rows]

    async def revoke_api_token(self, token_id: int, now: datetime) -> bool:
        """Revoke it; False when there is no such token or it was revoked already."""
        result = await self.session.execute(
            update(t.api_tokens).where(t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        return bool(getattr(result, "rowcount", 0))
