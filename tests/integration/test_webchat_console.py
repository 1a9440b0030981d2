"""The web console is demo-only, runs on identities the server issues, and is bounded in size and rate."""

from __future__ import annotations

import io
import json
import re
import uuid
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import select
from limits import parse
from PIL import Image

from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.demo import CENTER, load_demo
from fieldchat.settings import Settings
from domain.model import Technician, Visit
from storage.repository import Store
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


DRIVER = {"key": "driver", "bot": "staff", "chat_type": "private", "user_name": "Wang", "language": "en"}


async def shown(client: httpx.AsyncClient, pane: dict, after: int = 0) -> list[dict]:
    answer = await client.get(
        "/chat/api/messages", params={"bot": pane["bot"], "pane": pane["key"], "chat_type": pane["chat_type"], "after": after}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["messages"]


async def press_on(client: httpx.AsyncClient, pane: dict, message: dict, label: str, *, pressed: int | None) -> None:
    """Press the button ``label`` of ``message``; ``pressed`` is the message the page says it was on (None: not said)."""
    data = next(b["data"] for row in message["buttons"] for b in row if label in b["label"])
    body = {"pane": pane, "message_id": uuid.uuid4().hex, "kind": "button", "data": data, "pressed": pressed}
    assert (await client.post("/chat/api/send", json=body)).status_code == 200


def labels(message: dict) -> list[str]:
    return [b["label"] for row in message["buttons"] for b in row]


async def test_an_answer_to_a_press_on_a_card_edits_that_card_in_place(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, links):
        async with opened(app) as client:
            await say(client, DRIVER, f"/start {links.panes['driver']}")
            await say(client, CUSTOMER, f"/start {links.customer}")
            order = next(m for m in await shown(client, CUSTOMER) if "Here is your order" in m["text"])
            assert order["shows"] == order["id"] and order["retires"] is None
            await press_on(client, CUSTOMER, order, "11:00", pressed=order["id"])
            # the page asks only for what is new: the answer says which message it changes, and the old buttons are gone
            (booked,) = await shown(client, CUSTOMER, after=order["id"])
            assert "Booked: delivery" in booked["text"] and labels(booked) == ["📅 Book installation"]
            assert booked["shows"] == order["id"] and booked["retires"] is None
            # read again from the start (a reloaded page), the card shows in the same place
            assert [m["shows"] for m in await shown(client, CUSTOMER)] == [order["id"], order["id"]]

            # the technician's offer: Accept answers on the offer card itself
            offer = next(m for m in await shown(client, DRIVER) if "New delivery" in m["text"])
            await press_on(client, DRIVER, offer, "Accept", pressed=offer["id"])
            accepted = next(m for m in await shown(client, DRIVER, after=offer["id"]) if "Accepted visit" in m["text"])
            assert accepted["shows"] == offer["id"] and "Accept" not in labels(accepted)


async def test_a_press_on_an_older_copy_shows_the_card_anew_and_takes_the_old_copys_buttons_off(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, links):
        async with opened(app) as client:
            await say(client, CUSTOMER, f"/start {links.customer}")
            order = next(m for m in await shown(client, CUSTOMER) if "Here is your order" in m["text"])
            # a page that does not say which message was pressed (or names another one) gets the card where it looks
            await press_on(client, CUSTOMER, order, "11:00", pressed=None)
            (booked,) = await shown(client, CUSTOMER, after=order["id"])
            assert booked["shows"] == booked["id"] and booked["retires"] == order["id"]
            await press_on(client, CUSTOMER, booked, "Book installation", pressed=order["id"] + 1000)
            assert (await client.post("/chat/api/send", json={
                "pane": CUSTOMER, "message_id": "bad", "kind": "button", "data": "x", "pressed": 0})).status_code == 422


def test_where_each_copy_of_a_card_shows_follows_the_relays_rule():
    def row(row_id: int, card: str = "offer:1", **payload) -> dict:
        return {"id": row_id, "card": card, "payload": payload}

    placed = webchat.place_cards([
        row(1),  # the offer
        row(2, card="order:1"),  # another card in the same chat is on its own
        row(3, purpose="status"),  # news: edits the card wherever it is
        row(4, answers="1"),  # an answer to a press on the copy shown: edits it
        row(5, answers="9"),  # an answer to a press elsewhere: shown anew, the old copy is retired
        row(6, purpose="assignment", album=[{"id": 1, "path": "p.jpg"}]),  # a photo cannot go into a shown text
        row(7, request="location", purpose="status"),  # nor a request for a location
        row(8, card="order:1", answers="2"),
    ])
    assert {row_id: (p.shows, p.retires) for row_id, p in placed.items()} == {
        1: (1, None), 2: (2, None), 3: (1, None), 4: (1, None), 5: (5, 1), 6: (6, 5), 7: (7, 6), 8: (2, None),
    }


def image(color: str, size: int = 24) -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (size, size), color).save(data, "PNG")
    return data.getvalue()


