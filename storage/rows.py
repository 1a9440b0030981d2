"""The rows the store hands out as dicts (tables no domain class is mapped onto), each shaped as its table is."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from sqlalchemy import RowMapping

Json = dict[str, Any]  # a JSON object column (payloads, event data, conversation data)


class LinkTokenRow(TypedDict):
    id: int
    token_hash: str
    purpose: str
    subject_id: int
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    nonce: str | None


class EventRow(TypedDict):
    """A domain event on a job's timeline."""

    id: int
    job_id: int
    visit_id: int | None
    type: str
    data: Json
    occurred_at: datetime


class ConversationRow(TypedDict):
    id: int
    platform: str
    bot: str
    chat_id: str
    flow: str
    state: str
    data: Json
    language: str
    version: int
    updated_at: datetime


class InboxRow(TypedDict):
    id: int
    platform: str
    bot: str
    update_id: str
    chat_id: str
    payload: Json
    status: str  # received | processed | failed
    attempts: int
    error: str | None
    received_at: datetime
    processed_at: datetime | None


class OutboxRow(TypedDict):
    id: int
    platform: str
    bot: str
    chat_id: str
    payload: Json
    dedup_key: str
    status: str  # pending | sent | failed
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    platform_message_id: str | None
    claimed_by: str | None
    claimed_until: datetime | None
    held_since: datetime | None
    digest_of: int | None
    sending_since: datetime | None
    maybe_sent: int
    card: str | None  # services.messages.card_key of the card it shows


class TimerRow(TypedDict):
    id: int
    key: str
    kind: str
    visit_id: int | None
    technician_id: int | None
    due_at: datetime
    payload: Json
    status: str  # pending | done | cancelled
    created_at: datetime
    fired_at: datetime | None


class AlertSinkRow(TypedDict):
    id: int
    name: str
    region: str | None
    kind: str  # wecom | dingtalk | feishu | slack
    url: str
    secret: str | None
    keyword: str | None
    priority: int


Shape = TypeVar("Shape")


def shaped(row: RowMapping, shape: type[Shape]) -> Shape:
    """A row as the dict its table's shape describes: the one place the store vouches that they match
    (the shapes above mirror storage/tables.py column for column)."""
    return shape(**row)


def all_shaped(rows: Iterable[RowMapping], shape: type[Shape]) -> list[Shape]:
    return [shaped(row, shape) for row in rows]
