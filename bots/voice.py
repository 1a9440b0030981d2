"""Checks voice-note bytes from any channel before they are stored: a known audio container, bounded size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bots.photos import PhotoRefused

# what messengers send as voice notes and audio: Telegram and WhatsApp voice notes are OGG/Opus, iPhones send M4A
_M4A_BRANDS = (b"M4A ", b"M4B ", b"isom", b"mp42", b"mp41", b"3gp4", b"3gp5")


@dataclass(frozen=True)
class CheckedVoice:
    data: bytes
    extension: str  # what the bytes are (".ogg", ".m4a", ".mp3", ".amr", ".wav"), never what the sender called them

    def store(self, directory: Path, name: str) -> Path:
        """Write it as ``directory/name`` plus its extension, whole or not at all (a crash leaves only a ``.part``)."""
        target = directory / f"{name}{self.extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(self.data)
        partial.replace(target)
        return target


def sniff_audio(data: bytes) -> str | None:
    """The audio container the bytes start with, or None."""
    if data.startswith(b"OggS"):
        return ".ogg"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _M4A_BRANDS:
        return ".m4a"
    if data.startswith(b"ID3") or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return ".mp3"
    if data.startswith(b"#!AMR"):
        return ".amr"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return ".wav"
    return None


def check_voice(data: bytes, *, max_bytes: int) -> CheckedVoice:
    """The bytes to store, or PhotoRefused (too_big, not_audio): the same refusal a step answers for a photo."""
    if len(data) > max_bytes:
        raise PhotoRefused("too_big")
    extension = sniff_audio(data)
    if extension is None:
        raise PhotoRefused("not_audio")
    return CheckedVoice(data, extension)
