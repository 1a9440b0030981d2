"""Photos are checked before anything is stored: real images only, bounded size and pixels, no GPS, no stranger's files."""

from __future__ import annotations

import io
import logging
import struct
import time
import tracemalloc
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiogram.types import Update
from PIL import ExifTags, Image
from sqlalchemy import select

from bots.photos import CheckedPhoto, PhotoLimits, PhotoRefused, check_photo
from bots.telegram import TelegramBot, to_inbound
from conversations.engine import MediaUnavailable
from conversations.flow import StepInput
from conversations.flows import ALL_FLOWS
from conversations.flows.technician import TECHNICIAN_FLOW, TechnicianView, TechVisit
from services.messages import ChatRef, Inbound, InboundKind
from domain.model import ChecklistStep, StepKind, VisitStatus
from domain.policy import ServicePolicy
from fieldchat.settings import Settings
from storage import tables
from fieldchat.fakes.telegram_server import FakeTelegram
from tests.test_telegram_e2e import CUSTOMER, SHOP, STAFF, Shop, book_first_slot, running

MB = 1024 * 1024
LIMITS = dict(max_bytes=10 * MB, max_pixels=40_000_000)
SHANGHAI_HARBOUR = ((31.0, 13.0, 49.0), (121.0, 28.0, 25.0))
RIGHT_SIDE_UP_AFTER_90_CW = 6  # EXIF orientation: the viewer rotates the pixels 90° clockwise

DRIVER, STRANGER = 1001, 9001
GROUP = -5001
PROOF_STEPS = [{"key": "proof", "kind": "photo", "prompt": {"en": "Photo of the sofa in place"}}]
PHOTO_PROMPT = "Step 1/1: Photo of the sofa in place"


# --- images made with Pillow ----------------------------------------------------------------------


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


# --- check_photo ----------------------------------------------------------------------------------


def test_a_jpeg_loses_its_gps_position_but_keeps_its_orientation_and_quality():
    original = jpeg_with_gps()
    assert gps_of(Image.open(io.BytesIO(original))) and b"GPSLatitude" in original  # it really carries a position

    checked = check_photo(original, **LIMITS)

    assert (checked.extension, checked.width, checked.height) == (".jpg", 64, 48)
    image = reopened(checked)
    assert image.format == "JPEG"
    assert gps_of(image) == {}
    assert ExifTags.IFD.GPSInfo not in image.getexif()
    assert image.getexif()[ExifTags.Base.Orientation] == RIGHT_SIDE_UP_AFTER_90_CW
    assert image.getexif()[ExifTags.Base.Make] == "Acme Phone"
    assert "comment" not in image.info and "xmp" not in image.info and b"GPSLatitude" not in checked.data
    assert image.quantization == Image.open(io.BytesIO(original)).quantization  # re-saved with quality="keep"


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", ".png"), ("WEBP", ".webp")])
def test_png_and_webp_stay_in_their_format_without_gps(fmt: str, extension: str):
    original = photo_bytes(fmt, (30, 20), exif=_exif_with_gps(orientation=3))
    assert gps_of(Image.open(io.BytesIO(original)))

    checked = check_photo(original, **LIMITS)

    image = reopened(checked)
    assert (checked.extension, image.format, image.size) == (extension, fmt, (30, 20))
    assert gps_of(image) == {} and image.getexif()[ExifTags.Base.Orientation] == 3


def test_a_heic_photo_becomes_a_jpeg_chat_clients_can_show_without_gps():
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif build has no HEVC encoder to write a HEIC test photo with")
    pillow_heif.register_heif_opener()
    original = photo_bytes("HEIF", (40, 30), exif=_exif_with_gps(orientation=1))
    assert original[4:12] == b"ftypheic"

    checked = check_photo(original, **LIMITS)

    image = reopened(checked)
    assert (checked.extension, image.format, image.size) == (".jpg", "JPEG", (40, 30))
    assert gps_of(image) == {}


