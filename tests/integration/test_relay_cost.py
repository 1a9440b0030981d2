"""What one send costs the relay in statements, and the rate limiter's windows counted until the platform answered."""

from __future__ import annotations

from collections import Counter

from pytest import approx
from sqlalchemy import event, insert, select, update

from domain.clock import SystemClock
from scheduler.ratelimit import LOST_AFTER, POLL, LocalWindows, PlatformLimits, SendLimiter
from storage import tables
from tests.support.relay import drain, queue, texts


async def bind(sessions, bot: str, chat_id: str, *, unreachable: bool = False) -> None:
    async with sessions() as session, session.begin():
        await session.execute(insert(tables.chat_bindings).values(
            platform="telegram", bot=bot, chat_id=chat_id, subject_kind="customer", subject_id=1, language="en",
            undeliverable_since=SystemClock().now() if unreachable else None,
        ))


def statements(sessions) -> Counter:
    """Counts the statements run on the sessions' engine by their first words (e.g. "UPDATE chat_bindings")."""
    seen: Counter = Counter()

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        seen[" ".join(statement.split()[:2])] += 1

    event.listen(sessions.kw["bind"].sync_engine, "before_cursor_execute", count)
    return seen


async def marked(sessions, chat_id: str) -> bool:
    async with sessions() as session:
        since = (await session.execute(
            select(tables.chat_bindings.c.undeliverable_since).where(tables.chat_bindings.c.chat_id == chat_id)
        )).scalar_one()
    return since is not None


async def test_a_send_to_a_reachable_chat_writes_no_reachable_flag_and_builds_no_statement_again(db, fake_telegram, relays):
    await bind(db, "customer", "601")
    await bind(db, "customer", "602")
    await queue(db, ("customer", "601", "a1"), ("customer", "601", "a2"), ("customer", "602", "b1"))
    seen = statements(db)
    assert await drain(relays(db)) == 3
    assert texts(fake_telegram, "601") == ["a1", "a2"] and texts(fake_telegram, "602") == ["b1"]
    assert seen["UPDATE chat_bindings"] == 0
    # per send: the start recorded, the outcome recorded; the chat's next row is claimed with the outcome
    assert seen["UPDATE outbox"] == 2 * 3
    assert not await marked(db, "601") and not await marked(db, "602")


async def test_a_send_that_goes_through_to_a_chat_marked_undeliverable_clears_the_mark_once(db, fake_telegram, relays):
    await bind(db, "customer", "603", unreachable=True)
    await bind(db, "customer", "604")
    await queue(db, ("customer", "603", "c1"), ("customer", "603", "c2"), ("customer", "604", "d1"))
    seen = statements(db)
    assert await drain(relays(db)) == 3
    assert texts(fake_telegram, "603") == ["c1", "c2"]
    assert not await marked(db, "603")
    assert seen["UPDATE chat_bindings"] == 1  # the first send clears it; the chat's next row was claimed unmarked


async def test_a_mark_set_while_a_row_waits_is_seen_by_its_next_claim(db, fake_telegram, relays):
    await bind(db, "customer", "605")
    relay = relays(db)
    await queue(db, ("customer", "605", "e1"))
    assert await drain(relay) == 1
    async with db() as session, session.begin():  # e.g. another relay found the chat blocked meanwhile
        await session.execute(update(tables.chat_bindings).values(undeliverable_since=SystemClock().now()))
    await queue(db, ("customer", "605", "e2"))
    assert await drain(relay) == 1
    assert not await marked(db, "605")


# --- the windows --------------------------------------------------------------------------------------------------------


def test_a_send_holds_its_place_until_its_answer_is_a_window_old():
    windows, key = LocalWindows(), ("telegram", "customer")
    windows.take(key, 0.0)
    windows.take(key, 0.1)
    assert windows.wait(2, key, 0.2) == POLL  # both still under way: only an answer can free a place
    windows.answered(key, 1.0, 0.5)  # the first answer came back after half a second (a starved sender)
    # counted from the take the place would be free at 1.0; counted from the answer, at 1.5
    assert windows.wait(2, key, 1.2) == approx(1.5 - 1.2)
    assert windows.wait(2, key, 1.5) == 0.0
    windows.take(key, 1.5)
    windows.answered(key, 1.0, 1.6)
    windows.answered(key, 1.0, 1.6)
    assert windows.wait(2, key, 2.0) == approx(2.6 - 2.0)
    assert windows.wait(2, key, 2.6) == 0.0
    assert windows.wait(3, key, 2.0) == 0.0  # another window with room


def test_a_send_whose_answer_never_comes_frees_its_place_after_the_longest_request():
    windows, key = LocalWindows(), ("telegram", "customer", "1")
    windows.take(key, 0.0)
    assert windows.wait(1, key, LOST_AFTER - 1) == POLL
    assert windows.wait(1, key, LOST_AFTER + 1) == 0.0


def test_the_earliest_places_free_first_whatever_order_the_answers_come_in():
    windows, key = LocalWindows(), ("telegram", "customer")
    for at in (0.0, 0.1, 0.2):
        windows.take(key, at)
    windows.answered(key, 1.0, 0.9)
    windows.answered(key, 1.0, 0.3)
    assert windows.wait(3, key, 0.5) == approx(1.3 - 0.5)  # one place must free: the earliest answered
    assert windows.wait(2, key, 0.5) == approx(1.9 - 0.5)  # two must: the later of the two earliest


async def test_the_limiter_lets_a_chat_send_again_only_after_its_answered_sends_are_a_window_old():
    limiter = SendLimiter({"telegram": PlatformLimits(private="2 per 60 seconds", bot="30/second")})
    assert await limiter.acquire("telegram", "customer", "1", max_wait=0) == 0.0
    assert await limiter.acquire("telegram", "customer", "1", max_wait=0) == 0.0
    # both sends still under way: the chat's window is full however long ago they were taken
    assert 0 < await limiter.acquire("telegram", "customer", "1", max_wait=0) <= POLL
    await limiter.sent("telegram", "customer", "1")
    await limiter.sent("telegram", "customer", "1")
    assert 59 < await limiter.acquire("telegram", "customer", "1", max_wait=0) <= 60
    assert await limiter.acquire("telegram", "customer", "2", max_wait=0) == 0.0  # another chat of the same bot
    await limiter.clear()
    assert await limiter.acquire("telegram", "customer", "1", max_wait=0) == 0.0
