"""Devices (一户一档), pure: a customer's installed products, their warranty, life events, and what a repair request is."""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from domain.errors import InvalidInput
from domain.model import GeoPoint, ServiceKind

DEFAULT_WARRANTY_MONTHS = 12  # what an installation gives when its checklist does not say
MAX_WARRANTY_MONTHS = 240
MAX_TEXT = 200  # product, brand, model, serial, location: one line each
MAX_DESCRIPTION = 1000
MAX_REPAIR_PHOTOS = 5
MAX_VOICE_NOTES = 3
PREFERRED_DAYS = 7  # a repair request may name days among the next week
URGENCIES = ("normal", "urgent")
# what a chat repair request may become: a repair, or maintenance booked from the device menu
REQUEST_KINDS = (ServiceKind.REPAIR.value, ServiceKind.INSPECTION.value)
# the installation checklist's optional steps the device record is filled from (a shop adds them to its templates)
CHECKLIST_FIELDS = ("serial", "model", "brand", "location", "warranty_months")
PRODUCT_FALLBACK_CATEGORY = "general"


class DeviceStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class DeviceEvent(enum.StrEnum):
    """The kinds of line on a device's own timeline."""

    INSTALLED = "installed"  # created by an installation's completion
    REGISTERED = "registered"  # created by the API or an import
    REPAIR_REQUESTED = "repair_requested"
    MAINTENANCE_REQUESTED = "maintenance_requested"
    REPAIRED = "repaired"
    INSPECTED = "inspected"
    RETIRED = "retired"
    CODE_RENEWED = "code_renewed"  # the old QR code stopped working
    OWNER_VERIFIED = "owner_verified"  # a chat that scanned its code proved it is the owner's (domain.owner_check)


@dataclass(frozen=True)
class DeviceFields:
    """What a device record says about the product; checked by ``checked``."""

    product_category: str
    product_name: str
    brand: str | None = None
    model: str | None = None
    serial: str | None = None
    installed_on: date | None = None
    warranty_until: date | None = None
    location: str = ""  # where in the home or site: "kitchen", "roof unit 3"


@dataclass(frozen=True)
class SiteFields:
    """Where devices are: an address (with the pin and region a job needs) and an optional name for the area."""

    address: str
    lat: float
    lon: float
    region: str
    name: str = ""  # "Store 12 roof": shared equipment gets one QR code per site or area


def _line(value: str | None, code: str, *, required: bool = False) -> str | None:
    text = " ".join((value or "").split())
    if not text:
        if required:
            raise InvalidInput(code)
        return None
    if len(text) > MAX_TEXT:
        raise InvalidInput(code)
    return text


def checked(fields: DeviceFields, today: date) -> DeviceFields:
    """The fields tidied (one line each, no empty strings) or InvalidInput naming the first wrong one."""
    category = _line(fields.product_category, "device_category_invalid", required=True)
    name = _line(fields.product_name, "device_product_invalid", required=True)
    assert category is not None and name is not None
    if fields.installed_on is not None and fields.installed_on > today + timedelta(days=1):
        raise InvalidInput("device_installed_in_future")
    if fields.installed_on is not None and fields.warranty_until is not None and fields.warranty_until < fields.installed_on:
        raise InvalidInput("device_warranty_before_install")
    return DeviceFields(
        category.lower(), name, _line(fields.brand, "device_brand_invalid"), _line(fields.model, "device_model_invalid"),
        _line(fields.serial, "device_serial_invalid"), fields.installed_on, fields.warranty_until,
        _line(fields.location, "device_location_invalid") or "",
    )


def checked_site(site: SiteFields) -> SiteFields:
    GeoPoint(site.lat, site.lon)
    address = _line(site.address, "site_address_invalid", required=True)
    region = _line(site.region, "site_region_invalid", required=True)
    assert address is not None and region is not None
    return SiteFields(address, site.lat, site.lon, region, _line(site.name, "site_name_invalid") or "")


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day where it is shorter: 31 Jan + 1 month = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def warranty_months(text: str | None) -> int:
    """A checklist's "warranty in months" answer; the default when it was not asked."""
    if text is None or not text.strip():
        return DEFAULT_WARRANTY_MONTHS
    try:
        months = int(float(text.strip().replace(",", ".")))
    except ValueError as exc:
        raise InvalidInput("device_warranty_invalid") from exc
    if not 0 <= months <= MAX_WARRANTY_MONTHS:
        raise InvalidInput("device_warranty_invalid")
    return months


def from_installation(answers: Mapping[str, str], *, category: str, product: str, brand: str | None, installed_on: date) -> DeviceFields:
    """The device an installation leaves: the checklist's optional serial / model / brand / location / warranty steps,
    else the job's product. A wrong warranty answer falls back to the default rather than losing the device."""
    try:
        months = warranty_months(answers.get("warranty_months"))
    except InvalidInput:
        months = DEFAULT_WARRANTY_MONTHS
    return DeviceFields(
        category, product, answers.get("brand") or brand, answers.get("model"), answers.get("serial"), installed_on,
        add_months(installed_on, months), answers.get("location") or "",
    )


