"""The web console as a channel: its links, and its photo uploads, held in memory for the update that carries them."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from pathlib import Path

from bots.channels import WEB, WEB_CAPABILITIES, Capabilities
from bots.photos import PhotoLimits, PhotoRefused, check_photo
from services.messages import Inbound

PLATFORM = WEB


class WebUploads:
    """The engine asks for an update's photo only when the chat's state expects one; until then the
    bytes wait here, and whatever nobody asked for is dropped when the request ends."""

    def __init__(self, media_dir: Path, limits: PhotoLimits) -> None:
        self.media_dir = media_dir / PLATFORM
        self.limits = limits
        self._staged: dict[str, bytes] = {}

    def stage(self, data: bytes) -> str:
        """Hold an upload and return the file id its inbound event carries."""
        file_id = f"web-{secrets.token_hex(12)}"
        self._staged[file_id] = data
        return file_id

    def discard(self, file_id: str) -> None:
        self._staged.pop(file_id, None)

    async def fetch(self, event: Inbound) -> Inbound:
        """The event with the checked copy stored, or with why it was refused (the step answers that)."""
        data = self._staged.pop(event.file_id or "", None)
        if data is None:
            # the request that carried it is over (the update is being retried later): ask for it again
            return replace(event, file_error="unavailable")
        try:
            checked = check_photo(data, max_bytes=self.limits.max_bytes, max_pixels=self.limits.max_pixels)
        except PhotoRefused as refused:
            return replace(event, file_error=refused.code, file_limit_mb=self.limits.max_mb)
        name = hashlib.sha256(checked.data).hexdigest()[:32]
        target = self.media_dir / f"{name}{checked.extension}"
        return replace(event, file_path=str(target if target.exists() else checked.store(self.media_dir, name)))


class WebConsole:
    """The demo console's channel. It is pulled: the page fetches its messages (webhooks/webchat.py parses what it
    posts), so there is nothing to send; photos come through ``uploads``."""

    capabilities: Capabilities = WEB_CAPABILITIES

    def __init__(self, uploads: WebUploads, *, enabled: bool, public_url: str | None = None) -> None:
        self.uploads = uploads
        self.enabled = enabled
        self.public_url = public_url

    async def fetch(self, event: Inbound) -> Inbound:
        return await self.uploads.fetch(event)

    def deep_link(self, role: str, token: str) -> str | None:
        """``<base>/chat#<pane>=<token>`` while the console is served; relative to this service when its public URL is not
        set. The token goes after "#", which browsers keep to themselves."""
        if not self.enabled:
            return None
        base = f"{self.public_url.rstrip('/')}/" if self.public_url else ""
        return f"{base}chat#{role}={token}"
