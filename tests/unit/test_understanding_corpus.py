"""Accuracy of `understand()` on the corpus in tests/data/understanding (utterances written as a shop's customers and
technicians type, before the parser), per language: intent over all, the fields over those whose intent carries them.
The floors only catch regressions; the figures are printed (`pytest -s`) and reported in the README."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from conversations.understanding import FIELD_INTENTS, FIELDS, Intent, PartOfDay, score

CORPUS = Path(__file__).parent.parent / "data" / "understanding"
CUSTOMER_INTENTS = {"reschedule", "cancel", "eta", "complaint", "done", "human", "change_contact", "change_address", "unknown"}
TECHNICIAN_INTENTS = {"late", "on_my_way", "arrived", "problem", "done", "unknown"}


def load(language: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / f"{language}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_corpus_is_large_varied_and_well_formed(language):
    cases = load(language)
    assert len(cases) >= 300
    assert len({(c["text"], c["role"], c["now"]) for c in cases}) == len(cases), "an utterance twice"
    intents = Counter(c["intent"] for c in cases)
    assert 0.10 <= intents["unknown"] / len(cases) <= 0.20, "about 15% chit-chat and questions nobody can act on"
    for case in cases:
        assert set(case) == {"text", "role", "now", *FIELDS, "intent"}
        assert datetime.fromisoformat(case["now"]).tzinfo is not None
        assert case["intent"] in (CUSTOMER_INTENTS if case["role"] == "customer" else TECHNICIAN_INTENTS)
        if Intent(case["intent"]) not in FIELD_INTENTS:
            assert all(case[name] is None for name in FIELDS), case
        assert case["part_of_day"] is None or PartOfDay(case["part_of_day"])
        for name in ("after", "before"):
            assert case[name] is None or re.fullmatch(r"\d\d:\d\d", case[name])
        assert case["date"] is None or datetime.fromisoformat(case["date"])
    # every intent of the issue is there, for the role that has it
    assert {c["intent"] for c in cases if c["role"] == "customer"} == CUSTOMER_INTENTS
    assert {c["intent"] for c in cases if c["role"] == "technician"} == TECHNICIAN_INTENTS


@pytest.mark.parametrize("language", ["zh", "en"])
def test_accuracy_per_language(language):
    figures = score(load(language), language)
    print(f"\nunderstanding {json.dumps(figures)}")
    assert figures["utterances"] >= 300
    assert figures["intent_accuracy"] >= 0.90
    assert figures["date_accuracy"] >= 0.85
