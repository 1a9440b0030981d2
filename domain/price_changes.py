"""Price changes as pure rules: a technician's price increase and who approves it (a dispatcher, a manager above a threshold,
then the customer), a manager's discount, and the bill lines both become."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import DomainError, InvalidInput, NotAllowed
from domain.fees import BillLine, Money, total

MAX_CHANGE_MINOR = 10**8  # a million in a two-digit currency's main unit: far above any real increase or discount on one visit
MAX_REASON = 500
MAX_PHOTOS = 5  # evidence of the cause, as a problem report's: a few photos, not an album of the whole site
MAX_PERCENT = 100


class ChangeKind(enum.StrEnum):
    INCREASE = "increase"  # asked for by the technician on site; billed once the customer agrees
    DISCOUNT = "discount"  # given by a manager on the bill


class ChangeStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a dispatcher of the job's region
    ESCALATED = "escalated"  # above the managers' threshold: waiting for a manager
    APPROVED = "approved"  # approved by the shop: waiting for the customer
    ACCEPTED = "accepted"  # the customer agreed (a discount: given): on the bill
    DECLINED = "declined"  # a dispatcher or a manager said no
    REFUSED = "refused"  # the customer said no: the bill stays as it was


OPEN = (ChangeStatus.PENDING, ChangeStatus.ESCALATED, ChangeStatus.APPROVED)  # one of these per visit at a time


def check_amount(amount: Money) -> Money:
    """An increase or a discount is more than nothing and less than a sane maximum (a typo of three zeros is refused)."""
    if amount.amount <= 0:
        raise InvalidInput("pricechg_amount_not_positive")
    if amount.amount > MAX_CHANGE_MINOR:
        raise InvalidInput("pricechg_amount_too_large", max=Money(MAX_CHANGE_MINOR, amount.currency).text())
    return amount


def check_reason(text: str) -> str:
    """Why the price changes: said in words, which the customer reads and the bill line keeps."""
    reason = " ".join(text.split())
    if not reason:
        raise InvalidInput("pricechg_reason_missing")
    if len(reason) > MAX_REASON:
        raise InvalidInput("pricechg_reason_too_long", max=MAX_REASON)
    return reason


def decide(status: ChangeStatus, *, approve: bool, by_manager: bool, amount: Money, manager_above: int) -> ChangeStatus:
    """The shop's decision on an increase. A dispatcher's approval is enough up to ``manager_above`` (minor units);
    above it the request goes on to a manager. A manager's approval is enough at any level; a decline ends it anywhere."""
    if status is ChangeStatus.PENDING:
        if not approve:
            return ChangeStatus.DECLINED
        return ChangeStatus.APPROVED if by_manager or amount.amount <= manager_above else ChangeStatus.ESCALATED
    if status is ChangeStatus.ESCALATED:
        if not by_manager:
            raise NotAllowed("pricechg_manager_needed", limit=Money(manager_above, amount.currency).text())
        return ChangeStatus.APPROVED if approve else ChangeStatus.DECLINED
    raise DomainError("pricechg_decided", status=status.value)


def answer(status: ChangeStatus, *, agree: bool) -> ChangeStatus:
    """The customer's answer, once the shop approved."""
    if status is not ChangeStatus.APPROVED:
        raise DomainError("pricechg_decided", status=status.value)
    return ChangeStatus.ACCEPTED if agree else ChangeStatus.REFUSED


def discount_amount(bill_total: Money, paid: Money, *, amount_minor: int | None, percent: int | None) -> Money:
    """A discount as an amount or as a percent of the bill's total (rounded half up); never more than the total (a bill
    does not go below zero) and never below what was paid already (a refund is not a discount)."""
    if (amount_minor is None) == (percent is None):
        raise InvalidInput("pricechg_discount_one_of")
    if percent is not None:
        if not 1 <= percent <= MAX_PERCENT:
            raise InvalidInput("pricechg_percent_invalid", max=MAX_PERCENT)
        amount = Money((bill_total.amount * percent + 50) // 100, bill_total.currency)
    else:
        assert amount_minor is not None
        amount = Money(amount_minor, bill_total.currency)
    check_amount(amount)
    if amount.amount > bill_total.amount:
        raise InvalidInput("pricechg_discount_over_total", total=bill_total.text())
    if bill_total.amount - amount.amount < paid.amount:
        raise InvalidInput("pricechg_discount_below_paid", paid=paid.text())
    return amount


@dataclass(frozen=True)
class BilledChange:
    """An accepted change as the bill needs it."""

    kind: ChangeKind
    amount: Money  # positive: an increase adds it, a discount takes it off
    reason: str


def change_lines(changes: Sequence[BilledChange], subtotal: Money) -> list[BillLine]:
    """The bill lines of accepted changes after the bill's own (``subtotal``): increases first, then discounts, each
    discount cut to what is left so the total never goes below zero (the bill was priced again lower meanwhile)."""
    lines = [BillLine(ChangeKind.INCREASE.value, change.reason, 1, "visit", change.amount, change.amount)
             for change in changes if change.kind is ChangeKind.INCREASE]
    left = subtotal + total(lines, subtotal.currency)
    for change in changes:
        if change.kind is not ChangeKind.DISCOUNT:
            continue
        off = Money(min(change.amount.amount, max(left.amount, 0)), left.currency)
        if off.amount <= 0:
            continue
        lines.append(BillLine(ChangeKind.DISCOUNT.value, change.reason, 1, "visit", Money(-off.amount, off.currency),
                              Money(-off.amount, off.currency)))
        left = left - off
    return lines
