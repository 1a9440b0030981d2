"""The technician's van stock and part requests (/stock), the dispatchers' approval, and a repair's completion record:
cause → fault → method → parts from the van → fixed or a return visit, every step with a way back."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from conversations.flow import FlowData, Guard, State, Step, StepInput, reply
from conversations.flows import completion
from conversations.flows.common import stale
from conversations.i18n import catalog
from domain import commands as c
from domain.field_work import ReturnReason
from domain.model import VisitStatus
from domain.parts import Cause, FaultTree, Node, Outcome
from domain.policy import ServicePolicy
from services import parts_views, views
from services.actions import (
    Action,
    ApprovePartRequest,
    BackToVisit,
    Complete,
    DeclinePartRequest,
    PartRequestMenu,
    PartRequestPick,
    PartRequestQty,
    PickFault,
    PickMethod,
    PutBackPartPress,
    RepairBack,
    RepairCause,
    RepairFault,
    RepairMethod,
    RepairOutcomePick,
    RepairPart,
    RepairPartsClear,
    RepairPartsDone,
    RepairShow,
    UsePartMenu,
    UsePartPick,
    UsePartQty,
    VanStock,
    encode,
)
from services.messages import Button, Inbound, InboundKind, Outbound, StepResult, Text, buttons, raw, t
from services.parts_views import PartsRequest, PartsView
from services.views import TechnicianView, TechnicianViewRequest, TechVisit
from storage.parts import PartRow
from storage.repository import Store

RECORD = "repair_record"  # the technician's state while a repair's completion record is being made
PAGE = 8  # catalogue parts per page of the request menu (a list message holds ten rows with the page's buttons)
SHOWN_IN_VAN = 6  # van parts offered on a repair at once (with done, clear, request and back: ten buttons, a list message's most)
QUANTITIES = (1, 2, 3, 5, 10)
NOTE_CHARS = 1000
# the steps that read the van, the catalogue or the fault trees (services/parts_views.py): only they load them
PARTS_ACTIONS: tuple[type[Action], ...] = (
    Complete, VanStock, PartRequestMenu, PartRequestPick, PartRequestQty, RepairCause, RepairFault, RepairMethod, RepairPart,
    RepairPartsClear, RepairPartsDone, RepairOutcomePick, RepairBack, RepairShow, UsePartMenu, UsePartPick, UsePartQty, PutBackPartPress,
)
PUT_BACK_SHOWN = 2  # parts used so far offered to put back on the use menu (with the van's six, request and back: ten)


def view_request(event: Inbound, action: Action | None, base: TechnicianViewRequest) -> TechnicianViewRequest:
    """The technician's view request, asking for parts data only for the steps above and /stock."""
    wants = isinstance(action, PARTS_ACTIONS) or (event.kind is InboundKind.COMMAND and event.text == "stock")
    if not wants:
        return base
    catalogue = isinstance(action, (PartRequestMenu, PartRequestPick, PartRequestQty))
    return PartsRequest(base.chat, base.token, base.user_id, base.board, parts=True, catalogue=catalogue)


async def load_view(store: Store, request: TechnicianViewRequest, policy: ServicePolicy, now: datetime) -> TechnicianView:
    view = await views.load_technician_view(store, request, policy, now)
    return await parts_views.with_parts(store, request, view, policy, now)


@dataclass(frozen=True)
class RecordDraft(FlowData):
    """A repair's record so far: indexes into its fault tree, the parts (part id, quantity) and the words typed."""

    visit: int
    cause: int | None = None
    fault: int | None = None
    method: int | None = None
    parts: tuple[tuple[int, int], ...] = ()
    parts_done: bool = False
    note: str = ""


def _label(kind: str, node: Node | Cause) -> Text:
    """The shop's own label in the reader's language, else the catalog's for a default code, else the code as written."""
    if node.label:
        return {"key": "=lang", "params": dict(node.label)}
    key = f"repair.{kind}.{node.code}"
    return t(key) if key in catalog("en") else raw(node.code.replace("_", " "))


