"""The customer's devices as the chat steps read them: loaded only for a step that shows them (a scan, /new, a device button)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from domain.model import Customer, Visit
from domain.policy import ServicePolicy
from services.messages import AlbumPhoto
from services.views import CustomerView, CustomerViewRequest, TechnicianView, TechnicianViewRequest
from storage.devices import DEVICE, DeviceRow, DeviceStore, visit_evidence
from storage.repository import Store

HISTORY_SHOWN = 10  # the latest lines of a device's timeline in the chat (the API has all of them)
FILE_VISITS = 20  # the latest visits of a device a repairer's history shows (a chat message has a length limit)
FILE_ANSWERS = 6  # checklist answers shown per visit, in short
FILE_PHOTOS = 10  # photos sent as one album (Telegram's album limit)


@dataclass(frozen=True)
class DeviceInfo:
    id: int
    product: str
    category: str
    brand: str | None
    model: str | None
    serial: str | None
    location: str
    site: str  # the site's area name, else its address
    installed_on: date | None
    warranty_until: date | None

    @property
    def label(self) -> str:
        """How a button names it: product and where it is."""
        return f"{self.product} · {self.location}" if self.location else self.product


@dataclass(frozen=True)
class HistoryLine:
    kind: str
    at: datetime
    job_id: int | None


@dataclass(frozen=True)
class Scan:
    """What a /start code names, peeked before the chat is bound: its owner and the devices it opens (one for a device's
    sticker, those of the site for a site's); ``owner`` None: not a working code."""

    owner: int | None
    devices: tuple[DeviceInfo, ...] = ()
    site: bool = False
    # the owner's number on file, only to compare with a WhatsApp chat's own number (domain.owner_check): never shown
    owner_phone: str = ""


@dataclass(frozen=True)
class DevicesRequest(CustomerViewRequest):
    """The customer view's request, and what of the devices the step needs."""

    devices: bool = False  # the customer's devices (a pick list, a device's menu)
    history_of: int | None = None  # a device whose timeline is shown
    scan: str | None = None  # a /start code that was not an order link: a device's or a site's, perhaps


@dataclass(frozen=True)
class DevicesView(CustomerView):
    """The customer view with the devices a step needs."""

    devices: tuple[DeviceInfo, ...] = ()
    history: tuple[HistoryLine, ...] = ()
    scan: Scan | None = None

    def device(self, device_id: int) -> DeviceInfo | None:
        return next((d for d in self.devices if d.id == device_id), None)


def _info(device: DeviceRow, site: str) -> DeviceInfo:
    return DeviceInfo(device.id, device.product_name, device.product_category, device.brand, device.model, device.serial,
                      device.location, site, device.installed_on, device.warranty_until)


async def _infos(devices: DeviceStore, rows: list[DeviceRow]) -> tuple[DeviceInfo, ...]:
    sites = await devices.sites(d.site_id for d in rows)
    return tuple(_info(d, (sites[d.site_id].name or sites[d.site_id].address_text) if d.site_id in sites else "") for d in rows)


async def with_devices(store: Store, request: CustomerViewRequest, view: CustomerView, policy: ServicePolicy, now: datetime) -> CustomerView:
    """The view as loaded, or with the devices the request asks for (most updates ask for none: no query is added)."""
    if not isinstance(request, DevicesRequest) or not (request.devices or request.history_of or (request.scan and view.token_job is None)):
        return view
    devices = DeviceStore(store)
    scan = None
    if request.scan and view.token_job is None:
        found = await devices.resolve(request.scan, now)
        scan = Scan(None)
        if found is not None:
            purpose, subject_id = found
            rows = [d for d in [await devices.device(subject_id)] if d is not None and d.active] if purpose == DEVICE else await devices.at_site(subject_id)
            owner = rows[0].customer_id if rows else None
            if purpose != DEVICE and owner is None:
                site = await devices.site(subject_id)
                owner = site.customer_id if site else None
            customer = await store.get(Customer, owner) if owner is not None else None
            scan = Scan(owner, await _infos(devices, rows), purpose != DEVICE, customer.phone if customer else "") if owner is not None else Scan(None)
    customer_id = view.customer_id
    listed: tuple[DeviceInfo, ...] = ()
    if customer_id is not None and (request.devices or request.history_of):
        listed = await _infos(devices, await devices.of_customer(customer_id))
    history: tuple[HistoryLine, ...] = ()
    if request.history_of is not None and any(d.id == request.history_of for d in listed):
        lines = await devices.history(request.history_of, HISTORY_SHOWN)
        history = tuple(HistoryLine(h.kind, h.occurred_at, h.job_id) for h in lines)
    base = {f.name: getattr(view, f.name) for f in fields(CustomerView)}
    return DevicesView(**base, devices=listed, history=history, scan=scan)


# --- a device's file for the repairer and the back office (issue 14: "every visit, checklist, photo, fault and part") ----


@dataclass(frozen=True)
class VisitRecord:
    """One visit of a device's history, as the repairer reads it before going."""

    visit_id: int
    job_id: int
    kind: str
    status: str
    day: datetime | None  # when it was (its slot), None when never booked
    fault: str | None
    method: str | None
    outcome: str | None  # domain.parts.Outcome of the repair record, when one was recorded
    cause: str | None
    parts: tuple[str, ...]  # "name × quantity"
    answers: tuple[tuple[str, str], ...]  # (step key, value; a photo answer is "📷")
    photo_ids: tuple[int, ...]
    return_reason: str | None = None


@dataclass(frozen=True)
class DeviceFile:
    device: DeviceInfo
    status: str
    events: tuple[HistoryLine, ...]
    visits: tuple[VisitRecord, ...]
    photos: tuple[AlbumPhoto, ...]  # the latest photos of its visits (not voice notes), oldest first

    @property
    def photo_count(self) -> int:
        return sum(len(v.photo_ids) for v in self.visits)


async def device_file(store: Store, device_id: int, *, skip_visit: int | None = None) -> DeviceFile | None:
    """The device, its timeline and every visit of the jobs on it with what they left; ``skip_visit``: the visit being
    prepared for (it has no past yet, and its own request's photos are on its card)."""
    devices = DeviceStore(store)
    device = await devices.device(device_id)
    if device is None:
        return None
    [info] = await _infos(devices, [device])
    lines = await devices.history(device_id)
    job_ids = sorted({h.job_id for h in lines if h.job_id})
    visits = [v for v in await store.visits_of_jobs(job_ids) if v.id is not None and v.id != skip_visit]
    visits.sort(key=lambda v: (v.slot_start is None, v.slot_start or device.created_at, v.id or 0))
    visits = visits[-FILE_VISITS:]
    found = await visit_evidence(store, (v.id for v in visits if v.id is not None))
    records = tuple(_record(v, found.completions.get(v.id or 0), found.answers.get(v.id or 0, []), found.photos.get(v.id or 0, []))
                    for v in visits)
    album = [AlbumPhoto(pid, path) for v in visits for pid, purpose, path in found.photos.get(v.id or 0, []) if purpose != "voice"]
    events = tuple(HistoryLine(h.kind, h.occurred_at, h.job_id) for h in lines[-HISTORY_SHOWN:])
    return DeviceFile(info, device.status, events, records, tuple(album[-FILE_PHOTOS:]))


def _record(visit: Visit, done: dict[str, Any] | None, answers: list[tuple[str, str, int | None]], photos: list[tuple[int, str, str]]) -> VisitRecord:
    parts = tuple(f"{p.get('name') or p.get('code')} × {p.get('quantity')}" for p in (done or {}).get("parts") or [] if isinstance(p, dict))
    shown = tuple((key, "📷" if photo else " ".join(value.split())[:40]) for key, value, photo in answers[:FILE_ANSWERS])
    assert visit.id is not None
    return VisitRecord(
        visit.id, visit.job_id, visit.kind, visit.status, visit.slot_start,
        (done or {}).get("fault") or visit.fault_category, (done or {}).get("method") or visit.repair_method,
        (done or {}).get("outcome"), (done or {}).get("cause"), parts, shown,
        tuple(pid for pid, purpose, _path in photos if purpose != "voice"), visit.return_reason,
    )


async def files_of_job(store: Store, job_id: int, *, skip_visit: int | None = None) -> list[DeviceFile]:
    """The files of the devices a job is for (a repair request's, a plan's inspection, an installation's result)."""
    found = [await device_file(store, device_id, skip_visit=skip_visit) for device_id in (await DeviceStore(store).devices_of_job(job_id))[:3]]
    return [f for f in found if f is not None]


@dataclass(frozen=True)
class VisitDeviceRequest(TechnicianViewRequest):
    """The technician view's request, and the visit whose device history a step shows."""

    device_visit: int | None = None


@dataclass(frozen=True)
class VisitDeviceView(TechnicianView):
    """The technician view with the device files of one of the technician's own visits (offered, assigned or crew)."""

    device_visit: int | None = None
    device_files: tuple[DeviceFile, ...] = ()


async def with_visit_devices(store: Store, request: TechnicianViewRequest, view: TechnicianView, policy: ServicePolicy,
                             now: datetime) -> TechnicianView:
    """The view as loaded, or with the device files of the asked visit: only a visit in the technician's own view (one
    offered to them, theirs, or one they are crew on) is looked up; any other id loads nothing and the step refuses."""
    if not isinstance(request, VisitDeviceRequest) or request.device_visit is None or view.visit(request.device_visit) is None:
        return view
    visit = await store.get(Visit, request.device_visit)
    files = await files_of_job(store, visit.job_id, skip_visit=visit.id) if visit is not None else []
    base = {f.name: getattr(view, f.name) for f in fields(TechnicianView)}
    return VisitDeviceView(**base, device_visit=request.device_visit, device_files=tuple(files))
