"""SQLAlchemy tables, and the imperative mapping of the domain's dataclasses onto them."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
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
    # the payout rule (issue 14 part 7, domain/settlement.py); none: the shop's defaults from the settings
    Column("settlement_cycle", String(10)),  # monthly | per_order
    Column("payout_share_percent", Integer),  # of the billed work (parts are the shop's)
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
    # dispatch: alerts go there; reports: the managers' group, which gets the daily report and no alerts (migration 0024)
    Column("purpose", String(20), nullable=False, default="dispatch", server_default="dispatch"),
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
    # an order with lines at several addresses is one job per address (migration 0022): part 1 at the order's address,
    # 2… at the lines' own, each keeping the address as the order named it so that an update finds its job again
    Column("part", Integer, nullable=False, default=1, server_default="1"),
    Column("part_address", String(500)),
    UniqueConstraint("source", "external_ref", "part", name="uq_jobs_source_ref_part"),
    # the back office's job list filters (migration 0026); a source filter uses the unique index above
    Index("ix_jobs_region_status", "region", "status"),
    Index("ix_jobs_status", "status"),
    Index("ix_jobs_customer_id", "customer_id"),
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
    Column("slot_start", UTCDateTime, index=True),  # the job list's day filter (migration 0026)
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
    # product categories of the order lines the visit serves (migration 0022); empty: the job's product category
    Column("categories", JSON, nullable=False, default=list, server_default="[]"),
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

# Where an order source hears about its jobs' milestones (issue 13 part 5, migration 0018); the callbacks themselves
# are outbox rows of the "callback" platform, one chat per job, so the relay keeps each job's order
callback_endpoints = Table(
    "callback_endpoints",
    metadata,
    Column("source", String(60), primary_key=True),  # the source string orders carry (jobs.source)
    Column("url", String(2000), nullable=False),
    Column("secret", Text, nullable=False),  # signs every callback; never shown by the API nor logged
    Column("updated_at", UTCDateTime, nullable=False),
)

# A robot alert's action button as a single-use link (issue 13 part 3, migration 0020): the token in the link is
# signed over these columns (services/robot_links.py), so nothing in this table lets anyone act
robot_action_links = Table(
    "robot_action_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("route", String(120), nullable=False),  # the robot route the alert went to (region:<name> | all)
    Column("action", String(64), nullable=False),  # the button's action data (services/actions.py)
    Column("label", String(200), nullable=False),  # the button as the group saw it
    Column("alert_text", Text, nullable=False),  # the alert as the group saw it (masked): the page shows it
    Column("alert_digest", String(64), nullable=False),  # one alert sent again reuses its links
    Column("language", String(8), nullable=False),  # the group's language
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
    Column("used_by", String(200)),  # who acted (the dispatcher's name)
    Column("outcome", JSON),  # what happened, as a translatable text: the page of a used link says it
    Index("ix_robot_action_links_alert", "route", "alert_digest", "action"),
)

# The dispatcher a robot route's links act as until dispatchers sign in (issue 12): "a dispatcher of that group"
robot_link_actors = Table(
    "robot_link_actors",
    metadata,
    Column("route", String(120), primary_key=True),
    Column("dispatcher_id", Integer, ForeignKey("dispatchers.id"), nullable=False),
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

# --- order intake (issue 13 part 4): per-source settings, and every order as it was last received ---------------

order_sources = Table(
    "order_sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(60), nullable=False, unique=True),
    Column("mapping", JSON),  # field map from the source's JSON to the order model; null: the API's own shape
    Column("table_mapping", JSON),  # the same for CSV/XLSX rows; null: the shipped default columns
    Column("review_required", Boolean, nullable=False, default=False, server_default=false()),
    Column("coverage_policy", String(10), nullable=False, default="flag", server_default="flag"),  # refuse | flag
    Column("currency", String(3)),
    Column("poll_url", String(500)),
    Column("poll_interval_seconds", Integer),
    Column("poll_cursor_param", String(60)),
    Column("poll_auth_header", Text),  # a secret: never shown by the API nor logged
    Column("poll_cursor", Text),  # where the next fetch starts; moved only after the page's orders are stored
    Column("poll_last_at", UTCDateTime),
    Column("poll_last_error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

order_intakes = Table(
    "order_intakes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(60), nullable=False),
    Column("external_ref", String(120), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("content", JSON, nullable=False),  # the order as last received, in the order model's shape
    Column("state", String(20), nullable=False),  # pending_review | accepted | rejected | cancelled
    Column("job_id", Integer, ForeignKey("jobs.id"), index=True),
    Column("price_minor", Integer),  # the service price, in the currency's minor units
    Column("currency", String(3)),
    Column("coverage_gap", JSON),  # visit kinds no technician of the region can do, when the source accepts and flags
    Column("review_note", Text),
    Column("received_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "external_ref", name="uq_order_intakes_source_ref"),
    Index("ix_order_intakes_queue", "source", "state"),
)

# WhatsApp (W5): when each person last wrote to each business number: free-form messages only within 24 h of it
whatsapp_chats = Table(
    "whatsapp_chats",
    metadata,
    Column("bot", String(20), primary_key=True),
    Column("chat_id", String(64), primary_key=True),  # the person's WhatsApp id (their number)
    Column("last_inbound_at", UTCDateTime, nullable=False),
)

# WhatsApp (W4): each message sent and how far it got; status callbacks come out of order and twice, never backwards
whatsapp_messages = Table(
    "whatsapp_messages",
    metadata,
    Column("wamid", String(200), primary_key=True),
    Column("bot", String(20), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("template", String(512)),  # sent as this template (outside the window); none: free-form
    Column("status", String(12), nullable=False),  # accepted | sent | failed | delivered | read
    Column("status_rank", Integer, nullable=False),
    Column("error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)


# --- completion codes and the delivered-item check (issue 13 part 6) ---------------------------------

completion_codes = Table(
    "completion_codes",
    metadata,
    Column("visit_id", Integer, ForeignKey("visits.id"), primary_key=True),  # one live code per visit
    Column("code_hash", String(64), nullable=False),  # scrypt of the code (domain.completion_codes.digest): never the code
    Column("salt", String(32), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("wrong_tries", Integer, nullable=False, default=0),
    Column("resends", Integer, nullable=False, default=0),
    Column("locked_at", UTCDateTime),  # five wrong tries; a dispatcher's new code lifts it
    Column("used_at", UTCDateTime),
    Column("outcome", String(20)),  # verified (the technician entered it) | waived (a dispatcher completed without it)
)

completion_code_tries = Table(
    "completion_code_tries",
    metadata,
    Column("technician_id", Integer, ForeignKey("technicians.id"), primary_key=True),
    Column("day", String(10), primary_key=True),  # the shop's local date, ISO
    Column("wrong", Integer, nullable=False, default=0),
)

completion_code_sources = Table(
    "completion_code_sources",
    metadata,
    Column("source", String(100), primary_key=True),  # an order source; overrides FIELDCHAT_COMPLETION_CODES for its orders
    Column("policy", String(200), nullable=False),  # off | all | service kinds, comma separated
    Column("updated_at", UTCDateTime, nullable=False),
)

delivered_item_checks = Table(
    "delivered_item_checks",
    metadata,
    Column("visit_id", Integer, ForeignKey("visits.id"), primary_key=True),  # checked once
    Column("marks", JSON, nullable=False),  # [[item, mark], ...]
    Column("report_id", Integer, ForeignKey("problem_reports.id")),  # the problem report it raised, if any
    Column("checked_at", UTCDateTime, nullable=False),
)

# --- accounts, sessions and scoped API tokens (issue 12 part 1, migration 0021) ---------------------

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),  # lower case
    Column("display_name", String(200), nullable=False),
    Column("role", String(20), nullable=False),  # dispatcher | manager | admin (domain/access.py)
    Column("regions", JSON),  # the regions they act in; null: every region
    Column("password_hash", Text),  # argon2id; null: signs in through Telegram only
    Column("chat_user_id", String(32), unique=True),  # the staff bot's user id of the person (Telegram so far)
    Column("dispatcher_id", Integer, ForeignKey("dispatchers.id")),  # their identity in group chats, if any
    Column("language", String(8), nullable=False, default="zh"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),  # disabled: no sign-in, every session ended
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the cookie's random value: never the value
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),  # every form of this session carries it
    Column("via", String(20), nullable=False),  # password | telegram_login | telegram_webapp
    Column("address", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),  # signed out, or the account disabled
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),  # the integration it is for
    Column("prefix", String(16), nullable=False),  # shown in listings; the rest is never shown again
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the token (256 random bits)
    Column("scopes", JSON, nullable=False),
    Column("regions", JSON),  # null: every region
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

# --- signatures (issue 12 part 6, migration 0023): the customer signs on the technician's phone -------------------

signature_requests = Table(
    "signature_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, index=True),
    Column("technician_id", Integer, ForeignKey("technicians.id"), nullable=False),  # who asked: told when it is saved
    Column("stage", String(20), nullable=False),  # delivery | completion (domain/signatures.py)
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),  # the pad saved a signature with it: the link works once
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, index=True),
    Column("request_id", Integer, ForeignKey("signature_requests.id"), unique=True),  # null: skipped in the chat
    Column("technician_id", Integer, ForeignKey("technicians.id"), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("png", LargeBinary),  # the checked PNG; null when the customer could not sign (skip_reason says why)
    Column("width", Integer),
    Column("height", Integer),
    Column("skip_reason", String(500)),
    Column("created_at", UTCDateTime, nullable=False),
)

signature_sources = Table(
    "signature_sources",
    metadata,
    Column("source", String(100), primary_key=True),  # an order source; overrides FIELDCHAT_SIGNATURES for its orders
    Column("policy", String(200), nullable=False),  # off | all | service kinds, comma separated
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- devices (issue 14 parts 1-3): one file per customer and device, their sites, and each device's own timeline ---

device_sites = Table(
    "device_sites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("name", String(200), nullable=False, default=""),  # an area of the address ("roof"): "" for the address itself
    Column("address_text", String(500), nullable=False),
    Column("address_key", String(500), nullable=False),  # the address as compared (domain.orders.address_key)
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("region", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("customer_id", "address_key", "name", name="uq_device_sites_place"),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, index=True),
    Column("site_id", Integer, ForeignKey("device_sites.id"), nullable=False, index=True),
    Column("product_category", String(100), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("brand", String(200)),
    Column("model", String(200)),
    Column("serial", String(200)),
    Column("installed_on", Date),
    Column("warranty_until", Date),
    Column("location", String(200), nullable=False, default=""),
    Column("status", String(20), nullable=False),  # active | retired
    Column("source_visit_id", Integer, unique=True),  # the installation that created it: one device per installation
    Column("created_at", UTCDateTime, nullable=False),
    # a serial names one unit of a brand: importing it again finds the same device
    UniqueConstraint("brand", "serial", name="uq_devices_brand_serial"),
)

device_events = Table(
    "device_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", Integer, ForeignKey("devices.id"), nullable=False, index=True),
    Column("kind", String(30), nullable=False),  # domain.devices.DeviceEvent
    Column("job_id", Integer, index=True),  # the job it was part of (the repair a request made, the installation …)
    Column("visit_id", Integer),
    Column("data", JSON, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
)

# --- preventive maintenance (issue 14 part 8): plans on a site, and the inspections each created --------------------

maintenance_plans = Table(
    "maintenance_plans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("site_id", Integer, ForeignKey("device_sites.id"), nullable=False, index=True),
    Column("device_ids", JSON, nullable=False),  # [] for every active device of the site
    Column("rule", String(200), nullable=False),  # an RRULE (domain.maintenance.Recurrence)
    Column("starts_on", Date, nullable=False),
    Column("lead_days", Integer, nullable=False),
    Column("duration_minutes", Integer),
    Column("technician_id", Integer, ForeignKey("technicians.id")),  # none: dispatched like any visit
    Column("reviewer_dispatcher_id", Integer, ForeignKey("dispatchers.id")),
    Column("created_through", Date),  # the last inspection day created so far
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("team_ids", JSON),  # technicians offered each inspection together; null or []: no team (0032)
    Column("reviewed_through", Date),  # the last period (its first day) whose completion the reviewer was told (0032)
)

maintenance_inspections = Table(
    "maintenance_inspections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("plan_id", Integer, ForeignKey("maintenance_plans.id"), nullable=False),
    Column("occurs_on", Date, nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("plan_id", "occurs_on", name="uq_maintenance_inspections_day"),  # one inspection per plan day
)

# --- parts and stock, repair completions (issue 14 parts 4-5, migration 0027) ------------------------------------

parts = Table(
    "parts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(60), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("price_minor", BigInteger, nullable=False),  # in the currency's minor units
    Column("currency", String(3), nullable=False),
    Column("category", String(100), nullable=False),
    Column("compatible", JSON, nullable=False),  # product categories it fits; [] any
    Column("min_stock", Integer, nullable=False),  # the warehouse's reorder level (0: never alerted)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# one row per part and location ("warehouse", "van:<technician id>"); quantity only ever changes by a conditional
# UPDATE that keeps it at zero or above (storage/parts.py), so concurrent uses of the last unit cannot both succeed
stock_levels = Table(
    "stock_levels",
    metadata,
    Column("part_id", Integer, ForeignKey("parts.id"), primary_key=True),
    Column("location", String(40), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

stock_movements = Table(  # the ledger: every change of stock, in order (a part's history)
    "stock_movements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("part_id", Integer, ForeignKey("parts.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # domain.parts.MovementKind
    Column("quantity", Integer, nullable=False),
    Column("source", String(40)),
    Column("target", String(40)),
    Column("job_id", Integer),
    Column("visit_id", Integer),
    Column("request_id", Integer),
    Column("actor", String(100), nullable=False),  # api | technician:<id> | dispatcher:<id>
    Column("note", String(500), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
)

part_requests = Table(
    "part_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("part_id", Integer, ForeignKey("parts.id"), nullable=False),
    Column("technician_id", Integer, ForeignKey("technicians.id"), nullable=False, index=True),
    Column("quantity", Integer, nullable=False),
    Column("note", String(500), nullable=False),
    Column("status", String(20), nullable=False),  # domain.parts.RequestStatus
    Column("dispatcher_id", Integer),
    Column("reason", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
)

fault_trees = Table(  # a shop's own tree per product category ("*": the catch-all); none: domain.parts.DEFAULT_FAULT_TREE
    "fault_trees",
    metadata,
    Column("product_category", String(100), primary_key=True),
    Column("tree", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

repair_completions = Table(
    "repair_completions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, unique=True),
    Column("technician_id", Integer, nullable=False),
    Column("cause", String(30), nullable=False),
    Column("fault", String(30), nullable=False),
    Column("method", String(30), nullable=False),
    Column("outcome", String(20), nullable=False),  # domain.parts.Outcome
    Column("parts", JSON, nullable=False),  # [{part_id, code, name, quantity, price_minor, currency}]
    Column("note", String(1000), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# --- fees (issue 14 part 6, migration 0029): the price list, the bill a completed visit gets, and its payments -------

price_list_entries = Table(
    "price_list_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("service_kind", String(30), nullable=False),
    Column("product_category", String(100), nullable=False),  # "any" matches every category (domain.fees.ANY)
    Column("region", String(100), nullable=False),  # "any" too
    Column("urgency", String(10), nullable=False),  # normal | urgent | any
    Column("pricing", String(20), nullable=False),  # domain.fees.Pricing
    Column("unit_price_minor", BigInteger, nullable=False),  # in the currency's minor units
    Column("currency", String(3), nullable=False),
    Column("hour_step_minutes", Integer, nullable=False),
    Column("name", String(100), nullable=False, default=""),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("service_kind", "product_category", "region", "urgency", name="uq_price_list_entries_key"),
)

bills = Table(
    "bills",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, unique=True),  # one bill per visit
    Column("status", String(10), nullable=False),  # priced | unpriced (domain.fees.BillStatus)
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("paid_minor", BigInteger, nullable=False, default=0),  # kept with each payment, under the bill's row lock
    Column("price_entry_id", Integer),  # the price-list entry the labour came from (none: unpriced)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

bill_lines = Table(
    "bill_lines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("bill_id", Integer, ForeignKey("bills.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("kind", String(10), nullable=False),  # labour | part
    Column("description", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit", String(20), nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("part_id", Integer),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("bill_id", Integer, ForeignKey("bills.id"), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("method", String(10), nullable=False),  # cash | transfer | online (domain.fees.PaymentMethod)
    Column("reference", String(100)),
    Column("recorded_by", String(100), nullable=False),  # "technician:<id>", or the API principal
    Column("recorded_at", UTCDateTime, nullable=False),
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


# --- price increases and discounts (issue 14 part 6) -------------------------------------------------------------------

price_changes = Table(
    "price_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # increase | discount (domain.price_changes.ChangeKind)
    Column("status", String(10), nullable=False),  # pending | escalated | approved | accepted | declined | refused
    # the visit while its increase is open, else null: the unique key keeps one open increase per visit, on every database
    Column("open_visit_id", Integer, unique=True),
    Column("amount_minor", BigInteger, nullable=False),  # positive, in the currency's minor units (a discount takes it off)
    Column("currency", String(3), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("photo_ids", JSON, nullable=False),  # the photos of the cause (photos rows, purpose "price_increase")
    Column("technician_id", Integer),  # who asked (an increase)
    Column("requested_by", String(100), nullable=False),  # "technician:<id>", or the API principal of a discount
    Column("dispatcher_by", String(100)),  # the dispatcher's decision: who
    Column("dispatcher_at", UTCDateTime),
    Column("manager_by", String(100)),  # the manager's decision (above the threshold, or a manager deciding first)
    Column("manager_at", UTCDateTime),
    Column("customer_at", UTCDateTime),  # the customer's answer
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


# --- review periods and settlement statements (issue 14 part 7) ----------------------------------------------------

settlement_statements = Table(
    "settlement_statements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(40), nullable=False, unique=True),  # domain.settlement.statement_number
    Column("technician_id", Integer, ForeignKey("technicians.id"), nullable=False, index=True),
    Column("period", String(7), nullable=False, index=True),  # YYYY-MM, the accounting period
    Column("cycle", String(10), nullable=False),  # monthly | per_order
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

settlement_items = Table(
    "settlement_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visit_id", Integer, ForeignKey("visits.id"), nullable=False, unique=True),  # one bill per visit, one item per bill
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False, index=True),
    Column("technician_id", Integer, ForeignKey("technicians.id"), nullable=False, index=True),
    Column("bill_id", Integer, ForeignKey("bills.id"), nullable=False),
    Column("status", String(10), nullable=False),  # in_review | frozen | ready | settled (domain.settlement.ItemStatus)
    Column("currency", String(3), nullable=False),
    Column("bill_total_minor", BigInteger, nullable=False),  # the bill when its review started
    Column("base_minor", BigInteger, nullable=False),  # what the share is of: the bill without its parts
    Column("share_percent", Integer, nullable=False),
    Column("earned_minor", BigInteger, nullable=False),  # by the payout rule
    Column("amount_minor", BigInteger, nullable=False),  # what is paid: earned, or the dispatcher's adjusted amount
    Column("confirmed_at", UTCDateTime, nullable=False),
    Column("review_ends_at", UTCDateTime, nullable=False),
    Column("freeze_reason", String(20)),  # complaint | low_rating | exception, while frozen (and after, for the record)
    Column("freeze_ref", Integer),  # the rating or problem report that froze it
    Column("frozen_at", UTCDateTime),
    Column("released_by", String(100)),
    Column("released_at", UTCDateTime),
    Column("adjusted_by", String(100)),
    Column("adjust_reason", String(500)),
    Column("adjusted_at", UTCDateTime),
    Column("ready_at", UTCDateTime),
    Column("period", String(7), index=True),  # YYYY-MM it is settled in: the month it became ready
    Column("statement_id", Integer, ForeignKey("settlement_statements.id"), index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
