"""Accounts as people meet them: the sign-in page (password and Telegram), session cookies that expire and end on
sign-out or when the account is disabled, CSRF on every form, rate-limited guessing, the CLI for the first admin, and
dispatchers kept to their regions in group chats."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import Depends
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from fieldchat import access_cli
from fieldchat.cli import main
from services import accounts
from domain.model import Visit
from services.actions import ConfirmCancelFromAlert, MoveVisitMenu, encode
from storage import tables as t
from storage.accounts import AccountStore
from storage.repository import Store
from tests.support.api import Api, running_api
from tests.support.cli import cli_environment
from tests.support.harness import World, keys
from tests.support.setups import dispatch_group
from tests.unit.test_access import BOT_TOKEN, init_data, widget_data
from webhooks.signin import SESSION_COOKIE, SIGNIN_CSRF_COOKIE, require_session

PASSWORD = "a long enough password"


@pytest.fixture
def database_url(sqlite_url) -> str:
    """Pages and sessions: SQLite here (the tables themselves are checked on both databases by test_migrations)."""
    return sqlite_url


async def add_account(api_or_world, username: str = "dora", role: str = "dispatcher", password: str | None = PASSWORD, **kw) -> int:
    container = api_or_world.container

    async def work(ctx):
        return await accounts.add_account(ctx, username=username, display_name=username.title(), role=role, password=password, **kw), []

    return await container.bus.call(f"test:add:{username}", work)


def browser(api: Api, base: str = "http://testserver") -> httpx.AsyncClient:
    """A client with no API token, keeping cookies as a browser does."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=base, follow_redirects=False)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, username: str = "dora", password: str = PASSWORD, **headers) -> httpx.Response:
    form = await client.get("/signin", headers=headers)
    return await client.post("/signin", data={"csrf": csrf_of(form.text), "username": username, "password": password, "next": "/me"},
                             headers=headers)


def set_cookie(response: httpx.Response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(name + "="))


# --- password sign-in and sessions ------------------------------------------------------------------


async def test_signing_in_with_a_password_opens_a_session_in_an_http_only_samesite_cookie(api: Api):
    await add_account(api, regions=["Huangpu"])
    async with browser(api) as client:
        answer = await sign_in(client)
        assert answer.status_code == 303 and answer.headers["location"] == "/me"
        cookie = set_cookie(answer, SESSION_COOKIE)
        flags = cookie.lower()
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags and "max-age=43200" in flags
        me = await client.get("/me")
        assert me.status_code == 200
        assert "Dora" in me.text and "Huangpu" in me.text and "调度员" in me.text  # zh unless the browser asks otherwise
        english = await client.get("/me", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert "Dispatcher" in english.text and "Sign out" in english.text
    # only the hash of the cookie is stored
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    async with api.container.sessions() as session:
        stored = (await session.execute(select(t.web_sessions.c.token_hash))).scalars().all()
    assert stored == [accounts.digest(value)]


async def test_the_session_cookie_is_secure_behind_https(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path, public_url="https://shop.example") as api:
        await add_account(api)
        async with browser(api, "https://testserver") as client:
            answer = await sign_in(client)
            assert "secure" in set_cookie(answer, SESSION_COOKIE).lower()


async def test_a_wrong_password_or_unknown_user_is_told_the_same_and_no_session_is_made(api: Api):
    await add_account(api)
    async with browser(api) as client:
        wrong = await sign_in(client, password="not the password")
        unknown = await sign_in(client, username="nobody")
        for answer in (wrong, unknown):
            assert answer.status_code == 401 and "用户名或密码错误" in answer.text
            assert SESSION_COOKIE + "=" not in answer.headers.get("set-cookie", "")
        assert (await client.get("/me")).status_code == 303
        english = await client.post("/signin?lang=en", data={"csrf": client.cookies.get(SIGNIN_CSRF_COOKIE), "username": "dora", "password": "nope nope nope"})
        assert english.status_code == 401 and "The username or password is wrong." in english.text


async def test_sign_in_attempts_are_rate_limited_per_account(api: Api):
    await add_account(api)
    async with browser(api) as client:
        for _ in range(5):
            assert (await sign_in(client, password="wrong password!")).status_code == 401
        limited = await sign_in(client)  # even the right password waits now
        assert limited.status_code == 429 and "尝试次数过多" in limited.text
        # another account from the same address is not held up: the address has more room than one account
        await add_account(api, username="li")
        assert (await sign_in(client, username="li")).status_code == 303
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app, client=("10.0.0.9", 5000)), base_url="http://testserver") as elsewhere:
        # the guessed account stays held from another address too
        assert (await sign_in(elsewhere)).status_code == 429


