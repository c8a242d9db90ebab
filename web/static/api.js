"use strict";
// The JSON API client all pages use. Loaded before app.js and cso.js.

// audioURL is a range of a session's held audio as a WAV (GET, so no CSRF token; each
// fetch is recorded in the audit trail). Only offered when the session says audio_held.
// The range is widened to whole hundredths so no edge of the line is cut off.
function audioURL(id, start, end) {
  const s = Math.floor(start * 100) / 100, e = Math.ceil(end * 100) / 100;
  return `/api/sessions/${encodeURIComponent(id)}/audio?start=${s.toFixed(2)}&end=${e.toFixed(2)}`;
}

// apiRequest sends a JSON request and returns the decoded answer, or throws an Error
// carrying the server's message and the HTTP status.
async function apiRequest(method, path, body) {
  const opt = { method, headers: {}, credentials: "same-origin" };
  // CSRF (server/protection.go): the server wants the login's token, set by /api/login in
  // a readable cookie, back in a header on every state-changing request.
  const csrf = document.cookie.match(/(?:^|;\s*)__Host-scribe_csrf=([^;]+)/);
  if (method !== "GET" && csrf) opt.headers["X-CSRF-Token"] = csrf[1];
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(path, opt);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (!r.ok) {
    const err = new Error((data && data.error) || r.statusText);
    err.status = r.status;
    err.data = data; // e.g. the pre-approval check's open items with a 409
    throw err;
  }
  return data;
}
