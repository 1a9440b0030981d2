"""WhatsApp messages that are more than one Graph message, and messages a template cannot carry whole: each part takes
its own rate place and a retry goes on after the parts Meta accepted (131056 on the second part repeats nothing); what a
template leaves out is kept in the database and sent once the person writes again (also after a restart)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bots.channels import WHATSAPP, PlatformLimits
from bots.photos import MEGABYTE, PhotoLimits
from bots.whatsapp import Number, WhatsAppChannel
from bots.whatsapp_rules import parse_templates
from domain.clock import ManualClock
from scheduler.ratelimit import SendLimiter
from scheduler.relay import OutboxRelay
from storage import tables
from storage.repository import Store
from storage.whatsapp import WhatsAppStore
from tests.support.photos import photo_bytes
from tests.support.whatsapp import APP_SECRET, CUSTOMER_NUMBER, CUSTOMER_NUMBER_ID, PERSON, TEMPLATES_SETTING, TOKEN, VERIFY_TOKEN, fake_whatsapp

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def fake(clock):
    async with fake_whatsapp(clock) as server:
        yield server


def make_channel(fake, sessions, clock, tmp_path) -> WhatsAppChannel:
    return WhatsAppChannel(
        token=TOKEN, app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, numbers=[Number("customer", CUSTOMER_NUMBER_ID, CUSTOMER_NUMBER)],
        graph_url=fake.base_url, graph_version="v21.0", templates=parse_templates(TEMPLATES_SETTING), sessions=sessions, clock=clock,
        engine=None, media_dir=tmp_path / "media", photo_limits=PhotoLimits(max_bytes=MEGABYTE),
    )


@pytest.fixture
async def channel(fake, sqlite_db, clock, tmp_path):
    made = make_channel(fake, sqlite_db, clock, tmp_path)
    yield made
    await made.aclose()


@pytest.fixture
def photo(tmp_path) -> str:
    path = tmp_path / "sofa.jpg"
    path.write_bytes(photo_bytes())
    return str(path)


async def writes(fake, channel, message: dict) -> None:
    payload = fake.notification(CUSTOMER_NUMBER_ID, messages=[message])
    fake.note(payload)
    await channel.receive(json.dumps(payload).encode())


def literal(text: str) -> dict:
    return {"key": "=", "params": {"text": text}}


def payload(text: str, buttons=(), **extra) -> dict:
    return {"text": literal(text), "buttons": [[{"label": literal(w), "data": d} for w, d in buttons]] if buttons else [], "language": "en",
            **extra}


async def queue(sessions, clock, key: str, body: dict) -> None:
    async with sessions() as session, session.begin():
        await Store(session).outbox_add(platform=WHATSAPP, bot="customer", chat_id=PERSON, payload=body, dedup_key=key, now=clock.now())


async def row(sessions, key: str) -> dict:
    async with sessions() as session:
        found = (await session.execute(select(tables.outbox).where(tables.outbox.c.dedup_key == key))).mappings().one()
    return dict(found)


async def drain(relay: OutboxRelay) -> None:
    while await relay.drain_once():
        pass


def relay_for(sessions, channel, clock, limiter: SendLimiter, max_wait: float = 10.0) -> OutboxRelay:
    return OutboxRelay(sessions=sessions, senders={WHATSAPP: channel}, clock=clock, tz=timezone.utc, limiter=limiter, max_wait=max_wait)


# --- part 4: one message, several Graph messages ----------------------------------------------------------


async def test_a_pair_rate_refusal_of_the_second_part_retries_only_that_part(fake, channel, sqlite_db, clock, photo):
    await writes(fake, channel, fake.text(PERSON, "hi"))
    await queue(sqlite_db, clock, "photo+buttons", payload("Your sofa, as loaded", [("Looks fine", "ok:1"), ("Damaged", "dm:1")], photo_path=photo))
    fake.fail_next(400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit", after=1)
    relay = relay_for(sqlite_db, channel, clock, SendLimiter({}))
    await drain(relay)
    [image] = fake.sent_to(PERSON)
    assert image.type == "image" and fake.refused == [(PERSON, 131056)]
    waiting = await row(sqlite_db, "photo+buttons")
    assert (waiting["status"], waiting["attempts"], waiting["sending_since"]) == ("pending", 1, None)
    assert waiting["payload"]["parts"] == {"plan": "image,interactive:button", "sent": [image.wamid]}  # the progress, kept on the row
    assert waiting["next_attempt_at"] == clock.now() + timedelta(seconds=6)  # Meta's pair rate: one message per 6 s

    clock.advance(timedelta(seconds=6))
    await drain(relay)
    sent = fake.sent_to(PERSON)
    assert [s.type for s in sent] == ["image", "interactive"]  # the photo went once
    assert sent[1].actions() == [("Looks fine", "ok:1"), ("Damaged", "dm:1")]
    done = await row(sqlite_db, "photo+buttons")
    assert (done["status"], done["platform_message_id"]) == ("sent", sent[1].wamid)
    assert done["payload"]["parts"]["sent"] == [image.wamid, sent[1].wamid]
    assert len([m for m in fake.media.values() if m.content == photo_bytes()]) == 1  # and was uploaded once


async def test_each_part_takes_its_own_place_in_the_rate_windows_and_a_part_without_one_waits_its_turn(fake, channel, sqlite_db, clock, photo):
    """Two places per minute for the person: three photos and the text with its buttons (four Graph messages) do not fit."""
    await writes(fake, channel, fake.text(PERSON, "hi"))
    album = [{"id": n, "path": photo} for n in (1, 2, 3)]
    await queue(sqlite_db, clock, "three", payload("The sofa from three sides", [("OK", "ok:2")], album=album))
    limiter = SendLimiter({WHATSAPP: PlatformLimits(private="2 per 1 minute", bot="80/second")})
    relay = relay_for(sqlite_db, channel, clock, limiter, max_wait=0.0)
    await drain(relay)
    assert [s.type for s in fake.sent_to(PERSON)] == ["image", "image"]
    held = await row(sqlite_db, "three")
    assert (held["status"], held["attempts"]) == ("pending", 0)  # held back by our own rate: not a failed attempt
    assert held["payload"]["parts"]["plan"] == "image,image,image,interactive:button" and len(held["payload"]["parts"]["sent"]) == 2
    assert held["next_attempt_at"] > clock.now()
    # the window has moved on (a fresh limiter stands for the minute gone by): the rest goes, the first photos do not again
    clock.advance(timedelta(minutes=1))
    relay.limiter = SendLimiter({WHATSAPP: PlatformLimits(private="2 per 1 minute", bot="80/second")})
    await drain(relay)
    sent = fake.sent_to(PERSON)
    assert [s.type for s in sent] == ["image", "image", "image", "interactive"] and fake.refused == []
    assert (await row(sqlite_db, "three"))["status"] == "sent"


class Died(BaseException):
    """The relay's process stops in the middle of a send (nothing it catches)."""


