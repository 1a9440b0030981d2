"""Integrations' API tokens: named, scoped, region-bound, revocable and hashed at rest; FIELDCHAT_API_TOKEN stays admin;
every /api/v1 route declares its scope (or needs admin)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from domain.model import Photo
from storage import tables as t
from storage.repository import Store
from tests.support.api import AUTH, Api, order_body, running_api, technician_body
from webhooks.access import Needs


async def _token(api: Api, *scopes: str, regions: list[str] | None = None, name: str = "erp") -> str:
    body = {"name": name, "scopes": list(scopes), **({"regions": regions} if regions is not None else {})}
    created = await api.client.post("/api/v1/tokens", json=body)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["token"].startswith(answer["prefix"]) and answer["scopes"] == sorted(set(scopes))
    return answer["token"]


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_jobs_read_token_reads_a_job_but_cannot_post_an_order(api: Api):
    job_id = (await api.client.post("/api/v1/orders", json=order_body())).json()["job"]["id"]
    reader = await _token(api, "jobs:read", name="bi")
    assert (await api.client.get(f"/api/v1/jobs/{job_id}", headers=_as(reader))).status_code == 200
    refused = await api.client.post("/api/v1/orders", json=order_body("SO-2"), headers=_as(reader))
    assert refused.status_code == 403 and refused.json()["detail"] == "this token lacks the scope orders:write"
    # nor manage tokens: that needs admin
    assert (await api.client.get("/api/v1/tokens", headers=_as(reader))).status_code == 403
    writer = await _token(api, "orders:write")
    assert (await api.client.post("/api/v1/orders", json=order_body("SO-3"), headers=_as(writer))).status_code == 201
    assert (await api.client.get(f"/api/v1/jobs/{job_id}", headers=_as(writer))).status_code == 403


async def test_a_revoked_token_is_refused_from_the_next_request_on(api: Api):
    token = await _token(api, "jobs:read")
    listed = (await api.client.get("/api/v1/tokens")).json()["tokens"]
    token_id = next(row["id"] for row in listed if token.startswith(row["prefix"]))
    assert (await api.client.get("/api/v1/jobs/1", headers=_as(token))).status_code == 404
    assert (await api.client.delete(f"/api/v1/tokens/{token_id}")).status_code == 204
    refused = await api.client.get("/api/v1/jobs/1", headers=_as(token))
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert (await api.client.delete(f"/api/v1/tokens/{token_id}")).status_code == 404  # revoked already
    listed = (await api.client.get("/api/v1/tokens")).json()["tokens"]
    assert next(row for row in listed if row["id"] == token_id)["revoked_at"] is not None


async def test_tokens_are_stored_hashed_and_listed_by_prefix_only(api: Api):
    token = await _token(api, "orders:write", "jobs:read")
    async with api.container.sessions() as session:
        rows = (await session.execute(select(t.api_tokens))).mappings().all()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(dict(rows[0]))
    listing = (await api.client.get("/api/v1/tokens")).text
    assert token not in listing and token[:12] in listing


async def test_a_region_scoped_token_cannot_read_or_act_on_another_regions_jobs(api: Api):
    huangpu = (await api.client.post("/api/v1/orders", json=order_body("SO-H"))).json()["job"]
    pudong = (await api.client.post("/api/v1/orders", json=order_body("SO-P", **{"address.region": "Pudong"}))).json()["job"]
    token = await _token(api, "jobs:read", "jobs:write", "orders:write", regions=["Huangpu"])
    mine = _as(token)
    assert (await api.client.get(f"/api/v1/jobs/{huangpu['id']}", headers=mine)).status_code == 200
    other = await api.client.get(f"/api/v1/jobs/{pudong['id']}", headers=mine)
    assert other.status_code == 403 and other.json()["detail"].startswith("outside_your_regions")
    visit = pudong["visits"][0]["id"]
    assert (await api.client.get(f"/api/v1/visits/{visit}/candidates", headers=mine)).status_code == 403
    assert (await api.client.post(f"/api/v1/visits/{visit}/assign", json={"technician_id": 1}, headers=mine)).status_code == 403
    assert (await api.client.post(f"/api/v1/jobs/{pudong['id']}/close", json={"reason": "x"}, headers=mine)).status_code == 403
    assert (await api.client.post(f"/api/v1/jobs/{pudong['id']}/customer-link/revoke", headers=mine)).status_code == 403
    # nor create a job in another region
    placed = await api.client.post("/api/v1/orders", json=order_body("SO-P2", **{"address.region": "Pudong"}), headers=mine)
    assert placed.status_code == 403
    # the job of the other region is unchanged
    assert (await api.client.get(f"/api/v1/jobs/{pudong['id']}")).json()["status"] == pudong["status"]


async def test_a_region_scoped_staff_token_adds_technicians_of_its_regions_only(api: Api):
    token = await _token(api, "staff:write", regions=["Huangpu"])
    assert (await api.client.post("/api/v1/technicians", json=technician_body(), headers=_as(token))).status_code == 201
    elsewhere = technician_body(regions=["Pudong"])
    assert (await api.client.post("/api/v1/technicians", json=elsewhere, headers=_as(token))).status_code == 403
    assert (await api.client.post("/api/v1/dispatch-groups", json={"name": "all"}, headers=_as(token))).status_code == 403


async def test_the_installation_token_stays_an_admin_token(api: Api):
    assert api.client.headers["Authorization"] == AUTH["Authorization"]
    assert (await api.client.get("/api/v1/tokens")).status_code == 200
    assert (await api.client.post("/api/v1/orders", json=order_body())).status_code == 201


async def test_without_the_installation_token_the_api_works_with_integration_tokens_alone(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path) as api:
        token = await _token(api, "orders:write")
    async with running_api(sqlite_url, tmp_path, api_token=None) as api:
        # the same database: the token made before still works, anything else is 401 (not "disabled")
        assert (await api.client.post("/api/v1/orders", json=order_body(), headers=_as(token))).status_code == 201
        assert (await api.client.post("/api/v1/orders", json=order_body())).status_code == 401


async def test_bad_token_requests_get_clear_answers(api: Api):
    assert (await api.client.post("/api/v1/tokens", json={"name": "x", "scopes": ["jobs:delete"]})).status_code == 422
    assert (await api.client.post("/api/v1/tokens", json={"name": "x", "scopes": []})).status_code == 422
    assert (await api.client.post("/api/v1/tokens", json={"name": "", "scopes": ["jobs:read"]})).status_code == 422
    assert (await api.client.delete("/api/v1/tokens/0")).status_code == 422
    assert (await api.client.delete("/api/v1/tokens/99")).status_code == 404
    assert (await api.client.get("/api/v1/jobs/1", headers=_as("fct_" + "x" * 40))).status_code == 401


async def test_every_api_route_declares_its_scope_or_needs_admin(sqlite_api: Api):
    """A route without a declared scope is admin-only; the ones integrations use name theirs."""
    declared = {}
    routes = [r for top in sqlite_api.app.routes for r in (top.original_router.routes if hasattr(top, "original_router") else [top])]
    for route in routes:
        path = getattr(route, "path", "")
        if path.startswith("/api/v1"):
            scopes = [d.dependency.scope for d in getattr(route, "dependencies", []) if isinstance(d.dependency, Needs)]
            for method in getattr(route, "methods", ()):
                declared[(method, path)] = scopes[0] if scopes else "admin"
    assert declared[("POST", "/api/v1/orders")] == "orders:write"
    assert declared[("GET", "/api/v1/jobs/{job_id}")] == "jobs:read"
    assert declared[("GET", "/api/v1/photos/{photo_id}")] == "jobs:read"
    assert declared[("POST", "/api/v1/visits/{visit_id}/assign")] == "jobs:write"
    assert declared[("POST", "/api/v1/technicians")] == "staff:write"
    assert declared[("PUT", "/api/v1/dispatch-rules")] == "settings:write"
    assert declared[("POST", "/api/v1/tokens")] == "admin"
    # and each is enforced: a token with every scope but admin is refused where admin is needed
    token = await _token(sqlite_api, "orders:write", "jobs:read", "jobs:write", "staff:write", "settings:write")
    for (method, path), scope in declared.items():
        if scope == "admin":
            concrete = path.replace("{token_id}", "1").replace("{source}", "erp").replace("{callback_id}", "1").replace("{external_ref:path}", "x")
            response = await sqlite_api.client.request(method, concrete, json={}, headers=_as(token))
            assert response.status_code == 403, (method, path, response.text)


async def test_a_region_scoped_token_gets_no_photo_of_another_region_nor_one_of_no_visit(api: Api):
    pudong = (await api.client.post("/api/v1/orders", json=order_body("SO-P", **{"address.region": "Pudong"}))).json()["job"]
    async with api.container.sessions() as session, session.begin():
        store = Store(session)
        of_pudong = await store.add(Photo(pudong["visits"][0]["id"], "web", "f1", str(api.tmp_path / "media" / "x.jpg"), "checklist", api.container.clock.now()))
        relayed = await store.add(Photo(None, "web", "f2", str(api.tmp_path / "media" / "y.jpg"), "relay", api.container.clock.now()))
        ids = (of_pudong.id, relayed.id)
    scoped = _as(await _token(api, "jobs:read", regions=["Huangpu"]))
    for photo_id in ids:
        assert (await api.client.get(f"/api/v1/photos/{photo_id}", headers=scoped)).status_code == 403
        # the admin token passes the rule (the file itself is missing here: 404)
        assert (await api.client.get(f"/api/v1/photos/{photo_id}")).status_code == 404


def test_integration_tokens_are_masked_in_log_lines():
    from fieldchat.logs import redact

    line = redact("POST /api/v1/orders Authorization: Bearer fct_KZZGZI1kEhJt9XZAR9kli7dq8dndNgg03xGj4iBq8To")
    assert "fct_" not in line and line.endswith("Bearer ***")


async def test_accounts_and_sessions_work_on_both_databases(database_url, tmp_path):
    """Sign in, see who you are, sign out, disable: the account tables on SQLite and PostgreSQL alike."""
    import re

    import httpx

    from services import accounts

    async with running_api(database_url, tmp_path) as api:
        async def add(ctx):
            return await accounts.add_account(ctx, username="dora", display_name="Dora", role="dispatcher", password="a long enough password",
                                              regions=["Huangpu"]), []

        await api.container.bus.call("test:add", add)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://testserver") as browser:
            form = (await browser.get("/signin")).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
            signed = await browser.post("/signin", data={"csrf": csrf, "username": "dora", "password": "a long enough password"})
            assert signed.status_code == 303
            me = await browser.get("/me")
            assert me.status_code == 200 and "Huangpu" in me.text

            async def disable(ctx):
                return await accounts.disable_account(ctx, "dora"), []

            assert await api.container.bus.call("test:disable", disable) == 1
            assert (await browser.get("/me")).status_code == 303
