// scribe's main page: login, routing, the connection and login banner, and the
// clinician's home (rooms to record in, and the live worklist of their consultations).
// review.js is the session page, admin.js the admin and auditor pages. No framework and
// no external resources, so it works on a practice network offline.
"use strict";

const $ = (id) => document.getElementById(id);
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

// status shows a message at the foot of the window (and to screen readers) for a while.
let statusTimer = 0;
function status(msg, bad) {
  const s = $("status");
  s.textContent = msg || "";
  s.classList.toggle("bad", !!bad);
  clearTimeout(statusTimer);
  if (msg) statusTimer = setTimeout(() => { if (s.textContent === msg) s.textContent = ""; }, bad ? 15000 : 8000);
}

function fmtTime(sec) {
  sec = Math.max(0, Math.floor(sec || 0));
  const p = (n) => String(n).padStart(2, "0");
  return `${p(Math.floor(sec / 3600))}:${p(Math.floor(sec / 60) % 60)}:${p(sec % 60)}`;
}

const fmtNHS = (n) => (n || "").replace(/^(\d{3})(\d{3})(\d{4})$/, "$1 $2 $3");
const fmtWhen = (t) => new Date(t).toLocaleString("en-GB", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
const fmtClock = (t) => new Date(t).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });

// ---------- the connection and the login ----------
// A lost connection or an ended login never takes the page away: a banner says what
// happened, sockets reconnect by themselves, and a lost login is signed back in on the
// page, so nothing typed is lost.

// gen counts sign-ins on this page: a 401 to a request sent before the latest one is
// stale (its answer can arrive after the clinician signed back in) and is ignored.
const conn = { lost: false, signedOut: false, waiters: [], gen: 0 };

function showBanner() {
  const b = $("conn-banner");
  const form = $("relogin-form");
  if (conn.signedOut) {
    $("conn-text").textContent = "You have been signed out (your login ended or was ended on another device). Sign in again to carry on: what you have typed on this page is kept.";
    form.hidden = false;
    $("relogin-username").value = me ? me.username : "";
    $("relogin-username").readOnly = !!me;
  } else if (conn.lost) {
    $("conn-text").textContent = "Connection to scribe lost: trying to reconnect. What you have typed on this page is kept; nothing new is saved until the connection is back.";
    form.hidden = true;
  }
  b.hidden = !conn.signedOut && !conn.lost;
  b.classList.toggle("signed-out", conn.signedOut);
  if (typeof connectionChanged === "function") connectionChanged(); // review.js
}

function connectionLost() {
  if (conn.lost) return;
  conn.lost = true;
  showBanner();
}

function connectionBack() {
  if (!conn.lost) return;
  conn.lost = false;
  showBanner();
  wakeWaiters();
}

function signedOut() {
  if (conn.signedOut) return;
  conn.signedOut = true;
  conn.lost = false;
  showBanner();
  if (!$("relogin-password").matches(":focus")) $("relogin-password").focus();
}

function wakeWaiters() {
  const w = conn.waiters;
  conn.waiters = [];
  for (const f of w) f();
}

// whenOnline runs f once the login is good again (at once if it is).
function whenOnline(f) {
  if (conn.signedOut) conn.waiters.push(f); else f();
}

$("relogin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("relogin-error").textContent = "";
  try {
    const u = await apiRequest("POST", "/api/login", { username: $("relogin-username").value, password: $("relogin-password").value });
    $("relogin-password").value = "";
    if (me && u.id !== me.id) { location.reload(); return; } // someone else: start afresh
    me = u;
    conn.gen++;
    conn.signedOut = false;
    showBanner();
    status("Signed in again. Anything you had not saved is still on the page: save it now.");
    wakeWaiters();
  } catch (e) { $("relogin-error").textContent = e.message; }
});

// probeLogin asks the server whether the login still holds, after a socket closed.
async function probeLogin() {
  const gen = conn.gen;
  try {
    const r = await fetch("/api/me", { credentials: "same-origin" });
    if (r.status === 401) { if (gen === conn.gen) signedOut(); return "out"; }
    if (r.status >= 500) { connectionLost(); return "down"; } // shutting down or failing: not usable
    connectionBack();
    return "ok";
  } catch (_) {
    connectionLost();
    return "down";
  }
}

async function api(method, path, body) {
  const gen = conn.gen;
  try {
    const out = await apiRequest(method, path, body);
    connectionBack();
    return out;
  } catch (err) {
    if (err.status === 401 && path !== "/api/login") {
      if (!me) show("login");
      else if (gen === conn.gen) signedOut();
    } else if (err instanceof TypeError) { // fetch itself failed: no connection
      connectionLost();
      err.message = "not saved: the connection to scribe is lost";
    }
    throw err;
  }
}

