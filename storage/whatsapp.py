"""Queries for the WhatsApp channel's own records: each person's last message time and each sent message's status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from storage import tables as t
from storage.repository import Store


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

    async def last_inbound(self, bot: str, chat_id: str) -> datetime | None:
        return await self.session.scalar(
            select(t.whatsapp_chats.c.last_inbound_at).where(t.whatsapp_chats.c.bot == bot, t.whatsapp_chats.c.chat_id == chat_id)
        )

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
