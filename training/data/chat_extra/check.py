"""Validate the hand-written chat_extra data against CHAT_ANNOTATION.md.

Run:  /work/main/.venv/bin/python training/data/chat_extra/check.py
Exit code 0 = all checks passed; 1 = at least one error (listed on stdout).
"""

import glob
import json
import os
import re
import sys
from collections import Counter
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from app.conversations.pii import id_check_ok, luhn_ok  # noqa: E402
from app.conversations.profiles import Caps  # noqa: E402
from app.core import taxonomy as T  # noqa: E402 - the one taxonomy, from the repository root

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = "/work/shared/data/chat"
# batches: (letter, utterance target, clean target, first-code targets, conversation target, timed target)
BATCHES = {
    "x": dict(
        n_utt=640,
        n_clean=280,
        first={c: 45 for c in T.VIOLATION_CODES},
        n_conv=30,
        n_timed=20,
    ),
    "y": dict(
        n_utt=600,
        n_clean=270,
        first={
            "dismissive": 70,
            "blame_shifting": 55,
            "rude": 40,
            "impatient": 40,
            "challenging": 40,
            "over_promise": 30,
            "off_platform": 30,
            "pii_leak": 25,
        },
        n_conv=30,
        n_timed=15,
    ),
}

CHANNELS = {"taobao", "jd", "pdd", "meituan", "eleme", "ctrip", "telecom", "bank", "other"}
CODES = list(T.VIOLATION_CODES)
CAPPING = set(Caps().severe_codes)  # the QA profiles' default: one of these caps the grade at pass
ROLES = {"customer", "agent", "bot", "system"}
SAT = set(T.SATISFACTION_LEVELS)
EMO = set(T.EMOTIONS)
RES = set(T.RESOLUTION_STATUSES)
RISK = set(T.ESCALATION_LEVELS)
CAUSES = set(T.ASPECTS)
_FLOORS = [floor for floor, _, _ in T.GRADES]
GRADE_BAND = {code: (floor, 100 if i == 0 else _FLOORS[i - 1] - 1) for i, (floor, code, _) in enumerate(T.GRADES)}
GRADE_ORDER = ["needs_improvement", "pass", "good", "excellent"]
PLACEHOLDER = re.compile(r"^(\[[^\[\]]{1,6}\])+$")  # [图片] / [视频]: not writing, exempt from dup check
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
ID18 = re.compile(r"(?<![\dA-Za-z])\d{17}[\dX](?![\dA-Za-z])")
CARD = re.compile(r"(?<!\d)62\d{14,17}(?!\d)")
TRAD = set("這們麼說還會為讓幫點時貨發嗎將對過與個東車長門問題間關頭實買賣離線單")

errors = []


def err(msg):
    errors.append(msg)


id_ok = id_check_ok  # the service's own checksums (GB 11643, Luhn)


def check_violation_list(where, text, viol, spans):
    if not isinstance(viol, list) or not isinstance(spans, list):
        err(f"{where}: violations/spans must be lists")
        return
    if len(viol) != len(spans):
        err(f"{where}: {len(viol)} violations but {len(spans)} spans")
    if len(set(viol)) != len(viol):
        err(f"{where}: repeated code {viol}")
    for c in viol:
        if c not in CODES:
            err(f"{where}: unknown code {c!r}")
    for c, s in zip(viol, spans):
        if not isinstance(s, str) or not s or text.find(s) < 0:
            err(f"{where}: span {s!r} is not a substring of the text")
        if c == "pii_leak":
            for m in ID18.findall(s):
                if not id_ok(m):
                    err(f"{where}: ID number {m} has an invalid check digit")
            for m in CARD.findall(s):
                if not luhn_ok(m):
                    err(f"{where}: card number {m} fails the Luhn check")
    # consistency: a clean agent reply must not write out a full phone / ID / card number
    if "pii_leak" not in viol and "off_platform" not in viol:
        for rx, name in ((PHONE, "phone"), (ID18, "ID"), (CARD, "card")):
            if rx.search(text):
                err(f"{where}: unmasked {name} number in a reply not labelled pii_leak")


