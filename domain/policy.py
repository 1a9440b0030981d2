"""The shop's service rules that flows and handlers follow (time zone, slots, cut-offs, radius)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import TypeVar
from zoneinfo import ZoneInfo

from domain.business_time import BusinessHours
from domain.completion_codes import CodePolicy
from domain.field_work import DEFAULT_REPAIR_CODES, RepairCodes
from domain.signatures import SignaturePolicy
from domain.slots import Window


@dataclass(frozen=True)
class ServicePolicy:
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    # channel facts the composition root copies from the capability records (bots/channels.py) for the rules that
    # need them, so neutral code never names a platform: where a chat's id is the person's own phone number, and where
    # the client shares the sender's own contact with one button (empty: no channel known to do either)
    phone_chat_platforms: frozenset[str] = frozenset()
    contact_platforms: frozenset[str] = frozenset()
    windows: tuple[Window, ...] = Window.parse_many("09:00-11:00,11:00-13:00,14:00-16:00,16:00-18:00")
    booking_days: int = 7
    booking_lead: timedelta = timedelta(hours=2)
    reschedule_cutoff: timedelta = timedelta(hours=12)
    checkin_radius_m: float = 500.0
    low_rating_threshold: int = 2
    customer_link_ttl: timedelta = timedelta(days=30)  # at the latest
    customer_link_grace: timedelta = timedelta(days=3)  # after the job is done
    staff_link_ttl: timedelta = timedelta(hours=72)
    business_hours: BusinessHours = BusinessHours()
    reminder_hour: int = 18  # the evening before an appointment, local time
    day_plan_hour: int = 7  # technicians get their day at 07:30 local time
    close_radius_m: float = 1000.0  # the customer is told "almost there" inside this distance
    travel_speed_kmh: float = 30.0
    detour_factor: float = 1.3
    urgent_window: timedelta = timedelta(hours=4)  # an urgent order is served within this much opening time
    overrun_grace: timedelta = timedelta(minutes=15)  # work running this long past its planned end replans the day
    # nothing left unowned: an unbooked visit reminds its customer, then the dispatchers (both from when it became bookable)
    booking_reminder: timedelta = timedelta(hours=24)
    booking_escalate: timedelta = timedelta(hours=48)
    # a completed visit the customer does not confirm: reminded, then closed as confirmed by timeout (from completion)
    confirm_reminder: timedelta = timedelta(hours=24)
    confirm_timeout: timedelta = timedelta(hours=72)
    # a call for help nobody joins this long goes to the next free colleagues, else to the dispatchers
    assist_timeout: timedelta = timedelta(minutes=15)
    # per product category ("*": any other), the fault categories and methods a repair records
    repair_codes: Mapping[str, RepairCodes] = field(default_factory=lambda: dict(DEFAULT_REPAIR_CODES))
    # which visits complete only with the customer's one-time code (an order source may override it: storage.completion_codes)
    completion_codes: CodePolicy = CodePolicy()
    # which visits complete only with the customer's signature (or the reason they could not sign; storage.signatures)
    signatures: SignaturePolicy = SignaturePolicy()
    # where the links messages carry point (a signature pad); None: site-relative links, which only the web console opens
    public_url: str | None = None
    # settlement (issue 14 part 7): a confirmed visit's fee is reviewed this long before it is settled; a technician with no
    # payout rule of their own is settled on this cycle (monthly | per_order) with this share of the billed work
    review_period: timedelta = timedelta(hours=72)
    settlement_cycle: str = "monthly"
    payout_share_percent: int = 100
    # a technician's price increase above this (minor units) needs a manager's approval after a dispatcher's (issue 14 part 6)
    price_increase_manager_above_minor: int = 20000


Rule = TypeVar("Rule")


def most_specific(
    rules: Iterable[Rule], region: str, service_kind: str, scope: Callable[[Rule], tuple[str | None, str | None]]
) -> Rule | None:
    """Of the rules whose (region, service kind) scope matches — None matching anything — the most specific:
    region and kind, then region, then kind, then the catch-all."""
    best: Rule | None = None
    best_score = -1
    for rule in rules:
        rule_region, rule_kind = scope(rule)
        if rule_region not in (None, region) or rule_kind not in (None, service_kind):
            continue
        score = (rule_region is not None) * 2 + (rule_kind is not None)
        if score > best_score:
            best, best_score = rule, score
    return best