def _visit(inp: StepInput, visit_id: int) -> TechVisit | None:
    """The repair in progress a record's button names, with the van and trees loaded (every such button loads them)."""
    if not isinstance(inp.view, PartsView):
        return None
    visit: TechVisit | None = inp.view.visit(visit_id)
    if visit is None or visit.status != VisitStatus.IN_PROGRESS.value or visit.lead is not None or visit.kind != "repair":
        return None
    return visit


def _back(visit_id: int) -> Button:
    return Button(t("btn.back"), encode(RepairBack(visit_id)))


def _part_lines(view: PartsView, draft: RecordDraft) -> list[Text]:
    """The record's parts: those fitted while at work (out of the van already), then those picked on the record."""
    lines: list[Text] = [_used_line(view, part_id, quantity) for part_id, quantity in view.used_on(draft.visit).items()]
    for part_id, quantity in draft.parts:
        part = view.part(part_id)
        lines.append(t("tech.repair_part_line", quantity=quantity, unit=raw(part.unit if part else ""), part=raw(part.name if part else str(part_id))))
    return lines


def _menu(inp: StepInput, visit: TechVisit, draft: RecordDraft) -> Outbound:
    """The card of the record where it stands: the next thing to pick, with a way back."""
    view: PartsView = inp.view
    tree = view.tree(visit.product_category)
    picked = tree.pick(draft.cause) if draft.cause is not None else None
    if draft.cause is None or picked is None:
        rows = [[Button(_label("cause", cause), encode(RepairCause(visit.id, n)))] for n, cause in enumerate(tree.causes)]
        return Outbound(t("tech.repair_cause", visit=visit.id), buttons(*rows, [Button(t("btn.repair_later"), encode(RepairBack(visit.id)))]))
    cause = picked[0]
    if draft.fault is None or tree.pick(draft.cause, draft.fault) is None:
        rows = [[Button(_label("fault", fault), encode(RepairFault(visit.id, n)))] for n, fault in enumerate(cause.faults)]
        return Outbound(t("tech.repair_fault_pick", cause=_label("cause", cause)), buttons(*rows, [_back(visit.id)]))
    fault = cause.faults[draft.fault]
    if draft.method is None or tree.pick(draft.cause, draft.fault, draft.method) is None:
        rows = [[Button(_label("method", method), encode(RepairMethod(visit.id, n)))] for n, method in enumerate(tree.methods)]
        return Outbound(t("tech.repair_method_pick", fault=_label("fault", fault)), buttons(*rows, [_back(visit.id)]))
    method = tree.methods[draft.method]
    if not draft.parts_done:
        return _parts_menu(view, visit, draft)
    lines = _part_lines(view, draft)
    text = t("tech.repair_outcome", visit=visit.id, cause=_label("cause", cause), fault=_label("fault", fault), method=_label("method", method),
             parts=lines if lines else t("tech.repair_no_parts"))
    rows = [[Button(t(f"btn.repair_outcome_{o}"), encode(RepairOutcomePick(visit.id, o)))] for o in ("fixed", "missing_part", "more_work")]
    return Outbound(text, buttons(*rows, [_back(visit.id)]))


def _parts_menu(view: PartsView, visit: TechVisit, draft: RecordDraft) -> Outbound:
    chosen = dict(draft.parts)
    fitting = [item for item in view.van if item.part.fits(visit.product_category)][:SHOWN_IN_VAN]
    rows = [[Button(t("btn.repair_add_part", part=raw(item.part.name[:40]), left=item.quantity - chosen.get(item.part.id, 0)),
                    encode(RepairPart(visit.id, item.part.id)))] for item in fitting]
    any_parts = bool(draft.parts) or bool(view.used_on(visit.id))
    rows.append([Button(t("btn.repair_parts_done" if any_parts else "btn.repair_no_parts"), encode(RepairPartsDone(visit.id)))])
    if draft.parts:
        rows.append([Button(t("btn.repair_parts_clear"), encode(RepairPartsClear(visit.id)))])
    rows.append([Button(t("btn.part_request"), encode(PartRequestMenu(0)))])
    rows.append([_back(visit.id)])
    lines = _part_lines(view, draft)
    key = "tech.repair_parts" if fitting else "tech.repair_parts_van_empty"
    return Outbound(t(key, parts=lines if lines else t("tech.repair_no_parts")), buttons(*rows))


