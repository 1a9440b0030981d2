"""Warnings that repeat while a dependency is down: logged at most once per interval per key, with a count of the rest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Trouble:
    logged_at: float  # when the last line for this key went out
    held_back: int = 0  # lines not logged since then


class LogThrottle:
    """One line per key every ``interval`` seconds; the next line that goes out says how many were held back.

    ``recovered(key, …)`` ends the trouble: it says so once (only if a line was logged for the key), and the
    next failure is logged at once. ``clock`` is a monotonic time in seconds, injectable for tests.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._troubles: dict[Hashable, _Trouble] = {}

    def log(self, level: int, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log unless a line for ``key`` went out less than ``interval`` seconds ago; True when it was logged."""
        now = self._clock()
        trouble = self._troubles.get(key)
        if trouble is not None and now - trouble.logged_at < self.interval:
            trouble.held_back += 1
            return False
        if trouble is not None and trouble.held_back:
            msg += " (%d more like this in the last %.0f s not logged)"
            args += (trouble.held_back, now - trouble.logged_at)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        self._troubles[key] = _Trouble(logged_at=now)
        return True

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def exception(self, key: Hashable, msg: str, *args: object) -> bool:
        """An error with the traceback of the exception being handled (only on the lines that go out)."""
        return self.log(logging.ERROR, key, msg, *args, exc_info=True)

    def recovered(self, key: Hashable, msg: str, *args: object) -> None:
        """The trouble behind ``key`` is over: log ``msg`` once at INFO, if anything was logged for it."""
        trouble = self._troubles.pop(key, None)
        if trouble is None:
            return
        if trouble.held_back:
            msg += " (%d more failures since the last line not logged)"
            args += (trouble.held_back,)
        self.logger.info(msg, *args)
