"""The report page in a real browser: headless Chromium, driven over the DevTools protocol
(``websockets``, already installed with uvicorn[standard]), against a real ``uvicorn`` with
finished jobs (tests/fixtures/ui_reviews.csv, ui_chats.jsonl; written by bench/ui_data.py).

Each page is checked in its rendered DOM: ECharts canvases with a non-zero size, the Chinese
labels, evidence highlighted, ``data-rendered-ms`` set once every chart is drawn, and no error
(uncaught exceptions, console errors, failed loads: the browser's own events and the page's
``<pre id="pj-errors">``). Screenshots go to the test's temporary directory. Skips without
Chromium (``apt-get install chromium``; .ci/run installs it)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from app.core.taxonomy import QA_DIMENSION_NAMES_ZH, QA_DIMENSIONS
from tests.conftest import needs_models
from tests.test_jobs_crash import Service as JobsService

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    return os.environ.get("PINGJIA_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(
    chromium_path() is None, reason="headless Chromium is not installed (apt-get install chromium)"
)


# --- a small DevTools-protocol client -----------------------------------------------------------
class Browser:
    """One headless Chromium with one page; ``load(url)`` waits until the page says it is drawn."""

    def __init__(self, width: int = 1280, height: int = 2000):
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="pingjia-chromium-")
        self.proc = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        ws_url = self._devtools_url()
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(ws_url, max_size=64 * 2**20, open_timeout=30))
        self.next_id, self.events = 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.size(width, height)

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if m := re.search(r"DevTools listening on (ws://\S+)", line):
                return m[1]
            if not line and self.proc.poll() is not None:
                break
        self.close()
        raise RuntimeError("chromium did not start (no DevTools address on stderr)")

    def call(self, method: str, params: dict | None = None, *, session: bool = False, timeout: float = 60) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def js(self, expression: str, *, wait: bool = False):
        params = {"expression": expression, "returnByValue": True, "awaitPromise": wait}
        r = self.call("Runtime.evaluate", params, session=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def size(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def load(self, url: str, *, until: str = "document.body && document.body.dataset.renderedMs", timeout: float = 60):
        """Navigate and wait until ``until`` is truthy (or the page ends in an error state)."""
        self.call("Page.navigate", {"url": "about:blank"}, session=True)  # a fresh document each time
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.js(f"[({until}) || null, document.body ? document.body.dataset.state || null : null]")
            if state[0] or state[1] in ("error", "key"):
                return state[0]
            time.sleep(0.05)
        raise TimeoutError(f"{url}: not drawn within {timeout} s")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and failed loads the browser reported, and the
        page's own error log."""
        out = []
        for ev in self.events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + json.dumps(p.get("args", []))[:500])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", "")[:500])
        page = self.js("(document.getElementById('pj-errors') || {}).textContent || ''")
        return out + ([f"page: {page}"] if page else [])

    def facts(self) -> dict:
        """What a test checks, read from the rendered DOM."""
        return self.js(
            """(() => {
              const canvases = [...document.querySelectorAll('.chart canvas')].map(c => [c.width, c.height]);
              return {state: document.body.dataset.state || null, kind: document.body.dataset.kind || null,
                      rendered_ms: document.body.dataset.renderedMs || null,
                      charts: +(document.body.dataset.charts || 0),
                      canvases, text: document.body.innerText,
                      marks: [...document.querySelectorAll('mark')].map(m => [m.className, m.textContent]),
                      links: [...document.querySelectorAll('a')].map(a => a.getAttribute('href')),
                      key_dialog_open: document.getElementById('pj-key-dialog').open};
            })()"""
        )

    def screenshot(self, path: Path, width: int = 1280, max_height: int = 16000) -> None:
        """The page from the top, up to ``max_height`` (the viewport grown to the document's height)."""
        height = int(self.js("document.documentElement.scrollHeight"))
        self.size(width, min(height, max_height))
        self.js("window.dispatchEvent(new Event('resize'))")
        time.sleep(0.3)
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.stack.close()
        except Exception:  # noqa: BLE001 - closing a browser that may already be gone
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