def _used_line(view: PartsView, part_id: int, quantity: int) -> Text:
    part = view.part(part_id)
    return t("tech.repair_part_line_used", quantity=quantity, unit=raw(part.unit if part else ""), part=raw(part.name if part else str(part_id)))


# --- the start, from the technician's Complete ---------------------------------------------------------------------


def start(inp: StepInput, visit: TechVisit, first: tuple[c.Command, ...], idle: str) -> StepResult:
    """A repair's Complete: the record first (``first`` runs now: a skipped signature's reason). A record kept already
    (the customer's code was asked for and not given yet) goes straight on to completion."""
    view = inp.view
    if isinstance(view, PartsView) and visit.id in view.recorded:
        if completion.needs_code(inp, visit.id):
            return completion.ask_for_code(inp, visit.id, *first)
        return reply(Outbound(t("tech.completed", visit=visit.id)), commands=[*first, c.CompleteVisit(visit.id, inp.view.technician_id)], state=idle)
    draft = RecordDraft(visit.id)
    if not isinstance(view, PartsView):  # reached from typed text (a signature's reason): the next press loads the lists
        keyboard = buttons([Button(t("btn.repair_record"), encode(RepairShow(visit.id)))])
        return reply(Outbound(t("tech.repair_record_next", visit=visit.id), keyboard), commands=list(first), state=RECORD, data=draft)
    return reply(_menu(inp, visit, draft), commands=list(first), state=RECORD, data=draft)


# --- the record's steps ---------------------------------------------------------------------------------------------


def _draft(inp: StepInput, visit_id: int) -> RecordDraft:
    data = inp.data
    return data if isinstance(data, RecordDraft) and data.visit == visit_id else RecordDraft(visit_id)


def _tree(inp: StepInput, visit: TechVisit) -> FaultTree:
    view: PartsView = inp.view
    return view.tree(visit.product_category)


def _shown(inp: StepInput, visit: TechVisit, draft: RecordDraft) -> StepResult:
    return reply(_menu(inp, visit, draft), state=RECORD, data=draft)


def on_cause(inp: StepInput, pick: RepairCause) -> StepResult:
    visit = _visit(inp, pick.visit_id)
    if visit is None or _tree(inp, visit).pick(pick.cause) is None:
        return stale()
    return _shown(inp, visit, replace(_draft(inp, visit.id), cause=pick.cause, fault=None, method=None))


def on_fault(inp: StepInput, pick: RepairFault) -> StepResult:
    visit = _visit(inp, pick.visit_id)
    draft = _draft(inp, pick.visit_id)
    if visit is None or draft.cause is None or _tree(inp, visit).pick(draft.cause, pick.fault) is None:
        return stale()
    return _shown(inp, visit, replace(draft, fault=pick.fault, method=None))


def on_method(inp: StepInput, pick: RepairMethod) -> StepResult:
    visit = _visit(inp, pick.visit_id)
    draft = _draft(inp, pick.visit_id)
    if visit is None or draft.cause is None or draft.fault is None or _tree(inp, visit).pick(draft.cause, draft.fault, pick.method) is None:
        return stale()
    return _shown(inp, visit, replace(draft, method=pick.method, parts_done=False))


def on_part(inp: StepInput, pick: RepairPart) -> StepResult:
    """One more of a part: only as many as the van holds (the handler checks again, against concurrent use)."""
    visit = _visit(inp, pick.visit_id)
    draft = _draft(inp, pick.visit_id)
    view = inp.view
    if visit is None or draft.method is None or not isinstance(view, PartsView):
        return stale()
    chosen = dict(draft.parts)
    have = view.in_van(pick.part_id)
    if have <= chosen.get(pick.part_id, 0):
        part = view.part(pick.part_id)
        refused = Outbound(t("tech.repair_part_none_left", part=raw(part.name if part else str(pick.part_id))))
        return reply(refused, _parts_menu(view, visit, draft), state=RECORD, data=draft)
    if pick.part_id not in chosen and len(chosen) >= 10:
        return reply(Outbound(t("error.repair_parts_invalid")), _parts_menu(view, visit, draft), state=RECORD, data=draft)
    chosen[pick.part_id] = chosen.get(pick.part_id, 0) + 1
    return _shown(inp, visit, replace(draft, parts=tuple(chosen.items())))


