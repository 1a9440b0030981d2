"""Orders from a CSV or XLSX file: rows read, mapped by the source's table map, grouped into orders by external_ref,
placed a batch per unit of work, and reported row by row (a bad row never stops the good ones)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Sequence

from domain.errors import DomainError
from domain.order_mapping import MappingError, apply, _map_fields
from services import intake
from services.bus import MessageBus

MAX_ROWS = 5000  # a bigger file is several files
BATCH = 50  # orders per unit of work
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# validate(order in the model's shape) -> the order as intake takes it; raises InvalidOrder with the reason
Validate = Callable[[dict[str, Any]], dict[str, Any]]


class InvalidOrder(Exception):
    """The order model refused a mapped order; ``line`` is the order line at fault (None: the order's own fields)."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


class UnreadableFile(Exception):
    """The file is no table this importer reads; the API answers 422 with the reason."""


def shipped_map(name: str) -> dict[str, Any]:
    """One of the field maps shipped as data (services/order_maps/<name>.json)."""
    text = resources.files("services").joinpath("order_maps", f"{name}.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def read_csv(data: bytes) -> list[dict[str, str]]:
    try:
        text = data.decode("utf-8-sig")  # Excel writes a byte-order mark before UTF-8 CSV
    except UnicodeDecodeError as exc:
        raise UnreadableFile("the CSV is not UTF-8 text") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[dict[str, str]] = []
    try:
        if not reader.fieldnames:
            raise UnreadableFile("the CSV has no header row")
        for row in reader:
            if len(rows) >= MAX_ROWS:
                raise UnreadableFile(f"more than {MAX_ROWS} rows: split the file")
            # a row longer than the header keeps its extra cells under None: they belong to no column
            rows.append({k.strip(): (v if isinstance(v, str) else "") for k, v in row.items() if k is not None})
    except csv.Error as exc:
        raise UnreadableFile(f"the CSV cannot be read at line {reader.line_num}: {exc}") from exc
    return rows


def read_xlsx(data: bytes) -> list[dict[str, str]]:
    """The first sheet; its first row names the columns. Values come as text, as a CSV's would."""
    from openpyxl import load_workbook  # type: ignore[import-untyped]  # imported here: only a shop importing spreadsheets pays for it
    from openpyxl.utils.exceptions import InvalidFileException  # type: ignore[import-untyped]
    from zipfile import BadZipFile

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnreadableFile("the file is not an XLSX workbook") from exc
    except Exception as exc:  # a broken workbook fails in openpyxl's depths in many ways: each is the sender's file, not a 500
        raise UnreadableFile("the XLSX workbook is damaged") from exc
    try:
        return _sheet_rows(workbook)
    except UnreadableFile:
        raise
    except Exception as exc:  # damaged sheet XML, found only while reading it
        raise UnreadableFile("the XLSX workbook is damaged") from exc
    finally:
        workbook.close()


def _sheet_rows(workbook: Any) -> list[dict[str, str]]:
    """The first sheet's rows by its header row's names; blank rows skipped."""
    sheet = workbook.worksheets[0]
    lines = sheet.iter_rows(values_only=True)
    header = next(lines, None)
    if not header or not any(header):
        raise UnreadableFile("the sheet has no header row")
    names = [str(h).strip() if h is not None else "" for h in header]
    rows: list[dict[str, str]] = []
    for values in lines:
        if not any(v not in (None, "") for v in values):
            continue  # a blank row between orders
        if len(rows) >= MAX_ROWS:
            raise UnreadableFile(f"more than {MAX_ROWS} rows: split the file")
        rows.append({name: _cell(v) for name, v in zip(names, values) if name})
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 2.0 from a number cell is the 2 someone typed
    return str(value)


@dataclass
class RowReport:
    row: int  # the line in the file: the header is row 1
    status: str  # created | updated | unchanged | pending_review | error
    external_ref: str | None = None
    job_id: int | None = None
    reason: str | None = None


@dataclass
class ImportReport:
    rows: list[RowReport] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)


@dataclass
class _Order:
    ref: str
    header: dict[str, Any]
    first_row: int
    rows: list[int] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    bad_row: int | None = None


async def import_rows(bus: MessageBus, source: str, spec: dict[str, Any], rows: Sequence[dict[str, str]], validate: Validate) -> ImportReport:
    """Map every row, group the lines of each order, place the valid orders in one unit of work; report each row."""
    report = ImportReport()
    by_ref: dict[str, _Order] = {}
    errors: dict[int, str] = {}
    for index, row in enumerate(rows):
        number = index + 2
        try:
            header = apply(spec, row)
            item = _map_fields(spec.get("row_item", {}), row) if "row_item" in spec else None
        except MappingError as err:
            errors[number] = str(err)
            # the row's order must not go in without this line: find it by its reference, when that much can be read
            ref = _ref_of(spec, row)
            if ref is not None:
                order = by_ref.setdefault(ref, _Order(ref, {}, number))
                if not order.error:
                    order.error, order.bad_row = str(err), number
                order.rows.append(number)
                del errors[number]
            continue
        ref = header.get("external_ref")
        if not isinstance(ref, str) or not ref.strip():
            errors[number] = "external_ref is missing"
            continue
        found = by_ref.get(ref)
        if found is None:
            order = by_ref[ref] = _Order(ref, header, number)
        elif not (order := found).header:
            order.header = header  # its first row could not be read: the order is refused anyway
        elif header != order.header and not order.error:
            order.error, order.bad_row = f"the order's own columns differ from row {order.first_row}", number
        order.rows.append(number)
        if item:
            order.items.append(item)
    contents: list[dict[str, Any]] = []
    placed: list[_Order] = []
    for order in by_ref.values():
        if order.error:
            continue
        try:
            content = validate({**order.header, **({"items": order.items} if order.items else {}), "source": source})
        except InvalidOrder as err:
            order.error = err.reason
            order.bad_row = order.rows[err.line] if err.line is not None and err.line < len(order.rows) else None
            continue
        contents.append(content)
        placed.append(order)
    outcomes: list[intake.Outcome] = []
    for start in range(0, len(contents), BATCH):
        # a unit of work per batch: a big file never holds the database's write lock for long (SQLite has one)
        outcomes += await intake.place_many(bus, f"import:{source}", contents[start:start + BATCH])
    for order, outcome in zip(placed, outcomes):
        if outcome.error:
            order.error = outcome.error
    results: dict[int, RowReport] = {number: RowReport(number, "error", reason=reason) for number, reason in errors.items()}
    receipts = {order.ref: outcome.receipt for order, outcome in zip(placed, outcomes) if outcome.receipt}
    for order in by_ref.values():
        receipt = receipts.get(order.ref)
        for number in order.rows:
            if order.error:
                reason = order.error if order.bad_row in (None, number) else f"row {order.bad_row} of the same order is wrong: {order.error}"
                results[number] = RowReport(number, "error", order.ref, reason=reason)
            elif receipt is not None:
                results[number] = RowReport(number, receipt.outcome, order.ref, receipt.job_id)
    report.rows = [results[n] for n in sorted(results)]
    return report


def _ref_of(spec: dict[str, Any], row: dict[str, str]) -> str | None:
    try:
        ref = apply({"fields": {"external_ref": spec["fields"]["external_ref"]}}, row).get("external_ref")
    except (MappingError, KeyError):
        return None
    return ref if isinstance(ref, str) and ref.strip() else None


def describe(err: DomainError) -> str:
    return intake.describe(err)
