"""The `fieldchat` command: serve, migrate, demo-data, plan, relay, flows, understand, user, token, qr."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

from pydantic import ValidationError

from fieldchat.settings import Settings, settings_errors


def configure_logging(settings: Settings) -> None:
    from bots.robots import known_secrets
    from fieldchat import logs
    from storage.callbacks import known_secrets as callback_secrets

    secrets = list(settings.bot_tokens().values())
    if settings.api_token:
        secrets.append(settings.api_token.get_secret_value())
    # the WhatsApp access token, and what signs and verifies its webhooks
    secrets += [s.get_secret_value() for s in (settings.whatsapp_token, settings.whatsapp_app_secret, settings.whatsapp_verify_token) if s]
    logs.configure(settings.log_level, secrets, [known_secrets, callback_secrets])


def _database_problem(url: str) -> str | None:
    """Why the database cannot be used, in one line (the password hidden), or None when a connection works."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from storage.db import create_engine

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception as exc:  # not a URL at all
        return f"FIELDCHAT_DATABASE_URL is not a database URL ({type(exc).__name__}: {_first_line(exc)})"

    async def connect() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(connect(), timeout=15))
    except Exception as exc:  # a wrong driver, host, password or path: all end the same way, with the reason
        reason = "no answer within 15 s" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {_first_line(exc)}"
        return f"cannot use the database {shown} (FIELDCHAT_DATABASE_URL): {reason}"
    return None


