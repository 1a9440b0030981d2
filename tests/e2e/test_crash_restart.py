"""Kill -9 of a running `fieldchat serve` mid-traffic, restart, and every chat and job is consistent; repeats are counted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import select

from storage import tables
from storage.db import create_engine, session_factory
from storage.repository import Store
from fieldchat.fakes.telegram_server import FakeTelegram
from tests.support import free_port
from tests.support.relay import until

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")


@pytest.fixture
def env(tmp_path) -> dict:
    port = free_port()
    values = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    values.update(
        FIELDCHAT_DATABASE_URL=f"sqlite:///{tmp_path / 'fieldchat.db'}",
        FIELDCHAT_MEDIA_DIR=str(tmp_path / "media"),
        FIELDCHAT_PORT=str(port),
        FIELDCHAT_LOG_LEVEL="WARNING",
    )
    return values


async def start_server(env: dict, tmp_path: Path) -> subprocess.Popen:
    log = open(tmp_path / "serve.log", "ab")
    process = subprocess.Popen([FIELDCHAT, "serve"], env=env, cwd=tmp_path, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{env['FIELDCHAT_PORT']}"
    async with httpx.AsyncClient() as client:
        for _ in range(200):  # readiness: up to ~20 s for the process to import and migrate
            if process.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text())
            try:
                if (await client.get(f"{base}/healthz", timeout=1)).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("fieldchat serve did not become ready")


def pane(bot: str, key: str, chat_type: str = "private") -> dict:
    return {"key": key, "bot": bot, "chat_type": chat_type, "user_name": "T", "language": "en"}


class WebClient:
    """One browser on the demo console: its session cookie (signed with a key kept in the database) survives restarts."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=10)

    async def open(self) -> "WebClient":
        assert (await self.http.get("/chat")).status_code == 200
        return self

    async def send(self, p: dict, message_id: str, **body) -> int:
        answer = await self.http.post("/chat/api/send", json={"pane": p, "message_id": message_id, **body})
        return answer.status_code

    async def messages(self, p: dict) -> list[dict]:
        params = {"bot": p["bot"], "pane": p["key"], "chat_type": p["chat_type"]}
        for _ in range(10):
            answer = await self.http.get("/chat/api/messages", params=params)
            if answer.status_code != 429:
                break
            # reading thirty chats at machine speed is over a browser's rate: wait as the server says, as a client should
            await asyncio.sleep(float(answer.headers["Retry-After"]))
        assert answer.status_code == 200, answer.text
        return answer.json()["messages"]


