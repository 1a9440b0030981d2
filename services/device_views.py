"""The customer's devices as the chat steps read them: loaded only for a step that shows them (a scan, /new, a device button)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime

from domain.policy import ServicePolicy
from services.views import CustomerView, CustomerViewRequest
from storage.devices import DEVICE, DeviceRow, DeviceStore
from storage.repository import Store

HISTORY_SHOWN = 10  # the latest lines of a device's timeline in the chat (the API has all of them)


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
            scan = Scan(owner, await _infos(devices, rows), purpose != DEVICE) if owner is not None else Scan(None)
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
