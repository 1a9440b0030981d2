"""Shared fixtures: a migrated database per test on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import threading
import shutil
import uuid

import asyncpg
import pytest

from storage import tables
from storage.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get("FIELDCHAT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    """One migrated SQLite file; each test gets a copy, which is much faster than migrating again."""
    path = tmp_path_factory.mktemp("template") / "fieldchat.db"
    _in_thread(upgrade, f"sqlite:///{path}")
    return str(path)


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _in_thread(function, *args):
    """Run blocking set-up that owns its own event loop, even when asked for from inside a running one."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed back to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _admin_sync(sql: str) -> None:
    asyncio.run(_admin(sql))


@pytest.fixture(scope="session")
def postgres_database() -> str:
    """A fresh PostgreSQL database for this test run, created by the migrations and dropped at the end."""
    name = f"fieldchat_test_{uuid.uuid4().hex[:10]}"
    try:
        _in_thread(_admin_sync, f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    _in_thread(upgrade, url)
    yield url
    _in_thread(_admin_sync, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _truncate(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        names = ", ".join(f'"{t.name}"' for t in tables.metadata.sorted_tables)
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request, tmp_path, sqlite_template) -> str:
    if request.param == "sqlite":
        path = tmp_path / "fieldchat.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    await _truncate(url)
    return url


@pytest.fixture
async def sqlite_url(tmp_path, sqlite_template) -> str:
    path = tmp_path / "fieldchat.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"
