"""Rows of devices, their sites and their own timelines; QR tokens live in link_tokens (purposes ``device`` and ``site``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from domain.devices import DeviceFields, DeviceStatus, SiteFields
from domain.orders import address_key
from storage import tables as t
from storage.repository import Store

DEVICE = "device"  # link_tokens purposes: one QR code per device, and one per site or area for shared equipment
SITE = "site"
CODE_PURPOSES = (DEVICE, SITE)
# a sticker lives as long as the device: the code works until it is renewed (revoked), not until a date
CODE_TTL = timedelta(days=365 * 30)


@dataclass(frozen=True)
class SiteRow:
    id: int
    customer_id: int
    name: str
    address_text: str
    lat: float
    lon: float
    region: str


@dataclass(frozen=True)
class DeviceRow:
    id: int
    customer_id: int
    site_id: int
    product_category: str
    product_name: str
    brand: str | None
    model: str | None
    serial: str | None
    installed_on: date | None
    warranty_until: date | None
    location: str
    status: str
    source_visit_id: int | None
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.status == DeviceStatus.ACTIVE.value


@dataclass(frozen=True)
class HistoryRow:
    id: int
    device_id: int
    kind: str
    job_id: int | None
    visit_id: int | None
    data: dict[str, Any]
    occurred_at: datetime


def _device(row: Any) -> DeviceRow:
    return DeviceRow(**{name: row[name] for name in DeviceRow.__dataclass_fields__})


def _site(row: Any) -> SiteRow:
    return SiteRow(**{name: row[name] for name in SiteRow.__dataclass_fields__})


class DeviceStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session = store.session

    # --- sites ------------------------------------------------------------------------------------

    async def site(self, site_id: int) -> SiteRow | None:
        row = (await self.session.execute(select(t.device_sites).where(t.device_sites.c.id == site_id))).mappings().first()
        return _site(row) if row else None

    async def sites(self, site_ids: Iterable[int]) -> dict[int, SiteRow]:
        ids = sorted(set(site_ids))
        if not ids:
            return {}
        rows = (await self.session.execute(select(t.device_sites).where(t.device_sites.c.id.in_(ids)))).mappings()
        return {row["id"]: _site(row) for row in rows}

    async def site_for(self, customer_id: int, site: SiteFields, now: datetime) -> SiteRow:
        """The customer's site at this address and area, made the first time it is named."""
        key = address_key(site.address)
        query = select(t.device_sites).where(
            t.device_sites.c.customer_id == customer_id, t.device_sites.c.address_key == key, t.device_sites.c.name == site.name,
        )
        row = (await self.session.execute(query)).mappings().first()
        if row is None:
            await self.session.execute(insert(t.device_sites).values(
                customer_id=customer_id, name=site.name, address_text=site.address, address_key=key, lat=site.lat, lon=site.lon,
                region=site.region, created_at=now,
            ))
            row = (await self.session.execute(query)).mappings().one()
        return _site(row)

    # --- devices ----------------------------------------------------------------------------------

    async def device(self, device_id: int, *, for_update: bool = False) -> DeviceRow | None:
        query = select(t.devices).where(t.devices.c.id == device_id)
        if for_update and self.store.is_postgres:
            query = query.with_for_update()
        row = (await self.session.execute(query)).mappings().first()
        return _device(row) if row else None

    async def by_serial(self, brand: str | None, serial: str) -> DeviceRow | None:
        brand_matches = t.devices.c.brand.is_(None) if brand is None else t.devices.c.brand == brand
        row = (await self.session.execute(select(t.devices).where(brand_matches, t.devices.c.serial == serial))).mappings().first()
        return _device(row) if row else None

    async def by_installation(self, visit_id: int) -> DeviceRow | None:
        row = (await self.session.execute(select(t.devices).where(t.devices.c.source_visit_id == visit_id))).mappings().first()
        return _device(row) if row else None

    async def of_customer(self, customer_id: int, *, active_only: bool = True, limit: int = 50) -> list[DeviceRow]:
        query = select(t.devices).where(t.devices.c.customer_id == customer_id)
        if active_only:
            query = query.where(t.devices.c.status == DeviceStatus.ACTIVE.value)
        rows = (await self.session.execute(query.order_by(t.devices.c.id).limit(limit))).mappings()
        return [_device(row) for row in rows]

    async def at_site(self, site_id: int, *, active_only: bool = True) -> list[DeviceRow]:
        query = select(t.devices).where(t.devices.c.site_id == site_id)
        if active_only:
            query = query.where(t.devices.c.status == DeviceStatus.ACTIVE.value)
        rows = (await self.session.execute(query.order_by(t.devices.c.id))).mappings()
        return [_device(row) for row in rows]

    async def listed(self, *, customer_id: int | None, site_id: int | None, after: int, limit: int) -> list[DeviceRow]:
        query = select(t.devices).where(t.devices.c.id > after)
        if customer_id is not None:
            query = query.where(t.devices.c.customer_id == customer_id)
        if site_id is not None:
            query = query.where(t.devices.c.site_id == site_id)
        rows = (await self.session.execute(query.order_by(t.devices.c.id).limit(limit))).mappings()
        return [_device(row) for row in rows]

    async def add(self, customer_id: int, site_id: int, fields: DeviceFields, now: datetime, *, source_visit_id: int | None = None) -> DeviceRow:
        result = await self.session.execute(insert(t.devices).values(
            customer_id=customer_id, site_id=site_id, product_category=fields.product_category, product_name=fields.product_name,
            brand=fields.brand, model=fields.model, serial=fields.serial, installed_on=fields.installed_on,
            warranty_until=fields.warranty_until, location=fields.location, status=DeviceStatus.ACTIVE.value,
            source_visit_id=source_visit_id, created_at=now,
        ).returning(t.devices.c.id))
        device = await self.device(result.scalar_one())
        assert device is not None
        return device

    async def set_status(self, device_id: int, status: DeviceStatus) -> None:
        await self.store._write(update(t.devices).where(t.devices.c.id == device_id).values(status=status.value))

    # --- the device's own timeline ----------------------------------------------------------------

    async def record(self, device_id: int, kind: str, now: datetime, *, job_id: int | None = None, visit_id: int | None = None,
                     data: dict[str, Any] | None = None) -> None:
        await self.session.execute(insert(t.device_events).values(
            device_id=device_id, kind=kind, job_id=job_id, visit_id=visit_id, data=data or {}, occurred_at=now,
        ))

    async def history(self, device_id: int, limit: int = 200) -> list[HistoryRow]:
        query = select(t.device_events).where(t.device_events.c.device_id == device_id).order_by(t.device_events.c.id.desc()).limit(limit)
        rows = (await self.session.execute(query)).mappings()
        return [HistoryRow(**row) for row in reversed(list(rows))]

    async def devices_of_job(self, job_id: int) -> list[int]:
        """The devices a job was for (the repair a request made, the installation that created one)."""
        query = select(t.device_events.c.device_id).where(t.device_events.c.job_id == job_id).distinct()
        return sorted((await self.session.execute(query)).scalars())

    async def count(self) -> int:
        return int((await self.session.execute(select(func.count()).select_from(t.devices))).scalar_one())

    # --- QR codes ---------------------------------------------------------------------------------

    async def code(self, purpose: str, subject_id: int, now: datetime) -> str:
        """The subject's working code (the same one each time it is asked for), made the first time."""
        token = await self.store.current_token(purpose, subject_id, now)
        return token or await self.store.issue_token(purpose, subject_id, now, CODE_TTL)

    async def renew_code(self, purpose: str, subject_id: int, now: datetime) -> str:
        """Revoke every code of the subject (stickers printed with them stop working) and make a new one."""
        await self.store.expire_tokens(purpose, subject_id, now)
        return await self.store.issue_token(purpose, subject_id, now, CODE_TTL)

    async def resolve(self, token: str, now: datetime) -> tuple[str, int] | None:
        """What a scanned code names, (purpose, id); None for a code that is unknown, tampered with or revoked."""
        for purpose in CODE_PURPOSES:
            row = await self.store.find_token(token, purpose)
            if row is not None:
                return (purpose, row["subject_id"]) if row["expires_at"] > now else None
        return None


