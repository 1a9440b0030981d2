"""The shop's service rules that flows and handlers follow (time zone, slots, cut-offs, radius)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from zoneinfo import ZoneInfo

from domain.business_time import BusinessHours
from domain.slots import Window


@dataclass(frozen=True)
class ServicePolicy:
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    windows: tuple[Window, ...] = Window.parse_many("09:00-11:00,11:00-13:00,14:00-16:00,16:00-18:00")
    booking_days: int = 7
    booking_lead: timedelta = timedelta(hours=2)
    reschedule_cutoff: timedelta = timedelta(hours=12)
    checkin_radius_m: float = 500.0
    low_rating_threshold: int = 2
    customer_link_ttl: timedelta = timedelta(days=30)
    staff_link_ttl: timedelta = timedelta(days=7)
    business_hours: BusinessHours = BusinessHours()
    reminder_hour: int = 18  # the evening before an appointment, local time
    day_plan_hour: int = 7  # technicians get their day at 07:30 local time
    close_radius_m: float = 1000.0  # the customer is told "almost there" inside this distance
    travel_speed_kmh: float = 30.0
    detour_factor: float = 1.3
