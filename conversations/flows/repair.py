"""The customer's devices and repair requests in chat: a scanned QR code's device menu, and a repair (or maintenance)
request — the device or a described product, what is wrong, photos, urgency, preferred days — that becomes a job."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from conversations.flow import FlowData, Guard, State, Step, StepInput, reply
from conversations.flows import scan_report
from conversations.flows.common import hint, identity, stale
from domain import commands as c
from domain.devices import MAX_DESCRIPTION, MAX_REPAIR_PHOTOS, MAX_VOICE_NOTES, PRODUCT_FALLBACK_CATEGORY, preferred_day_choices, product_in, wants_repair
from domain.model import ServiceKind
from domain.owner_check import VIA_CHAT_NUMBER, same_phone
from services.actions import (
    Action,
    BookMaintenance,
    DeviceHistory,
    DeviceMenu,
    OtherProduct,
    RepairDay,
    RepairMediaDone,
    RepairSend,
    RepairUrgency,
    ReportFault,
    encode,
)
from services.device_views import DeviceInfo, DevicesRequest, DevicesView
from services.messages import Button, Card, Inbound, InboundKind, Outbound, StepResult, Text, buttons, day_of, joined, raw, t
from services.views import CustomerViewRequest

PICK = "repair_pick"  # which device (or describe another product)
PRODUCT = "repair_product"  # what product it is, typed
DESCRIBE = "repair_describe"  # what is wrong
MEDIA = "repair_media"  # photos, then Done
URGENCY = "repair_urgency"
DAYS = "repair_days"  # preferred days, then Send
STATES = (PICK, PRODUCT, DESCRIBE, MEDIA, URGENCY, DAYS)
DEVICE_BUTTONS = (DeviceMenu, ReportFault, DeviceHistory, BookMaintenance, OtherProduct)
FAULT_CARD = "repair"


@dataclass(frozen=True)
class RepairDraft(FlowData):
    """The request being put together."""

    kind: str = ServiceKind.REPAIR.value  # repair | inspection (maintenance booked from the device menu)
    device: int | None = None
    product: str = ""
    category: str = ""
    description: str = ""
    photos: tuple[tuple[str, str], ...] = ()  # (file id, stored path) of each photo
    voices: tuple[tuple[str, str], ...] = ()  # (file id, stored path) of each voice note
    urgency: str = "normal"
    days: tuple[date, ...] = ()


# --- what the view must hold ---------------------------------------------------------------------------------


def view_request(request: CustomerViewRequest, event: Inbound, action: Action | None) -> CustomerViewRequest:
    """The customer's request, with the devices the step will show: a scan, /new, a device button, a fault typed."""
    if event.kind is InboundKind.COMMAND and event.text == "start" and request.token:
        return DevicesRequest(**vars(request), scan=request.token)
    if event.kind is InboundKind.COMMAND and event.text == "new":
        return DevicesRequest(**vars(request), devices=True)
    if isinstance(action, DeviceHistory):
        return DevicesRequest(**vars(request), devices=True, history_of=action.device_id)
    if isinstance(action, DEVICE_BUTTONS):
        return DevicesRequest(**vars(request), devices=True)
    if request.text is not None and wants_repair(request.text):
        return DevicesRequest(**vars(request), devices=True)
    return request


def _devices(inp: StepInput) -> tuple[DeviceInfo, ...]:
    view = inp.view
    return view.devices if isinstance(view, DevicesView) else ()


def _device(inp: StepInput, device_id: int) -> DeviceInfo | None:
    return next((d for d in _devices(inp) if d.id == device_id), None)


def _card(inp: StepInput) -> Card:
    """The request's picker questions share one card, so older copies lose their buttons as the customer answers."""
    return (FAULT_CARD, inp.view.customer_id or 0)


# --- the device menu ----------------------------------------------------------------------------------------


def _when(day: date | None) -> Text:
    return day_of(day) if day is not None else raw("-")