def on_parts_clear(inp: StepInput, press: RepairPartsClear) -> StepResult:
    visit = _visit(inp, press.visit_id)
    if visit is None:
        return stale()
    return _shown(inp, visit, replace(_draft(inp, visit.id), parts=(), parts_done=False))


def on_parts_done(inp: StepInput, press: RepairPartsDone) -> StepResult:
    visit = _visit(inp, press.visit_id)
    draft = _draft(inp, press.visit_id)
    if visit is None or draft.method is None:
        return stale()
    return _shown(inp, visit, replace(draft, parts_done=True))


def on_back(inp: StepInput, press: RepairBack, idle: str) -> StepResult:
    """One step back; from the first, out of the record (the visit stays in progress, with Complete to come back to)."""
    visit = _visit(inp, press.visit_id)
    if visit is None:
        return reply(Outbound(t("hint.stale_button")), state=idle)
    draft = _draft(inp, visit.id)
    if draft.parts_done:
        back = replace(draft, parts_done=False)
    elif draft.method is not None:
        back = replace(draft, method=None, parts=())
    elif draft.fault is not None:
        back = replace(draft, fault=None)
    elif draft.cause is not None:
        back = replace(draft, cause=None)
    else:
        keyboard = buttons([Button(t("btn.complete"), encode(Complete(visit.id)))])
        return reply(Outbound(t("tech.repair_later", visit=visit.id), keyboard), state=idle)
    return _shown(inp, visit, back)


def on_show(inp: StepInput, press: RepairShow) -> StepResult:
    visit = _visit(inp, press.visit_id)
    if visit is None:
        return stale()
    return _shown(inp, visit, _draft(inp, visit.id))


def on_outcome(inp: StepInput, pick: RepairOutcomePick, idle: str) -> StepResult:
    """Fixed: recorded and completed (or the customer's code asked for); a return visit: recorded, and the visit ends
    needing another one, created and dispatched like any."""
    visit = _visit(inp, pick.visit_id)
    draft = _draft(inp, pick.visit_id)
    if visit is None or draft.cause is None or draft.fault is None or draft.method is None or not draft.parts_done:
        return stale()
    tree = _tree(inp, visit)
    picked = tree.pick(draft.cause, draft.fault, draft.method)
    if picked is None or picked[1] is None or picked[2] is None:
        return stale()
    cause, fault, method = picked[0].code, picked[1].code, picked[2].code
    technician_id = inp.view.technician_id
    fixed = pick.outcome == "fixed"
    record = c.RecordRepairCompletion(visit.id, technician_id, cause, fault, method, (Outcome.FIXED if fixed else Outcome.RETURN).value,
                                      draft.parts, draft.note)
    if fixed:
        if completion.needs_code(inp, visit.id):  # recorded now; the customer's code completes it
            return completion.ask_for_code(inp, visit.id, record)
        done = Outbound(t("tech.repair_completed", visit=visit.id, fault=_label("fault", picked[1]), method=_label("method", picked[2])))
        return reply(done, commands=[record, c.CompleteVisit(visit.id, technician_id)], state=idle)
    reason = ReturnReason.MISSING_PART if pick.outcome == "missing_part" else ReturnReason.OTHER
    note = draft.note or f"{cause}/{fault}: {method}"
    command = c.EndForReturn(visit.id, technician_id, reason.value, note[:500])
    return reply(Outbound(t("tech.repair_return_created", visit=visit.id)), commands=[record, command], state=idle)


def on_note(inp: StepInput) -> StepResult:
    """Words typed while the record is made are kept as its note, never dropped; the card comes back with Continue."""
    draft: RecordDraft | None = inp.data
    text = inp.event.text.strip()
    if draft is None or not text:
        return reply(Outbound(t("tech.hint_repair_record")))
    note = f"{draft.note}\n{text}".strip()[:NOTE_CHARS]
    keyboard = buttons([Button(t("btn.continue"), encode(RepairShow(draft.visit)))])
    return reply(Outbound(t("tech.repair_note_kept"), keyboard), data=replace(draft, note=note))


