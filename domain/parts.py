"""Parts and van stock, and what a repair records at completion: the catalogue's rules, stock locations, the fault tree
per product category (seed 004: natural wear / improper use / damage by a person), and the reorder suggestion."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidInput
from domain.model import MAX_ID

WAREHOUSE = "warehouse"
VAN_PREFIX = "van:"
MAX_QUANTITY = 100_000  # a single movement; more is a typing error, not a delivery
MAX_PRICE_MINOR = 10**11  # a billion in major units: far beyond any part
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,59}$")  # a part's code as the shop's catalogue writes it
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
NOTE_CHARS = 500
RECENT_USE_DAYS = 30  # the window the reorder suggestion reads the ledger over
COVER_DAYS = 30  # how long a reorder should last at the recent rate of use
MAX_PARTS_PER_REPAIR = 10  # distinct parts on one completion (buttons, and what one repair plausibly uses)


class MovementKind(str, enum.Enum):
    """Every change of stock is one of these, written to the ledger (``stock_movements``)."""

    RECEIVE = "receive"  # into a location from outside (a supplier's delivery): only a destination
    ISSUE = "issue"  # warehouse → a van, e.g. an approved request
    TRANSFER = "transfer"  # between any two locations
    RETURN = "return"  # a van → the warehouse
    USE = "use"  # fitted on a job: out of a location, recorded on the repair
    WRITE_OFF = "write_off"  # out of a location for good (broken, lost, counted short)
    PUT_BACK = "put_back"  # used on a repair in progress, then not fitted after all: back into the van it came from


# kinds that only a technician's repair in progress records (the API's movements refuse them)
ON_REPAIR: frozenset[MovementKind] = frozenset({MovementKind.USE, MovementKind.PUT_BACK})


# which ends a kind of movement has: (from, to); True required, False must be absent
MOVEMENT_ENDS: Mapping[MovementKind, tuple[bool, bool]] = {
    MovementKind.RECEIVE: (False, True),
    MovementKind.ISSUE: (True, True),
    MovementKind.TRANSFER: (True, True),
    MovementKind.RETURN: (True, True),
    MovementKind.USE: (True, False),
    MovementKind.WRITE_OFF: (True, False),
    MovementKind.PUT_BACK: (False, True),
}


class RequestStatus(str, enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"  # and issued: the parts are in the van
    DECLINED = "declined"


class Outcome(str, enum.Enum):
    """How a repair visit ends."""

    FIXED = "fixed"
    RETURN = "return"  # needs a return visit, which is created and dispatched like any other


def van(technician_id: int) -> str:
    return f"{VAN_PREFIX}{technician_id}"


def parse_location(text: str) -> str:
    """``warehouse`` or ``van:<technician id>``, as stored; InvalidInput otherwise."""
    text = (text or "").strip().lower()
    if text == WAREHOUSE:
        return text
    if text.startswith(VAN_PREFIX) and text[len(VAN_PREFIX):].isdigit():
        technician_id = int(text[len(VAN_PREFIX):])
        if 1 <= technician_id <= MAX_ID:
            return van(technician_id)
    raise InvalidInput("stock_location_invalid")


def van_owner(location: str) -> int | None:
    """The technician whose van a location is; None for the warehouse."""
    return int(location[len(VAN_PREFIX):]) if location.startswith(VAN_PREFIX) else None


def check_quantity(quantity: int) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput("stock_quantity_invalid", max=MAX_QUANTITY)
    return quantity


def check_movement(kind: MovementKind, source: str | None, target: str | None) -> None:
    """A movement's ends fit its kind, and an issue goes warehouse → van, a return van → warehouse."""
    needs_from, needs_to = MOVEMENT_ENDS[kind]
    if bool(source) != needs_from or bool(target) != needs_to or (source and source == target):
        raise InvalidInput("stock_movement_ends_invalid", kind=kind.value)
    if kind is MovementKind.ISSUE and not (source == WAREHOUSE and target and van_owner(target)):
        raise InvalidInput("stock_movement_ends_invalid", kind=kind.value)
    if kind is MovementKind.RETURN and not (source and van_owner(source) and target == WAREHOUSE):
        raise InvalidInput("stock_movement_ends_invalid", kind=kind.value)


