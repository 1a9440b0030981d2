"""Completion codes and the delivered-item check on the bus: their handlers, and the reactions that send and alert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from domain import commands as c
from domain import events as ev
from domain import lifecycle
from domain.kind_policy import policy_for, source_override
from domain.completion_codes import (
    ItemMark,
    Outcome,
    delivered_items,
    digest,
    judge,
    matches,
    new_code,
    new_salt,
    normalise,
    problems,
    report_note,
    report_reason,
    CodePolicy,
    MAX_RESENDS,
    MAX_WRONG_PER_CODE,
    MAX_WRONG_PER_TECHNICIAN_DAY,
)
from domain.errors import DomainError, IllegalTransition, InvalidInput, NotAllowed, NotFound
from domain.model import ChatBinding, Customer, Dispatcher, Job, ProblemReport, ServiceKind, Technician, Visit, VisitStatus, stored_id
from services import actions as a
from services.actions import encode
from services.bus import Reaction, handles
from services.context import HandlerContext
from services.handlers import _customer_visit, _technician_visit, complete_visit
from services.lookups import visit_of
from services.messages import Button, ChatRef, Keyboard, Outbound, Purpose, Text, buttons, t
from services.notifications import _customer_chats, _masked_job, _region_alert, _technician_chats, kind_label
from storage.completion_codes import CodeRow, CodeStore
from storage.threads import ThreadStore

# a code may be asked for again while the visit is under way; once it is done, nothing needs one
CODE_STATES = (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS, VisitStatus.ON_HOLD)
ITEMS_CARD = "items"


def _day(ctx: HandlerContext) -> str:
    """The shop's local date: a technician's daily tries start again at local midnight."""
    return ctx.now.astimezone(ctx.policy.tz).date().isoformat()


async def policy_of(ctx: HandlerContext, job: Job) -> CodePolicy:
    """The code policy for a job: its source's own, else the shop's."""
    store = CodeStore(ctx.store)
    override = await store.source_policy(job.source)
    return policy_for(ctx.policy.completion_codes, {job.source: override} if override is not None else {}, job.source)


def items_card_key(visit_id: int) -> tuple[str, int]:
    """The item check in the customer's chat: each item's question, then the summary, then the answer, edited in place."""
    return (ITEMS_CARD, visit_id)


# --- handlers ---------------------------------------------------------------------------------------


async def _live_code(ctx: HandlerContext, visit_id: int) -> CodeRow:
    code = await CodeStore(ctx.store).code_of(visit_id, for_update=True)
    if code is None or not code.pending:
        raise DomainError("completion_code_not_needed")
    return code


async def complete_with_code(ctx: HandlerContext, cmd: c.CompleteWithCode) -> list[ev.Event]:
    """One try at the customer's code. A right one completes the visit; a wrong one is counted (never undone, so it is an
    event, not an error) and tells how many tries are left; a locked code or technician is refused without comparing."""
    visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
    if visit.state is not VisitStatus.IN_PROGRESS:
        raise IllegalTransition(visit.status, "complete")
    code = await _live_code(ctx, cmd.visit_id)
    typed = normalise(cmd.code)
    if typed is None:
        raise InvalidInput("completion_code_format")
    store, day = CodeStore(ctx.store), _day(ctx)
    wrong_today = await store.wrong_today(cmd.technician_id, day, for_update=True)
    # locked (the code or the technician): nothing is compared at all, so a lock cannot be guessed past
    refused = code.wrong_tries >= MAX_WRONG_PER_CODE or wrong_today >= MAX_WRONG_PER_TECHNICIAN_DAY
    correct = not refused and matches(typed, code.salt, code.code_hash)
    verdict = judge(correct=correct, code_wrong=code.wrong_tries, technician_wrong_today=wrong_today)
    data = {"technician_id": cmd.technician_id, "outcome": verdict.outcome.value, "tries_left": verdict.tries_left}
    if verdict.outcome is Outcome.ACCEPTED:
        await store.change(cmd.visit_id, used_at=ctx.now, outcome="verified")
        accepted = ev.CompletionCodeAccepted(visit.job_id, visit.id, {"technician_id": cmd.technician_id})
        return [accepted, *await complete_visit(ctx, c.CompleteVisit(cmd.visit_id, cmd.technician_id))]
    events: list[ev.Event] = [ev.CompletionCodeRejected(visit.job_id, visit.id, data)]
    if verdict.counted:
        await store.count_wrong(cmd.visit_id, lock_at=ctx.now if code.wrong_tries + 1 >= MAX_WRONG_PER_CODE else None)
        await store.count_wrong_today(cmd.technician_id, day)
    if verdict.locks is not None:
        events.append(ev.CompletionCodeLocked(visit.job_id, visit.id, {"technician_id": cmd.technician_id, "scope": verdict.locks}))
    return events


async def resend_completion_code(ctx: HandlerContext, cmd: c.ResendCompletionCode) -> list[ev.Event]:
    """A new code is wanted: whoever asks must be the visit's customer, its technician or a dispatcher. The new code itself
    is made and sent by the reaction (``send_new_code``), so that it never sits in an event."""
    visit = await ctx.store.get(Visit, cmd.visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    by: str
    if cmd.customer_id is not None:
        visit, _job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
        by = "customer"
    elif cmd.technician_id is not None:
        visit, _job = await _technician_visit(ctx, cmd.visit_id, cmd.technician_id)
        by = "technician"
    elif cmd.dispatcher_id is not None and await ctx.store.get(Dispatcher, cmd.dispatcher_id) is not None:
        by = "dispatcher"
    else:
        raise NotAllowed("not_a_dispatcher")
    if visit.state not in CODE_STATES:
        raise DomainError("completion_code_not_needed")
    code = await _live_code(ctx, cmd.visit_id)
    if by == "dispatcher":
        await CodeStore(ctx.store).change(cmd.visit_id, wrong_tries=0, locked_at=None)  # a person looked: fresh tries
    elif code.resends >= MAX_RESENDS:
        raise DomainError("completion_code_resend_limit")
    return [ev.CompletionCodeRequested(visit.job_id, visit.id, {"by": by, "dispatcher_id": cmd.dispatcher_id,
                                                                 "technician_id": visit.technician_id})]


CODE_REPEAT = timedelta(minutes=1)  # /code again within this of the last code sent: it is just above, nothing new is made


async def send_my_completion_codes(ctx: HandlerContext, cmd: c.SendMyCompletionCodes) -> list[ev.Event]:
    """The customer's /code. Codes are kept only as salted hashes, so the current code is a fresh one in place of the
    old (which stops working), sent by ``send_new_code`` to the customer's own chats only. Not when the last one went
    out less than a minute ago (it is just above), nor past the resends a visit allows; nothing waiting: said so."""
    customer = await ctx.store.get(Customer, cmd.customer_id)
    if customer is None:
        raise NotFound("customer_not_found")
    visits = [v for job in await ctx.store.jobs_of_customer(cmd.customer_id) for v in await ctx.store.visits_of_job(stored_id(job))
              if v.state in CODE_STATES]
    store = CodeStore(ctx.store)
    codes = await store.codes_of(stored_id(v) for v in visits)
    waiting = [v for v in visits if stored_id(v) in codes and codes[stored_id(v)].pending]
    if not waiting:
        raise DomainError("completion_code_none")
    events: list[ev.Event] = []
    refusal = "completion_code_resend_limit"
    for visit in waiting:
        code = codes[stored_id(visit)]
        if ctx.now - code.issued_at < CODE_REPEAT:
            refusal = "completion_code_just_sent"
            continue
        if code.resends >= MAX_RESENDS:
            continue
        events.append(ev.CompletionCodeRequested(visit.job_id, visit.id, {"by": "customer", "dispatcher_id": None,
                                                                          "technician_id": visit.technician_id}))
    if not events:
        raise DomainError(refusal)
    return events


async def complete_for_technician(ctx: HandlerContext, cmd: c.CompleteForTechnician) -> list[ev.Event]:
    """A dispatcher's way out of a lockout (or a customer who cannot get the code): the visit completes as its technician
    would, the checklist and a repair's codes still required, and the code is recorded as waived, by whom."""
    dispatcher = await ctx.store.get(Dispatcher, cmd.dispatcher_id)
    if dispatcher is None:
        raise NotAllowed("not_a_dispatcher")
    visit = await ctx.store.get(Visit, cmd.visit_id)
    if visit is None:
        raise NotFound("visit_not_found")
    if visit.state is not VisitStatus.IN_PROGRESS or visit.technician_id is None:
        raise IllegalTransition(visit.status, "complete")
    store = CodeStore(ctx.store)
    code = await store.code_of(cmd.visit_id, for_update=True)
    if code is not None and code.pending:
        await store.change(cmd.visit_id, used_at=ctx.now, outcome="waived")
    waived = ev.CompletionCodeWaived(visit.job_id, visit.id, {
        "technician_id": visit.technician_id, "dispatcher_id": cmd.dispatcher_id, "name": dispatcher.name,
    })
    return [waived, *await complete_visit(ctx, c.CompleteVisit(cmd.visit_id, visit.technician_id))]


