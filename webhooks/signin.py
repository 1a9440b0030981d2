"""The sign-in pages: password and Telegram (Login Widget, Mini App initData), "who am I", and sign-out; server-rendered,
zh/en from the catalogs, no external assets; sessions are HTTP-only cookies and every form carries a CSRF token."""

from __future__ import annotations

import html
import hmac
import secrets
import uuid
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bots import telegram_login as login_data
from bots.channels import TELEGRAM
from conversations.i18n import LANGUAGES, translate
from domain.access import Role
from scheduler.ratelimit import window_storage
from services import accounts
from services.context import HandlerContext
from storage.accounts import AccountStore
from storage.repository import Store

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "fieldchat_session"
SIGNIN_CSRF_COOKIE = "fc_signin_csrf"  # before a session exists, the sign-in form's CSRF token is a double-submitted cookie
FORM_LIMIT = 8 * 1024
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def csp(nonce: str | None = None) -> str:
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src {script}; connect-src 'self'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def language_of(request: Request, fallback: str = "zh") -> str:
    """``?lang=`` first, then the browser's Accept-Language (its first zh or en), then ``fallback``."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "").split(",")[:20]:
        primary = part.strip().split(";", 1)[0].strip().lower().split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
    return fallback


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def secure_cookies(request: Request) -> bool:
    return (request.app.state.container.settings.public_url or "").startswith("https://")


@dataclass
class Page:
    """One server-rendered page in the reader's language: ``tr`` translates a catalog key, HTML-escaped."""

    language: str
    status: int = 200

    def tr(self, key: str, **params: Any) -> str:
        return html.escape(translate(key, self.language, params))

    def respond(self, title_key: str, body: str, *, nonce: str | None = None, script: str = "") -> HTMLResponse:
        script_tag = f'<script nonce="{nonce}">{script}</script>' if nonce and script else ""
        other = "en" if self.language == "zh" else "zh"
        document = f"""<!doctype html>
<html lang="{'zh-CN' if self.language == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex, nofollow">
<title>{self.tr(title_key)} · fieldchat</title>
<style>
body{{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;background:#f6f8fa;color:#1f2328}}
main{{max-width:26rem;margin:0 auto;padding:1.2rem}}
h1{{font-size:1.3rem}} .card{{background:#fff;border:1px solid #d0d7de;border-radius:.5rem;padding:1rem}}
label{{display:block;margin:.8rem 0 .3rem;font-weight:600}}
input[type=text],input[type=password]{{width:100%;box-sizing:border-box;font:inherit;padding:.55rem;border:1px solid #8c959f;border-radius:.35rem}}
input:focus,button:focus,a:focus{{outline:3px solid #0969da;outline-offset:2px}}
button{{font:inherit;font-size:1.05rem;background:#0969da;color:#fff;border:0;border-radius:.4rem;padding:.65rem 1.3rem;margin-top:1rem}}
.error{{color:#a40e26;background:#ffebe9;border:1px solid #ff8182;border-radius:.4rem;padding:.6rem}}
.note{{color:#57606a;font-size:.92rem}} dt{{font-weight:600;margin-top:.6rem}} dd{{margin:0}}
nav{{text-align:right;font-size:.9rem}}
</style></head><body><main>
<nav><a href="?lang={other}" hreflang="{other}">{'English' if other == 'en' else '中文'}</a></nav>
<h1>{self.tr(title_key)}</h1>
{body}
</main>{script_tag}</body></html>"""
        headers = {**HEADERS, "Content-Security-Policy": csp(nonce)}
        return HTMLResponse(document, status_code=self.status, headers=headers)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never //host or a scheme), else the "who am I" page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 500:
        return "/me"
    # browsers drop tabs and newlines inside URLs: "/\t/evil.example" would become "//evil.example"
    if any(ch.isspace() or not ch.isprintable() for ch in target):
        return "/me"
    return target


def same_origin(request: Request) -> bool:
    """A browser's POST names the page it came from; another site's (a forged sign-in) is refused. No Origin: not a
    browser form, nothing to forge with."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def read_form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form, or None for anything else (the page answers with a clear 400)."""
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > FORM_LIMIT:
        return None
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)


# --- who is signed in --------------------------------------------------------------------------------


