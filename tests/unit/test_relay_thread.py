"""Relay threads and evidence, pure parts: who a thread goes to and who may answer, phones masked in free text, the
relay steps, photo signatures, and albums in the channel capabilities and the renderer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bots.channels import CAPABILITIES, ROBOT, TELEGRAM, TELEGRAM_CAPABILITIES, WEB, Capabilities
from bots.render import fit
from conversations.flow import StepInput
from conversations.flows import relay
from domain import commands as c
from domain.masking import mask_phones_in
from domain.model import Visit, VisitStatus
from domain.policy import ServicePolicy
from domain.relay import Audience, Author, RelayThread, Topic, audience_for, clip, may_answer, still_addressed, visit_in_question
from services.actions import AnswerInThread, DoneTalking, WriteInThread, decode, encode
from services.evidence import photo_signature, signature_valid
from services.messages import AlbumPhoto, ChatRef, Inbound, InboundKind, Rendered
from scheduler.relay import digestible

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)


def _visit(visit_id: int, status: VisitStatus, technician_id: int | None = 7, hours: int = 2) -> Visit:
    visit = Visit(job_id=1, kind="delivery", sequence=visit_id, duration_minutes=60, status=status.value, technician_id=technician_id,
                  slot_start=NOW + timedelta(hours=hours), slot_end=NOW + timedelta(hours=hours + 2))
    visit.id = visit_id
    return visit


def _thread(audience: Audience, technician_id: int | None = None) -> RelayThread:
    return RelayThread("customer", 1, "web", "customer", "c", audience.value, "unknown", technician_id=technician_id)


# --- masking ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "shown"), [
    ("call 13912345678 please", "call 139****5678 please"),
    ("我的新号码是 139-1234-5678", "我的新号码是 139****5678"),
    ("+86 139 1234 5678", "861****5678"),
    ("come on 2026-11-28 at 14:00, gate 1234", "come on 2026-11-28 at 14:00, gate 1234"),  # dates and short numbers stay
])
def test_phone_numbers_in_free_text_are_masked_and_nothing_else(text: str, shown: str):
    assert mask_phones_in(text) == shown


def test_a_long_text_is_cut_not_refused():
    assert len(clip("x" * 5000)) == 2000 and clip("  hi  ") == "hi"


# --- who gets a thread, who answers --------------------------------------------------------------------


def test_a_question_goes_to_the_technician_of_the_visit_under_way_else_to_the_dispatchers():
    accepted, en_route = _visit(1, VisitStatus.ACCEPTED, hours=1), _visit(2, VisitStatus.EN_ROUTE, hours=5)
    assert visit_in_question([accepted, en_route]) is en_route  # under way beats merely accepted
    assert visit_in_question([accepted, _visit(3, VisitStatus.CREATED, None)]) is accepted
    assert visit_in_question([_visit(4, VisitStatus.BOOKED, None), _visit(5, VisitStatus.CONFIRMED)]) is None
    assert audience_for(Topic.UNKNOWN, en_route) is Audience.TECHNICIAN
    assert audience_for(Topic.UNKNOWN, None) is Audience.DISPATCHERS
    # asking for a person, or complaining (maybe about the technician), goes to the shop
    assert audience_for(Topic.HUMAN, en_route) is Audience.DISPATCHERS
    assert audience_for(Topic.COMPLAINT, en_route) is Audience.DISPATCHERS


def test_only_the_threads_technician_or_a_registered_dispatcher_may_answer():
    to_technician = _thread(Audience.TECHNICIAN, technician_id=7)
    assert may_answer(to_technician, Author.TECHNICIAN, 7)
    assert not may_answer(to_technician, Author.TECHNICIAN, 8)
    assert may_answer(to_technician, Author.DISPATCHER, 3)
    assert not may_answer(to_technician, Author.DISPATCHER, None)
    assert not may_answer(_thread(Audience.DISPATCHERS), Author.TECHNICIAN, 7)
    assert not may_answer(to_technician, Author.CUSTOMER, 1)


# --- the steps ----------------------------------------------------------------------------------------


def _input(kind: InboundKind, state: str, data: object = None, user: str = "u1", text: str = "", **fields: object) -> StepInput:
    event = Inbound(ChatRef("web", "staff", "g"), "1", kind, user, chat_type="group", text=text, **fields)  # type: ignore[arg-type]
    view = type("View", (), {"dispatcher_id": 3, "customer_id": 1, "technician_id": 7})()
    return StepInput(event, state, data, view, NOW, "en", ServicePolicy())


def test_the_first_text_to_people_opens_the_writers_relay_state_with_a_done_button():
    result = relay.to_people(_input(InboundKind.TEXT, "idle", text="hello"), relay.Origin.CUSTOMER, 1, Topic.HUMAN, "hello")
    assert result.state == relay.RELAY
    (command,) = result.commands
    assert isinstance(command, c.RelayToPeople) and (command.topic, command.text, command.thread_id) == ("human", "hello", None)
    assert result.replies[0].buttons[0][0].data == encode(DoneTalking())


def test_in_a_group_only_the_dispatcher_who_pressed_reply_gives_the_answer():
    state = relay.answer_state(Author.DISPATCHER, lambda inp: inp.view.dispatcher_id, "idle")
    assert state.text is not None
    data = relay.AnswerData(thread=5, user="dora")
    assert state.text.run(_input(InboundKind.TEXT, relay.ANSWER, data, user="bystander", text="lunch?")).commands == ()
    answered = state.text.run(_input(InboundKind.TEXT, relay.ANSWER, data, user="dora", text="On our way"))
    assert answered.commands == (c.AnswerThread(5, "dispatcher", 3, "On our way", None),) and answered.state == "idle"


def test_a_photo_that_was_not_kept_is_said_so_and_nothing_is_relayed():
    state = relay.writer_state(relay.Origin.CUSTOMER, lambda inp: 1, "idle")
    assert state.photo is not None and state.wants_photo
    refused = state.photo.run(_input(InboundKind.PHOTO, relay.RELAY, relay.ThreadData(), file_id="f", file_error="not_image"))
    assert refused.commands == () and refused.replies[0].text["key"] == "photo.not_image"
    kept = state.photo.run(_input(InboundKind.PHOTO, relay.RELAY, relay.ThreadData(4), file_id="f", file_path="/m/p.jpg"))
    (command,) = kept.commands
    assert isinstance(command, c.RelayToPeople) and command.photo == c.PhotoRef("web", "f", "/m/p.jpg") and command.thread_id == 4


def test_relay_buttons_round_trip_and_fit_every_channel():
    for action in (AnswerInThread(2**31 - 1), WriteInThread(1), DoneTalking()):
        data = encode(action)
        assert decode(data) == action and len(data.encode()) <= 64


# --- photo links ----------------------------------------------------------------------------------------


def test_a_photo_signature_opens_one_photo_until_it_expires():
    key, expires = b"k" * 32, int((NOW + timedelta(hours=1)).timestamp())
    signature = photo_signature(key, 5, expires)
    assert signature_valid(key, 5, expires, signature, NOW)
    assert not signature_valid(key, 6, expires, signature, NOW)  # another photo
    assert not signature_valid(key, 5, expires + 1, signature, NOW)  # a longer life
    assert not signature_valid(b"x" * 32, 5, expires, signature, NOW)  # another installation
    assert not signature_valid(key, 5, expires, signature, NOW + timedelta(hours=2))  # expired


# --- albums in the channel port ---------------------------------------------------------------------------


def test_telegram_has_albums_of_ten_robots_show_no_photos_and_albums_need_two():
    assert TELEGRAM_CAPABILITIES.supports_albums and TELEGRAM_CAPABILITIES.max_album == 10
    assert not CAPABILITIES[WEB].supports_albums and not CAPABILITIES[ROBOT].shows_photos
    assert CAPABILITIES[TELEGRAM].can_force_reply and not CAPABILITIES[ROBOT].can_force_reply
    with pytest.raises(ValueError, match="at least two"):
        Capabilities(max_buttons=1, max_buttons_per_row=1, max_label_chars=1, max_action_bytes=None, can_edit=False,
                     can_request_location=False, can_request_contact=False, has_groups=False, text_limit=10,
                     text_measure=TELEGRAM_CAPABILITIES.text_measure, caption_limit=10, max_album=1)


def test_the_renderer_keeps_an_album_and_cuts_its_text_to_a_caption():
    album = (AlbumPhoto(1, "/a.jpg"), AlbumPhoto(2, "/b.jpg"))
    fitted = fit(Rendered("x" * 3000, album=album, request="reply"), TELEGRAM_CAPABILITIES)
    assert fitted.album == album and len(fitted.text) == TELEGRAM_CAPABILITIES.caption_limit
    assert fitted.request == "reply"
    assert fit(Rendered("answer", request="reply"), CAPABILITIES[ROBOT]).request is None


def test_an_album_is_never_merged_into_an_alert_digest():
    row = {"platform": TELEGRAM, "chat_id": "-5001", "payload": {"alert": True, "album": [{"id": 1, "path": "/a.jpg"}]}}
    assert not digestible(row)
    assert digestible({**row, "payload": {"alert": True}})


def test_a_thread_to_a_technician_is_readdressed_once_they_no_longer_have_the_visit():
    thread = _thread(Audience.TECHNICIAN, technician_id=7)
    assert still_addressed(thread, _visit(1, VisitStatus.EN_ROUTE, technician_id=7))
    assert not still_addressed(thread, _visit(1, VisitStatus.ACCEPTED, technician_id=8))  # reassigned
    assert not still_addressed(thread, _visit(1, VisitStatus.CONFIRMED, technician_id=7))  # over
    assert not still_addressed(thread, None)
    assert still_addressed(_thread(Audience.DISPATCHERS), None)