def under_warranty(warranty_until: date | None, today: date) -> bool:
    return warranty_until is not None and today <= warranty_until


def preferred_day_choices(today: date) -> list[date]:
    """The days a repair request may prefer: tomorrow and the six after (today is for "urgent")."""
    return [today + timedelta(days=n) for n in range(1, PREFERRED_DAYS + 1)]


def check_request(kind: str, description: str, urgency: str, days: tuple[date, ...], photos: int, today: date, voice_notes: int = 0) -> None:
    """A repair (or maintenance) request from chat, as a whole; InvalidInput naming what is wrong. A repair says what is
    wrong in words or in a voice note."""
    if kind not in REQUEST_KINDS:
        raise InvalidInput("repair_kind_invalid")
    if kind == ServiceKind.REPAIR.value and not description.strip() and not voice_notes:
        raise InvalidInput("repair_description_missing")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput("repair_description_too_long")
    if urgency not in URGENCIES:
        raise InvalidInput("repair_urgency_invalid")
    allowed = set(preferred_day_choices(today))
    if any(day not in allowed for day in days) or len(set(days)) != len(days):
        raise InvalidInput("repair_days_invalid")
    if not 0 <= photos <= MAX_REPAIR_PHOTOS or not 0 <= voice_notes <= MAX_VOICE_NOTES:
        raise InvalidInput("repair_too_many_photos")


# --- free text that asks for a repair ("my washing machine leaks", "空调不制冷") --------------------------

# product words -> the product category technicians have skills for (domain.field_work.APPLIANCES and FURNITURE)
PRODUCT_WORDS: tuple[tuple[str, str], ...] = (
    (r"washing[ -]?machine|washer|洗衣机", "washer"),
    (r"dryer|烘干机|干衣机", "dryer"),
    (r"fridge|refrigerator|freezer|冰箱|冰柜", "fridge"),
    (r"dishwasher|洗碗机", "dishwasher"),
    (r"oven|microwave|烤箱|微波炉", "oven"),
    (r"air[ -]?con(?:ditioner|ditioning)?|a/?c unit|\bac\b|空调", "aircon"),
    (r"\btv\b|television|电视", "tv"),
    (r"water heater|boiler|热水器", "appliance"),
    (r"sofa|couch|沙发", "sofa"),
    (r"\bbed\b|床", "bed"),
    (r"wardrobe|closet|衣柜", "wardrobe"),
    (r"table|桌", "table"),
)
_FAULT = re.compile(
    r"leak|broke|broken|not working|doesn'?t work|does not work|won'?t (?:start|turn on|work|spin|drain|cool)|stopped working|"
    r"no longer works|faulty|fault|noisy|noise|smell|error code|not cooling|not heating|repair|fix\b|"
    r"漏|坏|不工作|不能用|不转|不制冷|不制热|不加热|故障|维修|修理|报修|异响|噪音|没反应|打不开|不排水",
    re.IGNORECASE,
)


def wants_repair(text: str) -> bool:
    """Whether free text reports a fault: a fault word ("leaks", "坏了", "repair")."""
    return bool(_FAULT.search(text))


def product_in(text: str) -> str | None:
    """The product category the text names, if any."""
    lowered = text.lower()
    for pattern, category in PRODUCT_WORDS:
        if re.search(pattern, lowered):
            return category
    return None


# --- CSV import ----------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "customer_phone", "customer_name", "customer_language", "address", "lat", "lon", "region", "site", "category", "product",
    "brand", "model", "serial", "installed_on", "warranty_until", "warranty_months", "location",
)
CSV_REQUIRED = ("customer_phone", "customer_name", "address", "lat", "lon", "region", "category", "product")


@dataclass(frozen=True)
class DeviceRow:
    """One row of a device import, read and checked."""

    customer_phone: str
    customer_name: str
    customer_language: str
    site: SiteFields
    fields: DeviceFields


def _date(text: str, code: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(code) from exc


def _float(text: str, code: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise InvalidInput(code) from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInput(code)
    return value


def read_row(row: Mapping[str, str | None], today: date) -> DeviceRow:
    """A CSV row (column -> text) as a device to register; InvalidInput naming the first problem."""
    cells = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
    for column in CSV_REQUIRED:
        if not cells.get(column):
            raise InvalidInput(f"missing_{column}")
    installed = _date(cells.get("installed_on", ""), "installed_on_invalid")
    until = _date(cells.get("warranty_until", ""), "warranty_until_invalid")
    if until is None and installed is not None and cells.get("warranty_months"):
        until = add_months(installed, warranty_months(cells["warranty_months"]))
    site = checked_site(SiteFields(cells["address"], _float(cells["lat"], "lat_invalid"), _float(cells["lon"], "lon_invalid"),
                                   cells["region"], cells.get("site", "")))
    fields = checked(DeviceFields(cells["category"], cells["product"], cells.get("brand"), cells.get("model"), cells.get("serial"),
                                  installed, until, cells.get("location", "")), today)
    phone = cells["customer_phone"]
    if len(phone) > 40 or len(cells["customer_name"]) > 200:
        raise InvalidInput("customer_invalid")
    return DeviceRow(phone, cells["customer_name"], cells.get("customer_language") or "en", site, fields)
