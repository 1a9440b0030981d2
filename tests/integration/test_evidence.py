"""Evidence reaches people: problem alerts carry their photos (an album on Telegram, signed links for robots), and the job's
API view shows checklist answers, photos served with authorization, problems, ratings and comments."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from bots.alerting import AlertSinks
from bots.telegram import TelegramBot
from fieldchat.fakes.telegram_server import FakeTelegram
from services.messages import AlbumPhoto, Rendered
from tests.support.api import Api
from tests.support.harness import SHOP, World, keys
from tests.support.setups import booked_and_accepted
from tests.support.telegram import JPEG, STAFF


def _photo(folder: Path, name: str, data: bytes = JPEG) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


async def _report_with_photos(world: World, driver, visit_id: int, photos: list[Path]) -> None:
    await driver.press(f"rp:{visit_id}")
    await driver.press(f"rr:{visit_id}:goods_damaged")
    await driver.send("Corner crushed")
    for path in photos:
        await driver.photo(path)
    assert keys(await driver.press("rsend"))[-1] == "tech.report_sent"


async def test_a_problem_alert_is_followed_by_its_photos_as_one_album(world: World):
    order, _customer, driver, group = await booked_and_accepted(world)
    await group.inbox()
    photos = [_photo(world.media / "media", f"crushed-{n}.jpg") for n in range(2)]
    await _report_with_photos(world, driver, order.visits[0].id, photos)

    alert, album = await group.inbox()
    # today the group reads "Photos: 2" and never sees them
    assert alert.key == "group.exception" and alert.params["photos"] == 2
    assert album.key == "evidence.exception_photos" and album.params["count"] == 2
    assert [p["path"] for p in album.payload["album"]] == [str(p) for p in photos]


async def test_the_telegram_channel_sends_an_album_as_a_media_group_of_the_stored_bytes(fake_telegram: FakeTelegram, tmp_path: Path):
    bot = TelegramBot("staff", STAFF, fake_telegram.base_url, engine=None, media_dir=tmp_path)
    first, second = _photo(tmp_path, "a.jpg", JPEG), _photo(tmp_path, "b.jpg", JPEG + b"\0")
    try:
        message_id = await bot.send("staff", "-5001", Rendered("Photos of problem #1", album=(AlbumPhoto(1, str(first)), AlbumPhoto(2, str(second)))))
        single = await bot.send("staff", "-5001", Rendered("One photo", [[("Reply", "th:1")]], album=(AlbumPhoto(3, str(first)),)))
    finally:
        await bot.bot.session.close()
    group, alone = fake_telegram.sent(chat_id=-5001)[:2], fake_telegram.sent(chat_id=-5001)[2]
    assert [s["method"] for s in group] == ["sendMediaGroup", "sendMediaGroup"]
    assert [s["photo"].content for s in group] == [JPEG, JPEG + b"\0"]  # the stored bytes, uploaded
    assert [s["caption"] for s in group] == ["Photos of problem #1", None]  # the caption once, under the first
    assert group[0]["message"]["media_group_id"] == group[1]["message"]["media_group_id"]
    assert message_id == str(group[0]["message_id"])
    # one photo goes as a photo, and keeps its buttons (an album cannot carry any)
    assert alone["method"] == "sendPhoto" and alone["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "th:1"
    assert single == str(alone["message_id"])


async def test_group_robots_get_signed_links_instead_of_photos(sqlite_api: Api):
    sinks = AlertSinks(sqlite_api.container.sessions, sqlite_api.container.clock, public_url="https://ops.example.com")
    linked = await sinks._with_photo_links(Rendered("📷 Photos of problem #1: 1", album=(AlbumPhoto(7, "/nowhere.jpg"),)))
    assert linked.album == ()
    link = linked.text.splitlines()[-1].removeprefix("📷 ")
    assert link.startswith("https://ops.example.com/api/v1/photos/7?expires=")
    query = parse_qs(urlsplit(link).query)
    assert set(query) == {"expires", "sig"}


async def test_the_job_view_shows_answers_photos_problems_ratings_and_comments(sqlite_api: Api):
    world = World(sqlite_api.container, sqlite_api.container.clock, sqlite_api.tmp_path)
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    media = sqlite_api.tmp_path / "media" / "web"
    evidence = _photo(media, "crushed.jpg")
    await _report_with_photos(world, driver, visit.id, [evidence])
    client = sqlite_api.client

    # before: a job's view held only its visits and timeline, so nobody could see what was recorded
    job = (await client.get(f"/api/v1/jobs/{order.job.id}")).json()
    (exception,) = job["exceptions"]
    assert (exception["reason"], exception["note"], exception["visit_id"]) == ("goods_damaged", "Corner crushed", visit.id)
    (photo,) = job["photos"]
    assert exception["photo_ids"] == [photo["id"]] and photo["purpose"] == "exception"
    assert photo["url"] == f"http://testserver/api/v1/photos/{photo['id']}"

    # served with the API's token, refused without it; the signed link works without it until it expires
    served = await client.get(photo["url"])
    assert served.status_code == 200 and served.content == JPEG and served.headers["content-type"] == "image/jpeg"
    assert (await client.get(photo["url"], headers={"Authorization": ""})).status_code == 401
    assert (await client.get(photo["signed_url"], headers={"Authorization": ""})).content == JPEG
    forged = photo["signed_url"].replace(f"/photos/{photo['id']}?", f"/photos/{photo['id'] + 1}?")
    assert (await client.get(forged, headers={"Authorization": ""})).status_code == 401
    sqlite_api.container.clock.advance(timedelta(days=8))
    assert (await client.get(photo["signed_url"], headers={"Authorization": ""})).status_code == 401
    sqlite_api.container.clock.advance(timedelta(days=-8))
    assert (await client.get("/api/v1/photos/999999")).status_code == 404

    # the acknowledged problem resumes; the visit is finished with its checklist and the customer rates and comments
    await group.press(f"xa:{exception['id']}")
    await driver.inbox()
    await driver.press(f"arr:{visit.id}")
    await driver.location(*SHOP)
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    assert keys(await driver.press(f"done:{visit.id}")) == ["tech.completed"]
    await customer.inbox()
    await customer.press(f"cf:{visit.id}")
    await customer.press(f"rt:{visit.id}:4")
    await customer.send("Friendly and quick")

    job = (await client.get(f"/api/v1/jobs/{order.job.id}")).json()
    assert [(a["visit_id"], a["step"], a["value"]) for a in job["checklist_answers"]] == [(visit.id, "intact", "yes")]
    assert [(r["score"], r["comment"]) for r in job["ratings"]] == [(4, "Friendly and quick")]
