"""A device's owner proves who they are when scanning its QR code: a chat bound to nobody is bound to the owner when it
shows the phone number on file (its WhatsApp number, its own Telegram contact, or typed), then opens the device menu."""

from __future__ import annotations

from datetime import timedelta

from domain import commands as c
from domain import events as ev
from domain.devices import DeviceEvent
from domain.errors import DomainError, InvalidInput
from domain.model import Customer
from domain.owner_check import MAX_TRIES_PER_DAY, VIA, VIA_CONTACT, VIA_TYPED, VIA_CHAT_NUMBER, chat_key, same_phone
from services.actions import DeviceMenu, OwnerCheckCancel, encode
from services.bus import Reaction, handles
from services.devices import code_devices
from services.context import HandlerContext
from services.handlers import _bind
from services.messages import Button, Outbound, buttons, raw, t
from storage.devices import DeviceStore
from storage.owner_checks import failed_since

NO_JOB = 0  # the events of an owner check belong to no job
WINDOW = timedelta(hours=24)  # MAX_TRIES_PER_DAY counts the wrong numbers of the last 24 hours


async def verify_device_owner(ctx: HandlerContext, cmd: c.VerifyDeviceOwner) -> list[ev.Event]:
    """The checks, whatever the step saw: the code still works, the chat is bound to no other customer, the tries of the
    last 24 hours are not used up, and the number is the owner's. A match binds the chat and puts a line on the devices'
    timelines; a wrong number is an event (kept, so the count survives), never an error that would undo it."""
    if cmd.via not in VIA:
        raise InvalidInput("device_owner_via_invalid")
    chat = cmd.chat
    if cmd.via == VIA_CHAT_NUMBER and chat.platform not in ctx.policy.phone_chat_platforms:
        raise InvalidInput("device_owner_via_invalid")  # only where chat ids are phone numbers (WhatsApp's wa_id)
    owner, rows, site_id = await code_devices(ctx, cmd.token)
    binding = await ctx.store.binding(chat.platform, chat.bot, chat.chat_id, "customer")
    if binding is not None and binding.subject_id != owner:
        # a customer's own chat is never moved to another record by a sticker: the shop merges records
        raise DomainError("device_owner_other_record")
    key = chat_key(chat.platform, chat.bot, chat.chat_id)
    failed = await failed_since(ctx.store, key, ctx.now - WINDOW)
    # the limit is against guessing: a WhatsApp chat's own number is no guess
    if failed >= MAX_TRIES_PER_DAY and cmd.via != VIA_CHAT_NUMBER:
        raise DomainError("device_owner_tries")
    customer = await ctx.store.get(Customer, owner)
    phone = chat.chat_id if cmd.via == VIA_CHAT_NUMBER else cmd.phone
    # a WhatsApp id and a Telegram contact are international numbers, the country code without its "+"
    if customer is None or not same_phone(phone, customer.phone, given_international=cmd.via != VIA_TYPED):
        return [ev.DeviceOwnerCheckFailed(NO_JOB, None, {
            "chat_key": key, "via": cmd.via, "site_id": site_id, "tries_left": max(0, MAX_TRIES_PER_DAY - failed - 1),
        })]
    if binding is None:
        await _bind(ctx, chat, "customer", owner)
    devices = DeviceStore(ctx.store)
    for device in rows:
        await devices.record(device.id, DeviceEvent.OWNER_VERIFIED, ctx.now, job_id=NO_JOB,
                             data={"via": cmd.via, "platform": chat.platform})
    return [ev.DeviceOwnerVerified(NO_JOB, None, {
        "customer_id": owner, "device_ids": [d.id for d in rows], "site_id": site_id, "via": cmd.via, "platform": chat.platform,
    })]


async def tell_owner_verified(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """To the chat that proved it (no ``to``: the chat the update came from): its devices, one button each, to open the
    menu. A check run from the WhatsApp scan itself showed the menu already."""
    if event.data.get("via") == VIA_CHAT_NUMBER:
        return []
    devices = DeviceStore(ctx.store)
    rows = [d for d in [await devices.device(int(i)) for i in event.data.get("device_ids") or []] if d is not None and d.active]
    if not rows:
        return [Outbound(t("device.owner_verified_empty"))]
    keyboard = buttons(*[[Button(raw(f"{d.product_name} · {d.location}"[:60] if d.location else d.product_name[:60]), encode(DeviceMenu(d.id)))]
                         for d in rows])
    return [Outbound(t("device.owner_verified", n=len(rows)), keyboard)]


async def tell_owner_check_failed(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A wrong number: the tries left (try again), or none left; either way the fault may be told to the shop instead."""
    left = int(event.data.get("tries_left") or 0)
    keyboard = buttons([Button(t("device.btn.report_instead"), encode(OwnerCheckCancel()))])
    if left <= 0:
        return [Outbound(t("device.owner_no_more_tries"), keyboard)]
    key = "device.owner_contact_wrong" if event.data.get("via") == VIA_CONTACT else "device.owner_phone_wrong"
    return [Outbound(t(key, tries=left), keyboard)]


HANDLERS = (
    handles(c.VerifyDeviceOwner, verify_device_owner),
)

REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (tell_owner_verified, (ev.DeviceOwnerVerified,)),
    (tell_owner_check_failed, (ev.DeviceOwnerCheckFailed,)),
)
