"""`fieldchat settlements` as a shop uses it: statements listed and exported as CSV (one, or a month's), a month closed
(and closed again: nothing new), a technician's payout rule shown and set, and clear answers for bad input."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil

from domain import commands as c
from fieldchat import cli
from tests.integration.test_settlement import at, confirmed_delivery, item_of
from tests.support.cli import cli_environment
from tests.support.db import in_thread
from tests.support.harness import World


async def _a_settled_month(url: str, tmp_path) -> int:
    """Wang's confirmed delivery, its review over, November closed by its timer: the visit id."""
    world = await World.create(url, tmp_path)
    try:
        _order, _customer, _driver, _group, visit_id, _after = await confirmed_delivery(world)
        await world.container.bus.run("test", c.AdjustSettlement(visit_id, 14000, "@SUM(A1) scuffed box", "api"))
        world.clock.set((await item_of(world, visit_id)).review_ends_at)
        await world.sweep()
        world.clock.set(at(2026, 12, 1, 2))
        await world.sweep()
        return visit_id
    finally:
        await world.close()


def test_statements_from_the_command_line(tmp_path, monkeypatch, capsys, sqlite_template):
    path = tmp_path / "shop.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    visit_id = in_thread(asyncio.run, _a_settled_month(url, tmp_path))
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_DATABASE_URL=url, FIELDCHAT_LOG_LEVEL="WARNING"):
        assert cli.main(["settlements", "list"]) == 0
        [listed] = capsys.readouterr().out.strip().splitlines()
        assert listed.startswith("#1 ST-2026-11-T") and "Wang" in listed and "2026-11 · monthly · 1 line(s) · CNY 140.00" in listed

        assert cli.main(["settlements", "export", "--id", "1", "-o", "-"]) == 0
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert [(r["visit_id"], r["order_ref"], r["kind"], r["earned_minor"], r["amount_minor"], r["amount"]) for r in rows] == [
            (str(visit_id), "SO-1", "delivery", "15000", "14000", "140.00"), ("", "", "total", "", "14000", "140.00")]
        assert rows[0]["adjust_reason"] == "'@SUM(A1) scuffed box"  # kept as text in a spreadsheet
        assert cli.main(["settlements", "export", "--month", "2026-11"]) == 0
        assert "wrote settlements-2026-11.csv (1 statement(s), 1 line(s))" in capsys.readouterr().out
        assert (tmp_path / "settlements-2026-11.csv").read_text().count("\n") == 3  # header, the line, the total

        # a month with nothing ready (or closed already) makes nothing new (the real clock decides which months are over)
        assert cli.main(["settlements", "close", "--month", "2026-10"]) == 0
        assert "2026-10: nothing new to settle" in capsys.readouterr().out

        assert cli.main(["settlements", "payout", "1"]) == 0
        assert capsys.readouterr().out.strip() == "technician 1: monthly (default), 100% (default) of billed work"
        assert cli.main(["settlements", "payout", "1", "--cycle", "per_order", "--share", "80"]) == 0
        assert capsys.readouterr().out.strip() == "technician 1: per_order, 80% of billed work"

        # bad input: clear answers, nothing made
        assert cli.main(["settlements", "close", "--month", "2026-13"]) == 1
        assert cli.main(["settlements", "export", "--id", "99"]) == 1
        assert cli.main(["settlements", "export", "--month", "2026-10"]) == 1
        assert cli.main(["settlements", "payout", "99", "--share", "50"]) == 1
        errors = capsys.readouterr().err
        assert "(settle_period_invalid)" in errors and "no statement 99" in errors and "no statements for 2026-10" in errors
        assert "no technician 99" in errors
        for bad in (["settlements", "payout", "1", "--share", "101"], ["settlements", "export", "--id", "0"]):
            try:
                cli.main(bad)
            except SystemExit as exit:
                assert exit.code == 2
            else:
                raise AssertionError(f"{bad} was accepted")
        assert cli.main(["settlements", "list", "--month", "2026-12"]) == 0
        assert capsys.readouterr().out.strip() == "no statements for 2026-12 yet"
