"""Declarative field maps, pure: a source's JSON (or a CSV row) turned into the order model's shape by rules kept as data.

A map is JSON:

    {"orders": "data.orders",            # polling: where a fetched page keeps its orders (optional)
     "cursor": "next_cursor",            # polling: where a page says the next cursor (optional)
     "fields": {"external_ref": "id",    # target path <- source path
                "customer.language": {"path": "buyer.locale", "map": {"zh-CN": "zh"}, "default": "en"},
                "address.text": {"join": ["ship.city", "ship.street"], "sep": " "},
                "price_minor": {"path": "fee", "transform": ["minor_units"]},
                "items": {"each": "lines", "fields": {"sku": "sku", "quantity": {"path": "qty", "transform": ["int"]},
                          "services": {"path": "service", "split": ",", "map": {"INST": "installation"}, "as": "kind"}}}}}

A rule is a source path (dotted; numbers index lists), or an object with one of ``path``, ``const``, ``join``,
``each`` and the options ``transform`` (str, int, float, strip, lower, upper, minor_units), ``split``, ``map``,
``default``, ``as``. A missing value leaves the target out, so the order model names what is missing.
Rows of a table are mapped the same way; ``row_item`` maps the order line a row carries, and rows that share an
``external_ref`` are one order's lines.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from domain.errors import InvalidInput

TRANSFORMS = ("str", "int", "float", "strip", "lower", "upper", "minor_units")
RULE_KEYS = {"path", "const", "join", "sep", "each", "fields", "transform", "split", "map", "default", "as"}
MAX_DEPTH = 8
MISSING = object()


class MappingError(InvalidInput):
    """A value the map could not convert; ``code`` is mapping_failed and the message says which field and why."""

    def __init__(self, message: str) -> None:
        super().__init__("mapping_failed")
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_spec(spec: Any) -> None:
    """Refuse a map that could not work, with the reason (a 422 when a source is configured)."""
    if not isinstance(spec, dict):
        raise MappingError("the mapping must be an object")
    unknown = set(spec) - {"name", "description", "orders", "cursor", "fields", "row_item"}
    if unknown:
        raise MappingError(f"unknown mapping keys: {', '.join(sorted(unknown))}")
    for key in ("orders", "cursor"):
        if key in spec and not _is_path(spec[key]):
            raise MappingError(f"{key} must be a dotted path")
    if not isinstance(spec.get("fields"), dict) or not spec["fields"]:
        raise MappingError("fields must be an object of target path -> rule")
    _check_fields(spec["fields"], "fields", 0)
    if "row_item" in spec:
        if not isinstance(spec["row_item"], dict):
            raise MappingError("row_item must be an object of target path -> rule")
        _check_fields(spec["row_item"], "row_item", 0)


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200 and all(part for part in value.split("."))


def _check_fields(fields: dict[str, Any], where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MappingError(f"{where}: nested too deep")
    for target, rule in fields.items():
        if not _is_path(target):
            raise MappingError(f"{where}: {target!r} is not a dotted target path")
        _check_rule(rule, f"{where}.{target}", depth)


def _check_rule(rule: Any, where: str, depth: int) -> None:
    if isinstance(rule, str):
        if not _is_path(rule):
            raise MappingError(f"{where}: {rule!r} is not a dotted source path")
        return
    if not isinstance(rule, dict):
        raise MappingError(f"{where}: a rule is a source path or an object")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise MappingError(f"{where}: unknown rule keys: {', '.join(sorted(unknown))}")
    kinds = [k for k in ("path", "const", "join", "each") if k in rule]
    if len(kinds) != 1:
        raise MappingError(f"{where}: give exactly one of path, const, join, each")
    if "path" in rule and not _is_path(rule["path"]):
        raise MappingError(f"{where}: path must be a dotted source path")
    if "join" in rule and (not isinstance(rule["join"], list) or not rule["join"] or not all(_is_path(p) for p in rule["join"])):
        raise MappingError(f"{where}: join must be a list of source paths")
    if "each" in rule:
        if not _is_path(rule["each"]) or not isinstance(rule.get("fields"), dict):
            raise MappingError(f"{where}: each needs a source path and fields")
        _check_fields(rule["fields"], where, depth + 1)
    transforms = rule.get("transform", [])
    if not isinstance(transforms, list) or any(t not in TRANSFORMS for t in transforms):
        raise MappingError(f"{where}: transform is a list of {', '.join(TRANSFORMS)}")
    if "map" in rule and not isinstance(rule["map"], dict):
        raise MappingError(f"{where}: map must be an object of source value -> value")
    if "split" in rule and (not isinstance(rule["split"], str) or not rule["split"]):
        raise MappingError(f"{where}: split must be a separator")
    if "as" in rule and not _is_path(rule["as"]):
        raise MappingError(f"{where}: as must be a field name")


def read(document: Any, path: str) -> Any:
    """The value at a dotted path, or MISSING."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part, MISSING)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
        if current is MISSING or current is None:
            return MISSING
    return current


