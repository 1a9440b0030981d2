"""Signed status callbacks to order sources: every milestone reaches the fake ERP signed and in each job's order, through a
receiver that is down for ten minutes without loss or duplicates; parked after N failures with a dispatcher alert; resent."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from domain import callbacks as cb
from domain import events as ev
from fieldchat import logs
from fieldchat.cli import configure_logging
from fieldchat.fakes.erp_receiver import FakeErp
from fieldchat.settings import Settings
from storage import tables
from storage.callbacks import known_secrets
from tests.support.api import Api, running_api
from tests.support.harness import SHOP, World, keys
from tests.support.setups import booked_and_accepted, dispatch_group
from tests.support.telegram import JPEG

SECRET = "erp-callback-secret-0123456789"
STEP = timedelta(seconds=15)  # how far the clock moves between relay ticks


class Crash(BaseException):
    """A relay process dying mid-send: not an Exception, so nothing in the relay records an outcome."""


def world_of(api: Api) -> World:
    return World(api.container, api.container.clock, api.tmp_path)


async def erp(api: Api) -> FakeErp:
    clock = api.container.clock
    return await FakeErp(SECRET, clock=lambda: clock.now().timestamp()).start()


async def connect(api: Api, receiver: FakeErp, source: str = "erp") -> None:
    answer = await api.client.put(f"/api/v1/order-sources/{source}/callback", json={"url": receiver.url, "secret": SECRET})
    assert answer.status_code == 200, answer.text


async def callbacks(api: Api) -> list[dict]:
    async with api.container.sessions() as session:
        statement = select(tables.outbox).where(tables.outbox.c.platform == cb.PLATFORM).order_by(tables.outbox.c.id)
        return [dict(r) for r in (await session.execute(statement)).mappings()]


async def tick_until(api: Api, done: Callable[[], Awaitable[bool]], *, limit: timedelta, step: timedelta = STEP) -> timedelta:
    """Relay ticks on the manual clock (no sleeping) until ``done``; returns how much clock time it took."""
    clock = api.container.clock
    start = clock.now()
    while not await done():
        assert clock.now() - start <= limit, f"not done after {limit}: {await callbacks(api)}"
        while await api.container.relay.drain_once():
            pass
        if not await done():
            clock.advance(step)
    return clock.now() - start


def all_in_state(api: Api, state: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await callbacks(api)
        return len(rows) == count and all(r["status"] == state for r in rows)

    return check


async def milestones(api: Api, job_id: int, visit_id: int, *kinds: type[ev.Event]) -> None:
    """Milestones raised on the bus, as the flows raise them (the story test drives the real flows)."""
    await api.container.bus.run(f"test:{job_id}:{visit_id}:{len(kinds)}", lambda ctx: _events(job_id, visit_id, kinds))


async def _events(job_id: int, visit_id: int, kinds) -> list[ev.Event]:
    return [kind(job_id, visit_id, {"technician_id": None}) for kind in kinds]


@pytest.fixture
async def public_api(database_url, tmp_path):
    async with running_api(database_url, tmp_path, public_url="https://ops.example.com") as running:
        yield running


@pytest.fixture
async def strict_api(database_url, tmp_path):
    """Callbacks park after three failed attempts."""
    async with running_api(database_url, tmp_path, callback_max_attempts=3) as running:
        yield running


# --- the story -----------------------------------------------------------------------------------


async def test_every_milestone_of_a_sofa_delivery_reaches_the_erp_signed_in_order_with_signed_photo_links(public_api: Api):
    api = public_api
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        world = world_of(api)
        order, customer, driver, group = await booked_and_accepted(world)
        visit = order.visits[0]
        await driver.press(f"go:{visit.id}")
        await driver.press(f"rp:{visit.id}")
        await driver.press(f"rr:{visit.id}:goods_damaged")
        await driver.send("Corner crushed")
        media = api.tmp_path / "media" / "web"
        media.mkdir(parents=True, exist_ok=True)
        (media / "crushed.jpg").write_bytes(JPEG)
        await driver.photo(media / "crushed.jpg")
        assert keys(await driver.press("rsend"))[-1] == "tech.report_sent"
        alert = next(m for m in await group.inbox() if m.key == "group.exception")
        await group.press(alert.button("xa"))
        await driver.press(f"arr:{visit.id}")
        await driver.location(*SHOP)
        await driver.press(f"st:{visit.id}")
        await driver.press(f"ans:{visit.id}:0:yes")
        assert keys(await driver.press(f"done:{visit.id}")) == ["tech.completed"]
        await customer.press(f"cf:{visit.id}")

        await tick_until(api, all_in_state(api, "sent", 9), limit=timedelta(0))

        assert receiver.rejected == [] and receiver.duplicates == {}
        assert [body["type"] for body in receiver.accepted] == [
            "order.received", "visit.booked", "visit.accepted", "visit.on_the_way", "problem.reported", "visit.arrived",
            "visit.completed", "visit.confirmed", "job.completed",
        ]
        first = receiver.accepted[0]
        assert first["order"] == {"source": "erp", "external_ref": "SO-1", "job_id": order.job.id, "status": "open"}
        completed = next(body for body in receiver.accepted if body["type"] == "visit.completed")
        assert completed["visit"]["id"] == visit.id and completed["visit"]["technician"]["name"] == "Wang"
        assert "phone" not in json.dumps(completed["visit"])
        assert completed["data"]["checklist"] == [{"step": "intact", "value": "yes", "photo_id": None}]
        problem = next(body for body in receiver.accepted if body["type"] == "problem.reported")
        assert (problem["data"]["reason"], problem["data"]["note"]) == ("goods_damaged", "Corner crushed")
        # the photos come as signed, expiring links on the public address, the same in both callbacks
        (photo,) = problem["data"]["photos"]
        assert completed["data"]["photos"] == [photo]
        assert photo["url"].startswith(f"https://ops.example.com/api/v1/photos/{photo['id']}?expires=")
        path = photo["url"].removeprefix("https://ops.example.com")
        served = await api.client.get(path, headers={"Authorization": ""})
        assert served.status_code == 200 and served.content == JPEG
        api.container.clock.advance(timedelta(days=8))
        assert (await api.client.get(path, headers={"Authorization": ""})).status_code == 401

        # each request: the event id in the header and the body, the signature over "timestamp.body"
        request = receiver.requests[0]
        assert request.headers[cb.EVENT_ID_HEADER] == first["id"] and request.headers[cb.EVENT_TYPE_HEADER] == "order.received"
        timestamp = request.headers[cb.TIMESTAMP_HEADER]
        assert request.headers[cb.SIGNATURE_HEADER] == cb.signature(SECRET, int(timestamp), request.body)
        assert len({body["id"] for body in receiver.accepted}) == 9
    finally:
        await receiver.stop()


async def test_a_source_without_an_endpoint_gets_no_callbacks(api: Api):
    world = world_of(api)
    order = await world.order()
    await milestones(api, order.job.id, order.visits[0].id, ev.VisitEnRoute)
    assert await callbacks(api) == []


# --- the receiver fails ---------------------------------------------------------------------------


async def test_callbacks_survive_a_receiver_down_for_ten_minutes_nothing_lost_or_doubled_each_jobs_order_kept(api: Api):
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        world = world_of(api)
        orders = [await world.order(f"SO-{n}", phone=f"1391234000{n}") for n in range(2)]
        receiver.down_for(600)  # connections dropped, as by a server that is off
        for order in orders:
            await milestones(api, order.job.id, order.visits[0].id, ev.VisitEnRoute, ev.VisitCheckedIn)
            await milestones(api, order.job.id, order.visits[0].id, ev.VisitCompleted)
        written = await callbacks(api)
        assert len(written) == 8

        took = await tick_until(api, all_in_state(api, "sent", 8), limit=timedelta(minutes=30))

        assert took >= timedelta(minutes=10)
        assert receiver.duplicates == {} and receiver.rejected == []
        assert sorted(receiver.event_ids) == sorted(row["payload"]["callback"]["id"] for row in written)
        for order in orders:
            mine = [row["payload"]["callback"]["id"] for row in written if row["chat_id"] == str(order.job.id)]
            assert [i for i in receiver.event_ids if i in mine] == mine
            # while the receiver was down, only the job's first callback was tried: a later one never went before it
            tried = [r.headers[cb.EVENT_ID_HEADER] for r in receiver.requests if r.headers[cb.EVENT_ID_HEADER] in mine]
            assert tried == sorted(tried, key=mine.index)
        head = next(row for row in await callbacks(api) if row["id"] == written[0]["id"])
        assert head["attempts"] > 3 and head["maybe_sent"] == 0
    finally:
        await receiver.stop()


async def test_5xx_and_4xx_answers_are_retried_with_back_off_and_a_retry_after_is_honoured(api: Api):
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        order = await world_of(api).order()
        receiver.fail_next(500, 404, 429)
        await api.container.relay.drain_once()
        row = (await callbacks(api))[0]
        assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "HTTP 500")
        await tick_until(api, all_in_state(api, "sent", 1), limit=timedelta(minutes=5), step=timedelta(seconds=1))
        assert [r.status for r in receiver.requests] == [500, 404, 429, 200]
        assert receiver.event_ids == [row["payload"]["callback"]["id"]] and order.job.id == int(row["chat_id"])
    finally:
        await receiver.stop()


async def test_a_send_that_reached_the_erp_but_was_never_recorded_is_sent_again_counted_and_seen_twice(api: Api, monkeypatch):
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        await world_of(api).order()
        sender = api.container.relay.senders[cb.PLATFORM]
        real_post = sender.post

        async def post_then_die(*args):
            await real_post(*args)
            raise Crash()

        monkeypatch.setattr(sender, "post", post_then_die)
        with pytest.raises(Crash):
            await api.container.relay.drain_once()
        monkeypatch.setattr(sender, "post", real_post)
        assert await api.container.relay.drain_once() == 0  # the dead relay's lease still holds the row
        api.container.clock.advance(timedelta(seconds=91))
        await tick_until(api, all_in_state(api, "sent", 1), limit=timedelta(0))

        (row,) = await callbacks(api)
        event_id = row["payload"]["callback"]["id"]
        assert row["maybe_sent"] == 1 and receiver.duplicates == {event_id: 1}  # the same event id, told apart by the receiver
    finally:
        await receiver.stop()


# --- parking, the alert, resending ----------------------------------------------------------------


async def test_after_n_failures_a_callback_is_parked_the_dispatchers_told_and_resend_sends_it_and_those_behind_in_order(strict_api: Api):
    api = strict_api
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        world = world_of(api)
        group = await dispatch_group(world)
        order = await world.order()
        receiver.down_for(24 * 3600, status=500)
        await milestones(api, order.job.id, order.visits[0].id, ev.VisitEnRoute)

        await tick_until(api, all_in_state(api, "parked", 2), limit=timedelta(hours=1))

        first, second = await callbacks(api)
        assert first["attempts"] == 3 and first["last_error"] == "gave up after 3 attempts: HTTP 500"
        alerts = [m for m in await group.inbox() if m.key == "group.callback_parked"]
        assert [a.params["callback"] for a in alerts] == [first["id"], second["id"]]
        assert alerts[0].params["milestone"] == "order.received" and alerts[0].params["attempts"] == 3
        assert alerts[0].button("cbr") == f"cbr:{first['id']}"
        timeline = (await world.job(order.job.id))["timeline"]
        assert [e["type"] for e in timeline].count("CallbackParked") == 2

        listed = (await api.client.get("/api/v1/callbacks", params={"state": "parked"})).json()["callbacks"]
        assert [(c["id"], c["type"], c["state"], c["job_id"]) for c in listed] == [
            (first["id"], "order.received", "parked", order.job.id), (second["id"], "visit.on_the_way", "parked", order.job.id),
        ]
        assert (await api.client.get("/api/v1/callbacks", params={"state": "sent"})).json()["callbacks"] == []

        receiver.down_for(0)  # their system works again
        resent = await api.client.post(f"/api/v1/callbacks/{first['id']}/resend")
        assert resent.status_code == 200 and resent.json() == {"resent": [first["id"], second["id"]]}
        again = await api.client.post(f"/api/v1/callbacks/{first['id']}/resend")
        assert again.status_code == 409 and again.json()["detail"] == "callback_not_parked"

        await tick_until(api, all_in_state(api, "sent", 2), limit=timedelta(0))
        assert [body["type"] for body in receiver.accepted] == ["order.received", "visit.on_the_way"]
        assert receiver.duplicates == {}
        assert (await api.client.post(f"/api/v1/callbacks/{first['id']}/resend")).status_code == 409
        assert (await api.client.post("/api/v1/callbacks/999999/resend")).status_code == 404
    finally:
        await receiver.stop()


async def test_a_dispatcher_resends_a_parked_callback_from_its_alert(strict_api: Api):
    api = strict_api
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        world = world_of(api)
        group = await dispatch_group(world)
        await world.order()
        receiver.fail_next(503, 503, 503)
        await tick_until(api, all_in_state(api, "parked", 1), limit=timedelta(minutes=10))
        (alert,) = [m for m in await group.inbox() if m.key == "group.callback_parked"]

        assert keys(await group.press(alert.button("cbr"), user_id="nosy")) == ["dispatcher.not_allowed"]
        assert keys(await group.press(alert.button("cbr"))) == ["dispatcher.callback_resent"]
        await tick_until(api, all_in_state(api, "sent", 1), limit=timedelta(0))
        assert [body["type"] for body in receiver.accepted] == ["order.received"]
        assert keys(await group.press(alert.button("cbr"))) == ["error.callback_not_parked"]
        assert keys(await group.press("cbr:999999")) == ["error.callback_not_found"]
    finally:
        await receiver.stop()


async def test_a_callback_whose_source_lost_its_endpoint_is_parked_at_once_and_told(strict_api: Api):
    api = strict_api
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        world = world_of(api)
        group = await dispatch_group(world)
        await world.order()
        assert (await api.client.delete("/api/v1/order-sources/erp/callback")).status_code == 204
        await api.container.relay.drain_once()
        (row,) = await callbacks(api)
        assert (row["status"], row["attempts"]) == ("parked", 1) and "no callback endpoint" in row["last_error"]
        assert "group.callback_parked" in keys(await group.inbox())
        assert receiver.requests == []
    finally:
        await receiver.stop()


# --- the endpoint API -----------------------------------------------------------------------------


@pytest.fixture
def captured():
    """The product's own log set-up (fieldchat.cli.configure_logging: the one below is checked to be among its sources),
    at DEBUG, where the database driver logs every statement's parameters, writing into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("DEBUG", [], [known_secrets], stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_the_serving_log_set_up_masks_callback_secrets(monkeypatch):
    given: list = []
    monkeypatch.setattr(logs, "configure", lambda level, secrets, sources=(), stream=None: given.extend(sources))
    configure_logging(Settings(_env_file=None))
    assert known_secrets in given