# --- a real service with finished jobs -------------------------------------------------------
class Service(JobsService):
    """``uvicorn app.main:app`` on a free loopback port with a temporary data dir and one forked
    job worker (tests/test_jobs_crash.py's service), ready when constructed."""

    def __init__(self, data_dir: Path, **env: str):
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(data_dir, "app.main:app", workers=1, chunk_rows=500, start="fork", extra_env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        try:
            self.wait_ready(120)
        except BaseException:
            self.stop()
            raise

    def submit(self, path: Path, headers: dict | None = None, **form: str) -> str:
        with open(path, "rb") as f:
            r = httpx.post(
                f"{self.base}/v1/jobs", files={"file": (path.name, f)}, data=form, headers=headers, timeout=60
            )
        assert r.status_code == 202, r.text
        return r.json()["job_id"]

    def wait(self, job_id: str, headers: dict | None = None, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = httpx.get(f"{self.base}/v1/jobs/{job_id}", headers=headers).json()
            if st["status"] in ("done", "failed", "cancelled"):
                return st
            time.sleep(0.25)
        raise TimeoutError(f"job {job_id} not finished after {timeout} s")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    svc = Service(tmp_path_factory.mktemp("ui-service"))
    try:
        reviews = svc.submit(FIXTURES / "ui_reviews.csv")
        chats = svc.submit(FIXTURES / "ui_chats.jsonl", kind="conversations")
        for job in (reviews, chats):
            assert svc.wait(job)["status"] == "done"
        browser = Browser()
        try:
            yield svc, browser, {"reviews": reviews, "chats": chats}
        finally:
            browser.close()
    finally:
        svc.stop()


def drawn(facts: dict, at_least: int) -> None:
    assert facts["rendered_ms"] and float(facts["rendered_ms"]) > 0
    sized = [c for c in facts["canvases"] if c[0] > 0 and c[1] > 0]
    assert len(sized) >= at_least and len(sized) == len(facts["canvases"]), facts["canvases"]
    assert facts["charts"] == len(facts["canvases"])


pytestmark = [pytest.mark.slow, needs_chromium, needs_models]


def test_reviews_report_draws_charts_in_chinese(served, tmp_path):
    svc, browser, jobs = served
    browser.load(f"{svc.base}/ui/jobs/{jobs['reviews']}")
    facts = browser.facts()
    assert browser.errors() == []
    assert facts["state"] == "report" and facts["kind"] == "reviews"
    drawn(facts, 6)  # daily, causes, cause trend, one per group column (agent, channel, store)
    text = facts["text"]
    for label in ("每日评价量与差评率", "差评原因", "原因趋势", "投诉关键词", "表现突出的分组", "差评率", "骤升提醒"):
        assert label in text, label
    summary = httpx.get(f"{svc.base}/v1/jobs/{jobs['reviews']}/summary").json()
    alerts = summary["daily"]["alerts"]
    assert alerts, "the fixture plants a spike day"
    assert alerts[0]["message_zh"] in text
    flagged = [g for col in summary["groups"]["columns"] for g in col["flagged"]]
    assert flagged and "显著偏高" in text  # the fixture's channel 'mini' / agent 'a03'
    # complaint terms come with an example, the term highlighted in it
    term = summary["complaint_terms"]["items"][0]["term"]
    assert ["blame", term] in facts["marks"]
    browser.screenshot(tmp_path / "reviews.png")
    assert (tmp_path / "reviews.png").stat().st_size > 50_000


def test_example_opens_with_the_evidence_highlighted(served):
    svc, browser, jobs = served
    browser.load(f"{svc.base}/ui/jobs/{jobs['reviews']}")
    shown = browser.js(
        """(() => { document.querySelector('.example-link').click();
                    const d = document.getElementById('pj-example-dialog');
                    return [d.open, [...d.querySelectorAll('mark.blame')].map(m => m.textContent), d.innerText]; })()"""
    )
    assert shown[0] and shown[1], shown
    assert browser.errors() == []


def test_chat_report_shows_the_qa_view(served, tmp_path):
    svc, browser, jobs = served
    browser.load(f"{svc.base}/ui/jobs/{jobs['chats']}")
    facts = browser.facts()
    assert browser.errors() == []
    assert facts["state"] == "report" and facts["kind"] == "conversations"
    drawn(facts, 4)  # grades, violations, daily, causes (+ groups)
    for label in ("客服质检", "质检等级分布", "违规类型", "坐席质检", "渠道质检", "平均质检分", "各坐席质检维度"):
        assert label in facts["text"], label
    qa = httpx.get(f"{svc.base}/v1/jobs/{jobs['chats']}/summary").json()["qa"]
    assert [g["value"] for g in qa["agents"]["groups"]] and all(
        g["value"] in facts["text"] for g in qa["agents"]["groups"]
    )
    assert "pj-radar-missing" not in browser.js("document.body.innerHTML")
    assert "至少有 1 次服务违规的对话数" in facts["text"] and "violation_rate =" not in facts["text"]
    browser.screenshot(tmp_path / "chats.png")


def test_radar_of_qa_dimensions_per_agent_comes_from_the_summary(served):
    """The page draws the summary's own per-agent means (``qa.agents.groups[].dimensions_mean``),
    which equal the means of the job's results per agent, computed here from the rows."""
    svc, browser, jobs = served
    agents = {}
    for line in (FIXTURES / "ui_chats.jsonl").read_text(encoding="utf-8").splitlines():
        chat = json.loads(line)
        agents[chat["id"]] = next(t["agent_id"] for t in chat["turns"] if t.get("agent_id"))
    sums: dict[str, dict[str, list[float]]] = {}
    results = httpx.get(f"{svc.base}/v1/jobs/{jobs['chats']}/results").text.splitlines()
    for row in map(json.loads, results):
        if row["qa"]["applicable"]:
            for dim, value in row["qa"]["dimensions"].items():
                sums.setdefault(agents[row["id"]], {}).setdefault(dim, []).append(value)
    groups = httpx.get(f"{svc.base}/v1/jobs/{jobs['chats']}/summary").json()["qa"]["agents"]["groups"]
    codes = list(QA_DIMENSIONS)  # the taxonomy's order
    assert sorted(g["value"] for g in groups) == sorted(sums)
    for g in groups:  # rounded to 2 decimals from exact sums: within half a cent of the float mean
        mean = {c: sum(sums[g["value"]][c]) / len(sums[g["value"]][c]) for c in codes}
        assert list(g["dimensions_mean"]) == codes
        assert all(abs(g["dimensions_mean"][c] - mean[c]) <= 0.0051 for c in codes), (g["dimensions_mean"], mean)
    browser.load(f"{svc.base}/ui/jobs/{jobs['chats']}")
    radar = browser.js(
        "[...document.querySelectorAll('.chart')].map(c => echarts.getInstanceByDom(c).getOption())"
        ".filter(o => o.radar).map(o => [o.radar[0].indicator.map(i => i.name), o.series[0].data])[0]"
    )
    names, data = radar
    assert names == [QA_DIMENSION_NAMES_ZH[c] for c in codes]
    drawn = {d["name"]: d["value"] for d in data}
    assert drawn.pop("全部对话")  # the dashed reference: all conversations
    expected = {g["value"]: [g["dimensions_mean"][c] for c in codes] for g in groups}
    assert drawn == expected
    attitude = codes.index("attitude")
    assert expected["a3"][attitude] < expected["a1"][attitude]  # the rude agent's 服务态度 is lower
    assert browser.errors() == []


def test_cause_trend_has_a_line_per_top_cause_from_the_daily_counts(served):
    svc, browser, jobs = served
    daily = httpx.get(f"{svc.base}/v1/jobs/{jobs['reviews']}/summary").json()["daily"]
    browser.load(f"{svc.base}/ui/jobs/{jobs['reviews']}")
    trend = browser.js(
        "[...document.querySelectorAll('.chart')].map(c => echarts.getInstanceByDom(c).getOption())"
        ".filter(o => o.series.some(x => x.type === 'line') && o.series.some(x => x.type === 'scatter'))"
        ".map(o => o.series.map(x => [x.type, x.name, x.data]))[0]"
    )
    lines = [(name, data) for kind, name, data in trend if kind == "line"]
    assert len(lines) > 1
    top = [c["cause_zh"] for c in daily["causes"][:6]]
    assert [name for name, _ in lines] == top + (["其他"] if len(daily["causes"]) > 6 else [])
    for i, point in enumerate(daily["series"]):  # the share of the day's rows, from the day's counts
        codes = [[c["cause"]] for c in daily["causes"][:6]] + [[c["cause"] for c in daily["causes"][6:]]]
        for (_, data), group in zip(lines, codes):  # each top cause, then 其他: the rest summed
            count = sum(point["causes"].get(code, 0) for code in group)
            assert data[i]["count"] == count and abs(data[i]["value"] - count / point["analysed"]) < 1e-9
    pins = next(data for kind, _, data in trend if kind == "scatter")
    spikes = [a for a in daily["alerts"] if a["metric"] == "cause_share"]
    assert spikes and [p["value"] for p in pins] == [[a["date"], a["value"]] for a in spikes]
    text = browser.facts()["text"]
    assert "个自然日比较" in text and "calendar days" not in text  # the rule in Chinese
    assert browser.errors() == []


def test_english_toggle(served):
    svc, browser, jobs = served
    browser.load(f"{svc.base}/ui/jobs/{jobs['reviews']}?lang=en")
    facts = browser.facts()
    try:
        assert "Daily volume and negative rate" in facts["text"] and "每日评价量与差评率" not in facts["text"]
        assert "calendar days before it" in facts["text"] and "自然日" not in facts["text"]
        assert browser.errors() == []
    finally:
        browser.js("localStorage.setItem('pj-lang', 'zh')")


def test_home_lists_jobs_and_links_to_them(served):
    svc, browser, jobs = served
    browser.load(f"{svc.base}/ui/")
    facts = browser.facts()
    assert facts["state"] == "home" and browser.errors() == []
    for job in jobs.values():
        assert f"/ui/jobs/{job}" in facts["links"]
    assert "上传文件生成报表" in facts["text"] and "分析一条文本" in facts["text"]


def test_upload_through_the_page_then_its_report(served, tmp_path):
    """The manager's path: pick a file in the page's form, submit, watch it run, read the report."""
    svc, browser, _ = served
    src = tmp_path / "上传.csv"
    texts = ["物流太慢了，等了一周", "质量很好，客服很耐心", "衣服有色差，和描述不符", "包装破损，差评"]
    rows = [f"u{i},{texts[i % 4]},a{i % 3},{'app' if i % 2 else 'web'},2026-11-{1 + i % 9:02d}" for i in range(48)]
    src.write_text("id,text,agent,channel,date\n" + "\n".join(rows) + "\n", encoding="utf-8")
    browser.load(f"{svc.base}/ui/")
    root = browser.call("DOM.getDocument", session=True)["root"]["nodeId"]
    node = browser.call("DOM.querySelector", {"nodeId": root, "selector": "#pj-upload input[name=file]"}, session=True)
    browser.call("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [str(src)]}, session=True)
    browser.js("document.getElementById('pj-upload').requestSubmit()")
    deadline, state = time.monotonic() + 120, None
    while time.monotonic() < deadline:
        state = browser.js(
            "[location.pathname, document.body.dataset.state || null, document.body.dataset.kind || null]"
        )
        if state[0].startswith("/ui/jobs/") and state[1] in ("report", "error"):
            break
        time.sleep(0.1)
    assert state[1] == "report" and state[2] == "reviews", state
    job_id = urllib.parse.unquote(state[0].rsplit("/", 1)[1])
    status = httpx.get(f"{svc.base}/v1/jobs/{job_id}").json()
    assert status["status"] == "done" and status["total"] == 48, status
    assert browser.errors() == []
    assert "差评原因" in browser.facts()["text"]


def test_one_review_with_evidence_highlighted(served):
    svc, browser, _ = served
    text = "发货太慢了，客服也不耐烦，不过东西质量还不错"
    browser.load(f"{svc.base}/ui/#review={urllib.parse.quote(text)}")
    facts = browser.facts()
    assert facts["state"] == "single" and browser.errors() == []
    r = httpx.post(f"{svc.base}/v1/analyze", json={"text": text}).json()
    blamed = {e["text"] for c in r["root_causes"] for e in c["evidence"]}
    assert blamed
    shown = {m[1] for m in facts["marks"] if "blame" in m[0].split()}
    assert blamed <= shown | {t for t in blamed if any(t in s for s in shown)}, (blamed, shown)
    assert "差评原因" in facts["text"]


def test_one_chat_with_violations_highlighted(served):
    svc, browser, _ = served
    chat = "客户: 在吗？我的快递三天了还没发货\n客服: 这个不归我管，你去问快递吧\n客户: 好的"
    browser.load(f"{svc.base}/ui/#chat={urllib.parse.quote(chat)}")
    facts = browser.facts()
    assert facts["state"] == "single" and browser.errors() == []
    assert any("viol" in cls.split() and "不归我管" in txt for cls, txt in facts["marks"]), facts["marks"]
    drawn(facts, 1)  # the conversation's QA radar
    assert "质检分" in facts["text"]


def test_unknown_job_says_so(served):
    svc, browser, _ = served
    browser.load(f"{svc.base}/ui/jobs/no-such-job")
    facts = browser.facts()
    assert facts["state"] == "error" and "找不到这个任务" in facts["text"]
    assert [e for e in browser.errors() if "404" not in e] == []  # the browser logs the 404 itself


def test_with_keys_on_the_page_asks_for_a_key_and_then_shows_the_report(tmp_path):
    key = "ui-browser-test-key-0123456789"
    svc = Service(tmp_path / "data", PINGJIA_API_KEYS=f"ui:{key}")
    browser = Browser()
    try:
        auth = {"Authorization": f"Bearer {key}"}
        job = svc.submit(FIXTURES / "ui_chats.jsonl", headers=auth, kind="conversations")
        assert svc.wait(job, headers=auth)["status"] == "done"
        browser.load(f"{svc.base}/ui/jobs/{job}")
        assert browser.facts()["key_dialog_open"]
        browser.js(
            f"""(() => {{ const f = document.getElementById('pj-key-form'); f.elements.key.value = {json.dumps(key)};
                         f.requestSubmit(); }})()"""
        )
        deadline = time.monotonic() + 30
        while not browser.js("document.body.dataset.renderedMs") and time.monotonic() < deadline:
            time.sleep(0.1)
        facts = browser.facts()
        assert facts["state"] == "report" and "客服质检" in facts["text"]
        assert browser.js("sessionStorage.getItem('pj-key')") == key
        # the page's own 401s are not errors; nothing else went wrong
        assert [e for e in browser.errors() if "401" not in e] == []
    finally:
        browser.close()
        svc.stop()
