"""The 差评报表: counts, complaint terms, groups that stand out, daily trend and spikes.

Two halves, so memory stays bounded whatever the number of rows:

- ``Accumulator`` turns scored rows into additive counters: ``counts[(dim, key, metric)]``
  (dim ``all``, ``g:<column>`` or ``day``; for conversations also ``qa`` and ``qa:<column>``,
  see :mod:`app.jobs.qa_report`), ``terms[term] = [neg, pos, n_all, example_row]`` and
  ``examples[(dim, key, code)] = (row_index, json)`` (the lowest row wins, so the example
  does not depend on how rows were cut into chunks). A worker fills one per chunk; the
  store sums them in the chunk's transaction.
- ``build_report`` reads the summed counters from a ``ReportSource`` (the store, or an
  in-memory one in tests) and does the statistics. Only group/day counters are held in
  memory (bounded by the number of groups and days); terms are streamed through a heap.

Every threshold used is written into the report (``thresholds``), so a reader can judge it.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Protocol

from app.core.taxonomy import SENTIMENT_LABELS, zh

EPOCH_TZ = timezone(timedelta(hours=8))  # epoch timestamps are read as China Standard Time
DATE_HINT = re.compile(r"date|time|day|created|updated|_at$|^ts$|日期|时间|日|时", re.I)
# Matched against the stripped value with ``fullmatch``: no leading/trailing ``\s*`` and no two
# adjacent whitespace runs, so a failing match is linear in the value's length (the old pattern
# ended ``\s*(tz)?\s*$``, quadratic on a long run of spaces).
_DATE = re.compile(
    r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:(?:[T\s]+|日)\d{1,2}[:时]\d{1,2}(?:[:分]\d{1,2}(?:\.\d+)?秒?)?)?"
    r"(?:\s*(?:Z|[+-]\d{2}:?\d{2}))?"
)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_EPOCH = re.compile(r"(\d{10})(\d{3})?(?:\.\d+)?")
MAX_DATE_CHARS = 64  # longer values are never dates (and are not matched at all)


@dataclass(frozen=True)
class ReportConfig:
    """The report's thresholds; all of them are echoed in the report."""

    max_group_values: int = 50  # a column is a group column with 2..this many distinct values
    max_group_share: float = 0.5  # ... and at most one distinct value per 2 rows
    group_alpha: float = 0.05  # one-sided two-proportion z-test, Bonferroni over a column's groups
    group_min_rows: int = 30  # groups (and their "rest") smaller than this are not tested
    group_min_difference: float = 0.02  # flagged only if the rate is also this much above the rest
    terms_top: int = 20
    terms_prior_fraction: float = 0.1  # alpha_0 = this x all word occurrences (prior pseudo-counts)
    terms_min_negative: int = 5  # a term must be in at least this many negative texts
    terms_min_z: float = 1.96
    spike_window_days: int = 7  # trailing window (calendar days before the day)
    spike_min_trailing_days: int = 3  # days with data needed in the window
    spike_min_rows: int = 20  # rows needed on the day
    spike_rate_jump: float = 0.10  # negative rate up by >= 10 points ...
    spike_rate_ratio: float = 1.5  # ... and >= 1.5x the trailing rate ...
    spike_share_jump: float = 0.05  # a cause's share up by >= 5 points ...
    spike_share_ratio: float = 2.0  # ... and >= 2x its trailing share ...
    spike_min_cause_rows: int = 5  # ... with at least 5 rows of that cause that day ...
    spike_alpha: float = 0.01  # ... and one-sided two-proportion p < 0.01 against the window
    example_chars: int = 200


DEFAULT_CONFIG = ReportConfig()


