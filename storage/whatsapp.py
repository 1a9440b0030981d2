"""Queries for the WhatsApp channel's own records: each person's last message time, each sent message's status, and what
a template could not carry, owed until the person writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from storage import tables as t
from storage.repository import Store

PLATFORM = "whatsapp"  # the outbox rows this module keeps are that channel's


class WhatsAppStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    async def saw_inbound(self, bot: str, chat_id: str, at: datetime) -> None:
        """The person wrote at ``at``: their window runs from the latest such moment (a late retry does not move it back)."""
        insert = self.store._insert(t.whatsapp_chats).values(bot=bot, chat_id=chat_id, last_inbound_at=at)
        await self.session.execute(
            insert.on_conflict_do_update(
                index_elements=["bot", "chat_id"],
                set_={"last_inbound_at": insert.excluded.last_inbound_at},
                where=t.whatsapp_chats.c.last_inbound_at < insert.excluded.last_inbound_at,
            )
        )

    async def last_inbound(self, bot: str, chat_id: str, *, lock: bool = False) -> datetime | None:
        """``lock``: hold the chat's row until the transaction ends, so a message of theirs being stored meanwhile
        (``saw_inbound`` updates this row) is either seen here or sees what this transaction writes (PostgreSQL)."""
        statement = select(t.whatsapp_chats.c.last_inbound_at).where(t.whatsapp_chats.c.bot == bot, t.whatsapp_chats.c.chat_id == chat_id)
        return await self.session.scalar(statement.with_for_update() if lock else statement)

    async def sent(self, wamid: str, *, bot: str, chat_id: str, purpose: str, template: str | None, now: datetime) -> None:
        """A message Meta accepted; a status that overtook this record keeps its place."""
        await self.session.execute(
            self.store._insert(t.whatsapp_messages)
            .values(wamid=wamid, bot=bot, chat_id=chat_id, purpose=purpose, template=template, status="accepted", status_rank=0,
                    updated_at=now)
            .on_conflict_do_nothing(index_elements=["wamid"])
        )

    async def advance_status(
        self, wamid: str, status: str, rank: int, *, bot: str, chat_id: str, error: str | None, now: datetime,
    ) -> bool:
        """Move the message to ``status`` only if that is further than where it is; True when it moved. A status for a
        message we have no record of (sent before the record was kept, or by another app) is kept too."""
        insert = self.store._insert(t.whatsapp_messages).values(
            wamid=wamid, bot=bot, chat_id=chat_id, purpose="unknown", template=None, status=status, status_rank=rank, error=error,
            updated_at=now,
        )
        result = await self.store._write(
            insert.on_conflict_do_update(
                index_elements=["wamid"],
                set_={"status": insert.excluded.status, "status_rank": insert.excluded.status_rank, "error": insert.excluded.error,
                      "updated_at": insert.excluded.updated_at},
                where=t.whatsapp_messages.c.status_rank < insert.excluded.status_rank,
            )
        )
        return result.rowcount > 0

    async def forget_statuses(self, before: datetime) -> int:
        """Drop the records of messages whose status last changed before ``before``; returns how many went."""
        result = await self.store._write(delete(t.whatsapp_messages).where(t.whatsapp_messages.c.updated_at < before))
        return result.rowcount

    async def message(self, wamid: str) -> dict[str, Any] | None:
        row = (await self.session.execute(select(t.whatsapp_messages).where(t.whatsapp_messages.c.wamid == wamid))).mappings().first()
        return dict(row) if row else None

    # What a template could not carry (more actions than its quick replies, photos, a location request) is kept as an
    # outbox row of its own that the relay never claims ("owed"); when the person writes, it is queued anew behind the
    # chat's other rows (a new row, so the chat's order and its one send at a time hold) and the owed row is closed.
    OWED, RELEASED, ANSWERED = "owed", "released", "answered"

    @staticmethod
    def owed_key(wamid: str) -> str:
        return f"whatsapp-owed:{wamid}"

    async def owe(self, wamid: str, *, bot: str, chat_id: str, payload: dict[str, Any], now: datetime) -> None:
        """The template ``wamid`` went out without part of its message: keep the whole message until the window opens."""
        await self.session.execute(
            self.store._insert(t.outbox)
            .values(platform=PLATFORM, bot=bot, chat_id=chat_id, payload=payload, dedup_key=self.owed_key(wamid), status=self.OWED,
                    attempts=0, next_attempt_at=now, created_at=now)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
        )

    async def release_owed(self, bot: str, chat_id: str, now: datetime, *, answered: str | None = None) -> int:
        """The person wrote (their window is open): queue what their templates owed them, oldest first; returns how many.
        ``answered``: the template whose quick reply they pressed; the press settles it, so its rest is not sent."""
        owed = t.outbox.c
        if answered is not None:
            await self.session.execute(
                update(t.outbox).where(owed.dedup_key == self.owed_key(answered), owed.status == self.OWED).values(status=self.ANSWERED)
            )
        rows = (await self.session.execute(
            select(owed.id, owed.payload, owed.dedup_key)
            .where(owed.platform == PLATFORM, owed.bot == bot, owed.chat_id == chat_id, owed.status == self.OWED)
            .order_by(owed.id)
        )).all()
        for row in rows:
            await self.store.outbox_add(platform=PLATFORM, bot=bot, chat_id=chat_id, payload=row.payload, dedup_key=f"{row.dedup_key}:sent", now=now)
        if rows:
            await self.session.execute(update(t.outbox).where(owed.id.in_([row.id for row in rows])).values(status=self.RELEASED))
        return len(rows)

    async def owed(self, bot: str, chat_id: str) -> list[dict[str, Any]]:
        """The owed rows of a chat, whatever became of them (for the tests and the back office)."""
        statement = select(t.outbox).where(
            t.outbox.c.platform == PLATFORM, t.outbox.c.bot == bot, t.outbox.c.chat_id == chat_id,
            t.outbox.c.dedup_key.like("whatsapp-owed:%"),
        ).order_by(t.outbox.c.id)
        return [dict(row) for row in (await self.session.execute(statement)).mappings()]
