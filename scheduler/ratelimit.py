"""Send rates per chat and per bot, shared by every relay process through Redis (in-process without it)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from bots.channels import PlatformLimits, send_rates

log = logging.getLogger(__name__)

# What each channel's capability record publishes (T8, W6). Robots hold themselves back in bots/robots.py; a pulled
# channel is never sent to.
DEFAULT_LIMITS: dict[str, PlatformLimits] = send_rates()


# A send whose outcome never came back (its task died) frees its place after this long: longer than aiogram's 60 s
# request timeout, so a send still under way always keeps it.
LOST_AFTER = 120.0
# How soon to look again when a window is full of sends still under way (their answers free places)
POLL = 0.01


class LocalWindows:
    """This process's moving windows, each counting a send from the moment it is taken until ``seconds`` after the
    platform answered it.

    The platform counts arrivals, and an arrival falls between the two: however late a CPU-starved process gets its
    requests out, sends counted this way never put more than N in any T seconds at the other end. Counting from the
    take alone (as `limits` does) lets a delayed batch arrive together with the next window's. Plain lists and the
    monotonic clock: no expiry task, no thread hop, a few microseconds a check.
    """

    def __init__(self) -> None:
        self._out: dict[tuple[str, ...], list[float]] = {}  # when each send still under way was taken
        self._back: dict[tuple[str, ...], list[float]] = {}  # when each answered send frees its place
        self._swept = time.monotonic()

    def wait(self, amount: int, key: tuple[str, ...], now: float) -> float:
        """0 when the window has a free place now, else the seconds until one may free (nothing taken)."""
        out = self._out.get(key)
        back = self._back.get(key)
        if back:
            back[:] = [at for at in back if at > now]
        if out and out[0] <= now - LOST_AFTER:
            out[:] = [at for at in out if at > now - LOST_AFTER]
        busy = len(out or ()) + len(back or ())
        if busy < amount:
            return 0.0
        # the oldest places free first; a place held by a send still under way frees only after its answer
        early = sorted(back or ())[: busy - amount + 1]
        return early[-1] - now if len(early) == busy - amount + 1 else POLL

    def take(self, key: tuple[str, ...], now: float) -> None:
        self._out.setdefault(key, []).append(now)

    def answered(self, key: tuple[str, ...], seconds: float, now: float) -> None:
        """One send of ``key`` is back: its place frees ``seconds`` from now. Which of them does not matter, all were taken before now."""
        out = self._out.get(key)
        if out:
            out.pop(0)
            self._back.setdefault(key, []).append(now + seconds)
        if now - self._swept > 60:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Forget the chats that sent nothing lately, so the windows of a long-running relay do not grow without end."""
        self._swept = now
        for key in [key for key, back in self._back.items() if not back or max(back) <= now]:
            del self._back[key]
        for key in [key for key, out in self._out.items() if not out]:
            del self._out[key]

    def clear(self) -> None:
        self._out.clear()
        self._back.clear()


def storage_uri(redis_url: str) -> str:
    """`limits` names its asyncio Redis storage async+redis://; accept the plain redis:// URL too."""
    return redis_url if redis_url.startswith("async+") else f"async+{redis_url}"


class SendLimiter:
    """Moving windows (exact: never more than N in any T seconds) for each chat and each bot.

    This process's own sends are counted in ``LocalWindows`` until their answers are T seconds old, so a starved
    process cannot bunch them at the platform. With a Redis URL every relay process also counts in the same
    `limits` windows (from the take), so several relays share each rate.
    """

    def __init__(
        self,
        limits: dict[str, PlatformLimits] | None = None,
        *,
        redis_url: str | None = None,
        prefix: str = "fieldchat",
    ) -> None:
        # losing the windows on restart only forgets how many messages went out in the last seconds
        self._local = LocalWindows()
        self._limiter = (
            MovingWindowRateLimiter(RedisStorage(storage_uri(redis_url), implementation="redispy", key_prefix=prefix))
            if redis_url else None
        )
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
        must send at once, and call ``sent`` with the answer (or the failure): until then the send holds its places.

        ``ready`` is awaited once, when both windows have room, right before they are hit: the place for work that
        must precede the send (recording that it starts) and must not come between the hit and the send. It runs
        while this chat holds the bot's turn, so it should be short. If it raises, nothing is taken.
        """
        private, group_rate, whole = self._items.get(platform, (None, None, None))
        chat = group_rate if group else private
        chat_key, bot_key = (platform, bot, chat_id), (platform, bot)
        deadline = time.monotonic() + max_wait
        chat_deadline = time.monotonic() + (max_wait if chat_wait is None else min(chat_wait, max_wait))
        while True:
            # only one relay task sends to a chat at a time (the outbox claims), so testing first is safe
            wait = await self._wait(chat, chat_key) if chat else 0.0
            if wait:
                if time.monotonic() + wait > chat_deadline:
                    return wait
                await asyncio.sleep(wait)
                continue
            lock = self._locks.setdefault(bot_key, asyncio.Lock())
            if lock.locked():  # a free lock is taken at once, without the cost of a timeout
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await lock.acquire()
                except TimeoutError:
                    return 1.0  # the bot is busy: this chat queues again a second later
            else:
                await lock.acquire()
            try:
                while whole and (wait := await self._wait(whole, bot_key)):
                    if time.monotonic() + wait > deadline:
                        return wait
                    await asyncio.sleep(wait)
                if ready is not None:
                    await ready()
                    ready = None
                if self._limiter is not None:
                    if whole and not await self._limiter.hit(whole, *bot_key):
                        await asyncio.sleep(0.001)  # another process won the bot's slot between the look and the hit
                        continue
                    if chat and not await self._limiter.hit(chat, *chat_key):
                        continue  # another process took the chat's slot after all: the bot slot is spent, which only slows us
                # this task holds the bot's turn and the chat's only send, so the local places looked at are still free
                now = time.monotonic()
                if whole:
                    self._local.take(bot_key, now)
                if chat:
                    self._local.take(chat_key, now)
                return 0.0
            finally:
                lock.release()

    def sent(self, platform: str, bot: str, chat_id: str, *, group: bool = False) -> None:
        """The platform answered a send that ``acquire`` let through, or it failed: from now its places start to free."""
        private, group_rate, whole = self._items.get(platform, (None, None, None))
        chat = group_rate if group else private
        now = time.monotonic()
        if whole:
            self._local.answered((platform, bot), whole.get_expiry(), now)
        if chat:
            self._local.answered((platform, bot, chat_id), chat.get_expiry(), now)

    async def _wait(self, item: RateLimitItem, key: tuple[str, ...]) -> float:
        wait = self._local.wait(item.amount, key, time.monotonic())
        if wait or self._limiter is None:
            return wait
        stats = await self._limiter.get_window_stats(item, *key)
        if stats.remaining > 0:
            return 0.0
        return max(0.001, stats.reset_time - time.time())

    async def clear(self) -> None:
        """Forget every window (tests and benchmarks start from a clean slate)."""
        self._local.clear()
        if self._limiter is not None:
            await self._limiter.storage.reset()