# --- dates ------------------------------------------------------------------------
def parse_day(value: object, *, allow_epoch: bool = False) -> str | None:
    """The calendar day ``YYYY-MM-DD`` a date/time value falls on, or None.

    Dates keep the day as written (no time-zone shift); epoch seconds/milliseconds (only
    when ``allow_epoch``, i.e. the column name says it is a time) are read in UTC+08:00.
    A value over ``MAX_DATE_CHARS`` is None without being matched (uploads are hostile).

    >>> parse_day("2026-11-20T10:00:40+08:00"), parse_day("2026年11月3日"), parse_day("20261103")
    ('2026-11-20', '2026-11-03', '2026-11-03')
    >>> parse_day("1763604000", allow_epoch=True), parse_day("hello"), parse_day("2026-13-01")
    ('2025-11-20', None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_DATE_CHARS:
        return None
    return _day_of_text(text, allow_epoch)


@lru_cache(maxsize=4096)  # a file's rows share a few hundred days at most: each is parsed once
def _day_of_text(text: str, allow_epoch: bool) -> str | None:
    text = text.strip()
    m = _DATE.fullmatch(text) or _COMPACT.fullmatch(text)
    if m:
        try:
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            return None
    if allow_epoch and (m := _EPOCH.fullmatch(text)):
        seconds = int(m[1])
        return datetime.fromtimestamp(seconds, EPOCH_TZ).date().isoformat()
    return None


# --- accumulating --------------------------------------------------------------------
QA_COLUMNS = ("agent_id", "channel")  # the QA section's per-agent and per-channel tables
NON_SERVICE_CODES = frozenset({"missing_greeting", "missing_closing", "slow_reply"})
"""Violation codes counted on their own but not in the violation rate (every other code —
服务禁语 categories and ``pii_leak`` — is a service violation)."""
FIRST_RESPONSE_EDGES: tuple[int, ...] = (0, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600, 7200)
"""Lower edges (seconds) of the first-response histogram: bucket i is [edge i, edge i+1), the
last one [7200, inf). Percentiles are interpolated inside a bucket (docs/jobs.md)."""


@dataclass(frozen=True, slots=True)
class QAFacts:
    """What the QA section needs from one analysed conversation."""

    score: float
    grade: str
    resolution: str
    first_response_seconds: float | None
    violations: tuple[tuple[str, int, str], ...] = ()  # (code, turn, example text), in turn order
    applicable: bool = True  # False: no agent turn (QA judged an unattended conversation)
    dimensions: tuple[tuple[str, float], ...] = ()  # (QA dimension code, 0-100 score), the score's order


@dataclass(frozen=True, slots=True)
class RowFacts:
    """What the report needs from one analysed row."""

    label: str
    causes: tuple[str, ...]
    aspects: tuple[tuple[str, str], ...]
    terms: frozenset[str] = frozenset()
    qa: QAFacts | None = None  # conversations only
    mixed: bool = False  # reviews only: praise and blame on different evidence (sentiment.mixed)


def first_response_bucket(seconds: float) -> int:
    """Index of the histogram bucket holding ``seconds`` (negative counts as 0).

    >>> first_response_bucket(0), first_response_bucket(59.9), first_response_bucket(60), first_response_bucket(1e6)
    (0, 6, 7, 16)
    """
    return max(0, bisect_right(FIRST_RESPONSE_EDGES, seconds) - 1)


def bucket_percentile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile of values binned by ``FIRST_RESPONSE_EDGES``, linear inside its bucket;
    in the open last bucket, its lower edge (a floor). None without values.

    >>> bucket_percentile([0, 0, 0, 0, 0, 1], 0.5)  # one value in [30, 45)
    37.5
    >>> bucket_percentile([2, 0, 0, 0, 0, 0, 0, 0, 2], 0.5), bucket_percentile([0] * 16 + [3], 0.9)
    (5.0, 7200)
    """
    n = sum(counts)
    if not n:
        return None
    target, seen = q * n, 0
    for i, c in enumerate(counts):
        if c and seen + c >= target:
            lo = FIRST_RESPONSE_EDGES[i]
            if i + 1 >= len(FIRST_RESPONSE_EDGES):
                return lo
            return round(lo + (target - seen) / c * (FIRST_RESPONSE_EDGES[i + 1] - lo), 1)
        seen += c
    return FIRST_RESPONSE_EDGES[-1]


