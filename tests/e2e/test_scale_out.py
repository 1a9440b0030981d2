"""Scale-out: two `fieldchat serve` web processes and two `fieldchat relay` processes on one PostgreSQL and one Redis take a
burst of webhooks, each chat's updates alternating between the web processes, and lose, repeat and overrun nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from fieldchat.fakes.telegram_server import FakeTelegram
from fieldchat.settings import Settings
from storage import tables
from storage.db import create_engine, session_factory
from tests.support import free_port
from tests.support.relay import enforce
from tests.support.telegram import CUSTOMER, STAFF

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")
TOKENS = {"customer": CUSTOMER, "staff": STAFF}
# what a stranger writes, in this order in every chat (to the customer bot, or the staff bot in private), and how many
# replies each gets (one each: /help's is the help joined with the hint of where the chat stands): the replies' keys
# name their updates, so both the order and anything lost or doubled show
ROUNDS = ("/help", "hello", "/start", "/start not-a-link", "/help", "hello again")
REPLIES = {"/help": 1, "hello": 1, "/start": 1, "/start not-a-link": 1, "hello again": 1}
CUSTOMER_CHATS, STAFF_CHATS = 30, 12


@dataclass
class Deployment:
    """The processes of one deployment (each with its own log), the fake Bot API they talk to, and their database."""

    fake: FakeTelegram
    database_url: str
    redis_url: str
    logs: Path
    prefix: str = field(default_factory=lambda: f"test-scale-{uuid.uuid4().hex[:8]}")
    servers: dict[str, tuple[asyncio.subprocess.Process, int]] = field(default_factory=dict)
    relays: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    public_url: str = ""

    def env(self, **extra: str) -> dict[str, str]:
        values = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
        values.update(
            FIELDCHAT_DATABASE_URL=self.database_url,
            FIELDCHAT_MEDIA_DIR=str(self.logs / "media"),
            FIELDCHAT_TELEGRAM_CUSTOMER_TOKEN=CUSTOMER,
            FIELDCHAT_TELEGRAM_STAFF_TOKEN=STAFF,
            FIELDCHAT_TELEGRAM_API_URL=self.fake.base_url,
            FIELDCHAT_REDIS_URL=self.redis_url,
            FIELDCHAT_LOG_LEVEL="WARNING",
            **extra,
        )
        return values

    async def start_server(self, name: str, *, run_timers: bool) -> None:
        """A web process: webhooks in, no relay of its own (the relay processes send); one of them fires the timers."""
        port = free_port()
        # behind a load balancer every web process registers the same public URL (the balancer's)
        self.public_url = self.public_url or f"http://127.0.0.1:{port}"
        env = self.env(
            FIELDCHAT_PORT=str(port), FIELDCHAT_TELEGRAM_MODE="webhook", FIELDCHAT_PUBLIC_URL=self.public_url,
            FIELDCHAT_RUN_RELAY="false", FIELDCHAT_RUN_TIMERS=str(run_timers).lower(),
        )
        with (self.logs / f"{name}.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(FIELDCHAT, "serve", cwd=self.logs, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT)
        self.servers[name] = (process, port)
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60  # importing and migrating, on a machine shared with other suites
            while True:
                assert process.returncode is None, self.log(name)
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{name} did not become ready\n{self.log(name)}"
                await asyncio.sleep(0.1)

    async def start_relay(self, name: str) -> None:
        # a short lease: a killed relay's rows go to the other one soon (on the same machine a new one takes them at once);
        # a few chats each at most, so that neither relay can take all of the burst's chats alone
        with (self.logs / f"{name}.log").open("ab") as log:
            self.relays[name] = await asyncio.create_subprocess_exec(
                FIELDCHAT, "relay", "--lease", "3", "--interval", "0.1", "--batch", "8", "--limits-prefix", self.prefix,
                cwd=self.logs, env=self.env(), stdout=log, stderr=asyncio.subprocess.STDOUT,
            )

    def url(self, name: str, bot: str) -> str:
        return f"http://127.0.0.1:{self.servers[name][1]}/telegram/{bot}/webhook"

    def alive(self) -> list[str]:
        return [name for name, (process, _) in self.servers.items() if process.returncode is None]

    async def stop(self) -> None:
        processes = [p for p, _ in self.servers.values()] + list(self.relays.values())
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return f"--- {name}\n{path.read_text(errors='replace') if path.exists() else ''}"

    def all_logs(self) -> str:
        return "\n".join(self.log(name) for name in [*self.servers, *self.relays])

    async def start_all(self) -> None:
        """Two web processes (the first owns the timers) and two relays."""
        await self.start_server("web-a", run_timers=True)
        await self.start_server("web-b", run_timers=False)
        await self.start_relay("relay-1")
        await self.start_relay("relay-2")


@pytest.fixture
async def deployment(postgres_url, redis_url, fake_telegram, tmp_path):
    enforce(fake_telegram)
    setup = Deployment(fake_telegram, postgres_url, redis_url, tmp_path)
    try:
        yield setup
    finally:
        await setup.stop()


def burst(fake: FakeTelegram) -> list[tuple[str, int, list[dict]]]:
    """(bot, chat, its updates in order) for every chat; the fake numbers each bot's updates as Telegram does."""
    chats = [("customer", 8000 + n) for n in range(CUSTOMER_CHATS)] + [("staff", 9000 + n) for n in range(STAFF_CHATS)]
    updates: dict[tuple[str, int], list[dict]] = {chat: [] for chat in chats}
    for text in ROUNDS:
        for bot, chat in chats:
            updates[(bot, chat)].append(fake.text_message(chat, text, token=TOKENS[bot], queue=False))
    return [(bot, chat, updates[(bot, chat)]) for bot, chat in chats]


