"""A scanning owner's proof as pure rules and steps (issue 14 part 2): numbers compared digit by digit with a country code
or not, the WhatsApp scan matched at once, Telegram's own contact only, a typed number handed to the handler."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conversations.flow import StepInput
from conversations.flows import owner_check
from conversations.flows.customer import CUSTOMER_FLOW
from conversations.flows.owner_check import VERIFY
from conversations.flows.scan_report import REPORT
from domain import commands as c
from domain.owner_check import chat_key, looks_like_phone, phone_digits, same_phone
from domain.policy import ServicePolicy
from services.actions import OwnerCheckCancel, OwnerCheckStart, decode, encode
from services.device_views import DeviceInfo, DevicesView, Scan
from services.messages import ChatRef, Inbound, InboundKind, StepResult
from tests.support.harness import parts

NOW = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)
DEVICE = DeviceInfo(4, "Split AC", "aircon", "Gree", "KFR", "GR-1", "bedroom", "Home", None, None)


@pytest.mark.parametrize(("given", "on_file"), [
    ("13912345678", "13912345678"), ("+86 139 1234 5678", "13912345678"), ("+86 139 1234 5678", "+8613912345678"),
    ("0086 13912345678", "13912345678"), ("+44 7700 900123", "07700 900123"), ("(030) 1234567", "+49 30 1234567"),
])
def test_the_same_number_written_differently_matches(given, on_file):
    assert same_phone(given, on_file) and same_phone(on_file, given)


def test_a_whatsapp_id_or_a_telegram_contact_is_international_without_its_plus():
    assert same_phone("8613912345678", "139-1234-5678", given_international=True)
    assert not same_phone("8613912345678", "139-1234-5678")  # typed without "+": the digits alone decide


@pytest.mark.parametrize(("given", "on_file"), [
    ("13912345679", "13912345678"), ("2345678", "13912345678"), ("912345678", "13912345678"),  # a tail is not the number
    ("12345", "12345"), ("", ""), ("+9999 13912345678", "13912345678"), ("13912345678", ""), ("+86 912345678", "+86 13912345678"),
])
def test_other_numbers_or_fragments_do_not_match(given, on_file):
    assert not same_phone(given, on_file)


def test_what_can_be_a_typed_number():
    assert looks_like_phone("+86 (139) 1234-5678") and phone_digits("+86 (139) 1234-5678") == "8613912345678"
    assert not looks_like_phone("my phone") and not looks_like_phone("123") and not looks_like_phone("1" * 41)
    assert chat_key("whatsapp", "customer", "8613912345678") != chat_key("whatsapp", "customer", "8613912345679")
    assert "8613912345678" not in chat_key("whatsapp", "customer", "8613912345678")


def event(kind: InboundKind, text: str = "", platform: str = "web", chat_id: str = "u1", **kw) -> Inbound:
    return Inbound(chat=ChatRef(platform, "customer", chat_id), update_id="1", kind=kind, user_id=chat_id, text=text, **kw)


def view(customer_id: int | None = None, scan: Scan | None = None) -> DevicesView:
    return DevicesView(customer_id, "", None, (), scan=scan)


# the channel facts the composition root copies from the capability records
POLICY = ServicePolicy(phone_chat_platforms=frozenset({"whatsapp"}), contact_platforms=frozenset({"telegram"}))


def run(v: DevicesView, ev: Inbound, state: str, data: dict | None = None, policy: ServicePolicy = POLICY) -> StepResult:
    return CUSTOMER_FLOW.step(StepInput(ev, state, data or {}, v, NOW, "en", policy))


def keys(result: StepResult) -> list[str]:
    return [key for m in result.replies for key in parts(m.text)]


def actions(result: StepResult) -> list:
    return [decode(b.data) for m in result.replies for row in m.buttons for b in row]


SCAN = Scan(9, (DEVICE,), False, "13912345678")


def test_a_whatsapp_scan_from_the_owner_s_own_number_opens_the_menu_and_binds_by_command():
    result = run(view(scan=SCAN), event(InboundKind.COMMAND, "start", "whatsapp", "8613912345678", payload="tok"), "new")
    assert keys(result) == ["device.menu"]
    [command] = result.commands
    assert isinstance(command, c.VerifyDeviceOwner) and (command.token, command.via, command.chat.chat_id) == ("tok", "chat_number", "8613912345678")
    # a channel whose chat ids are not phone numbers (by its capability record) never binds by its id
    unknown = run(view(scan=SCAN), event(InboundKind.COMMAND, "start", "whatsapp", "8613912345678", payload="tok"), "new", policy=ServicePolicy())
    assert keys(unknown) == ["device.foreign_scan"] and unknown.commands == ()


@pytest.mark.parametrize(("platform", "chat_id"), [("whatsapp", "8613700001111"), ("web", "8613912345678"), ("telegram", "13912345678")])
def test_any_other_scan_from_a_chat_bound_to_nobody_is_private_and_offers_the_check(platform, chat_id):
    result = run(view(scan=SCAN), event(InboundKind.COMMAND, "start", platform, chat_id, payload="tok"), "new")
    assert keys(result) == ["device.foreign_scan"] and result.commands == () and result.state == REPORT
    assert OwnerCheckStart() in actions(result)


def test_a_chat_of_another_customer_is_not_offered_the_check_even_on_the_owner_s_whatsapp_number():
    result = run(view(3, SCAN), event(InboundKind.COMMAND, "start", "whatsapp", "8613912345678", payload="tok"), "idle")
    assert keys(result) == ["device.foreign_scan"] and result.commands == () and OwnerCheckStart() not in actions(result)


def test_it_is_mine_asks_for_the_number_and_on_telegram_offers_the_own_contact_button():
    data = {"token": "tok"}
    web = run(view(), event(InboundKind.BUTTON, encode(OwnerCheckStart())), REPORT, data)
    assert keys(web) == ["device.owner_ask"] and web.state == VERIFY and web.data["token"] == "tok"
    assert all(m.request is None for m in web.replies)
    tg = run(view(), event(InboundKind.BUTTON, encode(OwnerCheckStart()), "telegram"), REPORT, data)
    assert keys(tg) == ["device.owner_ask", "device.owner_share"] and tg.replies[-1].request == "contact"


def _step(ev: Inbound, v: DevicesView | None = None) -> StepResult:
    return run(v or view(), ev, VERIFY, {"token": "tok"})


def test_a_typed_number_goes_to_the_handler_and_text_that_is_no_number_gets_a_hint():
    [command] = _step(event(InboundKind.TEXT, " +86 139 1234 5678 ")).commands
    assert isinstance(command, c.VerifyDeviceOwner) and (command.via, command.phone) == ("typed", "+86 139 1234 5678")
    assert command.secret_input and "139" not in repr(command)
    hint = _step(event(InboundKind.TEXT, "where is my order"))
    assert keys(hint) == ["device.owner_phone_format"] and hint.commands == () and OwnerCheckCancel() in actions(hint)


def test_only_the_sender_s_own_contact_goes_to_the_handler():
    refused = _step(event(InboundKind.CONTACT, platform="telegram", phone="+8613912345678", own_contact=False))
    assert keys(refused) == ["device.owner_contact_not_own"] and refused.commands == ()
    [command] = _step(event(InboundKind.CONTACT, platform="telegram", phone="+8613912345678", own_contact=True)).commands
    assert (command.via, command.phone) == ("contact", "+8613912345678") and not command.secret_input


def test_once_bound_what_the_chat_writes_is_free_text_again():
    result = _step(event(InboundKind.TEXT, "13912345678"), view(9))
    assert all(not isinstance(cmd, c.VerifyDeviceOwner) for cmd in result.commands) and result.state != VERIFY


def test_not_now_goes_back_to_the_report():
    result = _step(event(InboundKind.BUTTON, encode(OwnerCheckCancel())))
    assert keys(result) == ["device.owner_cancelled"] and result.state == REPORT and result.data["token"] == "tok"
    assert owner_check.VERIFY in CUSTOMER_FLOW.states
