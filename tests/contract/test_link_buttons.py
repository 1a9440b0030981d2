"""Link buttons on Telegram, through both drivers to the fake Bot API: an app link opens as a Mini App (web_app) over
https, a plain link or an http one as a url button, next to action buttons that still carry callback data."""

from __future__ import annotations

from fieldchat.fakes.telegram_server import FakeTelegram
from services.messages import Rendered
from tests.contract.test_telegram_drivers import drivers, requests_of  # noqa: F401  (drivers: the fixture)


async def test_both_drivers_send_mini_app_url_and_action_buttons_alike(fake_telegram: FakeTelegram, drivers):  # noqa: F811
    for chat, bot in zip((3101, 3102), drivers.values()):
        await bot.send("customer", str(chat), Rendered("sign here", buttons=[
            [("Open the pad", "app:https://fc.example/sign/1.abc")],
            [("Local pad", "app:http://127.0.0.1:8000/sign/1.abc"), ("Help", "link:https://fc.example/help")],
            [("Report", "rp:12")],
        ]))
    aiogram, ptb = requests_of(fake_telegram, 3101), requests_of(fake_telegram, 3102)
    assert aiogram == ptb
    keyboard = aiogram[0][3]["inline_keyboard"]
    assert keyboard[0] == [{"text": "Open the pad", "web_app": {"url": "https://fc.example/sign/1.abc"}}]
    assert keyboard[1] == [{"text": "Local pad", "url": "http://127.0.0.1:8000/sign/1.abc"}, {"text": "Help", "url": "https://fc.example/help"}]
    assert keyboard[2] == [{"text": "Report", "callback_data": "rp:12"}]
