"""The web console is demo-only, runs on identities the server issues, and is bounded in size and rate."""

from __future__ import annotations

import io
import json
import uuid
from contextlib import asynccontextmanager

import httpx
from PIL import Image

from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.demo import load_demo
from fieldchat.settings import Settings
from tests.support.harness import START
from webhooks import webchat
from webhooks.app import create_app

CUSTOMER = {"key": "customer", "bot": "customer", "chat_type": "private", "user_name": "Ann", "language": "en"}
GROUP = {"key": "group", "bot": "staff", "chat_type": "group", "user_name": "Dora", "language": "en"}


@asynccontextmanager
async def console(sqlite_url, tmp_path, rates=None, **settings):
    config = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", web_console=True, **settings)
    container = build(config, ManualClock(START))
    app = create_app(container, run_background=False)
    async with app.router.lifespan_context(app):
        if rates:
            app.state.console = webchat.ConsoleGuard(rates=rates)
        links = await load_demo(container.bus)
        yield app, links


def browser(app) -> httpx.AsyncClient:
    """One browser: its own cookie jar."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@asynccontextmanager
async def opened(app):
    """A browser that has opened the page (and so holds a session cookie)."""
    async with browser(app) as client:
        assert (await client.get("/chat")).status_code == 200
        yield client


async def say(client: httpx.AsyncClient, pane: dict, text: str, **extra) -> httpx.Response:
    body = {"pane": pane, "message_id": uuid.uuid4().hex, "kind": "text", "text": text, **extra}
    return await client.post("/chat/api/send", json=body)


async def press(client: httpx.AsyncClient, pane: dict, data: str) -> httpx.Response:
    body = {"pane": pane, "message_id": uuid.uuid4().hex, "kind": "button", "data": data}
    return await client.post("/chat/api/send", json=body)


async def texts(client: httpx.AsyncClient, pane: dict) -> list[str]:
    answer = await client.get("/chat/api/messages", params={"bot": pane["bot"], "pane": pane["key"], "chat_type": pane["chat_type"]})
    assert answer.status_code == 200, answer.text
    return [m["text"] for m in answer.json()["messages"]]


async def test_without_demo_mode_the_console_does_not_exist(sqlite_url, tmp_path):
    config = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media")
    app = create_app(build(config, ManualClock(START)), run_background=False)
    async with app.router.lifespan_context(app), browser(app) as client:
        assert (await client.get("/chat")).status_code == 404
        assert (await client.get("/chat/api/messages", params={"bot": "customer", "pane": "customer"})).status_code == 404
        assert (await say(client, CUSTOMER, "/start x")).status_code == 404
        assert (await client.post("/chat/api/photo")).status_code == 404
        assert not [path for path in (await client.get("/openapi.json")).json()["paths"] if path.startswith("/chat")]


async def test_the_page_issues_a_signed_http_only_session_and_the_api_refuses_requests_without_one(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, _links):
        async with browser(app) as stranger:
            assert (await say(stranger, CUSTOMER, "hello")).status_code == 401
            stranger.cookies.set(webchat.COOKIE, "forged.value.here", domain="testserver.local", path="/chat")
            assert (await stranger.get("/chat/api/messages", params={"bot": "customer", "pane": "customer"})).status_code == 401
        async with browser(app) as client:
            page = await client.get("/chat")
            cookie = page.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/chat" in cookie
            assert (await say(client, CUSTOMER, "hello")).status_code == 200


async def test_ids_posted_by_the_page_are_refused_and_each_browser_reaches_only_its_own_chats(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, links):
        async with opened(app) as owner, opened(app) as other:
            assert (await say(owner, CUSTOMER, f"/start {links.customer}")).status_code == 200
            mine = await texts(owner, CUSTOMER)
            assert any("3-seat fabric sofa" in text for text in mine)
            # the old API took chat and user ids from the body: now they are not part of it at all
            forged = {**CUSTOMER, "chat_id": "anything", "user_id": "anything"}
            assert (await say(other, forged, "/status")).status_code == 422
            # the same pane name in another browser is another chat: nothing of the owner's order shows
            assert (await say(other, CUSTOMER, "/status")).status_code == 200
            theirs = await texts(other, CUSTOMER)
            assert theirs and not any("sofa" in text or "Nanjing" in text for text in theirs)
            # nor can the other browser take the customer's link over: it was used by the owner's chat
            await say(other, CUSTOMER, f"/start {links.customer}")
            assert not any("3-seat fabric sofa" in text for text in await texts(other, CUSTOMER))


async def test_a_new_browser_cannot_act_as_a_registered_dispatcher(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, links):
        async with opened(app) as dispatcher, opened(app) as intruder:
            await say(dispatcher, GROUP, f"/start {links.dispatcher}")
            await say(dispatcher, GROUP, f"/start {links.group}")
            assert any("registered as a dispatcher" in text for text in await texts(dispatcher, GROUP))
            # the intruder's group pane is a chat of its own, and its user is nobody's dispatcher
            await say(intruder, GROUP, f"/start {links.dispatcher}")
            await press(intruder, GROUP, "xa:1")
            said = await texts(intruder, GROUP)
            assert not any("registered as a dispatcher" in text for text in said)
            assert any("Only registered dispatchers" in text or "already" in text for text in said), said


async def test_sends_uploads_and_reads_are_rate_limited_per_session_and_per_address(sqlite_url, tmp_path):
    rates = {"send": {"session": ("5/minute",), "address": ("6/minute",)}, "read": {"session": ("8/minute",)}, "session": {"address": ("3/hour",)}}
    async with console(sqlite_url, tmp_path, rates=rates) as (app, _links):
        async with opened(app) as client:
            answers = [(await say(client, CUSTOMER, f"hello {n}")).status_code for n in range(7)]
            assert answers == [200] * 5 + [429] * 2
            limited = await say(client, CUSTOMER, "one more")
            assert "Retry-After" in limited.headers and "at most 5 per 1 minute" in limited.json()["detail"]
            reads = [(await client.get("/chat/api/messages", params={"bot": "customer", "pane": "customer"})).status_code for _ in range(9)]
            assert reads.count(429) == 1
            # a second browser from the same address shares the address's allowance
            async with opened(app) as neighbour:
                assert (await say(neighbour, CUSTOMER, "hi")).status_code == 200
                crowded = await say(neighbour, CUSTOMER, "hi again")
                assert crowded.status_code == 429 and "per address" in crowded.json()["detail"]
        # new sessions from one address are bounded too (the two above counted)
        pages = []
        for _ in range(2):
            async with browser(app) as fresh:
                pages.append((await fresh.get("/chat")).status_code)
        assert pages == [200, 429]


async def test_bodies_are_capped_before_they_are_read(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path, photo_max_mb=1) as (app, _links):
        async with opened(app) as client:
            huge = json.dumps({"pane": CUSTOMER, "message_id": "m1", "kind": "text", "text": "x" * (2 * 1024 * 1024)})
            answer = await client.post("/chat/api/send", content=huge, headers={"content-type": "application/json"})
            assert answer.status_code == 413 and "at most 1048576 bytes" in answer.json()["detail"]

            async def chunks():
                for _ in range(40):
                    yield b" " * 65536  # no Content-Length: the stream is counted as it arrives

            streamed = await client.post("/chat/api/send", content=chunks(), headers={"content-type": "application/json"})
            assert streamed.status_code == 413
            photo = {"file": ("big.jpg", b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024), "image/jpeg")}
            answer = await client.post("/chat/api/photo", data={"pane": json.dumps(CUSTOMER), "message_id": "p1"}, files=photo)
            assert answer.status_code == 413
            deep = await client.get("/chat/api/messages", params={"bot": "customer", "pane": "customer", "after": 2**70})
            assert deep.status_code == 422


async def test_a_photo_nobody_asked_for_is_not_stored(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, _links):
        async with opened(app) as client:
            image = io.BytesIO()
            Image.new("RGB", (32, 32), "red").save(image, "JPEG")
            files = {"file": ("p.jpg", image.getvalue(), "image/jpeg")}
            for n in range(3):
                answer = await client.post("/chat/api/photo", data={"pane": json.dumps(CUSTOMER), "message_id": f"p{n}"}, files=files)
                assert answer.status_code == 200
            assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.jpg"))
            assert await texts(client, CUSTOMER)  # each got the usual hint