@pytest.mark.parametrize(
    "data",
    [
        b"<!doctype html><html><script>alert(document.cookie)</script></html>",
        b"",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        b"\xff\xd8\xff\xe0 a fake but recognisable jpeg body \xff\xd9",  # the right magic, no image behind it
        jpeg_with_gps()[:300],  # a real photo cut short
    ],
    ids=["html", "empty", "gif", "magic-only", "truncated"],
)
def test_bytes_that_are_not_a_usable_photo_are_refused_whatever_they_are_called(data: bytes):
    with pytest.raises(PhotoRefused) as refused:
        check_photo(data, **LIMITS)
    assert refused.value.code == "not_image"


def test_what_trails_a_real_photo_is_not_stored():
    polyglot = jpeg_with_gps() + b"<html><script>alert(1)</script></html>"
    checked = check_photo(polyglot, **LIMITS)
    assert b"<script>" not in checked.data and reopened(checked).size == (64, 48)


def test_a_png_bomb_is_refused_from_its_header_fast_and_with_little_memory():
    bomb = png_claiming(50_000, 50_000)
    assert len(bomb) < 200

    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PhotoRefused) as refused:
            check_photo(bomb, **LIMITS)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.code == "too_many_pixels"
    assert elapsed < 0.5 and peak < 20 * MB  # decoding it would need 7.5 GB


def test_the_pixel_limit_is_the_configured_one():
    with pytest.raises(PhotoRefused) as refused:
        check_photo(png_claiming(8000, 6000), max_bytes=10 * MB, max_pixels=40_000_000)  # 48 megapixels
    assert refused.value.code == "too_many_pixels"
    assert check_photo(photo_bytes("PNG", (100, 100)), max_bytes=10 * MB, max_pixels=10_000).width == 100
    with pytest.raises(PhotoRefused):
        check_photo(photo_bytes("PNG", (101, 100)), max_bytes=10 * MB, max_pixels=10_000)


def test_a_photo_over_the_byte_limit_is_refused_before_it_is_looked_at():
    data = photo_bytes("PNG", (200, 200))
    with pytest.raises(PhotoRefused) as refused:
        check_photo(data, max_bytes=len(data) - 1, max_pixels=40_000_000)
    assert refused.value.code == "too_big"
    assert check_photo(data, max_bytes=len(data), max_pixels=40_000_000).extension == ".png"


def test_limits_match_the_settings_defaults_and_quote_megabytes():
    defaults = Settings(_env_file=None)
    assert PhotoLimits() == PhotoLimits(defaults.photo_max_bytes(), defaults.photo_max_pixels())
    assert PhotoLimits(int(2.5 * MB), 12_000_000).max_mb == 2.5


# --- Telegram updates become events with the right size -------------------------------------------


def photo_update(sizes: list[tuple[str, int, int, int | None]]) -> Update:
    photo = [{"file_id": f, "file_unique_id": f"u{f}", "width": w, "height": h, **({"file_size": s} if s is not None else {})}
             for f, w, h, s in sizes]
    chat = {"id": 42, "type": "private", "first_name": "Wang"}
    return Update.model_validate({"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": chat, "photo": photo,
                                                               "from": {"id": 42, "is_bot": False, "first_name": "Wang"}}})


def test_the_largest_photo_size_within_the_limit_is_chosen():
    update = photo_update([("s", 90, 68, 2_000), ("m", 800, 600, 3 * MB), ("l", 2560, 1920, 12 * MB)])
    event = to_inbound("staff", update, PhotoLimits(10 * MB, 40_000_000))
    assert (event.kind, event.file_id, event.file_size, event.file_error) == (InboundKind.PHOTO, "m", 3 * MB, None)
    # a size Telegram does not state is fetched, and checked while it downloads
    assert to_inbound("staff", photo_update([("s", 90, 68, 2_000), ("l", 1280, 960, None)])).file_id == "l"


