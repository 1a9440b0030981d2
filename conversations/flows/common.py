"""Pieces every flow shares: language switching, help, identity of the writer, error replies."""

from __future__ import annotations

from conversations.flow import StepInput
from services.messages import Button, Outbound, StepResult, buttons, reply, t
from domain.commands import ChatIdentity, SetLanguage
from domain.model import Language


def identity(inp: StepInput) -> ChatIdentity:
    chat = inp.event.chat
    return ChatIdentity(chat.platform, chat.bot, chat.chat_id, inp.event.user_id, inp.language)


def language_menu(inp: StepInput) -> StepResult:
    keyboard = buttons([Button(t("lang.en"), "lang:en"), Button(t("lang.zh"), "lang:zh")])
    return reply(Outbound(t("lang.choose"), keyboard))


def switch_language(inp: StepInput) -> StepResult:
    code = inp.args[0] if inp.args else ""
    if code not in (Language.EN.value, Language.ZH.value):
        return reply(Outbound(t("hint.stale_button")))
    chosen = identity(inp)
    return reply(
        Outbound(t("lang.switched"), language=code),
        commands=[SetLanguage(chosen, code)],
        language=code,
    )


def hint(key: str, **params: object) -> StepResult:
    return reply(Outbound(t(key, **params)))


def help_for(inp: StepInput, flow_help: str, states: dict) -> StepResult:
    state = states.get(inp.state)
    messages = [Outbound(t(flow_help))]
    if state is not None:
        messages.append(Outbound(t(state.hint)))
    return reply(*messages)
