"""The WhatsApp records on both databases: a person's window only moves forward, and so does a message's status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bots.whatsapp_rules import STATUS_RANK
from storage.repository import Store
from storage.whatsapp import WhatsAppStore

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


async def test_a_late_retry_of_an_older_message_does_not_move_the_window_back(db):
    async with db() as session, session.begin():
        store = WhatsAppStore(Store(session))
        assert await store.last_inbound("customer", "447700900123") is None
        await store.saw_inbound("customer", "447700900123", NOW)
        await store.saw_inbound("customer", "447700900123", NOW - timedelta(hours=3))  # Meta retried an older one
        await store.saw_inbound("staff", "447700900123", NOW - timedelta(hours=5))  # the other number: its own window
    async with db() as session:
        store = WhatsAppStore(Store(session))
        assert await store.last_inbound("customer", "447700900123") == NOW
        assert await store.last_inbound("staff", "447700900123") == NOW - timedelta(hours=5)
    async with db() as session, session.begin():
        await WhatsAppStore(Store(session)).saw_inbound("customer", "447700900123", NOW + timedelta(minutes=1))
    async with db() as session:
        assert await WhatsAppStore(Store(session)).last_inbound("customer", "447700900123") == NOW + timedelta(minutes=1)


async def test_a_status_moves_only_forward_and_a_status_that_overtook_the_send_record_keeps_its_place(db):
    async def advance(wamid: str, status: str) -> bool:
        async with db() as session, session.begin():
            return await WhatsAppStore(Store(session)).advance_status(
                wamid, status, STATUS_RANK[status], bot="customer", chat_id="447700900123", error=None, now=NOW,
            )

    async with db() as session, session.begin():
        await WhatsAppStore(Store(session)).sent("wamid.1", bot="customer", chat_id="447700900123", purpose="status", template=None, now=NOW)
    assert [await advance("wamid.1", s) for s in ("delivered", "sent", "delivered", "read", "failed")] == [True, False, False, True, False]
    assert await advance("wamid.2", "delivered")  # before our record of sending it was written
    async with db() as session, session.begin():
        await WhatsAppStore(Store(session)).sent("wamid.2", bot="customer", chat_id="447700900123", purpose="status", template="t", now=NOW)
    async with db() as session:
        store = WhatsAppStore(Store(session))
        assert (await store.message("wamid.1"))["status"] == "read"  # type: ignore[index]
        assert (await store.message("wamid.2"))["status"] == "delivered"  # type: ignore[index]
    async with db() as session, session.begin():
        store = WhatsAppStore(Store(session))
        assert await store.forget_statuses(NOW) == 0 and await store.forget_statuses(NOW + timedelta(seconds=1)) == 2
