"""`fieldchat bench start` with one run: its JSON line is whole, and every server it started stopped cleanly and left nothing running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")
FIELDS = {"ready_s", "ready_s_median", "rss_mib_ready", "rss_mib_idle", "rss_mib_idle_median", "processes", "bots_polling", "exit_codes", "left_running", "clean_stops"}


def _running_in(folder: Path) -> list[int]:
    """Processes (ours or orphans) whose working directory is under the folder: the bench starts its servers there."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(os.readlink(f"/proc/{entry}/cwd")).is_relative_to(folder):
                    found.append(int(entry))
            except OSError:
                continue  # ended meanwhile, or not ours to look at
    return found


def test_one_start_of_ptb_and_of_the_bare_server_reports_every_figure_and_leaves_nothing_running(tmp_path):
    # the bench's scratch folder goes under tmp_path (tempfile honours TMPDIR), so what it started can be found there
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([FIELDCHAT, "bench", "start", "--runs", "1", "--drivers", "ptb", "--no-bots"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert (report["bench"], report["runs"]) == ("start", 1)
    assert "aiogram" not in report
    for system in ("ptb", "no_bots"):
        record = report[system]
        assert FIELDS <= set(record), (system, FIELDS - set(record))
        assert len(record["ready_s"]) == len(record["rss_mib_ready"]) == len(record["rss_mib_idle"]) == 1, record
        assert record["ready_s"][0] > 0 and record["ready_s_median"] > 0, record
        assert record["rss_mib_ready"][0] > 0 and record["rss_mib_idle"][0] > 0 and record["rss_mib_idle_median"] > 0, record
        assert record["processes"][0] >= 1, record
        # with bots: both polled the fake Bot API while the server was measured; without: none did
        assert record["bots_polling"] == ([2] if system == "ptb" else [0]), record
        # SIGTERM ended the server gracefully (no kill, no traceback), and none of its processes outlived it
        assert (record["clean_stops"], record["left_running"]) == (1, 0), record
    assert "first /healthz 200" in done.stderr
    assert _running_in(tmp_path) == []
