"""Settings from FIELDCHAT_* environment variables and an optional .env file."""

from __future__ import annotations

import hashlib
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bots.whatsapp_rules import parse_templates
from domain.business_time import BusinessHours
from domain.completion_codes import CodePolicy
from domain.signatures import SignaturePolicy
from domain.field_work import parse_repair_codes
from domain.policy import ServicePolicy
from domain.slots import Window


MIN_SECRET_LENGTH = 24


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIELDCHAT_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = Field(None, description="https base URL the world reaches us at (webhooks, links)")
    database_url: str = "sqlite:///var/fieldchat.db"
    media_dir: Path = Path("var/media")
    api_token: SecretStr | None = Field(None, description="admin bearer token of the back-office API; unset: the API is off")
    log_level: str = "INFO"
    web_console: bool = Field(False, description="serve the four-pane web chat console at /chat (demo mode only)")

    photo_max_mb: float = Field(10.0, gt=0, le=20, description="largest photo accepted, MB (Telegram bots download at most 20)")
    photo_max_megapixels: float = Field(40.0, gt=0, le=200, description="largest photo accepted, million pixels")
    customer_link_days: int = Field(30, ge=1, le=365, description="a customer's link expires this long after it is issued at the latest")
    customer_link_grace_days: int = Field(3, ge=0, le=60, description="and this long after the job is done (a reopened job's link works again until it closes again)")
    staff_invite_hours: int = Field(72, ge=1, le=24 * 30, description="technician, dispatcher and group invites expire after this long")
    robot_link_hours: int = Field(24, ge=1, le=24 * 14, description="a group robot alert's action links (single-use) expire after this long")
    session_hours: int = Field(12, ge=1, le=24 * 30, description="a web sign-in lasts this long (signing out or disabling the account ends it sooner)")
    telegram_auth_minutes: int = Field(24 * 60, ge=1, le=7 * 24 * 60, description="Telegram Login Widget data and Mini App initData older than this are refused")

    telegram_customer_token: SecretStr | None = None
    telegram_staff_token: SecretStr | None = None
    telegram_mode: Literal["polling", "webhook"] = "polling"
    # ptb (python-telegram-bot): starts in under a second and ~40 MiB; aiogram: seconds and ~170 MiB (its pydantic models)
    telegram_driver: Literal["ptb", "aiogram"] = Field("ptb", description="the library that talks to Telegram")
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_secret: SecretStr | None = None

    # WhatsApp Cloud API (README "Connecting a WhatsApp number"): on when the token, the customers' number id, the app
    # secret and the verify token are all set
    whatsapp_token: SecretStr | None = Field(None, description="the Cloud API access token (a system user's)")
    whatsapp_phone_number_id: str | None = Field(None, description="the customers' business number, as the Graph API names it")
    whatsapp_number: str | None = Field(None, description="that number in international digits, for wa.me links, e.g. 8613800000000")
    whatsapp_staff_phone_number_id: str | None = Field(None, description="a number for technicians too, where the shop gives them one")
    whatsapp_staff_number: str | None = None
    whatsapp_app_secret: SecretStr | None = Field(None, description="signs every webhook (X-Hub-Signature-256)")
    whatsapp_verify_token: SecretStr | None = Field(None, description="the token Meta's webhook verification must present")
    whatsapp_graph_url: str = "https://graph.facebook.com"
    whatsapp_graph_version: str = Field("v21.0", pattern=r"^v\d{1,3}\.\d{1,2}$")
    whatsapp_templates: str = Field("", description="JSON: per message purpose the approved template to send outside the 24-hour window")

    timezone: str = "Asia/Shanghai"
    slot_windows: str = "09:00-11:00,11:00-13:00,14:00-16:00,16:00-18:00"
    booking_days: int = Field(7, ge=1, le=60)
    booking_lead_minutes: int = Field(120, ge=0)
    reschedule_cutoff_hours: int = Field(12, ge=0)
    checkin_radius_m: float = Field(500.0, gt=0)
    repair_codes: str = Field("", description="JSON: per product category the fault categories and methods a repair records")
    low_rating_threshold: int = Field(2, ge=1, le=5)
    completion_codes: str = Field("off", description="visits that complete only with the customer's one-time code: off, all, "
                                  "or service kinds (delivery,installation); an order source may override it")
    signatures: str = Field("off", description="visits that complete only with the customer's signature (or the reason they "
                            "could not sign): off, all, or service kinds (delivery,installation); an order source may override it")
    booking_reminder_hours: float = Field(24.0, gt=0, le=24 * 30, description="an unbooked visit reminds its customer after this long")
    booking_escalate_hours: float = Field(48.0, gt=0, le=24 * 60, description="and goes to the dispatchers after this long (from the same start)")
    confirm_reminder_hours: float = Field(24.0, gt=0, le=24 * 30, description="a completed visit not confirmed reminds the customer after this long")
    confirm_timeout_hours: float = Field(72.0, gt=0, le=24 * 60, description="and is closed as confirmed by timeout after this long")
    review_period_hours: float = Field(72.0, gt=0, le=24 * 90, description="a confirmed visit's fee is reviewed this long (a complaint, "
                                       "a low rating or an open exception freezes it) before it is settled")
    settlement_cycle: Literal["monthly", "per_order"] = Field("monthly", description="how a technician without their own payout rule "
                                                              "is settled: monthly (employees) or per_order (partners)")
    payout_share_percent: int = Field(100, ge=0, le=100, description="the share of a bill's work (not its parts) a technician without "
                                      "their own payout rule earns")

    business_days: str = Field("0,1,2,3,4,5", description="weekdays the shop works, 0 = Monday")
    business_hours: str = Field("09:00-18:00", description="opening hours, for SLA clocks")

    relay_interval_seconds: float = Field(2.0, gt=0)
    # scale-out: web processes may leave sending to `fieldchat relay` processes, and timers and solving to one process
    run_relay: bool = Field(True, description="run an outbox relay inside `fieldchat serve`")
    run_timers: bool = Field(True, description="run the timer sweep, replans and the nightly plan inside `fieldchat serve`")

    replan_seconds: float = Field(3.0, gt=0, le=120, description="optimizer time for a local replan after an event")
    plan_seconds: float = Field(30.0, gt=0, le=3600, description="optimizer time for the nightly plan of tomorrow")
    nightly_plan_at: str = Field("20:00", description="local time the nightly run plans tomorrow; off: never")
    daily_report_at: str = Field("18:00", description="local time the day's report goes to the managers' groups; off: never")
    first_time_fix_days: int = Field(30, ge=1, le=365, description="a visit is fixed the first time when no return visit, "
                                     "nor a repair job of the customer for the same product category, follows it within this many days")
    urgent_window_hours: float = Field(4.0, gt=0, le=24, description="an urgent order is served within this much opening time")
    price_increase_manager_above_minor: int = Field(20000, ge=0, le=10**8, description="a technician's price increase above this "
                                                    "(minor units: fen, cents) needs a manager's approval after the dispatcher's")
    overrun_grace_minutes: int = Field(15, ge=0, le=240, description="work this long past its planned end replans the day")
    assist_timeout_minutes: int = Field(15, ge=1, le=240, description="a call for help nobody joins goes to the next free colleagues, else the dispatchers, after this long")
    redis_url: str | None = Field(None, description="redis://host:port/db shared by relay processes for send rates")
    callback_max_attempts: int = Field(20, ge=1, le=1000, description="a status callback to an order source is parked, and the "
                                       "dispatchers told, after this many failed attempts (back-off up to 5 minutes apart)")
    callback_timeout_seconds: float = Field(10.0, gt=0, le=60, description="how long a status callback waits for the receiver's answer")

    @field_validator("api_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # an empty value (a blank line in .env) must never mean "no authentication"
        if value is not None and len(value.get_secret_value().strip()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters; leave it unset and the API stays off")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("repair_codes")
    @classmethod
    def _valid_repair_codes(cls, value: str) -> str:
        parse_repair_codes(value)
        return value

    @field_validator("completion_codes")
    @classmethod
    def _valid_completion_codes(cls, value: str) -> str:
        return CodePolicy.parse(value).text

    @field_validator("signatures")
    @classmethod
    def _valid_signatures(cls, value: str) -> str:
        return SignaturePolicy.parse(value).text

    @field_validator("slot_windows")
    @classmethod
    def _valid_windows(cls, value: str) -> str:
        Window.parse_many(value)
        return value

    @field_validator("business_days")
    @classmethod
    def _valid_days(cls, value: str) -> str:
        days = [int(d) for d in value.split(",") if d.strip()]
        if not days or any(not 0 <= d <= 6 for d in days):
            raise ValueError("business days are numbers 0 (Monday) to 6 (Sunday), comma separated")
        return value

    @field_validator("nightly_plan_at", "daily_report_at")
    @classmethod
    def _valid_nightly(cls, value: str) -> str:
        if value.strip().lower() != "off":
            time.fromisoformat(value.strip())
        return value.strip()

    @model_validator(mode="after")
    def _reminders_before_deadlines(self) -> Settings:
        # a reminder after the step it warns of would never be seen
        if self.booking_escalate_hours <= self.booking_reminder_hours:
            raise ValueError("FIELDCHAT_BOOKING_ESCALATE_HOURS must be more than FIELDCHAT_BOOKING_REMINDER_HOURS")
        if self.confirm_timeout_hours <= self.confirm_reminder_hours:
            raise ValueError("FIELDCHAT_CONFIRM_TIMEOUT_HOURS must be more than FIELDCHAT_CONFIRM_REMINDER_HOURS")
        return self

    @field_validator("whatsapp_templates")
    @classmethod
    def _valid_whatsapp_templates(cls, value: str) -> str:
        parse_templates(value)
        return value

    @field_validator("whatsapp_number", "whatsapp_staff_number", "whatsapp_phone_number_id", "whatsapp_staff_phone_number_id")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{5,20}", value.strip().lstrip("+")):
            raise ValueError("digits only (a number in international format, or the Graph API's number id)")
        return value.strip().lstrip("+") if value is not None else None

    @model_validator(mode="after")
    def _whatsapp_complete(self) -> Settings:
        parts = {
            "FIELDCHAT_WHATSAPP_TOKEN": self.whatsapp_token, "FIELDCHAT_WHATSAPP_PHONE_NUMBER_ID": self.whatsapp_phone_number_id,
            "FIELDCHAT_WHATSAPP_APP_SECRET": self.whatsapp_app_secret, "FIELDCHAT_WHATSAPP_VERIFY_TOKEN": self.whatsapp_verify_token,
        }
        missing = [name for name, value in parts.items() if not value]
        if 0 < len(missing) < len(parts):
            # half a configuration would take webhooks it cannot verify, or send without being able to receive
            raise ValueError(f"WhatsApp needs {', '.join(missing)} too (or none of the WHATSAPP settings)")
        if self.whatsapp_verify_token is not None and len(self.whatsapp_verify_token.get_secret_value()) < 16:
            raise ValueError("FIELDCHAT_WHATSAPP_VERIFY_TOKEN must be at least 16 characters")
        if self.whatsapp_staff_phone_number_id and not self.whatsapp_token:
            raise ValueError("FIELDCHAT_WHATSAPP_STAFF_PHONE_NUMBER_ID needs the customers' WhatsApp settings too")
        return self

    def whatsapp_on(self) -> bool:
        return bool(self.whatsapp_token and self.whatsapp_phone_number_id and self.whatsapp_app_secret and self.whatsapp_verify_token)

    def nightly_plan_time(self) -> time | None:
        return None if self.nightly_plan_at.lower() == "off" else time.fromisoformat(self.nightly_plan_at)

    def daily_report_time(self) -> time | None:
        return None if self.daily_report_at.lower() == "off" else time.fromisoformat(self.daily_report_at)

    @field_validator("business_hours")
    @classmethod
    def _valid_hours(cls, value: str) -> str:
        Window.parse_many(value)
        return value

    def policy(self) -> ServicePolicy:
        opening = Window.parse_many(self.business_hours)[0]
        return ServicePolicy(
            business_hours=BusinessHours(tuple(int(d) for d in self.business_days.split(",")), opening.start, opening.end),
            tz=ZoneInfo(self.timezone),
            windows=Window.parse_many(self.slot_windows),
            booking_days=self.booking_days,
            booking_lead=timedelta(minutes=self.booking_lead_minutes),
            reschedule_cutoff=timedelta(hours=self.reschedule_cutoff_hours),
            checkin_radius_m=self.checkin_radius_m,
            repair_codes=parse_repair_codes(self.repair_codes),
            completion_codes=CodePolicy.parse(self.completion_codes),
            signatures=SignaturePolicy.parse(self.signatures),
            public_url=self.public_url,
            low_rating_threshold=self.low_rating_threshold,
            urgent_window=timedelta(hours=self.urgent_window_hours),
            overrun_grace=timedelta(minutes=self.overrun_grace_minutes),
            customer_link_ttl=timedelta(days=self.customer_link_days),
            customer_link_grace=timedelta(days=self.customer_link_grace_days),
            staff_link_ttl=timedelta(hours=self.staff_invite_hours),
            booking_reminder=timedelta(hours=self.booking_reminder_hours),
            booking_escalate=timedelta(hours=self.booking_escalate_hours),
            confirm_reminder=timedelta(hours=self.confirm_reminder_hours),
            confirm_timeout=timedelta(hours=self.confirm_timeout_hours),
            review_period=timedelta(hours=self.review_period_hours),
            settlement_cycle=self.settlement_cycle,
            payout_share_percent=self.payout_share_percent,
            assist_timeout=timedelta(minutes=self.assist_timeout_minutes),
            price_increase_manager_above_minor=self.price_increase_manager_above_minor,
        )

    def photo_max_bytes(self) -> int:
        return int(self.photo_max_mb * 1024 * 1024)

    def photo_max_pixels(self) -> int:
        return int(self.photo_max_megapixels * 1_000_000)

    def webhook_secret(self, token: str) -> str:
        """Telegram's secret_token: the configured one, else derived from the bot token (stable across processes)."""
        if self.telegram_webhook_secret:
            return self.telegram_webhook_secret.get_secret_value()
        return hashlib.sha256(f"fieldchat-webhook:{token}".encode()).hexdigest()[:48]

    def bot_tokens(self) -> dict[str, str]:
        tokens = {"customer": self.telegram_customer_token, "staff": self.telegram_staff_token}
        return {role: token.get_secret_value() for role, token in tokens.items() if token}


def settings_errors(exc: ValidationError) -> list[str]:
    """One readable line per wrong setting, named as it is set in the environment."""
    lines = []
    for error in exc.errors():
        name = "FIELDCHAT_" + "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return lines
