"""Fees as pure rules: money in integer minor units with its currency, price-list entries and which one prices a visit,
the bill's lines and total, and what a payment may be."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from domain.errors import InvalidInput

ANY = "any"  # a price-list dimension that matches every value
URGENCIES = ("normal", "urgent")  # a job's priority
MAX_MINOR = 10**11  # a billion in a currency's main unit: far above any one bill, well inside a 64-bit column
MAX_QUANTITY = 10_000
MAX_STEP_MINUTES = 480
MAX_REFERENCE = 100
MAX_NAME = 100

# ISO 4217 codes the shop may price in, with the digits of their minor unit (a yen has none, a yuan has two fen)
CURRENCIES: dict[str, int] = {
    "CNY": 2, "HKD": 2, "TWD": 2, "MOP": 2, "SGD": 2, "MYR": 2, "THB": 2, "USD": 2, "EUR": 2, "GBP": 2, "AUD": 2, "CAD": 2,
    "CHF": 2, "JPY": 0, "KRW": 0, "VND": 0, "IDR": 2, "INR": 2, "PHP": 2, "AED": 2, "SAR": 2, "RUB": 2, "BRL": 2, "MXN": 2,
}


class Pricing(str, enum.Enum):
    PER_PIECE = "per_piece"  # the unit price times the pieces the job serves
    PER_HOUR = "per_hour"  # the unit price per hour on site, the time rounded up to the entry's step
    FIXED = "fixed"  # the unit price, once


class PaymentMethod(str, enum.Enum):
    CASH = "cash"
    TRANSFER = "transfer"
    ONLINE = "online"  # paid through a payment service: its reference is required


class BillStatus(str, enum.Enum):
    PRICED = "priced"
    UNPRICED = "unpriced"  # no price-list entry fits the visit: the dispatchers were told, nothing is owed yet


def currency_of(code: str) -> str:
    """The currency code, checked: refused when the shop does not know it (money never guesses its unit)."""
    if code not in CURRENCIES:
        raise InvalidInput("money_currency_unknown", currency=code)
    return code


@dataclass(frozen=True)
class Money:
    """An amount in the currency's minor units (fen, cents); adding two currencies is refused, never converted."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("money is a whole number of minor units")  # a float here is a bug, not an input
        currency_of(self.currency)
        if abs(self.amount) > MAX_MINOR:
            raise InvalidInput("money_amount_too_large")

    def __add__(self, other: Money) -> Money:
        same_currency(self.currency, other.currency)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        same_currency(self.currency, other.currency)
        return Money(self.amount - other.amount, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount * quantity, self.currency)

    def text(self) -> str:
        """"CNY 1,234.50": the code rather than a symbol (¥ is both yuan and yen), the minor digits always shown."""
        digits = CURRENCIES[self.currency]
        sign = "-" if self.amount < 0 else ""
        whole, minor = divmod(abs(self.amount), 10**digits)
        return f"{self.currency} {sign}{whole:,}" + (f".{minor:0{digits}d}" if digits else "")


def same_currency(first: str, second: str) -> None:
    if first != second:
        raise InvalidInput("money_currency_mismatch", expected=first, given=second)


def zero(currency: str) -> Money:
    return Money(0, currency)


_AMOUNT = re.compile(r"^\s*(\d{1,12})(?:[.,](\d{1,4}))?\s*$")


def parse_amount(text: str, currency: str) -> Money:
    """What a person types ("120", "120.5", "120,50") as minor units of ``currency``, exactly (Decimal, never float);
    more decimals than the currency has, a sign or anything else is refused."""
    digits = CURRENCIES[currency_of(currency)]
    found = _AMOUNT.match(text)
    if found is None:
        raise InvalidInput("money_amount_invalid")
    try:
        value = Decimal(f"{found.group(1)}.{found.group(2) or '0'}") * 10**digits
    except InvalidOperation as err:  # pragma: no cover - the pattern admits only digits
        raise InvalidInput("money_amount_invalid") from err
    if value != value.to_integral_value():
        raise InvalidInput("money_amount_too_precise", digits=digits)
    return Money(int(value), currency)


@dataclass(frozen=True)
class PriceKey:
    """What a visit is priced by: its work type, the product category, the region and the urgency."""

    service_kind: str
    product_category: str
    region: str
    urgency: str


