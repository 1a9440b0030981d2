"""Field maps are data: the shipped e-commerce and ERP maps turn their sample orders into valid orders, and a map or a
value that cannot work is refused with the reason; lines are grouped into visits by work type."""

from __future__ import annotations

import json

import pytest

from domain.errors import InvalidInput
from domain.model import ServiceKind
from domain.order_mapping import MappingError, apply, check_spec, cursor_of, orders_of
from domain.orders import ItemService, OrderAddress, OrderItem, plan_parts, plan_visits
from services.order_import import read_csv, shipped_map
from tests.support import ROOT
from webhooks.order_routes import validate_order

SAMPLES = ROOT / "tests" / "data" / "orders"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["ecommerce", "erp_delivery_note", "table_default"])
def test_every_shipped_map_passes_its_own_check(name):
    check_spec(shipped_map(name))


def test_the_ecommerce_map_reads_buyer_address_lines_services_and_the_fee_in_minor_units():
    order = validate_order({**apply(shipped_map("ecommerce"), sample("ecommerce_order")), "source": "shop"})
    assert order["external_ref"] == "EC-5001234"
    assert order["customer"] == {"name": "王芳", "phone": "+86 138 0000 1234", "language": "zh"}
    assert order["address"] == {"text": "上海市 上海市 黄浦区 南京东路100号 5楼", "lat": 31.2351, "lon": 121.483, "region": "Huangpu"}
    assert order["price_minor"] == 12000 and order["currency"] == "CNY"
    assert [(i["sku"], i["quantity"], [s["kind"] for s in i["services"]]) for i in order["items"]] == [
        ("SOFA-3", 1, ["delivery", "installation"]), ("CHAIR-D", 4, ["delivery"]), ("CUSH-2", 2, []),
    ]


def test_the_erp_map_reads_a_delivery_note_with_service_codes_and_a_goods_only_line():
    order = validate_order({**apply(shipped_map("erp_delivery_note"), sample("erp_delivery_note")), "source": "erp"})
    assert order["external_ref"] == "2026000042"  # a numeric document number becomes the reference text
    assert order["customer"]["language"] == "en" and order["priority"] == "normal"
    assert order["address"]["region"] == "Huangpu" and order["address"]["text"] == "Shanghai Huangpu 88 Huaihai Middle Road"
    assert order["price_minor"] == 8050
    washer, hose = order["items"]
    assert [s["kind"] for s in washer["services"]] == ["delivery", "installation"] and washer["quantity"] == 1
    assert hose["services"] == [] and hose["quantity"] == 2 and hose["line"] == 1  # kept as sent: the ERP's own line number


def test_a_page_of_orders_and_its_cursor_are_found_at_the_maps_paths():
    spec = shipped_map("erp_delivery_note")
    page = {"value": [sample("erp_delivery_note")], "next_cursor": 17}
    assert len(orders_of(spec, page)) == 1 and cursor_of(spec, page) == "17"
    with pytest.raises(MappingError, match="no list of orders"):
        orders_of(spec, {"value": {"not": "a list"}})


@pytest.mark.parametrize(("spec", "reason"), [
    ({"fields": {}}, "fields must be"),
    ({"fields": {"external_ref": {"path": "a", "const": 1}}}, "exactly one of"),
    ({"fields": {"external_ref": {"path": "a", "transform": ["eval"]}}}, "transform is a list of"),
    ({"fields": {"external_ref": 5}}, "a rule is a source path"),
    ({"fields": {"external_ref": "a..b"}}, "not a dotted source path"),
    ({"fields": {"items": {"each": "lines"}}}, "each needs"),
    ({"fields": {"x": "a"}, "script": "rm -rf"}, "unknown mapping keys"),
])
def test_a_map_that_could_not_work_is_refused_with_the_reason(spec, reason):
    with pytest.raises(MappingError, match=reason):
        check_spec(spec)


