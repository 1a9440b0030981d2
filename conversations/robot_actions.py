"""What a robot alert's action link offers on its page, and the command confirming it runs: the same command the
Telegram group's button (and the steps after it) would run, so both paths act alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from conversations.flows.dispatcher import EXTEND_MINUTES, _choice_label, parse_address
from domain import commands as c
from domain.model import MAX_ID, ExceptionStatus, Job, Technician, VisitStatus
from domain.price_changes import ChangeStatus
from domain.policy import ServicePolicy
from services import actions as a
from services.context import HandlerContext
from services.messages import Text, raw, span, t, when
from services.robot_links import LINKABLE
from services.views import VisitContacts, _exception_info, _rating_brief, _visit_contacts
from storage.price_changes import PriceChangeStore

OPEN = frozenset(status.value for status in (
    VisitStatus.CREATED, VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS,
    VisitStatus.ON_HOLD,
))
MAX_TEXT = 500  # an address, a reason or a note typed on the page


@dataclass(frozen=True)
class Option:
    value: str  # what the form sends back; checked against the options offered again when it comes back
    label: Text


@dataclass(frozen=True)
class Offer:
    """What a link's page offers now: what will happen, and what must be picked or typed first; or why it cannot."""

    title: Text
    options: tuple[Option, ...] = ()  # exactly one must be picked (a technician, a time)
    ask: Text | None = None  # a text must be typed (an address, a reason, a note)
    refusal: Text | None = None  # nothing can be done with this link now, and why
    reveals: bool = False  # confirming shows what the group must not see (phone numbers), once, to whoever confirms


@dataclass(frozen=True)
class Decision:
    """What confirming did or would do: the commands to run, what the page says after, or why not."""

    commands: tuple[c.Command, ...] = ()
    done: Text | None = None  # stored on the link: its page says it to whoever opens it later
    shown: Text | None = None  # shown once to whoever confirmed, never stored (phone numbers)
    refusal: Text | None = None  # nothing ran; the link stays usable
    job_id: int | None = None  # what the timeline records it on when no command raised an event (a call's numbers shown)
    visit_id: int | None = None


def _refused(title: Text, reason: Text) -> Offer:
    return Offer(title, refusal=reason)


def _gone(title: Text) -> Offer:
    return _refused(title, t("robot.gone"))


def _closed(title: Text, visit: VisitContacts) -> Offer | None:
    if visit.status in OPEN:
        return None
    return _refused(title, t("robot.visit_closed", visit=visit.visit_id, status=t(f"status.{visit.status}")))


def _windows(policy: ServicePolicy, now: datetime) -> list[tuple[datetime, datetime]]:
    """Every window from now to the booking horizon, as the group's Move walks them day by day."""
    today = now.astimezone(policy.tz).date()
    found = []
    for offset in range(policy.booking_days + 1):
        day = today + timedelta(days=offset)
        for window in policy.windows:
            start, end = datetime.combine(day, window.start, policy.tz), datetime.combine(day, window.end, policy.tz)
            if start > now:
                found.append((start.astimezone(timezone.utc), end.astimezone(timezone.utc)))
    return found


def _window_value(start: datetime, end: datetime) -> str:
    return f"{int(start.timestamp())}-{int(end.timestamp())}"