async def test_the_endpoint_api_checks_url_and_secret_and_never_shows_or_logs_the_secret(api: Api, captured):
    client = api.client
    url = "/api/v1/order-sources/erp/callback"
    assert (await client.get(url)).status_code == 404
    refused = {
        "plain http to a public host": {"url": "http://erp.example.com/cb", "secret": SECRET},
        "not http": {"url": "ftp://erp.example.com/cb", "secret": SECRET},
        "credentials in the URL": {"url": "https://user:pw@erp.example.com/cb", "secret": SECRET},
        "a short secret": {"url": "https://erp.example.com/cb", "secret": "short"},
        "a secret with spaces around": {"url": "https://erp.example.com/cb", "secret": f" {SECRET} "},
        "an unknown field": {"url": "https://erp.example.com/cb", "secret": SECRET, "extra": 1},
    }
    for why, body in refused.items():
        answer = await client.put(url, json=body)
        assert answer.status_code == 422, why
    assert (await client.put(url, content=b"x", headers={"Content-Type": "text/plain"})).status_code == 415

    receiver = await erp(api)
    try:
        answer = await client.put(url, json={"url": receiver.url, "secret": SECRET})
        assert answer.status_code == 200 and SECRET not in answer.text
        assert answer.json()["url"] == receiver.url and answer.json()["secret_set"] is True
        shown = await client.get(url)
        assert shown.status_code == 200 and SECRET not in shown.text
        # a private-network ERP may take plain http
        assert (await client.put("/api/v1/order-sources/shop/callback", json={"url": "http://192.168.1.20/cb", "secret": SECRET})).status_code == 200
        receiver.fail_next(500)
        await world_of(api).order()
        await tick_until(api, all_in_state(api, "sent", 1), limit=timedelta(minutes=2), step=timedelta(seconds=5))
        listed = await client.get("/api/v1/callbacks")
        assert SECRET not in listed.text and listed.json()["callbacks"][0]["state"] == "sent"
    finally:
        await receiver.stop()
    # a line that carries it anyway (a driver's debug output, a traceback) is masked too
    logging.getLogger("anything").warning("statement parameters: ('erp', %r)", SECRET)
    assert "statement parameters: ('erp', '***')" in captured.getvalue() and SECRET not in captured.getvalue()
    assert (await client.get("/api/v1/callbacks", params={"state": "lost"})).status_code == 422
    assert (await client.get("/api/v1/callbacks", params={"limit": 0})).status_code == 422
    assert (await client.post("/api/v1/callbacks/0/resend")).status_code == 422
    assert (await client.delete("/api/v1/order-sources/nobody/callback")).status_code == 404
    assert (await client.get("/api/v1/callbacks", headers={"Authorization": ""})).status_code == 401


