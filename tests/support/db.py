"""Migrated test databases: a SQLite template copied per test, and one PostgreSQL database per run, truncated per test."""

from __future__ import annotations

import asyncio
import os
import threading

import asyncpg

from storage import tables

POSTGRES_ADMIN_URL = os.environ.get("FIELDCHAT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def in_thread(function, *args):
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


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def admin_sync(sql: str) -> None:
    """One statement on the PostgreSQL server's admin database (CREATE / DROP DATABASE)."""
    asyncio.run(_admin(sql))


async def truncate(url: str) -> None:
    """Empty every table of a migrated PostgreSQL database, so the next test starts from nothing."""
    connection = await asyncpg.connect(url)
    try:
        names = ", ".join(f'"{t.name}"' for t in tables.metadata.sorted_tables)
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()
