// scribe's session page: the recording header, the live transcript, the review pane
// (compact lines, edit in place, keyboard shortcuts, messages next to the line, focus that
// stays where the clinician is), the pre-approval check and approval. Loaded after app.js
// and uses its helpers ($, el, api, status, socket, fmtTime …).
"use strict";

let S = null; // the open session

const segPath = (id) => `/api/sessions/${S.id}/segments/${id}`;
const cur = (id) => S.segments.get(id);
const speakers = ["clinician", "patient", "unknown"];
const speakerName = (sp) => ({ clinician: "Clinician", patient: "Patient", unknown: "Unknown" })[sp] || sp;
const flagName = (f) => String(f).replaceAll("_", " ");
const isStopped = () => S && S.session && S.session.state === "stopped" && !S.session.discarded;
const isApproved = () => S && S.session && S.session.state === "approved";

function leaveSession() {
  if (!S) return;
  stopAudio();
  if (S.sock) S.sock.stop();
  if (S.delivery) S.delivery.stop();
  clearTimeout(S.checkTimer);
  clearTimeout(S.seenTimer);
  stopMic();
  S = null;
}

// clearSessionView blanks everything a session page shows, so nothing of the last
// session (another patient's) is on screen while the next one loads.
function clearSessionView() {
  for (const id of ["session-meta", "consent-record", "document-text", "delivery", "state-reason", "agent-message", "approve-error",
    "review-hint", "review-progress", "mic-state", "search-count"]) $(id).textContent = "";
  $("writeback-actions").replaceChildren();
  $("session-title").textContent = "Loading the consultation…";
  $("rec-indicator").className = "rec";
  $("rec-indicator").textContent = "…";
  $("elapsed").textContent = "00:00:00";
  $("transcript").replaceChildren();
  $("approval-check").hidden = true;
  $("approval-check").querySelector("ul").replaceChildren();
  for (const id of ["approved", "discarded", "state-reason", "level", "discard-confirm", "btn-discard-session", "shortcuts"]) $(id).hidden = true;
  $("review").hidden = false;
  $("confirm-reviewed").checked = false;
  $("confirm-reviewed").disabled = true;
  $("btn-approve").setAttribute("aria-disabled", "true");
  $("search").value = "";
  $("view-session").classList.remove("readonly");
}

function openSession(id) {
  clearSessionView();
  show("session");
  status("");
  S = { id, session: null, segments: new Map(), provisional: new Map(), lastSeq: 0, epoch: "", sock: null,
    editing: null, editBase: 0, busy: null, current: null, seen: new Set(), shownAt: new Map(), seenTimer: 0, msgs: new Map(),
    check: null, confirmed: new Set(), checkTimer: null, mic: null, player: null, delivery: null };
  const s = S;
  s.sock = socket(`/api/sessions/${id}/live`, {
    open: (ws) => ws.send(JSON.stringify({ resume: s.lastSeq, epoch: s.epoch, level: true })),
    state: (st) => { if (s === S) { s.connState = st; showConnState(); } },
    message: (msg, ws) => {
      if (s !== S) return;
      if (msg.type === "level") { showLevel(msg.level); return; }
      if (msg.type === "error") {
        if (msg.code !== "dropped") status(msg.message, true);
        return;
      }
      if (msg.type !== "snapshot") {
        if (msg.epoch === s.epoch && msg.seq <= s.lastSeq) return; // already applied
        if (msg.epoch !== s.epoch || msg.seq !== s.lastSeq + 1) { ws.close(); return; } // gap: reconnect and resume
      }
      apply(msg);
      s.lastSeq = msg.seq || 0; // a snapshot of a session with no message yet has seq 0 (omitted)
      s.epoch = msg.epoch || "";
    },
  });
}

function apply(msg) {
  switch (msg.type) {
    case "snapshot":
      S.segments = new Map((msg.segments || []).map((g) => [g.id, g]));
      S.provisional = new Map((msg.provisional || []).map((p) => [p.utterance, p.segment]));
      // The lines on screen are brought in line by id (render), not redrawn: a line being
      // edited keeps its text, cursor and focus across a reconnection.
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
      for (const g of msg.segments || []) S.segments.set(g.id, g);
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
      showStateReason(msg.session, msg.reason);
      break;
  }
  render();
  if (msg.type !== "provisional") scheduleCheck();
}

// ---------- the recording header ----------

const stateLabels = { recording: "● RECORDING", paused: "❚❚ PAUSED: not recording", stopped: "■ STOPPED", approved: "✓ APPROVED" };

