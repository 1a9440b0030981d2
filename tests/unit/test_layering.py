"""The packages depend on each other one way only, no module imports another in a cycle, and none dodges one inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.sources import parsed

# lower layers never import higher ones: domain <- storage <- services <- conversations <- channels <- composition root
LAYERS = {
    "domain": 0,
    "scheduler.routing": 0,
    "storage": 1,
    "services": 2,
    "conversations": 3,
    "bots": 4,
    "webhooks": 4,
    "scheduler": 4,
    "fieldchat": 5,
}
PACKAGES = ("domain", "storage", "services", "conversations", "bots", "webhooks", "scheduler", "fieldchat")
# the composition root may import what a command needs only when it runs (`fieldchat --help` stays quick), and a
# heavy library only when the settings ask for it (aiogram, seconds to import, only with Telegram bots configured);
# planning imports the solver (OR-Tools, PyVRP) only in the worker process that solves
LAZY_IMPORTS_ALLOWED = ("fieldchat.cli", "fieldchat.access_cli", "fieldchat.qr_cli", "fieldchat.plans_cli", "fieldchat.settlements_cli", "fieldchat.bench", "fieldchat.container", "services.planning")


def layer_of(module: str) -> tuple[str, int] | None:
    for package, layer in sorted(LAYERS.items(), key=lambda item: -len(item[0])):
        if module == package or module.startswith(package + "."):
            return package, layer
    return None


@cache  # the three checks read the same files: parse them once
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # Alembic's scripts are run by Alembic, not imported
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@cache
def imports(path: Path, known: frozenset[str]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import in the file."""
    tree = parsed(path)  # shared with the other checks of the code (tests.support.sources)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module for alias in node.names]
        for name in names:
            if layer_of(name) is not None or name.startswith("tests"):
                found.append((name, node.lineno, id(node) in inside))
    return found


def test_no_package_imports_a_layer_above_it_and_routing_stays_a_pure_leaf():
    known = frozenset(modules())
    wrong = []
    for module, path in modules().items():
        own = layer_of(module)
        for imported, line, _ in imports(path, known):
            target = layer_of(imported)
            where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
            if target is None:
                wrong.append(f"{where} (the test tree)")
            elif own[0] == "scheduler.routing" and target[0] != "scheduler.routing":
                wrong.append(f"{where} (routing is pure: problem in, plan out)")
            elif target[1] > own[1]:
                wrong.append(f"{where} (layer {target[1]} from layer {own[1]})")
    assert wrong == []


def test_no_import_hides_inside_a_function():
    known = frozenset(modules())
    hidden = [
        f"{path.relative_to(ROOT)}:{line} imports {imported} inside a function"
        for module, path in modules().items() if module not in LAZY_IMPORTS_ALLOWED
        for imported, line, in_function in imports(path, known) if in_function
    ]
    assert hidden == []


def test_no_two_modules_import_each_other_even_through_others():
    known = frozenset(modules())
    graph = {module: {name for name, _, _ in imports(path, known) if name in known} for module, path in modules().items()}
    # a package's __init__ importing its own modules is not a cycle worth the name; fieldchat's are all empty anyway
    cycles, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


WEB_PROCESS_PROBE = """
import sys
from fieldchat.container import build
from fieldchat.settings import Settings
from webhooks.app import create_app
create_app(build(Settings(_env_file=None, database_url="sqlite:///{db}", media_dir="{media}")))
print(sorted(name for name in ("ortools", "pyvrp") if name in sys.modules))
"""


@pytest.mark.slow  # a fresh process
def test_a_web_process_never_imports_the_solver(tmp_path):
    """Solving runs in a worker process: OR-Tools and PyVRP (about 30 MiB and 0.3 s) stay out of every web process."""
    code = WEB_PROCESS_PROBE.format(db=tmp_path / "f.db", media=tmp_path / "media")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
