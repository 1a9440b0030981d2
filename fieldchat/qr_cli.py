"""`fieldchat qr`: a device's or a site's QR sticker as PNG, an A4 sheet of a site's or a customer's stickers (PDF, PNG or
a printable page), and renewing a code whose sticker was lost."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fieldchat.settings import Settings


def add_commands(commands: argparse._SubParsersAction) -> None:
    qr = commands.add_parser("qr", help="QR stickers: `qr --device ID -o unit.png`, `qr --site ID --sheet -o roof.pdf`, "
                                        "`qr --customer ID --sheet`, `qr --device ID --renew`")
    which = qr.add_mutually_exclusive_group(required=True)
    which.add_argument("--device", type=int, metavar="ID", help="one device")
    which.add_argument("--site", type=int, metavar="ID", help="a site or area (shared equipment); with --sheet, its devices too")
    which.add_argument("--customer", type=int, metavar="ID", help="with --sheet: every device of the customer")
    qr.add_argument("--sheet", action="store_true", help="an A4 sheet of stickers instead of one PNG")
    qr.add_argument("--format", choices=("pdf", "png", "html"), default=None, help="the sheet's format (default: from -o, else pdf)")
    qr.add_argument("--renew", action="store_true", help="revoke the code (its printed stickers stop working) and make a new one")
    qr.add_argument("-o", "--output", type=Path, help="the file to write (default: qr-<kind>-<id>.<format> here)")


def _fail(message: str) -> int:
    print(f"fieldchat qr: {message}", file=sys.stderr)
    return 1


async def run(settings: Settings, args: argparse.Namespace) -> int:
    # imported here, like access_cli's: every other command starts without the web layer and the image libraries
    from domain import commands as c
    from domain.errors import DomainError
    from fieldchat.container import build
    from services import qr
    from storage.devices import DEVICE, SITE, DeviceStore
    from storage.repository import Store
    from webhooks.devices_api import code_links, device_labels

    if args.customer is not None and not args.sheet:
        return _fail("--customer makes a sheet: add --sheet")
    if args.renew and (args.sheet or args.customer is not None):
        return _fail("--renew takes --device or --site alone")
    for value in (args.device, args.site, args.customer):
        if value is not None and not 1 <= value <= 2**31 - 1:
            return _fail("ids are whole numbers from 1 to 2147483647")
    base = settings.public_url or f"http://{settings.host}:{settings.port}/"
    container = build(settings)
    try:
        await container.migrate()
        await container.start(background=False)
        if args.renew:
            purpose, subject = (DEVICE, args.device) if args.device is not None else (SITE, args.site)
            try:
                await container.bus.run("cli:qr-renew", c.RenewDeviceCode(purpose, subject))
            except DomainError as err:
                return _fail(err.code)
            async with container.sessions() as session, session.begin():
                token = await DeviceStore(Store(session)).code(purpose, subject, container.clock.now())
            print(f"new code: {code_links(container, token, base).link}")
            print("print its sticker again: the old one no longer works")
            return 0
        async with container.sessions() as session, session.begin():
            store = Store(session)
            codes = DeviceStore(store)
            devices, sites = [], []
            if args.device is not None:
                device = await codes.device(args.device)
                if device is None or not device.active:
                    return _fail(f"no active device {args.device}")
                devices = [device]
            elif args.site is not None:
                site = await codes.site(args.site)
                if site is None:
                    return _fail(f"no site {args.site}")
                sites = [site]
                devices = await codes.at_site(site.id) if args.sheet else []
            else:
                devices = await codes.of_customer(args.customer, limit=qr.MAX_LABELS)
                if not devices:
                    return _fail(f"customer {args.customer} has no active devices")
            labels = await device_labels(container, store, devices, sites, base)
        kind, ident = ("device", args.device) if args.device is not None else ("site", args.site) if args.site is not None else ("customer", args.customer)
        if not args.sheet:
            out = args.output or Path(f"qr-{kind}-{ident}.png")
            out.write_bytes(qr.code_png(labels[0]))
        else:
            fmt = args.format or (args.output.suffix.lstrip(".").lower() if args.output and args.output.suffix.lower() in (".pdf", ".png", ".html") else "pdf")
            out = args.output or Path(f"qr-{kind}-{ident}.{fmt}")
            if fmt == "html":
                out.write_text(qr.sheet_html(labels, title=f"QR {kind} {ident}"), encoding="utf-8")
            elif fmt == "png":
                out.write_bytes(qr.sheet_png(labels))
            else:
                out.write_bytes(qr.sheet_pdf(labels))
        print(f"wrote {out} ({len(labels)} code{'s' if len(labels) != 1 else ''})")
        for label in labels:
            print(f"  {label.title}: {label.link}")
        return 0
    finally:
        await container.stop()
