"""The back office's page shell: one layout (navigation, language switch, styles, CSP) and one form check (session, CSRF,
same origin) for every staff page — the board, jobs, reports and what follows — so each page only renders its content."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from conversations.i18n import translate
from services.accounts import SignedIn
from webhooks.signin import HEADERS, PageRefused, csrf_ok, language_of, require_session, same_origin

FORM_LIMIT = 64 * 1024
FORM_FIELDS = 200
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,12}")

# the sections a signed-in person moves between; (path, catalog key, scope needed to see the link)
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("/board", "staff.nav.board", "jobs:read"),
    ("/jobs", "staff.nav.jobs", "jobs:read"),
    ("/reports", "staff.nav.reports", "jobs:read"),
    ("/maintenance", "staff.nav.maintenance", "jobs:read"),
)

STYLE = """
:root{--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa;--card:#fff;--accent:#0969da;--bad:#a40e26;--badbg:#ffebe9;
--ok:#1a7f37;--okbg:#dafbe1;--warn:#7d4e00;--warnbg:#fff8c5;--info:#0550ae;--infobg:#ddf4ff}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:0;background:var(--bg);
color:var(--fg);line-height:1.45}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1rem;background:#24292f;color:#fff;padding:.5rem 1rem}
header.top a{color:#fff;text-decoration:none;padding:.35rem .55rem;border-radius:.3rem}
header.top a[aria-current=page]{background:#57606a}
header.top .brand{font-weight:700;margin-right:.5rem}
header.top .who{margin-left:auto;display:flex;gap:.6rem;align-items:center;font-size:.9rem}
header.top form{margin:0}
header.top button{background:transparent;color:#fff;border:1px solid #8c959f;padding:.25rem .6rem;margin:0;font-size:.9rem}
main{max-width:72rem;margin:0 auto;padding:1rem}
main.narrow{max-width:34rem}
h1{font-size:1.35rem;margin:.4rem 0 1rem} h2{font-size:1.1rem;margin:1.2rem 0 .6rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem;margin-bottom:1rem}
.grid{display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr))}
.toolbar{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end;margin-bottom:1rem}
.toolbar label{display:flex;flex-direction:column;font-size:.85rem;font-weight:600;gap:.2rem}
label{font-weight:600}
input,select,textarea{font:inherit;padding:.45rem;border:1px solid #8c959f;border-radius:.35rem;background:#fff;color:var(--fg)}
input:focus,button:focus,a:focus,select:focus,textarea:focus,summary:focus{outline:3px solid var(--accent);outline-offset:2px}
button,.button{font:inherit;background:var(--accent);color:#fff;border:0;border-radius:.4rem;padding:.5rem 1rem;cursor:pointer;
text-decoration:none;display:inline-block}
button.secondary,.button.secondary{background:#fff;color:var(--fg);border:1px solid var(--line)}
button.danger{background:var(--bad)}
table.data{width:100%;border-collapse:collapse;background:var(--card)}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:.45rem .5rem;text-align:left;vertical-align:top}
table.data th{font-size:.85rem;color:var(--muted);font-weight:600}
.scroll{overflow-x:auto}
.badge{display:inline-block;border-radius:1rem;padding:.05rem .55rem;font-size:.8rem;font-weight:600;background:var(--infobg);color:var(--info)}
.badge.ok{background:var(--okbg);color:var(--ok)} .badge.bad{background:var(--badbg);color:var(--bad)}
.badge.warn{background:var(--warnbg);color:var(--warn)} .badge.muted{background:#eaeef2;color:var(--muted)}
.error{color:var(--bad);background:var(--badbg);border:1px solid #ff8182;border-radius:.4rem;padding:.6rem}
.notice{color:var(--ok);background:var(--okbg);border:1px solid #4ac26b;border-radius:.4rem;padding:.6rem}
.note,.muted{color:var(--muted);font-size:.92rem}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:40rem){main{padding:.6rem} header.top .who{margin-left:0} table.data th,table.data td{padding:.35rem}}
"""


def content_security_policy(nonce: str) -> str:
    """Scripts only from this site or inline with this response's nonce; images may be data: URLs (charts, QR codes)."""
    return (f"default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self' 'nonce-{nonce}'; connect-src 'self'; "
            "img-src 'self' data: blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class StaffPage:
    """One back-office page for a signed-in person, in their language: ``tr`` translates a catalog key, HTML-escaped."""

    request: Request
    who: SignedIn
    status: int = 200
    language: str = ""
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def __post_init__(self) -> None:
        if not self.language:
            self.language = language_of(self.request, self.who.language)

    def tr(self, key: str, **params: Any) -> str:
        return html.escape(translate(key, self.language, params))

    def csrf_field(self) -> str:
        """The hidden input every form of these pages carries (checked by ``read_staff_form``)."""
        return f'<input type="hidden" name="csrf" value="{html.escape(self.who.csrf)}">'

    def can(self, scope: str) -> bool:
        return self.who.principal.can(scope)

    def nav(self, active: str) -> str:
        links = "".join(
            f'<a href="{path}"{" aria-current=page" if path == active else ""}>{self.tr(key)}</a>'
            for path, key, scope in SECTIONS if self.can(scope))
        other = "en" if self.language == "zh" else "zh"
        # the same page in the other language: its filters kept, only ``lang`` changed
        kept = [(key, value) for key, value in self.request.query_params.multi_items() if key != "lang"][:50]
        switch = "?" + urlencode([*kept, ("lang", other)])
        return (f'<header class="top"><span class="brand">fieldchat</span><nav aria-label="{self.tr("staff.nav.label")}">{links}</nav>'
                f'<div class="who"><a href="/me">{html.escape(self.who.principal.name)}</a>'
                f'<a href="{html.escape(switch)}" hreflang="{other}">{"English" if other == "en" else "中文"}</a>'
                f'<form method="post" action="/signout">{self.csrf_field()}<button type="submit">{self.tr("access.sign_out")}</button></form>'
                "</div></header>")

    def respond(self, title: str, body: str, *, active: str = "", script: str = "", narrow: bool = False,
                head: str = "") -> HTMLResponse:
        """The whole document around ``body`` (already escaped HTML). ``title`` is plain text (escaped here);
        ``script`` runs inline with this response's nonce; ``head`` adds e.g. a stylesheet link of this site."""
        script_tag = f'<script nonce="{self.nonce}">{script}</script>' if script else ""
        document = f"""<!doctype html>
<html lang="{'zh-CN' if self.language == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex, nofollow">
<title>{html.escape(title)} · fieldchat</title><style>{STYLE}</style>{head}</head><body>
{self.nav(active)}
<main id="main"{' class="narrow"' if narrow else ''}><h1>{html.escape(title)}</h1>
{body}
</main>{script_tag}</body></html>"""
        headers = {**HEADERS, "Content-Security-Policy": content_security_policy(self.nonce)}
        return HTMLResponse(document, status_code=self.status, headers=headers)

    def refuse(self, status: int, message_key: str, back: str = "/board", **params: Any) -> PageRefused:
        """A page answering ``status`` with a reason and a way back (raise it)."""
        self.status = status
        body = f'<p class="error" role="alert">{self.tr(message_key, **params)}</p><p><a href="{html.escape(back)}">{self.tr("access.back")}</a></p>'
        return PageRefused(self.respond(translate("staff.refused_title", self.language), body))


def staff_session(scope: str = "jobs:read") -> Any:
    """A page's dependency: the signed-in person holding ``scope`` (to the sign-in page and back if nobody is signed in)."""
    return Depends(require_session(scope))


Staff = Annotated[SignedIn, staff_session("jobs:read")]
StaffWriter = Annotated[SignedIn, staff_session("jobs:write")]


async def read_staff_form(request: Request, page: StaffPage) -> dict[str, str]:
    """A form posted from one of these pages: same origin, urlencoded, small, with this session's CSRF token; otherwise
    the page answers 400 or 403 with the reason (raised as ``PageRefused``). Repeated fields keep their last value."""
    if not same_origin(request):
        raise page.refuse(403, "access.csrf", back=request.url.path)
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        raise page.refuse(400, "access.bad_form", back=request.url.path)
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise page.refuse(413, "access.bad_form", back=request.url.path)
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=FORM_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise page.refuse(400, "access.bad_form", back=request.url.path) from None
    if not csrf_ok(page.who.csrf, form.get("csrf")):
        raise page.refuse(403, "access.csrf", back=request.url.path)
    return form


def bounded_int(raw: str | None, *, low: int, high: int, default: int | None = None) -> int | None:
    """A whole number from a query or form field within [low, high]; ``default`` when absent, None when it is not one."""
    if raw is None or raw == "":
        return default
    if not WHOLE_NUMBER.fullmatch(raw):  # ASCII digits only: str.isdigit() also takes "３" and "²"
        return None
    value = int(raw)
    return value if low <= value <= high else None