async def test_sign_in_attempts_are_rate_limited_per_address(api: Api):
    for name in ("a1", "a2", "a3", "a4", "a5"):
        await add_account(api, username=name)
    async with browser(api) as client:
        for attempt in range(20):
            name = f"a{attempt % 5 + 1}"
            answer = await sign_in(client, username=name, password="wrong password!")
            assert answer.status_code in (401, 429)
        assert (await sign_in(client, username="a1")).status_code == 429


async def test_the_sign_in_form_without_its_csrf_token_is_refused(api: Api):
    await add_account(api)
    async with browser(api) as client:
        await client.get("/signin")
        forged = await client.post("/signin", data={"username": "dora", "password": PASSWORD})
        assert forged.status_code == 403 and SESSION_COOKIE + "=" not in forged.headers.get("set-cookie", "")
        wrong = await client.post("/signin", data={"csrf": "guessed", "username": "dora", "password": PASSWORD})
        assert wrong.status_code == 403
        not_a_form = await client.post("/signin", json={"username": "dora"})
        assert not_a_form.status_code == 400
    async with browser(api) as other:  # a token from another browser's form does not fit this browser's cookie
        form = await other.get("/signin")
        assert set_cookie(form, SIGNIN_CSRF_COOKIE)
    async with browser(api) as client:
        await client.get("/signin")
        stolen = await client.post("/signin", data={"csrf": csrf_of(form.text), "username": "dora", "password": PASSWORD})
        assert stolen.status_code == 403


async def test_signing_out_needs_the_sessions_csrf_token_and_ends_the_session(api: Api):
    await add_account(api)
    async with browser(api) as client:
        await sign_in(client)
        me = await client.get("/me")
        assert (await client.post("/signout", data={"csrf": "nope"})).status_code == 403
        assert (await client.get("/me")).status_code == 200  # still signed in
        cookie = client.cookies.get(SESSION_COOKIE)
        out = await client.post("/signout", data={"csrf": csrf_of(me.text)})
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert (await client.get("/me")).status_code == 303
    # the old cookie, replayed, opens nothing: the session row is revoked, not only the cookie cleared
    async with browser(api) as replay:
        replay.cookies.set(SESSION_COOKIE, cookie)
        assert (await replay.get("/me")).status_code == 303


async def test_a_session_expires_after_the_configured_hours(api: Api):
    await add_account(api)
    async with browser(api) as client:
        await sign_in(client)
        api.container.clock.advance(timedelta(hours=11, minutes=59))
        assert (await client.get("/me")).status_code == 200
        api.container.clock.advance(timedelta(minutes=2))
        expired = await client.get("/me")
        assert expired.status_code == 303 and expired.headers["location"].startswith("/signin")


async def test_disabling_an_account_ends_its_sessions_and_its_sign_in(api: Api):
    await add_account(api)
    async with browser(api) as client:
        await sign_in(client)

        async def disable(ctx):
            return await accounts.disable_account(ctx, "dora"), []

        assert await api.container.bus.call("test:disable", disable) == 1
        assert (await client.get("/me")).status_code == 303
        assert (await sign_in(client)).status_code == 401


async def test_after_sign_in_only_local_paths_are_followed(api: Api):
    await add_account(api)
    async with browser(api) as client:
        form = await client.get("/signin")
        answer = await client.post("/signin", data={"csrf": csrf_of(form.text), "username": "dora", "password": PASSWORD,
                                                    "next": "//evil.example/x"})
        assert answer.headers["location"] == "/me"


# --- Telegram -------------------------------------------------------------------------------------


@pytest.fixture
async def telegram_api(sqlite_url, tmp_path):
    # the staff bot's token signs Telegram's data; its API is unreachable here (getMe fails fast and is only logged)
    async with running_api(sqlite_url, tmp_path, telegram_staff_token=BOT_TOKEN, telegram_api_url="http://127.0.0.1:9") as api:
        yield api


async def test_a_mini_app_signs_in_by_initdata_of_a_user_with_an_account(telegram_api: Api):
    await add_account(telegram_api, password=None, chat_user_id="777001")
    now = telegram_api.container.clock.now()
    async with browser(telegram_api) as client:
        answer = await client.post("/signin/webapp", data={"init_data": init_data(auth_date=now)})
        assert answer.status_code == 200 and answer.json() == {"ok": True, "next": "/me"}
        assert "httponly" in set_cookie(answer, SESSION_COOKIE).lower()
        me = await client.get("/me?lang=en")
        assert "Telegram Mini App" in me.text
        page = await client.get("/signin/webapp")
        assert page.status_code == 200 and "tgWebAppData" in page.text and "script-src 'nonce-" in page.headers["content-security-policy"]


