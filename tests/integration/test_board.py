"""The dispatch board over HTTP: who may open it and act (sessions, regions, managers read-only, CSRF, checked numbers),
what a day shows (timeline, queue, map), its actions through the bus (assign, the override with its conflict, move,
cancel, re-plan), the live-update endpoint, and the staff bot's button that opens it as a Mini App."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from conversations.i18n import catalog
from domain.model import Technician, Visit
from storage import tables as t
from storage.repository import Store
from storage.schedule import ScheduleStore
from tests.integration.test_accounts import add_account, browser, csrf_of, sign_in
from tests.support.api import Api
from tests.support.harness import World, local
from tests.support.setups import give, staff

DAY = "2026-11-24"  # tomorrow on the tests' clock (Monday 2026-11-23 08:00 in Shanghai)


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


def world_of(api: Api) -> World:
    return World(api.container, api.container.clock, api.tmp_path)


async def signed_in(api: Api, username: str = "dora", role: str = "dispatcher", regions: list[str] | None = None, **kw) -> httpx.AsyncClient:
    await add_account(api, username=username, role=role, regions=regions, **kw)
    client = browser(api)
    answer = await sign_in(client, username, **{"Accept-Language": "en"})
    assert answer.status_code == 303, answer.text
    client.headers["Accept-Language"] = "en"
    return client


async def a_day(world: World) -> dict:
    """Tomorrow: Wang with an accepted delivery in 09:00–11:00 (planned 09:30), Chen free, a Huangpu delivery nobody has then (declined once),
    and a Pudong one nobody has; Wang last seen near the shop."""
    wang, wang_chat = await staff(world, "Wang", ["driver"])
    chen, chen_chat = await staff(world, "Chen", ["driver"])
    held = (await world.order("SO-1", services=("delivery",), customer="Li Lei", phone="13900000001")).visits[0].id
    free = (await world.order("SO-2", services=("delivery",), customer="Han Meimei", phone="13900000002", address="Huangpu, 8 Fuzhou Road")).visits[0].id
    pudong = (await world.order("SO-3", services=("delivery",), customer="Wang Fang", phone="13900000003", region="Pudong", address="Pudong, 1 Century Avenue",
                                lat=31.2397, lon=121.4998)).visits[0].id
    await give(world, held, wang, local(24, 9), local(24, 11), "accepted", planned=local(24, 9, 30))
    await give(world, free, None, local(24, 9), local(24, 11), "booked")
    await give(world, pudong, None, local(24, 14), local(24, 16), "booked")

    async def seen(store: Store):
        tech = await store.get(Technician, wang)
        tech.last_lat, tech.last_lon, tech.last_seen_at = 31.2310, 121.4740, world.clock.now()
        visit = await store.get(Visit, free)
        visit.declined_by = [999]
        for visit_id in (held, free):  # two hours each: both cannot fit into one driver's morning window
            (await store.get(Visit, visit_id)).duration_minutes = 120

    await world._tx(seen)
    await wang_chat.inbox()
    await chen_chat.inbox()
    return {"wang": wang, "chen": chen, "held": held, "free": free, "pudong": pudong, "chen_chat": chen_chat, "wang_chat": wang_chat}


# --- who may open and act ----------------------------------------------------------------------------------------


async def test_without_a_session_the_board_sends_to_sign_in_and_a_post_is_refused(api: Api):
    async with browser(api) as stranger:
        for path in ("/board", f"/board?day={DAY}", "/board/visits/1", f"/board/changes?day={DAY}&since=x"):
            answer = await stranger.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=/board"), path
        posted = await stranger.post("/board/actions", data={"action": "replan", "day": DAY})
        assert posted.status_code == 401 and 'href="/signin?next=/board"' in posted.text


async def test_a_day_shows_the_timeline_the_queue_and_the_map_of_the_dispatchers_regions_only(api: Api):
    ids = await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/board?day={DAY}")
    assert page.status_code == 200, page.text
    text = page.text
    # the timeline: Wang's row holds his visit at 10:00; Chen's row is there, empty; the free visit is on the "nobody" row
    assert "Wang" in text and "Chen" in text and f'data-visit="{ids["held"]}"' in text and f"#{ids['held']} 09:30" in text
    assert "Nobody yet" in text and f'data-visit="{ids["free"]}"' in text
    # the queue: declined, nobody yet
    assert "Declined, nobody yet" in text and "declined by 1" in text and "Han Meimei" in text
    # the map: an inline SVG with a circle per visit and Wang's square, nothing from elsewhere
    svg = re.search(r"<svg class=\"map\".*?</svg>", text, re.S)
    assert svg and svg.group(0).count("<circle") == 2 and "<rect" in svg.group(0) and "http" not in svg.group(0).replace("http://www.w3.org", "")
    # region B is nowhere: not in the timeline, the queue or the map
    assert f'data-visit="{ids["pudong"]}"' not in text and "Wang Fang" not in text and "Century Avenue" not in text
    assert "Re-plan unassigned visits" in text and 'name="csrf"' in text
    other = await dora.get(f"/board/visits/{ids['pudong']}?day={DAY}")
    assert other.status_code == 404 and "no such visit in your regions" in other.text
    refused = await dora.post("/board/actions", data={"csrf": csrf_of(text), "action": "cancel", "visit_id": str(ids["pudong"]),
                                                      "day": DAY, "sure": "1"})
    assert refused.status_code == 404
    async with api.container.sessions() as session:
        assert (await Store(session).get(Visit, ids["pudong"])).status == "booked"


async def test_the_board_in_chinese(api: Api):
    await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/board?day={DAY}&lang=zh", headers={"Accept-Language": "zh"})
    assert page.status_code == 200 and "调度看板" in page.text and "待处理" in page.text and "师傅的一天" in page.text


async def test_a_manager_reads_the_board_without_buttons_and_cannot_post(api: Api):
    ids = await a_day(world_of(api))
    mona = await signed_in(api, "mona", role="manager")
    page = await mona.get(f"/board?day={DAY}")
    assert page.status_code == 200 and "Wang Fang" in page.text  # every region
    assert "/board/actions" not in page.text
    visit = await mona.get(f"/board/visits/{ids['free']}?day={DAY}")
    assert visit.status_code == 200 and "/board/actions" not in visit.text and "Assign" not in visit.text
    posted = await mona.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "assign", "visit_id": str(ids["free"]),
                                                     "technician_id": str(ids["chen"]), "day": DAY})
    assert posted.status_code == 403
    async with api.container.sessions() as session:
        assert (await Store(session).get(Visit, ids["free"])).technician_id is None


@pytest.mark.parametrize("query", ["day=2026-13-01", "day=tomorrow", "day=2026-11-2", "day=2030-01-01", "day=%00"])
async def test_a_day_that_cannot_be_read_is_a_400_with_the_rule(api: Api, query: str):
    dora = await signed_in(api, regions=["Huangpu"])
    for path in ("/board", "/board/changes", "/board/visits/1"):
        answer = await dora.get(f"{path}?{query}")
        assert answer.status_code == 400 and "a date like 2026-06-01" in answer.text, (path, answer.text)


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "99999999999999", "1.5"])
async def test_a_visit_number_out_of_range_is_a_400(api: Api, raw: str):
    dora = await signed_in(api, regions=["Huangpu"])
    assert (await dora.get(f"/board/visits/{raw}")).status_code == 400
    page = await dora.get("/board")
    posted = await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "cancel", "visit_id": raw, "sure": "1"})
    assert posted.status_code == 400 and "whole number" in posted.text


async def test_a_form_without_the_sessions_csrf_or_from_another_site_is_refused(api: Api):
    ids = await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    data = {"action": "assign", "visit_id": str(ids["free"]), "technician_id": str(ids["chen"]), "day": DAY}
    assert (await dora.post("/board/actions", data={**data, "csrf": "forged"})).status_code == 403
    page = await dora.get("/board")
    cross = await dora.post("/board/actions", data={**data, "csrf": csrf_of(page.text)}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    for bad in ({"action": "fly"}, {"technician_id": "x"}, {"force": "yes"}, {"technician_id": "0"}):
        answer = await dora.post("/board/actions", data={**data, **bad, "csrf": csrf_of(page.text)})
        assert answer.status_code == 400, bad
    async with api.container.sessions() as session:
        assert (await Store(session).get(Visit, ids["free"])).technician_id is None


# --- actions ------------------------------------------------------------------------------------------------------


async def test_assigning_from_the_board_offers_the_visit_in_the_technicians_chat_and_shows_it_on_their_row(api: Api):
    ids = await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    visit_page = await dora.get(f"/board/visits/{ids['free']}?day={DAY}")
    assert visit_page.status_code == 200 and "Assign to" in visit_page.text and "Chen" in visit_page.text
    # Wang is busy then: listed with the conflict and a box that must be ticked
    assert f"busy 09:00–11:00 with visit #{ids['held']}" in visit_page.text and "I accept this conflict" in visit_page.text
    answer = await dora.post("/board/actions", data={"csrf": csrf_of(visit_page.text), "action": "assign", "visit_id": str(ids["free"]),
                                                     "technician_id": str(ids["chen"]), "day": DAY})
    assert answer.status_code == 303 and answer.headers["location"] == f"/board?day={DAY}&done=assign", answer.text
    offer = (await ids["chen_chat"].inbox())[-1]
    assert offer.button("acc")  # the same offer card the chat's assignment sends
    board = await dora.get(answer.headers["location"])
    assert "Assigned: the technician got the offer" in board.text
    chen_row = re.search(r'<div class="tl-name">Chen.*?(?=<div class="tl-row"|</section>)', board.text, re.S)
    assert chen_row and f'data-visit="{ids["free"]}"' in chen_row.group(0)


async def test_someone_not_free_is_assigned_only_with_the_conflict_accepted(api: Api):
    ids = await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/board/visits/{ids['free']}?day={DAY}")
    data = {"csrf": csrf_of(page.text), "action": "assign", "visit_id": str(ids["free"]), "technician_id": str(ids["wang"]), "day": DAY}
    refused = await dora.post("/board/actions", data=data)
    assert refused.status_code == 409 and "Wang is not free for this visit" in refused.text and "Assign anyway" in refused.text
    assert 'name="force" value="1" required' in refused.text
    async with api.container.sessions() as session:
        assert (await Store(session).get(Visit, ids["free"])).technician_id is None
    forced = await dora.post("/board/actions", data={**data, "force": "1"})
    assert forced.status_code == 303
    async with api.container.sessions() as session:
        store = Store(session)
        assert (await store.get(Visit, ids["free"])).technician_id == ids["wang"]
        visit = await store.get(Visit, ids["free"])
        overrides = [row for row in await store.timeline(visit.job_id) if row["type"] == "ConflictOverridden"]
    assert overrides and overrides[0]["data"]["technician_id"] == ids["wang"]


async def test_moving_and_cancelling_from_the_board(api: Api):
    ids = await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/board/visits/{ids['free']}?day={DAY}")
    window = re.search(r'<option value="([^"]+)">', page.text).group(1)
    moved = await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "reschedule", "visit_id": str(ids["free"]),
                                                    "window": window, "day": DAY})
    assert moved.status_code == 303, moved.text
    bad = await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "reschedule", "visit_id": str(ids["free"]),
                                                  "window": "soon", "day": DAY})
    assert bad.status_code == 400 and "Pick one of the times offered" in bad.text
    unticked = await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "cancel", "visit_id": str(ids["free"]), "day": DAY})
    assert unticked.status_code == 400
    cancelled = await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "cancel", "visit_id": str(ids["free"]),
                                                        "day": DAY, "sure": "1"})
    assert cancelled.status_code == 303
    async with api.container.sessions() as session:
        assert (await Store(session).get(Visit, ids["free"])).status == "cancelled"


async def test_replan_asks_the_sweep_for_the_days_unassigned_visits_of_the_dispatchers_regions(api: Api):
    ids = await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/board?day={DAY}")
    answer = await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "replan", "day": DAY})
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=replan")
    async with api.container.sessions() as session:
        replans = await ScheduleStore(Store(session)).timers_of_kind("replan")
    assert [r["payload"]["visits"] for r in replans] == [[ids["free"]]] and replans[0]["payload"]["day"] == DAY
    past = await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "replan", "day": "2026-11-20"})
    assert past.status_code == 400


# --- live updates ------------------------------------------------------------------------------------------------------


async def test_changes_answer_small_when_nothing_moved_and_the_redrawn_parts_when_something_did(api: Api):
    ids = await a_day(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/board?day={DAY}")
    version = re.search(r'data-version="([^"]+)"', page.text).group(1)
    same = await dora.get(f"/board/changes?day={DAY}&since={version}")
    assert same.status_code == 200 and same.json() == {"version": version, "changed": False}
    await dora.post("/board/actions", data={"csrf": csrf_of(page.text), "action": "assign", "visit_id": str(ids["free"]),
                                            "technician_id": str(ids["chen"]), "day": DAY})
    moved = (await dora.get(f"/board/changes?day={DAY}&since={version}")).json()
    assert moved["changed"] and moved["version"] != version and f'data-visit="{ids["free"]}"' in moved["html"]
    assert "Wang Fang" not in json.dumps(moved)  # the redraw keeps to the dispatcher's regions
    script = await dora.get("/board/board.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert '<script src="/board/board.js" defer></script>' in page.text


# --- the staff bot opens the board as an app inside the chat -------------------------------------------------------


async def test_board_in_the_staff_chat_gives_an_account_holder_the_in_chat_app_and_others_the_way_to_get_one(sqlite_url, tmp_path):
    world = await World.create(sqlite_url, tmp_path, public_url="https://fc.example")
    try:
        await add_account(world, username="dora", role="dispatcher", regions=["Huangpu"], chat_user_id="424242")
        dora = world.chat("staff", "424242")
        opened = (await dora.send("/board"))[-1]
        assert opened.key == "tech.board_open"
        assert opened.buttons == [("btn.open_board", "app:https://fc.example/signin/webapp?next=/board")]
        stranger = world.chat("staff", "515151")
        refused = (await stranger.send("/board"))[-1]
        assert refused.key == "tech.board_no_account" and refused.buttons == []
    finally:
        await world.close()


async def test_the_in_chat_sign_in_goes_on_to_the_page_it_was_opened_for(api: Api, monkeypatch):
    from webhooks import signin

    await add_account(api, username="dora", role="dispatcher", regions=["Huangpu"], password=None, chat_user_id="424242")
    monkeypatch.setattr(signin, "_telegram_token", lambda request: "123:ABC")
    monkeypatch.setattr(signin.login_data, "verify_init_data", lambda data, token, now, age: "424242")  # verified elsewhere (test_accounts)
    async with browser(api) as phone:
        page = await phone.get("/signin/webapp?next=/board")
        assert page.status_code == 200 and "location.search" in page.text
        answer = await phone.post("/signin/webapp", data={"init_data": "signed", "next": "/board"})
        assert answer.status_code == 200 and answer.json() == {"ok": True, "next": "/board"}
        assert (await phone.get("/board")).status_code == 200
        elsewhere = await phone.post("/signin/webapp", data={"init_data": "signed", "next": "//evil.example"})
        assert elsewhere.json()["next"] == "/me"  # only a page of this site


def test_every_text_of_the_board_is_in_both_catalogs():
    source = (Path(__file__).parents[2] / "webhooks" / "board.py").read_text()
    keys = set(re.findall(r'"(board\.[a-z_.]+[a-z_])"', source)) - {"board.js"}
    keys |= {f"board.done.{a}" for a in ("assign", "reschedule", "cancel", "replan")}
    keys |= {f"board.queue.{q}" for q in ("unassigned", "declined", "at_risk", "no_slot")}
    keys |= {f"board.stage.{s}" for s in ("accept", "contact", "arrival", "completion")} | {"btn.open_board", "tech.board_open", "tech.board_no_account"}
    assert len(keys) > 60
    for language in ("en", "zh"):
        assert sorted(keys - set(catalog(language))) == [], language


async def test_a_visit_past_an_sla_tier_or_with_an_open_problem_is_in_the_at_risk_queue(api: Api):
    world = world_of(api)
    ids = await a_day(world)

    async def trouble(store: Store):
        held = await store.get(Visit, ids["held"])
        await store.session.execute(t.domain_events.insert().values(
            job_id=held.job_id, visit_id=held.id, type="SlaTierReached", data={"stage": "arrival", "tier": 80}, occurred_at=world.clock.now()))
        # a stage that is over no longer counts: the acceptance warning of a visit already accepted
        await store.session.execute(t.domain_events.insert().values(
            job_id=held.job_id, visit_id=held.id, type="SlaTierReached", data={"stage": "accept", "tier": 100}, occurred_at=world.clock.now()))

    await world._tx(trouble)
    dora = await signed_in(api, regions=["Huangpu"])
    page = (await dora.get(f"/board?day={DAY}")).text
    assert "At risk: deadlines and problems" in page and "Arrival deadline 80%" in page and "Acceptance deadline" not in page
    assert re.search(rf'class="tl-block st-accepted risk"[^>]*data-visit="{ids["held"]}"', page)
