"""What a free-text message means, in Chinese or English, offline: an intent plus the date, part of day, times or minutes it names."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

import cn2an

Role = Literal["customer", "technician"]


class Intent(enum.StrEnum):
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    ETA = "eta"
    COMPLAINT = "complaint"
    DONE = "done"
    HUMAN = "human"
    CHANGE_CONTACT = "change_contact"
    CHANGE_ADDRESS = "change_address"
    LATE = "late"
    ON_MY_WAY = "on_my_way"
    ARRIVED = "arrived"
    PROBLEM = "problem"
    UNKNOWN = "unknown"


class PartOfDay(enum.StrEnum):
    MORNING = "morning"
    NOON = "noon"
    AFTERNOON = "afternoon"
    EVENING = "evening"


@dataclass(frozen=True)
class Understood:
    intent: Intent
    date: date | None = None
    part_of_day: PartOfDay | None = None
    after: time | None = None
    before: time | None = None
    minutes: int | None = None

    def to_json(self) -> dict[str, object]:
        """The shape `fieldchat understand` prints."""
        return {
            "intent": self.intent.value,
            "date": self.date.isoformat() if self.date else None,
            "part_of_day": self.part_of_day.value if self.part_of_day else None,
            "after": self.after.strftime("%H:%M") if self.after else None,
            "before": self.before.strftime("%H:%M") if self.before else None,
            "minutes": self.minutes,
        }


def detect_language(text: str) -> str:
    """Any CJK character makes a message Chinese; everything else is read as English."""
    return "zh" if _CJK.search(text) else "en"


def understand(text: str, role: Role, now: datetime, language: str | None = None) -> Understood:
    """`now` is aware and already in the shop's time zone: relative dates ("明天", "Friday") resolve from its date.

    `language` is "zh", "en" or None (detected from the text: any CJK character means Chinese). It only decides which
    language's rules are tried first: a chat set to English whose user types Chinese is still understood.
    Dates, parts of day and times are read for `reschedule` only, minutes for `late` and `on_my_way` only.
    """
    first = language if language in ("zh", "en") else detect_language(text)
    for lang in (first, "en" if first == "zh" else "zh"):
        norm = _normalize(text, lang)
        intent = _intent(norm, role, lang)
        if intent is Intent.UNKNOWN:
            continue
        if intent is Intent.RESCHEDULE:
            when = _when(norm, now.date(), lang)
            return Understood(intent, when.day, when.part, when.after, when.before)
        if intent in (Intent.LATE, Intent.ON_MY_WAY):
            return Understood(intent, minutes=_minutes(norm, lang))
        return Understood(intent)
    return Understood(Intent.UNKNOWN)


# ---------------------------------------------------------------- normalising

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
# the traditional forms customers in Hong Kong and Taiwan type, mapped to the simplified ones the rules are written in
_TRADITIONAL = str.maketrans("來後點時鐘號週禮與間這個還們車裝錯話電達門麼問題沒說聯係絡臺台幾兩傳單換約",
                             "来后点时钟号周礼与间这个还们车装错话电达门么问题没说联系络台台几两传单换约")
# a run of Chinese numerals is a number only before a unit or after a weekday word: "一直", "一下" stay words
_CN_NUMERAL = re.compile(r"(?<=周|期|拜)[一二三四五六]|[零〇一二两三四五六七八九十百]+(?=\s*[点:：个分小刻月号日钟半来多])")
# "晚一点" is "a little later", not one o'clock: said before numerals become digits
_A_LITTLE = re.compile(r"(晚|早|快|慢|多|少)一点儿?")
_GREETINGS = re.compile(r"早上好|早安|晚安|下午好|晚上好|圣诞快乐|新年快乐|元旦快乐|\bgood (?:morning|afternoon|evening|night)\b"
                        r"|\b(?:merry|happy) (?:christmas|xmas|new year)\b")
_EN_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
             "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
             "seventeen": 17, "eighteen": 18, "nineteen": 19}
_EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90}
_EN_NUMBER = re.compile(r"\b(?:(%s)(?:[\s-](%s))?|(%s))\b" % ("|".join(_EN_TENS), "|".join(list(_EN_UNITS)[1:10]), "|".join(_EN_UNITS)))


def _cn_to_digits(match: re.Match[str]) -> str:
    try:
        return str(int(cn2an.cn2an(match.group(0), "smart")))
    except (ValueError, KeyError, TypeError):
        return match.group(0)  # a run cn2an cannot read ("一二") stays as typed


def _en_to_digits(match: re.Match[str]) -> str:
    if match.group(3):
        return str(_EN_UNITS[match.group(3)])
    return str(_EN_TENS[match.group(1)] + (_EN_UNITS[match.group(2)] if match.group(2) else 0))


def _normalize(text: str, lang: str) -> str:
    """Full-width to half-width, lower case, traditional to simplified, numerals to digits, greetings dropped."""
    norm = unicodedata.normalize("NFKC", text).lower().translate(_TRADITIONAL)
    norm = _GREETINGS.sub(" ", norm)
    if lang == "zh":
        norm = _A_LITTLE.sub(r"\1些", norm)
        return _CN_NUMERAL.sub(_cn_to_digits, norm)
    norm = re.sub(r"\b(?:an?|one) hour and a half\b|\bhour and a half\b|\b1\.5 ?(?:hours?|hrs?)\b", "90 minutes", norm)
    norm = re.sub(r"\bhalf (?:an )?hour\b|\bhalf-hour\b", "30 minutes", norm)
    norm = re.sub(r"\b(?:a )?quarter (?:of an )?hour\b", "15 minutes", norm)
    norm = re.sub(r"\b(?:an|one) (?:hour|hr)\b", "1 hour", norm)
    return _EN_NUMBER.sub(_en_to_digits, norm)


# ---------------------------------------------------------------- intents


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# 11 digits or more, in groups, with an optional country code: a phone number, not a house number or a price
_PHONE = re.compile(r"(?<!\d)(?:\+?\d{2,3}[\s-]?)?1\d{2}[\s-]?\d{4}[\s-]?\d{4}(?!\d)")

_ZH = {
    "human": _any(r"工作人员", r"有人吗", r"专员", r"人工", r"客服", r"真人", r"找人", r"负责人", r"调度", r"经理", r"主管", r"机器人", r"(?<!\d)给我(?:打|回)(?:个)?电话",
                  r"打个电话", r"跟.{0,6}(?:说话|聊|沟通)"),
    "change_contact": _any(r"(?:号码|电话|手机).{0,6}(?:变|换了|改了)", r"(?:号码|电话|手机|联系方式|联系人|收货人).{0,8}(?:改|换|错|新|修改|备用|应该是)",
                           r"(?:改|换|修改|更新).{0,4}(?:号码|电话|手机|联系方式|联系人)", r"打(?:这个|我)(?:备用)?电话"),
    "change_address": _any(r"地址", r"搬家", r"门牌", r"小区", r"\d+号楼", r"\d+栋", r"单元", r"送到(?:公司|单位|我|另|别|新|父母|家)"),
    "cancel": _any(r"不买了", r"退单", r"不用了", r"不装了", r"不修了", r"不送了", r"作废", r"取消", r"不要了", r"不用(?:来|送|上门|装|安装)", r"别(?:来|送)", r"不需要",
                   r"退货", r"撤销", r"退款", r"不想要"),
    "complaint": _any(r"脏", r"裂", r"粗心", r"马虎", r"损坏", r"损伤", r"失望", r"敷衍", r"不负责", r"变形", r"掉漆", r"松动", r"异响", r"不平", r"赔", r"投诉",
                      r"差评", r"态度", r"划痕", r"划伤", r"刮花", r"刮坏", r"坏了", r"断了", r"漏水", r"不满意", r"太差", r"很差", r"不专业", r"磕", r"破损", r"烂了",
                      r"歪", r"少了", r"缺", r"送错", r"错了", r"不对", r"不制冷", r"不工作", r"不能用", r"声音", r"噪音", r"一直响", r"烟", r"没带走", r"收了.{0,8}钱",
                      r"乱收费", r"质量", r"有问题", r"生气", r"垃圾"),
    "eta": _any(r"什么时间", r"还不来", r"多远", r"咋还没", r"几点", r"什么时候", r"啥时候", r"到哪", r"在哪", r"多久", r"多长时间", r"还没到", r"还没来", r"人呢", r"快到了吗",
                r"到了吗", r"出发了吗", r"还来吗", r"几分钟", r"预计", r"怎么还没"),
    "done": _any(r"装好", r"装完", r"安装完", r"完成", r"弄好", r"修好", r"搞定", r"完工", r"收到了", r"送到了", r"确认收货", r"签收", r"货收到", r"已收到"),
    "reschedule": _any(r"换到", r"下个?(?:周|星期|礼拜|月)(?![1-7日天末])", r"改", r"换(?:个|一)?(?:时间|天|日子)", r"推迟", r"延期", r"延后", r"再来", r"再送",
                       r"时间不", r"另约", r"重新约", r"约.{0,4}时间", r"晚几天", r"过几天"),
    "late": _any(r"晚到", r"晚点", r"晚些", r"晚一些", r"迟到", r"迟", r"堵", r"要晚", r"会晚", r"晚\d", r"晚个", r"延误", r"耽误"),
    "on_my_way": _any(r"出发", r"在路上", r"^路上", r"上路", r"动身", r"过去", r"赶来", r"开始送货", r"来的路上"),
    "problem": _any(r"关机", r"停机", r"不开门", r"坏", r"拒绝", r"不在", r"不在家", r"打不通", r"联系不上", r"没人接", r"不接", r"找不到", r"破损", r"坏了", r"缺",
                    r"少了", r"装不", r"不让", r"不存在", r"打不了", r"上不去", r"进不", r"拒收", r"不够", r"不对", r"问题", r"没有", r"扣", r"太大", r"太小", r"异常",
                    r"不要了"),
    "arrived": _any(r"到了", r"到达", r"已到", r"到楼下", r"到门口", r"在门口", r"在楼下", r"到客户", r"到现场", r"进小区", r"到小区", r"楼下等"),
    "tech_done": _any(r"装好", r"装完", r"安装完", r"完工", r"完毕", r"完成", r"搞定", r"修好", r"送到了", r"送达", r"签收", r"结束", r"干完", r"弄好"),
}

_EN = {
    "human": _any(r"\bsome(?:one|body) (?:to |who )?(?:call|contact|ring|talk|speak|help)", r"\bstaff\b", r"\banyone there\b",
                  r"\bis anyone\b", r"\bhuman\b", r"real person", r"\ba person\b", r"\bagent\b", r"\boperator\b", r"customer service",
                  r"\bsupport\b", r"\bmanager\b", r"\bsupervisor\b", r"\bdispatch", r"\bspeak (?:to|with)\b", r"\btalk (?:to|with)\b",
                  r"\bcall me\b", r"\ba bot\b", r"\brobot\b"),
    "change_contact": _any(r"\b(?:phone|number|mobile)\b.{0,30}\bdifferent\b",
                           r"\b(?:phone|number|contact|mobile)\b.{0,30}\b(?:changed?|new|update|wrong|instead|is now|should be)\b",
                           r"\b(?:chang(?:e|ed|ing)|new|update|wrong|different)\b.{0,20}\b(?:phone|number|contact|mobile)\b",
                           r"\breach me\b"),
    "change_address": _any(r"\baddress\b", r"\bmoved\b", r"\bdeliver (?:it )?to\b", r"\bsend it to\b",
                           r"\b(?:flat|apartment|door|room) number\b", r"\bbuilding \d", r"\bunit \d", r"\bmy office\b"),
    "cancel": _any(r"\bnot to buy\b", r"\bdecided not\b", r"\b(?:isn'?t|not|no longer) needed\b", r"\bwon'?t need\b", r"\bcancel",
                   r"\bcall it off\b", r"\bdon'?t (?:come|deliver|bother)\b", r"\bdo not come\b", r"\bno need to\b",
                   r"\bno longer need", r"\bdon'?t (?:want|need)\b", r"\bchanged my mind\b", r"\bforget it\b", r"\bstop the\b",
                   r"\bnever ?mind\b", r"\brefund"),
    "complaint": _any(r"\bcrack", r"\bcareless", r"\bmarks?\b", r"\bstain", r"\bscuff", r"\bchipped\b", r"\bloose\b", r"\bwobbl",
                      r"\b(?:never|didn'?t|nobody) show", r"\bno-?show\b", r"\btorn\b", r"\bfaulty\b", r"\bdefect",
                      r"\bstill broken\b", r"\bnot fixed\b", r"\bcomplain", r"\brude\b", r"\bscratch", r"\bbroken\b", r"\bdamag",
                      r"\bleak", r"\bterrible\b", r"\bawful\b", r"\bhorrible\b", r"\bunhappy\b", r"\bnot happy\b", r"\bunacceptable\b",
                      r"\bmess\b", r"\bwrong (?:colou?r|item|size|model|product)", r"\bnois", r"\bnot (?:cooling|working|heating)\b",
                      r"(?<!today )(?<!tomorrow )(?<!that )(?<!time )(?<!day )\bdoesn'?t (?:work|close|open)\b", r"\bcharged\b", r"\bcrooked\b", r"\bdent", r"\bmissing\b", r"\bsmok",
                      r"\bworst\b", r"\bbad service\b", r"\bpoor\b", r"\bdisappoint", r"something'?s wrong", r"\bdirty\b"),
    "eta": _any(r"\b(?:nobody|no one|no-one)(?: is)? here\b", r"\bnot here yet\b", r"\bwhen (?:will|does|do|is|are)\b", r"\bwhen'?s\b",
                r"\bwhat time (?:is|will|should|are|do|does)\b", r"\bwhere (?:is|are|r)\b", r"\bwhere'?s\b", r"\bhow long\b",
                r"\bhow far\b", r"\bhow much longer\b", r"\beta\b", r"\barrival\b", r"\bstill coming\b", r"\bcoming or not\b",
                r"\bnearby\b", r"\bclose\?", r"\bwhat time\s*\?", r"\bleft yet\b", r"\bany (?:news|update)", r"\bon (?:your|the|his|her|their) way\?"),
    "done": _any(r"\bgot (?:the|my) (?:package|parcel|delivery|goods|item|order|sofa|bed|table|wardrobe)\b", r"\bdone\b",
                 r"\binstalled\b", r"\bfinished\b", r"\bcomplete", r"\breceived\b", r"\ball set\b", r"\bassembled\b", r"\ball good\b",
                 r"\bworks fine\b", r"\beverything'?s fine\b", r"\bset up\b", r"\bgot (?:it|the|my) .{0,20}(?:fine|good)"),
    "reschedule": _any(r"\bnext (?:week|month)\b", r"\bmake it\b", r"\breschedul",
                       r"\bchange (?:the |my )?(?:\w+ )?(?:time|date|day|appointment|slot)\b", r"\banother (?:day|time)\b",
                       r"\bdifferent (?:day|time)\b", r"\binstead\b", r"\bmove it\b", r"\bpush it\b", r"\bpostpone", r"\blater date\b",
                       r"\bnot today\b"),
    "late": _any(r"\blate\b", r"\bdelay", r"\bbehind\b", r"\btraffic\b", r"\bstuck\b", r"\bover ?ran\b", r"\bjam\b"),
    "on_my_way": _any(r"\bleft (?:already|now|just now)\b", r"\b(?:i|i'?ve|i have|already) left\b", r"\bon my way\b", r"\bomw\b",
                      r"\bon the way\b", r"\bheading\b", r"\bleaving\b", r"\bjust left\b", r"\bset(?:ting)? off\b", r"\ben route\b",
                      r"\bdeparted\b", r"\bdriving\b", r"\bon the road\b", r"\bcoming now\b", r"\bcoming over\b"),
    "problem": _any(r"\bswitched off\b", r"\bturned off\b", r"\bphone (?:is )?off\b", r"\bunreachable\b", r"\bnot picking up\b",
                    r"\bnobody (?:home|answers)\b", r"\bnot (?:at )?home\b", r"\bnot answering\b", r"\bno answer\b", r"\bcan'?t\b",
                    r"\bcannot\b", r"\bwon'?t\b", r"\bdamaged\b", r"\bmissing\b", r"\bbroken\b", r"\brefused?\b", r"\bnot enough\b",
                    r"\bwrong\b", r"\bproblem\b", r"\bissue\b", r"\btoo (?:big|large|small)\b",
                    r"\bno (?:power|socket|access|lift|elevator)\b", r"\bflat tyre\b", r"\bflat tire\b", r"\bdoesn'?t (?:fit|exist)\b",
                    r"\blocked\b"),
    "arrived": _any(r"\barrived\b", r"\bi'?m here\b", r"\bhere now\b", r"\bat the (?:door|gate|address|building|house)\b",
                    r"\bdownstairs\b", r"\breached\b", r"\bon site\b", r"\boutside\b", r"\bgot here\b", r"\bparked\b", r"\bi'?m at\b"),
    "tech_done": _any(r"\brepaired\b", r"\bsorted\b", r"\bdone\b", r"\bfinished\b", r"\bcomplete", r"\bfixed\b", r"\binstalled\b",
                      r"\bdelivered\b", r"\bwrapped up\b", r"\bsigned\b"),
}

# the order decides what a message that says several things means: asking for a person beats everything, a new address
# or phone beats the complaint it may come with ("the flat number is wrong" is an address), and a complaint beats
# "it's done" ("装好了不制冷")
_CUSTOMER_ORDER = ("human", "change_address", "change_contact", "cancel", "complaint", "eta", "done")

# A number given to be used: said bare, or right after a word for a phone or a verb to call it ("电话13912345678",
# "打139…", "call my husband on 139…"). A number in anything else ("13812345678给我打电话", "the driver called me from
# 138…") is not a change of contact: the message means what its other words say.
_GIVES_NUMBER = {
    "zh": re.compile(r"(?:电话|手机|手机号|号码|联系方式)\s*(?:是|为|:)?\s*\+?\d|(?:打|拨)\s*\+?\d|联系\S{0,6}\s*\+?\d"),
    "en": re.compile(r"\b(?:number|phone|mobile|cell)\b\s*(?:is|:)?\s*\+?\d"
                     r"|\b(?:call|ring|text|phone|contact|reach|use)\b(?: me| us| him| her| my \w+)?(?: on| at)?\s*:?\s*\+?\d"),
}
# A question whether or when the visit happens ("明天来吗", "will you come tomorrow?", "is it still on for Monday?")
# asks for the time (eta) even though it names a day; asking for another day is a request ("明天能来吗", "can you come
# tomorrow instead?") and stays a reschedule.
_ASKS_WHEN = {
    "zh": re.compile(r"(?:来|到|送|上门|安装|装)(?:吗|么|嘛|不)|是.{0,8}吧|(?:上午|下午|晚上)还是|没变吧|不变吧|对吧|照常|说好"),
    "en": re.compile(r"\bwill (?:you|he|she|they|it|the \w+|someone|somebody) (?:still )?(?:come|be (?:here|there|coming|delivered|"
                     r"installed)|arrive|deliver|turn up|show up)\b"
                     r"|\b(?:are|is) (?:you|he|she|they|it|the \w+|someone|somebody) (?:still )?(?:coming|arriving|on|delivering)\b"
                     r"|\bstill (?:on|happening|coming)\b|\bas planned\b|\bsupposed to (?:arrive|come|be)\b|\bwas due\b"
                     r"|\bany sign\b|\b(?:morning|afternoon|evening) or (?:the )?(?:morning|afternoon|evening)\b"),
}
_ASKS_FOR = {
    "zh": re.compile(r"能|可以|方便|行吗|行不行|好吗|好不好"),
    "en": re.compile(r"\bcan (?:you|u|we|someone|somebody)\b|\bcould (?:you|u|we)\b|\bwould\b.{0,20}\bwork\b|\brather\b|\bpossible\b"),
}
# small talk that names a day is still small talk ("你们周末上班吗", "have a good weekend")
_SMALL_TALK = {
    "zh": re.compile(r"上班吗|营业|下雨|天气|愉快|休息吗"),
    "en": re.compile(r"\bdo you (?:work|open)\b|\bare you open\b|\bweather\b|\brain\b|\bhave a (?:good|nice|great|lovely)\b"),
}


def _intent(norm: str, role: Role, lang: str) -> Intent:
    rules = _ZH if lang == "zh" else _EN
    if role == "technician":
        # a delay beats the departure it often comes with ("路上堵死了，晚1小时"); a problem beats "arrived"
        for name, intent in (("late", Intent.LATE), ("on_my_way", Intent.ON_MY_WAY), ("problem", Intent.PROBLEM)):
            if rules[name].search(norm):
                return intent
        if _minutes(norm, lang) is not None:
            return Intent.LATE  # "二十分钟后到", "be there in 10": a new estimate
        if rules["tech_done"].search(norm):
            return Intent.DONE
        if rules["arrived"].search(norm):
            return Intent.ARRIVED
        return Intent.UNKNOWN
    phone = _PHONE.search(norm) is not None
    bare = phone and not re.search(r"[a-z\u4e00-\u9fff]", _PHONE.sub("", norm))
    for name in _CUSTOMER_ORDER:
        if name == "change_contact" and (bare or (phone and _GIVES_NUMBER[lang].search(norm))):
            return Intent.CHANGE_CONTACT
        if name == "cancel" and rules["cancel"].search(norm) and rules["reschedule"].search(norm) and _when(norm, _ANY_DAY, lang).said:
            return Intent.RESCHEDULE  # "cancel Friday and come Monday instead"
        if rules[name].search(norm):
            return Intent(name)
    if rules["reschedule"].search(norm):
        return Intent.RESCHEDULE
    if _ASKS_WHEN[lang].search(norm) and not _ASKS_FOR[lang].search(norm):
        return Intent.ETA
    if _when(norm, _ANY_DAY, lang).said and not _SMALL_TALK[lang].search(norm):
        return Intent.RESCHEDULE
    return Intent.UNKNOWN


# ---------------------------------------------------------------- minutes

_ZH_HALF_HOUR = re.compile(r"半(?:个)?(?:小时|钟头|钟)")
_QUARTER = re.compile(r"(\d+)\s*刻钟?")
_MINUTES = re.compile(r"(\d+)\s*(?:来|多)?\s*(?:分钟|分|min(?:ute)?s?\b|m\b)")
_EN_HOURS = re.compile(r"(\d+)\s*(?:hours?|hrs?|h)\b")
_EN_BARE = re.compile(r"\b(?:in|by|late)\s+(?:about\s+|around\s+|~)?(\d{1,3})\b(?!\s*(?:am|pm|:|\d))")


def _minutes(norm: str, lang: str) -> int | None:
    """How many minutes a message names; of a range ("10-15 min") the longer, as the customer should hear the later time."""
    found: list[int] = []
    for match in _MINUTES.finditer(norm):
        found.append(int(match.group(1)))
    ranged = re.search(r"(\d+)\s*(?:-|~|到|to)\s*(\d+)\s*(?:来)?\s*(?:分钟|分|min)", norm)
    if ranged:
        found.append(max(int(ranged.group(1)), int(ranged.group(2))))
    if lang == "zh":
        for match in re.finditer(r"(\d+)\s*个?(半)?\s*(?:小时|钟头)", norm):
            found.append(int(match.group(1)) * 60 + (30 if match.group(2) else 0))
        if _ZH_HALF_HOUR.search(norm) and not re.search(r"\d\s*个?半", norm):
            found.append(30)
        for match in _QUARTER.finditer(norm):
            found.append(int(match.group(1)) * 15)
    else:
        for match in _EN_HOURS.finditer(norm):
            found.append(int(match.group(1)) * 60)
        if not found:
            bare = _EN_BARE.search(norm)
            if bare:
                found.append(int(bare.group(1)))
    found = [m for m in found if 0 < m <= 12 * 60]
    return max(found) if found else None


# ---------------------------------------------------------------- dates, parts of day, times


@dataclass(frozen=True)
class _When:
    day: date | None = None
    part: PartOfDay | None = None
    after: time | None = None
    before: time | None = None

    @property
    def said(self) -> bool:
        return any(v is not None for v in (self.day, self.part, self.after, self.before))


_WEEKDAYS_ZH = {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "日": 6, "天": 6, "7": 6}
_WEEKDAYS_EN = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_MONTHS_EN = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
_MONTH_EN = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?"
             r"|nov(?:ember)?|dec(?:ember)?)")
_WEEKDAY_EN = r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday|s)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)s?"
_TOMORROW_EN = r"(?:tomorrow|tomorow|tommorow|tommorrow|tmrw|tmr|tmw|tmrow|2moro|2morrow|tomoz)"

_ZH_DAYS = re.compile(
    r"(?P<rel>大后天|(?<!大)后天|明天|明日|明儿|明早|明晚|今天|今日|今儿|今早|今晚)"
    r"|(?P<wkmod>下下|下个?|这个?|本)?(?:周|星期|礼拜)(?P<wk>[1-7日天])"
    r"|(?P<wemod>下个?|这个?|本)?周末"
    r"|(?P<m>\d{1,2})月(?P<md>\d{1,2})[日号]?"
    r"|(?<![\d月])(?P<d>\d{1,2})[号日](?![楼栋室单元])"
    r"|(?P<holiday>元旦|平安夜|圣诞节?|除夕夜?|跨年)"
)
_EN_DAYS = re.compile(
    r"(?P<dat>(?:the\s+)?day after " + _TOMORROW_EN + r")"
    r"|(?P<tom>\b" + _TOMORROW_EN + r"\b)"
    r"|(?P<today>\btoday\b|\btonight\b|\bthis (?:morning|afternoon|evening)\b)"
    r"|\b(?:(?P<wkmod>next|this|coming)\s+)?(?P<wd>" + _WEEKDAY_EN + r")\b"
    r"|\b(?P<wemod>next |this |the )?weekend\b"
    r"|\b(?P<d1>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon1>" + _MONTH_EN + r")\b"
    r"|\b(?P<mon2>" + _MONTH_EN + r")\.?\s+(?P<d2>\d{1,2})(?:st|nd|rd|th)?\b"
    r"|\b(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/\d{2,4})?\b"
    r"|\b(?:the\s+)?(?P<d3>\d{1,2})(?:st|nd|rd|th)\b"
    r"|(?P<holiday>\bnew year'?s (?:day|eve)\b|\bchristmas(?: day| eve)?\b|\bxmas(?: day| eve)?\b)"
)
# holidays on a fixed date; those of the lunar calendar (春节) are left to the day picker
_HOLIDAYS = {"元旦": (1, 1), "平安夜": (12, 24), "圣诞": (12, 25), "圣诞节": (12, 25), "除夕": (12, 31), "除夕夜": (12, 31),
             "跨年": (12, 31), "new year's day": (1, 1), "new years day": (1, 1), "new year's eve": (12, 31),
             "new years eve": (12, 31), "christmas": (12, 25), "christmas day": (12, 25), "christmas eve": (12, 24),
             "xmas": (12, 25), "xmas day": (12, 25), "xmas eve": (12, 24)}
_ZH_PARTS = (
    (re.compile(r"上午|早上|早晨|清晨|明早|今早|一早|早点钟"), PartOfDay.MORNING),
    (re.compile(r"中午(?!\s*(?:之前|以前|前|之后|以后|后))"), PartOfDay.NOON),
    (re.compile(r"下午|午后|午饭后"), PartOfDay.AFTERNOON),
    (re.compile(r"晚上|傍晚|今晚|明晚|晚间|夜里"), PartOfDay.EVENING),
)
_EN_PARTS = (
    (re.compile(r"\bmornings?\b"), PartOfDay.MORNING),
    (re.compile(r"(?<!before )(?<!by )(?<!after )\b(?:noon|midday|lunch ?time)\b"), PartOfDay.NOON),
    (re.compile(r"\bafternoons?\b|\barvo\b|\bafter lunch\b"), PartOfDay.AFTERNOON),
    (re.compile(r"\bevenings?\b|\btonight\b|\bnights?\b"), PartOfDay.EVENING),
)
_CLAUSE = re.compile(r"[,，。!！?？;；\n]+|\.+(?=\s|$)|\s(?=rather than\b|instead of\b)|(?=而不是)")
_NEGATED = {"zh": re.compile(r"没|不|有事"), "en": re.compile(r"\bnot\b|n't\b|\bno\b|\bbusy\b|\bcannot\b")}
_INSTEAD_OF = re.compile(r"rather than\b|instead of\b|而不是")
_A_NOT_A = re.compile(r"(.)不\1|不$")  # "行不行", "能不能", "可以不": a question, not a negation


def _negated(clause: str, lang: str) -> bool:
    """A clause that says when not ("今天没空", "not today") names a day to avoid; one that also asks to change does not."""
    if _INSTEAD_OF.match(clause.strip()):
        return True  # "… rather than today": split off by _CLAUSE, the day that is not meant
    if _ZH["reschedule"].search(clause) or _EN["reschedule"].search(clause):
        return False
    return _NEGATED[lang].search(_A_NOT_A.sub("", clause)) is not None


def _next_weekday(today: date, weekday: int) -> date:
    """A weekday by name is the next such day after today: "Friday" said on a Friday is a week later."""
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def _weekday(today: date, weekday: int, modifier: str) -> date:
    monday = today - timedelta(days=today.weekday())
    if modifier.startswith("下下"):
        return monday + timedelta(days=14 + weekday)
    if modifier.startswith("下") or modifier == "next":  # a day of next calendar week (weeks start on Monday)
        return monday + timedelta(days=7 + weekday)
    if modifier.startswith(("这", "本", "this")):  # this week's, unless it is past: then the next one
        day = monday + timedelta(days=weekday)
        return day if day >= today else _next_weekday(today, weekday)
    return _next_weekday(today, weekday)


def _month_day(today: date, month: int, day: int) -> date | None:
    """A day and month without a year is the next such date, today included."""
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            return None
        if candidate >= today:
            return candidate
    return None


def _day_of_month(today: date, day: int) -> date | None:
    """"30号", "the 9th": this month's if not past, else the next month that has that day."""
    year, month = today.year, today.month
    for _ in range(3):
        try:
            candidate = date(year, month, day)
        except ValueError:
            candidate = None
        if candidate is not None and candidate >= today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _days(clause: str, today: date, lang: str) -> list[tuple[date, PartOfDay | None]]:
    found: list[tuple[date, PartOfDay | None]] = []
    if lang == "zh":
        for m in _ZH_DAYS.finditer(clause):
            part: PartOfDay | None = None
            day: date | None = None
            if m.group("rel"):
                rel = m.group("rel")
                offset = {"大后天": 3, "后天": 2}.get(rel, 1 if rel.startswith("明") else 0)
                day = today + timedelta(days=offset)
                part = PartOfDay.MORNING if rel.endswith("早") else PartOfDay.EVENING if rel.endswith("晚") else None
            elif m.group("wk"):
                day = _weekday(today, _WEEKDAYS_ZH[m.group("wk")], m.group("wkmod") or "")
            elif m.group(0).endswith("周末"):
                mod = m.group("wemod") or ""
                day = _weekday(today, 5, mod) if mod.startswith("下") else (today if today.weekday() >= 5 else _next_weekday(today, 5))
            elif m.group("m"):
                day = _month_day(today, int(m.group("m")), int(m.group("md")))
            elif m.group("d"):
                day = _day_of_month(today, int(m.group("d")))
            elif m.group("holiday"):
                day = _month_day(today, *_HOLIDAYS[m.group("holiday")])
            if day is not None:
                found.append((day, part))
        return found
    for m in _EN_DAYS.finditer(clause):
        part = None
        day = None
        groups = m.groupdict()
        if groups["dat"]:
            day = today + timedelta(days=2)
        elif groups["tom"]:
            day = today + timedelta(days=1)
        elif groups["today"]:
            day = today
        elif groups["wd"]:
            day = _weekday(today, _WEEKDAYS_EN[groups["wd"][:3]], groups["wkmod"] or "")
        elif m.group(0).endswith("weekend"):
            mod = (groups["wemod"] or "").strip()
            day = _weekday(today, 5, mod) if mod == "next" else (today if today.weekday() >= 5 else _next_weekday(today, 5))
        elif groups["d1"]:
            day = _month_day(today, _MONTHS_EN[groups["mon1"][:3]], int(groups["d1"]))
        elif groups["d2"]:
            day = _month_day(today, _MONTHS_EN[groups["mon2"][:3]], int(groups["d2"]))
        elif groups["a"]:
            first, second = int(groups["a"]), int(groups["b"])
            # day/month as the shop's customers write it; only a first number over 12 can make it month/day
            day_, month = (second, first) if second > 12 else (first, second)
            day = _month_day(today, month, day_)
        elif groups["d3"]:
            day = _day_of_month(today, int(groups["d3"]))
        elif groups["holiday"]:
            day = _month_day(today, *_HOLIDAYS[groups["holiday"]])
        if day is not None:
            found.append((day, part))
    return found


