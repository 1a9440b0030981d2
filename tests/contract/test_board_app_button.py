"""The staff bot's /board answer reaches the Bot API as a web_app button (a Telegram Mini App) with both drivers alike, and
a channel without in-chat apps or link buttons still shows the way to the board."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.channels import CAPABILITIES, TELEGRAM, WHATSAPP
from bots.render import fit
from bots.telegram import TelegramBot as AiogramBot
from bots.telegram_ptb import TelegramBot as PtbBot
from fieldchat.fakes.telegram_server import FakeTelegram
from services.messages import Rendered
from services.views import BOARD_SIGN_IN
from tests.contract.test_telegram_drivers import LIMITS, Recorder
from tests.support.telegram import STAFF

URL = f"https://fc.example{BOARD_SIGN_IN}"


def board_answer() -> Rendered:
    """What the technician flow's /board step renders to (label resolved), as the relay hands it to a channel."""
    return Rendered("The dispatch board opens inside this chat.", buttons=[[("📋 Open the board", f"app:{URL}")]])


@pytest.fixture
async def staff_drivers(fake_telegram: FakeTelegram, tmp_path: Path):
    made = {name: cls("staff", STAFF, fake_telegram.base_url, Recorder(), tmp_path / name, photo_limits=LIMITS)  # type: ignore[arg-type]
            for name, cls in (("aiogram", AiogramBot), ("ptb", PtbBot))}
    yield made
    for bot in made.values():
        await bot.close()


async def test_both_drivers_send_the_board_as_a_web_app_button(fake_telegram: FakeTelegram, staff_drivers):
    for chat, bot in zip((4001, 4002), staff_drivers.values()):
        await bot.send("staff", str(chat), fit(board_answer(), CAPABILITIES[TELEGRAM]))
    markups = [sent["reply_markup"] for chat in (4001, 4002) for sent in fake_telegram.sent(chat_id=chat)]
    assert len(markups) == 2 and markups[0] == markups[1]
    assert markups[0]["inline_keyboard"] == [[{"text": "📋 Open the board", "web_app": {"url": URL}}]]


def test_a_channel_without_link_buttons_lists_the_link_in_the_text():
    shown = fit(board_answer(), CAPABILITIES[WHATSAPP])
    assert not shown.buttons
    assert f"📋 Open the board: {URL}" in shown.text
