// scribe clinical safety page: the CSO's flag queue and triage, the accuracy monitoring
// dashboard (charts drawn here as inline SVG, no library), and the admin's vocabulary list.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let me = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function status(msg, bad) {
  $("status").textContent = msg || "";
  $("status").classList.toggle("bad", !!bad);
}

const api = apiRequest;

// A rate is null when the drafts had no words to edit (everything was typed in).
const pct = (v) => (v === null || v === undefined ? "n/a" : `${(100 * v).toFixed(1)}%`);
const label = (s) => String(s || "").replaceAll("_", " ");
const fmtTime = (sec) => {
  sec = Math.max(0, Math.floor(sec || 0));
  const p = (n) => String(n).padStart(2, "0");
  return `${p(Math.floor(sec / 3600))}:${p(Math.floor(sec / 60) % 60)}:${p(sec % 60)}`;
};

function show(view) {
  for (const v of ["login", "denied", "cso", "admin"]) $("view-" + v).hidden = true;
  for (const v of [].concat(view)) $("view-" + v).hidden = false;
  $("nav").hidden = !me;
}

async function start() {
  try { me = await api("GET", "/api/me"); } catch (_) { me = null; }
  if (!me) { show("login"); $("username").focus(); return; }
  $("whoami").textContent = `${me.display_name} (${me.role})`;
  if (me.role === "cso") { show(["cso", "admin"]); await Promise.all([loadFlags(), loadDashboard(), loadVocabulary()]); }
  else if (me.role === "admin") { show("admin"); await loadVocabulary(); }
  else show("denied");
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    me = await api("POST", "/api/login", { username: $("username").value, password: $("password").value });
    $("password").value = "";
    start();
  } catch (e) { $("login-error").textContent = e.message; }
});

for (const [id, path] of [["logout", "/api/logout"], ["logout-everywhere", "/api/logout-everywhere"]]) {
  $(id).addEventListener("click", async () => {
    await api("POST", path).catch(() => {});
    me = null;
    start();
  });
}

// ---------- flags ----------

async function loadFlags() {
  const q = $("flag-filter").value;
  const data = await api("GET", "/api/safety/flags" + (q ? `?state=${q}` : ""));
  const c = data.counts || {};
  $("flag-counts").textContent = `New ${c.new || 0} · triaged ${c.triaged || 0} · mitigated ${c.mitigated || 0} · closed ${c.closed || 0}`;
  const list = $("flag-list");
  list.replaceChildren();
  if (!data.flags.length) list.append(el("li", {}, "No flags to show."));
  for (const f of data.flags) list.append(flagItem(f));
}

$("flag-filter").addEventListener("change", () => loadFlags().catch((e) => status(e.message, true)));

function flagItem(f) {
  const li = el("li", { class: `flag state-${f.state}`, "data-flag": String(f.id) });
  const where = f.scope === "note" ? "whole note" : `line at ${fmtTime(f.segment ? f.segment.start : 0)}`;
  li.append(
    el("h2", {}, `#${f.id} · ${label(f.category)} · ${where}`),
    el("p", {}, el("span", { class: "flag-state" }, f.state), ` · reported by ${f.reporter_name || "?"} on ${new Date(f.created_at).toLocaleString("en-GB")}` +
      ` · ${f.room_name || "room ?"} · consultation of ${new Date(f.session_started_at).toLocaleString("en-GB")} (${f.session_state})`));
  if (f.note) li.append(el("p", {}, "Clinician's note: ", el("q", { class: "flag-note" }, f.note)));
  if (f.segment) {
    const g = f.segment;
    li.append(el("div", { class: "seg-quote" },
      el("p", {}, el("strong", {}, "Machine draft: "), `(${g.machine_speaker || "?"}) `, el("span", { class: "machine-text" }, g.machine_text || "—")),
      el("p", {}, el("strong", {}, g.deleted ? "Deleted by the clinician. " : "Now: "), `(${g.speaker}) `, el("span", { class: "current-text" }, g.text)),
      g.flags && g.flags.length ? el("p", { class: "meta" }, "Machine flags: " + g.flags.map(label).join(", ")) : null));
  }
  if (f.history && f.history.length) {
    li.append(el("ul", { class: "history" }, ...f.history.map((h) =>
      el("li", {}, `${new Date(h.at).toLocaleString("en-GB")}: ${h.from} → ${h.to} by ${h.user_name}${h.note ? " — " + h.note : ""}`))));
  }
  if (f.moves && f.moves.length) {
    const nid = `triage-note-${f.id}`;
    const err = el("p", { class: "error", role: "alert" });
    const form = el("form", { class: "triage-form" },
      el("label", { for: nid }, "Triage note (required to close)"),
      el("input", { id: nid, maxlength: "2000" }),
      ...f.moves.map((to) => el("button", { type: "button", class: `move-${to}`, "data-to": to, onclick: async () => {
        err.textContent = "";
        try {
          await api("POST", `/api/safety/flags/${f.id}/triage`, { state: to, note: $(nid).value });
          status(`Flag #${f.id} moved to ${to}.`);
          await loadFlags();
          await loadDashboard();
        } catch (e) { err.textContent = e.message; }
      } }, `Mark ${to}`)),
      err);
    form.addEventListener("submit", (ev) => ev.preventDefault());
    li.append(form);
  }
  return li;
}

// ---------- dashboard ----------

