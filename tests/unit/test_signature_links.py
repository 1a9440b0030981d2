"""The rules of signature pad links, fast: the token's shape and signature, link buttons as each channel shows them,
the signature policy setting, and what the pad accepts as a signature image."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from PIL import Image, ImageDraw

from bots.channels import ROBOT_CAPABILITIES, TELEGRAM_CAPABILITIES, WEB_CAPABILITIES, WHATSAPP_CAPABILITIES
from bots.render import fit
from bots.telegram_common import inline_action
from domain.signatures import SignaturePolicy, SignatureState, Stage, stage_for, state_of
from domain.kind_policy import policy_for
from services import signed_links
from services.messages import Rendered, link_button, link_of, t
from services.signatures import _mac
from webhooks.signature_pad import checked_png

KEY = b"k" * 32
REQUEST = {"id": 7, "visit_id": 12, "technician_id": 3, "stage": "delivery", "created_at": datetime(2026, 11, 23, tzinfo=timezone.utc),
           "expires_at": datetime(2026, 11, 23, 0, 30, tzinfo=timezone.utc), "used_at": None}


def test_a_token_is_the_row_id_and_a_signature_over_what_the_link_does():
    mac = _mac(KEY, REQUEST)  # type: ignore[arg-type]
    token = signed_links.token(7, mac)
    assert signed_links.parse_token(token) == (7, mac)
    # every field the link is bound to changes its signature: a link for one visit or technician is none for another
    for field, other in (("visit_id", 13), ("technician_id", 4), ("stage", "completion"), ("id", 8),
                         ("expires_at", datetime(2026, 11, 24, tzinfo=timezone.utc))):
        assert not signed_links.matches(_mac(KEY, {**REQUEST, field: other}), mac), field  # type: ignore[arg-type]
    assert not signed_links.matches(_mac(b"x" * 32, REQUEST), mac)  # type: ignore[arg-type]
    # the purpose is signed too: a robot action link's signature over the same values is not a pad's
    assert signed_links.mac(KEY, "robot-action", 7, 12) != signed_links.mac(KEY, "signature-pad", 7, 12)


@pytest.mark.parametrize("token", ["", "7", "7.", ".abc", "x.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                   "-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "7.AAAA", "7.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                   "99999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "７.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_malformed_tokens_are_refused_before_any_lookup(token):
    assert signed_links.parse_token(token) is None


def _message(url: str, app: bool = True) -> Rendered:
    button = link_button(t("btn.signature_pad"), url, app=app)
    return Rendered(text="Sign here", buttons=[[("Open the pad", button.data), ("Report", "rep:12")]])


def test_a_link_button_is_a_button_where_the_channel_opens_links_and_a_line_of_text_elsewhere():
    url = "https://fc.example/sign/7.abc"
    assert link_of(link_button(t("x"), url, app=True).data) == (url, True)
    assert link_of("rep:12") is None
    on_telegram = fit(_message(url), TELEGRAM_CAPABILITIES)
    assert on_telegram.buttons == [[("Open the pad", f"app:{url}"), ("Report", "rep:12")]] and url not in on_telegram.text
    for capabilities in (WHATSAPP_CAPABILITIES, ROBOT_CAPABILITIES):
        shown = fit(_message(url), capabilities)
        assert f"Open the pad: {url}" in shown.text and all(not data.startswith("app:") for row in shown.buttons for _, data in row)
    # a site-relative link (no public address set) opens only from a page of this site: the web console keeps the button
    relative = "/sign/7.abc"
    assert fit(_message(relative), WEB_CAPABILITIES).buttons[0][0] == ("Open the pad", f"link:{relative}")  # no in-chat apps there
    assert f"Open the pad: {relative}" in fit(_message(relative), TELEGRAM_CAPABILITIES).text


def test_a_link_is_not_held_to_the_channels_action_size():
    long_url = "https://fc.example/sign/" + "a" * 200  # far beyond Telegram's 64 bytes of callback data
    assert fit(_message(long_url), TELEGRAM_CAPABILITIES).buttons[0][0][1] == f"app:{long_url}"


def test_telegram_opens_an_app_link_as_a_mini_app_only_over_https():
    assert inline_action("app:https://fc.example/sign/1") == ("web_app", "https://fc.example/sign/1")
    assert inline_action("app:http://127.0.0.1:8000/sign/1") == ("url", "http://127.0.0.1:8000/sign/1")
    assert inline_action("link:https://fc.example/x") == ("url", "https://fc.example/x")
    assert inline_action("sig:12") == ("callback_data", "sig:12")


def test_the_signature_policy_names_service_kinds_and_a_source_may_override_the_shops():
    assert SignaturePolicy.parse("off") == SignaturePolicy() and SignaturePolicy().text == "off"
    assert SignaturePolicy.parse("all").requires("repair") and SignaturePolicy.parse("all").text == "all"
    both = SignaturePolicy.parse("Installation, delivery")
    assert both.requires("delivery") and not both.requires("repair") and both.text == "delivery,installation"
    with pytest.raises(ValueError, match="signatures"):
        SignaturePolicy.parse("sofa")
    assert policy_for(SignaturePolicy(), {"erp": "delivery"}, "erp").requires("delivery")
    assert not policy_for(both, {"erp": "off"}, "erp").requires("delivery")
    assert policy_for(both, {}, "shop").requires("installation")


def test_a_signature_on_file_or_a_reason_answers_a_requirement():
    assert stage_for("delivery") is Stage.DELIVERY and stage_for("installation") is Stage.COMPLETION
    assert state_of(True, False, False) is SignatureState.REQUIRED
    assert state_of(True, True, False) is SignatureState.SIGNED and state_of(True, False, True) is SignatureState.SKIPPED
    assert state_of(False, False, False) is None


def _png(width: int = 600, height: int = 200, *, ink=(17, 24, 39, 255), background=(0, 0, 0, 0), stroke=((20, 150), (500, 40))) -> bytes:
    image = Image.new("RGBA", (width, height), background)
    if ink is not None:
        ImageDraw.Draw(image).line(stroke, fill=ink, width=5)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_the_pad_keeps_a_real_png_with_strokes_and_refuses_anything_else():
    kept = checked_png(_png())
    assert not isinstance(kept, str) and kept[1:] == (600, 200) and Image.open(io.BytesIO(kept[0])).format == "PNG"
    assert checked_png(_png(ink=None)) == "sign.blank"  # an empty pad
    assert checked_png(_png(ink=(250, 250, 250, 255), background=(255, 255, 255, 255))) == "sign.blank"  # white on white
    assert checked_png(_png(stroke=((100, 100), (102, 101)))) == "sign.blank"  # a tap is not a signature
    assert checked_png(_png(40, 200)) == "sign.bad_image"  # narrower than any pad
    assert checked_png(b"\x89PNG\r\n\x1a\n" + b"\0" * 100) == "sign.bad_image"
    jpeg = io.BytesIO()
    Image.new("RGB", (600, 200), "white").save(jpeg, "JPEG")
    assert checked_png(jpeg.getvalue()) == "sign.bad_image"
    assert checked_png(b"\x89PNG\r\n\x1a\n" + b"\0" * (600 * 1024)) == "sign.too_big"
