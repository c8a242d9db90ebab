// Write-back actions on an approved session (issue #15): copy the note to the record
// (plain text for a GP system's free-text consultation entry, a PDF for document import),
// add or fix the NHS number of a note the write-back holds, and amend or withdraw a note
// already in the record. Kept apart from app.js: it fills the element #writeback-actions
// in the approved-session view and talks only to the API (apiRequest from api.js).
"use strict";

(function () {
  const box = () => document.getElementById("writeback-actions");
  const sessionId = () => { const m = location.hash.match(/^#\/session\/([\w-]+)$/); return m ? m[1] : null; };
  const kindName = { note: "Note", amend: "Amendment", withdraw: "Withdrawal" };
  const stateName = {
    queued: "queued", sending: "sending", awaiting_ack: "waiting for the receiver's acknowledgement",
    sent: "in the record", held: "held", failed: "failed",
  };
  let shown = ""; // what is on screen: session id and the versions' states

  function make(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === undefined || v === null) continue;
      e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids) if (k !== null && k !== undefined && k !== false) e.append(k);
    return e;
  }

  function say(el, text, isError) {
    el.textContent = text;
    el.className = isError ? "error" : "meta";
  }

  // copyText puts text on the clipboard: the async API where the page may use it, else
  // the selection fallback (older browsers, no permission).
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return; } catch (_) { /* fall back */ }
    }
    const ta = make("textarea", { readonly: true, class: "offscreen" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand("copy");
    ta.remove();
    if (!ok) throw new Error("the browser would not copy; use the PDF or select the text by hand");
  }

  function copySection(id) {
    const status = make("span", { id: "copy-status", class: "meta", role: "status" });
    const btn = make("button", { type: "button", id: "btn-copy-record", class: "primary" }, "Copy to record");
    btn.addEventListener("click", async () => {
      try {
        const r = await fetch(`/api/sessions/${encodeURIComponent(id)}/record.txt`, { credentials: "same-origin" });
        const text = await r.text();
        if (!r.ok) throw new Error((() => { try { return JSON.parse(text).error; } catch (_) { return r.statusText; } })());
        await copyText(text);
        say(status, "Copied: paste it into the consultation's free-text entry in the GP system.");
      } catch (e) {
        say(status, "Not copied: " + e.message, true);
      }
    });
    const pdf = make("a", { id: "link-record-pdf", href: `/api/sessions/${encodeURIComponent(id)}/record.pdf`, download: true }, "Download as PDF");
    return make("div", { class: "writeback-copy" },
      make("h3", {}, "Copy to the patient record"),
      make("p", {}, btn, " ", pdf, " ", status));
  }

  function nhsSection(id) {
    const input = make("input", { id: "nhs-fix-number", inputmode: "numeric", autocomplete: "off", maxlength: "12", placeholder: "e.g. 943 476 5919" });
    const status = make("p", { id: "nhs-fix-status", class: "meta", role: "status" });
    const form = make("form", { id: "nhs-fix-form" },
      make("h3", {}, "Add or correct the NHS number"),
      make("p", { class: "meta" }, "The note has not reached the record. Check the number against the patient's record, then send it."),
      make("label", { for: "nhs-fix-number" }, "NHS number"), input,
      make("button", { type: "submit", class: "primary" }, "Save and send"), status);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await apiRequest("PUT", `/api/sessions/${encodeURIComponent(id)}/nhs-number`, { nhs_number: input.value });
        say(status, "Saved: the note is queued for the record.");
        shown = "";
        refresh();
      } catch (e) {
        say(status, e.message, true);
      }
    });
    return form;
  }

  function correctSection(id, current) {
    const text = make("textarea", { id: "amend-text", rows: "10" });
    text.value = current.text || "";
    const reason = make("input", { id: "amend-reason", maxlength: "500", placeholder: "why it changes" });
    const nhs = make("input", { id: "amend-nhs", inputmode: "numeric", maxlength: "12", placeholder: "only if the patient was wrong" });
    const status = make("p", { id: "amend-status", class: "meta", role: "status" });
    const amend = make("form", { id: "amend-form" },
      make("h3", {}, "Amend the note in the record"),
      make("p", { class: "meta" }, "A new version replaces the one in the record; the old one is kept there, marked superseded."),
      make("label", { for: "amend-text" }, "Corrected note"), text,
      make("label", { for: "amend-reason" }, "Reason"), reason,
      make("label", { for: "amend-nhs" }, "Correct NHS number (optional)"), nhs,
      make("button", { type: "submit" }, "Send the amendment"), status);
    amend.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await apiRequest("POST", `/api/sessions/${encodeURIComponent(id)}/amend`, { text: text.value, reason: reason.value, nhs_number: nhs.value });
        say(status, "Amendment queued.");
        shown = "";
        refresh();
      } catch (e) { say(status, e.message, true); }
    });
    const wreason = make("input", { id: "withdraw-reason", maxlength: "500", placeholder: "e.g. filed against the wrong patient" });
    const wstatus = make("p", { id: "withdraw-status", class: "meta", role: "status" });
    const confirm = make("input", { type: "checkbox", id: "withdraw-confirm" });
    const withdraw = make("form", { id: "withdraw-form" },
      make("h3", {}, "Withdraw the note from the record"),
      make("p", { class: "meta" }, "The note in the record is marked entered in error. Use it for a note filed against the wrong patient or that should not be there at all."),
      make("label", { for: "withdraw-reason" }, "Reason"), wreason,
      make("p", { class: "check" }, confirm, make("label", { for: "withdraw-confirm" }, "I want this note marked entered in error")),
      make("button", { type: "submit", id: "btn-withdraw" }, "Withdraw"), wstatus);
    withdraw.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!confirm.checked) { say(wstatus, "Tick the box to confirm the withdrawal.", true); return; }
      try {
        await apiRequest("POST", `/api/sessions/${encodeURIComponent(id)}/withdraw`, { reason: wreason.value });
        say(wstatus, "Withdrawal queued.");
        shown = "";
        refresh();
      } catch (e) { say(wstatus, e.message, true); }
    });
    return make("div", { class: "writeback-correct" }, amend, withdraw);
  }

  function versionList(versions) {
    return make("ul", { id: "note-versions", class: "meta" }, ...versions.map((v) =>
      make("li", { "data-kind": v.kind, "data-state": v.state },
        `${kindName[v.kind] || v.kind}: ${stateName[v.state] || v.state}`,
        v.delivery_reason ? ` — ${v.delivery_reason}` : "",
        ` (${new Date(v.created_at).toLocaleString("en-GB")})`)));
  }

  async function render(id) {
    const el = box();
    let versions = [];
    try {
      versions = await apiRequest("GET", `/api/sessions/${encodeURIComponent(id)}/versions`);
    } catch (e) {
      if (e.status !== 404) throw e; // 404: no write-back configured
    }
    const key = id + "|" + versions.map((v) => v.document_id + ":" + v.state + ":" + (v.delivery_reason || "")).join(",");
    if (key === shown || (el.contains(document.activeElement) && document.activeElement.tagName !== "BUTTON")) return;
    shown = key;
    const withdrawn = versions.some((v) => v.kind === "withdraw");
    const original = versions.find((v) => v.kind === "note");
    const current = versions.find((v) => v.kind !== "withdraw");
    const parts = [];
    if (!withdrawn) parts.push(copySection(id));
    if (original && ["queued", "held", "failed"].includes(original.state)) parts.push(nhsSection(id));
    if (!withdrawn && current && current.state === "sent" && versions[0].state === "sent") parts.push(correctSection(id, current));
    if (versions.length) parts.push(make("h3", {}, "Versions"), versionList(versions));
    el.replaceChildren(...parts);
  }

  async function refresh() {
    const el = box();
    const id = sessionId();
    const approved = document.getElementById("approved");
    if (!el || !id || !approved || approved.hidden) {
      if (el) el.replaceChildren();
      shown = "";
      return;
    }
    try {
      await render(id);
    } catch (e) {
      el.replaceChildren(make("p", { class: "error" }, "Write-back actions unavailable: " + e.message));
      shown = "";
    }
  }

  // The approved view appears and changes under app.js; follow it, and follow the
  // write-back's progress while the view is open.
  window.addEventListener("hashchange", () => { shown = ""; refresh(); });
  document.addEventListener("DOMContentLoaded", () => {
    const approved = document.getElementById("approved");
    if (approved) new MutationObserver(refresh).observe(approved, { attributes: true, attributeFilter: ["hidden"] });
    refresh();
    setInterval(refresh, 3000);
  });
})();
