"""Checks photo bytes from any channel before they are stored: real image, bounded size and pixels, no GPS."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

MEGABYTE = 1024 * 1024
REENCODED_QUALITY = 90  # lossy re-encodes (WebP, HEIC turned into JPEG): enough to keep the detail evidence needs

# Pillow raises all of these on bytes that look like an image but do not decode as one
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


class PhotoRefused(Exception):
    """The bytes are not a photo we keep; ``code`` names why (too_big, not_image, too_many_pixels)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class CheckedPhoto:
    """A copy safe to store: re-encoded from the decoded pixels, EXIF GPS removed, orientation kept."""

    data: bytes
    extension: str  # ".jpg", ".png" or ".webp": what the data is, never what the sender called it
    width: int
    height: int

    def store(self, directory: Path, name: str) -> Path:
        """Write it as ``directory/name`` plus its extension, whole or not at all (a crash leaves only a ``.part``)."""
        target = directory / f"{name}{self.extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(self.data)
        partial.replace(target)
        return target


@dataclass(frozen=True)
class PhotoLimits:
    """What a channel accepts: at most ``max_bytes`` and ``max_pixels``."""

    max_bytes: int = 10 * MEGABYTE  # the defaults of the settings photo_max_mb and photo_max_megapixels
    max_pixels: int = 40_000_000

    @property
    def max_mb(self) -> float:
        return round(self.max_bytes / MEGABYTE, 1)


def sniff(data: bytes) -> str | None:
    """The image format the magic numbers say, as Pillow names it; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


@cache
def _heif_opener() -> None:
    # registered on first use, not at import: importing this module changes nothing global
    from pillow_heif import register_heif_opener

    register_heif_opener()


def check_photo(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedPhoto:
    """A stored-safe copy of ``data``, or PhotoRefused. The pixel count is read from the header before decoding."""
    if len(data) > max_bytes:
        raise PhotoRefused("too_big")
    kind = sniff(data)
    if kind is None:
        raise PhotoRefused("not_image")
    if kind == "HEIF":
        _heif_opener()
    with warnings.catch_warnings():
        # our own bound below is the one that counts; Pillow's bomb warning would only be noise
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[kind])
        except Image.DecompressionBombError:
            raise PhotoRefused("too_many_pixels") from None
        except _DECODE_ERRORS:
            raise PhotoRefused("not_image") from None
        with image:
            width, height = image.size
            if width < 1 or height < 1:
                raise PhotoRefused("not_image")
            if width * height > max_pixels:
                raise PhotoRefused("too_many_pixels")
            try:
                image.load()
                return CheckedPhoto(*_reencode(image, kind), width, height)
            except _DECODE_ERRORS:
                raise PhotoRefused("not_image") from None


def _exif_without_gps(image: Image.Image) -> bytes:
    try:
        exif = image.getexif()
        exif.pop(ExifTags.IFD.GPSInfo, None)
        return exif.tobytes() if len(exif) else b""
    except (*_DECODE_ERRORS, KeyError, struct.error):
        return b""  # a broken EXIF block costs the photo its metadata, not its place as evidence


def _reencode(image: Image.Image, kind: str) -> tuple[bytes, str]:
    """Only the pixels, the orientation and the colour profile survive: no GPS, XMP, comments or trailing bytes."""
    exif = _exif_without_gps(image)
    icc = image.info.get("icc_profile")
    out = io.BytesIO()
    if kind == "JPEG":
        # "keep" reuses the original quantisation tables, so the copy loses next to nothing
        image.save(out, "JPEG", quality="keep", exif=exif, icc_profile=icc, comment=b"")
        return out.getvalue(), ".jpg"
    if kind == "PNG":
        image.save(out, "PNG", exif=exif, icc_profile=icc)
        return out.getvalue(), ".png"
    if kind == "WEBP":
        image.save(out, "WEBP", quality=REENCODED_QUALITY, exif=exif, icc_profile=icc)
        return out.getvalue(), ".webp"
    # HEIF: chat clients and browsers cannot show it, so it becomes a JPEG
    rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
    rgb.save(out, "JPEG", quality=REENCODED_QUALITY, exif=exif, icc_profile=icc)
    return out.getvalue(), ".jpg"