// socket opens a websocket that reconnects by itself (backoff with jitter) until
// stopped, telling the banner when the connection or the login is lost. opts: open(ws),
// message(msg), state(text) for the connection-state line.
function socket(path, opts) {
  const s = { ws: null, stopped: false, tries: 0, timer: null };
  const state = (t) => opts.state && opts.state(t);
  const open = () => {
    if (s.stopped) return;
    if (conn.signedOut) { whenOnline(open); return; }
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`);
    s.ws = ws;
    state("connecting");
    ws.onopen = () => {
      s.tries = 0;
      connectionBack();
      state("live");
      if (opts.open) opts.open(ws);
    };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "error" && msg.code === "logged_out") { signedOut(); return; }
      opts.message(msg, ws);
    };
    ws.onclose = async (ev) => {
      if (s.stopped || ws !== s.ws) return;
      state("reconnecting");
      s.tries++;
      if (ev.code === 1008) signedOut(); // the server ended the socket with the login
      else if (s.tries > 1 || ev.code !== 1013) await probeLogin(); // 1013: dropped as slow, just resume
      const delay = Math.min(10000, 500 * 2 ** Math.min(s.tries, 5)) * (0.75 + Math.random() / 2);
      s.timer = setTimeout(open, s.tries === 1 ? 300 : delay);
    };
  };
  s.stop = () => { s.stopped = true; clearTimeout(s.timer); if (s.ws) s.ws.close(); };
  s.reconnect = () => { if (s.ws) s.ws.close(); };
  open();
  return s;
}

// ---------- routing ----------

const views = ["login", "rooms", "session", "writeback", "audit"];

function show(view) {
  for (const v of views) $("view-" + v).hidden = v !== view;
  $("nav").hidden = !me;
}

// Only "#/…" addresses are routes: "#main" (the skip link) and other in-page anchors
// leave the page as it is.
const isRoute = (h) => h === "" || h === "#" || h.startsWith("#/");

async function route() {
  if (!isRoute(location.hash)) return;
  leaveSession(); // review.js
  stopWorklist(); // showRooms starts it again
  if (!me) {
    try { me = await apiRequest("GET", "/api/me"); } catch (_) { me = null; }
  }
  if (!me) { show("login"); $("username").focus(); return; }
  $("whoami").textContent = `${me.display_name} (${me.role})`;
  $("nav-rooms").textContent = me.role === "clinician" ? "My consultations" : me.role === "admin" ? "Rooms and users" : "Home";
  $("nav-rooms").hidden = me.role === "auditor";
  $("nav-writeback").hidden = me.role !== "admin";
  $("nav-audit").hidden = me.role !== "auditor";
  const h = location.hash;
  const m = h.match(/^#\/session\/([\w-]+)$/);
  if (m && me.role === "clinician") return openSession(m[1]); // review.js
  if (h === "#/admin/writeback" && me.role === "admin") return showWriteback(); // admin.js
  if (h === "#/audit" && me.role === "auditor") return showAudit(); // admin.js
  if (me.role === "auditor") { location.hash = "#/audit"; return; }
  return showRooms();
}

// The skip link moves focus to the main content without touching the address (which
// would leave a live session).
document.querySelector(".nhsuk-skip-link").addEventListener("click", (ev) => {
  ev.preventDefault();
  $("main").focus();
});

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    me = await apiRequest("POST", "/api/login", { username: $("username").value, password: $("password").value });
    $("password").value = "";
    if (!location.hash.startsWith("#/")) location.hash = "#/rooms"; // its hashchange routes
    else route();
  } catch (e) { $("login-error").textContent = e.message; }
});

async function logout(path) {
  await apiRequest("POST", path).catch(() => {});
  me = null;
  conn.signedOut = conn.lost = false;
  showBanner();
  stopWorklist();
  leaveSession();
  location.hash = "";
  route();
}

$("logout").addEventListener("click", () => logout("/api/logout"));
$("logout-everywhere").addEventListener("click", () => logout("/api/logout-everywhere"));

window.addEventListener("hashchange", route);

// ---------- home: rooms and the worklist ----------

async function showRooms() {
  show("rooms");
  status("");
  const rooms = await api("GET", "/api/rooms");
  const list = $("room-list");
  list.replaceChildren();
  $("rooms-heading").textContent = me.role === "clinician" ? "Start a consultation" : "Rooms";
  if (!rooms.length) list.append(el("li", {}, me.role === "clinician" ? "No rooms are assigned to you yet. Ask an administrator." : "No rooms yet."));
  for (const room of rooms) list.append(roomItem(room));
  $("admin-panel").hidden = me.role !== "admin";
  $("worklist-panel").hidden = me.role !== "clinician";
  if (me.role === "clinician") startWorklist();
  if (me.role === "admin") { loadAdmin(); loadAgentsAdmin(rooms); } // admin.js, agent.js
}

const sourceNames = { wav: "WAV file", browser: "browser microphone", device: "audio device", agent: "room agent" };

function roomItem(room) {
  const li = el("li", { "data-room": room.name, class: "room card" },
    el("h2", {}, room.name),
    el("p", { class: "meta" }, `Audio: ${sourceNames[room.source_kind] || room.source_kind}` +
      (room.clinician_name ? ` · Clinician: ${room.clinician_name}` : " · Unassigned")));
  if (room.source_kind === "agent") li.append(agentStatusLine(room)); // agent.js
  if (room.offered) return offeredRoom(li, room);
  if (room.active) {
    li.append(el("p", {}, `A consultation is ${room.active.state}.`));
    if (me.role === "clinician" && room.active.id) {
      li.append(el("a", { href: `#/session/${room.active.id}`, class: "open-session" }, `Open the ${room.active.state} consultation`));
    }
    return li;
  }
  if (me.role !== "clinician") return li;
  const id = room.id;
  const err = el("p", { class: "nhsuk-error-message", role: "alert", id: `start-error-${id}` });
  const form = el("form", { class: "start-form" },
    el("div", { class: "nhsuk-checkboxes__item" },
      el("input", { type: "checkbox", class: "nhsuk-checkboxes__input", id: `consent-${id}`, name: "consent" }),
      el("label", { class: "nhsuk-label nhsuk-checkboxes__label", for: `consent-${id}` }, "The patient has consented to this consultation being recorded and transcribed")),
    el("label", { class: "nhsuk-label", for: `nhs-${id}` }, "Patient NHS number (optional)"),
    el("input", { class: "nhsuk-input nhsuk-input--width-10", id: `nhs-${id}`, name: "nhs", inputmode: "numeric", autocomplete: "off", "aria-describedby": `nhs-hint-${id}` }),
    el("p", { class: "nhsuk-hint", id: `nhs-hint-${id}` }, "10 digits, for example 943 476 5919. Without it the note is held until one is added."),
    el("button", { type: "submit", class: "nhsuk-button" }, "Start recording"),
    err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    if (!$(`consent-${id}`).checked) {
      err.textContent = "Tick the consent box first: recording needs the patient's consent.";
      $(`consent-${id}`).focus();
      return;
    }
    try {
      const s = await api("POST", `/api/rooms/${id}/sessions`, { consent: true, nhs_number: $(`nhs-${id}`).value });
      location.hash = `#/session/${s.id}`;
    } catch (e) { err.textContent = e.message; }
  });
  li.append(form);
  return li;
}

