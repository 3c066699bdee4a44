// edge-controller market dashboard: vanilla JS, no build step, no third-party code.
// Logs in through /api/login, then reads /api/overview every 2 s (never faster than 1 s).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 2000;
  const state = { me: null, csrf: "", timer: null, overview: null, editing: false };
  const fixed = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const el = (tag, props, ...kids) => {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const kid of kids) node.append(kid);
    return node;
  };
  const say = (id, text, kind) => { const m = $(id); m.textContent = text; m.className = "message " + (kind || ""); };
  const hhmm = (iso) => (iso ? new Date(iso).toISOString().slice(11, 16) + " UTC" : "");

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
    let data = null;
    try { data = await response.json(); } catch (_) { /* empty */ }
    return { status: response.status, data: data || {} };
  }

  // ------------------------------------------------------------ login
  async function start() {
    const me = await api("GET", "/api/me");
    if (me.status === 200) enter(me.data); else showLogin();
  }
  function showLogin() {
    $("app").hidden = true; $("logout").hidden = true; $("login").hidden = false; $("who").textContent = "";
    if (state.timer) { clearTimeout(state.timer); state.timer = null; }
  }
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = await api("POST", "/api/login", { name: $("login-name").value, password: $("login-password").value });
    if (r.status === 200) { $("login-password").value = ""; say("login-message", ""); enter(r.data); }
    else say("login-message", r.data.error || "refused (" + r.status + ")", "error");
  });
  $("logout").addEventListener("click", async () => { await api("POST", "/api/logout"); state.me = null; showLogin(); });
  function enter(me) {
    state.me = me; state.csrf = me.csrf || state.csrf;
    $("who").textContent = me.name + " (" + me.role + ")";
    $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
    $("manager-form").hidden = me.role !== "manager";
    refresh();
  }

  // ------------------------------------------------------------ the market
  async function refresh() {
    if (state.timer) clearTimeout(state.timer);
    const r = await api("GET", "/api/overview");
    if (r.status === 401) { showLogin(); return; }
    if (r.status === 200) { state.overview = r.data; render(r.data); }
    state.timer = setTimeout(refresh, POLL_MS);
  }

  function render(o) {
    const p = o.price;
    $("clock").textContent = hhmm(p.now);
    $("period").textContent = "period " + hhmm(p.period_start) + (p.cleared ? "" : " (not cleared yet: expected)");
    $("price").textContent = fixed(p.price, 2);
    $("coal").textContent = fixed(p.coal_mw, 2);
    $("co2").textContent = fixed(p.coal_mw * o.manager.carbon_intensity_kg_per_mwh / 1000, 2);
    $("demand").textContent = fixed(p.demand_mw, 2);
    $("production").textContent = fixed(p.production_mw, 2);
    $("wind").textContent = fixed(p.wind_speed_m_s, 1);
    $("next-period").textContent = hhmm(p.next.period_start);
    $("next-price").textContent = fixed(p.next.price, 2);
    $("next-gate").textContent = hhmm(p.next_gate_closure);
    const m = o.manager;
    $("plant").textContent = m.id + ": " + fixed(m.max_production_kw / 1000, 1) + " MW max, ratio " + m.ratio +
      ", " + (m.status ? "running" : "off") + ", " + m.carbon_intensity_kg_per_mwh + " kg CO₂/MWh";
    if (!state.editing) { $("manager-ratio").value = m.ratio; $("manager-status").checked = m.status; }
    renderProsumers(o.prosumers);
    $("consumers").replaceChildren(...o.consumers.map((c) => el("li", { textContent: c.id + ": peak " + fixed(c.peak_demand_kw / 1000, 2) + " MW" })));
    drawChart(o.periods);
  }

  function mayControl(row) {
    return state.me && (state.me.role === "manager" || (state.me.role === "prosumer" && row.owner === state.me.name));
  }

  function renderProsumers(rows) {
    const body = $("prosumers").querySelector("tbody");
    if (body.contains(document.activeElement)) return;  // do not redraw under the user's cursor
    body.replaceChildren(...rows.map((row) => {
      const soc = row.soc_pct;
      const bar = el("div", { className: "bar" }, el("i"), el("span", { textContent: soc === null ? "no battery" : fixed(soc, 0) + " % of " + fixed(row.capacity_kwh, 1) + " kWh" }));
      bar.firstChild.style.width = (soc || 0) + "%";
      const tr = el("tr", { id: "prosumer-" + row.id.replace(/[^A-Za-z0-9_-]/g, "_") },
        el("td", { textContent: row.id }), el("td", { textContent: String(row.count) }), el("td", {}, bar),
        el("td", {}, el("span", { className: "source " + row.source, textContent: row.source })),
        el("td", { textContent: fixed(row.produced_kw, 2) + " kW" }), el("td", { textContent: fixed(row.consumed_kw, 2) + " kW" }),
        el("td", { textContent: fixed(row.battery_kw, 2) + " kW" }), el("td", {}, controls(row)));
      tr.dataset.source = row.source;
      return tr;
    }));
  }

  function controls(row) {
    if (!mayControl(row)) return el("small", { textContent: row.owner ? "owner " + row.owner : "" });
    const member = row.controls;
    const form = el("form", { className: "prosumer-controls" });
    const input = el("input", { type: "number", min: "0", max: "1", step: "0.1", title: "share of a surplus stored", value: member ? member.input_ratio : "" });
    const output = el("input", { type: "number", min: "0", max: "1", step: "0.1", title: "share of a shortfall from the battery", value: member ? member.output_ratio : "" });
    const on = el("input", { type: "checkbox", title: "turbines on", checked: member ? member.status : true });
    form.append(input, " in ", output, " out ", el("label", { className: "inline" }, on, "on"), el("button", { type: "submit", textContent: "set" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { status: on.checked };
      if (input.value !== "") body.input_ratio = Number(input.value);
      if (output.value !== "") body.output_ratio = Number(output.value);
      const r = await api("PUT", "/api/control/" + encodeURIComponent(row.id), body);
      say("prosumer-message", r.status === 200 ? row.id + ": applied from the period " + hhmm(r.data.from_period) : "refused: " + (r.data.error || r.status), r.status === 200 ? "ok" : "error");
      document.activeElement.blur();
      refresh();
    });
    return form;
  }

  $("manager-ratio").addEventListener("focus", () => { state.editing = true; });
  $("manager-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { ratio: Number($("manager-ratio").value), status: $("manager-status").checked };
    const r = await api("PUT", "/api/control/" + encodeURIComponent(state.overview.manager.id), body);
    state.editing = false;
    if (r.status === 200) say("manager-message", "applied: ratio " + r.data.ratio + ", " + (r.data.status ? "running" : "off") + " from the period " + hhmm(r.data.from_period), "ok");
    else say("manager-message", "refused: " + (r.data.error || r.status), "error");
    refresh();
  });

  // ------------------------------------------------------------ the day's chart
  function drawChart(periods) {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 800, height = canvas.clientHeight || 220;
    canvas.width = width * ratio; canvas.height = height * ratio;
    const g = canvas.getContext("2d"); g.scale(ratio, ratio); g.clearRect(0, 0, width, height);
    canvas.dataset.points = String(periods.length);
    g.fillStyle = "#667"; g.font = "11px system-ui";
    if (periods.length < 2) { g.fillText("waiting for cleared periods…", 10, 20); return; }
    const t0 = Date.parse(periods[0].period_start), t1 = Date.parse(periods[periods.length - 1].period_start);
    const x = (t) => 46 + (width - 56) * (t - t0) / Math.max(1, t1 - t0);
    const topPrice = Math.max(100, ...periods.map((p) => p.price));
    const topMw = Math.max(1, ...periods.map((p) => p.coal_mw));
    const topCo2 = Math.max(1, ...periods.map((p) => p.carbon_kg));
    const scale = (top) => (v) => height - 16 - (height - 28) * v / top;
    g.fillText(fixed(topPrice, 0) + " €", 2, 12); g.fillText("0", 2, height - 16);
    g.fillText(hhmm(periods[0].period_start), 46, height - 2);
    g.fillText(hhmm(periods[periods.length - 1].period_start), width - 70, height - 2);
    const barWidth = Math.max(1, (width - 56) / periods.length - 1);
    g.fillStyle = "#5553";
    for (const p of periods) { const y = scale(topMw)(p.coal_mw); g.fillRect(x(Date.parse(p.period_start)) - barWidth / 2, y, barWidth, height - 16 - y); }
    const line = (key, color, y) => {
      g.strokeStyle = color; g.lineWidth = 1.8; g.beginPath();
      periods.forEach((p, i) => { const px = x(Date.parse(p.period_start)), py = y(p[key]); if (i) g.lineTo(px, py); else g.moveTo(px, py); });
      g.stroke();
    };
    line("carbon_kg", "#c77800", scale(topCo2)); line("price", "#0a6cbd", scale(topPrice));
  }
  window.addEventListener("resize", () => { if (state.overview) drawChart(state.overview.periods); });

  start();
})();
