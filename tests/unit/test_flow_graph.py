"""Each flow's state graph holds: every step, driven from every state, lands only where its table entry says; the diagrams are current."""

from __future__ import annotations

import itertools
from dataclasses import fields
from datetime import datetime, timedelta, timezone

import pytest

from services import actions
from services.actions import Action, decode, encode
from conversations.flow import FlowData, FlowSpec, State, Step, StepInput, UndeclaredTransition, reply
from conversations.flows import ALL_FLOWS, diagrams, relay
from conversations.flows.common import VisitData
from conversations.flows.completion import ItemDraft
from conversations.flows import customer
from conversations.flows.customer import MoveData
from conversations.flows.technician import CheckinAway, ChecklistAt, ProblemDraft
from conversations.understanding import Intent, Understood
from conversations.flows.dispatcher import Awaiting
from conversations.flows.customer import RatedVisit
from conversations.flows.repair import RepairDraft
from conversations.flows.stock import RecordDraft
from conversations.flows.payment import PaymentDraft
from conversations.flows.price_increase import IncreaseDraft
from conversations.flows.settlement import AdjustData
from conversations.flows.scan_report import ScanReport
from conversations.flows.owner_check import OwnerCheck
from domain.fees import PaymentMethod
from services.parts_views import PartsView, VanItem
from storage.parts import PartRow
from services.device_views import DeviceInfo, DevicesView, HistoryLine, Scan
from domain import commands as c
from domain.completion_codes import ItemMark
from domain.field_work import ReturnReason
from domain.model import ChecklistStep, ExceptionReason, Language, StepKind, VisitStatus
from domain.policy import ServicePolicy
from domain.sla import STAGES
from fieldchat.cli import main as fieldchat
from services.messages import ChatRef, Inbound, InboundKind, Outbound, t
from services.views import (
    JobBrief,
    RatingBrief,
    CustomerView,
    DispatcherView,
    ExceptionInfo,
    JobInfo,
    TechnicianView,
    TechVisit,
    VisitContacts,
    VisitInfo,
)
from tests.support import ROOT

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
SLOT = (NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2))
SHOP = (31.2304, 121.4737)
FAR = (SHOP[0] + 0.05, SHOP[1])
MISSING = 999  # an id no view holds: a stale button
TZ = ServicePolicy().tz
# what sample texts mean to the customer flow, whatever the parser of the day makes of them
CUSTOMER_MEANS = {
    "come tomorrow instead": Understood(Intent.RESCHEDULE, SLOT[0].astimezone(TZ).date()),
    "cancel it": Understood(Intent.CANCEL),
}

# faults typed (issue 14): of the device on file, of a product not on file, and of none named
FAULTS = ("my air conditioner leaks", "the washing machine is broken", "it is broken")


@pytest.fixture(autouse=True)
def _customer_texts(monkeypatch):
    monkeypatch.setattr(customer, "UNDERSTAND", lambda text, role, now, language: CUSTOMER_MEANS.get(text, Understood(Intent.UNKNOWN)))


# --- representative views: every status a visit can be in, bound and not ----------------------------


def _customer_views() -> list[CustomerView]:
    statuses = list(VisitStatus)
    visits = [
        VisitInfo(10 + n, "repair", status.value, *(SLOT if status is not VisitStatus.CREATED else (None, None)), False, None, slots=(SLOT,))
        for n, status in enumerate(statuses)
    ]
    waiting = VisitInfo(40, "installation", "created", None, None, False, 41, slots=())  # its delivery is not booked yet
    unbooked = VisitInfo(41, "delivery", "created", None, None, False, None, slots=())
    rated = VisitInfo(42, "repair", "confirmed", *SLOT, True, None)
    soon = VisitInfo(43, "repair", "booked", NOW + timedelta(hours=1), NOW + timedelta(hours=2), False, None)
    # a booked delivery whose booked installation starts inside its window: moving the delivery asks about both
    moving = VisitInfo(44, "delivery", "booked", *SLOT, False, None, slots=(SLOT,), duration_minutes=45)
    pushed = VisitInfo(45, "installation", "accepted", SLOT[0] + timedelta(minutes=30), SLOT[1], False, 44, slots=(SLOT,))
    job = JobInfo(5, "Sofa", "Road 1", (*visits, waiting, unbooked, rated, soon, moving, pushed))
    no_times = JobInfo(6, "Sofa", "Road 1", (VisitInfo(50, "delivery", "created", None, None, False, None, slots=()),))
    return [
        CustomerView(None, "", None, ()),
        CustomerView(None, "", job, ()),
        CustomerView(7, "Zhang", job, (job,)),
        CustomerView(7, "Zhang", no_times, (no_times,)),
        CustomerView(7, "Zhang", None, ()),
        # a completed delivery whose items the customer has not checked yet (issue 13 part 6)
        CustomerView(7, "Zhang", None, (job,), unchecked={10 + statuses.index(VisitStatus.COMPLETED): ("Sofa", "Cushion")}),
        # devices (issue 14): the customer's, with one's history, and a scanned code of a site, of someone else, or not working
        DevicesView(7, "Zhang", None, (job,), devices=(DEVICE,), history=(HistoryLine("installed", NOW, 11),), scan=Scan(7, (DEVICE,), True)),
        DevicesView(7, "Zhang", None, (), devices=(DEVICE,), scan=Scan(8, (DEVICE,))),
        DevicesView(None, "", None, (), scan=Scan(None)),
        DevicesView(7, "Zhang", None, (job,)),
    ]


