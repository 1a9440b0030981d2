"""`fieldchat bench start`: cold start of `fieldchat serve` to its first /healthz 200, and its resident memory then and when idle."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from fieldchat.fakes.telegram_server import FakeTelegram
from storage.migrate import upgrade_async

TOKENS = {"CUSTOMER": "7201:bench-start-customer", "STAFF": "7202:bench-start-staff"}
DRIVERS = ("ptb", "aiogram")
NO_BOTS = "no_bots"
POLL_S = 0.02
IDLE_S = 5.0
READY_TIMEOUT_S = 120.0  # a cold start on a busy 2-core machine, with generous room
STOP_TIMEOUT_S = 30.0


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """The process and everything it started, from /proc (children are listed per thread, so every thread is read)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    queue += [int(child) for child in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone between the listing and the read
    return found


def rss_mib(pid: int) -> tuple[float, int]:
    """VmRSS summed over the process and its descendants, and how many processes that was."""
    total_kib, counted = 0, 0
    for member in descendants(pid):
        try:
            with open(f"/proc/{member}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
                        counted += 1
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total_kib / 1024, counted


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            # a zombie has ended and only waits for its parent to collect it
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def serve_env(system: str, api_url: str, database_url: str, port: int, workdir: Path) -> dict[str, str]:
    # whatever FIELDCHAT_* the caller has set would make the runs incomparable; the rest (PATH, locale) is kept
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    env.update(
        FIELDCHAT_DATABASE_URL=database_url,
        FIELDCHAT_PORT=str(port),
        FIELDCHAT_MEDIA_DIR=str(workdir / "media"),
        FIELDCHAT_LOG_LEVEL="WARNING",
    )
    if system != NO_BOTS:
        env.update(
            FIELDCHAT_TELEGRAM_DRIVER=system,
            FIELDCHAT_TELEGRAM_MODE="polling",
            FIELDCHAT_TELEGRAM_API_URL=api_url,
            **{f"FIELDCHAT_TELEGRAM_{role}_TOKEN": token for role, token in TOKENS.items()},
        )
    return env


async def until_healthy(http: aiohttp.ClientSession, process: subprocess.Popen[bytes], url: str, started: float, log: Path) -> float:
    """Seconds from `started` to the first 200 of /healthz, asked every 20 ms."""
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"fieldchat serve exited ({process.returncode}) before it was ready:\n{log.read_text()[-3000:]}")
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as answer:
                if answer.status == 200:
                    return time.perf_counter() - started
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"fieldchat serve was not ready within {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


async def stop(process: subprocess.Popen[bytes], members: list[int]) -> tuple[int, int]:
    """SIGTERM and wait; returns the exit code and how many of the server's processes were still running after it."""
    process.send_signal(signal.SIGTERM)
    try:
        # in a thread: the fake Bot API runs on this loop and must answer the bots' calls while they shut down
        code = await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        code = await asyncio.to_thread(process.wait)
    left = [pid for pid in members if pid != process.pid and alive(pid)]
    for pid in left:  # a worker the server did not end; not left behind to skew the next run
        os.kill(pid, signal.SIGKILL)
    return code, len(left)


async def one_start(system: str, run: int, template: Path, workdir: Path, fake: FakeTelegram, fieldchat: str) -> dict[str, Any]:
    database = workdir / f"{system}-{run}.db"
    shutil.copy(template, database)
    port = free_port()
    log = workdir / f"serve-{system}-{run}.log"
    env = serve_env(system, fake.base_url, f"sqlite:///{database}", port, workdir)
    since = len(fake.calls)
    async with aiohttp.ClientSession() as http:
        with log.open("wb") as out:
            started = time.perf_counter()
            # the scratch folder as working directory, so no .env of whoever runs the benchmark leaks in
            process = subprocess.Popen([fieldchat, "serve"], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        try:
            ready = await until_healthy(http, process, f"http://127.0.0.1:{port}/healthz", started, log)
            rss_ready, processes = rss_mib(process.pid)
            await asyncio.sleep(IDLE_S)  # idle: the bots poll, the relay and the sweeps tick
            rss_idle, _ = rss_mib(process.pid)
            members = descendants(process.pid)
            # the bots really run: a start whose bots never reached the Bot API would measure less than it claims
            polling = len({call.token for call in fake.calls[since:] if call.method == "getUpdates"})
        except BaseException:
            process.kill()
            await asyncio.to_thread(process.wait)
            raise
    code, left = await stop(process, members)
    database.unlink(missing_ok=True)
    # uvicorn ends a graceful shutdown by raising the signal it caught again, so SIGTERM's code is a clean stop too
    clean = code in (0, -signal.SIGTERM) and left == 0 and "Traceback" not in log.read_text(errors="replace")
    say(f"bench start: {system:8s} run {run + 1}: first /healthz 200 after {ready:.2f} s; RSS {rss_ready:.0f} MiB ready, "
        f"{rss_idle:.0f} MiB after {IDLE_S:.0f} s idle ({processes} process(es), {polling} bot(s) polling); exit code {code}, {left} left running, {'clean' if clean else 'NOT clean: see ' + str(log)}")
    return {"ready_s": ready, "rss_ready": rss_ready, "rss_idle": rss_idle, "processes": processes, "bots_polling": polling, "exit_code": code, "left": left, "clean": clean}


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    ready = [round(r["ready_s"], 3) for r in results]
    idle = [round(r["rss_idle"], 1) for r in results]
    return {
        "ready_s": ready,
        "ready_s_median": round(statistics.median(ready), 3),
        "rss_mib_ready": [round(r["rss_ready"], 1) for r in results],
        "rss_mib_idle": idle,
        "rss_mib_idle_median": round(statistics.median(idle), 1),
        "processes": [r["processes"] for r in results],
        "bots_polling": [r["bots_polling"] for r in results],
        "exit_codes": [r["exit_code"] for r in results],
        "left_running": sum(r["left"] for r in results),
        "clean_stops": sum(r["clean"] for r in results),
    }


async def run(runs: int, systems: list[str]) -> dict[str, Any]:
    fieldchat = str(Path(sys.executable).parent / "fieldchat")
    workdir = Path(tempfile.mkdtemp(prefix="fieldchat-bench-start-"))
    # the fake Bot API shares this process, which only waits between polls: the server has the other core to itself
    fake = FakeTelegram(long_poll_cap=25)
    await fake.start()
    try:
        for role, token in TOKENS.items():
            fake.add_bot(token, f"fieldchat_{role.lower()}_bench_bot")
        template = workdir / "template.db"
        await upgrade_async(f"sqlite:///{template}")  # once, before anything is timed; each start gets a fresh copy
        load = os.getloadavg()
        say(f"bench start: {runs} run(s) of {', '.join(systems)}, interleaved; load average {load[0]:.2f} before")
        results: dict[str, list[dict[str, Any]]] = {system: [] for system in systems}
        for n in range(runs):
            for system in systems:
                results[system].append(await one_start(system, n, template, workdir, fake, fieldchat))
    finally:
        await fake.stop()
    clean = all(r["clean"] for rs in results.values() for r in rs)
    if clean:  # else the servers' logs stay for a look
        shutil.rmtree(workdir, ignore_errors=True)
    report: dict[str, Any] = {"bench": "start", "runs": runs, "cpus": os.cpu_count(), "loadavg_before": round(load[0], 2)}
    for system in systems:
        report[system] = summary(results[system])
        say(f"bench start: {system}: median first /healthz 200 {report[system]['ready_s_median']:.2f} s, "
            f"median idle RSS {report[system]['rss_mib_idle_median']:.0f} MiB")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldchat bench start", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="starts per driver, interleaved; medians are reported (default 3)")
    parser.add_argument("--drivers", nargs="*", choices=DRIVERS, default=list(DRIVERS),
                        help="Telegram libraries to start with, both bots polling a fake Bot API (default: ptb aiogram)")
    parser.add_argument("--no-bots", action="store_true", help="also start the server with no bot configured (reported as no_bots)")
    args = parser.parse_args(argv)
    systems = list(dict.fromkeys(args.drivers)) + ([NO_BOTS] if args.no_bots else [])
    if args.runs < 1 or not systems:
        parser.error("give --runs of 1 or more and at least one driver or --no-bots")
    report = asyncio.run(run(args.runs, systems))
    print(json.dumps(report, sort_keys=True), flush=True)
    return 0 if all(report[s]["clean_stops"] == args.runs for s in systems) else 1


if __name__ == "__main__":
    sys.exit(main())
