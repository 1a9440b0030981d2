"""Send rates per chat and per bot, shared by every relay process through Redis (in-process without it)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from redis.asyncio import Redis

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


def window_storage(redis_url: str | None, prefix: str) -> Storage:
    """`limits`' storage for request windows (sign-in attempts, the console's rates): shared through Redis when it is
    configured, else this process's memory."""
    return RedisStorage(storage_uri(redis_url), implementation="redispy", key_prefix=prefix) if redis_url else MemoryStorage()


def redis_uri(redis_url: str) -> str:
    """The plain redis:// URL, also from `limits`' async+redis:// form."""
    return redis_url.removeprefix("async+")


# Each window is a sorted set of the sends holding a place, scored with when the place frees: the sender's take holds
# it for LOST_AFTER (the answer has not come), the answer moves it to answer + the window's length. Redis's own clock
# serves every relay, so their clocks need not agree. Both windows (the bot's and the chat's) are taken together or not
# at all. ARGV: member, hold, then per key its amount and its length, then how soon to look again at a window full of
# sends under way; returns {"0", 0} when taken, else {the seconds to wait, the number of the window that is full}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait, full = 0, 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local amount, length = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local busy = redis.call('ZCARD', key)
  if busy >= amount then
    -- the place that frees first; one held by a send still under way frees only with its answer: look again soon
    local free_at = tonumber(redis.call('ZRANGE', key, busy - amount, busy - amount, 'WITHSCORES')[2])
    local until_free = free_at - now
    if until_free > length then until_free = tonumber(ARGV[#ARGV]) end
    if until_free > wait then wait, full = until_free, i end
  end
end
if wait > 0 then return {tostring(wait), full} end
local hold = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + hold, ARGV[1])
  redis.call('EXPIRE', key, math.ceil(hold) + 1)
end
return {'0', 0}
"""

# ARGV: member, then per key the window's length: the send was answered, so its place frees a window from now
_ANSWERED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1 + i]), ARGV[1])
end
return 0
"""


Window = tuple[tuple[str, ...], RateLimitItem]  # a window's key (platform, bot[, chat]) and its rate


class SharedWindows:
    """The same windows as ``LocalWindows`` (a send holds its place from its take until a window after its answer),
    kept in Redis so that every relay process counts every other's sends."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self._redis = Redis.from_url(redis_uri(redis_url))
        self._prefix = prefix
        self._take = self._redis.register_script(_TAKE)
        self._answered = self._redis.register_script(_ANSWERED)
        self._names = (f"{uuid.uuid4().hex[:12]}:{n}" for n in itertools.count())

    def _key(self, key: tuple[str, ...]) -> str:
        return ":".join((self._prefix, "window", *key))

    async def take(self, windows: list[Window]) -> tuple[float, str | tuple[str, ...]]:
        """Take a place in every window at once: (0, the send's name) when taken, else (seconds to wait, the full window's key)."""
        name = next(self._names)
        args: list[str | float] = [name, LOST_AFTER]
        for _, item in windows:
            args += [item.amount, item.get_expiry()]
        args.append(POLL)
        wait, full = await self._take(keys=[self._key(key) for key, _ in windows], args=args)
        if float(wait) <= 0:
            return 0.0, name
        return max(float(wait), 0.001), windows[int(full) - 1][0]

    async def answered(self, name: str, windows: list[Window]) -> None:
        await self._answered(keys=[self._key(key) for key, _ in windows], args=[name, *(item.get_expiry() for _, item in windows)])

    async def release(self, name: str, windows: list[Window]) -> None:
        """The send did not start after all: its places free at once."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, _ in windows:
                pipe.zrem(self._key(key), name)
            await pipe.execute()

    async def clear(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=f"{self._prefix}:window:*")]
        if keys:
            await self._redis.delete(*keys)

    async def aclose(self) -> None:
        await self._redis.aclose()


