"""Photos over real Telegram polling: no stranger's files, none outside a photo step, bad ones refused kindly, transient
failures retried quietly; what is stored has no GPS."""

from __future__ import annotations

import asyncio

import logging
from pathlib import Path

from PIL import ExifTags, Image
from sqlalchemy import select

from storage import tables
from tests.support.harness import SHOP
from tests.support.photos import MB, RIGHT_SIDE_UP_AFTER_90_CW, gps_of, jpeg_with_gps
from tests.support.telegram import STAFF, Shop, book_first_slot

DRIVER, STRANGER = 1001, 9001
GROUP = -5001
PROOF_STEPS = [{"key": "proof", "kind": "photo", "prompt": {"en": "Photo of the sofa in place"}}]
PHOTO_PROMPT = "Step 1/1: Photo of the sofa in place"


def stored_photos(shop: Shop) -> list[Path]:
    folder = shop.media / "telegram" / "staff"
    return sorted(folder.iterdir()) if folder.exists() else []


def get_file_calls(shop: Shop) -> list:
    return [c for c in shop.fake.calls if c.method == "getFile"]


async def inbox_status(shop: Shop, update_id: int) -> tuple[str, int]:
    rows = await shop.rows(select(tables.inbox).where(tables.inbox.c.bot == "staff", tables.inbox.c.update_id == str(update_id)))
    return rows[0]["status"], rows[0]["attempts"]


async def handled(shop: Shop, update_id: int, timeout: float = 10) -> tuple[str, int]:
    """Wait until the update is stored and handled: a refusal's text alone cannot say which photo it answers (two
    photos refused as too big read the same, and the checklist card shows the latest answer in place)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await shop.rows(select(tables.inbox).where(tables.inbox.c.bot == "staff", tables.inbox.c.update_id == str(update_id)))
        if rows and rows[0]["status"] != "received":
            return rows[0]["status"], rows[0]["attempts"]
        if loop.time() > deadline:
            raise AssertionError(f"update {update_id} was not handled within {timeout} s")
        await asyncio.sleep(0.02)


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
    lying = shop.fake.photo_message(DRIVER, "AgACLiar", "AQADLiar", content=liar, file_size=50_000, token=STAFF)
    assert await handled(shop, lying["update_id"]) == ("processed", 1)
    await shop.expect(DRIVER, refused_as_too_big, since)
    assert shop.fake.downloads[-1] == shop.fake._files["AgACLiar"].file_path and stored_photos(shop) == []

    # Telegram itself refuses a file over 20 MB: one kind answer, the update done, no retry
    shop.fake.fail_next("getFile", 400, description="Bad Request: file is too big")
    since, calls = shop.mark(), len(get_file_calls(shop))
    update = shop.fake.photo_message(DRIVER, "AgACBig", "AQADBig", content=jpeg_with_gps(), token=STAFF)
    assert await handled(shop, update["update_id"]) == ("processed", 1)
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
    server_error = {"aiogram": "TelegramServerError", "ptb": "NetworkError"}[shop.container.settings.telegram_driver]
    assert len(warnings) == 3 and all(server_error in w for w in warnings)

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
