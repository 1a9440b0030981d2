"""The back office's jobs pages over HTTP: who may open the list, the CSV export, a job's page, its photos and actions
(sessions, the region rule, CSRF, numbers checked), and that every filter narrows the list as it says."""

from __future__ import annotations

import base64
import csv
import io
import random
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from domain.model import Job
from storage import tables as t
from storage.db import create_engine, session_factory
from storage.repository import Store
from storage.signatures import SignatureStore
from tests.integration.test_accounts import add_account, browser, csrf_of, sign_in
from tests.support.api import Api
from tests.support.harness import SHOP, World, keys
from tests.support.photos import photo_bytes
from tests.support.setups import booked_and_accepted
from webhooks.jobs_pages import csv_cell, event_label

PHOTO_STEPS = [
    {"key": "intact", "kind": "yes_no", "prompt": {"en": "Packaging intact?", "zh": "包装完好?"}},
    {"key": "placed", "kind": "photo", "prompt": {"en": "Photo of the sofa in place", "zh": "沙发摆放照片"}},
]


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


def job_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/jobs/(\d+)">#', page)]


async def some_jobs(world: World) -> dict[str, int]:
    """Four jobs: three in Huangpu (one from the shop's web store, one of a customer with a formula for a name), one in Pudong."""
    made = {
        "sofa": await world.order("SO-100", services=("delivery",), customer="Zhang Wei", phone="+86 139 1234 5678"),
        "bed": await world.order("SO-101", services=("delivery",), customer="Li Na", phone="13800007777", product="Bed",
                                 address="Huangpu District, 8 Fuzhou Road"),
        "pudong": await world.order("SO-200", services=("delivery",), customer="Wang Fang", phone="13700001111", region="Pudong",
                                    address="Pudong, 1 Century Avenue"),
        "formula": await world.order("=1+2", services=("delivery",), customer="=HYPERLINK(\"http://x\")", phone="13600002222"),
    }
    return {name: order.job.id for name, order in made.items()}


# --- who may open what ---------------------------------------------------------------------------------------


async def test_without_a_session_every_jobs_page_sends_the_browser_to_sign_in_and_a_post_is_refused(api: Api):
    ids = await some_jobs(world_of(api))
    async with browser(api) as stranger:
        for path in ("/jobs", "/jobs?status=open", "/jobs/export.csv", f"/jobs/{ids['sofa']}", f"/jobs/{ids['sofa']}/photos/1"):
            answer = await stranger.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=/jobs"), path
        posted = await stranger.post(f"/jobs/{ids['sofa']}/actions", data={"action": "close", "reason": "x"})
        assert posted.status_code == 401 and 'href="/signin?next=/jobs/' in posted.text and "您尚未登录" in posted.text
    async with api.container.sessions() as session:
        assert (await Store(session).get(Job, ids["sofa"])).status == "open"


async def test_a_dispatcher_sees_only_the_jobs_of_their_regions_in_the_list_the_export_and_the_pages(api: Api):
    ids = await some_jobs(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    listed = await dora.get("/jobs")
    assert listed.status_code == 200 and "Jobs" in listed.text
    assert set(job_ids(listed.text)) == {ids["sofa"], ids["bed"], ids["formula"]}
    # asking for the other region does not widen the rule: the query keeps to Huangpu
    assert job_ids((await dora.get("/jobs?region=Pudong")).text) == []
    exported = await dora.get("/jobs/export.csv")
    assert {row[0] for row in list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))[1:]} == {
        str(ids["sofa"]), str(ids["bed"]), str(ids["formula"])}
    other = await dora.get(f"/jobs/{ids['pudong']}")
    assert other.status_code == 404 and "no such job in your regions" in other.text
    assert (await dora.get("/jobs/999999")).status_code == 404  # the same answer as for a job that does not exist
    refused = await dora.post(f"/jobs/{ids['pudong']}/actions", data={"csrf": csrf_of(listed.text), "action": "close", "reason": "x"})
    assert refused.status_code == 404
    # an account for every region sees them all
    boss = await signed_in(api, "mona", role="manager")
    assert set(job_ids((await boss.get("/jobs")).text)) == set(ids.values())


