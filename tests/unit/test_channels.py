"""Every channel is described by its capability record and rendered for by it; neutral code never names a platform."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from limits import parse

from bots.alerting import AlertSinks
from bots.channels import (
    CAPABILITIES,
    ROBOT,
    ROBOT_CAPABILITIES,
    TELEGRAM,
    TELEGRAM_CAPABILITIES,
    WEB,
    WHATSAPP,
    Channels,
    TextMeasure,
    contact_platforms,
    phone_platforms,
    pulled_platforms,
    send_rates,
)
from bots.photos import PhotoLimits
from bots.render import Unrenderable, cut, fit
from bots.robots import KINDS
from bots.telegram import TelegramBot, TelegramChannel
from bots.web import WebConsole, WebUploads
from domain.clock import ManualClock
from fieldchat.container import build
from fieldchat.settings import Settings
from scheduler.ratelimit import DEFAULT_LIMITS
from scheduler.relay import PULLED_PLATFORMS
from services.messages import Button, Rendered, t
from tests.support import ROOT
from tests.support.sources import parsed, source

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


# --- the records ----------------------------------------------------------------------------------


@pytest.fixture
async def container(sqlite_url, tmp_path):
    """With both bots configured: the Telegram channel is built only then."""
    settings = Settings(_env_file=None, database_url=sqlite_url, media_dir=tmp_path / "media", web_console=True,
                        telegram_customer_token="123:customer-token-of-some-length", telegram_staff_token="456:staff-token-of-some-length")
    built = build(settings, ManualClock(NOW))
    yield built
    await built.stop()


async def test_the_composition_root_builds_every_channel_with_its_platforms_record_and_relays_only_the_sending_ones(container):
    assert set(container.channels) == {TELEGRAM, WEB, ROBOT}
    for name, channel in container.channels.items():
        assert channel.capabilities is CAPABILITIES[name]
        if channel.capabilities.pulled:
            # nothing is sent or edited: the page reads its messages, and places a card's later copy itself
            assert name in PULLED_PLATFORMS and name not in container.relay.senders
            assert not hasattr(channel, "send") and not hasattr(channel, "edit")
        else:
            assert container.relay.senders[name] is channel and callable(channel.send)
            assert callable(getattr(channel, "edit", None)) == channel.capabilities.can_edit


def test_a_registry_refuses_an_adapter_that_carries_another_platforms_record(tmp_path):
    console = WebConsole(WebUploads(tmp_path, PhotoLimits()), enabled=True)
    with pytest.raises(ValueError, match="'telegram' channel"):
        Channels({TELEGRAM: console})


@pytest.mark.parametrize("platform", sorted(CAPABILITIES))
def test_each_record_is_consistent(platform):
    record = CAPABILITIES[platform]
    assert record.max_buttons_per_row <= max(record.max_buttons, 1)
    assert record.caption_limit <= record.text_limit
    if record.digest_budget is not None:
        assert record.has_groups and record.digest_budget <= record.text_limit
    if record.group_id_prefix is not None:
        assert record.has_groups
    if record.needs_template_outside_window:
        assert record.session_window is not None
    if record.pulled:
        assert record.send_rates is None and record.digest_budget is None
    for rate in (record.send_rates.private, record.send_rates.group, record.send_rates.bot) if record.send_rates else ():
        assert rate is None or parse(rate)
    if record.send_rates and record.send_rates.group:
        assert record.has_groups


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"has_groups": False, "group_id_prefix": "-"}, "groups"),
        ({"session_window": None, "needs_template_outside_window": True}, "templates"),
        ({"digest_budget": 5000}, "digest"),
        ({"max_action_bytes": 0}, "action"),
        ({"max_buttons_per_row": 0}, "row"),
        ({"caption_limit": 5000}, "caption"),
    ],
)
def test_a_record_that_contradicts_itself_is_refused(change, complaint):
    with pytest.raises(ValueError, match=complaint):
        replace(TELEGRAM_CAPABILITIES, **change)


def test_pulled_platforms_group_chats_and_send_rates_come_from_the_records():
    assert pulled_platforms() == PULLED_PLATFORMS == (WEB,)
    assert send_rates() == DEFAULT_LIMITS and set(DEFAULT_LIMITS) == {TELEGRAM, WHATSAPP}
    assert TELEGRAM_CAPABILITIES.is_group("-100123") and not TELEGRAM_CAPABILITIES.is_group("100123")
    assert ROBOT_CAPABILITIES.is_group("region:Huangpu")  # every alert route is a group
    assert not CAPABILITIES[WHATSAPP].is_group("8613912345678") and not CAPABILITIES[WEB].is_group("w123")


def test_a_buttons_action_is_the_channels_to_limit_not_the_neutral_messages():
    assert Button(t("btn.accept"), "x" * 70).data == "x" * 70
    with pytest.raises(ValueError):
        Button(t("btn.accept"), "")


# --- rendering: the same message on every channel -------------------------------------------------

TWELVE = [(f"Option {n} " + "x" * 250, f"o:{n}") for n in range(1, 13)]

# platform: (rows of buttons kept, label length, options listed in the text)
DEGRADED = {
    TELEGRAM: ([8, 4], 64, 0),
    WEB: ([8, 4], 200, 0),
    ROBOT: ([12], 64, 0),
    WHATSAPP: ([10], 20, 2),  # a list message of ten rows (bots/whatsapp.py)
}


@pytest.mark.parametrize("platform", sorted(CAPABILITIES))
def test_twelve_buttons_with_long_labels_wrap_shorten_or_go_to_a_numbered_list(platform):
    rows, label_chars, listed = DEGRADED[platform]
    shown = fit(Rendered("Pick one:", [TWELVE]), CAPABILITIES[platform])
    assert [len(row) for row in shown.buttons] == rows
    kept = [button for row in shown.buttons for button in row]
    assert [data for _, data in kept] == [data for _, data in TWELVE[: len(kept)]]
    assert all(len(label) == label_chars and label.endswith("…") for label, _ in kept)
    lines = shown.text.split("\n")
    assert lines[0] == "Pick one:"
    numbered = [line for line in lines if re.match(r"\d+\. Option", line)]
    assert len(numbered) == listed
    if listed:
        assert numbered[0] == f"{len(kept) + 1}. {TWELVE[len(kept)][0]}" and numbered[-1].startswith("12. Option 12 ")


@pytest.mark.parametrize("platform, refused", [(TELEGRAM, True), (WEB, True), (ROBOT, False), (WHATSAPP, False)])
def test_a_70_byte_action_is_refused_at_render_time_where_the_channel_cannot_carry_it_back(platform, refused):
    message = Rendered("Pick", [[("Reassign", "ra:" + "7" * 67)]])
    if refused:
        with pytest.raises(Unrenderable, match="70 bytes"):
            fit(message, CAPABILITIES[platform])
    else:  # WhatsApp carries 256 bytes; a robot carries nothing back, so nothing is lost
        assert fit(message, CAPABILITIES[platform]).buttons == message.buttons


@pytest.mark.parametrize(
    "platform, limit, measure",
    [(TELEGRAM, 4096, TextMeasure.UTF16_UNITS), (WEB, 16_000, TextMeasure.CHARACTERS),
     (ROBOT, 20_000, TextMeasure.UTF8_BYTES), (WHATSAPP, 4096, TextMeasure.CHARACTERS)],
)
def test_a_long_text_is_cut_to_the_channels_limit_as_the_channel_measures_it(platform, limit, measure):
    text = "空调🔧" * 8000  # 24 000 characters, 32 000 UTF-16 units, 80 000 UTF-8 bytes
    shown = fit(Rendered(text), CAPABILITIES[platform])
    assert shown.text.endswith("…") and text.startswith(shown.text[:-1])
    assert limit - 3 <= measure.size(shown.text) <= limit  # as full as whole characters allow
    assert fit(Rendered("short"), CAPABILITIES[platform]).text == "short"


def test_a_photos_caption_is_cut_to_the_caption_limit():
    shown = fit(Rendered("x" * 2000, photo_path="/tmp/p.jpg"), TELEGRAM_CAPABILITIES)
    assert len(shown.text) == 1024 and shown.photo_path == "/tmp/p.jpg"


@pytest.mark.parametrize("platform, location, contact", [(TELEGRAM, True, True), (WEB, True, True), (ROBOT, False, False), (WHATSAPP, True, False)])
def test_a_request_the_channel_cannot_make_is_dropped_and_the_text_still_asks(platform, location, contact):
    for request, kept in (("location", location), ("contact", contact)):
        shown = fit(Rendered("Share it, please", request=request), CAPABILITIES[platform])
        assert shown.request == (request if kept else None) and shown.text == "Share it, please"


def test_cutting_to_utf16_units_never_splits_an_emoji():
    text = "ok🔧" * 20
    for limit in range(2, 40):
        shortened = cut(text, limit, TextMeasure.UTF16_UNITS)
        assert TextMeasure.UTF16_UNITS.size(shortened) <= limit and text.startswith(shortened[:-1])
        shortened[:-1].encode("utf-8")  # a lone surrogate would not encode


# --- links ----------------------------------------------------------------------------------------


def test_telegram_links_open_the_customer_bot_or_the_staff_bot_once_their_names_are_known(tmp_path):
    bots = {role: TelegramBot(role, f"7{n}:links-{role}", "http://127.0.0.1:9", None, tmp_path) for n, role in enumerate(("customer", "staff"))}
    telegram = TelegramChannel(bots)
    assert telegram.deep_link("customer", "tok") is None  # getMe has not answered yet
    bots["customer"].username, bots["staff"].username = "shop_bot", "shop_staff_bot"
    assert telegram.deep_link("customer", "tok") == "https://t.me/shop_bot?start=tok"
    assert telegram.deep_link("driver", "tok") == "https://t.me/shop_staff_bot?start=tok"
    assert telegram.deep_link("dispatcher", "tok") == "https://t.me/shop_staff_bot?start=tok"
    assert telegram.deep_link("group", "tok") == "https://t.me/shop_staff_bot?startgroup=tok"
    assert TelegramChannel({}).deep_link("customer", "tok") is None


def test_console_links_exist_only_while_the_console_is_served_and_are_relative_without_a_public_url(tmp_path):
    uploads = WebUploads(tmp_path, PhotoLimits())
    assert WebConsole(uploads, enabled=False, public_url="https://fc.example").deep_link("customer", "tok") is None
    assert WebConsole(uploads, enabled=True, public_url="https://fc.example/").deep_link("group", "tok") == "https://fc.example/chat#group=tok"
    assert WebConsole(uploads, enabled=True).deep_link("installer", "tok") == "chat#installer=tok"


def test_the_registry_hands_out_the_first_link_in_its_order_and_robots_have_none(tmp_path):
    staff = TelegramBot("staff", "71:links-staff", "http://127.0.0.1:9", None, tmp_path)
    console = WebConsole(WebUploads(tmp_path, PhotoLimits()), enabled=True)
    channels = Channels({TELEGRAM: TelegramChannel({"staff": staff}), WEB: console, ROBOT: AlertSinks(None)})
    assert channels.link("dispatcher", "tok") == "chat#dispatcher=tok"  # the staff bot's name is not known yet
    staff.username = "shop_staff_bot"
    assert channels.link("dispatcher", "tok") == "https://t.me/shop_staff_bot?start=tok"
    assert channels.deep_link(WEB, "dispatcher", "tok") == "chat#dispatcher=tok"
    assert channels.deep_link(ROBOT, "group", "tok") is None and channels.deep_link(WHATSAPP, "customer", "tok") is None
    assert set(channels.senders()) == {TELEGRAM, ROBOT}


# --- platform names stay in the channel adapters --------------------------------------------------

NEUTRAL = ("domain", "services", "conversations")
# every platform a channel record or a robot kind names, and the libraries that speak to them
PLATFORM_NAMES = sorted({TELEGRAM, WHATSAPP, *KINDS, "lark", "aiogram"})
NAMED = re.compile(r"(?<![a-z])(" + "|".join(PLATFORM_NAMES) + r")(?![a-z])", re.IGNORECASE)
# the channel registry, the adapters, and the fakes that stand in for the platforms in tests and benchmarks
ADAPTERS = ("bots", "fieldchat.fakes")


def _modules(packages: tuple[str, ...], mentioning: re.Pattern[str]) -> dict[str, ast.Module]:
    """The parsed modules of ``packages`` whose source mentions ``mentioning`` at all: a module whose text never does
    cannot hold such a word or string in its tree either, and parsing and walking every module is most of these tests' time."""
    found = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                if mentioning.search(source(path)):
                    found[str(path.relative_to(ROOT))] = parsed(path)  # read and parsed once per process (tests.support.sources)
    return found


