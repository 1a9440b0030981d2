"""The `fieldchat` command in this process: help, configuration errors named in one line, bad arguments, redacted logs.
As a process of its own: e2e/test_cli.py."""

from __future__ import annotations

import logging

import pytest

from fieldchat import cli
from fieldchat.logs import RedactingFormatter
from tests.support.cli import cli_environment


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "migrate", "demo-data", "plan", "relay", "flows"):
        assert command in out


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_a_wrong_setting_is_named_in_one_line_without_a_traceback(tmp_path, monkeypatch, capsys):
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_PORT="eighty", FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/x.db"):
        assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fieldchat: configuration error: FIELDCHAT_PORT") and "Traceback" not in err


@pytest.mark.parametrize("value", ["", "   ", "short-token"], ids=["empty", "blank", "short"])
def test_an_empty_or_short_api_token_stops_start_up_with_one_clear_line(value, tmp_path, monkeypatch, capsys):
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_API_TOKEN=value, FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/x.db"):
        assert cli.main(["migrate"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "fieldchat: configuration error: FIELDCHAT_API_TOKEN: must be at least 24 characters; leave it unset and the API stays off"
    ]
    assert not (tmp_path / "x.db").exists()  # refused before anything was touched


def test_a_date_that_is_not_a_date_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["plan", "--date", "tomorrow"])
    assert exited.value.code == 2 and "date" in capsys.readouterr().err


def test_configured_tokens_never_reach_the_log():
    record = logging.LogRecord("aiogram", logging.ERROR, __file__, 1, "failed calling %s", ("https://api/bot123:SECRET/getMe",), None)
    line = RedactingFormatter("%(message)s", [lambda: ["123:SECRET"]]).format(record)
    assert "SECRET" not in line and "***" in line
