"""The merchant-review queue on the board: orders of sources that want review wait here until a dispatcher of their
regions confirms them with the service price (then they become jobs) or rejects them with a reason — the same commands
as the API's review routes."""

from __future__ import annotations

import html
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from domain import commands as c
from domain.access import region_allowed
from domain.errors import DomainError
from domain.fees import Money, currency_of, parse_amount
from services.intake import order_regions, source_of
from storage.orders import OrderStore
from storage.repository import Store
from webhooks.signin import HEADERS
from webhooks.staff_pages import Staff, StaffPage, read_staff_form

router = APIRouter(include_in_schema=False)
PATH = "/board/review"
MAX_REF = 120
MAX_REASON = 500


def _visible(row: dict[str, Any], regions: frozenset[str] | None) -> bool:
    """Every region the order sends someone to is one of the reader's (an order half in another region is not theirs)."""
    return all(region_allowed(regions, region) for region in order_regions(row["content"]))


async def pending(app: Any, regions: frozenset[str] | None) -> list[dict[str, Any]]:
    async with app.sessions() as session:
        return [row for row in await OrderStore(Store(session)).review_queue() if _visible(row, regions)]


def _summary(page: StaffPage, row: dict[str, Any]) -> str:
    content = row["content"]
    customer = content.get("customer") or {}
    address = content.get("address") or {}
    lines = content.get("items") or []
    items = ", ".join(f"{html.escape(str(line.get('name') or line.get('sku') or '?'))} × {html.escape(str(line.get('quantity') or line.get('qty') or 1))}"
                      for line in lines[:10])
    kinds = [s.get("kind") for s in content.get("services") or []] + [s.get("kind") for line in lines for s in line.get("services") or []]
    services = ", ".join(html.escape(str(kind)) for kind in dict.fromkeys(kinds))
    return (f"<strong>{html.escape(row['source'])} · {html.escape(row['external_ref'])}</strong><br>"
            f"{html.escape(str(customer.get('name', '')))} · {html.escape(str(address.get('text', '')))} ({html.escape(str(address.get('region', '')))})<br>"
            f"{page.tr('review.services')}: {services or '-'}{'<br>' + page.tr('review.items') + ': ' + items if items else ''}")


@router.get(PATH, response_class=HTMLResponse)
async def review_page(request: Request, who: Staff) -> HTMLResponse:
    app = request.app.state.container
    page = StaffPage(request, who)
    rows = await pending(app, who.principal.regions)
    done = request.query_params.get("done")
    notice = f'<p class="notice" role="status">{page.tr("review.done." + done)}</p>' if done in ("confirmed", "rejected") else ""
    if not rows:
        body = f'{notice}<p class="card">{page.tr("review.empty")}</p><p><a href="/board">{page.tr("review.back")}</a></p>'
        return page.respond(page.tr("review.title"), body, active="/board")
    cards = []
    async with app.sessions() as session:
        orders = OrderStore(Store(session))
        currencies = {row["source"]: (await source_of(orders, row["source"])).currency for row in rows}
    for n, row in enumerate(rows):
        currency = row["currency"] or currencies[row["source"]]
        price = Money(row["price_minor"], currency).text().split(" ", 1)[1] if row["price_minor"] is not None else ""
        hidden = (f'{page.csrf_field()}<input type="hidden" name="source" value="{html.escape(row["source"])}">'
                  f'<input type="hidden" name="ref" value="{html.escape(row["external_ref"])}">')
        actions = ""
        if page.can("jobs:write"):
            actions = (
                f'<form method="post" action="{PATH}" class="toolbar">{hidden}<input type="hidden" name="action" value="confirm">'
                f'<label for="price-{n}">{page.tr("review.price", currency=currency)}</label>'
                f'<input id="price-{n}" name="price" inputmode="decimal" value="{html.escape(price.replace(",", ""))}" required maxlength="20">'
                f'<button type="submit">{page.tr("review.confirm")}</button></form>'
                f'<form method="post" action="{PATH}" class="toolbar">{hidden}<input type="hidden" name="action" value="reject">'
                f'<label for="reason-{n}">{page.tr("review.reason")}</label>'
                f'<input id="reason-{n}" name="reason" required maxlength="{MAX_REASON}">'
                f'<button type="submit" class="danger">{page.tr("review.reject")}</button></form>'
            )
        cards.append(f'<section class="card">{_summary(page, row)}{actions}</section>')
    body = f'{notice}<p class="note">{page.tr("review.intro")}</p>{"".join(cards)}<p><a href="/board">{page.tr("review.back")}</a></p>'
    return page.respond(page.tr("review.title"), body, active="/board")


@router.post(PATH, response_class=HTMLResponse)
async def review_action(request: Request, who: Staff) -> Response:
    """Confirm with a price (the order becomes its jobs) or reject with a reason, through the intake's own commands."""
    app = request.app.state.container
    page = StaffPage(request, who)
    form = await read_staff_form(request, page)
    if not page.can("jobs:write"):
        raise page.refuse(403, "access.no_scope", back=PATH)
    source, ref, action = form.get("source", "")[:60], form.get("ref", "")[:MAX_REF], form.get("action", "")
    row = next((r for r in await pending(app, who.principal.regions) if r["source"] == source and r["external_ref"] == ref), None)
    if row is None:
        raise page.refuse(404, "review.not_found", back=PATH)  # decided meanwhile, never there, or another region's
    command: c.Command
    if action == "confirm":
        async with app.sessions() as session:
            currency = row["currency"] or (await source_of(OrderStore(Store(session)), source)).currency
        try:
            price = parse_amount(form.get("price", "")[:20], currency_of(currency))
        except DomainError as err:
            raise page.refuse(400, f"error.{err.code}", back=PATH, digits=2) from err
        command = c.ConfirmOrder(source, ref, price.amount, price.currency, note=f"confirmed on the board by {who.username}")
    elif action == "reject":
        reason = " ".join(form.get("reason", "").split())[:MAX_REASON]
        if not reason:
            raise page.refuse(400, "review.reason_missing", back=PATH)
        command = c.RejectOrder(source, ref, reason)
    else:
        raise page.refuse(400, "board.bad_action", back=PATH)
    try:
        await app.bus.run(f"board:review:{action}:{uuid.uuid4().hex}", command)
    except DomainError as err:
        raise page.refuse(409 if err.code == "order_not_in_review" else 422, f"error.{err.code}", back=PATH) from err
    except (IntegrityError, StaleDataError) as exc:
        raise page.refuse(409, "error.concurrent_change", back=PATH) from exc
    return RedirectResponse(f"{PATH}?done={'confirmed' if action == 'confirm' else 'rejected'}", status_code=303, headers=HEADERS)
