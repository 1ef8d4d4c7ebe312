// deja dashboard: signs in with the admin token, polls /admin/dashboard.json and draws
// KPI tiles, SVG charts and tables. Plain JavaScript, no dependencies, nothing loaded from
// elsewhere (the page's Content-Security-Policy forbids it).
"use strict";

(function () {
  const TOKEN_KEY = "deja.adminToken";
  const RANGE_KEY = "deja.rangeMinutes";
  const DATA_URL = "/admin/dashboard.json";
  const FEEDBACK_URL = "/admin/feedback";
  const REFRESH_MS = 5000;
  const MINUTE_MS = 60000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COLORS = {
    exact: "#0f766e",
    semantic: "#2dd4bf",
    miss: "#cbd5e1",
    bypass: "#f59e0b",
    near: "#f59e0b",
    refused: "#e11d48",
    rate: "#4f46e5",
    money: "#059669",
    hit: "#0d9488",
    missLine: "#64748b",
  };
  // Bin width (minutes) of the traffic chart for each range.
  const STEP_MINUTES = { 60: 1, 360: 5, 1440: 15 };

  const $ = (id) => document.getElementById(id);
  let rangeMinutes = Number(sessionStorage.getItem(RANGE_KEY)) || 60;
  if (!STEP_MINUTES[rangeMinutes]) rangeMinutes = 60;
  let last = null;
  let timer = null;
  let lastOk = 0;

  // ---------- formatting ----------
  function fmtInt(n) {
    return Math.round(n).toLocaleString("en-US");
  }
  function fmtCompact(n) {
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "B";
    if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
    return fmtInt(n);
  }
  function fmtUsd(x) {
    if (!x) return "$0";
    if (x < 0.01) return "$" + x.toPrecision(2);
    if (x < 1000) return "$" + x.toFixed(2);
    return "$" + fmtCompact(x);
  }
  function fmtPct(x) {
    return (x * 100).toFixed(x >= 0.9995 || x === 0 ? 0 : 1) + "%";
  }
  function fmtSecs(s) {
    if (s == null) return "–";
    if (s < 1e-3) return Math.round(s * 1e6) + " µs";
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : s < 0.1 ? 1 : 0) + " ms";
    return s.toFixed(s < 10 ? 2 : 1) + " s";
  }
  // A power of ten of seconds, as an axis label: 10 µs, 1 ms, 10 s.
  function fmtDecade(s) {
    const e = Math.round(Math.log10(s));
    if (e < -3) return Math.pow(10, e + 6).toFixed(0) + " µs";
    if (e < 0) return Math.pow(10, e + 3).toFixed(0) + " ms";
    return Math.pow(10, e).toFixed(0) + " s";
  }
  function fmtAgo(ms, now) {
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function fmtClock(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  // ---------- DOM helpers ----------
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) if (c != null) e.append(c);
    return e;
  }
  function svgEl(tag, attrs, children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children || []) if (c != null) e.append(c);
    return e;
  }
  function tip(text) {
    return svgEl("title", { text });
  }
  function emptyBox(message) {
    return el("div", { class: "empty", text: message });
  }
  function widthOf(node) {
    return Math.max(280, Math.floor(node.clientWidth || node.getBoundingClientRect().width || 600));
  }
  // Round-number ticks for [0, max].
  function niceTicks(max, count) {
    if (!(max > 0)) return { top: 1, ticks: [0, 1] };
    const raw = max / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const top = Math.ceil(max / step) * step;
    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
    return { top, ticks };
  }
  function legend(node, items) {
    node.replaceChildren(
      ...items.map(([cls, label, line]) =>
        el("span", {}, [el("i", { class: cls + (line ? " line" : "") }), label])
      )
    );
  }

  // ---------- sign-in ----------
  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }
  function showLogin(message) {
    clearTimeout(timer);
    $("main").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    const err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("token").focus();
  }
  function showMain() {
    $("login").hidden = true;
    $("main").hidden = false;
    $("controls").hidden = false;
  }
  function takeTokenFromHash() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return;
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    // Keep the token out of the address bar and history.
    history.replaceState(null, "", location.pathname + location.search);
  }

  // ---------- polling ----------
  async function refresh() {
    clearTimeout(timer);
    const t = token();
    if (!t) return showLogin();
    try {
      const resp = await fetch(DATA_URL, {
        headers: { Authorization: "Bearer " + t },
        cache: "no-store",
      });
      if (resp.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin("That token was not accepted.");
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      last = await resp.json();
      lastOk = Date.now();
      showMain();
      render(last);
      setStatus(true);
    } catch (e) {
      setStatus(false, e);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }
  function setStatus(ok, err) {
    $("live").className = "dot " + (ok ? "ok" : "bad");
    $("updated").textContent = ok
      ? "live · updated " + new Date(lastOk).toLocaleTimeString("en-GB")
      : "cannot reach deja, retrying" + (err && err.message ? " (" + err.message + ")" : "");
  }

  // ---------- data shaping ----------
  // The selected range as bins: [{t, exact, semantic, miss, bypass, tokens, usd, near}].
  function series(data) {
    const step = STEP_MINUTES[rangeMinutes] * MINUTE_MS;
    const n = rangeMinutes / STEP_MINUTES[rangeMinutes];
    const start = Math.floor(data.now_ms / step) * step - (n - 1) * step;
    const bins = [];
    for (let i = 0; i < n; i++) {
      bins.push({ t: start + i * step, exact: 0, semantic: 0, miss: 0, bypass: 0, tokens: 0, usd: 0, near: 0 });
    }
    for (const m of data.insights.minutes) {
      const i = Math.floor((m.t_ms - start) / step);
      if (i < 0 || i >= n) continue;
      const b = bins[i];
      b.exact += m.hit_exact;
      b.semantic += m.hit_semantic;
      b.miss += m.miss;
      b.bypass += m.bypass;
      b.tokens += m.prompt_tokens_saved + m.completion_tokens_saved;
      b.usd += m.usd_saved;
      b.near += m.near_misses;
    }
    return bins;
  }
  function sum(bins, f) {
    return bins.reduce((a, b) => a + f(b), 0);
  }

  // ---------- rendering ----------
  function render(data) {
    const bins = series(data);
    renderKpis(data, bins);
    renderTraffic(bins);
    renderSavings(bins);
    renderLatency(data.insights.latency);
    renderSimilarity(data);
    renderReasons($("bypass-bars"), data.insights.bypass_reasons, "", "No bypasses");
    renderReasons($("reject-bars"), data.insights.reject_reasons, "refused", "No candidate refused");
    renderBudget(data);
    renderNearMisses(data);
    renderHits(data);
    renderTopEntries(data);
    const s = data.store;
    const c = s.counters;
    const stored = s.error || !c
      ? "store unavailable: " + (s.error || "no answer") + " · "
      : fmtInt(s.entries) + " entries stored · all-time hit rate " + fmtPct(s.hit_rate) +
        " (" + fmtInt(c.exact_hits + c.semantic_hits) + " hits, " + fmtInt(c.misses) + " misses) · ";
    $("footer").textContent = stored +
      "threshold " + data.config.min_similarity.toFixed(2) + " · verify " + data.config.verify +
      " · refreshes every " + REFRESH_MS / 1000 + " s";
  }

  function setKpi(id, value, sub) {
    const node = $(id);
    node.querySelector(".value").textContent = value;
    const s = node.querySelector(".sub");
    if (typeof sub === "string") s.textContent = sub;
    else s.replaceChildren(...sub);
  }

  function renderKpis(data, bins) {
    const exact = sum(bins, (b) => b.exact);
    const semantic = sum(bins, (b) => b.semantic);
    const miss = sum(bins, (b) => b.miss);
    const bypass = sum(bins, (b) => b.bypass);
    const requests = exact + semantic + miss + bypass;
    const looked = exact + semantic + miss;
    const rate = looked ? (exact + semantic) / looked : 0;
    const tile = $("kpi-hit-rate");
    tile.querySelector(".value").textContent = looked ? fmtPct(rate) : "–";
    let meter = tile.querySelector(".meter");
    if (!meter) {
      meter = el("div", { class: "meter" }, [el("span", { class: "m-exact" }), el("span", { class: "m-semantic" })]);
      tile.insertBefore(meter, tile.querySelector(".sub"));
    }
    meter.children[0].style.width = (looked ? (100 * exact) / looked : 0) + "%";
    meter.children[1].style.width = (looked ? (100 * semantic) / looked : 0) + "%";
    tile.querySelector(".sub").textContent = looked
      ? "exact " + fmtPct(exact / looked) + " · semantic " + fmtPct(semantic / looked)
      : "no lookups yet";

    const range = rangeMinutes === 1440 ? "24 h" : rangeMinutes / 60 + " h";
    setKpi("kpi-requests", fmtCompact(requests), "last " + range + " · " + fmtInt(bypass) + " bypassed");
    const usd = sum(bins, (b) => b.usd);
    const tokens = sum(bins, (b) => b.tokens);
    setKpi("kpi-usd", fmtUsd(usd), usd > 0 ? "upstream spend avoided" : tokens > 0 ? "no price for these models" : "nothing saved yet");
    setKpi("kpi-tokens", fmtCompact(tokens), fmtInt(exact + semantic) + " answers from the cache");
    const lat = data.insights.latency;
    setKpi("kpi-p50", fmtSecs(lat.hit.p50), lat.miss.p50 != null ? "miss p50 " + fmtSecs(lat.miss.p50) : "no misses yet");
    setKpi("kpi-p99", fmtSecs(lat.hit.p99), lat.miss.p99 != null ? "miss p99 " + fmtSecs(lat.miss.p99) : "no misses yet");
  }

  function renderTraffic(bins) {
    const node = $("traffic-chart");
    legend($("traffic-legend"), [
      ["sw-exact", "exact hit"],
      ["sw-semantic", "semantic hit"],
      ["sw-miss", "miss"],
      ["sw-bypass", "bypass"],
      ["sw-rate", "hit rate", true],
    ]);
    const total = sum(bins, (b) => b.exact + b.semantic + b.miss + b.bypass);
    if (!total) return node.replaceChildren(emptyBox("No requests in this range yet"));
    const W = widthOf(node), H = 230, L = 44, R = 44, T = 10, B = 26;
    const cw = W - L - R, ch = H - T - B;
    const max = Math.max(...bins.map((b) => b.exact + b.semantic + b.miss + b.bypass));
    const { top, ticks } = niceTicks(max, 4);
    const y = (v) => T + ch - (v / top) * ch;
    const bw = cw / bins.length;
    const g = [];
    for (const v of ticks) {
      g.push(svgEl("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      g.push(svgEl("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end", text: fmtCompact(v) }));
    }
    for (const p of [0, 0.5, 1]) {
      g.push(svgEl("text", { x: W - R + 8, y: T + ch - p * ch + 4, fill: COLORS.rate, text: Math.round(p * 100) + "%" }));
    }
    const gap = bw > 6 ? Math.min(3, bw * 0.2) : 0;
    const line = [];
    bins.forEach((b, i) => {
      const x = L + i * bw + gap / 2;
      let acc = 0;
      const n = b.exact + b.semantic + b.miss + b.bypass;
      const label =
        fmtClock(b.t) + ": " + n + " requests · " + b.exact + " exact, " + b.semantic + " semantic, " +
        b.miss + " miss, " + b.bypass + " bypass";
      for (const k of ["exact", "semantic", "miss", "bypass"]) {
        if (!b[k]) continue;
        const h = (b[k] / top) * ch;
        g.push(svgEl("rect", { class: "bar", x, y: y(acc) - h, width: Math.max(1, bw - gap), height: h, fill: COLORS[k], rx: bw > 8 ? 2 : 0 }, [tip(label)]));
        acc += b[k];
      }
      const looked = b.exact + b.semantic + b.miss;
      if (looked) line.push([x + (bw - gap) / 2, T + ch - ((b.exact + b.semantic) / looked) * ch]);
    });
    if (line.length > 1) {
      g.push(svgEl("polyline", { points: line.map((p) => p.join(",")).join(" "), fill: "none", stroke: COLORS.rate, "stroke-width": 2, "stroke-linejoin": "round" }));
    }
    for (const [px, py] of line) g.push(svgEl("circle", { cx: px, cy: py, r: 3, fill: "#fff", stroke: COLORS.rate, "stroke-width": 2 }));
    g.push(svgEl("line", { class: "baseline", x1: L, x2: W - R, y1: T + ch, y2: T + ch }));
    const every = Math.ceil(bins.length / 8);
    bins.forEach((b, i) => {
      if (i % every !== 0 && i !== bins.length - 1) return;
      if (i === bins.length - 1 && i % every !== 0 && i % every < every / 2) return;
      g.push(svgEl("text", { x: L + i * bw + bw / 2, y: H - 6, "text-anchor": "middle", text: fmtClock(b.t) }));
    });
    node.replaceChildren(svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Requests per interval by outcome, with the hit rate" }, g));
  }

  function renderSavings(bins) {
    const node = $("savings-chart");
    const usd = sum(bins, (b) => b.usd);
    const tokens = sum(bins, (b) => b.tokens);
    const useUsd = usd > 0;
    $("savings-hint").textContent = useUsd
      ? "cumulative · " + fmtUsd(usd) + " · " + fmtCompact(tokens) + " tokens"
      : "cumulative tokens · " + fmtCompact(tokens);
    if (!tokens && !usd) return node.replaceChildren(emptyBox("Savings appear once the cache serves hits"));
    const W = widthOf(node), H = 200, L = 52, R = 12, T = 12, B = 26;
    const cw = W - L - R, ch = H - T - B;
    let acc = 0;
    const pts = bins.map((b) => (acc += useUsd ? b.usd : b.tokens));
    const { top, ticks } = niceTicks(acc, 4);
    const x = (i) => L + (i / (bins.length - 1)) * cw;
    const y = (v) => T + ch - (v / top) * ch;
    const fmt = useUsd ? fmtUsd : fmtCompact;
    const g = [];
    for (const v of ticks) {
      g.push(svgEl("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      g.push(svgEl("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end", text: fmt(v) }));
    }
    const defs = svgEl("defs", {}, [
      svgEl("linearGradient", { id: "sav-grad", x1: 0, x2: 0, y1: 0, y2: 1 }, [
        svgEl("stop", { offset: "0%", "stop-color": COLORS.money, "stop-opacity": 0.35 }),
        svgEl("stop", { offset: "100%", "stop-color": COLORS.money, "stop-opacity": 0.02 }),
      ]),
    ]);
    const line = pts.map((v, i) => x(i) + "," + y(v)).join(" ");
    g.push(svgEl("polygon", { points: `${L},${T + ch} ${line} ${W - R},${T + ch}`, fill: "url(#sav-grad)" }));
    g.push(svgEl("polyline", { points: line, fill: "none", stroke: COLORS.money, "stroke-width": 2.2, "stroke-linejoin": "round" }));
    g.push(svgEl("circle", { cx: x(pts.length - 1), cy: y(acc), r: 4, fill: COLORS.money }, [tip(fmt(acc))]));
    g.push(svgEl("line", { class: "baseline", x1: L, x2: W - R, y1: T + ch, y2: T + ch }));
    for (const i of [0, Math.floor((bins.length - 1) / 2), bins.length - 1]) {
      g.push(svgEl("text", { x: x(i), y: H - 6, "text-anchor": i === 0 ? "start" : i === bins.length - 1 ? "end" : "middle", text: fmtClock(bins[i].t) }));
    }
    node.replaceChildren(svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Cumulative savings" }, [defs, ...g]));
  }

  function renderLatency(lat) {
    const node = $("latency-chart");
    const rows = [
      ["Exact hits", lat.hit_exact, COLORS.exact],
      ["Semantic hits", lat.hit_semantic, COLORS.semantic],
      ["Misses", lat.miss, COLORS.missLine],
      ["Bypasses", lat.bypass, COLORS.bypass],
    ];
    const tbody = $("latency-table").querySelector("tbody");
    tbody.replaceChildren(
      ...rows.map(([name, v, color]) => {
        const sw = el("i");
        sw.style.background = color;
        return el("tr", {}, [
          el("td", {}, [sw, name]),
          el("td", { text: fmtSecs(v.p50) }),
          el("td", { text: fmtSecs(v.p90) }),
          el("td", { text: fmtSecs(v.p99) }),
          el("td", { text: fmtInt(v.count) }),
        ]);
      })
    );
    const hit = lat.hit, miss = lat.miss;
    if (!hit.count && !miss.count) return node.replaceChildren(emptyBox("No requests yet"));
    // Distributions of hits (up) and misses (down) on one log-scaled time axis.
    const all = hit.bins.concat(miss.bins);
    let lo = Math.min(...all.map((b) => b[0]));
    let hi = Math.max(...all.map((b) => b[1]));
    lo = Math.pow(10, Math.floor(Math.log10(lo)));
    hi = Math.pow(10, Math.ceil(Math.log10(hi)));
    if (hi / lo < 100) hi = lo * 100;
    const W = widthOf(node), H = 170, L = 12, R = 12, T = 12, B = 24;
    const cw = W - L - R, mid = T + (H - T - B) / 2, half = (H - T - B) / 2 - 4;
    const x = (s) => L + ((Math.log10(s) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * cw;
    const frac = (v) => v.bins.map((b) => [b[0], b[1], v.count ? b[2] / v.count : 0]);
    const hf = frac(hit), mf = frac(miss);
    const peak = Math.max(0.0001, ...hf.map((b) => b[2]), ...mf.map((b) => b[2]));
    const g = [];
    for (let d = lo; d <= hi * 1.0001; d *= 10) {
      g.push(svgEl("line", { class: "grid-line", x1: x(d), x2: x(d), y1: T, y2: H - B }));
      g.push(svgEl("text", { x: x(d), y: H - 6, "text-anchor": "middle", text: fmtDecade(d) }));
    }
    g.push(svgEl("line", { class: "baseline", x1: L, x2: W - R, y1: mid, y2: mid }));
    const bars = (list, color, up, name) => {
      for (const [a, b, f] of list) {
        const h = Math.max(1.5, (f / peak) * half);
        g.push(svgEl("rect", { class: "bar", x: x(a), width: Math.max(1.5, x(b) - x(a) - 0.5), y: up ? mid - h : mid, height: h, fill: color, rx: 1 }, [
          tip(name + " " + fmtSecs(a) + "–" + fmtSecs(b) + ": " + (f * 100).toFixed(1) + "%"),
        ]));
      }
    };
    bars(hf, COLORS.hit, true, "hits");
    bars(mf, COLORS.missLine, false, "misses");
    // p50 labelled left of its line, p99 right of it, so close ones do not collide.
    const marks = (v, color, up) => {
      for (const [q, anchor, dx] of [["p50", "end", -3], ["p99", "start", 3]]) {
        if (v[q] == null) continue;
        const px = x(v[q]);
        g.push(svgEl("line", { x1: px, x2: px, y1: up ? T : mid, y2: up ? mid : H - B, stroke: color, "stroke-width": 1.2, "stroke-dasharray": "3 2" }));
        g.push(svgEl("text", { x: px + dx, y: up ? T + 9 : H - B - 3, "text-anchor": anchor, fill: color, text: q }));
      }
    };
    marks(hit, COLORS.hit, true);
    marks(miss, COLORS.missLine, false);
    g.push(svgEl("text", { x: L + 2, y: mid - 6, fill: COLORS.hit, "font-weight": 600, text: "hits ↑" }));
    g.push(svgEl("text", { x: L + 2, y: mid + 14, fill: COLORS.missLine, "font-weight": 600, text: "misses ↓" }));
    node.replaceChildren(svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Latency distribution of hits and misses" }, g));
  }

  function renderSimilarity(data) {
    const node = $("similarity-chart");
    const s = data.insights.similarity;
    const threshold = data.config.min_similarity;
    legend($("similarity-legend"), [
      ["sw-semantic", "served hit"],
      ["sw-near", "near-miss (below threshold)"],
      ["sw-refused", "refused by verification"],
    ]);
    const n = s.served.length;
    const any = (i) => s.served[i] + s.near_miss[i] + s.rejected[i];
    let first = -1;
    for (let i = 0; i < n; i++) if (any(i)) { first = i; break; }
    if (first < 0) return node.replaceChildren(emptyBox("No semantic candidates yet"));
    const from = Math.max(0, Math.min(first, Math.floor((threshold - data.config.near_miss_band - 0.05) * n)));
    const W = widthOf(node), H = 210, L = 40, R = 12, T = 18, B = 26;
    const cw = W - L - R, ch = H - T - B;
    const count = n - from;
    const bw = cw / count;
    const max = Math.max(...s.served.map((_, i) => any(i)));
    const { top, ticks } = niceTicks(max, 3);
    const y = (v) => T + ch - (v / top) * ch;
    const g = [];
    for (const v of ticks) {
      g.push(svgEl("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      g.push(svgEl("text", { x: L - 8, y: y(v) + 4, "text-anchor": "end", text: fmtCompact(v) }));
    }
    // Shade the band where near-misses live.
    const bx = (v) => L + (v * n - from) * bw;
    const bandFrom = Math.max(from / n, threshold - data.config.near_miss_band);
    g.push(svgEl("rect", { x: bx(bandFrom), y: T, width: Math.max(0, bx(threshold) - bx(bandFrom)), height: ch, fill: "#fef3c7", opacity: 0.45 }));
    for (let i = from; i < n; i++) {
      let acc = 0;
      const x0 = L + (i - from) * bw + Math.min(1, bw * 0.15);
      const w = Math.max(1, bw - Math.min(2, bw * 0.3));
      const label = (i / n).toFixed(2) + "–" + ((i + 1) / n).toFixed(2) + ": " + s.served[i] + " served, " + s.near_miss[i] + " near-miss, " + s.rejected[i] + " refused";
      for (const [k, color] of [["served", COLORS.semantic], ["near_miss", COLORS.near], ["rejected", COLORS.refused]]) {
        const v = s[k][i];
        if (!v) continue;
        const h = (v / top) * ch;
        g.push(svgEl("rect", { class: "bar", x: x0, y: y(acc) - h, width: w, height: h, fill: color, rx: 1.5 }, [tip(label)]));
        acc += v;
      }
    }
    g.push(svgEl("line", { class: "baseline", x1: L, x2: W - R, y1: T + ch, y2: T + ch }));
    const tx = bx(threshold);
    g.push(svgEl("line", { class: "threshold", x1: tx, x2: tx, y1: T - 6, y2: T + ch }));
    g.push(svgEl("text", { class: "threshold-label", x: tx + 4, y: T - 6, text: "threshold " + threshold.toFixed(2) }));
    const stepLabel = count > 40 ? 10 : 5;
    for (let i = Math.ceil(from / stepLabel) * stepLabel; i <= n; i += stepLabel) {
      g.push(svgEl("text", { x: L + (i - from) * bw, y: H - 6, "text-anchor": "middle", text: (i / n).toFixed(2) }));
    }
    node.replaceChildren(svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Similarity distribution of served hits and near-misses" }, g));
  }

  function renderReasons(node, reasons, cls, emptyText) {
    const list = reasons.filter((r) => r.count > 0);
    if (!list.length) return node.replaceChildren(emptyBox(emptyText));
    const max = Math.max(...list.map((r) => r.count));
    node.replaceChildren(
      ...list.slice(0, 10).map((r) => {
        const fill = el("div", { class: "fill " + cls });
        fill.style.width = (100 * r.count) / max + "%";
        return el("div", { class: "bar-row", title: r.reason + ": " + r.count }, [
          el("span", { class: "name", text: r.reason }),
          el("div", { class: "track" }, [fill]),
          el("span", { class: "count", text: fmtInt(r.count) }),
        ]);
      })
    );
  }

  function renderNearMisses(data) {
    const tbody = $("near-misses").querySelector("tbody");
    if (!data.near_misses.length) {
      return tbody.replaceChildren(el("tr", {}, [el("td", { class: "empty-row", colspan: 6, text: "No near-misses yet: every similar candidate was served, or none was close." })]));
    }
    tbody.replaceChildren(
      ...data.near_misses.map((n) => {
        const refused = n.rejected != null;
        const fill = el("div", { class: "fill" + (refused ? " refused" : "") });
        fill.style.width = Math.max(0, Math.min(1, n.similarity)) * 100 + "%";
        const mark = el("div", { class: "mark", title: "threshold " + n.threshold.toFixed(3) });
        mark.style.left = Math.max(0, Math.min(1, n.threshold)) * 100 + "%";
        const diff = n.similarity - n.threshold;
        const sim = el("div", { class: "sim" }, [
          el("b", { text: n.similarity.toFixed(3) }),
          el("div", { class: "track" }, [fill, mark]),
          el("span", { class: "gap", text: (diff >= 0 ? "+" : "−") + Math.abs(diff).toFixed(3) + " vs " + n.threshold.toFixed(2) }),
        ]);
        const cached = n.cached_prompt == null
          ? el("td", { class: "prompt cached gone", text: "entry " + n.entry + " has since been removed" })
          : el("td", { class: "prompt cached", text: n.cached_prompt });
        return el("tr", {}, [
          el("td", { class: "when", text: fmtAgo(n.at_ms, data.now_ms) }),
          el("td", {}, [sim]),
          el("td", { class: "prompt", text: n.prompt + (n.truncated ? "…" : "") }),
          cached,
          el("td", {}, [
            el("span", { class: "pill " + (refused ? "refused" : "near"), text: refused ? "refused: " + n.rejected : "below threshold" }),
            n.model ? el("div", { class: "model", text: n.model }) : null,
          ]),
          el("td", {}, [
            n.labelable
              ? verdictButtons({ near_miss: n.id }, n.verdict, [["right", "should serve", "Serving it would have been right: a label for the error budget"], ["wrong", "rightly refused", "Refusing it was right: a label for the error budget"]])
              : el("span", { class: "hint", text: "no error budget", title: "Set cache.max_false_hit_rate for verdicts to teach the cache" }),
          ]),
        ]);
      })
    );
  }

  // The error budget: hidden without one (cache.max_false_hit_rate unset).
  function renderBudget(data) {
    const budget = data.error_budget;
    $("budget-card").hidden = !budget;
    if (!budget) return;
    const pct = (x) => (x == null ? "–" : (100 * x).toFixed(2) + "%");
    const audits = $("budget-audits").querySelector("tbody");
    if (!budget.audits.length) {
      audits.replaceChildren(el("tr", {}, [el("td", { class: "empty-row", colspan: 6, text: "No semantic hit audited yet: the audit asks upstream again for a sampled share of hits served under the budget (cache.audit_share), with the operator's key only." })]));
    } else {
      audits.replaceChildren(
        ...budget.audits.map((a) => {
          const status = a.false_hit_rate == null
            ? el("span", { class: "hint", text: "no audit yet" })
            : a.over_budget
              ? el("span", { class: "pill refused", "data-over-budget": "true", text: "OVER BUDGET", title: "The interval's lower bound is above the budget" })
              : el("span", { class: "pill verdict right", text: "within budget" });
          return el("tr", { "data-category": a.category }, [
            el("td", { text: a.category }),
            el("td", { text: pct(a.max_false_hit_rate) }),
            el("td", { class: "num", text: fmtInt(a.checked) }),
            el("td", { class: "num", text: fmtInt(a.wrong) }),
            el("td", { text: pct(a.false_hit_rate) + (a.low == null ? "" : " (" + pct(a.low) + " – " + pct(a.high) + ")") }),
            el("td", {}, [status]),
          ]);
        })
      );
    }
    const cells = $("budget-cells").querySelector("tbody");
    if (!budget.cells.length) {
      return cells.replaceChildren(el("tr", {}, [el("td", { class: "empty-row", colspan: 5, text: "No labels yet: until they certify a threshold, the budget serves exact hits only." })]));
    }
    cells.replaceChildren(
      ...budget.cells.map((c) => {
        const t = c.certified_similarity;
        const serves = t == null ? "too few labels yet" : t === "nothing" ? "nothing (no threshold keeps the budget)" : "≥ " + Number(t).toFixed(3);
        return el("tr", {}, [
          el("td", { text: c.category }),
          el("td", { class: "num", text: String(c.support) + (c.vouched ? " · verifier accepted" : "") }),
          el("td", { class: "num", text: fmtInt(c.labels) }),
          el("td", { class: "num", text: fmtInt(c.wrong) }),
          el("td", { text: serves }),
        ]);
      })
    );
  }

  function renderHits(data) {
    const tbody = $("semantic-hits").querySelector("tbody");
    if (!data.hits.length) {
      return tbody.replaceChildren(el("tr", {}, [el("td", { class: "empty-row", colspan: 5, text: "No semantic hit served yet." })]));
    }
    tbody.replaceChildren(
      ...data.hits.map((h) => {
        const cached = h.cached_prompt == null
          ? el("td", { class: "prompt cached gone", text: "entry " + h.entry + " has since been removed" })
          : el("td", { class: "prompt cached", text: h.cached_prompt });
        return el("tr", {}, [
          el("td", { class: "when", text: fmtAgo(h.at_ms, data.now_ms) }),
          el("td", { class: "num" }, [
            el("b", { text: h.similarity.toFixed(3) }),
            h.aliased ? el("div", { class: "model", text: "repeat (alias)" }) : null,
          ]),
          el("td", { class: "prompt", text: h.prompt + (h.truncated ? "…" : "") }),
          cached,
          el("td", {}, [
            verdictButtons({ hit: h.id }, h.verdict, [["right", "right", "The cached answer fits this prompt"], ["wrong", "wrong", "The cached answer does not fit: remove the entry"]]),
            h.model ? el("div", { class: "model", text: h.model }) : null,
          ]),
        ]);
      })
    );
  }

  // A row's verdict: its buttons, or what was said. `target` names the row
  // ({hit: id} or {near_miss: id}); `choices` are [verdict, label, title].
  function verdictButtons(target, given, choices) {
    if (given) {
      const label = choices.find((c) => c[0] === given);
      return el("span", { class: "pill verdict " + given, "data-verdict-given": given, text: "marked " + (label ? label[1] : given) });
    }
    const box = el("div", { class: "verdict-buttons" });
    for (const [verdict, label, title] of choices) {
      const b = el("button", { type: "button", class: "verdict " + verdict, "data-verdict": verdict, title, text: label });
      b.addEventListener("click", () => sendVerdict(target, verdict, box));
      box.append(b);
    }
    return box;
  }

  async function sendVerdict(target, verdict, box) {
    for (const b of box.querySelectorAll("button")) b.disabled = true;
    try {
      const resp = await fetch(FEEDBACK_URL, {
        method: "POST",
        headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ verdict }, target)),
      });
      if (resp.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin("That token was not accepted.");
      }
      if (!resp.ok && resp.status !== 409) {
        const body = await resp.json().catch(() => ({}));
        throw new Error((body.error && body.error.message) || "HTTP " + resp.status);
      }
    } catch (e) {
      for (const b of box.querySelectorAll("button")) b.disabled = false;
      box.title = "The verdict was not taken: " + e.message;
      box.classList.add("error");
      return;
    }
    refresh();
  }

  function renderTopEntries(data) {
    const tbody = $("top-entries").querySelector("tbody");
    const top = data.top_entries;
    if (!top.length) {
      return tbody.replaceChildren(el("tr", {}, [el("td", { class: "empty-row", colspan: 6, text: "No entry has been hit yet." })]));
    }
    const max = Math.max(...top.map((e) => e.hit_count));
    tbody.replaceChildren(
      ...top.map((e, i) => {
        const fill = el("div", { class: "fill" });
        fill.style.width = (100 * e.hit_count) / max + "%";
        return el("tr", {}, [
          el("td", { class: "num", text: String(i + 1) }),
          el("td", { class: "prompt", text: e.prompt, title: "entry " + e.id + " · category " + e.category }),
          el("td", {}, [el("span", { class: "model", text: e.model })]),
          el("td", { class: "num" }, [el("div", { class: "hits-cell" }, [el("div", { class: "track" }, [fill]), el("span", { text: fmtInt(e.hit_count) })])]),
          el("td", { class: "num", text: e.tokens_per_hit ? fmtCompact(e.tokens_per_hit * e.hit_count) : "–" }),
          el("td", { class: "when", text: e.last_hit_ms ? fmtAgo(e.last_hit_ms, data.now_ms) : "–" }),
        ]);
      })
    );
  }

  // ---------- wiring ----------
  function start() {
    takeTokenFromHash();
    for (const b of document.querySelectorAll(".range button")) {
      b.classList.toggle("on", Number(b.dataset.range) === rangeMinutes);
      b.addEventListener("click", () => {
        rangeMinutes = Number(b.dataset.range);
        sessionStorage.setItem(RANGE_KEY, String(rangeMinutes));
        for (const o of document.querySelectorAll(".range button")) o.classList.toggle("on", o === b);
        if (last) render(last);
      });
    }
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      $("token").value = "";
      refresh();
    });
    $("signout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      last = null;
      showLogin();
    });
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => last && render(last), 150);
    });
    // `/dashboard#token=...` opened in a tab that already shows the page.
    window.addEventListener("hashchange", () => {
      if (/token=/.test(location.hash)) {
        takeTokenFromHash();
        refresh();
      }
    });
    if (token()) refresh();
    else showLogin();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
