"""A device's owner proves who they are when scanning its QR code from a chat bound to nobody: the phone number on file,
shared as their own Telegram contact or typed (a WhatsApp chat's own number is matched at the scan, conversations.flows.repair).
The handler decides and answers (services.owner_check); a match binds the chat and opens the devices' menu."""

from __future__ import annotations

from dataclasses import dataclass

from conversations.flow import FlowData, State, Step, StepInput, reply
from conversations.flows.common import hint, identity, stale
from conversations.flows.scan_report import REPORT, ScanReport
from domain import commands as c
from domain.owner_check import VIA_CONTACT, VIA_TYPED, looks_like_phone
from services.actions import OwnerCheckCancel, OwnerCheckStart, ScanReportCancel, encode
from services.messages import Button, Outbound, StepResult, buttons, t

VERIFY = "owner_check"  # the number on file is awaited; the code is kept in the state's data


@dataclass(frozen=True)
class OwnerCheck(FlowData):
    token: str


def _instead() -> tuple[tuple[Button, ...], ...]:
    return buttons([Button(t("device.btn.report_instead"), encode(OwnerCheckCancel()))])


def on_mine(inp: StepInput, start: OwnerCheckStart) -> StepResult:
    """"It is mine": the number on file, typed, or (Telegram) the sender's own contact with one button."""
    data = inp.data if isinstance(inp.data, ScanReport) else None
    if data is None:
        return stale()
    if inp.view.customer_id is not None:
        return hint("error.device_owner_other_record")  # a customer's chat is never moved to another record by a sticker
    ask = Outbound(t("device.owner_ask"), _instead())
    if inp.event.chat.platform not in inp.policy.contact_platforms:
        return reply(ask, state=VERIFY, data=OwnerCheck(data.token))
    share = Outbound(t("device.owner_share"), request="contact")  # a reply keyboard: a message of its own
    return reply(ask, share, state=VERIFY, data=OwnerCheck(data.token))


def _verified(inp: StepInput) -> bool:
    """The chat is bound now (the number matched): what it writes next is no number to check any more."""
    return inp.view.customer_id is not None


def on_phone_text(inp: StepInput) -> StepResult:
    """A typed number goes to the handler, which alone decides (the answer comes from its events). Text that cannot be a
    number is answered with a hint and counts as no try. Once the chat is bound (the number matched), it is told how to
    go on from its own chat."""
    data = inp.data if isinstance(inp.data, OwnerCheck) else None
    if data is None:
        return stale()
    if _verified(inp):
        return reply(Outbound(t("customer.hint_idle")), state="idle")
    text = inp.event.text.strip()
    if not looks_like_phone(text):
        return reply(Outbound(t("device.owner_phone_format"), _instead()))
    return reply(commands=[c.VerifyDeviceOwner(data.token, identity(inp), text, VIA_TYPED)])


def on_contact(inp: StepInput) -> StepResult:
    """A shared contact proves the number only if it is the sender's own (Telegram says so): one forwarded, or someone
    else's, is refused politely and counts as no try."""
    data = inp.data if isinstance(inp.data, OwnerCheck) else None
    if data is None:
        return stale()
    if _verified(inp):
        return reply(Outbound(t("customer.hint_idle")), state="idle")
    if not inp.event.own_contact or not inp.event.phone:
        return reply(Outbound(t("device.owner_contact_not_own"), _instead()))
    return reply(commands=[c.VerifyDeviceOwner(data.token, identity(inp), inp.event.phone, VIA_CONTACT)])


def on_cancel(inp: StepInput, cancel: OwnerCheckCancel) -> StepResult:
    """Not the owner after all (or no number at hand): back to telling the fault, which the shop checks with the owner."""
    data = inp.data if isinstance(inp.data, OwnerCheck) else None
    if data is None:
        return stale()
    keyboard = buttons([Button(t("device.btn.not_now"), encode(ScanReportCancel()))])
    return reply(Outbound(t("device.owner_cancelled"), keyboard), state=REPORT, data=ScanReport(data.token))


MINE = Step(on_mine, leads_to=(VERIFY,))


def states() -> dict[str, State]:
    """The check's state, for the customer flow's table (a chat bound to nobody is in it: no customer guard)."""
    return {
        VERIFY: State(
            hint="device.owner_hint", data=OwnerCheck,
            text=Step(on_phone_text, leads_to=("idle",)),
            contact=Step(on_contact, leads_to=("idle",)),
            buttons={OwnerCheckCancel: Step(on_cancel, leads_to=(REPORT,))},
        ),
    }
