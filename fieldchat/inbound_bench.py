"""`fieldchat bench inbound`: updates processed per second, CPU per update and webhook ack latency of `fieldchat serve`, beside two echo baselines in the same run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy import func, select

from fieldchat.fakes.echo_baselines import SECRET_HEADER, WEBHOOK_PATH, bare_echo, durable_echo
from fieldchat.fakes.telegram_server import FakeTelegram
from storage import tables as t
from storage.db import create_engine
from storage.migrate import upgrade_async

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# a Redis database of its own, so the benchmark's send windows meet nobody else's
REDIS_URL = "redis://127.0.0.1:6379/15"
SECRET = "bench-inbound-webhook-secret-0123456789"
TOKENS = {"fieldchat": "7101:bench-inbound-one", "fieldchat_two": "7102:bench-inbound-two", "bare_echo": "7103:bench-inbound-echo"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHAT_SPACING = 1_000_000  # each system's chats start at a multiple of this
PATIENCE = 120.0  # seconds without progress after which a server is taken as stuck


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (field 14 and 15; the name in field 2 may hold spaces)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Phase:
    """What one stretch of driving measured."""

    updates: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]
    replies_sent: int  # what reached the stub Bot API meanwhile (fieldchat's relay sends at Telegram's pace)

    @property
    def per_s(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.updates

    def line(self) -> str:
        return (f"{self.updates} updates, {self.per_s:.1f}/s, CPU {self.cpu_ms:.2f} ms/update, "
                f"ack p50 {1000 * percentile(self.latencies, 0.5):.1f} ms p99 {1000 * percentile(self.latencies, 0.99):.1f} ms")


@dataclass
class System:
    """One server under test: its processes, where its updates go, and how to count what it has done."""

    name: str
    processes: list[subprocess.Popen]
    urls: list[str]  # one webhook per process; chats are split between them
    first_chat: int
    count_processed: Callable[[], Awaitable[int]]
    count_answers: Callable[[], Awaitable[Counter[int]]]  # per chat, the replies it made (or queued)
    count_sent: Callable[[], Awaitable[int]]  # replies that reached the stub Bot API
    sent: int = 0
    processed: int = 0
    others: int = 0  # what the counter showed for other systems on the same database when this one last started
    retried: int = 0
    expected: Counter[int] = field(default_factory=Counter)
    phases: list[Phase] = field(default_factory=list)
    half_load: Phase | None = None

    async def refresh(self) -> None:
        self.processed = await self.count_processed() - self.others

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def pause(self) -> None:
        # a server not being measured must not take CPU from the one that is (its relay and sweeps keep polling)
        for process in self.processes:
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGCONT)

    def summary(self) -> dict:
        def median(values: list[float]) -> float:
            return round(statistics.median(values), 2)

        record = {
            "per_s": median([p.per_s for p in self.phases]),
            "cpu_ms": median([p.cpu_ms for p in self.phases]),
            "ack_p50_ms": median([1000 * percentile(p.latencies, 0.5) for p in self.phases]),
            "ack_p99_ms": median([1000 * percentile(p.latencies, 0.99) for p in self.phases]),
            "replies_sent_per_s": median([p.replies_sent / p.seconds for p in self.phases]),
            "processes": len(self.processes),
            "retried": self.retried,
        }
        if self.half_load:
            record["half_load_per_s"] = round(self.half_load.per_s, 2)
            record["half_load_ack_p99_ms"] = round(1000 * percentile(self.half_load.latencies, 0.99), 2)
        return record


class Driver:
    """Posts Telegram-shaped updates from distinct private chats, and waits until the server has processed them."""

    def __init__(self, *, chats: int, concurrency: int, backlog: int) -> None:
        self.http: aiohttp.ClientSession | None = None
        self.chats = chats
        self.concurrency = concurrency
        self.backlog = backlog

    def next_update(self, system: System) -> tuple[str, bytes]:
        n = system.sent
        system.sent += 1
        chat = system.first_chat + n % self.chats
        system.expected[chat] += 1
        # a short text, which each of the three answers with one message (fieldchat: the hint a customer without
        # an order gets)
        message = {
            "message_id": n + 1,
            "from": {"id": chat, "is_bot": False, "first_name": "Ann", "language_code": "en"},
            "chat": {"id": chat, "type": "private", "first_name": "Ann"},
            "date": int(time.time()),
            "text": f"hello {n}",
        }
        url = system.urls[(chat - system.first_chat) % len(system.urls)]
        # update ids are unique per bot, and two systems share fieldchat's bot: each numbers from its first chat
        return url, json.dumps({"update_id": system.first_chat + n, "message": message}).encode()

    async def post(self, system: System, url: str, body: bytes) -> None:
        headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
        outcome = ""
        for attempt in range(10):
            assert self.http is not None
            try:
                async with self.http.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status == 200:
                        return
                    outcome = f"HTTP {answer.status}"
            except aiohttp.ClientConnectionError as exc:
                # e.g. a kept-alive connection the server closed while it was paused
                outcome = f"{type(exc).__name__}: {exc}"
            # as Telegram does: an update not acknowledged is sent again, a little later
            system.retried += 1
            await asyncio.sleep(0.1 * (attempt + 1))
        raise RuntimeError(f"{system.name}: {url} refused an update ten times ({outcome})")

    async def until_processed(self, system: System) -> None:
        progress_at, seen = time.monotonic(), system.processed
        while True:
            await system.refresh()
            if system.processed >= system.sent:
                return
            if system.processed != seen:
                progress_at, seen = time.monotonic(), system.processed
            elif time.monotonic() - progress_at > PATIENCE:
                raise RuntimeError(f"{system.name}: {system.sent - system.processed} updates not processed after {PATIENCE:g} s")
            await asyncio.sleep(0.05)

    async def _follow(self, system: System) -> None:
        while True:
            await system.refresh()
            await asyncio.sleep(0.05)

    async def _measured(self, system: System, drive: Callable[[list[float]], Awaitable[None]]) -> Phase:
        """Runs ``drive``, waits until everything it sent is processed, and measures the whole stretch."""
        latencies: list[float] = []
        first = system.sent
        # everything sent before is processed by now, this system's and any other's on the same database
        system.others = await system.count_processed() - system.processed
        sent_before = await system.count_sent()
        cpu_started, started = system.cpu_seconds(), time.monotonic()
        following = asyncio.create_task(self._follow(system))
        # new connections for each stretch: kept-alive ones to a server that was paused meanwhile are stale
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60))
        try:
            await drive(latencies)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            await self.http.close()
        await self.until_processed(system)
        seconds, cpu = time.monotonic() - started, system.cpu_seconds() - cpu_started
        return Phase(system.sent - first, seconds, cpu, latencies, await system.count_sent() - sent_before)

    async def closed_loop(self, system: System, *, seconds: float | None = None, updates: int | None = None) -> Phase:
        """``concurrency`` connections, each posting the next update as soon as the last is acknowledged."""
        first = system.sent
        deadline = time.monotonic() + (seconds or math.inf)

        def more() -> bool:
            return system.sent - first < updates if updates is not None else time.monotonic() < deadline

        async def connection(latencies: list[float]) -> None:
            while more():
                # a server that acknowledges faster than it processes would otherwise pile up updates without
                # bound, and the measured stretch would end in a long drain
                if system.sent - system.processed >= self.backlog:
                    await asyncio.sleep(0.01)
                    continue
                url, body = self.next_update(system)
                began = time.monotonic()
                await self.post(system, url, body)
                latencies.append(time.monotonic() - began)

        async def drive(latencies: list[float]) -> None:
            await asyncio.gather(*(connection(latencies) for _ in range(self.concurrency)))

        return await self._measured(system, drive)

    async def paced(self, system: System, rate: float, updates: int) -> Phase:
        """Open loop: one update every 1/rate s whatever the answers; latency counts from when it was due."""
        started = time.monotonic()

        async def one(due: float, latencies: list[float]) -> None:
            await asyncio.sleep(due - time.monotonic())
            url, body = self.next_update(system)
            await self.post(system, url, body)
            # from when it was due, not when it went: a server that falls behind delays the next ones too
            latencies.append(time.monotonic() - due)

        async def drive(latencies: list[float]) -> None:
            await asyncio.gather(*(one(started + i / rate, latencies) for i in range(updates)))

        return await self._measured(system, drive)


# --- the servers ------------------------------------------------------------------------------------------------


class Servers:
    """Starts the servers as processes of their own, and stops them and what they used."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []

    def spawn(self, label: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.workdir / f"{label}.log", "ab")
        # the working directory is the scratch folder, so no .env of whoever runs the benchmark leaks in
        process = subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def fieldchat(
        self, label: str, database_url: str, token: str, api_url: str, redis_url: str | None, *, sweeps: bool = True,
    ) -> tuple[subprocess.Popen, str]:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
        env.update(
            FIELDCHAT_DATABASE_URL=database_url,
            FIELDCHAT_PORT=str(port),
            FIELDCHAT_PUBLIC_URL=f"http://127.0.0.1:{port}",
            FIELDCHAT_TELEGRAM_MODE="webhook",
            FIELDCHAT_TELEGRAM_CUSTOMER_TOKEN=token,
            FIELDCHAT_TELEGRAM_API_URL=api_url,
            FIELDCHAT_TELEGRAM_WEBHOOK_SECRET=SECRET,
            FIELDCHAT_MEDIA_DIR=str(self.workdir / "media"),
            FIELDCHAT_LOG_LEVEL="WARNING",
            FIELDCHAT_NIGHTLY_PLAN_AT="off",
        )
        if redis_url:
            env["FIELDCHAT_REDIS_URL"] = redis_url
        if not sweeps:  # one relay and one timer sweep per database, as the deployment section advises
            env.update(FIELDCHAT_RUN_RELAY="false", FIELDCHAT_RUN_TIMERS="false")
        return self.spawn(label, ["fieldchat.cli", "serve"], env), f"http://127.0.0.1:{port}"

    def baseline(self, kind: str, *options: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        args = ["fieldchat.inbound_bench", "--baseline", kind, "--port", str(port), *options]
        return self.spawn(f"{kind}_echo", args, dict(os.environ)), f"http://127.0.0.1:{port}"

    async def ready(self, http: aiohttp.ClientSession, process: subprocess.Popen, base: str) -> None:
        deadline = time.monotonic() + 180  # cold starts of five servers at once on a busy 2-core machine
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited ({process.returncode}):\n{self.logs()}")
            try:
                async with http.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{process.args} did not become ready:\n{self.logs()}")

    def logs(self, only_troubled: bool = False) -> str:
        found = [(path.name, path.read_text()) for path in sorted(self.workdir.glob("*.log"))]
        troubled = [(name, text) for name, text in found if not only_troubled or "Traceback" in text or "ERROR" in text]
        return "\n".join(f"--- {name}\n{text[-3000:]}" for name, text in troubled)

    async def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes:
            try:
                # in a thread: the fake Bot API runs on this loop and must answer the servers' shutdown calls
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()


async def admin(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _database_url(admin_url: str, name: str) -> str:
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


# --- the run ----------------------------------------------------------------------------------------------------


async def run(
    *,
    seconds: float = 6.0,
    updates: int | None = None,
    warmup: int = 200,
    repeats: int = 3,
    concurrency: int = 32,
    backlog: int = 128,
    chats: int = 1000,
    processes: int = 2,
    sqlite: bool = False,
    drain: bool = False,
    admin_url: str = ADMIN_URL,
    redis_url: str | None = REDIS_URL,
) -> dict:
    """Measures fieldchat (one process, then ``processes`` on its database), the durable echo and the bare echo,
    interleaved ``repeats`` times, each stretch ``seconds`` long (or ``updates`` updates); then each single server
    once more at half its measured rate for the ack latency. ``drain`` waits for fieldchat to send every reply and
    counts them at the stub too."""
    if chats >= CHAT_SPACING:
        raise SystemExit(f"fieldchat bench inbound: at most {CHAT_SPACING - 1} chats")
    if sqlite:
        processes = 1  # SQLite has one writer at a time: a second process would measure the lock, not fieldchat
    workdir = Path(tempfile.mkdtemp(prefix="fieldchat-bench-inbound-"))
    prefix = f"fieldchat_bench_{os.getpid()}"
    databases = [f"{prefix}_echo"] + ([] if sqlite else [f"{prefix}_fieldchat"])
    echo_url = _database_url(admin_url, databases[0])
    fieldchat_url = f"sqlite:///{workdir / 'fieldchat.db'}" if sqlite else _database_url(admin_url, databases[1])
    fake = FakeTelegram()
    await fake.start()
    for name, token in TOKENS.items():
        fake.add_bot(token, f"{name}_bench_bot")
    servers = Servers(workdir)
    engine = create_engine(fieldchat_url)
    echo_pool: asyncpg.Pool | None = None
    http = aiohttp.ClientSession()  # for the readiness checks; the driver opens its own per stretch
    try:
        for name in databases:
            await admin(admin_url, f'CREATE DATABASE "{name}"')
        await upgrade_async(fieldchat_url)
        say(f"bench inbound: databases ready ({'SQLite' if sqlite else 'PostgreSQL'} for fieldchat); starting the servers")

        # the second process joins the first on its database; several processes share their send rates through
        # Redis, as the deployment section says, or each relay would send at the full rate and take twice the CPU
        shared = redis_url if processes > 1 else None
        fieldchat = [
            servers.fieldchat(f"fieldchat_{n}", fieldchat_url, TOKENS["fieldchat"], fake.base_url, shared, sweeps=n == 0)
            for n in range(processes)
        ]
        durable = servers.baseline("durable", "--database-url", echo_url)
        bare = servers.baseline("bare", "--api-url", fake.base_url, "--token", TOKENS["bare_echo"])
        for process, base in [*fieldchat, durable, bare]:
            await servers.ready(http, process, base)

        echo_pool = await asyncpg.create_pool(echo_url, min_size=1, max_size=2)
        hooks = [f"{base}/telegram/customer/webhook" for _, base in fieldchat]
        systems = [
            System("fieldchat", [fieldchat[0][0]], hooks[:1], 1 * CHAT_SPACING, count_processed=_inbox_processed(engine),
                   count_answers=_outbox_per_chat(engine), count_sent=_stub_count(fake, TOKENS["fieldchat"])),
            System("durable_echo", [durable[0]], [durable[1] + WEBHOOK_PATH], 3 * CHAT_SPACING, count_processed=_echo_count(echo_pool),
                   count_answers=_echo_outbox_per_chat(echo_pool), count_sent=_nothing),
            System("bare_echo", [bare[0]], [bare[1] + WEBHOOK_PATH], 4 * CHAT_SPACING, count_processed=_stub_count(fake, TOKENS["bare_echo"]),
                   count_answers=_stub_per_chat(fake, TOKENS["bare_echo"]), count_sent=_stub_count(fake, TOKENS["bare_echo"])),
        ]
        if processes > 1:
            systems.append(System(
                "fieldchat_two", [p for p, _ in fieldchat], hooks, 2 * CHAT_SPACING, count_processed=_inbox_processed(engine),
                count_answers=_outbox_per_chat(engine), count_sent=_stub_count(fake, TOKENS["fieldchat"]),
            ))
        for system in systems:
            system.pause()

        driver = Driver(chats=chats, concurrency=concurrency, backlog=backlog)
        for system in systems:
            system.resume()
            try:
                await driver.closed_loop(system, updates=warmup)
            finally:
                system.pause()
        say(f"bench inbound: warmed up ({warmup} updates each); {repeats} repeat(s) of "
            f"{f'{updates} updates' if updates else f'{seconds:g} s'} at concurrency {concurrency}")
        for repeat in range(1, repeats + 1):
            for system in systems:
                system.resume()
                try:
                    phase = await driver.closed_loop(system, seconds=seconds, updates=updates)
                finally:
                    system.pause()
                system.phases.append(phase)
                say(f"  repeat {repeat} {system.name:>14}: {phase.line()}")
        for system in systems:
            if system.name == "fieldchat_two":
                continue
            rate = 0.5 * statistics.median(p.per_s for p in system.phases)
            count = max(2, updates // 2 if updates else round(rate * seconds))
            system.resume()
            try:
                system.half_load = await driver.paced(system, rate, count)
            finally:
                system.pause()
            say(f"  half load {system.name:>14} (paced at {rate:.1f}/s): {system.half_load.line()}")

        report: dict = {"bench": "inbound", "db": "sqlite" if sqlite else "postgresql", "concurrency": concurrency,
                        "repeats": repeats, "seconds": None if updates else seconds, "updates": updates,
                        "shared_send_rates": "redis" if shared else None}
        for process, _ in fieldchat:
            process.send_signal(signal.SIGCONT)
        for system in systems:
            report[system.name] = system.summary() | _exactly_once(system, await system.count_answers())
        if drain:
            await _until_sent(engine)
            for system in systems:
                if system.name.startswith("fieldchat"):
                    delivered = _exactly_once(system, await _stub_per_chat(fake, TOKENS["fieldchat"])())
                    report[system.name].update({f"delivered_{k}": v for k, v in delivered.items()})
    finally:
        await servers.stop()
        if trouble := servers.logs(only_troubled=True):
            say(f"bench inbound: the servers logged errors:\n{trouble}")
        shutil.rmtree(workdir, ignore_errors=True)
        await http.close()
        if echo_pool is not None:
            await echo_pool.close()
        await engine.dispose()
        await fake.stop()
        for name in databases:
            await admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    one = report["fieldchat"]["per_s"]
    report["ratio_durable"] = round(one / report["durable_echo"]["per_s"], 3)
    report["ratio_bare"] = round(one / report["bare_echo"]["per_s"], 3)
    two = report.setdefault("fieldchat_two", None)
    report["two_processes_ratio"] = round(two["per_s"] / one, 3) if two else None
    scaled = f"{processes} processes {report['two_processes_ratio']}x one" if two else "one process only"
    say(f"bench inbound: fieldchat {one}/s = {report['ratio_durable']}x the durable echo, {report['ratio_bare']}x the bare echo; {scaled}; "
        f"CPU {report['fieldchat']['cpu_ms']} ms/update; ack p99 at half load {report['fieldchat']['half_load_ack_p99_ms']} ms")
    return report


def _exactly_once(system: System, answers: Counter[int]) -> dict[str, int]:
    """Each update gets one reply: fewer in a chat are lost, more are duplicates (only this system's chats count)."""
    own = {chat: n for chat, n in answers.items() if system.first_chat <= chat < system.first_chat + CHAT_SPACING}
    return {
        "answered": sum(own.values()),
        "lost": sum(max(0, n - own.get(chat, 0)) for chat, n in system.expected.items()),
        "duplicates": sum(max(0, n - system.expected[chat]) for chat, n in own.items()),
    }


def _inbox_processed(engine) -> Callable[[], Awaitable[int]]:
    statement = select(func.count()).select_from(t.inbox).where(t.inbox.c.status == "processed")

    async def count() -> int:
        async with engine.connect() as connection:
            return (await connection.execute(statement)).scalar_one()

    return count


def _outbox_per_chat(engine) -> Callable[[], Awaitable[Counter[int]]]:
    async def count() -> Counter[int]:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(t.outbox.c.chat_id, func.count()).group_by(t.outbox.c.chat_id))).all()
        return Counter({int(chat): n for chat, n in rows})

    return count


async def _until_sent(engine) -> None:
    """Waits for the relay to send every reply (it keeps Telegram's pace, so this takes a while)."""
    statement = select(func.count()).select_from(t.outbox).where(t.outbox.c.status != "sent")
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            if not (await connection.execute(statement)).scalar_one():
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"fieldchat: replies still unsent after {PATIENCE:g} s")


