"""`fieldchat user add|list|disable` and `fieldchat token add|list|revoke`: accounts and integrations' API tokens from a
shell (the first admin comes from here); passwords are read from a prompt or stdin, never from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from typing import TextIO

from domain.access import SCOPES, Role
from fieldchat.settings import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    user = commands.add_parser("user", help="accounts: `user add NAME --role admin`, `user list`, `user disable NAME`")
    users = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = users.add_parser("add", help="add an account; the password is asked for (or read from stdin when piped)")
    add.add_argument("username", help="2-100 lower-case letters, digits and . _ @ -")
    add.add_argument("--name", default="", help="the name pages show (default: the username)")
    add.add_argument("--role", choices=[r.value for r in Role], required=True)
    add.add_argument("--region", action="append", metavar="REGION", help="act only in this region (repeatable; default: every region)")
    add.add_argument("--telegram-id", help="the person's numeric Telegram user id, to sign in with Telegram")
    add.add_argument("--dispatcher-id", type=int, help="their dispatcher identity in group chats (the region rule applies there too)")
    add.add_argument("--language", choices=("zh", "en"), default="zh")
    add.add_argument("--no-password", action="store_true", help="Telegram sign-in only")
    users.add_parser("list", help="every account, disabled ones too")
    disable = users.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("username")

    token = commands.add_parser("token", help="integrations' API tokens: `token add NAME --scope orders:write`, `token list`, `token revoke ID`")
    tokens = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    tadd = tokens.add_parser("add", help="a new token for one integration; printed once, only its hash is kept")
    tadd.add_argument("name", help="the integration, e.g. erp")
    tadd.add_argument("--scope", action="append", required=True, choices=list(SCOPES), help="repeatable")
    tadd.add_argument("--region", action="append", metavar="REGION", help="only records of this region (repeatable; default: every region)")
    tokens.add_parser("list", help="every token by its prefix, revoked ones too")
    revoke = tokens.add_parser("revoke", help="revoke a token: refused from the next request on")
    revoke.add_argument("id", type=int)


def read_password(stdin: TextIO) -> str:
    """From a prompt (asked twice) on a terminal; else the first line of stdin (a script, a secret store)."""
    if stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return stdin.readline().rstrip("\r\n")


MESSAGES = {
    "username_taken": "an account with this username exists already",
    "username_invalid": "a username is 2-100 lower-case letters, digits and . _ @ -",
    "password_length": "a password has 10 to 200 characters",
    "chat_user_taken": "another account has this Telegram id",
    "chat_user_invalid": "a Telegram id is digits only",
    "no_way_to_sign_in": "give a password, a --telegram-id or a --dispatcher-id",
    "account_not_found": "no account has this username",
    "token_not_found": "no live token has this id",
    "token_name_invalid": "a token's name has 1 to 100 characters",
    "scope_invalid": "unknown scope",
    "region_invalid": "a region has at most 100 characters",
    "role_invalid": "unknown role",
}


async def run(settings: Settings, args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    from fieldchat.container import build
    from services import accounts
    from storage.accounts import AccountStore
    from storage.repository import Store

    password = None
    if args.command == "user" and args.action == "add" and not args.no_password:
        try:
            password = read_password(stdin or sys.stdin)
        except (ValueError, EOFError, KeyboardInterrupt) as exc:
            print(f"fieldchat: {exc or 'no password given'}", file=sys.stderr)
            return 2
    container = build(settings)
    try:
        await container.migrate()
        bus = container.bus
        origin = f"cli:{args.command}:{args.action}:{uuid.uuid4().hex}"
        if args.command == "user" and args.action == "add":
            async def add(ctx):
                return await accounts.add_account(
                    ctx, username=args.username, display_name=args.name, role=args.role, password=password, regions=args.region,
                    chat_user_id=args.telegram_id, dispatcher_id=args.dispatcher_id, language=args.language,
                ), []

            account_id = await bus.call(origin, add)
            print(f"fieldchat: account {args.username.strip().lower()} added (id {account_id}, {args.role}, "
                  f"{', '.join(args.region) if args.region else 'every region'}); sign in at /signin")
        elif args.command == "user" and args.action == "list":
            async with container.sessions() as session:
                rows = await AccountStore(Store(session)).accounts()
            print(f"{'id':>4}  {'username':<20} {'role':<10} {'regions':<24} {'telegram':<12} status")
            for row in rows:
                regions = ",".join(row["regions"]) if row["regions"] else "all"
                state = f"disabled {row['disabled_at']:%Y-%m-%d}" if row["disabled_at"] else "active"
                print(f"{row['id']:>4}  {row['username']:<20} {row['role']:<10} {regions:<24} {row['chat_user_id'] or '-':<12} {state}")
        elif args.command == "user" and args.action == "disable":
            async def disable(ctx):
                return await accounts.disable_account(ctx, args.username), []

            ended = await bus.call(origin, disable)
            print(f"fieldchat: account {args.username} disabled; {ended} session(s) ended")
        elif args.command == "token" and args.action == "add":
            async def create(ctx):
                return await accounts.create_api_token(ctx, name=args.name, scopes=args.scope, regions=args.region, created_by="cli"), []

            token_id, token = await bus.call(origin, create)
            print(f"fieldchat: token {token_id} for {args.name} ({', '.join(sorted(set(args.scope)))}); shown this once:")
            print(token)
        elif args.command == "token" and args.action == "list":
            async with container.sessions() as session:
                rows = await AccountStore(Store(session)).api_tokens()
            print(f"{'id':>4}  {'name':<20} {'prefix':<14} {'scopes':<32} {'regions':<20} status")
            for row in rows:
                regions = ",".join(row["regions"]) if row["regions"] else "all"
                state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "live"
                print(f"{row['id']:>4}  {row['name']:<20} {row['prefix'] + '…':<14} {','.join(row['scopes']):<32} {regions:<20} {state}")
        else:
            async def revoke(ctx):
                await accounts.revoke_api_token(ctx, args.id)
                return None, []

            await bus.call(origin, revoke)
            print(f"fieldchat: token {args.id} revoked")
    except accounts.AccessRefused as refused:
        print(f"fieldchat: {MESSAGES.get(refused.code, refused.code)}", file=sys.stderr)
        return 1
    finally:
        await container.stop()
    return 0
