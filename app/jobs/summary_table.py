"""The report (差评报表) as a short table in Chinese: what ``pingjia score`` prints at the end.

A person at a terminal reads the headline figures here; the whole report stays in the JSON
``--summary`` file. Columns are padded by display width (a Chinese character takes two cells).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from app.core.taxonomy import SENTIMENT_LABELS, zh

TOP_CAUSES = 5
TOP_TERMS = 10
TOP_VIOLATIONS = 5


def width(text: str) -> int:
    """Terminal cells ``text`` takes: wide and full-width characters count two.

    >>> width("差评"), width("ab")
    (4, 2)
    """
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(rows: Sequence[Sequence[object]], indent: str = "  ") -> list[str]:
    """Rows as aligned lines: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(width(r[i]) for r in cells) for i in range(len(cells[0]))] if cells else []
    lines = []
    for r in cells:
        parts = [r[0] + " " * (widths[0] - width(r[0]))]
        parts += [" " * (widths[i] - width(c)) + c for i, c in enumerate(r[1:], 1)]
        lines.append(indent + "  ".join(parts).rstrip())
    return lines


def pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def summary_table(report: dict, status: dict | None = None) -> str:
    """The headline of a report: rows, sentiment counts and shares, top root causes, top
    complaint terms, groups (and for chats agents/channels) that stand out, and the QA figures."""
    kind = report.get("kind", "reviews")
    names = "sentiment" if kind == "conversations" else "review_sentiment"
    t = report["totals"]
    head = f"共 {t['rows']} 行：分析 {t['analysed']} 行，错误 {t['errors']} 行"
    if status and status.get("rows_per_second"):
        head += f"，{status['rows_per_second']} 行/秒"
    lines = [f"{'会话质检' if kind == 'conversations' else '评价分析'}摘要（{head}）"]
    label = "客户情绪（结束时）" if kind == "conversations" else "情感"
    lines += ["", f"{label}：", *table([(zh(names, k), *_count(report["sentiment"][k])) for k in SENTIMENT_LABELS])]
    causes = report.get("root_causes") or []
    if causes:
        lines += ["", f"主要根因（前 {min(TOP_CAUSES, len(causes))} 个）："]
        lines += table([(zh("cause", c["cause"]), c["count"], pct(c["share"])) for c in causes[:TOP_CAUSES]])
    terms = (report.get("complaint_terms") or {}).get("items") or []
    if terms:
        lines += ["", "差评高频词：" + "、".join(x["term"] for x in terms[:TOP_TERMS])]
    lines += _flagged_groups(report)
    if report.get("qa"):
        lines += _qa(report["qa"])
    errors = (report.get("errors") or {}).get("by_code") or {}
    if errors:
        lines += ["", "错误：" + "，".join(f"{code} {n} 行" for code, n in errors.items())]
    return "\n".join(lines)


def _count(entry: dict) -> tuple[int, str]:
    return entry["count"], pct(entry["share"])


def _flagged_groups(report: dict) -> list[str]:
    """Group values whose 差评 rate is significantly above the rest of their column."""
    out = []
    for col in (report.get("groups") or {}).get("columns") or []:
        by_value = {g["value"]: g for g in col["groups"]}
        for value in col["flagged"]:
            g = by_value[value]
            out.append((f"{col['column']} = {value}", pct(g["negative_rate"]), pct(g["rest_negative_rate"])))
    if not out:
        return []
    return ["", "差评率显著偏高的分组（本组 / 其余）：", *table(out)]


def _qa(qa: dict) -> list[str]:
    o = qa["overall"]
    res = o["resolution"]
    lines = [
        "",
        f"质检：{o['conversations']} 个会话，平均分 {o['qa_score_mean'] if o['qa_score_mean'] is not None else '—'}，"
        f"违规率 {pct(o['violation_rate'])}，解决率 {pct(res['resolution_rate'])}",
        *table([(zh("grade", g["grade"]), g["count"], pct(g["share"])) for g in o["grades"]]),
    ]
    if o["violations"]:
        lines += ["", "主要违规："]
        lines += table([(zh("violation", v["code"]), v["count"]) for v in o["violations"][:TOP_VIOLATIONS]])
    flagged = []
    for key, what in (("agents", "客服"), ("channels", "渠道")):
        for f in qa[key]["flagged"]:
            metric = "违规率" if f["metric"] == "violation_rate" else "未解决率"
            flagged.append((f"{what} {f['value']}", metric, pct(f["rate"]), pct(f["rest_rate"])))
    if flagged:
        lines += ["", "显著偏高的客服/渠道（本组 / 其余）：", *table(flagged)]
    return lines
