"""Relay threads: what a customer or technician types that no bot step understands goes to people, and their answers come back."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from domain.lifecycle import ACTIVE
from domain.model import Visit, VisitStatus, stored_id

MAX_TEXT = 2000  # one relayed message: a long one is cut, never refused (the person already wrote it)
NO_JOB = 0  # the timeline key of a thread about no job (a technician's question between visits)


class Origin(str, enum.Enum):
    """Who opened the thread and gets the answers."""

    CUSTOMER = "customer"
    TECHNICIAN = "technician"


class Audience(str, enum.Enum):
    """Who reads the thread and may answer."""

    TECHNICIAN = "technician"  # the technician assigned to the customer's visit
    DISPATCHERS = "dispatchers"  # the region's dispatch groups


class Topic(str, enum.Enum):
    """Why the text went to people: nobody understood it, the writer asked for a person, or it is a complaint."""

    UNKNOWN = "unknown"
    HUMAN = "human"
    COMPLAINT = "complaint"


class Author(str, enum.Enum):
    CUSTOMER = "customer"
    TECHNICIAN = "technician"
    DISPATCHER = "dispatcher"


class ThreadStatus(str, enum.Enum):
    OPEN = "open"  # the writer's next texts join it
    CLOSED = "closed"  # the writer said they were done; answers still reach them


@dataclass(eq=False)
class RelayThread:
    origin: str  # Origin
    origin_id: int  # the customer's or the technician's id
    platform: str  # the writer's chat, where answers go
    bot: str
    chat_id: str
    audience: str  # Audience
    topic: str  # Topic of the first message
    region: str | None = None  # whose dispatch groups read it
    job_id: int | None = None
    visit_id: int | None = None
    technician_id: int | None = None  # the audience, when it is a technician
    status: str = ThreadStatus.OPEN.value
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int | None = None


@dataclass(eq=False)
class RelayMessage:
    thread_id: int
    author: str  # Author
    author_id: int | None
    text: str  # as relayed: phone numbers already masked
    photo_id: int | None = None
    created_at: datetime | None = None
    id: int | None = None


# a visit whose technician can answer a question about it: assigned, and not over
_TECHNICIAN_ANSWERS = frozenset({*ACTIVE, VisitStatus.ON_HOLD})


def visit_in_question(visits: Iterable[Visit]) -> Visit | None:
    """The customer's visit a question is most likely about: the one under way, else the next one booked with a technician."""
    assigned = [v for v in visits if v.state in _TECHNICIAN_ANSWERS and v.technician_id is not None]
    if not assigned:
        return None
    under_way = [v for v in assigned if v.state is not VisitStatus.ACCEPTED]
    pool = under_way or assigned
    return min(pool, key=lambda v: (v.slot_start is None, v.slot_start or datetime.max, stored_id(v)))


def audience_for(topic: Topic, visit: Visit | None) -> Audience:
    """A question about a visit goes to its technician; asking for a person, a complaint, or no visit under way goes to
    the dispatchers (a complaint may be about the technician, and "a person" means the shop)."""
    if topic is Topic.UNKNOWN and visit is not None and visit.technician_id is not None:
        return Audience.TECHNICIAN
    return Audience.DISPATCHERS


def still_addressed(thread: RelayThread, visit: Visit | None) -> bool:
    """A thread to a technician stays theirs while they have its visit and it is not over; after a reassignment or the
    end of the visit the writer's next text opens a new thread, addressed afresh (the new technician, or the shop)."""
    if thread.audience != Audience.TECHNICIAN.value:
        return True
    return visit is not None and visit.technician_id == thread.technician_id and visit.state in _TECHNICIAN_ANSWERS


def may_answer(thread: RelayThread, author: Author, author_id: int | None) -> bool:
    """Only the thread's audience answers: its technician, or any registered dispatcher (in groups anyone can press a button)."""
    if author is Author.DISPATCHER:
        return author_id is not None
    if author is Author.TECHNICIAN:
        return thread.audience == Audience.TECHNICIAN.value and author_id is not None and author_id == thread.technician_id
    return False


def clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
