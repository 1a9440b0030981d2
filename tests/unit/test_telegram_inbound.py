"""Bot API updates become neutral events: commands with deep-link payloads, live locations, group buttons."""

from __future__ import annotations

from aiogram.types import Update

from bots.telegram import to_inbound
from services.messages import InboundKind

USER = {"id": 42, "is_bot": False, "first_name": "Wang", "language_code": "zh-hans"}
PRIVATE = {"id": 42, "type": "private", "first_name": "Wang"}


def update(**fields) -> Update:
    return Update.model_validate({"update_id": 7, **fields})


def test_a_deep_link_start_becomes_a_command_with_its_payload():
    message = {"message_id": 1, "date": 0, "chat": PRIVATE, "from": USER, "text": "/start@acme_bot abc_DEF-123",
               "entities": [{"type": "bot_command", "offset": 0, "length": 15}]}
    event = to_inbound("customer", update(message=message))
    assert (event.kind, event.text, event.payload, event.language_code) == (InboundKind.COMMAND, "start", "abc_DEF-123", "zh-hans")


def test_live_location_shares_and_their_edits_are_marked_live():
    location = {"latitude": 31.2, "longitude": 121.4, "live_period": 900}
    first = to_inbound("staff", update(message={"message_id": 5, "date": 0, "chat": PRIVATE, "from": USER, "location": location}))
    moved = to_inbound("staff", update(edited_message={"message_id": 5, "date": 0, "edit_date": 60, "chat": PRIVATE, "from": USER,
                                                       "location": {**location, "latitude": 31.21}}))
    plain = to_inbound("staff", update(message={"message_id": 6, "date": 0, "chat": PRIVATE, "from": USER,
                                               "location": {"latitude": 31.2, "longitude": 121.4}}))
    assert first.live and moved.live and not plain.live
    assert moved.kind is InboundKind.LOCATION and moved.latitude == 31.21


def test_an_edited_text_is_ignored_and_a_button_in_a_group_names_the_presser():
    edited = update(edited_message={"message_id": 5, "date": 0, "edit_date": 60, "chat": PRIVATE, "from": USER, "text": "typo"})
    assert to_inbound("staff", edited) is None
    group = {"id": -100123, "type": "supergroup", "title": "Ops"}
    press = update(callback_query={"id": "cb1", "from": USER, "chat_instance": "x", "data": "xa:3",
                                   "message": {"message_id": 9, "date": 0, "chat": group, "text": "alert"}})
    event = to_inbound("staff", press)
    assert (event.kind, event.chat_type, event.user_id, event.chat.chat_id) == (InboundKind.BUTTON, "group", "42", "-100123")
