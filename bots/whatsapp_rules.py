"""WhatsApp's pure rules: the 24-hour customer-service window, template choice by purpose, and message status order."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from services.messages import Purpose

# W5: free-form messages only within 24 hours of the person's last message to us
SESSION_WINDOW = timedelta(hours=24)
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")  # how Meta names templates
TEMPLATE_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")  # en, en_US, zh_CN
TEMPLATE_MAX_BUTTONS = 3  # quick-reply buttons a template with buttons this service fills can carry (W: ≤3 quick replies)
# a template's text parameter: Meta refuses newlines, tabs and more than four spaces in a row inside one
PARAMETER_LIMIT = 1000


@dataclass(frozen=True)
class TemplateRef:
    """One approved template: its name, the language code per reader language (the first is the fallback), and how
    many quick-reply buttons it was approved with (their payloads are set when sent, so they carry our actions)."""

    name: str
    languages: Mapping[str, str]
    buttons: int = 0

    def language_for(self, language: str) -> str:
        return self.languages.get(language) or next(iter(self.languages.values()))


@dataclass(frozen=True)
class Templates:
    """The shop's approved templates by message purpose (FIELDCHAT_WHATSAPP_TEMPLATES)."""

    by_purpose: Mapping[str, TemplateRef] = field(default_factory=lambda: MappingProxyType({}))

    def for_purpose(self, purpose: str) -> TemplateRef | None:
        return self.by_purpose.get(purpose)


def parse_templates(text: str) -> Templates:
    """``{"status": {"name": "visit_update", "languages": {"en": "en_US", "zh": "zh_CN"}, "buttons": 2}, ...}``;
    a ValueError says what is wrong."""
    if not text.strip():
        return Templates()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError("a JSON object of purpose -> template")
    purposes = {p.value for p in Purpose}
    found: dict[str, TemplateRef] = {}
    for purpose, entry in raw.items():
        if purpose not in purposes:
            raise ValueError(f"unknown purpose {purpose!r}; purposes are {', '.join(sorted(purposes))}")
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not TEMPLATE_NAME.match(entry["name"]):
            raise ValueError(f"{purpose}: a template needs a name of lower-case letters, digits and _")
        languages = entry.get("languages")
        if (
            not isinstance(languages, dict) or not languages
            or not all(isinstance(v, str) and TEMPLATE_LANGUAGE.match(v) for v in languages.values())
        ):
            raise ValueError(f"{purpose}: languages maps reader languages to template language codes, e.g. {{\"en\": \"en_US\"}}")
        count = entry.get("buttons", 0)
        if type(count) is not int or not 0 <= count <= TEMPLATE_MAX_BUTTONS:
            raise ValueError(f"{purpose}: buttons is how many quick replies the template has, 0 to {TEMPLATE_MAX_BUTTONS}")
        found[purpose] = TemplateRef(entry["name"], MappingProxyType(dict(languages)), count)
    return Templates(MappingProxyType(found))


@dataclass(frozen=True)
class FreeForm:
    """Inside the window: the message goes out as it is."""


@dataclass(frozen=True)
class UseTemplate:
    template: TemplateRef
    language: str  # the template's language code


@dataclass(frozen=True)
class CannotSend:
    """Outside the window with no template for the purpose: the dispatchers must be told (never dropped)."""

    reason: str


Delivery = FreeForm | UseTemplate | CannotSend


def window_open(last_inbound: datetime | None, now: datetime, window: timedelta = SESSION_WINDOW) -> bool:
    """Whether free-form messages may go out now: less than ``window`` since the person last wrote (at exactly 24:00:00
    the window is closed)."""
    return last_inbound is not None and now < last_inbound + window


def choose_delivery(
    last_inbound: datetime | None, now: datetime, purpose: str, language: str, templates: Templates, window: timedelta = SESSION_WINDOW,
) -> Delivery:
    if window_open(last_inbound, now, window):
        return FreeForm()
    template = templates.for_purpose(purpose)
    if template is None:
        never = last_inbound is None
        return CannotSend(f"{'never wrote to us' if never else 'outside the 24-hour window'}; no template for {purpose!r}")
    return UseTemplate(template, template.language_for(language))


def template_parameter(text: str) -> str:
    """A message's text as one template parameter: no line breaks or tabs, no long runs of spaces, within the limit."""
    flat = re.sub(r"\s*\n\s*", " · ", text.strip())
    flat = re.sub(r"\s+", " ", flat)
    return flat if len(flat) <= PARAMETER_LIMIT else flat[: PARAMETER_LIMIT - 1] + "…"


# Status order (W4: callbacks come out of order and twice). A failure may follow "sent"; once the message was delivered
# or read, a late "failed" cannot undo that, and a "delivered" or "read" after a failure shows it arrived after all.
STATUS_RANK: Mapping[str, int] = MappingProxyType({"accepted": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4})


def status_rank(status: str) -> int | None:
    """The rank of a status Meta reports; None for one we do not track (e.g. "deleted", "warning")."""
    return STATUS_RANK.get(status)


def advances(current: str | None, new: str) -> bool:
    """Whether ``new`` moves the message forward from ``current`` (a repeat or an older status does not)."""
    rank = status_rank(new)
    if rank is None:
        return False
    return current is None or rank > STATUS_RANK.get(current, -1)
