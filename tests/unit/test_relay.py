"""The relay's parts without a database or a platform: its write turns on SQLite, which relays are gone, and what it logs
while a dependency is down."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timezone


from domain.clock import SystemClock
from scheduler.logthrottle import LogThrottle
from scheduler.relay import OutboxRelay, _WriteTurns, new_relay_id, relay_gone
from scheduler.sweeps import run_every
from tests.support.relay import until

async def test_on_sqlite_the_relays_writes_take_turns_and_a_starting_send_goes_before_queued_outcomes():
    turns = _WriteTurns()
    order: list[str] = []
    release = asyncio.Event()

    async def write(name: str, urgent: bool = False) -> None:
        async with turns.turn(urgent):
            order.append(name)
            if name == "first":
                await release.wait()

    async def settle() -> None:
        for _ in range(5):  # let the tasks run up to their waits (no time passes)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(write("first"))]
    await settle()
    tasks += [asyncio.create_task(write(name, urgent)) for name, urgent in (("outcome-1", False), ("gone", False), ("outcome-2", False), ("start", True))]
    await settle()
    assert order == ["first"]
    tasks[2].cancel()  # a waiter that is cancelled gives up its place
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == ["first", "start", "outcome-1", "outcome-2"]
    async with turns.turn(False):  # and the turns are free again
        pass


def test_a_relay_id_names_a_gone_relay_only_for_a_process_of_this_machine_that_has_exited():
    """The fast half of e2e/test_relay_processes.py's takeover: the id's pid is checked, nothing else is presumed gone."""
    mine = new_relay_id()
    host, pid, namespace, nonce = mine.rsplit(":", 3)
    unused = next(n for n in range(4_000_000, 3_000_000, -1) if not os.path.exists(f"/proc/{n}"))
    assert not relay_gone(mine)  # this process
    assert not relay_gone(f"{host}:{os.getppid()}:{namespace}:{nonce}")  # a live process
    assert relay_gone(f"{host}:{unused}:{namespace}:{nonce}") is (namespace != "-")  # gone, when the namespace is known
    assert not relay_gone(f"{host}:{unused}:other-namespace:{nonce}")  # another container's process: not known to be gone
    assert not relay_gone("elsewhere:4242:0123456789:abcdef01") and not relay_gone("x")


# --- warnings while a dependency is down ----------------------------------------------------------


def test_a_repeating_warning_goes_out_once_per_interval_with_a_count_of_the_rest(caplog):
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("tests.throttle"), 60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="tests.throttle")
    for second in range(150):
        now[0] = second
        throttle.warning("redis", "redis is down (%d)", second)
    throttle.warning("database", "the database is down")  # another key has its own minute
    throttle.recovered("redis", "redis works again")
    throttle.recovered("nothing", "never logged, so nothing to say")
    throttle.warning("redis", "redis is down again")  # after a recovery the next failure goes out at once
    assert [r.getMessage() for r in caplog.records] == [
        "redis is down (0)",
        "redis is down (60) (59 more like this in the last 60 s not logged)",
        "redis is down (120) (59 more like this in the last 60 s not logged)",
        "the database is down",
        "redis works again (29 more failures since the last line not logged)",
        "redis is down again",
    ]


class DatabaseDown:
    """A session factory whose database cannot be reached."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> "DatabaseDown":
        self.calls += 1
        return self

    async def __aenter__(self):
        raise ConnectionRefusedError("the database is down")

    async def __aexit__(self, *exc) -> bool:
        return False


async def test_a_relay_and_a_sweep_whose_database_is_down_say_so_once_not_on_every_tick(caplog):
    down = DatabaseDown()
    relay = OutboxRelay(sessions=down, senders={}, clock=SystemClock(), tz=timezone.utc)
    stop = asyncio.Event()

    async def sweep() -> None:
        async with down():
            pass

    running = [asyncio.create_task(relay.run(stop, interval=0.001)), asyncio.create_task(run_every(0.001, stop, sweep, "inbox sweep"))]

    async def tried_often() -> bool:
        return down.calls >= 100

    await until(tried_often, 10, "the relay and the sweep stopped trying")
    stop.set()
    await asyncio.gather(*running)
    lines = sorted(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    # the look for stopped relays' claims happens once, at the start; the rest repeats, but is said once
    assert lines == ["inbox sweep failed", "outbox relay: claiming failed", "outbox relay: looking for the claims of stopped relays failed"]


def test_a_relay_started_alongside_tells_what_it_finds_as_the_first_one_does():
    """`fieldchat relay` is built alongside serve's: a chat it finds unreachable, a callback it parks, reach the dispatchers."""
    from scheduler.ratelimit import SendLimiter

    def told(*_: object) -> None: ...

    def parked(*_: object) -> None: ...

    first = OutboxRelay(sessions=None, senders={"telegram": object()}, clock=SystemClock(), tz=timezone.utc,  # type: ignore[arg-type,dict-item]
                        on_undeliverable=told, on_parked=parked)
    limiter = SendLimiter({})
    other = first.alongside(limiter=limiter, lease=3, batch=8)
    assert (other.on_undeliverable, other.on_parked, other.senders, other.limiter, other.lease) == (told, parked, first.senders, limiter, 3)
    assert other.relay_id != first.relay_id
