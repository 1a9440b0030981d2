"""Price changes on the bus: a technician's increase asked on site, the dispatchers' (and above a threshold a manager's)
decision, the customer's answer, a manager's discount, the bill priced again with them, and who is told at each step."""

from __future__ import annotations

from typing import Any

from domain import commands as c
from domain import events as ev
from domain.access import Role, region_allowed, regions_of
from domain.errors import DomainError, InvalidInput, NotAllowed, NotFound
from domain.fees import BillStatus, Money, labour_line, parse_amount, price_for, total
from domain.model import MAX_ID, Dispatcher, Job, Photo, Technician, Visit, VisitStatus, stored_id
from domain.price_changes import (
    MAX_PHOTOS, ChangeKind, ChangeStatus, answer, change_lines, check_amount, check_reason, decide, discount_amount,
)
from services import accounts
from services import actions as a
from services.actions import encode
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.evidence import region_album
from services.fees import _parts, pieces_of, price_key
from services.handlers import _technician_visit
from services.messages import AlbumPhoto, Button, Card, ChatRef, Keyboard, Outbound, Purpose, Text, buttons, raw, t
from services.notifications import _customer_chats, _masked_job, _region_alert, _send, _technician_chats, kind_label
from storage.fees import FeeStore
from storage.price_changes import ChangeRow, PriceChangeStore
from storage.reports import ReportStore

UNDER_WAY = (VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)  # checked in or started: an increase is asked on site
MANAGERS = (Role.MANAGER, Role.ADMIN)
PHOTO_PURPOSE = "price_increase"


def group_card(change_id: int) -> Card:
    """The dispatchers' (and the managers') card of an increase: its buttons go once someone decided."""
    return ("price_increase", change_id)


def customer_card(change_id: int) -> Card:
    return ("price_increase_ask", change_id)


# --- what a request needs ---------------------------------------------------------------------------------------------


async def currency_of_visit(ctx: HandlerContext, job: Job, visit: Visit) -> str:
    """The currency an increase is read in: the visit's bill's, else its price-list entry's, else the price list's."""
    fees = FeeStore(ctx.store)
    bill = await fees.bill_of_visit(stored_id(visit))
    if bill is not None:
        return bill.total.currency
    entries = await fees.entries(service_kind=visit.kind)
    entry = price_for(entries, price_key(job, visit))
    if entry is not None:
        return entry.unit_price.currency
    every = entries or await fees.entries()
    if not every:
        raise InvalidInput("pricechg_no_price_list")  # a shop that bills outside fieldchat raises its prices there too
    return every[0].unit_price.currency


async def _askable(ctx: HandlerContext, visit_id: int, technician_id: int) -> tuple[Visit, Job]:
    """The technician's own visit, checked in or started, with no increase open on it."""
    visit, job = await _technician_visit(ctx, visit_id, technician_id)
    if visit.state not in UNDER_WAY:
        raise DomainError("pricechg_visit_not_under_way", visit=visit_id)
    if await PriceChangeStore(ctx.store).open_of_visit(visit_id) is not None:
        raise DomainError("pricechg_already_open", visit=visit_id)
    return visit, job


async def _amount(ctx: HandlerContext, job: Job, visit: Visit, text: str) -> Money:
    return check_amount(parse_amount(text.strip()[:40], await currency_of_visit(ctx, job, visit)))


async def check_price_increase(ctx: HandlerContext, cmd: c.CheckPriceIncrease) -> list[ev.Event]:
    """Answered before each step of the chat's request, so a mistake is said where it was typed (and typed again)."""
    visit, job = await _askable(ctx, cmd.visit_id, cmd.technician_id)
    if cmd.amount_text is not None:
        await _amount(ctx, job, visit, cmd.amount_text)
    return []


