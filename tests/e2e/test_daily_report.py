"""The daily report over real Telegram polling: at the set time the managers' group gets the day's figures with a PNG
chart from the staff bot, once."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from services import backoffice
from tests.support.report_facts import seed
from tests.support.telegram import DISPATCHER_USER, STAFF, running

pytestmark = pytest.mark.slow

MANAGERS = -6001
PNG = b"\x89PNG\r\n\x1a\n"


async def test_the_daily_report_arrives_in_the_managers_group_as_a_png_with_the_figures(fake_telegram, sqlite_url, tmp_path):
    async with running(fake_telegram, sqlite_url, tmp_path, daily_report_at="18:00", public_url="https://shop.example") as shop:
        await seed(shop.container.sessions)
        tz = shop.container.policy.tz
        # the seeded day is Wednesday 25 November; the shop's clock is that morning
        shop.clock.set(datetime(2026, 11, 25, 8, 0, tzinfo=tz))
        await shop.container.daily_reporter.ensure()

        async def reports_group(store):
            return (await backoffice.create_dispatch_group(store, name="Managers", region=None, language="en", now=shop.clock.now(),
                                                          policy=shop.container.policy, purpose="reports"))[1]

        await shop.onboard(MANAGERS, await shop.dispatcher_token(), "You are registered as a dispatcher.", user_id=DISPATCHER_USER,
                           first_name="Dora")
        await shop.onboard(MANAGERS, await shop._tx(reports_group), "This group now receives the daily report", user_id=DISPATCHER_USER, first_name="Dora")
        since = shop.mark()
        shop.clock.set(datetime.combine(shop.clock.now().astimezone(tz).date(), time(18, 0), tz) + timedelta(seconds=1))
        assert await shop.container.sweep_timers() >= 1
        sent = await shop.fake.wait_for_sent(lambda s: s["chat_id"] == str(MANAGERS) and s["method"] == "sendPhoto", 15, since=since)
        assert sent["token"] == STAFF
        caption = sent["caption"] or ""
        assert "Daily report" in caption and "On-time arrival: 67% (2/3)" in caption and "First-time fix: 33% (1/3)" in caption
        assert "https://shop.example/reports/daily?day=2026-11-25" in caption
        assert sent["photo"].content.startswith(PNG) and len(sent["photo"].content) > 5_000  # a drawn chart, not a stub
        # the sweep again (another process, a restart): nothing more for the day
        await shop.container.sweep_timers()
        assert await shop.container.daily_reporter.run_due() == 0
        assert [s["method"] for s in shop.fake.sent(chat_id=MANAGERS)[-1:]] == ["sendPhoto"]
        assert len([s for s in shop.fake.sent(chat_id=MANAGERS) if s["method"] == "sendPhoto"]) == 1
