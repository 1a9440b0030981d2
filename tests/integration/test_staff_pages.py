"""The back office's page shell: who may open a page, the navigation a role sees, the page's script allowed by its nonce
only, and forms refused without the session's CSRF token, from another site or in another shape."""

from __future__ import annotations

import re

import pytest
from fastapi import Request
from fastapi.responses import HTMLResponse

from tests.integration.test_accounts import add_account, browser, sign_in
from tests.support.api import Api
from webhooks.staff_pages import Staff, StaffPage, bounded_int, read_staff_form


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


def mount(api: Api) -> None:
    """A page and a form handler declared as the board and the other pages declare theirs."""

    async def page(request: Request, who: Staff) -> HTMLResponse:
        view = StaffPage(request, who)
        return view.respond("Test page", f'<form method="post" action="/test-page">{view.csrf_field()}<button>Go</button></form>',
                            active="/jobs", script="document.title += ' ready';")

    async def post(request: Request, who: Staff) -> HTMLResponse:
        view = StaffPage(request, who)
        form = await read_staff_form(request, view)
        return view.respond("Done", f"<p>{len(form)}</p>")

    api.app.add_api_route("/test-page", page, methods=["GET"])
    api.app.add_api_route("/test-page", post, methods=["POST"])


def csrf_in(text: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', text)
    assert match, text
    return match.group(1)


async def test_a_stranger_is_sent_to_sign_in_and_back(api: Api):
    mount(api)
    async with browser(api) as client:
        answer = await client.get("/test-page?day=2026-11-28")
        assert answer.status_code == 303 and answer.headers["location"] == "/signin?next=/test-page%3Fday%3D2026-11-28"
        refused = await client.post("/test-page", data={"csrf": "x"})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/signin")


async def test_the_page_names_its_sections_marks_the_current_one_and_runs_only_its_own_script(api: Api):
    mount(api)
    await add_account(api, role="manager")
    async with browser(api) as client:
        await sign_in(client)
        answer = await client.get("/test-page", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert answer.status_code == 200
    page = answer.text
    assert '<a href="/jobs" aria-current=page>Jobs</a>' in page and '<a href="/board">Board</a>' in page
    assert '<a href="/reports">Reports</a>' in page and 'action="/signout"' in page
    nonce = re.search(r"'nonce-([^']+)'", answer.headers["content-security-policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page and page.count("<script") == 1
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"] and answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


async def test_the_page_speaks_the_readers_language(api: Api):
    mount(api)
    await add_account(api)
    async with browser(api) as client:
        await sign_in(client)
        chinese = await client.get("/test-page?lang=zh")
        english = await client.get("/test-page?lang=en")
    assert "调度看板" in chinese.text and 'lang="zh-CN"' in chinese.text and 'href="?lang=en"' in chinese.text
    assert "Board" in english.text and 'href="?lang=zh"' in english.text
    async with browser(api) as client:
        await sign_in(client)
        filtered = await client.get("/test-page?day=2026-11-28&region=Huangpu&lang=en")
    assert 'href="?day=2026-11-28&amp;region=Huangpu&amp;lang=zh"' in filtered.text  # switching language keeps the filters


async def test_a_form_needs_the_sessions_csrf_token_the_same_site_and_the_form_shape(api: Api):
    mount(api)
    await add_account(api)
    async with browser(api) as client:
        await sign_in(client, **{"Accept-Language": "en"})
        csrf = csrf_in((await client.get("/test-page")).text)
        assert (await client.post("/test-page", data={"csrf": csrf, "a": "1"})).status_code == 200
        wrong = await client.post("/test-page", data={"csrf": csrf[:-2] + "zz"})
        assert wrong.status_code == 403 and 'role="alert"' in wrong.text and 'href="/test-page"' in wrong.text
        foreign = await client.post("/test-page", data={"csrf": csrf}, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        as_json = await client.post("/test-page", json={"csrf": csrf})
        assert as_json.status_code == 400
        huge = await client.post("/test-page", content=b"csrf=" + csrf.encode() + b"&x=" + b"a" * 70_000,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert huge.status_code == 413


@pytest.mark.parametrize(("raw", "expected"), [
    (None, 7), ("", 7), ("3", 3), ("10", 10), ("0", None), ("11", None), ("-1", None), ("1e3", None), ("３", None),
    ("9" * 40, None), ("2.5", None),
])
def test_numbers_from_a_query_are_whole_and_in_range_or_refused(raw, expected):
    assert bounded_int(raw, low=1, high=10, default=7) == expected


async def test_the_demo_prints_a_back_office_sign_in_that_works_and_a_new_start_replaces_its_password(api: Api):
    """Seen: `make run` opened the chat console, but the board and the other pages needed an account nobody had."""
    from fieldchat.demo import load_demo

    first = await load_demo(api.container.bus)
    second = await load_demo(api.container.bus)
    assert first.back_office and second.back_office and first.back_office[0] == second.back_office[0] == "demo"
    assert first.back_office[1] != second.back_office[1]
    async with browser(api) as client:
        old = await sign_in(client, *first.back_office)
        assert old.status_code == 401  # the last start's password no longer works
        new = await sign_in(client, *second.back_office)
        assert new.status_code == 303
        board = await client.get("/board?lang=en")
        assert board.status_code == 200 and "Demo dispatcher" in board.text