async def device_owner(store: Store, purpose: str, subject_id: int) -> int | None:
    """The customer a device's or a site's code belongs to; None for a retired device or one that is gone."""
    devices = DeviceStore(store)
    if purpose == DEVICE:
        device = await devices.device(subject_id)
        return device.customer_id if device is not None and device.active else None
    site = await devices.site(subject_id)
    return site.customer_id if site is not None else None


@dataclass(frozen=True)
class VisitEvidence:
    """What a device's visits left, for its history: repair records, checklist answers and photos, by visit id."""

    completions: dict[int, dict[str, Any]]
    answers: dict[int, list[tuple[str, str, int | None]]]  # (step key, value, photo id)
    photos: dict[int, list[tuple[int, str, str]]]  # (photo id, purpose, stored path)


async def visit_evidence(store: Store, visit_ids: Iterable[int]) -> VisitEvidence:
    """Three queries for any number of visits (a device's whole history is read at once, not visit by visit)."""
    ids = sorted(set(visit_ids))
    if not ids:
        return VisitEvidence({}, {}, {})
    session = store.session
    done = (await session.execute(select(t.repair_completions).where(t.repair_completions.c.visit_id.in_(ids)))).mappings()
    completions = {int(row["visit_id"]): dict(row) for row in done}
    answers: dict[int, list[tuple[str, str, int | None]]] = {}
    query = select(t.checklist_answers).where(t.checklist_answers.c.visit_id.in_(ids)).order_by(t.checklist_answers.c.id)
    for row in (await session.execute(query)).mappings():
        answers.setdefault(int(row["visit_id"]), []).append((row["step_key"], row["value"] or "", row["photo_id"]))
    photos: dict[int, list[tuple[int, str, str]]] = {}
    for row in (await session.execute(select(t.photos).where(t.photos.c.visit_id.in_(ids)).order_by(t.photos.c.id))).mappings():
        photos.setdefault(int(row["visit_id"]), []).append((int(row["id"]), row["purpose"], row["path"]))
    return VisitEvidence(completions, answers, photos)


async def jobs_with_devices(store: Store, job_ids: Iterable[int]) -> frozenset[int]:
    """Which of these jobs name a device on file (a repair request's, a plan's inspection, an installation that made one)."""
    ids = sorted(set(job_ids))
    if not ids:
        return frozenset()
    query = select(t.device_events.c.job_id).where(t.device_events.c.job_id.in_(ids)).distinct()
    return frozenset(int(j) for j in (await store.session.execute(query)).scalars())
