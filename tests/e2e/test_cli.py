"""The `fieldchat` command as a process of its own: help, clear configuration errors, planning a day and applying the plan.
The same commands in this process: unit/test_cli.py and integration/test_one_rule.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from domain.model import Visit
from storage.repository import Store
from tests.support.harness import World
from tests.support.setups import declined_then_off_duty

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    return subprocess.run([FIELDCHAT, *args], env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "demo-data"):
        assert command in result.stdout


def test_a_wrong_setting_is_named_without_a_traceback(tmp_path):
    result = run("migrate", FIELDCHAT_PORT="eighty", FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 2
    assert "FIELDCHAT_PORT" in result.stderr and "Traceback" not in result.stderr


def test_an_empty_or_short_api_token_stops_start_up_with_one_clear_line(tmp_path):
    # a blank line in .env used to open the whole back-office API without any token
    for value in ("", "   ", "short-token"):
        result = run("migrate", FIELDCHAT_API_TOKEN=value, FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "fieldchat: configuration error: FIELDCHAT_API_TOKEN: must be at least 24 characters; leave it unset and the API stays off"
        ]
    assert run("migrate", FIELDCHAT_API_TOKEN="x" * 24, FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/x.db").returncode == 0


def test_the_plan_command_prints_a_summary(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    env.update(FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path / 'f.db'}", FIELDCHAT_MEDIA_DIR=str(tmp_path / "m"), FIELDCHAT_LOG_LEVEL="WARNING")
    fieldchat = str(Path(sys.executable).parent / "fieldchat")
    subprocess.run([fieldchat, "demo-data"], env=env, cwd=tmp_path, check=True, capture_output=True)
    result = subprocess.run([fieldchat, "plan", "--time-limit", "1"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Plan for" in result.stdout and "left out" in result.stdout
    bad = subprocess.run([fieldchat, "plan", "--date", "tomorrow"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "date" in bad.stderr


async def test_plan_apply_as_a_process_skips_a_technician_who_declined_instead_of_aborting_the_whole_plan(sqlite_url, tmp_path):
    world = await World.create(sqlite_url, tmp_path)
    try:
        booked, tomorrow = await declined_then_off_duty(world)
    finally:
        await world.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    env.update(FIELDCHAT_DATABASE_URL=sqlite_url, FIELDCHAT_MEDIA_DIR=str(tmp_path / "m"), FIELDCHAT_LOG_LEVEL="WARNING")
    result = subprocess.run([FIELDCHAT, "plan", "--date", tomorrow.isoformat(), "--time-limit", "2", "--apply"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "plan applied" in result.stdout and "Traceback" not in result.stderr

    world = await World.create(sqlite_url, tmp_path)
    try:
        async with world.container.sessions() as session:
            first, second = [await Store(session).get(Visit, v) for v in booked]
        assert first.technician_id is None or first.technician_id not in first.declined_by
        assert second.planned_start is not None
    finally:
        await world.close()