async def test_photos_sent_to_a_chat_are_shown_only_to_that_chats_own_session(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, links):
        container = app.state.container
        media = tmp_path / "media" / "telegram"
        media.mkdir(parents=True)
        first, second = media / "a.png", media / "b.png"
        first.write_bytes(image("red"))
        second.write_bytes(image("blue"))
        outside = tmp_path / "secret.png"
        outside.write_bytes(image("green"))
        async with opened(app) as dispatcher, opened(app) as stranger:
            await say(dispatcher, GROUP, f"/start {links.dispatcher}")
            answer = await dispatcher.get("/chat/api/messages", params={"bot": "staff", "pane": "group", "chat_type": "group"})
            chat_id = answer.json()["chat_id"]
            async with container.sessions() as session, session.begin():
                store = webchat.Store(session)
                for n, payload in enumerate([
                    {"text": {"key": "=", "params": {"text": "Photos of problem #1"}}, "album": [
                        {"id": 1, "path": str(first)}, {"id": 2, "path": str(second)}], "purpose": "alert"},
                    {"text": {"key": "=", "params": {"text": "one photo"}}, "photo_path": str(second)},
                    {"text": {"key": "=", "params": {"text": "a path outside the media"}}, "photo_path": str(outside)},
                ]):
                    await store.outbox_add(platform="web", bot="staff", chat_id=chat_id, payload=payload, dedup_key=f"t{n}",
                                           now=container.clock.now())
            album, single, smuggled = (await shown(dispatcher, GROUP))[-3:]
            assert len(album["photos"]) == 2 and len(single["photos"]) == 1
            for url, expected in zip(album["photos"] + single["photos"], [first, second, second]):
                got = await dispatcher.get(url)
                assert got.status_code == 200 and got.headers["content-type"] == "image/png"
                assert got.content == expected.read_bytes()
                assert "private" in got.headers["cache-control"]
            url = album["photos"][0]
            # another browser, another pane of the same browser, no session, a photo the message does not have: nothing
            assert (await stranger.get(url)).status_code == 404
            assert (await dispatcher.get(url.replace("pane=group", "pane=customer").replace("chat_type=group", "chat_type=private"))).status_code == 404
            async with browser(app) as nobody:
                assert (await nobody.get(url)).status_code == 401
            assert (await dispatcher.get(url.replace(f"/{album['id']}/0", f"/{album['id']}/2"))).status_code == 404
            assert (await dispatcher.get(smuggled["photos"][0])).status_code == 404


def test_the_location_the_page_offers_first_is_the_demo_orders_address():
    # a newcomer presses OK on the prompt: that must check in at the demo address, not 9,000 km away
    page = (webchat.STATIC / "chat.html").read_text()
    offered = re.search(r'var DEFAULT_LOCATION = "([-0-9.]+),([-0-9.]+)";', page)
    assert offered is not None and (float(offered[1]), float(offered[2])) == CENTER


async def driver_on_the_way(client: httpx.AsyncClient, links, group: dict) -> int:
    """The group and its dispatcher registered, the customer's delivery booked, the driver accepted it and is on the
    way; returns the visit."""
    await say(client, group, f"/start {links.dispatcher}")
    await say(client, group, f"/start {links.group}")
    await say(client, DRIVER, f"/start {links.panes['driver']}")
    await say(client, CUSTOMER, f"/start {links.customer}")
    order = next(m for m in await shown(client, CUSTOMER) if "Here is your order" in m["text"])
    await press_on(client, CUSTOMER, order, "11:00", pressed=order["id"])
    offer = next(m for m in await shown(client, DRIVER) if "New delivery" in m["text"])
    visit_id = int(next(b["data"] for row in offer["buttons"] for b in row if b["data"].startswith("acc:")).split(":")[1])
    await press_on(client, DRIVER, offer, "Accept", pressed=offer["id"])
    accepted = (await shown(client, DRIVER))[-1]
    await press_on(client, DRIVER, accepted, "On my way", pressed=accepted["shows"])
    return visit_id


