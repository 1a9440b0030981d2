"""Button data: one codec reads and writes every action; forged and out-of-range data gets a stale-button answer, never a failure."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import actions as a
from domain.completion_codes import ItemMark
from domain.field_work import ReturnReason
from domain.fees import PaymentMethod
from domain.model import MAX_ID, ExceptionReason, Language

BIG = str(2**63)
HUGE = str(2**70)
TELEGRAM_CALLBACK_DATA_BYTES = 64  # the smallest action payload of the channels we have

# what buttons sitting in people's chats today carry, from the flows and from the notifications
OLD_BUTTONS = {
    "bk:12": a.Book(12),
    "sig:12": a.AskSignature(12),
    "sgx:12": a.CannotSign(12),
    "sl:12:1795420800:1795428000": a.PickSlot(12, datetime(2026, 11, 23, 8, tzinfo=timezone.utc), datetime(2026, 11, 23, 10, tzinfo=timezone.utc)),
    "rs:12": a.Reschedule(12),
    "cx:12": a.CancelVisit(12),
    "cxy:12": a.ConfirmCancel(12),
    "cxn": a.KeepVisit(),
    "ok:12": a.ConfirmAppointment(12),
    "cf:12": a.ConfirmDone(12),
    "rq:12": a.AskToRate(12),
    "rt:12:5": a.Rate(12, 5),
    "skip": a.SkipComment(),
    "bd:12:739948": a.PickDay(12, date(2026, 11, 28)),
    "bm:12:1": a.MoreDays(12, 1),
    "mb:12:1795575600:1795582800": a.MoveBoth(12, datetime(2026, 11, 25, 3, tzinfo=timezone.utc), datetime(2026, 11, 25, 5, tzinfo=timezone.utc)),
    "mbd:12:1795575600:1795582800:739946": a.MoveBothDay(
        12, datetime(2026, 11, 25, 3, tzinfo=timezone.utc), datetime(2026, 11, 25, 5, tzinfo=timezone.utc), date(2026, 11, 26)
    ),
    "kb:12": a.KeepBoth(12),
    "acc:12": a.Accept(12),
    "dec:12": a.Decline(12),
    "go:12": a.OnMyWay(12),
    "arr:12": a.Arrived(12),
    "st:12": a.StartChecklist(12),
    "ck:12": a.ContinueChecklist(12),
    "ans:12:0:yes": a.Answer(12, 0, "yes"),
    "ans:12:2:1": a.Answer(12, 2, "1"),
    "done:12": a.Complete(12),
    "ct:12": a.Contacted(12),
    "rp:12": a.ReportProblem(12),
    "rr:12:goods_damaged": a.PickReason(12, ExceptionReason.GOODS_DAMAGED),
    "rskip": a.SkipNote(),
    "rsend": a.SendReport(),
    "vo:12": a.VisitOptions(12),
    "hb:12": a.HandBack(12),
    "hlp:12": a.AskHelp(12),
    "rv:12": a.NeedReturn(12),
    "jn:12": a.JoinCrew(12),
    "rvr:12:missing_part": a.PickReturnReason(12, ReturnReason.MISSING_PART),
    "flt:12:3": a.PickFault(12, 3),
    "mth:12:3:0": a.PickMethod(12, 3, 0),
    "xa:7": a.Acknowledge(7),
    "xr:7": a.Reassign(7),
    "xt:7:3": a.ReassignTo(7, 3),
    "xc:7": a.CancelReported(7),
    "xcy:7": a.ConfirmCancelReported(7),
    "xcn": a.KeepReported(),
    "ra:9": a.AcknowledgeRating(9),
    "as:12:3": a.Assign(12, 3),
    "sr:12": a.ReassignLate(12),
    "sx:12:accept": a.ExtendDeadline(12, "accept"),
    "sc:12": a.CallDetails(12),
    "dan:12": a.AssignAnyone(12),
    "dab:12:3": a.AssignBusy(12, 3),
    "dao:12:3": a.ConfirmOverride(12, 3),
    "dmv:12": a.MoveVisitMenu(12),
    "dmd:12:1764000000": a.MoveVisitDay(12, datetime(2025, 11, 24, 16, 0, tzinfo=timezone.utc)),
    "dmt:12:1764036000:1764043200": a.MoveVisitTo(12, datetime(2025, 11, 25, 2, 0, tzinfo=timezone.utc), datetime(2025, 11, 25, 4, 0, tzinfo=timezone.utc)),
    "dcx:12": a.CancelFromAlert(12),
    "dcy:12": a.ConfirmCancelFromAlert(12),
    "dfa:5": a.FixAddress(5),
    "dcl:5": a.CloseJobAsk(5),
    "dro:5": a.ReopenJobAsk(5),
    "dno:5": a.NoteAsk(5),
    "dnm": a.NeverMind(),
    "cbr:7": a.ResendParkedCallback(7),
    "th:9": a.AnswerInThread(9),
    "thw:9": a.WriteInThread(9),
    "thx": a.DoneTalking(),
    "lang:zh": a.ChooseLanguage(Language.ZH),
    "ccn:12": a.ResendCode(12),
    "itm:12:3:damaged": a.TickItem(12, 3, a.ItemMark.DAMAGED),
    "itms:12": a.SendItemCheck(12),
    "itmk:12:rmd": a.SendItemMarks(12, (ItemMark.RECEIVED, ItemMark.MISSING, ItemMark.DAMAGED)),
    "itmr:12": a.RestartItemCheck(12),
    "ccf:12": a.CompleteForThem(12),
    "ccr:12": a.NewCodeFromAlert(12),
    # devices and repair requests (issue 14)
    "dv:4": a.DeviceMenu(4),
    "dvf:4": a.ReportFault(4),
    "dvh:4": a.DeviceHistory(4),
    "dvm:4": a.BookMaintenance(4),
    "dvo": a.OtherProduct(),
    "rpm": a.RepairMediaDone(),
    "rpu:urgent": a.RepairUrgency("urgent"),
    "rpy:739944": a.RepairDay(date(2026, 11, 24)),
    "rps": a.RepairSend(),
    # parts, van stock and the repair's completion record (issue 14 parts 4-5)
    "stk": a.VanStock(),
    "prm:1": a.PartRequestMenu(1),
    "prp:7": a.PartRequestPick(7),
    "prq:7:5": a.PartRequestQty(7, 5),
    "upm:12": a.UsePartMenu(12),
    "upp:12:7": a.UsePartPick(12, 7),
    "upq:12:7:3": a.UsePartQty(12, 7, 3),
    "upb:12:7:1": a.PutBackPartPress(12, 7, 1),
    "pra:3": a.ApprovePartRequest(3),
    "prd:3": a.DeclinePartRequest(3),
    "rcc:12:0": a.RepairCause(12, 0),
    "rcf:12:4": a.RepairFault(12, 4),
    "rcm:12:1": a.RepairMethod(12, 1),
    "rcp:12:7": a.RepairPart(12, 7),
    "rcx:12": a.RepairPartsClear(12),
    "rcd:12": a.RepairPartsDone(12),
    "rco:12:missing_part": a.RepairOutcomePick(12, "missing_part"),
    "rcb:12": a.RepairBack(12),
    "rcs:12": a.RepairShow(12),
    # fees (issue 14 part 6): the technician records a payment
    "pay:12": a.RecordPaymentAsk(12),
    "paym:12:online": a.PickPaymentMethod(12, PaymentMethod.ONLINE),
    # the device's history for the repairer, and someone else's QR code scanned (issue 14)
    "dhv:12": a.VisitDeviceHistory(12),
    "dhp:12": a.VisitDevicePhotos(12),
    "dhb:12": a.BackToVisit(12),
    "dhx": a.ScanReportCancel(),
    # a scanning owner proves who they are with the phone number on file (issue 14 part 2)
    "dvy": a.OwnerCheckStart(),
    "dvn": a.OwnerCheckCancel(),
    # price increases (issue 14 part 6): the technician asks, dispatchers and managers decide, the customer answers
    "pc:12": a.PriceIncreaseAsk(12),
    "pcs": a.PriceIncreaseSend(),
    "pcx": a.PriceIncreaseCancel(),
    "pca:12": a.ApprovePriceIncrease(12),
    "pcd:12": a.DeclinePriceIncrease(12),
    "pcma:12": a.ManagerApprovePriceIncrease(12),
    "pcmd:12": a.ManagerDeclinePriceIncrease(12),
    "pcy:12": a.AgreePriceIncrease(12),
    "pcn:12": a.RefusePriceIncrease(12),
    "stl:12": a.SettleRelease(12),  # settlement (issue 14 part 7)
    "pcpy:12": a.PhoneAgreedPriceIncrease(12),  # a price increase answered by phone (issue 14 gaps)
    "pcpn:12": a.PhoneRefusedPriceIncrease(12),
    "sta:12": a.SettleAdjust(12),
}


@pytest.mark.parametrize(("data", "action"), OLD_BUTTONS.items(), ids=list(OLD_BUTTONS))
def test_buttons_already_in_chats_read_as_their_actions_and_are_written_the_same(data, action):
    assert a.decode(data) == action
    assert a.encode(action) == data


def test_every_kind_of_action_has_a_button_that_was_checked_above():
    assert {type(action) for action in OLD_BUTTONS.values()} == set(a.BY_KIND)


@pytest.mark.parametrize(
    "data",
    [
        "", ":", "acc", "acc:", "acc:0", "acc:-1", "acc:+5", "acc: 5", "acc:1e9", "acc:0x10", "acc:١٢", f"acc:{MAX_ID + 1}", f"acc:{BIG}",
        "acc:12:13", "cxn:", "skip:1", "sl:12:1:", f"sl:12:{2**33 + 1}:1", "sl:12:-1:5", "rt:12:0", "rt:12:6", "ans:12:100:yes",
        "ans:12:0:maybe", "ans:12:0:", "rr:12:bored", "rr:12:GOODS_DAMAGED", "sx:12:lunch", "lang:fr", "lang:", "ACC:12", "nonsense:1",
    ],
)
def test_malformed_or_out_of_range_data_reads_as_no_action(data):
    assert a.decode(data) is None


@given(st.text(max_size=80))
def test_any_text_at_all_reads_as_an_action_or_as_none_without_failing(data):
    action = a.decode(data)
    # whatever is read is an action a button could carry (encode refuses anything else)
    assert action is None or a.decode(a.encode(action)) == action


@pytest.mark.parametrize("kind", list(a.BY_KIND), ids=lambda kind: kind.__name__)
def test_every_kind_of_action_fits_the_smallest_channel_payload_at_its_longest(kind):
    longest = a.longest_data(kind)
    assert a.decode(longest) is not None
    assert len(longest.encode()) <= TELEGRAM_CALLBACK_DATA_BYTES


@pytest.mark.parametrize(
    "action",
    [a.Accept(0), a.Accept(MAX_ID + 1), a.Rate(1, 6), a.Answer(1, 0, "maybe"), a.ExtendDeadline(1, "a:b"),
     a.PickSlot(1, datetime(2026, 1, 1, 8, 0, 0, 500, tzinfo=timezone.utc), datetime(2026, 1, 1, 10, tzinfo=timezone.utc))],
)
def test_an_action_a_button_cannot_carry_is_refused_when_written(action):
    with pytest.raises(ValueError, match="cannot be carried by a button"):
        a.encode(action)
