"""Van stock and a part request in the web console, in a real headless Chromium: the installer's /stock, a request from
the catalogue, the dispatch group's Approve, and the installer told the parts are in the van."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser import Pane, open_chat, page, served  # noqa: F401 - the fixtures, shared with the console's own test

pytestmark = pytest.mark.browser


async def test_the_installer_sees_the_van_requests_a_part_and_the_group_approves_it(page, served, tmp_path):  # noqa: F811
    _customer, _driver, installer, group = await open_chat(page, served)
    await installer.type("/stock")
    await installer.sees("Oak sofa leg (LEG-OAK): 4 pc")  # the demo van (fieldchat/demo.py)
    await installer.press("Your van holds", "Request a part")
    await installer.press("Which part do you need?", "Drain pump (PUMP-DR1)")
    await installer.press("Drain pump (PUMP-DR1): how many (pc)?", "2")
    await installer.sees("Sent to the dispatchers: 2 pc of Drain pump")
    await group.sees("Li Ming asks for 2 pc of Drain pump (PUMP-DR1) for their van")
    await group.press("asks for 2 pc of Drain pump", "Approve and issue")
    await group.sees("Approved: 2 pc of Drain pump (PUMP-DR1) issued to Li Ming's van")
    await installer.sees("Your request was approved: 2 pc of Drain pump (PUMP-DR1) are in your van now (2 in all)")
    await installer.press("Your request was approved", "My van stock")
    await installer.sees("Drain pump (PUMP-DR1): 2 pc")
    await page.screenshot(path="/tmp/stock_console.png", full_page=True)