def device_menu(device: DeviceInfo) -> Outbound:
    text = t("device.menu", product=raw(device.product), model=raw(" ".join(p for p in (device.brand, device.model) if p) or "-"),
             serial=raw(device.serial or "-"), location=raw(device.location or device.site or "-"),
             installed=_when(device.installed_on), warranty=_when(device.warranty_until))
    keyboard = buttons(
        [Button(t("btn.report_fault"), encode(ReportFault(device.id)))],
        [Button(t("btn.device_history"), encode(DeviceHistory(device.id))), Button(t("btn.book_maintenance"), encode(BookMaintenance(device.id)))],
    )
    return Outbound(text, keyboard)


def _pick_list(key: str, devices: tuple[DeviceInfo, ...], *, fault: bool, other: bool = True, **params: object) -> Outbound:
    rows = [[Button(raw(d.label[:60]), encode(ReportFault(d.id) if fault else DeviceMenu(d.id)))] for d in devices]
    if other:
        rows.append([Button(t("btn.other_product"), encode(OtherProduct()))])
    return Outbound(t(key, **params), buttons(*rows))


def on_scan(inp: StepInput) -> StepResult:
    """/start with a device's or a site's QR code. The owner's own chat gets the device's menu. Any other chat (bound to
    nobody, or to another customer) is never bound by a scan and is shown nothing of the owner's: it may describe a
    fault, which goes to the dispatchers to check with the owner (a guest, a shared site, a new owner), or, bound to
    nobody, prove it is the owner's with the number on file (flows.owner_check). A WhatsApp chat bound to nobody whose
    own number is the owner's is bound at once (``VerifyDeviceOwner``). A code that does not work gets a friendly answer
    and changes nothing."""
    view = inp.view
    scan = view.scan if isinstance(view, DevicesView) else None
    if scan is None or scan.owner is None:
        return hint("error.link_invalid")  # unknown, tampered with or revoked: nothing is told about which
    commands: list[c.Command] = []
    if view.customer_id is None and inp.event.chat.platform in inp.policy.phone_chat_platforms and same_phone(inp.event.chat.chat_id, scan.owner_phone, given_international=True):
        # a WhatsApp chat id is the sender's own number: the owner's, so the chat is bound at once (the handler checks again)
        commands.append(c.VerifyDeviceOwner(inp.event.payload.strip(), identity(inp), "", VIA_CHAT_NUMBER))
    elif view.customer_id != scan.owner:
        return scan_report.on_foreign_scan(inp, scan)
    if not scan.devices:
        return reply(Outbound(t("device.site_empty")), commands=commands)
    if not scan.site:
        return reply(device_menu(scan.devices[0]), commands=commands)
    return reply(_pick_list("device.site_pick", scan.devices, fault=False, other=False), commands=commands)


def on_device_menu(inp: StepInput, menu: DeviceMenu) -> StepResult:
    device = _device(inp, menu.device_id)
    return reply(device_menu(device)) if device is not None else stale()


def on_history(inp: StepInput, show: DeviceHistory) -> StepResult:
    device = _device(inp, show.device_id)
    if device is None:
        return stale()
    back = buttons([Button(t("btn.report_fault"), encode(ReportFault(device.id)))])
    if not inp.view.history:
        return reply(Outbound(t("device.history_empty", product=raw(device.product)), back))
    lines = [t("device.history_line", day=day_of(h.at.astimezone(inp.policy.tz).date()), event=t(f"device.event.{h.kind}"),
               order=raw(f"#{h.job_id}" if h.job_id else "")) for h in inp.view.history]
    return reply(Outbound(t("device.history", product=raw(device.product), lines=lines), back))


# --- the request, step by step --------------------------------------------------------------------------------


def _ask_description(inp: StepInput, draft: RepairDraft) -> StepResult:
    return reply(Outbound(t("repair.ask_description", product=raw(draft.product))), state=DESCRIBE, data=draft)


def _ask_media(inp: StepInput, draft: RepairDraft, *before: Outbound) -> StepResult:
    done = buttons([Button(t("btn.repair_media_done"), encode(RepairMediaDone()))])
    ask = Outbound(t("repair.ask_media", max=MAX_REPAIR_PHOTOS), done, card=_card(inp))
    return reply(joined(*before, ask) if before else ask, state=MEDIA, data=draft)


