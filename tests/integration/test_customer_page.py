"""The customer page the customer link opens: the customer's own chat only, bound to their link (expiring, revocable);
nothing of another chat is reachable from it, whatever a request names; the console stays demo-only."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.support.api import Api, order_body, running_api, token_of
from tests.support.harness import World


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


@pytest.fixture
async def shop(sqlite_url, tmp_path):
    """fieldchat outside demo mode, without messengers: the page is how customers chat."""
    async with running_api(sqlite_url, tmp_path, web_console=False) as api:
        yield api


def browser(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://testserver")


async def ordered(api: Api, ref: str, phone: str = "+86 139 1234 5678", name: str = "Zhang Wei") -> tuple[int, str, str]:
    answer = (await api.client.post("/api/v1/orders", json=order_body(ref, **{"customer.phone": phone, "customer.name": name}))).json()
    link = answer["customer_link"]
    return answer["job"]["id"], link, token_of(link, "customer")


async def opened(api: Api, token: str) -> httpx.AsyncClient:
    client = browser(api)
    answer = await client.post("/customer/api/session", json={"token": token})
    assert answer.status_code == 200, answer.text
    assert answer.json()["labels"]["send"]
    return client


async def texts(client: httpx.AsyncClient, **params) -> list[str]:
    answer = await client.get("/customer/api/messages", params=params)
    assert answer.status_code == 200, answer.text
    return [m["text"] for m in answer.json()["messages"]]


async def test_the_customer_link_opens_a_customer_only_page_for_their_own_job(shop: Api):
    _job, link, token = await ordered(shop, "SO-1")
    assert link.startswith("http://testserver/customer#customer=")
    page = await browser(shop).get("/customer")
    assert page.status_code == 200 and 'name="viewport"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"] and "http" not in page.text.split("<body>")[1].split("</body>")[0]
    client = await opened(shop, token)
    cookie = next(h for h in (await client.post("/customer/api/session", json={"token": token})).headers.get_list("set-cookie"))
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "path=/customer" in cookie.lower()
    welcome = await texts(client)
    assert welcome and "3-seat sofa" in "\n".join(welcome)
    # the chat answers what the customer writes there
    sent = await client.post("/customer/api/send", json={"message_id": "m1", "kind": "text", "text": "/help"})
    assert sent.status_code == 200
    assert len(await texts(client)) > len(welcome)
    await client.aclose()


async def test_another_chats_id_in_any_parameter_reaches_nothing_of_it(shop: Api):
    _a, _l, first_token = await ordered(shop, "SO-A")
    _b, _l2, second_token = await ordered(shop, "SO-B", phone="+86 139 0000 1111", name="Li Na")
    first, second = await opened(shop, first_token), await opened(shop, second_token)
    second_messages = (await second.get("/customer/api/messages")).json()["messages"]
    first_messages = (await first.get("/customer/api/messages")).json()["messages"]
    assert "Li Na" not in str(first_messages) and second_messages
    # the rows of the second chat, named by id in every parameter the first page could send
    other_ids = {m["id"] for m in second_messages} - {m["id"] for m in first_messages}
    for row_id in other_ids:
        assert (await first.get(f"/customer/api/photos/{row_id}/0")).status_code == 404
    for params in ({"chat_id": "anything"}, {"after": 0, "bot": "staff", "pane": "customer"}, {"chat": "web:customer:x"}):
        listed = (await first.get("/customer/api/messages", params=params)).json()["messages"]
        assert {m["id"] for m in listed} & other_ids == set()
    # the page's messages take no chat: naming one is refused, not obeyed
    named = await first.post("/customer/api/send", json={"message_id": "m2", "kind": "text", "text": "hi", "chat_id": "x"})
    assert named.status_code == 422
    rebinding = await first.post("/customer/api/send", json={"message_id": "m3", "kind": "text", "text": f"/start {second_token}"})
    assert rebinding.status_code == 422
    # the second link cannot be opened by the first page's chat either: it is bound to the second page now
    async with browser(shop) as stranger:
        assert (await stranger.get("/customer/api/messages")).status_code == 401
        forged = stranger.cookies
        forged.set("fc_customer", "1", path="/customer")
        assert (await stranger.get("/customer/api/messages")).status_code == 401
        assert (await stranger.post("/customer/api/session", json={"token": "x" * 32})).status_code == 403
    await first.aclose()
    await second.aclose()


async def test_the_page_stops_working_when_the_link_is_revoked(shop: Api):
    job_id, _link, token = await ordered(shop, "SO-R")
    client = await opened(shop, token)
    assert (await client.get("/customer/api/messages")).status_code == 200
    assert (await shop.client.post(f"/api/v1/jobs/{job_id}/customer-link/revoke")).status_code == 204
    refused = await client.get("/customer/api/messages")
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "expired"
    assert (await client.post("/customer/api/send", json={"message_id": "m9", "kind": "text", "text": "hello"})).status_code == 403
    assert (await browser(shop).post("/customer/api/session", json={"token": token})).status_code == 403
    await client.aclose()


async def test_the_page_expires_with_its_link(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path, web_console=False, customer_link_days=5) as shop:
        _job, _link, token = await ordered(shop, "SO-E")
        client = await opened(shop, token)
        shop.container.clock.advance(timedelta(days=5, minutes=1))
        expired = await client.get("/customer/api/messages", headers={"Accept-Language": "en"})
        assert expired.status_code == 403 and "expired" in expired.json()["detail"]["message"]
        await client.aclose()


async def test_a_link_opened_in_a_messenger_chat_first_does_not_open_the_page(shop: Api):
    _job, _link, token = await ordered(shop, "SO-T")
    world = World(shop.container, shop.container.clock, shop.tmp_path)
    await world.chat("customer", "tg-chat", platform="telegram").send(f"/start {token}")
    refused = await browser(shop).post("/customer/api/session", json={"token": token})
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "used"


async def test_photo_links_of_the_page_name_only_its_own_messages(shop: Api):
    _job, _link, token = await ordered(shop, "SO-P")
    client = await opened(shop, token)
    rows = (await client.get("/customer/api/messages")).json()["messages"]
    assert all(url.startswith(f"/customer/api/photos/{m['id']}/") for m in rows for url in m["photos"])
    # a message of its own that carries no photo has none to serve; ids and indexes out of range are refused
    assert (await client.get(f"/customer/api/photos/{rows[0]['id']}/0")).status_code == 404
    assert (await client.get("/customer/api/photos/0/0")).status_code == 422
    assert (await client.get(f"/customer/api/photos/{rows[0]['id']}/101")).status_code == 422
    await client.aclose()


async def test_the_console_is_refused_without_demo_mode(shop: Api):
    async with browser(shop) as client:
        for path in ("/chat", "/chat/api/messages?bot=customer&pane=customer"):
            assert (await client.get(path)).status_code == 404
        assert (await client.post("/chat/api/send", json={})).status_code == 404


async def test_a_photo_larger_than_a_message_reaches_the_chat_and_one_over_the_limit_is_refused(shop: Api):
    import os

    from PIL import Image

    _job, _link, token = await ordered(shop, "SO-U")
    client = await opened(shop, token)
    noisy = Image.frombytes("RGB", (900, 700), os.urandom(900 * 700 * 3))  # noise: PNG cannot shrink it below 1 MB
    path = shop.tmp_path / "big.png"
    noisy.save(path, "PNG")
    assert path.stat().st_size > 1024 * 1024
    sent = await client.post("/customer/api/photo", data={"message_id": "p1"}, files={"file": ("big.png", path.read_bytes(), "image/png")})
    assert sent.status_code == 200, sent.text
    limit = shop.container.web_uploads.limits.max_bytes
    too_big = await client.post("/customer/api/photo", data={"message_id": "p2"}, files={"file": ("x.png", b"\0" * (limit + 1), "image/png")})
    assert too_big.status_code == 413
    await client.aclose()
