"""What a newcomer meets first: /docs offline, one-line start-up errors, a quiet access log, a demo that plays twice, a reset
that asks (issue 10, part 9)."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs

from playwright.async_api import Page

from tests.e2e.test_browser import page, served  # noqa: F401  (fixtures: the demo app in uvicorn, a headless Chromium)
from tests.support.api import running_api
from tests.support.harness import World, keys
from webhooks.webchat import POLL_PATH, quiet_polling_in_access_log

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    return subprocess.run([FIELDCHAT, *args], env={**clean, "FIELDCHAT_LOG_LEVEL": "WARNING", **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


async def test_the_api_docs_load_nothing_from_other_hosts(sqlite_url, tmp_path):
    async with running_api(sqlite_url, tmp_path) as api:
        docs = await api.client.get("/docs")
        assert docs.status_code == 200
        parser = _References()
        parser.feed(docs.text)
        scripts = re.findall(r"url: '([^']+)'", docs.text)  # the OpenAPI document Swagger UI loads
        # before: https://cdn.jsdelivr.net/… for the script and the styles, so /docs was blank offline
        assert parser.urls and all(url.startswith("/") and not url.startswith("//") for url in parser.urls + scripts)
        assert "http://" not in docs.text and "https://" not in docs.text.replace("https://fastapi.tiangolo.com", "")
        for url in parser.urls + scripts:
            assert (await api.client.get(url)).status_code == 200, url
        assert (await api.client.get("/redoc")).status_code == 404  # its page loads from a CDN: not offered


def test_a_bad_database_url_stops_with_one_line_and_no_traceback(tmp_path):
    for url in ("not a url", "postgresql://fieldchat:s3cret-pw@127.0.0.1:1/fieldchat", f"sqlite:///{tmp_path}/file.db/inside/a/file.db"):
        if url.startswith("sqlite"):
            (tmp_path / "file.db").write_text("a file, not a directory")
        for command in ("migrate", "demo-data", "serve"):
            result = run(command, cwd=tmp_path, FIELDCHAT_DATABASE_URL=url, FIELDCHAT_PORT=str(_free_port()))
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1, (command, url, result.stderr[-2000:])
            assert len(lines) == 1 and lines[0].startswith("fieldchat: ") and "DATABASE_URL" in lines[0], (command, url, lines)
            assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stderr


def test_a_taken_port_stops_serve_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", cwd=tmp_path, FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path}/f.db", FIELDCHAT_PORT=str(port))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_the_web_chats_polling_does_not_flood_the_access_log(sqlite_url, tmp_path):
    access = logging.getLogger("uvicorn.access")
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    collect = Collect()
    access.addHandler(collect)
    # a uvicorn an earlier test ran in this process may have configured (and disabled) this logger
    level = access.level
    access.setLevel(logging.INFO)  # setLevel, not the attribute: the logger caches what it was enabled for
    disabled, access.disabled = access.disabled, False
    try:
        async with running_api(sqlite_url, tmp_path):  # the demo console is on: its filter is installed
            # earlier tests in this process polled too; this one counts from a fresh minute
            quiet_polling_in_access_log().restart()
            for _ in range(120):  # four panes polling for half a minute
                access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"{POLL_PATH}?bot=customer&pane=customer&after=0", "1.1", 200)
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"{POLL_PATH}?bot=staff&pane=group", "1.1", 429)
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/chat/api/send", "1.1", 200)
    finally:
        access.removeHandler(collect)
        access.setLevel(level)
        access.disabled = disabled
    polls = [line for line in lines if POLL_PATH in line]
    # before: 120 lines a minute per pane; now one sample a minute, and every failed poll
    assert len(polls) == 2 and " 429" in polls[-1]
    assert any("/chat/api/send" in line for line in lines)


async def test_the_demo_can_be_played_twice_with_fresh_links(tmp_path):
    database = f"sqlite:///{tmp_path}/demo.db"
    customers = []
    for _ in range(2):
        result = run("demo-data", cwd=tmp_path, FIELDCHAT_DATABASE_URL=database, FIELDCHAT_MEDIA_DIR=str(tmp_path / "media"))
        assert result.returncode == 0, result.stderr
        fragment = re.search(r"/chat#(\S+)", result.stdout).group(1)
        customers.append(parse_qs(fragment)["customer"][0])
    assert customers[0] != customers[1]
    world = await World.create(database, tmp_path)
    try:
        orders = []
        for n, token in enumerate(customers):
            welcome = await world.chat("customer", f"player-{n}").send(f"/start {token}")
            # before: the second run handed out the first order again, whose link a chat had already used
            assert "customer.order_summary" in keys(welcome), keys(welcome)
            orders.append(welcome[0].payload["card"])
        assert orders[0] != orders[1]
    finally:
        await world.close()


async def test_reset_in_the_web_console_asks_first(page: Page, served):  # noqa: F811
    await page.goto(f"{served.url}/chat")
    new_sessions: list[str] = []
    page.on("request", lambda request: new_sessions.append(request.url) if request.url.endswith("/chat/api/new-session") else None)
    asked: list[str] = []

    async def decline(dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", decline)
    await page.locator("[data-role=reset]").click()
    await page.wait_for_timeout(300)
    assert asked and "Start over?" in asked[0] and new_sessions == []  # before: it reset at once

    async def agree(dialog) -> None:
        await dialog.accept()

    page.once("dialog", agree)
    async with page.expect_request(lambda request: request.url.endswith("/chat/api/new-session")):
        await page.locator("[data-role=reset]").click()


CONTAINER_PROBE = """
import sys
from fieldchat.container import build
from fieldchat.settings import Settings
container = build(Settings(_env_file=None, database_url="sqlite:///{db}", media_dir="{media}", {tokens}))
print(sorted(container.channels), "aiogram" in sys.modules)
"""


def test_a_shop_without_bots_never_loads_aiogram_and_one_with_bots_gets_its_telegram_channel(tmp_path):
    """aiogram costs seconds and a hundred MiB to import (pydantic builds its models): the demo and a web-only shop
    start without it, and so does a shop with bots on the default driver (python-telegram-bot)."""
    outputs = []
    for tokens in ("", 'telegram_customer_token="123:customer-token-of-some-length", telegram_staff_token="456:staff-token-of-some-length"'):
        code = CONTAINER_PROBE.format(db=tmp_path / "f.db", media=tmp_path / "media", tokens=tokens)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    assert outputs == ["['robot', 'web'] False", "['robot', 'telegram', 'web'] False"]
