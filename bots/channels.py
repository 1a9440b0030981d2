"""The channel port: a capability record for every channel, what an adapter for one does, and the registry of them."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Protocol, cast

from bots.base import Sender
from domain.masking import mask_phone
from services.notifications import ROBOT_PLATFORM

TELEGRAM = "telegram"
WEB = "web"
ROBOT = ROBOT_PLATFORM  # the neutral code addresses alert routes by this name
WHATSAPP = "whatsapp"


class TextMeasure(str, enum.Enum):
    """How a channel counts the length of a text against its limits."""

    CHARACTERS = "characters"
    UTF8_BYTES = "utf8_bytes"
    UTF16_UNITS = "utf16_units"  # an emoji outside the basic plane counts twice

    def size(self, text: str) -> int:
        if self is TextMeasure.UTF8_BYTES:
            return len(text.encode())
        if self is TextMeasure.UTF16_UNITS:
            return len(text.encode("utf-16-le")) // 2
        return len(text)


@dataclass(frozen=True)
class PlatformLimits:
    """Send rates in the `limits` notation ("1/second", "20 per 1 minute"); None where the platform sets none."""

    private: str | None = None  # one chat with a person
    group: str | None = None  # one group chat
    bot: str | None = None  # everything one bot (or business number) sends


@dataclass(frozen=True)
class Capabilities:
    """What one channel can show and do. The renderer, the relay, the digest and the rate limiter decide by this
    record, so neutral code never needs to know which platform a chat is on."""

    max_buttons: int  # action buttons under one message; more are listed in the text (a list a step offers is paged to fit)
    max_buttons_per_row: int
    max_label_chars: int
    max_action_bytes: int | None  # what one button carries back; None: buttons carry nothing back (shown as text or a link)
    can_edit: bool  # a sent message can be changed in place
    can_request_location: bool
    can_request_contact: bool
    has_groups: bool
    text_limit: int  # measured by text_measure
    text_measure: TextMeasure
    caption_limit: int  # the text under a photo, measured the same way
    group_id_prefix: str | None = None  # how group chat ids start where the id tells ("": every chat is a group)
    session_window: timedelta | None = None  # free-form messages only this long after the person last wrote
    needs_template_outside_window: bool = False  # outside it, only pre-approved templates go out
    pulled: bool = False  # the client fetches its own messages: the relay never sends them
    digest_budget: int | None = None  # how much a digest of queued alerts may carry; None: alerts are never merged
    send_rates: PlatformLimits | None = None  # None: the adapter keeps its own rates, or nothing is sent
    # several photos go out as one album (Telegram's media group) of at most this many; 0: one photo per message, and
    # a channel that cannot show photos (group robots) gets links to them
    max_album: int = 0
    shows_photos: bool = True
    # "reply" requests make the client answer the message (Telegram's ForceReply): in a group with privacy mode the bot
    # sees only commands, button presses and replies to its own messages, so an answer typed there must be a reply
    can_force_reply: bool = False
    # a chat id is the person's phone number (WhatsApp): logs show it masked
    chat_ids_are_phones: bool = False
    # a contact shared with the contact button is known to be the sender's own (Telegram's contact.user_id): proof of a number
    vouches_own_contact: bool = False
    # a button can open a web page (services/messages.py link_button); without, the renderer lists "label: url" in the text
    link_buttons: bool = False
    # ... and open it as an app inside the chat (Telegram's Mini Apps: https pages, private chats); else as a link
    app_buttons: bool = False

    def __post_init__(self) -> None:
        if self.max_buttons < 0 or self.max_buttons_per_row < 1 or self.max_label_chars < 1:
            raise ValueError("a channel shows zero or more buttons, at least one per row, with at least one character")
        if self.max_action_bytes is not None and self.max_action_bytes < 1:
            raise ValueError("an action payload limit must allow at least one byte")
        if self.group_id_prefix is not None and not self.has_groups:
            raise ValueError("only a channel with groups can tell them by their ids")
        if self.needs_template_outside_window and self.session_window is None:
            raise ValueError("templates are needed only outside a session window")
        if self.digest_budget is not None and not 0 < self.digest_budget <= self.text_limit:
            raise ValueError("a digest must fit in one message")
        if not 0 < self.caption_limit <= self.text_limit:
            raise ValueError("a caption limit is positive and at most the text limit")
        if self.max_album == 1 or self.max_album < 0:
            raise ValueError("an album holds at least two photos (0: the channel has no albums)")

    @property
    def supports_albums(self) -> bool:
        """Several photos can go out as one message (an album, a media group)."""
        return self.max_album >= 2

    def size(self, text: str) -> int:
        return self.text_measure.size(text)

    def is_group(self, chat_id: str) -> bool:
        """Whether a chat is a group, where the channel's chat ids tell (for group rates and alert digests)."""
        return self.group_id_prefix is not None and chat_id.startswith(self.group_id_prefix)