async def signed_in(request: Request) -> accounts.SignedIn | None:
    """The live session of this request's cookie, if any (the board and other pages depend on this)."""
    app = request.app.state.container
    async with app.sessions() as session:
        return await accounts.session_of(Store(session), request.cookies.get(SESSION_COOKIE), app.clock.now())


SignedInDep = Annotated[accounts.SignedIn | None, Depends(signed_in)]


class SignInRequired(Exception):
    """A page needs a session: answered by ``answer_sign_in_required`` (to the sign-in page, then back here)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def require_session(scope: str | None = None) -> Callable[..., Awaitable[accounts.SignedIn]]:
    """A page's dependency: the signed-in person, holding ``scope`` if one is named. Without a session the browser goes
    to the sign-in page and comes back; without the scope the answer is 403 with a page saying so (no dead end)."""

    async def dependency(request: Request, who: SignedInDep) -> accounts.SignedIn:
        if who is None:
            raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if scope is not None and not who.principal.can(scope):
            page = Page(language_of(request, who.language), status=403)
            body = f'<p class="error" role="alert">{page.tr("access.no_scope")}</p><p><a href="/me">{page.tr("access.back")}</a></p>'
            raise PageRefused(page.respond("access.me_title", body))
        return who

    return dependency


class PageRefused(Exception):
    def __init__(self, response: HTMLResponse) -> None:
        super().__init__("refused")
        self.response = response


async def answer_sign_in_required(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PageRefused):
        return exc.response
    target = exc.target if isinstance(exc, SignInRequired) else "/me"
    return RedirectResponse(f"/signin?next={quote(safe_next(target), safe='/')}", status_code=303, headers=HEADERS)


def install(app: Any) -> None:
    """The routes, and the answers of pages that need a session."""
    app.include_router(router)
    app.add_exception_handler(SignInRequired, answer_sign_in_required)
    app.add_exception_handler(PageRefused, answer_sign_in_required)


def csrf_ok(expected: str | None, given: str | None) -> bool:
    if not expected or not given or len(given) > 100:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _limiter(request: Request) -> accounts.SignInLimiter:
    state = request.app.state
    if getattr(state, "signin_limiter", None) is None:
        state.signin_limiter = accounts.SignInLimiter(window_storage(request.app.state.container.settings.redis_url, "fieldchat-signin"))
    limiter: accounts.SignInLimiter = state.signin_limiter
    return limiter


async def _start(request: Request, row: dict[str, Any], via: str, target: str, *, redirect: bool = True) -> Response:
    """Open a session for the account on the bus and answer with its cookie set."""
    app = request.app.state.container
    ttl = timedelta(hours=app.settings.session_hours)

    async def work(ctx: HandlerContext) -> tuple[tuple[str, str], list[Any]]:
        return await accounts.start_session(ctx, row["id"], via=via, address=client_address(request), ttl=ttl), []

    cookie, _csrf = await app.bus.call(f"signin:{via}:{uuid.uuid4().hex}", work)
    response: Response = RedirectResponse(target, status_code=303) if redirect else JSONResponse({"ok": True, "next": target})
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(ttl.total_seconds()), httponly=True, samesite="lax",
                        secure=secure_cookies(request), path="/")
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/signin")
    for key, value in HEADERS.items():
        response.headers[key] = value
    return response


# --- pages ---------------------------------------------------------------------------------------------


def _signin_form(page: Page, csrf: str, target: str, problem: str | None = None, username: str = "") -> str:
    error = f'<p class="error" role="alert">{problem}</p>' if problem else ""
    return f"""{error}<form class="card" method="post" action="/signin">