def load_jsonl(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                err(f"{path}:{ln}: blank line")
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                err(f"{path}:{ln}: bad JSON ({e})")
    return out


# ---------------------------------------------------------------- utterances
ALL_UTTS, ALL_CONVS = {}, {}
UKEYS = ["id", "channel", "context", "text", "violations", "spans"]
ids = set()
utts = []
for B in BATCHES:
    ALL_UTTS[B] = load_jsonl(os.path.join(HERE, f"utterances_{B}.jsonl"))
    utts += ALL_UTTS[B]
    for i, d in enumerate(ALL_UTTS[B]):
        where = f"utt {d.get('id', i)}"
        if list(d.keys()) != UKEYS:
            err(f"{where}: keys {list(d.keys())} != {UKEYS}")
            continue
        if not re.fullmatch(rf"u{B}\d{{4}}", d["id"]) or d["id"] in ids:
            err(f"{where}: bad or duplicate id")
        ids.add(d["id"])
        if d["channel"] not in CHANNELS:
            err(f"{where}: bad channel {d['channel']}")
        for k in ("context", "text"):
            if not isinstance(d[k], str) or not d[k].strip():
                err(f"{where}: empty {k}")
        check_violation_list(where, d["text"], d["violations"], d["spans"])

# ---------------------------------------------------------------- conversations
CKEYS = ["id", "channel", "profile", "turns", "labels"]
LKEYS = [
    "agent_turns",
    "customer_turns",
    "resolution",
    "escalation_risk",
    "root_causes",
    "grade",
    "score",
    "first_response_seconds",
    "max_response_seconds",
]
cids = set()
convs = []
for B in BATCHES:
    ALL_CONVS[B] = load_jsonl(os.path.join(HERE, f"conversations_{B}.jsonl"))
    convs += ALL_CONVS[B]
    for i, d in enumerate(ALL_CONVS[B]):
        where = f"conv {d.get('id', i)}"
        if list(d.keys()) != CKEYS:
            err(f"{where}: keys {list(d.keys())} != {CKEYS}")
            continue
        if not re.fullmatch(rf"c{B}\d{{2}}", d["id"]) or d["id"] in cids:
            err(f"{where}: bad or duplicate id")
        cids.add(d["id"])
        if d["channel"] not in CHANNELS:
            err(f"{where}: bad channel")
        if d["profile"] != "default":
            err(f"{where}: profile must be 'default'")
        turns = d["turns"]
        if not 6 <= len(turns) <= 20:
            err(f"{where}: {len(turns)} turns (want 6-20)")
        timed = [("time" in t) for t in turns]
        if any(timed) and not all(timed):
            err(f"{where}: some turns have time, some not")
        times = []
        for j, t in enumerate(turns):
            if t.get("role") not in ROLES or not isinstance(t.get("text"), str) or not t["text"].strip():
                err(f"{where} turn {j}: bad role/text")
            if set(t) - {"role", "text", "time"}:
                err(f"{where} turn {j}: unexpected keys {set(t)}")
            if "time" in t:
                try:
                    ts = datetime.fromisoformat(t["time"])
                    if not t["time"].endswith("+08:00"):
                        err(f"{where} turn {j}: time not +08:00")
                    times.append(ts)
                except ValueError:
                    err(f"{where} turn {j}: bad time {t['time']}")
        if all(timed) and len(times) == len(turns):
            if any(b < a for a, b in zip(times, times[1:])):
                err(f"{where}: timestamps go backwards")
        L = d["labels"]
        if list(L.keys()) != LKEYS:
            err(f"{where}: label keys {list(L.keys())}")
            continue
        agent_idx = [j for j, t in enumerate(turns) if t["role"] == "agent"]
        cust_idx = [j for j, t in enumerate(turns) if t["role"] == "customer"]
        if [a["turn"] for a in L["agent_turns"]] != agent_idx:
            err(f"{where}: agent_turns {[a['turn'] for a in L['agent_turns']]} != agent indices {agent_idx}")
        if [c["turn"] for c in L["customer_turns"]] != cust_idx:
            err(f"{where}: customer_turns do not cover customer indices {cust_idx}")
        conv_codes = set()
        for a in L["agent_turns"]:
            if set(a) != {"turn", "violations", "spans"}:
                err(f"{where}: agent label keys {set(a)}")
                continue
            if 0 <= a["turn"] < len(turns):
                check_violation_list(f"{where} turn {a['turn']}", turns[a["turn"]]["text"], a["violations"], a["spans"])
            conv_codes |= set(a["violations"])
        for c in L["customer_turns"]:
            if (
                c.get("satisfaction") not in SAT
                or c.get("emotion") not in EMO
                or set(c) != {"turn", "satisfaction", "emotion"}
            ):
                err(f"{where}: bad customer label {c}")
        if L["resolution"] not in RES:
            err(f"{where}: bad resolution")
        if L["escalation_risk"] not in RISK:
            err(f"{where}: bad escalation_risk")
        if (
            not isinstance(L["root_causes"], list)
            or any(x not in CAUSES for x in L["root_causes"])
            or len(set(L["root_causes"])) != len(L["root_causes"])
        ):
            err(f"{where}: bad root_causes {L['root_causes']}")
        g, s = L["grade"], L["score"]
        if g not in GRADE_BAND or not isinstance(s, int) or not GRADE_BAND[g][0] <= s <= GRADE_BAND[g][1]:
            err(f"{where}: grade {g} does not match score {s}")
        if conv_codes & CAPPING and g in ("good", "excellent"):
            err(f"{where}: {sorted(conv_codes & CAPPING)} caps the grade at pass, got {g}")
        # response times: customer turn (first of a run) -> next agent turn; bot/system turns ignored
        fr = mr = None
        if all(timed) and len(times) == len(turns):
            res, start = [], None
            for j, t in enumerate(turns):
                if t["role"] == "customer":
                    if start is None:
                        start = j
                elif t["role"] == "agent" and start is not None:
                    res.append(int((times[j] - times[start]).total_seconds()))
                    start = None
            if res:
                fr, mr = res[0], max(res)
        if (L["first_response_seconds"], L["max_response_seconds"]) != (fr, mr):
            err(
                f"{where}: response seconds {L['first_response_seconds']},{L['max_response_seconds']} != computed {fr},{mr}"  # noqa: E501
            )

# ---------------------------------------------------------------- near duplicates (char 3-gram Jaccard >= 0.8)


def grams(s):
    s = "".join(s.split())
    return frozenset(s[i : i + 3] for i in range(max(1, len(s) - 2)))


def jac(a, b):
    return len(a & b) / len(a | b)


shared = set()
for f in glob.glob(os.path.join(SHARED, "*.jsonl")):
    for line in open(f, encoding="utf-8"):
        d = json.loads(line)
        if "turns" in d:
            shared.update(t["text"] for t in d["turns"])
        else:
            shared.update([d["context"], d["text"]])
shared_g = [(s, grams(s)) for s in shared]

mine = []
for d in utts:
    mine += [(f"{d['id']}.context", d["context"]), (f"{d['id']}.text", d["text"])]
for d in convs:
    for j, t in enumerate(d["turns"]):
        if not PLACEHOLDER.fullmatch(t["text"].strip()):
            mine.append((f"{d['id']}.turn{j}", t["text"]))
mine_g = [(k, s, grams(s)) for k, s in mine]

# index by length of gram set for a cheap length filter (|A|/|B| >= 0.8 is necessary)
by_len = {}
for s, g in shared_g:
    by_len.setdefault(len(g), []).append((s, g))
n_shared_dup = 0
for k, s, g in mine_g:
    lo, hi = int(len(g) * 0.8), int(len(g) / 0.8) + 1
    hit = None
    for L_ in range(lo, hi + 1):
        for t, h in by_len.get(L_, ()):
            if jac(g, h) >= 0.8:
                hit = t
                break
        if hit:
            break
    if hit:
        n_shared_dup += 1
        err(f"near-duplicate of shared data: {k} {s!r} ~ {hit!r}")
n_self_dup = 0
srt = sorted(mine_g, key=lambda x: len(x[2]))
for i in range(len(srt)):
    ki, si, gi = srt[i]
    for j in range(i + 1, len(srt)):
        kj, sj, gj = srt[j]
        if len(gi) < 0.8 * len(gj):
            break
        if jac(gi, gj) >= 0.8:
            n_self_dup += 1
            err(f"near-duplicate within own files: {ki} {si!r} ~ {kj} {sj!r}")

# ---------------------------------------------------------------- counts (per batch)
for B, target in BATCHES.items():
    utts, convs = ALL_UTTS[B], ALL_CONVS[B]
    primary = Counter(d["violations"][0] for d in utts if d["violations"])
    anyc = Counter(c for d in utts for c in d["violations"])
    clean = sum(1 for d in utts if not d["violations"])
    two = sum(1 for d in utts if len(d["violations"]) > 1)
    trad = sum(1 for d in utts if sum(ch in TRAD for ch in d["text"]) >= 2)
    emoji = sum(1 for d in utts if any(ord(ch) >= 0x1F000 for ch in d["text"] + d["context"]))
    if len(utts) != target["n_utt"]:
        err(f"batch {B}: expected {target['n_utt']} utterances, got {len(utts)}")
    if len(convs) != target["n_conv"]:
        err(f"batch {B}: expected {target['n_conv']} conversations, got {len(convs)}")
    for c, n in target["first"].items():
        if primary[c] != n:
            err(f"batch {B}: code {c}: {primary[c]} replies with it as first code (want {n})")
    if clean != target["n_clean"]:
        err(f"batch {B}: expected {target['n_clean']} clean replies, got {clean}")
    timed_convs = sum(1 for d in convs if "time" in d["turns"][0])
    if timed_convs != target["n_timed"]:
        err(f"batch {B}: expected {target['n_timed']} timed conversations, got {timed_convs}")
    print(
        f"[batch {B}] utterances: {len(utts)}  clean: {clean}  two-code: {two}  traditional: {trad}  with emoji: {emoji}"  # noqa: E501
    )
    print("  first code:", dict(primary))
    print("  any code:  ", dict(anyc))
    print("  channels:  ", dict(Counter(d["channel"] for d in utts)))
    print(f"  conversations: {len(convs)}  timed: {timed_convs}  turns: {sum(len(d['turns']) for d in convs)}")
    print("  grade:     ", dict(Counter(d["labels"]["grade"] for d in convs)))
    print("  resolution:", dict(Counter(d["labels"]["resolution"] for d in convs)))
    print("  risk:      ", dict(Counter(d["labels"]["escalation_risk"] for d in convs)))
    print(
        "  agent-turn codes:",
        dict(Counter(c for d in convs for a in d["labels"]["agent_turns"] for c in a["violations"])),
    )
print(
    f"near-dup check: {len(mine_g)} own strings (all batches) vs {len(shared_g)} shared strings: "
    f"{n_shared_dup} shared hits, {n_self_dup} internal hits (within and across batches)"
)
if errors:
    print(f"\nFAILED: {len(errors)} error(s)")
    for e in errors[:200]:
        print("  -", e)
    sys.exit(1)
print("\nALL CHECKS PASSED")
