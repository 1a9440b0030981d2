"""What `fieldchat serve` runs besides the web: the switches that let scale-out give relays and timers to other processes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.settings import Settings
from storage import tables as t
from tests.support.harness import START


@pytest.mark.parametrize(
    ("switches", "loops", "nightly"),
    [
        ({}, ["inbox sweep", "relay", "timer sweep", "inbox clean-up"], 1),
        ({"run_relay": False}, ["inbox sweep", "timer sweep", "inbox clean-up"], 1),
        ({"run_timers": False}, ["inbox sweep", "relay"], 0),
        ({"run_relay": False, "run_timers": False}, ["inbox sweep"], 0),
    ],
)
async def test_a_web_process_runs_only_the_loops_it_is_given(sqlite_url, tmp_path, switches, loops, nightly):
    container = build(Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", **switches), ManualClock(START))
    await container.start()
    try:
        assert container.running == loops
    finally:
        await container.stop()
    # the nightly plan's first timer is set only where timers run: a web process never plans by surprise
    async with container.sessions() as session:
        timers = (await session.execute(select(t.timers.c.kind))).scalars().all()
    assert timers.count("nightly_plan") == nightly
