"""Deep-link tokens: one link per order however often it is posted, and links that expire when their job is done."""

from __future__ import annotations

from datetime import timedelta

from domain import commands as c
from tests.support.harness import World, keys


async def test_posting_the_same_order_again_returns_the_link_already_handed_out(database_url, tmp_path):
    world = await World.create(database_url, tmp_path)
    try:
        first = await world.order("SO-7")
        again = await world.order("SO-7")
        assert not again.created and again.customer_token == first.customer_token
        # one link, so one chat: a second chat cannot take the customer over with a re-posted link
        assert keys(await world.chat("customer", "c1").send(f"/start {first.customer_token}"))[0] == "customer.welcome"
        assert keys(await world.chat("customer", "c2").send(f"/start {again.customer_token}")) == ["error.link_used"]
    finally:
        await world.close()


async def test_a_customer_link_expires_a_grace_period_after_the_job_is_closed(database_url, tmp_path):
    world = await World.create(database_url, tmp_path, customer_link_grace_days=2)
    try:
        order = await world.order("SO-8", services=("delivery",))
        customer_id = order.job.customer_id
        await world.container.bus.run(
            "test:cancel", c.CancelVisitByCustomer(order.visits[0].id, customer_id)
        )
        assert (await world.job(order.job.id))["status"] == "cancelled"
        world.clock.advance(timedelta(days=2, minutes=1))
        assert keys(await world.chat("customer", "late").send(f"/start {order.customer_token}")) == ["error.link_expired"]
        # posting the order again now hands out a fresh link, short-lived since the job is closed
        again = await world.order("SO-8", services=("delivery",))
        assert again.customer_token != order.customer_token
        world.clock.advance(timedelta(days=2, minutes=1))
        assert keys(await world.chat("customer", "later").send(f"/start {again.customer_token}")) == ["error.link_expired"]
    finally:
        await world.close()


async def test_an_open_jobs_link_lives_at_most_the_configured_days(database_url, tmp_path):
    world = await World.create(database_url, tmp_path, customer_link_days=10)
    try:
        order = await world.order("SO-9")
        world.clock.advance(timedelta(days=10, minutes=1))
        assert keys(await world.chat("customer", "c1").send(f"/start {order.customer_token}")) == ["error.link_expired"]
    finally:
        await world.close()


async def test_staff_invites_expire_after_72_hours_by_default(database_url, tmp_path):
    world = await World.create(database_url, tmp_path)
    try:
        _id, fresh = await world.technician("Wang", ["driver"])
        _id, stale = await world.technician("Li", ["installer"])
        dispatcher = await world.dispatcher()
        world.clock.advance(timedelta(hours=71))
        assert keys(await world.chat("staff", "t1").send(f"/start {fresh}")) == ["tech.welcome"]
        world.clock.advance(timedelta(hours=1, minutes=1))
        assert keys(await world.chat("staff", "t2").send(f"/start {stale}")) == ["error.link_expired"]
        assert keys(await world.chat("staff", "d1").send(f"/start {dispatcher}")) == ["error.link_expired"]
    finally:
        await world.close()
