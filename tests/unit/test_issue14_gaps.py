"""The gaps of issue 14 as flow steps: a dispatcher records the customer's phone answer to a price increase (only a
dispatcher, as theirs to check by region in the handler), and the customer's own answer leaves the reply to the
question card itself (edited without its buttons by the reaction)."""

from __future__ import annotations

from types import SimpleNamespace

from conversations.flow import StepInput
from conversations.flows.price_increase import on_agree, on_refuse
from domain import commands as c
from domain.policy import ServicePolicy
from services.actions import AgreePriceIncrease, PhoneAgreedPriceIncrease, PhoneRefusedPriceIncrease, RefusePriceIncrease, decode, encode
from services.messages import InboundKind
from services.views import DispatcherView
from tests.unit.test_settlement import DORA, NOW, group_event, replies, step


def test_the_phone_answer_buttons_carry_the_change_and_forged_ones_are_nothing():
    assert encode(PhoneAgreedPriceIncrease(7)) == "pcpy:7" and encode(PhoneRefusedPriceIncrease(7)) == "pcpn:7"
    for forged in ("pcpy:0", "pcpy:-1", "pcpy:x", "pcpn:", "pcpn:1:2", "pcpy:99999999999"):
        assert decode(forged) is None


def test_a_dispatcher_records_the_customers_phone_answer_and_nobody_else_can():
    agreed = step(DORA, group_event(InboundKind.BUTTON, encode(PhoneAgreedPriceIncrease(7))))
    assert agreed.commands == (c.RecordPriceIncreaseAnswer(7, True, 2),) and replies(agreed) == []  # the card changes in place
    refused = step(DORA, group_event(InboundKind.BUTTON, encode(PhoneRefusedPriceIncrease(7))))
    assert refused.commands == (c.RecordPriceIncreaseAnswer(7, False, 2),)
    stranger = step(DispatcherView(1, None, None, None), group_event(InboundKind.BUTTON, encode(PhoneAgreedPriceIncrease(7)), user="x"))
    assert stranger.commands == () and replies(stranger) == ["dispatcher.not_allowed"]


def test_the_customers_answer_is_shown_by_the_question_card_not_a_separate_reply():
    inp = StepInput(group_event(InboundKind.BUTTON, "pcy:7"), "idle", {}, SimpleNamespace(customer_id=5), NOW, "en", ServicePolicy())
    agreed = on_agree(inp, AgreePriceIncrease(7))
    assert agreed.commands == (c.AnswerPriceIncrease(7, 5, True),) and agreed.replies == ()
    assert on_refuse(inp, RefusePriceIncrease(7)).commands == (c.AnswerPriceIncrease(7, 5, False),)
