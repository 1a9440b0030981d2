"""Review periods and settlement as pure rules: when a confirmed visit's fee leaves review, what the technician earns by
the payout rule, what freezing, releasing and adjusting do to it, and the accounting period it is settled in."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import datetime, time, timedelta, tzinfo

from domain.errors import DomainError, IllegalTransition, InvalidInput
from domain.fees import MAX_MINOR, BillLine

MAX_REASON = 500
MAX_PERCENT = 100
PART = "part"  # the one bill line kind that is the shop's: parts are sold at the shop's price, never shared
CLOSE_AT = time(1, 0)  # local time on the first day of a month the month before is closed
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


class ItemStatus(str, enum.Enum):
    IN_REVIEW = "in_review"  # confirmed, its review period is running
    FROZEN = "frozen"  # a complaint, a low rating or an open exception: held until a dispatcher releases or adjusts it
    READY = "ready"  # settleable in its period, waiting for a statement
    SETTLED = "settled"  # on a statement: never changes again


class Cycle(str, enum.Enum):
    MONTHLY = "monthly"  # employees and big networks: one statement per month of everything ready in it
    PER_ORDER = "per_order"  # partners: a statement per order as soon as it is ready


class FreezeReason(str, enum.Enum):
    COMPLAINT = "complaint"
    LOW_RATING = "low_rating"
    EXCEPTION = "exception"


class SettlementConflict(IllegalTransition):
    """The item's state does not allow it (settled already, not frozen): a 409 over HTTP, with its own code."""

    def __init__(self, code: str, **params: object) -> None:
        DomainError.__init__(self, code, **params)


def review_ends(confirmed_at: datetime, period: timedelta) -> datetime:
    """The end of a confirmed visit's review period."""
    if confirmed_at.tzinfo is None:
        raise ValueError("an aware moment")  # a naive time here is a bug, not an input
    return confirmed_at + period


def period_of(moment: datetime, tz: tzinfo) -> str:
    """The accounting period (a calendar month in the shop's time zone, "YYYY-MM") a moment falls in."""
    local = moment.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


def parse_period(text: str) -> str:
    """A month as typed ("2026-11"), checked."""
    found = _PERIOD.match(text.strip())
    if found is None or not 2000 <= int(found.group(1)) <= 2200 or not 1 <= int(found.group(2)) <= 12:
        raise InvalidInput("settle_period_invalid", period=text[:20])
    return found.group(0)


def month_start(period: str, tz: tzinfo) -> datetime:
    """The first moment of the period, in the shop's time zone."""
    year, month = (int(part) for part in parse_period(period).split("-"))
    return datetime(year, month, 1, tzinfo=tz)


def next_period(period: str) -> str:
    year, month = (int(part) for part in parse_period(period).split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def close_due_at(period: str, tz: tzinfo) -> datetime:
    """When the monthly close of a period runs: early on the first day of the next month, local time."""
    start = month_start(next_period(period), tz)
    return datetime.combine(start.date(), CLOSE_AT, tz)


def check_closable(period: str, now: datetime, tz: tzinfo) -> str:
    """Only a month that is over is closed: a close in the middle of one would settle half of it."""
    period = parse_period(period)
    if now < month_start(next_period(period), tz):
        raise InvalidInput("settle_month_not_over", period=period)
    return period


def payout_base(lines: Iterable[BillLine]) -> int:
    """What the technician's share is of: every line of the bill but parts (labour, an approved increase, a discount
    taking off, and any kind added later), never below zero."""
    return max(0, sum(line.amount.amount for line in lines if line.kind != PART))


def share_of(base_minor: int, percent: int) -> int:
    """The share in whole minor units, rounded half up (12.345 fen is never paid: 12.35 is, 12.344 is 12.34)."""
    check_share(percent)
    if base_minor < 0:
        raise InvalidInput("settle_amount_invalid")
    return (base_minor * percent * 2 + 100) // 200


def check_share(percent: int) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= MAX_PERCENT:
        raise InvalidInput("settle_share_invalid")
    return percent


def cycle_of(text: str) -> Cycle:
    try:
        return Cycle(text)
    except ValueError as err:
        raise InvalidInput("settle_cycle_unknown", cycle=text[:20]) from err


def check_adjustment(amount_minor: int, reason: str) -> str:
    """An adjusted amount is what the technician is paid for the visit (zero or more), and always says why."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or not 0 <= amount_minor <= MAX_MINOR:
        raise InvalidInput("settle_amount_invalid")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("settle_reason_missing")
    if len(reason) > MAX_REASON:
        raise InvalidInput("settle_reason_too_long", limit=MAX_REASON)
    return reason


def freezes(status: ItemStatus, review_ends_at: datetime, now: datetime) -> bool:
    """A complaint, a low rating or an exception freezes an item still in its review period; one that came after the
    period (or an item frozen already, or ready, or settled) changes nothing."""
    return status is ItemStatus.IN_REVIEW and now < review_ends_at


def ready_period(review_ends_at: datetime, now: datetime, tz: tzinfo) -> str:
    """The period a fee whose review ended unfrozen is settled in: the month its review ended — unless that month's
    close is already due (a sweep that ran late), then the current month, so nothing lands in a month already closed."""
    ended = period_of(review_ends_at, tz)
    return ended if now < close_due_at(ended, tz) else period_of(now, tz)


def released(status: ItemStatus, review_ends_at: datetime, now: datetime, tz: tzinfo) -> tuple[ItemStatus, str | None]:
    """A dispatcher released (or adjusted) an item: still within its period it goes on in review (a new complaint may
    freeze it again); after its period it is ready at once, in the CURRENT period — the month of the release, not the
    month its review ended (an amount unfrozen later joins the settlement pool of the period it was unfrozen in)."""
    if status is ItemStatus.SETTLED:
        raise SettlementConflict("settle_item_settled")
    if status is ItemStatus.READY:
        return status, None  # adjusted while waiting for its statement: it stays where it is
    if now < review_ends_at:
        return ItemStatus.IN_REVIEW, None
    return ItemStatus.READY, period_of(now, tz)


def statement_number(period: str, technician_id: int, sequence: int) -> str:
    """"ST-2026-11-T7-1": the period, the technician and the how-many-th statement of theirs in it."""
    return f"ST-{parse_period(period)}-T{technician_id}-{sequence}"
