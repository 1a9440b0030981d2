"""The `fieldchat` command in this process: its environment set for one test, and the logging it configures put back."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager


@contextmanager
def cli_environment(monkeypatch, tmp_path, **env: str):
    """FIELDCHAT_* settings from ``env`` only and no .env file (the working directory is ``tmp_path``); the root logger's
    handlers and level as they were afterwards, since the command sets up its own."""
    for key in [k for k in os.environ if k.startswith("FIELDCHAT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