async def post_chat(setup: Deployment, client: httpx.AsyncClient, bot: str, first: int, updates: list[dict], delivered: Counter) -> None:
    """As Telegram sends one chat's updates: the next only after the previous was answered 2xx, each until it is. The load
    balancer hands them to the web processes in turn; an update whose process died goes again to one that is up."""
    secret = Settings(_env_file=None).webhook_secret(TOKENS[bot])
    for n, update in enumerate(updates):
        deadline = time.monotonic() + 60
        attempt = 0
        while True:
            names = setup.alive() or list(setup.servers)
            name = names[(first + n + attempt) % len(names)]
            try:
                answer = await client.post(setup.url(name, bot), json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
                if answer.status_code == 200:
                    delivered[name] += 1
                    break
                delivered[f"{name} answered {answer.status_code}"] += 1
            except httpx.TransportError as exc:
                delivered[f"{name}: {type(exc).__name__}"] += 1
            attempt += 1
            assert time.monotonic() < deadline, f"update {update['update_id']} was never taken\n{setup.all_logs()}"
            await asyncio.sleep(0.1)  # Telegram, too, waits a little before it sends a refused update again


async def rows(sessions, table) -> list[dict]:
    async with sessions() as session:
        return [dict(r) for r in (await session.execute(select(table).order_by(table.c.id))).mappings()]


async def settled(setup: Deployment, sessions, total: int, timeout: float = 120) -> set[str]:
    """Wait until every update is processed and every reply sent; returns the relays seen holding a claim meanwhile.
    Counts only: the fake Bot API runs in this process, and reading whole tables here would slow its answers."""
    inbox, outbox = tables.inbox.c, tables.outbox.c
    claimants: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        async with sessions() as session:
            received = dict((await session.execute(select(inbox.status, func.count()).group_by(inbox.status))).all())
            sending = dict((await session.execute(select(outbox.status, func.count()).group_by(outbox.status))).all())
            claimants |= set((await session.execute(select(outbox.claimed_by).where(outbox.claimed_by.is_not(None)).distinct())).scalars())
        if received == {"processed": total} and set(sending) == {"sent"}:
            return claimants
        assert time.monotonic() < deadline, f"not settled: inbox {received}, outbox {sending}\n{setup.all_logs()}"
        await asyncio.sleep(0.3)


def update_of(row: dict) -> int:
    """The update a reply answers: its outbox key is ``platform:bot:update_id:index``."""
    return int(row["dedup_key"].split(":")[2])


def check_everything_arrived(setup: Deployment, chats, inbox: list[dict], outbox: list[dict], *, repeats: bool) -> None:
    """Each update processed once and answered in its chat's order; each reply delivered once, in that order (with
    ``repeats``, a reply may go out twice only if its row was counted as maybe sent), and no rate exceeded. Every
    problem is listed, not only the first."""
    fake = setup.fake
    problems: list[str] = []
    assert len(inbox) == sum(len(updates) for _, _, updates in chats)
    assert all(r["status"] == "processed" for r in inbox), [r for r in inbox if r["status"] != "processed"]
    for bot, chat, updates in chats:
        replies = [r for r in outbox if r["chat_id"] == str(chat) and r["bot"] == bot]
        # the replies were written in the order the updates came, as many for each as its kind has
        answered = [update_of(r) for r in replies]
        expected = [u["update_id"] for u, text in zip(updates, ROUNDS) for _ in range(REPLIES[text])]
        if answered != expected:
            problems.append(f"{bot} chat {chat}: updates answered in the order {answered}, sent in the order {expected}")
        # … and reached the chat in that order: the recorded sends are the chat's messages, in order
        recorded = [r["platform_message_id"] for r in replies]
        sent = fake.sent(token=TOKENS[bot], chat_id=chat)
        arrived = [str(s["message_id"]) for s in sent]
        maybe_sent = sum(r["maybe_sent"] for r in replies)
        in_order = [m for m in arrived if m in recorded] == recorded
        if not in_order or len(arrived) - len(recorded) > (maybe_sent if repeats else 0):
            problems.append(
                f"{bot} chat {chat}: messages {arrived} arrived ({[s['text'][:20] for s in sent]}), {recorded} recorded as sent, "
                f"{maybe_sent} counted as maybe sent; rows (message, attempts, error): "
                f"{[(r['platform_message_id'], r['attempts'], r['last_error']) for r in replies]}"
            )
    for v in fake.violations:
        times = [round(c.at - v.at, 2) for c in fake.calls if str(c.params.get("chat_id")) == v.chat_id and c.method == "sendMessage"]
        problems.append(f"over the {v.kind} rate of chat {v.chat_id}: {v.count} in {v.seconds} s; its sends at {times} s from it")
    assert not problems, "\n".join(problems)


def check_logs(setup: Deployment, *names: str) -> None:
    logs = "\n".join(setup.log(name) for name in names)
    assert "Traceback" not in logs and " ERROR " not in logs, logs


async def test_two_web_processes_and_two_relays_lose_repeat_and_overrun_nothing_and_keep_each_chats_order(deployment: Deployment):
    setup = deployment
    await setup.start_all()
    chats = burst(setup.fake)
    engine = create_engine(setup.database_url)
    sessions = session_factory(engine)
    delivered: Counter = Counter()
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
            await asyncio.gather(*(post_chat(setup, client, bot, n, updates, delivered) for n, (bot, _, updates) in enumerate(chats)))
        total = sum(len(updates) for _, _, updates in chats)
        claimants = await settled(setup, sessions, total)
        inbox, outbox = await rows(sessions, tables.inbox), await rows(sessions, tables.outbox)
    finally:
        await engine.dispose()

    # the balancer alternated between the two (an update refused by one went to the other)
    assert delivered["web-a"] + delivered["web-b"] == total and min(delivered["web-a"], delivered["web-b"]) > total // 3, delivered
    check_everything_arrived(setup, chats, inbox, outbox, repeats=False)
    assert all(r["maybe_sent"] == 0 for r in outbox)
    # both relay processes took their share of the sending, and the web processes (FIELDCHAT_RUN_RELAY=false) none
    pids = {int(c.split(":")[-3]) for c in claimants}
    assert pids == {p.pid for p in setup.relays.values()}, (claimants, {n: p.pid for n, p in setup.relays.items()})
    check_logs(setup, "web-a", "web-b", "relay-1", "relay-2")


async def test_a_web_process_and_a_relay_killed_mid_burst_lose_nothing_and_repeat_only_what_was_maybe_sent(deployment: Deployment):
    setup = deployment
    await setup.start_all()
    chats = burst(setup.fake)
    total = sum(len(updates) for _, _, updates in chats)
    engine = create_engine(setup.database_url)
    sessions = session_factory(engine)
    delivered: Counter = Counter()
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
            posting = asyncio.gather(*(post_chat(setup, client, bot, n, updates, delivered) for n, (bot, _, updates) in enumerate(chats)))

            async def stored() -> int:
                async with sessions() as session:
                    return (await session.execute(select(func.count()).select_from(tables.inbox))).scalar_one()

            # web-b dies while the updates come in, relay-2 while the replies go out
            deadline = time.monotonic() + 60
            while await stored() < total // 3:
                assert not posting.done() and time.monotonic() < deadline, f"the burst was over before the kill\n{setup.all_logs()}"
                await asyncio.sleep(0.05)
            web_b = setup.servers["web-b"][0]
            web_b.send_signal(signal.SIGKILL)
            await web_b.wait()
            deadline = time.monotonic() + 120  # a loaded machine (2 shared cores) takes its time; a stall fails only here
            while len(setup.fake.sent()) < 30:
                assert time.monotonic() < deadline, f"nothing was sent\n{setup.all_logs()}"
                await asyncio.sleep(0.05)
            relay_2 = setup.relays["relay-2"]
            relay_2.send_signal(signal.SIGKILL)
            await relay_2.wait()
            async with sessions() as session:
                held = (await session.execute(
                    select(func.count()).select_from(tables.outbox).where(tables.outbox.c.claimed_by.like(f"%:{relay_2.pid}:%"))
                )).scalar_one()
            assert held > 0, "relay-2 held nothing when it was killed"
            # the rest of the burst goes to web-a; what web-b had stored and not processed, web-a's inbox sweep takes; what
            # relay-2 had claimed, relay-1 takes when the claims' leases run out
            await posting
        await settled(setup, sessions, total)
        inbox, outbox = await rows(sessions, tables.inbox), await rows(sessions, tables.outbox)
    finally:
        await engine.dispose()

    assert delivered["web-b"] > 0 and delivered["web-a"] > total // 2, delivered
    check_everything_arrived(setup, chats, inbox, outbox, repeats=True)
    check_logs(setup, "web-a", "relay-1")