@dataclass(frozen=True)
class PriceEntry:
    """One line of the price list; ``product_category``, ``region`` and ``urgency`` may be ``ANY``."""

    service_kind: str
    product_category: str
    region: str
    urgency: str
    pricing: Pricing
    unit_price: Money
    hour_step_minutes: int = 30  # per hour: time on site is rounded up to this step
    name: str = ""  # the line's text on the bill; empty: the work type's name
    id: int | None = None

    def __post_init__(self) -> None:
        if self.unit_price.amount < 0:
            raise InvalidInput("fee_price_negative")
        if self.urgency not in (ANY, *URGENCIES):
            raise InvalidInput("fee_urgency_unknown", urgency=self.urgency)
        if not 1 <= self.hour_step_minutes <= MAX_STEP_MINUTES:
            raise InvalidInput("fee_hour_step_invalid")

    def matches(self, key: PriceKey) -> bool:
        return (self.service_kind == key.service_kind and self.product_category in (ANY, key.product_category)
                and self.region in (ANY, key.region) and self.urgency in (ANY, key.urgency))

    @property
    def specificity(self) -> int:
        # a named product category weighs more than a region, a region more than urgency: every combination
        # has its own weight, so two matching entries never tie (the list holds each combination once)
        return (self.product_category != ANY) * 4 + (self.region != ANY) * 2 + (self.urgency != ANY)


def price_for(entries: Iterable[PriceEntry], key: PriceKey) -> PriceEntry | None:
    """The most specific entry that matches the visit (None: the list has no price for it)."""
    matching = [entry for entry in entries if entry.matches(key)]
    return max(matching, key=lambda entry: entry.specificity, default=None)


def billed_minutes(minutes: int, step: int) -> int:
    """Time on site rounded up to the step; at least one step (a visit that took no time still came)."""
    steps = max(1, -(-max(minutes, 0) // step))
    return steps * step


@dataclass(frozen=True)
class BillLine:
    kind: str  # labour | part
    description: str
    quantity: int  # pieces; minutes for labour priced per hour
    unit: str  # piece | minute | visit, or the part's own unit
    unit_price: Money  # per piece, per hour (per_hour labour), per visit
    amount: Money
    part_id: int | None = None


def labour_line(entry: PriceEntry, *, pieces: int, minutes: int, description: str) -> BillLine:
    """The labour line of a visit the entry prices."""
    if entry.pricing is Pricing.PER_PIECE:
        count = max(1, pieces)
        return BillLine("labour", description, count, "piece", entry.unit_price, entry.unit_price.times(count))
    if entry.pricing is Pricing.PER_HOUR:
        billed = billed_minutes(minutes, entry.hour_step_minutes)
        # the hourly price for the billed minutes, rounded half up to a whole minor unit
        amount = (entry.unit_price.amount * billed * 2 + 60) // 120
        return BillLine("labour", description, billed, "minute", entry.unit_price, Money(amount, entry.unit_price.currency))
    return BillLine("labour", description, 1, "visit", entry.unit_price, entry.unit_price)


def part_line(part_id: int | None, name: str, quantity: int, unit: str, unit_price: Money) -> BillLine:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput("fee_quantity_invalid")
    if unit_price.amount < 0:
        raise InvalidInput("fee_price_negative")
    return BillLine("part", name, quantity, unit, unit_price, unit_price.times(quantity), part_id)


def total(lines: Sequence[BillLine], currency: str) -> Money:
    """The bill's total; every line in the bill's currency (a part priced in another is refused, not converted)."""
    result = zero(currency)
    for line in lines:
        result = result + line.amount
    return result


def check_payment(amount: Money, *, method: PaymentMethod, reference: str | None, owed: Money) -> None:
    """A payment takes something off what is owed and never more; online payments name their reference."""
    same_currency(owed.currency, amount.currency)
    if amount.amount <= 0:
        raise InvalidInput("payment_not_positive")
    if owed.amount <= 0:
        raise InvalidInput("bill_already_paid")
    if amount.amount > owed.amount:
        raise InvalidInput("payment_over_owed", owed=owed.text())
    if method is PaymentMethod.ONLINE and not (reference or "").strip():
        raise InvalidInput("payment_reference_missing")
