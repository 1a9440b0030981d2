"""Serves a fake platform's aiohttp app on a free port of 127.0.0.1 (fakes never listen anywhere else)."""

from __future__ import annotations

import socket

from aiohttp import web


async def serve_on_loopback(app: web.Application) -> tuple[web.AppRunner, int]:
    """The app running on 127.0.0.1 at a port the system picked; ``runner.cleanup()`` stops it. No access log: request
    lines carry tokens and keys, which tests check never reach a log."""
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    return runner, port
