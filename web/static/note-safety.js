// Additions to the review page for clinical safety (issue 6): flag a whole note, record
// the optional consented language/accent group, and link CSOs/admins to their page.
// Kept apart from app.js; it reads only the page's URL and its own API answers.
"use strict";

(function () {
  const byId = (id) => document.getElementById(id);
  const sessionId = () => { const m = location.hash.match(/^#\/session\/([\w-]+)$/); return m ? m[1] : null; };

  async function call(method, path, body) {
    const headers = body ? { "Content-Type": "application/json" } : {};
    const csrf = document.cookie.match(/(?:^|;\s*)__Host-scribe_csrf=([^;]+)/); // as app.js does
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf[1];
    const r = await fetch(path, { method, credentials: "same-origin", headers, body: body ? JSON.stringify(body) : undefined });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) throw new Error((data && data.error) || r.statusText);
    return data;
  }

  function make(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  // The whole-note flag form sits under the transcript, in review and after approval.
  const card = make("div", { id: "note-flag", class: "card" },
    make("h2", {}, "Report a problem with the whole note"),
    make("label", { for: "note-flag-category" }, "What is wrong?"),
    make("select", { id: "note-flag-category" },
      make("option", { value: "wrong_patient" }, "Wrong patient"),
      make("option", { value: "missing_speech" }, "Speech missing"),
      make("option", { value: "invented_text" }, "Invented text (not said)"),
      make("option", { value: "wrong_words" }, "Wrong words"),
      make("option", { value: "wrong_speaker" }, "Wrong speakers"),
      make("option", { value: "other" }, "Other")),
    make("label", { for: "note-flag-note" }, "What happened?"),
    make("input", { id: "note-flag-note", maxlength: "2000" }),
    make("button", { type: "button", id: "note-flag-submit" }, "Report to the Clinical Safety Officer"),
    make("p", { id: "note-flag-result", role: "status" }));

  // Optional, consented language/accent group, offered only when the practice enables it.
  const group = make("div", { id: "language-group", class: "card", hidden: "" },
    make("h2", {}, "Patient language or accent group (optional)"),
    make("p", { class: "meta" }, "Recorded only with the patient's consent, to check that transcription is equally accurate for everyone."),
    make("label", { for: "language-group-select" }, "Group"),
    make("select", { id: "language-group-select" }, make("option", { value: "" }, "Not recorded")),
    make("p", { class: "check" }, make("input", { type: "checkbox", id: "language-group-consent" }), " ",
      make("label", { for: "language-group-consent" }, "The patient agreed to this being recorded")),
    make("button", { type: "button", id: "language-group-save" }, "Save group"),
    make("p", { id: "language-group-result", role: "status" }));

  function place() {
    const view = byId("view-session");
    if (!view || byId("note-flag")) return;
    view.append(group, card);
  }

  place(); // deferred script: the page is parsed already

  card.querySelector("#note-flag-submit").addEventListener("click", async () => {
    const out = byId("note-flag-result");
    try {
      const f = await call("POST", `/api/sessions/${sessionId()}/flags`, { category: byId("note-flag-category").value, note: byId("note-flag-note").value });
      out.textContent = `Reported (flag #${f.id}). The Clinical Safety Officer will review it.`;
      byId("note-flag-note").value = "";
    } catch (e) { out.textContent = "Not reported: " + e.message; }
  });

  group.querySelector("#language-group-save").addEventListener("click", async () => {
    const out = byId("language-group-result");
    try {
      await call("PUT", `/api/sessions/${sessionId()}/language-group`, { group: byId("language-group-select").value, consent: byId("language-group-consent").checked });
      out.textContent = "Saved.";
    } catch (e) { out.textContent = "Not saved: " + e.message; }
  });

  async function refresh() {
    let me = null;
    try { me = await call("GET", "/api/me"); } catch (_) { return; }
    const link = byId("nav-safety");
    if (link) link.hidden = !(me.role === "cso" || me.role === "admin");
    if (me.role !== "clinician" || !sessionId()) return;
    try {
      const g = await call("GET", "/api/language-groups");
      group.hidden = !g.enabled;
      const sel = byId("language-group-select");
      if (g.enabled && sel.options.length === 1) for (const name of g.groups) sel.append(make("option", { value: name }, name));
    } catch (_) { group.hidden = true; }
  }
  window.addEventListener("hashchange", refresh);
  document.addEventListener("DOMContentLoaded", refresh);
})();