def _parts(clause: str, lang: str) -> list[tuple[int, PartOfDay]]:
    found: list[tuple[int, PartOfDay]] = []
    for pattern, part in _ZH_PARTS if lang == "zh" else _EN_PARTS:
        found.extend((m.start(), part) for m in pattern.finditer(clause))
    return sorted(found, key=lambda item: item[0])


def _hour(hour: int, minute: int, part: PartOfDay | None, marker: str | None) -> time | None:
    """A clock hour in the part of day it was said in; without one, 1 to 7 o'clock are afternoon hours (nobody books 3 a.m.)."""
    if marker in ("pm", "p.m.") and hour < 12:
        hour += 12
    elif marker in ("am", "a.m."):
        hour = 0 if hour == 12 else hour
    elif part in (PartOfDay.AFTERNOON, PartOfDay.EVENING) and hour < 12:
        hour += 12
    elif part is PartOfDay.NOON and hour <= 3:
        hour += 12
    elif part is None and marker is None and 1 <= hour <= 7:
        hour += 12
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return time(hour, minute)


_ZH_T = r"(\d{1,2})(?:[:：](\d{2})|\s*点钟?\s*(半|\d{1,2}(?:分)?|1刻)?)"
_ZH_RANGE = re.compile(_ZH_T + r"\s*(?:到|至|-|~|—|–)\s*(?:上午|下午|晚上|中午)?\s*" + _ZH_T + r"(?:之间|中间)?")
_ZH_BEFORE = re.compile(_ZH_T + r"\s*(?:以前|之前|前)|中午\s*(?:之前|以前|前)")
_ZH_AFTER = re.compile(_ZH_T + r"\s*(?:以后|之后|后|过后|往后|开始|以外)?|中午\s*(?:之后|以后|后)")
_EN_T = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"
# a number followed by these is a date or a duration, not a clock time
_NOT_A_TIME = r"(?!\s*(?:/|min|hour|st\b|nd\b|rd\b|th\b|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))"
_EN_RANGE = re.compile(r"(?:\bbetween\s+|\bfrom\s+)?\b" + _EN_T + r"\s*(?:-|–|~|\bto\b|\band\b|\btill\b|\buntil\b)\s*" + _EN_T
                       + _NOT_A_TIME)
