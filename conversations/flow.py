"""The shape of a flow: its whole state graph in one table, plus commands and buttons valid in any state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable

from services.messages import Inbound, InboundKind, Outbound, StepResult, reply, t
from domain.model import MAX_ID
from domain.policy import ServicePolicy


MAX_TIMESTAMP = 2**33  # seconds since 1970: beyond the year 2200, so no real slot is ever cut off


def button_int(data: str, index: int, *, low: int = 0, high: int = MAX_ID) -> int | None:
    """Field ``index`` of ``prefix:a:b…`` button data as a number, or None when missing, malformed or outside [low, high].

    Button data comes from the client and can be forged: an id beyond the database's integer
    range must read as a stale button, not reach a query that fails on it.
    """
    parts = data.split(":")
    if not 0 <= index < len(parts):
        return None
    text = parts[index]
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if low <= value <= high else None


@dataclass(frozen=True)
class StepInput:
    event: Inbound
    state: str
    data: dict
    view: Any
    now: datetime
    language: str
    policy: ServicePolicy

    @property
    def args(self) -> list[str]:
        """Button data after its prefix, e.g. ``acc:12`` -> ``["12"]``."""
        return self.event.text.split(":")[1:]

    def int_arg(self, index: int = 0, *, low: int = 0, high: int = MAX_ID) -> int | None:
        """A number from the button data after its prefix; see ``button_int``."""
        return button_int(self.event.text, index + 1, low=low, high=high)


Handler = Callable[[StepInput], StepResult]


@dataclass(frozen=True)
class State:
    """One state: what it accepts, and the hint shown for anything else."""

    hint: str
    text: Handler | None = None
    photo: Handler | None = None
    location: Handler | None = None
    contact: Handler | None = None
    other: Handler | None = None  # stickers, voice, files: anything the platform sends we do not use
    wants_photo: bool = False  # the photo handler takes it as evidence: only then is a photo downloaded
    leads_to: tuple[str, ...] = ()  # documents the graph; checked by tests against what handlers return


@dataclass(frozen=True)
class FlowSpec:
    name: str
    initial: str
    states: dict[str, State]
    commands: dict[str, Handler] = field(default_factory=dict)
    buttons: dict[str, Handler] = field(default_factory=dict)
    live_location: Handler | None = None  # live updates arrive in any state and never change it

    def step(self, inp: StepInput) -> StepResult:
        event = inp.event
        state = self.states.get(inp.state) or self.states[self.initial]
        if event.kind is InboundKind.LOCATION and event.live:
            return self.live_location(inp) if self.live_location else reply()
        if event.kind is InboundKind.COMMAND:
            handler = self.commands.get(event.text)
            return handler(inp) if handler else reply(Outbound(t("hint.unknown_command")), Outbound(t(state.hint)))
        if event.kind is InboundKind.BUTTON:
            handler = self.buttons.get(event.text.split(":", 1)[0])
            return handler(inp) if handler else reply(Outbound(t("hint.stale_button")))
        handler = {
            InboundKind.TEXT: state.text,
            InboundKind.PHOTO: state.photo,
            InboundKind.LOCATION: state.location,
            InboundKind.CONTACT: state.contact,
            InboundKind.UNSUPPORTED: state.other,
        }.get(event.kind)
        if handler is None:
            return reply(Outbound(t(state.hint)))
        return handler(inp)


ViewLoader = Callable[..., Awaitable[Any]]


class Flow:
    """A flow as the engine sees it: its spec, and the loader of the read-only view its steps get."""

    def __init__(self, spec: FlowSpec, load_view: ViewLoader) -> None:
        self.spec = spec
        self.name = spec.name
        self.initial = spec.initial
        self._load_view = load_view

    async def load_view(self, store, event: Inbound, data: dict, policy: ServicePolicy, now: datetime) -> Any:
        return await self._load_view(store, event, data, policy, now)

    def step(self, inp: StepInput) -> StepResult:
        return self.spec.step(inp)
