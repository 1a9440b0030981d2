"""The technician's and driver's flow: offers, the day's visits, on the way, check-in, checklist, problems."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from conversations.flow import FlowSpec, State, StepInput
from conversations.flows.common import help_for, hint, identity, language_menu, switch_language
from services.messages import Button, Inbound, InboundKind, Outbound, StepResult, buttons, raw, reply, span, t
from domain import commands as c
from domain.errors import InvalidInput
from domain.geo import haversine_m, map_link
from domain.lifecycle import DONE
from domain.model import (
    ChecklistStep,
    Customer,
    ExceptionReason,
    Job,
    StepKind,
    Technician,
    Visit,
    VisitStatus,
    parse_number,
)
from domain.policy import ServicePolicy
from storage.repository import Store

SHOWN_STATUSES = (
    VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE,
    VisitStatus.IN_PROGRESS, VisitStatus.ON_HOLD, VisitStatus.COMPLETED,
)
PHOTO_REQUIRED_REASONS = (ExceptionReason.GOODS_DAMAGED.value, ExceptionReason.PARTS_MISSING.value)


@dataclass(frozen=True)
class TechVisit:
    id: int
    kind: str
    status: str
    slot_start: datetime | None
    slot_end: datetime | None
    product: str
    address: str
    lat: float
    lon: float
    customer: str
    phone: str
    steps: tuple[ChecklistStep, ...]
    answered: frozenset[str]
    dependency_done: bool
    lead: str | None = None  # set when this technician is crew on someone else's visit: the lead's name

    def next_step(self) -> int | None:
        for index, step in enumerate(self.steps):
            if step.key not in self.answered:
                return index
        return None


@dataclass(frozen=True)
class TechnicianView:
    technician_id: int | None
    name: str
    token_kind: str | None  # "technician" or "dispatcher" when /start carries a valid-looking token
    token_name: str
    visits: tuple[TechVisit, ...]

    def visit(self, visit_id: int | None) -> TechVisit | None:
        return next((v for v in self.visits if v.id == visit_id), None)


async def load_view(store: Store, event: Inbound, data: dict, policy: ServicePolicy, now: datetime) -> TechnicianView:
    chat = event.chat
    token_kind, token_name = None, ""
    if event.kind is InboundKind.COMMAND and event.text == "start" and event.payload:
        for purpose in ("technician", "dispatcher"):
            if await store.find_token(event.payload.strip(), purpose):
                token_kind = purpose
                break
    binding = await store.binding(chat.platform, chat.bot, chat.chat_id, "technician")
    if binding is None:
        return TechnicianView(None, "", token_kind, token_name, ())
    technician = await store.get(Technician, binding.subject_id)
    visits = []
    mine = await store.visits_of_technician(technician.id, SHOWN_STATUSES)
    crew = await store.crew_visits_of(technician.id, SHOWN_STATUSES)
    # grab offers: the visit has no technician yet, but this one may take it
    offered = [await store.get(Visit, o.visit_id) for o in await store.open_offers_for(technician.id)]
    for visit in mine + crew + [v for v in offered if v.technician_id is None]:
        job = await store.get(Job, visit.job_id)
        customer = await store.get(Customer, job.customer_id)
        template = await store.template_for(visit.kind, job.product_category)
        dependency = await store.get(Visit, visit.depends_on_visit_id) if visit.depends_on_visit_id else None
        visits.append(
            TechVisit(
                visit.id, visit.kind, visit.status, visit.slot_start, visit.slot_end, job.product_name,
                job.address_text, job.lat, job.lon, customer.name, customer.phone,
                tuple(template.parsed_steps()) if template else (),
                frozenset(await store.answers_of(visit.id)),
                dependency is None or dependency.state in DONE,
                (await store.get(Technician, visit.technician_id)).name if visit in crew else None,
            )
        )
    return TechnicianView(technician.id, technician.name, token_kind, token_name, tuple(visits))


# --- rendering helpers --------------------------------------------------------------------------


def _kind(kind: str) -> dict:
    return t(f"kind.{kind}")


def _report_button(visit_id: int) -> Button:
    return Button(t("btn.report_problem"), f"rp:{visit_id}")


def visit_card(visit: TechVisit) -> Outbound:
    """One visit with the next action the technician can take on it."""
    status = VisitStatus(visit.status)
    slot = span(visit.slot_start, visit.slot_end) if visit.slot_start and visit.slot_end else "-"
    if visit.lead is not None:  # crew: the lead checks in and walks the checklist, the crew turns up with them
        return Outbound(t(
            "tech.crew_visit_card", visit=visit.id, kind=_kind(visit.kind), status=t(f"status.{visit.status}"), lead=visit.lead,
            slot=slot, product=visit.product, address=visit.address, map=map_link(visit.lat, visit.lon),
        ))
    actions: list[list[Button]] = []
    if status is VisitStatus.BOOKED:
        actions.append([Button(t("btn.accept"), f"acc:{visit.id}"), Button(t("btn.decline"), f"dec:{visit.id}")])
    elif status is VisitStatus.ACCEPTED:
        actions.append([Button(t("btn.on_my_way"), f"go:{visit.id}"), Button(t("btn.arrived"), f"arr:{visit.id}")])
        actions.append([Button(t("btn.contacted"), f"ct:{visit.id}")])
    elif status is VisitStatus.EN_ROUTE:
        actions.append([Button(t("btn.arrived"), f"arr:{visit.id}")])
    elif status is VisitStatus.ON_SITE:
        actions.append([Button(t("btn.start_checklist"), f"st:{visit.id}")])
    elif status is VisitStatus.IN_PROGRESS:
        actions.append([Button(t("btn.continue_checklist"), f"ck:{visit.id}")])
    if status in (VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS):
        actions.append([_report_button(visit.id)])
    text = t(
        "tech.visit_card", visit=visit.id, kind=_kind(visit.kind), status=t(f"status.{visit.status}"),
        slot=slot, product=visit.product, address=visit.address, customer=visit.customer, phone=visit.phone,
        map=map_link(visit.lat, visit.lon),
    )
    return Outbound(text, buttons(*actions))


def step_prompt(visit: TechVisit, index: int) -> Outbound:
    step = visit.steps[index]
    progress = f"{index + 1}/{len(visit.steps)}"
    rows: list[list[Button]] = []
    if step.kind is StepKind.YES_NO:
        rows.append([Button(t("btn.yes"), f"ans:{visit.id}:{index}:yes"), Button(t("btn.no"), f"ans:{visit.id}:{index}:no")])
    elif step.kind is StepKind.CHOICE:
        rows.extend([Button(raw(choice), f"ans:{visit.id}:{index}:{n}")] for n, choice in enumerate(step.choices))
    rows.append([_report_button(visit.id)])
    key = {
        StepKind.YES_NO: "tech.step_yes_no",
        StepKind.CHOICE: "tech.step_choice",
        StepKind.NUMBER: "tech.step_number",
        StepKind.TEXT: "tech.step_text",
        StepKind.PHOTO: "tech.step_photo",
    }[step.kind]
    return Outbound(
        t(key, progress=progress, prompt=raw_prompt(step), min=_fmt(step.minimum), max=_fmt(step.maximum)),
        buttons(*rows),
    )


def raw_prompt(step: ChecklistStep) -> dict:
    # the shop writes prompts per language; the renderer picks the recipient's one
    return {"key": "=lang", "params": dict(step.prompt)}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else str(value)


def _after_answer(visit: TechVisit, answered_key: str) -> tuple[list[Outbound], str, dict]:
    """What follows an answer: the next unanswered step, or the Complete button."""
    answered = visit.answered | {answered_key}
    remaining = [i for i, s in enumerate(visit.steps) if s.key not in answered]
    if remaining:
        return [step_prompt(visit, remaining[0])], "checklist", {"visit": visit.id, "step": remaining[0]}
    keyboard = buttons([Button(t("btn.complete"), f"done:{visit.id}")], [_report_button(visit.id)])
    return [Outbound(t("tech.checklist_done"), keyboard)], "idle", {}


# --- steps --------------------------------------------------------------------------------------


def _require_technician(inp: StepInput) -> StepResult | None:
    if inp.view.technician_id is None:
        return hint("tech.hint_new")
    return None


def on_start(inp: StepInput) -> StepResult:
    view: TechnicianView = inp.view
    token = inp.event.payload.strip()
    if token:
        if view.token_kind == "technician":
            return reply(Outbound(t("tech.welcome")), commands=[c.BindTechnician(token, identity(inp))], state="idle", data={})
        if view.token_kind == "dispatcher":
            return reply(Outbound(t("dispatcher.registered")), commands=[c.RegisterDispatcher(token, identity(inp))])
        return hint("error.link_invalid")
    if view.technician_id is None:
        return hint("tech.hint_new")
    return on_today(inp)


def on_today(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    view: TechnicianView = inp.view
    local_today = inp.now.astimezone(inp.policy.tz).date()
    today = [v for v in view.visits if v.slot_start and v.slot_start.astimezone(inp.policy.tz).date() == local_today]
    later = [v for v in view.visits if v not in today and v.status != VisitStatus.COMPLETED.value]
    today.sort(key=lambda v: v.slot_start)
    messages = [Outbound(t("tech.today_header", count=len(today), later=len(later)))]
    messages.extend(visit_card(v) for v in today)
    # open offers for later days still need an answer, so show them too
    messages.extend(visit_card(v) for v in later if v.status == VisitStatus.BOOKED.value)
    return reply(*messages)


def on_visits(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    upcoming = [v for v in inp.view.visits if v.status != VisitStatus.COMPLETED.value]
    if not upcoming:
        return hint("tech.no_visits")
    return reply(*[visit_card(v) for v in upcoming])


def _visit_from_button(inp: StepInput, *statuses: VisitStatus) -> TechVisit | None:
    visit = inp.view.visit(inp.int_arg())
    if visit is None or (statuses and VisitStatus(visit.status) not in statuses):
        return None
    return visit


def on_accept(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.BOOKED)
    if visit is None:
        return hint("tech.offer_gone")
    keyboard = buttons([Button(t("btn.on_my_way"), f"go:{visit.id}")])
    return reply(Outbound(t("tech.accepted", visit=visit.id), keyboard), commands=[c.AcceptOffer(visit.id, inp.view.technician_id)])


def on_decline(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.BOOKED)
    if visit is None:
        return hint("tech.offer_gone")
    return reply(Outbound(t("tech.declined", visit=visit.id)), commands=[c.DeclineOffer(visit.id, inp.view.technician_id)])


def _ask_location() -> Outbound:
    return Outbound(t("tech.share_location"), request="location")


def on_depart(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.ACCEPTED)
    if visit is None:
        return hint("hint.stale_button")
    return reply(
        Outbound(t("tech.en_route", visit=visit.id)),
        _ask_location(),
        commands=[c.Depart(visit.id, inp.view.technician_id)],
        state="await_location",
        data={"visit": visit.id},
    )


def on_arrived(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE)
    if visit is None:
        return hint("hint.stale_button")
    return reply(_ask_location(), state="await_location", data={"visit": visit.id})


def _checked_in(visit: TechVisit) -> Outbound:
    keyboard = buttons([Button(t("btn.start_checklist"), f"st:{visit.id}")], [_report_button(visit.id)])
    return Outbound(t("tech.checked_in"), keyboard)


def on_location(inp: StepInput) -> StepResult:
    visit = inp.view.visit(inp.data.get("visit"))
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state="idle", data={})
    lat, lon = inp.event.latitude, inp.event.longitude
    if lat is None or lon is None:
        return hint("tech.hint_location")
    distance = haversine_m(visit.lat, visit.lon, lat, lon)
    if distance > inp.policy.checkin_radius_m:
        return reply(
            Outbound(t("tech.too_far", distance=int(distance), radius=int(inp.policy.checkin_radius_m))),
            state="checkin_reason",
            data={"visit": visit.id, "lat": lat, "lon": lon},
        )
    return reply(_checked_in(visit), commands=[c.CheckIn(visit.id, inp.view.technician_id, lat, lon)], state="idle", data={})


def on_checkin_reason(inp: StepInput) -> StepResult:
    visit = inp.view.visit(inp.data.get("visit"))
    reason = inp.event.text.strip()
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state="idle", data={})
    if not reason:
        return hint("tech.hint_checkin_reason")
    return reply(
        _checked_in(visit),
        commands=[c.CheckIn(visit.id, inp.view.technician_id, inp.data["lat"], inp.data["lon"], reason[:500])],
        state="idle",
        data={},
    )


def on_start_work(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.ON_SITE)
    if visit is None:
        return hint("hint.stale_button")
    if not visit.dependency_done:
        return hint("error.dependency_not_completed", kind=_kind("delivery"))
    command = c.StartWork(visit.id, inp.view.technician_id)
    if not visit.steps:
        keyboard = buttons([Button(t("btn.complete"), f"done:{visit.id}")])
        return reply(Outbound(t("tech.no_checklist"), keyboard), commands=[command], state="idle", data={})
    first = visit.next_step() or 0
    return reply(step_prompt(visit, first), commands=[command], state="checklist", data={"visit": visit.id, "step": first})


def on_continue(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.IN_PROGRESS)
    if visit is None:
        return hint("hint.stale_button")
    index = visit.next_step()
    if index is None:
        messages, state, data = _after_answer(visit, "")
        return reply(*messages, state=state, data=data)
    return reply(step_prompt(visit, index), state="checklist", data={"visit": visit.id, "step": index})


def _current_step(inp: StepInput) -> tuple[TechVisit, int] | None:
    visit = inp.view.visit(inp.data.get("visit"))
    index = inp.data.get("step")
    if visit is None or index is None or index >= len(visit.steps) or visit.status != VisitStatus.IN_PROGRESS.value:
        return None
    return visit, index


def _answer(inp: StepInput, visit: TechVisit, index: int, value: str, photo: c.PhotoRef | None = None) -> StepResult:
    step = visit.steps[index]
    messages, state, data = _after_answer(visit, step.key)
    return reply(
        *messages,
        commands=[c.AnswerStep(visit.id, inp.view.technician_id, step.key, value, photo)],
        state=state,
        data=data,
    )


def on_answer_button(inp: StepInput) -> StepResult:
    current = _current_step(inp)
    if current is None or inp.int_arg(0) != current[0].id or inp.int_arg(1) != current[1]:
        return hint("hint.stale_button")
    visit, index = current
    step = visit.steps[index]
    choice = inp.args[2] if len(inp.args) > 2 else ""
    if step.kind is StepKind.YES_NO and choice in ("yes", "no"):
        return _answer(inp, visit, index, choice)
    if step.kind is StepKind.CHOICE and choice.isdigit() and int(choice) < len(step.choices):
        return _answer(inp, visit, index, step.choices[int(choice)])
    return hint("hint.stale_button")


def on_checklist_text(inp: StepInput) -> StepResult:
    current = _current_step(inp)
    if current is None:
        return reply(Outbound(t("hint.stale_button")), state="idle", data={})
    visit, index = current
    step = visit.steps[index]
    text = inp.event.text.strip()
    if step.kind is StepKind.NUMBER:
        try:
            value = parse_number(text, step)
        except InvalidInput as err:
            return reply(Outbound(t(f"error.{err.code}", min=_fmt(step.minimum), max=_fmt(step.maximum))), step_prompt(visit, index))
        return _answer(inp, visit, index, _fmt(value))
    if step.kind is StepKind.TEXT and text:
        return _answer(inp, visit, index, text[:2000])
    return reply(Outbound(t("tech.hint_use_buttons" if step.kind in (StepKind.YES_NO, StepKind.CHOICE) else "tech.hint_send_photo")), step_prompt(visit, index))


def _photo_ref(inp: StepInput) -> c.PhotoRef | None:
    event = inp.event
    if not event.file_id:
        return None
    return c.PhotoRef(event.chat.platform, event.file_id, event.file_path or "")


def _photo_refused(event: Inbound) -> Outbound:
    """Why a photo was not kept, in words the sender can act on; the state stays, so they can send another."""
    refusals = {
        "too_big": t("photo.too_big", max_mb=_fmt(event.file_limit_mb)),
        "not_image": t("photo.not_image"),
        "too_many_pixels": t("photo.too_many_pixels"),
    }
    return Outbound(refusals.get(event.file_error, t("tech.photo_failed")))


def on_checklist_photo(inp: StepInput) -> StepResult:
    current = _current_step(inp)
    if current is None:
        return reply(Outbound(t("hint.stale_button")), state="idle", data={})
    visit, index = current
    if visit.steps[index].kind is not StepKind.PHOTO:
        return reply(Outbound(t("tech.hint_not_photo")), step_prompt(visit, index))
    if inp.event.file_error:
        return reply(_photo_refused(inp.event), step_prompt(visit, index))
    photo = _photo_ref(inp)
    if photo is None or not photo.path:
        return hint("tech.photo_failed")
    return _answer(inp, visit, index, "photo", photo)


def on_complete(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.IN_PROGRESS)
    if visit is None:
        return hint("hint.stale_button")
    return reply(Outbound(t("tech.completed", visit=visit.id)), commands=[c.CompleteVisit(visit.id, inp.view.technician_id)], state="idle", data={})


def on_report(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.BOOKED, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE, VisitStatus.ON_SITE, VisitStatus.IN_PROGRESS)
    if visit is None:
        return hint("hint.stale_button")
    rows = [[Button(t(f"reason.{r.value}"), f"rr:{visit.id}:{r.value}")] for r in ExceptionReason]
    return reply(Outbound(t("tech.report_reason"), buttons(*rows)), state="report_reason", data={"visit": visit.id})


def on_report_reason(inp: StepInput) -> StepResult:
    visit = inp.view.visit(inp.int_arg(0))
    reason = inp.args[1] if len(inp.args) > 1 else ""
    if visit is None or reason not in {r.value for r in ExceptionReason} or inp.state != "report_reason":
        return hint("hint.stale_button")
    keyboard = buttons([Button(t("btn.skip"), "rskip")])
    return reply(Outbound(t("tech.report_note"), keyboard), state="report_note", data={"visit": visit.id, "reason": reason, "photos": []})


def _photo_step(data: dict) -> Outbound:
    keyboard = buttons([Button(t("btn.send_report"), "rsend")])
    required = data["reason"] in PHOTO_REQUIRED_REASONS
    return Outbound(t("tech.report_photo_required" if required else "tech.report_photo"), keyboard)


def on_report_note(inp: StepInput) -> StepResult:
    data = {**inp.data, "note": inp.event.text.strip()[:1000]}
    return reply(_photo_step(data), state="report_photo", data=data)


def on_report_skip(inp: StepInput) -> StepResult:
    if inp.state != "report_note":
        return hint("hint.stale_button")
    data = {**inp.data, "note": ""}
    return reply(_photo_step(data), state="report_photo", data=data)


def on_report_photo(inp: StepInput) -> StepResult:
    if inp.event.file_error:
        return reply(_photo_refused(inp.event), _photo_step(inp.data))
    photo = _photo_ref(inp)
    if photo is None or not photo.path:
        return hint("tech.photo_failed")
    photos = [*inp.data.get("photos", []), {"platform": photo.platform, "file_id": photo.file_id, "path": photo.path}]
    keyboard = buttons([Button(t("btn.send_report"), "rsend")])
    return reply(Outbound(t("tech.report_photo_added", count=len(photos)), keyboard), data={**inp.data, "photos": photos})


def on_report_send(inp: StepInput) -> StepResult:
    if inp.state != "report_photo":
        return hint("hint.stale_button")
    data = inp.data
    if data["reason"] in PHOTO_REQUIRED_REASONS and not data.get("photos"):
        return hint("tech.report_photo_required")
    photos = tuple(c.PhotoRef(**p) for p in data.get("photos", []))
    command = c.ReportException(data["visit"], inp.view.technician_id, data["reason"], data.get("note", ""), photos)
    return reply(Outbound(t("tech.report_sent")), commands=[command], state="idle", data={})


def on_contacted(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    visit = _visit_from_button(inp, VisitStatus.ACCEPTED, VisitStatus.EN_ROUTE)
    if visit is None:
        return hint("hint.stale_button")
    return reply(Outbound(t("tech.contacted", visit=visit.id)), commands=[c.MarkContacted(visit.id, inp.view.technician_id)])


def on_live_location(inp: StepInput) -> StepResult:
    if inp.view.technician_id is None or inp.event.latitude is None or inp.event.longitude is None:
        return reply()
    track = c.TrackLocation(inp.view.technician_id, inp.event.latitude, inp.event.longitude)
    visit = inp.view.visit(inp.data.get("visit")) if inp.state == "await_location" else None
    if visit is not None and haversine_m(visit.lat, visit.lon, inp.event.latitude, inp.event.longitude) <= inp.policy.checkin_radius_m:
        # live location that reaches the address is a check-in too; on the way it only tracks
        checked_in = on_location(inp)
        return replace(checked_in, commands=(*checked_in.commands, track))
    # otherwise silent: the customer hears about it, the technician is driving
    return reply(commands=[track])


def on_off_duty(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    return reply(Outbound(t("tech.off_duty")), commands=[c.SetDuty(inp.view.technician_id, False)])


def on_on_duty(inp: StepInput) -> StepResult:
    if (refusal := _require_technician(inp)) is not None:
        return refusal
    return reply(Outbound(t("tech.on_duty")), commands=[c.SetDuty(inp.view.technician_id, True)])


def on_cancel(inp: StepInput) -> StepResult:
    if inp.view.technician_id is None:
        return reply(Outbound(t("tech.hint_new")), state="new", data={})
    return reply(Outbound(t("common.cancelled")), state="idle", data={})


def on_help(inp: StepInput) -> StepResult:
    return help_for(inp, "tech.help", TECHNICIAN_FLOW.states)


def on_idle_text(inp: StepInput) -> StepResult:
    return hint("tech.hint_new" if inp.view.technician_id is None else "tech.hint_idle")


TECHNICIAN_FLOW = FlowSpec(
    name="technician",
    initial="new",
    states={
        "new": State(hint="tech.hint_new", text=on_idle_text, leads_to=("idle",)),
        "idle": State(hint="tech.hint_idle", text=on_idle_text, leads_to=("await_location", "checklist", "report_reason")),
        "await_location": State(hint="tech.hint_location", location=on_location, leads_to=("idle", "checkin_reason")),
        "checkin_reason": State(hint="tech.hint_checkin_reason", text=on_checkin_reason, leads_to=("idle",)),
        "checklist": State(
            hint="tech.hint_checklist", text=on_checklist_text, photo=on_checklist_photo, wants_photo=True,
            leads_to=("checklist", "idle", "report_reason"),
        ),
        "report_reason": State(hint="tech.hint_report_reason", leads_to=("report_note",)),
        "report_note": State(hint="tech.hint_report_note", text=on_report_note, leads_to=("report_photo",)),
        "report_photo": State(hint="tech.hint_report_photo", photo=on_report_photo, wants_photo=True, leads_to=("idle",)),
    },
    commands={
        "start": on_start,
        "today": on_today,
        "visits": on_visits,
        "offduty": on_off_duty,
        "onduty": on_on_duty,
        "help": on_help,
        "cancel": on_cancel,
        "lang": language_menu,
        "language": language_menu,
    },
    buttons={
        "acc": on_accept,
        "dec": on_decline,
        "go": on_depart,
        "arr": on_arrived,
        "st": on_start_work,
        "ck": on_continue,
        "ans": on_answer_button,
        "done": on_complete,
        "rp": on_report,
        "rr": on_report_reason,
        "rskip": on_report_skip,
        "rsend": on_report_send,
        "ct": on_contacted,
        "lang": switch_language,
    },
    live_location=on_live_location,
)

