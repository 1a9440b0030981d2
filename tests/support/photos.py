"""Test photos made with Pillow: phone photos carrying a GPS position (EXIF and XMP), and images that only claim a size."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image

from bots.photos import CheckedPhoto

MB = 1024 * 1024
SHANGHAI_HARBOUR = ((31.0, 13.0, 49.0), (121.0, 28.0, 25.0))
RIGHT_SIDE_UP_AFTER_90_CW = 6  # EXIF orientation: the viewer rotates the pixels 90° clockwise


def _exif_with_gps(orientation: int = RIGHT_SIDE_UP_AFTER_90_CW) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Acme Phone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", SHANGHAI_HARBOUR[0]
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", SHANGHAI_HARBOUR[1]
    return exif


def photo_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), **save) -> bytes:
    image = Image.new("RGB", size, (180, 40, 40))
    image.paste((20, 20, 200), (0, 0, size[0] // 4, size[1] // 4))  # a corner, so rotation would show
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="31,13.8N" exif:GPSLongitude="121,28.4E"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def jpeg_with_gps(size: tuple[int, int] = (64, 48)) -> bytes:
    """A phone photo: the position in its EXIF and again in XMP, and a comment."""
    return photo_bytes("JPEG", size, exif=_exif_with_gps(), xmp=XMP_WITH_GPS, quality=80, comment=b"taken at home")


def reopened(checked: CheckedPhoto) -> Image.Image:
    return Image.open(io.BytesIO(checked.data))


def gps_of(image: Image.Image) -> dict:
    return dict(image.getexif().get_ifd(ExifTags.IFD.GPSInfo))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height pixels; the pixels themselves are never there."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