async def check_delivered_items(ctx: HandlerContext, cmd: c.CheckDeliveredItems) -> list[ev.Event]:
    """The customer's marks, once per delivery: all received is noted; anything missing or damaged raises a problem
    report on the visit with the driver's photos of it, for the dispatchers (the existing problem path)."""
    visit, job = await _customer_visit(ctx, cmd.visit_id, cmd.customer_id)
    if visit.service_kind is not ServiceKind.DELIVERY or visit.state not in lifecycle.DONE:
        raise DomainError("items_check_not_open")
    items = delivered_items(job)
    try:
        marks = [ItemMark(mark) for mark in cmd.marks]
    except ValueError as exc:
        raise InvalidInput("items_check_invalid") from exc
    if len(marks) != len(items):
        raise InvalidInput("items_check_invalid")
    store = CodeStore(ctx.store)
    if await store.item_check(stored_id(visit)) is not None:
        raise DomainError("items_already_checked")
    found = problems(items, marks)
    events: list[ev.Event] = [ev.DeliveredItemsChecked(visit.job_id, visit.id, {
        "items": [[item, mark.value] for item, mark in zip(items, marks, strict=True)], "problems": len(found),
    })]
    report_id = None
    if found:
        photos = [stored_id(p) for p in await ThreadStore(ctx.store).photos_of_visits([stored_id(visit)])]
        reason = report_reason(found)
        report = await ctx.store.add(ProblemReport(stored_id(visit), None, reason.value, report_note(found), photos, created_at=ctx.now))
        report_id = stored_id(report)
        events.append(ev.ExceptionReported(visit.job_id, visit.id, {
            "exception_id": report_id, "reason": reason.value, "technician_id": visit.technician_id, "by": "customer",
        }))
    await store.add_item_check(stored_id(visit), [[item, mark.value] for item, mark in zip(items, marks, strict=True)], report_id, ctx.now)
    return events


