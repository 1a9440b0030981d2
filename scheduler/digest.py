"""Merges alerts that queued behind a busy group channel into one numbered digest message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.messages import Rendered

# Alerts in one digest: the inline keyboard stays usable and the text readable.
MAX_ALERTS = 10


@dataclass(frozen=True)
class Budget:
    """How much one message may carry on a channel, measured as the platform measures it."""

    limit: int
    size: Callable[[str], int]


def _utf8(text: str) -> int:
    return len(text.encode())


# Telegram counts characters (4096 per text); the smallest robot body is WeCom's 2048 UTF-8 bytes, and robots
# append the button labels as text, so both the text and the labels count against the robots' budget.
BUDGETS: dict[str, Budget] = {
    "telegram": Budget(4000, len),
    "robot": Budget(1800, _utf8),
}


def _numbered(number: int, message: Rendered) -> Rendered:
    prefix = f"#{number}"
    return Rendered(
        text=f"{prefix} {message.text}",
        buttons=[[(f"{prefix} {label}", data) for label, data in row] for row in message.buttons],
    )


def _size(budget: Budget, text: str, rows: list[list[tuple[str, str]]]) -> int:
    return budget.size(text) + sum(budget.size(label) + 3 for row in rows for label, _ in row)


def compose(header: Callable[[int], str], alerts: list[Rendered], budget: Budget, max_alerts: int = MAX_ALERTS) -> tuple[Rendered, int]:
    """One message for as many leading alerts as fit; returns it and how many it carries (at least one).

    Alerts keep their order and their buttons (labels numbered like their alert), so each stays actionable.
    A single alert, or one too big to share a message, goes out as it is.
    """
    if len(alerts) < 2:
        return alerts[0], 1
    texts: list[str] = []
    rows: list[list[tuple[str, str]]] = []
    for number, alert in enumerate(alerts[:max_alerts], start=1):
        item = _numbered(number, alert)
        candidate_texts, candidate_rows = texts + [item.text], rows + item.buttons
        candidate = "\n\n".join([header(number), *candidate_texts])
        if number > 1 and _size(budget, candidate, candidate_rows) > budget.limit:
            break
        texts, rows = candidate_texts, candidate_rows
    if len(texts) < 2:
        return alerts[0], 1
    return Rendered(text="\n\n".join([header(len(texts)), *texts]), buttons=rows), len(texts)
