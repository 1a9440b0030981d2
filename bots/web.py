"""The web console's photo uploads: held in memory for the update that carries them, stored only if the flow takes one."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from pathlib import Path

from bots.photos import PhotoLimits, PhotoRefused, check_photo
from services.messages import Inbound

PLATFORM = "web"


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
        target = self.media_dir / f"{hashlib.sha256(checked.data).hexdigest()[:32]}{checked.extension}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(checked.data)
            partial.replace(target)
        return replace(event, file_path=str(target))
