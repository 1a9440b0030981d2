"""Fees as pure rules: the most specific price wins, hours round up to the step, money stays whole minor units of one currency."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.fees import (
    ANY, Money, PaymentMethod, PriceEntry, PriceKey, Pricing, billed_minutes, check_payment, labour_line, parse_amount, part_line,
    price_for, total,
)

CNY = "CNY"
KEY = PriceKey("repair", "aircon", "Huangpu", "urgent")


def entry(category: str = ANY, region: str = ANY, urgency: str = ANY, price: int = 10000, *, kind: str = "repair",
          pricing: Pricing = Pricing.FIXED, step: int = 30, currency: str = CNY) -> PriceEntry:
    return PriceEntry(kind, category, region, urgency, pricing, Money(price, currency), step)


def test_the_most_specific_matching_entry_wins_category_before_region_before_urgency():
    entries = [
        entry(price=1),
        entry(urgency="urgent", price=2),
        entry(region="Huangpu", price=3),
        entry(region="Huangpu", urgency="urgent", price=4),
        entry(category="aircon", price=5),
        entry(category="aircon", region="Huangpu", price=6),
        entry(category="aircon", region="Jingan", urgency="urgent", price=99),  # another region: never
        entry(category="washer", region="Huangpu", urgency="urgent", price=98),  # another category: never
        entry(kind="installation", category="aircon", region="Huangpu", urgency="urgent", price=97),  # another work type: never
    ]
    assert price_for(entries, KEY).unit_price.amount == 6
    assert price_for(entries[:5], KEY).unit_price.amount == 5  # the category outweighs region and urgency together
    assert price_for(entries[:4], KEY).unit_price.amount == 4
    assert price_for(entries[:3], KEY).unit_price.amount == 3  # the region outweighs urgency
    assert price_for(entries[:2], KEY).unit_price.amount == 2
    assert price_for(entries[:1], KEY).unit_price.amount == 1
    assert price_for(entries[6:], KEY) is None  # nothing fits: no price, never a 0
    # the order of the list does not matter
    assert price_for(list(reversed(entries)), KEY).unit_price.amount == 6


@pytest.mark.parametrize(("minutes", "step", "billed"), [
    (0, 30, 30), (1, 30, 30), (30, 30, 30), (31, 30, 60), (89, 15, 90), (90, 15, 90), (61, 60, 120), (-5, 30, 30),
])
def test_time_on_site_is_rounded_up_to_the_step_and_at_least_one_step(minutes, step, billed):
    assert billed_minutes(minutes, step) == billed


def test_labour_per_hour_per_piece_and_fixed_in_whole_minor_units():
    hourly = entry(pricing=Pricing.PER_HOUR, price=12000, step=30)  # CNY 120.00 an hour
    line = labour_line(hourly, pieces=3, minutes=70, description="repair")
    assert (line.quantity, line.unit, line.amount) == (90, "minute", Money(18000, CNY))  # 1.5 h
    odd = labour_line(entry(pricing=Pricing.PER_HOUR, price=9999, step=20), pieces=1, minutes=10, description="repair")
    assert odd.amount == Money(3333, CNY)  # 99.99 / 3 = 33.33, rounded half up to a whole fen
    assert isinstance(odd.amount.amount, int)
    pieces = labour_line(entry(pricing=Pricing.PER_PIECE, price=2550), pieces=3, minutes=500, description="repair")
    assert (pieces.quantity, pieces.amount) == (3, Money(7650, CNY))
    assert labour_line(entry(pricing=Pricing.PER_PIECE, price=2550), pieces=0, minutes=0, description="x").quantity == 1
    fixed = labour_line(entry(price=15000), pieces=7, minutes=300, description="repair")
    assert (fixed.quantity, fixed.amount) == (1, Money(15000, CNY))


def test_a_bill_adds_lines_of_one_currency_and_refuses_another():
    labour = labour_line(entry(price=15000), pieces=1, minutes=60, description="repair")
    capacitor = part_line(7, "Capacitor 35µF", 2, "piece", Money(2350, CNY))
    assert total([labour, capacitor], CNY) == Money(19700, CNY)
    dollars = part_line(8, "Fan motor", 1, "piece", Money(1000, "USD"))
    with pytest.raises(InvalidInput) as refused:
        total([labour, dollars], CNY)
    assert refused.value.code == "money_currency_mismatch"
    with pytest.raises(InvalidInput):
        Money(1, CNY) + Money(1, "USD")


def test_money_is_whole_minor_units_of_a_known_currency():
    with pytest.raises(TypeError):
        Money(12.5, CNY)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, CNY)
    with pytest.raises(InvalidInput) as unknown:
        Money(100, "XYZ")
    assert unknown.value.code == "money_currency_unknown"
    assert Money(123456, CNY).text() == "CNY 1,234.56"
    assert Money(5, CNY).text() == "CNY 0.05"
    assert Money(1500, "JPY").text() == "JPY 1,500"
    with pytest.raises(InvalidInput):
        PriceEntry("repair", ANY, ANY, ANY, Pricing.FIXED, Money(-1, CNY))
    with pytest.raises(InvalidInput):
        PriceEntry("repair", ANY, ANY, "soon", Pricing.FIXED, Money(1, CNY))


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("120", CNY, 12000), ("120.5", CNY, 12050), ("120,50", CNY, 12050), (" 0.01 ", CNY, 1), ("1500", "JPY", 1500),
])
def test_typed_amounts_are_read_exactly(text, currency, minor):
    assert parse_amount(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(("text", "currency", "code"), [
    ("-5", CNY, "money_amount_invalid"), ("1e3", CNY, "money_amount_invalid"), ("abc", CNY, "money_amount_invalid"), ("", CNY, "money_amount_invalid"),
    ("1.005", CNY, "money_amount_too_precise"), ("1.5", "JPY", "money_amount_too_precise"), ("10", "XYZ", "money_currency_unknown"),
])
def test_typed_amounts_that_are_not_exact_amounts_are_refused(text, currency, code):
    with pytest.raises(InvalidInput) as refused:
        parse_amount(text, currency)
    assert refused.value.code == code


def test_a_payment_is_positive_at_most_what_is_owed_in_the_bills_currency_and_online_names_its_reference():
    owed = Money(10000, CNY)
    check_payment(Money(10000, CNY), method=PaymentMethod.CASH, reference=None, owed=owed)
    check_payment(Money(1, CNY), method=PaymentMethod.ONLINE, reference="WX123", owed=owed)
    for amount, method, reference, current, code in [
        (Money(0, CNY), PaymentMethod.CASH, None, owed, "payment_not_positive"),
        (Money(-100, CNY), PaymentMethod.CASH, None, owed, "payment_not_positive"),
        (Money(10001, CNY), PaymentMethod.TRANSFER, None, owed, "payment_over_owed"),
        (Money(100, "USD"), PaymentMethod.CASH, None, owed, "money_currency_mismatch"),
        (Money(100, CNY), PaymentMethod.ONLINE, "  ", owed, "payment_reference_missing"),
        (Money(100, CNY), PaymentMethod.CASH, None, Money(0, CNY), "bill_already_paid"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            check_payment(amount, method=method, reference=reference, owed=current)
        assert refused.value.code == code
