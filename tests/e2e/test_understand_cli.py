"""`fieldchat understand` as a process: one JSON line for a message, the shop's time zone for relative dates, one clear
line and exit 2 for a bad --now, and the accuracy figures for a corpus file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FIELDCHAT = str(Path(sys.executable).parent / "fieldchat")
CORPUS = Path(__file__).parent.parent / "data" / "understanding"


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCHAT_")}
    return subprocess.run([FIELDCHAT, "understand", *args], env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_a_customer_message_prints_one_json_object_on_one_line():
    result = run("--now", "2026-11-27T10:00:00+08:00", "后天上午十点以后")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert json.loads(result.stdout) == {
        "intent": "reschedule", "date": "2026-11-29", "part_of_day": "morning", "after": "10:00", "before": None, "minutes": None,
    }


def test_a_technician_message_with_minutes():
    result = run("--role", "technician", "--lang", "zh", "堵车了，晚到20分钟")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["intent"] == "late" and json.loads(result.stdout)["minutes"] == 20


def test_now_is_converted_to_the_shops_time_zone():
    # 17:00 UTC on the 27th is already the 28th in Shanghai (the default zone), so "tomorrow" is the 29th
    result = run("--now", "2026-11-27T17:00:00Z", "tomorrow afternoon")
    assert json.loads(result.stdout)["date"] == "2026-11-29"
    # in New York it is still the 27th at noon
    result = run("--now", "2026-11-27T17:00:00Z", "tomorrow afternoon", FIELDCHAT_TIMEZONE="America/New_York")
    assert json.loads(result.stdout)["date"] == "2026-11-28"
    # a time without an offset is the shop's local time
    result = run("--now", "2026-11-30T23:30", "明天")
    assert json.loads(result.stdout)["date"] == "2026-12-01"


def test_now_defaults_to_the_clock():
    result = run("tomorrow")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["date"] is not None


def test_a_bad_now_is_one_line_and_exit_2():
    result = run("--now", "next tuesday-ish", "明天")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--now" in result.stderr and "Traceback" not in result.stderr


def test_the_accuracy_on_corpus_files():
    result = run("--corpus", str(CORPUS / "zh.jsonl"), "--corpus", str(CORPUS / "en.jsonl"))
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines()]
    print("\n" + result.stdout)
    assert [f["language"] for f in figures] == ["zh", "en"]
    assert all(f["utterances"] >= 300 and f["intent_accuracy"] >= 0.9 and f["date_accuracy"] >= 0.85 for f in figures)


def test_a_corpus_line_without_its_labels_is_one_line_and_exit_2(tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"text": "明天下午再来"}\n', encoding="utf-8")
    result = run("--corpus", str(corpus))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
