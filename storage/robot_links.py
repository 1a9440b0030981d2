"""Queries for robot action links (single-use links standing in for a robot alert's buttons) and the dispatcher they act as."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from sqlalchemy import insert, select, update

from domain.model import Dispatcher
from storage import tables as t
from storage.repository import Store
from storage.rows import Json, shaped


class RobotLinkRow(TypedDict):
    id: int
    route: str
    action: str
    label: str
    alert_text: str
    alert_digest: str
    language: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    outcome: Json | None


class RobotLinkStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    async def open_link(self, route: str, alert_digest: str, action: str, now: datetime) -> RobotLinkRow | None:
        """The newest unused, unexpired link of this alert's button: an alert sent again (a retry, a failover) reuses it."""
        c = t.robot_action_links.c
        row = (
            await self.session.execute(
                select(t.robot_action_links)
                .where(c.route == route, c.alert_digest == alert_digest, c.action == action, c.used_at.is_(None), c.expires_at > now)
                .order_by(c.id.desc())
                .limit(1)
            )
        ).mappings().first()
        return shaped(row, RobotLinkRow) if row else None

    async def add_link(self, *, route: str, action: str, label: str, alert_text: str, alert_digest: str, language: str,
                       now: datetime, expires_at: datetime) -> RobotLinkRow:
        values = dict(route=route, action=action, label=label, alert_text=alert_text, alert_digest=alert_digest, language=language,
                      created_at=now, expires_at=expires_at)
        key = (await self.store._write(insert(t.robot_action_links).values(**values))).inserted_primary_key
        if key is None:
            raise RuntimeError("robot action link was not inserted")
        found = await self.link(key[0])
        if found is None:
            raise RuntimeError("robot action link vanished right after it was inserted")
        return found

    async def link(self, link_id: int) -> RobotLinkRow | None:
        row = (await self.session.execute(select(t.robot_action_links).where(t.robot_action_links.c.id == link_id))).mappings().first()
        return shaped(row, RobotLinkRow) if row else None

    async def use(self, link_id: int, used_by: str, outcome: Json, now: datetime) -> bool:
        """Mark a link used, if nobody did and it has not expired; False: too late (another tab or person won)."""
        c = t.robot_action_links.c
        result = await self.store._write(
            update(t.robot_action_links)
            .where(c.id == link_id, c.used_at.is_(None), c.expires_at > now)
            .values(used_at=now, used_by=used_by, outcome=outcome)
        )
        return result.rowcount == 1

    async def actor(self, route: str, name: str) -> int:
        """The dispatcher a route's links act as, made the first time one is used (``name`` says who that is)."""
        query = select(t.robot_link_actors.c.dispatcher_id).where(t.robot_link_actors.c.route == route)
        found: int | None = (await self.session.execute(query)).scalar_one_or_none()
        if found is not None:
            return found
        dispatcher = await self.store.add(Dispatcher(name))
        if dispatcher.id is None:
            raise RuntimeError("dispatcher was not inserted")
        # two first uses at once: one insert wins, the other's dispatcher row is left unused (harmless, no bindings)
        await self.session.execute(
            self.store._insert(t.robot_link_actors).values(route=route, dispatcher_id=dispatcher.id).on_conflict_do_nothing()
        )
        winner: int = (await self.session.execute(query)).scalar_one()
        return winner
