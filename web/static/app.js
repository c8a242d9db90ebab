// scribe review page: login, rooms, live transcript, review and approval.
// No framework and no external resources, so it works on a practice network offline.
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

function status(msg, bad) {
  const s = $("status");
  s.textContent = msg || "";
  s.classList.toggle("bad", !!bad);
}

async function api(method, path, body) {
  try {
    return await apiRequest(method, path, body);
  } catch (err) {
    if (err.status === 401 && path !== "/api/login") { me = null; show("login"); }
    throw err;
  }
}

function show(view) {
  for (const v of ["login", "rooms", "session"]) $("view-" + v).hidden = v !== view;
  $("nav").hidden = !me;
}

function fmtTime(sec) {
  sec = Math.max(0, Math.floor(sec || 0));
  const p = (n) => String(n).padStart(2, "0");
  return `${p(Math.floor(sec / 3600))}:${p(Math.floor(sec / 60) % 60)}:${p(sec % 60)}`;
}

// ---------- routing ----------

async function route() {
  leaveSession();
  if (!me) {
    try { me = await api("GET", "/api/me"); } catch (_) { me = null; }
  }
  if (!me) { show("login"); $("username").focus(); return; }
  $("whoami").textContent = `${me.display_name} (${me.role})`;
  const m = location.hash.match(/^#\/session\/([\w-]+)$/);
  if (m && me.role === "clinician") return openSession(m[1]);
  return showRooms();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    me = await api("POST", "/api/login", { username: $("username").value, password: $("password").value });
    $("password").value = "";
    location.hash = "#/rooms";
    route();
  } catch (e) { $("login-error").textContent = e.message; }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/logout").catch(() => {});
  me = null;
  location.hash = "";
  route();
});

window.addEventListener("hashchange", route);

// ---------- rooms ----------

async function showRooms() {
  show("rooms");
  status("");
  const rooms = await api("GET", "/api/rooms");
  const list = $("room-list");
  list.replaceChildren();
  if (!rooms.length) list.append(el("li", {}, me.role === "clinician" ? "No rooms are assigned to you yet. Ask an administrator." : "No rooms yet."));
  for (const room of rooms) list.append(roomItem(room));
  $("admin-panel").hidden = me.role !== "admin";
  if (me.role === "admin") { loadAdmin(); loadAgentsAdmin(rooms); } // agent.js
}

function roomItem(room) {
  const li = el("li", { "data-room": room.name },
    el("h2", {}, room.name),
    el("p", { class: "meta" }, `Audio: ${{ wav: "WAV file", browser: "browser microphone", device: "audio device", agent: "room agent" }[room.source_kind] || room.source_kind}` +
      (room.clinician_name ? ` · Clinician: ${room.clinician_name}` : " · Unassigned")));
  if (room.source_kind === "agent") li.append(agentStatusLine(room)); // agent.js
  if (room.active) {
    li.append(el("p", {}, `A consultation is ${room.active.state}.`));
    if (me.role === "clinician" && room.active.id) {
      li.append(el("a", { href: `#/session/${room.active.id}`, class: "open-session" }, "Open the session"));
    }
    return li;
  }
  if (me.role !== "clinician") return li;
  const id = room.id;
  const err = el("p", { class: "error", role: "alert", id: `start-error-${id}` });
  const form = el("form", { class: "start-form" },
    el("p", { class: "check" },
      el("input", { type: "checkbox", id: `consent-${id}`, name: "consent" }), " ",
      el("label", { for: `consent-${id}` }, "The patient has consented to this consultation being recorded and transcribed")),
    el("label", { for: `nhs-${id}` }, "Patient NHS number (optional)"),
    el("input", { id: `nhs-${id}`, inputmode: "numeric", autocomplete: "off", placeholder: "e.g. 943 476 5919" }),
    el("button", { type: "submit", class: "primary" }, "Start recording"),
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

async function loadAdmin() {
  const users = await api("GET", "/api/users");
  $("user-list").replaceChildren(...users.map((u) => el("li", {}, `${u.display_name} (${u.username}, ${u.role})`)));
  const sel = $("room-clinician");
  sel.replaceChildren(el("option", { value: "0" }, "Unassigned"),
    ...users.filter((u) => u.role === "clinician").map((u) => el("option", { value: String(u.id) }, u.display_name)));
}

$("room-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("room-error").textContent = "";
  try {
    let cfg;
    try { cfg = JSON.parse($("room-config").value || "{}"); } catch (_) { throw new Error("Source settings must be JSON"); }
    await api("POST", "/api/rooms", { name: $("room-name").value, source_kind: $("room-kind").value, source_config: cfg, clinician_id: Number($("room-clinician").value) });
    $("room-name").value = "";
    status("Room added.");
    showRooms();
  } catch (e) { $("room-error").textContent = e.message; }
});

$("user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("user-error").textContent = "";
  try {
    await api("POST", "/api/users", { username: $("user-name").value, display_name: $("user-display").value, role: $("user-role").value,
      gmc_number: $("user-gmc").value, password: $("user-password").value });
    $("user-password").value = "";
    status("User added.");
    loadAdmin();
  } catch (e) { $("user-error").textContent = e.message; }
});

