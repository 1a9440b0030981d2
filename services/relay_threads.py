"""Relay threads on the bus: free text to people (handlers), forwarded with a Reply button, and answers delivered back (reactions)."""

from __future__ import annotations

from domain import commands as c
from domain import events as ev
from domain.errors import NotAllowed, NotFound
from domain.lifecycle import ACTIVE
from domain.masking import mask_name, mask_phones_in
from domain.model import Customer, Job, Photo, Technician, Visit, VisitStatus, stored_id
from domain.relay import (
    NO_JOB,
    Audience,
    Author,
    Origin,
    RelayMessage,
    RelayThread,
    ThreadStatus,
    Topic,
    audience_for,
    clip,
    may_answer,
    still_addressed,
    visit_in_question,
)
from services import actions as a
from services.actions import encode
from services.bus import Handler, handles
from services.context import HandlerContext
from services.messages import AlbumPhoto, Button, ChatRef, Outbound, Purpose, Text, buttons, raw, t
from services.notifications import ALL_REGIONS, ROBOT_PLATFORM, kind_label, route_for
from storage.schedule import ScheduleStore
from storage.threads import ThreadStore

RECENT_JOBS = 5  # the customer's newest jobs a question may be about (as the customer's view shows them)


# --- handlers ---------------------------------------------------------------------------------------


async def _save_photo(ctx: HandlerContext, photo: c.PhotoRef | None, visit_id: int | None) -> int | None:
    if photo is None:
        return None
    return stored_id(await ctx.store.add(Photo(visit_id, photo.platform, photo.file_id, photo.path, "relay", created_at=ctx.now)))


async def _new_thread(ctx: HandlerContext, cmd: c.RelayToPeople) -> RelayThread:
    """Addressed once, when it opens: the visit in question's technician, or the dispatchers of the job's region."""
    chat, topic = cmd.chat, Topic(cmd.topic)
    job: Job | None = None
    visit: Visit | None = None
    if cmd.origin == Origin.CUSTOMER.value:
        jobs = await ctx.store.latest_jobs_of_customer(cmd.origin_id, RECENT_JOBS)
        visit = visit_in_question(await ctx.store.visits_of_jobs(stored_id(j) for j in jobs))
        job = next((j for j in jobs if visit is not None and j.id == visit.job_id), jobs[-1] if jobs else None)
        audience = audience_for(topic, visit)
        region = job.region if job else None
    else:
        technician = await ctx.store.load(Technician, cmd.origin_id)
        under_way = await ctx.store.visits_of_technician(cmd.origin_id, (*ACTIVE, VisitStatus.ON_HOLD))
        visit = next((v for v in under_way if v.state is not VisitStatus.ACCEPTED), under_way[0] if under_way else None)
        job = await ctx.store.get(Job, visit.job_id) if visit else None
        audience = Audience.DISPATCHERS  # a technician's question goes to the shop
        region = job.region if job else (technician.regions[0] if technician.regions else None)
    return await ctx.store.add(RelayThread(
        cmd.origin, cmd.origin_id, chat.platform, chat.bot, chat.chat_id, audience.value, topic.value, region,
        job_id=stored_id(job) if job else None, visit_id=stored_id(visit) if visit else None,
        technician_id=visit.technician_id if visit is not None and audience is Audience.TECHNICIAN else None,
        created_at=ctx.now, updated_at=ctx.now,
    ))


async def relay_to_people(ctx: HandlerContext, cmd: c.RelayToPeople) -> list[ev.Event]:
    """The text joins the writer's thread (the one they answer in, else their open one, else a new one)."""
    chat = cmd.chat
    thread = await ctx.store.get(RelayThread, cmd.thread_id) if cmd.thread_id is not None else None
    if thread is not None and (thread.origin, thread.origin_id) != (cmd.origin, cmd.origin_id):
        raise NotAllowed("relay_not_yours")  # a forged button: nobody writes into someone else's thread
    if thread is None:
        thread = await ThreadStore(ctx.store).open_thread(chat.platform, chat.bot, chat.chat_id)
    if thread is not None and not still_addressed(thread, await ctx.store.get(Visit, thread.visit_id)):
        thread.status = ThreadStatus.CLOSED.value  # its technician no longer has the visit: address the text afresh
        thread = None
    if thread is None:
        thread = await _new_thread(ctx, cmd)
    thread.status, thread.updated_at = ThreadStatus.OPEN.value, ctx.now
    # masked both ways: numbers are exchanged through the shop, never around it
    text = mask_phones_in(clip(cmd.text))
    photo_id = await _save_photo(ctx, cmd.photo, thread.visit_id)
    author = Author.CUSTOMER if cmd.origin == Origin.CUSTOMER.value else Author.TECHNICIAN
    message = await ctx.store.add(RelayMessage(stored_id(thread), author.value, cmd.origin_id, text, photo_id, created_at=ctx.now))
    data = {
        "thread_id": stored_id(thread), "message_id": stored_id(message), "origin": thread.origin, "audience": thread.audience,
        "technician_id": thread.technician_id, "topic": cmd.topic, "text": text, "photo_id": photo_id,
    }
    return [ev.MessageRelayed(thread.job_id or NO_JOB, thread.visit_id, data)]