def _for_device(inp: StepInput, device: DeviceInfo, draft: RepairDraft) -> StepResult:
    draft = replace(draft, device=device.id, product=device.product, category=device.category)
    return _ask_media(inp, draft) if draft.description else _ask_description(inp, draft)


def on_new(inp: StepInput) -> StepResult:
    """/new: a repair request — which device (or another product)."""
    if inp.view.customer_id is None:
        return hint("customer.hint_new")
    return _start(inp, RepairDraft())


def _start(inp: StepInput, draft: RepairDraft) -> StepResult:
    devices = _devices(inp)
    if not devices:
        return reply(Outbound(t("repair.ask_product")), state=PRODUCT, data=draft)
    return reply(_pick_list("repair.pick_device", devices, fault=True), state=PICK, data=draft)


def on_fault_text(inp: StepInput) -> StepResult:
    """Free text that reports a fault ("my washing machine leaks"): the words are the description; the device is the one
    the text names when the customer has exactly one such, else they pick."""
    text = inp.event.text.strip()[:MAX_DESCRIPTION]
    category = product_in(text)
    draft = RepairDraft(description=text)
    # the shop names categories its own way ("air-conditioner", "aircon"): the device's product and category are read as words
    matching = [d for d in _devices(inp) if category is not None and product_in(f"{d.product} {d.category}") == category]
    if len(matching) == 1:
        return _for_device(inp, matching[0], draft)
    if not _devices(inp) and category is not None:
        return _ask_media(inp, replace(draft, product=text[:200], category=category))
    return _start(inp, draft)


def is_fault_text(inp: StepInput) -> bool:
    """Whether the customer's free text is a fault to turn into a request (the view then holds their devices)."""
    return isinstance(inp.view, DevicesView) and inp.view.customer_id is not None and wants_repair(inp.event.text)


def on_report_fault(inp: StepInput, fault: ReportFault) -> StepResult:
    device = _device(inp, fault.device_id)
    if device is None:
        return stale()
    draft = inp.data if isinstance(inp.data, RepairDraft) else RepairDraft()
    return _for_device(inp, device, replace(draft, kind=ServiceKind.REPAIR.value))


def on_book_maintenance(inp: StepInput, book: BookMaintenance) -> StepResult:
    device = _device(inp, book.device_id)
    if device is None:
        return stale()
    draft = RepairDraft(kind=ServiceKind.INSPECTION.value, device=device.id, product=device.product, category=device.category)
    return _ask_days(inp, draft, Outbound(t("repair.maintenance_for", product=raw(device.product))))


def on_other_product(inp: StepInput, other: OtherProduct) -> StepResult:
    draft = inp.data if isinstance(inp.data, RepairDraft) else RepairDraft()
    return reply(Outbound(t("repair.ask_product")), state=PRODUCT, data=replace(draft, device=None))


def on_product(inp: StepInput) -> StepResult:
    draft = inp.data if isinstance(inp.data, RepairDraft) else RepairDraft()
    text = " ".join(inp.event.text.split())[:200]
    if not text:
        return hint("repair.hint_product")
    draft = replace(draft, device=None, product=text, category=product_in(text) or PRODUCT_FALLBACK_CATEGORY)
    return _ask_media(inp, draft) if draft.description else _ask_description(inp, draft)


def on_description(inp: StepInput) -> StepResult:
    draft = inp.data if isinstance(inp.data, RepairDraft) else RepairDraft()
    text = inp.event.text.strip()
    if not text:
        return hint("repair.hint_describe")
    if len(text) > MAX_DESCRIPTION:
        return hint("repair.description_too_long", max=MAX_DESCRIPTION)
    return _ask_media(inp, replace(draft, description=text))


def _refused(event: Inbound) -> StepResult | None:
    """Why a photo or voice note was not kept, in words the sender can act on; None when it was kept."""
    if event.file_error or not event.file_id or not event.file_path:
        refusals = {"too_big": t("photo.too_big", max_mb=event.file_limit_mb or 0), "not_image": t("photo.not_image"),
                    "too_many_pixels": t("photo.too_many_pixels"), "not_audio": t("repair.voice_not_audio")}
        return hint_message(refusals.get(event.file_error or "", t("repair.photo_failed")))
    return None


