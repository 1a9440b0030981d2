"""The pure rules of status callbacks: the signature a receiver checks, the body's exact bytes, and which events are milestones."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from domain import callbacks as cb
from domain import events as ev
from services import callbacks as service

SECRET = "whsec-0123456789abcdef"
NOW = 1_800_000_000
BODY = {"id": "evt_1", "type": "visit.completed", "occurred_at": "2026-11-23T10:00:00+00:00",
        "order": {"source": "erp", "external_ref": "DN-7", "job_id": 3, "status": "open"}, "visit": None,
        "data": {"photos": [{"id": 5, "purpose": "checklist", "url": "/api/v1/photos/5?expires=1&sig=ab"}], "note": "门口签收"}}


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_as_the_readme_shows():
    body = cb.encode_body(BODY, None)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert cb.signature(SECRET, NOW, body) == f"sha256={expected}"
    assert cb.verify(SECRET, str(NOW), f"sha256={expected}", body, NOW + 10)


def test_a_flipped_byte_anywhere_fails_verification():
    body = cb.encode_body(BODY, None)
    signed = cb.signature(SECRET, NOW, body)
    for index in (0, len(body) // 2, len(body) - 1):
        flipped = bytearray(body)
        flipped[index] ^= 0x01
        assert not cb.verify(SECRET, str(NOW), signed, bytes(flipped), NOW)
    wrong_signature = signed[:-1] + ("0" if signed[-1] != "0" else "1")
    assert not cb.verify(SECRET, str(NOW), wrong_signature, body, NOW)
    assert not cb.verify(SECRET, str(NOW + 1), signed, body, NOW)  # the timestamp is signed too
    assert not cb.verify("another-secret-value", str(NOW), signed, body, NOW)


def test_json_serialised_again_differs_so_a_receiver_verifies_the_raw_bytes():
    body = cb.encode_body(BODY, None)
    signed = cb.signature(SECRET, NOW, body)
    again = json.dumps(json.loads(body), indent=2).encode()  # what a framework's parsed-and-dumped body would be
    assert json.loads(again) == json.loads(body) and not cb.verify(SECRET, str(NOW), signed, again, NOW)


@pytest.mark.parametrize(("timestamp", "signature"), [(None, "sha256=00"), (str(NOW), None), ("", ""), ("12ab", "sha256=00"),
                                                      ("-5", "sha256=00"), ("9" * 40, "sha256=00")])
def test_a_missing_or_malformed_header_fails(timestamp, signature):
    body = cb.encode_body(BODY, None)
    assert not cb.verify(SECRET, timestamp, signature, body, NOW)


def test_an_old_or_future_timestamp_is_refused_beyond_the_tolerance():
    body = cb.encode_body(BODY, None)
    for skew, accepted in ((-cb.TOLERANCE_SECONDS, True), (-cb.TOLERANCE_SECONDS - 1, False), (cb.TOLERANCE_SECONDS + 1, False)):
        sent_at = NOW + skew
        assert cb.verify(SECRET, str(sent_at), cb.signature(SECRET, sent_at, body), body, NOW) is accepted


def test_the_body_is_compact_sorted_utf8_and_photo_links_become_absolute_only_with_a_public_address():
    body = cb.encode_body(BODY, None)
    assert body == json.dumps(BODY, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    assert "门口签收".encode() in body
    public = json.loads(cb.encode_body(BODY, "https://ops.example.com/"))
    assert public["data"]["photos"][0]["url"] == "https://ops.example.com/api/v1/photos/5?expires=1&sig=ab"
    assert BODY["data"]["photos"][0]["url"].startswith("/")  # the stored body is left as it was


def test_milestones_name_existing_events_and_the_bill_is_one_of_them():
    subscribed = {kind.__name__ for kind in service.milestone_events()}
    assert subscribed == set(cb.MILESTONES)
    assert "BillIssued" in ev.EVENT_TYPES and cb.MILESTONES["BillIssued"] == "job.billed"
    assert len(set(cb.MILESTONES.values())) == len(cb.MILESTONES)  # one milestone per event: a receiver can switch on it