@pytest.mark.parametrize(("rule", "value", "reason"), [
    ({"path": "v", "transform": ["int"]}, "2.5", "not a valid int"),
    ({"path": "v", "transform": ["minor_units"]}, "12.345", "not a valid minor units"),
    ({"path": "v", "map": {"A": "delivery"}}, "B", "'B' is not one of A"),
])
def test_a_value_the_map_cannot_convert_names_the_field_and_the_value(rule, value, reason):
    with pytest.raises(MappingError, match=reason) as caught:
        apply({"fields": {"price_minor": rule}}, {"v": value})
    assert str(caught.value).startswith("price_minor:")


def test_empty_cells_are_missing_values_and_defaults_fill_them():
    spec = {"fields": {"notes": "n", "priority": {"path": "p", "default": "normal"}, "customer.name": "c"}}
    assert apply(spec, {"n": "  ", "p": "", "c": "Li"}) == {"priority": "normal", "customer": {"name": "Li"}}


def test_lines_are_grouped_into_one_visit_per_work_type_and_goods_alone_make_no_visit():
    items = [
        OrderItem("sofa", 1, (ItemService(ServiceKind.INSTALLATION), ItemService(ServiceKind.DELIVERY, 30))),
        OrderItem("chairs", 4, (ItemService(ServiceKind.DELIVERY, 20, crew_size=2),)),
        OrderItem("cushion", 2, ()),
    ]
    delivery, installation = plan_visits(items, "1 Road")
    assert (delivery.kind, delivery.duration_minutes, delivery.crew_size, delivery.items) == (ServiceKind.DELIVERY, 50, 2, (0, 1))
    assert (installation.kind, installation.duration_minutes, installation.items) == (ServiceKind.INSTALLATION, 90, (0,))


def test_lines_at_two_addresses_are_two_parts_and_lines_needing_nothing_are_refused():
    other = OrderAddress("2 Other Street", 31.2, 121.4, "Xuhui")
    parts = plan_parts([OrderItem("a", 1, (ItemService(ServiceKind.DELIVERY),), address=other),
                        OrderItem("b", 1, (ItemService(ServiceKind.DELIVERY),)),
                        OrderItem("c", 1, (), address=OrderAddress("3 Far Road", 31.0, 121.0, "Minhang"))], "1 Road")
    # the order's own address first; goods at an address no visit goes to stay with the first job
    assert [(p.address, p.items, [v.kind for v in p.visits]) for p in parts] == [
        (None, (1, 2), [ServiceKind.DELIVERY]), (other, (0,), [ServiceKind.DELIVERY])]
    with pytest.raises(InvalidInput, match="items_at_several_addresses"):
        plan_visits([OrderItem("a", 1, (ItemService(ServiceKind.DELIVERY),), address=other),
                     OrderItem("b", 1, (ItemService(ServiceKind.DELIVERY),))], "1 Road")
    # the same address written differently is one address
    same = OrderAddress("1  road", 31.2, 121.4, "Huangpu")
    assert len(plan_parts([OrderItem("a", 1, (ItemService(ServiceKind.DELIVERY),), address=same)], "1 Road")) == 1
    with pytest.raises(InvalidInput, match="no_service_needed"):
        plan_visits([OrderItem("cushion", 1, ())], "1 Road")


def test_a_grouped_visit_needs_the_categories_of_its_own_lines_and_a_delivery_none():
    items = [OrderItem("sofa", 1, (ItemService(ServiceKind.DELIVERY), ItemService(ServiceKind.INSTALLATION)), category="sofa"),
             OrderItem("lamp", 1, (ItemService(ServiceKind.INSTALLATION),), category="lighting")]
    delivery, installation = plan_visits(items, "1 Road")
    assert delivery.categories == () and installation.categories == ("lighting", "sofa")


def test_csv_rows_are_read_as_text_with_a_byte_order_mark_dropped():
    rows = read_csv("\ufefforder_ref,quantity\nA-1,2\n".encode("utf-8"))
    assert rows == [{"order_ref": "A-1", "quantity": "2"}]
