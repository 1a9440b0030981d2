"""`fieldchat plans`: maintenance plans from the shell — list, show, create (from options or a JSON file shaped like the
API's body), generate what is due now, write a period's inspection report (CSV or JSON), stop — through the same
commands, checks and report as the API."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from fieldchat.settings import Settings

USAGE = "maintenance plans: `plans list`, `plans show ID`, `plans create --site ID --name N --rule RRULE --starts-on DAY` " \
        "(or `--file plan.json`), `plans generate ID`, `plans report ID [--day DAY] [-o FILE]`, `plans stop ID`"


def _id(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError("ids are whole numbers from 1 to 2147483647")
    return value


def _ids(text: str) -> list[int]:
    return [_id(part) for part in text.split(",") if part.strip()]


def add_commands(commands: argparse._SubParsersAction) -> None:
    plans = commands.add_parser("plans", help=USAGE)
    actions = plans.add_subparsers(dest="plans_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every plan: id, name, site, rule, assignee, last inspection made, state")
    listing.add_argument("--json", action="store_true", help="as JSON (the API's shape)")
    show = actions.add_parser("show", help="one plan and the inspections it made")
    show.add_argument("plan_id", type=_id, metavar="ID")
    show.add_argument("--json", action="store_true", help="as JSON")
    create = actions.add_parser("create", help="a plan on a site; its inspections due within the lead time are made at once")
    create.add_argument("--file", type=Path, help="a JSON file with the API's body (name, site_id, rule, starts_on, lead_days, device_ids, "
                                                  "technician_id or team_ids, reviewer_dispatcher_id, duration_minutes); options below override it")
    create.add_argument("--name")
    create.add_argument("--site", type=_id, metavar="ID", help="the site (device_sites id)")
    create.add_argument("--rule", help="an iCalendar RRULE, e.g. FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1 (quarterly)")
    create.add_argument("--starts-on", metavar="YYYY-MM-DD", help="the first possible inspection day")
    create.add_argument("--lead-days", type=int, help="inspections are made this many days before their day (default 14)")
    create.add_argument("--devices", type=_ids, metavar="ID,ID", help="only these devices of the site (default: every active one)")
    who = create.add_mutually_exclusive_group()
    who.add_argument("--technician", type=_id, metavar="ID", help="offer each inspection to this technician")
    who.add_argument("--team", type=_ids, metavar="ID,ID", help="offer each inspection to these technicians together")
    create.add_argument("--reviewer", type=_id, metavar="ID", help="the dispatcher told of overdue inspections and finished periods")
    create.add_argument("--duration", type=int, metavar="MINUTES", help="the inspection's length (default: the kind's)")
    generate = actions.add_parser("generate", help="make now what is due (the timer does it each morning; twice makes nothing twice)")
    generate.add_argument("plan_id", type=_id, metavar="ID")
    report = actions.add_parser("report", help="write the inspection report of the period a day falls in")
    report.add_argument("plan_id", type=_id, metavar="ID")
    report.add_argument("--day", type=date.fromisoformat, metavar="YYYY-MM-DD", help="a day of the period (default: today's period)")
    report.add_argument("--format", choices=("csv", "json"), default=None, help="default: from -o, else csv")
    report.add_argument("-o", "--output", type=Path, help="the file (default inspection-report-<id>-<period start>.<format>; - prints it)")
    stop = actions.add_parser("stop", help="make no more inspections (those made stay booked)")
    stop.add_argument("plan_id", type=_id, metavar="ID")


def _fail(message: str) -> int:
    print(f"fieldchat plans: {message}", file=sys.stderr)
    return 1


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    """The API's body from the file and the options (an option given wins over the file's field)."""
    body: dict[str, Any] = json.loads(args.file.read_text(encoding="utf-8")) if args.file else {}
    if not isinstance(body, dict):
        raise ValueError("the file must hold one JSON object")
    options = {"name": args.name, "site_id": args.site, "rule": args.rule, "starts_on": args.starts_on, "lead_days": args.lead_days,
               "device_ids": args.devices, "technician_id": args.technician, "team_ids": args.team, "reviewer_dispatcher_id": args.reviewer,
               "duration_minutes": args.duration}
    body.update({key: value for key, value in options.items() if value is not None})
    return body


def _plan_line(plan: Any) -> str:
    who = {"technician": f"technician {plan.technician_id}", "team": "team " + ",".join(map(str, plan.team_ids)), "automatic": "automatic dispatch"}
    state = "active" if plan.active else "stopped"
    return (f"#{plan.id} {plan.name} · site {plan.site_id} · {plan.rule} from {plan.starts_on} · lead {plan.lead_days} d · "
            f"{who[plan.assignee]} · reviewer {plan.reviewer_dispatcher_id or '-'} · made through {plan.created_through or '-'} · {state}")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    # imported here, like qr_cli's: every other command starts without the web layer
    from pydantic import ValidationError
    from sqlalchemy import select

    from conversations.i18n import translate
    from domain import commands as c
    from domain import events as ev
    from domain.errors import DomainError
    from fieldchat.container import build
    from services import maintenance
    from storage import tables as t
    from storage.maintenance import MaintenanceStore
    from storage.repository import Store
    from webhooks.maintenance_api import PlanIn, _out, report_csv, report_out

    def refused(err: DomainError) -> int:
        return _fail(f"{translate(f'error.{err.code}', 'en', err.params)} ({err.code})")

    if args.plans_action == "create":
        try:
            body = PlanIn.model_validate(create_body(args))  # the API's own checks of each field
        except (OSError, ValueError) as err:  # an unreadable file, bad JSON, or a field out of bounds (ValidationError)
            if isinstance(err, ValidationError):
                return _fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors()))
            return _fail(str(err))
    container = build(settings)
    try:
        await container.migrate()
        await container.start(background=False)
        today = container.clock.now().astimezone(container.policy.tz).date()
        if args.plans_action == "list":
            async with container.sessions() as session:
                plans = await MaintenanceStore(Store(session)).plans(limit=200)
            if args.json:
                print(json.dumps([_out(plan).model_dump(mode="json") for plan in plans], ensure_ascii=False, indent=1))
            else:
                print("\n".join(_plan_line(plan) for plan in plans) if plans else "no maintenance plans yet (`fieldchat plans create`)")
            return 0
        if args.plans_action == "show":
            async with container.sessions() as session:
                plan = await MaintenanceStore(Store(session)).plan(args.plan_id)
                i, v = t.maintenance_inspections, t.visits
                made = (await session.execute(select(i.c.occurs_on, i.c.job_id, i.c.visit_id, v.c.status, v.c.technician_id, v.c.slot_start)
                                              .join(v, v.c.id == i.c.visit_id).where(i.c.plan_id == args.plan_id).order_by(i.c.occurs_on))).all()
            if plan is None:
                return _fail(f"no maintenance plan {args.plan_id}")
            if args.json:
                print(json.dumps({**_out(plan).model_dump(mode="json"), "inspections": [
                    {"day": row.occurs_on.isoformat(), "job_id": row.job_id, "visit_id": row.visit_id, "status": row.status,
                     "technician_id": row.technician_id} for row in made]}, ensure_ascii=False, indent=1))
                return 0
            print(_plan_line(plan))
            print(f"devices: {', '.join(map(str, plan.device_ids)) or 'every active device of the site'}")
            for row in made:
                slot = row.slot_start.astimezone(container.policy.tz).strftime("%H:%M") if row.slot_start else "not booked"
                print(f"  {row.occurs_on} · job #{row.job_id} visit #{row.visit_id} · {row.status} · {slot} · technician {row.technician_id or '-'}")
            if not made:
                print("  no inspections made yet")
            return 0
        if args.plans_action == "create":
            try:
                events = await container.bus.run("cli:maintenance-plan", c.CreateMaintenancePlan(
                    body.name, body.site_id, body.rule, body.starts_on, body.lead_days, tuple(body.device_ids), body.technician_id,
                    body.reviewer_dispatcher_id, body.duration_minutes, tuple(body.team_ids)))
            except DomainError as err:
                return refused(err)
            plan_id = next(e.data["plan_id"] for e in events if isinstance(e, ev.MaintenancePlanCreated))
            made = sum(1 for e in events if isinstance(e, ev.InspectionScheduled))
            async with container.sessions() as session:
                created = await MaintenanceStore(Store(session)).plan(plan_id)
            assert created is not None
            print(_plan_line(created))
            print(f"created plan {plan_id}; {made} inspection{'s' if made != 1 else ''} made now")
            return 0
        if args.plans_action in ("generate", "stop"):
            command: c.Command = c.GenerateInspections(args.plan_id) if args.plans_action == "generate" else c.StopMaintenancePlan(args.plan_id)
            try:
                events = await container.bus.run(f"cli:maintenance-{args.plans_action}:{args.plan_id}", command)
            except DomainError as err:
                return refused(err)
            async with container.sessions() as session:
                plan = await MaintenanceStore(Store(session)).plan(args.plan_id)
            assert plan is not None
            print(_plan_line(plan))
            if args.plans_action == "generate":
                made = sum(1 for e in events if isinstance(e, ev.InspectionScheduled))
                print(f"{made} inspection{'s' if made != 1 else ''} made now")
            return 0
        # report
        async with container.sessions() as session:
            try:
                found = await maintenance.plan_report(Store(session), args.plan_id, args.day, today)
            except DomainError as err:
                return refused(err)
        fmt = args.format or ("json" if args.output and args.output.suffix.lower() == ".json" else "csv")
        content = json.dumps(report_out(found).model_dump(mode="json"), ensure_ascii=False, indent=1) if fmt == "json" \
            else bytes(report_csv(found).body).decode("utf-8")
        if args.output == Path("-"):
            sys.stdout.write(content)
            return 0
        out = args.output or Path(f"inspection-report-{args.plan_id}-{found.report.period[0].isoformat()}.{fmt}")
        out.write_text(content, encoding="utf-8")
        result = found.report
        print(f"wrote {out}: {found.plan.name}, {result.period[0]} – {result.period[1]}: {len(result.lines)} inspection"
              f"{'s' if len(result.lines) != 1 else ''}, {result.done} done, {result.overdue} overdue")
        return 0
    finally:
        await container.stop()