async def test_what_the_bot_tells_a_dispatcher_alone_reaches_their_private_pane(sqlite_url, tmp_path):
    group = {**GROUP, "user": "dispatcher"}
    private = {"key": "dispatcher", "bot": "staff", "chat_type": "private", "user_name": "Dora", "language": "en"}
    async with console(sqlite_url, tmp_path) as (app, links):
        async with opened(app) as client:
            await driver_on_the_way(client, links, group)
            # a check-in far from the address (with the reason asked for) reaches the group with Call
            body = {"pane": DRIVER, "message_id": uuid.uuid4().hex, "kind": "location", "latitude": CENTER[0] + 0.05, "longitude": CENTER[1]}
            assert (await client.post("/chat/api/send", json=body)).status_code == 200
            await say(client, DRIVER, "The gate is locked, waiting at the side entrance")
            alert = next(m for m in await shown(client, group) if "checked in" in m["text"])
            await press_on(client, group, alert, "Call", pressed=alert["shows"])
            assert any("phone numbers are in your private chat" in text for text in await texts(client, group))
            # the numbers are in the dispatcher's own pane, never in the group
            (numbers,) = await texts(client, private)
            assert "13912345678" in numbers
            assert not any("13912345678" in text for text in await texts(client, group))


async def test_the_page_names_its_own_icon_so_browsers_do_not_ask_for_a_missing_one(sqlite_url, tmp_path):
    async with console(sqlite_url, tmp_path) as (app, _links):
        async with browser(app) as client:
            page = (await client.get("/chat")).text
            # without it every browser asks /favicon.ico, answered 404, a console error and an access-log line each time
            assert '<link rel="icon" href="data:,">' in page
            assert (await client.get("/favicon.ico")).status_code == 404


def test_a_browser_may_read_as_often_as_its_own_page_polls_for_hours():
    # every pane of the page asks for its messages every POLL_MS: the read limits must let an open page go on for hours,
    # or after a few minutes every pane shows a red dot and answers stop arriving
    page = (webchat.STATIC / "chat.html").read_text()
    poll_ms = int(re.search(r"var POLL_MS = (\d+);", page)[1])
    panes_block = page[page.index("var DEFAULT_PANES = ["):page.index("];", page.index("var DEFAULT_PANES = ["))]
    panes = len(re.findall(r"\{ key: ", panes_block))
    polls_per_hour = panes * 3600 * 1000 / poll_ms
    for scope in ("session", "address"):
        for rate in map(parse, webchat.RATES["read"][scope]):
            assert rate.amount * 3600 / rate.get_expiry() >= polls_per_hour, (scope, str(rate), polls_per_hour)


async def test_a_pin_at_the_door_from_the_page_is_recorded_as_the_best_it_can_share_and_alerts_nobody(sqlite_url, tmp_path):
    """Seen on the walk: every check-in from the page alerted the group, since a browser shares no live location."""
    group = {**GROUP, "user": "dispatcher"}
    async with console(sqlite_url, tmp_path) as (app, links):
        async with opened(app) as client:
            visit_id = await driver_on_the_way(client, links, group)
            body = {"pane": DRIVER, "message_id": uuid.uuid4().hex, "kind": "location", "latitude": CENTER[0], "longitude": CENTER[1]}
            assert (await client.post("/chat/api/send", json=body)).status_code == 200
            assert not any("checked in" in m["text"] for m in await shown(client, group))
            async with app.state.container.sessions() as session:
                visit = await Store(session).get(Visit, visit_id)
            assert (visit.status, visit.checkin_kind) == ("on_site", "pin_only")


async def test_the_demo_console_has_a_pane_for_the_shops_repairer_so_a_repair_request_has_someone_to_go_to(sqlite_url, tmp_path):
    """Seen on the walk: the demo's only repairer had no pane, so a scanned device's repair request reached nobody."""
    page = (webchat.STATIC / "chat.html").read_text()
    assert '{ key: "repairer"' in page and 'startFromLink(panes.repairer, "repairer", get("repairer"))' in page
    repairer = {"key": "repairer", "bot": "staff", "chat_type": "private", "user_name": "Zhao", "language": "en"}
    async with console(sqlite_url, tmp_path) as (app, links):
        async with app.state.container.sessions() as session:
            technicians = (await session.execute(select(Technician))).scalars().all()
        assert [t.name for t in technicians if "repairer" in t.roles] == ["Zhao Lei"]
        assert links.panes["repairer"] == links.technicians["Zhao Lei"]
        async with opened(app) as client:
            await say(client, repairer, f"/start {links.panes['repairer']}")
            welcome = [m["text"] for m in await shown(client, repairer)]
            assert any("You're registered" in text for text in welcome), welcome  # Zhao's link: the pane is his chat now
