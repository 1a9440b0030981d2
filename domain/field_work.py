"""Rules of technicians' work beyond the happy path: repair codes, the job brief, delays, how honest a check-in is."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.model import Job, Visit, VisitStatus


class ReturnReason(str, enum.Enum):
    """Why a visit ends needing another one."""

    MISSING_PART = "missing_part"
    CUSTOMER_NOT_READY = "customer_not_ready"
    OTHER = "other"  # the technician says why in their own words


class CheckinKind(str, enum.Enum):
    LIVE = "live"  # Telegram's live location: follows the phone, hard to fake
    STATIC = "static"  # a pin, which can be dropped anywhere on the map
    # a pin from a chat that offers nothing better (the web page): recorded as such, and not flagged for being a pin,
    # since alerting on every check-in teaches dispatchers to ignore the alerts (distance is still checked)
    PIN_ONLY = "pin_only"


@dataclass(frozen=True)
class RepairCodes:
    """What a repair may record for a product category: the fault found and the method used (codes; labels in the catalogs)."""

    faults: tuple[str, ...]
    methods: tuple[str, ...]


APPLIANCE_CODES = RepairCodes(
    faults=("electrical", "mechanical", "leak", "noise", "no_fault_found", "other"),
    methods=("part_replaced", "adjusted", "cleaned", "rewired", "no_action", "other"),
)
FURNITURE_CODES = RepairCodes(
    faults=("structural", "fabric", "hardware", "assembly", "no_fault_found", "other"),
    methods=("part_replaced", "reassembled", "tightened", "surface_repaired", "no_action", "other"),
)
GENERAL_CODES = RepairCodes(
    faults=("damage", "wear", "installation", "no_fault_found", "other"),
    methods=("part_replaced", "adjusted", "repaired", "no_action", "other"),
)
APPLIANCES = ("washer", "dryer", "fridge", "dishwasher", "oven", "aircon", "tv", "appliance")
FURNITURE = ("sofa", "bed", "table", "chair", "wardrobe", "cabinet", "furniture")
DEFAULT_REPAIR_CODES: Mapping[str, RepairCodes] = {
    **{category: APPLIANCE_CODES for category in APPLIANCES},
    **{category: FURNITURE_CODES for category in FURNITURE},
    "*": GENERAL_CODES,
}


def repair_codes(table: Mapping[str, RepairCodes], product_category: str) -> RepairCodes:
    """The lists for a product category; a category the shop did not list gets its catch-all ("*")."""
    return table.get(product_category) or table.get("*") or GENERAL_CODES


def check_repair_codes(codes: RepairCodes, fault: str | None, method: str | None) -> bool:
    """A repair is recorded only with a fault and a method from its category's lists."""
    return fault in codes.faults and method in codes.methods


def job_brief(job: Job) -> str:
    """What the ERP said about the job for whoever goes there ("call first, 3rd floor, no lift") and its items, one line
    each; "" when it said nothing."""
    lines = [line.strip() for line in job.notes.splitlines() if line.strip()]
    lines += [item_line(item) for item in job.items]
    return "\n".join(line for line in lines if line)


def item_line(item: Mapping[str, Any]) -> str:
    """One order line as the sending system named it: its name (or SKU) and quantity."""
    name = str(item.get("name") or item.get("title") or item.get("sku") or "").strip()
    quantity = item.get("qty", item.get("quantity"))
    if not name:
        return ""
    return f"{name} × {quantity}" if quantity not in (None, "", 1) else name


def late_estimate(visit: Visit, now: datetime, minutes: int) -> datetime:
    """When a technician who says "N minutes late" now expects to arrive: N minutes after the time they were
    expected (the planned start, else the window's start), or after now when that has passed."""
    expected = visit.planned_start or visit.slot_start or now
    return max(expected, now) + timedelta(minutes=minutes)


MAX_LATE_MINUTES = 600  # "late by 20 hours" is not a delay to pass on: a dispatcher should look


def checkin_flags(kind: str | None, distance_m: float, radius_m: float) -> tuple[str, ...]:
    """Why a check-in needs a second look: a static pin can be dropped anywhere, and one far away is not presence.
    Any flag is one alert to the dispatchers (a pin at the door is as unverified as one across town)."""
    flags = []
    if kind not in (CheckinKind.LIVE.value, CheckinKind.PIN_ONLY.value):
        flags.append("static")
    if distance_m > radius_m:
        flags.append("far")
    return tuple(flags)


# a lead who accepted, from then until the work ends (a report on hold included)
SEATED = (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS, VisitStatus.ON_HOLD)


def open_crew_seats(visit: Visit) -> int:
    """Places still open in a crew whose lead has accepted (the crew short after fill_crew, or after a call for help):
    someone a dispatcher picks takes such a place beside the lead instead of replacing the lead. A visit not yet
    accepted has no seats to fill: its crew is made up when its lead accepts."""
    if visit.technician_id is None or visit.state not in SEATED:
        return 0
    return max(0, visit.crew_size - 1 - len(visit.crew_ids))


def parse_repair_codes(text: str) -> dict[str, RepairCodes]:
    """The shop's own lists, as JSON ``{"washer": {"faults": [...], "methods": [...]}, "*": {...}}``, over the defaults:
    a category named replaces its default lists, the others keep theirs. Codes are short snake_case words (labels for
    the default codes are in the catalogs; a new code is shown as written)."""
    table = dict(DEFAULT_REPAIR_CODES)
    if not text.strip():
        return table
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError("repair codes must be a JSON object") from exc
    if not isinstance(data, dict):
        raise ValueError("repair codes must be a JSON object of product categories")
    for category, lists in data.items():
        if not isinstance(lists, dict):
            raise ValueError(f"repair codes of {category!r} must have faults and methods")
        table[str(category)] = RepairCodes(_codes(category, lists, "faults"), _codes(category, lists, "methods"))
    return table


MAX_CODES = 20  # a button each, and button data carries the index (services/actions.py INDEX)


def _codes(category: str, lists: dict[str, Any], name: str) -> tuple[str, ...]:
    codes = lists.get(name)
    if not isinstance(codes, list) or not 1 <= len(codes) <= MAX_CODES or not all(_is_code(code) for code in codes):
        raise ValueError(f"repair codes of {category!r}: {name} must be 1 to {MAX_CODES} snake_case words")
    return tuple(str(code) for code in codes)


def _is_code(code: object) -> bool:
    return isinstance(code, str) and 0 < len(code) <= 40 and code.replace("_", "").isalnum() and code.isascii() and code == code.lower()
