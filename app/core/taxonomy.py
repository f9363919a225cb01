"""The codes Pingjia speaks, with the Chinese names a person reads: one place for all of them.

Reviews: aspect codes, polarities, sentiment labels and the aspect model's (aspect, polarity)
pairs. Transcripts: QA dimensions, grade bands, violation rules, forbidden-phrase categories,
severities, PII types, polite and escalation cue kinds, emotions, escalation levels, resolution
statuses and turn roles.

The lexicon validators, the aspect model's artifact check, the response schemas,
``GET /v1/taxonomy`` and the training library all import these, so they cannot drift apart.
Plain tuples and dicts; order matters: it is the order clients see, and ``PAIRS`` is the
order of the aspect model's outputs that every trained artifact records.
"""

from __future__ import annotations

# ---------------------------------------------------------------- reviews

ASPECTS: tuple[str, ...] = (
    "logistics",
    "quality",
    "description",
    "attitude",
    "responsiveness",
    "competence",
    "after_sales",
    "price",
    "other",
)
"""Aspect and root-cause codes (ANNOTATION.md), in the order the API lists them."""

ASPECT_NAMES_ZH: dict[str, str] = {
    "logistics": "物流配送",
    "quality": "商品质量",
    "description": "与描述不符",
    "attitude": "服务态度",
    "responsiveness": "响应与处理速度",
    "competence": "专业能力",
    "after_sales": "售后处理",
    "price": "价格",
    "other": "其他",
}

GENERAL = "general"
"""The lexicon dimension of an opinion word that names no aspect (慢, 好): the keyword step
gives it the aspect of a target nearby, else it stays general (sentiment only)."""

KEYWORD_DIMENSIONS: tuple[str, ...] = (*ASPECTS, GENERAL)
"""What a row of ``service_keywords.csv`` may name as its dimension."""

DIMENSION_NAMES_ZH: dict[str, str] = {**ASPECT_NAMES_ZH, GENERAL: "通用"}
"""A keyword's dimension: an aspect, or general (an opinion word with no aspect of its own)."""

POLARITIES: tuple[str, ...] = ("positive", "negative")
"""Polarity of a keyword hit or an aspect finding."""

POLARITY_NAMES_ZH: dict[str, str] = {"positive": "正面", "negative": "负面"}

SENTIMENT_LABELS: tuple[str, ...] = ("positive", "neutral", "negative")
"""Sentiment labels, in the column order of the sentiment model's probabilities."""

REVIEW_SENTIMENT_NAMES_ZH: dict[str, str] = {"positive": "好评", "neutral": "中评", "negative": "差评"}
"""A review's sentiment as a shop names it (the 差评报表's words)."""

SENTIMENT_NAMES_ZH: dict[str, str] = {"positive": "正面", "neutral": "中性", "negative": "负面"}
"""A chat turn's or customer's sentiment: not a review, so no 好评/差评."""

PAIRS: tuple[tuple[str, str], ...] = tuple((a, p) for a in ASPECTS for p in POLARITIES)
"""The aspect model's outputs in its output order: aspect-major, positive before negative.
Every trained artifact records this list and is refused when it differs."""

PAIR_CODES: tuple[str, ...] = tuple(f"{a}:{p}" for a, p in PAIRS)
"""``aspect:polarity``: how artifacts, metrics and model cards name a pair."""

NEGATIVE_PAIRS: tuple[int, ...] = tuple(j for j, (_, p) in enumerate(PAIRS) if p == "negative")
"""Indices into ``PAIRS`` of the negative pairs: the root causes."""

N_PAIRS = len(PAIRS)

# ---------------------------------------------------------------- transcripts

QA_DIMENSIONS: tuple[str, ...] = ("responsiveness", "attitude", "resolution", "competence")
"""The four QA dimensions a profile weights, in the order they are scored and reported."""

QA_DIMENSION_NAMES_ZH: dict[str, str] = {
    "responsiveness": "响应速度",
    "attitude": "服务态度",
    "resolution": "问题解决",
    "competence": "专业能力",
}

GRADES: tuple[tuple[int, str, str], ...] = (
    (90, "excellent", "优秀"),
    (80, "good", "良好"),
    (60, "pass", "合格"),
    (0, "needs_improvement", "待改进"),
)
"""QA grade bands, best first: (lowest score of the band, code, Chinese name)."""

