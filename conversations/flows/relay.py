"""The relay thread's steps, shared by the flows: writers talk to people through the bot, and people answer them the same way.

A writer (a customer, or a technician asking the shop) is in ``RELAY`` while their texts and photos go to people;
someone answering (the visit's technician, or a dispatcher in a group) is in ``ANSWER`` until their next text goes back.
Each flow puts these states and buttons into its own table (conversations/flows/customer.py, technician.py,
dispatcher.py); the rules of who gets a thread and who may answer are in domain/relay.py, the writes in
services/relay_threads.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from conversations.flow import FlowData, Guard, State, Step, StepInput, reply
from conversations.flows.common import identity
from domain import commands as c
from domain.relay import Author, Origin, Topic
from services.actions import Action, AnswerInThread, DoneTalking, WriteInThread, encode
from services.messages import Button, InboundKind, Outbound, StepResult, buttons, t

RELAY = "relay"  # a writer's texts and photos go to people
ANSWER = "relay_answer"  # someone's next text (or photo) goes back to the writer


@dataclass(frozen=True)
class ThreadData(FlowData):
    """The thread a writer goes on in (None: their open one, or a new one)."""

    thread: int | None = None


@dataclass(frozen=True)
class AnswerData(FlowData):
    """The thread being answered and who pressed Answer: in a group, only their next text is the answer."""

    thread: int
    user: str


def _done_button() -> Button:
    return Button(t("relay.btn_done"), encode(DoneTalking()))


def _photo(inp: StepInput) -> c.PhotoRef | None:
    event = inp.event
    if event.kind is not InboundKind.PHOTO or not event.file_id or not event.file_path:
        return None
    return c.PhotoRef(event.chat.platform, event.file_id, event.file_path)


def _refused(inp: StepInput, talking: bool = True) -> StepResult | None:
    """A photo that was not kept is said so (the state stays, another can be sent); None when there is nothing to refuse.
    ``talking``: the writer is in a thread, so Done is offered with it."""
    event = inp.event
    if event.kind is not InboundKind.PHOTO or event.file_path:
        return None
    refusals = {
        "too_big": t("photo.too_big", max_mb=f"{event.file_limit_mb or 0:g}"),
        "not_image": t("photo.not_image"),
        "too_many_pixels": t("photo.too_many_pixels"),
    }
    keyboard = buttons([_done_button()]) if talking else ()
    return reply(Outbound(refusals.get(event.file_error or "", t("relay.photo_failed")), keyboard))


# --- writers ------------------------------------------------------------------------------------------

WriterId = Callable[[StepInput], int | None]


def to_people(inp: StepInput, origin: Origin, writer_id: int, topic: Topic, text: str) -> StepResult:
    """The first text of a conversation with people (what no step understood, "a person please", a complaint)."""
    command = c.RelayToPeople(origin.value, writer_id, identity(inp), topic.value, text)
    keyboard = buttons([_done_button()])
    return reply(Outbound(t(f"relay.sent_{origin.value}"), keyboard), commands=[command], state=RELAY, data=ThreadData())


def photo_to_people(inp: StepInput, origin: Origin, writer_id: int) -> StepResult:
    """A photo sent while no step asks for one: it opens (or joins) a conversation with people as a text nobody
    understood would, its caption with it; one the checks refused is said so and nothing is passed on."""
    refused = _refused(inp, talking=False)
    if refused is not None:
        return refused
    photo = _photo(inp)
    if photo is None:
        return reply(Outbound(t("relay.photo_failed")))
    command = c.RelayToPeople(origin.value, writer_id, identity(inp), Topic.UNKNOWN.value, inp.event.text.strip(), photo)
    keyboard = buttons([_done_button()])
    return reply(Outbound(t(f"relay.sent_{origin.value}"), keyboard), commands=[command], state=RELAY, data=ThreadData())


def _writer_text(origin: Origin, writer: WriterId, idle: str) -> Callable[[StepInput], StepResult]:
    def on_text(inp: StepInput) -> StepResult:
        writer_id = writer(inp)
        if writer_id is None:
            return reply(Outbound(t("relay.not_bound")), state=idle)
        refused = _refused(inp)
        if refused is not None:
            return refused
        data: ThreadData | None = inp.data
        text = inp.event.text.strip()
        photo = _photo(inp)
        if not text and photo is None:
            return reply(Outbound(t("relay.hint"), buttons([_done_button()])))
        command = c.RelayToPeople(origin.value, writer_id, identity(inp), Topic.UNKNOWN.value, text, photo,
                                  data.thread if data else None)
        return reply(Outbound(t("relay.added"), buttons([_done_button()])), commands=[command])

    on_text.__name__ = f"on_{origin.value}_writes"
    return on_text


def writer_state(origin: Origin, writer: WriterId, idle: str) -> State:
    """The writer's state: every text and photo joins the thread, until Done or a command."""
    step = Step(_writer_text(origin, writer, idle), leads_to=(idle,))
    return State(hint="relay.hint", data=ThreadData, text=step, photo=step, wants_photo=True)