async def request_price_increase(ctx: HandlerContext, cmd: c.RequestPriceIncrease) -> list[ev.Event]:
    visit, job = await _askable(ctx, cmd.visit_id, cmd.technician_id)
    amount = await _amount(ctx, job, visit, cmd.amount_text)
    reason = check_reason(cmd.reason)
    if len(cmd.photos) > MAX_PHOTOS:
        raise InvalidInput("pricechg_too_many_photos", max=MAX_PHOTOS)
    photos = [await ctx.store.add(Photo(stored_id(visit), p.platform, p.file_id, p.path, PHOTO_PURPOSE, created_at=ctx.now))
              for p in cmd.photos]
    # two requests at once: the second loses the visit's one open place (a unique key) and the bus retries it, finding the first
    change_id = await PriceChangeStore(ctx.store).add(
        job_id=stored_id(job), visit_id=stored_id(visit), kind=ChangeKind.INCREASE, status=ChangeStatus.PENDING, amount=amount,
        reason=reason, photo_ids=[stored_id(p) for p in photos], technician_id=cmd.technician_id,
        requested_by=f"technician:{cmd.technician_id}", now=ctx.now)
    return [ev.PriceIncreaseRequested(stored_id(job), stored_id(visit), {
        "change_id": change_id, "amount": amount.amount, "currency": amount.currency, "reason": reason, "photos": len(photos),
        "technician_id": cmd.technician_id,
    })]


# --- the shop's decision ---------------------------------------------------------------------------------------------


async def _increase(ctx: HandlerContext, change_id: int) -> ChangeRow:
    row = await PriceChangeStore(ctx.store).change(change_id, for_update=True) if 1 <= change_id <= MAX_ID else None
    if row is None or row.kind is not ChangeKind.INCREASE:
        raise NotFound("pricechg_not_found")
    return row


async def _decider(ctx: HandlerContext, cmd: c.DecidePriceIncrease, region: str) -> tuple[bool, str]:
    """Whether the one deciding is a manager, and who they are. In a chat their account says (a manager's or an admin's
    role), and the region rule applies to both levels; through the API the route checked the caller's scope and region."""
    if cmd.chat_user is None:
        return cmd.manager, cmd.actor[:100] or "api"
    row = await accounts.account_of_chat_user(ctx.store, *cmd.chat_user)
    live = row if row is not None and row["disabled_at"] is None else None
    if live is not None and Role(live["role"]) in MANAGERS:
        if not region_allowed(regions_of(live["regions"]), region):
            raise NotAllowed("pricechg_not_your_region", region=region)
        return True, f"manager:{live['username']}"[:100]
    if cmd.dispatcher_id is None:
        raise NotAllowed("pricechg_managers_only")
    if not region_allowed(await accounts.dispatcher_regions(ctx.store, cmd.dispatcher_id), region):
        raise NotAllowed("pricechg_not_your_region", region=region)
    return False, f"dispatcher:{cmd.dispatcher_id}"


async def decide_price_increase(ctx: HandlerContext, cmd: c.DecidePriceIncrease) -> list[ev.Event]:
    """A dispatcher's approval is enough up to the policy's threshold; above it the request goes on to a manager. A
    decline ends it at any level. Decided once: a second press (or a stale card) is told who decided."""
    row = await _increase(ctx, cmd.change_id)
    job = await ctx.store.load(Job, row.job_id)
    if row.status not in (ChangeStatus.PENDING, ChangeStatus.ESCALATED):
        raise DomainError("pricechg_decided", status=row.status.value)
    by_manager, who = await _decider(ctx, cmd, job.region)
    visit = await ctx.store.load(Visit, row.visit_id)
    if cmd.approve and visit.state is VisitStatus.CANCELLED:
        raise DomainError("pricechg_visit_cancelled", visit=row.visit_id)
    status = decide(row.status, approve=cmd.approve, by_manager=by_manager, amount=row.amount,
                    manager_above=ctx.policy.price_increase_manager_above_minor)
    level = "manager" if by_manager else "dispatcher"
    await PriceChangeStore(ctx.store).set_status(row.id, status, ctx.now, **{f"{level}_by": who, f"{level}_at": ctx.now})
    data = {"change_id": row.id, "amount": row.amount.amount, "currency": row.amount.currency, "by": who, "level": level,
            "escalated": row.status is ChangeStatus.ESCALATED}
    kind = {ChangeStatus.ESCALATED: ev.PriceIncreaseEscalated, ChangeStatus.APPROVED: ev.PriceIncreaseApproved,
            ChangeStatus.DECLINED: ev.PriceIncreaseDeclined}[status]
    return [kind(row.job_id, row.visit_id, data)]


# --- the customer's answer, and the bill ---------------------------------------------------------------------------------


CUSTOMER = "customer"  # who answered: the customer in their chat; else the shop recorded it (dispatcher:N, api:…)


