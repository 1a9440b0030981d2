"""Status callbacks to order sources, pure: which events are milestones, the body as sent, and its HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urljoin

# Callbacks are outbox rows of their own platform, one "chat" per job: the relay sends a chat's rows in order.
PLATFORM = "callback"
BOT = "status"

# The headers a callback carries; the signature is over "<timestamp>.<body>" with the source's secret.
TIMESTAMP_HEADER = "X-Fieldchat-Timestamp"
SIGNATURE_HEADER = "X-Fieldchat-Signature"
EVENT_ID_HEADER = "X-Fieldchat-Event-Id"
EVENT_TYPE_HEADER = "X-Fieldchat-Event"
SIGNATURE_PREFIX = "sha256="
# A receiver should refuse a timestamp further than this from its own clock (a replayed request); the README says so.
TOLERANCE_SECONDS = 300

# The milestones an order source hears about, by the event that marks them. Listed by name, so an event that does not
# exist yet is the hook for it: the fees work adds a ``BillIssued`` event and the source hears "job.billed" with no
# other change here (services/registry.py subscribes to whichever of these events exist).
MILESTONES: dict[str, str] = {
    "JobCreated": "order.received",
    "VisitAccepted": "visit.accepted",  # a technician took the visit
    "VisitBooked": "visit.booked",
    "VisitRescheduled": "visit.rescheduled",
    "VisitEnRoute": "visit.on_the_way",
    "VisitCheckedIn": "visit.arrived",
    "VisitCompleted": "visit.completed",  # with the visit's photos as signed links and its checklist answers
    "VisitConfirmed": "visit.confirmed",
    "VisitCancelled": "visit.cancelled",
    "ExceptionReported": "problem.reported",  # with the report's photos as signed links
    "JobCompleted": "job.completed",
    "JobClosed": "job.closed",
    "OrderConfirmed": "order.confirmed",  # the merchant confirmed it out of the review queue
    "OrderUpdated": "order.updated",  # the source sent it again, changed, and the job took the change
    "OrderCancelled": "order.cancelled",
    # the customer's code closed the visit (seed 003: the delivery note turns completed with it); never the code itself
    "CompletionCodeAccepted": "visit.code_verified",
    "CompletionCodeWaived": "visit.code_waived",  # a dispatcher completed it without the code
    "BillIssued": "job.billed",  # the hook for fees: no such event yet
}

# What of an event's own data a source sees; the rest (internal ids of dispatchers, threads…) stays inside.
SHOWN_DATA = ("by", "reason", "note", "minutes", "status")


def encode_body(callback: dict[str, Any], public_url: str | None) -> bytes:
    """The body exactly as sent and signed: compact JSON with sorted keys, UTF-8. Photo links are stored relative to
    this service and made absolute with its public address when one is configured."""
    body = dict(callback)
    if public_url:
        body["data"] = _absolute_links(body.get("data") or {}, public_url)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _absolute_links(data: dict[str, Any], public_url: str) -> dict[str, Any]:
    base = public_url.rstrip("/") + "/"
    out = dict(data)
    if isinstance(out.get("photos"), list):
        out["photos"] = [{**photo, "url": urljoin(base, photo["url"].lstrip("/"))} if isinstance(photo, dict) and "url" in photo else photo
                         for photo in out["photos"]]
    return out


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>``: the timestamp is signed too, so an old callback
    cannot be replayed with a fresh one."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(secret: str, timestamp: str | None, signature_header: str | None, body: bytes, now: float,
           tolerance: float = TOLERANCE_SECONDS) -> bool:
    """What a receiver checks: both headers present, the timestamp recent, the signature right (in constant time)."""
    if not timestamp or not signature_header or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body).encode(), signature_header.strip().encode())


def chat_of(job_id: int) -> str:
    """The outbox chat of a job's callbacks."""
    return str(job_id)
