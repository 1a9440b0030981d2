"""The WhatsApp side of the tests: the business numbers, tokens and templates the fake Cloud API and fieldchat share."""

from __future__ import annotations

from fieldchat.fakes.whatsapp_server import FakeWhatsApp, Template

TOKEN = "EAAG-whatsapp-token-for-tests"
APP_SECRET = "whatsapp-app-secret-for-tests"
VERIFY_TOKEN = "whatsapp-verify-token-for-tests"
CUSTOMER_NUMBER_ID, CUSTOMER_NUMBER = "100000000000001", "8613800000000"
STAFF_NUMBER_ID, STAFF_NUMBER = "100000000000002", "8613800000099"
PERSON = "8613912345678"  # a customer's WhatsApp id (a +86 number: they read Chinese)
ABROAD = "447700900123"  # a customer abroad (English)
# the shop's approved templates: status updates (two quick replies) and reminders; no survey template
TEMPLATES_SETTING = (
    '{"status": {"name": "visit_update", "languages": {"en": "en_US", "zh": "zh_CN"}, "buttons": 2},'
    ' "reminder": {"name": "appointment_reminder", "languages": {"en": "en_US"}}}'
)
APPROVED = {"visit_update": Template(("en_US", "zh_CN"), buttons=2), "appointment_reminder": Template(("en_US",))}


def fake_whatsapp(clock) -> FakeWhatsApp:
    """The fake Cloud API on Meta's time = the test's injected clock (None: set ``clock`` on it once there is one)."""
    return FakeWhatsApp(
        token=TOKEN, app_secret=APP_SECRET, numbers={CUSTOMER_NUMBER_ID: CUSTOMER_NUMBER, STAFF_NUMBER_ID: STAFF_NUMBER},
        clock=(lambda: clock.now().timestamp()) if clock is not None else (lambda: 0.0), templates=APPROVED,
    )


def whatsapp_settings(fake: FakeWhatsApp) -> dict:
    """FIELDCHAT_WHATSAPP_* for a fieldchat that talks to ``fake`` (never anything but 127.0.0.1)."""
    return dict(
        whatsapp_token=TOKEN, whatsapp_app_secret=APP_SECRET, whatsapp_verify_token=VERIFY_TOKEN,
        whatsapp_phone_number_id=CUSTOMER_NUMBER_ID, whatsapp_number=CUSTOMER_NUMBER, whatsapp_graph_url=fake.base_url,
        whatsapp_templates=TEMPLATES_SETTING,
    )
