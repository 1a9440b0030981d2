"""The command line: help, clear configuration errors, and secrets kept out of logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from fieldchat.logs import RedactingFormatter

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


def test_configured_tokens_never_reach_the_log():
    record = logging.LogRecord("aiogram", logging.ERROR, __file__, 1, "failed calling %s", ("https://api/bot123:SECRET/getMe",), None)
    line = RedactingFormatter("%(message)s", [lambda: ["123:SECRET"]]).format(record)
    assert "SECRET" not in line and "***" in line