def test_a_photo_whose_every_size_is_too_big_is_refused_without_fetching_anything():
    event = to_inbound("staff", photo_update([("s", 90, 68, 11 * MB), ("l", 1280, 960, 25 * MB)]), PhotoLimits(10 * MB, 40_000_000))
    assert (event.file_error, event.file_limit_mb, event.file_path) == ("too_big", 10, None)


# --- the technician's flow answers refusals and keeps waiting -------------------------------------

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)


def _step_input(state: str, data: dict, **event_fields) -> StepInput:
    steps = (ChecklistStep("proof", StepKind.PHOTO, {"en": "Photo"}),)
    visit = TechVisit(
        5, "delivery", VisitStatus.IN_PROGRESS.value, NOW, NOW + timedelta(hours=2), "Sofa", "Road 1", SHOP[0], SHOP[1],
        "Zhang", "139", steps, frozenset(), True,
    )
    view = TechnicianView(3, "Wang", None, "", (visit,))
    event = Inbound(ChatRef("telegram", "staff", "1001"), "u1", InboundKind.PHOTO, "1001", file_id="F", **event_fields)
    return StepInput(event, state, data, view, NOW, "en", ServicePolicy())


@pytest.mark.parametrize(
    ("error", "limit", "key", "params"),
    [
        ("too_big", 10.0, "photo.too_big", {"max_mb": "10"}),
        ("too_big", 2.5, "photo.too_big", {"max_mb": "2.5"}),
        ("not_image", None, "photo.not_image", {}),
        ("too_many_pixels", None, "photo.too_many_pixels", {}),
        ("unavailable", None, "tech.photo_failed", {}),
    ],
)
def test_a_refused_checklist_photo_is_explained_and_the_photo_step_asked_again(error, limit, key, params):
    result = TECHNICIAN_FLOW.step(_step_input("checklist", {"visit": 5, "step": 0}, file_error=error, file_limit_mb=limit))
    assert [(m.text["key"], m.text["params"]) for m in result.replies][0] == (key, params)
    assert [m.text["key"] for m in result.replies][1:] == ["tech.step_photo"]
    assert (result.state, result.data, result.commands) == (None, None, ())


def test_a_refused_problem_report_photo_is_explained_and_the_report_stays_open():
    data = {"visit": 5, "reason": "goods_damaged", "note": "", "photos": []}
    result = TECHNICIAN_FLOW.step(_step_input("report_photo", data, file_error="not_image"))
    assert [m.text["key"] for m in result.replies] == ["photo.not_image", "tech.report_photo_required"]
    assert (result.state, result.data, result.commands) == (None, None, ())


def test_only_the_technicians_photo_steps_make_a_photo_worth_downloading():
    wanting = {(flow.name, name) for flow in ALL_FLOWS for name, state in flow.spec.states.items() if state.wants_photo}
    assert wanting == {("technician", "checklist"), ("technician", "report_photo")}
    assert TECHNICIAN_FLOW.states["checklist"].photo and TECHNICIAN_FLOW.states["report_photo"].photo


# --- end to end through the real aiogram adapter and the fake Bot API ------------------------------


@pytest.fixture
async def fake():
    server = FakeTelegram(long_poll_cap=0.3)
    await server.start()
    server.add_bot(CUSTOMER, "fieldchat_customer_bot")
    server.add_bot(STAFF, "fieldchat_staff_bot")
    yield server
    await server.stop()


@pytest.fixture
async def shop(fake, database_url, tmp_path):
    """On SQLite and PostgreSQL: the read that decides whether to download runs on both."""
    async with running(fake, database_url, tmp_path) as shop:
        yield shop


@pytest.fixture
async def sqlite_shop(fake, sqlite_url, tmp_path):
    async with running(fake, sqlite_url, tmp_path) as shop:
        yield shop


def stored_photos(shop: Shop) -> list[Path]:
    folder = shop.media / "telegram" / "staff"
    return sorted(folder.iterdir()) if folder.exists() else []


