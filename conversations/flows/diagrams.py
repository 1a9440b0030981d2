"""Each flow's state graph as a Mermaid diagram and a table of its steps, written to docs/flows/ by `fieldchat flows`."""

from __future__ import annotations

from pathlib import Path

from conversations.flow import FlowSpec, Step
from conversations.flows import ALL_FLOWS

ANYWHERE = "anywhere"  # the diagram's node for steps valid in every state


def _targets(steps: dict[str, Step]) -> dict[str, list[str]]:
    """Each state reached, with the triggers that lead there, in the table's order."""
    reached: dict[str, list[str]] = {}
    for trigger, step in steps.items():
        for target in step.leads_to:
            reached.setdefault(str(target), []).append(trigger)
    return reached


def mermaid(spec: FlowSpec) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {spec.initial}"]
    for name, state in spec.states.items():
        for target, triggers in _targets(state.steps()).items():
            lines.append(f"    {name} --> {target}: {', '.join(triggers)}")
    anywhere = _targets(spec.anywhere())
    if anywhere:
        lines.append(f'    state "any state" as {ANYWHERE}')
        for target, triggers in anywhere.items():
            lines.append(f"    {ANYWHERE} --> {target}: {', '.join(triggers)}")
    return "\n".join(lines)


def _row(where: str, trigger: str, step: Step) -> str:
    only_for = step.requires.name if step.requires else ""
    leads_to = ", ".join(str(target) for target in step.leads_to) or "(stays)"
    return f"| {where} | {trigger} | {only_for} | {leads_to} |"


def document(spec: FlowSpec) -> str:
    """The Markdown page of one flow."""
    rows = [_row("any state", trigger, step) for trigger, step in spec.anywhere().items()]
    for name, state in spec.states.items():
        rows.extend(_row(str(name), trigger, step) for trigger, step in state.steps().items())
    return "\n".join([
        f"# The {spec.name} flow",
        "",
        f"Generated from `conversations/flows/{spec.name}.py` by `fieldchat flows`; do not edit by hand (a test checks it is current).",
        "",
        "```mermaid",
        mermaid(spec),
        "```",
        "",
        "| in state | on | only for | leads to |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def documents() -> dict[str, str]:
    """File name -> content, for every flow."""
    return {f"{flow.name}.md": document(flow.spec) for flow in ALL_FLOWS}


def stale(directory: Path) -> list[Path]:
    """The pages in the directory that are missing or differ from what the flows say now."""
    paths = {directory / name: content for name, content in documents().items()}
    return [path for path, content in paths.items() if not path.is_file() or path.read_text(encoding="utf-8") != content]


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in documents().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
