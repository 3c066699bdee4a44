// edge-controller console: vanilla JS, no build step, no third-party code.
// Logs in through /api/login, then lives on /api/stream (Server-Sent Events, 1 s).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const ROLES = ["guest", "owner", "installer", "admin"];
  const state = { me: null, csrf: "", site: null, history: [], stream: null, ids: "" };

  const kw = (w) => (w === null || w === undefined ? "–" : (w / 1000).toFixed(1) + " kW");
  const el = (tag, props, ...kids) => {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const kid of kids) node.append(kid);
    return node;
  };
  const say = (id, text, kind) => { const m = $(id); m.textContent = text; m.className = "message " + (kind || ""); };

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
    if (me.status === 200) { enter(me.data); } else { showLogin(); }
  }
  function showLogin() {
    $("app").hidden = true; $("logout").hidden = true; $("login").hidden = false; $("who").textContent = "";
    if (state.stream) { state.stream.close(); state.stream = null; }
  }
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = await api("POST", "/api/login", { name: $("login-name").value, password: $("login-password").value });
    if (r.status === 200) { $("login-password").value = ""; say("login-message", ""); enter(r.data); }
    else say("login-message", r.data.error || "refused (" + r.status + ")", "error");
  });
  $("logout").addEventListener("click", async () => { await api("POST", "/api/logout"); showLogin(); });

  function enter(me) {
    state.me = me; state.csrf = me.csrf || "";
    $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
    $("who").textContent = me.name + " (" + me.role + ")";
    connect(); loadDispatches(); loadHistory(); loadEvents();
    setInterval(loadDispatches, 10000); setInterval(loadEvents, 15000);
  }
  const atLeast = (role) => state.me && ROLES.indexOf(state.me.role) >= ROLES.indexOf(role);

  // ------------------------------------------------------------ live site
  function connect() {
    if (state.stream) state.stream.close();
    const stream = new EventSource("/api/stream");
    stream.addEventListener("site", (event) => { $("live").textContent = "live"; $("live").className = "pill on"; render(JSON.parse(event.data)); });
    stream.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "pill"; };
    state.stream = stream;
  }

  function render(site) {
    state.site = site;
    const flow = site.flow || {};
    node("flow-grid", flow.grid_w, flow.grid_w > 0 ? "importing" : flow.grid_w < 0 ? "exporting" : "");
    node("flow-batteries", flow.battery_w, flow.battery_w > 0 ? "charging" : flow.battery_w < 0 ? "discharging" : "idle");
    node("flow-rest", flow.rest_w, null);
    const badge = $("mode-badge"); badge.textContent = "mode " + site.controls.mode; badge.className = "pill " + site.controls.mode;
    const list = $("batteries");
    const ids = site.batteries.map((b) => b.id).join(",");
    if (ids !== state.ids) { state.ids = ids; list.replaceChildren(); ticks(site.batteries); }
    for (const b of site.batteries) {
      let row = $("battery-" + b.id);
      if (!row) {
        row = el("li", { id: "battery-" + b.id },
          el("b", { textContent: "#" + b.id }),
          el("div", { className: "bar" }, el("i"), el("span", { className: "soc" })),
          el("span", { className: "power" }),
          el("span", { className: "status" }));
        list.append(row);
      }
      const soc = b.soc_pct === null ? null : b.soc_pct;
      row.querySelector(".bar i").style.width = (soc || 0) + "%";
      row.querySelector(".soc").textContent = soc === null ? "SoC ?" : soc.toFixed(1) + " %";
      row.dataset.soc = soc === null ? "" : soc.toFixed(1);
      row.dataset.power = b.power_w === null ? "" : String(b.power_w);
      row.querySelector(".power").textContent = kw(b.power_w);
      const st = row.querySelector(".status");
      st.textContent = b.status + (b.status === "working" ? "" : ": " + b.why) + (b.target_w !== null ? " · target " + kw(b.target_w) : "");
      st.className = "status" + (["working", "uncertain"].includes(b.status) ? "" : " bad");
    }
    const running = (site.use_cases || []).flatMap((u) => Object.entries(u.running).map(([id, w]) => "#" + id + " " + kw(w) + " (" + u.name + ")"));
    $("running-dispatch").textContent = running.length ? running.join(", ") : "none";
    if (!document.activeElement || !$("controls-form").contains(document.activeElement)) showControls(site.controls);
    if (state.history.length === 0 || Date.parse(site.at) - Date.parse(state.history[state.history.length - 1].at) >= 2000) {
      state.history.push({ at: site.at, grid_w: flow.grid_w, battery_w: flow.battery_w, soc: meanSoc(site.batteries) });
      drawChart();
    }
  }
  function node(id, watts, hint) {
    const n = $(id);
    n.querySelector(".value").textContent = kw(watts);
    if (hint !== null) n.querySelector(".hint").textContent = hint;
    n.className = "node" + (watts > 0 ? " in" : watts < 0 ? " out" : "");
  }
  const meanSoc = (list) => { const s = list.map((b) => b.soc_pct).filter((v) => v !== null); return s.length ? s.reduce((a, b) => a + b, 0) / s.length : null; };

  function ticks(batteries) {
    for (const [box, prefix] of [[$("dispatch-batteries"), "dispatch-b"], [$("controls-excluded"), "excluded-b"]]) {
      box.replaceChildren(...batteries.map((b) => el("label", {}, el("input", { type: "checkbox", id: prefix + b.id, value: String(b.id) }), "#" + b.id)));
    }
  }
  function showControls(controls) {
    $("controls-mode").value = controls.mode;
    for (const box of $("controls-excluded").querySelectorAll("input")) box.checked = controls.excluded_batteries.includes(Number(box.value));
    $("controls-limit").value = controls.power_limit_w === null ? "" : String(controls.power_limit_w / 1000);
  }

  // ------------------------------------------------------------ controls (installer+)
  $("controls-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const limit = $("controls-limit").value.trim();
    const body = {
      mode: $("controls-mode").value,
      excluded_batteries: [...$("controls-excluded").querySelectorAll("input:checked")].map((b) => Number(b.value)),
      power_limit_w: limit === "" ? null : Number(limit) * 1000,
    };
    say("controls-message", "applying…");
    const r = await api("PUT", "/api/controls", body);
    if (r.status === 200) say("controls-message", r.data.applied ? "applied: mode " + r.data.effective.mode : "written; not applied yet", "ok");
    else say("controls-message", "refused: " + (r.data.error || r.status), "error");
    document.activeElement.blur();
  });

  // ------------------------------------------------------------ dispatches (owner+)
  $("dispatch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = [...$("dispatch-batteries").querySelectorAll("input:checked")].map((b) => Number(b.value));
    const body = {
      power_w: Number($("dispatch-power").value) * 1000,
      batteries: picked.length ? picked : null,
      start: "NOW",
      duration_s: Math.round(Number($("dispatch-duration").value) * 60),
    };
    const r = await api("POST", "/api/dispatches", body);
    if (r.status === 201) { say("dispatch-message", "created #" + r.data.id, "ok"); loadDispatches(); }
    else say("dispatch-message", "refused: " + (r.data.error || r.status), "error");
  });

  async function loadDispatches() {
    const r = await api("GET", "/api/dispatches");
    if (r.status === 401) return showLogin();
    if (r.status !== 200) return;
    const now = Date.now();
    const shown = r.data.dispatches.filter((d) => d.state !== "ended").slice(-20);
    const next = shown.filter((d) => d.state === "pending").sort((a, b) => Date.parse(a.next_start) - Date.parse(b.next_start))[0];
    $("next-dispatch").textContent = next ? "#" + next.id + " " + kw(next.payload.power_w) + " in " + Math.max(0, Math.round((Date.parse(next.next_start) - now) / 60000)) + " min" : "none";
    $("dispatches").tBodies[0].replaceChildren(...shown.map((d) => {
      const remove = atLeast("owner") ? el("button", { className: "small", textContent: "delete", onclick: async () => { await api("DELETE", "/api/dispatches/" + d.id); loadDispatches(); } }) : "";
      return el("tr", { id: "dispatch-" + d.id }, el("td", { textContent: "#" + d.id }), el("td", { textContent: kw(d.payload.power_w) }),
        el("td", { textContent: d.target.replace("ids:", "") }), el("td", { className: "state", textContent: d.state }), el("td", {}, remove));
    }));
  }

  // ------------------------------------------------------------ history chart
  async function loadHistory() {
    const r = await api("GET", "/api/history?hours=6&step=30");
    if (r.status !== 200) return;
    state.history = r.data.samples.map((s) => ({ at: s.at, grid_w: s.grid_w, battery_w: s.battery_w,
      soc: meanSoc(Object.values(s.batteries).map((b) => ({ soc_pct: b.soc_pct }))) }));
    drawChart();
  }
  function drawChart() {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 800, height = canvas.clientHeight || 220;
    canvas.width = width * ratio; canvas.height = height * ratio;
    const g = canvas.getContext("2d"); g.scale(ratio, ratio); g.clearRect(0, 0, width, height);
    if (state.history.length > 3000) state.history.splice(0, state.history.length - 3000);
    const points = state.history;
    canvas.dataset.points = String(points.length);
    if (points.length < 2) { g.fillStyle = "#667"; g.fillText("collecting samples…", 10, 20); return; }
    const t0 = Date.parse(points[0].at), t1 = Date.parse(points[points.length - 1].at);
    const watts = points.flatMap((p) => [p.grid_w, p.battery_w]).filter((v) => v !== null);
    const top = Math.max(1000, ...watts.map(Math.abs));
    const x = (t) => 40 + (width - 50) * (t - t0) / Math.max(1, t1 - t0);
    const yw = (w) => height / 2 - (height / 2 - 12) * w / top;
    const ys = (s) => height - 6 - (height - 18) * s / 100;
    g.strokeStyle = "#dde"; g.beginPath(); g.moveTo(40, height / 2); g.lineTo(width, height / 2); g.stroke();
    g.fillStyle = "#667"; g.font = "11px system-ui"; g.fillText(kw(top), 2, 12); g.fillText(kw(-top), 2, height - 4);
    g.fillText(new Date(t0).toTimeString().slice(0, 5), 110, height - 4);
    g.fillText(new Date(t1).toTimeString().slice(0, 5), width - 40, height - 4);
    const line = (key, color, y) => {
      g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath(); let pen = false;
      for (const p of points) { const v = p[key]; if (v === null || v === undefined) { pen = false; continue; }
        const px = x(Date.parse(p.at)), py = y(v); if (pen) g.lineTo(px, py); else g.moveTo(px, py); pen = true; }
      g.stroke();
    };
    line("grid_w", "#c77800", yw); line("battery_w", "#0a6cbd", yw); line("soc", "#1a8a4a", ys);
  }
  window.addEventListener("resize", drawChart);

  // ------------------------------------------------------------ events
  async function loadEvents() {
    const r = await api("GET", "/api/events?limit=10");
    if (r.status !== 200) return;
    $("events").replaceChildren(...(r.data.events.length ? r.data.events.map((e) =>
      el("li", { className: e.level, textContent: (e.timestamp || "").slice(11, 19) + " " + e.level + " " + e.event })) : [el("li", { textContent: "none" })]));
  }

  start();
})();
