"""`fieldchat bench board` run tiny: it seeds its own database, renders the board through the app and prints one JSON line
of timings (the figures themselves are for people to read; nothing here times anything)."""

from __future__ import annotations

import json

import pytest

from fieldchat.bench import main as bench_main
from tests.support.db import POSTGRES_ADMIN_URL


def test_the_board_bench_prints_its_timings_as_one_json_line_and_the_job_lists_as_another(capsys):
    assert bench_main(["board", "--technicians", "3", "--visits", "12", "--other-visits", "4", "--renders", "2", "--jobs", "30"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    jobs = json.loads(lines[-1])
    assert jobs["bench"] == "jobs" and jobs["database"] == "sqlite" and jobs["jobs"] >= 30 and jobs["target_ms"] == 1000.0
    assert 0 < jobs["p50_ms"] <= jobs["p95_ms"] and lines[-2].startswith("jobs: a filtered list over")
    lines = lines[:-2]
    record = json.loads(lines[-1])
    assert set(record) == {"bench", "database", "technicians", "visits", "renders", "p50_ms", "p95_ms", "max_ms", "target_ms"}
    assert record["bench"] == "board" and record["database"] == "sqlite" and record["visits"] == 12 and record["renders"] == 2
    assert 0 < record["p50_ms"] <= record["p95_ms"] <= record["max_ms"] and record["target_ms"] == 1000.0
    assert lines[0].startswith("board: 12 visits, 3 technicians on sqlite")


@pytest.mark.slow
@pytest.mark.postgres
def test_the_board_bench_on_postgresql_makes_and_drops_a_database_of_its_own(capsys):
    """The board's read model on PostgreSQL (JSON read as text, the day's subqueries) through the same bench, tiny."""
    assert bench_main(["board", "--technicians", "3", "--visits", "12", "--other-visits", "4", "--renders", "2",
                       "--database-url", POSTGRES_ADMIN_URL, "--jobs", "0"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["database"] == "postgresql" and record["renders"] == 2 and record["target_ms"] == 300.0