async def test_telegram_data_tampered_or_old_signs_nobody_in(telegram_api: Api):
    await add_account(telegram_api, password=None, chat_user_id="777001")
    now = telegram_api.container.clock.now()
    async with browser(telegram_api) as client:
        tampered = await client.post("/signin/webapp", data={"init_data": init_data(auth_date=now).replace("777001", "777002")})
        assert tampered.status_code == 401 and tampered.json()["detail"] == "telegram_invalid"
        old = await client.post("/signin/webapp", data={"init_data": init_data(auth_date=now - timedelta(days=2))})
        assert old.status_code == 401 and old.json()["detail"] == "telegram_expired"
        stranger = await client.post("/signin/webapp", data={"init_data": init_data(auth_date=now, user_id=5)})
        assert stranger.status_code == 403 and stranger.json()["detail"] == "chat_user_unknown"
        widget = await client.get("/signin/telegram", params={**widget_data(auth_date=now), "id": "777002"})
        assert widget.status_code == 401
        assert (await client.get("/me")).status_code == 303


async def test_the_login_widget_signs_in_a_dispatcher_bound_in_the_staff_bot(telegram_api: Api):
    world = World(telegram_api.container, telegram_api.container.clock, telegram_api.tmp_path)
    group = world.chat("staff", "g1", user_id="777001", chat_type="group", name="Dora", platform="telegram")
    await group.send(f"/start {await world.dispatcher()}")  # Dora registers with her invite, as in the staff bot
    now = telegram_api.container.clock.now()
    async with browser(telegram_api) as client:
        answer = await client.get("/signin/telegram", params=widget_data(auth_date=now))
        assert answer.status_code == 303 and answer.headers["location"] == "/me"
        assert "Dispatcher" in (await client.get("/me")).text  # in the language her chat uses
    async with telegram_api.container.sessions() as session:
        made = await AccountStore(Store(session)).account_by_username("tg777001")
    assert made["role"] == "dispatcher" and made["dispatcher_id"] is not None and made["regions"] is None


async def test_without_a_staff_bot_telegram_sign_in_says_to_use_the_password(api: Api):
    async with browser(api) as client:
        answer = await client.post("/signin/webapp", data={"init_data": init_data()})
        assert answer.status_code == 503 and answer.json()["detail"] == "telegram_off"


# --- dispatchers in group chats keep to their regions -------------------------------------------------


async def test_a_dispatcher_of_one_region_pressing_a_button_on_another_regions_alert_is_told_no(sqlite_url, tmp_path):
    world = await World.create(sqlite_url, tmp_path)
    try:
        group = await dispatch_group(world, region=None)  # a group for every region, Dora in it
        async with world.container.sessions() as session:
            dispatcher_id = (await session.execute(select(t.dispatchers.c.id))).scalar_one()
        await add_account(world, username="dora", regions=["Huangpu"], dispatcher_id=dispatcher_id)
        pudong = await world.order("SO-P", region="Pudong")
        huangpu = await world.order("SO-H", region="Huangpu")
        await group.inbox()
        refused = await group.press(encode(MoveVisitMenu(pudong.visits[0].id)))
        assert keys(refused) == ["dispatcher.region_denied"]
        assert refused[0].params["region"] == {"key": "=", "params": {"text": "Pudong"}}
        assert keys(await group.send(f"/visit {pudong.visits[0].id}")) == ["dispatcher.region_denied"]
        # a press that would change something changes nothing
        assert keys(await group.press(encode(ConfirmCancelFromAlert(pudong.visits[0].id)))) == ["dispatcher.region_denied"]
        async with world.container.sessions() as session:
            assert (await Store(session).get(Visit, pudong.visits[0].id)).status != "cancelled"
        # her own region's visit works as before
        assert keys(await group.press(encode(MoveVisitMenu(huangpu.visits[0].id)))) == ["dispatch.move_pick_day"]
    finally:
        await world.close()


# --- the CLI --------------------------------------------------------------------------------------