async def answer_price_increase(ctx: HandlerContext, cmd: c.AnswerPriceIncrease) -> list[ev.Event]:
    """The customer's yes puts the increase on the bill (priced again at once when the visit has one already); their no
    changes nothing on it."""
    row = await _increase(ctx, cmd.change_id)
    job = await ctx.store.load(Job, row.job_id)
    if job.customer_id != cmd.customer_id:
        raise NotFound("pricechg_not_found")  # someone else's: as if there were none
    return await _answered(ctx, row, cmd.agree, CUSTOMER, CUSTOMER)


async def record_price_increase_answer(ctx: HandlerContext, cmd: c.RecordPriceIncreaseAnswer) -> list[ev.Event]:
    """The customer's answer taken by the shop (by phone): a dispatcher of the job's region in the group, or the back
    office (whose route checked its scope and region). It counts as theirs; the event names who recorded it."""
    row = await _increase(ctx, cmd.change_id)
    job = await ctx.store.load(Job, row.job_id)
    if cmd.dispatcher_id is None:
        who = cmd.actor[:100] or "api"
        return await _answered(ctx, row, cmd.agree, who, who)
    if not region_allowed(await accounts.dispatcher_regions(ctx.store, cmd.dispatcher_id), job.region):
        raise NotAllowed("pricechg_not_your_region", region=job.region)
    dispatcher = await ctx.store.get(Dispatcher, cmd.dispatcher_id)
    name = dispatcher.name if dispatcher is not None else f"#{cmd.dispatcher_id}"
    return await _answered(ctx, row, cmd.agree, f"dispatcher:{cmd.dispatcher_id}", name)


async def _answered(ctx: HandlerContext, row: ChangeRow, agree: bool, by: str, name: str) -> list[ev.Event]:
    status = answer(row.status, agree=agree)
    await PriceChangeStore(ctx.store).set_status(row.id, status, ctx.now, customer_at=ctx.now)
    data = {"change_id": row.id, "amount": row.amount.amount, "currency": row.amount.currency, "by": by, "name": name[:100]}
    if status is ChangeStatus.REFUSED:
        return [ev.PriceIncreaseRefused(row.job_id, row.visit_id, data)]
    return [ev.PriceIncreaseAccepted(row.job_id, row.visit_id, data), *await rebill(ctx, row.visit_id)]


async def rebill(ctx: HandlerContext, visit_id: int) -> list[ev.Event]:
    """A priced bill made already gets the accepted changes as its lines (labour and parts stay as they were billed,
    what was paid stays); no bill yet: the one made at completion carries them (services/fees.py)."""
    fees = FeeStore(ctx.store)
    bill_id = await fees.bill_id_of(visit_id, for_update=True)
    bill = await fees.bill(bill_id) if bill_id is not None else None
    if bill is None or bill.status != BillStatus.PRICED.value:
        return []  # unpriced: nothing is owed yet, and pricing it (POST .../bill) adds them
    currency = bill.total.currency
    base = [line for line in bill.lines if line.kind not in (ChangeKind.INCREASE.value, ChangeKind.DISCOUNT.value)]
    lines = [*base, *change_lines(await PriceChangeStore(ctx.store).billed_of_visit(visit_id), total(base, currency))]
    amount = total(lines, currency)
    await fees.save_bill(bill_id=bill.id, job_id=bill.job_id, visit_id=visit_id, status=BillStatus.PRICED.value, currency=currency,
                         lines=lines, total=amount, price_entry_id=bill.price_entry_id, now=ctx.now)
    return [ev.BillIssued(bill.job_id, visit_id, {"bill_id": bill.id, "total": amount.amount, "currency": currency,
                                                  "entry_id": bill.price_entry_id, "repriced": True})]