def _echo_count(pool: asyncpg.Pool) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return await pool.fetchval("SELECT count(*) FROM echo_inbox")

    return count


def _echo_outbox_per_chat(pool: asyncpg.Pool) -> Callable[[], Awaitable[Counter[int]]]:
    async def count() -> Counter[int]:
        return Counter({row["chat_id"]: row["n"] for row in await pool.fetch("SELECT chat_id, count(*) AS n FROM echo_outbox GROUP BY chat_id")})

    return count


async def _nothing() -> int:
    return 0  # the durable echo only queues its replies


def _stub_count(fake: FakeTelegram, token: str) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(fake.sent(token=token))

    return count


def _stub_per_chat(fake: FakeTelegram, token: str) -> Callable[[], Awaitable[Counter[int]]]:
    async def count() -> Counter[int]:
        return Counter(int(s["chat_id"]) for s in fake.sent(token=token))

    return count


def serve_baseline(kind: str, port: int, database_url: str | None, api_url: str | None, token: str | None) -> int:
    import uvicorn

    if kind == "durable":
        assert database_url, "--database-url is needed"
        app = durable_echo(database_url, SECRET)
    else:
        assert api_url and token, "--api-url and --token are needed"
        app = bare_echo(token, api_url, SECRET)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldchat bench inbound", description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measured stretch (default 6)")
    parser.add_argument("--updates", type=int, help="instead of --seconds: this many updates per measured stretch")
    parser.add_argument("--warmup", type=int, default=200, help="updates each server gets first, not counted (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the medians are reported (default 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="webhook connections at once (default 32)")
    parser.add_argument("--backlog", type=int, default=128, help="at most this many acknowledged updates awaiting processing (default 128)")
    parser.add_argument("--chats", type=int, default=1000, help="private chats the updates come from (default 1000)")
    parser.add_argument("--processes", type=int, default=2, help="fieldchat processes on one database for the scale-out ratio; 1: skip it")
    parser.add_argument("--sqlite", action="store_true", help="fieldchat on SQLite (the baselines stay on PostgreSQL; one process)")
    parser.add_argument("--drain", action="store_true", help="wait for fieldchat to send every reply and check them at the stub")
    parser.add_argument("--redis", default=REDIS_URL, help=f"Redis the fieldchat processes share their send rates through (default {REDIS_URL}; none: each its own)")
    parser.add_argument("--postgres", default=ADMIN_URL, help=f"PostgreSQL to create the scratch databases in (default {ADMIN_URL})")
    # how the benchmark starts its baselines, each in a process of its own
    parser.add_argument("--baseline", choices=("durable", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        return serve_baseline(args.baseline, args.port, args.database_url, args.api_url, args.token)
    report = asyncio.run(run(
        seconds=args.seconds, updates=args.updates, warmup=args.warmup, repeats=args.repeats, concurrency=args.concurrency,
        backlog=args.backlog, chats=args.chats, processes=args.processes, sqlite=args.sqlite, drain=args.drain,
        admin_url=args.postgres, redis_url=None if args.redis.lower() == "none" else args.redis,
    ))
    print(json.dumps(report, sort_keys=True), flush=True)
    faults = sum(record.get(k, 0) for record in report.values() if isinstance(record, dict)
                 for k in ("lost", "duplicates", "delivered_lost", "delivered_duplicates"))
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