async def test_a_job_number_or_a_filter_that_cannot_be_read_is_a_400_with_a_reason(api: Api):
    dora = await signed_in(api, regions=["Huangpu"])
    for path in ("/jobs/abc", "/jobs/0", "/jobs/-3", "/jobs/99999999999999", "/jobs/1.5"):
        answer = await dora.get(path)
        assert answer.status_code == 400 and "whole number" in answer.text, path
    for query, field in (
        ("status=bogus", "Status"), ("from=2026-13-01", "Visits from"), ("to=tomorrow", "Visits until"),
        ("from=2026-06-10&to=2026-06-01", "Visits until"), ("technician=abc", "Technician"), ("technician=0", "Technician"),
        ("customer=99999999999", "Customer"), ("q=" + "x" * 101, "Search"), ("q=a%00b", "Search"), ("limit=0", "Rows per page"),
        ("limit=201", "Rows per page"), ("before=-1", "Page"),
    ):
        for path in ("/jobs", "/jobs/export.csv"):
            if path.endswith(".csv") and query.startswith(("limit", "before")):
                continue  # the export has no pages
            answer = await dora.get(f"{path}?{query}")
            assert answer.status_code == 400, (path, query)
            assert f"This filter cannot be read: {field}" in answer.text and 'href="/jobs"' in answer.text, (path, query)


# --- the filters --------------------------------------------------------------------------------------------


async def test_each_filter_narrows_the_list(api: Api):
    world = world_of(api)
    ids = await some_jobs(world)
    order, _customer, _driver, _group = await booked_and_accepted(world)
    booked = order.job.id
    boss = await signed_in(api, "mona", role="manager")

    async def found(query: str) -> set[int]:
        answer = await boss.get(f"/jobs?{query}")
        assert answer.status_code == 200, answer.text
        return set(job_ids(answer.text))

    assert await found("q=zhang") >= {ids["sofa"]} and ids["bed"] not in await found("q=zhang")
    # typed digits find "+86 139 1234 5678" as well as "13912345678"
    assert await found("q=13912345678") == {ids["sofa"], booked}
    assert await found("q=%2B86 139") == {ids["sofa"]}
    assert await found("q=Fuzhou") == {ids["bed"]}
    assert await found("q=SO-200") == {ids["pudong"]}
    assert await found("q=%25") == set()  # "%" is a literal, not a wildcard matching every job
    assert await found("q=_") == set()
    assert await found("region=Pudong") == {ids["pudong"]}
    assert await found("source=erp") == set(ids.values()) | {booked}
    assert await found("source=shopify") == set()
    async with api.container.sessions() as session:
        visit = (await Store(session).visits_of_job(booked))[0]
        customer_of_bed = (await Store(session).get(Job, ids["bed"])).customer_id
    day = visit.slot_start.astimezone(api.container.policy.tz).date()
    assert await found(f"day={day.isoformat()}") == {booked}
    assert await found(f"from={(day + timedelta(days=1)).isoformat()}") == set()
    assert await found(f"from={(day - timedelta(days=3)).isoformat()}&to={day.isoformat()}") == {booked}
    assert await found(f"technician={visit.technician_id}") == {booked}
    assert await found(f"customer={customer_of_bed}") == {ids["bed"]}
    assert await found("status=open") == set(ids.values()) | {booked}
    assert await found("status=done") == set()
    assert await found("status=open&region=Pudong&q=wang") == {ids["pudong"]}


async def test_the_list_pages_by_keyset_newest_first(api: Api):
    ids = await some_jobs(world_of(api))
    boss = await signed_in(api, "mona", role="manager")
    first = await boss.get("/jobs?limit=2&status=open")
    newest = sorted(ids.values(), reverse=True)
    assert job_ids(first.text) == newest[:2]
    following = re.search(r'rel="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(following).query) == {"status": ["open"], "before": [str(newest[1])], "limit": ["2"]}
    second = await boss.get(following)
    assert job_ids(second.text) == newest[2:4] and 'rel="next"' not in second.text and "First page" in second.text
    empty = await boss.get("/jobs?q=nobody-has-this")
    assert "No jobs match these filters." in empty.text and "Clear filters" in empty.text


# --- the CSV export -----------------------------------------------------------------------------------------


def test_a_csv_cell_that_a_spreadsheet_would_run_as_a_formula_is_made_text():
    assert [csv_cell(v) for v in ("=1+2", "+86 139", "-3", "@SUM(A1)", "\tx", "plain", 5, None)] == [
        "'=1+2", "'+86 139", "'-3", "'@SUM(A1)", "'\tx", "plain", "5", ""]


async def test_the_export_streams_the_filtered_list_as_csv_with_formulas_defused(api: Api):
    ids = await some_jobs(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    answer = await dora.get("/jobs/export.csv?q=HYPERLINK")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="jobs-')
    assert answer.text.startswith("\ufeff")
    header, *rows = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))
    assert header[:3] == ["Job", "Source", "Order number"]
    assert len(rows) == 1 and rows[0][0] == str(ids["formula"])
    assert rows[0][2] == "'=1+2" and rows[0][7] == "'=HYPERLINK(\"http://x\")"
    assert rows[0][8] == "13600002222"
    plus = await dora.get("/jobs/export.csv?q=zhang")
    (row,) = list(csv.reader(io.StringIO(plus.text.lstrip("\ufeff"))))[1:]
    assert row[8] == "'+86 139 1234 5678"
    chinese = await dora.get("/jobs/export.csv?q=zhang", headers={"Accept-Language": "zh-CN"})
    assert chinese.text.lstrip("\ufeff").startswith("工单,来源,订单号")


