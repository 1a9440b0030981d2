"""What every sending channel promises the outbox relay, and the errors it may raise."""

from __future__ import annotations

from typing import Any, Protocol

from services.messages import Rendered


class RetryLater(Exception):
    """A transient failure (429, 5xx, timeout): try again after ``seconds`` (None: use back-off)."""

    def __init__(self, reason: str, seconds: float | None = None) -> None:
        super().__init__(reason)
        self.seconds = seconds


class Undeliverable(Exception):
    """A permanent failure (blocked, chat gone, bad request): retrying cannot help."""


class ChatGone(Undeliverable):
    """403: the user blocked the bot or the group removed it; the relay marks the chat undeliverable."""

    chat_gone = True


class ChatMigrated(Undeliverable):
    """The group became a supergroup: the same chat goes on under another id (T9)."""

    def __init__(self, migrate_to_chat_id: int | str) -> None:
        super().__init__(f"group migrated to {migrate_to_chat_id}")
        self.migrate_to_chat_id = str(migrate_to_chat_id)


class NotEditable(Undeliverable):
    """The message to edit is gone or can no longer be changed (deleted, too old, not the bot's): send it anew instead."""


class Paced(RetryLater):
    """A later part of a message waits for its own rate place longer than the relay waits in process: the row is held
    back (not a failed attempt) and goes on from that part."""


class Parts(Protocol):
    """What the relay hands a sender whose one message may become several platform messages (``sends_parts = True``):
    each part takes its own place in the send rates, and a retry goes on after the parts already accepted.

    ``plan`` names the shape of the parts (how many, of what kind): progress recorded for another shape is not used."""

    def done(self, plan: str) -> list[str]:
        """The platform ids of this plan's parts accepted by earlier attempts, in order."""
        ...

    async def slot(self) -> None:
        """Called before each part this attempt sends: the first uses the place the relay took for the row; each later
        one takes its own (waiting in process up to the relay's limit, else raising ``Paced``)."""
        ...

    async def accepted(self, plan: str, message_id: str) -> None:
        """The platform accepted the next part: committed to the row, so no retry sends it again."""
        ...


class Sender(Protocol):
    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None:
        """Deliver one message; return the platform's message id."""


class Editor(Protocol):
    async def edit(self, bot: str, chat_id: str, message_id: str, message: Rendered) -> str | None:
        """Change a sent message in place; only channels whose capabilities say they can edit are asked to."""

    async def clear_buttons(self, bot: str, chat_id: str, message_id: str) -> None:
        """Take the buttons off a sent message (a newer copy of its card carries them now); best effort."""


class Park(Exception):
    """A payload send cannot succeed until someone acts (its endpoint was removed): the relay parks the row at once."""


class PayloadSender(Protocol):
    """A channel that delivers a row's stored payload as it is (a status callback over HTTP), never a message rendered
    for a chat; it says ``posts_payloads = True``. Failures: ``RetryLater`` (any answer but 2xx, a timeout) retries
    with back-off until ``max_attempts``, then the relay parks the row; ``Park`` parks it at once."""

    posts_payloads: bool
    max_attempts: int

    async def post(self, row_id: int, chat_id: str, payload: dict[str, Any]) -> str | None:
        """Deliver one payload; return a short note of the answer (kept as the row's platform message id)."""