# --- the fake ERP checks what it receives ---------------------------------------------------------


async def test_the_fake_erp_refuses_a_flipped_byte_an_old_timestamp_and_a_missing_signature():
    now = 1_800_000_000.0
    receiver = await FakeErp(SECRET, clock=lambda: now).start()
    body = json.dumps({"id": "evt_1", "type": "visit.completed"}).encode()

    def headers(timestamp: int, signed: bytes, secret: str = SECRET) -> dict[str, str]:
        return {cb.TIMESTAMP_HEADER: str(timestamp), cb.SIGNATURE_HEADER: cb.signature(secret, timestamp, signed),
                cb.EVENT_ID_HEADER: "evt_1", "Content-Type": "application/json"}

    flipped = bytearray(body)
    flipped[10] ^= 0x01
    try:
        async with httpx.AsyncClient() as client:
            good = headers(int(now), body)
            assert (await client.post(receiver.url, content=bytes(flipped), headers=good)).status_code == 401
            assert (await client.post(receiver.url, content=body, headers=headers(int(now), body, "another-secret-0123"))).status_code == 401
            assert (await client.post(receiver.url, content=body, headers=headers(int(now) - 301, body))).status_code == 401
            missing = {k: v for k, v in good.items() if k != cb.SIGNATURE_HEADER}
            assert (await client.post(receiver.url, content=body, headers=missing)).status_code == 401
            assert receiver.accepted == []
            assert (await client.post(receiver.url, content=body, headers=good)).status_code == 200
            assert (await client.post(receiver.url, content=body, headers=good)).status_code == 200
        assert receiver.event_ids == ["evt_1", "evt_1"] and receiver.duplicates == {"evt_1": 1}
        assert len(receiver.rejected) == 4
    finally:
        await receiver.stop()