<input type="hidden" name="csrf" value="{html.escape(csrf)}"><input type="hidden" name="next" value="{html.escape(target)}">
<label for="username">{page.tr('access.username')}</label>
<input type="text" id="username" name="username" autocomplete="username" required maxlength="100" value="{html.escape(username)}" autofocus>
<label for="password">{page.tr('access.password')}</label>
<input type="password" id="password" name="password" autocomplete="current-password" required maxlength="{accounts.MAX_PASSWORD}">
<button type="submit">{page.tr('access.sign_in')}</button></form>
<p class="note">{page.tr('access.telegram_note')}</p>"""


def _with_csrf_cookie(request: Request, response: HTMLResponse, value: str) -> HTMLResponse:
    response.set_cookie(SIGNIN_CSRF_COOKIE, value, max_age=3600, httponly=True, samesite="strict", secure=secure_cookies(request), path="/signin")
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, who: SignedInDep) -> Response:
    target = safe_next(request.query_params.get("next"))
    if who is not None:
        return RedirectResponse(target, status_code=303, headers=HEADERS)
    page = Page(language_of(request))
    csrf = request.cookies.get(SIGNIN_CSRF_COOKIE)
    if not csrf or len(csrf) > 64:
        csrf = secrets.token_urlsafe(24)
    return _with_csrf_cookie(request, page.respond("access.signin_title", _signin_form(page, csrf, target)), csrf)


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    page = Page(language_of(request))
    form = await read_form(request)
    csrf = request.cookies.get(SIGNIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    if form is None:
        page.status = 400
        return _with_csrf_cookie(request, page.respond("access.signin_title", _signin_form(page, csrf, "/me", page.tr("access.bad_form"))), csrf)
    target = safe_next(form.get("next"))
    username = form.get("username", "")[:100]
    if not csrf_ok(request.cookies.get(SIGNIN_CSRF_COOKIE), form.get("csrf")):
        page.status = 403
        fresh = secrets.token_urlsafe(24)
        return _with_csrf_cookie(request, page.respond("access.signin_title", _signin_form(page, fresh, target, page.tr("access.csrf"), username)), fresh)
    limiter = _limiter(request)
    address = client_address(request)
    app = request.app.state.container
    try:
        await limiter.check(username, address)

        async def work(ctx: HandlerContext) -> tuple[dict[str, Any], list[Any]]:
            return await accounts.password_sign_in(ctx, username, form.get("password", "")), []

        row = await app.bus.call(f"signin:password:{uuid.uuid4().hex}", work)
    except accounts.AccessRefused as refused:
        if refused.code == "wrong_credentials":
            await limiter.failed(username, address)
        page.status = 429 if refused.code == "too_many_attempts" else 401
        return _with_csrf_cookie(request, page.respond(
            "access.signin_title", _signin_form(page, csrf, target, page.tr(f"access.refused.{refused.code}"), username)), csrf)
    return await _start(request, row, "password", target)


def _telegram_token(request: Request) -> str | None:
    token = request.app.state.container.settings.telegram_staff_token
    return token.get_secret_value() if token else None


async def _telegram(request: Request, user_id_of: Callable[[str, datetime, timedelta], str], via: str, *, redirect: bool,
                    target: str = "/me") -> Response:
    """Shared by both Telegram ways in: verify with the staff bot's token, find the account, open a session."""
    app = request.app.state.container
    page = Page(language_of(request))
    bot_token = _telegram_token(request)
    max_age = timedelta(minutes=app.settings.telegram_auth_minutes)
    try:
        if bot_token is None:
            raise accounts.AccessRefused("telegram_off")
        user_id = user_id_of(bot_token, app.clock.now(), max_age)

        async def work(ctx: HandlerContext) -> tuple[dict[str, Any], list[Any]]:
            row = await accounts.chat_sign_in(ctx, TELEGRAM, "staff", user_id, username=f"tg{user_id}", display_name=f"Telegram {user_id}")
            return row, []

        row = await app.bus.call(f"signin:{via}:{uuid.uuid4().hex}", work)
    except accounts.AccessRefused as refused:
        status = 503 if refused.code == "telegram_off" else 403 if refused.code in ("chat_user_unknown", "account_disabled") else 401
        if not redirect:
            return JSONResponse({"detail": refused.code, "message": translate(f"access.refused.{refused.code}", page.language)}, status)
        page.status = status
        body = f'<p class="error" role="alert">{page.tr(f"access.refused.{refused.code}")}</p><p><a href="/signin">{page.tr("access.back_to_signin")}</a></p>'
        return page.respond("access.signin_title", body)
    return await _start(request, row, via, target, redirect=redirect)


@router.get("/signin/telegram", response_class=HTMLResponse)
async def telegram_login(request: Request) -> Response:
    """The Login Widget's auth URL: Telegram redirects here with the user's fields and their hash."""
    fields = {key: value[:512] for key, value in list(request.query_params.items())[:20] if key != "lang"}
    return await _telegram(request, lambda token, now, age: login_data.verify_login_widget(fields, token, now, age), "telegram_login", redirect=True)


