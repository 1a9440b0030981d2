"""Telegram webhook bodies: capped at 1 MB, and malformed or absurdly nested ones answered 200 and dropped with a log line."""

from __future__ import annotations

import logging

import httpx

from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.settings import Settings
from fieldchat.fakes.telegram_server import FakeTelegram
from tests.support.harness import START
from webhooks.app import create_app

STAFF = "222222:AAstaff-bot-token-for-tests"


async def test_oversized_and_absurd_webhook_bodies_are_bounded_and_never_retried_forever(sqlite_url, tmp_path, caplog):
    async with FakeTelegram() as fake:
        fake.add_bot(STAFF, "shop_staff_bot")
        settings = Settings(
            _env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", telegram_staff_token=STAFF,
            telegram_api_url=fake.base_url, telegram_mode="webhook", public_url="https://shop.example",
        )
        container = build(settings, ManualClock(START))
        app = create_app(container, run_background=False)
        secret = {"X-Telegram-Bot-Api-Secret-Token": settings.webhook_secret(STAFF), "Content-Type": "application/json"}
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            url = "/telegram/staff/webhook"
            # 200,000 levels of nesting: the parser gives up; Telegram must not be asked to send it again
            deep = await client.post(url, content=b"[" * 200_000 + b"]" * 200_000, headers=secret)
            assert deep.status_code == 200 and deep.json() == {"ok": False}
            assert "malformed update dropped (RecursionError)" in caplog.text
            # a body over 1 MB is refused before it is read, whether it says its length or not
            big = b'{"update_id": 1, "message": {"text": "' + b"x" * (1024 * 1024) + b'"}}'
            assert (await client.post(url, content=big, headers=secret)).status_code == 413

            async def stream():
                for _ in range(20):
                    yield b" " * 65536

            assert (await client.post(url, content=stream(), headers=secret)).status_code == 413
            # without the secret nothing is read at all
            assert (await client.post(url, content=b"{}", headers={"Content-Type": "application/json"})).status_code == 401
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
