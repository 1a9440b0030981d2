"""The product's source files read and parsed once per test process, for the tests that check the code itself
(tests/unit/test_layering.py: imports and layers; tests/unit/test_channels.py: platform names). Parsing every module
is most of those tests' time, and each parsed the same files again. The trees are shared: read them, never change them.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path


@cache
def source(path: Path) -> str:
    return path.read_text()


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(source(path), str(path))