def get_file_calls(shop: Shop) -> list:
    return [c for c in shop.fake.calls if c.method == "getFile"]


async def inbox_status(shop: Shop, update_id: int) -> tuple[str, int]:
    rows = await shop.rows(select(tables.inbox).where(tables.inbox.c.bot == "staff", tables.inbox.c.update_id == str(update_id)))
    return rows[0]["status"], rows[0]["attempts"]


async def registered_driver(shop: Shop) -> None:
    await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")


async def at_the_photo_step(shop: Shop) -> None:
    """The driver has accepted a delivery, checked in and started its checklist: one photo step."""
    await shop.template("delivery", "sofa", PROOF_STEPS)
    await registered_driver(shop)
    order = await shop.order(services=("delivery",))
    since = shop.mark()
    await book_first_slot(shop, order, "delivery")
    offer = await shop.expect(DRIVER, "New delivery #", since)
    since = shop.mark()
    shop.press(DRIVER, offer, "Accept", token=STAFF)
    accepted = await shop.expect(DRIVER, "Accepted visit", since)
    since = shop.mark()
    shop.press(DRIVER, accepted, "On my way", token=STAFF)
    await shop.expect(DRIVER, "share your location", since)
    since = shop.mark()
    shop.fake.location_message(DRIVER, SHOP[0], SHOP[1], token=STAFF)
    checked_in = await shop.expect(DRIVER, "Checked in.", since)
    since = shop.mark()
    shop.press(DRIVER, checked_in, "Start checklist", token=STAFF)
    await shop.expect(DRIVER, PHOTO_PROMPT, since)


def assert_quiet_logs(caplog) -> None:
    """No traceback, and never the bot token (Telegram's file URLs carry it)."""
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    assert not [r for r in caplog.records if STAFF in r.getMessage() or STAFF.split(":")[1] in r.getMessage()]


async def test_a_strangers_photo_is_never_downloaded(shop: Shop, caplog):
    caplog.set_level(logging.INFO)
    since = shop.mark()
    shop.fake.photo_message(STRANGER, "AgACStranger", "AQADStranger", content=jpeg_with_gps(), token=STAFF)
    await shop.expect(STRANGER, "Please open your invite link to register.", since)
    assert get_file_calls(shop) == [] and shop.fake.downloads == [] and stored_photos(shop) == []


async def test_photos_outside_a_photo_step_are_not_downloaded_even_from_staff(shop: Shop):
    await registered_driver(shop)
    await shop.onboard(GROUP, await shop.dispatcher_token(), "You are registered as a dispatcher.", user_id=7001, first_name="Dora")
    await shop.onboard(GROUP, await shop.group_token(), "This group now receives fieldchat alerts.", user_id=7001, first_name="Dora")

    since = shop.mark()
    shop.fake.photo_message(DRIVER, "AgACIdle", "AQADIdle", content=jpeg_with_gps(), token=STAFF)
    await shop.expect(DRIVER, "Send /today for your visits", since)
    chatter = shop.fake.photo_message(GROUP, "AgACChatter", "AQADChatter", content=jpeg_with_gps(), token=STAFF,
                                      chat_type="group", user_id=7001)
    await shop.fake.wait_until_confirmed(STAFF, chatter["update_id"])
    await shop.container.engine.process_pending()  # whatever was still running is done after this
    assert await inbox_status(shop, chatter["update_id"]) == ("processed", 1)
    assert get_file_calls(shop) == [] and shop.fake.downloads == [] and stored_photos(shop) == []


