"""`fieldchat plans` as a process of its own, on the demo's data: listed, its period's report written to a file, a bad
id answered in one line without a traceback. The whole command in this process: integration/test_maintenance_cli.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")


def test_the_plans_command_lists_the_demo_plan_and_writes_its_report(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    env.update(FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path / 'f.db'}", FIELDCHAT_MEDIA_DIR=str(tmp_path / "m"), FIELDCHAT_LOG_LEVEL="WARNING")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([FIELDCHAT, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert run("demo-data").returncode == 0
    listed = run("plans", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Quarterly appliance inspection" in listed.stdout
    report = run("plans", "report", "1")
    assert report.returncode == 0, report.stderr
    [written] = list(tmp_path.glob("inspection-report-1-*.csv"))
    assert written.read_text(encoding="utf-8").startswith("plan,site,period_start") and written.name in report.stdout
    missing = run("plans", "stop", "7")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "(plan_not_found)" in missing.stderr
    usage = run("plans")
    assert usage.returncode == 2 and "ACTION" in usage.stderr
