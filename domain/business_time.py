"""Business-time arithmetic: deadlines that only count the shop's opening hours, in its time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo


@dataclass(frozen=True)
class BusinessHours:
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    start: time = time(9, 0)
    end: time = time(18, 0)

    def __post_init__(self) -> None:
        if self.end <= self.start or not self.weekdays:
            raise ValueError("business hours must have days and end after they start")


def add_business_minutes(moment: datetime, minutes: float, hours: BusinessHours, tz: tzinfo) -> datetime:
    """The moment ``minutes`` of opening time after ``moment`` (which may itself be outside hours)."""
    remaining = timedelta(minutes=minutes)
    local = moment.astimezone(tz)
    for _ in range(366):  # at most a year of days; a valid calendar always ends far sooner
        day = local.date()
        opens = datetime.combine(day, hours.start, tz)
        closes = datetime.combine(day, hours.end, tz)
        if day.weekday() in hours.weekdays and local < closes:
            begin = max(local, opens)
            if begin + remaining <= closes:
                return (begin + remaining).astimezone(moment.tzinfo)
            remaining -= closes - begin
        local = datetime.combine(day + timedelta(days=1), time(0, 0), tz)
    raise ValueError("business hours never open")
