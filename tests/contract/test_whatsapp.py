"""The WhatsApp channel against the fake Cloud API: what it sends (buttons, lists, location requests, photos, templates
outside the 24-hour window), media downloads in two steps with the size caps, statuses that never move backwards, the
platform's errors, rates, links; and the webhook: verification, signatures, nothing stored when one fails."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import func, select

from bots.base import RetryLater, Undeliverable
from bots.channels import CAPABILITIES, WHATSAPP
from bots.photos import MEGABYTE, PhotoLimits
from bots.render import fit
from bots.whatsapp import Number, OutsideWindow, WhatsAppChannel
from bots.whatsapp_rules import parse_templates
from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.settings import Settings
from scheduler.ratelimit import SendLimiter
from services.messages import AlbumPhoto, Rendered
from storage import tables
from storage.repository import Store
from storage.whatsapp import WhatsAppStore
from tests.support.photos import photo_bytes
from tests.support.whatsapp import (
    ABROAD, APP_SECRET, CUSTOMER_NUMBER, CUSTOMER_NUMBER_ID, PERSON, STAFF_NUMBER, STAFF_NUMBER_ID, TEMPLATES_SETTING, TOKEN, VERIFY_TOKEN,
    fake_whatsapp, whatsapp_settings,
)
from webhooks.app import create_app

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def fake(clock):
    async with fake_whatsapp(clock) as server:
        yield server


@pytest.fixture
async def told() -> list[tuple]:
    return []


@pytest.fixture
async def channel(fake, sqlite_db, clock, tmp_path, told):
    async def tell(*args) -> None:
        told.append(args)

    made = WhatsAppChannel(
        token=TOKEN, app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, numbers=[Number("customer", CUSTOMER_NUMBER_ID, CUSTOMER_NUMBER)],
        graph_url=fake.base_url, graph_version="v21.0", templates=parse_templates(TEMPLATES_SETTING), sessions=sqlite_db, clock=clock,
        engine=None, media_dir=tmp_path / "media", photo_limits=PhotoLimits(max_bytes=MEGABYTE), on_not_delivered=tell,
    )
    yield made
    await made.aclose()


async def _writes(fake, channel, wa_id: str = PERSON, text: str = "hi") -> None:
    """The person writes (Meta and fieldchat both count it): their window opens now."""
    payload = fake.notification(CUSTOMER_NUMBER_ID, messages=[fake.text(wa_id, text)])
    fake.note(payload)
    await channel.receive(json.dumps(payload).encode())


async def _send(channel, message: Rendered, to: str = PERSON) -> str | None:
    return await channel.send("customer", to, fit(message, CAPABILITIES[WHATSAPP]))


# --- outbound -------------------------------------------------------------------------------------


async def test_inside_the_window_texts_buttons_lists_location_requests_and_photos_go_out_as_the_api_takes_them(fake, channel, tmp_path):
    await _writes(fake, channel)
    photo = tmp_path / "sofa.jpg"
    photo.write_bytes(photo_bytes())
    twelve = [[(f"Day {n} of the month, a long label", f"d:{n}") for n in range(1, 13)]]
    await _send(channel, Rendered("Hello"))
    await _send(channel, Rendered("Confirm?", [[("Yes", "y:1"), ("No", "n:1")], [("Call me", "c:1")]]))
    await _send(channel, Rendered("Pick a day:", twelve, language="zh"))
    await _send(channel, Rendered("Share where you are", request="location"))
    await _send(channel, Rendered("The sofa", photo_path=str(photo)))
    await _send(channel, Rendered("Two photos", album=(AlbumPhoto(1, str(photo)), AlbumPhoto(2, str(photo))), buttons=[[("OK", "ok")]]))
    long = "Order details. " * 200  # 3000 characters: more than an interactive body takes
    last = await _send(channel, Rendered(long, [[("OK", "ok:2")]]))
    assert fake.refused == []
    text, buttons, listed, location, photo_sent, first, second, album_buttons, head, tail = fake.sent_to(PERSON)
    assert text.body["text"]["body"] == "Hello"
    assert buttons.body["interactive"]["type"] == "button" and buttons.actions() == [("Yes", "y:1"), ("No", "n:1"), ("Call me", "c:1")]
    assert listed.body["interactive"]["type"] == "list" and listed.body["interactive"]["action"]["button"] == "选择"
    assert [data for _, data in listed.actions()] == [f"d:{n}" for n in range(1, 11)]
    assert listed.text.endswith("12. Day 12 of the month, a long label")  # the renderer lists the rest in the text
    assert all(len(title) <= 20 for title, _ in listed.actions())
    assert location.body["interactive"]["type"] == "location_request_message" and location.text == "Share where you are"
    assert photo_sent.type == "image" and photo_sent.text == "The sofa" and fake.media[photo_sent.body["image"]["id"]].content == photo.read_bytes()
    assert (first.type, second.type, album_buttons.actions()) == ("image", "image", [("OK", "ok")])
    assert head.type == "text" and tail.type == "interactive" and len(tail.text) <= 1024
    assert (head.text + tail.text).replace(" ", "") == long.strip().replace(" ", "")  # nothing lost between the two
    assert last == tail.wamid


async def test_the_window_closes_at_24_00_00_then_the_purposes_template_goes_and_without_one_the_dispatchers_hear(fake, channel, clock, told):
    await _writes(fake, channel)
    clock.advance(timedelta(hours=23, minutes=59, seconds=59))
    inside = Rendered("Wang is on the way.", [[("Where?", "w:1")]], purpose="status", language="zh")
    await _send(channel, inside)
    assert fake.sent[-1].type == "interactive"
    clock.advance(timedelta(seconds=1))  # 24:00:00 after they wrote
    await _send(channel, Rendered("Wang finished.\nPlease confirm.", [[("Confirm", "cf:7"), ("Problem", "pr:7"), ("Later", "lt:7")]],
                                  purpose="status", language="zh"))
    template = fake.sent[-1]
    assert template.type == "template" and template.body["template"]["name"] == "visit_update"
    assert template.body["template"]["language"] == {"code": "zh_CN"}
    # one action more than the template's two quick replies: the reader is told a reply brings the whole message
    assert template.text == "Wang finished. · Please confirm. · （回复本消息即可查看完整内容，包括模板无法显示的部分。）"
    assert template.actions() == [("", "cf:7"), ("", "pr:7")]
    sent = len(fake.sent)
    with pytest.raises(OutsideWindow):
        await _send(channel, Rendered("How was it?", [[("5", "rt:5")]], purpose="survey"))
    assert len(fake.sent) == sent and fake.refused == []  # nothing went out, and nothing was tried
    assert told == [("whatsapp", "customer", PERSON, "survey", "window", "outside the 24-hour window; no template for 'survey'")]
    # a quick reply of the template comes back as the action it carried, and reopens the window
    pressed = fake.notification(CUSTOMER_NUMBER_ID, messages=[fake.reply(PERSON, template, "cf:7")])
    fake.note(pressed)
    await channel.receive(json.dumps(pressed).encode())
    await _send(channel, Rendered("How was it?", [[("5", "rt:5")]], purpose="survey"))
    assert fake.sent[-1].type == "interactive"


async def test_when_meta_says_the_window_closed_a_template_goes_instead_or_the_dispatchers_hear(fake, channel, told, sqlite_db, clock):
    async with sqlite_db() as session, session.begin():  # our record says they wrote; Meta never saw it
        await WhatsAppStore(Store(session)).saw_inbound("customer", ABROAD, clock.now())
    await _send(channel, Rendered("On the way", purpose="status"), to=ABROAD)
    assert fake.refused == [(ABROAD, 131047)] and fake.sent[-1].body["template"]["language"] == {"code": "en_US"}
    with pytest.raises(OutsideWindow):
        await _send(channel, Rendered("Your answer", purpose="reply"), to=ABROAD)
    assert [(purpose, why) for *_, purpose, why, _reason in told] == [("reply", "window")]


async def test_the_platforms_errors_become_retries_or_permanent_failures_the_dispatchers_hear_of(fake, channel, told):
    await _writes(fake, channel)
    fake.fail_next(400, 130429, "Rate limit hit")
    with pytest.raises(RetryLater):
        await _send(channel, Rendered("one"))
    fake.fail_next(400, 131056, "Pair rate limit hit")
    with pytest.raises(RetryLater) as pair:
        await _send(channel, Rendered("two"))
    assert pair.value.seconds == 6.0
    fake.fail_next(500, 1, "Unknown error")
    with pytest.raises(RetryLater):
        await _send(channel, Rendered("three"))
    assert told == []
    fake.fail_next(400, 131026, "Message undeliverable")
    with pytest.raises(Undeliverable):
        await _send(channel, Rendered("four", purpose="status"))
    assert [(purpose, why) for *_, purpose, why, _reason in told] == [("status", "failed")]
    with pytest.raises(Undeliverable):
        await channel.send("staff", PERSON, Rendered("no staff number"))


async def test_a_wrong_token_is_refused_and_never_counted_as_sent(fake, channel, sqlite_db):
    await _writes(fake, channel)
    channel._token = "wrong"  # as a revoked token would be
    await channel.aclose()
    with pytest.raises(Undeliverable):
        await _send(channel, Rendered("hello"))
    async with sqlite_db() as session:
        assert await session.scalar(select(func.count()).select_from(tables.whatsapp_messages)) == 0


# --- media ----------------------------------------------------------------------------------------


async def _photo_event(fake, channel, content: bytes, **kw):
    from bots.whatsapp import parse_notification

    payload = fake.notification(CUSTOMER_NUMBER_ID, messages=[fake.image(PERSON, content, **kw)])
    [(event, _at)] = parse_notification(payload, {CUSTOMER_NUMBER_ID: "customer"}, NOW).messages
    return event


async def test_a_photo_is_fetched_in_two_steps_with_the_token_checked_and_only_its_checked_copy_stored(fake, channel, tmp_path):
    event = await _photo_event(fake, channel, photo_bytes(size=(40, 30)))
    fetched = await channel.fetch(event)
    assert fetched.file_error is None and fetched.file_path and fetched.file_path.endswith(".jpg")
    assert [(path.split("/")[1], token) for path, token in fake.media_requests] == [("v21.0", True), ("media-files", True)]
    stored = list((tmp_path / "media" / "whatsapp" / "customer").iterdir())
    assert [str(p) for p in stored] == [fetched.file_path]
    # without the token the media URL gives nothing (Meta's are the same)
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{fake.base_url}/media-files/{event.file_id}")).status_code == 401


@pytest.mark.parametrize("content, claimed, error, downloads", [
    (b"\xff\xd8\xff" + b"0" * (2 * MEGABYTE), None, "too_big", 1),  # the lookup says 2 MB: never downloaded
    (b"\xff\xd8\xff" + b"0" * (2 * MEGABYTE), 1000, "too_big", 2),  # it lies: the download is cut off past the cap
    (b"GIF89a not a photo we keep", None, "not_image", 2),
])
async def test_a_photo_over_the_cap_or_not_a_photo_is_refused_and_nothing_is_stored(fake, channel, tmp_path, content, claimed, error, downloads):
    event = await _photo_event(fake, channel, content, claimed_size=claimed)
    fetched = await channel.fetch(event)
    assert fetched.file_error == error and fetched.file_path is None and fetched.file_limit_mb == 1.0
    assert len(fake.media_requests) == downloads
    assert not (tmp_path / "media" / "whatsapp").exists() or not any((tmp_path / "media" / "whatsapp").rglob("*.*"))


async def test_a_media_id_meta_no_longer_knows_is_unavailable(fake, channel):
    event = await _photo_event(fake, channel, photo_bytes())
    fake.media.clear()
    assert (await channel.fetch(event)).file_error == "unavailable"


# --- statuses -------------------------------------------------------------------------------------


async def _status(fake, channel, sent, status: str, **kw) -> None:
    payload = fake.notification(CUSTOMER_NUMBER_ID, statuses=[fake.status(sent, status, **kw)])
    await channel.receive(json.dumps(payload).encode())


async def _recorded(sqlite_db, wamid: str) -> dict:
    async with sqlite_db() as session:
        return await WhatsAppStore(Store(session)).message(wamid)  # type: ignore[return-value]


async def test_statuses_out_of_order_and_twice_never_move_a_message_backwards(fake, channel, sqlite_db, told):
    await _writes(fake, channel)
    await _send(channel, Rendered("hello", purpose="status"))
    sent = fake.sent[-1]
    assert (await _recorded(sqlite_db, sent.wamid))["status"] == "accepted"
    for status in ("read", "delivered", "sent", "read", "failed"):
        await _status(fake, channel, sent, status, error=131000 if status == "failed" else None)
    record = await _recorded(sqlite_db, sent.wamid)
    assert (record["status"], record["purpose"], record["error"]) == ("read", "status", None)
    assert told == []  # a late failure after it was read changes nothing


async def test_a_failure_is_recorded_once_and_the_dispatchers_are_told_once(fake, channel, sqlite_db, told):
    await _writes(fake, channel)
    await _send(channel, Rendered("hello", purpose="reminder"))
    sent = fake.sent[-1]
    await _status(fake, channel, sent, "sent")
    await _status(fake, channel, sent, "failed", error=131049)
    await _status(fake, channel, sent, "failed", error=131049)  # Meta sends it again
    record = await _recorded(sqlite_db, sent.wamid)
    assert (record["status"], record["error"]) == ("failed", "131049: injected")
    assert told == [("whatsapp", "customer", PERSON, "reminder", "failed", "131049: injected")]
    await _status(fake, channel, sent, "delivered")  # it arrived after all
    assert (await _recorded(sqlite_db, sent.wamid))["status"] == "delivered"


# --- rates and links ------------------------------------------------------------------------------


async def test_the_shared_limiter_holds_a_second_message_to_one_person_for_six_seconds_and_a_number_to_80_a_second():
    limiter = SendLimiter()
    assert await limiter.acquire(WHATSAPP, "customer", PERSON, max_wait=0) == 0
    await limiter.sent(WHATSAPP, "customer", PERSON)
    assert 5.5 < await limiter.acquire(WHATSAPP, "customer", PERSON, max_wait=0) <= 6.0
    for n in range(79):
        assert await limiter.acquire(WHATSAPP, "customer", f"86139000{n:05d}", max_wait=0) == 0
    assert await limiter.acquire(WHATSAPP, "customer", "8613900099999", max_wait=0) > 0  # the 81st in a second waits


def test_a_link_opens_the_shops_number_with_the_sign_in_code_prefilled(channel, fake, sqlite_url, tmp_path):
    assert channel.deep_link("customer", "AbC_12-x") == f"https://wa.me/{CUSTOMER_NUMBER}?text=/start%20AbC_12-x"
    assert channel.deep_link("driver", "tok") is None  # technicians are on WhatsApp only where the shop gives them a number
    assert channel.deep_link("group", "tok") is None
    # a shop that gives technicians a number: their invites open it; customers' links come first from WhatsApp when
    # no Telegram customer bot is set, before the web console's
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "m", web_console=True, **whatsapp_settings(fake),
                        whatsapp_staff_phone_number_id=STAFF_NUMBER_ID, whatsapp_staff_number=STAFF_NUMBER)
    container = build(settings, ManualClock(NOW))
    assert list(container.channels) == [WHATSAPP, "web", "robot"] and WHATSAPP in container.relay.senders
    assert container.channels.link("installer", "tok") == f"https://wa.me/{STAFF_NUMBER}?text=/start%20tok"
    assert container.channels.link("customer", "tok") == f"https://wa.me/{CUSTOMER_NUMBER}?text=/start%20tok"
    assert container.channels.link("group", "tok") == "chat#group=tok"  # no groups on WhatsApp


# --- the webhook ----------------------------------------------------------------------------------


@pytest.fixture
async def served(fake, sqlite_url, tmp_path, clock):
    """fieldchat's app with WhatsApp on, in process (no background work), and a client for it."""
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", **whatsapp_settings(fake))
    container = build(settings, clock)
    app = create_app(container, run_background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fieldchat.test") as client:
        yield container, client
    await container.stop()


async def _inbox(container) -> int:
    async with container.sessions() as session:
        return await session.scalar(select(func.count()).select_from(tables.inbox))


async def test_meta_verifies_the_webhook_with_the_shops_token_and_a_wrong_one_is_forbidden(served):
    _container, client = served
    hub = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    answer = await client.get("/whatsapp/webhook", params=hub)
    assert (answer.status_code, answer.text) == (200, "1158201444")
    assert (await client.get("/whatsapp/webhook", params={**hub, "hub.verify_token": VERIFY_TOKEN + "x"})).status_code == 403
    assert (await client.get("/whatsapp/webhook", params={**hub, "hub.mode": "unsubscribe"})).status_code == 403
    assert (await client.get("/whatsapp/webhook", params={**hub, "hub.challenge": "<script>"})).status_code == 400


async def test_a_flipped_byte_reserialised_json_or_a_missing_signature_is_refused_and_nothing_is_stored(served, fake):
    container, client = served
    payload = fake.notification(CUSTOMER_NUMBER_ID, messages=[fake.text(PERSON, "hello")])
    body = json.dumps(payload, separators=(",", ":")).encode()
    signed = fake.sign(body)
    flipped = body.replace(b"hello", b"hellp")
    for sent, header in ((flipped, signed), (json.dumps(payload, indent=1).encode(), signed), (body, None), (body, "sha256=" + "0" * 64)):
        answer = await client.post("/whatsapp/webhook", content=sent, headers={"X-Hub-Signature-256": header} if header else {})
        assert answer.status_code == 401
    assert await _inbox(container) == 0
    async with container.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(tables.whatsapp_chats)) == 0
    answer = await client.post("/whatsapp/webhook", content=body, headers={"X-Hub-Signature-256": signed})
    assert answer.status_code == 200 and await _inbox(container) == 1
    again = await client.post("/whatsapp/webhook", content=body, headers={"X-Hub-Signature-256": signed})  # W3: Meta retries
    assert again.status_code == 200 and await _inbox(container) == 1