@dataclass(frozen=True)
class PartSpec:
    """A catalogue entry as the shop gives it; ``price_minor`` in the currency's minor units (fen, cents)."""

    code: str
    name: str
    unit: str
    price_minor: int
    currency: str
    category: str = ""
    compatible: tuple[str, ...] = ()  # product categories it fits; empty: any
    min_stock: int = 0  # the warehouse's level at or below which the dispatchers are told to reorder

    def checked(self) -> "PartSpec":
        code, name, unit = self.code.strip(), self.name.strip(), self.unit.strip()
        if not CODE_RE.match(code):
            raise InvalidInput("part_code_invalid")
        if not name or len(name) > 200:
            raise InvalidInput("part_name_invalid")
        if not unit or len(unit) > 20:
            raise InvalidInput("part_unit_invalid")
        if isinstance(self.price_minor, bool) or not 0 <= self.price_minor <= MAX_PRICE_MINOR:
            raise InvalidInput("part_price_invalid")
        if not CURRENCY_RE.match(self.currency):
            raise InvalidInput("part_currency_invalid")
        category = self.category.strip()
        compatible = tuple(dict.fromkeys(c.strip() for c in self.compatible if c.strip()))
        if len(category) > 100 or len(compatible) > 50 or any(len(c) > 100 for c in compatible):
            raise InvalidInput("part_category_invalid")
        if not 0 <= self.min_stock <= MAX_QUANTITY:
            raise InvalidInput("part_min_stock_invalid")
        return PartSpec(code, name, unit, self.price_minor, self.currency, category, compatible, self.min_stock)

    def fits(self, product_category: str) -> bool:
        return not self.compatible or product_category in self.compatible


def crossed_low(before: int, after: int, min_stock: int) -> bool:
    """Whether a decrease took the warehouse to its reorder level or below just now (told once, not on every use)."""
    return min_stock > 0 and before > min_stock >= after


def reorder_suggestion(on_hand: int, min_stock: int, used_recently: int, *, days: int = RECENT_USE_DAYS,
                       cover_days: int = COVER_DAYS) -> int:
    """How many to order: enough for ``cover_days`` at the rate of the last ``days``' use, plus the reorder level, less
    what is on hand; at least back above the level."""
    need = math.ceil(used_recently * cover_days / days) + min_stock - on_hand
    return max(need, min_stock + 1 - on_hand, 0)


# --- the fault tree a repair records from -------------------------------------------------------------------------

NODE_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,27}$")  # "cause/fault" fits the visit's 60 characters
MAX_CAUSES, MAX_FAULTS, MAX_METHODS = 10, 20, 20
LABEL_LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class Node:
    """A cause, fault or method: its code, and the shop's own label per language (none: the catalog's, else the code)."""

    code: str
    label: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Cause:
    code: str
    faults: tuple[Node, ...]
    label: Mapping[str, str] | None = None


@dataclass(frozen=True)
class FaultTree:
    """What a repair of a product category records: a cause (the top of the tree), a specific fault under it, a method."""

    causes: tuple[Cause, ...]
    methods: tuple[Node, ...]

    def pick(self, cause: int, fault: int | None = None, method: int | None = None) -> tuple[Cause, Node | None, Node | None] | None:
        """The nodes at these indexes (button data), or None when one is out of range (an old or forged button)."""
        if not 0 <= cause < len(self.causes):
            return None
        picked = self.causes[cause]
        if fault is not None and not 0 <= fault < len(picked.faults):
            return None
        if method is not None and not 0 <= method < len(self.methods):
            return None
        return picked, picked.faults[fault] if fault is not None else None, self.methods[method] if method is not None else None

    def has(self, cause: str, fault: str, method: str) -> bool:
        found = next((c for c in self.causes if c.code == cause), None)
        return found is not None and any(f.code == fault for f in found.faults) and any(m.code == method for m in self.methods)

    def to_json(self) -> dict[str, Any]:
        def node(n: Node | Cause) -> dict[str, Any]:
            return {"code": n.code, **({"label": dict(n.label)} if n.label else {})}
        return {"causes": [{**node(c), "faults": [node(f) for f in c.faults]} for c in self.causes],
                "methods": [node(m) for m in self.methods]}


