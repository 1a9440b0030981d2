"""A device's QR sticker is seen by anyone at the site: scanning it from a chat that is not the owner's never binds that chat
to the owner, shows nothing of theirs (name, phone, address, orders), and lets the scanner tell a fault to the dispatchers,
who check it with the owner. The owner's own chat keeps the full menu; tampered, renewed and retired codes open nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conversations.i18n import render
from domain import commands as c
from domain.errors import DomainError, InvalidInput, NotAllowed
from services.actions import ScanReportCancel, encode
from storage import tables
from storage.devices import DEVICE
from tests.integration.test_devices import code_of, device_rows, installed, owner_chat
from tests.support.harness import World, keys
from tests.support.setups import dispatch_group

OWNER, OWNER_PHONE, OWNER_ADDRESS = "Zhang Wei", "13912345678", "100 Nanjing East Road"


def shown(messages) -> str:
    """Everything the messages say, in English and Chinese, as their reader sees it."""
    return "\n".join(render(m.payload, language).text for m in messages for language in ("en", "zh"))


async def count(world: World, table) -> int:
    async with world.container.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def bindings_of(world: World, chat_id: str) -> list[dict]:
    async with world.container.sessions() as session:
        rows = await session.execute(select(tables.chat_bindings).where(tables.chat_bindings.c.chat_id == chat_id))
        return [dict(r) for r in rows.mappings()]


async def test_a_stranger_s_scan_binds_nothing_shows_nothing_and_their_fault_goes_to_the_dispatchers(world: World):
    await installed(world)
    [device] = await device_rows(world)
    group = await dispatch_group(world)
    code = await code_of(world, DEVICE, device["id"])
    jobs_before = await count(world, tables.jobs)

    stranger = world.chat("customer", "guest", name="Mei")
    answer = await stranger.send(f"/start {code}")
    assert keys(answer) == ["device.foreign_scan"] and answer[-1].has_button("dhx")
    said = shown(answer)
    assert OWNER not in said and OWNER_PHONE not in said and OWNER_ADDRESS not in said and "GR-778899" not in said
    assert await bindings_of(world, "guest") == []  # the scan bound nothing
    assert keys(await stranger.send("/status")) == ["customer.hint_new"]  # and so no orders of the owner's

    sent = await stranger.send("The indoor unit drips on the sofa, call me on 13700001111")
    assert keys(sent) == ["device.foreign_sent"]
    assert await bindings_of(world, "guest") == [] and await count(world, tables.jobs) == jobs_before  # no job: the owner decides
    [alert] = [m for m in await group.inbox() if m.key == "device.foreign_alert"]
    text = render(alert.payload, "en").text
    assert OWNER in text and OWNER_PHONE in text and "GR-778899" in text and "13700001111" in text and "Mei" in text
    assert keys(await stranger.send("/status")) == ["customer.hint_new"]


async def test_another_customer_s_chat_keeps_its_own_orders_and_may_say_not_now(world: World):
    await installed(world)
    [device] = await device_rows(world)
    other = await world.order("SO-9", services=("delivery",), phone="13700000000", customer="Wang Fang")
    chat = world.chat("customer", "wang")
    await chat.send(f"/start {other.customer_token}")
    await chat.inbox()
    code = await code_of(world, DEVICE, device["id"])
    answer = await chat.send(f"/start {code}")
    assert keys(answer) == ["device.foreign_scan"] and OWNER not in shown(answer)
    assert keys(await chat.press(encode(ScanReportCancel()))) == ["device.foreign_cancelled"]
    [binding] = await bindings_of(world, "wang")
    assert binding["subject_id"] == other.job.customer_id  # still Wang's chat, not the owner's
    status = await chat.send("/status")
    assert keys(status)[0] == "customer.order_summary" and OWNER not in shown(status)
    assert keys(await chat.press(encode(ScanReportCancel()))) == ["hint.stale_button"]  # pressed again: nothing to cancel


async def test_the_owner_s_own_chat_keeps_the_full_device_menu(world: World):
    job_id, _installer = await installed(world)
    [device] = await device_rows(world)
    owner = await owner_chat(world, job_id)
    opened = await owner.send(f"/start {await code_of(world, DEVICE, device['id'])}")
    assert keys(opened) == ["device.menu"] and opened[-1].has_button("dvf") and opened[-1].has_button("dvh")


async def test_a_retired_device_s_code_opens_nothing(world: World):
    job_id, _installer = await installed(world)
    [device] = await device_rows(world)
    code = await code_of(world, DEVICE, device["id"])
    await world.container.bus.run("test", c.RetireDevice(device["id"], "replaced"))
    assert keys(await world.chat("customer", "guest").send(f"/start {code}")) == ["error.link_invalid"]
    owner = await owner_chat(world, job_id)
    assert keys(await owner.send(f"/start {code}")) == ["error.link_invalid"]


async def test_a_report_is_refused_for_a_bad_code_or_no_words_and_a_scan_never_binds(world: World):
    await installed(world)
    [device] = await device_rows(world)
    code = await code_of(world, DEVICE, device["id"])
    who = c.ChatIdentity("test", "customer", "guest", "guest", "en")
    tampered = code[:-1] + ("A" if code[-1] != "A" else "B")
    with pytest.raises(DomainError) as refused:
        await world.container.bus.run("test", c.ReportFaultOnCode(tampered, who, "Mei", "it leaks"))
    assert refused.value.code == "device_code_invalid"
    for words in ("", "   ", "x" * 1001):
        with pytest.raises(InvalidInput):
            await world.container.bus.run("test", c.ReportFaultOnCode(code, who, "Mei", words))
    with pytest.raises(NotAllowed):  # the old binding path is closed too: a scan command binds no chat
        await world.container.bus.run("test", c.OpenDeviceCode(code, who))
    assert await bindings_of(world, "guest") == []
    async with world.container.sessions() as session:
        told = (await session.execute(select(tables.domain_events.c.type).where(tables.domain_events.c.type == "FaultReportedByScan"))).all()
    assert told == []


async def test_a_stranger_s_scan_in_chinese_is_answered_in_chinese(world: World):
    await installed(world)
    [device] = await device_rows(world)
    stranger = world.chat("customer", "guest-zh", language="zh")
    answer = await stranger.send(f"/start {await code_of(world, DEVICE, device['id'])}")
    assert "为保护客户隐私" in render(answer[-1].payload, "zh").text
