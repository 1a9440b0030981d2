"""`fieldchat plans` as a shop uses it: the demo's plan listed and shown, a plan made from options and one from a JSON file
(the API's body and checks), inspections generated, a period's report written as a file, a plan stopped, and clear
answers for what cannot be done."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta

from fieldchat import cli
from tests.support.cli import cli_environment


def test_plans_from_the_command_line(tmp_path, monkeypatch, capsys):
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/shop.db", FIELDCHAT_LOG_LEVEL="WARNING"):
        assert cli.main(["demo-data"]) == 0  # the demo customer's home (site 1) with its quarterly plan (plan 1)
        assert cli.main(["demo-data"]) == 0  # a second run makes no second plan
        capsys.readouterr()
        assert cli.main(["plans", "list"]) == 0
        listed = capsys.readouterr().out.strip().splitlines()
        assert len(listed) == 1 and listed[0].startswith("#1 Quarterly appliance inspection · site 1 · FREQ=MONTHLY;INTERVAL=3")
        assert "technician 3" in listed[0] and "active" in listed[0]
        assert cli.main(["plans", "show", "1", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["assignee"] == "technician" and len(shown["inspections"]) == 1  # ten days ahead, within the lead: made at once
        assert shown["device_ids"] == [1, 2]  # the appliances by name: a sofa installed there later is not inspected
        assert shown["inspections"][0]["status"] == "booked" and shown["inspections"][0]["technician_id"] == 3

        # from options: every active device of the site, a team, made through the same command the API runs
        starts = (date.today() + timedelta(days=40)).isoformat()
        assert cli.main(["plans", "create", "--site", "1", "--name", "Monthly filters", "--rule", "FREQ=MONTHLY", "--starts-on", starts,
                         "--team", "3,2", "--lead-days", "7"]) == 0
        made = capsys.readouterr().out
        assert "created plan 2; 0 inspections made now" in made and "team 3,2" in made
        # from a JSON file shaped like the API's body, an option overriding its name
        body = {"name": "Yearly", "site_id": 1, "rule": "FREQ=YEARLY", "starts_on": starts, "device_ids": [1], "reviewer_dispatcher_id": 1}
        (tmp_path / "plan.json").write_text(json.dumps(body))
        assert cli.main(["plans", "create", "--file", "plan.json", "--name", "Yearly check"]) == 0
        assert "#3 Yearly check" in capsys.readouterr().out
        assert cli.main(["plans", "generate", "3"]) == 0
        assert "0 inspections made now" in capsys.readouterr().out

        # the report of the demo plan's first period, as a file
        assert cli.main(["plans", "report", "1", "-o", "report.csv"]) == 0
        assert "wrote report.csv" in capsys.readouterr().out
        rows = list(csv.DictReader((tmp_path / "report.csv").open(encoding="utf-8")))
        assert [row["state"] for row in rows] == ["planned"] and rows[0]["plan"] == "Quarterly appliance inspection"
        assert cli.main(["plans", "report", "1", "--format", "json", "-o", "-"]) == 0
        assert json.loads(capsys.readouterr().out)["lines"][0]["state"] == "planned"

        assert cli.main(["plans", "stop", "2"]) == 0
        assert "stopped" in capsys.readouterr().out

        # what cannot be done is said in one line, and nothing is made
        assert cli.main(["plans", "show", "9"]) == 1
        assert cli.main(["plans", "generate", "9"]) == 1
        assert cli.main(["plans", "create", "--site", "1", "--name", "x", "--rule", "FREQ=HOURLY", "--starts-on", starts]) == 1
        assert cli.main(["plans", "create", "--site", "1", "--name", "x", "--rule", "FREQ=MONTHLY", "--starts-on", "2026-13-01"]) == 1
        assert cli.main(["plans", "create", "--site", "99", "--name", "x", "--rule", "FREQ=MONTHLY", "--starts-on", starts]) == 1
        assert cli.main(["plans", "create", "--file", "missing.json"]) == 1
        errors = capsys.readouterr().err
        assert "no maintenance plan 9" in errors and "(plan_not_found)" in errors and "(plan_rule_frequency)" in errors
        assert "starts_on" in errors and "(site_not_found)" in errors and "missing.json" in errors
        assert cli.main(["plans", "list"]) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) == 3
