"""Status callbacks end to end: fieldchat served over real HTTP with its relay loop running on the real clock; an ERP
connects its callback URL, posts an order, and its receiver gets the milestones signed, once each, retried past a 500."""

from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager

import httpx
import uvicorn

from domain import callbacks as cb
from fieldchat.container import build
from fieldchat.fakes.erp_receiver import FakeErp
from fieldchat.settings import Settings
from tests.support.api import AUTH, TOKEN, order_body
from tests.support.relay import until
from webhooks.app import create_app

SECRET = "e2e-callback-secret-0123456789"


@asynccontextmanager
async def served(database_url: str, tmp_path):
    settings = Settings(_env_file=None, database_url=database_url, media_dir=tmp_path / "media", api_token=TOKEN,
                        relay_interval_seconds=0.2, run_timers=False)
    app = create_app(build(settings))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", lifespan="on", log_config=None, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: _started(server), 15, "the server did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def test_an_erp_connects_its_callback_posts_an_order_and_hears_back_signed_past_a_failure(database_url, tmp_path):
    receiver = await FakeErp(SECRET).start()
    try:
        async with served(database_url, tmp_path) as base, httpx.AsyncClient(base_url=base, headers=AUTH) as client:
            connected = await client.put("/api/v1/order-sources/erp/callback", json={"url": receiver.url, "secret": SECRET})
            assert connected.status_code == 200 and SECRET not in connected.text
            receiver.fail_next(500)  # the first try fails: the relay retries it after its back-off

            created = await client.post("/api/v1/orders", json=order_body("SO-E2E"))
            assert created.status_code == 201
            job_id = created.json()["job"]["id"]
            await until(lambda: _received(receiver, 1), 20, lambda: f"nothing accepted: {receiver.requests}")

            (body,) = receiver.accepted
            assert (body["type"], body["order"]["job_id"], body["order"]["external_ref"]) == ("order.received", job_id, "SO-E2E")
            assert [r.status for r in receiver.requests] == [500, 200]
            first, second = receiver.requests
            assert first.event_id is None and first.headers[cb.EVENT_ID_HEADER] == second.headers[cb.EVENT_ID_HEADER] == body["id"]
            assert first.body == second.body  # the same bytes every time; only the timestamp and signature are new
            assert cb.verify(SECRET, second.headers[cb.TIMESTAMP_HEADER], second.headers[cb.SIGNATURE_HEADER], second.body, second.at)
            assert receiver.duplicates == {}

            async def recorded() -> bool:  # the relay records the outcome right after the receiver answered
                listed = (await client.get("/api/v1/callbacks", params={"job_id": job_id})).json()["callbacks"]
                return [(c["type"], c["state"], c["attempts"]) for c in listed] == [("order.received", "sent", 2)]

            await until(recorded, 10, "the delivery was not recorded as sent after two attempts")
    finally:
        await receiver.stop()


async def _received(receiver: FakeErp, count: int) -> bool:
    return len(receiver.accepted) >= count
