"""Neutral inbound events and outbound messages shared by every platform adapter and flow."""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any

from domain.commands import Command
from domain.masking import mask_phone

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

    def loggable(self, phone_platforms: Collection[str] | None) -> str:
        """The chat as a log line may show it: the id masked where the platform's chat ids are phone numbers
        (``phone_platforms``, from the channels' capability records; None: not known here, so every id is masked)."""
        masked = phone_platforms is None or self.platform in phone_platforms
        return f"{self.platform}:{self.bot}:{mask_phone(self.chat_id) if masked else self.chat_id}"


class InboundKind(str, enum.Enum):
    TEXT = "text"
    COMMAND = "command"
    BUTTON = "button"
    PHOTO = "photo"
    LOCATION = "location"
    CONTACT = "contact"
    UNSUPPORTED = "unsupported"  # stickers, video, files...
    VOICE = "voice"  # a voice note or audio: fetched and kept like a photo where a step takes one (issue 14)


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
    # a shared contact that is the sender's own (Telegram: contact.user_id is the sender's id), not one forwarded
    own_contact: bool = False
    callback_id: str | None = None
    message_id: str | None = None
    live: bool = False  # a live-location update (Telegram edits the location message as it moves)
    live_possible: bool = True  # False: the chat cannot share a live location at all (the web page), a pin is its best

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


def distance(metres: float) -> Text:
    """How far, readable: metres near the address, kilometres beyond (a pin dropped across the country read as
    "9197081 m")."""
    if metres < 1000:
        return t("unit.metres", n=int(round(metres)))
    return t("unit.km", n=f"{metres / 1000:.1f}" if metres < 100_000 else f"{metres / 1000:,.0f}")


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

# Button data that opens a web page instead of coming back as an action: "link:<url>" opens it in the browser, "app:<url>"
# inside the chat where the channel can (an in-chat web app), else as a link. Where a channel has no link buttons the
# renderer lists "label: url" in the text (bots/render.py). No action's prefix (services/actions.py) is "link" or "app".
LINK_PREFIX, APP_PREFIX = "link:", "app:"


def link_button(label: Text, url: str, *, app: bool = False) -> Button:
    return Button(label, f"{APP_PREFIX if app else LINK_PREFIX}{url}")


def link_of(data: str) -> tuple[str, bool] | None:
    """(url, opens as an in-chat app) of a link button's data; None for an action's."""
    for prefix, app in ((APP_PREFIX, True), (LINK_PREFIX, False)):
        if data.startswith(prefix):
            return data[len(prefix):], app
    return None


@dataclass(frozen=True)
class AlbumPhoto:
    """A stored photo a message carries: its row id (for links to it) and where its checked copy is on disk."""

    id: int
    path: str

# A card that changes over time, named by its kind and the id of what it shows, e.g. ("offer", visit_id).
Card = tuple[str, int]


def card_key(card: Card) -> str:
    """The stored name of a card (outbox ``card`` column): unique per chat, so each chat's copy is edited on its own."""
    kind, ident = card
    return f"{kind}:{ident}"


@dataclass(frozen=True)
class Outbound:
    text: Text
    buttons: Keyboard = ()
    request: str | None = None  # "location" | "contact": ask the client for it with a reply keyboard
    photo_path: str | None = None
    to: ChatRef | None = None  # None: the chat the update came from
    language: str | None = None  # None: the recipient conversation's language
    dedup: str | None = None  # a stable key: the same message written again (a re-run) is not a second row
    alert: bool = False  # a dispatcher alert: a busy group channel may merge it into a digest
    purpose: Purpose = Purpose.REPLY
    # stored photos shown with the text: one album where the channel has albums, one photo after another where it has
    # not, links where it shows no photos at all (group robots)
    album: tuple[AlbumPhoto, ...] = ()
    # a card that changes (an offer, an alert, an order summary): where the channel can edit, this message replaces
    # the chat's earlier message of the same card in place, so its stale buttons go; elsewhere it is a new message
    card: Card | None = None
    # for an answer to a button press: the pressed message's id (set by the engine). A card edits its earlier message
    # in place only when that is the message pressed; an answer to a press elsewhere must appear where the reader looks
    answers: str | None = None
    # text parameters that are secrets (a completion code): the stored row forgets them once the message is out
    secret: tuple[str, ...] = ()

    def payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in self.buttons],
            "request": self.request,
            "photo_path": self.photo_path,
            "alert": self.alert,
            "purpose": self.purpose.value,
            **({"card": card_key(self.card)} if self.card else {}),
            **({"album": [{"id": p.id, "path": p.path} for p in self.album]} if self.album else {}),
            **({"answers": self.answers} if self.card and self.answers else {}),
            **({"secret": list(self.secret)} if self.secret else {}),
        }


SCRUBBED = "•••"


def scrubbed(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its secret text parameters blanked: what the outbox keeps of a message once it is out."""
    secret = set(payload.get("secret") or ())
    text = payload.get("text")
    if not secret or not isinstance(text, dict):
        return payload
    params = {key: SCRUBBED if key in secret else value for key, value in (text.get("params") or {}).items()}
    return {**payload, "text": {**text, "params": params}}


def buttons(*rows: list[Button] | tuple[Button, ...]) -> Keyboard:
    return tuple(tuple(row) for row in rows if row)


def edits_card_in_place(payload: dict[str, Any], shown: str) -> bool:
    """Whether a card's later message changes the copy the chat shows (``shown``), on every channel that can change a
    message (the relay's sends, the console's page): news (an offer taken, an alert acknowledged) changes it where it
    is; an answer to a press only when the press was on that very copy, else it goes where the reader looks. A photo,
    an album or a request cannot be put into a shown text. What is not edited in place is sent anew, and the older
    copy loses its buttons, so only one copy can be pressed."""
    if payload.get("photo_path") or payload.get("album") or payload.get("request"):
        return False
    return payload.get("purpose", Purpose.REPLY.value) != Purpose.REPLY.value or payload.get("answers") == shown


def joined(first: Outbound, *more: Outbound) -> Outbound:
    """Several answers to one action as one message: every message to a chat waits its turn at the chat's send rate,
    so three short ones keep the reader waiting for the last. Texts follow one another, keyboards stack; the first
    message's addressing and card stay, a request for a location or contact comes from whichever part makes one."""
    parts = (first, *more)
    if any(part.to != first.to or part.language != first.language or part.photo_path for part in parts):
        raise ValueError("only text messages to the same chat, in the same language, can be joined")
    requests = {part.request for part in parts if part.request}
    if len(requests) > 1:
        raise ValueError("a joined message can make at most one request")
    text = parts[-1].text
    for part in reversed(parts[:-1]):
        text = t("card.join", first=part.text, second=text)
    card = next((part.card for part in parts if part.card), None)
    keyboard = tuple(row for part in parts for row in part.buttons)
    return replace(first, text=text, buttons=keyboard, request=next(iter(requests), None), card=card)


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
    album: tuple[AlbumPhoto, ...] = ()  # photos sent with the text (Outbound.album)
    # what it is for and who reads it: a channel with a session window picks a template by these outside it
    purpose: str = Purpose.REPLY.value
    language: str = "en"


def day_of(moment_day: date) -> Text:
    """A calendar day, rendered per language ("Fri 28 Nov", "11月28日 周五")."""
    return {"_day": moment_day.isoformat()}