async def set_completion_code_policy(ctx: HandlerContext, cmd: c.SetCompletionCodePolicy) -> list[ev.Event]:
    """A source's override, checked as the setting is: off, all, or service kinds. Visits on the way keep what they have
    (a code is decided when the technician sets off)."""
    source, text = source_override(CodePolicy, cmd.source, cmd.policy, "completion_codes_invalid")
    await CodeStore(ctx.store).put_source_policy(source, text, ctx.now)
    return []


HANDLERS = (
    handles(c.SetCompletionCodePolicy, set_completion_code_policy),
    handles(c.CompleteWithCode, complete_with_code),
    handles(c.ResendCompletionCode, resend_completion_code),
    handles(c.SendMyCompletionCodes, send_my_completion_codes),
    handles(c.CompleteForTechnician, complete_for_technician),
    handles(c.CheckDeliveredItems, check_delivered_items),
)


# --- reactions ----------------------------------------------------------------------------------------


async def _issue(ctx: HandlerContext, visit: Visit, job: Job, key: str) -> list[Outbound]:
    """A fresh code for the visit, its hash stored, the code itself only in the messages to the customer's own chats."""
    chats = await _customer_chats(ctx, job)
    if not chats:
        return []
    code = new_code()
    salt = new_salt()
    await CodeStore(ctx.store).put_code(stored_id(visit), digest(code, salt), salt, ctx.now)
    technician = await ctx.store.get(Technician, visit.technician_id)
    keyboard = buttons([Button(t("btn.code_resend"), encode(a.ResendCode(stored_id(visit))))])
    text = t(key, code=code, kind=kind_label(visit.kind), technician=technician.name if technician else "-")
    # only ever to the customer's own chats: a code is never addressed to a group or a robot. Always a new message, not
    # an edit of the old code's: a new code someone else asked for must notify the customer
    return [Outbound(text, keyboard, to=ChatRef(chat.platform, chat.bot, chat.chat_id), language=chat.language, purpose=Purpose.STATUS,
                     secret=("code",))
            for chat in chats if chat.subject_kind == "customer"]


