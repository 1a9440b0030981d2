"""The printable sheet of QR stickers in a real headless Chromium: every code on the page scans to its link, the Chinese
labels render, and it prints to A4."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import async_playwright

from services import qr
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.browser]


async def test_the_printable_sheet_shows_scannable_codes_with_their_labels(tmp_path):
    labels = [qr.Label(f"https://t.me/acme_service_bot?start=code{n:02d}abcdefghijklmnopqrstuvw", f"空调 {n}", ("卧室", "扫码报修 · Scan to report a fault"))
              for n in range(5)]
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await chromium.new_page(viewport={"width": 900, "height": 1200})
            await page.set_content(qr.sheet_html(labels, title="QR"))
            shot = await page.screenshot(full_page=True)
            (tmp_path / "sheet.png").write_bytes(shot)
            assert await page.locator(".cell").count() == 5
            assert await page.locator(".title").first.inner_text() == "空调 0"
            pdf = await page.pdf(format="A4")
        finally:
            await chromium.close()
    found = sorted(result.text for result in zxingcpp.read_barcodes(Image.open(io.BytesIO(shot))))
    assert found == sorted(label.link for label in labels)
    assert pdf.startswith(b"%PDF")
