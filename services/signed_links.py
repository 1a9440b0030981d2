"""Signed, expiring, single-use links: the token a link carries (``<row id>.<signature>``), how it is signed over the
row that says what the link does, and how a token from a URL is read. Robot action links and signature pads use it."""

from __future__ import annotations

import base64
import hashlib
import hmac

from domain.model import MAX_ID

MAC_CHARS = 32  # 192 bits of base64url


def mac(key: bytes, purpose: str, *fields: object) -> str:
    """The signature over a link's purpose and every field that says what it does, to whom and until when: a changed
    row no longer matches the links made for it, and a token of one purpose is no token of another."""
    signed = ":".join([purpose, *(str(value) for value in fields)])
    return base64.urlsafe_b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).decode()[:MAC_CHARS]


def token(row_id: int, signature: str) -> str:
    return f"{row_id}.{signature}"


def parse_token(token: str) -> tuple[int, str] | None:
    """(row id, signature) of a well-formed token; None for anything else (never a lookup of garbage)."""
    ident, dot, signature = token.partition(".")
    if not dot or not (ident.isascii() and ident.isdigit()) or len(ident) > len(str(MAX_ID)) or len(signature) != MAC_CHARS:
        return None
    if not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in signature):
        return None
    row_id = int(ident)
    return (row_id, signature) if 1 <= row_id <= MAX_ID else None


def matches(expected: str, given: str) -> bool:
    """Whether a token's signature is the expected one, compared in constant time."""
    return hmac.compare_digest(expected.encode(), given.encode())
