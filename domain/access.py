"""Who may do what: roles, API scopes and the one region rule every surface (API, pages, group chats) applies."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Role(enum.StrEnum):
    DISPATCHER = "dispatcher"
    MANAGER = "manager"
    ADMIN = "admin"


# What an integration's token may be given; "admin" may do everything, the API's token management included.
SCOPES: dict[str, str] = {
    "orders:write": "push orders (intake)",
    "jobs:read": "read jobs, visits, photos and candidates",
    "jobs:write": "dispatch: assign, reschedule, correct, close and reopen",
    "staff:write": "add technicians, dispatchers and dispatch groups; set duty",
    "settings:write": "checklists, dispatch rules, SLA policies, alert sinks",
    "devices:read": "read devices, their history and QR codes",
    "devices:write": "register, import and retire devices; renew QR codes",
    "parts:read": "read the parts catalogue, stock per location, movements and fault trees",
    "parts:write": "add and change parts, move stock, decide part requests",
    "fees:read": "read the price list",
    "fees:write": "price bills and record payments",
    "fees:manage": "a manager's say on prices: set the price list, approve price increases above the managers' limit, give discounts",
    "admin": "everything, including accounts and API tokens",
}
ADMIN = "admin"

# what a signed-in person's role lets them do, in the pages and through the API alike
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    # dispatchers run the day: devices, stock and part requests, bills and payments; managers look at everything, change nothing
    Role.DISPATCHER: frozenset(
        {"jobs:read", "jobs:write", "devices:read", "devices:write", "parts:read", "parts:write", "fees:read", "fees:write"}),
    # and a manager's say on prices (fees:manage): increases above the managers' limit, discounts (issue 14 part 6)
    Role.MANAGER: frozenset({"jobs:read", "devices:read", "parts:read", "fees:read", "fees:manage"}),
    Role.ADMIN: frozenset({ADMIN}),
}


def valid_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, sorted and without repeats; ValueError naming the first unknown one."""
    chosen = sorted(set(scopes))
    for scope in chosen:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")
    if not chosen:
        raise ValueError("give at least one scope")
    return chosen


def region_allowed(regions: frozenset[str] | None, region: str | None) -> bool:
    """The region rule: someone scoped to regions acts only on records of those regions; ``None`` is every region.

    A record without a region (none is expected: every job has one) is refused to a scoped person rather than shown."""
    return regions is None or (region is not None and region in regions)


def regions_of(stored: object) -> frozenset[str] | None:
    """Regions as stored (a JSON list, or null for every region)."""
    if stored is None:
        return None
    if not isinstance(stored, list):
        raise TypeError("regions are stored as a list")
    return frozenset(str(region) for region in stored)


@dataclass(frozen=True)
class Principal:
    """Whoever a request acts as: a signed-in account, an integration's token, or the installation's admin token."""

    kind: str  # account | token | admin_token
    id: int | None
    name: str
    scopes: frozenset[str]
    regions: frozenset[str] | None = None  # None: every region
    role: Role | None = None
    dispatcher_id: int | None = None

    def can(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def sees(self, region: str | None) -> bool:
        return region_allowed(self.regions, region)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes
