"""Parts and van stock as pure rules and steps: locations and movements, the catalogue's checks, the reorder suggestion,
the fault tree (default per seed 004, a shop's own, bad ones refused), and the repair record's steps with a way back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conversations.flow import StepInput
from conversations.flows.technician import TECHNICIAN_FLOW
from conversations.i18n import catalog
from domain import commands as c
from domain.errors import InvalidInput
from domain.model import ChecklistStep, StepKind, VisitStatus
from domain.parts import (
    DEFAULT_FAULT_TREE,
    MovementKind,
    PartSpec,
    check_movement,
    check_quantity,
    check_used_parts,
    crossed_low,
    parse_fault_tree,
    parse_location,
    reorder_suggestion,
    tree_for,
)
from domain.policy import ServicePolicy
from services.actions import PartRequestQty, RepairBack, RepairCause, RepairFault, RepairMethod, RepairOutcomePick, RepairPart, RepairPartsDone, encode
from services.messages import ChatRef, Inbound, InboundKind, StepResult
from services.parts_views import PartsView, VanItem
from services.views import TechVisit
from storage.parts import PartRow

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
SLOT = (NOW + timedelta(hours=2), NOW + timedelta(hours=4))
STEPS = (ChecklistStep("intact", StepKind.YES_NO, {"en": "Intact?"}),)
CAPACITOR = PartRow(7, "CAP-35", "Capacitor", "pc", 1250, "CNY", "electrical", ("washer",), 0)
SOFA_LEG = PartRow(8, "LEG-1", "Sofa leg", "pc", 300, "CNY", "furniture", ("sofa",), 0)


def test_locations_are_the_warehouse_or_a_technicians_van():
    assert parse_location(" Warehouse ") == "warehouse" and parse_location("van:12") == "van:12"
    for bad in ("", "van:", "van:0", "van:x", "van:99999999999", "shelf", "van:-1"):
        with pytest.raises(InvalidInput):
            parse_location(bad)


def test_each_kind_of_movement_has_its_ends_and_quantities_are_whole_and_positive():
    check_movement(MovementKind.RECEIVE, None, "warehouse")
    check_movement(MovementKind.ISSUE, "warehouse", "van:3")
    check_movement(MovementKind.RETURN, "van:3", "warehouse")
    check_movement(MovementKind.TRANSFER, "van:3", "van:4")
    check_movement(MovementKind.USE, "van:3", None)
    for kind, source, target in ((MovementKind.RECEIVE, "warehouse", "van:3"), (MovementKind.ISSUE, "van:3", "van:4"),
                                 (MovementKind.RETURN, "warehouse", "van:3"), (MovementKind.TRANSFER, "van:3", "van:3"),
                                 (MovementKind.USE, None, "van:3"), (MovementKind.WRITE_OFF, "warehouse", "van:3")):
        with pytest.raises(InvalidInput):
            check_movement(kind, source, target)
    assert check_quantity(1) == 1
    for bad in (0, -1, 100_001, True, 1.5):
        with pytest.raises(InvalidInput):
            check_quantity(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        check_used_parts(((7, 1), (7, 2)))  # a part once per repair


def test_a_catalogue_entry_is_checked_and_money_is_whole_minor_units():
    spec = PartSpec(" CAP-35 ", " Capacitor ", "pc", 1250, "CNY", compatible=("washer", "washer", " ")).checked()
    assert (spec.code, spec.name, spec.compatible) == ("CAP-35", "Capacitor", ("washer",))
    assert spec.fits("washer") and not spec.fits("sofa") and PartSpec("A", "B", "pc", 0, "CNY").fits("anything")
    for bad in (PartSpec("bad code", "x", "pc", 1, "CNY"), PartSpec("A", "", "pc", 1, "CNY"), PartSpec("A", "x", "pc", -1, "CNY"),
                PartSpec("A", "x", "pc", 1, "yuan"), PartSpec("A", "x", "", 1, "CNY"), PartSpec("A", "x", "pc", 1, "CNY", min_stock=-1)):
        with pytest.raises(InvalidInput):
            bad.checked()


def test_low_stock_is_told_when_the_level_is_crossed_with_an_order_that_covers_recent_use():
    assert crossed_low(4, 3, 3) and crossed_low(5, 0, 3)
    assert not crossed_low(3, 2, 3) and not crossed_low(6, 4, 3) and not crossed_low(1, 0, 0)  # below already; above; no level
    assert reorder_suggestion(on_hand=3, min_stock=3, used_recently=0) == 1  # back above the level
    assert reorder_suggestion(on_hand=2, min_stock=3, used_recently=30) == 31  # a month's use, plus the level, less what is there
    assert reorder_suggestion(on_hand=50, min_stock=3, used_recently=10) == 0


def test_the_default_fault_tree_follows_seed_004_and_every_default_code_reads_in_both_languages():
    assert [cause.code for cause in DEFAULT_FAULT_TREE.causes] == ["natural_wear", "improper_use", "human_damage"]
    for language in ("en", "zh"):
        texts = catalog(language)
        for cause in DEFAULT_FAULT_TREE.causes:
            assert f"repair.cause.{cause.code}" in texts
            assert all(f"repair.fault.{fault.code}" in texts for fault in cause.faults)
        assert all(f"repair.method.{method.code}" in texts for method in DEFAULT_FAULT_TREE.methods)
    assert parse_fault_tree(DEFAULT_FAULT_TREE.to_json()) == DEFAULT_FAULT_TREE


def test_a_shops_tree_is_checked_and_used_for_its_product_category():
    own = parse_fault_tree('{"causes": [{"code": "wear", "label": {"zh": "磨损"}, "faults": ["drum_bearing"]}], "methods": ["swapped"]}')
    assert own.has("wear", "drum_bearing", "swapped") and not own.has("wear", "leak", "swapped")
    assert tree_for({"washer": own}, "washer") is own and tree_for({"washer": own}, "sofa") is DEFAULT_FAULT_TREE
    assert tree_for({"*": own}, "sofa") is own
    assert own.pick(0, 0, 0) is not None and own.pick(1) is None and own.pick(0, 1) is None and own.pick(0, 0, 1) is None
    for bad in ("{", "[]", '{"causes": []}', '{"causes": [], "methods": ["a"]}', '{"causes": [{"code": "A", "faults": ["x"]}], "methods": ["a"]}',
                '{"causes": [{"code": "a", "faults": []}], "methods": ["a"]}', '{"causes": [{"code": "a", "faults": ["x", "x"]}], "methods": ["a"]}',
                '{"causes": [{"code": "a", "faults": ["x"], "extra": 1}], "methods": ["a"]}',
                '{"causes": [{"code": "a", "faults": [{"code": "x", "label": {"fr": "x"}}]}], "methods": ["a"]}'):
        with pytest.raises(InvalidInput):
            parse_fault_tree(bad)


# --- the record's steps, pure -------------------------------------------------------------------------------------------


def repair(status: VisitStatus = VisitStatus.IN_PROGRESS) -> TechVisit:
    return TechVisit(21, "repair", status.value, *SLOT, "Washer", "Road 1", 31.23, 121.47, "Zhang", "139", STEPS, frozenset({"intact"}), True,
                     None, "", "washer")


def view(*items: VanItem, codes: dict[int, str] | None = None, recorded: frozenset[int] = frozenset()) -> PartsView:
    return PartsView(3, "Wang", None, "", (repair(),), codes=codes or {}, van=items, catalogue=(CAPACITOR, SOFA_LEG), recorded=recorded)


def press(v: PartsView, action, state: str = "repair_record", data: dict | None = None) -> StepResult:
    event = Inbound(ChatRef("web", "staff", "u1"), "1", InboundKind.BUTTON, "u1", text=encode(action), user_name="Wang")
    return TECHNICIAN_FLOW.step(StepInput(event, state, data if data is not None else {"visit": 21}, v, NOW, "en", ServicePolicy()))


def keys(result: StepResult) -> list[str]:
    return [m.text["key"] for m in result.replies]


def data_of(result: StepResult) -> list[str]:
    return [b.data for m in result.replies for row in m.buttons for b in row]


def test_the_record_walks_cause_fault_method_parts_and_outcome_and_back_and_completes_with_its_commands():
    v = view(VanItem(CAPACITOR, 2), VanItem(SOFA_LEG, 4))
    opened = TECHNICIAN_FLOW.step(StepInput(Inbound(ChatRef("web", "staff", "u1"), "1", InboundKind.BUTTON, "u1", text="done:21"),
                                            "idle", {}, v, NOW, "en", ServicePolicy()))
    assert opened.state == "repair_record" and keys(opened) == ["tech.repair_cause"] and len(data_of(opened)) == 4
    cause = press(v, RepairCause(21, 0))
    assert keys(cause) == ["tech.repair_fault_pick"] and cause.data is not None
    fault = press(v, RepairFault(21, 1), data=cause.data)
    back = press(v, RepairBack(21), data=fault.data)  # from the methods back to the faults
    assert keys(back) == ["tech.repair_fault_pick"]
    method = press(v, RepairMethod(21, 0), data=fault.data)
    assert keys(method) == ["tech.repair_parts"]
    assert [d for d in data_of(method) if d.startswith("rcp:")] == ["rcp:21:7"]  # only the parts that fit a washer
    one = press(v, RepairPart(21, 7), data=method.data)
    two = press(v, RepairPart(21, 7), data=one.data)
    three = press(v, RepairPart(21, 7), data=two.data)  # the van holds two
    assert keys(three) == ["tech.repair_part_none_left", "tech.repair_parts"]
    outcome = press(v, RepairPartsDone(21), data=two.data)
    assert keys(outcome) == ["tech.repair_outcome"]
    done = press(v, RepairOutcomePick(21, "fixed"), data=outcome.data)
    record = c.RecordRepairCompletion(21, 3, "natural_wear", "capacitor_failed", "part_replaced", "fixed", ((7, 2),), "")
    assert done.commands == (record, c.CompleteVisit(21, 3)) and done.state == "idle"
    returned = press(v, RepairOutcomePick(21, "more_work"), data=outcome.data)
    assert returned.commands[0] == c.RecordRepairCompletion(21, 3, "natural_wear", "capacitor_failed", "part_replaced", "return", ((7, 2),), "")
    assert returned.commands[1] == c.EndForReturn(21, 3, "other", "natural_wear/capacitor_failed: part_replaced")


def test_the_customers_code_completes_a_recorded_repair_and_a_kept_record_is_not_asked_again():
    outcome_data = {"visit": 21, "cause": 0, "fault": 0, "method": 0, "parts": [], "parts_done": True, "note": "", "version": 1}
    waiting = press(view(codes={21: "pending"}), RepairOutcomePick(21, "fixed"), data=outcome_data)
    assert waiting.state == "await_code" and waiting.commands[0].__class__ is c.RecordRepairCompletion
    opened = TECHNICIAN_FLOW.step(StepInput(Inbound(ChatRef("web", "staff", "u1"), "1", InboundKind.BUTTON, "u1", text="done:21"),
                                            "idle", {}, view(recorded=frozenset({21})), NOW, "en", ServicePolicy()))
    assert opened.commands == (c.CompleteVisit(21, 3),) and opened.state == "idle"


def test_the_first_back_leaves_the_record_with_complete_to_return_to_and_typed_words_are_kept():
    left = press(view(), RepairBack(21))
    assert left.state == "idle" and keys(left) == ["tech.repair_later"] and data_of(left) == ["done:21"]
    typed = TECHNICIAN_FLOW.step(StepInput(Inbound(ChatRef("web", "staff", "u1"), "1", InboundKind.TEXT, "u1", text="hums loudly"),
                                           "repair_record", {"visit": 21, "cause": 0, "version": 1}, view(), NOW, "en", ServicePolicy()))
    assert keys(typed) == ["tech.repair_note_kept"] and typed.data is not None and typed.data["note"] == "hums loudly" and typed.data["cause"] == 0


def test_a_part_request_from_chat_is_a_command_and_keeps_the_open_record():
    asked = press(view(), PartRequestQty(7, 3))
    assert asked.commands == (c.RequestPart(3, 7, 3),) and asked.state is None and "rcs:21" in data_of(asked)
    assert keys(press(view(), PartRequestQty(99, 3))) == ["hint.stale_button"]  # not in the catalogue
