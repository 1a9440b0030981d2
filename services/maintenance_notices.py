"""Who hears what about maintenance plans: the dispatchers when a plan's assignee cannot take an inspection or one is
overdue, and the plan's reviewer (in their own chat) when one is overdue or a period's inspections are all done."""

from __future__ import annotations

from datetime import date

from domain import events as ev
from domain.masking import mask_address
from domain.model import ChatBinding, Job, Technician, Visit, stored_id
from services.bus import Reaction
from services.context import HandlerContext
from services.lookups import visit_of
from services.messages import Button, ChatRef, Keyboard, Outbound, Purpose, Text, buttons, link_button, raw, t
from services.notifications import _masked_job, _region_alert, job_actions, kind_label, visit_actions
from storage.devices import DeviceStore
from storage.maintenance import MaintenanceStore, PlanRow


def report_path(plan_id: int, day: str) -> str:
    """The back-office page of the plan period ``day`` falls in (signed-in staff of the site's region)."""
    return f"/maintenance/{plan_id}?day={day}"


def _url(ctx: HandlerContext, path: str) -> str:
    # absolute where the public address is known; else site-relative, which the web console opens (bots/render.py)
    return f"{ctx.policy.public_url.rstrip('/')}{path}" if ctx.policy.public_url else path


def _report_buttons(ctx: HandlerContext, plan_id: int, day: str) -> list[Button]:
    return [link_button(t("maintenance.open_report"), _url(ctx, report_path(plan_id, day))),
            link_button(t("maintenance.download"), _url(ctx, f"/maintenance/{plan_id}/report.csv?day={day}"))]


async def _plan(ctx: HandlerContext, event: ev.Event) -> PlanRow | None:
    return await MaintenanceStore(ctx.store).plan(event.data["plan_id"])


async def _reviewer_chats(ctx: HandlerContext, plan: PlanRow) -> list[ChatBinding]:
    if plan.reviewer_dispatcher_id is None:
        return []
    return await ctx.store.bindings_of("dispatcher", plan.reviewer_dispatcher_id)


def _to_reviewer(chats: list[ChatBinding], text: Text, keyboard: Keyboard) -> list[Outbound]:
    """A dispatcher is bound by their user in groups; their own chat with the bot is that user (as *Call* answers)."""
    return [Outbound(text, keyboard, to=ChatRef(chat.platform, chat.bot, chat.user_id or chat.chat_id), language=chat.language,
                     purpose=Purpose.ALERT) for chat in chats]


async def _names(ctx: HandlerContext, technician_ids: list[int]) -> str:
    names = []
    for technician_id in technician_ids:
        technician = await ctx.store.get(Technician, technician_id)
        names.append(technician.name if technician else f"#{technician_id}")
    return ", ".join(names)


async def alert_dispatchers_assignee_unavailable(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """The plan's technician or team cannot take the inspection on its day: it went to the usual dispatch (or waits to
    be booked), and the dispatchers know why — with what they can do about the visit."""
    plan = await _plan(ctx, event)
    job, visit = await ctx.store.load(Job, event.job_id), await ctx.store.load(Visit, visit_of(event))
    booked = event.data["outcome"] == "dispatched"
    text = t("maintenance.assignee_unavailable_dispatched" if booked else "maintenance.assignee_unavailable_unbooked",
             plan=raw(plan.name if plan else "-"), day=event.data["day"], who=raw(await _names(ctx, event.data["assignees"])),
             visit=visit.id, kind=kind_label(visit.kind), **await _masked_job(ctx, job))
    keyboard = visit_actions(stored_id(visit)) if booked else buttons(*visit_actions(stored_id(visit), assign=False), job_actions(stored_id(job)))
    return await _region_alert(ctx, job.region, text, keyboard)


async def alert_inspection_overdue(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """An inspection's day passed and it is not done: the region's dispatchers get the visit's actions, the reviewer
    hears it in their own chat with the period's report."""
    plan = await _plan(ctx, event)
    job, visit = await ctx.store.load(Job, event.job_id), await ctx.store.load(Visit, visit_of(event))
    fields = dict(plan=raw(plan.name if plan else "-"), day=event.data["day"], visit=visit.id, kind=kind_label(visit.kind),
                  state=t(f"maintenance.visit_state.{visit.status}"))
    booked = visit.slot_start is not None
    group = t("maintenance.overdue_group", **fields, **await _masked_job(ctx, job))
    actions = visit_actions(stored_id(visit), assign=booked)
    out = await _region_alert(ctx, job.region, group, actions if booked else buttons(*actions, job_actions(stored_id(job))))
    if plan is not None:
        site = await DeviceStore(ctx.store).site(plan.site_id)
        text = t("maintenance.overdue_reviewer", address=raw(site.address_text if site else mask_address(job.address_text)), **fields)
        out += _to_reviewer(await _reviewer_chats(ctx, plan), text, buttons(_report_buttons(ctx, plan.id, event.data["day"])))
    return out


async def tell_reviewer_period_done(ctx: HandlerContext, event: ev.Event) -> list[Outbound]:
    """Every inspection of the period is done: the reviewer gets the report (page and file) to review. With no chat of
    theirs bound, the region's dispatchers get it instead, so the report is not left unread."""
    plan = await _plan(ctx, event)
    if plan is None or plan.reviewer_dispatcher_id is None:
        return []
    site = await DeviceStore(ctx.store).site(plan.site_id)
    start, end = date.fromisoformat(event.data["period_start"]), date.fromisoformat(event.data["period_end"])
    fields = dict(plan=raw(plan.name), start=start.isoformat(), end=end.isoformat(), done=event.data["done"])
    keyboard = buttons(_report_buttons(ctx, plan.id, start.isoformat()))
    chats = await _reviewer_chats(ctx, plan)
    if chats:
        address = site.address_text if site else "-"
        return _to_reviewer(chats, t("maintenance.period_done_reviewer", address=raw(address), **fields), keyboard)
    region = site.region if site else (await ctx.store.load(Job, event.job_id)).region
    return await _region_alert(ctx, region, t("maintenance.period_done_group", **fields), keyboard)


REACTIONS: tuple[tuple[Reaction, tuple[type[ev.Event], ...]], ...] = (
    (alert_dispatchers_assignee_unavailable, (ev.InspectionAssigneeUnavailable,)),
    (alert_inspection_overdue, (ev.InspectionOverdue,)),
    (tell_reviewer_period_done, (ev.InspectionPeriodDone,)),
)