def _port_problem(host: str, port: int) -> str | None:
    """Whether the address to serve on is free, asked before the server starts (uvicorn would stop with a log line)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return f"cannot serve on {host}:{port} ({exc.strerror or exc}); stop what uses it or set FIELDCHAT_PORT / FIELDCHAT_HOST"
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _serve(settings: Settings) -> int:
    import uvicorn

    from fieldchat.container import build
    from webhooks.app import create_app

    app = create_app(build(settings))
    # start-up objects live for the whole run; freezing them keeps full collections short, which
    # otherwise stall the relay long enough to bunch sends against the platforms' rate limits
    gc.freeze()
    base = f"http://{settings.host}:{settings.port}"
    if settings.web_console:
        print(f"fieldchat: demo web console at {base}/chat — API docs at {base}/docs", flush=True)
    else:
        print(f"fieldchat: serving at {base} — API docs at {base}/docs (the web console is off outside demo mode)", flush=True)
    if not settings.bot_tokens():
        print("fieldchat: no Telegram tokens set; no chat channel is live", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
    return 0


def _migrate(settings: Settings) -> int:
    from storage.migrate import upgrade

    upgrade(settings.database_url)
    print("fieldchat: database is at the latest schema")
    return 0


async def _demo(settings: Settings) -> int:
    from fieldchat.container import build
    from fieldchat.demo import load_demo

    container = build(settings)
    try:
        await container.start(background=False)
        links = await load_demo(container.bus)
        base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        print("Demo data loaded: 4 technicians, a dispatcher, a dispatch group, checklists for")
        print("sofa / wardrobe / air-conditioner / washing-machine, and order #%d (a sofa: delivery + installation).\n" % links.order_id)
        print("Open the web chat with every pane signed in:")
        # tokens after "#" stay in the browser: they never reach the server's access log
        print(f"  {base}/chat#{urlencode(links.panes)}\n")
        for platform, channel in container.channels.items():
            if channel.capabilities.pulled or channel.deep_link("customer", links.customer) is None:
                continue  # the console is above; channels without links (robots) or not configured have nothing to open
            print(f"{platform} links:")
            shown = [("customer:", channel.deep_link("customer", links.customer))]
            shown += [(name, channel.deep_link("technician", token)) for name, token in links.technicians.items()]
            shown += [("dispatcher:", channel.deep_link("dispatcher", links.dispatcher)), ("group:", channel.deep_link("group", links.group))]
            for name, link in shown:
                if link is not None:  # e.g. WhatsApp without a staff number has customer links only, and no groups
                    print(f"  {name:<11} {link}")
        if links.back_office:  # issue 12: the board, jobs, reports and maintenance pages
            username, password = links.back_office
            print(f"\nBack office (board, jobs, reports): {base}/signin — user {username}, password {password} (new at each start)")
            if links.plan_id:  # issue 14 part 8: the demo customer's quarterly inspections
                print(f"Maintenance plan (quarterly inspection, `fieldchat plans show {links.plan_id}`): {base}/maintenance/{links.plan_id}")
        if links.device_codes:  # issue 14: send "/start <code>" in the customer pane, as scanning the sticker would
            print("\nDevice QR codes of the demo customer (`fieldchat qr --customer ID --sheet` prints them):")
            for product, code in links.device_codes.items():
                print(f"  {product}: /start {code}")
    finally:
        await container.stop()
    return 0


async def _plan(settings: Settings, day: date | None, time_limit: float, apply: bool) -> int:
    from fieldchat.container import build
    from services import planning

    if time_limit <= 0:
        print("fieldchat: --time-limit must be positive", file=sys.stderr)
        return 2
    container = build(settings)
    try:
        await container.start(background=False)
        now = container.clock.now()
        day = day or (now.astimezone(container.policy.tz).date() + timedelta(days=1))
        print(f"fieldchat: planning {day} with the optimizer ({time_limit:g} s)", flush=True)
        # the same planning and the same guards as the nightly run (services/replanning.py)
        planning_run = asyncio.ensure_future(container.replanner.plan(day, time_limit, apply=apply))
        started = time.monotonic()
        while not planning_run.done():
            # a progress line on terminals; plain output stays clean when piped
            if sys.stdout.isatty():
                print(f"\r  optimizing… {time.monotonic() - started:4.0f} s of {time_limit:.0f} s", end="", flush=True)
            await asyncio.wait({planning_run}, timeout=1.0)
        if sys.stdout.isatty():
            print()
        run, plan, events = planning_run.result()
        for line in planning.summary_lines(run.dp, plan, container.policy.tz):
            print(line)
        if apply:
            await container.relay.drain_once()
            print(f"fieldchat: plan applied ({len(events)} changes); notifications queued")
    finally:
        await container.stop()
    return 0


async def _relay(settings: Settings, args: argparse.Namespace) -> int:
    """One more outbox relay next to the servers (scale-out): the same senders, shared rate windows in Redis."""
    import gc
    import logging
    import signal

    from fieldchat.container import build, relay_loop
    from scheduler.ratelimit import SendLimiter

    container = build(settings)
    relay = container.relay.alongside(
        limiter=SendLimiter(redis_url=settings.redis_url, prefix=args.limits_prefix), lease=args.lease, batch=args.batch,
    )
    logging.getLogger("fieldchat").info("outbox relay %s started", relay.relay_id)
    # keep full collections from scanning the imported modules: such a stall lands between a rate slot and its send
    gc.collect()
    gc.freeze()
    try:
        if args.once:
            await relay.free_claims_of_gone_relays()
            while await relay.drain_once():
                pass
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await relay_loop(relay, container.db, stop, args.interval)
    finally:
        await container.stop()
    return 0


def _flows(directory: Path, check: bool) -> int:
    from conversations.flows import diagrams

    if check:
        stale = diagrams.stale(directory)
        for path in stale:
            print(f"fieldchat: {path} is not current; run `fieldchat flows`", file=sys.stderr)
        return 1 if stale else 0
    for path in diagrams.write(directory):
        print(f"fieldchat: wrote {path}")
    return 0


def _understand(settings: Settings, args: argparse.Namespace) -> int:
    """One JSON line per call: what TEXT means, or the accuracy on each --corpus file (JSON lines of labelled utterances)."""
    import json
    from datetime import datetime

    from conversations.understanding import score, understand
    from domain.clock import SystemClock

    tz = settings.policy().tz
    language = None if args.lang == "auto" else args.lang
    if args.corpus:
        for path in args.corpus:
            try:
                cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                figures = score(cases, language)
            except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable, or lines without "text", "now", "intent", …
                print(f"fieldchat: cannot read the corpus {path}: {exc!r}", file=sys.stderr)
                return 2
            print(json.dumps({"file": str(path), **figures}, ensure_ascii=False))
        return 0
    if args.text is None:
        print("fieldchat: understand needs TEXT (or --corpus PATH)", file=sys.stderr)
        return 2
    if args.now is None:
        now = SystemClock().now().astimezone(tz)
    else:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            print(f"fieldchat: --now is not an ISO-8601 date and time: {args.now!r}", file=sys.stderr)
            return 2
        # a time without an offset is the shop's local time; one with an offset is converted to it
        now = now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)
    print(json.dumps(understand(args.text, args.role, now, language).to_json(), ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # has its own options and needs no settings or database
        from fieldchat.bench import main as bench_main

        return bench_main(argv[1:])
    parser = argparse.ArgumentParser(prog="fieldchat", description="Chat-first field service: delivery, installation and repair in messengers.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run everything in one process: web chat, API, Telegram bots, relay")
    serve.add_argument("--demo", action="store_true", help="load the demo data first (safe to repeat) and print links to try it")
    commands.add_parser("migrate", help="bring the database schema up to date")
    commands.add_parser("demo-data", help="load technicians, checklists and a sample order, and print links to try them")
    plan = commands.add_parser("plan", help="plan a day's routes from the database with the optimizer and print a summary")
    plan.add_argument("--date", type=date.fromisoformat, help="the day to plan, YYYY-MM-DD (default: tomorrow in FIELDCHAT_TIMEZONE)")
    plan.add_argument("--time-limit", type=float, default=30.0, help="seconds the optimizer may search (default 30)")
    plan.add_argument("--apply", action="store_true", help="assign the visits as planned and tell the people whose plans changed")
    relay = commands.add_parser("relay", help="run one more outbox relay process (FIELDCHAT_REDIS_URL shares the send rates)")
    relay.add_argument("--once", action="store_true", help="send what is due now, then exit")
    relay.add_argument("--interval", type=float, default=1.0, help="seconds between looks at the outbox when idle")
    relay.add_argument("--lease", type=float, default=90.0, help="seconds a claim holds before another relay may take it")
    relay.add_argument("--batch", type=int, default=200, help="chats sending at once")
    relay.add_argument("--limits-prefix", default="fieldchat", help="Redis key prefix of the shared rate windows")
    commands.add_parser("bench", help="benchmarks: `bench routing [--time-limit SECONDS] [--ortools] [--no-baseline] [PATH ...]`, "
                                        "`bench field-day [--visits N ...] [--long-factor K] [--quick]`, `bench notify`, `bench inbound`, "
                                        "`bench start [--runs N] [--drivers ptb aiogram] [--no-bots]`, "
                                        "`bench board [--visits N] [--technicians N] [--database-url URL]`")
    flows = commands.add_parser("flows", help="write each conversation flow's state diagram (Mermaid) to docs/flows/")
    flows.add_argument("--out", type=Path, default=Path("docs/flows"), help="the directory to write to (default docs/flows)")
    flows.add_argument("--check", action="store_true", help="write nothing; exit 1 when a diagram there is not current")
    understand = commands.add_parser("understand", help="print what a typed message means (intent, date, part of day, times, minutes) as JSON")
    understand.add_argument("text", nargs="?", metavar="TEXT", help="the message, as a customer or technician would type it")
    understand.add_argument("--role", choices=("customer", "technician"), default="customer", help="who types it (default customer)")
    understand.add_argument("--lang", choices=("zh", "en", "auto"), default="auto", help="the language tried first (default: detected)")
    understand.add_argument("--now", help="ISO-8601 date and time relative dates resolve from (default: now in FIELDCHAT_TIMEZONE)")
    understand.add_argument("--corpus", type=Path, action="append", metavar="PATH",
                            help="instead of TEXT: print the accuracy on a JSON-lines file of labelled utterances (repeatable)")
    from fieldchat import access_cli

    access_cli.add_commands(commands)
    from fieldchat import qr_cli

    qr_cli.add_commands(commands)  # QR stickers of devices and sites (issue 14)
    from fieldchat import plans_cli

    plans_cli.add_commands(commands)  # maintenance plans (issue 14 part 8)
    from fieldchat import settlements_cli

    settlements_cli.add_commands(commands)  # settlement statements and payout rules (issue 14 part 7)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "flows":  # needs no settings or database
        return _flows(args.out, args.check)
    try:
        # --demo is the one way in to the web console besides FIELDCHAT_WEB_CONSOLE=true
        settings = Settings(**({"web_console": True} if getattr(args, "demo", False) else {}))
    except ValidationError as exc:  # one line per wrong setting, never a traceback
        for line in settings_errors(exc):
            print(f"fieldchat: configuration error: {line}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.command == "understand":  # reads no database; the settings give the shop's time zone
        return _understand(settings, args)
    # what a newcomer gets wrong first, said in one line before anything starts (no traceback, a non-zero exit)
    problem = _port_problem(settings.host, settings.port) if args.command == "serve" else None
    problem = problem or _database_problem(settings.database_url)
    if problem:
        print(f"fieldchat: {problem}", file=sys.stderr)
        return 1
    if args.command == "serve":
        if args.demo:
            asyncio.run(_demo(settings))
        return _serve(settings)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "relay":
        return asyncio.run(_relay(settings, args))
    if args.command == "plan":
        return asyncio.run(_plan(settings, args.date, args.time_limit, args.apply))
    if args.command in ("user", "token"):
        return asyncio.run(access_cli.run(settings, args))
    if args.command == "qr":
        return asyncio.run(qr_cli.run(settings, args))
    if args.command == "plans":
        return asyncio.run(plans_cli.run(settings, args))
    if args.command == "settlements":
        return asyncio.run(settlements_cli.run(settings, args))
    return asyncio.run(_demo(settings))


if __name__ == "__main__":
    sys.exit(main())