async def test_bad_photos_at_a_checklist_photo_step_are_refused_kindly_until_a_good_one_is_stored_without_gps(sqlite_shop: Shop, caplog):
    shop = sqlite_shop
    caplog.set_level(logging.INFO)
    await at_the_photo_step(shop)
    refused_as_too_big = "That photo is too large — please send one under 10 MB."

    # HTML sent as a photo (Telegram would call it a .jpg): downloaded, found out, nothing stored
    since = shop.mark()
    html = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
    shop.fake.photo_message(DRIVER, "AgACHtml", "AQADHtml", content=html, token=STAFF)
    await shop.expect(DRIVER, "That file is not a photo we can use.", since)
    await shop.expect(DRIVER, PHOTO_PROMPT, since)
    assert [c.params["file_id"] for c in get_file_calls(shop)] == ["AgACHtml"]
    assert stored_photos(shop) == [] and await shop.rows(select(tables.photos)) == []

    # 25 MB by the update's own word: refused without even asking Telegram for it
    since, calls, downloads = shop.mark(), len(get_file_calls(shop)), len(shop.fake.downloads)
    shop.fake.photo_message(DRIVER, "AgACHuge", "AQADHuge", content=jpeg_with_gps(), file_size=25 * MB, token=STAFF)
    await shop.expect(DRIVER, refused_as_too_big, since)
    await shop.expect(DRIVER, PHOTO_PROMPT, since)
    assert (len(get_file_calls(shop)), len(shop.fake.downloads)) == (calls, downloads)

    # the update and getFile both claim a small file, but 12 MB arrive: the download is cut off
    since = shop.mark()
    liar = b"\xff\xd8\xff" + b"\0" * (12 * MB)
    shop.fake.photo_message(DRIVER, "AgACLiar", "AQADLiar", content=liar, file_size=50_000, token=STAFF)
    await shop.expect(DRIVER, refused_as_too_big, since)
    assert shop.fake.downloads[-1] == shop.fake._files["AgACLiar"].file_path and stored_photos(shop) == []

    # Telegram itself refuses a file over 20 MB: one kind answer, the update done, no retry
    shop.fake.fail_next("getFile", 400, description="Bad Request: file is too big")
    since, calls = shop.mark(), len(get_file_calls(shop))
    update = shop.fake.photo_message(DRIVER, "AgACBig", "AQADBig", content=jpeg_with_gps(), token=STAFF)
    await shop.expect(DRIVER, refused_as_too_big, since)
    await shop.expect(DRIVER, PHOTO_PROMPT, since)
    await shop.container.engine.process_pending()  # a sweep finds nothing left to retry
    assert await inbox_status(shop, update["update_id"]) == ("processed", 1)
    assert len(get_file_calls(shop)) == calls + 1 and stored_photos(shop) == []

    # the step still waits: a real photo with a GPS position is the answer, stored without the position
    since = shop.mark()
    shop.fake.photo_message(DRIVER, "AgACSofa", "AQADSofa", content=jpeg_with_gps(), token=STAFF)
    await shop.expect(DRIVER, "Checklist done.", since)
    [stored] = stored_photos(shop)
    image = Image.open(stored)
    assert stored.suffix == ".jpg" and image.format == "JPEG" and image.size == (64, 48)
    assert gps_of(image) == {} and image.getexif()[ExifTags.Base.Orientation] == RIGHT_SIDE_UP_AFTER_90_CW
    photos = await shop.rows(select(tables.photos))
    assert [(p["file_id"], p["path"], p["purpose"]) for p in photos] == [("AgACSofa", str(stored), "checklist")]
    assert not [t for t in shop.texts(DRIVER) if "something went wrong" in t]
    assert_quiet_logs(caplog)