async def test_a_changed_secret_applies_to_callbacks_already_queued(api: Api):
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        await world_of(api).order()
        new_secret = "a-brand-new-secret-9876543210"
        assert (await api.client.put("/api/v1/order-sources/erp/callback", json={"url": receiver.url, "secret": new_secret})).status_code == 200
        await api.container.relay.drain_once()
        assert receiver.accepted == [] and len(receiver.rejected) == 1  # the receiver still checks the old one
        receiver.secret = new_secret
        await tick_until(api, all_in_state(api, "sent", 1), limit=timedelta(minutes=2), step=timedelta(seconds=5))
        assert len(receiver.accepted) == 1
    finally:
        await receiver.stop()


async def test_a_parked_callback_left_alone_holds_back_nothing(strict_api: Api):
    """Parking frees the job's later callbacks: they are tried (and sent) without waiting for the resend."""
    api = strict_api
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        order = await world_of(api).order()
        receiver.fail_next(500, 500, 500)
        await tick_until(api, all_in_state(api, "parked", 1), limit=timedelta(minutes=10))
        await milestones(api, order.job.id, order.visits[0].id, ev.VisitEnRoute)
        await api.container.relay.drain_once()
        states = [row["status"] for row in await callbacks(api)]
        assert states == ["parked", "sent"]
        assert all(row["claimed_by"] is None for row in await callbacks(api))  # nothing is left claimed
    finally:
        await receiver.stop()


async def test_the_order_source_hears_a_cancellation_and_a_visit_closed_with_the_customers_code(api: Api):
    receiver = await erp(api)
    try:
        await connect(api, receiver)
        world = world_of(api)
        await world.order("SO-7", services=("delivery",))
        closed = await world.order("SO-8", services=("delivery",))
        await milestones(api, closed.job.id, closed.visits[0].id, ev.CompletionCodeAccepted)
        answer = await api.client.post("/api/v1/order-sources/erp/orders/SO-7/cancel", json={"reason": "out of stock"})
        assert answer.status_code == 200, answer.text

        async def all_sent() -> bool:
            rows = await callbacks(api)
            return len(rows) >= 4 and all(r["status"] == "sent" for r in rows)

        await tick_until(api, all_sent, limit=timedelta(minutes=5))
        received = [(body["order"]["external_ref"], body["type"]) for body in receiver.accepted]
        assert ("SO-8", "visit.code_verified") in received and ("SO-7", "order.cancelled") in received, received
        verified = next(body for body in receiver.accepted if body["type"] == "visit.code_verified")
        assert "code" not in json.dumps(verified["data"])
    finally:
        await receiver.stop()