// offeredRoom: an administrator asks this clinician to take the room over. It becomes
// theirs only when they accept (or a second administrator approves), so nobody can be
// made the author of a room's notes behind their back.
function offeredRoom(li, room) {
  const err = el("p", { class: "nhsuk-error-message", role: "alert" });
  const accept = el("button", { type: "button", class: "nhsuk-button accept-room" }, `Accept ${room.name}`);
  accept.addEventListener("click", async () => {
    err.textContent = "";
    try {
      await api("POST", `/api/rooms/${room.id}/clinician/accept`);
      showRooms();
    } catch (e) { err.textContent = e.message; }
  });
  li.append(el("p", {}, "An administrator has offered you this room. Notes recorded in it will be in your name once you accept."), accept, err);
  return li;
}

// statusTag is how a consultation's state (and its note's delivery) shows: words and an
// NHS tag colour, never colour alone.
function statusTag(v) {
  const t = (text, colour) => el("strong", { class: `nhsuk-tag nhsuk-tag--${colour}` }, text);
  switch (v.state) {
    case "recording": return t("Recording", "red");
    case "paused": return t(v.interrupted ? "Interrupted" : "Paused", "yellow");
    case "stopped": return t(v.discarded ? "Discarded" : "To review", "blue");
  }
  switch (v.delivery_state) {
    case "sent": return t("In the record", "green");
    case "held": return t("Held", "red");
    case "failed": return t("Not filed", "red");
    case "queued": case "sending": case "awaiting_ack": return t("Being filed", "grey");
    case "": case undefined: return t("Approved", "green");
  }
  return t(v.delivery_state, "grey");
}

let worklist = null; // the worklist socket while the home page shows

function startWorklist() {
  if (worklist) return;
  worklist = socket("/api/worklist/live", { message: (msg) => { if (msg.type === "worklist") renderWorklist(msg.sessions); } });
}

function stopWorklist() {
  if (worklist) worklist.stop();
  worklist = null;
}

function renderWorklist(list) {
  const body = $("worklist").tBodies[0];
  const rows = list.map((v) => {
    const a = el("a", { href: `#/session/${v.id}` }, fmtWhen(v.started_at));
    return el("tr", { "data-session": v.id, "data-state": v.state, "data-delivery": v.delivery_state || "", class: v.action ? "needs" : "" },
      el("td", {}, a), el("td", {}, v.room_name),
      el("td", {}, v.nhs_number ? fmtNHS(v.nhs_number) : el("span", { class: "meta" }, "No NHS number")),
      el("td", {}, statusTag(v)),
      el("td", { class: "action" }, v.action || el("span", { class: "meta" }, "Nothing")));
  });
  body.replaceChildren(...rows);
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: "5" }, "No consultations yet.")));
  const needs = list.filter((v) => v.action).length;
  $("worklist-summary").textContent = needs ? `${needs} need${needs === 1 ? "s" : ""} you.` : "Nothing needs you now.";
}

// After every deferred script (review.js, admin.js …) has loaded.
document.addEventListener("DOMContentLoaded", route);
