"""Kill -9 of a running `fieldchat serve` mid-traffic, restart, and every chat and job is consistent."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def pane(bot: str, chat_id: str, chat_type: str = "private") -> dict:
    return {"bot": bot, "chat_id": chat_id, "chat_type": chat_type, "user_id": chat_id, "user_name": "T", "language": "en"}


class WebClient:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=10)

    async def send(self, p: dict, message_id: str, **body) -> int:
        answer = await self.http.post("/chat/api/send", json={"pane": p, "message_id": message_id, **body})
        return answer.status_code

    async def messages(self, p: dict) -> list[dict]:
        answer = await self.http.get("/chat/api/messages", params={"bot": p["bot"], "chat_id": p["chat_id"], "after": 0})
        return answer.json()["messages"]


async def test_killing_the_server_mid_traffic_loses_and_doubles_nothing(env, tmp_path):
    demo = subprocess.run([FIELDCHAT, "demo-data"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    link = next(line.strip() for line in demo.stdout.splitlines() if "/chat?" in line)
    tokens = {k: v[0] for k, v in parse_qs(urlparse(link).query).items()}

    server = await start_server(env, tmp_path)
    web = WebClient(f"http://127.0.0.1:{env['FIELDCHAT_PORT']}")
    customer, driver = pane("customer", "cust"), pane("staff", "drv")
    try:
        assert await web.send(customer, "c1", kind="text", text=f"/start {tokens['customer']}") == 200
        assert await web.send(driver, "d1", kind="text", text=f"/start {tokens['driver']}") == 200
        slot = (await web.messages(customer))[-1]["buttons"][0][0]["data"]
        assert await web.send(customer, "c2", kind="button", data=slot) == 200
        offer = (await web.messages(driver))[-1]
        accept = next(b["data"] for row in offer["buttons"] for b in row if b["data"].startswith("acc:"))

        # a burst of traffic from many chats; the server dies while it is in flight
        chats = [pane("customer", f"walk-in-{n}") for n in range(30)]
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
            assert len(replies) == 1, (p["chat_id"], replies)
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
