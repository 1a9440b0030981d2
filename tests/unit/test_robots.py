"""Group-alert robots without a server: signatures as the platforms define them, byte-exact cutting, payloads, mentions."""

from __future__ import annotations

from urllib.parse import unquote


from bots.robots import (
    RobotSink,
    build_payload,
    dingtalk_sign,
    feishu_sign,
)
from bots.channels import TextMeasure
from bots.render import cut
from services.messages import Rendered

# --- signing ------------------------------------------------------------------------------------


def test_signatures_follow_g2_and_g3():
    import base64
    import hashlib
    import hmac

    ts_ms, secret = 1_714_986_433_000, "SECexample"
    expected = base64.b64encode(hmac.new(secret.encode(), f"{ts_ms}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    assert unquote(dingtalk_sign(secret, ts_ms)) == expected
    # Feishu: the string to sign is the HMAC key and the message is empty
    key = f"{ts_ms // 1000}\n{secret}".encode()
    assert feishu_sign(secret, ts_ms // 1000) == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


# --- payload limits -----------------------------------------------------------------------------


def test_cutting_to_utf8_bytes_keeps_whole_characters():
    text = "空调安装🔧ok" * 10
    for limit in range(3, 60):
        shortened = cut(text, limit, TextMeasure.UTF8_BYTES)
        assert len(shortened.encode()) <= limit
        assert shortened.endswith("…")
        assert text.startswith(shortened[:-1])
    assert cut("短", 2048, TextMeasure.UTF8_BYTES) == "短"


def test_buttons_become_a_link_or_plain_labels():
    message = Rendered("异常 #7\n客户:张**", buttons=[[("👌 已知悉", "xa:7"), ("🔁 改派", "xr:7")]])
    linked = RobotSink("dingtalk", "d", "https://oapi.dingtalk.com/robot/send?access_token=x1234", details_url="https://fc.example/x/7")
    card = build_payload(linked, message)
    assert card["msgtype"] == "actionCard"
    assert card["actionCard"]["singleURL"] == "https://fc.example/x/7"
    assert "张\\*\\*" in card["actionCard"]["text"]  # masked data does not turn into markdown bold
    plain = build_payload(RobotSink("dingtalk", "d", "https://oapi.dingtalk.com/robot/send?access_token=x1234", keyword="告警"), message)
    assert plain == {"msgtype": "text", "text": {"content": "告警 异常 #7\n客户:张**\n[👌 已知悉] [🔁 改派]"}}
    slack = build_payload(RobotSink("slack", "s", "https://hooks.slack.com/services/T1/B1/X1234", details_url="https://fc.example/x/7"), message)
    assert slack["blocks"][-1]["text"]["text"] == "<https://fc.example/x/7|Open in fieldchat>"
    assert slack["blocks"][0]["text"] == {"type": "plain_text", "text": "异常 #7\n客户:张**", "emoji": True}
    wecom = build_payload(RobotSink("wecom", "w", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1234", details_url="https://fc.example/x/7"), message)
    assert wecom["msgtype"] == "markdown"


def test_mentions_in_free_text_cannot_ping_everyone():
    note = Rendered('门口没人 <at user_id="all">所有人</at>')
    feishu = build_payload(RobotSink("feishu", "f", "https://open.feishu.cn/open-apis/bot/v2/hook/abcd1234"), note)
    assert '<at user_id="all">' not in feishu["content"]["text"]
    assert feishu["content"]["text"].replace("\u200b", "") == note.text  # readers see the same text


# --- rate limits --------------------------------------------------------------------------------


# --- failover -----------------------------------------------------------------------------------


# --- secrets ------------------------------------------------------------------------------------


# --- a real alert, end to end -------------------------------------------------------------------