async def give_discount(ctx: HandlerContext, cmd: c.GiveDiscount) -> list[ev.Event]:
    """A manager's discount on a priced bill: an amount or a percent of its total, never below zero nor below what was
    paid; on the job's timeline, and the customer gets the bill with its new total."""
    visit = await ctx.store.get(Visit, cmd.visit_id) if 1 <= cmd.visit_id <= MAX_ID else None
    if visit is None:
        raise NotFound("visit_not_found")
    reason = check_reason(cmd.reason)
    fees = FeeStore(ctx.store)
    bill_id = await fees.bill_id_of(cmd.visit_id, for_update=True)  # two discounts at once take turns on the bill's total
    bill = await fees.bill(bill_id) if bill_id is not None else None
    if bill is None or bill.status != BillStatus.PRICED.value:
        raise DomainError("pricechg_discount_needs_bill", visit=cmd.visit_id)
    amount = discount_amount(bill.total, bill.paid, amount_minor=cmd.amount_minor, percent=cmd.percent)
    change_id = await PriceChangeStore(ctx.store).add(
        job_id=bill.job_id, visit_id=cmd.visit_id, kind=ChangeKind.DISCOUNT, status=ChangeStatus.ACCEPTED, amount=amount, reason=reason,
        photo_ids=(), technician_id=None, requested_by=cmd.actor[:100] or "api", now=ctx.now)
    given = ev.DiscountGiven(bill.job_id, cmd.visit_id, {"change_id": change_id, "bill_id": bill.id, "amount": amount.amount,
                                                         "currency": amount.currency, "reason": reason, "by": cmd.actor[:100]})
    return [given, *await rebill(ctx, cmd.visit_id)]


HANDLERS = (
    handles(c.CheckPriceIncrease, check_price_increase),
    handles(c.RequestPriceIncrease, request_price_increase),
    handles(c.DecidePriceIncrease, decide_price_increase),
    handles(c.AnswerPriceIncrease, answer_price_increase),
    handles(c.RecordPriceIncreaseAnswer, record_price_increase_answer),
    handles(c.GiveDiscount, give_discount),
)


# --- who is told ------------------------------------------------------------------------------------------------------


async def _context(ctx: HandlerContext, event: ev.Event) -> tuple[ChangeRow, Job, Visit]:
    row = await PriceChangeStore(ctx.store).change(event.data["change_id"])
    assert row is not None
    return row, await ctx.store.load(Job, row.job_id), await ctx.store.load(Visit, row.visit_id)


async def _card_params(ctx: HandlerContext, row: ChangeRow, job: Job, visit: Visit) -> dict[str, Any]:
    technician = await ctx.store.get(Technician, row.technician_id)
    return {"visit": row.visit_id, "kind": kind_label(visit.kind), "technician": raw(technician.name if technician else "-"),
            "amount": row.amount.text(), "reason": raw(row.reason), "photos": len(row.photo_ids), **await _masked_job(ctx, job)}


async def _managers(text: Text, keyboard: Keyboard, card: Card, ctx: HandlerContext, album: tuple[AlbumPhoto, ...] = ()) -> list[Outbound]:
    """The managers' groups (dispatch groups of purpose "reports"): the card, and the photos after it."""
    out: list[Outbound] = []
    for row in await ReportStore(ctx.store).report_groups():
        to = ChatRef(row["platform"], row["bot"], row["chat_id"])
        language = row["chat_language"] or row["language"]
        out.append(Outbound(text, keyboard, to=to, language=language, alert=True, purpose=Purpose.ALERT, card=card))
        if album:
            out.append(Outbound(t("pricechg.photos", visit=card[1], count=len(album)), to=to, language=language, album=album,
                                alert=True, purpose=Purpose.ALERT))
    return out


async def _album(ctx: HandlerContext, row: ChangeRow) -> tuple[AlbumPhoto, ...]:
    photos = await ctx.store.get_many(Photo, list(row.photo_ids))
    return tuple(AlbumPhoto(pid, photos[pid].path) for pid in row.photo_ids if pid in photos)


async def _region_photos(ctx: HandlerContext, job: Job, row: ChangeRow, album: tuple[AlbumPhoto, ...]) -> list[Outbound]:
    """The photos after the region's card, as a problem report's (services/evidence.py): an album in the groups, signed
    links for the robots."""
    return await region_album(ctx, job.region, t("pricechg.photos", visit=row.visit_id, count=len(album)), album)