// barChart draws labelled vertical bars scaled to the largest value, as inline SVG. A
// row whose value is null (no rate: no draft words) gets no bar, and says so. Labels
// never leave the drawing: room above the tallest bar's value, long names shortened
// (whole in the bar's tooltip) and slanted when there are many bars.
function barChart(id, rows, value, fmt) {
  const W = 560, H = 260, left = 64, right = 16, top = 28;
  const many = rows.length > 5;
  const bottom = many ? 84 : 44;
  const host = $(id);
  host.replaceChildren();
  if (!rows.length) { host.append(el("p", { class: "meta" }, "No approved sessions yet.")); return; }
  const maxV = Math.max(...rows.map((r) => value(r) || 0), 1e-9);
  const plotW = W - left - right, plotH = H - top - bottom;
  const bw = plotW / rows.length;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": host.parentElement.querySelector("figcaption").textContent });
  for (const t of [0, 0.5, 1]) {
    const y = top + plotH * (1 - t);
    s.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: y, y2: y }),
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmt(maxV * t)));
  }
  const short = (k, n) => (k.length > n ? k.slice(0, n - 1) + "…" : k);
  rows.forEach((r, i) => {
    const v = value(r);
    const h = v === null || v === undefined ? 0 : plotH * v / maxV;
    const x = left + i * bw + bw * 0.15;
    const cx = x + bw * 0.35;
    const key = String(r.key);
    if (v !== null && v !== undefined) {
      s.append(svg("rect", { class: "bar", x, y: top + plotH - h, width: Math.max(1, bw * 0.7), height: Math.max(0, h), "data-key": key, "data-value": String(v) },
        svg("title", {}, `${key}: ${fmt(v)} (${r.sessions} sessions)`)));
    }
    s.append(many
      ? svg("text", { x: cx, y: H - bottom + 14, "text-anchor": "end", transform: `rotate(-35 ${cx} ${H - bottom + 14})` }, svg("title", {}, key), short(key, 16))
      : svg("text", { x: cx, y: H - bottom + 18, "text-anchor": "middle" }, svg("title", {}, key), short(key, Math.max(6, Math.floor(bw / 7)))));
    s.append(svg("text", { x: cx, y: top + plotH - h - 5, "text-anchor": "middle", class: v === null || v === undefined ? "na" : "" },
      v === null || v === undefined ? "no draft words" : fmt(v)));
  });
  s.append(svg("line", { class: "axis", x1: left, x2: W - 10, y1: top + plotH, y2: top + plotH }));
  host.append(s);
}

function figuresTable(id, rows, keyName) {
  const t = $(id);
  t.replaceChildren(el("tr", {}, ...[keyName, "Sessions", "Word edit rate", "Mean session rate", "Lines edited", "Speaker fixes", "Flags", "Median stop→approve"].map((h) => el("th", { scope: "col" }, h))));
  for (const r of rows) {
    t.append(el("tr", {}, el("td", {}, r.key), el("td", {}, String(r.sessions)), el("td", {}, pct(r.word_edit_rate)),
      el("td", {}, pct(r.mean_session_edit_rate)), el("td", {}, pct(r.segments_edited_share)), el("td", {}, String(r.speaker_corrections)),
      el("td", {}, String(r.review_flags)), el("td", {}, `${Math.round(r.median_stop_to_approval_s)} s`)));
  }
}

async function loadDashboard() {
  const d = await api("GET", "/api/monitoring");
  barChart("chart-week", d.by_week, (r) => r.word_edit_rate, pct);
  barChart("chart-clinician", d.by_clinician, (r) => r.word_edit_rate, pct);
  barChart("chart-sessions", d.by_week, (r) => r.sessions, (v) => String(Math.round(v)));
  const groups = d.by_group.filter((g) => g.key !== "not recorded");
  $("group-figure").hidden = !groups.length;
  barChart("chart-group", d.by_group, (r) => r.word_edit_rate, pct);
  figuresTable("table-week", d.by_week, "ISO week");
  figuresTable("table-clinician", d.by_clinician, "Clinician");
}

// ---------- vocabulary ----------

async function loadVocabulary() {
  const v = await api("GET", "/api/vocabulary");
  const c = v.current;
  $("vocab-current").textContent = c.version ? `In use: version ${c.version}, ${c.term_count} terms, saved by ${c.created_by_name} on ${new Date(c.created_at).toLocaleString("en-GB")}.`
    : `In use: the built-in list (${c.term_count} terms). At most ${v.max_terms} terms; the prompt is cut at ${v.max_prompt_chars} characters.`;
  $("vocab-terms").value = (c.terms || []).join("\n");
  $("vocab-versions").replaceChildren(...v.versions.map((x) => el("li", {}, `Version ${x.version}: ${x.term_count} terms, ${x.created_by_name}, ${new Date(x.created_at).toLocaleString("en-GB")} — ${x.reason}`)));
  const editable = me.role === "admin";
  $("vocab-terms").readOnly = !editable;
  $("vocab-form").querySelector("button").hidden = !editable;
  $("vocab-reason").hidden = !editable;
  $("vocab-reason").previousElementSibling.hidden = !editable;
}

$("vocab-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("vocab-error").textContent = "";
  try {
    const r = await api("PUT", "/api/vocabulary", { terms: $("vocab-terms").value, reason: $("vocab-reason").value });
    $("vocab-reason").value = "";
    status(`Vocabulary version ${r.current.version} saved and in use.`);
    loadVocabulary();
  } catch (e) { $("vocab-error").textContent = e.message; }
});

start().catch((e) => status(e.message, true));
