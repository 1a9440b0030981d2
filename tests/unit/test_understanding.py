"""What free text means, case by case: every example of issue 10, relative dates across week, month and year ends, parts of
day, times, Chinese numerals; and that no text whatever makes the parser fail."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.understanding import FIELD_INTENTS, Intent, PartOfDay, Understood, detect_language, understand

SHANGHAI = ZoneInfo("Asia/Shanghai")
FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)  # Friday 27 Nov 2026


def customer(text: str, now: datetime = FRIDAY, language: str | None = None) -> Understood:
    return understand(text, "customer", now, language)


def technician(text: str, now: datetime = FRIDAY) -> Understood:
    return understand(text, "technician", now)


def on(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=SHANGHAI)


# -------------------------------------------------------------- the examples (the placeholder understood none)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("明天下午再来", Understood(Intent.RESCHEDULE, date(2026, 11, 28), PartOfDay.AFTERNOON)),
        ("后天上午十点以后", Understood(Intent.RESCHEDULE, date(2026, 11, 29), PartOfDay.MORNING, after=time(10))),
        # a weekday name is the next such day after today: said on a Friday, "Friday" is a week later
        ("can you come Friday instead?", Understood(Intent.RESCHEDULE, date(2026, 12, 4))),
        ("next Monday morning", Understood(Intent.RESCHEDULE, date(2026, 11, 30), PartOfDay.MORNING)),
        ("周五下午两点到四点之间", Understood(Intent.RESCHEDULE, date(2026, 12, 4), PartOfDay.AFTERNOON, time(14), time(16))),
        ("after 3pm tomorrow", Understood(Intent.RESCHEDULE, date(2026, 11, 28), after=time(15))),
    ],
)
def test_a_customer_asking_for_another_time_is_understood_with_the_day_and_time(text, expected):
    assert customer(text) == expected


@pytest.mark.parametrize(
    "text, intent",
    [
        ("师傅几点到", Intent.ETA),
        ("the driver is late, where is he?", Intent.ETA),
        ("when will you arrive", Intent.ETA),
        ("不要了，取消吧", Intent.CANCEL),
        ("please cancel the installation", Intent.CANCEL),
        ("沙发送来有划痕，我要投诉", Intent.COMPLAINT),
        ("the installer was very rude", Intent.COMPLAINT),
        ("空调装好了不制冷", Intent.COMPLAINT),  # a complaint beats the "done" it contains
        ("装好了", Intent.DONE),
        ("it's done", Intent.DONE),
        ("找人工", Intent.HUMAN),
        ("talk to a person", Intent.HUMAN),
        ("我换号码了，新号码13912345678", Intent.CHANGE_CONTACT),
        ("my new number is 139 1234 5678", Intent.CHANGE_CONTACT),
        ("地址写错了，是浦东新区张杨路500号", Intent.CHANGE_ADDRESS),
        ("we moved, new address is 88 Caoxi North Rd", Intent.CHANGE_ADDRESS),
        ("你好", Intent.UNKNOWN),
        ("how do I get an invoice", Intent.UNKNOWN),
    ],
)
def test_what_a_customer_types_has_an_intent(text, intent):
    assert customer(text).intent is intent


@pytest.mark.parametrize(
    "text, expected",
    [
        ("堵车了，晚到20分钟", Understood(Intent.LATE, minutes=20)),
        ("running 15 min late", Understood(Intent.LATE, minutes=15)),
        ("晚到半小时", Understood(Intent.LATE, minutes=30)),
        ("二十分钟后到", Understood(Intent.LATE, minutes=20)),
        ("会晚一个半小时", Understood(Intent.LATE, minutes=90)),
        ("an hour and a half late", Understood(Intent.LATE, minutes=90)),
        ("accident on the highway, 10-15 min late", Understood(Intent.LATE, minutes=15)),  # the later end of a range
        ("堵车，要晚点到", Understood(Intent.LATE)),
        ("出发了", Understood(Intent.ON_MY_WAY)),
        ("on my way, about 20 minutes", Understood(Intent.ON_MY_WAY, minutes=20)),
        ("路上堵死了，晚1小时", Understood(Intent.LATE, minutes=60)),  # a delay beats the departure it mentions
        ("我到楼下了", Understood(Intent.ARRIVED)),
        ("I'm here", Understood(Intent.ARRIVED)),
        ("客户不在家", Understood(Intent.PROBLEM)),
        ("missing parts, can't install", Understood(Intent.PROBLEM)),
        ("到小区门口了，保安不让进", Understood(Intent.PROBLEM)),  # a problem beats "arrived"
        ("安装完毕", Understood(Intent.DONE)),
        ("finished installation", Understood(Intent.DONE)),
        ("今天几单？", Understood(Intent.UNKNOWN)),
    ],
)
def test_what_a_technician_types_has_an_intent_and_minutes(text, expected):
    assert technician(text) == expected


def test_fields_are_read_only_for_the_intents_that_carry_them():
    assert customer("取消明天的上门") == Understood(Intent.CANCEL)  # no date on a cancellation
    assert technician("出发了，明天见") == Understood(Intent.ON_MY_WAY)


# -------------------------------------------------------------- relative dates


@pytest.mark.parametrize(
    "text, expected",
    [
        ("今天下午", date(2026, 11, 27)),
        ("明天", date(2026, 11, 28)),
        ("后天", date(2026, 11, 29)),
        ("大后天", date(2026, 11, 30)),
        ("周一", date(2026, 11, 30)),
        ("周日", date(2026, 11, 29)),
        ("星期三", date(2026, 12, 2)),
        ("礼拜天", date(2026, 11, 29)),
        ("周五", date(2026, 12, 4)),  # today is Friday: the next one
        ("下周一", date(2026, 11, 30)),
        ("下周五", date(2026, 12, 4)),
        ("下个星期六", date(2026, 12, 5)),
        ("这周六", date(2026, 11, 28)),
        ("这周五", date(2026, 11, 27)),  # this week's Friday is today
        ("12月8日", date(2026, 12, 8)),
        ("11月28号", date(2026, 11, 28)),
        ("30号", date(2026, 11, 30)),
        ("2号", date(2026, 12, 2)),  # the 2nd has passed this month: next month's
        ("十一月二十八号", date(2026, 11, 28)),
        ("周末", date(2026, 11, 28)),
        ("today", date(2026, 11, 27)),
        ("tomorrow", date(2026, 11, 28)),
        ("tmrw", date(2026, 11, 28)),
        ("day after tomorrow", date(2026, 11, 29)),
        ("Friday", date(2026, 12, 4)),
        ("Monday", date(2026, 11, 30)),
        ("next Monday", date(2026, 11, 30)),
        ("this saturday", date(2026, 11, 28)),
        ("next saturday", date(2026, 12, 5)),
        ("28 Nov", date(2026, 11, 28)),
        ("Nov 28", date(2026, 11, 28)),
        ("28/11", date(2026, 11, 28)),
        ("Dec 3rd", date(2026, 12, 3)),
        ("the 9th", date(2026, 12, 9)),
        ("Christmas", date(2026, 12, 25)),
    ],
)
def test_relative_dates_resolve_from_todays_date(text, expected):
    assert customer(text).date == expected


def test_dates_cross_week_month_and_year_ends():
    sunday = on(date(2026, 11, 29))
    assert customer("明天", sunday).date == date(2026, 11, 30)
    assert customer("后天", sunday).date == date(2026, 12, 1)
    assert customer("下周一", sunday).date == date(2026, 11, 30)  # next calendar week starts tomorrow
    assert customer("周日", sunday).date == date(2026, 12, 6)
    new_years_eve = on(date(2026, 12, 31))
    assert customer("明天", new_years_eve).date == date(2027, 1, 1)
    assert customer("大后天", new_years_eve).date == date(2027, 1, 3)
    assert customer("1月5号", new_years_eve).date == date(2027, 1, 5)
    assert customer("3号", new_years_eve).date == date(2027, 1, 3)
    assert customer("next friday", new_years_eve).date == date(2027, 1, 8)
    assert customer("05/01", new_years_eve).date == date(2027, 1, 5)  # day/month
    february = on(date(2027, 2, 26))  # 2027 is not a leap year
    assert customer("大后天", february).date == date(2027, 3, 1)
    assert customer("下周一", february).date == date(2027, 3, 1)
    assert customer("3月2号", february).date == date(2027, 3, 2)
    assert customer("30号", on(date(2027, 1, 31))).date == date(2027, 3, 30)  # February has no 30th
    assert customer("28/11", on(date(2026, 11, 29))).date == date(2027, 11, 28)  # a past date is next year's
    assert customer("12/25").date == date(2026, 12, 25)  # a first number over 12 makes it month/day


def test_the_date_is_read_in_the_time_zone_now_is_given_in():
    late_evening_utc = datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)  # 01:00 on the 28th in Shanghai
    assert customer("明天", late_evening_utc.astimezone(SHANGHAI)).date == date(2026, 11, 29)


def test_a_day_in_a_negated_clause_is_the_day_to_avoid():
    assert customer("今天家里没人，改到明天吧").date == date(2026, 11, 28)
    assert customer("明天下午再来安装吧，今天没时间").date == date(2026, 11, 28)
    assert customer("I won't be home today, can you come tomorrow instead").date == date(2026, 11, 28)
    assert customer("星期三行不行").date == date(2026, 12, 2)  # "行不行" asks, it does not refuse


# -------------------------------------------------------------- parts of day and times


@pytest.mark.parametrize(
    "text, part",
    [
        ("明天上午", PartOfDay.MORNING),
        ("明天早上", PartOfDay.MORNING),
        ("明早", PartOfDay.MORNING),
        ("明天中午", PartOfDay.NOON),
        ("明天下午", PartOfDay.AFTERNOON),
        ("明天晚上", PartOfDay.EVENING),
        ("明天傍晚", PartOfDay.EVENING),
        ("今晚", PartOfDay.EVENING),
        ("tomorrow morning", PartOfDay.MORNING),
        ("tomorrow around noon", PartOfDay.NOON),
        ("tomorrow afternoon", PartOfDay.AFTERNOON),
        ("tomorrow evening", PartOfDay.EVENING),
        ("tonight", PartOfDay.EVENING),
    ],
)
def test_parts_of_day(text, part):
    assert customer(text).part_of_day is part


@pytest.mark.parametrize(
    "text, after, before",
    [
        ("明天十点以后", time(10), None),
        ("明天下午两点前", None, time(14)),
        ("明天下午一点半以后", time(13, 30), None),
        ("后天早上八点半以后", time(8, 30), None),
        ("明天6点以后", time(18), None),  # 1 to 7 o'clock without a part of day: nobody books 6 a.m.
        ("明天中午之前", None, time(12)),
        ("明天上午九点到十点之间", time(9), time(10)),
        ("明天上午10点到下午2点", time(10), time(14)),  # each time in the part of day said before it
        ("tomorrow 11 to 2 pm", time(11), time(14)),
        ("tomorrow between 2 and 4 pm", time(14), time(16)),
        ("tomorrow after 3pm", time(15), None),
        ("tomorrow before 1pm", None, time(13)),
        ("saturday morning, not before 10", time(10), None),
        ("today after 6:30pm", time(18, 30), None),
        ("Fri 1-5pm", time(13), time(17)),
        ("day after tomorrow before noon", None, time(12)),
    ],
)
def test_times_become_after_and_before(text, after, before):
    meant = customer(text)
    assert (meant.intent, meant.after, meant.before) == (Intent.RESCHEDULE, after, before)


def test_chinese_numerals_become_numbers_but_words_stay_words():
    assert technician("晚到三十五分钟").minutes == 35
    assert technician("要晚两个小时").minutes == 120
    assert technician("还有一刻钟到").minutes == 15
    assert customer("洗衣机一直响，声音很大").intent is Intent.COMPLAINT  # "一直" is not the number one
    assert customer("明天晚一点来") == Understood(Intent.RESCHEDULE, date(2026, 11, 28))  # "a little later", not 1 o'clock


def test_traditional_characters_and_full_width_forms():
    assert customer("明天下午來吧") == Understood(Intent.RESCHEDULE, date(2026, 11, 28), PartOfDay.AFTERNOON)
    assert customer("後天上午１０點以後") == Understood(Intent.RESCHEDULE, date(2026, 11, 29), PartOfDay.MORNING, after=time(10))


# -------------------------------------------------------------- language


def test_language_is_detected_from_any_cjk_character():
    assert detect_language("明天 ok?") == "zh"
    assert detect_language("tomorrow 👍") == "en"


def test_a_chat_language_that_does_not_match_the_text_still_understands_it():
    assert customer("明天下午再来", language="en").date == date(2026, 11, 28)
    assert customer("tomorrow afternoon", language="zh").date == date(2026, 11, 28)


def test_the_json_shape():
    assert customer("后天上午十点以后").to_json() == {
        "intent": "reschedule", "date": "2026-11-29", "part_of_day": "morning", "after": "10:00", "before": None, "minutes": None,
    }


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80), role=st.sampled_from(["customer", "technician"]), days=st.integers(0, 3650))
def test_any_text_gives_an_answer_and_fields_only_where_they_belong(text, role, days):
    meant = understand(text, role, FRIDAY + timedelta(days=days))
    if meant.intent not in FIELD_INTENTS:
        assert (meant.date, meant.part_of_day, meant.after, meant.before, meant.minutes) == (None,) * 5
    if role == "technician":
        assert meant.intent in {Intent.LATE, Intent.ON_MY_WAY, Intent.ARRIVED, Intent.PROBLEM, Intent.DONE, Intent.UNKNOWN}
    else:
        assert meant.intent not in {Intent.LATE, Intent.ON_MY_WAY, Intent.ARRIVED, Intent.PROBLEM}


@settings(max_examples=200, deadline=None)
@given(number=st.integers(0, 99), sep=st.sampled_from(["号", "点", "/", "月", "分钟", " min", "pm", "th"]), other=st.integers(0, 99))
def test_numbers_out_of_range_are_ignored_not_fatal(number, sep, other):
    for text in (f"明天{number}{sep}{other}", f"tomorrow {number}{sep}{other}", f"{number}{sep}{other}号", f"{number}/{other}"):
        understand(text, "customer", FRIDAY)
        understand(text, "technician", FRIDAY)