async def test_a_signed_body_that_is_not_a_notification_is_answered_and_dropped(served, fake):
    container, client = served
    for body in (b"not json", b'{"object": "page"}', b"[1, 2]"):
        answer = await client.post("/whatsapp/webhook", content=body, headers={"X-Hub-Signature-256": fake.sign(body)})
        assert answer.status_code == 200 and answer.json() == {"ok": False}
    assert await _inbox(container) == 0


async def test_without_whatsapp_settings_there_is_no_webhook(sqlite_url, tmp_path):
    container = build(Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media"), ManualClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(container, run_background=False)), base_url="http://t") as client:
        assert (await client.get("/whatsapp/webhook", params={"hub.mode": "subscribe"})).status_code == 404
        assert (await client.post("/whatsapp/webhook", content=b"{}")).status_code == 404
    await container.stop()


# --- through the outbox relay, as tests/contract/test_channels.py does for the other channels ---------


def _payload(text: str, buttons=(), **extra) -> dict:
    label = lambda words: {"key": "=", "params": {"text": words}}  # noqa: E731
    return {"text": label(text), "buttons": [[{"label": label(w), "data": d} for w, d in buttons]] if buttons else [], "language": "en", **extra}


async def test_over_the_relay_long_keyboards_become_a_list_a_long_action_fails_alone_a_card_is_sent_anew_and_a_closed_window_fails_told(
    fake, channel, sqlite_db, clock, told,
):
    from scheduler.relay import OutboxRelay

    async def drain(relay: OutboxRelay) -> None:  # tests.support.relay would import aiogram (seconds) for the same loop
        while await relay.drain_once():
            pass

    async def outbox(sessions) -> list[dict]:
        async with sessions() as session:
            return [dict(r) for r in (await session.execute(select(tables.outbox).order_by(tables.outbox.c.id))).mappings()]

    await _writes(fake, channel)
    twelve = [(f"Option {n} " + "x" * 250, f"o:{n}") for n in range(1, 13)]
    rows = [
        ("wide", _payload("🔧" * 5000, twelve)),
        ("long-action", _payload("Reassign?", [("Reassign", "ra:" + "7" * 300)])),
        ("card", _payload("Offer: sofa, Mon 9:00", [("Accept", "acc:1")], card="offer:1", purpose="assignment")),
        ("card-taken", _payload("Offer taken by Wang", card="offer:1", purpose="assignment")),
    ]
    async with sqlite_db() as session, session.begin():
        for key, payload in rows:
            await Store(session).outbox_add(platform=WHATSAPP, bot="customer", chat_id=PERSON, payload=payload, dedup_key=key, now=clock.now(),
                                            card=payload.get("card"))
    relay = OutboxRelay(sessions=sqlite_db, senders={WHATSAPP: channel}, clock=clock, tz=timezone.utc, limiter=SendLimiter({}))
    await drain(relay)
    head, wide, card, taken = fake.sent_to(PERSON)
    assert wide.body["interactive"]["type"] == "list" and len(wide.actions()) == 10
    assert all(len(title) <= 20 and title.endswith("…") for title, _ in wide.actions())
    # cut to the channel's 4096 characters, then split: the interactive body holds at most 1024 of them
    assert head.type == "text" and len(wide.text) <= 1024 and len(head.text) + len(wide.text) <= 4096
    assert (card.text, taken.text) == ("Offer: sofa, Mon 9:00", "Offer taken by Wang")  # no edits on WhatsApp: a new message
    by_key = {row["dedup_key"]: row for row in await outbox(sqlite_db)}
    assert by_key["long-action"]["status"] == "failed" and by_key["long-action"]["last_error"].startswith("render: the action of button")
    assert [by_key[k]["status"] for k in ("wide", "card", "card-taken")] == ["sent"] * 3
    assert by_key["card"]["platform_message_id"] == card.wamid

    clock.advance(timedelta(hours=30))
    async with sqlite_db() as session, session.begin():
        await Store(session).outbox_add(platform=WHATSAPP, bot="customer", chat_id=PERSON, payload=_payload("Rate us", [("5", "rt:5")], purpose="survey"),
                                        dedup_key="survey", now=clock.now())
    await drain(relay)
    [survey] = [row for row in await outbox(sqlite_db) if row["dedup_key"] == "survey"]
    assert survey["status"] == "failed" and "no template for 'survey'" in survey["last_error"] and survey["attempts"] == 1
    assert told[-1][3:5] == ("survey", "window") and len(fake.sent_to(PERSON)) == 4


def test_the_whatsapp_token_and_secrets_are_masked_in_every_log_line(fake, sqlite_url, tmp_path):
    import io
    import logging

    from fieldchat import cli

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", **whatsapp_settings(fake))
    try:
        cli.configure_logging(settings)
        root.handlers[-1].setStream(buffer)  # type: ignore[attr-defined]  # the handler `fieldchat serve` logs through
        logging.getLogger("anything").warning("Bearer %s signed with %s, verified by %s", TOKEN, APP_SECRET, VERIFY_TOKEN)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    line = buffer.getvalue()
    assert "Bearer" in line and TOKEN not in line and APP_SECRET not in line and VERIFY_TOKEN not in line
