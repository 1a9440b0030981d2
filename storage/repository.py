"""Queries over one database session: the repository every handler and view loader uses."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import typing
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, String, Table, and_, any_, bindparam, cast, delete, false, func, insert, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import class_mapper
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine

from domain import model
from domain.lifecycle import OPEN
from storage import tables as t
from storage.rows import ConversationRow, EventRow, InboxRow, Json, LinkTokenRow, OutboxRow, all_shaped, shaped

Entity = TypeVar("Entity", bound=model.Stored)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


LINK_SECRET = "links"


def derive_token(key: bytes, purpose: str, subject_id: int, nonce: str) -> str:
    """A deep-link key: 32 chars of base64url (192 bits), within Telegram's 64-char start payload.

    Derived rather than random so that a repeated request (an order posted again) can be answered
    with the same link; only its hash is stored, so the table alone does not give links away.
    """
    digest = hmac.new(key, f"{purpose}:{subject_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


class Store:
    """Conditions name the tables' columns: the domain classes are plain dataclasses mapped onto the tables, so
    their class attributes are not typed as columns. A select of columns alone names its class in
    ``select_from``, which keeps it an ORM query: those flush the session's pending changes before they read."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def is_postgres(self) -> bool:
        bind = self.session.bind
        if bind is None:
            raise RuntimeError("the store's session is bound to no database")
        return bind.dialect.name == "postgresql"

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can say ON CONFLICT DO NOTHING, in the database's own dialect."""
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    async def _write(self, statement: UpdateBase, parameters: dict[str, Any] | None = None) -> CursorResult[Any]:
        """Run an INSERT, UPDATE or DELETE; its result tells how many rows it touched."""
        result = await self.session.execute(statement, parameters)
        if not isinstance(result, CursorResult):
            raise TypeError(f"{type(statement).__name__} gave no cursor result")
        return result

    async def add(self, entity: Entity) -> Entity:
        self.session.add(entity)
        await self.session.flush()
        return entity

    async def get(self, cls: type[Entity], entity_id: int | None, *, for_update: bool = False) -> Entity | None:
        if entity_id is None:
            return None
        found: Entity | None = (await self.session.execute(_by_id(cls, for_update and self.is_postgres), {"p_id": entity_id})).scalar_one_or_none()
        return found

    async def load(self, cls: type[Entity], entity_id: int, *, for_update: bool = False) -> Entity:
        """A row that must exist because another row or an event names it: a missing one is a broken reference."""
        entity = await self.get(cls, entity_id, for_update=for_update)
        if entity is None:
            raise LookupError(f"{cls.__name__} {entity_id} does not exist")
        return entity

    # --- link tokens ---------------------------------------------------------------------------

    async def server_secret(self, name: str, now: datetime) -> bytes:
        """A random key made once per installation; the first process to ask creates it, all share it."""
        query = select(t.server_secrets.c.value).where(t.server_secrets.c.name == name)
        value = (await self.session.execute(query)).scalar_one_or_none()
        if value is None:
            await self.session.execute(
                self._insert(t.server_secrets).values(name=name, value=secrets.token_hex(32), created_at=now).on_conflict_do_nothing()
            )
            value = (await self.session.execute(query)).scalar_one()
        return bytes.fromhex(value)

    async def issue_token(self, purpose: str, subject_id: int, now: datetime, ttl: timedelta) -> str:
        nonce = secrets.token_hex(16)
        token = derive_token(await self.server_secret(LINK_SECRET, now), purpose, subject_id, nonce)
        await self.session.execute(
            insert(t.link_tokens).values(
                token_hash=hash_token(token), purpose=purpose, subject_id=subject_id, expires_at=now + ttl, nonce=nonce
            )
        )
        return token

    async def current_token(self, purpose: str, subject_id: int, now: datetime) -> str | None:
        """The newest link for this subject that still works, as it was handed out; None if there is none."""
        row = (
            await self.session.execute(
                select(t.link_tokens.c.nonce)
                .where(
                    t.link_tokens.c.purpose == purpose, t.link_tokens.c.subject_id == subject_id,
                    t.link_tokens.c.expires_at > now, t.link_tokens.c.nonce.is_not(None),
                )
                .order_by(t.link_tokens.c.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        return derive_token(await self.server_secret(LINK_SECRET, now), purpose, subject_id, row)

    async def expire_tokens(self, purpose: str, subject_id: int, at: datetime) -> None:
        """Bring forward the expiry of a subject's links to ``at`` (never pushes one later)."""
        await self.session.execute(
            update(t.link_tokens)
            .where(t.link_tokens.c.purpose == purpose, t.link_tokens.c.subject_id == subject_id, t.link_tokens.c.expires_at > at)
            .values(expires_at=at)
        )

    async def renew_token(self, purpose: str, subject_id: int, at: datetime) -> None:
        """Make the subject's newest link work until ``at`` again, even if it expired (a closed job reopened); older
        links it replaced stay as they are."""
        newest = (
            select(t.link_tokens.c.id)
            .where(t.link_tokens.c.purpose == purpose, t.link_tokens.c.subject_id == subject_id)
            .order_by(t.link_tokens.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        await self.session.execute(update(t.link_tokens).where(t.link_tokens.c.id == newest).values(expires_at=at))

    async def find_token(self, token: str, purpose: str) -> LinkTokenRow | None:
        row = (
            await self.session.execute(
                select(t.link_tokens).where(t.link_tokens.c.token_hash == hash_token(token), t.link_tokens.c.purpose == purpose)
            )
        ).mappings().first()
        return shaped(row, LinkTokenRow) if row else None

    async def use_token(self, token_id: int, used_by: str, now: datetime) -> bool:
        """Mark a token used; False when another chat used it first."""
        result = await self._write(
            update(t.link_tokens)
            .where(t.link_tokens.c.id == token_id, t.link_tokens.c.used_at.is_(None))
            .values(used_at=now, used_by=used_by)
        )
        return result.rowcount == 1

    # --- chats ---------------------------------------------------------------------------------

    async def binding(self, platform: str, bot: str, chat_id: str, kind: str) -> model.ChatBinding | None:
        key = {"p_platform": platform, "p_bot": bot, "p_chat_id": chat_id, "p_kind": kind}
        found: model.ChatBinding | None = (await self.session.execute(_binding(), key)).scalar_one_or_none()
        return found

    async def bindings_of(self, kind: str, subject_id: int) -> list[model.ChatBinding]:
        return list(
            (
                await self.session.execute(
                    select(model.ChatBinding)
                    .where(t.chat_bindings.c.subject_kind == kind, t.chat_bindings.c.subject_id == subject_id)
                    .order_by(t.chat_bindings.c.id)
                )
            ).scalars()
        )

    async def dispatcher_for_user(self, platform: str, bot: str, user_id: str) -> model.ChatBinding | None:
        return (
            await self.session.execute(
                select(model.ChatBinding).where(
                    t.chat_bindings.c.platform == platform,
                    t.chat_bindings.c.bot == bot,
                    t.chat_bindings.c.user_id == user_id,
                    t.chat_bindings.c.subject_kind == "dispatcher",
                )
            )
        ).scalars().first()

    async def groups_for_region(self, region: str) -> list[model.DispatchGroup]:
        groups = list(
            (
                await self.session.execute(
                    select(model.DispatchGroup).where(
                        or_(t.dispatch_groups.c.region == region, t.dispatch_groups.c.region.is_(None)),
                        t.dispatch_groups.c.purpose == "dispatch",  # the managers' groups get reports, not alerts
                    )
                )
            ).scalars()
        )
        specific = [g for g in groups if g.region == region]
        return specific or groups

    async def customer_by_phone(self, phone: str) -> model.Customer | None:
        """The first customer known by this phone number."""
        statement = select(model.Customer).where(t.customers.c.phone == phone).order_by(t.customers.c.id)
        return (await self.session.execute(statement)).scalars().first()

    # --- jobs and visits -----------------------------------------------------------------------

    async def job_by_ref(self, source: str, external_ref: str) -> model.Job | None:
        """The order's job at its own address (part 1); ``jobs_by_ref`` has the jobs at its lines' other addresses too."""
        return (
            await self.session.execute(
                select(model.Job).where(t.jobs.c.source == source, t.jobs.c.external_ref == external_ref, t.jobs.c.part == 1)
            )
        ).scalar_one_or_none()

    async def jobs_by_ref(self, source: str, external_ref: str) -> list[model.Job]:
        """Every job of one order, one per address, the order's own address (part 1) first."""
        statement = select(model.Job).where(t.jobs.c.source == source, t.jobs.c.external_ref == external_ref).order_by(t.jobs.c.part)
        return list((await self.session.execute(statement)).scalars())

    async def visits_of_job(self, job_id: int) -> list[model.Visit]:
        return list(
            (await self.session.execute(select(model.Visit).where(t.visits.c.job_id == job_id).order_by(t.visits.c.sequence))).scalars()
        )

    async def jobs_of_customer(self, customer_id: int, open_only: bool = True) -> list[model.Job]:
        statement = select(model.Job).where(t.jobs.c.customer_id == customer_id).order_by(t.jobs.c.id)
        if open_only:
            statement = statement.where(t.jobs.c.status == "open")
        return list((await self.session.execute(statement)).scalars())

    async def visits_of_technician(self, technician_id: int, statuses: tuple[model.VisitStatus, ...] | None = None) -> list[model.Visit]:
        statement = select(model.Visit).where(t.visits.c.technician_id == technician_id)
        if statuses:
            statement = statement.where(t.visits.c.status.in_([s.value for s in statuses]))
        statement = statement.order_by(t.visits.c.slot_start, t.visits.c.id)
        return list((await self.session.execute(statement)).scalars())

    async def crew_visits_of(self, technician_id: int, statuses: tuple[model.VisitStatus, ...]) -> list[model.Visit]:
        """Visits the technician joins as a crew member (not the lead), in these statuses."""
        statement = (
            select(model.Visit)
            .where(t.visits.c.crew_size > 1, t.visits.c.status.in_([s.value for s in statuses]), self._in_crew(technician_id))
            .order_by(t.visits.c.slot_start, t.visits.c.id)
        )
        return list((await self.session.execute(statement)).scalars())

    def _in_crew(self, technician_id: int) -> ColumnElement[bool]:
        """Whether the visit's crew (a JSON list) names the technician: looked into by each database's own JSON
        functions, so only their crew rows come back."""
        if self.is_postgres:
            return cast(t.visits.c.crew_ids, postgresql.JSONB).contains([technician_id])
        members = func.json_each(t.visits.c.crew_ids).table_valued("value")
        return select(members.c.value).where(members.c.value == technician_id).exists()

    async def technician_visits(
        self, technician_id: int, statuses: tuple[model.VisitStatus, ...], finished_since: datetime
    ) -> tuple[list[model.Visit], list[model.Visit], list[model.Visit]]:
        """In one statement, what a technician's chat shows: their own visits, those they join as crew (both in these
        statuses; completed ones only if they ended after ``finished_since``, so the list does not grow with every
        visit they ever did) and those offered to them to grab, by offer."""
        completed = model.VisitStatus.COMPLETED
        shown = or_(
            t.visits.c.status.in_([s.value for s in statuses if s is not completed]),
            and_(t.visits.c.status == completed.value, or_(t.visits.c.slot_end.is_(None), t.visits.c.slot_end >= finished_since))
            if completed in statuses else false(),
        )
        offer = (
            select(func.min(t.offers.c.id))
            .where(t.offers.c.visit_id == t.visits.c.id, t.offers.c.technician_id == technician_id, t.offers.c.status == model.OfferStatus.OPEN.value)
            .scalar_subquery()
        )
        statement = (
            select(model.Visit, offer.label("offer"))
            .where(or_(
                and_(t.visits.c.technician_id == technician_id, shown),
                and_(t.visits.c.crew_size > 1, shown, self._in_crew(technician_id)),
                and_(t.visits.c.technician_id.is_(None), offer.is_not(None)),
            ))
            .order_by(t.visits.c.slot_start, t.visits.c.id)
        )
        mine, crew, offered = [], [], []
        for visit, offer_id in (await self.session.execute(statement)).all():
            if visit.technician_id == technician_id:
                mine.append(visit)
            elif technician_id in (visit.crew_ids or []):
                crew.append(visit)
            else:
                offered.append((offer_id, visit))
        return mine, crew, [visit for _, visit in sorted(offered, key=lambda pair: pair[0])]

    async def bookings_between(self, start: datetime, end: datetime) -> list[model.Visit]:
        """Visits holding a technician's time in [start, end): booked and not finished or cancelled."""
        statement = select(model.Visit).where(
            t.visits.c.technician_id.is_not(None),
            t.visits.c.slot_start < end,
            t.visits.c.slot_end > start,
            t.visits.c.status.in_([s.value for s in OPEN]),
        )
        return list((await self.session.execute(statement)).scalars())

    async def unassigned_booked_between(self, start: datetime, end: datetime) -> list[model.Visit]:
        """Booked visits still waiting for a technician (open grab offers, everybody declined)."""
        statement = select(model.Visit).where(
            t.visits.c.technician_id.is_(None),
            t.visits.c.status == model.VisitStatus.BOOKED.value,
            t.visits.c.slot_start < end,
            t.visits.c.slot_end > start,
        )
        return list((await self.session.execute(statement)).scalars())

    async def technicians(self, *, on_duty_only: bool = True) -> list[model.Technician]:
        statement = select(model.Technician).order_by(t.technicians.c.id)
        if on_duty_only:
            statement = statement.where(t.technicians.c.on_duty.is_(True))
        return list((await self.session.execute(statement)).scalars())

    async def template_for(self, kind: str, category: str) -> model.ChecklistTemplate | None:
        return (
            await self.session.execute(
                select(model.ChecklistTemplate).where(
                    t.checklist_templates.c.service_kind == kind, t.checklist_templates.c.product_category == category
                )
            )
        ).scalar_one_or_none()

    async def answers_of(self, visit_id: int) -> dict[str, model.ChecklistAnswer]:
        rows = (await self.session.execute(select(model.ChecklistAnswer).where(t.checklist_answers.c.visit_id == visit_id))).scalars()
        return {a.step_key: a for a in rows}

    async def rating_of(self, visit_id: int) -> model.Rating | None:
        return (await self.session.execute(select(model.Rating).where(t.ratings.c.visit_id == visit_id))).scalar_one_or_none()

    # --- batched reads for the views: one query for many rows ------------------------------------

    async def get_many(self, cls: type[Entity], ids: Iterable[int | None]) -> dict[int, Entity]:
        """The rows with these ids, by id; unknown ids are left out."""
        wanted = {entity_id for entity_id in ids if entity_id is not None}
        if not wanted:
            return {}
        return {model.stored_id(row): row for row in (await self.session.execute(_by_ids(cls), {"p_ids": list(wanted)})).scalars()}

    async def latest_jobs_of_customer(self, customer_id: int, limit: int) -> list[model.Job]:
        """The customer's newest jobs, oldest first."""
        statement = select(model.Job).where(t.jobs.c.customer_id == customer_id).order_by(t.jobs.c.id.desc()).limit(limit)
        return list(reversed(list((await self.session.execute(statement)).scalars())))

    async def visits_of_jobs(self, job_ids: Iterable[int]) -> list[model.Visit]:
        """The visits of these jobs, each job's in its order."""
        wanted = set(job_ids)
        if not wanted:
            return []
        statement = select(model.Visit).where(t.visits.c.job_id.in_(wanted)).order_by(t.visits.c.job_id, t.visits.c.sequence)
        return list((await self.session.execute(statement)).scalars())

    async def templates_for(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], model.ChecklistTemplate]:
        """The checklist templates by (service kind, product category), for these pairs."""
        wanted = set(pairs)
        if not wanted:
            return {}
        statement = select(model.ChecklistTemplate).where(
            t.checklist_templates.c.service_kind.in_({kind for kind, _ in wanted}),
            t.checklist_templates.c.product_category.in_({category for _, category in wanted}),
        )
        found = {(tpl.service_kind, tpl.product_category): tpl for tpl in (await self.session.execute(statement)).scalars()}
        return {pair: tpl for pair, tpl in found.items() if pair in wanted}

    async def answered_steps(self, visit_ids: Iterable[int]) -> dict[int, set[str]]:
        """The checklist step keys answered so far, by visit."""
        wanted = set(visit_ids)
        answered: dict[int, set[str]] = {visit_id: set() for visit_id in wanted}
        if wanted:
            statement = (
                select(t.checklist_answers.c.visit_id, t.checklist_answers.c.step_key)
                .select_from(model.ChecklistAnswer)
                .where(t.checklist_answers.c.visit_id.in_(wanted))
            )
            for visit_id, step_key in (await self.session.execute(statement)).all():
                answered[visit_id].add(step_key)
        return answered

    async def rated_visits(self, visit_ids: Iterable[int]) -> set[int]:
        """Which of these visits the customer has rated."""
        wanted = set(visit_ids)
        if not wanted:
            return set()
        statement = select(t.ratings.c.visit_id).select_from(model.Rating).where(t.ratings.c.visit_id.in_(wanted))
        return set((await self.session.execute(statement)).scalars())

    # --- dispatch ------------------------------------------------------------------------------

    async def dispatch_rules(self) -> list[model.DispatchRule]:
        return list((await self.session.execute(select(model.DispatchRule))).scalars())

    async def offers_of(self, visit_id: int, status: str | None = None) -> list[model.Offer]:
        statement = select(model.Offer).where(t.offers.c.visit_id == visit_id).order_by(t.offers.c.id)
        if status:
            statement = statement.where(t.offers.c.status == status)
        return list((await self.session.execute(statement)).scalars())

    async def open_offer(self, visit_id: int, technician_id: int) -> model.Offer | None:
        return (
            await self.session.execute(
                select(model.Offer).where(
                    t.offers.c.visit_id == visit_id,
                    t.offers.c.technician_id == technician_id,
                    t.offers.c.status == model.OfferStatus.OPEN.value,
                )
            )
        ).scalar_one_or_none()

    async def loads_between(self, start: datetime, end: datetime) -> dict[int, int]:
        """How many visits each technician holds in [start, end)."""
        statement = (
            select(t.visits.c.technician_id, func.count())
            .select_from(model.Visit)
            .where(
                t.visits.c.technician_id.is_not(None),
                t.visits.c.slot_start < end,
                t.visits.c.slot_end > start,
                t.visits.c.status.in_([s.value for s in OPEN]),
            )
            .group_by(t.visits.c.technician_id)
        )
        return {tech: count for tech, count in (await self.session.execute(statement)).all()}

    async def average_ratings(self) -> dict[int, float]:
        statement = (
            select(t.visits.c.technician_id, func.avg(t.ratings.c.score))
            .select_from(model.Rating)
            .join(model.Visit, t.visits.c.id == t.ratings.c.visit_id)
            .group_by(t.visits.c.technician_id)
        )
        return {tech: float(avg) for tech, avg in (await self.session.execute(statement)).all() if tech is not None}

    # --- timeline ------------------------------------------------------------------------------

    async def record_events(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(t.domain_events), rows)

    async def timeline(self, job_id: int) -> list[EventRow]:
        rows = (
            await self.session.execute(
                select(t.domain_events).where(t.domain_events.c.job_id == job_id).order_by(t.domain_events.c.id)
            )
        ).mappings()
        return all_shaped(rows, EventRow)

    # --- conversations -------------------------------------------------------------------------

    async def lock_conversation(self, platform: str, bot: str, chat_id: str, flow: str, state: str, language: str, now: datetime) -> ConversationRow:
        """Load the chat's conversation row, creating it first; on PostgreSQL the row stays locked."""
        key = {"p_platform": platform, "p_bot": bot, "p_chat_id": chat_id}
        statement = _CONVERSATION_LOCKED if self.is_postgres else _CONVERSATION
        # one statement for every update of a chat that has written before; the first one creates the row
        found = (await self.session.execute(statement, key)).mappings().first()
        if found is not None:
            return shaped(found, ConversationRow)
        await self.session.execute(
            self._insert(t.conversations)
            .values(platform=platform, bot=bot, chat_id=chat_id, flow=flow, state=state, data={}, language=language, version=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["platform", "bot", "chat_id"])
        )
        return shaped((await self.session.execute(statement, key)).mappings().one(), ConversationRow)

    async def save_conversation(self, conversation_id: int, *, state: str, data: Json, language: str, now: datetime) -> None:
        await self.session.execute(_CONVERSATION_SAVE, {"p_id": conversation_id, "p_state": state, "p_data": data, "p_language": language, "p_now": now})

    async def conversation_language(self, platform: str, bot: str, chat_id: str) -> str | None:
        language: str | None = (
            await self.session.execute(
                select(t.conversations.c.language).where(
                    t.conversations.c.platform == platform, t.conversations.c.bot == bot, t.conversations.c.chat_id == chat_id
                )
            )
        ).scalar_one_or_none()
        return language

    async def conversation_state(self, platform: str, bot: str, chat_id: str) -> str | None:
        state: str | None = await self.session.scalar(
            select(t.conversations.c.state).where(
                t.conversations.c.platform == platform, t.conversations.c.bot == bot, t.conversations.c.chat_id == chat_id
            )
        )
        return state

    async def chat_is_bound(self, platform: str, bot: str, chat_id: str) -> bool:
        """Whether the chat belongs to someone we know (a customer, technician, dispatcher or group)."""
        query = select(t.chat_bindings.c.id).where(
            t.chat_bindings.c.platform == platform, t.chat_bindings.c.bot == bot, t.chat_bindings.c.chat_id == chat_id
        )
        return await self.session.scalar(query.limit(1)) is not None

    # --- inbox ---------------------------------------------------------------------------------

    async def inbox_add(
        self, platform: str, bot: str, update_id: str, chat_id: str, payload: Json, now: datetime, *, processed: bool = False,
        in_order: bool = False,
    ) -> bool:
        """Store an update once; False when it is there already. ``processed``: stored as handled by this transaction;
        ``in_order``: and only when none of the chat's updates waits (else False too)."""
        row = {
            "platform": platform, "bot": bot, "update_id": update_id, "chat_id": chat_id, "payload": payload,
            "status": "processed" if processed else "received", "attempts": int(processed), "received_at": now,
            "processed_at": now if processed else None,
        }
        if in_order:
            result = await self._write(_INBOX_ADD_IN_ORDER[self.is_postgres], {f"v_{name}": value for name, value in row.items()})
        else:
            result = await self._write(_INBOX_ADD[self.is_postgres], row)
        return result.rowcount == 1

    async def inbox_take(self, platform: str, bot: str, chat_id: str, update_id: str, now: datetime, *, in_order: bool = False) -> bool:
        """Mark a received update processed, in the caller's transaction; False when it is not waiting (handled
        already, failed, or never stored) or, ``in_order``, when an update of the chat stored before it waits too.
        One statement: the look and the mark are the same row write."""
        key = {"p_platform": platform, "p_bot": bot, "p_chat_id": chat_id, "p_update_id": update_id, "p_now": now}
        taken = await self.session.execute(_INBOX_TAKE_IN_ORDER if in_order else _INBOX_TAKE, key)
        return taken.first() is not None

    async def inbox_waiting(self, platform: str, bot: str, chat_id: str) -> list[InboxRow]:
        """The chat's updates stored and not yet handled, oldest first."""
        statement = (
            select(t.inbox)
            .where(t.inbox.c.platform == platform, t.inbox.c.bot == bot, t.inbox.c.chat_id == chat_id, t.inbox.c.status == "received")
            .order_by(t.inbox.c.id)
        )
        return all_shaped((await self.session.execute(statement)).mappings(), InboxRow)

    async def inbox_forget_processed(self, before: datetime) -> int:
        """Drop processed updates received before ``before``; failed ones stay for whoever investigates them."""
        result = await self._write(delete(t.inbox).where(t.inbox.c.status == "processed", t.inbox.c.received_at < before))
        return result.rowcount

    async def inbox_row(self, platform: str, bot: str, update_id: str) -> InboxRow | None:
        statement = select(t.inbox).where(t.inbox.c.platform == platform, t.inbox.c.bot == bot, t.inbox.c.update_id == update_id)
        row = (await self.session.execute(statement)).mappings().first()
        return shaped(row, InboxRow) if row else None

    async def inbox_blank_text(self, platform: str, bot: str, update_id: str) -> None:
        """Forget what an update's text said (a completion code typed), keeping the row that makes a replay change nothing."""
        row = await self.inbox_row(platform, bot, update_id)
        if row is None or not row["payload"].get("text"):
            return
        payload = {**row["payload"], "text": ""}  # still an Inbound's shape (Inbound.from_dict), with nothing typed in it
        await self.session.execute(update(t.inbox).where(t.inbox.c.id == row["id"]).values(payload=payload))

    async def inbox_mark(self, inbox_id: int, status: str, now: datetime, error: str | None = None) -> None:
        await self.session.execute(
            update(t.inbox)
            .where(t.inbox.c.id == inbox_id)
            .values(status=status, processed_at=now if status != "received" else None, error=error, attempts=t.inbox.c.attempts + 1)
        )

    async def inbox_pending(self, limit: int = 100, *, received_before: datetime | None = None) -> list[InboxRow]:
        statement = select(t.inbox).where(t.inbox.c.status == "received")
        if received_before is not None:
            statement = statement.where(t.inbox.c.received_at <= received_before)
        rows = (await self.session.execute(statement.order_by(t.inbox.c.id).limit(limit))).mappings()
        return all_shaped(rows, InboxRow)

    # --- outbox --------------------------------------------------------------------------------

    async def outbox_add(
        self, *, platform: str, bot: str, chat_id: str, payload: Json, dedup_key: str, now: datetime, card: str | None = None
    ) -> None:
        """Queue one message (see ``outbox_add_many``)."""
        await self.outbox_add_many([{"platform": platform, "bot": bot, "chat_id": chat_id, "payload": payload, "dedup_key": dedup_key, "card": card}], now)

    async def outbox_add_many(self, rows: list[dict[str, Any]], now: datetime) -> None:
        """Queue several messages in one statement; each row has platform, bot, chat_id, payload, dedup_key and card.
        A row whose dedup key is queued already is left as it is (a re-run of the same update)."""
        if rows:
            values = [{**row, "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now} for row in rows]
            await self.session.execute(_OUTBOX_ADD[self.is_postgres], values)

    @staticmethod
    def _outbox_sendable(now: datetime | ColumnElement[Any]) -> tuple[ColumnElement[bool], ...]:
        """Due, not held by a live claim, and the first unsent row of its chat (claimed or not): keeps each chat's order."""
        earlier = t.outbox.alias("earlier")
        blocked = (
            select(earlier.c.id)
            .where(
                earlier.c.platform == t.outbox.c.platform,
                earlier.c.bot == t.outbox.c.bot,
                earlier.c.chat_id == t.outbox.c.chat_id,
                earlier.c.status == "pending",
                earlier.c.id < t.outbox.c.id,
            )
            .exists()
        )
        return (
            t.outbox.c.status == "pending",
            t.outbox.c.next_attempt_at <= now,
            or_(t.outbox.c.claimed_until.is_(None), t.outbox.c.claimed_until < now),
            ~blocked,
        )

    async def outbox_claim(
        self,
        relay_id: str,
        now: datetime,
        until: datetime,
        limit: int,
        pulled_platforms: tuple[str, ...],
        chat: tuple[str, str, str] | None = None,
    ) -> list[OutboxRow]:
        """Claim sendable rows (at most one per chat) for one relay until ``until``; ``chat`` narrows it to one chat.

        PostgreSQL: FOR UPDATE SKIP LOCKED lets relays claim side by side without waiting on each other's picks.
        SQLite: every transaction takes the write lock at BEGIN (storage/db.py), so claims run one at a time.
        """
        rows, _ = await self.outbox_claim_noting_unreachable(relay_id, now, until, limit, pulled_platforms, chat)
        return rows

    async def outbox_claim_noting_unreachable(
        self,
        relay_id: str,
        now: datetime,
        until: datetime,
        limit: int,
        pulled_platforms: tuple[str, ...],
        chat: tuple[str, str, str] | None = None,
        in_hand: Collection[int] = (),
    ) -> tuple[list[OutboxRow], set[int]]:
        """``outbox_claim``, and the ids of the claimed rows whose chat is marked undeliverable: only a send to one of
        those needs ``outbox_chat_reachable`` when it goes through, so the others skip that write.

        ``in_hand``: rows this relay is still working on, never claimed again, even once their lease ran out (a second
        copy would go out beside the first)."""
        params: dict[str, Any] = {
            "p_relay_id": relay_id, "p_now": now, "p_until": until, "p_limit": limit,
            "p_pulled": _list_param(pulled_platforms, self.is_postgres), "p_in_hand": _list_param(in_hand, self.is_postgres),
        }
        if chat is not None:
            params.update(p_platform=chat[0], p_bot=chat[1], p_chat_id=chat[2])
        result = await self.session.execute(_outbox_claim(self.is_postgres, chat is not None), params)
        rows: list[OutboxRow] = []
        unreachable: set[int] = set()
        for mapping in result.mappings():
            if mapping["chat_unreachable"]:
                unreachable.add(mapping["id"])
            rows.append(typing.cast(OutboxRow, {key: value for key, value in mapping.items() if key != "chat_unreachable"}))
        return sorted(rows, key=lambda row: row["id"]), unreachable

    async def outbox_finish(self, outbox_id: int, relay_id: str, **values: object) -> bool:
        """Record an attempt's outcome and free the claim, only while the claim is still this relay's."""
        params = {f"p_{key}": value for key, value in values.items()}
        result = await self.session.execute(_outbox_finish(tuple(sorted(values))), {"p_id": outbox_id, "p_relay_id": relay_id, **params})
        return _rowcount(result) == 1

    async def outbox_sending(self, outbox_id: int, relay_id: str, now: datetime, until: datetime) -> bool:
        """The relay is about to send the row: note it, and renew the lease for the send; False if the claim is no longer its."""
        result = await self.session.execute(_OUTBOX_SENDING, {"p_id": outbox_id, "p_relay_id": relay_id, "p_now": now, "p_until": until})
        return _rowcount(result) == 1

    async def outbox_part_accepted(self, outbox_id: int, relay_id: str, payload: Json) -> bool:
        """One part of a message that goes out as several was accepted: its progress (in ``payload``) is kept and the
        send counts as finished up to here, while the claim stays; False if the claim is no longer this relay's."""
        result = await self.session.execute(
            update(t.outbox)
            .where(t.outbox.c.id == outbox_id, t.outbox.c.claimed_by == relay_id, t.outbox.c.status == "pending")
            .values(payload=payload, sending_since=None)
        )
        return _rowcount(result) == 1

    async def outbox_count_maybe_sent(self, outbox_ids: list[int]) -> None:
        """Claimed rows whose last send started and was never recorded: count it as a possible extra delivery."""
        await self.session.execute(
            update(t.outbox)
            .where(t.outbox.c.id.in_(outbox_ids), t.outbox.c.sending_since.is_not(None))
            .values(sending_since=None, maybe_sent=t.outbox.c.maybe_sent + 1)
        )

    async def outbox_claimants(self, now: datetime) -> list[str]:
        """The relays holding live claims on unsent rows."""
        statement = select(t.outbox.c.claimed_by).distinct().where(
            t.outbox.c.status == "pending", t.outbox.c.claimed_by.is_not(None), t.outbox.c.claimed_until >= now
        )
        return list((await self.session.execute(statement)).scalars())

    async def outbox_release_claims(self, relay_ids: list[str]) -> int:
        """Free the claims of relays known to be gone before their leases run out; a send they started stays noted."""
        result = await self._write(
            update(t.outbox)
            .where(t.outbox.c.claimed_by.in_(relay_ids), t.outbox.c.status == "pending")
            .values(claimed_by=None, claimed_until=None)
        )
        return result.rowcount

    async def outbox_migrate_chat(self, platform: str, bot: str, old_chat_id: str, new_chat_id: str) -> int:
        """A group became a supergroup: its unsent rows, bindings and conversation move to the new id.

        A binding or conversation the new id already has wins; the old one is left as it was.
        """
        result = await self._write(
            update(t.outbox)
            .where(
                t.outbox.c.platform == platform, t.outbox.c.bot == bot,
                t.outbox.c.chat_id == old_chat_id, t.outbox.c.status == "pending",
            )
            .values(chat_id=new_chat_id)
        )
        other = t.chat_bindings.alias("other")
        taken = (
            select(other.c.id)
            .where(
                other.c.platform == platform, other.c.bot == bot, other.c.chat_id == new_chat_id,
                other.c.subject_kind == t.chat_bindings.c.subject_kind,
            )
            .exists()
        )
        await self.session.execute(
            update(t.chat_bindings)
            .where(t.chat_bindings.c.platform == platform, t.chat_bindings.c.bot == bot, t.chat_bindings.c.chat_id == old_chat_id, ~taken)
            .values(chat_id=new_chat_id)
        )
        other = t.conversations.alias("other")
        taken = select(other.c.id).where(other.c.platform == platform, other.c.bot == bot, other.c.chat_id == new_chat_id).exists()
        await self.session.execute(
            update(t.conversations)
            .where(t.conversations.c.platform == platform, t.conversations.c.bot == bot, t.conversations.c.chat_id == old_chat_id, ~taken)
            .values(chat_id=new_chat_id)
        )
        return result.rowcount

    async def outbox_chat_unreachable(self, platform: str, bot: str, chat_id: str, now: datetime) -> bool:
        """The chat refused us (blocked, removed): mark its bindings; True when they were not marked yet."""
        result = await self._write(
            update(t.chat_bindings)
            .where(
                t.chat_bindings.c.platform == platform, t.chat_bindings.c.bot == bot,
                t.chat_bindings.c.chat_id == chat_id, t.chat_bindings.c.undeliverable_since.is_(None),
            )
            .values(undeliverable_since=now)
        )
        return result.rowcount > 0

    async def outbox_chat_reachable(self, platform: str, bot: str, chat_id: str) -> None:
        """A message got through: the chat is reachable again."""
        await self.session.execute(
            update(t.chat_bindings)
            .where(
                t.chat_bindings.c.platform == platform, t.chat_bindings.c.bot == bot,
                t.chat_bindings.c.chat_id == chat_id, t.chat_bindings.c.undeliverable_since.is_not(None),
            )
            .values(undeliverable_since=None)
        )

    async def outbox_pending_after(self, platform: str, bot: str, chat_id: str, after_id: int, limit: int) -> list[OutboxRow]:
        """The chat's unsent rows queued behind one row, in order."""
        statement = (
            select(t.outbox)
            .where(
                t.outbox.c.platform == platform, t.outbox.c.bot == bot, t.outbox.c.chat_id == chat_id,
                t.outbox.c.status == "pending", t.outbox.c.id > after_id,
            )
            .order_by(t.outbox.c.id)
            .limit(limit)
        )
        return all_shaped((await self.session.execute(statement)).mappings(), OutboxRow)

    async def outbox_sent_in_digest(self, outbox_ids: list[int], digest_id: int, now: datetime, message_id: str | None) -> None:
        """Rows that went out inside the digest led by ``digest_id``."""
        await self.session.execute(
            update(t.outbox)
            .where(t.outbox.c.id.in_(outbox_ids), t.outbox.c.status == "pending")
            .values(status="sent", sent_at=now, platform_message_id=message_id, digest_of=digest_id, attempts=t.outbox.c.attempts + 1)
        )

    async def outbox_card_message(self, platform: str, bot: str, chat_id: str, card: str, before_id: int) -> str | None:
        """The platform's id of the message that last showed ``card`` in this chat before row ``before_id``, if it can be
        edited alone: a digest carries other alerts too, so a card sent in one (or leading one) is not edited."""
        digest = t.outbox.alias("digest_member")
        led_digest = select(digest.c.id).where(digest.c.digest_of == t.outbox.c.id).exists()
        statement = (
            select(t.outbox.c.platform_message_id, t.outbox.c.digest_of, led_digest.label("led"))
            .where(
                t.outbox.c.platform == platform, t.outbox.c.bot == bot, t.outbox.c.chat_id == chat_id,
                t.outbox.c.card == card, t.outbox.c.id < before_id, t.outbox.c.status == "sent",
                t.outbox.c.platform_message_id.is_not(None),
            )
            .order_by(t.outbox.c.id.desc())
            .limit(1)
        )
        row = (await self.session.execute(statement)).first()
        if row is None or row.digest_of is not None or row.led:
            return None
        return str(row.platform_message_id)

    async def outbox_for_chat(self, platform: str, bot: str, chat_id: str, after_id: int, limit: int = 100) -> list[OutboxRow]:
        statement = (
            select(t.outbox)
            .where(t.outbox.c.platform == platform, t.outbox.c.bot == bot, t.outbox.c.chat_id == chat_id, t.outbox.c.id > after_id)
            .order_by(t.outbox.c.id)
            .limit(limit)
        )
        return all_shaped((await self.session.execute(statement)).mappings(), OutboxRow)

    async def outbox_card_history(self, platform: str, bot: str, chat_id: str, cards: set[str], up_to: int) -> list[dict[str, Any]]:
        """Every row of these cards in one chat up to ``up_to``, oldest first: id, card and payload (where a card shows
        is decided by its history)."""
        statement = (
            select(t.outbox.c.id, t.outbox.c.card, t.outbox.c.payload)
            .where(t.outbox.c.platform == platform, t.outbox.c.bot == bot, t.outbox.c.chat_id == chat_id,
                   t.outbox.c.card.in_(sorted(cards)), t.outbox.c.id <= up_to)
            .order_by(t.outbox.c.id)
        )
        return [dict(row) for row in (await self.session.execute(statement)).mappings()]

    async def outbox_payload_in_chat(self, row_id: int, platform: str, bot: str, chat_id: str) -> Json | None:
        """One message's payload, only if it went to this chat."""
        statement = select(t.outbox.c.payload).where(
            t.outbox.c.id == row_id, t.outbox.c.platform == platform, t.outbox.c.bot == bot, t.outbox.c.chat_id == chat_id
        )
        payload: Json | None = (await self.session.execute(statement)).scalar_one_or_none()
        return payload

    async def outbox_counts(self) -> dict[str, int]:
        """Rows per status, and ``maybe_sent`` when some messages may have gone out twice (a relay died mid-send)."""
        rows = (await self.session.execute(select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status))).all()
        counts = {status: count for status, count in rows}
        maybe_sent = (await self.session.execute(select(func.coalesce(func.sum(t.outbox.c.maybe_sent), 0)))).scalar_one()
        if maybe_sent:
            counts["maybe_sent"] = int(maybe_sent)
        return counts


def _id_column(cls: type[model.Stored]) -> ColumnElement[Any]:
    """The id column of a domain class: the classes are plain dataclasses, mapped onto their tables in storage/tables.py."""
    return class_mapper(cls).c.id


@functools.cache
def _by_id(cls: type[model.Stored], for_update: bool) -> Select[Any]:
    statement = select(cls).where(_id_column(cls) == bindparam("p_id"))
    return statement.with_for_update() if for_update else statement


@functools.cache
def _by_ids(cls: type[model.Stored]) -> Select[Any]:
    return select(cls).where(_id_column(cls).in_(bindparam("p_ids", expanding=True)))


# --- the statements every chat update runs, built once (building a statement costs more than running a cached one) ---

def _key(table: Table) -> tuple[ColumnElement[bool], ...]:
    return (table.c.platform == bindparam("p_platform"), table.c.bot == bindparam("p_bot"))


@functools.cache
def _binding() -> Select[Any]:
    """Built on first use: the domain classes are mapped when the first database engine is made (storage.db)."""
    return select(model.ChatBinding).where(
        *_key(t.chat_bindings), t.chat_bindings.c.chat_id == bindparam("p_chat_id"), t.chat_bindings.c.subject_kind == bindparam("p_kind")
    )


_CONVERSATION = select(t.conversations).where(*_key(t.conversations), t.conversations.c.chat_id == bindparam("p_chat_id"))
_CONVERSATION_LOCKED = _CONVERSATION.with_for_update()
_CONVERSATION_SAVE = (
    update(t.conversations)
    .where(t.conversations.c.id == bindparam("p_id"))
    .values(state=bindparam("p_state"), data=bindparam("p_data"), language=bindparam("p_language"), updated_at=bindparam("p_now"),
            version=t.conversations.c.version + 1)
)
_INBOX_TAKE = (
    update(t.inbox)
    .where(*_key(t.inbox), t.inbox.c.update_id == bindparam("p_update_id"), t.inbox.c.status == "received")
    .values(status="processed", processed_at=bindparam("p_now"), error=None, attempts=t.inbox.c.attempts + 1)
    .returning(t.inbox.c.id)
)


def _waiting_in_chat(prefix: str, *, before: ColumnElement[int] | None = None) -> ColumnElement[bool]:
    """Whether an update of the chat named by the bound parameters waits (stored before ``before``, when given)."""
    earlier = t.inbox.alias("earlier")
    query = select(earlier.c.id).where(
        earlier.c.platform == bindparam(f"{prefix}platform"), earlier.c.bot == bindparam(f"{prefix}bot"),
        earlier.c.chat_id == bindparam(f"{prefix}chat_id"), earlier.c.status == "received",
    )
    return (query.where(earlier.c.id < before) if before is not None else query).exists()


_INBOX_TAKE_IN_ORDER = _INBOX_TAKE.where(~_waiting_in_chat("p_", before=t.inbox.c.id))
_INBOX_COLUMNS = ("platform", "bot", "update_id", "chat_id", "payload", "status", "attempts", "received_at", "processed_at")
# the new row's values as a one-row SELECT that yields nothing while an update of the chat waits
_INBOX_ROW_IN_ORDER = select(
    *(bindparam(f"v_{name}", type_=t.inbox.c[name].type) for name in _INBOX_COLUMNS)
).where(~_waiting_in_chat("v_"))
# keyed by "is PostgreSQL": ON CONFLICT DO NOTHING in each database's own dialect
_INBOX_ADD = {
    postgres: (postgresql.insert if postgres else sqlite.insert)(t.inbox).on_conflict_do_nothing(index_elements=["platform", "bot", "update_id"])
    for postgres in (True, False)
}
_INBOX_ADD_IN_ORDER = {
    postgres: (postgresql.insert if postgres else sqlite.insert)(t.inbox)
    .from_select(_INBOX_COLUMNS, _INBOX_ROW_IN_ORDER)
    .on_conflict_do_nothing(index_elements=["platform", "bot", "update_id"])
    for postgres in (True, False)
}
_OUTBOX_ADD = {
    postgres: (postgresql.insert if postgres else sqlite.insert)(t.outbox).on_conflict_do_nothing(index_elements=["dedup_key"])
    for postgres in (True, False)
}


# --- the relay's statements, built once: it runs them for every message it sends ---

def _rowcount(result: Result[Any]) -> int:
    """How many rows an INSERT, UPDATE or DELETE touched."""
    if not isinstance(result, CursorResult):
        raise TypeError("the statement gave no cursor result")
    return result.rowcount


def _not_among(column: ColumnElement[Any], name: str, postgres: bool, item: TypeEngine[Any]) -> ColumnElement[bool]:
    """``column NOT IN`` a list given as one parameter (an array; JSON text on SQLite), so the statement stays the same
    whatever the list's length: an expanding IN is rendered again on every run, which cost the relay a third of its CPU."""
    if postgres:
        return ~(column == any_(bindparam(name, type_=postgresql.ARRAY(item))))
    return column.not_in(select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=String()))))


def _list_param(values: Collection[Any], postgres: bool) -> Any:
    """A list for ``_not_among``."""
    return list(values) if postgres else json.dumps(list(values))


@functools.cache
def _outbox_claim(postgres: bool, one_chat: bool) -> UpdateBase:
    picked = (
        select(t.outbox.c.id)
        .where(
            *Store._outbox_sendable(bindparam("p_now")),
            _not_among(t.outbox.c.platform, "p_pulled", postgres, String()),
            _not_among(t.outbox.c.id, "p_in_hand", postgres, Integer()),
        )
        .order_by(t.outbox.c.id)
        .limit(bindparam("p_limit"))
    )
    if one_chat:
        picked = picked.where(*_key(t.outbox), t.outbox.c.chat_id == bindparam("p_chat_id"))
    if postgres:
        picked = picked.with_for_update(skip_locked=True)
    claimed = picked.cte("picked")
    # SQLite writes RETURNING's columns without their table, which inside this subquery would name chat_bindings' own
    marked = t.chat_bindings
    row: dict[str, ColumnElement[Any]] = {name: literal_column(f"{t.outbox.name}.{name}") for name in ("platform", "bot", "chat_id")}
    unreachable = (
        select(marked.c.id)
        .where(
            marked.c.platform == row["platform"], marked.c.bot == row["bot"], marked.c.chat_id == row["chat_id"],
            marked.c.undeliverable_since.is_not(None),
        )
        .exists()
    )
    return (
        update(t.outbox)
        .where(t.outbox.c.id.in_(select(claimed.c.id)))
        .values(claimed_by=bindparam("p_relay_id"), claimed_until=bindparam("p_until"))
        .returning(*t.outbox.c, unreachable.label("chat_unreachable"))
    )


@functools.cache
def _outbox_finish(keys: tuple[str, ...]) -> UpdateBase:
    """One statement per kind of outcome (the columns it sets)."""
    return (
        update(t.outbox)
        .where(t.outbox.c.id == bindparam("p_id"), t.outbox.c.claimed_by == bindparam("p_relay_id"))
        .values(claimed_by=None, claimed_until=None, sending_since=None, **{key: bindparam(f"p_{key}") for key in keys})
    )


_OUTBOX_SENDING = (
    update(t.outbox)
    .where(t.outbox.c.id == bindparam("p_id"), t.outbox.c.claimed_by == bindparam("p_relay_id"), t.outbox.c.status == "pending")
    .values(sending_since=bindparam("p_now"), claimed_until=bindparam("p_until"))
)
