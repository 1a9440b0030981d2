"""The message bus: every write is a unit of work whose events meet their reactions, the API's order intake too."""

from __future__ import annotations

from domain import events as ev
from services.messages import ChatRef, Outbound, raw
from storage.repository import Store
from tests.support.api import order_body, running_api


async def test_an_order_from_the_api_meets_the_same_reactions_as_any_other_write(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path) as api:
        seen: list[ev.Event] = []

        async def audit(ctx, event):
            # a reaction as an ERP callback or a KPI would be: it sees the event, and may send and raise more
            seen.append(event)
            return [Outbound(raw(f"job {event.job_id} created"), to=ChatRef("web", "staff", "audit"))]

        api.container.bus.reactions.add(audit, ev.JobCreated, ev.VisitBooked)
        created = (await api.client.post("/api/v1/orders", json=order_body("SO-BUS"))).json()
        urgent = (await api.client.post("/api/v1/orders", json=order_body("SO-URGENT", priority="urgent"))).json()

        assert [(type(e).__name__, e.job_id) for e in seen] == [
            ("JobCreated", created["job"]["id"]),
            ("JobCreated", urgent["job"]["id"]),
            ("VisitBooked", urgent["job"]["id"]),  # the urgent delivery is booked by the intake itself
        ]
        timeline = [entry["type"] for entry in created["job"]["timeline"]]
        assert timeline == ["JobCreated"]
        # what the reaction wrote went out with the same unit of work
        async with api.container.sessions() as session:
            rows = await Store(session).outbox_for_chat("web", "staff", "audit", 0)
        assert [r["payload"]["text"]["params"]["text"] for r in rows] == [
            f"job {created['job']['id']} created", f"job {urgent['job']['id']} created", f"job {urgent['job']['id']} created",
        ]
