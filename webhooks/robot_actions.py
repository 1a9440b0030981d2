"""The confirmation page behind a group robot alert's action link: GET shows what would happen, POST (with a CSRF token)
does it once through the bus, as the signed-in dispatcher (held to their regions) or else the route's robot-link
dispatcher; used, expired or forged links get a clear page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from conversations.i18n import LANGUAGES, translate
from conversations.robot_actions import Decision, Offer, decide, offer
from domain.errors import DomainError
from domain.access import Principal
from domain.events import Event, RobotLinkUsed
from domain.model import Dispatcher, ProblemReport, Rating
from services import accounts
from services import actions as a
from services.context import HandlerContext
from services.messages import Text, raw, t, when
from services.robot_links import PATH, link_key, verified
from storage.repository import Store
from storage.robot_links import RobotLinkRow, RobotLinkStore
from webhooks.access import region_of
from webhooks.signin import SESSION_COOKIE

router = APIRouter(include_in_schema=False)

CSRF_COOKIE = "fc_robot_csrf"
FORM_FIELDS = 10  # csrf, choice, text: anything beyond a handful is not this page's form
RADIO_OPTIONS = 10  # more options than this are a drop-down
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the link is the credential: no page it leads to may learn it
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


# --- who acts, in which language --------------------------------------------------------------------


def page_language(request: Request, link: RobotLinkRow | None) -> str:
    """``?lang=`` first, then the reader's browser (Accept-Language, by its weights), then the group's language."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    ranked = []
    for index, part in enumerate(request.headers.get("accept-language", "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-", 1)[0]
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, index, primary))
    if ranked:
        return min(ranked)[2]
    return link["language"] if link and link["language"] in LANGUAGES else "zh"


def actor_name(link: RobotLinkRow) -> str:
    """The name a route's robot-link dispatcher is recorded under, in the group's language (cards and timeline show it)."""
    route = link["route"]
    group = route.split(":", 1)[1] if route.startswith("region:") else translate("robot.all_regions", link["language"])
    return translate("robot.actor_name", link["language"], {"group": group})[:200]


class ActorRefused(Exception):
    """The signed-in person may not act through this link (no right to act on jobs, or another region's record)."""

    def __init__(self, reason: Text) -> None:
        super().__init__("actor_refused")
        self.reason = reason


async def link_region(store: Store, link: RobotLinkRow) -> str | None:
    """The region of the record the link acts on (its visit, job, problem report or rating), else its group's."""
    action = a.decode(link["action"])
    visit_id, job_id = getattr(action, "visit_id", None), getattr(action, "job_id", None)
    if isinstance(action, a.OnException):
        report = await store.get(ProblemReport, action.exception_id)
        visit_id = report.visit_id if report is not None else None
    elif isinstance(action, a.AcknowledgeRating):
        rating = await store.get(Rating, action.rating_id)
        job_id = rating.job_id if rating is not None else None
    region = await region_of(store, job_id=job_id, visit_id=visit_id) if (job_id or visit_id) else None
    if region is None and link["route"].startswith("region:"):
        region = link["route"].split(":", 1)[1]
    return region


async def signed_in_person(request: Request, store: Store, link: RobotLinkRow, now: datetime) -> Principal | None:
    """Whoever is signed in (a web session, webhooks.signin) and may act through this link; None when nobody is. Someone
    with no right to act on jobs, or not of the record's region (the region rule of domain.access, as on the board),
    is refused with ActorRefused."""
    who = await accounts.session_of(store, request.cookies.get(SESSION_COOKIE), now)
    if who is None:
        return None
    principal = who.principal
    if not principal.can("jobs:write"):
        raise ActorRefused(t("robot.signed_in_cannot_act", name=raw(principal.name)))
    region = await link_region(store, link)
    if not principal.sees(region):
        raise ActorRefused(t("robot.signed_in_other_region", name=raw(principal.name), region=raw(region or "-")))
    return principal


