"""The group robots as a channel for dispatcher alerts: routes per region built from the alert_sinks table, with failover."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bots.base import Undeliverable
from bots.channels import ROBOT_CAPABILITIES, Capabilities
from bots.robots import LANGUAGES, FailoverSender, RobotSender, RobotSink
from services.evidence import photo_key, signed_photo_path
from services.robot_links import DEFAULT_TTL, with_action_links
from services.messages import Rendered
from services.notifications import ALL_REGIONS, route_for
from storage import tables as t
from storage.repository import Store


def routes_from(rows: list[dict]) -> dict[str, list[str]]:
    """Each region's own sinks first (by priority), then the sinks that take every region."""
    ordered = sorted(rows, key=lambda r: (r["priority"], r["id"]))
    shared = [r["name"] for r in ordered if r["region"] is None]
    routes = {ALL_REGIONS: shared} if shared else {}
    for region in {r["region"] for r in ordered if r["region"] is not None}:
        routes[route_for(region)] = [r["name"] for r in ordered if r["region"] == region] + shared
    return routes


class AlertSinks:
    """The robot channel: sends to a route of robots (the chat id names the route); the configuration is re-read from
    the database at most once a minute. Robots only post into a group, so they have no sign-in links to hand out; an
    alert's buttons become signed single-use action links to ``public_url`` (services/robot_links.py)."""

    capabilities: Capabilities = ROBOT_CAPABILITIES

    def __init__(
        self, sessions: async_sessionmaker, clock=None, refresh_seconds: float = 60.0, base_url: str | None = None,
        public_url: str | None = None, link_ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self._sessions = sessions
        self._public_url = public_url  # where signed photo and action links point (robots show no photos, call nothing back)
        self._link_ttl = link_ttl
        self._clock = clock
        self._refresh = refresh_seconds
        self._base_url = base_url
        self._loaded_at = float("-inf")
        self._rows: tuple = ()
        self._failover: FailoverSender | None = None
        self._http: httpx.AsyncClient | None = None  # one connection pool for every configuration

    async def _load(self) -> None:
        if time.monotonic() - self._loaded_at < self._refresh:
            return
        async with self._sessions() as session:
            rows = tuple(dict(r) for r in (await session.execute(select(t.alert_sinks))).mappings())
        self._loaded_at = time.monotonic()
        if rows == self._rows and self._failover is not None:
            return
        self._rows = rows
        sinks = {
            r["name"]: RobotSink(kind=r["kind"], name=r["name"], url=r["url"], secret=r["secret"], keyword=r["keyword"], base_url=self._base_url)
            for r in rows
        }
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        robots = RobotSender(sinks, http=self._http, clock=self._clock)
        routes = routes_from(list(rows))
        if self._failover is None:
            self._failover = FailoverSender(robots, routes, clock=self._clock)
        else:
            # keep the failover's memory of failing sinks, and each robot's recent sends: a reload must not
            # let a robot take another full minute's worth (DingTalk blocks for ten minutes when it is exceeded)
            robots.keep_windows_of(self._failover.robots)
            self._failover.robots, self._failover.routes = robots, {k: tuple(v) for k, v in routes.items()}

    async def routes(self) -> dict[str, tuple[str, ...]]:
        await self._load()
        return dict(self._failover.routes) if self._failover else {}

    async def reader_language(self, chat_id: str) -> str | None:
        """The language the groups behind a route read: the one all its robots share, else Chinese (None: no such route)."""
        await self._load()
        names = self._failover.routes.get(chat_id) if self._failover else None
        if not names:
            return None
        languages = {LANGUAGES[self._failover.robots.sinks[name].kind] for name in names}
        return languages.pop() if len(languages) == 1 else "zh"

    def deep_link(self, role: str, token: str) -> str | None:
        return None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def send(self, bot: str, chat_id: str, message: Rendered) -> str | None:
        await self._load()
        if self._failover is None or chat_id not in self._failover.routes:
            raise Undeliverable(f"no alert sinks for {chat_id}")
        if message.album:
            message = await self._with_photo_links(message)
        if message.buttons and self._public_url:
            # without a public URL nobody could open a link: the buttons stay labels, as robots showed them before
            message = await self._with_action_links(chat_id, message)
        return await self._failover.send(bot, chat_id, message)

    async def _with_action_links(self, chat_id: str, message: Rendered) -> Rendered:
        """Each button a dispatcher could press in a Telegram group becomes a single-use link to its confirmation page."""
        now = self._clock.now() if self._clock is not None else datetime.now(timezone.utc)
        language = await self.reader_language(chat_id) or "zh"
        async with self._sessions() as session, session.begin():
            return await with_action_links(Store(session), route=chat_id, message=message, language=language,
                                           base_url=self._public_url or "", now=now, ttl=self._link_ttl)

    async def _with_photo_links(self, message: Rendered) -> Rendered:
        """Robots show no photos: each becomes a signed link that works for a week without the API token."""
        now = self._clock.now() if self._clock is not None else datetime.now(timezone.utc)
        async with self._sessions() as session, session.begin():
            key = await photo_key(Store(session), now)
        base = (self._public_url or "").rstrip("/")
        links = "\n".join(f"📷 {base}{signed_photo_path(key, photo.id, now)}" for photo in message.album)
        return replace(message, text=f"{message.text}\n{links}", album=())
