"""A dialogue harness: drives the real engine with neutral events and reads replies from the outbox."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from services.messages import ChatRef, Inbound, InboundKind
from domain.clock import ManualClock
from fieldchat.container import Container, build
from fieldchat.settings import Settings
from services import backoffice
from storage.repository import Store

PLATFORM = "web"  # a pulled platform: the relay leaves its rows for us to read
_ids = itertools.count(1)

# Monday 2026-11-23 08:00 in Shanghai
START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)
SHOP = (31.2304, 121.4737)
SHANGHAI_OFFSET = timedelta(hours=8)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in November 2026, Shanghai time, as the UTC the clock runs on."""
    return datetime(2026, 11, day, hour, minute, tzinfo=timezone.utc) - SHANGHAI_OFFSET


@dataclass
class Msg:
    id: int
    key: str
    params: dict
    buttons: list[tuple[str, str]]  # (label key, data), flattened
    request: str | None
    payload: dict

    def button(self, prefix: str) -> str:
        for _label, data in self.buttons:
            if data.split(":", 1)[0] == prefix:
                return data
        raise AssertionError(f"no {prefix!r} button in {self.key}: {self.buttons}")

    def has_button(self, prefix: str) -> bool:
        return any(data.split(":", 1)[0] == prefix for _label, data in self.buttons)


def _msg(row: dict) -> Msg:
    payload = row["payload"]
    buttons = [(b["label"]["key"], b["data"]) for line in payload.get("buttons") or [] for b in line]
    # a message joined from several (services.messages.joined) is keyed by its last part: the one its buttons answer
    last = payload["text"]
    while last.get("key") == "card.join":
        last = last["params"]["second"]
    return Msg(row["id"], last["key"], last.get("params", {}), buttons, payload.get("request"), payload)


class Chat:
    def __init__(self, world: "World", bot: str, chat_id: str, user_id: str | None = None, chat_type: str = "private", language: str = "en", name: str = "Ann", platform: str = PLATFORM) -> None:
        self.world = world
        self.ref = ChatRef(platform, bot, chat_id)
        self.user_id = user_id or chat_id
        self.chat_type = chat_type
        self.language = language
        self.name = name
        self.seen = 0

    def event(self, kind: InboundKind, user_id: str | None = None, **fields) -> Inbound:
        return Inbound(
            chat=self.ref, update_id=f"u{next(_ids)}", kind=kind, user_id=user_id or self.user_id,
            chat_type=self.chat_type, language_code=self.language, user_name=self.name, **fields,
        )

    async def deliver(self, event: Inbound) -> list[Msg]:
        await self.world.container.engine.handle(event)
        return await self.inbox()

    async def inbox(self) -> list[Msg]:
        """Messages written for this chat since the last look."""
        async with self.world.container.sessions() as session:
            rows = await Store(session).outbox_for_chat(self.ref.platform, self.ref.bot, self.ref.chat_id, self.seen)
        if rows:
            self.seen = rows[-1]["id"]
        return [_msg(r) for r in rows]

    async def send(self, text: str, **kw) -> list[Msg]:
        if text.startswith("/"):
            head, _, payload = text[1:].partition(" ")
            return await self.deliver(self.event(InboundKind.COMMAND, text=head, payload=payload, **kw))
        return await self.deliver(self.event(InboundKind.TEXT, text=text, **kw))

    async def press(self, data: str, **kw) -> list[Msg]:
        return await self.deliver(self.event(InboundKind.BUTTON, text=data, **kw))

    async def location(self, lat: float, lon: float, live: bool = False) -> list[Msg]:
        return await self.deliver(self.event(InboundKind.LOCATION, latitude=lat, longitude=lon, live=live))

    async def photo(self, path: Path) -> list[Msg]:
        return await self.deliver(self.event(InboundKind.PHOTO, file_id=f"file-{path.name}", file_path=str(path)))

    async def sticker(self) -> list[Msg]:
        return await self.deliver(self.event(InboundKind.UNSUPPORTED))


def parts(text: dict) -> list[str]:
    """The catalog keys a text reads as: a message joined from several (services.messages.joined) reads as its parts."""
    if text.get("key") == "card.join":
        return parts(text["params"]["first"]) + parts(text["params"]["second"])
    return [text["key"]]