class Accumulator:
    """Additive counters for a set of rows (one chunk, or a whole file).

    A row counts each of its metrics (rows, analysed, its label, causes and aspects) in each of
    its scopes (all rows, each group value, its day): some 30 counters. They are kept as one
    count per scope and the row's metrics together, spread over the metrics when
    :attr:`counts` is read, since rows repeat their metrics: a bench review's add, its share of
    the spreading and of the term table 8.2 -> 7.0 µs.
    Term counts are kept as three counters and a first-row map, each filled by one C-level
    call per row (``Counter.update``, ``dict.update``); :attr:`terms` joins them."""

    def __init__(self):
        self._counts: Counter = Counter()
        self._scoped: Counter = Counter()  # (dim, key, a row's metric names) -> rows
        self._metrics: dict[tuple, tuple[str, ...]] = {}  # a row's facts -> its metric names
        self.examples: dict[tuple[str, str, str], tuple[int, str]] = {}
        self.in_texts: Counter = Counter()  # term -> texts containing it
        self.in_negative: Counter = Counter()
        self.in_positive: Counter = Counter()
        self.first_negative: dict[str, int] = {}  # term -> first negative row added

    @property
    def counts(self) -> Counter:
        """(dim, key, metric) -> count."""
        if self._scoped:
            c = self._counts
            for (dim, key, metrics), n in self._scoped.items():
                for metric in metrics:
                    c[(dim, key, metric)] += n
            self._scoped.clear()
        return self._counts

    def add(
        self,
        row_index: int,
        facts: RowFacts | None,
        *,
        error: str | None = None,
        groups: Mapping[str, str] | None = None,
        day: str | None = None,
        dated: bool = False,
        qa_groups: Mapping[str, str] | None = None,
        row_id: str | None = None,
    ) -> None:
        """Count one row in every scope it belongs to; ``facts`` None means an error row.
        ``qa_groups`` (conversations: agent_id, channel) scope the QA counters."""
        if qa_groups is not None:
            self._add_qa(row_index, row_id, facts, qa_groups)
        scopes = [("all", "")]
        scopes += [(f"g:{col}", val) for col, val in (groups or {}).items() if val]
        if dated:
            scopes.append(("day", day or ""))
        if facts is None:
            metrics = ("rows", "errors")
        else:
            row = (facts.label, facts.mixed, facts.causes, facts.aspects)
            metrics = self._metrics.get(row)
            if metrics is None:
                metrics = self._metrics[row] = _metric_names(facts)
        self._scoped.update([(dim, key, metrics) for dim, key in scopes])  # one C-level count
        if facts is None:
            self._counts[("all", "", f"err:{error or 'error'}")] += 1
            return
        terms = facts.terms
        self.in_texts.update(terms)
        if facts.label == "negative":
            self.in_negative.update(terms)
            self.first_negative.update(dict.fromkeys(terms.difference(self.first_negative), row_index))
        elif facts.label == "positive":
            self.in_positive.update(terms)

    def term_totals(self) -> tuple[int, int, int]:
        """The :attr:`terms` columns' sums: (negative, positive, all) text-term pairs."""
        return self.in_negative.total(), self.in_positive.total(), self.in_texts.total()

    @property
    def terms(self) -> dict[str, list]:
        """term -> [negative texts, positive texts, all texts, first negative row or None]."""
        neg, pos, first = self.in_negative.get, self.in_positive.get, self.first_negative.get
        return {t: [neg(t, 0), pos(t, 0), n, first(t)] for t, n in self.in_texts.items()}

    def _add_qa(self, row_index: int, row_id: str | None, facts: RowFacts | None, qa_groups: Mapping[str, str]) -> None:
        """QA counters of one conversation, overall and per agent/channel (values as given)."""
        scopes = [("qa", ""), *((f"qa:{col}", val) for col, val in qa_groups.items() if val)]
        qa = facts.qa if facts is not None else None
        c = self._counts
        for scope in scopes:
            c[(*scope, "rows")] += 1
            if facts is None:
                c[(*scope, "errors")] += 1
        if qa is None:
            return
        metrics = [
            "conversations",
            f"grade:{qa.grade}",
            f"res:{qa.resolution}",
            "frt_missing"
            if qa.first_response_seconds is None
            else f"frt:{first_response_bucket(qa.first_response_seconds)}",
        ]
        if not qa.applicable:
            metrics.append("unattended")
        codes = Counter(code for code, _, _ in qa.violations)
        if any(code not in NON_SERVICE_CODES for code in codes):
            metrics.append("service_violation")
        firsts = {}
        for code, turn, text in qa.violations:
            firsts.setdefault(code, (turn, text[: DEFAULT_CONFIG.example_chars]))
        score = round(qa.score * 100)
        # a dimension's mean is over the conversations it judged: an unattended one (no agent
        # turn) has its dimension scores set by rule, not earned by an agent, so it is left out
        dims = [(code, round(value * 100)) for code, value in qa.dimensions] if qa.applicable else []
        for scope in scopes:
            for m in metrics:
                c[(*scope, m)] += 1
            c[(*scope, "score_centi")] += score
            for code, centi in dims:
                c[(*scope, f"dim_centi:{code}")] += centi
                c[(*scope, f"dim_n:{code}")] += 1
            for code, n in codes.items():
                c[(*scope, f"viol:{code}")] += n
                c[(*scope, f"vconv:{code}")] += 1
            for code, (turn, text) in firsts.items():
                key = (*scope, code)
                if key not in self.examples or row_index < self.examples[key][0]:
                    data = {"row": row_index + 1, "id": row_id, "turn": turn, "text": text}
                    self.examples[key] = (row_index, json.dumps(data, ensure_ascii=False))

    def merge(self, other: Accumulator) -> None:
        self.counts.update(other.counts)
        self.in_texts.update(other.in_texts)
        self.in_negative.update(other.in_negative)
        self.in_positive.update(other.in_positive)
        first = self.first_negative
        for term, row in other.first_negative.items():
            if term not in first or row < first[term]:
                first[term] = row
        for key, (row, data) in other.examples.items():
            if key not in self.examples or row < self.examples[key][0]:
                self.examples[key] = (row, data)


