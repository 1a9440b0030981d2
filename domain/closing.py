"""How jobs end without the customer's last word: confirmation by timeout, a dispatcher closing or reopening."""

from __future__ import annotations

from domain import events as ev
from domain import lifecycle
from domain.errors import DomainError
from domain.model import Job, Visit, VisitStatus, stored_id

CLOSED = ("done", "cancelled")
UNDER_WAY = (VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS, VisitStatus.ON_HOLD)
MAX_REASON = 500


def finished_status(visits: list[Visit]) -> str | None:
    """The job's closed status once every visit is confirmed or cancelled; None while any is open."""
    if not all(v.state in lifecycle.ENDED for v in visits):  # a visit ended needing a return: its follow-up counts
        return None
    return "done" if any(v.state is VisitStatus.CONFIRMED for v in visits) else "cancelled"


def confirm_by_timeout(visit: Visit) -> ev.Event:
    """The customer said nothing within the allowed time after completion: the visit counts as confirmed,
    recorded as such (``by: timeout``) so nobody mistakes it for the customer's word."""
    event = lifecycle.confirm(visit, visit.job_id)
    return ev.VisitConfirmed(event.job_id, event.visit_id, {**event.data, "by": "timeout"})


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise DomainError("reason_required")
    return text[:MAX_REASON]


def close(job: Job, visits: list[Visit], reason: str, by: str, dispatcher_id: int | None) -> list[ev.Event]:
    """A dispatcher closes a job: completed visits count as confirmed by them, visits not started are cancelled;
    work under way must end first (its technician is on it)."""
    text = _reason(reason)
    if job.status in CLOSED:
        raise DomainError("job_already_closed")
    if any(v.state in UNDER_WAY for v in visits):
        raise DomainError("job_work_under_way")
    job_id = stored_id(job)
    events: list[ev.Event] = []
    for visit in visits:
        if visit.state is VisitStatus.COMPLETED:
            confirmed = lifecycle.confirm(visit, job_id)
            events.append(ev.VisitConfirmed(job_id, visit.id, {**confirmed.data, "by": by, "dispatcher_id": dispatcher_id}))
        elif lifecycle.allowed(visit, "cancel"):
            events.append(lifecycle.cancel(visit, job_id, "dispatcher"))
    job.status = finished_status(visits) or "done"
    events.append(ev.JobClosed(job_id, None, {"reason": text, "by": by, "dispatcher_id": dispatcher_id, "status": job.status}))
    return events


def reopen(job: Job, reason: str, dispatcher_id: int | None) -> ev.Event:
    """A closed job opens again (a complaint to follow up): its visits keep their history, the job is open."""
    text = _reason(reason)
    if job.status not in CLOSED:
        raise DomainError("job_not_closed")
    previous = job.status
    job.status = "open"
    return ev.JobReopened(stored_id(job), None, {"reason": text, "dispatcher_id": dispatcher_id, "previous": previous})