function setSession(sess) {
  const was = S.session ? S.session.state : "";
  S.session = sess;
  const st = sess.discarded ? "discarded" : sess.state;
  const ind = $("rec-indicator");
  ind.className = "rec " + sess.state;
  ind.textContent = sess.discarded ? "DISCARDED" : stateLabels[st] || st;
  $("session-title").textContent = `${sess.room_name}: consultation`;
  $("session-meta").replaceChildren(
    sess.nhs_number ? `NHS number ${fmtNHS(sess.nhs_number)}` : el("strong", {}, "No NHS number"),
    ` · started ${fmtWhen(sess.started_at)}`,
    sess.clinician_name ? ` · ${sess.clinician_name}` : "");
  $("consent-record").textContent = sess.consent_at ? `Consent to record: confirmed by ${sess.consent_by_name || "the clinician"} at ${fmtClock(sess.consent_at)} on ${new Date(sess.consent_at).toLocaleDateString("en-GB")}` : "";
  if (st !== "recording") $("elapsed").textContent = fmtTime(sess.audio_seconds);
  $("level").hidden = st !== "recording";
  $("btn-pause").hidden = st !== "recording";
  $("btn-resume").hidden = st !== "paused";
  $("btn-stop").hidden = st !== "recording" && st !== "paused";
  $("btn-undo").hidden = st === "approved" || st === "discarded";
  $("btn-discard-audio").hidden = !sess.audio_held;
  if (!sess.audio_held) { $("discard-confirm").hidden = true; stopAudio(); }
  $("view-session").classList.toggle("readonly", st === "approved" || st === "discarded");
  $("keys-hint").textContent = st === "approved" || st === "discarded" ? "Keys: ↑↓ lines · n next flagged · / find" :
    "Keys: ↑↓ lines · Enter edit · s speaker · f flag · n next flagged · ? more";
  $("review").hidden = st === "approved" || st === "discarded";
  $("approved").hidden = st !== "approved";
  $("discarded").hidden = st !== "discarded";
  if (st === "approved") {
    $("document-text").textContent = sess.document_text || "";
    showDelivery(sess);
    watchDelivery();
  }
  if (sess.notice) showStateReason(sess, sess.notice); // e.g. storage failing: kept on screen after a reload
  if (sess.interrupted && st === "paused" && !$("state-reason").textContent) {
    showStateReason(sess, "interrupted: the server stopped while this consultation was recording; resume or stop it");
  }
  if (sess.room_source === "browser" && st === "recording") startMic(); else stopMic();
  agentSessionStatus(sess); // agent.js
  // For modules that add to the session page (e.g. writeback.js, which mounts its
  // controls in #writeback-actions): the session as it now is.
  document.dispatchEvent(new CustomEvent("scribe:session", { detail: sess }));
  if (was !== sess.state && st === "stopped") { S.seen.clear(); S.shownAt.clear(); requestAnimationFrame(markSeen); }
  showConnState();
  updateReview();
}

// showStateReason puts why the session changed state next to the header: prominently
// when it was not the clinician's own doing (a full disk, a shutdown, the room agent).
function showStateReason(sess, reason) {
  const p = $("state-reason");
  // The clinician's own Pause, Resume and Stop need no explaining: the indicator says it.
  if (!reason || sess.state === "approved" || /by the clinician/.test(reason)) { p.hidden = true; p.textContent = ""; return; }
  p.textContent = `${sess.state[0].toUpperCase() + sess.state.slice(1)}: ${reason}.`;
  p.className = "state-reason warn";
  p.setAttribute("role", "alert");
  p.hidden = false;
}

function showConnState() {
  if (!S) return;
  const p = $("conn-state");
  const st = conn.signedOut ? "signed out" : conn.lost ? "offline" : S.connState || "connecting";
  p.textContent = { live: "● Live: connected", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "✕ Offline: reconnecting", "signed out": "✕ Signed out" }[st] || st;
  p.className = "conn-state " + st.replace(" ", "-");
}

function connectionChanged() { showConnState(); } // app.js calls it

// showLevel draws a "level" message: the room's input level and the recorded time.
function showLevel(l) {
  if (!l || !S || !S.session || S.session.state !== "recording") return;
  $("elapsed").textContent = fmtTime(l.elapsed);
  const pct = Math.max(0, Math.min(100, (l.dbfs + 60) / 60 * 100));
  const word = l.clipping ? "too loud" : l.dbfs < -50 ? "silent" : l.dbfs < -35 ? "quiet" : "good";
  $("level-bar").style.width = pct.toFixed(0) + "%";
  $("level-bar").className = "level-bar " + word.replace(" ", "-");
  const m = $("level-meter");
  m.setAttribute("aria-valuenow", String(Math.round(l.dbfs)));
  m.setAttribute("aria-valuetext", word);
  $("level-text").textContent = word;
}

// ---------- delivery of an approved note ----------

function showDelivery(v) {
  document.dispatchEvent(new CustomEvent("scribe:delivery", { detail: v }));
  const p = $("delivery");
  const reason = v.delivery_reason ? `: ${v.delivery_reason}` : "";
  const what = {
    held: `Held, not filed${reason}. Put it right (below, or ask the practice's IT admin), then it is retried.`,
    failed: `Not filed${reason}. The practice's IT admin can retry it from the write-back queue.`,
    sent: "In the patient record.",
    queued: "Queued for the patient record.",
    sending: "Being filed in the patient record.",
    awaiting_ack: "Sent; waiting for the receiving system to acknowledge it.",
  }[v.delivery_state] || (v.delivery_state ? v.delivery_state + reason : "Handed to write-back.");
  p.replaceChildren(statusTag(v), " ", what);
  p.className = "delivery " + (v.delivery_state || "");
  p.dataset.state = v.delivery_state || "";
}