def apply(spec: dict[str, Any], document: Any) -> dict[str, Any]:
    """The order, in the order model's shape, that ``document`` describes (the order model then validates it)."""
    return _map_fields(spec["fields"], document)


def orders_of(spec: dict[str, Any], page: Any) -> list[Any]:
    """The orders in a fetched page: at the map's ``orders`` path, or the page itself when it is a list."""
    found = read(page, spec["orders"]) if "orders" in spec else page
    if not isinstance(found, list):
        raise MappingError(f"the page has no list of orders at {spec.get('orders', 'its top level')!r}")
    return found


def cursor_of(spec: dict[str, Any], page: Any) -> str | None:
    if "cursor" not in spec:
        return None
    found = read(page, spec["cursor"])
    return None if found is MISSING else str(found)


def _map_fields(fields: dict[str, Any], document: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target, rule in fields.items():
        value = _value(rule, document, target)
        if value is not MISSING:
            _put(out, target, value)
    return out


def _put(out: dict[str, Any], target: str, value: Any) -> None:
    *parents, leaf = target.split(".")
    for part in parents:
        out = out.setdefault(part, {})
    out[leaf] = value


def _value(rule: Any, document: Any, target: str) -> Any:
    if isinstance(rule, str):
        found = read(document, rule)
        return MISSING if isinstance(found, str) and not found.strip() else found
    if "const" in rule:
        return rule["const"]
    if "each" in rule:
        rows = read(document, rule["each"])
        if rows is MISSING:
            return MISSING
        if not isinstance(rows, list):
            raise MappingError(f"{target}: {rule['each']} is not a list")
        return [_map_fields(rule["fields"], row) for row in rows]
    if "join" in rule:
        parts = [read(document, p) for p in rule["join"]]
        present = [str(p).strip() for p in parts if p is not MISSING and str(p).strip()]
        value: Any = rule.get("sep", " ").join(present) if present else MISSING
    else:
        value = read(document, rule["path"])
    if isinstance(value, str) and not value.strip():
        value = MISSING  # an empty cell is a missing value, not an empty name
    if value is MISSING:
        return rule.get("default", MISSING)
    if "split" in rule:
        value = [part.strip() for part in str(value).split(rule["split"]) if part.strip()]
    if isinstance(value, list):
        # a value mapped to null is dropped: a line's "NONE" service code means no service, not a service named null
        return [mapped for mapped in (_one(rule, v, target) for v in value) if mapped is not None]
    mapped = _one(rule, value, target)
    return MISSING if mapped is None else mapped


def _one(rule: dict[str, Any], value: Any, target: str) -> Any:
    for name in rule.get("transform", []):
        value = _transform(name, value, target)
    if "map" in rule:
        key = str(value)
        if key in rule["map"]:
            value = rule["map"][key]
        elif "default" in rule:
            value = rule["default"]
        else:
            raise MappingError(f"{target}: {key!r} is not one of {', '.join(map(str, rule['map']))}")
    if value is None:
        return None
    if "as" in rule:
        value = {rule["as"]: value}
    return value


def _transform(name: str, value: Any, target: str) -> Any:
    try:
        if name == "str":
            return str(value)
        if name == "strip":
            return str(value).strip()
        if name == "lower":
            return str(value).lower()
        if name == "upper":
            return str(value).upper()
        if name == "int":
            number = Decimal(str(value).strip())
            if number != number.to_integral_value():
                raise ValueError
            return int(number)
        if name == "float":
            return float(Decimal(str(value).strip()))
        if name == "minor_units":
            # "12.50" -> 1250: money stays exact, never through a float
            cents = Decimal(str(value).strip()) * 100
            if cents != cents.to_integral_value():
                raise ValueError
            return int(cents)
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise MappingError(f"{target}: {value!r} is not a valid {name.replace('_', ' ')}") from exc
    raise MappingError(f"{target}: unknown transform {name}")