def _nodes(codes: Sequence[str]) -> tuple[Node, ...]:
    return tuple(Node(code) for code in codes)


DEFAULT_FAULT_TREE = FaultTree(
    causes=(
        Cause("natural_wear", _nodes(("component_aged", "capacitor_failed", "motor_worn", "seal_worn", "board_failed", "other"))),
        Cause("improper_use", _nodes(("overloaded", "wrong_settings", "no_maintenance", "wrong_power_supply", "other"))),
        Cause("human_damage", _nodes(("impact", "liquid", "tampered", "other"))),
    ),
    methods=_nodes(("part_replaced", "repaired", "adjusted", "cleaned", "rewired", "no_action")),
)


def _label(raw: object) -> Mapping[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw or any(k not in LABEL_LANGUAGES or not isinstance(v, str) or not 0 < len(v.strip()) <= 60
                                                   for k, v in raw.items()):
        raise InvalidInput("fault_tree_invalid", reason="label")
    return {k: v.strip() for k, v in raw.items()}


def _node(raw: object, seen: set[str]) -> Node:
    if isinstance(raw, str):
        raw = {"code": raw}
    if not isinstance(raw, dict) or set(raw) - {"code", "label"}:
        raise InvalidInput("fault_tree_invalid", reason="node")
    code = raw.get("code")
    if not isinstance(code, str) or not NODE_CODE_RE.match(code) or code in seen:
        raise InvalidInput("fault_tree_invalid", reason=f"code {code!r}")
    seen.add(code)
    return Node(code, _label(raw.get("label")))


def parse_fault_tree(raw: object) -> FaultTree:
    """A shop's tree from JSON (a dict, or its text): causes with their faults, and methods; codes ``a-z0-9_``, labels
    optional ``{"en": …, "zh": …}``. InvalidInput naming what is wrong otherwise."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InvalidInput("fault_tree_invalid", reason="json") from exc
    if not isinstance(raw, dict) or set(raw) != {"causes", "methods"}:
        raise InvalidInput("fault_tree_invalid", reason="causes and methods")
    causes_raw, methods_raw = raw["causes"], raw["methods"]
    if not isinstance(causes_raw, list) or not 1 <= len(causes_raw) <= MAX_CAUSES:
        raise InvalidInput("fault_tree_invalid", reason="causes")
    if not isinstance(methods_raw, list) or not 1 <= len(methods_raw) <= MAX_METHODS:
        raise InvalidInput("fault_tree_invalid", reason="methods")
    causes, cause_codes = [], set[str]()
    for entry in causes_raw:
        if not isinstance(entry, dict) or set(entry) - {"code", "label", "faults"}:
            raise InvalidInput("fault_tree_invalid", reason="cause")
        head = _node({k: v for k, v in entry.items() if k != "faults"}, cause_codes)
        faults_raw = entry.get("faults")
        if not isinstance(faults_raw, list) or not 1 <= len(faults_raw) <= MAX_FAULTS:
            raise InvalidInput("fault_tree_invalid", reason=f"faults of {head.code}")
        fault_codes: set[str] = set()
        causes.append(Cause(head.code, tuple(_node(f, fault_codes) for f in faults_raw), head.label))
    method_codes: set[str] = set()
    return FaultTree(tuple(causes), tuple(_node(m, method_codes) for m in methods_raw))


def tree_for(trees: Mapping[str, FaultTree], product_category: str) -> FaultTree:
    """The tree for a product category: the shop's for it, else the shop's catch-all ("*"), else the default."""
    return trees.get(product_category) or trees.get("*") or DEFAULT_FAULT_TREE


def check_used_parts(parts: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """A completion's parts: (part id, quantity) pairs, each part once, each quantity in range."""
    ids = [part_id for part_id, _q in parts]
    if len(ids) != len(set(ids)) or len(ids) > MAX_PARTS_PER_REPAIR or any(not 1 <= i <= MAX_ID for i in ids):
        raise InvalidInput("repair_parts_invalid")
    return tuple((part_id, check_quantity(quantity)) for part_id, quantity in parts)
