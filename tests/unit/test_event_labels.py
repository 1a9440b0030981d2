"""Every event a job's timeline can show reads as words on the job page (walk report S-5): each domain event has its
``jobs.event.*`` key in English and Chinese, so none falls back to its class name."""

from __future__ import annotations

from conversations.i18n import catalog
from domain import events as ev
from webhooks.jobs_pages import event_label


def every_event() -> set[str]:
    found: set[str] = set()
    pending = list(ev.Event.__subclasses__())
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending += cls.__subclasses__()
    return found


def test_every_domain_event_has_a_timeline_label_in_english_and_chinese():
    names = every_event()
    assert len(names) > 100 and set(ev.EVENT_TYPES) <= names
    for language in ("en", "zh"):
        missing = sorted(name for name in names if f"jobs.event.{name}" not in catalog(language))
        assert not missing, f"{language} lacks a timeline label for {missing}"


def test_the_label_is_the_catalogs_and_an_unknown_event_shows_its_name():
    assert event_label("SettlementFrozen", "en") == "Technician's fee frozen"
    assert event_label("PriceIncreaseRequested", "zh") == "师傅申请加价"
    assert event_label("SomethingNewer", "en") == "SomethingNewer"
