"""Notification benchmark: queue thousands of outbox rows, relay them to a rate-enforcing fake Telegram, report the rate."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timezone
from pathlib import Path

from sqlalchemy import func, insert, select

from bots.telegram import TelegramBot as AiogramBot
from bots.telegram_common import TelegramChannel
from bots.telegram_ptb import TelegramBot as PtbBot
from domain.clock import SystemClock
from fieldchat.fakes.telegram_server import FakeTelegram
from scheduler.ratelimit import DEFAULT_LIMITS, PlatformLimits, SendLimiter
from scheduler.relay import OutboxRelay
from storage import tables as t
from storage.db import create_engine, session_factory
from storage.migrate import upgrade_async

DRIVERS = {"ptb": PtbBot, "aiogram": AiogramBot}  # FIELDCHAT_TELEGRAM_DRIVER's choices; ptb is the default
TOKENS = {"customer": "7001:bench-customer", "staff": "7002:bench-staff"}
PREFIX = "bench "


def window(rate: str | None) -> tuple[int, float] | None:
    """A `limits` rate as (count, seconds), the form the fake enforces."""
    if not rate:
        return None
    from limits import parse

    item = parse(rate)
    return item.amount, float(item.get_expiry())


def start_hogs(count: int) -> list[subprocess.Popen]:
    """Busy-loop processes beside the benchmark: a machine whose cores are taken, so the relay is CPU-starved at times."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen]) -> None:
    for hog in hogs:
        hog.kill()
    for hog in hogs:
        hog.wait()