def _metric_names(facts: RowFacts) -> tuple[str, ...]:
    """The metrics an analysed row counts in each of its scopes."""
    metrics = ["rows", "analysed", f"sent:{facts.label}"]
    if facts.mixed:
        metrics.append("mixed")
    metrics += [f"cause:{cause}" for cause in facts.causes]
    metrics += [f"aspect:{aspect}:{polarity}" for aspect, polarity in facts.aspects]
    return tuple(metrics)


# --- reading back ------------------------------------------------------------------
class ReportSource(Protocol):
    def iter_counts(self) -> Iterable[tuple[str, str, str, int]]: ...
    def iter_terms(self) -> Iterable[tuple[str, int, int, int, int | None]]: ...
    def term_totals(self) -> tuple[int, int, int]: ...
    def texts(self, rows: list[int]) -> dict[int, tuple[str, str]]: ...
    def error_examples(self, limit: int) -> list[dict]: ...
    def iter_examples(self) -> Iterable[tuple[str, str, str, int, str]]: ...


class MemorySource:
    """A ``ReportSource`` over an ``Accumulator`` held in memory (tests, small inputs)."""

    def __init__(
        self, acc: Accumulator, texts: Mapping[int, tuple[str, str]] | None = None, errors: list[dict] | None = None
    ):
        self.acc, self._texts, self._errors = acc, texts or {}, errors or []

    def iter_counts(self):
        return ((d, k, m, n) for (d, k, m), n in self.acc.counts.items())

    def iter_terms(self):
        return ((t, *v) for t, v in self.acc.terms.items())

    def term_totals(self):
        return self.acc.term_totals()

    def texts(self, rows):
        return {r: self._texts[r] for r in rows if r in self._texts}

    def error_examples(self, limit):
        return self._errors[:limit]

    def iter_examples(self):
        return ((d, k, m, row, data) for (d, k, m), (row, data) in self.acc.examples.items())