async def test_a_relay_that_dies_between_two_parts_leaves_a_row_the_next_relay_finishes_without_the_first_part(
    fake, channel, sqlite_db, clock, photo, monkeypatch,
):
    await writes(fake, channel, fake.text(PERSON, "hi"))
    await queue(sqlite_db, clock, "photo+buttons", payload("Your sofa", [("Looks fine", "ok:1"), ("Damaged", "dm:1")], photo_path=photo))
    graph, posts = channel._graph, []

    async def dies_on_the_second_part(method, path, **kwargs):
        if path.endswith("/messages"):
            posts.append(kwargs["json"]["type"])
            if len(posts) == 2:
                raise Died()
        return await graph(method, path, **kwargs)

    monkeypatch.setattr(channel, "_graph", dies_on_the_second_part)
    with pytest.raises(Died):
        await relay_for(sqlite_db, channel, clock, SendLimiter({}), max_wait=0.0).drain_once()
    stuck = await row(sqlite_db, "photo+buttons")
    assert stuck["sending_since"] is not None and len(stuck["payload"]["parts"]["sent"]) == 1  # the second part may have gone

    monkeypatch.setattr(channel, "_graph", graph)
    clock.advance(timedelta(minutes=5))  # the dead relay's lease has run out
    await drain(relay_for(sqlite_db, channel, clock, SendLimiter({})))
    assert [s.type for s in fake.sent_to(PERSON)] == ["image", "interactive"]  # the photo once
    done = await row(sqlite_db, "photo+buttons")
    assert (done["status"], done["maybe_sent"]) == ("sent", 1)  # only the part under way was counted as maybe sent


async def test_progress_for_another_shape_of_the_message_is_not_used(fake, channel, sqlite_db, clock):
    """Recorded parts count only for the same plan: a message that goes out as a template after all starts over."""
    await writes(fake, channel, fake.text(PERSON, "hi"))
    stale = payload("On the way", [("Where?", "w:1")], purpose="status", parts={"plan": "image,interactive:button", "sent": ["wamid.old"]})
    await queue(sqlite_db, clock, "other-shape", stale)
    await drain(relay_for(sqlite_db, channel, clock, SendLimiter({})))
    [sent] = fake.sent_to(PERSON)
    assert sent.type == "interactive" and (await row(sqlite_db, "other-shape"))["platform_message_id"] == sent.wamid


# --- part 3: what a template cannot carry ---------------------------------------------------------------