_EN_BEFORE = re.compile(r"(?<!not )\b(?:before|by|not after|no later than|until|till)\s+(?:" + _EN_T + _NOT_A_TIME + r"|(noon|midday))")
_EN_AFTER = re.compile(r"\b(?:after|from|not before|no earlier than|past|at|around|about|@)\s+" + _EN_T + _NOT_A_TIME
                       + r"|\b(?:after|from|not before|no earlier than|past)\s+(noon|midday)"
                       # a bare "3pm" is the earliest start, unless a word before it made it a limit ("before 1pm")
                       r"|(?<!before )(?<!by )(?<!until )(?<!till )(?<!later than )\b(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)")


def _zh_time(hour: str, colon: str | None, rest: str | None, part: PartOfDay | None) -> time | None:
    minute = int(colon) if colon else 30 if rest == "半" else 15 if rest == "1刻" else int(rest.rstrip("分")) if rest else 0
    return _hour(int(hour), minute, part, None)


def _times(clause: str, default: PartOfDay | None, lang: str) -> tuple[time | None, time | None]:
    """(after, before) in one clause; each clock time is read in the part of day said last before it in the clause
    ("上午10点到下午2点"), else in the message's."""
    said = _parts(clause, lang)

    def part(position: int) -> PartOfDay | None:
        return next((p for start, p in reversed(said) if start < position), default)

    after: time | None = None
    before: time | None = None
    if lang == "zh":
        if (r := _ZH_RANGE.search(clause)) is not None:
            return (_zh_time(r.group(1), r.group(2), r.group(3), part(r.start(1))),
                    _zh_time(r.group(4), r.group(5), r.group(6), part(r.start(4))))
        if (b := _ZH_BEFORE.search(clause)) is not None:
            before = _zh_time(b.group(1), b.group(2), b.group(3), part(b.start(1))) if b.group(1) else time(12, 0)
        elif (a := _ZH_AFTER.search(clause)) is not None:
            after = _zh_time(a.group(1), a.group(2), a.group(3), part(a.start(1))) if a.group(1) else time(12, 0)
        return after, before
    r = _EN_RANGE.search(clause)
    # "between 2 and 4" is a range, "2 and 4 more things" is not
    if r is not None and (r.group(0).startswith(("between", "from")) or not re.search(r"\band\b", r.group(0))):
        start_marker, end_marker = r.group(3), r.group(6)
        end = _hour(int(r.group(4)), int(r.group(5) or 0), part(r.start(4)), end_marker)
        start = _hour(int(r.group(1)), int(r.group(2) or 0), part(r.start(1)), start_marker or end_marker)
        if start is not None and end is not None and start > end and not start_marker:  # "11 to 2 pm": only the end is after noon
            start = _hour(int(r.group(1)), int(r.group(2) or 0), part(r.start(1)), "am")
        return start, end
    if (b := _EN_BEFORE.search(clause)) is not None:
        before = _hour(int(b.group(1)), int(b.group(2) or 0), part(b.start(1)), b.group(3)) if b.group(1) else time(12, 0)
    for a in _EN_AFTER.finditer(clause):
        if a.group(4):
            after = time(12, 0)
        elif a.group(1):
            after = _hour(int(a.group(1)), int(a.group(2) or 0), part(a.start(1)), a.group(3))
        else:
            after = _hour(int(a.group(5)), int(a.group(6) or 0), part(a.start(5)), a.group(7))
        if after is not None:
            break
    return after, before