// watchDelivery keeps an approved note's delivery state live (from the worklist feed).
function watchDelivery() {
  if (S.delivery) return;
  const s = S;
  s.delivery = socket("/api/worklist/live", {
    message: (msg) => {
      if (s !== S || msg.type !== "worklist") return;
      const v = msg.sessions.find((x) => x.id === s.id);
      if (v && v.state === "approved") showDelivery(v);
    },
  });
}

// ---------- lines ----------

const segKey = (g) => `${g.version}|${(g.review_flags || []).join(",")}|${(g.flags || []).join(",")}`;
const viewKey = () => (S.session ? `${S.session.state}|${S.session.audio_held}|${S.session.discarded}` : "");
const needsAttention = (g) => !g.text || (g.flags || []).length > 0 || (g.review_flags || []).length > 0;
const liveLines = () => [...S.segments.values()].filter((g) => !g.deleted).sort((a, b) => a.pos - b.pos || a.seq - b.seq);
const lineEl = (id) => document.querySelector(`#transcript li.segment[data-id="${CSS.escape(id)}"]`);
const lineItems = () => [...document.querySelectorAll("#transcript li.segment")];

function lineButton(cls, label, aria, onclick) {
  return el("button", { type: "button", class: `line-btn ${cls}`, tabindex: "-1", "aria-label": aria, onclick }, label);
}

function fillSegment(li, g) {
  const at = fmtTime(g.start);
  const ro = isApproved() || (S.session && S.session.discarded);
  const flags = [...(g.flags || []), ...(g.review_flags || [])];
  li.dataset.version = g.version;
  li.dataset.key = segKey(g);
  li.dataset.state = viewKey();
  li.classList.toggle("attention", needsAttention(g));
  li.classList.toggle("no-text", !g.text);
  const kids = [el("span", { class: "seg-time" }, at)];
  if (S.session && S.session.audio_held && g.end > g.start) {
    kids.push(el("button", { type: "button", class: "play", tabindex: "-1", "aria-label": `Play the audio of the line at ${at}`, "aria-pressed": "false", onclick: () => playAudio(g) }, "▶"));
  }
  kids.push(ro ? el("span", { class: `speaker spk-${g.speaker}` }, speakerName(g.speaker))
    : el("button", { type: "button", class: `speaker spk-${g.speaker}`, tabindex: "-1", "aria-haspopup": "menu", "aria-expanded": "false",
      "aria-label": `Speaker: ${speakerName(g.speaker)}. Change the speaker of the line at ${at}`, onclick: () => openSpeakerMenu(g.id) }, speakerName(g.speaker)));
  const body = el("div", { class: "seg-body" });
  if (S.editing === g.id) {
    const ta = el("textarea", { id: `text-${g.id}`, class: "seg-edit nhsuk-textarea", rows: "2", "aria-label": `Text of the line at ${at}` });
    ta.value = S.editDraft !== undefined ? S.editDraft : g.text;
    ta.addEventListener("input", () => { S.editDraft = ta.value; });
    body.append(ta, el("div", { class: "edit-actions" },
      el("button", { type: "button", class: "line-btn save", onclick: () => saveEdit(g.id) }, "Save"),
      el("button", { type: "button", class: "line-btn split", onclick: () => splitAtCursor(g.id) }, "Split at cursor"),
      el("button", { type: "button", class: "line-btn cancel", onclick: () => cancelEdit(g.id) }, "Cancel"),
      el("span", { class: "meta" }, "Enter saves · Esc cancels · Alt+s splits")));
  } else {
    body.append(g.text ? el("p", { class: "seg-text" }, ...highlight(g.text))
      : el("p", { class: "seg-text no-text" }, "[speech heard, no text recognised: type what was said, delete the line, or keep the gap]"));
  }
  kids.push(body);
  if (flags.length) kids.push(el("span", { class: "seg-flags" }, "⚑ " + flags.map(flagName).join(", ")));
  if (!ro && S.editing !== g.id) {
    kids.push(el("span", { class: "seg-actions" },
      lineButton("edit", "Edit", `Edit the text of the line at ${at}`, () => startEdit(g.id)),
      lineButton("merge", "Merge ↓", `Merge the line at ${at} with the next line`, () => mergeLine(g.id)),
      lineButton("delete", "Delete", `Delete the line at ${at}`, () => deleteLine(g.id)),
      lineButton("add", "Add ↓", `Add a missed line after the line at ${at}`, () => addLine(g.id)),
      lineButton("flag", "Flag", `Flag the line at ${at} for the Clinical Safety Officer`, () => flagForm(g.id))));
  }
  const m = S.msgs.get(g.id);
  kids.push(el("span", { class: "line-msg" + (m && m.bad ? " bad" : ""), id: `msg-${g.id}` }, m ? m.text : ""));
  li.replaceChildren(...kids);
}

function segmentItem(g) {
  const li = el("li", { class: "segment", "data-id": g.id, tabindex: "-1" });
  fillSegment(li, g);
  return li;
}

