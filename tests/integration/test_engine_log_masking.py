"""The engine's warnings name the chat without giving a person's phone number away: chat ids that are phone numbers
(WhatsApp's, by the capability record) are masked as the relay masks them; other chat ids stay whole for debugging."""

from __future__ import annotations

import logging

from bots.channels import TELEGRAM, WHATSAPP, loggable_chat, phone_platforms
from conversations.engine import Engine, MediaUnavailable
from services.messages import ChatRef, Inbound, InboundKind
from tests.support.harness import World

PHONE = "8613912345678"
SHOWN = "861****5678"


def event(platform: str, chat_id: str, kind: InboundKind = InboundKind.TEXT, **fields) -> Inbound:
    return Inbound(ChatRef(platform, "customer", chat_id), f"u-{platform}-{kind.value}", kind, chat_id, text="hello", **fields)


def test_a_chat_ref_is_masked_by_the_same_rule_the_relay_uses():
    assert phone_platforms() == frozenset({WHATSAPP})
    assert ChatRef(WHATSAPP, "customer", PHONE).loggable(phone_platforms()) == f"whatsapp:customer:{SHOWN}"
    assert loggable_chat(WHATSAPP, PHONE) == SHOWN
    assert ChatRef(TELEGRAM, "customer", "12345678").loggable(phone_platforms()) == "telegram:customer:12345678"
    assert ChatRef(TELEGRAM, "customer", "12345678").loggable(None) == "telegram:customer:123****5678"  # not told: masked


async def test_the_engines_warnings_mask_phone_number_chat_ids(sqlite_url, tmp_path, caplog, monkeypatch):
    world = await World.create(sqlite_url, tmp_path)
    engine = world.container.engine

    def broken_flow(event):
        raise RuntimeError("a bug in a step")

    try:
        monkeypatch.setattr(engine, "_flows", broken_flow)
        with caplog.at_level(logging.WARNING, logger="conversations.engine"):
            await engine.handle(event(WHATSAPP, PHONE))
            await engine.handle(event(TELEGRAM, "12345678"))
        failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
        assert failed == [f"update u-whatsapp-text of whatsapp:customer:{SHOWN} failed", "update u-telegram-text of telegram:customer:12345678 failed"]
        assert PHONE not in caplog.text

        # a photo that cannot be fetched is tried again: its warning masks the number too
        class Unreachable:
            async def fetch(self, event):
                raise MediaUnavailable("graph 503")

        caplog.clear()
        photo = Engine(bus=world.container.bus, flows=broken_flow, media={WHATSAPP: Unreachable()}, phone_platforms=phone_platforms())
        monkeypatch.setattr(photo, "_downloads", lambda event: True)
        monkeypatch.setattr(photo, "_expects_photo", _always)
        with caplog.at_level(logging.WARNING, logger="conversations.engine"):
            await photo.handle(event(WHATSAPP, PHONE, InboundKind.PHOTO, file_id="m1"))
        assert f"whatsapp:customer:{SHOWN}: photo not fetched (graph 503)" in caplog.text and PHONE not in caplog.text
    finally:
        await world.close()


async def _always(session, event) -> bool:
    return True
