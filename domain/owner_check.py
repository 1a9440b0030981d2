"""A device's owner proves who they are when scanning its QR code: the phone number on file, compared digit by digit."""

from __future__ import annotations

import hashlib

MAX_TRIES_PER_DAY = 5  # wrong numbers (typed or shared) one chat may try in 24 hours: a code on a sticker is no secret
MIN_DIGITS = 7  # fewer digits are no phone number (and too easy to guess)
MAX_TYPED = 40  # a longer text is no phone number: no try is counted for it
COUNTRY_CODE_MAX = 3  # "+86 138…" and "138…", "+44 7700…" and "07700…" are one number


def phone_digits(text: str) -> str:
    """The number's digits only: spaces, dashes, brackets and "+" go; an international "00" prefix is "+"."""
    digits = "".join(ch for ch in text if ch.isascii() and ch.isdigit())
    return digits[2:] if digits.startswith("00") else digits


def looks_like_phone(text: str) -> bool:
    """Whether typed text can be a phone number at all (else it is answered with a hint, not counted as a try)."""
    stripped = text.strip()
    allowed = set("0123456789+-() .")
    return 0 < len(stripped) <= MAX_TYPED and set(stripped) <= allowed and len(phone_digits(stripped)) >= MIN_DIGITS


def _international(text: str) -> bool:
    return text.strip().startswith(("+", "00"))


def same_phone(given: str, on_file: str, *, given_international: bool = False) -> bool:
    """Whether two ways of writing a number are the same number: equal digits, or one written internationally ("+" or
    "00"; a WhatsApp id or a Telegram contact always is: ``given_international``) whose country code of one to three
    digits stands before the other's national number, written nationally (its trunk "0" dropped). A number's tail alone
    never matches. Both need at least ``MIN_DIGITS`` digits."""
    a, b = phone_digits(given), phone_digits(on_file)
    if len(a) < MIN_DIGITS or len(b) < MIN_DIGITS:
        return False
    if a == b:
        return True
    a_int, b_int = given_international or _international(given), _international(on_file)
    if a_int == b_int:
        return False  # both national or both international, and not the same digits: not the same number
    longer, shorter = (a, b) if a_int else (b, a)
    national = shorter[1:] if shorter.startswith("0") else shorter
    if len(national) < MIN_DIGITS:
        return False
    return longer.endswith(national) and 1 <= len(longer) - len(national) <= COUNTRY_CODE_MAX


def chat_key(platform: str, bot: str, chat_id: str) -> str:
    """How a failed try names its chat in the stored event: a WhatsApp chat id is a phone number, so it is hashed."""
    return hashlib.sha256(f"{platform}:{bot}:{chat_id}".encode()).hexdigest()[:32]


# how the number came: the chat's own id where it is the person's phone number (policy.phone_chat_platforms), the
# sender's own contact shared with one button (policy.contact_platforms), or typed
VIA_CHAT_NUMBER, VIA_CONTACT, VIA_TYPED = "chat_number", "contact", "typed"
VIA = (VIA_CHAT_NUMBER, VIA_CONTACT, VIA_TYPED)
