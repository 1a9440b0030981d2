"""`fieldchat bench board`: the dispatch board's server render time for a big day (50 technicians, 1,000 visits) on a
database of its own (SQLite by default; a PostgreSQL server with --database-url), through the ASGI app."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from domain.clock import ManualClock
from fieldchat import jobs_bench
from fieldchat.container import build
from fieldchat.settings import Settings
from services import accounts
from storage import tables as t
from storage.db import create_engine, normalize_url
from storage.migrate import upgrade_async
from webhooks.app import create_app
from webhooks.signin import SESSION_COOKIE

REGIONS = ("North", "South")
SHOP = (31.2304, 121.4737)
# how the day's visits stand, by share: most accepted, some under way or done, a few waiting or in trouble
STATUSES = (("accepted", 50), ("booked", 5), ("en_route", 5), ("on_site", 3), ("in_progress", 5), ("completed", 20),
            ("confirmed", 5), ("on_hold", 2), ("cancelled", 5))
TARGETS_MS = {"postgresql": 300.0, "sqlite": 1000.0}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _status(rng: random.Random) -> str:
    return rng.choices([s for s, _ in STATUSES], weights=[w for _, w in STATUSES])[0]


async def seed(url: str, day: date, technicians: int, visits: int, other_visits: int, seed_value: int) -> None:
    """Bulk rows straight into the tables (the board reads them as the services would have left them): technicians,
    customers, jobs, visits of ``day`` and of other days, check-in/complete stamps, SLA warnings and open problems."""
    tz = ZoneInfo("Asia/Shanghai")
    rng = random.Random(seed_value)
    created = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc) - timedelta(days=3)
    hours = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "08:00", "end": "20:00"}
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(t.technicians), [
                {"id": n, "name": f"Tech {n:02d}", "phone": f"1380000{n:04d}", "roles": ["driver", "installer"], "skills": [],
                 "regions": [REGIONS[n % 2]], "working_hours": hours, "on_duty": True, "language": "zh",
                 "last_lat": SHOP[0] + rng.uniform(-0.08, 0.08), "last_lon": SHOP[1] + rng.uniform(-0.08, 0.08), "last_seen_at": created}
                for n in range(1, technicians + 1)])
            total = visits + other_visits
            await conn.execute(insert(t.customers), [{"id": n, "name": f"Customer {n}", "phone": f"139{n:08d}", "language": "zh"}
                                                     for n in range(1, total + 1)])
            jobs, rows, events, reports = [], [], [], []
            for n in range(1, total + 1):
                on_day = n <= visits
                when = day if on_day else day + timedelta(days=rng.choice([-3, -2, -1, 1, 2, 3]))
                region = REGIONS[n % 2]
                lat, lon = SHOP[0] + rng.uniform(-0.1, 0.1), SHOP[1] + rng.uniform(-0.1, 0.1)
                jobs.append({"id": n, "source": "bench", "external_ref": f"B-{n}", "customer_id": n, "address_text": f"{n} Bench Road",
                             "lat": lat, "lon": lon, "region": region, "product_category": "sofa", "product_name": "Sofa", "brand": None,
                             "items": [], "notes": "", "status": "open", "created_at": created, "priority": "urgent" if n % 97 == 0 else "normal",
                             "part": 1})
                hour = rng.choice([9, 11, 14, 16])
                start = datetime(when.year, when.month, when.day, hour, tzinfo=tz).astimezone(timezone.utc)
                status = _status(rng) if on_day else "accepted"
                tech = None if status == "booked" else 1 + (n % technicians)
                planned = start + timedelta(minutes=rng.choice([0, 15, 30, 45, 60]))
                rows.append({"id": n, "job_id": n, "kind": "delivery", "sequence": 1, "duration_minutes": rng.choice([30, 45, 60, 90]),
                             "status": status, "technician_id": tech, "slot_start": start, "slot_end": start + timedelta(hours=2),
                             "declined_by": [1 + ((n + 1) % technicians)] if status == "booked" and n % 2 else [], "checklist_position": 0,
                             "planned_start": planned if tech else None, "close_notified": False, "crew_size": 1, "crew_ids": [],
                             "min_gap_minutes": 0, "late_minutes": 0, "categories": [], "version": 1})
                if status in ("on_site", "in_progress", "completed", "confirmed"):
                    events.append({"job_id": n, "visit_id": n, "type": "VisitCheckedIn", "data": {}, "occurred_at": planned + timedelta(minutes=5)})
                if status in ("completed", "confirmed"):
                    events.append({"job_id": n, "visit_id": n, "type": "VisitCompleted", "data": {}, "occurred_at": planned + timedelta(minutes=50)})
                if status in ("accepted", "booked") and n % 11 == 0:
                    events.append({"job_id": n, "visit_id": n, "type": "SlaTierReached", "occurred_at": planned,
                                   "data": {"stage": "arrival" if status == "accepted" else "accept", "tier": 80}})
                events.append({"job_id": n, "visit_id": n, "type": "VisitBooked", "data": {}, "occurred_at": created})
                if status == "on_hold":
                    reports.append({"visit_id": n, "technician_id": tech, "reason": "customer_unreachable", "note": "", "photo_ids": [],
                                    "status": "open", "created_at": planned + timedelta(minutes=10)})
            for table, batch in ((t.jobs, jobs), (t.visits, rows), (t.domain_events, events), (t.problem_reports, reports)):
                for first in range(0, len(batch), 500):
                    await conn.execute(insert(table), batch[first:first + 500])
            if engine.dialect.name == "postgresql":  # rows inserted with their ids: move the sequences past them
                for table in (t.technicians, t.customers, t.jobs, t.visits):
                    await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), (SELECT max(id) FROM {table.name}))"))
                await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def _server_database(url: str) -> tuple[str, str, str]:
    """A fresh database on the server ``url`` names (its own database is only where CREATE DATABASE runs): (the new
    database's URL, the admin URL, its name)."""
    name = f"fieldchat_bench_board_{uuid.uuid4().hex[:8]}"
    admin = make_url(normalize_url(url))
    engine = create_engine(admin.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False), admin.render_as_string(hide_password=False), name


async def _drop(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url)
    try:
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        await engine.dispose()


async def measure(url: str, media: Path, day: date, renders: int) -> list[float]:
    """Milliseconds per GET /board of ``day`` for a dispatcher of both regions, through the ASGI app (after one warm-up)."""
    clock = ManualClock(datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(hours=4))  # noon in Shanghai
    container = build(Settings(_env_file=None, database_url=url, media_dir=media), clock)  # type: ignore[call-arg]
    app = create_app(container, run_background=False)
    async with app.router.lifespan_context(app):  # as serving would: migrations checked, nothing in the background
        async def sign_in(ctx: Any) -> tuple[str, list[Any]]:
            account = await accounts.add_account(ctx, username="bench", display_name="Bench", role="dispatcher", password=None,
                                                 regions=list(REGIONS), chat_user_id="1")
            cookie, _csrf = await accounts.start_session(ctx, account, via="password", address="127.0.0.1", ttl=timedelta(hours=1))
            return cookie, []

        cookie = await container.bus.call("bench:board:signin", sign_in)
        timings = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", cookies={SESSION_COOKIE: cookie}) as client:
            for n in range(renders + 1):
                began = time.perf_counter()
                answer = await client.get(f"/board?day={day.isoformat()}")
                took = (time.perf_counter() - began) * 1000
                if answer.status_code != 200:
                    raise SystemExit(f"fieldchat bench board: /board answered {answer.status_code}: {answer.text[:300]}")
                if n:  # the first render warms caches (catalogs, statements)
                    timings.append(took)
        return timings


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    day = date.fromisoformat(args.day) if args.day else date(2026, 6, 1)
    folder = Path(tempfile.mkdtemp(prefix="fieldchat-bench-board-"))
    dropping: tuple[str, str] | None = None
    try:
        if args.database_url:
            url, admin, name = await _server_database(args.database_url) if not normalize_url(args.database_url).startswith("sqlite") else (
                args.database_url, "", "")
            if name:
                dropping = (admin, name)
        else:
            url = f"sqlite:///{folder / 'board.db'}"
        say(f"migrating {make_url(normalize_url(url)).render_as_string(hide_password=True)} …")
        await upgrade_async(url)
        began = time.perf_counter()
        await seed(url, day, args.technicians, args.visits, args.other_visits, args.seed)
        say(f"seeded {args.technicians} technicians, {args.visits} visits on {day} and {args.other_visits} on other days "
            f"in {time.perf_counter() - began:.1f} s")
        timings = await measure(url, folder / "media", day, args.renders)
    finally:
        if dropping:
            await _drop(*dropping)
        shutil.rmtree(folder, ignore_errors=True)
    dialect = "postgresql" if dropping else "sqlite"
    return {"bench": "board", "database": dialect, "technicians": args.technicians, "visits": args.visits, "renders": len(timings),
            "p50_ms": round(statistics.median(timings), 1), "p95_ms": round(_percentile(timings, 0.95), 1),
            "max_ms": round(max(timings), 1), "target_ms": TARGETS_MS[dialect]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldchat bench board", description=__doc__)
    parser.add_argument("--technicians", type=int, default=50, help="technicians (default 50)")
    parser.add_argument("--visits", type=int, default=1000, help="visits on the day shown (default 1,000)")
    parser.add_argument("--other-visits", type=int, default=1000, help="visits on the days around it (default 1,000)")
    parser.add_argument("--renders", type=int, default=20, help="renders timed after one warm-up (default 20)")
    parser.add_argument("--day", help="the day shown, YYYY-MM-DD (default 2026-06-01)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs behind the job list timed after the board (default 100,000; 0 skips it)")
    parser.add_argument("--database-url", help="a PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/test): the bench makes a "
                                               "database of its own there and drops it afterwards; default a temporary SQLite file")
    args = parser.parse_args(argv)
    if min(args.technicians, args.visits, args.renders) < 1 or args.other_visits < 0 or args.jobs < 0:
        parser.error("technicians, visits and renders are at least 1; other visits at least 0")
    record = asyncio.run(run(args))
    print(f"board: {record['visits']} visits, {record['technicians']} technicians on {record['database']}: "
          f"p50 {record['p50_ms']} ms, p95 {record['p95_ms']} ms (target < {record['target_ms']:.0f} ms)")
    print(json.dumps(record, sort_keys=True), flush=True)
    if args.jobs:
        jobs = asyncio.run(run_jobs(args))
        print(f"jobs: a filtered list over {jobs['jobs']} jobs on {jobs['database']}: p50 {jobs['p50_ms']:.1f} ms, "
              f"p95 {jobs['p95_ms']:.1f} ms (target < {jobs['target_ms']:.0f} ms)")
        print(json.dumps(jobs, sort_keys=True), flush=True)
    return 0


async def run_jobs(args: argparse.Namespace) -> dict[str, Any]:
    """The job list's render time over ``--jobs`` jobs (fieldchat/jobs_bench.py), in a database of its own."""
    dropping: tuple[str, str] | None = None
    url: str | None = None
    try:
        if args.database_url and not normalize_url(args.database_url).startswith("sqlite"):
            url, admin, name = await _server_database(args.database_url)
            dropping = (admin, name)
        record = await jobs_bench.measure(url, args.jobs, args.renders)
    finally:
        if dropping:
            await _drop(*dropping)
    return {**record, "target_ms": TARGETS_MS[record["database"]]}


if __name__ == "__main__":
    sys.exit(main())
