"""The parts API: the catalogue (create, update by code), stock movements that never go below zero, a part's ledger,
part requests decided through the API, fault trees per product category, scopes, and bad input changing nothing."""

from __future__ import annotations

from domain import commands as c
from domain.parts import DEFAULT_FAULT_TREE
from tests.support.api import Api

PART = {"code": "CAP-35", "name": "Run capacitor 35µF", "unit": "pc", "price_minor": 1250, "currency": "CNY", "category": "electrical",
        "compatible": ["aircon", "washer"], "min_stock": 2}


async def technician(api: Api) -> int:
    answer = await api.client.post("/api/v1/technicians", json={
        "name": "Sun", "phone": "13800000001", "roles": ["repairer"], "skills": ["washer"], "regions": ["Huangpu"]})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def test_a_part_is_created_updated_by_its_code_and_read_with_its_stock(api: Api):
    created = await api.client.post("/api/v1/parts", json=PART)
    assert created.status_code == 201 and created.json()["stock"] == {} and created.json()["price_minor"] == 1250
    part_id = created.json()["id"]
    updated = await api.client.post("/api/v1/parts", json=PART | {"price_minor": 1300})
    assert updated.status_code == 200 and updated.json()["id"] == part_id and updated.json()["price_minor"] == 1300
    received = await api.client.post("/api/v1/stock-movements", json={"part_id": part_id, "kind": "receive", "quantity": 10, "to": "warehouse"})
    assert received.status_code == 201 and received.json()["part"]["stock"] == {"warehouse": 10}
    listed = await api.client.get("/api/v1/parts")
    assert [p["code"] for p in listed.json()] == ["CAP-35"] and listed.json()[0]["stock"] == {"warehouse": 10}
    assert (await api.client.get(f"/api/v1/parts/{part_id}")).json()["name"] == PART["name"]


async def test_stock_moves_between_the_warehouse_and_a_van_and_the_ledger_keeps_every_movement(api: Api):
    technician_id = await technician(api)
    part_id = (await api.client.post("/api/v1/parts", json=PART)).json()["id"]
    for body in (
        {"kind": "receive", "quantity": 5, "to": "warehouse", "note": "PO-77"},
        {"kind": "issue", "quantity": 3, "from": "warehouse", "to": f"van:{technician_id}"},
        {"kind": "return", "quantity": 1, "from": f"van:{technician_id}", "to": "warehouse"},
        {"kind": "write_off", "quantity": 1, "from": "warehouse", "note": "cracked"},
    ):
        answer = await api.client.post("/api/v1/stock-movements", json={"part_id": part_id, **body})
        assert answer.status_code == 201, answer.text
    assert (await api.client.get(f"/api/v1/parts/{part_id}")).json()["stock"] == {"warehouse": 2, f"van:{technician_id}": 2}
    van = await api.client.get("/api/v1/stock", params={"location": f"van:{technician_id}"})
    assert van.json() == [{"part_id": part_id, "code": "CAP-35", "name": PART["name"], "unit": "pc", "quantity": 2}]
    ledger = (await api.client.get(f"/api/v1/parts/{part_id}/movements")).json()
    assert [(m["kind"], m["quantity"], m["from"], m["to"], m["note"]) for m in ledger] == [
        ("receive", 5, None, "warehouse", "PO-77"), ("issue", 3, "warehouse", f"van:{technician_id}", ""),
        ("return", 1, f"van:{technician_id}", "warehouse", ""), ("write_off", 1, "warehouse", None, "cracked"),
    ]


