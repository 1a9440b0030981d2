"""Runs the Alembic migrations programmatically: the only way the schema is created."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is an interpolation character in Alembic's config parser
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    """Alembic's env runs its own event loop, so migrate from a worker thread."""
    await asyncio.to_thread(upgrade, database_url)


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code ships (read once per process)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at this code's newest migration: one query, where running Alembic costs a thread,
    an event loop, an engine and the migration scripts on every start."""
    try:
        async with engine.connect() as connection:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError:  # a new database: no version table yet
        return False
    return revision is not None and revision == head_revision()


async def ensure_current(engine: AsyncEngine, database_url: str) -> None:
    """Migrate to the newest revision unless the database is there already."""
    if not await is_current(engine):
        await upgrade_async(database_url)
