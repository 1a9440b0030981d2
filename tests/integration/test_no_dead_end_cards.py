"""No dead ends (issue 10): every flow state takes some input or is declared an end, and every dispatcher alert and every
question to a customer offers at least one action, unless it is declared an explicit end."""

from __future__ import annotations

import pytest

from conversations.flows import ALL_FLOWS
from conversations.i18n import catalog
from services import registry
from services.messages import Purpose
from services.notifications import ALERT_ENDS, ROBOT_PLATFORM
from tests.integration.test_reactions import told
from tests.support.harness import World

SPECS = [flow.spec for flow in ALL_FLOWS]


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_every_flow_state_takes_some_input_or_is_declared_an_end(spec):
    for name, state in spec.states.items():
        assert state.steps() or state.end, f"{spec.name}.{name} takes nothing and is not declared an end"
        # what someone gets for anything else there says how to go on, in both languages
        for language in ("en", "zh"):
            assert state.hint in catalog(language), (spec.name, name, language)
    assert "help" in spec.commands and "cancel" in spec.commands  # and every state answers these two


async def test_every_dispatcher_alert_offers_an_action_or_is_declared_an_end(world: World):
    written = await told(world)
    alert_kinds = set()
    for name, messages in written.items():
        for message in messages:
            if message.purpose is not Purpose.ALERT:
                continue
            key = message.text["key"]
            alert_kinds.add(key)
            assert message.buttons or key in ALERT_ENDS, f"{name}: the alert {key!r} leaves the dispatchers without a next step"
    # the alerts this issue found without buttons are among them, with their actions now
    assert {"group.no_technician", "group.no_technician_planned", "alert.no_slot_fits", "alert.booking_overdue",
            "alert.complaint", "group.customer_unreachable", "group.technician_unreachable"} <= alert_kinds


async def test_every_question_to_a_customer_comes_with_its_buttons(world: World):
    written = await told(world)
    for name, messages in written.items():
        for message in messages:
            if message.purpose is Purpose.SURVEY or (message.purpose is Purpose.REMINDER and message.to and message.to.bot == "customer"):
                assert message.buttons, f"{name}: {message.text['key']} asks the customer without a button to answer"


def test_every_declared_end_is_an_alert_someone_sends():
    used = {key for key in ALERT_ENDS if key in catalog("en")}
    assert used == ALERT_ENDS  # a stale declaration would hide a dead end
    assert all(reaction.__name__ for reaction, _types in registry.NOTIFICATIONS)
    assert ROBOT_PLATFORM  # robots get the same alerts (their buttons degrade to text, see bots/render.py)