def record_state(guard: Guard, idle: str) -> State:
    """The technician flow's state for the record (its Complete leads here)."""
    def back(inp: StepInput, press: RepairBack) -> StepResult:
        return on_back(inp, press, idle)

    def outcome(inp: StepInput, pick: RepairOutcomePick) -> StepResult:
        return on_outcome(inp, pick, idle)

    back.__name__, outcome.__name__ = "on_repair_back", "on_repair_outcome"
    return State(
        hint="tech.hint_repair_record", data=RecordDraft, text=Step(on_note),
        buttons={
            RepairCause: Step(on_cause, leads_to=(RECORD,), requires=guard),
            RepairFault: Step(on_fault, leads_to=(RECORD,), requires=guard),
            RepairMethod: Step(on_method, leads_to=(RECORD,), requires=guard),
            RepairPart: Step(on_part, leads_to=(RECORD,), requires=guard),
            RepairPartsClear: Step(on_parts_clear, leads_to=(RECORD,), requires=guard),
            RepairPartsDone: Step(on_parts_done, leads_to=(RECORD,), requires=guard),
            RepairShow: Step(on_show, leads_to=(RECORD,), requires=guard),
            RepairBack: Step(back, leads_to=(RECORD, idle), requires=guard),
            RepairOutcomePick: Step(outcome, leads_to=(idle, completion.AWAIT_CODE), requires=guard),
        },
    )


# --- van stock and part requests -------------------------------------------------------------------------------------


def _stock_card(view: PartsView) -> Outbound:
    lines = [t("tech.van_stock_line", code=raw(i.part.code), part=raw(i.part.name), quantity=i.quantity, unit=raw(i.part.unit)) for i in view.van]
    keyboard = buttons([Button(t("btn.part_request"), encode(PartRequestMenu(0)))])
    if not lines:
        return Outbound(t("tech.van_stock_empty"), keyboard)
    return Outbound(t("tech.van_stock", lines=lines), keyboard)


def _back_to_record(inp: StepInput) -> list[Button]:
    """While a repair's record is open, the way back to it from the part request's steps."""
    draft = inp.data if inp.state == RECORD and isinstance(inp.data, RecordDraft) else None
    return [Button(t("btn.repair_back_to_record"), encode(RepairShow(draft.visit)))] if draft is not None else []


def on_stock(inp: StepInput) -> StepResult:
    """/stock: what the technician's van holds, with the way to ask for more."""
    view = inp.view
    if not isinstance(view, PartsView):
        return stale()
    return reply(_stock_card(view))


def on_van_stock(inp: StepInput, press: VanStock) -> StepResult:
    return on_stock(inp)


def on_request_menu(inp: StepInput, press: PartRequestMenu) -> StepResult:
    view = inp.view
    if not isinstance(view, PartsView):
        return stale()
    if not view.catalogue:
        return reply(Outbound(t("tech.parts_catalogue_empty"), buttons(_back_to_record(inp))))
    page = view.catalogue[press.page * PAGE:(press.page + 1) * PAGE]
    if not page:
        return stale()
    rows: list[list[Button]] = [[Button(raw(f"{p.name[:40]} ({p.code[:20]})"), encode(PartRequestPick(p.id)))] for p in page]
    if len(view.catalogue) > (press.page + 1) * PAGE:
        rows.append([Button(t("btn.more"), encode(PartRequestMenu(press.page + 1)))])
    rows.append(_back_to_record(inp))
    return reply(Outbound(t("tech.part_request_pick"), buttons(*rows)))


def _catalogue_part(view: PartsView, part_id: int) -> PartRow | None:
    return next((p for p in view.catalogue if p.id == part_id), None)


def on_request_pick(inp: StepInput, pick: PartRequestPick) -> StepResult:
    view = inp.view
    part = _catalogue_part(view, pick.part_id) if isinstance(view, PartsView) else None
    if part is None or not isinstance(view, PartsView):
        return stale()
    rows = [[Button(raw(str(q)), encode(PartRequestQty(part.id, q))) for q in QUANTITIES], [Button(t("btn.back"), encode(PartRequestMenu(0)))]]
    text = t("tech.part_request_qty", part=raw(f"{part.name} ({part.code})"), unit=raw(part.unit), van=view.in_van(part.id))
    return reply(Outbound(text, buttons(*rows)))


