"""User-facing text from the Babel catalogs (zh, en) and rendering of neutral messages per recipient."""

from __future__ import annotations

import string
from datetime import date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime, format_time
from babel.messages.pofile import read_po

from services.messages import AlbumPhoto, Rendered

LOCALES_DIR = Path(__file__).parent / "locales"
LANGUAGES = ("en", "zh")
_BABEL_LOCALE = {"en": "en_GB", "zh": "zh_Hans_CN"}
_MOMENT_PATTERN = {"en": "EEE d MMM HH:mm", "zh": "M月d日 EEE HH:mm"}
_DAY_PATTERN = {"en": "EEE d MMM", "zh": "M月d日 EEE"}


@lru_cache(maxsize=None)
def catalog(language: str) -> dict[str, str]:
    """Message key -> translation, read straight from the .po catalog (no compiled .mo to ship)."""
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        po = read_po(handle, locale=language)
    return {str(message.id): str(message.string) for message in po if message.id and message.string}


def language_or_default(language: str | None) -> str:
    return language if language in LANGUAGES else "en"


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def translate(key: str, language: str, params: dict[str, Any] | None = None, tz: tzinfo | None = None) -> str:
    language = language_or_default(language)
    if key == "=":
        return str((params or {}).get("text", ""))
    if key == "=lang":  # text the shop wrote in several languages, e.g. a checklist prompt
        options = params or {}
        return str(options.get(language) or options.get("en") or next(iter(options.values()), ""))
    template = catalog(language).get(key) or catalog("en").get(key) or key
    values = {name: _render_value(value, language, tz) for name, value in (params or {}).items()}
    return string.Formatter().vformat(template, (), _SafeDict(values))


def _render_value(value: object, language: str, tz: tzinfo | None) -> str:
    if isinstance(value, list):
        return "\n".join("• " + _render_value(item, language, tz) for item in value)
    if isinstance(value, dict):
        if "key" in value:
            return translate(value["key"], language, value.get("params"), tz)
        if "_day" in value:
            return format_date(date.fromisoformat(value["_day"]), _DAY_PATTERN[language], locale=_BABEL_LOCALE[language])
        if "_dt" in value:
            return _format_moment(datetime.fromisoformat(value["_dt"]), language, tz)
        if "_span" in value:
            start, end = (datetime.fromisoformat(v) for v in value["_span"])
            end_local = end.astimezone(tz) if tz else end
            return f"{_format_moment(start, language, tz)}–{format_time(end_local, 'HH:mm', locale=_BABEL_LOCALE[language])}"
    return str(value)


def _format_moment(moment: datetime, language: str, tz: tzinfo | None) -> str:
    local = moment.astimezone(tz) if tz else moment
    return format_datetime(local, _MOMENT_PATTERN[language], locale=_BABEL_LOCALE[language])


def render(payload: dict[str, Any], language: str, tz: tzinfo | None = None) -> Rendered:
    text = payload["text"]
    return Rendered(
        text=translate(text["key"], language, text.get("params"), tz),
        buttons=[
            [(translate(b["label"]["key"], language, b["label"].get("params"), tz), b["data"]) for b in row]
            for row in payload.get("buttons") or []
        ],
        request=payload.get("request"),
        photo_path=payload.get("photo_path"),
        album=tuple(AlbumPhoto(int(p["id"]), str(p["path"])) for p in payload.get("album") or ()),
        purpose=payload.get("purpose") or "reply",
        language=language,
    )