async def test_killing_the_server_mid_traffic_loses_and_doubles_nothing(env, tmp_path):
    demo = subprocess.run([FIELDCHAT, "demo-data"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    link = next(line.strip() for line in demo.stdout.splitlines() if "/chat#" in line)
    tokens = {k: v[0] for k, v in parse_qs(urlparse(link).fragment).items()}

    env["FIELDCHAT_WEB_CONSOLE"] = "true"
    server = await start_server(env, tmp_path)
    web = await WebClient(f"http://127.0.0.1:{env['FIELDCHAT_PORT']}").open()
    customer, driver = pane("customer", "cust"), pane("staff", "drv")
    try:
        assert await web.send(customer, "c1", kind="text", text=f"/start {tokens['customer']}") == 200
        assert await web.send(driver, "d1", kind="text", text=f"/start {tokens['driver']}") == 200
        slot = (await web.messages(customer))[-1]["buttons"][0][0]["data"]
        assert await web.send(customer, "c2", kind="button", data=slot) == 200
        offer = (await web.messages(driver))[-1]
        accept = next(b["data"] for row in offer["buttons"] for b in row if b["data"].startswith("acc:"))

        # a burst of traffic from many chats; the server dies while it is in flight
        chats = [pane("customer", f"walkin{n}") for n in range(30)]
        burst = [asyncio.create_task(web.send(p, f"hello-{n}", kind="text", text="hello?")) for n, p in enumerate(chats)]
        burst.append(asyncio.create_task(web.send(driver, "d2", kind="button", data=accept)))
        # kill as soon as the first answers come back, while the rest are being processed
        await asyncio.wait(burst, return_when=asyncio.FIRST_COMPLETED)
        server.send_signal(signal.SIGKILL)
        server.wait()
        outcomes = await asyncio.gather(*burst, return_exceptions=True)
    finally:
        if server.poll() is None:
            server.kill()

    server = await start_server(env, tmp_path)
    try:
        # clients retry whatever got no answer, with the same message id, as the web page does
        for n, (p, outcome) in enumerate(zip(chats, outcomes)):
            if outcome != 200:
                assert await web.send(p, f"hello-{n}", kind="text", text="hello?") == 200
        if outcomes[-1] != 200:
            assert await web.send(driver, "d2", kind="button", data=accept) == 200
        # and some retry even what did get through: still exactly one answer each
        for n, p in enumerate(chats[:5]):
            assert await web.send(p, f"hello-{n}", kind="text", text="hello?") == 200
        for p in chats:
            replies = await web.messages(p)
            assert len(replies) == 1, (p["key"], replies)
            assert replies[0]["text"].startswith("Please open the link")

        driver_messages = [m["text"] for m in await web.messages(driver)]
        assert sum(text.startswith("Accepted visit") for text in driver_messages) == 1
        # the flow goes on where it stopped
        visit = accept.split(":")[1]
        assert await web.send(driver, "d3", kind="button", data=f"go:{visit}") == 200
        customer_texts = [m["text"] for m in await web.messages(customer)]
        assert sum("will come" in t for t in customer_texts) == 1
        assert "is on the way" in customer_texts[-1]
    finally:
        server.terminate()
        server.wait(timeout=30)
        await web.http.aclose()


# --- Telegram, long polling and webhooks ------------------------------------------------------------

CUSTOMER_TOKEN = "7301:crash-customer-token-for-tests"
STAFF_TOKEN = "7302:crash-staff-token-for-tests"
CHATS = 40
MESSAGES_PER_CHAT = 3
# long enough that a kill lands while some sends have reached Telegram and their answers have not reached us
ANSWER_DELAY = 0.3


async def outbox_rows(database_url: str) -> tuple[list[dict], dict[str, int]]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            rows = [dict(r) for r in (await session.execute(select(tables.outbox).order_by(tables.outbox.c.id))).mappings()]
            return rows, await Store(session).outbox_counts()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_a_server_killed_mid_send_repeats_only_the_replies_it_reports_as_maybe_sent_and_loses_none(mode, env, tmp_path):
    fake = FakeTelegram(long_poll_cap=0.3, send_answer_delay=ANSWER_DELAY)
    await fake.start()
    fake.add_bot(CUSTOMER_TOKEN, "crash_customer_bot")
    fake.add_bot(STAFF_TOKEN, "crash_staff_bot")
    env.update(
        FIELDCHAT_TELEGRAM_CUSTOMER_TOKEN=CUSTOMER_TOKEN,
        FIELDCHAT_TELEGRAM_STAFF_TOKEN=STAFF_TOKEN,
        FIELDCHAT_TELEGRAM_API_URL=fake.base_url,
        FIELDCHAT_TELEGRAM_MODE=mode,
        FIELDCHAT_RELAY_INTERVAL_SECONDS="0.2",
    )
    if mode == "webhook":
        env["FIELDCHAT_PUBLIC_URL"] = f"http://127.0.0.1:{env['FIELDCHAT_PORT']}"
    chats = [9000 + n for n in range(CHATS)]

    def log() -> str:
        return (tmp_path / "serve.log").read_text()

    server = await start_server(env, tmp_path)
    try:
        # strangers write to the customer bot: each message gets one "please open the link" reply
        for round_ in range(MESSAGES_PER_CHAT):
            for chat in chats:
                fake.text_message(chat, f"hello {round_}", token=CUSTOMER_TOKEN)

        async def sending() -> bool:
            return len(fake.sent()) >= 20 and fake.unanswered_sends > 0

        await until(sending, 30, lambda: f"no replies in flight: {len(fake.sent())} sent\n{log()}")
        # nothing awaits between the look and the kill: these sends did reach Telegram, and the server never hears so
        in_flight = fake.unanswered_sends
        server.send_signal(signal.SIGKILL)
        server.wait()
        assert len(fake.sent()) < CHATS * MESSAGES_PER_CHAT, "the server answered everything before it was killed"
        left, _ = await outbox_rows(env["FIELDCHAT_DATABASE_URL"])
        claimed = [r for r in left if r["status"] == "pending" and r["claimed_by"]]
        started = [r["id"] for r in claimed if r["sending_since"]]

        server = await start_server(env, tmp_path)

        async def all_sent() -> bool:
            rows, _ = await outbox_rows(env["FIELDCHAT_DATABASE_URL"])
            return len(rows) == CHATS * MESSAGES_PER_CHAT and all(r["status"] == "sent" for r in rows)

        await until(all_sent, 60, lambda: f"not everything was answered after the restart\n{log()}")
    finally:
        if server.poll() is None:
            server.terminate()
            await asyncio.to_thread(server.wait, 30)  # the fake runs on this loop: keep it answering the shutdown
        await fake.stop()

    rows, counts = await outbox_rows(env["FIELDCHAT_DATABASE_URL"])
    maybe_sent = counts.get("maybe_sent", 0)
    duplicates = 0
    for chat in chats:
        replies = fake.sent(token=CUSTOMER_TOKEN, chat_id=chat)
        chat_rows = [r for r in rows if r["chat_id"] == str(chat)]
        assert len(chat_rows) == MESSAGES_PER_CHAT, (chat, chat_rows)  # one reply per message: none lost, none made twice
        assert all(r["text"].startswith("Please open the link") for r in replies)
        repeated = len(replies) - len(chat_rows)
        # a chat sees a reply twice only when its row was counted as maybe sent
        assert 0 <= repeated <= sum(r["maybe_sent"] for r in chat_rows), (chat, len(replies), chat_rows)
        duplicates += repeated
    # every send the dead server never heard back about went out again, and was counted
    assert in_flight <= duplicates <= maybe_sent, (in_flight, duplicates, maybe_sent)
    # exactly the sends it had started were counted, not the rest of what it had claimed
    assert sorted(r["id"] for r in rows if r["maybe_sent"]) == sorted(started), (started, claimed)
    assert all(r["maybe_sent"] == 1 for r in rows if r["maybe_sent"])
    # and the restarted server said how many
    reported = [int(n) for n in re.findall(r"outbox relay: (\d+) messages were being sent when a relay stopped", log())]
    assert sum(reported) == maybe_sent and len(reported) >= 1, log()