# T11, T13: 64-byte callback_data, 4096 UTF-16 units of text, 1024 of caption; T8: ~1/s per chat (in bursts),
# 20/min per group, ~30/s per bot. Telegram gives groups and supergroups negative chat ids. The Bot API allows
# up to 100 inline buttons; 8 per row and 64-character labels keep a keyboard readable on a phone.
TELEGRAM_CAPABILITIES = Capabilities(
    max_buttons=100, max_buttons_per_row=8, max_label_chars=64, max_action_bytes=64,
    can_edit=True, can_request_location=True, can_request_contact=True, has_groups=True, group_id_prefix="-",
    text_limit=4096, text_measure=TextMeasure.UTF16_UNITS, caption_limit=1024,
    digest_budget=4000, send_rates=PlatformLimits(private="3 per 3 seconds", group="20/minute", bot="30/second"),
    max_album=10, can_force_reply=True,  # T: sendMediaGroup takes 2–10 photos
    link_buttons=True, app_buttons=True,  # inline url and web_app buttons
    vouches_own_contact=True,  # Message.contact.user_id is the sharer's own id when they share their own number
)

# The demo console fetches its messages and places a card's later copy where the earlier one was, by the relay's
# rule (webhooks/webchat.py place_cards); its form takes button data of at most 64 characters back, and its chat
# ids do not tell a group pane from a private one.
WEB_CAPABILITIES = Capabilities(
    max_buttons=100, max_buttons_per_row=8, max_label_chars=200, max_action_bytes=64,
    can_edit=True, can_request_location=True, can_request_contact=True, has_groups=True,
    text_limit=16_000, text_measure=TextMeasure.CHARACTERS, caption_limit=16_000, pulled=True,
    link_buttons=True,  # the page shows them as links that open in a new tab
    can_force_reply=True,  # the page marks the prompt "type your answer below" (a reply there is just the next message)
)

# G1–G4: robots cannot call back, so buttons become text or one link, as each robot kind shows them. Every route
# is a group. The largest robot text is 20 000 UTF-8 bytes (DingTalk, Feishu); each kind is cut to its own size
# when sent. A digest stays within 1800 bytes because WeCom's 2048-byte text also carries the button labels.
# Each robot kind keeps its own published rate (bots/robots.py).
ROBOT_CAPABILITIES = Capabilities(
    max_buttons=100, max_buttons_per_row=100, max_label_chars=64, max_action_bytes=None,
    can_edit=False, can_request_location=False, can_request_contact=False, has_groups=True, group_id_prefix="",
    text_limit=20_000, text_measure=TextMeasure.UTF8_BYTES, caption_limit=20_000, digest_budget=1800, shows_photos=False,
)

