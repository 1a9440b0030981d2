"""Runs the Alembic migrations programmatically: the only way the schema is created."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

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