_ANY_DAY = date(2000, 1, 3)  # for asking whether a message names a day at all


def _when(norm: str, today: date, lang: str) -> _When:
    """The day, part of day and times a message names. Several days: the last one not in a negated clause
    ("今天没空，明天吧"); the part of day from the same clause if it has one, else from the first clause not negated."""
    clauses = [c for c in _CLAUSE.split(norm) if c and c.strip()]
    chosen: tuple[int, date, PartOfDay | None] | None = None
    for index, clause in enumerate(clauses):
        for day, implied in _days(clause, today, lang):
            if not _negated(clause, lang):
                chosen = (index, day, implied)
    part: PartOfDay | None = None
    if chosen is not None and (parts := _parts(clauses[chosen[0]], lang)):
        part = parts[0][1]
    elif chosen is not None and chosen[2] is not None:
        part = chosen[2]
    else:
        for clause in clauses:
            if (parts := _parts(clause, lang)) and not (len(clauses) > 1 and _negated(clause, lang)):
                part = parts[0][1]
                break
    after: time | None = None
    before: time | None = None
    for clause in clauses:
        a, b = _times(clause, part, lang)
        after, before = after or a, before or b
    return _When(chosen[1] if chosen else None, part, after, before)


# ---------------------------------------------------------------- measuring

