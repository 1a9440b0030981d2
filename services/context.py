"""What every handler, reaction and read works in: one open unit of work's store, its moment and the shop's rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.policy import ServicePolicy
from storage.repository import Store


@dataclass
class HandlerContext:
    store: Store
    now: datetime
    policy: ServicePolicy