DEVICE = DeviceInfo(4, "Split AC", "aircon", "Gree", "KFR", "GR-1", "bedroom", "", None, None)


STEPS = (
    ChecklistStep("intact", StepKind.YES_NO, {"en": "Intact?"}),
    ChecklistStep("legs", StepKind.NUMBER, {"en": "Legs?"}, minimum=2, maximum=12),
    ChecklistStep("fabric", StepKind.CHOICE, {"en": "Fabric"}, ("OK", "Marks")),
    ChecklistStep("note", StepKind.TEXT, {"en": "Note"}),
    ChecklistStep("after", StepKind.PHOTO, {"en": "Photo"}),
)


PART = PartRow(7, "CAP-35", "Capacitor", "pc", 1250, "CNY", "electrical", (), 0)


def _tech_visit(visit_id: int, status: VisitStatus, **kw) -> TechVisit:
    values = dict(answered=frozenset(), dependency_done=True, steps=STEPS) | kw
    return TechVisit(visit_id, values.get("kind", "delivery"), status.value, *SLOT, "Sofa", "Road 1", *SHOP, "Zhang", "139",
                     values["steps"], values["answered"], values["dependency_done"], values.get("lead"))


def _technician_views() -> list[TechnicianView]:
    visits = [_tech_visit(10 + n, status) for n, status in enumerate(VisitStatus)]
    extra = [
        _tech_visit(40, VisitStatus.ON_SITE, steps=()),
        _tech_visit(41, VisitStatus.IN_PROGRESS, answered=frozenset(s.key for s in STEPS)),
        _tech_visit(42, VisitStatus.ON_SITE, dependency_done=False),
        _tech_visit(43, VisitStatus.IN_PROGRESS, answered=frozenset(s.key for s in STEPS[:-1])),
        _tech_visit(44, VisitStatus.ACCEPTED, lead="Li"),
        _tech_visit(45, VisitStatus.IN_PROGRESS, kind="repair", answered=frozenset(s.key for s in STEPS)),  # asks fault and method
    ]
    return [
        TechnicianView(None, "", None, "", ()),
        TechnicianView(None, "", "technician", "", ()),
        TechnicianView(None, "", "dispatcher", "", ()),
        TechnicianView(3, "Wang", None, "", (*visits, *extra)),
        # visits that complete only with the customer's code (issue 13 part 6): waiting for it, and locked
        TechnicianView(3, "Wang", None, "", (*visits, *extra), codes={41: "pending", 45: "pending", 43: "code_locked"}),
        # the van, the catalogue and the fault trees (issue 14 parts 4-5): a repair completes, or waits for the customer's code
        PartsView(3, "Wang", None, "", (*visits, *extra), van=(VanItem(PART, 2),), catalogue=(PART,)),
        PartsView(3, "Wang", None, "", (*visits, *extra), codes={45: "pending"}, van=(VanItem(PART, 1),), catalogue=(PART,)),
    ]


def _dispatcher_views() -> list[DispatcherView]:
    contacts = VisitContacts(21, ((4, "Chen"),), "Zhang", "139", "Wang", "138")
    return [
        DispatcherView(None, None, None, None),
        DispatcherView(1, None, "group", None),
        DispatcherView(None, 2, "dispatcher", None),
        DispatcherView(1, 2, None, ExceptionInfo(31, "open", 21, "delivery", ((4, "Chen"),)), contacts),
        DispatcherView(1, 2, None, ExceptionInfo(31, "open", 21, "delivery", ()), VisitContacts(21, (), "Z", "1", "-", "-")),
        DispatcherView(1, 2, None, ExceptionInfo(31, "resolved", 21, "delivery", None)),
        # a job's and a rating's buttons (address, close, reopen, note; acknowledging a low rating)
        DispatcherView(1, 2, None, None, job=JobBrief(11, "open"), rating=RatingBrief(1, 21, None, None)),
    ]