// ---------- live session ----------

let S = null; // the open session

function leaveSession() {
  if (!S) return;
  S.closed = true;
  stopAudio();
  if (S.ws) S.ws.close();
  stopMic();
  S = null;
}

function openSession(id) {
  show("session");
  status("");
  S = { id, session: null, segments: new Map(), provisional: new Map(), lastSeq: 0, epoch: "", ws: null, closed: false,
    editing: null, reachedEnd: false, mic: null };
  $("transcript").replaceChildren();
  $("confirm-reviewed").checked = false;
  $("approve-error").textContent = "";
  $("discard-confirm").hidden = true;
  connect();
}

function connect() {
  const s = S;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/sessions/${s.id}/live`);
  s.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ resume: s.lastSeq, epoch: s.epoch }));
  ws.onmessage = (ev) => {
    if (s !== S) return;
    const msg = JSON.parse(ev.data);
    if (msg.type === "error") {
      if (msg.code === "logged_out") { s.closed = true; me = null; show("login"); } // the login ended: no reconnecting
      if (msg.code !== "dropped") status(msg.message, true);
      return;
    }
    if (msg.type !== "snapshot") {
      if (msg.epoch === s.epoch && msg.seq <= s.lastSeq) return; // already applied
      if (msg.epoch !== s.epoch || msg.seq !== s.lastSeq + 1) { ws.close(); return; } // gap: reconnect and resume
    }
    apply(msg);
    s.lastSeq = msg.seq;
    s.epoch = msg.epoch;
  };
  ws.onclose = () => {
    if (s.closed || s !== S) return;
    setTimeout(() => { if (!s.closed && s === S) connect(); }, 1000);
  };
}

function apply(msg) {
  switch (msg.type) {
    case "snapshot":
      S.segments = new Map(msg.segments.map((g) => [g.id, g]));
      S.provisional = new Map((msg.provisional || []).map((p) => [p.utterance, p.segment]));
      $("transcript").replaceChildren();
      setSession(msg.session);
      break;
    case "provisional":
      S.provisional.set(msg.utterance, msg.segment);
      break;
    case "committed":
      S.provisional.delete(msg.utterance);
      S.segments.set(msg.segment.id, msg.segment);
      break;
    case "segments":
      for (const g of msg.segments) S.segments.set(g.id, g);
      break;
    case "refined": // second pass: an utterance's untouched segments, replaced in place
      for (const id of msg.replaces || []) S.segments.delete(id);
      for (const g of msg.segments || []) S.segments.set(g.id, g);
      break;
    case "agent": // the room's button (agent.js)
      agentMessage(msg.message);
      break;
    case "state":
      setSession(msg.session);
      if (msg.session.state !== "recording") S.provisional.clear();
      if (msg.reason) status(`Session ${msg.session.state}: ${msg.reason}.`, !!msg.session.notice);
      break;
  }
  render();
}

function setSession(sess) {
  S.session = sess;
  if (sess.notice) status(sess.notice + ".", true); // e.g. storage failing: shown until it is resolved
  const st = sess.state;
  const ind = $("rec-indicator");
  ind.className = "rec " + st;
  ind.textContent = { recording: "● RECORDING", paused: "❚❚ PAUSED — not recording", stopped: "■ STOPPED", approved: "✓ APPROVED" }[st] || st;
  $("session-title").textContent = `${sess.room_name} — consultation`;
  $("session-meta").textContent = `Started ${new Date(sess.started_at).toLocaleString("en-GB")}` +
    (sess.nhs_number ? ` · NHS number ${sess.nhs_number.replace(/^(\d{3})(\d{3})(\d{4})$/, "$1 $2 $3")}` : " · no NHS number");
  $("btn-pause").hidden = st !== "recording";
  $("btn-resume").hidden = st !== "paused";
  $("btn-stop").hidden = st !== "recording" && st !== "paused";
  $("btn-discard-audio").hidden = !sess.audio_held;
  if (!sess.audio_held) { $("discard-confirm").hidden = true; stopAudio(); }
  $("view-session").classList.toggle("readonly", st === "approved");
  $("approved").hidden = st !== "approved";
  if (st === "approved") {
    $("document-text").textContent = sess.document_text || "";
    $("delivery").textContent = sess.delivery_state ? `Write-back: ${sess.delivery_state}${sess.delivery_reason ? " — " + sess.delivery_reason : ""}` : "Handed to write-back.";
  }
  if (sess.room_source === "browser" && st === "recording") startMic(); else stopMic();
  agentSessionStatus(sess); // agent.js
  updateReview();
}

function speakerSelect(g) {
  const id = `speaker-${g.id}`;
  const sel = el("select", { id, class: "speaker" },
    ...["clinician", "patient", "unknown"].map((sp) => el("option", { value: sp, selected: sp === g.speaker }, sp[0].toUpperCase() + sp.slice(1))));
  sel.addEventListener("change", () => edit(g.id, () => api("PATCH", seg(g.id), { version: cur(g.id).version, speaker: sel.value })));
  return [el("label", { for: id, class: "sr-only" }, `Speaker of line at ${fmtTime(g.start)}`), sel];
}

const seg = (id) => `/api/sessions/${S.id}/segments/${id}`;
const cur = (id) => S.segments.get(id);

async function edit(id, fn) {
  try {
    await fn();
    status("Saved.");
  } catch (e) {
    status(e.status === 409 ? `Not saved: ${e.message}` : `Not saved: ${e.message}`, true);
    render(true);
  }
}

// segKey changes whenever what a line shows changes (flags do not bump the version).
const segKey = (g) => `${g.version}|${(g.review_flags || []).join(",")}`;

function segmentItem(g) {
  const li = el("li", { class: "segment", "data-id": g.id });
  fillSegment(li, g);
  return li;
}

function fillSegment(li, g) {
  li.dataset.version = g.version;
  li.dataset.key = segKey(g);
  const flags = [...(g.flags || []), ...(g.review_flags || [])];
  const kids = [
    el("div", { class: "seg-head" },
      el("span", { class: "seg-time" }, `[${fmtTime(g.start)}]`),
      S.session && S.session.audio_held && g.end > g.start ? el("button", { type: "button", class: "play",
        "aria-label": `Play the audio of the line at ${fmtTime(g.start)}`, "aria-pressed": "false", onclick: () => playAudio(g) }, "▶") : null,
      ...(S.session && S.session.state === "approved" ? [el("strong", {}, g.speaker)] : speakerSelect(g)),
      flags.length ? el("span", { class: "seg-flags" }, "⚑ " + flags.join(", ").replaceAll("_", " ")) : null),
  ];
  if (S.editing === g.id) {
    const ta = el("textarea", { id: `text-${g.id}`, "aria-label": `Text of line at ${fmtTime(g.start)}` });
    ta.value = g.text;
    kids.push(ta, el("div", { class: "seg-actions" },
      el("button", { type: "button", class: "save", onclick: () => { S.editing = null; edit(g.id, () => api("PATCH", seg(g.id), { version: g.version, text: ta.value })); } }, "Save"),
      el("button", { type: "button", onclick: () => { const off = ta.selectionStart; S.editing = null;
        edit(g.id, () => api("POST", seg(g.id) + "/split", { version: g.version, offset: [...ta.value.slice(0, off)].length })); } }, "Split at cursor"),
      el("button", { type: "button", onclick: () => { S.editing = null; render(true); } }, "Cancel")));
  } else {
    // Speech the decoder produced no words for stays visible, for the clinician to fill in.
    kids.push(g.text ? el("p", { class: "seg-text" }, g.text)
      : el("p", { class: "seg-text no-text" }, "[speech heard — no text recognised: type what was said, or delete]"));
    kids.push(el("div", { class: "seg-actions" },
      el("button", { type: "button", class: "edit", onclick: () => { S.editing = g.id; render(true); const t = $(`text-${g.id}`); if (t) t.focus(); } }, "Edit text"),
      el("button", { type: "button", onclick: () => edit(g.id, () => api("POST", seg(g.id) + "/merge", { version: g.version })) }, "Merge with next"),
      el("button", { type: "button", onclick: () => edit(g.id, () => api("POST", seg(g.id) + "/delete", { version: g.version })) }, "Delete"),
      el("button", { type: "button", class: "add", onclick: () => addLine(li, g) }, "Add line after"),
      el("button", { type: "button", class: "flag", onclick: () => flagForm(li, g) }, "Flag")));
  }
  li.replaceChildren(...kids);
}

function addLine(li, g) {
  if (li.querySelector(".add-form")) return;
  const tid = `add-text-${g.id}`, sid = `add-speaker-${g.id}`;
  const f = el("form", { class: "add-form card" },
    el("label", { for: sid }, "Speaker"),
    el("select", { id: sid }, ...["clinician", "patient", "unknown"].map((s) => el("option", { value: s }, s))),
    el("label", { for: tid }, "Missed line"),
    el("input", { id: tid, required: true }),
    el("button", { type: "submit" }, "Add line"),
    el("button", { type: "button", onclick: () => f.remove() }, "Cancel"));
  f.addEventListener("submit", (ev) => { ev.preventDefault();
    edit(g.id, () => api("POST", `/api/sessions/${S.id}/segments`, { after: g.id, speaker: $(sid).value, text: $(tid).value })); f.remove(); });
  li.append(f);
  $(tid).focus();
}

function flagForm(li, g) {
  if (li.querySelector(".flag-form")) return;
  const cid = `flag-cat-${g.id}`, nid = `flag-note-${g.id}`;
  const f = el("form", { class: "flag-form card" },
    el("label", { for: cid }, "What is wrong?"),
    el("select", { id: cid },
      el("option", { value: "wrong_words" }, "Wrong words"),
      el("option", { value: "wrong_speaker" }, "Wrong speaker"),
      el("option", { value: "invented_text" }, "Invented text (not said)"),
      el("option", { value: "missing_speech" }, "Missing speech")),
    el("label", { for: nid }, "Note (optional)"),
    el("input", { id: nid, maxlength: "2000" }),
    el("button", { type: "submit", class: "flag-submit" }, "Record flag"),
    el("button", { type: "button", onclick: () => f.remove() }, "Cancel"));
  f.addEventListener("submit", (ev) => { ev.preventDefault();
    edit(g.id, () => api("POST", seg(g.id) + "/flags", { category: $(cid).value, note: $(nid).value })); f.remove(); });
  li.append(f);
  $(cid).focus();
}

function render(force) {
  const box = $("transcript-box");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
  const list = $("transcript");
  const want = [...S.segments.values()].filter((g) => !g.deleted).sort((a, b) => a.pos - b.pos || a.seq - b.seq);
  const existing = new Map([...list.querySelectorAll("li.segment")].map((li) => [li.dataset.id, li]));
  const nodes = [];
  for (const g of want) {
    let li = existing.get(g.id);
    if (!li) li = segmentItem(g);
    else if (force || (li.dataset.key !== segKey(g) && S.editing !== g.id) || li.dataset.state !== viewKey()) fillSegment(li, g);
    li.dataset.state = viewKey();
    existing.delete(g.id);
    nodes.push(li);
  }
  for (const li of existing.values()) li.remove();
  for (const li of list.querySelectorAll("li.provisional")) li.remove();
  for (const [u, p] of [...S.provisional.entries()].sort((a, b) => a[0] - b[0])) {
    nodes.push(el("li", { class: "provisional", "data-utterance": String(u) },
      el("span", { class: "tag" }, "provisional"), el("span", { class: "seg-time" }, `[${fmtTime(p.start)}] `), p.text));
  }
  // Move nodes only when the order changed, so focus inside a line is kept.
  const current = [...list.children];
  if (current.length !== nodes.length || current.some((n, i) => n !== nodes[i])) list.append(...nodes);
  if (atBottom && S.session && S.session.state === "recording") box.scrollTop = box.scrollHeight;
  checkEnd();
}

function checkEnd() {
  const box = $("transcript-box");
  if (box.scrollTop + box.clientHeight >= box.scrollHeight - 4) S.reachedEnd = true;
  updateReview();
}

$("transcript-box").addEventListener("scroll", () => S && checkEnd());
$("transcript-end").addEventListener("focus", () => { if (S) { S.reachedEnd = true; updateReview(); } });

function updateReview() {
  if (!S || !S.session) return;
  const st = S.session.state;
  const ready = st === "stopped" && S.reachedEnd;
  $("confirm-reviewed").disabled = !ready;
  $("btn-approve").disabled = !(ready && $("confirm-reviewed").checked);
  $("review-hint").textContent = st === "recording" || st === "paused" ? "Stop the recording to approve." :
    !S.reachedEnd ? "Scroll to the end of the transcript (or Tab to “End of transcript”) to approve." : "";
}

$("confirm-reviewed").addEventListener("change", updateReview);

for (const [btn, action] of [["btn-pause", "pause"], ["btn-resume", "resume"], ["btn-stop", "stop"]]) {
  $(btn).addEventListener("click", async () => {
    $(btn).disabled = true;
    status(action === "stop" ? "Stopping: finishing the transcript…" : "");
    try { await api("POST", `/api/sessions/${S.id}/${action}`); } catch (e) { status(e.message, true); }
    $(btn).disabled = false;
  });
}

// viewKey is what, besides a line's own version, changes how every line is drawn.
const viewKey = () => (S.session ? `${S.session.state}|${S.session.audio_held}` : "");

// playAudio plays a line's stretch of the held audio, straight from the server (no copy
// is kept in the page). The line's button shows ■ while it plays; pressing it again stops.
function playAudio(g) {
  const again = S.player && S.player.line === g.id;
  stopAudio();
  if (again) return;
  const a = new Audio(audioURL(S.id, g.start, g.end));
  a.line = g.id;
  a.onended = () => stopAudio(a);
  a.onerror = () => {
    stopAudio(a);
    status("The audio of this line cannot be played: it may have been deleted (approval, discard or time limit).", true);
  };
  S.player = a;
  showPlaying();
  a.play().catch((e) => { if (e.name !== "AbortError") { stopAudio(a); status(`The audio cannot be played: ${e.message}`, true); } });
}

// stopAudio stops what is playing (only if it is still `only`, when given).
function stopAudio(only) {
  if (!S || !S.player || (only && S.player !== only)) return;
  S.player.pause();
  S.player = null;
  showPlaying();
}

function showPlaying() {
  for (const b of document.querySelectorAll("#transcript button.play")) {
    const on = !!(S && S.player && S.player.line === b.closest("li.segment").dataset.id);
    b.textContent = on ? "■" : "▶";
    b.setAttribute("aria-pressed", String(on));
  }
}

// Discarding the audio is final, so it asks first, in the page: a native confirm() box
// blocks the whole tab (live transcript included) and browsers let users suppress it.
$("btn-discard-audio").addEventListener("click", () => { $("discard-confirm").hidden = false; $("btn-discard-no").focus(); });
$("btn-discard-no").addEventListener("click", () => { $("discard-confirm").hidden = true; $("btn-discard-audio").focus(); });
$("btn-discard-yes").addEventListener("click", async () => {
  $("btn-discard-yes").disabled = true;
  try {
    stopAudio();
    setSession(await api("POST", `/api/sessions/${S.id}/discard-audio`));
    render(true);
    status("Audio deleted. The transcript is kept.");
  } catch (e) { status(e.message, true); }
  $("btn-discard-yes").disabled = false;
  $("discard-confirm").hidden = true;
});

$("btn-undo").addEventListener("click", () => edit(null, () => api("POST", `/api/sessions/${S.id}/undo`)));

$("btn-approve").addEventListener("click", async () => {
  $("approve-error").textContent = "";
  try {
    const sess = await api("POST", `/api/sessions/${S.id}/approve`, { reviewed: $("confirm-reviewed").checked });
    setSession(sess);
    render(true);
    status("Approved. The transcript is read-only and handed to the patient record write-back.");
  } catch (e) { $("approve-error").textContent = e.message; }
});

// ---------- browser microphone ----------
// Captures with getUserMedia + an AudioWorklet, downsamples to 16 kHz mono and sends
// little-endian float32 frames (docs/websocket-protocol.md). Only while recording.

async function startMic() {
  if (!S || S.mic) return;
  const s = S;
  s.mic = { starting: true };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false } });
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/mic-worklet.js");
    const srcNode = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "scribe-capture");
    const ws = new WebSocket(`wss://${location.host}/api/sessions/${s.id}/audio`);
    ws.binaryType = "arraybuffer";
    const ratio = ctx.sampleRate / 16000;
    let carry = 0;
    ws.onopen = () => ws.send(JSON.stringify({ format: "f32le", sample_rate: 16000, channels: 1 }));
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "ready") $("mic-state").textContent = "Microphone on";
      if (m.type === "error") { $("mic-state").textContent = "Microphone: " + m.message; }
    };
    node.port.onmessage = (ev) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const x = ev.data; // Float32Array at ctx.sampleRate
      const n = Math.floor((x.length - carry) / ratio);
      const out = new Float32Array(Math.max(0, n));
      for (let i = 0; i < n; i++) { // average the input samples each output sample covers
        const a = Math.floor(carry + i * ratio), b = Math.min(x.length, Math.floor(carry + (i + 1) * ratio));
        let sum = 0; for (let j = a; j < b; j++) sum += x[j];
        out[i] = b > a ? sum / (b - a) : x[a] || 0;
      }
      carry = carry + n * ratio - x.length;
      if (out.length) ws.send(out.buffer);
    };
    srcNode.connect(node);
    s.mic = { stream, ctx, ws, node };
    if (s !== S || S.session.state !== "recording") stopMic(s);
  } catch (e) {
    $("mic-state").textContent = "Microphone unavailable: " + e.message;
    s.mic = null;
  }
}

function stopMic(s) {
  s = s || S;
  if (!s || !s.mic || s.mic.starting) return;
  const m = s.mic;
  s.mic = null;
  if (m.ws) m.ws.close();
  if (m.stream) m.stream.getTracks().forEach((t) => t.stop());
  if (m.ctx) m.ctx.close();
  $("mic-state").textContent = "Microphone off";
}

route();