def on_request_qty(inp: StepInput, pick: PartRequestQty) -> StepResult:
    """Sent to the dispatchers (the handler checks the part and quantity again); the technician's state stays as it was,
    so an open repair record goes on where it was."""
    view = inp.view
    part = _catalogue_part(view, pick.part_id) if isinstance(view, PartsView) else None
    if part is None or not isinstance(view, PartsView) or view.technician_id is None:
        return stale()
    keyboard = buttons([Button(t("btn.van_stock"), encode(VanStock()))], _back_to_record(inp))
    answer = Outbound(t("tech.part_requested", quantity=pick.quantity, unit=raw(part.unit), part=raw(f"{part.name} ({part.code})")), keyboard)
    return reply(answer, commands=[c.RequestPart(view.technician_id, part.id, pick.quantity)])


def on_old_repair_button(inp: StepInput, press: PickFault | PickMethod) -> StepResult:
    """A fault or method button of a card sent before repairs kept their full record: Complete opens the record now."""
    visit: TechVisit | None = inp.view.visit(press.visit_id)
    if visit is None or visit.status != VisitStatus.IN_PROGRESS.value or visit.kind != "repair":
        return stale()
    return reply(Outbound(t("tech.repair_card_old", visit=visit.id), buttons([Button(t("btn.complete"), encode(Complete(visit.id)))])))


# --- parts fitted on a repair while at work (before its record: the price is agreed with the customer meanwhile) --------


def use_part_button(visit_id: int) -> Button:
    return Button(t("btn.use_part_now"), encode(UsePartMenu(visit_id)))


def _at_work(inp: StepInput, visit_id: int) -> TechVisit | None:
    """The technician's repair on site or under way, not recorded yet, with the van loaded (every such button loads it)."""
    view = inp.view
    if not isinstance(view, PartsView):
        return None
    visit: TechVisit | None = view.visit(visit_id)
    if (visit is None or visit.lead is not None or visit.kind != "repair" or visit.id in view.recorded
            or visit.status not in (VisitStatus.ON_SITE.value, VisitStatus.IN_PROGRESS.value)):
        return None
    return visit


def _to_visit(visit_id: int) -> Button:
    return Button(t("device.btn.back_to_visit"), encode(BackToVisit(visit_id)))


def _use_menu(view: PartsView, visit: TechVisit) -> Outbound:
    used = view.used_on(visit.id)
    fitting = [item for item in view.van if item.part.fits(visit.product_category) and item.quantity > 0][:SHOWN_IN_VAN]
    rows = [[Button(t("btn.repair_add_part", part=raw(item.part.name[:40]), left=item.quantity), encode(UsePartPick(visit.id, item.part.id)))]
            for item in fitting]
    for part_id, quantity in list(used.items())[:PUT_BACK_SHOWN]:
        part = view.part(part_id)
        rows.append([Button(t("btn.put_back_part", part=raw((part.name if part else str(part_id))[:40]), used=quantity),
                            encode(PutBackPartPress(visit.id, part_id, 1)))])
    rows.append([Button(t("btn.part_request"), encode(PartRequestMenu(0)))])
    rows.append([_to_visit(visit.id)])
    lines = [_used_line(view, part_id, quantity) for part_id, quantity in used.items()]
    key = "tech.use_part_menu" if fitting else "tech.use_part_van_empty"
    return Outbound(t(key, visit=visit.id, parts=lines if lines else t("tech.repair_no_parts")), buttons(*rows))


def on_use_menu(inp: StepInput, press: UsePartMenu) -> StepResult:
    visit = _at_work(inp, press.visit_id)
    if visit is None:
        return stale()
    return reply(_use_menu(inp.view, visit))


