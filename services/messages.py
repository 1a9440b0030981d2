"""Neutral inbound events and outbound messages shared by every platform adapter and flow."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from domain.commands import Command

# A translatable text, and the other values a message carries, as the JSON they are stored in (outbox payloads):
# {"key": catalog key, "params": {name: value}}, where a value may be such a text again, a moment or a span.
Text = dict[str, Any]


@dataclass(frozen=True)
class ChatRef:
    """One conversation: a chat of one bot on one platform (``bot`` is ``customer`` or ``staff``)."""

    platform: str
    bot: str
    chat_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.bot}:{self.chat_id}"


class InboundKind(str, enum.Enum):
    TEXT = "text"
    COMMAND = "command"
    BUTTON = "button"
    PHOTO = "photo"
    LOCATION = "location"
    CONTACT = "contact"
    UNSUPPORTED = "unsupported"  # stickers, voice, files...


@dataclass(frozen=True)
class Inbound:
    chat: ChatRef
    update_id: str
    kind: InboundKind
    user_id: str
    chat_type: str = "private"  # private | group
    text: str = ""  # message text, command name (without slash) or button data
    payload: str = ""  # text after a command, e.g. the deep-link token of /start
    language_code: str | None = None
    user_name: str = ""
    file_id: str | None = None  # photo: the platform's file id
    file_path: str | None = None  # photo: where it was stored on disk, once fetched
    file_size: int | None = None  # photo: bytes the platform says the chosen size has (None: not said)
    file_error: str | None = None  # photo: why it was not stored (too_big, not_image, too_many_pixels, unavailable)
    file_limit_mb: float | None = None  # photo: the size limit a too_big refusal quotes
    latitude: float | None = None
    longitude: float | None = None
    phone: str | None = None
    callback_id: str | None = None
    message_id: str | None = None
    live: bool = False  # a live-location update (Telegram edits the location message as it moves)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Inbound":
        values = dict(data)
        values["chat"] = ChatRef(**values["chat"])
        values["kind"] = InboundKind(values["kind"])
        return cls(**values)


# --- outbound ---------------------------------------------------------------------------------


def t(key: str, **params: object) -> Text:
    """A translatable text: a catalog key and its parameters (rendered per recipient language)."""
    return {"key": key, "params": params}


def raw(text: str) -> Text:
    """Text that is shown as is (a shop's own checklist wording, a choice, a name)."""
    return {"key": "=", "params": {"text": text}}


def when(moment: datetime) -> Text:
    return {"_dt": moment.isoformat()}


def span(start: datetime, end: datetime) -> Text:
    return {"_span": [start.isoformat(), end.isoformat()]}


class Purpose(str, enum.Enum):
    """What a message is for: a channel with a session window sends one outside it only as an approved
    template, and picks the template by this (the relay ignores it until such a channel exists)."""

    REPLY = "reply"  # an answer to what the recipient just did in this chat
    ASSIGNMENT = "assignment"  # work offered to, given to, or taken from a technician
    SCHEDULE = "schedule"  # a technician's stops for the day
    REMINDER = "reminder"  # an appointment coming up, or a deadline a technician is about to miss
    STATUS = "status"  # how a visit is going: who comes, on the way, arrived, confirmed, cancelled
    SURVEY = "survey"  # asks the customer for their verdict on finished work
    ALERT = "alert"  # a problem for the dispatchers, in their groups and robots


@dataclass(frozen=True)
class Button:
    label: Text
    data: str

    def __post_init__(self) -> None:
        # how long an action may be is the channel's to say (bots/render.py refuses what one cannot carry back)
        if not self.data:
            raise ValueError("a button needs an action")


Keyboard = tuple[tuple[Button, ...], ...]  # rows of buttons


@dataclass(frozen=True)
class Outbound:
    text: Text
    buttons: Keyboard = ()
    request: str | None = None  # "location" | "contact": ask the client for it with a reply keyboard
    photo_path: str | None = None
    to: ChatRef | None = None  # None: the chat the update came from
    language: str | None = None  # None: the recipient conversation's language
    dedup: str | None = None  # a stable key, so a later message can edit this one
    edit_of: str | None = None  # the dedup key of an earlier message this one replaces in place
    alert: bool = False  # a dispatcher alert: a busy group channel may merge it into a digest
    purpose: Purpose = Purpose.REPLY

    def payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in self.buttons],
            "request": self.request,
            "photo_path": self.photo_path,
            "edit_of": self.edit_of,
            "alert": self.alert,
            "purpose": self.purpose.value,
        }


def buttons(*rows: list[Button] | tuple[Button, ...]) -> Keyboard:
    return tuple(tuple(row) for row in rows if row)


@dataclass(frozen=True)
class StepResult:
    """What a pure conversation step decided: replies, domain commands, and the next state."""

    replies: tuple[Outbound, ...] = ()
    commands: tuple[Command, ...] = ()
    state: str | None = None  # None keeps the current state
    data: dict[str, Any] | None = None  # None keeps the current data
    language: str | None = None


def reply(
    *messages: Outbound, commands: Sequence[Command] = (), state: str | None = None, data: dict[str, Any] | None = None,
    language: str | None = None,
) -> StepResult:
    return StepResult(tuple(messages), tuple(commands), state, data, language)


@dataclass(frozen=True)
class Rendered:
    """A message rendered for one recipient: plain text and button labels in their language."""

    text: str
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)
    request: str | None = None
    photo_path: str | None = None
    edit_of: str | None = None  # the dedup key of an earlier message to change in place, where the channel can
