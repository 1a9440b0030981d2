"""The schema comes from the Alembic migrations, and they match the tables the code declares."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage import migrate
from storage.db import create_engine
from storage.tables import metadata


async def test_the_migrated_schema_matches_the_declared_tables(database_url):
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    finally:
        await engine.dispose()
    assert differences == []


async def test_start_up_migrates_a_new_or_old_database_and_leaves_a_current_one_alone(tmp_path, monkeypatch):
    """Starting checks the version with one query; Alembic runs only when there is something to do."""
    url = f"sqlite:///{tmp_path / 'start.db'}"
    engine = create_engine(url)
    runs: list[str] = []
    real_upgrade = migrate.upgrade
    monkeypatch.setattr(migrate, "upgrade", lambda database_url, revision="head": (runs.append(revision), real_upgrade(database_url, revision)))
    try:
        await migrate.ensure_current(engine, url)  # a new database: migrated
        assert runs == ["head"] and await migrate.is_current(engine)
        await migrate.ensure_current(engine, url)  # current: nothing runs
        assert runs == ["head"]
        await asyncio.to_thread(command.downgrade, migrate.alembic_config(url), "-1")
        assert not await migrate.is_current(engine)
        await migrate.ensure_current(engine, url)  # one revision behind: migrated again
        assert runs == ["head", "head"] and await migrate.is_current(engine)
    finally:
        await engine.dispose()
