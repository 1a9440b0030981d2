"""Living messages, the pure parts: cards on outbound messages, joining answers into one message, marking answers to a press."""

from __future__ import annotations

import pytest

from conversations.engine import answering
from conversations.i18n import render
from services.messages import Button, ChatRef, Inbound, InboundKind, Outbound, buttons, joined, t

CHAT = ChatRef("telegram", "customer", "1")


def test_a_card_is_stored_by_its_kind_and_id_and_plain_messages_carry_none():
    assert Outbound(t("tech.offer"), card=("offer", 7)).payload()["card"] == "offer:7"
    assert "card" not in Outbound(t("tech.offer")).payload()


def test_joined_answers_read_as_one_message_with_every_button():
    welcome = Outbound(t("customer.welcome", name="Zhang"))
    summary = Outbound(t("customer.order_summary", order=1, product="Sofa", address="Road", visits=[]), card=("order", 1))
    question = Outbound(t("common.cancelled"), buttons([Button(t("btn.skip"), "skip")]))
    one = joined(welcome, summary, question)
    assert one.card == ("order", 1) and [b.data for row in one.buttons for b in row] == ["skip"]
    shown = render(one.payload(), "en")
    last = render(Outbound(t("common.cancelled")).payload(), "en").text
    assert shown.text.startswith("Hello Zhang") and "\n\nOrder #1" in shown.text and shown.text.endswith("\n\n" + last)
    assert "{" not in render(one.payload(), "zh").text


def test_only_messages_to_one_chat_without_photos_and_with_one_request_can_be_joined():
    with pytest.raises(ValueError):
        joined(Outbound(t("a")), Outbound(t("b"), to=CHAT))
    with pytest.raises(ValueError):
        joined(Outbound(t("a"), request="location"), Outbound(t("b"), request="contact"))
    with pytest.raises(ValueError):
        joined(Outbound(t("a")), Outbound(t("b"), photo_path="/x.jpg"))
    assert joined(Outbound(t("a")), Outbound(t("b"), request="location")).request == "location"


def _event(kind: InboundKind, message_id: str | None = "55") -> Inbound:
    return Inbound(chat=CHAT, update_id="1", kind=kind, user_id="1", text="acc:7", message_id=message_id)


def test_a_card_answering_a_press_names_the_pressed_message_and_nothing_else_does():
    replies = (Outbound(t("tech.accepted"), card=("offer", 7)), Outbound(t("tech.hint")),
               Outbound(t("group.x"), card=("exception", 1), to=ChatRef("telegram", "staff", "-5")))
    marked = answering(_event(InboundKind.BUTTON), replies)
    assert [m.answers for m in marked] == ["55", None, None]
    assert marked[0].payload()["answers"] == "55"
    assert answering(_event(InboundKind.COMMAND), replies) == replies  # a typed command: its answer is a new message
