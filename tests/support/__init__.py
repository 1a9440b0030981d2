"""Helpers shared by the test layers: one definition each, imported as ``tests.support.<module>``.

db: migrated test databases (used by conftest.py); harness: the dialogue harness (World, Chat, keys);
setups: the shop set-ups the dialogue tests share (staff, groups, booked visits, replan helpers);
api: the back-office API in process; telegram: a fieldchat wired to the fake Bot API (Shop);
relay: the outbox seen from the tests (queue, drain, rates); fakes: an in-memory unit of work for handlers.
"""

from __future__ import annotations

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: where the product packages live


def free_port() -> int:
    """A port nobody listens on (for a server to take, or to see a connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