# --- building ----------------------------------------------------------------------
def read_scopes(source: ReportSource) -> dict[tuple[str, str], Counter]:
    """The summed counters by scope ``(dim, key)``."""
    scopes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for dim, key, metric, n in source.iter_counts():
        scopes[(dim, key)][metric] += n
    return scopes


def build_report(
    source: ReportSource,
    plan: Mapping,
    *,
    config: ReportConfig = DEFAULT_CONFIG,
    scopes: Mapping[tuple[str, str], Counter] | None = None,
    sentiment_names: str = "review_sentiment",
    mixed: bool = True,
) -> dict:
    """The whole report from summed counters; ``plan`` names group and date columns;
    ``sentiment_names`` the taxonomy's names of the labels (a chat's: 正面/中性/负面); ``mixed``:
    the share of mixed reviews (a review figure: a conversation has no one sentiment finding)."""
    if scopes is None:
        scopes = read_scopes(source)
    overall = scopes.get(("all", ""), Counter())
    mixed_share = {"count": overall["mixed"], "share": _share(overall["mixed"], overall["analysed"])}
    report = {
        "totals": {"rows": overall["rows"], "analysed": overall["analysed"], "errors": overall["errors"]},
        **_breakdown(overall, sentiment_names),
        **({"mixed": mixed_share} if mixed else {}),
        "errors": {
            "by_code": {m[4:]: n for m, n in sorted(overall.items()) if m.startswith("err:")},
            "examples": source.error_examples(5),
        },
        "complaint_terms": complaint_terms(source, config),
        "groups": groups_report(scopes, plan.get("group_columns", []), config, sentiment_names),
        "daily": daily_report(scopes, plan.get("date_column"), config),
        "columns": plan.get("columns", {}),
        "column_selection": plan.get("rule"),
        "thresholds": asdict(config),
    }
    return report


