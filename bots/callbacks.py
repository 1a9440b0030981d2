"""The status-callback channel: posts a callback's stored body to its source's URL, signed with the source's secret."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.base import Park, RetryLater
from domain import callbacks as cb
from domain.clock import Clock
from storage.callbacks import CallbackStore
from storage.repository import Store

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 20  # with the relay's back-off (at most 5 min apart) about an hour of trying before parking
TIMEOUT_SECONDS = 10.0  # well inside the relay's lease, so a slow receiver never has its callback taken over mid-send

class CallbackSender:
    """Sends one callback per call; the relay claims, orders, retries and parks (scheduler/relay.py ``_post``).

    The endpoint is read at each send, so a corrected URL or secret applies to callbacks already queued. The body was
    fixed when the milestone happened (services/callbacks.py); the timestamp and signature are made now, so a retry
    an hour later is not refused as old. Any answer but a 2xx, a timeout or a refused connection is retried.
    """

    posts_payloads = True

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, public_url: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS, timeout: float = TIMEOUT_SECONDS, transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("a callback is attempted at least once before it is parked")
        self.max_attempts = max_attempts
        self._sessions = sessions
        self._clock = clock
        self._public_url = public_url
        self._timeout = timeout
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def post(self, row_id: int, chat_id: str, payload: dict[str, Any]) -> str | None:
        body_data = payload.get("callback")
        if not isinstance(body_data, dict):
            raise Park("the outbox row carries no callback body")
        source = str(body_data.get("order", {}).get("source", ""))
        async with self._sessions() as session:
            endpoint = await CallbackStore(Store(session)).endpoint(source)
        if endpoint is None:
            raise Park(f"source {source!r} has no callback endpoint any more")
        body = cb.encode_body(body_data, self._public_url)
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "fieldchat-callbacks/1",
            cb.TIMESTAMP_HEADER: str(timestamp),
            cb.SIGNATURE_HEADER: cb.signature(endpoint["secret"], timestamp, body),
            cb.EVENT_ID_HEADER: str(body_data.get("id", "")),
            cb.EVENT_TYPE_HEADER: str(body_data.get("type", "")),
        }
        try:
            response = await self._client().post(endpoint["url"], content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RetryLater(f"timeout ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:  # refused, reset, DNS: the text may quote the URL, so only the kind is kept
            raise RetryLater(f"no answer ({type(exc).__name__})") from None
        if 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        raise RetryLater(f"HTTP {response.status_code}", _retry_after(response))

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # no redirects: a receiver that moved gets its URL corrected, the signed body never goes somewhere else
            self._http = httpx.AsyncClient(timeout=self._timeout, transport=self._transport, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _retry_after(response: httpx.Response) -> float | None:
    """A 429's or 503's Retry-After in seconds; None (absent, or given as a date): the relay's back-off decides."""
    value = response.headers.get("retry-after", "").strip()
    if response.status_code in (429, 503) and value.isdigit() and len(value) <= 6:
        return float(value)
    return None
