"""QR codes for device and site stickers: a PNG per code, and A4 sheets of labelled codes as PDF, PNG or a printable page."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

DPI = 150
A4 = (1240, 1754)  # 210 × 297 mm at 150 dpi
COLUMNS, ROWS = 3, 4  # twelve stickers of about 6 × 7 cm per sheet
MARGIN = 60
MAX_LABELS = 480  # forty sheets: a whole building's units, not a way to make the server draw all night
# fonts with Chinese glyphs first (the labels are in the customer's language); DejaVu and Pillow's own font draw Latin only
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
CJK_FONTS = FONT_CANDIDATES[:5]
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]+")


@dataclass(frozen=True)
class Label:
    """One sticker: the link its code opens, and the lines printed under it (product, where, what to do)."""

    link: str
    title: str
    lines: tuple[str, ...] = ()


def qr_image(link: str, *, box: int = 10, border: int = 4) -> Image.Image:
    """The code for a link, black on white; medium error correction survives a scratched sticker."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box, border=border)
    code.add_data(link)
    code.make(fit=True)
    image: Image.Image = code.make_image(fill_color="black", back_color="white").get_image()
    return image.convert("RGB")


@lru_cache(maxsize=1)
def draws_chinese() -> bool:
    """Whether the machine has a font with Chinese glyphs (fonts-noto-cjk, fonts-wqy-microhei …) for PNG and PDF labels."""
    return any(Path(candidate).exists() for candidate in CJK_FONTS)


def drawable(text: str) -> str:
    """The text as the fonts here can draw it: without a Chinese font, Chinese runs are left out rather than drawn as
    empty boxes (the printable page has the browser's fonts and shows them)."""
    if draws_chinese():
        return text
    return " ".join(_CJK.sub(" ", text).replace("·", " ").split())


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> str:
    """The text cut to the width (with an ellipsis), so a long product name never runs into the next sticker."""
    font = _font(size)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _labelled(label: Label, width: int, qr_side: int) -> Image.Image:
    title_size, line_size = max(14, width // 14), max(12, width // 18)
    lines = [line for line in (drawable(label.title), *(drawable(x) for x in label.lines)) if line]
    height = qr_side + 12 + title_size + 6 + (line_size + 6) * max(0, len(lines) - 1) + 8
    tile = Image.new("RGB", (width, height), "white")
    code = qr_image(label.link).resize((qr_side, qr_side), Image.Resampling.NEAREST)
    tile.paste(code, ((width - qr_side) // 2, 0))
    draw = ImageDraw.Draw(tile)
    y = qr_side + 12
    for index, line in enumerate(lines):
        size = title_size if index == 0 else line_size
        text = _fit(draw, line, width - 8, size)
        x = (width - draw.textlength(text, font=_font(size))) / 2
        draw.text((x, y), text, fill="black", font=_font(size))
        y += size + 6
    return tile


def code_png(label: Label, *, side: int = 480) -> bytes:
    """One sticker as PNG: the code and its lines under it."""
    buffer = io.BytesIO()
    _labelled(label, side, side).save(buffer, "PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def sheet_pages(labels: Sequence[Label]) -> list[Image.Image]:
    """A4 pages of stickers, COLUMNS × ROWS each, with light cut lines."""
    if not labels:
        raise ValueError("a sheet needs at least one code")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} codes per sheet")
    cell_w, cell_h = (A4[0] - 2 * MARGIN) // COLUMNS, (A4[1] - 2 * MARGIN) // ROWS
    per_page = COLUMNS * ROWS
    pages = []
    for start in range(0, len(labels), per_page):
        page = Image.new("RGB", A4, "white")
        draw = ImageDraw.Draw(page)
        for index, label in enumerate(labels[start:start + per_page]):
            column, row = index % COLUMNS, index // COLUMNS
            left, top = MARGIN + column * cell_w, MARGIN + row * cell_h
            draw.rectangle((left, top, left + cell_w, top + cell_h), outline=(200, 200, 200))
            tile = _labelled(label, cell_w - 24, min(cell_w - 24, cell_h - 120))
            page.paste(tile, (left + 12, top + 12))
        pages.append(page)
    return pages


def sheet_pdf(labels: Sequence[Label]) -> bytes:
    pages = sheet_pages(labels)
    buffer = io.BytesIO()
    pages[0].save(buffer, "PDF", save_all=True, append_images=pages[1:], resolution=DPI)
    return buffer.getvalue()


def sheet_png(labels: Sequence[Label], page: int = 1) -> bytes:
    """One page of the sheet as PNG (``page`` from 1); ValueError past the last."""
    pages = sheet_pages(labels)
    if not 1 <= page <= len(pages):
        raise ValueError(f"the sheet has {len(pages)} page(s)")
    buffer = io.BytesIO()
    pages[page - 1].save(buffer, "PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def sheet_html(labels: Sequence[Label], *, title: str) -> str:
    """A printable A4 page: each code as an inline image, its lines as text (the browser's fonts draw every language)."""
    if not labels:
        raise ValueError("a sheet needs at least one code")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} codes per sheet")
    cells = []
    for label in labels:
        buffer = io.BytesIO()
        qr_image(label.link, box=6, border=2).save(buffer, "PNG")
        data = base64.b64encode(buffer.getvalue()).decode()
        lines = "".join(f"<div class=line>{html.escape(line)}</div>" for line in label.lines)
        cells.append(f"<div class=cell><img alt='' src='data:image/png;base64,{data}'><div class=title>{html.escape(label.title)}</div>{lines}</div>")
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>"
        "@page{size:A4;margin:10mm}body{margin:0;font-family:sans-serif}"
        ".sheet{display:grid;grid-template-columns:repeat(3,1fr);gap:0}"
        ".cell{box-sizing:border-box;height:69mm;padding:3mm;border:1px dashed #ccc;text-align:center;overflow:hidden;"
        "break-inside:avoid}.cell img{width:42mm;height:42mm;image-rendering:pixelated}"
        ".title{font-weight:bold;font-size:11pt;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
        ".line{font-size:9pt;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
        "</style></head><body><div class=sheet>" + "".join(cells) + "</div></body></html>"
    )
