"""Composing a digest: alerts that queued behind a busy group channel, numbered, within the channel's budget."""

from __future__ import annotations



from bots.channels import ROBOT_CAPABILITIES, TELEGRAM_CAPABILITIES
from services.messages import Rendered
from scheduler import digest

GROUP = "-6001"


def header(count: int) -> str:
    return f"{count} queued:"


# --- composing ------------------------------------------------------------------------------------


def test_a_digest_numbers_each_alert_and_its_buttons_and_keeps_their_order():
    alerts = [Rendered(f"alert {n}", [[("Reassign", f"ra:{n}"), ("Call", f"call:{n}")]]) for n in range(3)]
    message, count = digest.compose(header, alerts, TELEGRAM_CAPABILITIES)
    assert count == 3
    assert message.text == "3 queued:\n\n#1 alert 0\n\n#2 alert 1\n\n#3 alert 2"
    assert message.buttons == [
        [("#1 Reassign", "ra:0"), ("#1 Call", "call:0")],
        [("#2 Reassign", "ra:1"), ("#2 Call", "call:1")],
        [("#3 Reassign", "ra:2"), ("#3 Call", "call:2")],
    ]


def test_a_digest_stops_where_the_channel_budget_ends_and_never_cuts_an_alert():
    long_zh = "师傅上门安装空调,客户要求改期。" * 12  # ~576 bytes each
    alerts = [Rendered(f"{n} {long_zh}", [[("改派", f"ra:{n}")]]) for n in range(6)]
    message, count = digest.compose(header, alerts, ROBOT_CAPABILITIES)
    assert count == 3  # a fourth would pass WeCom's 2048-byte text limit once labels are appended
    assert len(message.text.encode()) + sum(len(label.encode()) + 3 for row in message.buttons for label, _ in row) <= 1800
    assert message.text.count(long_zh) == 3 and message.text.endswith(f"#3 2 {long_zh}")


def test_one_alert_or_one_that_cannot_share_a_message_goes_out_as_it_is():
    single = Rendered("only", [[("Call", "call:1")]])
    assert digest.compose(header, [single], TELEGRAM_CAPABILITIES) == (single, 1)
    huge = Rendered("x" * 3000)
    assert digest.compose(header, [huge, Rendered("y" * 3000)], TELEGRAM_CAPABILITIES) == (huge, 1)


def test_at_most_ten_alerts_share_a_digest():
    alerts = [Rendered(f"a{n}") for n in range(15)]
    message, count = digest.compose(header, alerts, TELEGRAM_CAPABILITIES)
    assert count == digest.MAX_ALERTS and message.text.startswith("10 queued:")
