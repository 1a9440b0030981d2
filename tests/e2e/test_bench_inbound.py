"""`fieldchat bench inbound` at a tiny size: its JSON line is whole, and every update was answered exactly once by each server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.support.db import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.slow

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")
UPDATES, WARMUP = 60, 10
SYSTEM_FIELDS = {"per_s", "cpu_ms", "ack_p50_ms", "ack_p99_ms", "replies_sent_per_s", "processes", "retried", "answered", "lost", "duplicates"}
HALF_LOAD_FIELDS = {"half_load_per_s", "half_load_ack_p99_ms"}


async def _reachable(url: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    await connection.close()


@pytest.fixture
def postgres_admin() -> str:
    try:
        asyncio.run(_reachable(POSTGRES_ADMIN_URL))
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    return POSTGRES_ADMIN_URL


def test_a_tiny_inbound_bench_reports_every_figure_and_each_server_answered_each_update_once(postgres_admin):
    command = [FIELDCHAT, "bench", "inbound", "--updates", str(UPDATES), "--warmup", str(WARMUP), "--repeats", "1",
               "--concurrency", "4", "--drain", "--postgres", postgres_admin]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-5000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["bench"] == "inbound" and report["db"] == "postgresql" and report["updates"] == UPDATES
    for name in ("fieldchat", "durable_echo", "bare_echo", "fieldchat_two"):
        record = report[name]
        wanted = SYSTEM_FIELDS | (set() if name == "fieldchat_two" else HALF_LOAD_FIELDS)
        assert wanted <= set(record), (name, wanted - set(record))
        # every update of the warm-up, the measured stretch and the half-load stretch: one reply each, none twice
        sent = WARMUP + UPDATES + (0 if name == "fieldchat_two" else UPDATES // 2)
        assert (record["answered"], record["lost"], record["duplicates"]) == (sent, 0, 0), (name, record)
        for field in ("per_s", "cpu_ms", "ack_p50_ms", "ack_p99_ms") + (() if name == "fieldchat_two" else ("half_load_per_s", "half_load_ack_p99_ms")):
            assert record[field] > 0, (name, field, record)
    assert report["fieldchat_two"]["processes"] == 2
    # fieldchat's replies left its outbox and reached the stub Bot API, each once
    for name in ("fieldchat", "fieldchat_two"):
        record = report[name]
        assert (record["delivered_answered"], record["delivered_lost"], record["delivered_duplicates"]) == (record["answered"], 0, 0), record
    # the bare echo answers inside the webhook call, so its replies are at the stub by the time it acknowledges
    assert report["bare_echo"]["replies_sent_per_s"] > 0
    for ratio in ("ratio_durable", "ratio_bare", "two_processes_ratio"):
        assert report[ratio] > 0, (ratio, report[ratio])
