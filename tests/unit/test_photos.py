"""Photos are checked before anything is stored: real images only, bounded size and pixels, no GPS; the flows answer refusals.

Through the Telegram adapter and its fake server: contract/test_telegram_adapter.py; whole chats over polling: e2e/test_photos.py."""

from __future__ import annotations

import io
import time
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest
from aiogram.types import Update
from PIL import ExifTags, Image

from bots.photos import PhotoLimits, PhotoRefused, check_photo
from bots.telegram import to_inbound
from conversations.flow import StepInput
from conversations.flows import ALL_FLOWS
from conversations.flows.technician import TECHNICIAN_FLOW, TechnicianView, TechVisit
from services.messages import ChatRef, Inbound, InboundKind
from domain.model import ChecklistStep, StepKind, VisitStatus
from domain.policy import ServicePolicy
from fieldchat.settings import Settings
from tests.support.harness import SHOP
from tests.support.photos import MB, RIGHT_SIDE_UP_AFTER_90_CW, gps_of, jpeg_with_gps, photo_bytes, png_claiming, reopened, _exif_with_gps

LIMITS = dict(max_bytes=10 * MB, max_pixels=40_000_000)


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
    # one message on the checklist's card: why, then the photo step again
    [reply] = result.replies
    assert reply.text["key"] == "card.join" and reply.card == ("checklist", 5)
    assert (reply.text["params"]["first"]["key"], reply.text["params"]["first"]["params"]) == (key, params)
    assert reply.text["params"]["second"]["key"] == "tech.step_photo"
    assert (result.state, result.data, result.commands) == (None, None, ())


def test_a_refused_problem_report_photo_is_explained_and_the_report_stays_open():
    data = {"visit": 5, "reason": "goods_damaged", "note": "", "photos": []}
    result = TECHNICIAN_FLOW.step(_step_input("report_photo", data, file_error="not_image"))
    assert [m.text["key"] for m in result.replies] == ["photo.not_image", "tech.report_photo_required"]
    assert (result.state, result.data, result.commands) == (None, None, ())


def test_only_the_technicians_photo_steps_make_a_photo_worth_downloading():
    wanting = {(flow.name, name) for flow in ALL_FLOWS for name, state in flow.spec.states.items() if state.wants_photo}
    # and the relay threads', where a photo goes along with what the writer or the answer says (conversations/flows/relay.py)
    relayed = {("customer", "relay"), ("technician", "relay"), ("technician", "relay_answer"), ("dispatcher", "relay_answer")}
    # and wherever a customer's text is read freely: a photo sent there goes to people like the text would
    # (ticking delivered items too: a photo of a damaged one goes to the dispatchers with what was written)
    free = {("customer", name) for name in ("new", "idle", "choose_slot", "confirm_cancel", "rate", "confirm_move", "choose_dependant", "item_check")}
    # and a repair request's, where photos and voice notes of the fault are kept (issue 14)
    repair = {("customer", "repair_describe"), ("customer", "repair_media")}
    # and a price increase's summary, where photos of the cause go with the request (issue 14 part 6)
    increase = {("technician", "pricechg_summary")}
    assert wanting == {("technician", "checklist"), ("technician", "report_photo"), *relayed, *free, *repair, *increase}
    assert TECHNICIAN_FLOW.states["checklist"].photo and TECHNICIAN_FLOW.states["report_photo"].photo
