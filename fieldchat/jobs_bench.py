"""The job list's benchmark: a database with (or given) many jobs, and the filtered list rendered through the ASGI app, timed."""

from __future__ import annotations

import html
import random
import re
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text

from domain.clock import SystemClock
from fieldchat.container import build
from fieldchat.settings import Settings
from services import accounts
from storage import tables as t
from storage.accounts import AccountStore
from storage.db import create_engine, is_sqlite, normalize_url, session_factory
from storage.migrate import upgrade_async
from webhooks.app import create_app
from webhooks.signin import SESSION_COOKIE

SOURCE = "bench-jobs"  # the bench's jobs carry this source: a second run finds them and only adds what is missing
REGIONS = tuple(f"R{n:02d}" for n in range(20))
TECHNICIANS = 50
BATCH = 5_000
ACCOUNT = "bench-jobs-dispatcher"
STATUSES = (("done", 80), ("open", 15), ("cancelled", 5))  # percent: most jobs of a year are finished


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))], 2)


async def _seed(sessions: Any, wanted: int, now: datetime, rng: random.Random) -> tuple[int, float]:
    """Jobs of this bench up to ``wanted`` (one visit each, most of them booked and assigned within the past year),
    with their customers and 50 technicians; (jobs there now, seconds spent adding)."""
    started = time.perf_counter()
    async with sessions() as session, session.begin():
        have = (await session.execute(select(func.count()).select_from(t.jobs).where(t.jobs.c.source == SOURCE))).scalar_one()
        technicians = list((await session.execute(select(t.technicians.c.id).where(t.technicians.c.name.like("Bench tech %")))).scalars())
        if len(technicians) < TECHNICIANS:
            rows = [{"name": f"Bench tech {n:02d}", "phone": f"1390000{n:04d}", "roles": ["driver"], "skills": [], "regions": [REGIONS[n % 20]],
                     "working_hours": {"weekdays": [0, 1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}, "on_duty": True, "language": "zh"}
                    for n in range(len(technicians), TECHNICIANS)]
            await session.execute(insert(t.technicians), rows)
            technicians = list((await session.execute(select(t.technicians.c.id).where(t.technicians.c.name.like("Bench tech %")))).scalars())
    statuses = [status for status, share in STATUSES for _ in range(share)]
    for first in range(have, wanted, BATCH):
        count = min(BATCH, wanted - first)
        async with sessions() as session, session.begin():
            customers = [{"name": f"Customer {n:06d}", "phone": f"+86 13{n % 10} {n:04d} {n % 9973:04d}", "language": "zh"}
                         for n in range(first, first + count)]
            await session.execute(insert(t.customers), customers)
            customer_ids = list((await session.execute(
                select(t.customers.c.id).order_by(t.customers.c.id.desc()).limit(count))).scalars())[::-1]
            jobs = [{
                "source": SOURCE, "external_ref": f"BJ-{n:07d}", "customer_id": customer_ids[i], "address_text": f"{n % 900} Bench Road, block {n % 37}",
                "lat": 31.2 + (n % 100) / 1000, "lon": 121.4 + (n % 77) / 1000, "region": REGIONS[n % len(REGIONS)], "product_category": "sofa",
                "product_name": "3-seat sofa", "items": [], "notes": "", "status": rng.choice(statuses),
                "created_at": now - timedelta(minutes=(wanted - n) * 5), "priority": "normal",
            } for i, n in enumerate(range(first, first + count))]
            await session.execute(insert(t.jobs), jobs)
            job_ids = list((await session.execute(select(t.jobs.c.id).order_by(t.jobs.c.id.desc()).limit(count))).scalars())[::-1]
            visits = []
            for i, job_id in enumerate(job_ids):
                start = (now - timedelta(days=rng.randrange(0, 365))).replace(hour=1 + i % 8, minute=0, second=0, microsecond=0)
                status = jobs[i]["status"]
                visits.append({
                    "job_id": job_id, "kind": "delivery", "sequence": 1, "duration_minutes": 45,
                    "status": {"done": "confirmed", "cancelled": "cancelled"}.get(status, "accepted"), "declined_by": [],
                    "technician_id": technicians[i % len(technicians)], "slot_start": start, "slot_end": start + timedelta(hours=2),
                    "checklist_position": 0, "crew_ids": [], "categories": [], "version": 1,
                })
            await session.execute(insert(t.visits), visits)
    async with sessions() as session, session.begin():
        # the planner's statistics, as autovacuum (PostgreSQL) would have them for a table this size: without them a
        # freshly filled table looks empty and a semi-join is planned as a loop over every job
        await session.execute(text("ANALYZE"))
    return max(have, wanted), round(time.perf_counter() - started, 2)


async def _session_cookie(container: Any) -> str:
    """A signed-in dispatcher of three regions (the rule the list applies), as a browser's cookie."""
    async def work(ctx: Any) -> tuple[str, list[Any]]:
        row = await AccountStore(ctx.store).account_by_username(ACCOUNT)
        account_id = row["id"] if row is not None else await accounts.add_account(
            ctx, username=ACCOUNT, display_name="Bench dispatcher", role="dispatcher", password=None, regions=list(REGIONS[:3]),
            chat_user_id=str(900_000_000 + random.randrange(1_000_000)))
        cookie, _csrf = await accounts.start_session(ctx, account_id, via="password", address="bench", ttl=timedelta(hours=1))
        return cookie, []

    cookie: str = await container.bus.call(f"bench:jobs:{time.time_ns()}", work)
    return cookie


async def measure(database_url: str | None, jobs: int, repeats: int) -> dict[str, Any]:
    """Create (or reuse) ``jobs`` jobs and time the filtered job list rendered through the ASGI app: p50/p95 in ms of
    ``repeats`` renders of each of a few typical filters, by a dispatcher scoped to three of twenty regions."""
    workdir = tempfile.TemporaryDirectory(prefix="fieldchat-jobs-bench-")
    url = normalize_url(database_url or f"sqlite:///{workdir.name}/jobs.db")
    try:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            now = datetime.now(timezone.utc)
            total, seed_seconds = await _seed(session_factory(engine), jobs, now, random.Random(12))
        finally:
            await engine.dispose()
        settings = Settings(_env_file=None, database_url=url, media_dir=Path(workdir.name) / "media")
        container = build(settings, SystemClock())
        app = create_app(container, run_background=False)
        async with app.router.lifespan_context(app):
            cookie = await _session_cookie(container)
            async with container.sessions() as session:
                technician = (await session.execute(select(t.technicians.c.id).where(t.technicians.c.name == "Bench tech 01"))).scalar_one()
            day = (now - timedelta(days=30)).astimezone(container.policy.tz).date().isoformat()
            filters = {
                "open_in_region": f"status=open&region={REGIONS[1]}",
                "text_search": "q=customer 00004",  # ten customers, three of them in the dispatcher's regions
                "day": f"day={day}",
                "technician_and_status": f"technician={technician}&status=done",
            }
            transport = httpx.ASGITransport(app=app)
            timings: dict[str, Any] = {}
            every: list[float] = []
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", cookies={SESSION_COOKIE: cookie},
                                         headers={"Accept-Language": "en"}) as client:
                # the third page of the unfiltered list, reached as a person would: twice "next page"
                query = ""
                for _ in range(2):
                    found = re.search(r'rel="next" href="/jobs\?([^"]+)"', (await client.get(f"/jobs?{query}")).text)
                    query = html.unescape(found.group(1)) if found else query
                filters["unfiltered_page_3"] = query
                for name, query in filters.items():
                    samples = []
                    rows = 0
                    await client.get(f"/jobs?{query}")  # warm: compiled statements, the catalogs
                    for _ in range(max(1, repeats)):
                        started = time.perf_counter()
                        answer = await client.get(f"/jobs?{query}")
                        samples.append((time.perf_counter() - started) * 1000)
                        if answer.status_code != 200:
                            raise RuntimeError(f"the job list answered {answer.status_code} for {query}")
                        rows = answer.text.count('<tr><td><a href="/jobs/')
                    timings[name] = {"query": query, "rows": rows, "p50_ms": _percentile(samples, 0.5), "p95_ms": _percentile(samples, 0.95)}
                    every += samples
        return {
            "bench": "jobs", "database": "sqlite" if is_sqlite(url) else "postgresql", "jobs": total, "repeats": max(1, repeats),
            "seed_seconds": seed_seconds, "p50_ms": _percentile(every, 0.5), "p95_ms": _percentile(every, 0.95), "filters": timings,
        }
    finally:
        workdir.cleanup()