def on_use_pick(inp: StepInput, pick: UsePartPick) -> StepResult:
    visit = _at_work(inp, pick.visit_id)
    view = inp.view
    part = view.part(pick.part_id) if visit is not None else None
    if visit is None or part is None:
        return stale()
    have = view.in_van(part.id)
    if have < 1:
        return reply(Outbound(t("tech.repair_part_none_left", part=raw(part.name))), _use_menu(view, visit))
    rows = [[Button(raw(str(q)), encode(UsePartQty(visit.id, part.id, q))) for q in QUANTITIES if q <= have],
            [Button(t("btn.back"), encode(UsePartMenu(visit.id)))]]
    text = t("tech.use_part_qty", part=raw(f"{part.name} ({part.code})"), unit=raw(part.unit), van=have, visit=visit.id)
    return reply(Outbound(text, buttons(*rows)))


def on_use_qty(inp: StepInput, pick: UsePartQty) -> StepResult:
    """Out of the van onto the repair now (the handler checks the van again, against a concurrent use); the state stays,
    so a price increase being written goes on where it was."""
    visit = _at_work(inp, pick.visit_id)
    view = inp.view
    part = view.part(pick.part_id) if visit is not None else None
    if visit is None or part is None or view.technician_id is None:
        return stale()
    if view.in_van(part.id) < pick.quantity:
        return reply(Outbound(t("tech.repair_part_none_left", part=raw(part.name))), _use_menu(view, visit))
    keyboard = buttons([Button(t("btn.put_back_now"), encode(PutBackPartPress(visit.id, part.id, pick.quantity)))],
                       [Button(t("btn.use_another_part"), encode(UsePartMenu(visit.id)))], [_to_visit(visit.id)])
    answer = Outbound(t("tech.part_used", quantity=pick.quantity, unit=raw(part.unit), part=raw(part.name), visit=visit.id), keyboard)
    return reply(answer, commands=[c.UsePartOnRepair(visit.id, view.technician_id, part.id, pick.quantity)])


def on_put_back(inp: StepInput, press: PutBackPartPress) -> StepResult:
    visit = _at_work(inp, press.visit_id)
    view = inp.view
    if visit is None or view.technician_id is None or view.used_on(visit.id).get(press.part_id, 0) < press.quantity:
        return stale()
    part = view.part(press.part_id)
    name = part.name if part else str(press.part_id)
    keyboard = buttons([Button(t("btn.use_part_now"), encode(UsePartMenu(visit.id)))], [_to_visit(visit.id)])
    answer = Outbound(t("tech.part_put_back", quantity=press.quantity, unit=raw(part.unit if part else ""), part=raw(name), visit=visit.id), keyboard)
    return reply(answer, commands=[c.PutBackPart(visit.id, view.technician_id, press.part_id, press.quantity)])


def technician_buttons(guard: Guard) -> dict[type[Action], Step]:
    """The buttons valid in every state of the technician's flow (they keep the state: a repair record stays open)."""
    return {
        VanStock: Step(on_van_stock, requires=guard),
        PartRequestMenu: Step(on_request_menu, requires=guard),
        PartRequestPick: Step(on_request_pick, requires=guard),
        PartRequestQty: Step(on_request_qty, requires=guard),
        UsePartMenu: Step(on_use_menu, requires=guard),
        UsePartPick: Step(on_use_pick, requires=guard),
        UsePartQty: Step(on_use_qty, requires=guard),
        PutBackPartPress: Step(on_put_back, requires=guard),
        PickFault: Step(on_old_repair_button, requires=guard),
        PickMethod: Step(on_old_repair_button, requires=guard),
    }


# --- dispatchers ------------------------------------------------------------------------------------------------------


def on_approve(inp: StepInput, press: ApprovePartRequest) -> StepResult:
    """Issued from the warehouse to the van; the card changes in place and the technician is told (or, with too few in
    the warehouse, the dispatcher hears how many are there and nothing changes)."""
    return reply(commands=[c.DecidePartRequest(press.request_id, inp.view.dispatcher_id, True)])


def on_decline(inp: StepInput, press: DeclinePartRequest) -> StepResult:
    return reply(commands=[c.DecidePartRequest(press.request_id, inp.view.dispatcher_id, False)])


def dispatcher_buttons(guard: Guard) -> dict[type[Action], Step]:
    return {ApprovePartRequest: Step(on_approve, requires=guard), DeclinePartRequest: Step(on_decline, requires=guard)}
