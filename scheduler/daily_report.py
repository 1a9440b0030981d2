"""The daily report: at a set local time, the day's figures as a short text and a PNG chart to the managers' groups.

A timer row per day (kind ``daily_report``) fires it; the chart is drawn outside any transaction, then one unit of work
claims the timer, writes the outbox rows (deduplicated per day and chat) and sets tomorrow's timer. Several processes or
a restart therefore send it once: the second claim finds the timer fired and writes nothing."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversations.i18n import translate
from domain import kpis
from domain.clock import Clock
from domain.policy import ServicePolicy
from services import report_charts
from services.bus import MessageBus, write_outbox
from services.context import HandlerContext
from services.messages import ChatRef, Outbound, Purpose, Text, t
from storage.reports import ReportFacts, ReportStore
from storage.repository import Store
from storage.schedule import ScheduleStore

log = logging.getLogger(__name__)

KIND = "daily_report"
# a report found due this long after its time (the server was down) is skipped: today's own report follows at its time,
# and the pages keep every day's figures
STALE = timedelta(hours=12)


def percent(ratio: kpis.Ratio) -> str:
    """"87% (13/15)", or "—" when there is nothing to count: the same in every language."""
    rate = ratio.rate
    return "—" if rate is None else f"{rate * 100:.0f}% ({ratio.hits}/{ratio.total})"


def minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def average(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def daily_text(day: date, figures: kpis.Figures, *, link: str | None) -> Text:
    """The report's text: a translatable message the relay renders in the group's language; it ends with where to read more."""
    reasons = [t("reports.daily.reason", reason=t(f"reason.{reason}"), n=count) for reason, count in figures.exceptions_by_reason[:3]]
    return t(
        "reports.daily.text", day={"_day": day.isoformat()}, visits=figures.visits, done=figures.done,
        on_time=percent(figures.on_time), ftf=percent(figures.first_time_fix), csat=average(figures.csat_average),
        csat_good=percent(figures.csat_good), accept=minutes(figures.accept_minutes), completion=minutes(figures.completion_minutes),
        exceptions=figures.exceptions, reasons=reasons or "",
        more=t("reports.daily.more_link", url=link) if link else t("reports.daily.more_page", path=f"/reports/daily?day={day.isoformat()}"),
    )


def daily_chart(day: date, facts: ReportFacts, language: str, *, first_time_fix_days: int) -> bytes:
    """Per technician: the day's visits, those done, and those checked in on time."""
    rows = kpis.by_group(facts.visits, facts.exceptions, facts.repeats, kpis.Grouping.TECHNICIAN, first_time_fix_days=first_time_fix_days)
    rows = [(label or translate("reports.unassigned", language), f) for label, f in rows if f.visits]
    return report_charts.bars(
        translate("reports.chart.daily_title", language, {"day": {"_day": day.isoformat()}}),
        [label for label, _ in rows],
        [(translate("reports.col.visits", language), [f.visits for _, f in rows]),
         (translate("reports.col.done", language), [f.done for _, f in rows]),
         (translate("reports.chart.on_time_count", language), [f.on_time.hits for _, f in rows])],
        empty=translate("reports.none", language),
    )


def regions_of_group(region: str | None) -> frozenset[str] | None:
    """A managers' group of a region reads that region's figures; one without a region reads them all."""
    return None if region is None else frozenset({region})


@dataclass(frozen=True)
class Prepared:
    """One group's report, drawn and ready to queue."""

    group_id: int
    chats: tuple[tuple[ChatRef, str], ...]  # each bound chat and its language
    text: Text
    photo: Path