// render brings the list in line with S.segments. A line being edited (S.editing), or
// with its speaker menu or a form open (S.busy), is left alone; focus inside a redrawn
// line is put back.
function render(force) {
  if (!S) return;
  const box = $("transcript-box");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
  const list = $("transcript");
  const existing = new Map(lineItems().map((li) => [li.dataset.id, li]));
  const nodes = [];
  for (const g of liveLines()) {
    let li = existing.get(g.id);
    if (!li) li = segmentItem(g);
    else if (S.busy !== g.id && S.editing !== g.id && (force || li.dataset.key !== segKey(g) || li.dataset.state !== viewKey())) refill(li, g);
    existing.delete(g.id);
    nodes.push(li);
  }
  for (const li of existing.values()) {
    if (li.contains(document.activeElement)) S.refocus = li.dataset.id; // focus moves on (see below)
    li.remove();
  }
  for (const li of list.querySelectorAll("li.provisional")) li.remove();
  for (const [u, p] of [...S.provisional.entries()].sort((a, b) => a[0] - b[0])) {
    nodes.push(el("li", { class: "provisional", "data-utterance": String(u) },
      el("span", { class: "seg-time" }, fmtTime(p.start)), el("span", { class: "tag" }, "provisional"), el("span", { class: "seg-text" }, p.text)));
  }
  // Move nodes only when the order changed, so focus inside a line is kept.
  const current = [...list.children];
  if (current.length !== nodes.length || current.some((n, i) => n !== nodes[i])) list.append(...nodes);
  if (atBottom && S.session && S.session.state === "recording") box.scrollTop = box.scrollHeight;
  if (!S.current || !lineEl(S.current)) setCurrent(nodes.find((n) => n.classList.contains("segment")), false);
  else setCurrent(lineEl(S.current), false);
  if (S.refocus && !document.activeElement.closest("#transcript")) {
    const li = lineEl(S.refocus) || nodes.find((n) => n.classList.contains("segment"));
    if (li) focusLine(li);
  }
  S.refocus = null;
  searchMarks();
  markSeen();
  updateReview();
}

// refill redraws a line and puts the focus back where it was inside it.
function refill(li, g) {
  const a = document.activeElement;
  const inside = li.contains(a) ? (a === li ? "" : [...a.classList].find((c) => c !== "line-btn") || "") : null;
  fillSegment(li, g);
  if (inside === null) return;
  const back = inside ? li.querySelector("." + CSS.escape(inside)) : null;
  (back || li).focus({ preventScroll: true });
}

// setCurrent makes one line the transcript's single Tab stop (a roving tabindex).
function setCurrent(li, focus) {
  if (!li) return;
  for (const x of lineItems()) if (x !== li && x.tabIndex !== -1) x.tabIndex = -1;
  li.tabIndex = 0;
  S.current = li.dataset.id;
  if (focus) focusLine(li);
}

function focusLine(li) {
  if (!li) return;
  setCurrent(li, false);
  li.focus({ preventScroll: true });
  li.scrollIntoView({ block: "nearest" });
  markSeen();
}

$("transcript").addEventListener("focusin", (ev) => {
  const li = ev.target.closest("li.segment");
  if (li && S) setCurrent(li, false);
});

// A line's message appears next to it (and in the page's status line for screen readers).
function lineMsg(id, text, bad) {
  if (!S) return;
  clearTimeout((S.msgs.get(id) || {}).timer);
  const m = { text, bad, timer: bad ? null : setTimeout(() => { if (S && S.msgs.get(id) === m) { S.msgs.delete(id); const p = $(`msg-${id}`); if (p) p.textContent = ""; } }, 6000) };
  S.msgs.set(id, m);
  const p = $(`msg-${id}`);
  if (p) { p.textContent = text; p.classList.toggle("bad", !!bad); }
  status(text, bad);
}

// ---------- editing ----------

function startEdit(id) {
  const g = cur(id);
  if (!g || isApproved()) return;
  closeForms();
  if (S.editing && S.editing !== id) cancelEdit(S.editing, true);
  S.editing = id;
  S.editBase = g.version;
  S.editDraft = undefined;
  const li = lineEl(id);
  fillSegment(li, g);
  const ta = $(`text-${id}`);
  ta.focus();
  ta.setSelectionRange(ta.value.length, ta.value.length);
}

function endEdit(id) {
  S.editing = null;
  S.editDraft = undefined;
  const li = lineEl(id);
  if (li && cur(id)) { fillSegment(li, cur(id)); focusLine(li); }
}

function cancelEdit(id, quiet) {
  endEdit(id);
  if (!quiet) status("");
}

// editFailed keeps the typed text on the page and says why it was not saved.
function editFailed(id, e) {
  if (e.status === 409 && cur(id)) {
    S.editBase = cur(id).version;
    lineMsg(id, `Not saved: the line changed since you began (it now says “${cur(id).text}”). Your text is kept: save again to replace it, or cancel.`, true);
  } else if (e.status === 401) {
    lineMsg(id, "Not saved: you are signed out. Your text is kept: sign in again (above), then save.", true);
  } else {
    lineMsg(id, `Not saved: ${e.message}. Your text is kept.`, true);
  }
}

