"""Prompts that change are living cards, so an old prompt's buttons do not stay live (issue 10, part 8: a new user's walk)."""

from __future__ import annotations

import pytest

from storage.repository import Store
from tests.support.harness import Chat, Msg, World, parts
from tests.support.setups import DELIVERY_STEPS, INSTALL_STEPS, booked_and_accepted, dispatch_group, staff
from webhooks.webchat import place_cards


@pytest.fixture
def database_url(sqlite_url) -> str:
    """These dialogues run on SQLite only."""
    return sqlite_url


class Screen:
    """What a chat shows, placed as the web console places it (the relay's rule for channels that edit): each shown
    message's text keys and buttons; a press is made on the message that shows the button, as a reader would."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        self.answer: list[Msg] = []  # what the last press was answered with

    async def shown(self) -> dict[int, tuple[list[str], list[str]]]:
        async with self.chat.world.container.sessions() as session:
            rows = await Store(session).outbox_for_chat(self.chat.ref.platform, self.chat.ref.bot, self.chat.ref.chat_id, 0, limit=1000)
        placed = place_cards([{"id": r["id"], "card": r["card"], "payload": r["payload"]} for r in rows if r["card"]])
        screen: dict[int, tuple[list[str], list[str]]] = {}
        for row in rows:
            payload = row["payload"]
            message = (parts(payload["text"]), [b["data"] for line in payload.get("buttons") or [] for b in line])
            placement = placed.get(row["id"])
            if placement is None:
                screen[row["id"]] = message
                continue
            screen[placement.shows] = message
            if placement.retires is not None:
                screen[placement.retires] = (screen[placement.retires][0], [])
        return screen

    async def live(self, prefix: str) -> list[str]:
        """Every button with this prefix that can still be pressed somewhere in the chat."""
        return [d for _id, (_k, data) in sorted((await self.shown()).items()) for d in data if d.split(":", 1)[0] == prefix]

    async def press(self, prefix: str, index: int = 0) -> int:
        """Press the ``index``-th live button with this prefix on the message that shows it; that message's id."""
        for message_id, (_keys, data) in sorted((await self.shown()).items(), reverse=True):
            found = [d for d in data if d.split(":", 1)[0] == prefix]
            if found:
                self.answer = await self.chat.press(found[index], message_id=str(message_id))
                return message_id
        raise AssertionError(f"no live {prefix!r} button")

    async def count(self) -> int:
        return len(await self.shown())


async def shop(world: World) -> Chat:
    await world.template("delivery", "sofa", DELIVERY_STEPS)
    await world.template("installation", "sofa", INSTALL_STEPS)
    await staff(world, "Wang", ["driver"])
    await staff(world, "Li", ["installer"], ["sofa"])
    return await dispatch_group(world)


async def test_paging_days_and_picking_a_window_edit_one_card_and_leave_no_window_buttons(world: World):
    """Seen: a day's windows came as a new message; after booking, its window buttons were still live and pressing one
    later started a reschedule."""
    await shop(world)
    order = await world.order(services=("delivery", "installation"))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    screen = Screen(customer)
    welcome = await screen.count()
    first = await screen.press("bd")  # another day
    assert await screen.press("bm") == first  # back to the days: the same message
    assert await screen.press("bd", 1) == first
    assert await screen.count() == welcome  # paging added no message
    assert await screen.press("sl") == first
    keys, _buttons = (await screen.shown())[first]
    assert "customer.booked" in keys
    assert await screen.live("sl") == [] and await screen.live("bd") == []  # nothing left to start a reschedule

    # the installation, booked from the booking's own "book next": the same card again
    assert await screen.press("bk") == first
    await screen.press("sl")
    assert await screen.live("sl") == [] and await screen.live("bd") == [] and await screen.live("bm") == []


async def test_moving_a_visit_past_its_installation_is_one_card_to_the_end(world: World):
    """Seen: "Move both / Keep both" and the day lists stayed pressable after the move was done."""
    await shop(world)
    order = await world.order(services=("delivery", "installation"))
    customer = world.chat("customer", "c")
    await customer.send(f"/start {order.customer_token}")
    screen = Screen(customer)
    await screen.press("bd", 1)  # Wednesday
    await screen.press("sl")
    await screen.press("bk")
    await screen.press("sl")  # the installation on the first day it can be
    await customer.send("/status")
    card = await screen.press("rs")  # the delivery to a later day
    assert await screen.press("bd", 2) == card
    assert await screen.press("sl", -1) == card  # late in the day: the installation must move too
    assert await screen.live("mb") and await screen.live("kb")
    assert await screen.press("mb") == card
    assert await screen.press("mbd") == card
    assert await screen.press("sl") == card
    assert "customer.moved_both" in (await screen.shown())[card][0]
    for prefix in ("sl", "bd", "bm", "mb", "mbd", "kb"):
        assert await screen.live(prefix) == [], prefix