async def answer_thread(ctx: HandlerContext, cmd: c.AnswerThread) -> list[ev.Event]:
    thread = await ctx.store.get(RelayThread, cmd.thread_id)
    if thread is None:
        raise NotFound("relay_thread_gone")
    if not may_answer(thread, Author(cmd.author), cmd.author_id):
        raise NotAllowed("relay_not_yours")
    text = mask_phones_in(clip(cmd.text))
    photo_id = await _save_photo(ctx, cmd.photo, thread.visit_id)
    message = await ctx.store.add(RelayMessage(stored_id(thread), cmd.author, cmd.author_id, text, photo_id, created_at=ctx.now))
    thread.updated_at = ctx.now
    data = {"thread_id": stored_id(thread), "message_id": stored_id(message), "author": cmd.author, "author_id": cmd.author_id,
            "text": text, "photo_id": photo_id}
    return [ev.ThreadAnswered(thread.job_id or NO_JOB, thread.visit_id, data)]


async def close_threads(ctx: HandlerContext, cmd: c.CloseThreads) -> list[ev.Event]:
    await ThreadStore(ctx.store).close_threads(cmd.platform, cmd.bot, cmd.chat_id)
    return []


HANDLERS: list[tuple[type[c.Command], Handler]] = [
    handles(c.RelayToPeople, relay_to_people),
    handles(c.AnswerThread, answer_thread),
    handles(c.CloseThreads, close_threads),
]


# --- reactions ----------------------------------------------------------------------------------------


def _answer_button(thread_id: int) -> Button:
    return Button(t("relay.btn_answer"), encode(a.AnswerInThread(thread_id)))


async def _album(ctx: HandlerContext, photo_id: int | None) -> tuple[AlbumPhoto, ...]:
    photo = await ctx.store.get(Photo, photo_id)
    return (AlbumPhoto(stored_id(photo), photo.path),) if photo else ()


async def _about(ctx: HandlerContext, thread: RelayThread) -> Text:
    """What the thread is about, for the people reading it: the visit, else the order, else nothing in particular."""
    if thread.visit_id is not None:
        visit = await ctx.store.load(Visit, thread.visit_id)
        return t("relay.about_visit", visit=thread.visit_id, kind=kind_label(visit.kind))
    if thread.job_id is not None:
        return t("relay.about_order", order=thread.job_id)
    return t("relay.about_nothing")


async def forward_to_people(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The writer's text (and photo) to the thread's audience, with Reply; groups see the customer's name masked."""
    thread = await ctx.store.load(RelayThread, event.data["thread_id"])
    thread_id = stored_id(thread)
    album = await _album(ctx, event.data.get("photo_id"))
    message = raw(event.data["text"] or "📷")
    about = await _about(ctx, thread)
    keyboard = buttons([_answer_button(thread_id)])
    if thread.audience == Audience.TECHNICIAN.value:
        customer = await ctx.store.load(Customer, thread.origin_id)
        text = t("relay.to_technician", customer=raw(customer.name), about=about, text=message)
        to_technician = [Outbound(text, keyboard, to=ChatRef(chat.platform, chat.bot, chat.chat_id), language=chat.language,
                                  album=album, purpose=Purpose.STATUS)
                         for chat in await ctx.store.bindings_of("technician", thread.technician_id or 0)]
        if to_technician:
            return to_technician
        # the technician has no chat with the bot: the dispatchers read it instead, and any of them may answer
    if thread.origin == Origin.CUSTOMER.value:
        customer = await ctx.store.load(Customer, thread.origin_id)
        text = t("relay.to_group_from_customer", customer=raw(mask_name(customer.name)), about=about,
                 topic=t(f"relay.topic_{event.data['topic']}"), text=message)
    else:
        technician = await ctx.store.load(Technician, thread.origin_id)
        text = t("relay.to_group_from_technician", technician=raw(technician.name), about=about, text=message)
    region = thread.region or ALL_REGIONS
    out = []
    for group in await ctx.store.groups_for_region(region):
        for chat in await ctx.store.bindings_of("group", stored_id(group)):
            out.append(Outbound(text, keyboard, to=ChatRef(chat.platform, chat.bot, chat.chat_id), language=chat.language,
                                album=album, alert=True, purpose=Purpose.ALERT))
    if not out:
        # no group to answer from: the robots at least carry it to the dispatchers, who answer by phone
        sinks = await ScheduleStore(ctx.store).alert_sinks_for(region)
        if sinks:
            specific = any(s["region"] == region for s in sinks)
            route = route_for(thread.region if specific and thread.region else None)
            out.append(Outbound(text, to=ChatRef(ROBOT_PLATFORM, "alerts", route), album=album, alert=True, purpose=Purpose.ALERT))
    return out


async def deliver_answer(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The answer to the writer's chat, with Answer and Done, in the language that chat reads."""
    thread = await ctx.store.load(RelayThread, event.data["thread_id"])
    message = raw(event.data["text"] or "📷")
    if event.data["author"] == Author.TECHNICIAN.value:
        technician = await ctx.store.load(Technician, event.data["author_id"])
        text = t("relay.answer_from_technician", technician=raw(technician.name), text=message)
    elif thread.origin == Origin.CUSTOMER.value:
        text = t("relay.answer_from_team", text=message)
    else:
        text = t("relay.answer_to_technician", text=message)
    # the writer goes on in this thread (Write), or is done; Reply is the people's button, not theirs
    keyboard = buttons([Button(t("relay.btn_answer"), encode(a.WriteInThread(stored_id(thread)))),
                        Button(t("relay.btn_done"), encode(a.DoneTalking()))])
    language = await ctx.store.conversation_language(thread.platform, thread.bot, thread.chat_id)
    return [Outbound(text, keyboard, to=ChatRef(thread.platform, thread.bot, thread.chat_id), language=language or "en",
                     album=await _album(ctx, event.data.get("photo_id")), purpose=Purpose.STATUS)]