async def offer(ctx: HandlerContext, action: a.Action) -> Offer:
    """The page of a link whose action is ``action`` (one of services.robot_links.LINKABLE)."""
    if isinstance(action, a.OnException):
        report = await _exception_info(ctx, action.exception_id, with_candidates=isinstance(action, a.Reassign))
        if report is None:
            return _gone(t("robot.do_unknown"))
        fields = dict(exception=report.id, visit=report.visit_id)
        title = t({a.Acknowledge: "robot.do_acknowledge", a.Reassign: "robot.do_reassign"}.get(type(action), "robot.do_cancel_reported"), **fields)
        if report.status == ExceptionStatus.RESOLVED.value:
            return _refused(title, t("dispatcher.already_handled"))
        if isinstance(action, a.Acknowledge):
            if report.acknowledged_by is not None or report.status != ExceptionStatus.OPEN.value:
                return _refused(title, t("dispatch.already_acknowledged", name=raw(report.acknowledged_by or "-"),
                                         at=when(report.acknowledged_at) if report.acknowledged_at else "-"))
            return Offer(title)
        if isinstance(action, a.Reassign):
            if not report.candidates:
                return _refused(title, t("robot.no_candidates", visit=report.visit_id))
            return Offer(title, options=tuple(Option(str(tid), raw(name)) for tid, name in report.candidates[:10]))
        return Offer(title)
    if isinstance(action, a.AcknowledgeRating):
        rating = await _rating_brief(ctx.store, action.rating_id)
        if rating is None:
            return _gone(t("robot.do_unknown"))
        title = t("robot.do_acknowledge_rating", visit=rating.visit_id or "-")
        if rating.acknowledged_by is not None:
            return _refused(title, t("dispatch.already_acknowledged", name=raw(rating.acknowledged_by),
                                     at=when(rating.acknowledged_at) if rating.acknowledged_at else "-"))
        return Offer(title)
    if isinstance(action, (a.FixAddress, a.CloseJobAsk, a.ReopenJobAsk, a.NoteAsk)):
        key, ask = {
            a.FixAddress: ("robot.do_fix_address", "robot.ask_address"), a.CloseJobAsk: ("robot.do_close_job", "robot.ask_reason"),
            a.ReopenJobAsk: ("robot.do_reopen_job", "robot.ask_reason"), a.NoteAsk: ("robot.do_note", "robot.ask_note"),
        }[type(action)]
        title = t(key, order=action.job_id)
        if await ctx.store.get(Job, action.job_id) is None:
            return _gone(title)
        return Offer(title, ask=t(ask))
    if isinstance(action, PRICE_CHANGE_ACTIONS):
        return await _price_change_offer(ctx, action)
    return await _visit_offer(ctx, action)


PRICE_CHANGE_ACTIONS = (a.ApprovePriceIncrease, a.DeclinePriceIncrease, a.PhoneAgreedPriceIncrease, a.PhoneRefusedPriceIncrease)


async def _price_change_offer(ctx: HandlerContext, action: a.Action) -> Offer:
    """The region decides a pending increase; the customer's phone answer is taken once the shop approved it."""
    change_id: int = getattr(action, "request_id")
    row = await PriceChangeStore(ctx.store).change(change_id) if 1 <= change_id <= MAX_ID else None
    key = {a.ApprovePriceIncrease: "robot.do_pricechg_approve", a.DeclinePriceIncrease: "robot.do_pricechg_decline",
           a.PhoneAgreedPriceIncrease: "robot.do_pricechg_phone_agreed", a.PhoneRefusedPriceIncrease: "robot.do_pricechg_phone_refused"}[type(action)]
    if row is None:
        return _gone(t(key, visit="-", amount="-"))
    title = t(key, visit=row.visit_id, amount=raw(row.amount.text()))
    waiting = ChangeStatus.PENDING if isinstance(action, (a.ApprovePriceIncrease, a.DeclinePriceIncrease)) else ChangeStatus.APPROVED
    if row.status is ChangeStatus.ESCALATED and waiting is ChangeStatus.PENDING:
        return _refused(title, t("robot.pricechg_manager_decides"))
    if row.status is not waiting:
        return _refused(title, t("error.pricechg_decided", status=raw(row.status.value)))
    return Offer(title)


