// The report page: plain JavaScript over the documented /v1 API (API.md), charts by ECharts.
// Every text from the service is put in the page with textContent, never as HTML.
(function () {
  "use strict";

  var params = new URLSearchParams(location.search);
  if (params.get("lang")) localStorage.setItem("pj-lang", params.get("lang") === "en" ? "en" : "zh");
  var LANG = localStorage.getItem("pj-lang") === "en" ? "en" : "zh";
  var L = LANG === "en" ? 1 : 0;
  var TEXT = window.PJ_TEXT, CODES = window.PJ_CODES;
  var NAMES = {};  // kind -> {code: Chinese name}: GET /v1/taxonomy's names_zh
  var QA_DIMENSIONS = [];  // the QA dimension codes, in order: GET /v1/taxonomy's qa_dimensions
  var charts = [];
  var pending = [];  // promises of charts still drawing
  var pollToken = 0;

  // --- small helpers -------------------------------------------------------------------
  function t(key, vars) {
    var s = (TEXT[key] || [key, key])[L];
    if (vars) s = s.replace(/\{(\w+)\}/g, function (_, k) { return vars[k] == null ? "" : String(vars[k]); });
    return s;
  }
  // A code's name: in English from i18n.js; in Chinese the response's own *_zh field (zh), else
  // the taxonomy's name of the code in its kind (a code may name different things in two kinds).
  function name(kind, code, zh) {
    if (code == null) return "";
    if (L === 1) return CODES.en[code] || String(code);
    return zh || (NAMES[kind] || {})[code] || String(code);
  }
  // A job's status or kind: not in the taxonomy, named in i18n.js.
  function jobName(code) { return CODES.job[code] ? CODES.job[code][L] : String(code); }
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v == null || v === false) return;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child == null || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
  function esc(x) {
    return String(x == null ? "" : x).replace(/[&<>"']/g, function (ch) { return "&#" + ch.charCodeAt(0) + ";"; });
  }
  function pct(x) { return x == null ? "–" : (x * 100).toFixed(1) + "%"; }
  function num(x) { return x == null ? "–" : Number(x).toLocaleString(LANG === "en" ? "en-US" : "zh-CN"); }
  function $(id) { return document.getElementById(id); }
  function notice(msg) {
    var n = $("pj-notice");
    n.textContent = msg || "";
    n.hidden = !msg;
  }
  // A statistical rule in the page's language: an i18n.js template filled with the report's own
  // thresholds ({name}: thresholds.name; {name_pt}: the same in percentage points). A report
  // without thresholds shows the service's English text.
  function ruleText(key, s, fallback) {
    if (!s.thresholds) return fallback || "";
    var vars = {};
    Object.keys(s.thresholds).forEach(function (k) {
      var v = s.thresholds[k];
      if (typeof v !== "number") return;
      vars[k] = String(Number(v.toPrecision(6)));
      vars[k + "_pt"] = String(Number((v * 100).toPrecision(6)));
    });
    return t(key, vars);
  }
  function translatePage() {
    document.documentElement.lang = LANG === "en" ? "en" : "zh-CN";
    document.querySelectorAll("[data-i18n]").forEach(function (node) { node.textContent = t(node.dataset.i18n); });
  }

  // --- the API, with the key when keys are on -------------------------------------------
  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }
  function askKey(message) {
    return new Promise(function (resolve) {
      var dialog = $("pj-key-dialog"), form = $("pj-key-form");
      if (message) form.querySelector("p").textContent = message;
      form.onsubmit = function (ev) {
        ev.preventDefault();
        var key = form.elements.key.value.trim();
        if (!key) return;
        sessionStorage.setItem("pj-key", key);
        form.elements.key.value = "";
        dialog.close();
        $("pj-key-clear").hidden = false;
        resolve();
      };
      if (!dialog.open) dialog.showModal();
      document.body.dataset.state = "key";
    });
  }
  async function api(path, opts) {
    opts = opts || {};
    for (var tries = 0; ; tries++) {
      var headers = new Headers(opts.headers || {});
      var key = sessionStorage.getItem("pj-key");
      if (key) headers.set("Authorization", "Bearer " + key);
      var res;
      try {
        res = await fetch(path, Object.assign({}, opts, { headers: headers }));
      } catch (e) {
        window.pjRecordError("fetch", path + ": " + e);
        throw new ApiError(0, "network", String(e));
      }
      if (res.status === 401) {
        if (key) sessionStorage.removeItem("pj-key");
        await askKey(key ? t("key_rejected") : null);
        continue;
      }
      if (res.status === 429 && tries < 5) {  // rate limited: wait as told, then again
        var wait = Math.min(30, Number(res.headers.get("Retry-After")) || 1);
        await new Promise(function (r) { setTimeout(r, wait * 1000); });
        continue;
      }
      if (res.status >= 500 && res.status !== 503) window.pjRecordError("fetch", path + " answered " + res.status);
      return res;
    }
  }
  async function getJson(path, opts) {
    var res = await api(path, opts);
    var body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      var err = (body && body.error) || {};
      throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
    }
    return body;
  }
  function failed(e) {
    if (!(e instanceof ApiError)) window.pjRecordError("exception", e && e.stack ? e.stack : e);  // a bug, not an answer
    notice(t("request_failed") + (e && e.code ? e.code + " — " + e.message : String(e)));
    document.body.dataset.state = "error";
  }
  async function loadTaxonomy() {
    try {
      var tax = await getJson("/v1/taxonomy");
      NAMES = tax.names_zh || {};
      QA_DIMENSIONS = (tax.qa_dimensions || []).map(function (d) { return d.code; });
    } catch (e) { /* names fall back to the codes */ }
  }

  // --- evidence highlighting (offsets are Unicode code points, as the API sends them) -----
  function highlighted(text, spans) {
    var chars = Array.from(text || "");
    var marks = chars.map(function () { return []; });
    (spans || []).forEach(function (s) {
      for (var i = Math.max(0, s.start); i < Math.min(chars.length, s.end); i++) marks[i].push(s);
    });
    var out = el("span", { class: "evidence-text" });
    var i = 0;
    while (i < chars.length) {
      var j = i + 1;
      var key = marks[i].map(function (s) { return s.cls; }).join(" ");
      while (j < chars.length && marks[j].map(function (s) { return s.cls; }).join(" ") === key) j++;
      var piece = chars.slice(i, j).join("");
      if (!key) out.appendChild(document.createTextNode(piece));
      else {
        var titles = marks[i].map(function (s) { return s.title; }).filter(Boolean).join("; ");
        out.appendChild(el("mark", { class: key, title: titles || null, text: piece }));
      }
      i = j;
    }
    return out;
  }
  function termSpans(text, term, cls) {
    var chars = Array.from(text || ""), want = Array.from(term || ""), spans = [];
    if (!want.length) return spans;
    for (var i = 0; i + want.length <= chars.length; i++) {
      if (chars.slice(i, i + want.length).join("") === want.join("")) spans.push({ start: i, end: i + want.length, cls: cls });
    }
    return spans;
  }
  function showExample(title, lines) {
    var body = $("pj-example-body");
    body.textContent = "";
    append(body, el("h3", { text: title }));
    lines.forEach(function (line) { append(body, el("p", { class: "example-line" }, line)); });
    $("pj-example-dialog").showModal();
  }
  function exampleMeta(ex) {
    var bits = [];
    if (ex.row != null) bits.push(t("example_row", { row: ex.row }));
    if (ex.id != null) bits.push("id " + ex.id);
    if (ex.turn != null) bits.push(t("example_turn", { turn: ex.turn }));
    return el("span", { class: "muted", text: bits.join(" · ") });
  }

  // --- charts -------------------------------------------------------------------------------
  function chart(parent, option, height) {
    var box = el("div", { class: "chart", style: "height:" + (height || 320) + "px" });
    parent.appendChild(box);
    var c = window.echarts.init(box, null, { renderer: "canvas" });
    charts.push(c);
    pending.push(new Promise(function (resolve) { c.on("finished", resolve); }));
    c.setOption(Object.assign({ animation: false, textStyle: { fontFamily: "inherit" } }, option));
    return c;
  }
  function whenDrawn() {
    var all = pending.slice();
    pending = [];
    return Promise.all(all).then(function () {
      document.body.dataset.renderedMs = performance.now().toFixed(1);
      document.body.dataset.charts = String(charts.length);
    });
  }
  function disposeCharts() {
    charts.forEach(function (c) { c.dispose(); });
    charts = [];
    pending = [];
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });

  // --- the report ------------------------------------------------------------------------
  function kpis(items) {
    return el("div", { class: "kpis" }, items.map(function (kv) {
      return el("div", { class: "kpi" }, el("div", { class: "kpi-value", text: kv[1] }), el("div", { class: "kpi-label", text: t(kv[0]) }));
    }));
  }
  function card(titleKey) {
    var c = el("div", { class: "card" }, el("h2", { text: t(titleKey) }));
    $("pj-report").appendChild(c);
    return c;
  }
  function table(headKeys, rows) {
    return el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, headKeys.map(function (k) { return el("th", { text: t(k) }); }))),
      el("tbody", {}, rows.map(function (cells) { return el("tr", {}, cells.map(function (c) { return el("td", {}, c); })); }))));
  }

  function renderReport(s) {
    var root = $("pj-report");
    disposeCharts();
    root.textContent = "";
    if (s.complete === false) append(root, el("p", { class: "notice", text: t("partial") }));
    var chats = s.kind === "conversations";
    var overview = card(chats ? "overview_conversations" : "overview_reviews");
    var items = [["kpi_rows", num(s.totals.rows)], ["kpi_analysed", num(s.totals.analysed)],
      ["kpi_negative_rate", pct(s.negative_rate)]];
    if (s.mixed) items.push(["kpi_mixed", pct(s.mixed.share)]);
    items.push(["kpi_errors", num(s.totals.errors)]);
    overview.appendChild(kpis(items));
    if (chats && s.qa) renderQA(s);
    renderDaily(s);
    renderCauses(s);
    renderGroups(s);
    renderTerms(s);
    renderErrors(s);
  }

  function renderDaily(s) {
    var c = card("daily_title");
    var d = s.daily;
    if (!d || !d.series || !d.series.length) { append(c, el("p", { class: "muted", text: t("daily_none") })); return; }
    var dates = d.series.map(function (x) { return x.date; });
    var rateSpikes = (d.alerts || []).filter(function (a) { return a.metric === "negative_rate"; });
    chart(c, {
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: [t("daily_rows"), t("daily_negative_rate")] },
      grid: { left: 56, right: 56, top: 48, bottom: 40 },
      xAxis: { type: "category", data: dates },
      yAxis: [{ type: "value", name: t("daily_rows") },
        { type: "value", name: t("daily_negative_rate"), axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } }],
      series: [
        { name: t("daily_rows"), type: "bar", data: d.series.map(function (x) { return x.rows; }), itemStyle: { color: "#9fb7d8" } },
        { name: t("daily_negative_rate"), type: "line", yAxisIndex: 1, data: d.series.map(function (x) { return x.negative_rate; }),
          itemStyle: { color: "#d9534f" },
          markPoint: { symbol: "pin", symbolSize: 46, itemStyle: { color: "#c9302c" },
            label: { formatter: t("spike"), fontSize: 10 },
            data: rateSpikes.map(function (a) { return { coord: [a.date, a.value], value: a.value }; }) } },
      ],
    });
    var alerts = el("div", { class: "alerts" }, el("h3", { text: t("alerts_title") }));
    if (!(d.alerts || []).length) append(alerts, el("p", { class: "muted", text: t("alerts_none") }));
    (d.alerts || []).forEach(function (a) {
      var what = a.metric === "negative_rate" ? t("spike") : t("cause_spike") + " · " + name("cause", a.cause, a.cause_zh);
      var msg = L === 0 && a.message_zh ? a.message_zh
        : a.date + " " + what + ": " + pct(a.value) + " vs " + pct(a.baseline);
      append(alerts, el("p", { class: "alert" }, el("strong", { text: what }), " ", msg,
        el("span", { class: "muted", text: " (z " + a.z + ", p " + a.p_value + ", n " + a.rows + ")" })));
    });
    append(alerts, el("p", { class: "muted small", id: "pj-rule-spikes", text: t("rule") + ruleText("rule_spikes", s, d.rule) }));
    c.appendChild(alerts);
  }

  function renderCauses(s) {
    var c = card("causes_title");
    var causes = (s.root_causes || []).slice().reverse();
    if (!causes.length) append(c, el("p", { class: "muted", text: t("causes_none") }));
    else chart(c, {
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 120, right: 80, top: 16, bottom: 24 },
      xAxis: { type: "value", name: t("count") },
      yAxis: { type: "category", data: causes.map(function (x) { return name("cause", x.cause, x.cause_zh || x.name_zh); }) },
      series: [{ type: "bar", name: t("count"), data: causes.map(function (x) { return x.count; }), itemStyle: { color: "#e07b39" },
        label: { show: true, position: "right", formatter: function (p) { return num(p.value) + " · " + pct(causes[p.dataIndex].share); } } }],
    }, Math.max(160, 36 * causes.length + 40));
    renderCauseTrend(s.daily);
  }

  // One line per root cause: its share of each day's analysed rows (daily.series[].causes), the
  // TREND_TOP causes of daily.causes by name and the rest summed as 其他; cause spikes pinned.
  var TREND_TOP = 6;
  function renderCauseTrend(d) {
    if (!d || !d.series || !d.series.length) return;
    var c = card("cause_trend_title");
    var days = d.series.map(function (x) {  // a report made before per-day counts: the top cause only
      if (x.causes) return x.causes;
      var one = {};
      if (x.top_cause) one[x.top_cause] = Math.round(x.top_cause_share * x.analysed);
      return one;
    });
    var ranked = d.causes, zh = {};
    if (!ranked) {
      var totals = {};
      days.forEach(function (day) { Object.keys(day).forEach(function (k) { totals[k] = (totals[k] || 0) + day[k]; }); });
      ranked = Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a] || (a < b ? -1 : 1); })
        .map(function (k) { return { cause: k, count: totals[k] }; });
    }
    d.series.forEach(function (x) { if (x.top_cause) zh[x.top_cause] = x.top_cause_zh; });
    ranked.forEach(function (x) { if (x.cause_zh) zh[x.cause] = x.cause_zh; });
    if (!ranked.length) { append(c, el("p", { class: "muted", text: t("causes_none") })); return; }
    var top = ranked.slice(0, TREND_TOP).map(function (x) { return x.cause; });
    var lines = top.map(function (code) {
      return { name: name("cause", code, zh[code]), codes: [code] };
    });
    var rest = ranked.slice(TREND_TOP).map(function (x) { return x.cause; });
    if (rest.length) lines.push({ name: t("other"), codes: rest });
    var series = lines.map(function (line) {
      return { name: line.name, type: "line", smooth: false, symbolSize: 5, connectNulls: false,
        data: d.series.map(function (x, i) {
          var n = line.codes.reduce(function (sum, code) { return sum + (days[i][code] || 0); }, 0);
          return { value: x.analysed ? n / x.analysed : null, count: n };
        }) };
    });
    var causeSpikes = (d.alerts || []).filter(function (a) { return a.metric === "cause_share"; });
    series.push({ name: t("cause_spike"), type: "scatter", symbol: "pin", symbolSize: 40, itemStyle: { color: "#c9302c" }, z: 5,
      label: { show: true, position: "top", color: "#c9302c", formatter: function (p) { return p.data.label; }, fontSize: 11 },
      data: causeSpikes.map(function (a) { return { value: [a.date, a.value], label: name("cause", a.cause, a.cause_zh) }; }) });
    chart(c, {
      tooltip: { trigger: "axis", formatter: function (ps) {
        var out = ps.length ? esc(ps[0].axisValue) : "";  // ECharts shows a formatter's string as HTML
        ps.forEach(function (p) {
          if (p.seriesType === "line" && p.data && p.data.value != null) out += "<br>" + p.marker + esc(p.seriesName) + " " + pct(p.data.value) + " (" + num(p.data.count) + ")";
          else if (p.seriesType === "scatter") out += "<br>" + p.marker + esc(t("cause_spike") + " · " + p.data.label);
        });
        return out;
      } },
      legend: { type: "scroll", top: 0 },
      grid: { left: 56, right: 24, top: 80, bottom: 40 },
      xAxis: { type: "category", data: d.series.map(function (x) { return x.date; }) },
      yAxis: { type: "value", name: t("share"), axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } },
      series: series,
    });
    append(c, el("p", { class: "muted small", text: t("cause_trend_note", { n: TREND_TOP }) }));
  }

  function renderTerms(s) {
    var c = card("terms_title");
    var items = (s.complaint_terms && s.complaint_terms.items) || [];
    if (!items.length) { append(c, el("p", { class: "muted", text: t("terms_none") })); return; }
    append(c, table(["col_term", "col_neg_texts", "col_pos_texts", "col_z", "col_example"], items.map(function (it) {
      var ex = it.example;
      var cell = ex ? el("a", { href: "#", class: "example-link", "data-term": it.term, onclick: function (ev) {
        ev.preventDefault();
        showExample(t("example_title") + " · " + it.term, [exampleMeta(ex), highlighted(ex.text, termSpans(ex.text, it.term, "blame"))]);
      } }, highlighted(ex.text.slice(0, 60), termSpans(ex.text.slice(0, 60), it.term, "blame"))) : "–";
      return [el("strong", { text: it.term }), num(it.negative_texts), num(it.positive_texts), String(it.z), cell];
    })));
    append(c, el("p", { class: "muted small", id: "pj-rule-terms", text: ruleText("rule_terms", s, s.complaint_terms.method + "; " + s.complaint_terms.rank) }));
  }

  function renderGroups(s) {
    var cols = (s.groups && s.groups.columns) || [];
    var c = card("groups_title");
    if (!cols.length) { append(c, el("p", { class: "muted", text: t("groups_none") })); return; }
    append(c, el("p", { class: "muted small", id: "pj-rule-groups", text: t("test_line") + ruleText("rule_groups", s, s.groups.test) }));
    cols.forEach(function (col) {
      append(c, el("h3", { text: col.column }));
      var groups = col.groups || [];
      chart(c, {
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
        grid: { left: 56, right: 24, top: 24, bottom: 56 },
        xAxis: { type: "category", data: groups.map(function (g) { return g.value; }), axisLabel: { rotate: groups.length > 8 ? 40 : 0 } },
        yAxis: { type: "value", name: t("col_negative_rate"), axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } },
        series: [{ type: "bar", name: t("col_negative_rate"),
          data: groups.map(function (g) { return { value: g.negative_rate, itemStyle: { color: g.flagged ? "#c9302c" : "#7f9cc0" } }; }),
          markLine: { symbol: "none", label: { position: "insideEndTop", formatter: t("kpi_negative_rate") + " " + pct(s.negative_rate) },
            lineStyle: { type: "dashed", color: "#555" }, data: [{ yAxis: s.negative_rate }] } }],
      }, 260);
      append(c, el("p", { class: "muted small", text: t("tested_line", { n: col.groups_tested, a: Number(col.alpha_per_group).toPrecision(3) }) }));
      var flaggedFirst = groups.slice().sort(function (a, b) { return (b.flagged - a.flagged) || (b.rows - a.rows); });
      append(c, table(["col_group", "col_rows", "col_negative_rate", "col_rest_rate", "col_z", "col_p", "col_top_cause", "col_flag"],
        flaggedFirst.map(function (g) {
          var top = (g.root_causes || [])[0];
          return [g.value, num(g.analysed), pct(g.negative_rate), pct(g.rest_negative_rate), g.z == null ? "–" : String(g.z),
            g.p_value == null ? "–" : String(g.p_value), top ? name("cause", top.cause, top.cause_zh || top.name_zh) : "–",
            el("span", { class: g.flagged ? "flag" : "muted", text: g.flagged ? t("group_flagged") : t("group_not_flagged") })];
        })));
    });
  }

  function renderQA(s) {
    var qa = s.qa, o = qa.overall;
    var c = card("qa_title");
    c.appendChild(kpis([["kpi_conversations", num(qa.conversations)], ["kpi_qa_mean", o.qa_score_mean == null ? "–" : o.qa_score_mean.toFixed(1)],
      ["kpi_violation_rate", pct(o.violation_rate)], ["kpi_resolution_rate", pct(o.resolution.resolution_rate)],
      ["kpi_frt", (o.first_response.p50_seconds == null ? "–" : o.first_response.p50_seconds) + " / " +
        (o.first_response.p90_seconds == null ? "–" : o.first_response.p90_seconds)]]));
    var two = el("div", { class: "grid2" });
    c.appendChild(two);
    var left = el("div", {}, el("h3", { text: t("grades_title") })), right = el("div", {}, el("h3", { text: t("violations_title") }));
    two.appendChild(left); two.appendChild(right);
    chart(left, {
      tooltip: { trigger: "item" },
      legend: { bottom: 0 },
      color: ["#3c9a5f", "#7fb6e0", "#f0ad4e", "#c9302c"],
      series: [{ type: "pie", radius: ["35%", "65%"], label: { formatter: "{b} {c}" },
        data: o.grades.map(function (g) { return { name: name("grade", g.grade, g.grade_zh || g.name_zh), value: g.count }; }) }],
    }, 280);
    var viol = (o.violations || []).slice().reverse();
    if (!viol.length) append(right, el("p", { class: "muted", text: t("violations_none") }));
    else chart(right, {
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 110, right: 40, top: 8, bottom: 24 },
      xAxis: { type: "value" },
      yAxis: { type: "category", data: viol.map(function (v) { return name("violation", v.code, v.code_zh); }) },
      series: [{ type: "bar", name: t("count"), label: { show: true, position: "right" },
        data: viol.map(function (v) { return { value: v.count, itemStyle: { color: v.service ? "#c9302c" : "#f0ad4e" } }; }) }],
    }, Math.max(160, 30 * viol.length + 40));
    append(c, el("p", { class: "muted small", id: "pj-rule-qa", text: t("test_line") + (s.thresholds ? ruleText("rule_groups", s) + t("rule_qa_rates") : qa.test) }));
    renderQATable("agents_title", "col_agent", qa.agents, qa);
    renderQATable("channels_title", "col_channel", qa.channels, null);
  }

  function testCell(rate, test) {
    if (!test) return pct(rate);
    var bits = pct(test.rate) + " vs " + pct(test.rest_rate);
    if (test.z != null) bits += " · z " + test.z + " · p " + test.p_value;
    return el("span", { class: test.flagged ? "flag" : "" , text: bits });
  }
  function violationLinks(g) {
    return el("span", {}, (g.violations || []).map(function (v) {
      var label = name("violation", v.code, v.code_zh) + " " + v.count;
      if (!v.example) return el("span", { class: "chip", text: label });
      return el("a", { href: "#", class: "chip example-link", "data-code": v.code, onclick: function (ev) {
        ev.preventDefault();
        var ex = v.example;
        showExample(t("example_title") + " · " + name("violation", v.code, v.code_zh) + " · " + g.value,
          [exampleMeta(ex), highlighted(ex.text, [{ start: 0, end: Array.from(ex.text).length, cls: v.service ? "viol" : "viol-soft", title: v.code }])]);
      } }, label);
    }));
  }
  function renderQATable(titleKey, colKey, tbl, qa) {
    var c = card(titleKey);
    if (!tbl || !tbl.available) { append(c, el("p", { class: "muted", text: t("table_unavailable") + ((tbl && tbl.note) || "") })); return; }
    var groups = tbl.groups || [];
    append(c, table([colKey, "col_conversations", "col_qa_mean", "col_violation_rate", "col_unresolved_rate", "col_violations"],
      groups.map(function (g) {
        return [g.value, num(g.conversations), g.qa_score_mean == null ? "–" : g.qa_score_mean.toFixed(1),
          testCell(g.violation_rate, g.tests && g.tests.violation_rate),
          testCell(g.resolution.unresolved_rate, g.tests && g.tests.unresolved_rate), violationLinks(g)];
      })));
    if (tbl.without_value) append(c, el("p", { class: "muted small", text: t("without_value", { n: tbl.without_value }) }));
    if (qa) renderRadar(c, groups, qa);
  }
  // The taxonomy's QA dimensions; without the taxonomy, the ones the response carries.
  function dimensionCodes(dims) {
    return QA_DIMENSIONS.length ? QA_DIMENSIONS : Object.keys(dims || {});
  }
  // qa.agents.groups[].dimensions_mean: {code: mean 0-100, or null when QA judged none of the
  // agent's conversations}; an agent is drawn when it has every dimension's mean.
  function renderRadar(parent, groups, qa) {
    append(parent, el("h3", { text: t("radar_title") }));
    var codes = dimensionCodes(qa.overall && qa.overall.dimensions_mean);
    function complete(d) { return d && codes.length && codes.every(function (code) { return d[code] != null; }); }
    var withDims = groups.filter(function (g) { return complete(g.dimensions_mean); }).slice(0, 12);
    if (!withDims.length) { append(parent, el("p", { class: "muted", id: "pj-radar-missing", text: t("radar_missing") })); return; }
    var zh = qa.dimensions_zh || {};
    var data = withDims.map(function (g) {
      return { name: g.value, value: codes.map(function (code) { return g.dimensions_mean[code]; }) };
    });
    if (complete(qa.overall && qa.overall.dimensions_mean)) data.push({ name: t("radar_overall"), value: codes.map(function (code) { return qa.overall.dimensions_mean[code]; }),
      lineStyle: { type: "dashed", color: "#555" }, itemStyle: { color: "#555" }, symbol: "none" });
    chart(parent, {
      tooltip: {},
      legend: { type: "scroll", bottom: 0 },
      radar: { indicator: codes.map(function (code) { return { name: name("qa_dimension", code, zh[code]), max: 100 }; }), radius: "62%" },
      series: [{ type: "radar", data: data }],
    }, 360);
    append(parent, el("p", { class: "muted small", text: t("radar_note") }));
  }

  function renderErrors(s) {
    if (!s.errors || !s.totals.errors) return;
    var c = card("errors_title");
    append(c, el("p", { text: Object.keys(s.errors.by_code).map(function (k) { return k + " " + s.errors.by_code[k]; }).join(" · ") }));
    (s.errors.examples || []).forEach(function (e) { append(c, el("p", { class: "muted small", text: JSON.stringify(e) })); });
  }

  // --- one job ----------------------------------------------------------------------------
  async function showJob(jobId) {
    $("pj-job").hidden = false;
    $("pj-job-id").textContent = jobId;
    var token = ++pollToken;
    var path = "/v1/jobs/" + encodeURIComponent(jobId);
    for (;;) {
      var st;
      try { st = await getJson(path); } catch (e) {
        if (e.status === 404) { notice(t("not_found")); document.body.dataset.state = "error"; } else failed(e);
        return;
      }
      if (token !== pollToken) return;
      renderStatus(st);
      if (["done", "failed", "cancelled"].indexOf(st.status) >= 0) break;
      await new Promise(function (r) { setTimeout(r, 1000); });
    }
    if (st.status === "failed") notice(t("job_failed") + ((st.error && (st.error.message || st.error.code)) || ""));
    try {
      var summary = await getJson(path + "/summary");
      renderReport(summary);
      document.body.dataset.state = "report";
      document.body.dataset.kind = summary.kind || "";
      await whenDrawn();
    } catch (e) {
      if (st.status !== "failed") failed(e);
      else document.body.dataset.state = "error";
    }
  }
  function renderStatus(st) {
    var box = $("pj-job-status");
    box.textContent = "";
    var line = t("progress", { done: num(st.done), total: num(st.total), errors: num(st.errors) });
    if (st.status === "running" && st.rows_per_second) line += t("speed", { r: num(st.rows_per_second), eta: st.eta_seconds == null ? "–" : st.eta_seconds });
    append(box, el("p", {}, el("span", { class: "status status-" + st.status, text: jobName(st.status) }), " ",
      jobName(st.kind), " · ", line, " · ", el("a", { href: "/ui/jobs/" + encodeURIComponent(st.job_id), text: t("share_link") })));
    $("pj-progress").style.width = (st.total ? Math.round(100 * st.done / st.total) : 0) + "%";
  }

  // --- home: upload, job list, one text ----------------------------------------------------
  async function showHome() {
    $("pj-home").hidden = false;
    var form = $("pj-upload");
    form.onsubmit = async function (ev) {
      ev.preventDefault();
      var data = new FormData();
      data.append("file", form.elements.file.files[0]);
      data.append("kind", form.elements.kind.value);
      ["text_column", "id_column"].forEach(function (k) { if (form.elements[k].value.trim()) data.append(k, form.elements[k].value.trim()); });
      notice(t("uploading"));
      try {
        var acc = await getJson("/v1/jobs", { method: "POST", body: data });
        notice("");
        history.pushState({}, "", "/ui/jobs/" + encodeURIComponent(acc.job_id));
        route();
      } catch (e) { failed(e); }
    };
    var single = $("pj-single");
    single.onsubmit = function (ev) { ev.preventDefault(); analyseOne(single.elements.mode.value, single.elements.text.value); };
    $("pj-single-example").onclick = function () {
      single.elements.text.value = single.elements.mode.value === "chat"
        ? "客户: 在吗？我的快递三天了还没发货\n客服: 这个不归我管，你去问快递吧\n客户: 你们这服务太差了，我要投诉\n客服: 您好，非常抱歉，我马上帮您催一下物流\n客户: 好的，谢谢"
        : "发货太慢了，客服也不耐烦，不过东西质量还不错";
    };
    await listJobs();
    document.body.dataset.state = "home";
    // "#review=<text>" / "#chat=<lines>": a link that opens with that text analysed (the
    // fragment never reaches the server or its logs).
    var m = /^#(review|chat)=(.*)$/s.exec(location.hash);
    if (m) {
      single.elements.mode.value = m[1];
      single.elements.text.value = decodeURIComponent(m[2]);
      await analyseOne(m[1], single.elements.text.value);
      document.body.dataset.state = "single";
    }
    await whenDrawn();
  }
  async function listJobs() {
    var box = $("pj-jobs");
    box.textContent = t("loading");
    var page;
    try { page = await getJson("/v1/jobs?limit=20&offset=0"); } catch (e) {
      box.textContent = t("jobs_unavailable") + (e.code || "") + (e.message ? " — " + e.message : "");
      return;
    }
    box.textContent = "";
    var jobs = page.jobs || [];
    if (!jobs.length) { append(box, el("p", { class: "muted", text: t("jobs_none") })); return; }
    append(box, table(["col_job", "col_kind", "col_status", "col_rows", "col_created"], jobs.map(function (j) {
      return [el("a", { href: "/ui/jobs/" + encodeURIComponent(j.job_id), class: "job-link", text: j.job_id.slice(0, 12) }),
        jobName(j.kind), el("span", { class: "status status-" + j.status, text: jobName(j.status) }),
        num(j.done) + " / " + num(j.total), (j.created_at || "").replace("T", " ").slice(0, 19)];
    })));
    if (page.total > jobs.length) append(box, el("p", { class: "muted small", text: t("jobs_more", { n: page.total, m: jobs.length }) }));
  }

  var ROLES = [[/^(客户|顾客|用户|买家|customer)$/i, "customer"], [/^(客服|坐席|商家|卖家|agent)$/i, "agent"],
    [/^(机器人|bot)$/i, "bot"], [/^(系统|system)$/i, "system"]];
  function parseChat(text) {
    var turns = [];
    text.split(/\r?\n/).forEach(function (line) {
      var m = /^\s*([^:：\s]{1,12})\s*[:：]\s*(.*)$/.exec(line);
      var role = null;
      if (m) ROLES.forEach(function (r) { if (!role && r[0].test(m[1])) role = r[1]; });
      if (role) turns.push({ role: role, text: m[2] });
      else if (turns.length && line.trim()) turns[turns.length - 1].text += "\n" + line;
    });
    return turns.filter(function (x) { return x.text.trim(); });
  }
  async function analyseOne(mode, text) {
    var out = $("pj-single-out");
    out.textContent = "";
    disposeCharts();
    try {
      if (mode === "chat") {
        var turns = parseChat(text);
        if (!turns.length) { out.textContent = t("single_no_turns"); return; }
        renderChat(out, turns, await getJson("/v1/conversations/analyze", { method: "POST",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ turns: turns }) }));
      } else {
        renderReview(out, text, await getJson("/v1/analyze", { method: "POST",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: text }) }));
      }
      await whenDrawn();
    } catch (e) { failed(e); }
  }
  function legend(pairs) {
    return el("p", { class: "legend" }, pairs.map(function (p) { return el("mark", { class: p[0], text: t(p[1]) }); }));
  }
  function renderReview(out, text, r) {
    var spans = [];
    (r.root_causes || []).forEach(function (c) {
      (c.evidence || []).forEach(function (e) { spans.push({ start: e.start, end: e.end, cls: "blame", title: name("cause", c.cause, c.cause_zh) }); });
    });
    (r.aspects || []).forEach(function (a) {
      if (a.polarity !== "positive") return;
      (a.evidence || []).forEach(function (e) { spans.push({ start: e.start, end: e.end, cls: "praise", title: name("aspect", a.aspect, a.aspect_zh) }); });
    });
    (r.keywords || []).forEach(function (k) { spans.push({ start: k.start, end: k.end, cls: "kw", title: k.term + " · " + name("dimension", k.dimension, k.dimension_zh) }); });
    var label = r.sentiment.label;
    append(out, el("div", { class: "kpis" },
      el("div", { class: "kpi" }, el("div", { class: "kpi-value sent-" + label, text: name("review_sentiment", label, r.sentiment.label_zh) }), el("div", { class: "kpi-label", text: t("single_sentiment") })),
      el("div", { class: "kpi" }, el("div", { class: "kpi-value", text: pct(r.sentiment.probabilities[label]) }), el("div", { class: "kpi-label", text: "P" }))));
    append(out, legend([["blame", "legend_blame"], ["praise", "legend_praise"]]));
    append(out, el("p", { class: "single-text" }, highlighted(text, spans)));
    append(out, el("h3", { text: t("single_causes") }));
    append(out, el("ul", {}, (r.root_causes || []).length ? r.root_causes.map(function (c) {
      return el("li", {}, el("strong", { text: name("cause", c.cause, c.cause_zh) }), " " + c.score.toFixed(2) + " · ",
        (c.evidence || []).map(function (e) { return el("mark", { class: "blame", text: e.text }); }));
    }) : el("li", { class: "muted", text: t("single_none") })));
    append(out, el("h3", { text: t("single_aspects") }));
    append(out, el("ul", {}, (r.aspects || []).map(function (a) {
      return el("li", {}, name("aspect", a.aspect, a.aspect_zh) + " · " + name("polarity", a.polarity, a.polarity_zh) + " · " + a.score.toFixed(2));
    })));
  }
  function renderChat(out, turns, r) {
    var qa = r.qa || {};
    append(out, el("div", { class: "kpis" },
      el("div", { class: "kpi" }, el("div", { class: "kpi-value", text: qa.score == null ? "–" : qa.score.toFixed(1) }), el("div", { class: "kpi-label", text: t("single_qa") })),
      el("div", { class: "kpi" }, el("div", { class: "kpi-value", text: name("grade", qa.grade, qa.grade_zh) }), el("div", { class: "kpi-label", text: t("single_grade") })),
      el("div", { class: "kpi" }, el("div", { class: "kpi-value", text: name("resolution", r.resolution.status, r.resolution.status_zh) }), el("div", { class: "kpi-label", text: t("single_resolution") })),
      el("div", { class: "kpi" }, el("div", { class: "kpi-value", text: name("escalation", r.customer.escalation_risk, r.customer.escalation_risk_zh) }), el("div", { class: "kpi-label", text: t("single_escalation") }))));
    if (qa.dimensions) {
      var codes = dimensionCodes(qa.dimensions);
      append(out, el("h3", { text: t("single_dimensions") }));
      chart(out, { tooltip: {}, radar: { indicator: codes.map(function (c) { return { name: name("qa_dimension", c, (qa.dimensions_zh || {})[c]), max: 100 }; }), radius: "62%" },
        series: [{ type: "radar", data: [{ name: t("single_qa"), value: codes.map(function (c) { return qa.dimensions[c]; }), areaStyle: { opacity: 0.2 } }] }] }, 300);
    }
    var byTurn = turns.map(function () { return []; });
    function add(turn, span) { if (byTurn[turn]) byTurn[turn].push(span); }
    (r.violations || []).forEach(function (v) {
      var serious = v.rule === "forbidden_phrase" || v.rule === "pii_leak";
      add(v.turn, { start: v.start, end: v.end, cls: serious ? "viol" : "viol-soft", title: name("violation", v.category || v.rule, v.category_zh || v.rule_zh) });
    });
    (r.polite_phrases || []).forEach(function (p) { add(p.turn, { start: p.start, end: p.end, cls: "polite", title: t("legend_polite") }); });
    (r.root_causes || []).forEach(function (c) {
      (c.evidence || []).forEach(function (e) { add(e.turn, { start: e.start, end: e.end, cls: "blame", title: name("cause", c.cause, c.cause_zh) }); });
    });
    append(out, el("h3", { text: t("single_turns") }));
    append(out, legend([["viol", "legend_violation"], ["polite", "legend_polite"], ["blame", "legend_blame"]]));
    append(out, el("div", { class: "turns" }, turns.map(function (turn, i) {
      return el("div", { class: "turn turn-" + turn.role }, el("span", { class: "role", text: t("role_" + turn.role) }), highlighted(turn.text, byTurn[i]));
    })));
    append(out, el("h3", { text: t("single_violations") }));
    append(out, el("ul", {}, (r.violations || []).length ? r.violations.map(function (v) {
      return el("li", {}, el("strong", { text: name("violation", v.category || v.rule, v.category_zh || v.rule_zh) }),
        " · " + t("example_turn", { turn: v.turn }) + " · " + name("severity", v.severity, v.severity_zh) + " · ", el("mark", { class: "viol", text: v.text }));
    }) : el("li", { class: "muted", text: t("single_none") })));
  }

  // --- routing ------------------------------------------------------------------------------
  function route() {
    pollToken++;
    disposeCharts();
    notice("");
    $("pj-home").hidden = true;
    $("pj-job").hidden = true;
    $("pj-report").textContent = "";
    var m = /^\/ui\/jobs\/([^/]+)\/?$/.exec(location.pathname);
    return m ? showJob(decodeURIComponent(m[1])) : showHome();
  }

  async function start() {
    translatePage();
    $("pj-lang").onclick = function () { localStorage.setItem("pj-lang", LANG === "en" ? "zh" : "en"); location.reload(); };
    $("pj-key-clear").hidden = !sessionStorage.getItem("pj-key");
    $("pj-key-clear").onclick = function () { sessionStorage.removeItem("pj-key"); location.reload(); };
    window.addEventListener("popstate", route);
    window.addEventListener("hashchange", function () { if (/^#(review|chat)=/.test(location.hash)) route(); });
    await loadTaxonomy();
    await route();
  }
  start();
})();
