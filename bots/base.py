"""What every platform sender promises the outbox relay, and the errors it may raise."""

from __future__ import annotations

from typing import Protocol

from conversations.messages import Rendered


class RetryLater(Exception):
    """A transient failure (429, 5xx, timeout): try again after ``seconds`` (None: use back-off)."""

    def __init__(self, reason: str, seconds: float | None = None) -> None:
        super().__init__(reason)
        self.seconds = seconds


class Undeliverable(Exception):
    """A permanent failure (blocked, chat gone, bad request): retrying cannot help."""


class Sender(Protocol):
    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None:
        """Deliver one message; return the platform's message id."""