async def acting_dispatcher(request: Request, store: Store, link: RobotLinkRow, now: datetime) -> tuple[int, str]:
    """Who the action is recorded as. Someone signed in acts as themselves: their dispatcher identity and name (an
    account without a dispatcher identity of its own, an admin, acts through the group's identity under their own
    name). Nobody signed in: the link is its own authority and acts as "a dispatcher of that group"."""
    person = await signed_in_person(request, store, link, now)
    if person is not None and person.dispatcher_id is not None and await store.get(Dispatcher, person.dispatcher_id) is not None:
        return person.dispatcher_id, person.name[:200]
    name = actor_name(link) if person is None else person.name[:200]
    return await RobotLinkStore(store).actor(link["route"], actor_name(link)), name


# --- CSRF: a cookie set by the GET, and a form field signed over it and the link ----------------------


def _csrf_value(key: bytes, link_id: int, cookie: str) -> str:
    digest = hmac.new(key, f"robot-csrf:{link_id}:{cookie}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def _csrf_ok(key: bytes, link_id: int, cookie: str | None, given: str | None) -> bool:
    if not cookie or not given or len(cookie) > 64 or len(given) > 64:
        return False
    return hmac.compare_digest(_csrf_value(key, link_id, cookie).encode(), given.encode())


# --- the page ----------------------------------------------------------------------------------------


@dataclass
class Page:
    language: str
    tz: Any
    status: int = 200
    cookie: str | None = None
    secure: bool = False

    def text(self, value: Text | str) -> str:
        if isinstance(value, str):
            return value
        return translate(value["key"], self.language, value.get("params"), self.tz)

    def respond(self, title: Text, body: str, tone: str = "info") -> HTMLResponse:
        colour = {"info": "#1f6feb", "done": "#1a7f37", "stop": "#9a6700", "error": "#cf222e"}[tone]
        document = f"""<!doctype html>
<html lang="{'zh-CN' if self.language == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex, nofollow">
<title>{html.escape(self.text(t('robot.page_title')))}</title>
<style>
body{{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;background:#f6f8fa;color:#1f2328}}
main{{max-width:34rem;margin:0 auto;padding:1.2rem}}
h1{{font-size:1.25rem;border-left:.3rem solid {colour};padding-left:.6rem}}
.alert{{white-space:pre-wrap;background:#fff;border:1px solid #d0d7de;border-radius:.4rem;padding:.8rem;font-size:.95rem}}
.note{{color:#59636e;font-size:.9rem}} .result{{white-space:pre-wrap;background:#fff;border-radius:.4rem;padding:.8rem;border:1px solid {colour}}}
label.option{{display:block;background:#fff;border:1px solid #d0d7de;border-radius:.4rem;padding:.6rem;margin:.4rem 0}}
textarea,select{{width:100%;box-sizing:border-box;font:inherit;padding:.5rem}} textarea{{min-height:5rem}}
button{{font:inherit;font-size:1.05rem;background:{colour};color:#fff;border:0;border-radius:.4rem;padding:.7rem 1.4rem;margin-top:.8rem}}
</style></head><body><main>
<h1>{html.escape(self.text(title))}</h1>
{body}
</main></body></html>"""
        response = HTMLResponse(document, status_code=self.status, headers=HEADERS)
        if self.cookie:
            response.set_cookie(CSRF_COOKIE, self.cookie, max_age=3600, path=PATH, secure=self.secure, httponly=True, samesite="strict")
        return response

    def para(self, value: Text | str, css: str = "note") -> str:
        return f'<p class="{css}">{html.escape(self.text(value))}</p>'

    def block(self, value: Text | str, css: str) -> str:
        return f'<div class="{css}">{html.escape(self.text(value))}</div>'


def _page(request: Request, link: RobotLinkRow | None, **kw: Any) -> Page:
    app = request.app.state.container
    public = app.settings.public_url or ""
    return Page(page_language(request, link), app.policy.tz, secure=public.startswith("https://"), **kw)


def invalid(request: Request) -> HTMLResponse:
    """A token that is malformed, tampered with or names no link: 404, and no hint which of those it was."""
    page = _page(request, None, status=404)
    return page.respond(t("robot.invalid_title"), page.para(t("robot.invalid"), "result"), "error")


def finished(request: Request, link: RobotLinkRow, now: datetime) -> HTMLResponse | None:
    """The page of a link that can no longer act (410 Gone): used (what happened, by whom, when) or expired."""
    page = _page(request, link, status=410)
    alert = page.para(t("robot.alert_heading")) + page.block(link["alert_text"], "alert")
    if link["used_at"] is not None:
        outcome = link["outcome"] or t("robot.done_unknown")
        said = t("robot.used", outcome=outcome, name=link["used_by"] or "-", at=when(link["used_at"]))
        return page.respond(t("robot.used_title"), page.para(said, "result") + page.para(t("robot.used_next")) + alert, "stop")
    if link["expires_at"] <= now:
        said = t("robot.expired", at=when(link["expires_at"]))
        return page.respond(t("robot.expired_title"), page.para(said, "result") + page.para(t("robot.expired_next")) + alert, "stop")
    return None


def confirmation(request: Request, page: Page, link: RobotLinkRow, offered: Offer, name: str, csrf: str,
                 problem: Text | None = None) -> HTMLResponse:
    parts = []
    if problem is not None:
        parts.append(page.para(problem, "result"))
    parts.append(page.para(t("robot.alert_heading")))
    parts.append(page.block(link["alert_text"], "alert"))
    if offered.refusal is not None:
        parts.append(page.para(offered.refusal, "result"))
        parts.append(page.para(t("robot.refused_next")))
        return page.respond(offered.title, "".join(parts), "stop")
    form = [f'<form method="post" action="{html.escape(str(request.url.path))}">',
            f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">']
    if len(offered.options) > RADIO_OPTIONS:
        # a month of time windows as radios is a long scroll on a phone: one drop-down instead
        form.append(f'<p><label for="choice">{html.escape(page.text(t("robot.pick_one")))}</label></p><select id="choice" name="choice" required>'
                    f'<option value="">…</option>')
        form.extend(f'<option value="{html.escape(o.value)}">{html.escape(page.text(o.label))}</option>' for o in offered.options)
        form.append("</select>")
    elif offered.options:
        form.append(page.para(t("robot.pick_one"), "note"))
        for option in offered.options:
            checked = " checked" if len(offered.options) == 1 else ""
            form.append(f'<label class="option"><input type="radio" name="choice" value="{html.escape(option.value)}"{checked} required> '
                        f'{html.escape(page.text(option.label))}</label>')
    if offered.ask is not None:
        form.append(f'<p><label for="text">{html.escape(page.text(offered.ask))}</label></p>'
                    f'<textarea id="text" name="text" maxlength="500" required></textarea>')
    form.append(page.para(t("robot.acting_as", name=name)))
    form.append(page.para(t("robot.single_use", at=when(link["expires_at"]))))
    form.append(f'<button type="submit">{html.escape(page.text(t("robot.reveal" if offered.reveals else "robot.confirm")))}</button></form>')
    return page.respond(offered.title, "".join(parts) + "".join(form))


async def _actor_shown(request: Request, store: Store, link: RobotLinkRow, now: datetime) -> str:
    """The name the page says the action will be recorded under (ActorRefused when the signed-in person may not act);
    a first look makes no identity (a GET changes nothing)."""
    person = await signed_in_person(request, store, link, now)
    return actor_name(link) if person is None else person.name[:200]


def not_yours(request: Request, link: RobotLinkRow, reason: Text) -> HTMLResponse:
    """403: the signed-in person may not do what this link does; nothing was done and the link still works for others."""
    page = _page(request, link, status=403)
    body = page.para(reason, "result") + page.para(t("robot.signed_in_next")) + page.para(t("robot.alert_heading"))
    return page.respond(t("robot.not_yours_title"), body + page.block(link["alert_text"], "alert"), "stop")


# --- routes --------------------------------------------------------------------------------------------


class _TooLate(Exception):
    """Another press used the link between the page's check and this unit of work."""


@router.get(PATH + "{token}", response_class=HTMLResponse)
async def show(token: str, request: Request) -> HTMLResponse:
    """What the link would do, and a button to do it. Changes nothing: chat apps open links to preview them."""
    app = request.app.state.container
    now = app.clock.now()
    async with app.sessions() as session, session.begin():
        store = Store(session)
        link = await verified(store, token[:100], now)
        if link is None:
            return invalid(request)
        gone = finished(request, link, now)
        if gone is not None:
            return gone
        action = a.decode(link["action"])
        if action is None:
            return invalid(request)
        offered = await offer(HandlerContext(store, now, app.policy), action)
        key = await link_key(store, now)
        try:
            name = await _actor_shown(request, store, link, now)
        except ActorRefused as refused:
            return not_yours(request, link, refused.reason)
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or len(cookie) > 64:
        cookie = secrets.token_urlsafe(24)
    page = _page(request, link, cookie=cookie)
    return confirmation(request, page, link, offered, name, _csrf_value(key, link["id"], cookie))


@router.post(PATH + "{token}", response_class=HTMLResponse)
async def act(token: str, request: Request) -> HTMLResponse:
    """Does what the page offered, once: the link is marked used in the same unit of work as the command."""
    app = request.app.state.container
    now = app.clock.now()
    async with app.sessions() as session, session.begin():
        store = Store(session)
        link = await verified(store, token[:100], now)
        key = await link_key(store, now)
    if link is None:
        return invalid(request)
    gone = finished(request, link, now)
    if gone is not None:
        return gone
    action = a.decode(link["action"])
    if action is None:
        return invalid(request)
    form = await _form(request)
    if form is None:
        page = _page(request, link, status=400)
        return page.respond(t("robot.bad_form_title"), page.para(t("robot.bad_form"), "result"), "error")
    if not _csrf_ok(key, link["id"], request.cookies.get(CSRF_COOKIE), form.get("csrf")):
        page = _page(request, link, status=403)
        body = page.para(t("robot.csrf"), "result") + f'<p><a href="{html.escape(str(request.url.path))}">{html.escape(page.text(t("robot.open_again")))}</a></p>'
        return page.respond(t("robot.csrf_title"), body, "error")

    async def work(ctx: HandlerContext) -> tuple[Decision, list[Event]]:
        links = RobotLinkStore(ctx.store)
        dispatcher_id, name = await acting_dispatcher(request, ctx.store, link, ctx.now)
        decision = await decide(ctx, action, dispatcher_id=dispatcher_id, name=name, choice=form.get("choice"), text=form.get("text"))
        if decision.refusal is not None:
            return decision, []
        if not await links.use(link["id"], name, decision.done or t("robot.done_unknown"), ctx.now):
            raise _TooLate()
        events = await app.bus.execute(ctx, decision.commands)
        job_id, visit_id = decision.job_id, decision.visit_id
        if events:
            job_id, visit_id = events[0].job_id, events[0].visit_id
        if job_id is not None:
            events.append(RobotLinkUsed(job_id, visit_id, {
                "link_id": link["id"], "route": link["route"], "action": link["action"], "dispatcher_id": dispatcher_id, "name": name,
                "via": "robot_link", "done": decision.done or t("robot.done_unknown"),
            }))
        return decision, events

    try:
        decision = await app.bus.call(f"robot-link:{link['id']}", work)
    except ActorRefused as refused:
        return not_yours(request, link, refused.reason)
    except _TooLate:
        async with app.sessions() as session:
            latest = await RobotLinkStore(Store(session)).link(link["id"])
        return finished(request, latest or link, app.clock.now()) or invalid(request)
    except DomainError as err:
        decision = Decision(refusal=t(f"error.{err.code}", **err.params))
    page = _page(request, link)
    if decision.refusal is not None:
        async with app.sessions() as session:
            latest = await RobotLinkStore(Store(session)).link(link["id"])
        if latest is not None and latest["used_at"] is not None:
            # refused because another confirmation of this very link acted first (two presses at once): that one's answer
            return finished(request, latest, app.clock.now()) or invalid(request)
        # nothing ran and the link still works: the same page again, saying what stopped it
        page.status = 409
        async with app.sessions() as session, session.begin():
            offered = await offer(HandlerContext(Store(session), now, app.policy), action)
            name = await _actor_shown(request, Store(session), link, now)
        return confirmation(request, page, link, offered, name, form.get("csrf") or "", problem=decision.refusal)
    body = page.para(decision.done or t("robot.done_unknown"), "result")
    if decision.shown is not None:
        body += page.block(decision.shown, "result")
    body += page.para(t("robot.done_next"))
    return page.respond(t("robot.done_title"), body, "done")


async def _form(request: Request) -> dict[str, str] | None:
    """The form's fields; None when the body is not a small urlencoded form in UTF-8."""
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > 16 * 1024:
        return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)