async def issue_code_on_set_off(ctx: HandlerContext, event: ev.Event) -> list[Outbound | ev.Event]:
    """The technician sets off (or checks in without having said so): a visit its policy asks a code of gets one now,
    sent to the customer with words to give it only once satisfied. A customer with no chat gets none: nothing could
    reach them, and the visit completes as it would without codes."""
    visit = await ctx.store.load(Visit, visit_of(event))
    job = await ctx.store.load(Job, visit.job_id)
    if await CodeStore(ctx.store).code_of(stored_id(visit)) is not None:
        return []  # issued already (on the way, then checked in)
    if not (await policy_of(ctx, job)).requires(visit.kind):
        return []
    sent = await _issue(ctx, visit, job, "customer.completion_code")
    if not sent:
        return []
    told = _send_to(await _technician_chats(ctx, visit.technician_id), t("tech.code_will_be_needed", visit=visit.id))
    return [*sent, *told, ev.CompletionCodeIssued(visit.job_id, visit.id, {"technician_id": visit.technician_id, "by": "set_off"})]


async def send_new_code(ctx: HandlerContext, event: ev.Event) -> list[Outbound | ev.Event]:
    visit = await ctx.store.load(Visit, visit_of(event))
    job = await ctx.store.load(Job, visit.job_id)
    sent = await _issue(ctx, visit, job, "customer.completion_code_new")
    by = event.data.get("by")
    out: list[Outbound | ev.Event] = [*sent]
    if by == "technician":
        key = "tech.code_resent" if sent else "tech.code_no_customer_chat"
        out += _send_to(await _technician_chats(ctx, visit.technician_id), t(key, visit=visit.id), _code_keyboard(stored_id(visit)))
    if sent:
        out.append(ev.CompletionCodeIssued(visit.job_id, visit.id, {"technician_id": visit.technician_id, "by": by}))
    return out


def _send_to(chats: list[ChatBinding], text: Text, keyboard: Keyboard = ()) -> list[Outbound]:
    return [Outbound(text, keyboard, to=ChatRef(chat.platform, chat.bot, chat.chat_id), language=chat.language, purpose=Purpose.STATUS)
            for chat in chats]


def _code_keyboard(visit_id: int) -> Keyboard:
    """While waiting for a code: a new one for the customer, or leave it for now."""
    return buttons([Button(t("btn.code_resend_to_customer"), encode(a.ResendCode(visit_id)))],
                   [Button(t("btn.code_never_mind"), encode(a.NeverMind()))])


