"""The bus's tables in one place: which handler runs each command, and which reactions follow every event."""

from __future__ import annotations

from domain import commands as c
from services import handlers, notifications, replanning, timers
from services.bus import Handler, Reactions

HANDLERS: dict[type[c.Command], Handler] = {
    **handlers.HANDLERS,
    c.TrackLocation: timers.track_location,
    c.ExtendSla: timers.extend_sla,
    c.SetDuty: replanning.set_duty,
}


def reactions() -> Reactions:
    """A fresh table (a test may add its own reaction without touching anyone else's)."""
    table = Reactions()
    table.add(notifications.notifications_for)  # who is told, in their chats, groups and robots
    table.add(timers.on_event)  # the SLA clocks, reminders and day plans the event starts or stops
    return table