VIEWS = {"customer": _customer_views, "technician": _technician_views, "dispatcher": _dispatcher_views}


def _visit_ids(view) -> list[int]:
    if isinstance(view, CustomerView):
        return [v.id for job in (*view.jobs, *((view.token_job,) if view.token_job else ())) for v in job.visits]
    if isinstance(view, TechnicianView):
        return [v.id for v in view.visits]
    return [21]


# --- representative data for each state that keeps some --------------------------------------------

ON_THE_JOB = (VisitStatus.ACCEPTED.value, VisitStatus.EN_ROUTE.value, VisitStatus.ON_SITE.value, VisitStatus.IN_PROGRESS.value)


def _data_ids(view) -> list[int]:
    """The visits a state's data may name: one a technician is working on (the others answer alike), and one gone."""
    if isinstance(view, TechnicianView):
        working = [v.id for v in view.visits if v.status in ON_THE_JOB]
        return [*working, MISSING]
    return [*_visit_ids(view)[:2], MISSING]


def _data_for(kind: type[FlowData] | None, view) -> list[dict]:
    """Stored rows a state may hold: this code's, rows from before versions, and damaged ones."""
    if kind is None:
        return [{}]
    ids = _data_ids(view)
    samples: list[FlowData] = []
    if kind is VisitData:
        samples = [VisitData(i) for i in ids]
    elif kind is CheckinAway:
        samples = [CheckinAway(i, *FAR) for i in ids]
    elif kind is ChecklistAt:
        samples = [ChecklistAt(i, step) for i in ids for step in range(len(STEPS) + 1)]
    elif kind is ProblemDraft:
        photo = c.PhotoRef("web", "F", "/m/f.jpg")
        reasons = (ExceptionReason.GOODS_DAMAGED, ExceptionReason.OTHER)  # a photo required, and not
        samples = [ProblemDraft(i, reason, photos) for i in ids for reason in reasons for photos in ((), (photo,))]
    elif kind is MoveData:
        samples = [MoveData(i, *SLOT) for i in ids]
    elif kind is RatedVisit:
        samples = [RatedVisit(i, low) for i in ids for low in (False, True)]
    elif kind is Awaiting:
        samples = [Awaiting(i, user, purpose) for i in ids for user in ("u1", "u2") for purpose in ("address", "close", "reopen", "note")]
    elif kind is relay.ThreadData:
        samples = [relay.ThreadData(None), relay.ThreadData(5)]
    elif kind is ItemDraft:
        samples = [ItemDraft(i, marks) for i in ids for marks in ((), (ItemMark.RECEIVED,), (ItemMark.RECEIVED, ItemMark.DAMAGED))]
    elif kind is RepairDraft:
        day = (SLOT[0] + timedelta(days=1)).date()
        samples = [RepairDraft(), RepairDraft(device=4, product="Split AC", category="aircon", description="leaks", photos=(("F", "/m/p.jpg"),),
                                              voices=(("V", "/m/v.ogg"),), days=(day,)), RepairDraft(kind="inspection", device=4)]
    elif kind is RecordDraft:
        samples = [RecordDraft(i, *picked) for i in ids for picked in ((), (0,), (0, 1), (0, 1, 0), (0, 1, 0, ((7, 1),)), (99, 0, 0))]
        samples += [RecordDraft(i, 0, 1, 0, ((7, 2),), True, "hummed") for i in ids]
    elif kind is relay.AnswerData:
        samples = [relay.AnswerData(5, user) for user in ("u1", "u2")]
    elif kind is PaymentDraft:  # fees (issue 14 part 6)
        samples = [PaymentDraft(i, method.value) for i in ids for method in PaymentMethod]
    elif kind is IncreaseDraft:  # a price increase being written (issue 14 part 6): as typed so far, with a photo, and full
        photo = c.PhotoRef("web", "F", "/m/f.jpg")
        samples = [IncreaseDraft(i, *typed) for i in ids for typed in ((), ("150",), ("150", "own wiring"), ("150", "own wiring", (photo,)),
                                                                     ("150", "own wiring", (photo,) * 5))]
    elif kind is ScanReport:  # someone else's QR code scanned (issue 14)
        samples = [ScanReport("tok"), ScanReport("")]
    elif kind is OwnerCheck:  # a scanning owner's number awaited (issue 14 part 2)
        samples = [OwnerCheck("tok"), OwnerCheck("")]
    elif kind is AdjustData:  # a frozen fee's adjustment typed in the group (issue 14 part 7)
        samples = [AdjustData(i, user) for i in ids for user in ("u1", "u2")]
    else:
        raise AssertionError(f"no samples for {kind.__name__}: add some")
    rows = [sample.to_json() for sample in samples]
    old = [{k: v for k, v in row.items() if k != "version"} for row in rows[:3]]
    return [*rows, *old, {}, {"version": 99}]


