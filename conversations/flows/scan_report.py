"""A QR code scanned by someone who is not its owner's chat (a guest, a neighbour at a shared site, a new owner): nothing
of the owner is shown and the chat is not bound; they may describe a fault, which the dispatchers check with the owner."""

from __future__ import annotations

from dataclasses import dataclass

from conversations.flow import FlowData, State, Step, StepInput, reply
from conversations.flows.common import hint, identity
from domain import commands as c
from domain.devices import MAX_DESCRIPTION
from services.actions import Action, OwnerCheckStart, ScanReportCancel, encode
from services.device_views import Scan
from services.messages import Button, Outbound, StepResult, buttons, t

REPORT = "scan_report"  # what is wrong, typed; the code is kept in the state's data


@dataclass(frozen=True)
class ScanReport(FlowData):
    token: str


def _back(inp: StepInput) -> str:
    """Where the chat goes after: idle for a customer's chat, new for a chat bound to nobody (as it was)."""
    return "idle" if inp.view.customer_id is not None else "new"


def on_foreign_scan(inp: StepInput, scan: Scan) -> StepResult:
    """The answer to a scan from a chat that is not the owner's: the owner's record stays private, a fault may be told."""
    not_now = [Button(t("device.btn.not_now"), encode(ScanReportCancel()))]
    # a chat bound to nobody may be the owner's new one: they prove it with the number on file (flows.owner_check)
    mine = [Button(t("device.btn.mine"), encode(OwnerCheckStart()))] if inp.view.customer_id is None else []
    keyboard = buttons(mine, not_now)
    key = "device.foreign_scan_site" if scan.site else "device.foreign_scan"
    return reply(Outbound(t(key, max=MAX_DESCRIPTION), keyboard), state=REPORT, data=ScanReport(inp.event.payload.strip()))


def on_report_text(inp: StepInput) -> StepResult:
    data = inp.data if isinstance(inp.data, ScanReport) else None
    text = inp.event.text.strip()
    if data is None:
        return hint("hint.stale_button")
    if not text:
        return hint("device.foreign_hint")
    if len(text) > MAX_DESCRIPTION:
        return hint("repair.description_too_long", max=MAX_DESCRIPTION)
    command = c.ReportFaultOnCode(data.token, identity(inp), inp.event.user_name or "", text)
    return reply(Outbound(t("device.foreign_sent")), commands=[command], state=_back(inp))


def on_cancel(inp: StepInput, cancel: ScanReportCancel) -> StepResult:
    return reply(Outbound(t("device.foreign_cancelled")), state=_back(inp))


def states(mine: Step | None = None) -> dict[str, State]:
    """The report's state, for the customer flow's table (any chat may be in it: no customer guard); ``mine``: the step
    of "it is mine" (flows.owner_check), which imports this module."""
    steps: dict[type[Action], Step] = {ScanReportCancel: Step(on_cancel, leads_to=("idle", "new"))}
    if mine is not None:
        steps[OwnerCheckStart] = mine
    return {
        REPORT: State(hint="device.foreign_hint", data=ScanReport, text=Step(on_report_text, leads_to=("idle", "new")), buttons=steps),
    }