async def test_a_transient_getfile_failure_is_retried_quietly_then_answered_kindly(sqlite_shop: Shop, caplog):
    shop = sqlite_shop
    caplog.set_level(logging.INFO)
    await at_the_photo_step(shop)
    engine = shop.container.engine

    # Telegram is down for every try: one warning line per try, then the driver is asked to send it again
    shop.fake.fail_next("getFile", 502, count=3)
    since = shop.mark()
    update = shop.fake.photo_message(DRIVER, "AgACDown", "AQADDown", content=jpeg_with_gps(), token=STAFF)
    await shop.fake.wait_for_call("getFile", predicate=lambda c: c.status == 502)
    while (await inbox_status(shop, update["update_id"]))[0] == "received":
        await engine.process_pending()
    await shop.expect(DRIVER, "I couldn't save that photo. Please send it again.", since)
    assert await inbox_status(shop, update["update_id"]) == ("processed", 3)
    assert len(get_file_calls(shop)) == 3 and stored_photos(shop) == []
    warnings = [r.getMessage() for r in caplog.records if "photo not fetched" in r.getMessage()]
    assert len(warnings) == 3 and all("TelegramServerError" in w for w in warnings)

    # down once only: the next try stores it
    shop.fake.fail_next("getFile", 502, count=1)
    since = shop.mark()
    update = shop.fake.photo_message(DRIVER, "AgACBack", "AQADBack", content=jpeg_with_gps(), token=STAFF)
    await shop.fake.wait_for_call("getFile", predicate=lambda c: c.params.get("file_id") == "AgACBack" and c.status == 502)
    while (await inbox_status(shop, update["update_id"]))[0] == "received":
        await engine.process_pending()
    await shop.expect(DRIVER, "Checklist done.", since)
    assert len(stored_photos(shop)) == 1
    assert not [t for t in shop.texts(DRIVER) if "something went wrong" in t]
    assert_quiet_logs(caplog)


# --- the adapter alone: what getFile says is checked too, and failures never show the token ---------


@pytest.fixture
async def adapter(fake: FakeTelegram, tmp_path: Path):
    bot = TelegramBot("staff", STAFF, fake.base_url, engine=None, media_dir=tmp_path, photo_limits=PhotoLimits(1 * MB, 40_000_000))
    yield bot
    await bot.bot.session.close()


def photo_event(file_id: str) -> Inbound:
    return Inbound(ChatRef("telegram", "staff", str(DRIVER)), "1", InboundKind.PHOTO, str(DRIVER), file_id=file_id)


async def test_the_telegram_adapter_never_asks_for_more_than_getfile_serves(fake: FakeTelegram, tmp_path: Path):
    bot = TelegramBot("staff", STAFF, fake.base_url, engine=None, media_dir=tmp_path, photo_limits=PhotoLimits(50 * MB, 40_000_000))
    try:
        assert bot.photo_limits == PhotoLimits(20 * MB, 40_000_000)
    finally:
        await bot.bot.session.close()


async def test_a_file_getfile_says_is_too_big_is_not_downloaded(fake: FakeTelegram, adapter: TelegramBot, tmp_path: Path):
    fake.add_file("AgACUnsized", jpeg_with_gps() + b"\0" * (2 * MB), file_path="photos/unsized.jpg")
    event = photo_event("AgACUnsized")
    assert event.file_size is None  # the update did not say

    fetched = await adapter.fetch(event)
    assert (fetched.file_error, fetched.file_limit_mb, fetched.file_path) == ("too_big", 1.0, None)
    assert [c.method for c in fake.calls] == ["getFile"] and fake.downloads == []
    assert not (tmp_path / "telegram").exists()

    fake.add_file("AgACGood", jpeg_with_gps(), file_path="photos/good.jpg")
    good = await adapter.fetch(photo_event("AgACGood"))
    assert good.file_error is None and Image.open(good.file_path).format == "JPEG"
    assert fake.downloads == ["photos/good.jpg"]


async def test_a_failed_download_is_transient_and_its_error_never_holds_the_file_url(fake: FakeTelegram, adapter: TelegramBot):
    stored = fake.add_file("AgACGone", jpeg_with_gps(), file_path="photos/gone.jpg")
    stored.file_path = "photos/moved.jpg"  # getFile names a path the file route no longer serves: 404

    with pytest.raises(MediaUnavailable) as failure:
        await adapter.fetch(photo_event("AgACGone"))

    assert fake.downloads == ["photos/moved.jpg"]
    assert str(failure.value) == "telegram staff bot: ClientResponseError"
    assert failure.value.__cause__ is None and failure.value.__suppress_context__  # no chained traceback with the URL