# the intents whose fields (day, part of day, times, minutes) a message should carry
FIELD_INTENTS = frozenset({Intent.RESCHEDULE, Intent.LATE, Intent.ON_MY_WAY})
FIELDS = ("date", "part_of_day", "after", "before", "minutes")


def score(cases: list[dict[str, object]], language: str | None = None) -> dict[str, object]:
    """Accuracy on labelled utterances ({"text", "role", "now", "intent", "date", …} as in tests/data/understanding):
    intent over all of them; the fields, all equal at once, over those whose expected intent carries fields."""
    intents = fields = with_fields = 0
    for case in cases:
        now = datetime.fromisoformat(str(case["now"]))
        role: Role = "technician" if case["role"] == "technician" else "customer"
        got = understand(str(case["text"]), role, now, language).to_json()
        intents += got["intent"] == case["intent"]
        if Intent(str(case["intent"])) in FIELD_INTENTS:
            with_fields += 1
            fields += all(got[name] == case.get(name) for name in FIELDS)
    detected = [detect_language(str(case["text"])) for case in cases]
    return {
        "language": language or max(("zh", "en"), key=detected.count),
        "utterances": len(cases),
        "intent_accuracy": round(intents / len(cases), 3) if cases else None,
        "date_accuracy": round(fields / with_fields, 3) if with_fields else None,
    }
