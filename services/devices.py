"""Devices on the bus: registering (installation, API, import), retiring, QR codes, scans and repair requests from chat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from domain import commands as c
from domain import events as ev
from domain.devices import (
    PRODUCT_FALLBACK_CATEGORY,
    DeviceEvent,
    DeviceFields,
    MAX_DESCRIPTION,
    DeviceStatus,
    SiteFields,
    check_request,
    checked,
    checked_site,
    from_installation,
    under_warranty,
)
from domain.errors import DomainError, InvalidInput, NotAllowed, NotFound
from domain.model import Customer, Job, Language, Photo, ServiceKind, Visit, VisitStatus, stored_id
from domain.orders import PlannedVisit
from services import backoffice
from services.actions import Book, DeviceMenu, PickDay, encode
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.intake import COVERAGE_POLICIES, CoverageRefused, _coverage, source_of
from services.messages import Button, Outbound, Purpose, buttons, day_of, raw, t
from services.notifications import _customer_chats, _region_alert, _to, kind_label
from storage.devices import DEVICE, SITE, DeviceRow, DeviceStore
from storage.orders import OrderStore

CHAT_SOURCE = "chat"  # the order source of jobs customers ask for in chat; its coverage policy is set like any source's
MAX_PREFERRED_SHOWN = 3  # preferred days offered as buttons on the "book it" message (with Book: four)
NO_JOB = 0  # the job id of a device event that belongs to no job (events live on a job's timeline)


def local_today(ctx: HandlerContext) -> date:
    return ctx.now.astimezone(ctx.policy.tz).date()


async def _device(ctx: HandlerContext, device_id: int, *, for_update: bool = False) -> DeviceRow:
    device = await DeviceStore(ctx.store).device(device_id, for_update=for_update)
    if device is None:
        raise NotFound("device_not_found")
    return device


# --- registering ------------------------------------------------------------------------------------


async def register(ctx: HandlerContext, cmd: c.RegisterDevice) -> tuple[DeviceRow, bool, list[ev.Event]]:
    """The device, whether it is new, and the events. A serial already registered for the same customer is that
    device again (an import run twice changes nothing); for another customer it is refused."""
    fields = checked(cmd.fields, local_today(ctx))
    site = checked_site(cmd.site)
    phone = " ".join(cmd.customer_phone.split())
    if not phone or not cmd.customer_name.strip():
        raise InvalidInput("customer_invalid")
    devices = DeviceStore(ctx.store)
    customer = await ctx.store.customer_by_phone(phone)
    if fields.serial is not None:
        existing = await devices.by_serial(fields.brand, fields.serial)
        if existing is not None:
            if customer is None or existing.customer_id != customer.id:
                raise DomainError("device_serial_taken")
            return existing, False, []
    if customer is None:
        customer = await ctx.store.add(Customer(cmd.customer_name.strip(), phone, Language.from_code(cmd.customer_language).value))
    customer_id = stored_id(customer)
    place = await devices.site_for(customer_id, site, ctx.now)
    device = await devices.add(customer_id, place.id, fields, ctx.now)
    await devices.record(device.id, DeviceEvent.REGISTERED, ctx.now, data={"via": cmd.via})
    await devices.code(DEVICE, device.id, ctx.now)
    return device, True, [_registered(device, cmd.via, NO_JOB, None)]


def _registered(device: DeviceRow, via: str, job_id: int, visit_id: int | None) -> ev.DeviceRegistered:
    return ev.DeviceRegistered(job_id, visit_id, {
        "device_id": device.id, "customer_id": device.customer_id, "via": via, "product": device.product_name,
    })


async def register_device(ctx: HandlerContext, cmd: c.RegisterDevice) -> list[ev.Event]:
    _device_row, _created, events = await register(ctx, cmd)
    return events


async def retire_device(ctx: HandlerContext, cmd: c.RetireDevice) -> list[ev.Event]:
    device = await _device(ctx, cmd.device_id, for_update=True)
    if not device.active:
        raise DomainError("device_already_retired")
    devices = DeviceStore(ctx.store)
    await devices.set_status(device.id, DeviceStatus.RETIRED)
    await devices.record(device.id, DeviceEvent.RETIRED, ctx.now, data={"reason": cmd.reason[:500]})
    # a retired device's sticker opens nothing any more
    await ctx.store.expire_tokens(DEVICE, device.id, ctx.now)
    return [ev.DeviceRetired(NO_JOB, None, {"device_id": device.id, "reason": cmd.reason[:500]})]


async def renew_code(ctx: HandlerContext, cmd: c.RenewDeviceCode) -> list[ev.Event]:
    devices = DeviceStore(ctx.store)
    if cmd.purpose == DEVICE:
        device = await _device(ctx, cmd.subject_id)
        if not device.active:
            raise DomainError("device_already_retired")
        await devices.record(device.id, DeviceEvent.CODE_RENEWED, ctx.now)
    elif cmd.purpose == SITE:
        if await devices.site(cmd.subject_id) is None:
            raise NotFound("site_not_found")
    else:
        raise InvalidInput("code_purpose_invalid")
    await devices.renew_code(cmd.purpose, cmd.subject_id, ctx.now)
    return [ev.DeviceCodeRenewed(NO_JOB, None, {"purpose": cmd.purpose, "subject_id": cmd.subject_id})]


# --- an installation leaves a device; a repair or an inspection goes on its timeline -----------------------------


async def device_from_completed_visit(ctx: HandlerContext, event: ev.Event) -> Sequence[Outbound | ev.Event]:
    """A completed installation registers the device from its checklist's serial / model / location steps (the job's
    product where it has none); a completed repair or inspection of a device's job goes on the device's timeline."""
    visit = await ctx.store.get(Visit, event.visit_id)
    if visit is None:
        return []
    devices = DeviceStore(ctx.store)
    job = await ctx.store.load(Job, visit.job_id)
    if visit.service_kind is ServiceKind.INSTALLATION:
        if await devices.by_installation(stored_id(visit)) is not None:
            return []  # completed again after a return visit: the device is already on file
        answers = {key: answer.value for key, answer in (await ctx.store.answers_of(stored_id(visit))).items()}
        today = local_today(ctx)
        fields = from_installation(answers, category=job.product_category, product=job.product_name, brand=job.brand, installed_on=today)
        try:
            fields = checked(fields, today)
        except InvalidInput:
            # a serial typed 300 characters long must not lose the device: keep what the job says
            fields = checked(DeviceFields(job.product_category, job.product_name, job.brand, installed_on=today,
                                          warranty_until=fields.warranty_until), today)
        if fields.serial is not None and await devices.by_serial(fields.brand, fields.serial) is not None:
            fields = replace(fields, serial=None)  # a serial seen before is a typing slip here: the device still counts
        site = await devices.site_for(job.customer_id, SiteFields(job.address_text, job.lat, job.lon, job.region), ctx.now)
        device = await devices.add(job.customer_id, site.id, fields, ctx.now, source_visit_id=stored_id(visit))
        photo = next((a.photo_id for a in (await ctx.store.answers_of(stored_id(visit))).values() if a.photo_id), None)
        await devices.record(device.id, DeviceEvent.INSTALLED, ctx.now, job_id=job.id, visit_id=visit.id,
                             data={"technician_id": visit.technician_id, "photo_id": photo})
        await devices.code(DEVICE, device.id, ctx.now)
        return [_registered(device, "installation", stored_id(job), stored_id(visit))]
    kind = {ServiceKind.REPAIR: DeviceEvent.REPAIRED, ServiceKind.INSPECTION: DeviceEvent.INSPECTED}.get(visit.service_kind)
    if kind is None:
        return []
    for device_id in await devices.devices_of_job(stored_id(job)):
        await devices.record(device_id, kind, ctx.now, job_id=job.id, visit_id=visit.id, data={
            "technician_id": visit.technician_id, "fault": visit.fault_category, "method": visit.repair_method,
        })
    return []


async def tell_customer_device_registered(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """After an installation: the customer learns the device is on file, with its menu (the sticker opens the same)."""
    if event.data.get("via") != "installation":
        return []  # the API and imports register devices in bulk: nobody is messaged for those
    device = await DeviceStore(ctx.store).device(int(event.data["device_id"]))
    if device is None:
        return []
    text = t("device.registered", product=raw(device.product_name), location=raw(device.location or "-"),
             warranty=raw(device.warranty_until.isoformat() if device.warranty_until else "-"))
    keyboard = buttons([Button(t("btn.device_menu"), encode(DeviceMenu(device.id)))])
    return [Outbound(text, keyboard, to=_to(chat), language=chat.language, purpose=Purpose.STATUS)
            for chat in await ctx.store.bindings_of("customer", device.customer_id)]


# --- a scanned QR code ------------------------------------------------------------------------------------------


async def code_devices(ctx: HandlerContext, token: str) -> tuple[int, list[DeviceRow], int]:
    """A scanned code's owner, the devices it opens and their site; a code unknown, tampered with, renewed or of a
    retired device is refused (the sticker may have been replaced while its reader was typing)."""
    devices = DeviceStore(ctx.store)
    found = await devices.resolve(token, ctx.now)
    if found is None:
        raise DomainError("device_code_invalid")
    purpose, subject_id = found
    if purpose == DEVICE:
        device = await devices.device(subject_id)
        if device is None or not device.active:
            raise DomainError("device_code_invalid")
        return device.customer_id, [device], device.site_id
    site = await devices.site(subject_id)
    if site is None:
        raise DomainError("device_code_invalid")
    return site.customer_id, await devices.at_site(subject_id), site.id


async def owner_of_code(ctx: HandlerContext, token: str) -> int:
    """The customer a scanned code belongs to (``code_devices``' refusals apply)."""
    owner, _devices, _site = await code_devices(ctx, token)
    return owner


async def open_device_code(ctx: HandlerContext, cmd: c.OpenDeviceCode) -> list[ev.Event]:
    """Only the owner's own chat opens a code's devices; any other chat, bound to nobody or to another customer, is
    refused and stays as it was: a sticker is seen by anyone at the site (a guest, a neighbour, the next tenant), so a
    scan never binds a chat to the owner's record (their name, phone, address and orders). Such a scanner reports a
    fault with ``ReportFaultOnCode`` instead, for the dispatchers to check with the owner."""
    owner = await owner_of_code(ctx, cmd.token)
    chat = cmd.chat
    binding = await ctx.store.binding(chat.platform, chat.bot, chat.chat_id, "customer")
    if binding is None or binding.subject_id != owner:
        raise NotAllowed("device_other_customer")
    return []


async def report_fault_on_code(ctx: HandlerContext, cmd: c.ReportFaultOnCode) -> list[ev.Event]:
    """A fault reported by someone who scanned a code but is not its owner's chat: the code is checked again (it may
    have been renewed meanwhile), nothing is bound and no job is made; the dispatchers of the site's region are told."""
    description = cmd.description.strip()
    if not description or len(description) > MAX_DESCRIPTION:
        raise InvalidInput("device_report_invalid", max=MAX_DESCRIPTION)
    devices = DeviceStore(ctx.store)
    found = await devices.resolve(cmd.token, ctx.now)
    if found is None:
        raise DomainError("device_code_invalid")
    purpose, subject_id = found
    if purpose == DEVICE:
        device = await devices.device(subject_id)
        if device is None or not device.active:
            raise DomainError("device_code_invalid")
        rows, site_id = [device], device.site_id
    else:
        rows, site_id = await devices.at_site(subject_id), subject_id
    site = await devices.site(site_id)
    if site is None:
        raise DomainError("device_code_invalid")
    chat = cmd.chat
    binding = await ctx.store.binding(chat.platform, chat.bot, chat.chat_id, "customer")
    return [ev.FaultReportedByScan(NO_JOB, None, {
        "device_ids": [d.id for d in rows], "site_id": site.id, "region": site.region, "description": description,
        "reporter": " ".join(cmd.reporter.split())[:100], "platform": chat.platform,
        "reporter_customer_id": binding.subject_id if binding is not None else None,
    })]


async def alert_fault_reported_by_scan(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The site's dispatchers learn of the report with what they need to check it: the device(s), the owner and how to
    reach them, who reported it and their words. The reporter has no record of the owner's; the owner decides."""
    data = event.data
    devices = DeviceStore(ctx.store)
    site = await devices.site(int(data["site_id"]))
    if site is None:
        return []
    owner = await ctx.store.get(Customer, site.customer_id)
    rows = [d for d in [await devices.device(int(i)) for i in data.get("device_ids") or []] if d is not None]
    named = ", ".join(" ".join(p for p in (d.product_name, d.model, f"S/N {d.serial}" if d.serial else "", d.location) if p) for d in rows)
    text = t("device.foreign_alert", devices=raw(named or "-"), site=raw(site.name or site.address_text), address=raw(site.address_text),
             owner=raw(owner.name if owner else "-"), phone=raw(owner.phone if owner else "-"), reporter=raw(data.get("reporter") or "-"),
             platform=raw(str(data.get("platform") or "")), description=raw(str(data.get("description") or "")))
    return await _region_alert(ctx, site.region, text)


# --- a repair request from chat ---------------------------------------------------------------------------------


def request_notes(description: str, device: DeviceRow | None, product: str, urgency: str, days: Sequence[str], today: date,
                  voice_notes: int = 0) -> str:
    """What the technician reads on the offer (the job's notes, shown as the brief): the customer's words, the device
    as on file, and the days they prefer — data, so no sentence of ours to translate."""
    lines = [" ".join(description.split())] if description.strip() else []
    if device is not None:
        parts = [device.product_name, " ".join(p for p in (device.brand, device.model) if p), f"S/N {device.serial}" if device.serial else "",
                 device.location, f"⏳ {device.warranty_until.isoformat()}{' ✓' if under_warranty(device.warranty_until, today) else ' ✗'}"
                 if device.warranty_until else ""]
        lines.append("🔧 " + " · ".join(p for p in parts if p))
    elif product:
        lines.append("🔧 " + product)
    if voice_notes:
        lines.append(f"🎤 × {voice_notes}")
    if urgency == "urgent":
        lines.append("⚡")
    if days:
        lines.append("📅 " + ", ".join(days))
    return "\n".join(lines)


async def _address(ctx: HandlerContext, customer_id: int, device: DeviceRow | None) -> SiteFields:
    if device is not None:
        site = await DeviceStore(ctx.store).site(device.site_id)
        if site is not None:
            return SiteFields(site.address_text, site.lat, site.lon, site.region, site.name)
    latest = await ctx.store.latest_jobs_of_customer(customer_id, 1)
    if not latest:
        raise DomainError("repair_no_address")  # a customer with neither a device nor an order: the shop must call them
    job = latest[-1]
    return SiteFields(job.address_text, job.lat, job.lon, job.region)


async def request_repair(ctx: HandlerContext, cmd: c.RequestRepair) -> list[ev.Event]:
    """A job of the request's kind at the device's site, through the same coverage rule as order intake: a region nobody
    serves is refused with the reason, or accepted and flagged for the dispatchers, as the chat source's policy says."""
    today = local_today(ctx)
    try:
        days = tuple(date.fromisoformat(d) for d in cmd.days)
    except ValueError as exc:
        raise InvalidInput("repair_days_invalid") from exc
    check_request(cmd.kind, cmd.description, cmd.urgency, days, len(cmd.photos), today, len(cmd.voice_notes))
    customer = await ctx.store.get(Customer, cmd.customer_id)
    if customer is None:
        raise NotFound("customer_not_found")
    device = None
    if cmd.device_id is not None:
        device = await DeviceStore(ctx.store).device(cmd.device_id)
        if device is None or device.customer_id != cmd.customer_id:
            raise NotFound("device_not_found")
        if not device.active:
            raise DomainError("device_already_retired")
    product = device.product_name if device else " ".join(cmd.product.split())[:200]
    category = device.product_category if device else (cmd.category or PRODUCT_FALLBACK_CATEGORY)
    if not product:
        raise InvalidInput("repair_product_missing")
    place = await _address(ctx, cmd.customer_id, device)
    kind = ServiceKind(cmd.kind)
    source = await source_of(OrderStore(ctx.store), CHAT_SOURCE)
    if source.coverage_policy not in COVERAGE_POLICIES:
        source = replace(source, coverage_policy="flag")  # a customer asking in chat is never turned away silently
    fields = {"product_category": category, "brand": device.brand if device else None, "region": place.region}
    try:
        gap = await _coverage(ctx, source, [PlannedVisit(kind, 0, 1, 0, ())], fields)
    except CoverageRefused as err:
        raise DomainError("repair_region_not_covered", region=place.region) from err
    request = backoffice.OrderRequest(
        source=CHAT_SOURCE, external_ref=f"{kind.value}-{cmd.customer_id}-{ctx.now:%Y%m%d%H%M%S%f}",
        customer_name=customer.name, customer_phone=customer.phone, customer_language=customer.language,
        address=place.address, lat=place.lat, lon=place.lon, region=place.region, product_name=product, product_category=category,
        brand=device.brand if device else None, services=(backoffice.ServiceRequest(kind.value),),
        notes=request_notes(cmd.description, device, "" if device else product, cmd.urgency, cmd.days, today, len(cmd.voice_notes)),
        priority="urgent" if cmd.urgency == "urgent" else "normal",
    )
    result = await backoffice.create_order(ctx.store, request, ctx.now, ctx.policy)
    job_id, visit_id = stored_id(result.job), stored_id(result.visits[0])
    photo_ids = [stored_id(await ctx.store.add(Photo(visit_id, p.platform, p.file_id, p.path, "repair", created_at=ctx.now)))
                 for p in cmd.photos]
    voice_ids = [stored_id(await ctx.store.add(Photo(visit_id, p.platform, p.file_id, p.path, "voice", created_at=ctx.now)))
                 for p in cmd.voice_notes]
    data: dict[str, Any] = {
        "device_id": device.id if device else None, "kind": kind.value, "urgency": cmd.urgency, "days": list(cmd.days),
        "photo_ids": photo_ids, "voice_ids": voice_ids, "customer_id": cmd.customer_id,
    }
    if device is not None:
        requested = DeviceEvent.REPAIR_REQUESTED if kind is ServiceKind.REPAIR else DeviceEvent.MAINTENANCE_REQUESTED
        await DeviceStore(ctx.store).record(device.id, requested, ctx.now, job_id=job_id, visit_id=visit_id,
                                            data={"description": cmd.description[:1000], "urgency": cmd.urgency, "photo_ids": photo_ids,
                                                  "voice_ids": voice_ids})
    events: list[ev.Event] = [*result.events, ev.RepairRequested(job_id, visit_id, data)]
    if gap:
        events.append(ev.CoverageGapFlagged(job_id, None, {"region": place.region, "kinds": gap}))
    return events


async def tell_customer_repair_requested(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The request became an order: the customer books its time from here (an urgent one was booked already)."""
    job = await ctx.store.get(Job, event.job_id)
    visit = await ctx.store.get(Visit, event.visit_id)
    if job is None or visit is None:
        return []
    kind = kind_label(visit.kind)
    if visit.state is VisitStatus.CREATED:
        # the days the customer preferred come first, each opening its times; any other day after
        preferred = sorted({date.fromisoformat(d) for d in event.data.get("days", ())})[:MAX_PREFERRED_SHOWN]
        book = [Button(t("btn.book", kind=kind), encode(Book(stored_id(visit))))]
        if preferred:
            text = t("repair.requested_days", order=stored_id(job), kind=kind)
            keyboard = buttons(*([Button(t("btn.day", day=day_of(day)), encode(PickDay(stored_id(visit), day)))] for day in preferred), book)
        else:
            text = t("repair.requested", order=stored_id(job), kind=kind)
            keyboard = buttons(book)
    else:
        text, keyboard = t("repair.requested_urgent", order=stored_id(job), kind=kind), ()
    return [Outbound(text, keyboard, to=_to(chat), language=chat.language, purpose=Purpose.STATUS) for chat in await _customer_chats(ctx, job)]


HANDLERS = (
    handles(c.RegisterDevice, register_device),
    handles(c.RetireDevice, retire_device),
    handles(c.RenewDeviceCode, renew_code),
    handles(c.OpenDeviceCode, open_device_code),
    handles(c.ReportFaultOnCode, report_fault_on_code),
    handles(c.RequestRepair, request_repair),
)

REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (device_from_completed_visit, (ev.VisitCompleted,)),
    (tell_customer_device_registered, (ev.DeviceRegistered,)),
    (tell_customer_repair_requested, (ev.RepairRequested,)),
    (alert_fault_reported_by_scan, (ev.FaultReportedByScan,)),
)

# answered where they were done (the API): nobody else needs telling
SILENT: frozenset[type[ev.Event]] = frozenset({ev.DeviceRetired, ev.DeviceCodeRenewed})