# W5, W6 and the Cloud API's interactive messages: up to three reply buttons (20-character titles), or a list message
# of up to ten rows (24-character titles), each carrying an id of up to 256 bytes back; the sender (bots/whatsapp.py)
# shows three or fewer as buttons and four to ten as a list, and more are listed in the text by the renderer. A
# 24-hour customer-service window outside which only templates go out, about one message per 6 s to one person,
# 80/s per number.
WHATSAPP_CAPABILITIES = Capabilities(
    max_buttons=10, max_buttons_per_row=10, max_label_chars=20, max_action_bytes=256,
    can_edit=False, can_request_location=True, can_request_contact=False, has_groups=False,
    text_limit=4096, text_measure=TextMeasure.CHARACTERS, caption_limit=1024,
    session_window=timedelta(hours=24), needs_template_outside_window=True, chat_ids_are_phones=True,
    send_rates=PlatformLimits(private="1 per 6 seconds", bot="80/second"),
)

CAPABILITIES: Mapping[str, Capabilities] = MappingProxyType({
    TELEGRAM: TELEGRAM_CAPABILITIES,
    WEB: WEB_CAPABILITIES,
    ROBOT: ROBOT_CAPABILITIES,
    WHATSAPP: WHATSAPP_CAPABILITIES,
})


def loggable_chat(platform: str, chat_id: str) -> str:
    """A chat id as a log line may show it: masked where it is a person's phone number."""
    capabilities = CAPABILITIES.get(platform)
    return mask_phone(chat_id) if capabilities is not None and capabilities.chat_ids_are_phones else chat_id


def phone_platforms() -> frozenset[str]:
    """The platforms whose chat ids are phone numbers: neutral code (the engine) masks them in logs by this set
    (``ChatRef.loggable``), since it may not ask the capability records itself."""
    return frozenset(name for name, capabilities in CAPABILITIES.items() if capabilities.chat_ids_are_phones)


def contact_platforms() -> frozenset[str]:
    """The platforms whose clients share the sender's own contact with one button, known to be their own (a device owner
    proves their number with it)."""
    return frozenset(name for name, c in CAPABILITIES.items() if c.can_request_contact and c.vouches_own_contact)


def pulled_platforms() -> tuple[str, ...]:
    """The platforms whose clients fetch their own messages: the relay leaves their outbox rows alone."""
    return tuple(name for name, capabilities in CAPABILITIES.items() if capabilities.pulled)


def send_rates() -> dict[str, PlatformLimits]:
    """The send rates every channel publishes, by platform, for the shared rate limiter."""
    return {name: capabilities.send_rates for name, capabilities in CAPABILITIES.items() if capabilities.send_rates}


class Channel(Protocol):
    """One channel's adapter. It parses its own inbound shape into neutral events (``to_inbound`` next to it: a Bot
    API update and a console form have nothing in common), sends unless it is pulled (``bots.base.Sender``), edits
    when its capabilities say it can, and may fetch media (``conversations.engine.MediaFetcher``)."""

    @property
    def capabilities(self) -> Capabilities: ...

    def deep_link(self, role: str, token: str) -> str | None:
        """A link that opens this channel with a sign-in token, or None when it has none (not configured, no links).

        ``role`` is who opens it: ``customer``, a technician's role (``driver``, ``installer``), ``dispatcher``
        or ``group``. A link without a scheme and host is relative to this service's own address.
        """
        ...


class Channels(Mapping[str, Channel]):
    """The channels this deployment runs, by platform name, in the order their links are preferred."""

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        for name, channel in channels.items():
            if CAPABILITIES.get(name) != channel.capabilities:
                raise ValueError(f"the {name!r} channel does not carry the {name!r} capability record")
        self._channels = dict(channels)

    def __getitem__(self, platform: str) -> Channel:
        return self._channels[platform]

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def senders(self) -> dict[str, Sender]:
        """What the outbox relay sends through: every channel that is not pulled."""
        return {name: cast(Sender, channel) for name, channel in self._channels.items() if not channel.capabilities.pulled}

    def deep_link(self, platform: str, role: str, token: str) -> str | None:
        channel = self._channels.get(platform)
        return channel.deep_link(role, token) if channel is not None else None

    def link(self, role: str, token: str) -> str | None:
        """The link of the first channel that has one for this role."""
        for channel in self._channels.values():
            if (link := channel.deep_link(role, token)) is not None:
                return link
        return None
