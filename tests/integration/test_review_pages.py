"""The merchant-review queue on the board: a dispatcher of the order's region confirms it with a price (it becomes a job)
or rejects it with a reason, through the intake's own commands; others do not see it, managers cannot decide it."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_accounts import add_account, browser, sign_in
from tests.integration.test_order_intake import multi_body
from tests.support.api import Api


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


def csrf_in(text: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', text).group(1)


async def queued(api: Api, *refs: str) -> None:
    assert (await api.client.put("/api/v1/order-sources/shop", json={"review_required": True, "currency": "CNY"})).status_code == 200
    for ref in refs:
        assert (await api.client.post("/api/v1/orders", json=multi_body(ref))).status_code == 202


async def test_a_dispatcher_confirms_one_order_with_a_price_and_rejects_another_with_a_reason(api: Api):
    await queued(api, "MO-1", "MO-2")
    await add_account(api, "huangpu", regions=["Huangpu"])
    async with browser(api) as client:
        await sign_in(client, "huangpu")
        board = await client.get("/board?lang=en")
        assert "2 order(s) await review" in board.text and 'href="/board/review"' in board.text
        page = await client.get("/board/review?lang=en")
        assert page.text.count("Wang Fang") == 2 and "3-seat sofa × 1" in page.text and "delivery, installation" in page.text
        csrf = csrf_in(page.text)
        bad = await client.post("/board/review?lang=en", data={"csrf": csrf, "action": "confirm", "source": "shop", "ref": "MO-1", "price": "12.345"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        done = await client.post("/board/review", data={"csrf": csrf, "action": "confirm", "source": "shop", "ref": "MO-1", "price": "120.50"})
        assert done.status_code == 303 and done.headers["location"] == "/board/review?done=confirmed"
        no_reason = await client.post("/board/review", data={"csrf": csrf, "action": "reject", "source": "shop", "ref": "MO-2", "reason": "  "})
        assert no_reason.status_code == 400
        rejected = await client.post("/board/review", data={"csrf": csrf, "action": "reject", "source": "shop", "ref": "MO-2", "reason": "out of stock"})
        assert rejected.status_code == 303
        again = await client.post("/board/review", data={"csrf": csrf, "action": "reject", "source": "shop", "ref": "MO-2", "reason": "twice"})
        assert again.status_code == 404  # decided already: the page says so, nothing changes
        assert "No order is waiting for review." in (await client.get("/board/review?lang=en")).text
    one = (await api.client.get("/api/v1/order-sources/shop/orders/MO-1")).json()
    assert (one["state"], one["price_minor"], one["currency"]) == ("accepted", 12050, "CNY") and one["job_id"]
    two = (await api.client.get("/api/v1/order-sources/shop/orders/MO-2")).json()
    assert (two["state"], two["note"]) == ("rejected", "out of stock")


async def test_another_region_does_not_see_the_order_and_a_manager_cannot_decide_it(api: Api):
    await queued(api, "MO-1")
    await add_account(api, "pudong", regions=["Pudong"])
    await add_account(api, "boss", role="manager")
    async with browser(api) as client:
        await sign_in(client, "pudong")
        assert "await review" not in (await client.get("/board?lang=en")).text
        page = await client.get("/board/review?lang=en")
        assert "Wang Fang" not in page.text
        refused = await client.post("/board/review", data={"csrf": csrf_in(page.text), "action": "reject", "source": "shop", "ref": "MO-1", "reason": "x"})
        assert refused.status_code == 404  # a dispatcher, but the order is not in their regions: as if not there
    async with browser(api) as client:
        await sign_in(client, "boss")
        page = await client.get("/board/review?lang=en")
        assert "Wang Fang" in page.text and 'value="confirm"' not in page.text  # read only
        refused = await client.post("/board/review", data={"csrf": csrf_in(page.text), "action": "reject", "source": "shop", "ref": "MO-1", "reason": "x"})
        assert refused.status_code == 403
    async with browser(api) as stranger:
        assert (await stranger.get("/board/review")).status_code == 303
    assert (await api.client.get("/api/v1/order-sources/shop/orders/MO-1")).json()["state"] == "pending_review"
