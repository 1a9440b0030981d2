"""Integration fixtures: a fieldchat on a test database driven through its engine (World), and the API in process."""

from __future__ import annotations

import pytest

from tests.support.api import running_api
from tests.support.harness import World


@pytest.fixture
def world_settings() -> dict:
    """Settings for the `world` fixture; a module overrides this fixture to change them (e.g. the optimizer's time)."""
    # the solver always runs to its time limit, and the days here have a handful of visits: 3 s would only wait
    return {"replan_seconds": 0.5}


@pytest.fixture
async def world(database_url, tmp_path, world_settings):
    """A World on SQLite, and on PostgreSQL in the full run; a module overriding `database_url` keeps it to one."""
    world = await World.create(database_url, tmp_path, **world_settings)
    yield world
    await world.close()


@pytest.fixture
async def api(database_url, tmp_path):
    async with running_api(database_url, tmp_path) as running:
        yield running


@pytest.fixture
async def sqlite_api(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path) as running:
        yield running