# --- representative inputs: every command, every button kind with every value that matters -------------


def _values(field_name: str, view) -> list:
    ids = _visit_ids(view) + [MISSING]
    return {
        "visit_id": ids,
        "exception_id": [31, MISSING],
        "technician_id": [4, MISSING],
        "rating_id": [1],
        "job_id": [11, MISSING],
        "day_start": [SLOT[0].replace(hour=16, minute=0, second=0, microsecond=0)],  # a local midnight in Shanghai
        "start": [SLOT[0]],
        "day": [SLOT[0].astimezone(TZ).date(), (SLOT[0] + timedelta(days=30)).date()],  # a day with times, and one without
        "page": [0, 1, 99],
        "end": [SLOT[1]],
        "score": [1, 5],
        "step": list(range(len(STEPS) + 1)),
        "choice": ["yes", "no", "0", "1", "7"],
        "reason": list(ExceptionReason),
        "return_reason": list(ReturnReason),
        "fault": [0, 5, 99],  # a repair code's index: in the list, and past its end
        "method": [0, 99],
        "paid_by": list(PaymentMethod),  # fees (issue 14 part 6)
        "stage": list(STAGES),
        "language": list(Language),
        "thread_id": [5, MISSING],
        "callback_id": [7, MISSING],  # a parked status callback (its step only asks for the resend)
        "index": [0, 1, 99],  # a delivered item's place in the delivery's list: in it, and past its end
        "mark": list(ItemMark),
        "marks": [(ItemMark.RECEIVED,), (ItemMark.RECEIVED, ItemMark.DAMAGED)],  # a check's marks: one item, and two
        "device_id": [4, MISSING],
        "level": ["normal", "urgent"],
        # parts and the repair's record (issue 14 parts 4-5)
        "part_id": [7, MISSING],
        "request_id": [3, MISSING],
        "quantity": [1, 20],
        "cause": [0, 99],
        "outcome": ["fixed", "missing_part", "more_work"],
    }[field_name]


def _actions(view) -> list[Action]:
    made = []
    for wire in actions.FORMATS:
        names = [f.name for f in fields(wire.kind)]
        for values in itertools.product(*(_values(name, view) for name in names)):
            made.append(wire.kind(*values))
    return made


def _events(spec: FlowSpec, view) -> list[Inbound]:
    bot = "customer" if spec.name == "customer" else "staff"
    chat_type = "group" if spec.name == "dispatcher" else "private"

    def ev(kind: InboundKind, text: str = "", **kw) -> Inbound:
        return Inbound(ChatRef("web", bot, "c1"), "1", kind, "u1", chat_type=chat_type, text=text, user_name="Ann", **kw)

    made = [ev(InboundKind.COMMAND, name) for name in (*spec.commands, "dance")]
    made += [ev(InboundKind.COMMAND, "start", payload="tok")]
    made += [ev(InboundKind.BUTTON, encode(action)) for action in _actions(view)]
    made += [ev(InboundKind.BUTTON, data) for data in ("nonsense:1", "acc:x", "sl:1:2")]
    made += [ev(InboundKind.TEXT, text) for text in ("", "hello", "4", "99", *CUSTOMER_MEANS, *FAULTS)]
    made += [ev(InboundKind.PHOTO, file_id="F", file_path="/m/p.jpg"), ev(InboundKind.PHOTO, file_id="F", file_error="not_image")]
    made += [ev(InboundKind.LOCATION, latitude=lat, longitude=lon, live=live) for (lat, lon) in (SHOP, FAR) for live in (False, True)]
    made += [ev(InboundKind.CONTACT, phone="139"), ev(InboundKind.UNSUPPORTED)]
    made += [ev(InboundKind.VOICE, file_id="V", file_path="/m/v.ogg"), ev(InboundKind.VOICE, file_id="V", file_error="not_audio")]
    return made