def on_voice(inp: StepInput) -> StepResult:
    """A voice note about the fault, kept like a photo; said before any words, it is the description."""
    draft = inp.data if isinstance(inp.data, RepairDraft) else RepairDraft()
    refused = _refused(inp.event)
    if refused is not None:
        return refused
    if len(draft.voices) >= MAX_VOICE_NOTES:
        return hint("repair.too_many_voice_notes", max=MAX_VOICE_NOTES)
    assert inp.event.file_id is not None and inp.event.file_path is not None  # _refused checked both
    draft = replace(draft, voices=(*draft.voices, (inp.event.file_id, inp.event.file_path)))
    return _ask_media(inp, draft, Outbound(t("repair.voice_added")))


def on_photo(inp: StepInput) -> StepResult:
    """A photo of the fault, kept like any evidence (the engine fetched and checked it because these states take photos)."""
    draft = inp.data if isinstance(inp.data, RepairDraft) else RepairDraft()
    event = inp.event
    refused = _refused(event)
    if refused is not None:
        return refused
    assert event.file_id is not None and event.file_path is not None
    if len(draft.photos) >= MAX_REPAIR_PHOTOS:
        return hint("repair.too_many_photos", max=MAX_REPAIR_PHOTOS)
    draft = replace(draft, photos=(*draft.photos, (event.file_id, event.file_path)))
    if inp.state == DESCRIBE:  # a photo before the words: kept, and the words still asked for
        return reply(Outbound(t("repair.photo_then_describe", product=raw(draft.product))), data=draft)
    done = buttons([Button(t("btn.repair_media_done"), encode(RepairMediaDone()))])
    return reply(Outbound(t("repair.photo_added", count=len(draft.photos), max=MAX_REPAIR_PHOTOS), done, card=_card(inp)), data=draft)


def hint_message(text: Text) -> StepResult:
    return reply(Outbound(text))


def on_media_text(inp: StepInput) -> StepResult:
    """More words while photos are asked for: they join the description."""
    draft = inp.data if isinstance(inp.data, RepairDraft) else RepairDraft()
    text = inp.event.text.strip()
    description = f"{draft.description}\n{text}".strip() if text else draft.description
    if len(description) > MAX_DESCRIPTION:
        return hint("repair.description_too_long", max=MAX_DESCRIPTION)
    return _ask_media(inp, replace(draft, description=description), Outbound(t("repair.noted")))


def on_unsupported(inp: StepInput) -> StepResult:
    return hint("repair.voice_unsupported")


def on_media_done(inp: StepInput, done: RepairMediaDone) -> StepResult:
    draft = inp.data if isinstance(inp.data, RepairDraft) else None
    if draft is None or not (draft.description or draft.voices):
        return stale()
    keyboard = buttons(
        [Button(t("btn.urgency_normal"), encode(RepairUrgency("normal")))],
        [Button(t("btn.urgency_urgent"), encode(RepairUrgency("urgent")))],
    )
    return reply(Outbound(t("repair.ask_urgency"), keyboard, card=_card(inp)), state=URGENCY, data=draft)


def _days_card(inp: StepInput, draft: RepairDraft, *before: Outbound) -> Outbound:
    today = inp.now.astimezone(inp.policy.tz).date()
    rows = [[Button(t("btn.repair_day_chosen" if day in draft.days else "btn.repair_day", day=day_of(day)), encode(RepairDay(day)))]
            for day in preferred_day_choices(today)]
    rows.append([Button(t("btn.repair_send"), encode(RepairSend()))])
    ask = Outbound(t("repair.ask_days", chosen=[day_of(d) for d in sorted(draft.days)] or raw("-")), buttons(*rows), card=_card(inp))
    return joined(*before, ask) if before else ask


def _ask_days(inp: StepInput, draft: RepairDraft, *before: Outbound) -> StepResult:
    return reply(_days_card(inp, draft, *before), state=DAYS, data=draft)


