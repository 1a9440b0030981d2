"""Secrets never reach the log: each logging path is provoked with known secrets and the captured log is searched."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from bots.robots import RobotSender, RobotSink, known_secrets
from bots.telegram import TelegramBot
from services.messages import ChatRef, Inbound, InboundKind, Rendered
from domain.clock import ManualClock
from fieldchat import logs
from fieldchat.container import build
from fieldchat.settings import Settings
from fieldchat.fakes.robot_servers import FakeRobots
from fieldchat.fakes.telegram_server import FakeTelegram
from tests.support.harness import START
from webhooks.app import create_app

BOT_TOKEN = "987654:AAsecret-bot-token-never-to-be-logged"
API_TOKEN = "api-token-never-to-be-logged-0123456789"
LINK_TOKEN = "LinkTokenNeverToBeLogged0123456"
WECOM_KEY = "wk-11112222-3333-4444-5555-666677778888"


@pytest.fixture
def captured():
    """The product's own log set-up (as `fieldchat serve` makes it), writing into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("DEBUG", [BOT_TOKEN, API_TOKEN], [known_secrets], stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_a_traceback_carrying_a_token_is_redacted_as_a_whole(captured):
    try:
        raise RuntimeError(f"download of https://api.telegram.org/file/bot{BOT_TOKEN}/photos/a.jpg failed")
    except RuntimeError:
        logging.getLogger("anything").exception("it broke")
    text = captured.getvalue()
    assert "Traceback" in text and "it broke" in text
    assert BOT_TOKEN not in text and "/file/bot***/photos/a.jpg" in text


def test_token_shapes_nobody_configured_are_masked_too():
    line = logs.redact("GET https://api.telegram.org/bot1234567:AAbcdefghijklmnopqrstuvwxyz012345/getMe "
                       "and /chat?customer=abc123&lang=en and https://open.feishu.cn/open-apis/bot/v2/hook/f00-ba4 "
                       "and https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1&debug=1")
    assert "AAbcdefghij" not in line and "abc123" not in line and "f00-ba4" not in line and "key=k1" not in line
    assert "lang=en" in line and "debug=1" in line


async def test_a_failed_telegram_download_never_logs_the_file_url(captured, tmp_path):
    async with FakeTelegram() as fake:
        fake.add_bot(BOT_TOKEN, "shop_staff_bot")
        stored = fake.add_file("photo-1", b"\xff\xd8\xff\xe0not really", file_path="photos/file_9.jpg")
        fake._files_by_path.pop(stored.file_path)  # getFile answers, the download itself fails (404)
        bot = TelegramBot("staff", BOT_TOKEN, fake.base_url, engine=None, media_dir=tmp_path)
        event = Inbound(ChatRef("telegram", "staff", "1001"), "u1", InboundKind.PHOTO, "1001", file_id="photo-1", file_size=20)
        try:
            await bot.fetch(event)
        except Exception:
            # whatever a caller does with the failure, even logging its whole traceback
            logging.getLogger("conversations.engine").exception("update u1 failed")
        finally:
            await bot.close()
    text = captured.getvalue()
    assert "update u1 failed" in text
    assert BOT_TOKEN not in text and "AAsecret" not in text


async def test_a_failing_robot_never_logs_its_webhook_key(captured):
    clock = ManualClock(START)
    async with FakeRobots(clock=lambda: clock.now().timestamp()) as fake, httpx.AsyncClient(timeout=2.0) as http:
        fake.add("wecom", WECOM_KEY)
        sink = RobotSink(kind="wecom", name="ops", url=FakeRobots.production_url("wecom", WECOM_KEY), base_url=fake.base_url)
        robots = RobotSender({sink.name: sink}, http, clock)
        fake.fail_next("wecom", status=500)
        try:
            await robots.send("staff", "ops", Rendered("告警"))
        except Exception:
            logging.getLogger("scheduler.relay").exception("outbox 1: sending failed")
    text = captured.getvalue()
    assert "sending failed" in text
    assert WECOM_KEY not in text


@asynccontextmanager
async def served(app):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", lifespan="on", log_config=None, log_level="info"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(15):
            while not server.started:
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def test_the_access_log_masks_link_tokens_and_an_api_token_in_the_query(captured, sqlite_url, tmp_path):
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", api_token=API_TOKEN, web_console=True)
    app = create_app(build(settings, ManualClock(START)), run_background=False)
    async with served(app) as base, httpx.AsyncClient(base_url=base) as client:
        assert (await client.get(f"/chat?customer={LINK_TOKEN}&driver={LINK_TOKEN}x")).status_code == 200
        assert (await client.get(f"/api/v1/jobs/1?token={API_TOKEN}")).status_code == 401
        answer = await client.get("/api/v1/jobs/1", headers={"Authorization": "Bearer wrong-token-but-long-enough-0000"})
        assert answer.status_code == 401
    text = captured.getvalue()
    assert '"GET /chat?customer=***&driver=***' in text and "/api/v1/jobs/1?token=***" in text
    for secret in (LINK_TOKEN, API_TOKEN):
        assert secret not in text
