"""Log set-up: one handler whose formatter takes secrets out of every finished line, tracebacks included."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

MASK = "***"

# Shapes of secrets worth hiding even when nobody told us about them: a Telegram bot token (also
# inside Bot API URLs: /bot<TOKEN>/method, /file/bot<TOKEN>/path), link tokens and robot keys in
# query strings and fragments, Feishu and Slack robot URLs whose path is the credential.
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{20,}"), MASK),
    (
        re.compile(
            r"([?&#;](?:customer|driver|installer|dispatcher|group|start|startgroup|token|access_token|key|sign|secret)=)[^&\s\"'#]+",
            re.IGNORECASE,
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(/open-apis/bot/v2/hook/)[^\s\"'/?]+"), r"\1" + MASK),
    (re.compile(r"(hooks\.slack\.com/services/)[^\s\"'?]+"), r"\1" + MASK),
    # a robot alert's action link (services/robot_links.PATH) acts once for whoever holds it: the access log must not
    (re.compile(r"(/robot/a/)[^\s\"'/?]+"), r"\1" + MASK),
    # an integration's API token (services/accounts.TOKEN_PREFIX), wherever it turns up
    (re.compile(r"fct_[A-Za-z0-9_-]{20,}"), MASK),
)

SecretSource = Callable[[], Iterable[str]]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets (longest first, so a URL goes before the key inside it) and known shapes masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record: message, arguments, exception text and stack.

    A filter that rewrites ``record.msg`` misses the traceback, where a failed download's URL
    (``…/file/bot<TOKEN>/…``) ends up; the formatter sees the finished line.
    """

    def __init__(self, fmt: str, sources: Iterable[SecretSource] = ()) -> None:
        super().__init__(fmt)
        self.sources = list(sources)

    def format(self, record: logging.LogRecord) -> str:
        secrets: list[str] = []
        for source in self.sources:
            secrets.extend(source())
        return redact(super().format(record), secrets)


def configure(level: str, secrets: Iterable[str], sources: Iterable[SecretSource] = (), stream=None) -> logging.Handler:
    """Send every logger (uvicorn's access log too) to one redacting handler on stderr (or ``stream``)."""
    fixed = [s for s in secrets if s]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", [lambda: fixed, *sources]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn runs with log_config=None, so its loggers reach the root handler unless set up elsewhere
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # aiosqlite's debug lines carry every statement's parameters: chat texts, a customer's completion code on its way
    # out, link tokens. Even at DEBUG they stay out of the log (SQLAlchemy's own echo is off for the same reason)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    return handler