async def test_bad_input_gets_a_clear_answer_and_changes_nothing(api: Api):
    technician_id = await technician(api)
    part_id = (await api.client.post("/api/v1/parts", json=PART)).json()["id"]
    await api.client.post("/api/v1/stock-movements", json={"part_id": part_id, "kind": "receive", "quantity": 2, "to": "warehouse"})
    move = "/api/v1/stock-movements"
    refusals = [
        ({"part_id": part_id, "kind": "issue", "quantity": 3, "from": "warehouse", "to": f"van:{technician_id}"}, 409, "stock_not_enough: 2 pc there"),
        ({"part_id": part_id, "kind": "issue", "quantity": -1, "from": "warehouse", "to": f"van:{technician_id}"}, 422, None),
        ({"part_id": part_id, "kind": "issue", "quantity": "1", "from": "warehouse", "to": f"van:{technician_id}"}, 422, None),
        ({"part_id": 999, "kind": "receive", "quantity": 1, "to": "warehouse"}, 404, "part_not_found"),
        ({"part_id": part_id, "kind": "receive", "quantity": 1, "to": "shelf-3"}, 422, "stock_location_invalid"),
        ({"part_id": part_id, "kind": "issue", "quantity": 1, "from": "warehouse", "to": "van:4242"}, 404, "technician_not_found"),
        ({"part_id": part_id, "kind": "return", "quantity": 1, "from": "warehouse", "to": "warehouse"}, 422, "stock_movement_ends_invalid"),
        ({"part_id": part_id, "kind": "use", "quantity": 1, "from": "warehouse"}, 422, None),
    ]
    for body, code, detail in refusals:
        answer = await api.client.post(move, json=body)
        assert answer.status_code == code, (body, answer.text)
        if detail:
            assert answer.json()["detail"] == detail
    assert (await api.client.get(f"/api/v1/parts/{part_id}")).json()["stock"] == {"warehouse": 2}
    assert len((await api.client.get(f"/api/v1/parts/{part_id}/movements")).json()) == 1
    for bad in ({**PART, "price_minor": -5}, {**PART, "price_minor": 12.5}, {**PART, "currency": "yuan"}, {**PART, "code": "bad code!"}):
        assert (await api.client.post("/api/v1/parts", json=bad)).status_code == 422
    assert (await api.client.get("/api/v1/parts/999")).status_code == 404
    assert (await api.client.get("/api/v1/stock", params={"location": "garage"})).json() == {"detail": "stock_location_invalid"}


async def test_a_part_request_is_approved_through_the_api_once(api: Api):
    technician_id = await technician(api)
    part_id = (await api.client.post("/api/v1/parts", json=PART)).json()["id"]
    await api.client.post("/api/v1/stock-movements", json={"part_id": part_id, "kind": "receive", "quantity": 4, "to": "warehouse"})
    await api.container.bus.run("test:request", c.RequestPart(technician_id, part_id, 3))
    approved = await api.client.post("/api/v1/part-requests/1/approve", json={})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert (await api.client.get(f"/api/v1/parts/{part_id}")).json()["stock"] == {"warehouse": 1, f"van:{technician_id}": 3}
    again = await api.client.post("/api/v1/part-requests/1/decline", json={"reason": "too late"})
    assert again.status_code == 409 and again.json()["detail"] == "part_request_decided: approved"
    assert (await api.client.post("/api/v1/part-requests/77/approve", json={})).status_code == 404


async def test_a_fault_tree_is_set_per_product_category_read_back_and_reset(api: Api):
    default = (await api.client.get("/api/v1/fault-trees/washer")).json()
    assert default["set_by"] == "default" and default["tree"] == DEFAULT_FAULT_TREE.to_json()
    tree = {"causes": [{"code": "natural_wear", "faults": [{"code": "drum_bearing", "label": {"en": "Drum bearing", "zh": "滚筒轴承"}}]}],
            "methods": [{"code": "bearing_swapped"}]}
    put = await api.client.put("/api/v1/fault-trees/washer", json=tree)
    assert put.status_code == 200 and put.json()["set_by"] == "category" and put.json()["tree"] == tree
    assert (await api.client.get("/api/v1/fault-trees/aircon")).json()["set_by"] == "default"
    for bad in ({"causes": [], "methods": [{"code": "x"}]},
                {"causes": [{"code": "Bad Code", "faults": [{"code": "x"}]}], "methods": [{"code": "x"}]},
                {"causes": [{"code": "a", "faults": [{"code": "x"}, {"code": "x"}]}], "methods": [{"code": "m"}]},
                {"causes": [{"code": "a", "faults": [{"code": "x", "label": {}}]}], "methods": [{"code": "m"}]}):
        answer = await api.client.put("/api/v1/fault-trees/washer", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    assert (await api.client.get("/api/v1/fault-trees/washer")).json()["tree"] == tree  # refused ones changed nothing
    reset = await api.client.delete("/api/v1/fault-trees/washer")
    assert reset.json()["set_by"] == "default"


async def test_tokens_need_the_parts_scopes(api: Api):
    reader = (await api.client.post("/api/v1/tokens", json={"name": "erp-parts", "scopes": ["parts:read"]})).json()["token"]
    headers = {"Authorization": f"Bearer {reader}"}
    assert (await api.client.get("/api/v1/parts", headers=headers)).status_code == 200
    refused = await api.client.post("/api/v1/parts", json=PART, headers=headers)
    assert refused.status_code == 403 and "parts:write" in refused.json()["detail"]
    assert (await api.client.put("/api/v1/fault-trees/washer", json={"causes": [], "methods": []}, headers=headers)).status_code == 403
