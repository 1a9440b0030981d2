"""Wiring: builds every part from the settings once, and starts and stops the background work."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bots.alerting import AlertSinks
from bots.callbacks import CallbackSender
from bots.channels import CAPABILITIES, ROBOT, TELEGRAM, WEB, WHATSAPP, Channel, Channels, contact_platforms, phone_platforms
from bots.photos import PhotoLimits
from bots.telegram_common import TelegramChannel
from bots.web import WebConsole, WebUploads
from bots.whatsapp import Number, WhatsAppChannel
from bots.whatsapp_rules import parse_templates
from conversations.engine import Engine
from conversations.flows import flow_for
from domain.callbacks import PLATFORM as CALLBACK_PLATFORM
from domain.clock import Clock, SystemClock
from domain.commands import ParkCallback
from domain.policy import ServicePolicy
from fieldchat.settings import Settings
from scheduler.ratelimit import SendLimiter
from scheduler.relay import OutboxRelay
from scheduler.wakeups import OutboxNotifier, can_wake, listen
from services import registry
from services.bus import MessageBus
from services.handlers import chat_unreachable
from services.replanning import Replanner
from services.undelivered import message_not_delivered
from scheduler.sweeps import fire_due_timers, forget_old_updates, run_every
from scheduler.order_polling import OrderPoller
from scheduler.daily_report import DailyReporter
from webhooks.order_routes import validate_order
from storage.db import create_engine, session_factory
from storage.migrate import ensure_current

if TYPE_CHECKING:
    from bots.telegram import TelegramBot as AiogramBot
    from bots.telegram_ptb import TelegramBot as PtbBot

    TelegramBot = AiogramBot | PtbBot

log = logging.getLogger(__name__)
# the inbox sweep looks only at updates stored this long ago: fresher ones are being handled by the process that
# stored them (a sweep taking them too would only queue behind that process's row locks)
SWEEP_SETTLED = timedelta(seconds=10)


@dataclass
class Container:
    settings: Settings
    clock: Clock
    policy: ServicePolicy
    db: AsyncEngine
    sessions: async_sessionmaker
    bus: MessageBus
    engine: Engine
    relay: OutboxRelay
    telegram: dict[str, TelegramBot]
    web_uploads: WebUploads
    channels: Channels
    replanner: Replanner | None = None
    whatsapp: WhatsAppChannel | None = None  # its webhook (webhooks/whatsapp_routes.py) is served only when set
    order_poller: OrderPoller | None = None  # fetches order sources that poll (scheduler/order_polling.py)
    daily_reporter: DailyReporter | None = None  # the managers' daily report (scheduler/daily_report.py)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    async def migrate(self) -> None:
        await ensure_current(self.db, self.settings.database_url)

    async def start(self, *, background: bool = True) -> None:
        """Migrate, recover what a crash left behind, and start polling, the relay and the inbox sweep."""
        await self.migrate()
        for role, bot in self.telegram.items():
            try:
                username = await bot.identify()
                log.info("telegram %s bot: @%s (%s mode)", role, username, self.settings.telegram_mode)
            except Exception as exc:
                log.error("telegram %s bot: getMe failed (%s); links will not name it", role, type(exc).__name__)
        if not background:
            return
        self._stop.clear()
        # updates stored but not processed (a crash, another process) and timers that fell due
        self._spawn(run_every(5.0, self._stop, lambda: self.engine.process_pending(settled=SWEEP_SETTLED), "inbox sweep"), "inbox sweep")
        # every loop below is safe in several processes at once (row claims); the switches only save their CPU
        # where other processes do the work: `fieldchat relay` processes, one process owning timers and solving
        if self.settings.run_relay:
            self._spawn(relay_loop(self.relay, self.db, self._stop, self.settings.relay_interval_seconds), "relay")
        if self.settings.run_timers:
            if self.replanner is not None:  # only where the sweeps run: a one-off command or a test never plans by surprise
                await self.replanner.ensure_nightly()
            if self.daily_reporter is not None:
                await self.daily_reporter.ensure()
            self._spawn(run_every(15.0, self._stop, self.sweep_timers, "timer sweep"), "timer sweep")
            self._spawn(run_every(3600.0, self._stop, lambda: forget_old_updates(self.sessions, self.clock), "inbox clean-up"), "inbox clean-up")
            if self.whatsapp is not None:
                whatsapp = self.whatsapp
                self._spawn(run_every(3600.0, self._stop, whatsapp.forget_old_statuses, "whatsapp clean-up"), "whatsapp clean-up")
        for role, bot in self.telegram.items():
            if self.settings.telegram_mode == "webhook":
                url = f"{self.settings.public_url.rstrip('/')}/telegram/{role}/webhook"
                await bot.set_webhook(url, self.settings.webhook_secret(self.settings.bot_tokens()[role]))
            else:
                await bot.delete_webhook()
                self._spawn(bot.poll(self._stop), f"telegram {role} polling")

    async def sweep_timers(self) -> int:
        """Due timers, then due order-source polls (they fetch over HTTP, outside any transaction)."""
        fired = await fire_due_timers(self.bus, self.sessions, self.clock, self.replanner)
        fired += await self.daily_reporter.run_due() if self.daily_reporter is not None else 0
        return fired + (await self.order_poller.run_due() if self.order_poller is not None else 0)

    def _spawn(self, coroutine, name: str) -> None:
        """A background loop, named (task dumps and tests tell them apart)."""
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    @property
    def running(self) -> list[str]:
        """The names of the background loops started and not finished."""
        return [task.get_name() for task in self._tasks if not task.done()]

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        self._tasks.clear()
        if self.replanner is not None:
            self.replanner.close()
        for bot in self.telegram.values():
            await bot.close()
        for sender in self.relay.senders.values():
            close = getattr(sender, "aclose", None)
            if close is not None:
                await close()
        await self.db.dispose()


async def relay_loop(relay: OutboxRelay, db: AsyncEngine, stop: asyncio.Event, interval: float, listening: asyncio.Event | None = None) -> None:
    """The relay, woken at once by other processes' new rows where the database can tell (see scheduler/wakeups.py);
    ``listening`` is set once it listens."""
    if can_wake(db):
        await asyncio.gather(relay.run(stop, interval), listen(db, relay.wake, stop, ready=listening))
    else:
        await relay.run(stop, interval)


def build(settings: Settings, clock: Clock | None = None) -> Container:
    if settings.telegram_mode == "webhook" and not settings.public_url:
        raise ValueError("FIELDCHAT_TELEGRAM_MODE=webhook needs FIELDCHAT_PUBLIC_URL")
    clock = clock or SystemClock()
    policy = replace(settings.policy(), phone_chat_platforms=phone_platforms(), contact_platforms=contact_platforms())
    db = create_engine(settings.database_url)
    sessions = session_factory(db)
    # the bots need the engine and the relay needs the bots: share one dict, filled last
    telegram: dict[str, TelegramBot] = {}
    photo_limits = PhotoLimits(settings.photo_max_bytes(), settings.photo_max_pixels())
    web_uploads = WebUploads(settings.media_dir, photo_limits)
    console = WebConsole(web_uploads, enabled=settings.web_console, public_url=settings.public_url)
    robots = AlertSinks(sessions, clock, public_url=settings.public_url, link_ttl=timedelta(hours=settings.robot_link_hours))
    tokens = settings.bot_tokens()
    if tokens:
        # a Telegram library takes time to import (aiogram seconds: pydantic builds its hundreds of models): only a shop
        # with bots pays for it, and only for the driver it chose
        if settings.telegram_driver == "aiogram":
            from bots.telegram import TelegramBot as Driver
        else:
            from bots.telegram_ptb import TelegramBot as Driver

        telegram_channel = TelegramChannel(telegram)
        # in the order their links are preferred: a Telegram link once the bots are known, else the console's
        channels = Channels({TELEGRAM: telegram_channel, WEB: console, ROBOT: robots})
        media = {TELEGRAM: telegram_channel, WEB: console}
    else:
        channels = Channels({WEB: console, ROBOT: robots})
        media = {WEB: console}
    whatsapp = _whatsapp(settings, sessions, clock, photo_limits)
    if whatsapp is not None:
        # its links after Telegram's (a shop with both hands out the bot's), before the console's
        order: dict[str, Channel] = {name: channels[name] for name in channels if name == TELEGRAM}
        order[WHATSAPP] = whatsapp
        order.update({name: channels[name] for name in channels if name != TELEGRAM})
        channels = Channels(order)
        media[WHATSAPP] = whatsapp
    # status callbacks to order sources go through the same outbox, one "chat" per job (services/callbacks.py)
    callbacks = CallbackSender(
        sessions, clock, public_url=settings.public_url, max_attempts=settings.callback_max_attempts, timeout=settings.callback_timeout_seconds,
    )
    relay = OutboxRelay(
        sessions=sessions, senders={**channels.senders(), CALLBACK_PLATFORM: callbacks}, clock=clock, tz=policy.tz, limiter=SendLimiter(redis_url=settings.redis_url),
    )
    # every write goes through the bus: chat updates (the engine), the API, timers, replans, the CLI
    # a process without a relay wakes the relays of the others (PostgreSQL), so its replies need not wait for their next look
    on_outbox = OutboxNotifier(db) if not settings.run_relay and can_wake(db) else relay.wake
    bus = MessageBus(sessions=sessions, clock=clock, policy=policy, handlers=registry.HANDLERS, reactions=registry.reactions(), on_outbox=on_outbox)
    # a step offering a list (the customer's days) pages it to the buttons the chat's channel shows
    buttons = {name: capabilities.max_buttons for name, capabilities in CAPABILITIES.items()}
    engine = Engine(bus=bus, flows=flow_for, media=media, buttons=buttons, phone_platforms=phone_platforms())
    for role, token in tokens.items():
        telegram[role] = Driver(role, token, settings.telegram_api_url, engine, settings.media_dir, photo_limits=photo_limits)

    async def tell_dispatchers(platform: str, bot: str, chat_id: str, reason: str) -> None:
        origin = f"unreachable:{platform}:{bot}:{chat_id}:{uuid.uuid4().hex}"
        await bus.run(origin, lambda ctx: chat_unreachable(ctx, platform, bot, chat_id, reason))

    relay.on_undeliverable = tell_dispatchers

    async def not_delivered(platform: str, bot: str, chat_id: str, purpose: str, why: str, reason: str) -> None:
        origin = f"not-delivered:{platform}:{bot}:{chat_id}:{uuid.uuid4().hex}"
        await bus.run(origin, lambda ctx: message_not_delivered(ctx, platform, bot, chat_id, purpose=purpose, why=why, reason=reason))

    if whatsapp is not None:
        whatsapp.engine = engine
        whatsapp.on_not_delivered = not_delivered

    async def callback_parked(callback_id: int, reason: str) -> None:
        await bus.run(f"callback-parked:{callback_id}:{uuid.uuid4().hex}", ParkCallback(callback_id, reason))

    relay.on_parked = callback_parked
    replanner = Replanner(
        bus, sessions, clock, policy, replan_seconds=settings.replan_seconds, plan_seconds=settings.plan_seconds,
        nightly_at=settings.nightly_plan_time(),
    )
    order_poller = OrderPoller(bus, sessions, clock, validate_order)
    daily_reporter = DailyReporter(bus, sessions, clock, policy, report_at=settings.daily_report_time(), media_dir=settings.media_dir,
                                   first_time_fix_days=settings.first_time_fix_days, public_url=settings.public_url)
    return Container(settings, clock, policy, db, sessions, bus, engine, relay, telegram, web_uploads, channels, replanner, whatsapp=whatsapp,
                     order_poller=order_poller, daily_reporter=daily_reporter)


def _whatsapp(settings: Settings, sessions: async_sessionmaker, clock: Clock, photo_limits: PhotoLimits) -> WhatsAppChannel | None:
    """The WhatsApp channel when its settings are complete (the settings refuse half of them)."""
    if not settings.whatsapp_on() or settings.whatsapp_token is None or settings.whatsapp_phone_number_id is None:
        return None
    numbers = [Number("customer", settings.whatsapp_phone_number_id, settings.whatsapp_number)]
    if settings.whatsapp_staff_phone_number_id:
        numbers.append(Number("staff", settings.whatsapp_staff_phone_number_id, settings.whatsapp_staff_number))
    return WhatsAppChannel(
        token=settings.whatsapp_token.get_secret_value(), numbers=numbers, graph_url=settings.whatsapp_graph_url,
        app_secret=settings.whatsapp_app_secret.get_secret_value() if settings.whatsapp_app_secret else "",
        verify_token=settings.whatsapp_verify_token.get_secret_value() if settings.whatsapp_verify_token else "",
        graph_version=settings.whatsapp_graph_version, templates=parse_templates(settings.whatsapp_templates),
        sessions=sessions, clock=clock, engine=None, media_dir=settings.media_dir, photo_limits=photo_limits,
    )