async function saveEdit(id) {
  const ta = $(`text-${id}`);
  if (!ta) return;
  try {
    await api("PATCH", segPath(id), { version: S.editBase, text: ta.value });
    endEdit(id);
    lineMsg(id, "Saved.");
  } catch (e) { editFailed(id, e); }
}

async function splitAtCursor(id) {
  const ta = $(`text-${id}`);
  if (!ta) return;
  const offset = [...ta.value.slice(0, ta.selectionStart)].length;
  try {
    await api("POST", segPath(id) + "/split", { version: S.editBase, offset, text: ta.value });
    endEdit(id);
    lineMsg(id, "Split in two.");
  } catch (e) { editFailed(id, e); }
}

// act runs a line action and reports next to the line; focus goes to focusAfter's line.
async function act(id, what, fn, focusAfter) {
  try {
    await fn();
    const li = focusAfter ? lineEl(focusAfter) : lineEl(id);
    if (li) focusLine(li);
    lineMsg(focusAfter || id, what);
  } catch (e) { lineMsg(id, `Not done: ${e.message}`, true); }
}

function neighbour(id, dir) {
  const items = lineItems();
  const i = items.findIndex((li) => li.dataset.id === id);
  const n = items[i + dir] || items[i - dir];
  return n ? n.dataset.id : null;
}

function deleteLine(id) {
  const next = neighbour(id, 1);
  act(id, "Line deleted. Press u (or Undo) to bring it back.", () => api("POST", segPath(id) + "/delete", { version: cur(id).version }), next);
}

function mergeLine(id) {
  act(id, "Merged with the next line.", () => api("POST", segPath(id) + "/merge", { version: cur(id).version }));
}

async function undo() {
  try {
    const out = await api("POST", `/api/sessions/${S.id}/undo`);
    const g = (out.segments || []).find((x) => !x.deleted);
    if (g && lineEl(g.id)) { focusLine(lineEl(g.id)); lineMsg(g.id, "Undone."); } else status("Undone.");
  } catch (e) { status(e.status === 409 ? "Nothing to undo." : `Not undone: ${e.message}`, true); }
}

// openSpeakerMenu lists the speakers under the line's speaker button. Arrow keys move in
// the open menu only: nothing changes until the clinician picks one (Enter or a click).
function openSpeakerMenu(id) {
  const li = lineEl(id);
  const g = cur(id);
  if (!li || !g || isApproved()) return;
  closeForms();
  const btn = li.querySelector("button.speaker");
  const menu = el("div", { class: "speaker-menu", role: "menu", "aria-label": `Speaker of the line at ${fmtTime(g.start)}` },
    ...speakers.map((sp) => el("button", { type: "button", role: "menuitemradio", tabindex: "-1", "aria-checked": String(sp === g.speaker), "data-speaker": sp,
      onclick: () => chooseSpeaker(id, sp) }, speakerName(sp))));
  menu.addEventListener("keydown", (ev) => {
    const items = [...menu.querySelectorAll("button")];
    const i = items.indexOf(document.activeElement);
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      items[(i + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
    } else if (ev.key === "Escape" || ev.key === "Tab") {
      ev.preventDefault();
      closeForms();
      focusLine(li);
    }
    ev.stopPropagation();
  });
  S.busy = id;
  btn.setAttribute("aria-expanded", "true");
  btn.after(menu);
  // The other of clinician/patient first: swapping the two is the usual correction.
  const first = g.speaker === "clinician" ? "patient" : "clinician";
  menu.querySelector(`[data-speaker="${first}"]`).focus();
}

function chooseSpeaker(id, sp) {
  closeForms();
  const g = cur(id);
  if (!g || g.speaker === sp) { focusLine(lineEl(id)); return; }
  act(id, `Speaker changed to ${speakerName(sp)}.`, () => api("PATCH", segPath(id), { version: g.version, speaker: sp }));
}

// closeForms closes an open speaker menu or add/flag form (not a text edit).
function closeForms() {
  for (const f of document.querySelectorAll("#transcript .speaker-menu, #transcript .line-form")) f.remove();
  for (const b of document.querySelectorAll("#transcript button.speaker[aria-expanded=true]")) b.setAttribute("aria-expanded", "false");
  if (!S || !S.busy) return;
  const id = S.busy;
  S.busy = null;
  if (id !== S.editing && cur(id) && lineEl(id)) refill(lineEl(id), cur(id));
}

function lineForm(id, cls, fields, submit, label, submitClass) {
  const li = lineEl(id);
  if (!li) return;
  closeForms();
  S.busy = id;
  const f = el("form", { class: `line-form ${cls}` }, ...fields,
    el("button", { type: "submit", class: `line-btn ${submitClass}` }, label),
    el("button", { type: "button", class: "line-btn", onclick: () => { closeForms(); focusLine(li); } }, "Cancel"));
  f.addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });
  f.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.preventDefault(); closeForms(); focusLine(li); } ev.stopPropagation(); });
  li.append(f);
  f.querySelector("select, input").focus();
}

