"""Dispatch over the API: rules per region and kind, ranked candidates, and a manual assignment."""

from __future__ import annotations


from services.messages import ChatRef, Inbound, InboundKind
from storage.repository import Store

ORDER = {
    "source": "erp", "external_ref": "SO-9",
    "customer": {"name": "Zhang Wei", "phone": "13912345678", "language": "en"},
    "address": {"text": "Huangpu District, 1 Road", "lat": 31.2304, "lon": 121.4737, "region": "Huangpu"},
    "product": {"name": "Sofa", "category": "sofa"},
    "services": [{"kind": "installation"}],
}


def technician(name: str, lat: float) -> dict:
    return {"name": name, "phone": "13800000000", "roles": ["installer"], "skills": ["sofa"], "regions": ["Huangpu"],
            "working_hours": {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "09:00", "end": "18:00"},
            "home": {"lat": lat, "lon": 121.4737}, "language": "en"}


async def test_a_manual_rule_lets_the_back_office_pick_from_ranked_candidates(sqlite_api):
    api = sqlite_api
    rule = await api.client.put("/api/v1/dispatch-rules", json={"region": "Huangpu", "service_kind": "installation", "mode": "manual"})
    assert rule.status_code == 200 and rule.json()["mode"] == "manual"
    far = (await api.client.post("/api/v1/technicians", json=technician("Far", 31.40))).json()["id"]
    near = (await api.client.post("/api/v1/technicians", json=technician("Near", 31.235))).json()["id"]
    order = (await api.client.post("/api/v1/orders", json=ORDER)).json()
    visit_id = order["job"]["visits"][0]["id"]
    # not booked yet: no candidates can be given
    assert (await api.client.get(f"/api/v1/visits/{visit_id}/candidates")).status_code == 422

    token = order["customer_link"].split("customer=")[1]
    chat = ChatRef("web", "customer", "c1")
    engine = api.container.engine
    await engine.handle(Inbound(chat=chat, update_id="1", kind=InboundKind.COMMAND, user_id="c1", text="start", payload=token))
    async with api.container.sessions() as session:
        rows = await Store(session).outbox_for_chat("web", "customer", "c1", 0)
    slot = rows[-1]["payload"]["buttons"][0][0]["data"]
    await engine.handle(Inbound(chat=chat, update_id="2", kind=InboundKind.BUTTON, user_id="c1", text=slot))

    candidates = (await api.client.get(f"/api/v1/visits/{visit_id}/candidates")).json()["candidates"]
    assert [c["technician_id"] for c in candidates] == [near, far]
    assigned = await api.client.post(f"/api/v1/visits/{visit_id}/assign", json={"technician_id": far})
    assert assigned.status_code == 200
    visit = assigned.json()["visits"][0]
    assert visit["status"] == "booked" and visit["technician"]["id"] == far
    assert "OfferMade" in [e["type"] for e in assigned.json()["timeline"]]
    unknown = await api.client.post(f"/api/v1/visits/{visit_id}/assign", json={"technician_id": 999})
    assert unknown.status_code == 422 and unknown.json()["detail"] == "technician_not_eligible"


async def test_bad_dispatch_rules_are_refused_with_a_reason(sqlite_api):
    api = sqlite_api
    bad = await api.client.put("/api/v1/dispatch-rules", json={"mode": "lottery"})
    assert bad.status_code == 422 and "mode" in str(bad.json())
    assert (await api.client.get("/api/v1/visits/123/candidates")).status_code == 404
