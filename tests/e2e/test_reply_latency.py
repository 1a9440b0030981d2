"""How long a person waits for the first reply to what they did, over Telegram: the real aiogram adapter polling the fake
Bot API, the relay keeping Telegram's per-chat pace (issue 10, part 8). Prints p50 / p95; asserts no time."""

from __future__ import annotations

import asyncio
import statistics
import time

from tests.support.setups import DELIVERY_STEPS
from tests.support.telegram import CUSTOMER, CUSTOMER_CHAT, DRIVER, STAFF, Shop, inline_buttons

THINK_SECONDS = 1.0  # a person reads the answer before the next tap; faster than Telegram's ~1 message/s per chat is a bot
ACTIONS = 50


async def _acted(shop: Shop, chat: int, act, timings: list[float], what: str) -> dict:
    """Do ``act`` as the person in ``chat``; the seconds until the first message (or edit) reaches that chat are recorded."""
    since = shop.mark()
    started = time.time()
    act()
    first = await shop.fake.wait_for_sent(lambda s: s["chat_id"] == str(chat), 20, since=since)
    timings.append(first["at"] - started)
    await asyncio.sleep(0.3)  # let the rest of the answer (if any) arrive before reading it
    print(f"  {what:<28} {timings[-1] * 1000:6.0f} ms")
    return first


def _last(shop: Shop, chat: int, since: int = 0) -> dict:
    return [s for s in shop.fake.sent()[since:] if s["chat_id"] == str(chat)][-1]


async def test_the_first_reply_to_a_persons_action_over_telegram(sqlite_shop: Shop):
    shop = sqlite_shop
    await shop.template("delivery", "sofa", DELIVERY_STEPS)
    await shop.onboard(DRIVER, await shop.technician("Wang", ["driver"], phone="13800000001"), "You're registered")
    timings: list[float] = []
    order = await shop.order(services=("delivery",))
    visit = order.visits[0]

    # the story: open the link, book, the driver accepts; then both keep asking where things stand
    opened = await _acted(shop, CUSTOMER_CHAT, lambda: shop.say(CUSTOMER_CHAT, f"/start {order.customer_token}", token=CUSTOMER,
                                                                   first_name="Zhang"), timings, "customer opens the link")
    await asyncio.sleep(THINK_SECONDS)
    slots = [b["callback_data"] for b in inline_buttons(opened) if b["callback_data"].startswith("sl:")]
    if slots:
        await _acted(shop, CUSTOMER_CHAT, lambda: shop.press_data(CUSTOMER_CHAT, opened, slots[0], token=CUSTOMER), timings, "customer books")
    else:  # a day first, then its windows
        day = await _acted(shop, CUSTOMER_CHAT, lambda: shop.press_data(CUSTOMER_CHAT, opened, inline_buttons(opened)[0]["callback_data"],
                                                                          token=CUSTOMER), timings, "customer picks a day")
        await asyncio.sleep(THINK_SECONDS)
        await _acted(shop, CUSTOMER_CHAT, lambda: shop.press_data(CUSTOMER_CHAT, day, inline_buttons(day)[0]["callback_data"],
                                                                    token=CUSTOMER), timings, "customer books")
    offer = await shop.fake.wait_for_sent(lambda s: s["chat_id"] == str(DRIVER) and f"#{visit.id}" in (s["text"] or ""), 20)
    await asyncio.sleep(THINK_SECONDS)
    await _acted(shop, DRIVER, lambda: shop.press_data(DRIVER, offer, f"acc:{visit.id}", token=STAFF), timings, "driver accepts")
    while len(timings) < ACTIONS:
        await asyncio.sleep(THINK_SECONDS)
        if len(timings) % 2:
            await _acted(shop, CUSTOMER_CHAT, lambda: shop.say(CUSTOMER_CHAT, "/status", token=CUSTOMER), timings, "customer /status")
        else:
            await _acted(shop, DRIVER, lambda: shop.say(DRIVER, "/today", token=STAFF), timings, "driver /today")

    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    print(f"\nuser action -> first reply over Telegram, {len(timings)} actions: "
          f"p50 {statistics.median(timings) * 1000:.0f} ms, p95 {cuts[94] * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms")
    assert len(timings) >= ACTIONS
