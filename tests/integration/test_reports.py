"""Reports as managers and dispatchers meet them: the read model's facts on SQLite and PostgreSQL, the /reports pages and
their charts behind a session and the region rule, and the daily report's timer sending once per day to the managers' group."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from domain import kpis
from scheduler.daily_report import KIND, DailyReporter
from scheduler.sweeps import fire_due_timers
from services import backoffice
from storage import tables as t
from storage.reports import ReportStore
from storage.repository import Store
from tests.integration.test_accounts import add_account, browser, sign_in
from tests.support.api import Api
from tests.support import ROOT
from tests.support.report_facts import DAY, EXPECTED_ALL, EXPECTED_HUANGPU, TZ, at, seed

PNG = b"\x89PNG\r\n\x1a\n"


async def facts_of(container, regions=None, days: int = 30, first=DAY, last=DAY):
    async with container.sessions() as session:
        return await ReportStore(Store(session)).facts(first, last, tz=TZ, regions=regions, first_time_fix_days=days)


def check(figures: kpis.Figures, expected: dict) -> None:
    got = {"visits": figures.visits, "done": figures.done, "on_time": (figures.on_time.hits, figures.on_time.total),
           "ftf": (figures.first_time_fix.hits, figures.first_time_fix.total), "csat": figures.csat_average,
           "good": (figures.csat_good.hits, figures.csat_good.total), "accept": figures.accept_minutes,
           "completion": figures.completion_minutes, "exceptions": figures.exceptions}
    assert {name: got[name] for name in expected} == expected


# --- the read model (SQLite, and PostgreSQL in the slow run) -------------------------------------------------------


async def test_the_read_model_gives_each_visit_its_stamps_rating_follow_up_and_the_customers_repeat_jobs(api: Api):
    await seed(api.container.sessions)
    facts = await facts_of(api.container)
    by_id = {v.visit_id: v for v in facts.visits}
    assert sorted(by_id) == [1, 2, 4]  # no slot, cancelled and another day's visits are not the day's
    first = by_id[1]
    assert (first.offered_at, first.accepted_at) == (at(8), at(8, 10))  # the offer accepted, not the first one declined
    assert (first.checked_in_at, first.completed_at, first.score, first.technician) == (at(10, 30), at(11, 30), 5, "Li Lei")
    assert by_id[2].followed_up and by_id[2].completed_at == at(17) and not by_id[1].followed_up
    assert [(r.job_id, r.customer_id, r.category) for r in facts.repeats] == [(3, 2, "washer")]
    assert sorted(e.reason for e in facts.exceptions) == ["customer_unreachable", "parts_missing"]
    check(kpis.figures(facts.visits, facts.exceptions, facts.repeats, first_time_fix_days=30), EXPECTED_ALL)


async def test_the_region_rule_is_applied_in_the_query_and_an_empty_set_of_regions_sees_nothing(api: Api):
    await seed(api.container.sessions)
    huangpu = await facts_of(api.container, frozenset({"Huangpu"}))
    check(kpis.figures(huangpu.visits, huangpu.exceptions, huangpu.repeats), EXPECTED_HUANGPU)
    assert {v.region for v in huangpu.visits} == {"Huangpu"} and {e.region for e in huangpu.exceptions} == {"Huangpu"}
    nothing = await facts_of(api.container, frozenset())
    assert nothing.visits == () and nothing.exceptions == ()


async def test_a_repeat_repair_after_the_first_time_fix_days_does_not_count_against_the_visit(api: Api):
    await seed(api.container.sessions)
    facts = await facts_of(api.container, days=3)
    assert facts.repeats == ()  # the customer's next job came 5 days later
    assert kpis.figures(facts.visits, [], facts.repeats, first_time_fix_days=3).first_time_fix == kpis.Ratio(2, 3)


async def test_a_longer_period_takes_the_earlier_days_visits_into_their_own_weeks(api: Api):
    await seed(api.container.sessions)
    facts = await facts_of(api.container, first=DAY - timedelta(days=10), last=DAY)
    assert sorted(v.visit_id for v in facts.visits) == [1, 2, 4, 6]
    weeks = kpis.by_bucket(facts.visits, facts.exceptions, facts.repeats, kpis.Bucket.WEEK)
    assert [(str(start), f.visits) for start, f in weeks] == [("2026-11-09", 1), ("2026-11-23", 3)]  # Sunday the 15th: the week of the 9th


# --- the pages: sessions, regions, bad input -----------------------------------------------------------------------


@pytest.fixture
async def seeded(sqlite_api: Api) -> Api:
    """The hand-made day, with the clock in its evening (sessions started now last the evening)."""
    await seed(sqlite_api.container.sessions)
    sqlite_api.container.clock.set(at(20))
    return sqlite_api


PAGES = ("/reports", "/reports/chart.png?kind=trend", "/reports/daily", "/reports/daily.png")


async def test_without_a_session_every_report_route_sends_the_browser_to_sign_in_and_back(seeded: Api):
    async with browser(seeded) as client:
        for path in PAGES:
            answer = await client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/signin?next=/reports"), path


async def test_a_manager_reads_every_region_in_tables_and_charts(seeded: Api):
    await add_account(seeded, "mona", role="manager")
    async with browser(seeded) as client:
        await sign_in(client, "mona")
        page = await client.get(f"/reports?from={DAY}&to={DAY}&by=technician&per=day&lang=en")
        assert page.status_code == 200
        text = page.text
        assert "Li Lei" in text and "Wang Fang" in text and "Figures of every region." in text
        assert "67% (2/3)" in text and "33% (1/3)" in text and "3.5" in text  # on time, first-time fix, CSAT
        assert "Customer unreachable" in text or "customer unreachable" in text.lower()
        for kind in ("trend", "groups"):
            chart = await client.get(f"/reports/chart.png?from={DAY}&to={DAY}&by=region&per=week&kind={kind}&lang=en")
            assert chart.status_code == 200 and chart.content.startswith(PNG)
            assert chart.headers["content-type"] == "image/png" and "no-store" in chart.headers["cache-control"]
        chinese = await client.get(f"/reports?from={DAY}&to={DAY}&by=category&lang=zh")
        assert "一次修复率" in chinese.text and "产品类别" in chinese.text and "washer" in chinese.text


async def test_a_dispatcher_reads_only_the_figures_of_their_regions(seeded: Api):
    await add_account(seeded, "dora", role="dispatcher", regions=["Huangpu"])
    async with browser(seeded) as client:
        await sign_in(client, "dora")
        page = await client.get(f"/reports?from={DAY}&to={DAY}&lang=en")
        assert page.status_code == 200
        assert "Li Lei" in page.text and "Wang Fang" not in page.text and "Huangpu" in page.text
        assert "50% (1/2)" in page.text  # Huangpu's on time and first-time fix; Pudong's visit is not counted
        daily = await client.get(f"/reports/daily?day={DAY}&lang=en")
        assert daily.status_code == 200 and "Wang Fang" not in daily.text and "Li Lei" in daily.text
        by_region = await client.get(f"/reports?from={DAY}&to={DAY}&by=region&lang=en")
        assert "Pudong" not in by_region.text


@pytest.mark.parametrize("query", [
    "from=2026-13-01", "to=yesterday", "from=2026-11-30&to=2026-11-01", "from=2024-01-01&to=2026-11-25", "by=colour",
    "per=hour", "from=1999-12-31", "from=" + "9" * 40,
])
async def test_bad_pickers_are_a_400_page_with_the_reason(seeded: Api, query: str):
    await add_account(seeded, "mona", role="manager")
    async with browser(seeded) as client:
        await sign_in(client, "mona")
        for path in ("/reports", "/reports/chart.png"):
            answer = await client.get(f"{path}?{query}&lang=en")
            assert answer.status_code == 400, (path, query)
            assert 'role="alert"' in answer.text and "/reports" in answer.text


async def test_an_unknown_chart_or_daily_day_is_a_400(seeded: Api):
    await add_account(seeded, "mona", role="manager")
    async with browser(seeded) as client:
        await sign_in(client, "mona")
        assert (await client.get("/reports/chart.png?kind=pie")).status_code == 400
        assert (await client.get("/reports/daily?day=2026-02-30")).status_code == 400
        assert (await client.get("/reports/daily.png?day=x")).status_code == 400


async def test_the_daily_page_shows_the_days_figures_and_its_chart(seeded: Api):
    await add_account(seeded, "mona", role="manager")
    async with browser(seeded) as client:
        await sign_in(client, "mona")
        page = await client.get(f"/reports/daily?day={DAY}&lang=en")
        assert page.status_code == 200 and "67% (2/3)" in page.text and f"/reports/daily.png?day={DAY}" in page.text
        assert "Day before" in page.text and "Day after" not in page.text  # the day after is tomorrow: nothing yet
        chart = await client.get(f"/reports/daily.png?day={DAY}&lang=en")
        assert chart.status_code == 200 and chart.content.startswith(PNG)


# --- the daily report --------------------------------------------------------------------------------------------


async def managers_group(api: Api, region: str | None = None, chat_id: str = "-100500") -> int:
    async def work(ctx):
        group, _token = await backoffice.create_dispatch_group(ctx.store, name="Managers", region=region, language="en", now=ctx.now,
                                                                policy=ctx.policy, purpose="reports")
        return group.id, []

    group_id = await api.container.bus.call("test:managers", work)
    async with api.container.sessions() as session, session.begin():
        # bound as the staff bot's /start in the group binds it (tests/integration/test_flows.py covers that step)
        await session.execute(insert(t.chat_bindings).values(platform="telegram", bot="staff", chat_id=chat_id, subject_kind="group",
                                                             subject_id=group_id, language="en"))
    return group_id


def reporter(api: Api, **kw) -> DailyReporter:
    c = api.container
    return DailyReporter(c.bus, c.sessions, c.clock, c.policy, report_at=kw.get("report_at", at(18).timetz().replace(tzinfo=None)),
                         media_dir=api.tmp_path / "media", public_url=kw.get("public_url", "https://shop.example"))


async def report_rows(api: Api) -> list[dict]:
    async with api.container.sessions() as session:
        rows = (await session.execute(select(t.outbox).where(t.outbox.c.dedup_key.like(f"{KIND}:%")))).mappings().all()
    return [dict(r) for r in rows]


async def test_the_daily_report_goes_once_to_the_managers_group_with_a_chart_even_from_two_processes_and_after_a_restart(api: Api, caplog):
    await seed(api.container.sessions)
    await managers_group(api)
    api.container.clock.set(at(9))
    first, second = reporter(api), reporter(api)
    await first.ensure()
    await second.ensure()  # a second process starting: the same timer, not another
    async with api.container.sessions() as session:
        timers = (await session.execute(select(t.timers).where(t.timers.c.kind == KIND))).mappings().all()
    assert [(r["key"], r["due_at"]) for r in timers] == [(f"{KIND}:{DAY}", at(18))]
    assert await first.run_due() == 0  # not yet
    api.container.clock.set(at(18, 0, DAY))
    # the other timers' sweep leaves it to the reporter, which draws outside any transaction
    with caplog.at_level(logging.ERROR):
        await fire_due_timers(api.container.bus, api.container.sessions, api.container.clock)
    assert len(await report_rows(api)) == 0 and not [r for r in caplog.records if r.levelno >= logging.ERROR]
    fired = await asyncio.gather(first.run_due(), second.run_due())
    assert sorted(fired) == [0, 1]
    rows = await report_rows(api)
    assert len(rows) == 1
    payload = rows[0]["payload"]
    assert rows[0]["chat_id"] == "-100500" and payload["text"]["key"] == "reports.daily.text"
    assert payload["text"]["params"]["on_time"] == "67% (2/3)" and payload["text"]["params"]["visits"] == 3
    assert payload["text"]["params"]["more"]["params"]["url"] == f"https://shop.example/reports/daily?day={DAY}"
    with open(payload["photo_path"], "rb") as png:
        assert png.read(8) == PNG
    # a restart the same evening: the next report is tomorrow's; nothing is sent again
    restarted = reporter(api)
    await restarted.ensure()
    api.container.clock.set(at(18, 30))
    assert await restarted.run_due() == 0
    assert len(await report_rows(api)) == 1
    async with api.container.sessions() as session:
        pending = (await session.execute(select(t.timers.c.key).where(t.timers.c.kind == KIND, t.timers.c.status == "pending"))).scalars().all()
    assert pending == [f"{KIND}:{DAY + timedelta(days=1)}"]


async def test_a_managers_group_of_a_region_gets_that_regions_figures_and_no_alerts(sqlite_api: Api):
    api = sqlite_api
    await seed(api.container.sessions)
    await managers_group(api, region="Huangpu")
    async with api.container.sessions() as session:
        assert await Store(session).groups_for_region("Huangpu") == []  # alerts go to dispatch groups only
    api.container.clock.set(at(17))
    daily = reporter(api, public_url=None)
    await daily.ensure()
    api.container.clock.set(at(18, 1))
    assert await daily.run_due() == 1
    [row] = await report_rows(api)
    params = row["payload"]["text"]["params"]
    assert params["visits"] == 2 and params["on_time"] == "50% (1/2)"
    assert params["more"]["key"] == "reports.daily.more_page"  # no public address: the page's path, for the back office


async def test_a_report_found_due_days_late_is_skipped_and_the_next_one_set(sqlite_api: Api):
    api = sqlite_api
    await seed(api.container.sessions)
    await managers_group(api)
    api.container.clock.set(at(9, 0, DAY - timedelta(days=2)))
    daily = reporter(api)
    await daily.ensure()  # Monday's report; then the server is down until Wednesday evening
    api.container.clock.set(at(19))
    await daily.ensure()  # started again: Wednesday's
    assert await daily.run_due() == 2
    [row] = await report_rows(api)
    assert row["payload"]["text"]["params"]["day"] == {"_day": str(DAY)}  # Wednesday's only, not Monday's two days late
    async with api.container.sessions() as session:
        pending = (await session.execute(select(t.timers.c.key).where(t.timers.c.kind == KIND, t.timers.c.status == "pending"))).scalars().all()
    assert pending == [f"{KIND}:{DAY + timedelta(days=1)}"]


async def test_a_managers_group_is_told_on_binding_that_it_gets_the_daily_report_and_is_left_out_of_alerts(world):
    async def create(store):
        _g, token = await backoffice.create_dispatch_group(store, name="Managers", region=None, language="en", now=world.clock.now(),
                                                            policy=world.container.policy, purpose="reports")
        return token

    managers = world.chat("staff", "managers", user_id="mona", chat_type="group", name="Mona")
    await managers.send(f"/start {await world.dispatcher('Mona')}")
    replies = await managers.send(f"/start {await world._tx(create)}")
    assert [m.key for m in replies] == ["dispatcher.reports_group_bound"]
    async with world.container.sessions() as session:
        assert await Store(session).groups_for_region("Huangpu") == []


async def test_the_daily_report_timer_is_off_when_the_setting_says_off(sqlite_api: Api):
    daily = reporter(sqlite_api, report_at=None)
    await daily.ensure()
    async with sqlite_api.container.sessions() as session:
        assert (await session.execute(select(t.timers).where(t.timers.c.kind == KIND))).first() is None


WEB_PROCESS_PROBE = """
import sys
from fieldchat.container import build
from fieldchat.settings import Settings
from webhooks.app import create_app
create_app(build(Settings(_env_file=None, database_url="sqlite:///{db}", media_dir="{media}")))
print("matplotlib" in sys.modules)
"""


@pytest.mark.slow  # a fresh process
def test_a_web_process_starts_without_matplotlib(tmp_path):
    """matplotlib takes about half a second to import: a process pays for it at its first chart, not at start-up."""
    code = WEB_PROCESS_PROBE.format(db=tmp_path / "f.db", media=tmp_path / "media")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
