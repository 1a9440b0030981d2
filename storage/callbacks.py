"""Queries for status callbacks: each source's endpoint, and the callbacks in the outbox (listed, parked, re-queued)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from domain import callbacks as cb
from storage import tables as t
from storage.repository import Store
from storage.rows import OutboxRow, all_shaped, shaped

STATES = ("pending", "sent", "parked")  # an outbox row of the callback platform is in one of these

_SECRETS: set[str] = set()


def known_secrets() -> set[str]:
    """Callback URLs (one may carry a token) and secrets seen by this process, for the log formatter to mask."""
    return set(_SECRETS)


def _remember(*values: str) -> None:
    _SECRETS.update(value for value in values if len(value) >= 4)


class CallbackStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    # --- endpoints ---------------------------------------------------------------------------------

    async def put_endpoint(self, *, source: str, url: str, secret: str, now: datetime) -> bool:
        """Set where ``source`` hears about its jobs; True when it had none before."""
        _remember(url, secret)  # before the statement: a database driver's debug log shows its parameters
        values = {"url": url, "secret": secret, "updated_at": now}
        inserted = await self.session.execute(
            self.store._insert(t.callback_endpoints).values(source=source, **values).on_conflict_do_nothing(index_elements=["source"])
        )
        if getattr(inserted, "rowcount", 0) == 1:
            return True
        await self.session.execute(update(t.callback_endpoints).where(t.callback_endpoints.c.source == source).values(**values))
        return False

    async def endpoint(self, source: str) -> dict[str, Any] | None:
        row = (await self.session.execute(select(t.callback_endpoints).where(t.callback_endpoints.c.source == source))).mappings().first()
        if row is None:
            return None
        _remember(row["url"], row["secret"])
        return dict(row)

    async def delete_endpoint(self, source: str) -> bool:
        result = await self.store._write(delete(t.callback_endpoints).where(t.callback_endpoints.c.source == source))
        return result.rowcount == 1

    # --- the callbacks (outbox rows) ------------------------------------------------------------------

    async def callback(self, callback_id: int) -> OutboxRow | None:
        statement = select(t.outbox).where(t.outbox.c.id == callback_id, t.outbox.c.platform == cb.PLATFORM)
        row = (await self.session.execute(statement)).mappings().first()
        return shaped(row, OutboxRow) if row is not None else None

    async def callbacks(self, *, state: str | None, after_id: int = 0, limit: int = 100, job_id: int | None = None) -> list[OutboxRow]:
        """Oldest first, from ``after_id`` on (paging)."""
        statement = select(t.outbox).where(t.outbox.c.platform == cb.PLATFORM, t.outbox.c.id > after_id)
        if state is not None:
            statement = statement.where(t.outbox.c.status == state)
        if job_id is not None:
            statement = statement.where(t.outbox.c.bot == cb.BOT, t.outbox.c.chat_id == cb.chat_of(job_id))
        rows = (await self.session.execute(statement.order_by(t.outbox.c.id).limit(limit))).mappings()
        return all_shaped(rows, OutboxRow)

    async def requeue(self, callback_id: int, now: datetime) -> list[int]:
        """A parked callback and the parked ones behind it for its job go out again, in their order, from now; the ids.

        Attempts start again from none (the failure that parked them is kept in ``last_error`` until the next one).
        """
        first = await self.callback(callback_id)
        if first is None or first["status"] != "parked":
            return []
        statement = (
            select(t.outbox.c.id)
            .where(
                t.outbox.c.platform == cb.PLATFORM, t.outbox.c.bot == first["bot"], t.outbox.c.chat_id == first["chat_id"],
                t.outbox.c.status == "parked", t.outbox.c.id >= callback_id,
            )
            .order_by(t.outbox.c.id)
        )
        ids = list((await self.session.execute(statement)).scalars())
        await self.session.execute(
            update(t.outbox)
            .where(t.outbox.c.id.in_(ids), t.outbox.c.status == "parked")
            .values(status="pending", attempts=0, next_attempt_at=now, claimed_by=None, claimed_until=None, sending_since=None)
        )
        return ids