async def tell_technician_code_rejected(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A wrong code: the tries left and the way on; a refused one: why (the last wrong try is told by the lock)."""
    outcome = event.data["outcome"]
    visit_id = visit_of(event)
    chats = await _technician_chats(ctx, event.data["technician_id"])
    if outcome == Outcome.WRONG.value:
        if event.data["tries_left"] == 0:
            return []  # CompletionCodeLocked tells what locked
        return _send_to(chats, t("tech.code_wrong", visit=visit_id, tries=event.data["tries_left"]), _code_keyboard(visit_id))
    return _send_to(chats, t(locked_key(outcome), visit=visit_id))


def locked_key(outcome: str) -> str:
    """What a technician reads when a code ("code_locked") or they themselves ("technician_locked") had their tries."""
    return "tech.code_locked_technician" if outcome == Outcome.TECHNICIAN_LOCKED.value else "tech.code_locked"


async def tell_technician_locked(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    outcome = Outcome.TECHNICIAN_LOCKED.value if event.data["scope"] == "technician" else Outcome.CODE_LOCKED.value
    return _send_to(await _technician_chats(ctx, event.data["technician_id"]), t(locked_key(outcome), visit=visit_of(event)))


async def alert_dispatchers_code_locked(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Guessing stopped: the dispatchers decide. They can complete the visit for the technician once they are sure the
    work is done (a call is a button away), or send the customer a new code (which lifts a code's lock). The code is
    never in the alert: the group never sees one, and nobody but the customer has it."""
    visit = await ctx.store.load(Visit, visit_of(event))
    job = await ctx.store.load(Job, visit.job_id)
    technician = await ctx.store.get(Technician, event.data["technician_id"])
    scope = event.data["scope"]
    visit_id = stored_id(visit)
    text = t(f"group.code_locked_{scope}", visit=visit_id, kind=kind_label(visit.kind), technician=technician.name if technician else "-",
             **await _masked_job(ctx, job))
    rows = [[Button(t("btn.code_complete_for_them"), encode(a.CompleteForThem(visit_id)))]]
    if scope == "code":
        rows.append([Button(t("btn.code_send_new"), encode(a.NewCodeFromAlert(visit_id)))])
    rows.append([Button(t("btn.call"), encode(a.CallDetails(visit_id)))])
    return await _region_alert(ctx, job.region, text, buttons(*rows))


async def tell_technician_code_accepted(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    chats = await _technician_chats(ctx, event.data["technician_id"])
    visit_id = visit_of(event)
    # the checklist's card ("all done" with Complete) becomes "completed", as a completion without a code does
    return [Outbound(t("tech.code_accepted", visit=visit_id), to=ChatRef(chat.platform, chat.bot, chat.chat_id), language=chat.language,
                     purpose=Purpose.STATUS, card=("checklist", visit_id)) for chat in chats]


async def tell_technician_completed_for_them(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    chats = await _technician_chats(ctx, event.data["technician_id"])
    return _send_to(chats, t("tech.completed_by_dispatcher", visit=visit_of(event), name=event.data.get("name") or "-"))


async def ask_customer_to_check_items(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """A delivery is done: the customer ticks each item it brought, one card edited in place (three buttons fit any chat)."""
    visit = await ctx.store.load(Visit, visit_of(event))
    if visit.service_kind is not ServiceKind.DELIVERY:
        return []
    job = await ctx.store.load(Job, visit.job_id)
    items = delivered_items(job)
    text, keyboard = item_question(stored_id(visit), items, 0)
    return [Outbound(text, keyboard, to=ChatRef(chat.platform, chat.bot, chat.chat_id), language=chat.language, purpose=Purpose.SURVEY,
                     card=items_card_key(stored_id(visit)))
            for chat in await _customer_chats(ctx, job)]


def item_question(visit_id: int, items: Sequence[str], index: int) -> tuple[Text, Keyboard]:
    """The question for one item: received, missing or damaged (also what the customer's flow asks for the next one)."""
    text = t("customer.item_check", index=index + 1, count=len(items), item=items[index])
    keyboard = buttons([Button(t(f"btn.item_{mark.value}"), encode(a.TickItem(visit_id, index, mark))) for mark in ItemMark])
    return text, keyboard


REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (issue_code_on_set_off, (ev.VisitEnRoute, ev.VisitCheckedIn)),
    (send_new_code, (ev.CompletionCodeRequested,)),
    (tell_technician_code_rejected, (ev.CompletionCodeRejected,)),
    (tell_technician_locked, (ev.CompletionCodeLocked,)),
    (alert_dispatchers_code_locked, (ev.CompletionCodeLocked,)),
    (tell_technician_code_accepted, (ev.CompletionCodeAccepted,)),
    (tell_technician_completed_for_them, (ev.CompletionCodeWaived,)),
    (ask_customer_to_check_items, (ev.VisitCompleted,)),
)