# --- a job's page, its photos and actions ---------------------------------------------------------------------


async def completed_with_a_photo(api: Api):
    return await completed_photo_job(api.container, api.tmp_path)


async def completed_photo_job(container, folder):
    """A delivery done with its checklist (a yes and a photo), confirmed and rated with a comment; the container's media
    directory is ``folder``/media."""
    world = World(container, container.clock, folder)
    order, customer, driver, _group = await booked_and_accepted(world)
    await world.template("delivery", "sofa", PHOTO_STEPS)
    visit = order.visits[0]
    media = folder / "media" / "web"
    media.mkdir(parents=True, exist_ok=True)
    picture = media / "placed.jpg"
    picture.write_bytes(photo_bytes("JPEG", (800, 600)))
    await driver.press(f"arr:{visit.id}")
    await driver.location(*SHOP)
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    await driver.photo(picture)
    assert keys(await driver.press(f"done:{visit.id}")) == ["tech.completed"]
    await customer.inbox()
    await customer.press(f"cf:{visit.id}")
    await customer.press(f"rt:{visit.id}:5")
    await customer.send("Careful and friendly")
    return order


async def test_the_job_page_shows_visits_answers_photos_rating_and_timeline_and_serves_photos_only_to_those_who_may_see_them(api: Api):
    order = await completed_with_a_photo(api)
    job_id = order.job.id
    signature = photo_bytes("PNG", (120, 60))
    async with api.container.sessions() as session, session.begin():  # as the signature pad stores it (issue 12 part 6)
        visit = order.visits[0]
        await SignatureStore(Store(session)).add(visit_id=visit.id, technician_id=visit.technician_id or 1, stage="delivery",
                                                 now=api.container.clock.now(), png=signature, width=120, height=60)
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    text = page.text
    assert f'src="data:image/png;base64,{base64.b64encode(signature).decode()}"' in text and "Signed for the goods" in text
    for expected in ("Packaging intact?", "Yes", "Photo of the sofa in place", "Careful and friendly", "Wang", "Timeline",
                     "Visit completed", "Customer rated", "Zhang Wei"):
        assert expected in text, expected
    assert "Rated 5 of 5" in text
    photo_links = sorted(set(re.findall(rf'src="(/jobs/{job_id}/photos/(\d+))\?size=thumb"', text)))
    assert photo_links
    path, photo_id = photo_links[0]
    full = await dora.get(path)
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg" and full.headers["cache-control"] == "no-store"
    thumb = await dora.get(path + "?size=thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320 < max(Image.open(io.BytesIO(full.content)).size)
    assert (await dora.get(path + "?size=huge")).status_code == 400
    assert (await dora.get(f"/jobs/{job_id}/photos/abc")).status_code == 400
    assert (await dora.get(f"/jobs/{job_id}/photos/999999")).status_code == 404
    # a photo is served under its own job only, and only to those who see that job
    other = await world_of(api).order("SO-900", services=("delivery",), phone="13500000000")
    assert (await dora.get(f"/jobs/{other.job.id}/photos/{photo_id}")).status_code == 404
    pudong = await signed_in(api, "pete", regions=["Pudong"])
    assert (await pudong.get(path)).status_code == 404
    assert (await pudong.get(f"/jobs/{job_id}")).status_code == 404
    async with browser(api) as stranger:
        assert (await stranger.get(path)).status_code == 303
    # zh from the catalogs
    chinese = await dora.get(f"/jobs/{job_id}", headers={"Accept-Language": "zh-CN"})
    assert "检查清单回答" in chinese.text and "包装完好?" in chinese.text and "时间线" in chinese.text


async def test_a_manager_reads_a_job_without_actions_and_cannot_post_one(api: Api):
    ids = await some_jobs(world_of(api))
    mona = await signed_in(api, "mona", role="manager")
    page = await mona.get(f"/jobs/{ids['sofa']}")
    assert page.status_code == 200 and 'name="action"' not in page.text
    answer = await mona.post(f"/jobs/{ids['sofa']}/actions", data={"csrf": csrf_of(page.text), "action": "close", "reason": "done"})
    assert answer.status_code == 403


async def test_a_dispatcher_closes_and_reopens_a_job_through_the_bus_with_csrf_and_a_reason(api: Api):
    ids = await some_jobs(world_of(api))
    dora = await signed_in(api, regions=["Huangpu"])
    job = f"/jobs/{ids['bed']}"
    page = await dora.get(job)
    token = csrf_of(page.text)
    assert 'value="close"' in page.text and 'value="reopen"' not in page.text
    assert (await dora.post(f"{job}/actions", data={"action": "close", "reason": "x"})).status_code == 403  # no CSRF token
    assert (await dora.post(f"{job}/actions", data={"csrf": "forged", "action": "close", "reason": "x"})).status_code == 403
    assert (await dora.post(f"{job}/actions", data={"csrf": token, "action": "close", "reason": "x"},
                            headers={"Origin": "https://evil.example"})).status_code == 403
    assert (await dora.post(f"{job}/actions", data={"csrf": token, "action": "explode"})).status_code == 400
    assert (await dora.post(f"{job}/actions", data={"csrf": token, "action": "close", "reason": "  "})).status_code == 400
    closed = await dora.post(f"{job}/actions", data={"csrf": token, "action": "close", "reason": "Customer moved away"})
    assert closed.status_code == 303 and closed.headers["location"] == f"{job}?done=close"
    after = await dora.get(closed.headers["location"])
    assert "The job is closed." in after.text and "Job closed" in after.text and "Customer moved away" in after.text
    assert 'value="reopen"' in after.text
    again = await dora.post(f"{job}/actions", data={"csrf": token, "action": "close", "reason": "twice"})
    assert again.status_code == 409 and "already closed" in again.text and f'href="{job}"' in again.text
    reopened = await dora.post(f"{job}/actions", data={"csrf": token, "action": "reopen", "reason": "Complaint"})
    assert reopened.status_code == 303
    async with api.container.sessions() as session:
        assert (await Store(session).get(Job, ids["bed"])).status == "open"
        types = [e["type"] for e in await Store(session).timeline(ids["bed"])]
    assert types[-2:] == ["JobClosed", "JobReopened"]


async def test_a_dispatcher_reschedules_and_cancels_a_visit_of_the_job_only(api: Api):
    world = world_of(api)
    order, _customer, _driver, _group = await booked_and_accepted(world)
    ids = await some_jobs(world)
    dora = await signed_in(api, regions=["Huangpu"])
    job = f"/jobs/{order.job.id}"
    page = await dora.get(job)
    token = csrf_of(page.text)
    windows = re.findall(r'<option value="([^"|]+\|[^"]+)"', page.text)
    assert windows
    visit = order.visits[0].id
    foreign = (await dora.get(f"/jobs/{ids['bed']}")).text
    foreign_visit = int(re.search(r'name="visit_id" value="(\d+)"', foreign).group(1))
    refused = await dora.post(f"{job}/actions", data={"csrf": token, "action": "cancel_visit", "visit_id": str(foreign_visit)})
    assert refused.status_code == 400 and "not one of this job" in refused.text
    assert (await dora.post(f"{job}/actions", data={"csrf": token, "action": "reschedule", "visit_id": str(visit),
                                                    "window": "2020-01-01T09:00:00+08:00|nonsense"})).status_code == 400
    off_window = windows[-1].split("|")[0] + "|" + windows[-1].split("|")[0]
    assert (await dora.post(f"{job}/actions", data={"csrf": token, "action": "reschedule", "visit_id": str(visit),
                                                    "window": off_window})).status_code == 409
    moved = await dora.post(f"{job}/actions", data={"csrf": token, "action": "reschedule", "visit_id": str(visit), "window": windows[-1]})
    assert moved.status_code == 303
    assert "Moved by a dispatcher" in (await dora.get(job)).text
    cancelled = await dora.post(f"{job}/actions", data={"csrf": token, "action": "cancel_visit", "visit_id": str(visit)})
    assert cancelled.status_code == 303
    async with api.container.sessions() as session:
        assert (await Store(session).visits_of_job(order.job.id))[0].status == "cancelled"


def test_timeline_events_read_as_words_in_both_languages_and_one_without_words_shows_its_name():
    from domain import events

    named = [name for name, value in vars(events).items() if isinstance(value, type) and issubclass(value, events.Event) and value is not events.Event]
    worded = [name for name in named if event_label(name, "en") != name]
    # the life of a job reads as words; an event added since falls back to its name rather than to nothing
    assert {"JobCreated", "VisitBooked", "VisitCompleted", "ExceptionReported", "RatingGiven", "JobClosed", "SignatureCaptured"} <= set(worded)
    assert [name for name in worded if event_label(name, "zh") == event_label(name, "en")] == []
    assert event_label("SomethingNew", "zh") == "SomethingNew"


# --- the benchmark's function ---------------------------------------------------------------------------------


async def test_the_job_list_benchmark_times_filtered_renders_and_reuses_its_jobs(sqlite_url):
    from fieldchat.jobs_bench import SOURCE, _seed, measure

    first = await measure(sqlite_url, 30, 1)
    assert first["bench"] == "jobs" and first["database"] == "sqlite" and first["jobs"] == 30 and first["repeats"] == 1
    assert set(first["filters"]) == {"open_in_region", "text_search", "day", "technician_and_status", "unfiltered_page_3"}
    for timing in first["filters"].values():
        assert timing["p95_ms"] >= timing["p50_ms"] > 0
    assert first["filters"]["unfiltered_page_3"]["rows"] > 0  # the dispatcher's regions hold some of the jobs
    # the same database again: its jobs are found and none added
    engine = create_engine(sqlite_url)
    try:
        count, _seconds = await _seed(session_factory(engine), 30, datetime.now(timezone.utc), random.Random(1))
        assert count == 30
        async with engine.connect() as connection:
            assert (await connection.execute(select(func.count()).select_from(t.jobs).where(t.jobs.c.source == SOURCE))).scalar_one() == 30
    finally:
        await engine.dispose()


async def test_a_dispatcher_bound_in_the_staff_bot_acknowledges_a_reported_problem_and_sees_its_photos(api: Api):
    world = world_of(api)
    order, _customer, driver, _group = await booked_and_accepted(world)
    visit = order.visits[0].id
    media = api.tmp_path / "media" / "web"
    media.mkdir(parents=True, exist_ok=True)
    crushed = media / "crushed.jpg"
    crushed.write_bytes(photo_bytes("JPEG", (400, 300)))
    await driver.press(f"rp:{visit}")
    await driver.press(f"rr:{visit}:goods_damaged")
    await driver.send("Corner crushed")
    await driver.photo(crushed)
    assert keys(await driver.press("rsend"))[-1] == "tech.report_sent"
    job = f"/jobs/{order.job.id}"
    # an account that is not a dispatcher in the chats cannot acknowledge (the command needs one): no form, and 403
    plain = await signed_in(api, "nora", regions=["Huangpu"])
    seen = await plain.get(job)
    assert "Goods damaged" in seen.text and "Corner crushed" in seen.text and 'value="acknowledge"' not in seen.text
    dora = await signed_in(api, regions=["Huangpu"], dispatcher_id=1)  # Dora of the dispatch group
    page = await dora.get(job)
    exception_id = re.search(r'name="exception_id" value="(\d+)"', page.text).group(1)
    refused = await plain.post(f"{job}/actions", data={"csrf": csrf_of(seen.text), "action": "acknowledge", "exception_id": exception_id})
    assert refused.status_code == 403 and "linked to a dispatcher" in refused.text
    photo = re.search(rf'src="(/jobs/{order.job.id}/photos/\d+)\?size=thumb"', page.text).group(1)
    assert (await dora.get(photo)).content == crushed.read_bytes()
    token = csrf_of(page.text)
    assert (await dora.post(f"{job}/actions", data={"csrf": token, "action": "acknowledge", "exception_id": "999"})).status_code == 400
    done = await dora.post(f"{job}/actions", data={"csrf": token, "action": "acknowledge", "exception_id": exception_id})
    assert done.status_code == 303
    after = await dora.get(done.headers["location"])
    assert "The problem is acknowledged" in after.text and "Problem acknowledged" in after.text and 'value="acknowledge"' not in after.text


@pytest.mark.slow
@pytest.mark.postgres
async def test_the_search_reads_the_same_on_postgresql(postgres_url, tmp_path):
    """What the dialect decides: case-insensitive LIKE with its escape, the phone's digits, the visits' IN, the keyset."""
    from storage import job_search as search
    from tests.support.api import running_api

    async with running_api(postgres_url, tmp_path) as api:
        world = world_of(api)
        ids = await some_jobs(world)
        odd = await world.order("50%_OFF", services=("delivery",), customer="Percent_Man", phone="13300003333")
        order, _customer, _driver, _group = await booked_and_accepted(world)
        async with api.container.sessions() as session:
            visit = (await Store(session).visits_of_job(order.job.id))[0]

            async def found(**wanted) -> list[int]:
                return [row.id for row in (await search.search_jobs(session, search.JobFilter(**wanted))).rows]

            assert await found(text="ZHANG") == [order.job.id, ids["sofa"]]
            assert await found(text="8613912") == [ids["sofa"]]
            assert await found(text="50%_o") == [odd.job.id]
            assert await found(text="%") == [odd.job.id] and await found(text="t_m") == [odd.job.id] and await found(text="zhang_wei") == []  # "_" unescaped would match the space
            assert await found(regions=frozenset({"Pudong"})) == [ids["pudong"]]
            assert await found(regions=frozenset()) == []
            start = visit.slot_start
            assert await found(slot_from=start, slot_until=start + timedelta(hours=1), technician_id=visit.technician_id) == [order.job.id]
            first = await search.search_jobs(session, search.JobFilter(), limit=2)
            assert first.next_before == first.rows[-1].id
            rest = await search.search_jobs(session, search.JobFilter(), limit=10, before=first.next_before)
            assert [r.id for r in first.rows + rest.rows] == sorted(set(ids.values()) | {odd.job.id, order.job.id}, reverse=True)
            assert rest.next_before is None


async def test_a_parked_status_callback_of_the_job_is_resent_from_its_page_as_from_the_groups_alert(api: Api):
    from domain import callbacks as cb

    ids = await some_jobs(world_of(api))
    async with api.container.sessions() as session, session.begin():
        store = Store(session)
        for job_id in (ids["sofa"], ids["bed"]):
            await store.outbox_add(platform=cb.PLATFORM, bot=cb.BOT, chat_id=cb.chat_of(job_id), payload={"callback": {"type": "order.received"}},
                                   dedup_key=f"cb:{job_id}", now=api.container.clock.now())
        await session.execute(t.outbox.update().where(t.outbox.c.platform == cb.PLATFORM).values(status="parked"))
        rows = {row.chat_id: row.id for row in (await session.execute(select(t.outbox.c.chat_id, t.outbox.c.id))).all()}
    mine, other = rows[cb.chat_of(ids["sofa"])], rows[cb.chat_of(ids["bed"])]
    dora = await signed_in(api, regions=["Huangpu"])
    page = await dora.get(f"/jobs/{ids['sofa']}")
    assert f'name="callback_id" value="{mine}"' in page.text and f'value="{other}"' not in page.text
    token = csrf_of(page.text)
    wrong = await dora.post(f"/jobs/{ids['sofa']}/actions", data={"csrf": token, "action": "resend_callback", "callback_id": str(other)})
    assert wrong.status_code == 400  # another job's callback is not resent from this page
    sent = await dora.post(f"/jobs/{ids['sofa']}/actions", data={"csrf": token, "action": "resend_callback", "callback_id": str(mine)})
    assert sent.status_code == 303
    async with api.container.sessions() as session:
        states = dict((await session.execute(select(t.outbox.c.id, t.outbox.c.status))).all())
    assert states == {mine: "pending", other: "parked"}
    again = await dora.post(f"/jobs/{ids['sofa']}/actions", data={"csrf": token, "action": "resend_callback", "callback_id": str(mine)})
    assert again.status_code == 409
    assert "Status callback resent" in (await dora.get(f"/jobs/{ids['sofa']}")).text
