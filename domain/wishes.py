"""Which offered window fits what a customer asked for in words: a day, a part of the day, after or before a time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, tzinfo

Span = tuple[datetime, datetime]

# local hours each part of the day covers: a window fits a part when it starts in it
PARTS_OF_DAY: dict[str, tuple[time, time]] = {
    "morning": (time(0, 0), time(12, 0)),
    "noon": (time(11, 0), time(14, 0)),
    "afternoon": (time(12, 0), time(18, 0)),
    "evening": (time(16, 0), time(23, 59)),
}


def fits_wish(
    window: Span, tz: tzinfo, *, day: date | None = None, part_of_day: str | None = None,
    after: time | None = None, before: time | None = None,
) -> bool:
    """Whether a window fits the wish. "After ten" means the visit may not begin earlier, so a window fits only
    when it starts at or after ten (someone may come at its very start); "before four" means it ends by then."""
    start, end = (moment.astimezone(tz) for moment in window)
    if day is not None and start.date() != day:
        return False
    if part_of_day is not None and part_of_day in PARTS_OF_DAY:
        low, high = PARTS_OF_DAY[part_of_day]
        if not low <= start.time() < high:
            return False
    if after is not None and start.time() < after:
        return False
    return before is None or end.time() <= before


def first_fitting(
    windows: Iterable[Span], tz: tzinfo, *, day: date | None = None, part_of_day: str | None = None,
    after: time | None = None, before: time | None = None,
) -> Span | None:
    """The earliest window that fits the wish; None: none does (the customer then picks from that day or another)."""
    fitting = [w for w in windows if fits_wish(w, tz, day=day, part_of_day=part_of_day, after=after, before=before)]
    return min(fitting, default=None)