def keys(messages: list[Msg]) -> list[str]:
    """What was read, in order: the key of each message, or of each part of a joined one (``len`` counts messages)."""
    return [key for m in messages for key in parts(m.payload["text"])]


class World:
    """A fieldchat instance on a test database with a manual clock, and helpers to set up a shop."""

    def __init__(self, container: Container, clock: ManualClock, media: Path) -> None:
        self.container = container
        self.clock = clock
        self.media = media

    @classmethod
    async def create(cls, database_url: str, tmp_path: Path, **settings) -> "World":
        clock = ManualClock(START)
        config = Settings(_env_file=None, database_url=database_url, media_dir=tmp_path / "media", **settings)
        container = build(config, clock)
        await container.start(background=False)
        return cls(container, clock, tmp_path)

    async def close(self) -> None:
        await self.container.stop()

    def chat(self, bot: str, chat_id: str, **kw) -> Chat:
        return Chat(self, bot, chat_id, **kw)

    async def _tx(self, action):
        async with self.container.sessions() as session, session.begin():
            return await action(Store(session))

    async def order(self, ref: str = "SO-1", services=("delivery", "installation"), category: str = "sofa", lat: float = SHOP[0],
                    lon: float = SHOP[1], phone: str = "13912345678", *, product: str = "3-seat sofa", brand: str | None = None,
                    volume: int | None = None, priority: str = "normal", address: str = "Huangpu District, 100 Nanjing East Road",
                    region: str = "Huangpu", customer: str = "Zhang Wei", language: str = "en") -> backoffice.OrderResult:
        """An order as the API takes it; ``services`` are kinds or ``backoffice.ServiceRequest``s (crews, gaps)."""
        request = backoffice.OrderRequest(
            source="erp", external_ref=ref, customer_name=customer, customer_phone=phone, customer_language=language,
            address=address, lat=lat, lon=lon, region=region, product_name=product, product_category=category, brand=brand,
            services=tuple(k if isinstance(k, backoffice.ServiceRequest) else backoffice.ServiceRequest(k) for k in services),
            volume_liters=volume, priority=priority,
        )
        return await backoffice.place_order(self.container.bus, request)

    async def technician(self, name: str, roles: list[str], skills: list[str] = (), phone: str | None = None, *,
                         capacity: int | None = None, home: tuple[float, float] | None = None) -> tuple[int, str]:
        """A technician working every day 09:00–18:00 from ``home`` (None: the middle of the day's jobs); (id, invite token)."""
        async def create(store):
            tech, token = await backoffice.create_technician(
                store, name=name, phone=phone or f"1380000{next(_ids):04d}", roles=list(roles), skills=list(skills),
                regions=["Huangpu"], working_hours={"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "09:00", "end": "18:00"},
                home_lat=home[0] if home else None, home_lon=home[1] if home else None, language="en", now=self.clock.now(),
                policy=self.container.policy, vehicle_capacity=capacity,
            )
            return tech.id, token

        return await self._tx(create)

    async def dispatcher(self, name: str = "Dora") -> str:
        async def create(store):
            _d, token = await backoffice.create_dispatcher(store, name=name, now=self.clock.now(), policy=self.container.policy)
            return token

        return await self._tx(create)

    async def group(self, region: str | None = "Huangpu") -> str:
        async def create(store):
            _g, token = await backoffice.create_dispatch_group(store, name="Ops", region=region, language="en", now=self.clock.now(), policy=self.container.policy)
            return token

        return await self._tx(create)

    async def template(self, kind: str, category: str, steps: list[dict]) -> None:
        await self._tx(lambda s: backoffice.put_checklist_template(s, service_kind=kind, product_category=category, name=f"{kind} {category}", steps=steps))

    async def sweep(self) -> int:
        """Fire what is due at the clock's current time, as the background sweep would."""
        from scheduler.sweeps import fire_due_timers

        return await fire_due_timers(self.container.bus, self.container.sessions, self.clock, self.container.replanner)

    async def job(self, job_id: int) -> dict:
        async with self.container.sessions() as session:
            return await backoffice.job_details(Store(session), job_id)
