"""Send windows shared by several relay processes through Redis: a send holds its places until a window after its answer."""

from __future__ import annotations

import uuid

import pytest

from bots.channels import PlatformLimits
from scheduler.ratelimit import LOST_AFTER, POLL, SendLimiter

RULE = {"telegram": PlatformLimits(private="1 per 60 seconds", bot="2 per 1 second")}


@pytest.fixture
async def two_relays(redis_url):
    """Two limiters as two relay processes have them: the same Redis, the same prefix, nothing else in common."""
    prefix = f"test-windows-{uuid.uuid4().hex[:8]}"
    first, second = SendLimiter(RULE, redis_url=redis_url, prefix=prefix), SendLimiter(RULE, redis_url=redis_url, prefix=prefix)
    try:
        yield first, second
    finally:
        await first.clear()
        await first.aclose()
        await second.aclose()


async def test_another_relays_sends_hold_the_bots_places_while_they_are_under_way_however_long(two_relays):
    first, second = two_relays
    assert await first.acquire("telegram", "customer", "1", max_wait=0) == 0.0
    assert await first.acquire("telegram", "customer", "2", max_wait=0) == 0.0
    # the first relay's two sends have not been answered: a CPU-starved relay may get them out late, so the bot's
    # window stays full for the other relay even after more than a window has passed (counted from the take, it would
    # have let a third send through after one second, to arrive together with the two)
    assert 0 < await second.acquire("telegram", "customer", "3", max_wait=1.2) <= POLL
    await first.sent("telegram", "customer", "1")
    await first.sent("telegram", "customer", "2")
    # answered: the places free a window (one second) after the answers, not before
    assert 0 < await second.acquire("telegram", "customer", "3", max_wait=0) <= 1.0
    assert await second.acquire("telegram", "customer", "3", max_wait=1.5) == 0.0


async def test_a_chats_window_is_shared_too_when_its_messages_move_to_another_relay(two_relays):
    first, second = two_relays
    assert await first.acquire("telegram", "customer", "7", max_wait=0) == 0.0
    await first.sent("telegram", "customer", "7")
    # the chat's next row went to the other relay: one per minute still holds; an alert would rather queue (chat_wait 0)
    assert 58 < await second.acquire("telegram", "customer", "7", max_wait=5, chat_wait=0) <= 60
    assert await second.acquire("telegram", "customer", "8", max_wait=0) == 0.0


async def test_when_the_work_before_a_send_fails_its_places_free_at_once(two_relays):
    first, second = two_relays

    async def cannot_record_the_start() -> None:
        raise RuntimeError("the database is away")

    with pytest.raises(RuntimeError):
        await first.acquire("telegram", "customer", "1", max_wait=0, ready=cannot_record_the_start)
    assert await second.acquire("telegram", "customer", "1", max_wait=0) == 0.0
    assert await second.acquire("telegram", "customer", "2", max_wait=0) == 0.0


async def test_a_send_that_never_answers_frees_its_places_when_it_counts_as_lost(two_relays, monkeypatch):
    first, second = two_relays
    monkeypatch.setattr("scheduler.ratelimit.LOST_AFTER", 0.5)  # the relay died mid-send: nobody will ever answer
    assert await first.acquire("telegram", "customer", "1", max_wait=0) == 0.0
    assert await first.acquire("telegram", "customer", "2", max_wait=0) == 0.0
    assert LOST_AFTER > 60  # longer than any request's timeout, so a send still under way always keeps its place
    assert await second.acquire("telegram", "customer", "3", max_wait=2) == 0.0
