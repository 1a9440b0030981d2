"""`fieldchat settlements`: settlement statements from the shell — close a month, list statements, export one statement
or a month's as CSV, set a technician's payout rule — through the same commands and CSV as the API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fieldchat.settings import Settings

USAGE = "settlement statements: `settlements close --month YYYY-MM`, `settlements list [--month YYYY-MM] [--technician ID]`, " \
        "`settlements export --id N | --month YYYY-MM [-o FILE]`, `settlements payout TECHNICIAN_ID [--cycle monthly|per_order] [--share PERCENT]`"


def _id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 2**31 - 1:
        raise argparse.ArgumentTypeError("ids are whole numbers from 1 to 2147483647")
    return int(text)


def _share(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 100:
        raise argparse.ArgumentTypeError("the share is a whole percent from 0 to 100")
    return int(text)


def add_commands(commands: argparse._SubParsersAction) -> None:
    settlements = commands.add_parser("settlements", help=USAGE)
    actions = settlements.add_subparsers(dest="settlements_action", metavar="ACTION", required=True)
    close = actions.add_parser("close", help="a statement per technician of everything ready in a month that is over "
                                             "(the timer does it early on the 1st; closing twice makes nothing new)")
    close.add_argument("--month", required=True, metavar="YYYY-MM")
    listing = actions.add_parser("list", help="statements: number, technician, period, lines, total")
    listing.add_argument("--month", metavar="YYYY-MM")
    listing.add_argument("--technician", type=_id, metavar="ID")
    export = actions.add_parser("export", help="one statement, or every statement of a month, as CSV")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=_id, metavar="N", help="the statement")
    which.add_argument("--month", metavar="YYYY-MM", help="every statement of the month")
    export.add_argument("-o", "--output", type=Path, help="the file (default <statement number>.csv or settlements-<month>.csv; - prints it)")
    payout = actions.add_parser("payout", help="show or set a technician's settlement cycle and share of billed work")
    payout.add_argument("technician_id", type=_id, metavar="TECHNICIAN_ID")
    payout.add_argument("--cycle", choices=("monthly", "per_order", "default"), help="default: the shop's (FIELDCHAT_SETTLEMENT_CYCLE)")
    payout.add_argument("--share", type=_share, metavar="PERCENT", help="of the billed work (parts are the shop's)")
    payout.add_argument("--default-share", action="store_true", help="back to the shop's share (FIELDCHAT_PAYOUT_SHARE_PERCENT)")


def _fail(message: str) -> int:
    print(f"fieldchat settlements: {message}", file=sys.stderr)
    return 1


async def run(settings: Settings, args: argparse.Namespace) -> int:
    # imported here, like plans_cli's: every other command starts without these layers
    from conversations.i18n import translate
    from domain import commands as c
    from domain.errors import DomainError
    from domain.fees import Money
    from domain.settlement import parse_period
    from fieldchat.container import build
    from services import settlement
    from storage.repository import Store
    from storage.settlement import SettlementStore

    def refused(err: DomainError) -> int:
        return _fail(f"{translate(f'error.{err.code}', 'en', err.params)} ({err.code})")

    try:
        month = parse_period(args.month) if getattr(args, "month", None) else None
    except DomainError as err:
        return refused(err)
    container = build(settings)
    try:
        await container.migrate()
        await container.start(background=False)
        tz = container.policy.tz
        if args.settlements_action == "close":
            assert month is not None
            try:
                events = await container.bus.run("cli:settlements-close", c.CloseSettlementMonth(month, "cli"))
            except DomainError as err:
                return refused(err)
            made = [e.data for e in events if e.name == "StatementIssued"]
            for data in made:
                print(f"{data['number']} · technician {data['technician_id']} · {data['lines']} line(s) · {Money(data['total'], data['currency']).text()}")
            print(f"{month} closed: {len(made)} new statement(s)" if made else f"{month}: nothing new to settle (closed already, or nothing ready)")
            return 0
        if args.settlements_action == "payout":
            if args.share is not None and args.default_share:
                return _fail("--share or --default-share, not both")
            async with container.sessions() as session:
                own = await SettlementStore(Store(session)).payout_rule(args.technician_id)
            if own is None:
                return _fail(f"no technician {args.technician_id}")
            cycle, share = own
            if args.cycle is not None or args.share is not None or args.default_share:
                cycle = None if args.cycle == "default" else (args.cycle or cycle)
                share = None if args.default_share else (args.share if args.share is not None else share)
                try:
                    await container.bus.run("cli:payout", c.SetPayoutRule(args.technician_id, cycle, share))
                except DomainError as err:
                    return refused(err)
            shown_cycle = cycle or f"{container.policy.settlement_cycle} (default)"
            shown_share = f"{share}%" if share is not None else f"{container.policy.payout_share_percent}% (default)"
            print(f"technician {args.technician_id}: {shown_cycle}, {shown_share} of billed work")
            return 0
        async with container.sessions() as session:
            store = SettlementStore(Store(session))
            if args.settlements_action == "export" and args.id is not None:
                found = await store.statement(args.id)
                statements = [found] if found is not None else []
                if not statements:
                    return _fail(f"no statement {args.id}")
            else:
                statements = await store.statements(period=month, technician_id=getattr(args, "technician", None))
        if args.settlements_action == "list":
            for s in statements:
                print(f"#{s.id} {s.number} · {s.technician} (technician {s.technician_id}) · {s.period} · {s.cycle} · "
                      f"{s.line_count} line(s) · {Money(s.total_minor, s.currency).text()}")
            if not statements:
                print("no statements" + (f" for {month}" if month else "") + " yet")
            return 0
        if not statements:
            return _fail(f"no statements for {month}")
        text = settlement.statements_csv(statements, tz)
        if args.output is not None and str(args.output) == "-":
            sys.stdout.write(text)
            return 0
        output = args.output or Path(f"{statements[0].number}.csv" if args.id is not None else f"settlements-{month}.csv")
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output} ({len(statements)} statement(s), {sum(s.line_count for s in statements)} line(s))")
        return 0
    finally:
        await container.stop()
