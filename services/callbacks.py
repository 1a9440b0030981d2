"""Status callbacks on the bus: a job's milestones queue signed callbacks to its order source, parked ones alert the
dispatchers, and the handlers that set endpoints and send parked callbacks again."""

from __future__ import annotations

import uuid
from typing import Any

from domain import callbacks as cb
from domain import commands as c
from domain import events as ev
from domain.errors import DomainError, NotFound
from domain.model import Job, Photo, ProblemReport, Technician, Visit, stored_id
from services import actions as a
from services.actions import encode
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.evidence import photo_key, signed_photo_path
from services.messages import Button, Outbound, buttons, t
from services.notifications import _region_alert
from storage.callbacks import CallbackStore
from storage.threads import ThreadStore


def milestone_events() -> tuple[type[ev.Event], ...]:
    """The events that exist now among the milestones (domain.callbacks.MILESTONES names some still to come)."""
    return tuple(ev.EVENT_TYPES[name] for name in cb.MILESTONES if name in ev.EVENT_TYPES)


async def queue_status_callback(ctx: HandlerContext, event: ev.Event) -> list[Outbound | ev.Event]:
    """A milestone of a job whose source has an endpoint: its callback joins the outbox in this unit of work, after the
    job's earlier ones (one outbox chat per job keeps them in order). The body is fixed now, so every retry sends the
    same bytes and event id; only the timestamp and signature are made at each send."""
    milestone = cb.MILESTONES.get(event.name)
    job = await ctx.store.get(Job, event.job_id)
    if milestone is None or job is None:
        return []
    if await CallbackStore(ctx.store).endpoint(job.source) is None:
        return []
    event_id = f"evt_{uuid.uuid4().hex}"
    visit = await ctx.store.get(Visit, event.visit_id)
    body = {
        "id": event_id,
        "type": milestone,
        "occurred_at": ctx.now.isoformat(),
        "order": {"source": job.source, "external_ref": job.external_ref, "job_id": stored_id(job), "status": job.status},
        "visit": await _visit_out(ctx, visit) if visit is not None else None,
        "data": await _data(ctx, event, visit),
    }
    await ctx.store.outbox_add(
        platform=cb.PLATFORM, bot=cb.BOT, chat_id=cb.chat_of(stored_id(job)), payload={"callback": body},
        dedup_key=f"callback:{event_id}", now=ctx.now,
    )
    return []


async def _visit_out(ctx: HandlerContext, visit: Visit) -> dict[str, Any]:
    technician = await ctx.store.get(Technician, visit.technician_id)
    return {
        "id": stored_id(visit), "kind": visit.kind, "sequence": visit.sequence, "status": visit.status,
        "slot_start": visit.slot_start.isoformat() if visit.slot_start else None,
        "slot_end": visit.slot_end.isoformat() if visit.slot_end else None,
        # the name the customer was told; no phone number leaves with a callback
        "technician": {"id": stored_id(technician), "name": technician.name} if technician is not None else None,
    }


async def _data(ctx: HandlerContext, event: ev.Event, visit: Visit | None) -> dict[str, Any]:
    data: dict[str, Any] = {key: event.data[key] for key in cb.SHOWN_DATA if key in event.data}
    if isinstance(event, ev.VisitCompleted) and visit is not None:
        threads = ThreadStore(ctx.store)
        data["photos"] = await _photos(ctx, await threads.photos_of_visits([stored_id(visit)]))
        data["checklist"] = [{"step": answer.step_key, "value": answer.value, "photo_id": answer.photo_id}
                             for answer in await threads.answers_of_visits([stored_id(visit)])]
    elif isinstance(event, ev.ExceptionReported):
        report = await ctx.store.get(ProblemReport, event.data.get("exception_id"))
        if report is not None:
            data.update(exception_id=stored_id(report), reason=report.reason, note=report.note)
            photos = await ctx.store.get_many(Photo, report.photo_ids)
            data["photos"] = await _photos(ctx, [photos[pid] for pid in report.photo_ids if pid in photos])
    return data


async def _photos(ctx: HandlerContext, photos: list[Photo]) -> list[dict[str, Any]]:
    """Signed, expiring links (services/evidence.py): the source's system opens them without the API token."""
    if not photos:
        return []
    key = await photo_key(ctx.store, ctx.now)
    return [{"id": stored_id(p), "purpose": p.purpose, "url": signed_photo_path(key, stored_id(p), ctx.now)} for p in photos]


# --- parked callbacks -----------------------------------------------------------------------------


async def park_callback(ctx: HandlerContext, command: c.ParkCallback) -> list[ev.Event]:
    """The relay parked a callback: the job's timeline says so, and the dispatchers are told (the reaction below)."""
    row = await CallbackStore(ctx.store).callback(command.callback_id)
    if row is None or row["status"] != "parked":
        return []  # already sent again meanwhile: nothing waits for anyone
    body = row["payload"].get("callback", {})
    return [ev.CallbackParked(int(row["chat_id"]), None, {
        "callback_id": row["id"], "type": body.get("type"), "event_id": body.get("id"), "attempts": row["attempts"],
        "reason": command.reason[:300],
    })]


async def alert_dispatchers_callback_parked(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Not a dead end: the alert says what failed and carries Resend, which a dispatcher presses once the source's
    system takes callbacks again (the API has the same: POST /api/v1/callbacks/{id}/resend)."""
    job = await ctx.store.load(Job, event.job_id)
    text = t("group.callback_parked", order=stored_id(job), source=job.source, ref=job.external_ref, milestone=event.data["type"],
             attempts=event.data["attempts"], reason=event.data["reason"], callback=event.data["callback_id"])
    keyboard = buttons([Button(t("btn.callback_resend"), encode(a.ResendParkedCallback(event.data["callback_id"])))])
    return await _region_alert(ctx, job.region, text, keyboard)


async def resend_callback(ctx: HandlerContext, command: c.ResendCallback) -> list[ev.Event]:
    store = CallbackStore(ctx.store)
    row = await store.callback(command.callback_id)
    if row is None:
        raise NotFound("callback_not_found")
    if row["status"] != "parked":
        raise DomainError("callback_not_parked", state=row["status"])
    ids = await store.requeue(command.callback_id, ctx.now)
    return [ev.CallbackResent(int(row["chat_id"]), None, {"callback_ids": ids})]


# --- endpoints ------------------------------------------------------------------------------------


async def set_endpoint(ctx: HandlerContext, command: c.SetCallbackEndpoint) -> list[ev.Event]:
    await CallbackStore(ctx.store).put_endpoint(source=command.source, url=command.url, secret=command.secret, now=ctx.now)
    return []


async def remove_endpoint(ctx: HandlerContext, command: c.RemoveCallbackEndpoint) -> list[ev.Event]:
    if not await CallbackStore(ctx.store).delete_endpoint(command.source):
        raise NotFound("callback_endpoint_not_found")
    return []


HANDLERS = (
    handles(c.SetCallbackEndpoint, set_endpoint),
    handles(c.RemoveCallbackEndpoint, remove_endpoint),
    handles(c.ParkCallback, park_callback),
    handles(c.ResendCallback, resend_callback),
)


def reactions() -> tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...]:
    """The order source hears its milestones (the parked alert is among services/registry.py's notifications)."""
    return ((queue_status_callback, milestone_events()),)
