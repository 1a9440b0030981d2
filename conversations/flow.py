"""The shape of a flow: its whole state graph in one table — each state's steps, who may take them, where they lead."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import TypeAdapter, ValidationError

from services.actions import Action, decode, kind_of
from domain.policy import ServicePolicy
from services.messages import Inbound, InboundKind, Outbound, StepResult, t
from storage.repository import Store


@dataclass(frozen=True)
class FlowData:
    """What a state remembers between steps, stored in the conversation row as a JSON object with its version.

    Rows written before data had versions hold the version-1 shape, so a missing version reads as 1. A later
    shape raises ``VERSION`` and reads older rows in ``from_json``, so conversations open at a deploy go on.
    """

    VERSION: ClassVar[int] = 1

    def to_json(self) -> dict[str, Any]:
        return {**_adapter(type(self)).dump_python(self, mode="json"), "version": self.VERSION}

    @classmethod
    def from_json(cls, stored: object) -> Self | None:
        """The data, or None when the row holds what this shape cannot read (a newer version, a damaged row)."""
        if not isinstance(stored, dict) or stored.get("version", 1) != cls.VERSION:
            return None
        try:
            data: Self = _adapter(cls).validate_python(stored)
        except ValidationError:
            return None
        return data


_ADAPTERS: dict[type[FlowData], TypeAdapter[Any]] = {}


def _adapter(kind: type[FlowData]) -> TypeAdapter[Any]:
    """The pydantic reader and writer of a shape, built once: the row is the edge where data is checked."""
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


@dataclass(frozen=True)
class StepInput:
    event: Inbound
    state: str
    # as the engine reads it, the stored JSON object; as a step sees it, its state's FlowData (None: the state keeps none)
    data: Any
    view: Any
    now: datetime
    language: str
    policy: ServicePolicy
    # how many buttons the chat's channel shows under one message (bots/channels.py), for a step that pages a list
    # to fit; None: the channel sets no limit a step need mind
    max_buttons: int | None = None


Handler = Callable[[StepInput], StepResult]


def reply(
    *messages: Outbound,
    commands: tuple[Any, ...] | list[Any] = (),
    state: str | None = None,
    data: FlowData | None = None,
    language: str | None = None,
) -> StepResult:
    """What a step decided. Moving to a state stores that state's data (none given: none kept); data alone
    replaces the current state's."""
    stored = data.to_json() if data is not None else ({} if state is not None else None)
    return StepResult(tuple(messages), tuple(commands), None if state is None else str(state), stored, language)


@dataclass(frozen=True)
class Guard:
    """Who may take a step, declared once per flow: the test, and the answer everyone else gets."""

    name: str  # who passes, as the flow diagrams say it: "customers"
    allows: Callable[[StepInput], bool]
    refusal: Handler


@dataclass(frozen=True)
class Step:
    """One entry of a flow's table: the pure function, who may run it, and every state it may lead to.

    ``run`` takes the step's input, and for a button the decoded action too.
    """

    run: Callable[..., StepResult]
    leads_to: tuple[str, ...] = ()
    requires: Guard | None = None


class UndeclaredTransition(RuntimeError):
    """A step moved the conversation to a state its table entry does not name: a bug in the flow."""


@dataclass(frozen=True)
class State:
    """One state: the inputs it takes, the buttons that mean something only here, and the hint for anything else."""

    hint: str
    data: type[FlowData] | None = None  # what the state remembers between steps
    text: Step | None = None
    photo: Step | None = None
    location: Step | None = None
    contact: Step | None = None
    other: Step | None = None  # stickers, voice, files: anything the platform sends we do not use
    voice: Step | None = None  # a voice note, fetched and checked like a photo (``wants_photo`` fetches both)
    buttons: dict[type[Action], Step] = field(default_factory=dict)
    wants_photo: bool = False  # the photo handler takes it as evidence: only then is a photo downloaded
    # an explicit end: nothing is expected here, so no input of its own (tests/integration/test_no_dead_end_cards.py)
    end: bool = False

    def steps(self) -> dict[str, Step]:
        """Its own steps by the input that triggers them ("text", "photo", … or the button's action)."""
        inputs = {"text": self.text, "photo": self.photo, "location": self.location, "contact": self.contact, "other": self.other,
                  "voice": self.voice}
        own = {name: step for name, step in inputs.items() if step is not None}
        return own | {kind.__name__: step for kind, step in self.buttons.items()}

    @property
    def leads_to(self) -> tuple[str, ...]:
        """The states its own steps may lead to; steps valid in every state are the flow's (``FlowSpec.anywhere``)."""
        return tuple(dict.fromkeys(target for step in self.steps().values() for target in step.leads_to))


