"""Masks personal data (phones, addresses, names) for group chats where many people read along."""

import re


def mask_phone(phone: str) -> str:
    digits = [c for c in phone if c.isdigit()]
    if len(digits) < 7:
        return "*" * len(digits)
    return "".join(digits[:3]) + "****" + "".join(digits[-4:])


def mask_address(address: str) -> str:
    """Keep the first words (city/district level) and hide the street and number."""
    text = address.strip()
    if not text:
        return ""
    if " " in text or "," in text:
        head = text.replace(",", " ").split()[0]
        return f"{head} ***"
    return text[: min(4, max(1, len(text) // 3))] + "***"


def mask_name(name: str) -> str:
    text = name.strip()
    if not text:
        return ""
    return text[0] + "**"


# a run of 7+ digits, optionally with a leading "+" and the spaces or dashes people type between groups
_PHONE_IN_TEXT = re.compile(r"\+?\d[\d \-()]{5,}\d")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")


def mask_phones_in(text: str) -> str:
    """Every phone number written in a free text, masked as mask_phone does: relayed messages must not pass
    numbers between the customer and the people behind the bot (they talk through the bot, not around it)."""

    def masked(match: re.Match[str]) -> str:
        found = match.group(0)
        digits = sum(c.isdigit() for c in found)
        if digits < 7 or _DATE.fullmatch(found):
            return found  # a short number or a date ("2026-11-28") is not a phone
        return mask_phone(found)

    return _PHONE_IN_TEXT.sub(masked, text)
