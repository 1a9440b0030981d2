"""`fieldchat qr` as a shop uses it: a device's sticker that scans to its link, a customer's sheet, renewing a lost code,
and clear answers for what cannot be printed."""

from __future__ import annotations

import zxingcpp
from PIL import Image

from fieldchat import cli
from tests.support.cli import cli_environment


def test_stickers_sheets_and_a_renewed_code_from_the_command_line(tmp_path, monkeypatch, capsys):
    with cli_environment(monkeypatch, tmp_path, FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/shop.db", FIELDCHAT_PUBLIC_URL="https://shop.example"):
        assert cli.main(["demo-data"]) == 0  # the demo customer's air conditioner (device 1) and washing machine (2)
        capsys.readouterr()
        assert cli.main(["qr", "--device", "1", "-o", "unit.png"]) == 0
        [link] = [r.text for r in zxingcpp.read_barcodes(Image.open(tmp_path / "unit.png"))]
        assert link.startswith("https://shop.example/customer#customer=") and link in capsys.readouterr().out
        assert cli.main(["qr", "--customer", "1", "--sheet", "-o", "sheet.html"]) == 0
        assert (tmp_path / "sheet.html").read_text().count("<img") == 2
        capsys.readouterr()
        assert cli.main(["qr", "--device", "1", "--renew"]) == 0
        renewed = capsys.readouterr().out
        assert "new code: https://shop.example/customer#customer=" in renewed and link not in renewed
        assert cli.main(["qr", "--customer", "1"]) == 1
        assert cli.main(["qr", "--device", "99"]) == 1
        assert cli.main(["qr", "--device", "0"]) == 1
        errors = capsys.readouterr().err
        assert "--customer makes a sheet" in errors and "no active device 99" in errors and "ids are whole numbers" in errors
