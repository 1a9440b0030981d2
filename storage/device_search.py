"""The back office's device list: devices found by their owner's name or phone, serial, model or product, in the viewer's
regions only (the region is the device site's), newest first and keyset-paged like the job list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.job_search import LIKE_ESCAPE, MAX_PAGE, _digits_only, escape_like

DEFAULT_PAGE = 50
MAX_TEXT = 100
DEVICE_STATUSES = ("active", "retired")


@dataclass(frozen=True)
class DeviceFilter:
    """``regions`` is the viewer's region rule (None: every region), applied in the query; the rest is their choice."""

    regions: frozenset[str] | None = None
    text: str | None = None  # owner's name or phone, serial, model, brand or product: contains, case-insensitive
    customer_id: int | None = None
    site_id: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class DeviceLine:
    id: int
    product_name: str
    product_category: str
    brand: str | None
    model: str | None
    serial: str | None
    location: str
    status: str
    warranty_until: date | None
    customer_id: int
    customer_name: str
    customer_phone: str
    site_id: int
    site_name: str
    address: str
    region: str


@dataclass(frozen=True)
class DevicePage:
    rows: tuple[DeviceLine, ...]
    next_before: int | None  # the keyset of the next page (devices with a smaller id); None: this is the last page


def _conditions(wanted: DeviceFilter) -> list[ColumnElement[bool]]:
    devices, customers, sites = t.devices, t.customers, t.device_sites
    conditions: list[ColumnElement[bool]] = []
    if wanted.regions is not None:
        conditions.append(sites.c.region.in_(sorted(wanted.regions)) if wanted.regions else devices.c.id.is_(None))
    if wanted.customer_id is not None:
        conditions.append(devices.c.customer_id == wanted.customer_id)
    if wanted.site_id is not None:
        conditions.append(devices.c.site_id == wanted.site_id)
    if wanted.status is not None:
        conditions.append(devices.c.status == wanted.status)
    if wanted.text:
        pattern = f"%{escape_like(wanted.text.strip().lower())}%"
        terms: list[ColumnElement[bool]] = [
            *(func.lower(column).like(pattern, escape=LIKE_ESCAPE)
              for column in (customers.c.name, devices.c.serial, devices.c.model, devices.c.brand, devices.c.product_name)),
            customers.c.phone.like(pattern, escape=LIKE_ESCAPE),
        ]
        digits = "".join(ch for ch in wanted.text if ch.isdigit())
        if len(digits) >= 3:
            terms.append(_digits_only(customers.c.phone).like(f"%{digits}%"))
        conditions.append(or_(*terms))
    return conditions


async def search_devices(session: AsyncSession, wanted: DeviceFilter, *, limit: int = DEFAULT_PAGE, before: int | None = None) -> DevicePage:
    """One page of the filtered list, newest first; ``before`` is the keyset (the last id of the previous page). One
    statement whatever the page size."""
    devices, customers, sites = t.devices, t.customers, t.device_sites
    limit = max(1, min(limit, MAX_PAGE))
    statement = (
        select(devices.c.id, devices.c.product_name, devices.c.product_category, devices.c.brand, devices.c.model, devices.c.serial,
               devices.c.location, devices.c.status, devices.c.warranty_until, devices.c.customer_id, customers.c.name, customers.c.phone,
               devices.c.site_id, sites.c.name.label("site_name"), sites.c.address_text, sites.c.region)
        .join(customers, customers.c.id == devices.c.customer_id)
        .join(sites, sites.c.id == devices.c.site_id)
        .where(*_conditions(wanted))
        .order_by(devices.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        statement = statement.where(devices.c.id < before)
    found = (await session.execute(statement)).all()
    more = len(found) > limit
    rows = tuple(
        DeviceLine(r.id, r.product_name, r.product_category, r.brand, r.model, r.serial, r.location, r.status, r.warranty_until,
                   r.customer_id, r.name, r.phone, r.site_id, r.site_name, r.address_text, r.region)
        for r in found[:limit]
    )
    return DevicePage(rows, rows[-1].id if more and rows else None)