GRADE_CODES: tuple[str, ...] = tuple(code for _, code, _ in GRADES)
GRADE_NAMES_ZH: tuple[str, ...] = tuple(zh for _, _, zh in GRADES)

VIOLATION_RULES: tuple[str, ...] = ("forbidden_phrase", "pii_leak", "missing_greeting", "missing_closing", "slow_reply")
"""Rule codes of a violation; a QA profile's deductions are keyed by them."""

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
"""Severity of a violation, lowest first; a profile gives points per severity."""

SERVICE_CODE_NAMES_ZH: dict[str, str] = {
    "blame_shifting": "推诿",
    "dismissive": "敷衍",
    "impatient": "不耐烦",
    "challenging": "反问质疑",
    "rude": "辱骂讽刺",
    "over_promise": "过度承诺",
    "off_platform": "引导站外",
}
"""The 服务禁语 an agent must avoid (CHAT_ANNOTATION.md), besides leaking private data."""

SERVICE_CODE_SEVERITY: dict[str, str] = {
    "blame_shifting": "medium",
    "dismissive": "medium",
    "impatient": "medium",
    "challenging": "medium",
    "rude": "high",
    "over_promise": "medium",
    "off_platform": "high",
}
"""Severity of a 服务禁语 the model finds (a phrase-list hit carries its own row's severity)."""

FORBIDDEN_CATEGORIES: tuple[str, ...] = tuple(SERVICE_CODE_NAMES_ZH)
"""Categories of ``forbidden_phrases.csv`` and of the trained violation model (a
``forbidden_phrase`` violation's ``category``); the QA profiles choose which ones cost
attitude and which competence points."""

VIOLATION_NAMES_ZH: dict[str, str] = {**SERVICE_CODE_NAMES_ZH, "pii_leak": "泄露隐私"}

RULE_NAMES_ZH: dict[str, str] = {
    "forbidden_phrase": "服务禁语",
    "pii_leak": "泄露隐私",
    "missing_greeting": "缺少问候语",
    "missing_closing": "缺少结束语",
    "slow_reply": "回复超时",
}
"""A violation's ``rule`` (``VIOLATION_RULES``)."""

SEVERITY_NAMES_ZH: dict[str, str] = {"low": "低", "medium": "中", "high": "高"}
VIOLATION_CODES: tuple[str, ...] = tuple(VIOLATION_NAMES_ZH)
"""The codes an inspector labels on an agent turn (the chat model's classes plus the PII rule)."""

AGENT_CUE_KINDS: tuple[str, ...] = (*FORBIDDEN_CATEGORIES, "action", "reason", "alternative", "empathy")
"""Kinds of ``agent_cues.csv``: a lean towards a 服务禁语 code, or towards an acceptable reply."""

PII_TYPES: tuple[str, ...] = ("phone", "id_card", "bank_card", "address")
PII_NAMES_ZH: dict[str, str] = {"phone": "手机号", "id_card": "身份证号", "bank_card": "银行卡号", "address": "地址"}

POLITE_KINDS: tuple[str, ...] = ("greeting", "closing", "apology", "empathy", "thanks", "waiting", "help")
"""Kinds of ``polite_phrases.csv``; greeting and closing are also checked for absence."""

POLITE_NAMES_ZH: dict[str, str] = {
    "greeting": "问候",
    "closing": "结束语",
    "apology": "致歉",
    "empathy": "共情",
    "thanks": "致谢",
    "waiting": "请稍候",
    "help": "主动帮助",
}

THREAT_KINDS: tuple[str, ...] = ("complaint", "regulator", "media", "review_threat", "legal")
"""Escalation cue kinds that threaten (投诉, 12315, 曝光, 差评, 起诉): two kinds raise the risk a level."""

PRESSING_KINDS: tuple[str, ...] = ("transfer", "demand")
"""Escalation cue kinds that press for an answer (转人工, 催促): repeated, they set a floor on the risk."""

ESCALATION_KINDS: tuple[str, ...] = (*THREAT_KINDS, *PRESSING_KINDS)
"""Kinds of ``escalation_cues.csv``."""