def on_urgency(inp: StepInput, urgency: RepairUrgency) -> StepResult:
    draft = inp.data if isinstance(inp.data, RepairDraft) else None
    if draft is None:
        return stale()
    draft = replace(draft, urgency=urgency.level)
    if urgency.level == "urgent":  # booked for the next opening hours: no days to prefer
        return _send(inp, draft)
    return _ask_days(inp, draft)


def on_day(inp: StepInput, pick: RepairDay) -> StepResult:
    draft = inp.data if isinstance(inp.data, RepairDraft) else None
    if draft is None or pick.day not in preferred_day_choices(inp.now.astimezone(inp.policy.tz).date()):
        return stale()
    days = tuple(d for d in draft.days if d != pick.day) if pick.day in draft.days else (*draft.days, pick.day)
    return _ask_days(inp, replace(draft, days=tuple(sorted(days))))


def on_send(inp: StepInput, send: RepairSend) -> StepResult:
    draft = inp.data if isinstance(inp.data, RepairDraft) else None
    if draft is None:
        return stale()
    return _send(inp, draft)


def _send(inp: StepInput, draft: RepairDraft) -> StepResult:
    """The request goes to the bus; the order it makes is announced by its reaction, with the booking to do next."""
    photos = tuple(c.PhotoRef(inp.event.chat.platform, file_id, path) for file_id, path in draft.photos)
    voices = tuple(c.PhotoRef(inp.event.chat.platform, file_id, path) for file_id, path in draft.voices)
    command = c.RequestRepair(
        inp.view.customer_id, draft.kind, draft.device, draft.product, draft.category, draft.description, draft.urgency,
        tuple(d.isoformat() for d in draft.days), photos, voices,
    )
    return reply(Outbound(t("repair.sent"), card=_card(inp)), commands=[command], state="idle")


# --- the table entries the customer flow takes ------------------------------------------------------------------


def states(customer_guard: Guard) -> dict[str, State]:
    """The request's states, for the customer flow's table."""
    photo = Step(on_photo)
    other = Step(on_unsupported)
    voice = Step(on_voice, leads_to=(MEDIA,))
    return {
        PICK: State(hint="repair.hint_pick", data=RepairDraft, text=Step(on_product, leads_to=(DESCRIBE, MEDIA))),
        PRODUCT: State(hint="repair.hint_product", data=RepairDraft, text=Step(on_product, leads_to=(DESCRIBE, MEDIA))),
        DESCRIBE: State(hint="repair.hint_describe", data=RepairDraft, text=Step(on_description, leads_to=(MEDIA,)),
                        photo=photo, voice=voice, other=other, wants_photo=True),
        MEDIA: State(hint="repair.hint_media", data=RepairDraft, text=Step(on_media_text, leads_to=(MEDIA,)), photo=photo, voice=voice,
                     other=other, wants_photo=True, buttons={RepairMediaDone: Step(on_media_done, leads_to=(URGENCY,), requires=customer_guard)}),
        URGENCY: State(hint="repair.hint_urgency", data=RepairDraft,
                       buttons={RepairUrgency: Step(on_urgency, leads_to=(DAYS, "idle"), requires=customer_guard)}),
        DAYS: State(hint="repair.hint_days", data=RepairDraft, buttons={
            RepairDay: Step(on_day, leads_to=(DAYS,), requires=customer_guard),
            RepairSend: Step(on_send, leads_to=("idle",), requires=customer_guard),
        }),
    }


def buttons_anywhere(customer_guard: Guard) -> dict[type[Action], Step]:
    """The device buttons, valid in every state (a device's menu stays in the chat)."""
    return {
        DeviceMenu: Step(on_device_menu, requires=customer_guard),
        DeviceHistory: Step(on_history, requires=customer_guard),
        ReportFault: Step(on_report_fault, leads_to=(DESCRIBE, MEDIA), requires=customer_guard),
        BookMaintenance: Step(on_book_maintenance, leads_to=(DAYS,), requires=customer_guard),
        OtherProduct: Step(on_other_product, leads_to=(PRODUCT,), requires=customer_guard),
    }


NEW = Step(on_new, leads_to=(PICK, PRODUCT))
