"""SQLAlchemy tables, and the imperative mapping of the domain's dataclasses onto them."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Index,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import registry
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

from domain import model, relay


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and gives them back aware, the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("phone", String(40), nullable=False),
    Column("language", String(8), nullable=False, default="en"),
)

technicians = Table(
    "technicians",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("phone", String(40), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("skills", JSON, nullable=False),
    Column("regions", JSON, nullable=False),
    Column("working_hours", JSON, nullable=False),
    Column("home_lat", Float),
    Column("home_lon", Float),
    Column("on_duty", Boolean, nullable=False, default=True),
    Column("language", String(8), nullable=False, default="en"),
    Column("last_lat", Float),  # the last location the technician shared, for arrival estimates
    Column("last_lon", Float),
    Column("last_seen_at", UTCDateTime),
    Column("vehicle_capacity", Integer),  # litres of cargo space; none: carries no deliveries' load limit
)

dispatchers = Table(
    "dispatchers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
)

dispatch_groups = Table(
    "dispatch_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("region", String(100)),
    Column("language", String(8), nullable=False, default="en"),
)

chat_bindings = Table(
    "chat_bindings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(20), nullable=False),
    Column("bot", String(20), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("subject_kind", String(20), nullable=False),
    Column("subject_id", Integer, nullable=False),
    Column("user_id", String(64)),
    Column("language", String(8), nullable=False, default="en"),
    Column("undeliverable_since", UTCDateTime),  # the user blocked the bot, or the chat is gone
    UniqueConstraint("platform", "bot", "chat_id", "subject_kind", name="uq_chat_bindings_chat"),
    Index("ix_chat_bindings_subject", "subject_kind", "subject_id"),
    Index("ix_chat_bindings_user", "platform", "bot", "user_id"),
)

link_tokens = Table(
    "link_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("purpose", String(20), nullable=False),
    Column("subject_id", Integer, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
    Column("used_by", String(140)),
    # the token is derived from the server secret and this nonce, so the same link can be handed out again
    Column("nonce", String(32)),
    Index("ix_link_tokens_subject", "purpose", "subject_id"),
)

# Keys generated once per installation and shared by every process through the database
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(60), nullable=False),
    Column("external_ref", String(120), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("address_text", String(500), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("region", String(100), nullable=False),
    Column("product_category", String(100), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("brand", String(100)),
    Column("items", JSON, nullable=False),
    Column("notes", Text, nullable=False, default=""),
    Column("status", String(20), nullable=False, default="open"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("volume_liters", Integer),  # cargo the delivery takes up in a vehicle
    Column("priority", String(10), nullable=False, default="normal", server_default="normal"),  # normal | urgent
    UniqueConstraint("source", "external_ref", name="uq_jobs_source_ref"),
)

visits = Table(
    "visits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("duration_minutes", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("depends_on_visit_id", Integer, ForeignKey("visits.id")),
    Column("technician_id", Integer, ForeignKey("technicians.id"), index=True),
    Column("slot_start", UTCDateTime),
    Column("slot_end", UTCDateTime),
    Column("declined_by", JSON, nullable=False),
    Column("checkin_distance_m", Float),
    Column("checkin_reason", Text),
    Column("held_from", String(20)),
    Column("checklist_position", Integer, nullable=False, default=0),
    Column("eta_minutes", Integer),  # the last arrival estimate the customer was given
    Column("planned_start", UTCDateTime),  # when the day's route has the technician start it
    Column("close_notified", Boolean, nullable=False, default=False, server_default=false()),
    Column("crew_size", Integer, nullable=False, default=1, server_default="1"),  # technicians needed at once
    Column("crew_ids", JSON, nullable=False, default=list, server_default="[]"),  # the others besides technician_id
    Column("min_gap_minutes", Integer, nullable=False, default=0, server_default="0"),  # after the predecessor ends
    Column("checkin_kind", String(10)),  # live | static: how the check-in location was shared
    Column("follow_up_of_visit_id", Integer),  # a return visit: the visit that ended needing it
    Column("return_reason", Text),  # why this visit ended needing a return visit
    Column("fault_category", String(60)),  # repairs: what was wrong
    Column("repair_method", String(60)),  # repairs: what was done about it
    Column("late_minutes", Integer, nullable=False, default=0, server_default="0"),  # delays the technician announced
    Column("appointment_confirmed_at", UTCDateTime),  # the customer confirmed the appointment (migration 0011)
    Column("version", Integer, nullable=False, default=0),
)

checklist_templates = Table(
    "checklist_templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("service_kind", String(20), nullable=False),
    Column("product_category", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("steps", JSON, nullable=False),
    UniqueConstraint("service_kind", "product_category", name="uq_checklist_templates_kind_category"),
)

photos = Table(
    "photos",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id")),
    Column("platform", String(20), nullable=False),
    Column("file_id", String(200), nullable=False),
    Column("path", String(500), nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

checklist_answers = Table(
    "checklist_answers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False),
    Column("step_key", String(100), nullable=False),
    Column("value", Text, nullable=False),
    Column("photo_id", Integer, ForeignKey("photos.id")),
    Column("answered_at", UTCDateTime, nullable=False),
    UniqueConstraint("visit_id", "step_key", name="uq_checklist_answers_visit_step"),
)

problem_reports = Table(
    "problem_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, index=True),
    Column("technician_id", Integer, ForeignKey("technicians.id")),
    Column("reason", String(40), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("photo_ids", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("resolution", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acknowledged_by", Integer),  # the dispatcher who acknowledged it (migration 0013)
    Column("acknowledged_at", UTCDateTime),
)

dispatch_rules = Table(
    "dispatch_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("region", String(100)),
    Column("service_kind", String(20)),
    Column("mode", String(10), nullable=False),
    Column("grab_top_n", Integer, nullable=False, default=3),
    Column("grab_minutes", Integer, nullable=False, default=30),
    UniqueConstraint("region", "service_kind", name="uq_dispatch_rules_region_kind"),
)

offers = Table(
    "offers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, index=True),
    Column("technician_id", Integer, ForeignKey("technicians.id"), nullable=False),
    Column("status", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    UniqueConstraint("visit_id", "technician_id", name="uq_offers_visit_technician"),
    Index("ix_offers_open", "status", "expires_at"),
)

ratings = Table(
    "ratings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("visit_id", Integer, ForeignKey("visits.id"), unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("score", Integer, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acknowledged_by", Integer),  # the dispatcher who acknowledged a low rating (migration 0013)
    Column("acknowledged_at", UTCDateTime),
)

domain_events = Table(
    "domain_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, nullable=False, index=True),
    Column("visit_id", Integer),
    Column("type", String(60), nullable=False),
    Column("data", JSON, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(20), nullable=False),
    Column("bot", String(20), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("flow", String(20), nullable=False),
    Column("state", String(60), nullable=False),
    Column("data", JSON, nullable=False),
    Column("language", String(8), nullable=False),
    Column("version", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("platform", "bot", "chat_id", name="uq_conversations_chat"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(20), nullable=False),
    Column("bot", String(20), nullable=False),
    Column("update_id", String(200), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # received | processed | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    UniqueConstraint("platform", "bot", "update_id", name="uq_inbox_update"),
    Index("ix_inbox_status", "status", "id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform", String(20), nullable=False),
    Column("bot", String(20), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("dedup_key", String(400), nullable=False, unique=True),
    Column("status", String(20), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("last_error", Text),
    Column("platform_message_id", String(64)),
    Column("claimed_by", String(64)),  # the relay that is sending the row right now
    Column("claimed_until", UTCDateTime),  # its lease: after this another relay may take the row over
    Column("held_since", UTCDateTime),  # an alert first held back by its busy group channel: sent later in a digest
    Column("digest_of", Integer),  # sent inside the digest that row id led
    # committed right before the platform call, cleared with the outcome: set on a row nobody holds means the
    # relay died (or lost the database) mid-send, so the message may have gone out
    Column("sending_since", UTCDateTime),
    # how many such unrecorded sends a relay found and sent again: the message may have reached the chat that many extra times
    Column("maybe_sent", Integer, nullable=False, default=0, server_default="0"),
    # the card this message shows (services.messages.card_key): a later row of the same card in the chat edits it in place
    Column("card", String(80)),
    Index("ix_outbox_pending", "status", "next_attempt_at"),
    Index("ix_outbox_card", "platform", "bot", "chat_id", "card"),
    Index("ix_outbox_chat", "platform", "bot", "chat_id", "id"),
)

timers = Table(
    "timers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(200), nullable=False, unique=True),  # one timer per purpose: setting it twice is a no-op
    Column("kind", String(40), nullable=False),
    Column("visit_id", Integer, ForeignKey("visits.id"), index=True),
    Column("technician_id", Integer, ForeignKey("technicians.id")),
    Column("due_at", UTCDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False),  # pending | done | cancelled
    Column("created_at", UTCDateTime, nullable=False),
    Column("fired_at", UTCDateTime),
    Index("ix_timers_due", "status", "due_at"),
)

sla_policies = Table(
    "sla_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("region", String(100)),
    Column("service_kind", String(20)),
    Column("stage", String(20), nullable=False),  # accept | contact | arrival | completion
    Column("minutes", Integer),  # business minutes allowed; none for arrival, which runs to the end of the window
    Column("tiers", JSON, nullable=False),  # percentages of the allowance at which to warn, e.g. [50, 80, 100]
    Column("auto_reassign", Boolean, nullable=False, default=False),
    UniqueConstraint("region", "service_kind", "stage", name="uq_sla_policies_scope"),
)

alert_sinks = Table(
    "alert_sinks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("region", String(100)),  # none: alerts of every region
    Column("kind", String(20), nullable=False),  # wecom | dingtalk | feishu | slack
    Column("url", Text, nullable=False),  # the webhook URL is itself a credential
    Column("secret", Text),
    Column("keyword", String(100)),
    Column("priority", Integer, nullable=False, default=0),  # lower first; the next takes over when one keeps failing
)

relay_threads = Table(
    "relay_threads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("origin", String(20), nullable=False),  # customer | technician: who wrote and gets the answers
    Column("origin_id", Integer, nullable=False),
    Column("platform", String(20), nullable=False),  # the writer's chat
    Column("bot", String(20), nullable=False),
    Column("chat_id", String(100), nullable=False),
    Column("audience", String(20), nullable=False),  # technician | dispatchers
    Column("topic", String(20), nullable=False),
    Column("region", String(100)),
    Column("job_id", Integer, ForeignKey("jobs.id"), index=True),
    Column("visit_id", Integer, ForeignKey("visits.id")),
    Column("technician_id", Integer, ForeignKey("technicians.id")),
    Column("status", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_relay_threads_chat", "platform", "bot", "chat_id", "status"),
)

relay_messages = Table(
    "relay_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("thread_id", Integer, ForeignKey("relay_threads.id"), nullable=False, index=True),
    Column("author", String(20), nullable=False),  # customer | technician | dispatcher
    Column("author_id", Integer),
    Column("text", Text, nullable=False),  # as relayed: phone numbers masked
    Column("photo_id", Integer, ForeignKey("photos.id")),
    Column("created_at", UTCDateTime, nullable=False),
)

mapper_registry = registry(metadata=metadata)
_MAPPED = False


def map_domain() -> None:
    """Map the domain dataclasses onto the tables, once per process (the domain itself never imports this)."""
    global _MAPPED
    if _MAPPED:
        return
    for cls, table in (
        (model.Customer, customers),
        (model.Technician, technicians),
        (model.Dispatcher, dispatchers),
        (model.DispatchGroup, dispatch_groups),
        (model.ChatBinding, chat_bindings),
        (model.Job, jobs),
        (model.Visit, visits),
        (model.ChecklistTemplate, checklist_templates),
        (model.ChecklistAnswer, checklist_answers),
        (model.Photo, photos),
        (model.ProblemReport, problem_reports),
        (model.Rating, ratings),
        (model.DispatchRule, dispatch_rules),
        (model.Offer, offers),
        (relay.RelayThread, relay_threads),
        (relay.RelayMessage, relay_messages),
    ):
        # visits carry an optimistic version so two chats changing one visit cannot both win
        options = {"version_id_col": visits.c.version} if table is visits else {}
        mapper_registry.map_imperatively(cls, table, **options)
    _MAPPED = True