function addLine(id) {
  const tid = `add-text-${id}`, sid = `add-speaker-${id}`;
  lineForm(id, "add-form", [
    el("label", { for: sid }, "Speaker"),
    el("select", { id: sid, class: "nhsuk-select" }, ...speakers.map((s) => el("option", { value: s }, speakerName(s)))),
    el("label", { for: tid }, "Missed line"),
    el("input", { id: tid, class: "nhsuk-input", required: true })],
  async () => {
    const sp = $(sid).value, text = $(tid).value;
    closeForms();
    try {
      const out = await api("POST", `/api/sessions/${S.id}/segments`, { after: id, speaker: sp, text });
      const g = (out.segments || [])[0];
      const li = g && lineEl(g.id);
      if (li) { focusLine(li); lineMsg(g.id, "Line added."); }
    } catch (e) { lineMsg(id, `Not added: ${e.message}`, true); }
  }, "Add line", "add-submit");
}

function flagForm(id) {
  const cid = `flag-cat-${id}`, nid = `flag-note-${id}`;
  lineForm(id, "flag-form", [
    el("label", { for: cid }, "What is wrong?"),
    el("select", { id: cid, class: "nhsuk-select" },
      el("option", { value: "wrong_words" }, "Wrong words"),
      el("option", { value: "wrong_speaker" }, "Wrong speaker"),
      el("option", { value: "invented_text" }, "Invented text (not said)"),
      el("option", { value: "missing_speech" }, "Missing speech")),
    el("label", { for: nid }, "Note (optional)"),
    el("input", { id: nid, class: "nhsuk-input", maxlength: "2000" })],
  async () => {
    const category = $(cid).value, note = $(nid).value;
    closeForms();
    act(id, "Flag recorded for the Clinical Safety Officer.", () => api("POST", segPath(id) + "/flags", { category, note }));
  }, "Record flag", "flag-submit");
}

// ---------- keyboard ----------

function moveTo(li) { if (li) focusLine(li); }

function nextAttention(from, dir) {
  const items = lineItems();
  let i = items.findIndex((li) => li.dataset.id === from);
  for (let n = 0; n < items.length; n++) {
    i = (i + dir + items.length) % items.length;
    const g = cur(items[i].dataset.id);
    if (g && needsAttention(g)) return items[i];
  }
  return null;
}

$("transcript").addEventListener("keydown", (ev) => {
  if (!S) return;
  const li = ev.target.closest("li.segment");
  if (!li) return;
  const id = li.dataset.id;
  if (ev.target.matches("textarea")) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.altKey) { ev.preventDefault(); saveEdit(id); }
    else if (ev.key === "Escape") { ev.preventDefault(); cancelEdit(id); }
    else if (ev.altKey && ev.key.toLowerCase() === "s") { ev.preventDefault(); splitAtCursor(id); }
    return;
  }
  if (ev.target.closest(".line-form, .speaker-menu, .edit-actions")) return;
  const onLine = ev.target === li;
  if (ev.ctrlKey && ev.key === "z") { ev.preventDefault(); if (!isApproved()) undo(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const items = lineItems();
  const i = items.indexOf(li);
  const ro = isApproved() || S.session.discarded;
  let done = true;
  switch (ev.key) {
    case "ArrowDown": case "j": moveTo(items[i + 1]); break;
    case "ArrowUp": case "k": moveTo(items[i - 1]); break;
    case "Home": if (onLine) moveTo(items[0]); else done = false; break;
    case "End": if (onLine) moveTo(items[items.length - 1]); else done = false; break;
    case "n": moveTo(nextAttention(id, 1)); break;
    case "N": moveTo(nextAttention(id, -1)); break;
    case "ArrowRight": case "ArrowLeft": {
      const ctl = [li, ...li.querySelectorAll("button")].filter((b) => b.offsetParent !== null || b === li);
      const k = ctl.indexOf(ev.target);
      const to = ctl[Math.max(0, Math.min(ctl.length - 1, k + (ev.key === "ArrowRight" ? 1 : -1)))];
      if (to) to.focus();
      break;
    }
    case "/": $("search").focus(); break;
    case "?": toggleShortcuts(); break;
    default:
      done = false;
      if (ro || !onLine) {
        if (ev.key === "p" && S.session.audio_held) { playAudio(cur(id)); done = true; }
        break;
      }
      done = true;
      switch (ev.key) {
        case "Enter": case "e": startEdit(id); break;
        case "s": openSpeakerMenu(id); break;
        case "f": flagForm(id); break;
        case "a": addLine(id); break;
        case "m": mergeLine(id); break;
        case "Delete": deleteLine(id); break;
        case "u": undo(); break;
        case "p": if (S.session.audio_held) playAudio(cur(id)); break;
        default: done = false;
      }
  }
  if (done) ev.preventDefault();
});

function toggleShortcuts() {
  $("shortcuts").hidden = !$("shortcuts").hidden;
}

// ---------- search ----------

