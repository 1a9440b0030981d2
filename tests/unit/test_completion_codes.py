"""The pure rules of completion codes and the delivered-item check: policies, codes, their hashes, tries and locks."""

from __future__ import annotations

import pytest

from domain.kind_policy import policy_for
from domain.completion_codes import (
    MAX_WRONG_PER_CODE,
    MAX_WRONG_PER_TECHNICIAN_DAY,
    CodePolicy,
    ItemMark,
    Outcome,
    delivered_items,
    digest,
    judge,
    matches,
    new_code,
    new_salt,
    normalise,
    problems,
    report_reason,
)
from domain.model import Job


def test_a_policy_is_off_all_or_the_kinds_named_and_a_source_may_override_it():
    assert not CodePolicy.parse("off").requires("delivery") and CodePolicy.parse("").text == "off"
    assert all(CodePolicy.parse("all").requires(kind) for kind in ("delivery", "installation", "repair", "inspection"))
    assert CodePolicy.parse("Delivery, installation").text == "delivery,installation"
    with pytest.raises(ValueError, match="shipping"):
        CodePolicy.parse("delivery,shipping")
    shop = CodePolicy.parse("delivery")
    assert policy_for(shop, {"erp": "off"}, "erp").text == "off" and policy_for(shop, {"erp": "off"}, "shop").text == "delivery"


def test_codes_are_six_random_digits_stored_only_as_salted_hashes():
    codes = {new_code() for _ in range(200)}
    assert all(len(code) == 6 and code.isdigit() for code in codes) and len(codes) > 150
    code, salt = new_code(), new_salt()
    stored = digest(code, salt)
    assert code not in stored and matches(code, salt, stored)
    assert not matches(f"{(int(code) + 1) % 10**6:06d}", salt, stored)
    assert digest(code, new_salt()) != stored  # salted: the same code hashes differently per visit


@pytest.mark.parametrize(("typed", "read"), [("123456", "123456"), (" 123 456 ", "123456"), ("１２３４５６", "123456"), ("123-456", "123456"),
                                             ("12345", None), ("1234567", None), ("12345a", None), ("", None), ("١٢٣٤٥٦", None)])
def test_a_typed_code_is_read_as_six_ascii_digits_or_not_at_all(typed, read):
    assert normalise(typed) == read


def test_five_wrong_tries_lock_a_code_and_a_lock_refuses_even_the_right_code():
    verdicts = [judge(correct=False, code_wrong=n, technician_wrong_today=n) for n in range(MAX_WRONG_PER_CODE)]
    assert [v.tries_left for v in verdicts] == [4, 3, 2, 1, 0]
    assert [v.locks for v in verdicts] == [None, None, None, None, "code"]
    assert judge(correct=True, code_wrong=MAX_WRONG_PER_CODE, technician_wrong_today=0).outcome is Outcome.CODE_LOCKED
    assert not judge(correct=True, code_wrong=MAX_WRONG_PER_CODE, technician_wrong_today=0).counted


def test_a_hundred_wrong_tries_in_a_day_lock_the_technician_whatever_the_code():
    last = judge(correct=False, code_wrong=0, technician_wrong_today=MAX_WRONG_PER_TECHNICIAN_DAY - 1)
    assert last.locks == "technician" and last.tries_left == 0
    refused = judge(correct=True, code_wrong=0, technician_wrong_today=MAX_WRONG_PER_TECHNICIAN_DAY)
    assert refused.outcome is Outcome.TECHNICIAN_LOCKED and not refused.counted
    assert judge(correct=True, code_wrong=4, technician_wrong_today=99).outcome is Outcome.ACCEPTED


def _job(items: list) -> Job:
    return Job("erp", "SO-1", 1, "Road 1", 0.0, 0.0, "Huangpu", "sofa", "3-seat sofa", None, items=items)


def test_a_delivery_checks_its_order_lines_or_its_one_product():
    assert delivered_items(_job([])) == ("3-seat sofa",)
    assert delivered_items(_job([{"name": "Sofa", "qty": 1}, {"sku": "CUSH-2", "qty": 2}, "junk", {"qty": 3}])) == ("Sofa", "CUSH-2 × 2")
    # multi-item orders: the order's product, and the lines whose services include a delivery
    lines = [{"name": "Armchair", "quantity": 2, "services": [{"kind": "delivery"}, {"kind": "installation"}]},
             {"name": "Wall mount", "services": [{"kind": "installation"}]}, {"name": "Manual", "services": []}, {"name": "Cushion"}]
    assert delivered_items(_job(lines)) == ("3-seat sofa", "Armchair × 2")
    # no order-level product: the intake named the job after its first line, which is not repeated
    first = [{"name": "3-seat sofa", "services": [{"kind": "delivery"}]}, {"name": "Lamp", "services": [{"kind": "delivery"}]}]
    assert delivered_items(_job(first)) == ("3-seat sofa", "Lamp")


def test_damage_outweighs_missing_in_the_report_and_received_items_are_no_problem():
    items = ("Sofa", "Cushion", "Legs")
    found = problems(items, [ItemMark.RECEIVED, ItemMark.MISSING, ItemMark.DAMAGED])
    assert found == [("Cushion", ItemMark.MISSING), ("Legs", ItemMark.DAMAGED)]
    assert report_reason(found).value == "goods_damaged" and report_reason(found[:1]).value == "parts_missing"
    assert problems(items, [ItemMark.RECEIVED] * 3) == []
