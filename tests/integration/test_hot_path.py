"""The statements a chat update costs, and a dropped database connection costing nothing: the hot path kept lean."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import event, select

from services.messages import InboundKind
from storage import tables as t
from tests.support.harness import World


class Statements:
    """The SQL statements a block runs (transaction control left out: that is the driver's, not ours)."""

    def __init__(self, world: World) -> None:
        self.engine = world.container.db.sync_engine
        self.seen: list[str] = []
        self.commits = 0

    def _before(self, _conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            self.seen.append(" ".join(statement.split()[:3]))

    def _commit(self, _conn) -> None:
        self.commits += 1

    def __enter__(self) -> "Statements":
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "commit", self._commit)


async def inbox_rows(world: World) -> list[dict]:
    async with world.container.sessions() as session:
        return [dict(row) for row in (await session.execute(select(t.inbox))).mappings()]


async def test_an_update_that_only_answers_runs_four_statements_in_one_transaction(world: World):
    stranger = world.chat("customer", "stranger")
    await stranger.send("/help")  # the conversation row exists from here on
    with Statements(world) as statements:
        await world.container.engine.handle(stranger.event(InboundKind.COMMAND, text="/help"))
    # the chat's row locked; the update stored as handled (no second look at the inbox, no separate mark); whose chat
    # it is; the answer. No conversation write: nothing in it changed
    assert statements.seen == [
        "SELECT conversations.id, conversations.platform,", "INSERT INTO inbox",
        "SELECT chat_bindings.id, chat_bindings.platform,", "INSERT INTO outbox",
    ]
    assert statements.commits == 1


async def test_a_stored_update_is_taken_in_one_statement(world: World):
    stranger = world.chat("customer", "stranger")
    await stranger.send("/help")
    update = stranger.event(InboundKind.COMMAND, text="/help")
    assert await world.container.engine.receive(update)
    with Statements(world) as statements:
        assert (await world.container.engine.process(update)).processed
    assert statements.seen[:2] == ["SELECT conversations.id, conversations.platform,", "UPDATE inbox SET"]
    assert "INSERT INTO inbox" not in statements.seen and statements.commits == 1


async def test_several_answers_are_queued_in_one_statement(world: World):
    from services.bus import write_outbox
    from services.messages import ChatRef, Outbound, t as text
    from storage.repository import Store

    chat, group = ChatRef("web", "customer", "c"), ChatRef("web", "staff", "g")
    messages = [Outbound(text("customer.help")), Outbound(text("customer.hint_idle")), Outbound(text("customer.help"), to=group)]
    with Statements(world) as statements:
        async with world.container.sessions() as session, session.begin():
            await write_outbox(Store(session), "web:customer:u1", chat, messages, "zh", world.clock.now())
    assert statements.seen == ["INSERT INTO outbox"]
    async with world.container.sessions() as session:
        rows = (await session.execute(select(t.outbox.c.chat_id, t.outbox.c.dedup_key).order_by(t.outbox.c.id))).all()
    assert [tuple(row) for row in rows] == [("c", "web:customer:u1:0"), ("c", "web:customer:u1:1"), ("g", "web:customer:u1:2")]


async def test_an_update_processed_without_being_received_first_is_stored_and_handled_once(world: World):
    customer = world.chat("customer", "c")
    update = customer.event(InboundKind.COMMAND, text="/help")
    first = await world.container.engine.process(update)
    answered = await customer.inbox()
    again = await world.container.engine.process(update)
    assert (first.processed, again.processed) == (True, False)
    assert [(row["update_id"], row["status"], row["attempts"]) for row in await inbox_rows(world)] == [(update.update_id, "processed", 1)]
    assert answered and await customer.inbox() == []


async def test_a_failed_update_stays_waiting_and_is_taken_by_the_next_try(world: World, monkeypatch):
    customer = world.chat("customer", "c")
    update = customer.event(InboundKind.COMMAND, text="/help")
    engine = world.container.engine
    original = engine._flows

    def broken(event):
        raise RuntimeError("a bug in the step")

    monkeypatch.setattr(engine, "_flows", broken)
    assert not (await engine.handle(update)).processed
    assert [(row["status"], row["attempts"]) for row in await inbox_rows(world)] == [("received", 1)]
    monkeypatch.setattr(engine, "_flows", original)
    assert await engine.process_pending() == 1
    assert [(row["status"], row["attempts"]) for row in await inbox_rows(world)] == [("processed", 2)]


@pytest.mark.postgres
async def test_connections_the_database_dropped_cost_no_update(postgres_url, tmp_path):
    """No ping per checkout: a pooled connection found dead fails its transaction, which is tried again at once."""
    world = await World.create(postgres_url, tmp_path)
    try:
        customer = world.chat("customer", "c")
        await customer.send("/help")  # the pool now holds a connection
        database = world.container.db.url.database
        admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")
        try:
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
        finally:
            await admin.close()
        assert dropped >= 1
        replies = await customer.send("/help")
        assert [m.key for m in replies][-1:] == [(await customer.inbox() or replies)[-1].key]
        rows = await inbox_rows(world)
        assert [(row["status"], row["attempts"]) for row in rows] == [("processed", 1), ("processed", 1)]
    finally:
        await world.close()


async def test_a_technicians_crew_visits_are_picked_out_by_the_database(world: World):
    """Each technician update asks for their crew visits: only theirs may come back, never every crew's to filter."""
    from sqlalchemy import update

    from domain.model import VisitStatus
    from storage.repository import Store

    visits = [(await world.order(ref=f"SO-{n}", services=("installation",))).visits[0].id for n in range(4)]
    crews = [[3, 12], [12], [30, 4], [3]]
    async with world.container.sessions() as session, session.begin():
        for visit, crew in zip(visits, crews):
            await session.execute(
                update(t.visits).where(t.visits.c.id == visit).values(crew_size=len(crew) + 1, crew_ids=crew, status=VisitStatus.ACCEPTED.value)
            )
    with Statements(world) as statements:
        async with world.container.sessions() as session:
            store = Store(session)
            found = {n: [v.id for v in await store.crew_visits_of(n, (VisitStatus.ACCEPTED,))] for n in (3, 12, 30, 4, 1)}
    assert found == {3: [visits[0], visits[3]], 12: [visits[0], visits[1]], 30: [visits[2]], 4: [visits[2]], 1: []}
    assert len(statements.seen) == 5


async def outbox_origins(world: World) -> list[str]:
    """The update each queued message answers, in queue order (a dedup key starts with its update's origin)."""
    async with world.container.sessions() as session:
        keys = (await session.execute(select(t.outbox.c.dedup_key).order_by(t.outbox.c.id))).scalars()
        return [key.rsplit(":", 1)[0].rsplit(":", 1)[1] for key in keys]


async def test_a_chats_updates_are_handled_in_the_order_they_were_stored_whichever_is_processed_first(world: World):
    """Two web processes: one stored update 1 and died (or its handling failed), the other gets update 2."""
    customer = world.chat("customer", "c")
    first, second = customer.event(InboundKind.TEXT, text="hello"), customer.event(InboundKind.COMMAND, text="/help")
    engine = world.container.engine
    assert await engine.receive(first) and await engine.receive(second)
    assert (await engine.process(second)).processed
    assert [(row["update_id"], row["status"]) for row in await inbox_rows(world)] == [(first.update_id, "processed"), (second.update_id, "processed")]
    origins = await outbox_origins(world)
    assert origins == sorted(origins, key=[first.update_id, second.update_id].index) and set(origins) == {first.update_id, second.update_id}


async def test_an_update_arriving_while_an_earlier_one_of_the_chat_waits_goes_after_it(world: World):
    customer = world.chat("customer", "c")
    first, second = customer.event(InboundKind.TEXT, text="hello"), customer.event(InboundKind.COMMAND, text="/help")
    engine = world.container.engine
    assert await engine.receive(first)  # stored, acknowledged, then its process died
    assert (await engine.handle(second)).processed
    origins = await outbox_origins(world)
    assert origins == sorted(origins, key=[first.update_id, second.update_id].index) and set(origins) == {first.update_id, second.update_id}
    assert {row["status"] for row in await inbox_rows(world)} == {"processed"}


async def test_an_earlier_update_that_keeps_failing_does_not_hold_the_chat_up(world: World, monkeypatch):
    customer = world.chat("customer", "c")
    first, second = customer.event(InboundKind.TEXT, text="hello"), customer.event(InboundKind.COMMAND, text="/help")
    engine = world.container.engine
    flows = engine._flows

    def poisoned(event):
        if event.update_id == first.update_id:
            raise RuntimeError("a bug this update meets")
        return flows(event)

    monkeypatch.setattr(engine, "_flows", poisoned)
    assert await engine.receive(first)
    assert (await engine.handle(second)).processed
    rows = {row["update_id"]: (row["status"], row["attempts"]) for row in await inbox_rows(world)}
    assert rows == {first.update_id: ("received", 1), second.update_id: ("processed", 1)}
    assert set(await outbox_origins(world)) == {second.update_id}


async def test_the_background_sweep_leaves_fresh_updates_to_the_process_handling_them(world: World):
    from datetime import timedelta

    from fieldchat.container import SWEEP_SETTLED

    customer = world.chat("customer", "c")
    engine = world.container.engine
    assert await engine.receive(customer.event(InboundKind.COMMAND, text="/help"))  # another process is on it
    assert await engine.process_pending(settled=SWEEP_SETTLED) == 0
    world.clock.advance(SWEEP_SETTLED + timedelta(seconds=1))  # …or it died: the sweep takes it now
    assert await engine.process_pending(settled=SWEEP_SETTLED) == 1
    assert {row["status"] for row in await inbox_rows(world)} == {"processed"}


async def test_a_technicians_view_holds_their_open_and_recently_finished_visits_not_every_visit_they_ever_did(world: World):
    from datetime import timedelta

    from sqlalchemy import update

    from domain.model import VisitStatus
    from services.views import FINISHED_SHOWN, TECHNICIAN_STATUSES
    from storage.repository import Store

    technician, _ = await world.technician("Wang", ["installer"], ["installation"])
    other, _ = await world.technician("Li", ["installer"], ["installation"])
    now = world.clock.now()
    visits = [(await world.order(ref=f"SO-{n}", services=("installation",))).visits[0].id for n in range(5)]
    states = [  # (technician, status, slot end)
        (technician, VisitStatus.ACCEPTED, now + timedelta(days=3)),
        (technician, VisitStatus.COMPLETED, now - timedelta(hours=3)),
        (technician, VisitStatus.COMPLETED, now - FINISHED_SHOWN - timedelta(hours=1)),
        (other, VisitStatus.ACCEPTED, now + timedelta(hours=2)),
        (None, VisitStatus.BOOKED, now + timedelta(hours=5)),
    ]
    async with world.container.sessions() as session, session.begin():
        for visit, (who, status, end) in zip(visits, states):
            await session.execute(update(t.visits).where(t.visits.c.id == visit).values(
                technician_id=who, status=status.value, slot_start=end - timedelta(hours=1), slot_end=end,
                crew_size=2 if who == other else 1, crew_ids=[technician] if who == other else []))
        await session.execute(t.offers.insert().values(visit_id=visits[4], technician_id=technician, status="open", created_at=now))
    with Statements(world) as statements:
        async with world.container.sessions() as session:
            mine, crew, offered = await Store(session).technician_visits(technician, TECHNICIAN_STATUSES, now - FINISHED_SHOWN)
    assert ([v.id for v in mine], [v.id for v in crew], [v.id for v in offered]) == ([visits[1], visits[0]], [visits[3]], [visits[4]])
    assert len(statements.seen) == 1
