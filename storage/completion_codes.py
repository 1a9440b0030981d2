"""Rows of completion codes (hashes only), wrong tries per technician and day, per-source policies, delivered-item checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from domain import model
from domain.completion_codes import MAX_WRONG_PER_CODE, MAX_WRONG_PER_TECHNICIAN_DAY, delivered_items
from domain.lifecycle import DONE
from storage import tables as t
from storage.repository import Store


@dataclass(frozen=True)
class CodeRow:
    visit_id: int
    code_hash: str
    salt: str
    issued_at: datetime
    wrong_tries: int
    resends: int
    locked_at: datetime | None
    used_at: datetime | None
    outcome: str | None

    @property
    def pending(self) -> bool:
        """Issued and neither used nor waived: the visit completes only with it."""
        return self.used_at is None


class CodeStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    async def code_of(self, visit_id: int, *, for_update: bool = False) -> CodeRow | None:
        statement = select(t.completion_codes).where(t.completion_codes.c.visit_id == visit_id)
        if for_update and self.store.is_postgres:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).mappings().first()
        return CodeRow(**row) if row else None

    async def codes_of(self, visit_ids: Iterable[int]) -> dict[int, CodeRow]:
        ids = list(set(visit_ids))
        if not ids:
            return {}
        rows = (await self.session.execute(select(t.completion_codes).where(t.completion_codes.c.visit_id.in_(ids)))).mappings()
        return {row["visit_id"]: CodeRow(**row) for row in rows}

    async def put_code(self, visit_id: int, code_hash: str, salt: str, now: datetime) -> None:
        """A new code for the visit, replacing its old one; its wrong tries and lock carry over (only a dispatcher lifts them)."""
        existing = await self.code_of(visit_id, for_update=True)
        if existing is None:
            await self.store._write(t.completion_codes.insert().values(
                visit_id=visit_id, code_hash=code_hash, salt=salt, issued_at=now, wrong_tries=0, resends=0,
            ))
            return
        await self.store._write(update(t.completion_codes).where(t.completion_codes.c.visit_id == visit_id).values(
            code_hash=code_hash, salt=salt, issued_at=now, resends=t.completion_codes.c.resends + 1,
        ))

    async def change(self, visit_id: int, **values: Any) -> None:
        await self.store._write(update(t.completion_codes).where(t.completion_codes.c.visit_id == visit_id).values(**values))

    async def count_wrong(self, visit_id: int, *, lock_at: datetime | None) -> None:
        values: dict[str, Any] = {"wrong_tries": t.completion_codes.c.wrong_tries + 1}
        if lock_at is not None:
            values["locked_at"] = lock_at
        await self.change(visit_id, **values)

    # --- wrong tries per technician and local day ----------------------------------------------------

    async def wrong_today(self, technician_id: int, day: str, *, for_update: bool = False) -> int:
        statement = select(t.completion_code_tries.c.wrong).where(
            t.completion_code_tries.c.technician_id == technician_id, t.completion_code_tries.c.day == day,
        )
        if for_update and self.store.is_postgres:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none() or 0

    async def count_wrong_today(self, technician_id: int, day: str) -> None:
        table = t.completion_code_tries
        done = await self.store._write(
            update(table).where(table.c.technician_id == technician_id, table.c.day == day).values(wrong=table.c.wrong + 1)
        )
        if done.rowcount == 0:
            # two first tries at once: the loser's insert fails and the bus runs it again, then as an update
            await self.store._write(table.insert().values(technician_id=technician_id, day=day, wrong=1))

    # --- per-source policies ---------------------------------------------------------------------------

    async def source_policies(self) -> dict[str, str]:
        rows = await self.session.execute(select(t.completion_code_sources.c.source, t.completion_code_sources.c.policy))
        return {source: policy for source, policy in rows.all()}

    async def source_policy(self, source: str) -> str | None:
        statement = select(t.completion_code_sources.c.policy).where(t.completion_code_sources.c.source == source)
        policy: str | None = (await self.session.execute(statement)).scalar_one_or_none()
        return policy

    async def put_source_policy(self, source: str, policy: str | None, now: datetime) -> None:
        """The source's own policy; None: it follows the shop's default again."""
        table = t.completion_code_sources
        await self.store._write(delete(table).where(table.c.source == source))
        if policy is not None:
            await self.store._write(table.insert().values(source=source, policy=policy, updated_at=now))

    # --- delivered-item checks ---------------------------------------------------------------------------

    async def checked_visits(self, visit_ids: Iterable[int]) -> set[int]:
        ids = list(set(visit_ids))
        if not ids:
            return set()
        statement = select(t.delivered_item_checks.c.visit_id).where(t.delivered_item_checks.c.visit_id.in_(ids))
        return set((await self.session.execute(statement)).scalars())

    async def item_check(self, visit_id: int) -> dict[str, Any] | None:
        statement = select(t.delivered_item_checks).where(t.delivered_item_checks.c.visit_id == visit_id)
        row = (await self.session.execute(statement)).mappings().first()
        return dict(row) if row else None

    async def add_item_check(self, visit_id: int, marks: list[list[str]], report_id: int | None, now: datetime) -> None:
        await self.store._write(t.delivered_item_checks.insert().values(visit_id=visit_id, marks=marks, report_id=report_id, checked_at=now))


# --- what the conversation views read --------------------------------------------------------------------


async def code_states(store: Store, visit_ids: list[int], technician_id: int, day: str) -> dict[int, str]:
    """The technician's visits that complete only with a code, each "pending", "code_locked" (its tries are used up) or
    "technician_locked" (the technician's for the day are)."""
    codes = CodeStore(store)
    pending = {visit_id: row for visit_id, row in (await codes.codes_of(visit_ids)).items() if row.pending}
    if not pending:
        return {}
    tired = await codes.wrong_today(technician_id, day) >= MAX_WRONG_PER_TECHNICIAN_DAY
    return {
        visit_id: "technician_locked" if tired else "code_locked" if row.wrong_tries >= MAX_WRONG_PER_CODE else "pending"
        for visit_id, row in pending.items()
    }


async def unchecked_deliveries(store: Store, visits: list[model.Visit], jobs: Mapping[int, model.Job]) -> dict[int, tuple[str, ...]]:
    """Finished deliveries among the visits whose items their customer has not checked yet, with those items."""
    done = [v for v in visits if v.kind == model.ServiceKind.DELIVERY.value and v.state in DONE and v.job_id in jobs]
    checked = await CodeStore(store).checked_visits(model.stored_id(v) for v in done)
    return {model.stored_id(v): delivered_items(jobs[v.job_id]) for v in done if v.id not in checked}