@pytest.mark.slow  # a sweep: about a million steps (every state x every stored shape x every input), 30 s
@pytest.mark.parametrize("flow", ALL_FLOWS, ids=lambda flow: flow.name)
def test_every_step_driven_from_every_state_lands_where_its_table_says_and_keeps_that_states_data(flow):
    spec = flow.spec
    led: set[tuple[int, str]] = set()  # (step, state it led to)
    for view in VIEWS[spec.name]():
        events = _events(spec, view)
        for name, state in spec.states.items():
            for stored, event in itertools.product(_data_for(state.data, view), events):
                step = spec.entry(name, event)
                # raises UndeclaredTransition when a step leads anywhere its entry does not name
                result = spec.step(StepInput(event, name, stored, view, NOW, "en", ServicePolicy()))
                if result.state is not None:
                    led.add((id(step), result.state))
                    target = spec.states[result.state]
                    if target.data is None:
                        assert result.data == {}, (name, event.text, result)
                    else:
                        assert target.data.from_json(result.data) is not None, (name, event.text, result)
                elif result.data is not None:
                    assert state.data is not None and state.data.from_json(result.data) is not None, (name, event.text, result)
    # and no entry names a state its step never leads to: the declarations are as narrow as the steps
    never = {(step.run.__name__, str(target)) for step in _all_steps(spec) for target in step.leads_to if (id(step), str(target)) not in led}
    assert never == set()


def _all_steps(spec: FlowSpec) -> list[Step]:
    return [*spec.anywhere().values(), *(step for state in spec.states.values() for step in state.steps().values())]


@pytest.mark.parametrize("flow", ALL_FLOWS, ids=lambda flow: flow.name)
def test_every_state_is_reachable_from_the_first_and_every_step_leads_to_a_state_of_its_flow(flow):
    spec = flow.spec
    assert spec.initial in spec.states
    for step in _all_steps(spec):
        assert set(step.leads_to) <= set(spec.states), f"{spec.name}: {step.run.__name__} leads to {step.leads_to}"
    reached, frontier = {str(spec.initial)}, [str(spec.initial)]
    anywhere = {str(target) for step in spec.anywhere().values() for target in step.leads_to}
    while frontier:
        state = spec.states[frontier.pop()]
        for target in {str(name) for name in state.leads_to} | anywhere:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == {str(name) for name in spec.states}


def test_a_step_that_leads_off_its_declared_graph_is_stopped():
    def wander(inp: StepInput):
        return reply(Outbound(t("x")), state="b")

    spec = FlowSpec("toy", "a", {"a": State(hint="a", text=Step(wander, leads_to=("a",))), "b": State(hint="b")})
    event = Inbound(ChatRef("web", "customer", "1"), "1", InboundKind.TEXT, "1", text="hi")
    with pytest.raises(UndeclaredTransition, match="wander led 'a' to 'b'"):
        spec.step(StepInput(event, "a", {}, None, NOW, "en", ServicePolicy()))


def test_every_action_of_every_flow_is_one_the_codec_writes():
    handled = {kind for flow in ALL_FLOWS for kind in (*flow.spec.buttons, *(k for s in flow.spec.states.values() for k in s.buttons))}
    assert handled == {wire.kind for wire in actions.FORMATS}
    for kind in handled:
        assert decode(actions.longest_data(kind)) is not None


# --- the diagrams ---------------------------------------------------------------------------------


def test_the_committed_flow_diagrams_are_current():
    assert diagrams.stale(ROOT / "docs" / "flows") == [], "run `fieldchat flows` and commit docs/flows/"


def test_fieldchat_flows_writes_the_diagrams_and_check_finds_a_stale_one(tmp_path, capsys):
    out = tmp_path / "flows"
    assert fieldchat(["flows", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["customer.md", "dispatcher.md", "technician.md"]
    assert fieldchat(["flows", "--out", str(out), "--check"]) == 0
    page = (out / "technician.md").read_text(encoding="utf-8")
    assert "```mermaid\nstateDiagram-v2\n    [*] --> new\n" in page
    assert "    checklist --> idle: text, photo, Answer\n" in page
    assert "| any state | OnMyWay | technicians | await_location |" in page
    (out / "customer.md").write_text("old", encoding="utf-8")
    assert fieldchat(["flows", "--out", str(out), "--check"]) == 1
    assert "customer.md is not current" in capsys.readouterr().err