@router.post("/signin/webapp")
async def webapp_login(request: Request) -> Response:
    """A Mini App posts its ``initData`` (form field ``init_data``); the answer sets the session cookie."""
    if not same_origin(request):
        return JSONResponse({"detail": "cross_site", "message": translate("access.csrf", language_of(request))}, 403)
    form = await read_form(request)
    init_data = (form or {}).get("init_data", "")
    target = safe_next((form or {}).get("next"))  # the page the app was opened for (e.g. the board), of this site only
    return await _telegram(request, lambda token, now, age: login_data.verify_init_data(init_data, token, now, age), "telegram_webapp",
                           redirect=False, target=target)


WEBAPP_SCRIPT = """
(function(){
  var data = new URLSearchParams(location.hash.slice(1)).get('tgWebAppData') || '';
  var out = document.getElementById('state');
  var next = new URLSearchParams(location.search).get('next') || '';
  if (!data) { out.textContent = out.dataset.none; return; }
  fetch('/signin/webapp', {method:'POST', credentials:'same-origin',
    headers:{'Content-Type':'application/x-www-form-urlencoded'},
    body:'init_data=' + encodeURIComponent(data) + '&next=' + encodeURIComponent(next)})
  .then(function(r){ return r.json().then(function(j){ return [r.ok, j]; }); })
  .then(function(p){ if (p[0]) { location.replace(p[1].next); } else { out.textContent = p[1].message || p[1].detail; } })
  .catch(function(){ out.textContent = out.dataset.failed; });
})();
"""


@router.get("/signin/webapp", response_class=HTMLResponse)
async def webapp_page(request: Request) -> HTMLResponse:
    """Opened as a Telegram Mini App: Telegram puts the signed initData after "#" (tgWebAppData); no external script."""
    page = Page(language_of(request))
    nonce = secrets.token_urlsafe(16)
    body = (f'<p id="state" class="card" role="status" data-none="{page.tr("access.webapp_outside")}" '
            f'data-failed="{page.tr("access.webapp_failed")}">{page.tr("access.webapp_signing_in")}</p>'
            f'<p><a href="/signin">{page.tr("access.back_to_signin")}</a></p>')
    return page.respond("access.signin_title", body, nonce=nonce, script=WEBAPP_SCRIPT)


@router.get("/me", response_class=HTMLResponse)
async def me(request: Request, who: Annotated[accounts.SignedIn, Depends(require_session())]) -> Response:
    page = Page(language_of(request, who.language))
    principal = who.principal
    role = principal.role or Role.DISPATCHER
    regions = ", ".join(sorted(principal.regions)) if principal.regions is not None else translate("access.all_regions", page.language)
    body = f"""<dl class="card">
<dt>{page.tr('access.name')}</dt><dd>{html.escape(principal.name)}</dd>
<dt>{page.tr('access.username')}</dt><dd>{html.escape(who.username)}</dd>
<dt>{page.tr('access.role')}</dt><dd>{page.tr('access.role.' + role.value)}</dd>
<dt>{page.tr('access.regions')}</dt><dd>{html.escape(regions)}</dd>
<dt>{page.tr('access.via')}</dt><dd>{page.tr('access.via.' + who.via)}</dd></dl>
<p class="note">{page.tr('access.next_steps')}</p>
<form method="post" action="/signout"><input type="hidden" name="csrf" value="{html.escape(who.csrf)}">
<button type="submit">{page.tr('access.sign_out')}</button></form>"""
    return page.respond("access.me_title", body)


@router.post("/signout", response_class=HTMLResponse)
async def signout(request: Request, who: SignedInDep) -> Response:
    page = Page(language_of(request))
    if who is None:
        return RedirectResponse("/signin", status_code=303, headers=HEADERS)
    form = await read_form(request)
    if form is None or not csrf_ok(who.csrf, form.get("csrf")):
        page.status = 403
        return page.respond("access.me_title", f'<p class="error" role="alert">{page.tr("access.csrf")}</p><p><a href="/me">{page.tr("access.back")}</a></p>')
    app = request.app.state.container

    async def work(ctx: HandlerContext) -> tuple[None, list[Any]]:
        await AccountStore(ctx.store).revoke_session(who.session_id, ctx.now)
        return None, []

    await app.bus.call(f"signout:{who.session_id}:{uuid.uuid4().hex}", work)
    response = RedirectResponse("/signin", status_code=303, headers=HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(request))
    return response
