"""End-to-end fixtures: a running fieldchat (polling and the relay loop in the background) wired to the fake Bot API."""

from __future__ import annotations

import pytest

from tests.support.telegram import running


@pytest.fixture
async def shop(fake_telegram, database_url, tmp_path):
    """On SQLite and PostgreSQL: what the adapter reads and writes runs on both."""
    async with running(fake_telegram, database_url, tmp_path) as shop:
        yield shop


@pytest.fixture
async def sqlite_shop(fake_telegram, sqlite_url, tmp_path):
    async with running(fake_telegram, sqlite_url, tmp_path) as shop:
        yield shop
