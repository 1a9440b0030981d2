"""The wrong numbers a chat gave to prove it owns a scanned code: read back from the stored events (no table of its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from storage import tables as t
from storage.repository import Store

FAILED = "DeviceOwnerCheckFailed"  # domain.events.DeviceOwnerCheckFailed's stored type
NO_JOB = 0  # the event belongs to no job


async def failed_since(store: Store, chat_key: str, since: datetime) -> int:
    """How many wrong numbers the chat gave since then. The events of all chats in the window are few (each is a person
    typing a number after scanning a sticker), so the chat is matched here rather than in dialect-specific JSON SQL."""
    e = t.domain_events.c
    statement = select(e.data).where(e.job_id == NO_JOB, e.type == FAILED, e.occurred_at >= since)
    return sum(1 for data in (await store.session.execute(statement)).scalars() if (data or {}).get("chat_key") == chat_key)