async def test_what_a_template_cannot_carry_is_kept_and_sent_when_the_person_writes_again_even_after_a_restart(
    fake, channel, sqlite_db, clock, tmp_path, photo,
):
    await writes(fake, channel, fake.text(PERSON, "hi"))
    clock.advance(timedelta(hours=25))  # the window has closed
    four = [("Confirm", "cf:7"), ("Problem", "pr:7"), ("Later", "lt:7"), ("Call me", "cm:7")]
    await queue(sqlite_db, clock, "finished", payload("Wang finished. Please confirm.", four, purpose="status", photo_path=photo))
    await drain(relay_for(sqlite_db, channel, clock, SendLimiter({})))
    [template] = fake.sent_to(PERSON)
    assert template.type == "template" and template.actions() == [("", "cf:7"), ("", "pr:7")]  # its two quick replies
    assert template.text == "Wang finished. Please confirm. · (Reply to this message to see it in full, with everything a template cannot show.)"
    async with sqlite_db() as session:
        [owed] = await WhatsAppStore(Store(session)).owed("customer", PERSON)
    assert owed["status"] == "owed" and owed["payload"]["photo_path"] == photo and len(owed["payload"]["buttons"][0]) == 4
    await drain(relay_for(sqlite_db, channel, clock, SendLimiter({})))
    assert len(fake.sent_to(PERSON)) == 1  # owed, not sent: the relay leaves it alone

    # fieldchat restarts: a new channel and relay, the same database; the person writes back
    await channel.aclose()
    again = make_channel(fake, sqlite_db, clock, tmp_path)
    try:
        clock.advance(timedelta(hours=3))
        await writes(fake, again, fake.text(PERSON, "what was that?"))
        await drain(relay_for(sqlite_db, again, clock, SendLimiter({})))
        photo_sent, full = fake.sent_to(PERSON)[1:]
        assert photo_sent.type == "image" and full.type == "interactive" and full.body["interactive"]["type"] == "list"
        assert full.text == "Wang finished. Please confirm." and [data for _, data in full.actions()] == ["cf:7", "pr:7", "lt:7", "cm:7"]
        async with sqlite_db() as session:
            records = await WhatsAppStore(Store(session)).owed("customer", PERSON)
        assert [(r["dedup_key"].endswith(":sent"), r["status"]) for r in records] == [(False, "released"), (True, "sent")]
        # writing again owes nothing more
        await writes(fake, again, fake.text(PERSON, "thanks"))
        await drain(relay_for(sqlite_db, again, clock, SendLimiter({})))
        assert len(fake.sent_to(PERSON)) == 3
    finally:
        await again.aclose()


async def test_pressing_the_templates_own_quick_reply_settles_it_and_nothing_more_is_sent(fake, channel, sqlite_db, clock):
    clock.advance(timedelta(hours=1))  # they never wrote: only a template can go
    three = [("Confirm", "cf:8"), ("Problem", "pr:8"), ("Later", "lt:8")]
    await queue(sqlite_db, clock, "finished", payload("Done. Please confirm.", three, purpose="status"))
    relay = relay_for(sqlite_db, channel, clock, SendLimiter({}))
    await drain(relay)
    [template] = fake.sent_to(PERSON)
    await writes(fake, channel, fake.reply(PERSON, template, "cf:8"))
    await drain(relay)
    assert fake.sent_to(PERSON) == [template]
    async with sqlite_db() as session:
        [owed] = await WhatsAppStore(Store(session)).owed("customer", PERSON)
    assert owed["status"] == "answered"


async def test_a_template_that_carries_the_whole_message_owes_nothing(fake, channel, sqlite_db, clock):
    clock.advance(timedelta(hours=1))
    await queue(sqlite_db, clock, "short", payload("Li will come.", [("OK", "ok:9")], purpose="status"))
    await drain(relay_for(sqlite_db, channel, clock, SendLimiter({})))
    [template] = fake.sent_to(PERSON)
    assert template.text == "Li will come." and template.actions() == [("", "ok:9")]
    async with sqlite_db() as session:
        assert await WhatsAppStore(Store(session)).owed("customer", PERSON) == []


async def test_a_reply_that_overtakes_the_templates_record_still_gets_the_rest(fake, channel, sqlite_db, clock, monkeypatch):
    """They answer while the template's send is being recorded: their message finds nothing owed yet, so the record
    itself, seeing the window open, queues the rest at once."""
    clock.advance(timedelta(hours=1))
    graph = channel._graph

    async def and_they_answer_at_once(method, path, **kwargs):
        answer = await graph(method, path, **kwargs)
        if kwargs.get("json", {}).get("type") == "template":
            await writes(fake, channel, fake.text(PERSON, "yes?"))
        return answer

    monkeypatch.setattr(channel, "_graph", and_they_answer_at_once)
    await queue(sqlite_db, clock, "finished", payload("Done. Please confirm.", [("Confirm", "cf:9"), ("Problem", "pr:9"), ("Later", "lt:9")],
                                                      purpose="status"))
    await drain(relay_for(sqlite_db, channel, clock, SendLimiter({})))
    template, full = fake.sent_to(PERSON)
    assert template.type == "template" and full.type == "interactive" and [d for _, d in full.actions()] == ["cf:9", "pr:9", "lt:9"]