async def test_rating_and_skipping_the_comment_leave_no_live_rating_buttons(world: World):
    """Seen: after rating, the 1–5 buttons stayed; after commenting, Skip stayed."""
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"go:{visit.id}")
    await driver.location(31.2304, 121.4737)
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    await driver.press(f"done:{visit.id}")
    screen = Screen(customer)
    await screen.press("cf")
    prompt = await screen.press("rt", 3)  # 4 of 5
    assert await screen.live("rt") == []
    assert await screen.live("skip")
    assert await screen.press("skip") == prompt
    assert await screen.live("skip") == []
    assert "customer.thanks" in (await screen.shown())[prompt][0]


async def test_a_comment_typed_after_rating_takes_skip_away(world: World):
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"go:{visit.id}")
    await driver.location(31.2304, 121.4737)
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    await driver.press(f"done:{visit.id}")
    screen = Screen(customer)
    await screen.press("cf")
    await screen.press("rt", 0)  # 1 of 5: asked what went wrong
    await customer.send("The floor was scratched")
    assert await screen.live("skip") == [] and await screen.live("rt") == []


async def complaint_in_group(world: World):
    """A delivery rated 1 with a comment: the group's complaint card, with Add note among its buttons."""
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"go:{visit.id}")
    await driver.location(31.2304, 121.4737)
    await driver.press(f"st:{visit.id}")
    await driver.press(f"ans:{visit.id}:0:yes")
    await driver.press(f"done:{visit.id}")
    await customer.press(f"cf:{visit.id}")
    await customer.press(f"rt:{visit.id}:1")
    await customer.send("The floor was scratched")
    return order, customer, group


async def test_add_note_asks_for_a_reply_and_its_never_mind_goes_once_the_note_is_in(world: World):
    """Seen: "(Reply to this message…)" without a reply request (in a privacy-mode group the bot never sees the
    note), and Never mind still pressable after the note was added."""
    order, customer, group = await complaint_in_group(world)
    screen = Screen(group)
    await screen.press("dno")
    ask = screen.answer[-1]
    assert ask.key == "dispatch.ask_note" and ask.request == "reply"
    assert await screen.live("dnm")
    added = await group.send("Called back, visit on Friday")
    assert [m.key for m in added] == ["dispatch.note_added"]
    assert await screen.live("dnm") == []


async def test_never_mind_takes_the_question_away(world: World):
    order, customer, group = await complaint_in_group(world)
    screen = Screen(group)
    await screen.press("dro")
    asked = await screen.press("dnm")
    assert await screen.live("dnm") == []
    assert "common.cancelled" in (await screen.shown())[asked][0]


async def test_the_checklist_is_one_card_per_visit_and_leaves_no_step_buttons_behind(world: World):
    """Seen: each step's question came as a new message, and the answered steps' Yes / No stayed pressable."""
    await world.template("installation", "sofa", INSTALL_STEPS)
    _, installer = await staff(world, "Li", ["installer"], ["sofa"])
    await dispatch_group(world)
    order = await world.order(services=("installation",))
    visit = order.visits[0]
    customer = Screen(world.chat("customer", "c"))
    await customer.chat.send(f"/start {order.customer_token}")
    await customer.press("sl")
    screen = Screen(installer)
    await screen.press("acc")
    await installer.press(f"go:{visit.id}")
    await installer.location(31.2304, 121.4737 + 0.001)
    checked_in = await screen.press("st")
    assert await screen.live("st") == []  # Start turned into the first question
    assert await screen.press("ans") == checked_in  # room ready: yes
    assert (await screen.shown())[checked_in][0] == ["tech.step_number"]  # the next question took the answered one's place
    await installer.send("40")  # out of range: asked again, the older copy without its buttons
    assert len(await screen.live("ans")) == 0 and len(await screen.live("rp")) == 1
    await installer.send("4")
    assert len(await screen.live("ans")) == 2  # the fabric choices, once
    await screen.press("ans", 1)
    assert await screen.live("ans") == []
    await installer.send("here it is")  # not a photo: asked again
    assert len(await screen.live("rp")) == 1  # one live question, whatever happened
    photo = world.media / "sofa.jpg"
    photo.write_bytes(b"\xff\xd8\xff fake jpeg")
    await installer.photo(photo)
    assert len(await screen.live("done")) == 1 and len(await screen.live("rp")) == 1
    done = await screen.press("done")
    assert (await screen.shown())[done][0] == ["tech.completed"]
    assert await screen.live("done") == [] and await screen.live("rp") == [] and await screen.live("ans") == []


async def test_the_comment_on_a_low_rating_edits_its_alert_so_the_group_has_one_card(world: World):
    """Seen: the low rating and the complaint that followed came as two alerts with the same buttons."""
    order, customer, group = await complaint_in_group(world)
    screen = Screen(group)
    cards = [(keys, data) for keys, data in (await screen.shown()).values() if any(d.startswith("ra:") for d in data)]
    assert len(cards) == 1 and cards[0][0] == ["alert.complaint"]  # the rating's card, now with the customer's words
    await screen.press("ra")
    assert await screen.live("ra") == [] and len(await screen.live("dno")) == 1