ESCALATION_LEVELS: tuple[str, ...] = ("none", "low", "medium", "high")
"""Escalation risk, lowest first (a cue's level and the conversation's risk)."""

ESCALATION_NAMES_ZH: dict[str, str] = {"none": "无", **SEVERITY_NAMES_ZH}

CUE_EMOTIONS: tuple[str, ...] = ("anger", "anxiety", "disappointment", "satisfaction")
"""Emotions ``emotion_cues.csv`` can name, in tie-break order (equal cue weights: the earlier wins)."""

EMOTIONS: tuple[str, ...] = (*CUE_EMOTIONS, "neutral")
"""A customer turn's emotion: a cue emotion, or neutral when neither cues nor sentiment say more."""

SATISFACTION_ZH: dict[str, str] = {"dissatisfied": "不满意", "neutral": "一般", "satisfied": "满意"}
"""A customer turn's satisfaction at that point (CHAT_ANNOTATION.md), worst first."""
SATISFACTION_LEVELS: tuple[str, ...] = tuple(SATISFACTION_ZH)

EMOTIONS_ZH: dict[str, str] = {
    "anger": "愤怒",
    "anxiety": "焦虑",
    "disappointment": "失望",
    "satisfaction": "满意",
    "neutral": "中性",
}

CUE_RESOLUTION_STATUSES: tuple[str, ...] = ("resolved", "unresolved")
"""What a row of ``resolution_cues.csv`` says."""

RESOLUTION_STATUSES: tuple[str, ...] = (*CUE_RESOLUTION_STATUSES, "unknown")
"""A conversation's resolution status: a cue's, or unknown when no cue decides."""

RESOLUTION_NAMES_ZH: dict[str, str] = {"resolved": "已解决", "unresolved": "未解决", "unknown": "未知"}

ROLES: tuple[str, ...] = ("customer", "agent", "bot", "system")
"""Who speaks a turn; only customer and agent turns are judged."""

ROLE_NAMES_ZH: dict[str, str] = {"customer": "客户", "agent": "客服", "bot": "机器人", "system": "系统"}

# ---------------------------------------------------------------- names, by kind

GRADE_NAMES_ZH_BY_CODE: dict[str, str] = {code: name for _, code, name in GRADES}

NAMES_ZH: dict[str, dict[str, str]] = {
    "aspect": ASPECT_NAMES_ZH,
    "cause": ASPECT_NAMES_ZH,
    "dimension": DIMENSION_NAMES_ZH,
    "polarity": POLARITY_NAMES_ZH,
    "review_sentiment": REVIEW_SENTIMENT_NAMES_ZH,
    "sentiment": SENTIMENT_NAMES_ZH,
    "qa_dimension": QA_DIMENSION_NAMES_ZH,
    "grade": GRADE_NAMES_ZH_BY_CODE,
    "rule": RULE_NAMES_ZH,
    "violation": {**RULE_NAMES_ZH, **VIOLATION_NAMES_ZH},
    "category": SERVICE_CODE_NAMES_ZH,
    "severity": SEVERITY_NAMES_ZH,
    "escalation": ESCALATION_NAMES_ZH,
    "emotion": EMOTIONS_ZH,
    "satisfaction": SATISFACTION_ZH,
    "resolution": RESOLUTION_NAMES_ZH,
    "role": ROLE_NAMES_ZH,
    "pii": PII_NAMES_ZH,
    "polite": POLITE_NAMES_ZH,
}
"""Every code a person reads, by kind: what :func:`zh` looks up. ``violation`` covers a QA
report's violation codes (a 服务禁语 category, or a rule such as pii_leak or slow_reply)."""


def zh(kind: str, code: str | None) -> str | None:
    """The Chinese name of ``code``; a code the taxonomy does not know (an analyst's own rule
    code) is shown as itself, and None stays None. An unknown ``kind`` is a bug: KeyError.

    >>> zh("cause", "logistics"), zh("grade", "good"), zh("violation", "my_flag"), zh("rule", None)
    ('物流配送', '良好', 'my_flag', None)
    """
    names = NAMES_ZH[kind]
    return None if code is None else names.get(code, code)
