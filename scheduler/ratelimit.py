"""Send rates per chat and per bot, shared by every relay process through Redis (in-process without it)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from bots.channels import PlatformLimits, send_rates

log = logging.getLogger(__name__)

# What each channel's capability record publishes (T8, W6). Robots hold themselves back in bots/robots.py; a pulled
# channel is never sent to.
DEFAULT_LIMITS: dict[str, PlatformLimits] = send_rates()


def storage_uri(redis_url: str) -> str:
    """`limits` names its asyncio Redis storage async+redis://; accept the plain redis:// URL too."""
    return redis_url if redis_url.startswith("async+") else f"async+{redis_url}"


class SendLimiter:
    """Moving windows (exact: never more than N in any T seconds) for each chat and each bot.

    With a Redis URL every relay process counts in the same windows; without one, only this process does.
    """

    def __init__(
        self,
        limits: dict[str, PlatformLimits] | None = None,
        *,
        redis_url: str | None = None,
        prefix: str = "fieldchat",
    ) -> None:
        if redis_url:
            storage = RedisStorage(storage_uri(redis_url), implementation="redispy", key_prefix=prefix)
        else:
            # the `limits` library's in-process windows (not a conversation store): one process, no
            # Redis; losing them on restart only forgets how many messages went out in the last seconds
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)
        self._items: dict[str, tuple[RateLimitItem | None, ...]] = {
            platform: tuple(parse(rate) if rate else None for rate in (rule.private, rule.group, rule.bot))
            for platform, rule in (DEFAULT_LIMITS if limits is None else limits).items()
        }
        # one task per bot at a time polls the shared bot window; the others queue here in order
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def acquire(
        self,
        platform: str,
        bot: str,
        chat_id: str,
        max_wait: float,
        chat_wait: float | None = None,
        ready: Callable[[], Awaitable[None]] | None = None,
        *,
        group: bool = False,
    ) -> float:
        """Take one send for this chat and its bot: 0 when taken, else the seconds to come back after (nothing taken).

        ``group``: the chat is a group (its channel's capability record tells), so the group rate applies.

        Waits here up to ``max_wait`` seconds, and up to ``chat_wait`` (default ``max_wait``) for the chat's own
        window: a caller that would rather queue than wait for a busy chat passes 0. Both windows are hit right before returning 0, so the caller
        must send at once: the time between the hit and the platform seeing the request is all jitter.

        ``ready`` is awaited once, when both windows have room, right before they are hit: the place for work that
        must precede the send (recording that it starts) and must not come between the hit and the send. It runs
        while this chat holds the bot's turn, so it should be short. If it raises, nothing is taken.
        """
        private, group_rate, whole = self._items.get(platform, (None, None, None))
        chat = group_rate if group else private
        deadline = time.monotonic() + max_wait
        chat_deadline = time.monotonic() + (max_wait if chat_wait is None else min(chat_wait, max_wait))
        while True:
            # only one relay task sends to a chat at a time (the outbox claims), so testing first is safe
            wait = await self._wait(chat, platform, bot, chat_id) if chat else 0.0
            if wait:
                if time.monotonic() + wait > chat_deadline:
                    return wait
                await asyncio.sleep(wait)
                continue
            lock = self._locks.setdefault((platform, bot), asyncio.Lock())
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await lock.acquire()
            except TimeoutError:
                return 1.0  # the bot is busy: this chat queues again a second later
            try:
                while whole and (wait := await self._wait(whole, platform, bot)):
                    if time.monotonic() + wait > deadline:
                        return wait
                    await asyncio.sleep(wait)
                if ready is not None:
                    await ready()
                    ready = None
                if whole and not await self._limiter.hit(whole, platform, bot):
                    await asyncio.sleep(0.001)  # another process won the bot's slot between the look and the hit
                    continue
                if chat is None or await self._limiter.hit(chat, platform, bot, chat_id):
                    return 0.0
            finally:
                lock.release()
            # another process took the chat's slot after all: the bot slot is spent, which only slows us

    async def _wait(self, item: RateLimitItem, *key: str) -> float:
        stats = await self._limiter.get_window_stats(item, *key)
        if stats.remaining > 0:
            return 0.0
        return max(0.001, stats.reset_time - time.time())

    async def clear(self) -> None:
        """Forget every window (tests and benchmarks start from a clean slate)."""
        await self._limiter.storage.reset()
