"""Completion codes (核销码) and the delivered-item check: which visits need a code, the code, guessing limits, item marks."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.field_work import item_line
from domain.kind_policy import KindsPolicy
from domain.model import ExceptionReason, Job, ServiceKind

CODE_DIGITS = 6
MAX_WRONG_PER_CODE = 5  # then the code is locked until a dispatcher sends a new one (or completes the visit)
MAX_WRONG_PER_TECHNICIAN_DAY = 100  # across all of a technician's codes in one local day, then nothing more today
MAX_RESENDS = 10  # new codes a customer or technician may ask for per visit; a dispatcher may always send one
# scrypt makes each guess against a stolen table cost memory and time; the tries limits are what protect a live code
_SCRYPT = {"n": 2**12, "r": 8, "p": 1, "dklen": 32}



class CodePolicy(KindsPolicy):
    """Which kinds of visit need a completion code: none ("off"), every one ("all"), or the kinds named
    ("delivery,installation"). The shop sets the default; an order source may override it."""

    NAME = "completion codes"


def new_code() -> str:
    """A fresh code of CODE_DIGITS digits from the system's secure random source."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_salt() -> str:
    return secrets.token_hex(16)


def digest(code: str, salt: str) -> str:
    """What is stored of a code: its salted scrypt hash, never the code."""
    return hashlib.scrypt(code.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


def normalise(text: str) -> str | None:
    """A code as typed: full-width digits (a Chinese keyboard) and spaces or dashes are fine; None: not a code at all."""
    flat = unicodedata.normalize("NFKC", text or "")
    digits = "".join(ch for ch in flat if ch not in " -\u00a0")
    if len(digits) != CODE_DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    return digits


def matches(typed: str, salt: str, stored: str) -> bool:
    """Whether a normalised code is the one stored, compared in constant time."""
    return hmac.compare_digest(digest(typed, salt), stored)


class Outcome(str, enum.Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    CODE_LOCKED = "code_locked"  # this code had its tries: refused without looking
    TECHNICIAN_LOCKED = "technician_locked"  # this technician had their tries today: refused without looking


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    tries_left: int = 0  # for a wrong code: before this code or this technician is locked, whichever comes first
    locks: str | None = None  # a wrong code that locked something now: "code" or "technician" (told to the dispatchers once)

    @property
    def counted(self) -> bool:
        """Whether the try adds to the counts (a refused one does not: nothing was compared)."""
        return self.outcome is Outcome.WRONG


def judge(*, correct: bool, code_wrong: int, technician_wrong_today: int) -> Verdict:
    """One try at a code, given the wrong tries so far on this code and by this technician today. A locked code or
    technician is refused before the code is compared, so a lock can never be guessed past."""
    if code_wrong >= MAX_WRONG_PER_CODE:
        return Verdict(Outcome.CODE_LOCKED)
    if technician_wrong_today >= MAX_WRONG_PER_TECHNICIAN_DAY:
        return Verdict(Outcome.TECHNICIAN_LOCKED)
    if correct:
        return Verdict(Outcome.ACCEPTED)
    code_left = MAX_WRONG_PER_CODE - code_wrong - 1
    technician_left = MAX_WRONG_PER_TECHNICIAN_DAY - technician_wrong_today - 1
    locks = "technician" if technician_left == 0 else "code" if code_left == 0 else None
    return Verdict(Outcome.WRONG, min(code_left, technician_left), locks)


# --- the delivered-item check ---------------------------------------------------------------------


class ItemMark(str, enum.Enum):
    RECEIVED = "received"
    MISSING = "missing"
    DAMAGED = "damaged"


MAX_CHECKED_ITEMS = 30  # one card per item; an order longer than this is checked by its first lines and a dispatcher


def delivered_items(job: Job) -> tuple[str, ...]:
    """What a delivery brings, one name per order line: the one place that reads items from a job.

    Lines that name no services (the shape orders had before multi-item intake) all travel, and a job without lines is
    a one-item list of its product. Once lines name their services (multi-item intake), the delivery brings the lines
    with a delivery service, after the order's own product when no line is that product (the intake serves the
    order-level product as its first item); lines needing no service make no visit and are not asked about."""
    lines = _lines(job.items)
    if not any("services" in line for line in lines):
        names = [name for name in (item_line(line) for line in lines) if name]
        return tuple(names or [job.product_name])[:MAX_CHECKED_ITEMS]
    names = [name for name in (item_line(line) for line in lines if _delivered(line)) if name]
    if job.product_name not in {str(line.get("name") or line.get("sku") or "") for line in lines}:
        names.insert(0, job.product_name)
    return tuple(names or [job.product_name])[:MAX_CHECKED_ITEMS]


def _lines(items: Any) -> Sequence[Mapping[str, Any]]:
    return [item for item in items or () if isinstance(item, Mapping)]


def _delivered(line: Mapping[str, Any]) -> bool:
    kinds = {service.get("kind") if isinstance(service, Mapping) else service for service in line.get("services") or ()}
    return ServiceKind.DELIVERY.value in kinds


def problems(items: Sequence[str], marks: Sequence[ItemMark]) -> list[tuple[str, ItemMark]]:
    """The items not received as they should be, with how."""
    return [(item, mark) for item, mark in zip(items, marks, strict=True) if mark is not ItemMark.RECEIVED]


def report_reason(found: Sequence[tuple[str, ItemMark]]) -> ExceptionReason:
    """Damaged goods weigh more than missing ones: a damaged item makes the report one of damaged goods."""
    if any(mark is ItemMark.DAMAGED for _item, mark in found):
        return ExceptionReason.GOODS_DAMAGED
    return ExceptionReason.PARTS_MISSING


def report_note(found: Sequence[tuple[str, ItemMark]]) -> str:
    """The problem report's note: each item and what the customer said of it (the codes, read in any language)."""
    return "; ".join(f"{item}: {mark.value}" for item, mark in found)[:1000]