def _unhandled(state: State, event: Inbound) -> StepResult:
    if event.kind is InboundKind.LOCATION and event.live:
        return reply()  # live location nobody asked for: nothing to say while they drive
    if event.kind is InboundKind.COMMAND:
        return reply(Outbound(t("hint.unknown_command")), Outbound(t(state.hint)))
    if event.kind is InboundKind.BUTTON:
        return reply(Outbound(t("hint.stale_button")))
    return reply(Outbound(t(state.hint)))


@dataclass(frozen=True)
class FlowSpec:
    name: str
    initial: str
    states: dict[str, State]
    # a bare function is taken as a step anyone may run and that may lead to any state (tests substitute them)
    commands: dict[str, Step | Handler] = field(default_factory=dict)
    buttons: dict[type[Action], Step] = field(default_factory=dict)  # valid in every state
    live_location: Step | None = None  # live updates arrive in any state

    def anywhere(self) -> dict[str, Step]:
        """The steps valid in every state, by their trigger ("/help", or the button's action)."""
        commands = {f"/{name}": self._as_step(entry) for name, entry in self.commands.items()}
        buttons = {kind.__name__: step for kind, step in self.buttons.items()}
        return commands | buttons | ({"live location": self.live_location} if self.live_location else {})

    def entry(self, state: str, event: Inbound) -> Step | None:
        """The step the table names for this event in this state; None: the event gets a hint (or nothing)."""
        here = self.states.get(state) or self.states[self.initial]
        if event.kind is InboundKind.LOCATION and event.live:
            return self.live_location
        if event.kind is InboundKind.COMMAND:
            command = self.commands.get(event.text)
            return self._as_step(command) if command is not None else None
        if event.kind is InboundKind.BUTTON:
            kind = kind_of(event.text)
            return (here.buttons.get(kind) or self.buttons.get(kind)) if kind else None
        return {
            InboundKind.TEXT: here.text,
            InboundKind.PHOTO: here.photo,
            InboundKind.LOCATION: here.location,
            InboundKind.CONTACT: here.contact,
            InboundKind.UNSUPPORTED: here.other,
            InboundKind.VOICE: here.voice or here.other,  # a state that takes no voice note answers it as anything else
        }.get(event.kind)

    def step(self, inp: StepInput) -> StepResult:
        name = inp.state if inp.state in self.states else self.initial
        state = self.states[name]
        data = inp.data if isinstance(inp.data, FlowData) or state.data is None else state.data.from_json(inp.data)
        inp = replace(inp, state=name, data=data if state.data is not None else None)
        event = inp.event
        step = self.entry(name, event)
        if step is None:
            return _unhandled(state, event)
        # who sent it is checked before what was sent: a stranger learns nothing from forged button data
        if step.requires is not None and not step.requires.allows(inp):
            return step.requires.refusal(inp)
        if event.kind is not InboundKind.BUTTON:
            return self._checked(step, inp, step.run(inp))
        action = decode(event.text)
        if action is None:
            return reply(Outbound(t("hint.stale_button")))
        return self._checked(step, inp, step.run(inp, action))

    def _checked(self, step: Step, inp: StepInput, result: StepResult) -> StepResult:
        if result.state is not None and result.state not in step.leads_to:
            name = getattr(step.run, "__name__", repr(step.run))
            raise UndeclaredTransition(f"{self.name}: {name} led {inp.state!r} to {result.state!r}, not one of {step.leads_to}")
        return result

    def _as_step(self, entry: Step | Handler) -> Step:
        return entry if isinstance(entry, Step) else Step(entry, leads_to=tuple(self.states))


Request = TypeVar("Request")


class Flow(Generic[Request]):
    """A flow as the engine sees it: its spec, what its view must hold for an event, and the loader of that view."""

    def __init__(
        self,
        spec: FlowSpec,
        request: Callable[[Inbound, Action | None], Request],
        load: Callable[[Store, Request, ServicePolicy, datetime], Awaitable[Any]],
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.initial = str(spec.initial)
        self._request = request
        self._load = load

    def view_request(self, event: Inbound) -> Request:
        """What the view must hold for this event (pure: which lookups, and slots only for a step that offers them)."""
        return self._request(event, decode(event.text) if event.kind is InboundKind.BUTTON else None)

    async def load_view(self, store: Store, event: Inbound, policy: ServicePolicy, now: datetime) -> Any:
        return await self._load(store, self.view_request(event), policy, now)

    def step(self, inp: StepInput) -> StepResult:
        return self.spec.step(inp)