function highlight(text) {
  const q = $("search").value.trim().toLowerCase();
  if (!q) return [text];
  const out = [];
  let i = 0;
  const low = text.toLowerCase();
  for (let j = low.indexOf(q); j >= 0; j = low.indexOf(q, i)) {
    out.push(text.slice(i, j), el("mark", {}, text.slice(j, j + q.length)));
    i = j + q.length;
  }
  out.push(text.slice(i));
  return out;
}

function searchMarks() {
  const q = $("search").value.trim().toLowerCase();
  let n = 0;
  for (const li of lineItems()) {
    const g = cur(li.dataset.id);
    const hit = !!q && !!g && g.text.toLowerCase().includes(q);
    li.classList.toggle("match", hit);
    if (hit) n++;
  }
  $("search-count").textContent = q ? `${n} line${n === 1 ? "" : "s"} found` : "";
}

$("search").addEventListener("input", () => { if (S) render(true); });
$("search").addEventListener("keydown", (ev) => {
  if (!S) return;
  if (ev.key === "Enter") {
    ev.preventDefault();
    const items = lineItems();
    const from = Math.max(0, items.findIndex((li) => li.dataset.id === S.current));
    for (let n = 1; n <= items.length; n++) {
      const li = items[(from + (ev.shiftKey ? -n : n) + items.length) % items.length];
      if (li.classList.contains("match")) { focusLine(li); return; }
    }
  } else if (ev.key === "Escape") {
    $("search").value = "";
    render(true);
    moveTo(lineEl(S.current));
  }
});

// ---------- reading: every line must have been on screen after the recording stopped ----------
// A line counts as seen once it has stayed on screen for a second after the recording
// stopped: what the live view scrolled past while recording, and positions the page only
// passed through (the jump to the first line at Stop), do not count as reading.

const seenAfterMs = 1000;

function markSeen() {
  if (!isStopped()) return;
  const now = performance.now();
  const box = $("transcript-box").getBoundingClientRect();
  let waiting = false;
  for (const li of lineItems()) {
    const id = li.dataset.id;
    if (S.seen.has(id)) continue;
    const r = li.getBoundingClientRect();
    const visible = Math.min(r.bottom, box.bottom) - Math.max(r.top, box.top) >= Math.min(r.height, box.height) * 0.5;
    if (!visible) { S.shownAt.delete(id); continue; }
    const since = S.shownAt.get(id);
    if (since === undefined) S.shownAt.set(id, now);
    if (since !== undefined && now - since >= seenAfterMs) S.seen.add(id); else waiting = true;
  }
  clearTimeout(S.seenTimer);
  if (waiting) S.seenTimer = setTimeout(markSeen, 250);
  updateReview();
}

let seenFrame = 0;
$("transcript-box").addEventListener("scroll", () => {
  if (!S || seenFrame) return;
  seenFrame = requestAnimationFrame(() => { seenFrame = 0; markSeen(); });
});
window.addEventListener("resize", () => { if (S) markSeen(); });

// ---------- the pre-approval check and approval ----------

function scheduleCheck() {
  if (!S || !isStopped()) return;
  clearTimeout(S.checkTimer);
  const s = S;
  s.checkTimer = setTimeout(() => loadCheck(s), 250);
}

async function loadCheck(s) {
  try {
    const out = await api("GET", `/api/sessions/${s.id}/approval-check`);
    if (s === S) { S.check = out.items; showCheck(); }
  } catch (_) { /* the banner says why */ }
}

function showCheck() {
  const box = $("approval-check");
  const items = S.check || [];
  const ids = new Set(items.map((it) => it.id));
  for (const id of [...S.confirmed]) if (!ids.has(id)) S.confirmed.delete(id);
  box.hidden = !items.length;
  box.querySelector("ul").replaceChildren(...items.map((it) => {
    const li = el("li", { "data-item": it.id, class: it.blocking ? "blocking" : "" }, el("p", {}, it.message));
    if (it.segment_id && lineEl(it.segment_id)) {
      li.append(el("button", { type: "button", class: "line-btn goto", onclick: () => focusLine(lineEl(it.segment_id)) }, `Go to the line at ${fmtTime(it.start)}`));
    }
    if (!it.blocking) {
      const cid = `confirm-${it.id.replace(/[^\w-]/g, "-")}`;
      const c = el("input", { type: "checkbox", class: "nhsuk-checkboxes__input", id: cid });
      c.checked = S.confirmed.has(it.id);
      c.addEventListener("change", () => { if (c.checked) S.confirmed.add(it.id); else S.confirmed.delete(it.id); updateReview(); });
      li.append(el("div", { class: "nhsuk-checkboxes__item" }, c, el("label", { class: "nhsuk-label nhsuk-checkboxes__label", for: cid }, it.confirm)));
    }
    return li;
  }));
  updateReview();
}

