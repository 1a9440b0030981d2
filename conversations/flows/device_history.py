"""The repairer reads the device's whole history before going (issue 14): from an offer or visit card of a job that names a
device, its record and every earlier visit (kind, outcome, fault and method, parts, checklist answers, photos)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from conversations.flow import Guard, Step, StepInput, reply
from conversations.flows import stock
from conversations.flows.common import hint
from domain.policy import ServicePolicy
from services import device_views
from services.actions import Action, BackToVisit, VisitDeviceHistory, VisitDevicePhotos, encode
from services.device_views import DeviceFile, VisitDeviceRequest, VisitDeviceView, VisitRecord
from services.messages import Button, Outbound, StepResult, Text, buttons, raw, t
from services.views import TechnicianView, TechnicianViewRequest, TechVisit
from storage.repository import Store

ACTIONS = (VisitDeviceHistory, VisitDevicePhotos)


def view_request(action: Action | None, base: TechnicianViewRequest) -> TechnicianViewRequest:
    """The technician's request, asking for the device files only when a history button was pressed."""
    if isinstance(action, ACTIONS):
        return VisitDeviceRequest(base.chat, base.token, base.user_id, base.board, device_visit=action.visit_id)
    return base


async def load_view(store: Store, request: TechnicianViewRequest, policy: ServicePolicy, now: datetime) -> TechnicianView:
    """The technician's view (with the van where a parts step asks), and a visit's device files where a history step asks."""
    view = await stock.load_view(store, request, policy, now)
    return await device_views.with_visit_devices(store, request, view, policy, now)


def history_button(visit_id: int) -> Button:
    return Button(t("device.btn.history"), encode(VisitDeviceHistory(visit_id)))


def _files(inp: StepInput, visit_id: int) -> tuple[DeviceFile, ...] | None:
    """The files of this visit's devices; None when the visit is not the writer's (offered, assigned or crew)."""
    view = inp.view
    if not isinstance(view, VisitDeviceView) or view.device_visit != visit_id or view.visit(visit_id) is None:
        return None
    return view.device_files


def _day(inp: StepInput, moment: datetime | None) -> Text:
    # dates with their year: a device's history spans years (the warranty too)
    return raw(moment.astimezone(inp.policy.tz).date().isoformat()) if moment is not None else raw("-")


def _visit_line(inp: StepInput, record: VisitRecord) -> Text:
    facts: list[Text] = []
    if record.outcome:
        facts.append(t("device.file.outcome", outcome=t(f"device.outcome.{record.outcome}")))
    if record.fault or record.method:
        facts.append(t("device.file.fault", fault=raw(record.fault or "-"), method=raw(record.method or "-")))
    if record.return_reason:
        facts.append(t("device.file.return", reason=raw(record.return_reason)))
    if record.parts:
        facts.append(t("device.file.parts", parts=raw(", ".join(record.parts))))
    if record.answers:
        facts.append(t("device.file.answers", answers=raw("; ".join(f"{key}: {value}" for key, value in record.answers))))
    if record.photo_ids:
        facts.append(t("device.file.photos", count=len(record.photo_ids)))
    return t("device.file.visit", day=_day(inp, record.day), kind=t(f"kind.{record.kind}"), visit=record.visit_id,
             status=t(f"status.{record.status}"), facts=_chain(facts))


def _chain(facts: list[Text]) -> Text:
    """Facts one after another on a line ("fixed · fault: … · parts: …"), each translated on its own."""
    if not facts:
        return raw("")
    chained = facts[-1]
    for fact in reversed(facts[:-1]):
        chained = t("device.file.and", first=fact, rest=chained)
    return t("device.file.facts", facts=chained)


def _file_text(inp: StepInput, file: DeviceFile) -> Text:
    device = file.device
    visits: list[Text] = [_visit_line(inp, r) for r in file.visits] or [t("device.file.no_visits")]
    return t(
        "device.file", product=raw(device.product), model=raw(" ".join(p for p in (device.brand, device.model) if p) or "-"),
        serial=raw(device.serial or "-"), location=raw(device.location or "-"), installed=_day_of_date(device.installed_on),
        warranty=_day_of_date(device.warranty_until), visits=visits,
    )


def _day_of_date(day: date | None) -> Text:
    return raw(day.isoformat()) if day is not None else raw("-")


def on_history(inp: StepInput, show: VisitDeviceHistory) -> StepResult:
    """The device file(s) of the visit, with its photos a press away and the way back to the visit."""
    files = _files(inp, show.visit_id)
    if files is None:
        return hint("device.file.not_yours")  # someone else's visit, or one no longer offered: nothing is shown
    back = [Button(t("device.btn.back_to_visit"), encode(BackToVisit(show.visit_id)))]
    if not files:
        return reply(Outbound(t("device.file.none", visit=show.visit_id), buttons(back)))
    count = sum(len(f.photos) for f in files)
    rows = [[Button(t("device.btn.photos", count=count), encode(VisitDevicePhotos(show.visit_id)))], back] if count else [back]
    return reply(Outbound(t("device.file.for_visit", visit=show.visit_id, files=[_file_text(inp, f) for f in files]), buttons(*rows)))


def on_photos(inp: StepInput, show: VisitDevicePhotos) -> StepResult:
    """The earlier visits' photos as one album (links where the channel shows none), with the way back."""
    files = _files(inp, show.visit_id)
    if files is None:
        return hint("device.file.not_yours")
    album = tuple(p for f in files for p in f.photos)
    back = buttons([Button(t("device.btn.back_to_visit"), encode(BackToVisit(show.visit_id)))])
    if not album:
        return reply(Outbound(t("device.file.no_photos"), back))
    return reply(Outbound(t("device.file.photos_sent", count=len(album)), back, album=album))


def back_step(card: Callable[[TechVisit], Outbound]) -> Callable[[StepInput, BackToVisit], StepResult]:
    """The way back: the visit's card with its next step (the card is the technician flow's, handed in)."""

    def on_back_to_visit(inp: StepInput, back: BackToVisit) -> StepResult:
        visit = inp.view.visit(back.visit_id)
        if visit is None:
            return hint("device.file.not_yours")
        return reply(card(visit))

    return on_back_to_visit


def technician_buttons(guard: Guard, card: Callable[[TechVisit], Outbound]) -> dict[type[Action], Step]:
    """The history buttons, valid in every state of the technician's chat (a card stays in the chat)."""
    return {
        VisitDeviceHistory: Step(on_history, requires=guard),
        VisitDevicePhotos: Step(on_photos, requires=guard),
        BackToVisit: Step(back_step(card), requires=guard),
    }