class FakeInThread:
    """The fake Bot API on its own thread and event loop, as a separate server would be: the relay's CPU can then be
    told apart from the fake's (the thread's own CPU clock), and the fake's work does not stall the relay's loop."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-bot-api", daemon=True)

    async def start(self) -> None:
        self.thread.start()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop))

    def cpu_seconds(self) -> float:
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))  # type: ignore[arg-type]

    async def stop(self) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def destinations(chats: int, groups: int) -> list[tuple[str, str]]:
    """Private chats split between the two bots; groups belong to the staff bot (dispatch groups)."""
    people = [("customer" if n % 2 else "staff", str(100_000 + n)) for n in range(chats)]
    return people + [("staff", str(-1_000_000_000 - n)) for n in range(groups)]


class CountingSender(TelegramChannel):
    """Counts what one relay got through, to show that several relays shared the work."""

    def __init__(self, bots: dict[str, AiogramBot | PtbBot]) -> None:
        super().__init__(bots)
        self.sent = 0

    async def send(self, bot, chat_id, message):
        message_id = await super().send(bot, chat_id, message)
        self.sent += 1
        return message_id


async def run(
    *,
    notifications: int = 3000,
    chats: int = 1000,
    groups: int = 40,
    database_url: str | None = None,
    redis_url: str | None = None,
    relays: int = 1,
    limits: PlatformLimits | None = None,
    fail_rate: float = 0.0,
    retry_after: int = 3,
    jitter: float = 0.1,
    batch: int = 200,
    seed: int = 1,
    timeout: float | None = None,
    driver: str = "ptb",
    out=print,
) -> dict:
    """Queue ``notifications`` over ``chats`` private chats and ``groups`` groups, relay them all, and report.

    ``fail_rate`` of the sends are answered 429 with ``retry_after`` on top of the enforced limits (a 429 storm).
    """
    rule = limits or DEFAULT_LIMITS["telegram"]
    fake = FakeTelegram()
    server = FakeInThread(fake)
    await server.start()
    for role, token in TOKENS.items():
        fake.add_bot(token, f"fieldchat_{role}_bench_bot")
    fake.enforce_limits(private=window(rule.private), group=window(rule.group), bot=window(rule.bot), jitter=jitter)
    if fail_rate:
        fake.fail_randomly("sendMessage", fail_rate, 429, retry_after, seed=seed)
    workdir = tempfile.TemporaryDirectory(prefix="fieldchat-bench-")
    url = database_url or f"sqlite:///{workdir.name}/bench.db"
    await upgrade_async(url)
    engines, tasks, senders, bots = [], [], [], []
    try:
        expected = await _queue(url, notifications, destinations(chats, groups), seed)
        shared = None if redis_url else SendLimiter({"telegram": rule})  # one process: one set of windows
        stop = asyncio.Event()
        # a full collection over everything imported stalls the loop for ~0.25 s, and a send that waits
        # that long between taking its rate slot and reaching Telegram arrives bunched with later ones
        gc.collect()
        gc.freeze()
        started = time.time()
        cpu_started, fake_cpu_started = time.process_time(), server.cpu_seconds()
        for n in range(relays):
            engine = create_engine(url)
            engines.append(engine)
            adapters = {role: DRIVERS[driver](role, token, fake.base_url, None, Path(workdir.name)) for role, token in TOKENS.items()}
            bots.extend(adapters.values())
            sender = CountingSender(adapters)
            senders.append(sender)
            limiter = shared or SendLimiter({"telegram": rule}, redis_url=redis_url, prefix=f"bench-{started}")
            if n == 0 and redis_url:
                await limiter.clear()
            relay = OutboxRelay(
                sessions=session_factory(engine), senders={"telegram": sender}, clock=SystemClock(), tz=timezone.utc,
                limiter=limiter, batch=batch,
            )
            tasks.append(asyncio.create_task(relay.run(stop, interval=0.05)))
        limit_per_s = (window(rule.bot)[0] / window(rule.bot)[1]) * len(TOKENS) if rule.bot else float("inf")
        budget = timeout or notifications / limit_per_s * 3 + 60
        sessions = session_factory(engines[0])
        while time.time() - started < budget:
            await asyncio.sleep(0.25)
            async with sessions() as session:
                pending = (await session.execute(select(func.count()).select_from(t.outbox).where(t.outbox.c.status == "pending"))).scalar_one()
            if not pending:
                break
        stop.set()
        await asyncio.gather(*tasks)
        cpu_seconds = time.process_time() - cpu_started
        fake_cpu_seconds = server.cpu_seconds() - fake_cpu_started
        async with sessions() as session:
            statuses = dict((await session.execute(select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status))).all())
    finally:
        stop_tasks = [task for task in tasks if not task.done()]
        for task in stop_tasks:
            task.cancel()
        for bot in bots:
            await bot.close()
        for engine in engines:
            await engine.dispose()
        await server.stop()
        workdir.cleanup()
        gc.unfreeze()

    report = _measure(fake, expected, started)
    report.update(
        # the relay(s) with the database driver, without the fake Bot API serving them (its own thread's clock)
        cpu_ms_per_message=round(1000 * (cpu_seconds - fake_cpu_seconds) / report["delivered"], 2) if report["delivered"] else None,
        fake_cpu_ms_per_message=round(1000 * fake_cpu_seconds / report["delivered"], 2) if report["delivered"] else None,
        limit_per_s=limit_per_s,
        violations=len(fake.violations),
        violations_by_kind=dict(Counter(v.kind for v in fake.violations)),
        statuses=statuses,
        relays_sent=[sender.sent for sender in senders],
        platform_429=sum(1 for c in fake.calls if c.status == 429),
    )
    out(f"notifications: {notifications} to {chats} chats and {groups} groups, {relays} relay(s), {len(TOKENS)} bots on {driver}")
    out(f"limits: {rule.private} per chat, {rule.group} per group, {rule.bot} per bot")
    out(f"sent: {report['delivered']} in {report['seconds']:.1f} s = {report['sent_per_s']:.1f} msg/s "
        f"({report['sent_per_s'] / limit_per_s:.1%} of {limit_per_s:g}/s)")
    out(f"429 answers: {report['platform_429']} (storm {fail_rate:.0%}), violations: {report['violations']}{' ' + str(report['violations_by_kind']) if report['violations'] else ''}, "
        f"duplicates: {report['duplicates']}, lost: {report['lost']}, chats out of order: {report['out_of_order']}")
    for violation in fake.violations[:5]:
        out(f"  over the {violation.kind} rate: {violation.count} sends in {violation.seconds:g} s to {violation.chat_id}")
    out(f"CPU: {report['cpu_ms_per_message']} ms per message sent in the relay and its database driver "
        f"(the fake Bot API serving them: {report['fake_cpu_ms_per_message']} ms more)")
    out(json.dumps({key: report[key] for key in ("sent_per_s", "limit_per_s", "violations", "duplicates", "lost", "cpu_ms_per_message",
                                                 "fake_cpu_ms_per_message")}))
    return report


async def _queue(url: str, notifications: int, chats: list[tuple[str, str]], seed: int) -> dict[str, list[str]]:
    """Write the rows straight into the outbox, interleaved across chats as notifications would arrive."""
    rng = random.Random(seed)
    now = SystemClock().now()
    rows, expected = [], {}
    order = list(chats)
    n = 0
    while n < notifications:
        rng.shuffle(order)
        for bot, chat_id in order[: notifications - n]:
            text = f"{PREFIX}{n}"
            expected.setdefault(chat_id, []).append(text)
            rows.append(dict(
                platform="telegram", bot=bot, chat_id=chat_id, dedup_key=f"bench:{now.timestamp()}:{n}",
                payload={"text": {"key": "=", "params": {"text": text}}, "buttons": [], "language": "en"},
                status="pending", attempts=0, next_attempt_at=now, created_at=now,
            ))
            n += 1
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            if (await session.execute(select(func.count()).select_from(t.outbox).where(t.outbox.c.status == "pending"))).scalar_one():
                raise SystemExit("the outbox has pending rows: the benchmark would send them to its fake Telegram")
            for start in range(0, len(rows), 1000):
                await session.execute(insert(t.outbox), rows[start : start + 1000])
    finally:
        await engine.dispose()
    return expected


def _measure(fake, expected: dict[str, list[str]], started: float) -> dict:
    sent = [s for s in fake.sent() if (s["text"] or "").startswith(PREFIX)]
    counts = Counter(s["text"] for s in sent)
    wanted = sum(len(texts) for texts in expected.values())
    seen: dict[str, list[str]] = {}
    for s in sent:
        texts = seen.setdefault(s["chat_id"], [])
        if s["text"] not in texts:
            texts.append(s["text"])
    out_of_order = sum(1 for chat, texts in expected.items() if seen.get(chat, []) != texts[: len(seen.get(chat, []))])
    delivered = len(counts)
    seconds = max((s["at"] for s in sent), default=started) - started
    return {
        "delivered": delivered,
        "seconds": seconds,
        "sent_per_s": round(delivered / seconds, 2) if seconds > 0 else 0.0,
        "duplicates": sum(c - 1 for c in counts.values()),
        "lost": wanted - delivered,
        "out_of_order": out_of_order,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldchat bench notify", description=__doc__)
    parser.add_argument("--notifications", type=int, default=3000)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--relays", type=int, default=1, help="relays side by side (PostgreSQL for more than one)")
    parser.add_argument("--database-url", help="an empty, migratable database (default: a temporary SQLite file)")
    parser.add_argument("--redis-url", help="share the rate windows through Redis, as separate processes would")
    parser.add_argument("--storm", type=float, default=0.0, help="share of sends answered 429 retry_after=3, e.g. 0.1")
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="ptb", help="the library that sends (FIELDCHAT_TELEGRAM_DRIVER)")
    parser.add_argument("--hog", type=int, default=0, metavar="N", help="N busy-loop processes beside it (a busy machine)")
    args = parser.parse_args(argv)
    hogs = start_hogs(args.hog)
    if hogs:
        print(f"beside it: {len(hogs)} busy-loop processes (--hog)")
    try:
        report = asyncio.run(run(
            notifications=args.notifications, chats=args.chats, groups=args.groups, relays=args.relays,
            database_url=args.database_url, redis_url=args.redis_url, fail_rate=args.storm, driver=args.driver,
        ))
    finally:
        stop_hogs(hogs)
    ok = report["violations"] == 0 and report["duplicates"] == 0 and report["lost"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