def _share(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


def _breakdown(c: Counter, sentiment_names: str = "review_sentiment") -> dict:
    """Sentiment, root-cause and aspect-polarity counts with shares of analysed rows, each
    code with its Chinese name (``name_zh`` is kept for the clients that read it before
    ``cause_zh``/``aspect_zh``)."""
    analysed = c["analysed"]
    causes = sorted(((m[6:], n) for m, n in c.items() if m.startswith("cause:")), key=lambda x: (-x[1], x[0]))
    aspects: dict[str, dict[str, int]] = defaultdict(lambda: {"positive": 0, "negative": 0})
    for m, n in c.items():
        if m.startswith("aspect:"):
            _, aspect, polarity = m.split(":")
            aspects[aspect][polarity] += n
    return {
        "sentiment": {
            label: {
                "count": c[f"sent:{label}"],
                "share": _share(c[f"sent:{label}"], analysed),
                "label_zh": zh(sentiment_names, label),
            }
            for label in SENTIMENT_LABELS
        },
        "negative_rate": _share(c["sent:negative"], analysed),
        "root_causes": [
            {
                "cause": k,
                "cause_zh": zh("cause", k),
                "name_zh": zh("cause", k),
                "count": n,
                "share": _share(n, analysed),
            }
            for k, n in causes
        ],
        "aspects": [
            {
                "aspect": k,
                "aspect_zh": zh("aspect", k),
                "name_zh": zh("aspect", k),
                "positive": v["positive"],
                "negative": v["negative"],
                "positive_share": _share(v["positive"], analysed),
                "negative_share": _share(v["negative"], analysed),
            }
            for k, v in sorted(aspects.items(), key=lambda kv: -(kv[1]["positive"] + kv[1]["negative"]))
        ],
    }


def one_sided_p(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Two-proportion z-test, H1: p1 > p2. Returns (z, p).

    >>> z, p = one_sided_p(40, 100, 100, 1000)
    >>> round(z, 2), p < 1e-6
    (8.58, True)
    """
    if not n1 or not n2:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def complaint_terms(source: ReportSource, cfg: ReportConfig) -> dict:
    """Words over-represented in negative vs positive texts: Monroe et al. (2008) log-odds
    with an informative Dirichlet prior (the job's own word frequencies x ``prior_mass``)."""
    n_neg, n_pos, n_all = source.term_totals()
    method = {
        "method": "log-odds ratio with informative Dirichlet prior (Monroe, Colaresi & Quinn 2008)",
        "unit": "texts containing the word (each text counts a word once)",
        "prior": f"alpha_w = alpha_0 x share of word w among all analysed texts' words, alpha_0 = "
        f"{cfg.terms_prior_fraction:g} x all word occurrences (each word gets pseudo-counts worth "
        f"{cfg.terms_prior_fraction:.0%} of its overall frequency)",
        "rank": "z = delta_w / sqrt(var); kept when z >= "
        f"{cfg.terms_min_z} and the word is in >= {cfg.terms_min_negative} negative texts",
        "vocabulary": f"each text's first {50} distinct words from the pipeline's segmentation "
        "(stop words, digits and punctuation removed) plus its lexicon keyword hits",
    }
    if not (n_neg and n_pos and n_all):
        return {**method, "items": [], "note": "needs both negative and positive texts"}
    a0 = cfg.terms_prior_fraction * n_all
    heap: list[tuple[float, str, tuple]] = []
    for term, neg, pos, everywhere, example in source.iter_terms():
        if neg < cfg.terms_min_negative:
            continue
        alpha = a0 * everywhere / n_all
        delta = math.log((neg + alpha) / (n_neg + a0 - neg - alpha)) - math.log(
            (pos + alpha) / (n_pos + a0 - pos - alpha)
        )
        z = delta / math.sqrt(1 / (neg + alpha) + 1 / (pos + alpha))
        if z < cfg.terms_min_z:
            continue
        item = (z, term, (neg, pos, delta, example))
        if len(heap) < cfg.terms_top:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
    best = sorted(heap, reverse=True)
    texts = source.texts([x[2][3] for x in best if x[2][3] is not None])
    items = []
    for z, term, (neg, pos, delta, example) in best:
        ex = texts.get(example)
        items.append(
            {
                "term": term,
                "negative_texts": neg,
                "positive_texts": pos,
                "log_odds": round(delta, 4),
                "z": round(z, 2),
                "example": None
                if ex is None
                else {"row": example + 1, "id": ex[0], "text": ex[1][: cfg.example_chars]},
            }
        )
    return {**method, "negative_word_occurrences": n_neg, "positive_word_occurrences": n_pos, "items": items}


def rate_tests(rates: Mapping[str, tuple[int, int]], cfg: ReportConfig) -> tuple[dict[str, dict], int, float]:
    """The group test of this report, for any rate: ``rates[group] = (x, n)``; each group's
    x/n against the rest of the groups' (one-sided two-proportion z-test, H1: above the rest),
    tested only when the group and the rest each have >= ``group_min_rows``, at alpha
    ``group_alpha`` Bonferroni-corrected over the groups tested, and flagged only when also
    ``group_min_difference`` above the rest. Returns (per group, groups tested, alpha per group).

    >>> tests, tested, alpha = rate_tests({"a": (50, 100), "b": (10, 100), "c": (10, 100)}, DEFAULT_CONFIG)
    >>> tests["a"]["flagged"], tests["b"]["flagged"], tested, round(alpha, 4)
    (True, False, 3, 0.0167)
    """
    total_x = sum(x for x, _ in rates.values())
    total_n = sum(n for _, n in rates.values())
    testable = [k for k, (_, n) in rates.items() if n >= cfg.group_min_rows and total_n - n >= cfg.group_min_rows]
    alpha = cfg.group_alpha / max(1, len(testable))
    out = {}
    for key, (x, n) in rates.items():
        rest_x, rest_n = total_x - x, total_n - n
        entry = {
            "x": x,
            "n": n,
            "rate": _share(x, n),
            "rest_x": rest_x,
            "rest_n": rest_n,
            "rest_rate": _share(rest_x, rest_n),
            "z": None,
            "p_value": None,
            "flagged": False,
        }
        if key in testable:
            z, p = one_sided_p(x, n, rest_x, rest_n)
            entry.update(
                z=round(z, 3),
                p_value=float(f"{p:.3g}"),
                flagged=p < alpha and x / n - rest_x / rest_n >= cfg.group_min_difference,
            )
        out[key] = entry
    return out, len(testable), alpha


def group_test_rule(cfg: ReportConfig) -> str:
    """The group test in English. The report page says it in Chinese too, from the i18n.js
    template ``rule_groups`` filled with ``thresholds`` (its English one is this sentence:
    tests/test_ui.py), so the rule's prose is not written twice in Python."""
    return (
        "two-proportion z-test, one-sided (group rate > rest of the column), "
        f"alpha {cfg.group_alpha:g} Bonferroni-corrected over the groups tested in the column; "
        f"groups and rests under {cfg.group_min_rows} analysed rows are not tested; "
        f"a flagged group is also >= {cfg.group_min_difference * 100:g} percentage points above the rest"
    )


def groups_report(
    scopes: Mapping[tuple[str, str], Counter],
    columns: Iterable[str],
    cfg: ReportConfig,
    sentiment_names: str = "review_sentiment",
) -> dict:
    """Per group column: counts per group, and groups whose negative rate stands out."""
    out = {"test": group_test_rule(cfg), "columns": []}
    for col in columns:
        groups = {key: c for (dim, key), c in scopes.items() if dim == f"g:{col}"}
        tests, tested, alpha = rate_tests({k: (c["sent:negative"], c["analysed"]) for k, c in groups.items()}, cfg)
        rows = []
        for key, c in sorted(groups.items(), key=lambda kv: (-kv[1]["rows"], kv[0])):
            t = tests[key]
            rows.append(
                {
                    "value": key,
                    "rows": c["rows"],
                    "analysed": c["analysed"],
                    "errors": c["errors"],
                    **_breakdown(c, sentiment_names),
                    "rest_negative_rate": t["rest_rate"],
                    "z": t["z"],
                    "p_value": t["p_value"],
                    "flagged": t["flagged"],
                }
            )
        out["columns"].append(
            {
                "column": col,
                "groups_tested": tested,
                "alpha_per_group": alpha,
                "flagged": [g["value"] for g in rows if g["flagged"]],
                "groups": rows,
            }
        )
    return out


def daily_report(scopes: Mapping[tuple[str, str], Counter], column: str | None, cfg: ReportConfig) -> dict | None:
    """Volume, negative rate, every root cause's count and the top cause per day, and 投诉率骤升
    alerts; ``causes`` ranks the causes by their rows over the dated days (the trend's legend)."""
    if not column:
        return None
    days = sorted((key, c) for (dim, key), c in scopes.items() if dim == "day" and key)
    undated = scopes.get(("day", ""), Counter())["rows"]
    series = []
    totals: Counter = Counter()
    for key, c in days:
        causes = sorted(((m[6:], n) for m, n in c.items() if m.startswith("cause:")), key=lambda x: (-x[1], x[0]))
        totals.update(dict(causes))
        top = causes[0] if causes else None
        series.append(
            {
                "date": key,
                "rows": c["rows"],
                "analysed": c["analysed"],
                "negative": c["sent:negative"],
                "negative_rate": _share(c["sent:negative"], c["analysed"]),
                "top_cause": top[0] if top else None,
                "top_cause_zh": zh("cause", top[0]) if top else None,
                "top_cause_share": _share(top[1], c["analysed"]) if top else 0.0,
                "causes": dict(causes),
            }
        )
    return {
        "column": column,
        "undated_rows": undated,
        "causes": [
            {"cause": k, "cause_zh": zh("cause", k), "count": n}
            for k, n in sorted(totals.items(), key=lambda x: (-x[1], x[0]))
        ],
        "series": series,
        "alerts": list(spike_alerts(dict(days), cfg)),
        # the page's i18n.js ``rule_spikes`` template says the same from ``thresholds`` (test_ui.py)
        "rule": f"a day with >= {cfg.spike_min_rows} analysed rows is compared with the "
        f"{cfg.spike_window_days} calendar days before it (>= {cfg.spike_min_trailing_days} of them "
        f"with data): negative rate up >= {cfg.spike_rate_jump * 100:g} percentage points and >= "
        f"{cfg.spike_rate_ratio:g}x; or a cause's share of rows up >= {cfg.spike_share_jump * 100:g} points and "
        f">= {cfg.spike_share_ratio:g}x with >= {cfg.spike_min_cause_rows} rows; both also need a "
        f"one-sided two-proportion p < {cfg.spike_alpha:g}",
    }


def spike_alerts(days: Mapping[str, Counter], cfg: ReportConfig) -> Iterator[dict]:
    """Days whose negative rate, or one cause's share, jumps over the trailing window."""
    for key, c in sorted(days.items()):
        n = c["analysed"]
        if n < cfg.spike_min_rows:
            continue
        d = date.fromisoformat(key)
        window = [
            days[k]
            for k in ((d - timedelta(days=i)).isoformat() for i in range(1, cfg.spike_window_days + 1))
            if k in days
        ]
        if len(window) < cfg.spike_min_trailing_days:
            continue
        base = _sum(window)
        bn = base["analysed"]
        if not bn:
            continue
        alert = _jump(
            c["sent:negative"],
            n,
            base["sent:negative"],
            bn,
            cfg.spike_rate_jump,
            cfg.spike_rate_ratio,
            cfg.spike_alpha,
            1,
        )
        if alert:
            yield {
                "date": key,
                "metric": "negative_rate",
                **alert,
                "message_zh": f"{key} 投诉率骤升：差评率 {alert['value']:.1%}，"
                f"前{cfg.spike_window_days}天为 {alert['baseline']:.1%}",
            }
        for metric in sorted(m for m in c if m.startswith("cause:")):
            cause = metric[6:]
            alert = _jump(
                c[metric],
                n,
                base[metric],
                bn,
                cfg.spike_share_jump,
                cfg.spike_share_ratio,
                cfg.spike_alpha,
                cfg.spike_min_cause_rows,
            )
            if alert:
                name = zh("cause", cause)
                yield {
                    "date": key,
                    "metric": "cause_share",
                    "cause": cause,
                    "cause_zh": name,
                    **alert,
                    "message_zh": f"{key} {name}投诉骤升：占比 {alert['value']:.1%}，"
                    f"前{cfg.spike_window_days}天为 {alert['baseline']:.1%}",
                }


def _sum(counters: list[Counter]) -> Counter:
    total: Counter = Counter()
    for c in counters:
        total.update(c)
    return total


def _jump(x: int, n: int, bx: int, bn: int, min_jump: float, min_ratio: float, alpha: float, min_x: int) -> dict | None:
    rate, base = x / n, bx / bn
    if x < min_x or rate - base < min_jump or rate < min_ratio * base:
        return None
    z, p = one_sided_p(x, n, bx, bn)
    if p >= alpha:
        return None
    return {
        "value": round(rate, 4),
        "baseline": round(base, 4),
        "jump": round(rate - base, 4),
        "z": round(z, 2),
        "p_value": float(f"{p:.3g}"),
        "rows": n,
    }
