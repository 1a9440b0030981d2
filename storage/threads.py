"""Queries for relay threads and the evidence of a job (photos, checklist answers, problem reports, ratings, messages)."""

from __future__ import annotations

from sqlalchemy import select, update

from domain import model
from domain.relay import RelayMessage, RelayThread, ThreadStatus
from storage import tables as t
from storage.repository import Store


class ThreadStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    async def open_thread(self, platform: str, bot: str, chat_id: str) -> RelayThread | None:
        """The writer's thread their next free text joins: the newest open one of this chat."""
        statement = (
            select(RelayThread)
            .where(
                t.relay_threads.c.platform == platform, t.relay_threads.c.bot == bot, t.relay_threads.c.chat_id == chat_id,
                t.relay_threads.c.status == ThreadStatus.OPEN.value,
            )
            .order_by(t.relay_threads.c.id.desc())
            .limit(1)
        )
        return (await self.session.execute(statement)).scalars().first()

    async def close_threads(self, platform: str, bot: str, chat_id: str) -> int:
        statement = (
            update(t.relay_threads)
            .where(
                t.relay_threads.c.platform == platform, t.relay_threads.c.bot == bot, t.relay_threads.c.chat_id == chat_id,
                t.relay_threads.c.status == ThreadStatus.OPEN.value,
            )
            .values(status=ThreadStatus.CLOSED.value)
        )
        return (await self.store._write(statement)).rowcount

    async def threads_of_job(self, job_id: int) -> list[RelayThread]:
        statement = select(RelayThread).where(t.relay_threads.c.job_id == job_id).order_by(t.relay_threads.c.id)
        return list((await self.session.execute(statement)).scalars())

    async def messages_of(self, thread_ids: list[int]) -> list[RelayMessage]:
        if not thread_ids:
            return []
        statement = select(RelayMessage).where(t.relay_messages.c.thread_id.in_(thread_ids)).order_by(t.relay_messages.c.id)
        return list((await self.session.execute(statement)).scalars())

    # --- evidence of a job -----------------------------------------------------------------------

    async def photos_of_visits(self, visit_ids: list[int]) -> list[model.Photo]:
        if not visit_ids:
            return []
        statement = select(model.Photo).where(t.photos.c.visit_id.in_(visit_ids)).order_by(t.photos.c.id)
        return list((await self.session.execute(statement)).scalars())

    async def answers_of_visits(self, visit_ids: list[int]) -> list[model.ChecklistAnswer]:
        if not visit_ids:
            return []
        statement = select(model.ChecklistAnswer).where(t.checklist_answers.c.visit_id.in_(visit_ids)).order_by(t.checklist_answers.c.id)
        return list((await self.session.execute(statement)).scalars())

    async def reports_of_visits(self, visit_ids: list[int]) -> list[model.ProblemReport]:
        if not visit_ids:
            return []
        statement = select(model.ProblemReport).where(t.problem_reports.c.visit_id.in_(visit_ids)).order_by(t.problem_reports.c.id)
        return list((await self.session.execute(statement)).scalars())

    async def ratings_of_job(self, job_id: int) -> list[model.Rating]:
        statement = select(model.Rating).where(t.ratings.c.job_id == job_id).order_by(t.ratings.c.id)
        return list((await self.session.execute(statement)).scalars())
