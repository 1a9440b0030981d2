"""Fixtures every layer shares: migrated databases (SQLite, and the real PostgreSQL in the full run), Redis, the fake Bot API.

The layers: unit/ (pure code and handlers on fakes), integration/ (engine, store, outbox and API on real databases),
contract/ (each channel against its fake platform server), e2e/ (processes, browser, real adapter loops: all slow).
`pytest -m "not slow"` is the inner loop; `pytest` (and `make test`) runs everything.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import uuid
from datetime import timezone
from pathlib import Path

import asyncpg
import pytest
import redis

from domain.clock import SystemClock
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from tests.support.db import POSTGRES_ADMIN_URL, admin_sync, in_thread, truncate

E2E = Path(__file__).parent / "e2e"


def pytest_configure(config: pytest.Config) -> None:
    """The cyclic garbage collector runs its youngest generation every 10,000 allocations, not every 700: imports, app
    builds and parsed source trees make objects by the hundred thousand, and each young collection walks them all again
    (about 8% of the inner loop's CPU). Garbage is still collected, only in fewer, larger passes."""
    gc.set_threshold(10_000, *gc.get_threshold()[1:])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is slow by nature (processes, a browser, real adapter loops and their timing)."""
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every module is imported now and lives to the end: out of the collector's sight, each full collection in a
    test process no longer walks them (about half of the objects, and of the time, of the collections run)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """argon2id at its smallest cost in this process: a sign-in test verifies dozens of passwords, and the production
    parameters (tens of milliseconds each, by design) would only slow the suite. Hash format and checks stay the same."""
    from argon2 import PasswordHasher

    from services import accounts

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(accounts, "PASSWORDS", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("fieldchat-no-such-account"))


@pytest.fixture(scope="session", autouse=True)
def _route_handlers_built_once() -> None:
    """FastAPI builds every route's handler again for each app, and the tests build an app per test (see tests.support.routes)."""
    # imported here, not above: a run of pure tests, and pytest-xdist's controller, never need FastAPI
    from tests.support.routes import share_openapi_schemas, share_route_handlers

    share_route_handlers()
    share_openapi_schemas()  # and the schema of /openapi.json, once per set of routes


@pytest.fixture(scope="session", autouse=True)
def _compiled_statements_shared() -> None:
    """SQLAlchemy compiles each statement once per engine, and the tests make an engine per test (see tests.support.sql_cache)."""
    from tests.support.sql_cache import share_compiled_statements

    share_compiled_statements()


@pytest.fixture(scope="session", autouse=True)
def _one_tls_context() -> None:
    """Every HTTP client loaded the CA bundle into a TLS context of its own (see tests.support.tls)."""
    from tests.support.tls import share_default_tls_contexts

    share_default_tls_contexts()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    """One migrated SQLite file; each test gets a copy, which is much faster than migrating again."""
    path = tmp_path_factory.mktemp("template") / "fieldchat.db"
    in_thread(upgrade, f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def postgres_database() -> str:
    """A fresh PostgreSQL database for this test run, created by the migrations and dropped at the end."""
    name = f"fieldchat_test_{uuid.uuid4().hex[:10]}"
    try:
        in_thread(admin_sync, f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    in_thread(upgrade, url)
    yield url
    in_thread(admin_sync, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_of(sqlite_template: str, tmp_path: Path) -> str:
    path = tmp_path / "fieldchat.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


# PostgreSQL runs the same tests again for what the dialect decides (locks, upserts, types); SQLite covers the
# logic in the inner loop, so the PostgreSQL half is slow
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)]


@pytest.fixture(params=DATABASES)
async def database_url(request, tmp_path, sqlite_template) -> str:
    if request.param == "sqlite":
        return copy_of(sqlite_template, tmp_path)
    url = request.getfixturevalue("postgres_database")
    await truncate(url)
    return url


@pytest.fixture
async def sqlite_url(tmp_path, sqlite_template) -> str:
    return copy_of(sqlite_template, tmp_path)


@pytest.fixture
async def postgres_url(postgres_database) -> str:
    """PostgreSQL only, for what SQLite cannot show at all (concurrent claims and upserts); mark such tests slow."""
    await truncate(postgres_database)
    return postgres_database


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("FIELDCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {url}: {exc}")
    return url


async def _close_at_once(self) -> None:
    if self._session is not None and not self._session.closed:
        await self._session.close()


@pytest.fixture(autouse=True)
def _aiogram_closes_at_once(monkeypatch) -> None:
    """aiogram's session waits 250 ms after closing, for TLS connections to wind down; the tests talk plain HTTP to
    127.0.0.1, where there is nothing to wait for (0.25 s per bot closed, in every test that closes one)."""
    aiohttp_session = sys.modules.get("aiogram.client.session.aiohttp")  # only where aiogram is loaded already (see below)
    if aiohttp_session is not None:
        monkeypatch.setattr(aiohttp_session.AiohttpSession, "close", _close_at_once)


@pytest.fixture
async def fake_telegram():
    """The fake Bot API on 127.0.0.1 with the customer and the staff bot of tests.support.telegram."""
    # imported here, not above: aiogram takes seconds to import, and a run of pure tests (or pytest-xdist's
    # controller, which only hands tests out) never needs it
    from fieldchat.fakes.telegram_server import FakeTelegram
    from tests.support.telegram import CUSTOMER, STAFF

    server = FakeTelegram(long_poll_cap=0.3)
    await server.start()
    server.add_bot(CUSTOMER, "fieldchat_customer_bot")
    server.add_bot(STAFF, "fieldchat_staff_bot")
    yield server
    await server.stop()


@pytest.fixture
async def relays(fake_telegram, tmp_path):
    """Makes outbox relays that send to the fake Bot API (``wrap`` may stand between); closes their bots afterwards."""
    from bots.telegram import TelegramBot, TelegramChannel
    from scheduler.relay import OutboxRelay
    from tests.support.telegram import CUSTOMER, STAFF

    made: list[TelegramBot] = []

    def make(sessions, *, clock=None, wrap=None, **options) -> OutboxRelay:
        tokens = {"customer": CUSTOMER, "staff": STAFF}
        bots = {role: TelegramBot(role, token, fake_telegram.base_url, None, tmp_path) for role, token in tokens.items()}
        made.extend(bots.values())
        sender = TelegramChannel(bots) if wrap is None else wrap(TelegramChannel(bots))
        return OutboxRelay(sessions=sessions, senders={"telegram": sender}, clock=clock or SystemClock(), tz=timezone.utc, **options)

    yield make
    for bot in made:
        await bot.bot.session.close()


@pytest.fixture
async def db(database_url):
    """A session factory on the test database (both dialects)."""
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def sqlite_db(sqlite_url):
    engine = create_engine(sqlite_url)
    yield session_factory(engine)
    await engine.dispose()