def _write_again(writer: WriterId) -> Callable[[StepInput, WriteInThread], StepResult]:
    def on_write_again(inp: StepInput, write: WriteInThread) -> StepResult:
        if writer(inp) is None:
            return reply(Outbound(t("relay.not_bound")))
        return reply(Outbound(t("relay.write_prompt"), buttons([_done_button()])), state=RELAY, data=ThreadData(write.thread_id))

    return on_write_again


def _done(idle: str) -> Callable[[StepInput, DoneTalking], StepResult]:
    def on_done_talking(inp: StepInput, done: DoneTalking) -> StepResult:
        chat = inp.event.chat
        return reply(Outbound(t("relay.done")), commands=[c.CloseThreads(chat.platform, chat.bot, chat.chat_id)], state=idle)

    return on_done_talking


def writer_buttons(writer: WriterId, idle: str) -> dict[type[Action], Step]:
    """Valid in every state of a writer's flow: go on in a thread people answered in, or stop talking."""
    return {
        WriteInThread: Step(_write_again(writer), leads_to=(RELAY,)),
        DoneTalking: Step(_done(idle), leads_to=(idle,)),
    }


# --- people answering -----------------------------------------------------------------------------------

AnswererId = Callable[[StepInput], int | None]


def _answer_prompt(inp: StepInput, answer: AnswerInThread) -> StepResult:
    # a reply request: in a Telegram group with privacy mode the bot sees plain text only when it replies to the bot
    prompt = Outbound(t("relay.answer_prompt", thread=answer.thread_id), request="reply")
    return reply(prompt, state=ANSWER, data=AnswerData(answer.thread_id, inp.event.user_id))


def _answer_text(author: Author, answerer: AnswererId, idle: str) -> Callable[[StepInput], StepResult]:
    def on_answer(inp: StepInput) -> StepResult:
        data: AnswerData | None = inp.data
        if data is None:
            return reply(Outbound(t("hint.stale_button")), state=idle)
        if inp.event.user_id != data.user:
            return reply()  # someone else talking in the group: not the answer
        refused = _refused(inp)
        if refused is not None:
            return refused
        text, photo = inp.event.text.strip(), _photo(inp)
        if not text and photo is None:
            return reply(Outbound(t("relay.answer_prompt", thread=data.thread), request="reply"))
        command = c.AnswerThread(data.thread, author.value, answerer(inp), text, photo)
        return reply(Outbound(t("relay.answer_sent", thread=data.thread)), commands=[command], state=idle)

    on_answer.__name__ = f"on_{author.value}_answers"
    return on_answer


def answer_state(author: Author, answerer: AnswererId, idle: str) -> State:
    """Waiting for the answer of whoever pressed Answer; /cancel (or any other button) leaves it."""
    step = Step(_answer_text(author, answerer, idle), leads_to=(idle,))
    return State(hint="relay.answer_hint", data=AnswerData, text=step, photo=step, wants_photo=True)


def answer_step(requires: Guard | None = None) -> Step:
    """The Answer button under a forwarded message; a flow passes the guard of who may press it (dispatchers in groups)."""
    return Step(_answer_prompt, leads_to=(ANSWER,), requires=requires)