async def ask_dispatchers_to_decide(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The region's dispatchers: the amount, why, how many photos (they follow), with Approve and Decline."""
    row, job, visit = await _context(ctx, event)
    params = await _card_params(ctx, row, job, visit)
    above = row.amount.amount > ctx.policy.price_increase_manager_above_minor
    text = t("pricechg.group_card_manager" if above else "pricechg.group_card", **params)
    keyboard = buttons([Button(t("btn.pricechg_approve"), encode(a.ApprovePriceIncrease(row.id))),
                        Button(t("btn.pricechg_decline"), encode(a.DeclinePriceIncrease(row.id)))],
                       [Button(t("btn.call"), encode(a.CallDetails(row.visit_id)))])
    out = await _region_alert(ctx, job.region, text, keyboard, card=group_card(row.id))
    album = await _album(ctx, row)
    return [*out, *(await _region_photos(ctx, job, row, album) if album else [])]


def _carry_on(visit: Visit) -> Keyboard:
    """The technician's way on after an answer: the visit's checklist where it is under way."""
    if visit.state is VisitStatus.IN_PROGRESS:
        return buttons([Button(t("btn.continue_checklist"), encode(a.ContinueChecklist(stored_id(visit))))])
    if visit.state is VisitStatus.ON_SITE:
        return buttons([Button(t("btn.start_checklist"), encode(a.StartChecklist(stored_id(visit))))])
    return ()


async def _tell_technician(ctx: HandlerContext, row: ChangeRow, visit: Visit, key: str, **params: object) -> list[Outbound]:
    text = t(key, visit=row.visit_id, amount=row.amount.text(), **params)
    return _send(await _technician_chats(ctx, row.technician_id), text, _carry_on(visit), purpose=Purpose.STATUS)


async def ask_managers_to_decide(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Above the threshold: the managers decide in their group; the region's card says it waits for them."""
    row, job, visit = await _context(ctx, event)
    params = await _card_params(ctx, row, job, visit)
    keyboard = buttons([Button(t("btn.pricechg_approve"), encode(a.ManagerApprovePriceIncrease(row.id))),
                        Button(t("btn.pricechg_decline"), encode(a.ManagerDeclinePriceIncrease(row.id)))])
    limit = Money(ctx.policy.price_increase_manager_above_minor, row.amount.currency).text()
    managers = await _managers(t("pricechg.manager_card", limit=limit, by=raw(event.data["by"]), **params), keyboard,
                               group_card(row.id), ctx, await _album(ctx, row))
    if managers:
        waiting = await _region_alert(ctx, job.region, t("pricechg.group_card_escalated", by=raw(event.data["by"]), **params),
                                      card=group_card(row.id))
    else:  # no managers' group is set up: a manager decides on the region's card (a dispatcher's press is refused there)
        waiting = await _region_alert(ctx, job.region, t("pricechg.group_card_escalated_here", limit=limit, by=raw(event.data["by"]),
                                                         **params), keyboard, card=group_card(row.id))
    told = await _tell_technician(ctx, row, visit, "pricechg.tech_escalated")
    return [*told, *waiting, *managers]


async def expected_total(ctx: HandlerContext, row: ChangeRow, job: Job, visit: Visit) -> Money | None:
    """What the visit will cost with the increase: the bill's total when it has one; else the price list's labour for
    the planned time, the parts recorded and the increases agreed so far; None when no price is known."""
    fees = FeeStore(ctx.store)
    bill = await fees.bill_of_visit(row.visit_id)
    agreed = await PriceChangeStore(ctx.store).billed_of_visit(row.visit_id)
    try:
        if bill is not None:
            if bill.status != BillStatus.PRICED.value:
                return None
            base = [line for line in bill.lines if line.kind not in (ChangeKind.INCREASE.value, ChangeKind.DISCOUNT.value)]
        else:
            entry = price_for(await fees.entries(service_kind=visit.kind), price_key(job, visit))
            if entry is None:
                return None
            labour = labour_line(entry, pieces=pieces_of(job), minutes=visit.duration_minutes, description=visit.kind)
            base = [labour, *await _parts(ctx, row.visit_id)]
        currency = row.amount.currency
        subtotal = total(base, currency) + row.amount
        return subtotal + total(change_lines(agreed, subtotal), currency)
    except DomainError:  # a line in another currency: the customer is told the increase without a total
        return None


async def ask_customer(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Approved by the shop: the customer agrees or declines in their chat; the cards and the technician hear it."""
    row, job, visit = await _context(ctx, event)
    expected = await expected_total(ctx, row, job, visit)
    # before completion only the parts fitted so far are known: the total is said to leave out any further ones
    billed = await FeeStore(ctx.store).bill_id_of(row.visit_id) is not None
    keyboard = buttons([Button(t("btn.pricechg_agree"), encode(a.AgreePriceIncrease(row.id))),
                        Button(t("btn.pricechg_refuse"), encode(a.RefusePriceIncrease(row.id)))])
    params = {"visit": row.visit_id, "kind": kind_label(visit.kind), "amount": row.amount.text(), "reason": raw(row.reason)}
    if expected is None:
        text = t("pricechg.customer_ask", **params)
    else:
        text = t("pricechg.customer_ask_total" if billed else "pricechg.customer_ask_total_parts", total=expected.text(), **params)
    chats = await _customer_chats(ctx, job)
    asked = _send(chats, text, keyboard, purpose=Purpose.STATUS, card=customer_card(row.id))
    card_params = {"by": raw(event.data["by"]), **await _card_params(ctx, row, job, visit)}
    if chats:
        card = t("pricechg.group_card_approved", **card_params)
        cards = await _region_alert(ctx, job.region, card, card=group_card(row.id))
    else:  # nobody to ask in a chat: the dispatchers call and record the answer, else it would wait for ever
        card = t("pricechg.group_card_approved_phone", **card_params)
        cards = await _region_alert(ctx, job.region, t("pricechg.group_card_call_customer", **card_params),
                                    _phone_answer(row.id, row.visit_id), card=group_card(row.id))
    if event.data.get("escalated"):  # the managers' card too, which they were shown
        cards += await _managers(card, (), group_card(row.id), ctx)
    told = await _tell_technician(ctx, row, visit, "pricechg.tech_approved")
    return [*told, *asked, *cards]


async def tell_declined(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Declined by the shop: the technician carries on at the agreed price; the cards lose their buttons."""
    row, job, visit = await _context(ctx, event)
    card = t("pricechg.group_card_declined", by=raw(event.data["by"]), **await _card_params(ctx, row, job, visit))
    cards = await _region_alert(ctx, job.region, card, card=group_card(row.id))
    if event.data.get("escalated"):  # the managers' card too, which they were shown
        cards += await _managers(card, (), group_card(row.id), ctx)
    told = await _tell_technician(ctx, row, visit, "pricechg.tech_declined")
    return [*told, *cards]


def _phone_answer(change_id: int, visit_id: int) -> Keyboard:
    """The region card's buttons when the customer is asked by phone: their answer as the dispatcher heard it, and the call."""
    return buttons([Button(t("btn.pricechg_phone_agreed"), encode(a.PhoneAgreedPriceIncrease(change_id))),
                    Button(t("btn.pricechg_phone_refused"), encode(a.PhoneRefusedPriceIncrease(change_id)))],
                   [Button(t("btn.call"), encode(a.CallDetails(visit_id)))])


async def tell_customer_answer(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The customer's answer: the technician (their next step), the region's dispatchers, and the customer's question
    card, which shows the answer without its buttons (edited in place where the channel can)."""
    row, job, visit = await _context(ctx, event)
    agreed = isinstance(event, ev.PriceIncreaseAccepted)
    by_customer = event.data.get("by", CUSTOMER) == CUSTOMER
    told = await _tell_technician(ctx, row, visit, "pricechg.tech_accepted" if agreed else "pricechg.tech_refused")
    params = await _card_params(ctx, row, job, visit)
    if by_customer:
        card = t("pricechg.group_card_accepted" if agreed else "pricechg.group_card_refused", **params)
    else:
        card = t("pricechg.group_card_accepted_by" if agreed else "pricechg.group_card_refused_by", name=raw(event.data.get("name") or "-"), **params)
    key = ("pricechg.customer_card_agreed" if agreed else "pricechg.customer_card_refused") + ("" if by_customer else "_phone")
    answered = t(key, visit=row.visit_id, kind=kind_label(visit.kind), amount=row.amount.text(), reason=raw(row.reason))
    customer = _send(await _customer_chats(ctx, job), answered, purpose=Purpose.STATUS, card=customer_card(row.id))
    return [*told, *customer, *await _region_alert(ctx, job.region, card, card=group_card(row.id))]


REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (ask_dispatchers_to_decide, (ev.PriceIncreaseRequested,)),
    (ask_managers_to_decide, (ev.PriceIncreaseEscalated,)),
    (ask_customer, (ev.PriceIncreaseApproved,)),
    (tell_declined, (ev.PriceIncreaseDeclined,)),
    (tell_customer_answer, (ev.PriceIncreaseAccepted, ev.PriceIncreaseRefused)),
)

# the customer hears a discount through the bill it prices again (BillIssued), which lists it with the new total
SILENT: frozenset[type[ev.Event]] = frozenset({ev.DiscountGiven})
