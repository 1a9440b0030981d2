"""A fake ERP on 127.0.0.1 that receives status callbacks: checks their signatures, fails on purpose, counts duplicates."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fieldchat.fakes.loopback import serve_on_loopback

from domain import callbacks as cb

__all__ = ["FakeErp", "Received"]


@dataclass
class Received:
    """One request as the fake received it, with what it answered."""

    at: float  # the fake's clock, epoch seconds
    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool
    event_id: str | None = None
    payload: Any = None


@dataclass
class _Outage:
    until: float  # on the fake's clock
    status: int  # the answer meanwhile; 0: the connection is dropped, as by a receiver that is down


@dataclass
class FakeErp:
    """The ERP's callback endpoint at ``url``. Only a request with a valid, recent signature is accepted (and answered
    200); a bad one gets 401 and is not kept. ``down_until`` and ``fail_next`` make it fail on purpose. Every accepted
    event id is counted, so a callback delivered twice shows in ``duplicates``.

    ``clock`` gives epoch seconds (the tests pass their manual clock's), for the signature's freshness and outages.
    """

    secret: str
    clock: Callable[[], float] = time.time
    tolerance: float = cb.TOLERANCE_SECONDS
    path: str = "/erp/fieldchat-callbacks"
    requests: list[Received] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # bodies of accepted callbacks, in arrival order
    seen: Counter[str] = field(default_factory=Counter)  # accepted deliveries per event id
    _outage: _Outage | None = None
    _failures: list[int] = field(default_factory=list)  # statuses for the next requests, one each
    _runner: web.AppRunner | None = None
    _port: int | None = None

    async def start(self) -> FakeErp:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(self.path, self._receive)
        self._runner, self._port = await serve_on_loopback(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeErp:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeErp is not started")
        return f"http://127.0.0.1:{self._port}{self.path}"

    # --- failing on purpose ---------------------------------------------------------------------------

    def down_for(self, seconds: float, status: int = 0) -> None:
        """Fail everything for ``seconds`` of the fake's clock: drop the connection (0), or answer ``status``."""
        self._outage = _Outage(self.clock() + seconds, status)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, one each (e.g. 500, 503, 404)."""
        self._failures.extend(statuses)

    # --- what arrived ---------------------------------------------------------------------------------

    @property
    def event_ids(self) -> list[str]:
        """Accepted event ids, in arrival order, each once per delivery."""
        return [body["id"] for body in self.accepted]

    @property
    def duplicates(self) -> dict[str, int]:
        """Event ids accepted more than once, with how many extra times."""
        return {event_id: count - 1 for event_id, count in self.seen.items() if count > 1}

    @property
    def rejected(self) -> list[Received]:
        return [r for r in self.requests if not r.verified]

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        now = self.clock()
        headers = dict(request.headers)
        verified = cb.verify(self.secret, request.headers.get(cb.TIMESTAMP_HEADER), request.headers.get(cb.SIGNATURE_HEADER), body, now,
                             self.tolerance)
        record = Received(now, headers, body, 0, verified)
        self.requests.append(record)
        if self._outage is not None and now < self._outage.until:
            if self._outage.status == 0:
                # a receiver that is down: the connection closes with no answer at all
                if request.transport is not None:
                    request.transport.close()
                raise web.HTTPServiceUnavailable()
            record.status = self._outage.status
            return web.json_response({"error": "down"}, status=record.status)
        if self._failures:
            record.status = self._failures.pop(0)
            return web.json_response({"error": "failing on purpose"}, status=record.status)
        if not verified:
            record.status = 401
            return web.json_response({"error": "bad signature or old timestamp"}, status=401)
        payload = json.loads(body)
        record.payload, record.event_id = payload, payload.get("id")
        if request.headers.get(cb.EVENT_ID_HEADER) != record.event_id:
            record.status = 400
            return web.json_response({"error": "the event id header does not match the body"}, status=400)
        self.seen[record.event_id] += 1
        self.accepted.append(payload)
        record.status = 200
        return web.json_response({"ok": True, "duplicate": self.seen[record.event_id] > 1})