async def _visit_offer(ctx: HandlerContext, action: a.Action) -> Offer:
    visit_id: int = getattr(action, "visit_id")
    choices = isinstance(action, a.AssignAnyone)
    visit = await _visit_contacts(ctx, visit_id, with_candidates=isinstance(action, a.ReassignLate), with_choices=choices)
    if isinstance(action, a.CallDetails):
        title = t("robot.do_call", visit=visit_id)
        return _gone(title) if visit is None else Offer(title, reveals=True)
    if isinstance(action, a.Assign):
        technician = await ctx.store.get(Technician, action.technician_id)
        title = t("robot.do_assign", visit=visit_id, name=raw(technician.name if technician else "-"))
        if visit is None or technician is None:
            return _gone(title)
        return _closed(title, visit) or Offer(title)
    if isinstance(action, a.ExtendDeadline):
        title = t("robot.do_extend", visit=visit_id, minutes=EXTEND_MINUTES, stage=t(f"sla.{action.stage}"))
    else:
        title = t({a.ReassignLate: "robot.do_reassign_late", a.AssignAnyone: "robot.do_assign_anyone", a.MoveVisitMenu: "robot.do_move",
                   a.CancelFromAlert: "robot.do_cancel_visit"}[type(action)], visit=visit_id)
    if visit is None:
        return _gone(title)
    closed = _closed(title, visit)
    if closed is not None:
        return closed
    if isinstance(action, a.ReassignLate):
        if not visit.candidates:
            return _refused(title, t("robot.no_candidates", visit=visit_id))
        return Offer(title, options=tuple(Option(str(tid), raw(name)) for tid, name in visit.candidates[:10]))
    if isinstance(action, a.AssignAnyone):
        if not visit.choices:
            return _refused(title, t("dispatch.nobody_skilled", visit=visit_id))
        # a busy one is an explicit override, as the group's confirmation step makes it
        return Offer(title, options=tuple(Option(f"{'t' if ch.free else 'o'}{ch.technician_id}", _choice_label(ch)) for ch in visit.choices[:10]))
    if isinstance(action, a.MoveVisitMenu):
        windows = _windows(ctx.policy, ctx.now)
        if not windows:
            return _refused(title, t("robot.no_windows", visit=visit_id))
        return Offer(title, options=tuple(Option(_window_value(start, end), t("dispatch.window_label", slot=span(start, end))) for start, end in windows))
    return Offer(title)


