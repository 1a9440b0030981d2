"""WhatsApp voice notes against the fake Cloud API (issue 14): an "audio" message becomes a voice event, fetched in the same
two steps as a photo, its bytes sniffed as audio and its size bounded before the checked copy is stored."""

from __future__ import annotations

import pytest

from bots.photos import MEGABYTE
from bots.whatsapp import parse_notification
from services.messages import InboundKind
from tests.contract.test_whatsapp import NOW, channel, clock, fake, told  # noqa: F401 - the fixtures: the fake API and a channel on it
from tests.support.whatsapp import CUSTOMER_NUMBER_ID, PERSON

OGG = b"OggS\x00\x02" + bytes(500)


def _event(fake, message):  # noqa: F811
    [(event, _at)] = parse_notification(fake.notification(CUSTOMER_NUMBER_ID, messages=[message]), {CUSTOMER_NUMBER_ID: "customer"}, NOW).messages
    return event


@pytest.mark.parametrize("voice", [True, False])
async def test_an_audio_message_is_a_voice_event_and_its_checked_copy_is_stored(fake, channel, tmp_path, voice):  # noqa: F811
    event = _event(fake, fake.audio(PERSON, OGG, voice=voice))
    assert event.kind is InboundKind.VOICE and event.file_id
    fetched = await channel.fetch(event)
    assert fetched.file_error is None and fetched.file_path and fetched.file_path.endswith(".ogg")
    stored = list((tmp_path / "media" / "whatsapp" / "customer").iterdir())
    assert [str(p) for p in stored] == [fetched.file_path] and stored[0].read_bytes() == OGG


async def test_what_is_not_audio_or_too_large_is_refused_and_nothing_is_stored(fake, channel, tmp_path):  # noqa: F811
    not_audio = await channel.fetch(_event(fake, fake.audio(PERSON, b"MZ\x90\x00 an executable" + bytes(100))))
    assert not_audio.file_error == "not_audio" and not not_audio.file_path
    claimed = await channel.fetch(_event(fake, fake.audio(PERSON, OGG, claimed_size=2 * MEGABYTE)))
    assert claimed.file_error == "too_big"  # the lookup's size claim: not even downloaded
    lying = await channel.fetch(_event(fake, fake.audio(PERSON, OGG + bytes(2 * MEGABYTE), claimed_size=100)))
    assert lying.file_error == "too_big"  # the download cut off past the limit
    assert not (tmp_path / "media" / "whatsapp" / "customer").exists() or not list((tmp_path / "media" / "whatsapp" / "customer").iterdir())


def test_audio_with_another_type_or_without_an_id_is_not_a_voice_note(fake):  # noqa: F811
    video = fake.message(PERSON, "audio", {"id": "123", "mime_type": "video/mp4"})
    assert _event(fake, video).kind is InboundKind.UNSUPPORTED
    assert _event(fake, fake.message(PERSON, "audio", {"mime_type": "audio/ogg"})).kind is InboundKind.UNSUPPORTED  # nothing to fetch
    no_body = fake.message(PERSON, "audio", {})
    no_body["audio"] = "not an object"
    assert parse_notification(fake.notification(CUSTOMER_NUMBER_ID, messages=[no_body]), {CUSTOMER_NUMBER_ID: "customer"}, NOW).messages == ()
    assert _event(fake, fake.message(PERSON, "video", {"id": "9"})).kind is InboundKind.UNSUPPORTED