def _docstrings(tree: ast.Module) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    return {
        id(node.body[0].value) for node in nodes
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }


def _words(tree: ast.Module):
    """(line, text) of every string that is not a docstring and every name the code gives or uses; comments are not in the tree."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.lineno, node.name
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.alias):
            yield node.lineno, f"{node.name} {node.asname or ''}".strip()


def test_no_neutral_module_names_a_platform_outside_comments_and_docstrings():
    named = [
        f"{path}:{line} {text[:60]!r}"
        for path, tree in _modules(NEUTRAL, NAMED).items()
        for line, text in _words(tree) if NAMED.search(text)
    ]
    assert named == []


def test_the_word_check_sees_strings_and_names_but_not_docstrings():
    tree = ast.parse('"""Telegram is fine here."""\nimport bots.telegram\nx = "slack"\ndef f(wecom_key):\n    """WeCom too."""\n')
    assert [text for _, text in _words(tree) if NAMED.search(text)] == ["bots.telegram", "slack", "wecom_key"]


COMPARED_NAMES = re.compile("|".join(re.escape(name) for name in sorted({*CAPABILITIES, *KINDS})))


def _compared_names(tree: ast.Module):
    names = set(CAPABILITIES) | set(KINDS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                for value in values:
                    if isinstance(value, ast.Constant) and value.value in names:
                        yield node.lineno, value.value


def test_only_the_channel_adapters_compare_anything_with_a_platforms_name():
    compared = [
        f"{path}:{line} compares with {name!r}"
        for path, tree in _modules(("domain", "storage", "services", "conversations", "webhooks", "scheduler", "fieldchat"), COMPARED_NAMES).items()
        if not path.replace("/", ".").startswith(ADAPTERS)
        for line, name in _compared_names(tree)
    ]
    assert compared == []
    example = ast.parse('if platform == "telegram" or kind in ("wecom", "x"): pass')
    assert [name for _, name in _compared_names(example)] == ["telegram", "wecom"]


def test_a_chat_id_that_is_a_phone_number_is_masked_in_logs_and_others_are_not():
    from bots.channels import loggable_chat

    assert loggable_chat(WHATSAPP, "8613912345678") == "861****5678"
    assert loggable_chat(TELEGRAM, "123456789") == "123456789" and loggable_chat("unknown", "x") == "x"


def test_the_channel_facts_the_owner_check_reads_come_from_the_capability_records():
    # a device's owner proves their number by the chat's own id only where it is a phone number, and by the contact
    # button only where the platform vouches that a shared contact is the sender's own (the web console's is typed)
    assert phone_platforms() == {WHATSAPP}
    assert contact_platforms() == {TELEGRAM}
