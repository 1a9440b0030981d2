"""A robot alert's buttons as signed, expiring, single-use links: issued when the alert is sent, checked when one comes back."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta

from services import actions as a, signed_links
from domain import events as ev
from services.context import HandlerContext
from services.messages import ChatRef, Outbound, Purpose, Rendered, t
from services.notifications import ROBOT_PLATFORM
from storage.repository import Store
from storage.robot_links import RobotLinkRow, RobotLinkStore

SECRET_NAME = "robot-links"  # the server secret (server_secrets) the links are signed with
PATH = "/robot/a/"  # where a link's confirmation page is served (webhooks/robot_actions.py)
DEFAULT_TTL = timedelta(hours=24)
ALERT_TEXT_CHARS = 4000  # what the page shows of the alert; robots cut theirs at about this size too

# What a robot alert offers and a link's page can do (conversations/robot_actions.py says how, one entry each).
# The steps a Telegram group walks through after these (pick a technician, a day, type a reason) are the page's form.
LINKABLE: tuple[type[a.Action], ...] = (
    a.Acknowledge, a.Reassign, a.CancelReported, a.AcknowledgeRating, a.Assign, a.ReassignLate, a.ExtendDeadline,
    a.CallDetails, a.AssignAnyone, a.MoveVisitMenu, a.CancelFromAlert, a.FixAddress, a.CloseJobAsk, a.ReopenJobAsk, a.NoteAsk,
    # a price increase (issue 14): the region's approval, and the customer's answer taken by phone when they have no chat
    a.ApprovePriceIncrease, a.DeclinePriceIncrease, a.PhoneAgreedPriceIncrease, a.PhoneRefusedPriceIncrease,
)


def linkable(data: str) -> bool:
    """Whether a button's action can be a robot link (a valid action of a kind the page handles)."""
    action = a.decode(data)
    return action is not None and type(action) in LINKABLE


def alert_digest(route: str, text: str) -> str:
    """Names one alert to one route: the same alert sent again (a retry) gets the links it had."""
    return hashlib.sha256(f"{route}\n{text}".encode()).hexdigest()


def _mac(key: bytes, link: RobotLinkRow) -> str:
    # over every column that says what the link does, to whom and until when: a changed row no longer matches its links
    return signed_links.mac(key, "robot-action", link["id"], link["route"], link["action"], link["alert_digest"],
                            int(link["expires_at"].timestamp()))


def token_for(key: bytes, link: RobotLinkRow) -> str:
    return signed_links.token(link["id"], _mac(key, link))


async def link_key(store: Store, now: datetime) -> bytes:
    return await store.server_secret(SECRET_NAME, now)


async def verified(store: Store, token: str, now: datetime) -> RobotLinkRow | None:
    """The link a token names, if its signature holds (compared in constant time); used or expired links included:
    what happened to them is the page's to say."""
    parsed = signed_links.parse_token(token)
    if parsed is None:
        return None
    link = await RobotLinkStore(store).link(parsed[0])
    if link is None or not signed_links.matches(_mac(await link_key(store, now), link), parsed[1]):
        return None
    return link


async def with_action_links(store: Store, *, route: str, message: Rendered, language: str, base_url: str, now: datetime,
                            ttl: timedelta = DEFAULT_TTL) -> Rendered:
    """The message with each linkable button's action replaced by its signed link (bots/robots.py shows those as links).

    Buttons the page cannot act on keep their data (shown as labels). Links of the same alert to the same route are
    reused while unused and unexpired, so a retried send does not pile up rows."""
    if not any(linkable(data) for row in message.buttons for _, data in row):
        return message
    links = RobotLinkStore(store)
    key = await link_key(store, now)
    text = message.text[:ALERT_TEXT_CHARS]
    digest = alert_digest(route, text)
    rows = []
    for row in message.buttons:
        shown = []
        for label, data in row:
            if not linkable(data):
                shown.append((label, data))
                continue
            link = await links.open_link(route, digest, data, now) or await links.add_link(
                route=route, action=data, label=label[:200], alert_text=text, alert_digest=digest, language=language, now=now,
                expires_at=now + ttl,
            )
            shown.append((label, f"{base_url.rstrip('/')}{PATH}{token_for(key, link)}"))
        rows.append(shown)
    return replace(message, buttons=rows)


async def tell_route_link_used(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Robot messages cannot be edited: the route whose alert was acted on through a link hears who did what, so nobody
    else in that group acts on it again (its other links say so too when opened)."""
    route = event.data.get("route")
    if not route:
        return []
    text = t("robot.group_link_used", done=event.data.get("done") or t("robot.done_unknown"))  # the words name who did it
    # no language: the robot channel renders in the one its route's robots read
    return [Outbound(text, to=ChatRef(ROBOT_PLATFORM, "alerts", route), alert=True, purpose=Purpose.ALERT)]