class DailyReporter:
    """Sets and fires the daily-report timers (see the module's docstring)."""

    def __init__(self, bus: MessageBus, sessions: async_sessionmaker[AsyncSession], clock: Clock, policy: ServicePolicy, *, report_at: time | None,
                 media_dir: Path, first_time_fix_days: int = kpis.DEFAULT_FIRST_TIME_FIX_DAYS, public_url: str | None = None) -> None:
        self.bus, self.sessions, self.clock, self.policy = bus, sessions, clock, policy
        self.report_at = report_at
        self.folder = Path(media_dir) / "reports"
        self.first_time_fix_days = first_time_fix_days
        self.public_url = public_url.rstrip("/") if public_url else None

    def next_due(self, now: datetime, after: date | None = None) -> datetime | None:
        """The report time to set at ``now``: the day after ``after`` (the day just reported), else today's — while it is
        not stale, so that a start shortly after the report time still sends today's — else tomorrow's."""
        if self.report_at is None:
            return None
        if after is not None:
            following = datetime.combine(after + timedelta(days=1), self.report_at, self.policy.tz)
            if following > now - STALE:
                return following
        today = now.astimezone(self.policy.tz).date()
        due = datetime.combine(today, self.report_at, self.policy.tz)
        return due if due > now - STALE else datetime.combine(today + timedelta(days=1), self.report_at, self.policy.tz)

    async def _set(self, ctx: HandlerContext, due: datetime) -> None:
        day = due.astimezone(self.policy.tz).date().isoformat()
        await ScheduleStore(ctx.store).set_timer(key=f"{KIND}:{day}", kind=KIND, due_at=due, now=ctx.now, payload={"day": day})

    async def ensure(self) -> None:
        """The next report's timer; idempotent (one key per day), so every start may call it."""
        async with self.sessions() as session, session.begin():
            now = self.clock.now()
            due = self.next_due(now)
            if due is not None:
                await self._set(HandlerContext(Store(session), now, self.policy), due)

    async def run_due(self) -> int:
        """Fire every due report timer; returns how many were fired by this process."""
        async with self.sessions() as session:
            due = await ScheduleStore(Store(session)).due_timers(self.clock.now(), (KIND,))
        fired = 0
        for timer in due:
            try:
                stale = self.clock.now() - timer["due_at"] > STALE
                fired += await self.fire(timer["id"], date.fromisoformat(timer["payload"]["day"]), send=not stale)
            except Exception:  # one day's failure (a full disk) must not stop the sweep; the timer fires again next time
                log.exception("daily report of %s failed", timer["payload"].get("day"))
        return fired

    async def prepare(self, day: date) -> list[Prepared]:
        """Each managers' group's text and chart for ``day`` (its region's figures), drawn outside any transaction."""
        async with self.sessions() as session:
            reports = ReportStore(Store(session))
            bound = await reports.report_groups()
            groups: dict[int, dict[str, Any]] = {}
            for row in bound:
                groups.setdefault(row["id"], {**row, "chats": []})["chats"].append(
                    (ChatRef(row["platform"], row["bot"], row["chat_id"]), row["chat_language"] or row["language"]))
            facts = {gid: await reports.facts(day, day, tz=self.policy.tz, regions=regions_of_group(g["region"]),
                                              first_time_fix_days=self.first_time_fix_days) for gid, g in groups.items()}
        prepared = []
        for gid, group in groups.items():
            figures = kpis.figures(facts[gid].visits, facts[gid].exceptions, facts[gid].repeats, first_time_fix_days=self.first_time_fix_days)
            link = f"{self.public_url}/reports/daily?day={day.isoformat()}" if self.public_url else None
            # drawn in a worker thread: the event loop goes on answering webhooks meanwhile
            chart = await asyncio.to_thread(daily_chart, day, facts[gid], group["language"], first_time_fix_days=self.first_time_fix_days)
            photo = self._store_png(f"daily-{day.isoformat()}-group{gid}-{group['language']}.png", chart)
            prepared.append(Prepared(gid, tuple(group["chats"]), daily_text(day, figures, link=link), photo))
        return prepared

    def _store_png(self, name: str, data: bytes) -> Path:
        """Write the chart where every relay process reads photos from (the shared media folder), atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / name
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)
        return path

    async def fire(self, timer_id: int, day: date, *, send: bool = True) -> int:
        """Send ``day``'s report once: the unit of work that claims the timer queues the messages and sets the next.
        ``send`` False: only claim it and set the next (a report days late, after the server was down, is news no more)."""
        prepared = await self.prepare(day) if send else []

        async def work(ctx: HandlerContext) -> list[Any]:
            claimed.clear()  # a retried unit of work counts once
            if await ScheduleStore(ctx.store).claim_timer(timer_id, ctx.now) is None:
                return []  # another process (or an earlier run) sent it
            messages = [
                Outbound(report.text, to=chat, language=language, photo_path=str(report.photo), purpose=Purpose.STATUS,
                         dedup=f"{KIND}:{day.isoformat()}:{report.group_id}:{chat}")
                for report in prepared for chat, language in report.chats
            ]
            await write_outbox(ctx.store, f"{KIND}:{day.isoformat()}", None, messages, "en", ctx.now)
            claimed.append(len(messages))
            due = self.next_due(ctx.now, after=day)
            if due is not None:
                await self._set(ctx, due)
            return []

        claimed: list[int] = []
        await self.bus.run(f"{KIND}:{day.isoformat()}", work)
        if claimed and claimed[0] and self.bus.on_outbox is not None:
            self.bus.on_outbox()  # the rows were written outside the bus's own count: wake the relay
        log.info("daily report of %s: %s", day, ("skipped: too late" if not send else f"{claimed[0]} message(s) queued") if claimed else "already sent")
        return 1 if claimed else 0
