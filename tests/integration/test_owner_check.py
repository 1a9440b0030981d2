"""A device's owner scanning its QR code from a chat bound to nobody proves who they are with the phone number on file:
WhatsApp's own number at once, Telegram's own contact (not a forwarded one), or typed with limited tries; a match binds
the chat and opens the device menu, anything else binds nothing and keeps the report path (issue 14 part 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from domain import commands as c
from domain.errors import DomainError, InvalidInput
from domain.owner_check import MAX_TRIES_PER_DAY
from services.actions import DeviceMenu, OwnerCheckCancel, OwnerCheckStart, ScanReportCancel, encode
from services.messages import InboundKind
from storage import tables
from storage.devices import DEVICE, SITE, DeviceStore
from storage.repository import Store
from tests.integration.test_devices import code_of, device_rows, installed, owner_chat
from tests.integration.test_qr_privacy import OWNER, OWNER_PHONE, bindings_of, shown
from tests.support.harness import World, keys


async def _device(world: World) -> tuple[int, dict, str]:
    job_id, _installer = await installed(world)
    [device] = await device_rows(world)
    return job_id, device, await code_of(world, DEVICE, device["id"])


async def _history(world: World, device_id: int) -> list[str]:
    async with world.container.sessions() as session:
        return [h.kind for h in await DeviceStore(Store(session)).history(device_id)]


async def _asked(world: World, chat_id: str, code: str, **kw):
    """A chat bound to nobody scans the code and says it is theirs: the chat and the answer."""
    chat = world.chat("customer", chat_id, **kw)
    scan = await chat.send(f"/start {code}")
    assert keys(scan) == ["device.foreign_scan"] and scan[-1].has_button("dvy") and scan[-1].has_button("dhx")
    return chat, await chat.press(encode(OwnerCheckStart()))


async def test_a_whatsapp_chat_whose_own_number_is_the_owner_s_is_bound_at_once_and_opens_the_menu(world: World):
    job_id, device, code = await _device(world)
    chat = world.chat("customer", "86" + OWNER_PHONE, platform="whatsapp")  # wa_id: the number with its country code
    opened = await chat.send(f"/start {code}")
    assert keys(opened) == ["device.menu"] and opened[-1].has_button("dvf")
    [binding] = await bindings_of(world, "86" + OWNER_PHONE)
    async with world.container.sessions() as session:
        owner = (await session.execute(select(tables.jobs.c.customer_id).where(tables.jobs.c.id == job_id))).scalar_one()
    assert binding["subject_id"] == owner and binding["platform"] == "whatsapp"
    assert (await _history(world, device["id"]))[-1] == "owner_verified"
    status = await chat.send("/status")
    assert keys(status)[0] == "customer.order_summary"


async def test_a_whatsapp_chat_with_another_number_gets_the_private_answer_and_may_type_the_number(world: World):
    _job, _device_row, code = await _device(world)
    chat = world.chat("customer", "8613700001111", platform="whatsapp")
    answer = await chat.send(f"/start {code}")
    assert keys(answer) == ["device.foreign_scan"] and OWNER not in shown(answer) and OWNER_PHONE not in shown(answer)
    assert await bindings_of(world, "8613700001111") == []
    asked = await chat.press(encode(OwnerCheckStart()))
    assert keys(asked) == ["device.owner_ask"] and all(m.request is None for m in asked)  # no contact button off Telegram
    assert keys(await chat.send("+86 139-1234-5678")) == ["device.owner_verified"]  # e.g. the owner's second phone
    assert (await bindings_of(world, "8613700001111"))[0]["platform"] == "whatsapp"


async def test_telegram_own_contact_binds_and_a_forwarded_one_is_refused(world: World):
    _job, device, code = await _device(world)
    chat, asked = await _asked(world, "tg1", code, platform="telegram")
    assert keys(asked) == ["device.owner_ask", "device.owner_share"] and asked[-1].request == "contact"
    assert asked[0].has_button("dvn")

    # someone else's card (forwarded, or picked from the address book) proves nothing and counts no try
    forwarded = await chat.deliver(chat.event(InboundKind.CONTACT, phone="+86" + OWNER_PHONE, own_contact=False))
    assert keys(forwarded) == ["device.owner_contact_not_own"] and await bindings_of(world, "tg1") == []

    # their own contact, with another number: polite, nothing bound, the report path offered
    other = await chat.deliver(chat.event(InboundKind.CONTACT, phone="+8613700001111", own_contact=True))
    assert keys(other) == ["device.owner_contact_wrong"] and other[-1].has_button("dvn")
    assert other[-1].params["tries"] == MAX_TRIES_PER_DAY - 1 and await bindings_of(world, "tg1") == []

    own = await chat.deliver(chat.event(InboundKind.CONTACT, phone="+86" + OWNER_PHONE, own_contact=True))
    assert keys(own) == ["device.owner_verified"]
    menu = own[-1].button("dv")
    assert menu == encode(DeviceMenu(device["id"]))
    assert keys(await chat.press(menu)) == ["device.menu"]
    assert len(await bindings_of(world, "tg1")) == 1
    assert (await _history(world, device["id"]))[-1] == "owner_verified"


async def test_a_typed_number_right_after_wrong_ones_binds_and_the_number_is_not_kept(world: World):
    _job, device, code = await _device(world)
    chat, asked = await _asked(world, "web1", code)
    assert keys(asked) == ["device.owner_ask"]
    assert keys(await chat.send("my phone")) == ["device.owner_phone_format"]  # not a number: no try counted
    wrong = await chat.send("13700001111")
    assert keys(wrong) == ["device.owner_phone_wrong"] and wrong[-1].params["tries"] == MAX_TRIES_PER_DAY - 1
    right = await chat.send("139 1234 5678")
    assert keys(right) == ["device.owner_verified"] and right[-1].has_button("dv")
    assert len(await bindings_of(world, "web1")) == 1
    async with world.container.sessions() as session:
        texts = [row["payload"].get("text") for row in (await session.execute(
            select(tables.inbox).where(tables.inbox.c.chat_id == "web1"))).mappings()]
        stored = [dict(r) for r in (await session.execute(select(tables.domain_events.c.data).where(
            tables.domain_events.c.type.in_(("DeviceOwnerCheckFailed", "DeviceOwnerVerified"))))).mappings()]
    assert "13700001111" not in texts and "139 1234 5678" not in texts  # the inbox rows keep no typed number
    assert "my phone" in texts
    assert "web1" not in str(stored) and "13700001111" not in str(stored) and OWNER_PHONE not in str(stored)
    # bound now: what it writes next is no number to check
    assert keys(await chat.send("/status"))[0] == "customer.order_summary"


async def test_too_many_wrong_numbers_lock_the_chat_for_a_day_even_after_a_new_scan(world: World):
    _job, _device_row, code = await _device(world)
    chat, _asked_ = await _asked(world, "web2", code)
    for n in range(MAX_TRIES_PER_DAY - 1):
        assert keys(await chat.send(f"1370000{n:04d}")) == ["device.owner_phone_wrong"]
    last = await chat.send("13700009999")
    assert keys(last) == ["device.owner_no_more_tries"] and last[-1].has_button("dvn")
    # the count is stored, not the conversation's: scanning again does not reset it, and the right number is refused too
    await chat.send(f"/start {code}")
    await chat.press(encode(OwnerCheckStart()))
    assert keys(await chat.send(OWNER_PHONE)) == ["error.device_owner_tries"]
    assert await bindings_of(world, "web2") == []
    # the report path stays open
    assert keys(await chat.press(encode(OwnerCheckCancel()))) == ["device.owner_cancelled"]
    assert keys(await chat.send("It leaks onto the floor")) == ["device.foreign_sent"]
    # a day later the chat may try again
    world.clock.advance(timedelta(hours=25))
    await chat.send(f"/start {code}")
    await chat.press(encode(OwnerCheckStart()))
    assert keys(await chat.send(OWNER_PHONE)) == ["device.owner_verified"]


async def test_a_code_renewed_meanwhile_binds_nothing(world: World):
    _job, device, code = await _device(world)
    chat, _asked_ = await _asked(world, "web3", code)
    await world.container.bus.run("test", c.RenewDeviceCode(DEVICE, device["id"]))
    assert keys(await chat.send(OWNER_PHONE)) == ["error.device_code_invalid"]
    assert await bindings_of(world, "web3") == []


async def test_a_site_code_verified_lists_the_site_s_devices(world: World):
    _job, device, _code = await _device(world)
    code = await code_of(world, SITE, device["site_id"])
    chat = world.chat("customer", "web4")
    assert keys(await chat.send(f"/start {code}")) == ["device.foreign_scan_site"]
    await chat.press(encode(OwnerCheckStart()))
    verified = await chat.send("+86 13912345678")
    assert keys(verified) == ["device.owner_verified"] and verified[-1].button("dv") == encode(DeviceMenu(device["id"]))


async def test_another_customer_s_chat_is_not_offered_the_check_and_the_handler_refuses_it(world: World):
    job_id, _device_row, code = await _device(world)
    other = await world.order("SO-9", services=("delivery",), phone="13700000000", customer="Wang Fang")
    chat = world.chat("customer", "wang")
    await chat.send(f"/start {other.customer_token}")
    await chat.inbox()
    answer = await chat.send(f"/start {code}")
    assert keys(answer) == ["device.foreign_scan"] and not answer[-1].has_button("dvy")
    assert keys(await chat.press(encode(OwnerCheckStart()))) == ["error.device_owner_other_record"]
    who = c.ChatIdentity("web", "customer", "wang", "wang", "en")
    with pytest.raises(DomainError) as refused:
        await world.container.bus.run("test", c.VerifyDeviceOwner(code, who, OWNER_PHONE, "typed"))
    assert refused.value.code == "device_owner_other_record"
    [binding] = await bindings_of(world, "wang")
    assert binding["subject_id"] == other.job.customer_id
    # the owner's own chat may run it again: nothing changes
    owner = await owner_chat(world, job_id)
    assert keys(await owner.send(f"/start {code}")) == ["device.menu"]


async def test_the_handler_checks_whatever_the_step_saw(world: World):
    _job, _device_row, code = await _device(world)
    web = c.ChatIdentity("web", "customer", "86" + OWNER_PHONE, "x", "en")
    with pytest.raises(InvalidInput):  # only a WhatsApp chat id is a phone number (its capability record says)
        await world.container.bus.run("test", c.VerifyDeviceOwner(code, web, "", "chat_number"))
    with pytest.raises(InvalidInput):
        await world.container.bus.run("test", c.VerifyDeviceOwner(code, web, OWNER_PHONE, "guessed"))
    tampered = code[:-1] + ("A" if code[-1] != "A" else "B")
    with pytest.raises(DomainError) as refused:
        await world.container.bus.run("test", c.VerifyDeviceOwner(tampered, web, OWNER_PHONE, "typed"))
    assert refused.value.code == "device_code_invalid"
    assert "***" in repr(c.VerifyDeviceOwner(code, web, OWNER_PHONE, "typed")) and OWNER_PHONE not in repr(
        c.VerifyDeviceOwner(code, web, OWNER_PHONE, "typed"))
    assert await bindings_of(world, "86" + OWNER_PHONE) == []


async def test_not_now_from_the_check_goes_back_to_the_report_and_then_ends(world: World):
    _job, _device_row, code = await _device(world)
    chat, _asked_ = await _asked(world, "web5", code)
    back = await chat.press(encode(OwnerCheckCancel()))
    assert keys(back) == ["device.owner_cancelled"] and back[-1].has_button("dhx")
    assert keys(await chat.press(encode(ScanReportCancel()))) == ["device.foreign_cancelled"]
    assert keys(await chat.press(encode(OwnerCheckCancel()))) == ["hint.stale_button"]