class SendLimiter:
    """Moving windows (exact: never more than N in any T seconds) for each chat and each bot.

    A send holds its places from when it is let through until T seconds after the platform answered it, so a starved
    process cannot bunch arrivals at the platform. This process's own sends are counted in ``LocalWindows``; with a
    Redis URL every relay process also counts in the same ``SharedWindows``, so several relays share each rate.
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
        self._shared = SharedWindows(redis_url, prefix) if redis_url else None
        self._items: dict[str, tuple[RateLimitItem | None, ...]] = {
            platform: tuple(parse(rate) if rate else None for rate in (rule.private, rule.group, rule.bot))
            for platform, rule in (DEFAULT_LIMITS if limits is None else limits).items()
        }
        # one task per bot at a time takes the bot's places; the others queue here in order
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # the shared name of each send under way, by chat (a chat has one send under way at a time: the outbox claims)
        self._under_way: dict[tuple[str, str, str], str] = {}

    def _windows(self, platform: str, bot: str, chat_id: str, group: bool) -> tuple[Window | None, Window | None]:
        """The bot's window and the chat's (the group rate for a group), each None where the platform sets no rate."""
        private, group_rate, whole = self._items.get(platform, (None, None, None))
        chat = group_rate if group else private
        return (((platform, bot), whole) if whole else None), (((platform, bot, chat_id), chat) if chat else None)

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
        window: a caller that would rather queue than wait for a busy chat passes 0. Both windows are taken right
        before returning 0, so the caller must send at once, and call ``sent`` with the answer (or the failure): until
        then the send holds its places.

        ``ready`` is awaited once, when both windows have room and are taken: the place for work that must precede the
        send (recording that it starts) and must not come after it. It runs while this chat holds the bot's turn, so it
        should be short. If it raises, nothing is taken.
        """
        whole, chat = self._windows(platform, bot, chat_id, group)
        windows = [window for window in (whole, chat) if window]
        start = time.monotonic()
        deadline = start + max_wait
        chat_deadline = start + (max_wait if chat_wait is None else min(chat_wait, max_wait))
        while True:
            # only one relay task sends to a chat at a time (the outbox claims), so testing first is safe
            wait = self._local.wait(chat[1].amount, chat[0], time.monotonic()) if chat else 0.0
            if wait:
                if time.monotonic() + wait > chat_deadline:
                    return wait
                await asyncio.sleep(wait)
                continue
            bot_key = (platform, bot)
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
                while whole and (wait := self._local.wait(whole[1].amount, whole[0], time.monotonic())):
                    if time.monotonic() + wait > deadline:
                        return wait
                    await asyncio.sleep(wait)
                name = None
                if self._shared is not None and windows:
                    wait, taken = await self._shared.take(windows)
                    if wait:  # other relays' sends fill a window
                        if time.monotonic() + wait > (chat_deadline if chat and taken == chat[0] else deadline):
                            return wait
                        await asyncio.sleep(wait)
                        continue
                    name = str(taken)
                if ready is not None:
                    try:
                        await ready()
                    except BaseException:
                        if name is not None:
                            await self._shared.release(name, windows)  # type: ignore[union-attr]
                        raise
                if name is not None:
                    self._under_way[(platform, bot, chat_id)] = name
                # this task holds the bot's turn and the chat's only send, so the local places looked at are still free
                now = time.monotonic()
                for key, _ in windows:
                    self._local.take(key, now)
                return 0.0
            finally:
                lock.release()

    async def sent(self, platform: str, bot: str, chat_id: str, *, group: bool = False) -> None:
        """The platform answered a send that ``acquire`` let through, or it failed: from now its places start to free."""
        windows = [window for window in self._windows(platform, bot, chat_id, group) if window]
        now = time.monotonic()
        for key, item in windows:
            self._local.answered(key, item.get_expiry(), now)
        name = self._under_way.pop((platform, bot, chat_id), None)
        if name is not None and self._shared is not None:
            try:
                await self._shared.answered(name, windows)
            except Exception as exc:  # its places then free only when the send counts as lost: slower, never faster
                log.warning("rate limiter: recording an answer failed (%s: %s)", type(exc).__name__, exc)

    async def clear(self) -> None:
        """Forget every window (tests and benchmarks start from a clean slate)."""
        self._local.clear()
        self._under_way.clear()
        if self._shared is not None:
            await self._shared.clear()

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()