def test_the_cli_adds_lists_and_disables_accounts_with_the_password_from_stdin(monkeypatch, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cli.db"
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_DATABASE_URL=url):
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["user", "add", "boss", "--role", "admin", "--name", "The Boss"]) == 0
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["user", "add", "dora", "--role", "dispatcher", "--region", "Huangpu", "--region", "Pudong"]) == 0
        monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
        assert main(["user", "add", "li", "--role", "manager"]) == 1
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["user", "add", "boss", "--role", "admin"]) == 1
        assert main(["user", "list"]) == 0
        assert main(["user", "disable", "dora"]) == 0
        assert main(["user", "disable", "nobody"]) == 1
        assert main(["user", "list"]) == 0
    out, err = capsys.readouterr()
    assert "account boss added" in out and "Huangpu, Pudong" in out
    assert "a password has 10 to 200 characters" in err and "exists already" in err and "no account has this username" in err
    listing = out.split("account dora disabled")[1]
    assert re.search(r"dora\s+dispatcher\s+Huangpu,Pudong\s+-\s+disabled", listing)
    assert re.search(r"boss\s+admin\s+all\s+-\s+active", listing)
    assert PASSWORD not in out + err  # never echoed

    async def signs_in() -> None:  # the password is stored hashed and signs in; the disabled account does not
        async with running_api(url, tmp_path) as api:
            async with browser(api) as client:
                assert (await sign_in(client, username="boss")).status_code == 303
            async with browser(api) as client:
                assert (await sign_in(client, username="dora")).status_code == 401
            async with api.container.sessions() as session:
                hashes = (await session.execute(select(t.accounts.c.password_hash))).scalars().all()
            assert all(h.startswith("$argon2id$") for h in hashes)

    asyncio.run(signs_in())


def test_the_password_never_comes_from_the_command_line():
    import argparse

    parser = argparse.ArgumentParser()
    access_cli.add_commands(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["user", "add", "boss", "--role", "admin", "--password", PASSWORD])


def test_the_cli_creates_lists_and_revokes_tokens(monkeypatch, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cli.db"
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_DATABASE_URL=url):
        assert main(["token", "add", "erp", "--scope", "orders:write", "--region", "Huangpu"]) == 0
        token = capsys.readouterr().out.strip().splitlines()[-1]
        assert token.startswith(accounts.TOKEN_PREFIX)
        assert main(["token", "list"]) == 0
        listing = capsys.readouterr().out
        assert token not in listing and token[:12] in listing and "orders:write" in listing and "live" in listing
        asyncio.run(answers(url, tmp_path, token, 403))  # orders:write only: no reading jobs
        assert main(["token", "revoke", "1"]) == 0
        assert main(["token", "revoke", "1"]) == 1
        asyncio.run(answers(url, tmp_path, token, 503))  # no token left at all: the API is off


async def answers(url: str, tmp_path, token: str, expected: int) -> None:
    async with running_api(url, tmp_path, api_token=None) as api:
        assert (await api.client.get("/api/v1/jobs/1", headers={"Authorization": f"Bearer {token}"})).status_code == expected


async def test_a_page_needing_a_role_sends_strangers_to_sign_in_and_tells_others_it_is_not_theirs(api: Api):
    async def board(who: Annotated[accounts.SignedIn, Depends(require_session("jobs:write"))]) -> PlainTextResponse:
        return PlainTextResponse(f"board for {who.principal.name}")

    api.app.add_api_route("/test-board", board)  # as the dispatch board will declare itself
    await add_account(api, username="dora", role="dispatcher")
    await add_account(api, username="ming", role="manager")
    async with browser(api) as stranger:
        sent = await stranger.get("/test-board?day=2026-11-23")
        assert sent.status_code == 303 and sent.headers["location"] == "/signin?next=/test-board%3Fday%3D2026-11-23"
    async with browser(api) as manager:
        await sign_in(manager, username="ming")
        refused = await manager.get("/test-board")
        assert refused.status_code == 403 and "您的角色无权打开此页面" in refused.text and 'href="/me"' in refused.text
    async with browser(api) as dispatcher:
        await sign_in(dispatcher, username="dora")
        assert (await dispatcher.get("/test-board")).text == "board for Dora"


async def test_another_site_cannot_sign_a_browser_in_with_its_own_telegram_data(telegram_api: Api):
    await add_account(telegram_api, password=None, chat_user_id="777001")
    now = telegram_api.container.clock.now()
    async with browser(telegram_api) as client:
        forged = await client.post("/signin/webapp", data={"init_data": init_data(auth_date=now)}, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and SESSION_COOKIE + "=" not in forged.headers.get("set-cookie", "")
        own = await client.post("/signin/webapp", data={"init_data": init_data(auth_date=now)}, headers={"Origin": "http://testserver"})
        assert own.status_code == 200


@pytest.mark.parametrize("target", ["//evil.example", "/\t/evil.example", "/\\evil.example", "https://evil.example", "", "/\n/x"])
def test_sign_in_never_sends_anyone_off_site(target):
    from webhooks.signin import safe_next

    assert safe_next(target) == "/me"
    assert safe_next("/board?day=1") == "/board?day=1"
