"""What the HTTP layer needs of the running service; the composition root's container provides it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker

from bots.channels import Channels
from bots.web import WebUploads
from conversations.engine import Engine
from domain.clock import Clock
from domain.policy import ServicePolicy
from services.bus import MessageBus

if TYPE_CHECKING:  # the bots are built only when configured: aiogram is imported only then
    from bots.telegram import TelegramBot
    from bots.whatsapp import WhatsAppChannel


class Settings(Protocol):
    """The settings the web layer reads (fieldchat.settings.Settings has them all)."""

    public_url: str | None
    web_console: bool
    redis_url: str | None
    api_token: SecretStr | None
    first_time_fix_days: int

    def bot_tokens(self) -> dict[str, str]: ...

    def webhook_secret(self, token: str) -> str: ...


class Service(Protocol):
    settings: Settings
    clock: Clock
    policy: ServicePolicy
    sessions: async_sessionmaker
    bus: MessageBus
    engine: Engine
    telegram: dict[str, TelegramBot]
    web_uploads: WebUploads
    channels: Channels
    whatsapp: WhatsAppChannel | None

    async def start(self, *, background: bool = True) -> None: ...

    async def stop(self) -> None: ...
