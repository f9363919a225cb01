"""Synthetic help-desk data for the report page: review texts composed from hand-written
clauses (no corpus needed), with agent / channel / store / date columns, a channel and an
agent that draw more complaints, and one spike day; and chats with agents of different habits.

Used by bench/bench_ui.py (``--screenshot``: the README screenshot) and to write the browser
test's fixtures (``python bench/ui_data.py``: tests/fixtures/ui_*)."""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NEGATIVE = {
    "logistics": [
        "发货太慢了，等了{n}天才到",
        "快递三天了还没发货",
        "物流信息一直不更新",
        "包装破损，盒子都压扁了",
        "快递员态度很差，直接扔在门口",
        "说好的次日达，结果拖了一周",
    ],
    "quality": [
        "质量很差，用了{n}天就坏了",
        "做工粗糙，线头很多",
        "收到就有划痕，像是二手的",
        "电池不耐用，半天就没电",
        "味道很大，放了几天还有异味",
        "尺码偏小，穿着很紧",
    ],
    "description": [
        "颜色和图片不一样，色差很大",
        "实物与描述不符，材质完全不一样",
        "宣传的功能根本没有",
    ],
    "attitude": [
        "客服态度很差，爱答不理",
        "客服很不耐烦，问两句就不回了",
        "客服说话很冲，一点礼貌都没有",
    ],
    "responsiveness": [
        "问了{n}次都没人回复",
        "客服回复太慢，等了半天",
        "投诉了好几天都没人处理",
    ],
    "after_sales": [
        "退货退款处理了{n}天还没结果",
        "申请售后一直被拒绝",
        "换货流程太麻烦，来回寄了两次",
    ],
    "price": ["价格太贵了，不值这个价", "刚买就降价了{n}十块，也不给补差价"],
    "competence": ["客服什么都不懂，问什么都说不清楚", "安装师傅不专业，装了两次还漏水"],
}
POSITIVE = [
    "质量很好，用了{n}天没问题",
    "物流很快，包装完好",
    "客服很耐心，解答很详细",
    "做工精细，手感很好",
    "性价比很高，值得购买",
    "颜色跟图片一样，很满意",
    "第{n}次回购了，一如既往的好",
    "售后处理很及时，点赞",
    "穿着很舒服，尺码标准",
    "味道不错，分量也足",
]
PRODUCTS = ["耳机", "衣服", "电饭煲", "手机壳", "台灯", "运动鞋", "面霜", "零食礼包", "保温杯", "扫地机器人"]
ENDINGS = ["", "。", "！", "，不会再买了。", "，下次还来。"]
CHANNELS = ["app", "web", "mini", "phone"]
STORES = ["北京朝阳店", "上海徐汇店", "广州天河店", "成都高新店", "杭州西湖店"]


def review(rnd: random.Random, negative: bool, cause: str | None = None) -> str:
    """One review: a product, one or two clauses (a complaint may open with praise: 中评)."""
    n = rnd.randint(2, 9)
    product = rnd.choice(PRODUCTS)
    if negative:
        cause = cause or rnd.choice(list(NEGATIVE))
        parts = [rnd.choice(NEGATIVE[cause]).format(n=n)]
        if rnd.random() < 0.3:
            parts.insert(0, rnd.choice(POSITIVE).format(n=n) + "，但是")
        if rnd.random() < 0.3:
            other = rnd.choice([c for c in NEGATIVE if c != cause])
            parts.append("，" + rnd.choice(NEGATIVE[other]).format(n=n))
        end = rnd.choice(ENDINGS[:4])
    else:
        parts = [rnd.choice(POSITIVE).format(n=n)]
        if rnd.random() < 0.4:
            parts.append("，" + rnd.choice(POSITIVE).format(n=n))
        end = rnd.choice(["", "。", "！", "，下次还来。"])
    return f"买的{product}，" + "".join(parts) + end


def reviews(n: int, days: int, seed: int = 7, start: date = date(2026, 11, 10)) -> list[dict]:
    """``n`` rows over ``days`` days: channel 'mini' and agent 'a03' draw more complaints, and
    the day two thirds in has a logistics spike (a warehouse problem)."""
    rnd = random.Random(seed)
    spike = start + timedelta(days=days * 2 // 3)
    rows = []
    for i in range(n):
        day = start + timedelta(days=i % days)
        channel, agent = rnd.choice(CHANNELS), f"a{rnd.randint(1, 6):02d}"
        p = 0.25 + (0.2 if channel == "mini" else 0) + (0.15 if agent == "a03" else 0)
        cause = None
        if day == spike:
            p, cause = 0.7, "logistics"
        negative = rnd.random() < p
        text = review(rnd, negative, cause if negative and rnd.random() < 0.8 else None)
        when = f"{day.isoformat()} {rnd.randint(8, 22):02d}:{rnd.randint(0, 59):02d}:00"
        rows.append(
            {
                "id": f"r{i + 1}",
                "text": text,
                "agent": agent,
                "channel": channel,
                "store": rnd.choice(STORES),
                "date": when,
            }
        )
    return rows


def write_reviews_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


AGENT_HABITS = {  # agent -> (probability of a forbidden phrase, seconds to first reply)
    "a1": (0.05, 20),
    "a2": (0.1, 45),
    "a3": (0.6, 150),
}
GOOD_REPLIES = [
    "您好，请稍等，我帮您查一下",
    "您好，已经为您加急处理，预计明天送达",
    "您好，非常抱歉给您带来不便，马上为您补发",
]
BAD_REPLIES = ["这个不归我管，你自己去问快递", "你自己不会看吗，页面上写着呢", "没办法，等着吧"]
OPENINGS = [
    "在吗？我的快递三天了还没发货",
    "买的耳机有杂音，怎么处理",
    "退款申请了一周还没到账",
    "衣服尺码不对，想换货",
]


def chats(n: int, seed: int = 3, start: date = date(2026, 11, 20)) -> list[dict]:
    """``n`` conversations over five days by three agents on two channels; a3 is slow and rude."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        agent = ["a1", "a2", "a3"][i % 3]
        bad_p, delay = AGENT_HABITS[agent]
        bad = rnd.random() < bad_p
        day = (start + timedelta(days=i % 5)).isoformat()
        t0 = 36000 + rnd.randint(0, 3600)

        def at(seconds: int, day: str = day) -> str:
            return f"{day}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}+08:00"

        first = delay + rnd.randint(0, 30)
        turns = [
            {"role": "customer", "text": rnd.choice(OPENINGS), "time": at(t0)},
            {
                "role": "agent",
                "text": rnd.choice(BAD_REPLIES if bad else GOOD_REPLIES),
                "time": at(t0 + first),
                "agent_id": agent,
            },
            {
                "role": "customer",
                "text": "还是没解决，太差了" if bad else "好的，收到了，谢谢",
                "time": at(t0 + first + 40),
            },
            {
                "role": "agent",
                "text": "嗯" if bad else "不客气，祝您生活愉快",
                "time": at(t0 + first + 70),
                "agent_id": agent,
            },
        ]
        out.append({"id": f"c{i + 1}", "channel": ["app", "web"][i % 2], "turns": turns})
    return out


def write_chats_jsonl(path: Path, items: list[dict]) -> None:
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in items), encoding="utf-8")


if __name__ == "__main__":  # the browser test's fixtures
    fixtures = ROOT / "tests" / "fixtures"
    write_reviews_csv(fixtures / "ui_reviews.csv", reviews(300, 10))
    write_chats_jsonl(fixtures / "ui_chats.jsonl", chats(36))
    print("wrote", fixtures / "ui_reviews.csv", fixtures / "ui_chats.jsonl")
