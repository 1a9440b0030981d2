"""Pieces every flow shares: language switching, help, identity of the writer, the visit a state is about, hints."""

from __future__ import annotations

from dataclasses import dataclass

from services.actions import ChooseLanguage, encode
from conversations.flow import FlowData, State, StepInput, reply
from domain.commands import ChatIdentity, SetLanguage
from domain.model import Language
from services.messages import Button, Outbound, StepResult, buttons, joined, t


@dataclass(frozen=True)
class VisitData(FlowData):
    """The visit a state is about (stored as ``{"visit": id}``)."""

    visit: int


def identity(inp: StepInput) -> ChatIdentity:
    chat = inp.event.chat
    return ChatIdentity(chat.platform, chat.bot, chat.chat_id, inp.event.user_id, inp.language)


def language_menu(inp: StepInput) -> StepResult:
    keyboard = buttons([Button(t(f"lang.{code.value}"), encode(ChooseLanguage(code))) for code in Language])
    return reply(Outbound(t("lang.choose"), keyboard))


def switch_language(inp: StepInput, choice: ChooseLanguage) -> StepResult:
    code = choice.language.value
    return reply(
        Outbound(t("lang.switched"), language=code),
        commands=[SetLanguage(identity(inp), code)],
        language=code,
    )


def hint(key: str, **params: object) -> StepResult:
    return reply(Outbound(t(key, **params)))


def stale() -> StepResult:
    return hint("hint.stale_button")


def help_for(inp: StepInput, flow_help: str, states: dict[str, State]) -> StepResult:
    state = states.get(inp.state)
    help_text = Outbound(t(flow_help))
    # one message: each message to a chat waits its turn at the chat's send rate
    return reply(joined(help_text, Outbound(t(state.hint))) if state is not None else help_text)
