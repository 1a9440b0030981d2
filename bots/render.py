"""Fits a rendered message to what one channel can show, degrading what the channel lacks instead of failing."""

from __future__ import annotations

from dataclasses import replace

from bots.channels import Capabilities, TextMeasure
from services.messages import LINK_PREFIX, Rendered, link_of

ELLIPSIS = "…"


class Unrenderable(ValueError):
    """The message cannot go out on this channel without breaking what it does (an action too long to carry back)."""


def cut(text: str, limit: int, measure: TextMeasure = TextMeasure.CHARACTERS) -> str:
    """At most ``limit`` as ``measure`` counts, cut between characters, with an ellipsis when cut."""
    if measure.size(text) <= limit:
        return text
    room = limit - measure.size(ELLIPSIS)
    kept: list[str] = []
    for character in text:
        room -= measure.size(character)
        if room < 0:
            break
        kept.append(character)
    return "".join(kept) + ELLIPSIS


def fit(message: Rendered, capabilities: Capabilities) -> Rendered:
    """The message as the channel can show it.

    Buttons beyond the channel's number are listed in the text, numbered after the ones kept, so every option is
    still seen; rows wider than the channel allows wrap; labels are cut to its length. An action longer than the
    channel carries back is refused: a cut action would make its button do something else. A request for a
    location or contact the channel cannot make is dropped (the text still asks for it). The text, or a photo's
    caption, is cut to the channel's limit. (Whether a card is edited in place is the relay's choice, by ``can_edit``.)
    """
    capacity = capabilities.max_buttons
    rows: list[list[tuple[str, str]]] = []
    listed: list[str] = []
    links: list[str] = []
    for row in message.buttons:
        # a link this channel cannot open from a button is a line of text ("label: url"), so it is still there to open
        links += [f"{label}: {link_of(data)[0]}" for label, data in row if _shown_as_text(data, capabilities)]  # type: ignore[index]
        row = [(label, _as_link(data, capabilities)) for label, data in row if not _shown_as_text(data, capabilities)]
        kept, extra = row[:capacity], row[capacity:]
        capacity -= len(kept)
        listed += [label for label, _ in extra]
        for label, data in kept:
            _check_action(label, data, capabilities)
        width = capabilities.max_buttons_per_row
        for start in range(0, len(kept), width):
            rows.append([(cut(label, capabilities.max_label_chars), data) for label, data in kept[start : start + width]])
    text = message.text
    if links:
        text += "\n\n" + "\n".join(links)
    if listed:
        first = capabilities.max_buttons + 1
        text += "\n\n" + "\n".join(f"{number}. {label}" for number, label in enumerate(listed, start=first))
    limit = capabilities.caption_limit if message.photo_path or message.album else capabilities.text_limit
    return replace(
        message,
        text=cut(text, limit, capabilities.text_measure),
        buttons=rows,
        request=message.request if _can_request(message.request, capabilities) else None,
        photo_path=message.photo_path,
        album=message.album,
    )


def _shown_as_text(data: str, capabilities: Capabilities) -> bool:
    """A link button the channel cannot show as one: it has no link buttons, or the link is site-relative (no public
    address is set) and only a page of this site (the web console, which fetches its own messages) can open it."""
    link = link_of(data)
    if link is None:
        return False
    return not capabilities.link_buttons or not (link[0].startswith(("https://", "http://")) or capabilities.pulled)


def _as_link(data: str, capabilities: Capabilities) -> str:
    """An app link where the channel opens no in-chat apps is a plain link (the sender then needs no rule of its own)."""
    link = link_of(data)
    if link is None or not link[1] or capabilities.app_buttons:
        return data
    return f"{LINK_PREFIX}{link[0]}"


def _check_action(label: str, data: str, capabilities: Capabilities) -> None:
    if link_of(data) is not None:
        return  # a link carries nothing back: the channel's action size does not apply
    limit = capabilities.max_action_bytes
    if limit is not None and len(data.encode()) > limit:
        raise Unrenderable(
            f"the action of button {label!r} is {len(data.encode())} bytes, more than the {limit} this channel carries back: {data!r}"
        )


def _can_request(request: str | None, capabilities: Capabilities) -> bool:
    if request == "location":
        return capabilities.can_request_location
    if request == "contact":
        return capabilities.can_request_contact
    if request == "reply":
        return capabilities.can_force_reply
    return False
