"""Set-ups played once per test process (tests/support/snapshots.py): a world given a copy ends up exactly where a world
that played the set-up does, and carries on the same; a world that is not where the set-up starts plays it."""

from __future__ import annotations

import itertools
import shutil
import sqlite3

from sqlalchemy.engine import make_url

from tests.support import harness, snapshots
from tests.support.harness import SHOP, World, keys
from tests.support.setups import booked_and_accepted


def dump(world: World) -> list[str]:
    with sqlite3.connect(make_url(world.container.settings.database_url).database) as connection:
        return list(connection.iterdump())


async def fresh(sqlite_template: str, tmp_path, name: str) -> World:
    (tmp_path / name).mkdir()
    shutil.copyfile(sqlite_template, tmp_path / name / "fieldchat.db")
    return await World.create(f"sqlite:///{tmp_path / name / 'fieldchat.db'}", tmp_path / name, replan_seconds=0.5)


async def carry_on(world: World, order, customer, driver, group) -> list[list[str]]:
    """The next steps of the day, as every test after the set-up takes them; what each chat reads."""
    visit = order.visits[0].id
    read = [keys(await driver.press(f"go:{visit}")), keys(await driver.location(*SHOP)), keys(await customer.inbox()), keys(await group.inbox())]
    read.append(keys(await customer.send("/status")))
    return read


async def test_a_copied_set_up_is_the_played_one_row_for_row_and_carries_on_the_same(sqlite_template, tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "_played", {})
    played_world, copied_world = await fresh(sqlite_template, tmp_path, "a"), await fresh(sqlite_template, tmp_path, "b")
    try:
        played = await booked_and_accepted(played_world)
        assert len(snapshots._played) == 1
        copied = await booked_and_accepted(copied_world)
        assert len(snapshots._played) == 1  # not played again
        assert dump(copied_world) == dump(played_world)
        assert copied_world.clock.now() == played_world.clock.now()
        (order_a, *chats_a), (order_b, *chats_b) = played, copied
        assert order_b.customer_token == order_a.customer_token
        assert [v.id for v in order_b.visits] == [v.id for v in order_a.visits] and order_b.job.id == order_a.job.id
        assert [(c.ref, c.user_id, c.chat_type, c.seen) for c in chats_b] == [(c.ref, c.user_id, c.chat_type, c.seen) for c in chats_a]
        assert all(c.world is copied_world for c in chats_b)
        [saved] = snapshots._played.values()
        copied_read = await carry_on(copied_world, *copied)
        monkeypatch.setattr(harness, "_ids", itertools.count(saved.ids))  # the played world goes on with the same ids
        assert await carry_on(played_world, *played) == copied_read
        assert dump(copied_world) == dump(played_world)
    finally:
        await played_world.close()
        await copied_world.close()


async def test_a_world_not_where_the_set_up_starts_plays_it_and_different_arguments_play_their_own(sqlite_template, tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "_played", {})
    first, moved, other = [await fresh(sqlite_template, tmp_path, name) for name in ("a", "b", "c")]
    try:
        await booked_and_accepted(first)
        await moved.technician("Li", ["installer"])  # the database is no longer the fresh one
        await booked_and_accepted(moved)
        assert len(snapshots._played) == 2
        assert "Li" in "".join(dump(moved)) and "Li" not in "".join(dump(first))
        await booked_and_accepted(other, services=("delivery", "installation"))
        assert len(snapshots._played) == 3
    finally:
        for world in (first, moved, other):
            await world.close()
