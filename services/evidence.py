"""Evidence reaches people: problem photos go with the alert, signed photo links, and what a job's API view shows of its work."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from domain import events as ev
from domain.model import Job, Photo, ProblemReport, Visit, stored_id
from domain.relay import RelayThread
from services.context import HandlerContext
from services.messages import AlbumPhoto, ChatRef, Outbound, Purpose, Text, t
from services.notifications import ROBOT_PLATFORM, kind_label, route_for
from storage.repository import Store
from storage.schedule import ScheduleStore
from storage.threads import ThreadStore

PHOTO_SECRET = "photos"  # the server secret that signs photo links (storage: server_secrets)
LINK_LIFETIME = timedelta(days=7)  # a link in a group robot's message, or in an API answer, works this long


# --- signed photo links -----------------------------------------------------------------------------


def photo_signature(key: bytes, photo_id: int, expires: int) -> str:
    """Whoever holds the link may see this one photo until ``expires`` (seconds since 1970), and nothing else."""
    return hmac.new(key, f"photo:{photo_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def photo_path(photo_id: int) -> str:
    return f"/api/v1/photos/{photo_id}"


def signed_photo_path(key: bytes, photo_id: int, now: datetime, lifetime: timedelta = LINK_LIFETIME) -> str:
    expires = int((now + lifetime).timestamp())
    return f"{photo_path(photo_id)}?expires={expires}&sig={photo_signature(key, photo_id, expires)}"


def signature_valid(key: bytes, photo_id: int, expires: int, signature: str, now: datetime) -> bool:
    if expires < now.timestamp():
        return False
    return hmac.compare_digest(photo_signature(key, photo_id, expires), signature)


async def photo_key(store: Store, now: datetime) -> bytes:
    return await store.server_secret(PHOTO_SECRET, now)


# --- problem alerts carry their photos ---------------------------------------------------------------


async def send_exception_photos(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The photos of a problem report follow its alert: an album in the region's groups, links for its robots."""
    report = await ctx.store.load(ProblemReport, event.data["exception_id"])
    photos = await ctx.store.get_many(Photo, report.photo_ids)
    album = tuple(AlbumPhoto(pid, photos[pid].path) for pid in report.photo_ids if pid in photos)
    if not album:
        return []
    job = await ctx.store.load(Job, event.job_id)
    visit = await ctx.store.load(Visit, report.visit_id)
    text = t("evidence.exception_photos", exception=stored_id(report), visit=stored_id(visit), kind=kind_label(visit.kind),
             count=len(album))
    return await region_album(ctx, job.region, text, album)


async def region_album(ctx: HandlerContext, region: str, text: Text, album: tuple[AlbumPhoto, ...]) -> list[Outbound]:
    """Photos after a region's alert: an album in its groups, and to its group robots (whose channel turns the album
    into signed links: robots show no photos, bots/alerting.py)."""
    out = []
    for group in await ctx.store.groups_for_region(region):
        for chat in await ctx.store.bindings_of("group", stored_id(group)):
            out.append(Outbound(text, to=ChatRef(chat.platform, chat.bot, chat.chat_id), language=chat.language, album=album,
                                alert=True, purpose=Purpose.ALERT))
    sinks = await ScheduleStore(ctx.store).alert_sinks_for(region)
    if sinks:
        specific = any(s["region"] == region for s in sinks)
        out.append(Outbound(text, to=ChatRef(ROBOT_PLATFORM, "alerts", route_for(region if specific else None)), album=album,
                            alert=True, purpose=Purpose.ALERT))
    return out


# --- what the API shows of a job's work ---------------------------------------------------------------


async def job_evidence(store: Store, job_id: int, now: datetime) -> dict[str, Any]:
    """Checklist answers, photos, problem reports, ratings with comments and relayed messages of one job.

    Photos are named by id; the API turns each into a link served with authorization (``photo_path``) and a signed,
    expiring one (``signed_photo_path``) that works without the token, for a browser or a ticket system.
    """
    threads = ThreadStore(store)
    visits = await store.visits_of_job(job_id)
    visit_ids = [stored_id(v) for v in visits]
    relay_threads = await threads.threads_of_job(job_id)
    messages = await threads.messages_of([stored_id(th) for th in relay_threads])
    photos = await threads.photos_of_visits(visit_ids)
    relayed_photo_ids = {m.photo_id for m in messages if m.photo_id is not None} - {p.id for p in photos}
    photos += list((await store.get_many(Photo, relayed_photo_ids)).values())
    key = await photo_key(store, now)

    def photo_out(photo: Photo) -> dict[str, Any]:
        pid = stored_id(photo)
        return {"id": pid, "visit_id": photo.visit_id, "purpose": photo.purpose, "created_at": photo.created_at,
                "path": photo_path(pid), "signed_path": signed_photo_path(key, pid, now)}

    by_thread: dict[int, RelayThread] = {stored_id(th): th for th in relay_threads}
    return {
        "checklist_answers": [
            {"visit_id": a.visit_id, "step": a.step_key, "value": a.value, "photo_id": a.photo_id, "answered_at": a.answered_at}
            for a in await threads.answers_of_visits(visit_ids)
        ],
        "photos": [photo_out(p) for p in sorted(photos, key=stored_id)],
        "exceptions": [
            {"id": r.id, "visit_id": r.visit_id, "technician_id": r.technician_id, "reason": r.reason, "note": r.note,
             "photo_ids": list(r.photo_ids), "status": r.status, "resolution": r.resolution, "created_at": r.created_at}
            for r in await threads.reports_of_visits(visit_ids)
        ],
        "ratings": [
            {"visit_id": r.visit_id, "score": r.score, "comment": r.comment, "created_at": r.created_at}
            for r in await threads.ratings_of_job(job_id)
        ],
        "messages": [
            {"thread_id": m.thread_id, "audience": by_thread[m.thread_id].audience, "author": m.author, "text": m.text,
             "photo_id": m.photo_id, "created_at": m.created_at}
            for m in messages
        ],
    }