// readiness says whether the note can be approved now, and if not, what is missing.
function readiness() {
  const st = S.session.state;
  const lines = liveLines();
  const unseen = lines.filter((g) => !S.seen.has(g.id)).length;
  const items = S.check || [];
  const open = items.filter((it) => !it.blocking && !S.confirmed.has(it.id)).length;
  const why = st === "recording" || st === "paused" ? "Stop the recording to review and approve." :
    !isStopped() ? "This consultation cannot be approved." :
    items.some((it) => it.blocking) ? "This note cannot be approved as it is (see “Needs your decision”)." :
    unseen ? `Read every line first: ${unseen} not on screen yet (scroll, or ↓ on a line).` :
    S.check === null ? "Checking the note…" :
    open ? `Decide ${open === 1 ? "the item" : `each of the ${open} items`} under “Needs your decision”.` :
    !$("confirm-reviewed").checked ? "Tick the statement above the button to approve." : "";
  return { why, lines: lines.length, unseen };
}

function updateReview() {
  if (!S || !S.session) return;
  const r = readiness();
  const cb = $("confirm-reviewed");
  const canConfirm = isStopped() && r.lines > 0 && r.unseen === 0;
  cb.disabled = !canConfirm;
  if (!canConfirm) cb.checked = false;
  const ready = !readiness().why; // again: unticking above may have changed it
  // Approve stays in the Tab order when it cannot be used yet (aria-disabled, not
  // disabled), and says what is missing when pressed.
  $("btn-approve").setAttribute("aria-disabled", String(!ready));
  $("btn-discard-session").hidden = !(isStopped() && (S.check || []).some((it) => it.kind === "empty"));
  $("review-progress").textContent = !isStopped() || !r.lines ? "" : r.unseen ? `Lines seen: ${r.lines - r.unseen} of ${r.lines}.` : `You have seen all ${r.lines} lines.`;
  $("review-hint").textContent = readiness().why;
}

$("confirm-reviewed").addEventListener("change", updateReview);

$("btn-approve").addEventListener("click", async () => {
  $("approve-error").textContent = "";
  if (S.check === null && isStopped()) await loadCheck(S); // pressed before the check arrived
  const why = readiness().why;
  if (why) { $("approve-error").textContent = `Not yet: ${why}`; return; }
  const ids = new Set((S.check || []).map((it) => it.id));
  try {
    const sess = await api("POST", `/api/sessions/${S.id}/approve`, { reviewed: $("confirm-reviewed").checked, confirm: [...S.confirmed].filter((id) => ids.has(id)) });
    setSession(sess);
    render(true);
    status("Approved. The transcript is read-only and handed to the patient record write-back.");
    $("approved").querySelector("h2").setAttribute("tabindex", "-1");
    $("approved").querySelector("h2").focus();
  } catch (e) {
    if (e.status === 409 && e.data && e.data.check) {
      S.check = e.data.check;
      showCheck();
      $("approve-error").textContent = "Not approved: decide each item under “Needs your decision” first.";
    } else $("approve-error").textContent = `Not approved: ${e.message}`;
  }
});

$("btn-discard-session").addEventListener("click", async () => {
  try {
    setSession(await api("POST", `/api/sessions/${S.id}/discard`));
    status("Discarded: nothing was filed.");
  } catch (e) { $("approve-error").textContent = e.message; }
});

// ---------- recording controls ----------

for (const [btn, action] of [["btn-pause", "pause"], ["btn-resume", "resume"], ["btn-stop", "stop"]]) {
  $(btn).addEventListener("click", async () => {
    const b = $(btn);
    const pressed = document.activeElement === b;
    b.disabled = true;
    status(action === "stop" ? "Stopping: finishing the transcript…" : "");
    try {
      const sess = await api("POST", `/api/sessions/${S.id}/${action}`);
      if (action === "stop" && S) {
        status("Recording stopped. Review each line: ↓ or j moves to the next, Enter edits, s changes the speaker, ? lists the keys.");
        // The clinician's next job is the first line: focus goes there, not to <body>.
        if (pressed || document.activeElement === document.body) {
          setSession(sess);
          render();
          moveTo(lineItems()[0]);
        }
      }
    } catch (e) { status(e.message, true); }
    b.disabled = false;
  });
}

$("btn-undo").addEventListener("click", undo);

document.addEventListener("keydown", (ev) => {
  if (!S || $("view-session").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.closest("input, textarea, select, #transcript")) return;
  if (ev.key === "/") { ev.preventDefault(); $("search").focus(); }
  else if (ev.key === "?") { ev.preventDefault(); toggleShortcuts(); }
});

// ---------- re-listening ----------

// playAudio plays a line's stretch of the held audio, straight from the server (no copy
// is kept in the page). The line's button shows ■ while it plays; pressing it again stops.
function playAudio(g) {
  if (!g) return;
  const again = S.player && S.player.line === g.id;
  stopAudio();
  if (again) return;
  const a = new Audio(audioURL(S.id, g.start, g.end));
  a.line = g.id;
  a.onended = () => stopAudio(a);
  a.onerror = () => {
    stopAudio(a);
    lineMsg(g.id, "The audio of this line cannot be played: it may have been deleted (approval, discard or time limit).", true);
  };
  S.player = a;
  showPlaying();
  a.play().catch((e) => { if (e.name !== "AbortError") { stopAudio(a); lineMsg(g.id, `The audio cannot be played: ${e.message}`, true); } });
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
