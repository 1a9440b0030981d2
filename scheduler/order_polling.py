"""Polling order sources: a timer row per source fetches its endpoint from the persisted cursor, places the page's
orders, and moves the cursor only once they are stored (a crash re-fetches the page; its orders come back unchanged)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from domain.clock import Clock
from domain.errors import DomainError
from domain.order_mapping import MappingError, apply, cursor_of, orders_of
from services import intake
from services.bus import MessageBus
from services.context import HandlerContext
from services.order_import import InvalidOrder, Validate
from storage.orders import OrderStore
from storage.repository import Store
from storage.schedule import ScheduleStore

log = logging.getLogger(__name__)

POLL_KIND = "order_poll"
MAX_PAGES = 10  # per tick: a source with a long backlog catches up over a few ticks, never holding the sweep for long
MAX_PAGE_BYTES = 5 * 1024 * 1024
FETCH_TIMEOUT = 10.0
MAX_ERROR = 1000  # characters of the last error kept on the source


class FetchFailed(Exception):
    pass


async def schedule_poll(ctx: HandlerContext, source: str, due: datetime) -> None:
    """The source's next poll, as a timer row; setting the same one twice is a no-op."""
    await ScheduleStore(ctx.store).set_timer(key=f"{POLL_KIND}:{source}:{int(due.timestamp())}", kind=POLL_KIND, due_at=due,
                                             now=ctx.now, payload={"source": source})


class OrderPoller:
    def __init__(self, bus: MessageBus, sessions: async_sessionmaker, clock: Clock, validate: Validate,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.bus, self.sessions, self.clock, self.validate = bus, sessions, clock, validate
        self.transport = transport  # tests hand in their own; None: the network

    async def run_due(self) -> int:
        """Poll every source whose timer is due; returns how many were polled."""
        async with self.sessions() as session:
            due = await ScheduleStore(Store(session)).due_timers(self.clock.now(), (POLL_KIND,))
        polled = 0
        for timer in due:
            try:
                polled += await self.poll(timer["id"], timer["payload"]["source"])
            except Exception:  # one source's bug must not stop the others
                log.exception("order polling of %s failed", timer["payload"].get("source"))
        return polled

    async def poll(self, timer_id: int, name: str) -> int:
        async def claim(ctx: HandlerContext) -> tuple[dict[str, Any] | None, list]:
            if await ScheduleStore(ctx.store).claim_timer(timer_id, ctx.now) is None:
                return None, []  # another worker has it
            source = await OrderStore(ctx.store).source(name)
            if source is None or not source["poll_url"] or not source["poll_interval_seconds"]:
                return None, []  # polling was switched off: no next timer
            # the next poll is set before this one fetches: a crash mid-fetch delays the source, never stops it
            await schedule_poll(ctx, name, ctx.now + timedelta(seconds=source["poll_interval_seconds"]))
            return source, []

        source = await self.bus.call(f"poll:{name}:claim", claim)
        if source is None:
            return 0
        cursor: str | None = source["poll_cursor"]
        spec = source["mapping"]
        errors: list[str] = []
        for _page in range(MAX_PAGES):
            try:
                page = await self.fetch(source, cursor)
                found = orders_of(spec, page)
                next_cursor = cursor_of(spec, page)
            except (FetchFailed, MappingError) as exc:
                errors.append(str(exc))
                await self._record(name, cursor, errors)  # the cursor stays: the same page is fetched next time
                return 1
            contents = []
            for number, raw in enumerate(found, start=1):
                try:
                    contents.append(self.validate({**apply(spec, raw), "source": name}))
                except (MappingError, InvalidOrder) as exc:
                    # a bad order is reported on the source and skipped: holding the cursor would stop every later order
                    errors.append(f"order {number} of the page: {exc}")
            outcomes = await intake.place_many(self.bus, f"poll:{name}", contents) if contents else []
            errors += [f"{content['external_ref']}: {o.error}" for content, o in zip(contents, outcomes) if o.error]
            moved = next_cursor is not None and next_cursor != cursor
            if moved:
                cursor = next_cursor
            await self._record(name, cursor, errors)  # after the page's orders are stored, in their own transaction
            if not moved or not found:
                break
        return 1

    async def fetch(self, source: dict[str, Any], cursor: str | None) -> Any:
        params = {source["poll_cursor_param"] or "cursor": cursor} if cursor else {}
        headers = {"Accept": "application/json"}
        if source["poll_auth_header"]:
            headers["Authorization"] = source["poll_auth_header"]
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=FETCH_TIMEOUT, follow_redirects=False) as client:
                response = await client.get(source["poll_url"], params=params, headers=headers)
        except httpx.HTTPError as exc:
            # the exception's text may carry the URL with its query, never the Authorization header
            raise FetchFailed(f"fetch failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise FetchFailed(f"fetch answered HTTP {response.status_code}")
        if len(response.content) > MAX_PAGE_BYTES:
            raise FetchFailed(f"the page is larger than {MAX_PAGE_BYTES} bytes")
        try:
            return response.json()
        except ValueError as exc:
            raise FetchFailed("the page is not JSON") from exc

    async def _record(self, name: str, cursor: str | None, errors: list[str]) -> None:
        async def work(ctx: HandlerContext) -> tuple[None, list]:
            await OrderStore(ctx.store).update_source(name, poll_cursor=cursor, poll_last_at=ctx.now,
                                                      poll_last_error="; ".join(errors)[:MAX_ERROR] if errors else None)
            return None, []

        try:
            await self.bus.call(f"poll:{name}:cursor", work)
        except DomainError as err:  # pragma: no cover - nothing in it raises one; logged should it ever
            log.warning("order polling of %s: %s", name, err.code)

