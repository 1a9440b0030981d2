"""Merges alerts that queued behind a busy group channel into one numbered digest message."""

from __future__ import annotations

from collections.abc import Callable

from bots.channels import Capabilities
from services.messages import Rendered

# Alerts in one digest: the inline keyboard stays usable and the text readable.
MAX_ALERTS = 10


def _numbered(number: int, message: Rendered) -> Rendered:
    prefix = f"#{number}"
    return Rendered(
        text=f"{prefix} {message.text}",
        buttons=[[(f"{prefix} {label}", data) for label, data in row] for row in message.buttons],
    )


def _size(channel: Capabilities, text: str, rows: list[list[tuple[str, str]]]) -> int:
    # labels count too: a channel without callbacks (a robot) appends them to the text
    return channel.size(text) + sum(channel.size(label) + 3 for row in rows for label, _ in row)


def compose(header: Callable[[int], str], alerts: list[Rendered], channel: Capabilities, max_alerts: int = MAX_ALERTS) -> tuple[Rendered, int]:
    """One message for as many leading alerts as fit the channel's digest budget; returns it and how many it
    carries (at least one).

    Alerts keep their order and their buttons (labels numbered like their alert), so each stays actionable.
    A single alert, one too big to share a message, or any alert on a channel without a budget goes out as it is.
    """
    budget = channel.digest_budget
    if len(alerts) < 2 or budget is None:
        return alerts[0], 1
    texts: list[str] = []
    rows: list[list[tuple[str, str]]] = []
    for number, alert in enumerate(alerts[:max_alerts], start=1):
        item = _numbered(number, alert)
        candidate_texts, candidate_rows = texts + [item.text], rows + item.buttons
        candidate = "\n\n".join([header(number), *candidate_texts])
        if number > 1 and _size(channel, candidate, candidate_rows) > budget:
            break
        texts, rows = candidate_texts, candidate_rows
    if len(texts) < 2:
        return alerts[0], 1
    return Rendered(text="\n\n".join([header(len(texts)), *texts]), buttons=rows), len(texts)