async def decide(ctx: HandlerContext, action: a.Action, *, dispatcher_id: int, name: str, choice: str | None, text: str | None) -> Decision:
    """The commands confirming the link runs, with ``choice`` and ``text`` checked against what the page offers now."""
    offered = await offer(ctx, action)
    if offered.refusal is not None:
        return Decision(refusal=offered.refusal)
    if offered.options and choice not in {option.value for option in offered.options}:
        return Decision(refusal=t("robot.pick_required"))
    typed = (text or "").strip()
    if offered.ask is not None and not typed:
        return Decision(refusal=t("robot.text_required"))
    if len(typed) > MAX_TEXT:
        return Decision(refusal=t("robot.text_too_long", limit=MAX_TEXT))
    who = raw(name)
    picked = int(choice) if isinstance(action, (a.Reassign, a.ReassignLate)) and choice else 0
    labels = {option.value: option.label for option in offered.options}
    match action:
        case a.Acknowledge(exception_id):
            return Decision((c.AcknowledgeException(exception_id, dispatcher_id),), t("robot.done_acknowledged", name=who))
        case a.Reassign(exception_id):
            visit = getattr(await _exception_info(ctx, exception_id, with_candidates=False), "visit_id", "-")
            return Decision((c.ReassignVisit(exception_id, picked, dispatcher_id),),
                            t("dispatcher.reassigned", visit=visit, technician=labels[str(picked)]))
        case a.CancelReported(exception_id):
            visit = getattr(await _exception_info(ctx, exception_id, with_candidates=False), "visit_id", "-")
            return Decision((c.CancelVisitByDispatcher(exception_id, dispatcher_id),), t("dispatcher.visit_cancelled", visit=visit))
        case a.AcknowledgeRating(rating_id):
            return Decision((c.AcknowledgeAlert(rating_id, dispatcher_id),), t("robot.done_acknowledged", name=who))
        case a.Assign(visit_id, technician_id):
            return Decision((c.AssignVisit(visit_id, technician_id, dispatcher_id),), t("dispatcher.assigned", visit=visit_id, name=who))
        case a.ReassignLate(visit_id):
            return Decision((c.AssignVisit(visit_id, picked, dispatcher_id),), t("dispatcher.reassigned", visit=visit_id, technician=labels[str(picked)]))
        case a.AssignAnyone(visit_id):
            assert choice is not None  # checked against the options above
            technician_id = int(choice[1:])
            if choice.startswith("t"):
                return Decision((c.AssignVisit(visit_id, technician_id, dispatcher_id),), t("dispatcher.assigned", visit=visit_id, name=who))
            return Decision((c.ForceAssignVisit(visit_id, technician_id, dispatcher_id),), t("dispatch.overridden", visit=visit_id, name=who))
        case a.ExtendDeadline(visit_id, stage):
            return Decision((c.ExtendSla(visit_id, stage, EXTEND_MINUTES, dispatcher_id),),
                            t("dispatcher.extended", visit=visit_id, minutes=EXTEND_MINUTES, name=who))
        case a.MoveVisitMenu(visit_id):
            assert choice is not None
            start, end = (datetime.fromtimestamp(int(part), timezone.utc) for part in choice.split("-"))
            return Decision((c.MoveVisit(visit_id, start, end, dispatcher_id),), t("dispatch.moved", visit=visit_id, slot=span(start, end), name=who))
        case a.CancelFromAlert(visit_id):
            return Decision((c.CancelVisitAsDispatcher(visit_id, dispatcher_id),), t("dispatcher.visit_cancelled", visit=visit_id))
        case a.CallDetails(visit_id):
            visit = await _visit_contacts(ctx, visit_id, with_candidates=False)
            if visit is None:
                return Decision(refusal=t("robot.gone"))
            details = t("dispatcher.call_details", visit=visit_id, customer=raw(visit.customer), customer_phone=raw(visit.customer_phone),
                        technician=raw(visit.technician), technician_phone=raw(visit.technician_phone))
            return Decision(done=t("robot.done_call", visit=visit_id, name=who), shown=details, job_id=visit.job_id or None, visit_id=visit_id)
        case a.FixAddress(job_id):
            address, lat, lon = parse_address(typed)
            if not address:
                return Decision(refusal=t("robot.text_required"))
            return Decision((c.CorrectAddress(job_id, address, lat, lon, dispatcher_id),),
                            t("dispatch.address_corrected", order=job_id, address=raw(address), name=who))
        case a.CloseJobAsk(job_id):
            return Decision((c.CloseJob(job_id, typed, dispatcher_id),), t("dispatch.job_closed", order=job_id, name=who))
        case a.ReopenJobAsk(job_id):
            return Decision((c.ReopenJob(job_id, typed, dispatcher_id),), t("dispatch.job_reopened", order=job_id, name=who))
        case a.NoteAsk(job_id):
            return Decision((c.AddNote(job_id, typed, dispatcher_id),), t("dispatch.note_added", order=job_id, name=who))
        case a.ApprovePriceIncrease(change_id) | a.DeclinePriceIncrease(change_id):
            approve = isinstance(action, a.ApprovePriceIncrease)
            return Decision((c.DecidePriceIncrease(change_id, approve, dispatcher_id),),
                            t("robot.done_pricechg_approved" if approve else "robot.done_pricechg_declined", name=who))
        case a.PhoneAgreedPriceIncrease(change_id) | a.PhoneRefusedPriceIncrease(change_id):
            agreed = isinstance(action, a.PhoneAgreedPriceIncrease)
            return Decision((c.RecordPriceIncreaseAnswer(change_id, agreed, dispatcher_id),),
                            t("robot.done_pricechg_phone_agreed" if agreed else "robot.done_pricechg_phone_refused", name=who))
    raise ValueError(f"{type(action).__name__} is not one of the robot link's actions {[kind.__name__ for kind in LINKABLE]}")
