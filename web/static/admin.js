// The admin's pages (rooms, users, the write-back queue) and the auditor's audit trail.
// Loaded after app.js and uses its helpers. Neither role ever sees transcript text.
"use strict";

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

// ---------- the write-back queue ----------

const deliveryColours = { held: "red", failed: "red", queued: "grey", sending: "blue", awaiting_ack: "blue", sent: "green" };

async function showWriteback() {
  show("writeback");
  status("");
  $("writeback-error").textContent = "";
  let list;
  try {
    list = await api("GET", "/api/deliveries" + ($("writeback-filter").value ? `?state=${$("writeback-filter").value}` : ""));
  } catch (e) {
    $("writeback-error").textContent = e.status === 404 ? "Write-back is not configured on this server." : e.message;
    return;
  }
  const counts = {};
  for (const d of list) counts[d.state] = (counts[d.state] || 0) + 1;
  $("writeback-counts").textContent = Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(" · ");
  const body = $("writeback-table").tBodies[0];
  body.replaceChildren(...list.map((d) => {
    const tr = el("tr", { "data-delivery": String(d.id), "data-state": d.state },
      el("td", {}, fmtWhen(d.updated_at)),
      el("td", {}, el("strong", { class: `nhsuk-tag nhsuk-tag--${deliveryColours[d.state] || "grey"}` }, d.state)),
      el("td", { class: "reason" }, d.reason || ""),
      el("td", {}, String(d.attempts)),
      el("td", {}, el("code", {}, d.session_id.slice(0, 8))),
      el("td", {}, el("code", {}, d.document_id.slice(0, 8))),
      el("td", {}));
    if (d.state === "held" || d.state === "failed") {
      tr.lastChild.append(el("button", { type: "button", class: "nhsuk-button nhsuk-button--secondary nhsuk-button--small retry",
        "aria-label": `Retry the note of session ${d.session_id.slice(0, 8)}`, onclick: async () => {
          try {
            await api("POST", `/api/deliveries/${d.id}/retry`, {});
            status(`Note ${d.document_id.slice(0, 8)} queued again.`);
            showWriteback();
          } catch (e) { $("writeback-error").textContent = e.message; }
        } }, "Retry"));
    }
    return tr;
  }));
  if (!list.length) body.append(el("tr", {}, el("td", { colspan: "7" }, "No notes in this list.")));
}

$("writeback-filter").addEventListener("change", showWriteback);

// ---------- the audit trail (auditors) ----------

const auditPage = 200;
let auditAfter = 0;

async function showAudit(more) {
  show("audit");
  if (!more) { auditAfter = Number($("audit-after").value) || 0; $("audit-table").tBodies[0].replaceChildren(); }
  const q = new URLSearchParams({ limit: String(auditPage) });
  if (auditAfter) q.set("after", String(auditAfter));
  if ($("audit-session").value.trim()) q.set("session", $("audit-session").value.trim());
  let list;
  try { list = await api("GET", "/api/audit?" + q); } catch (e) { status(e.message, true); return; }
  const body = $("audit-table").tBodies[0];
  for (const e of list) {
    const details = Object.entries(e.details || {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
    body.append(el("tr", { "data-seq": String(e.seq) }, el("td", {}, String(e.seq)), el("td", {}, new Date(e.at).toLocaleString("en-GB")),
      el("td", {}, e.actor), el("td", {}, e.action.replaceAll("_", " ")),
      el("td", {}, e.session_id ? el("code", {}, e.session_id.slice(0, 8)) : ""), el("td", { class: "details" }, details)));
    auditAfter = e.seq;
  }
  if (!body.rows.length) body.append(el("tr", {}, el("td", { colspan: "6" }, "No entries.")));
  $("audit-more").hidden = list.length < auditPage;
}

$("audit-form").addEventListener("submit", (ev) => { ev.preventDefault(); showAudit(false); });
$("audit-more").addEventListener("click", () => showAudit(true));
$("audit-verify").addEventListener("click", async () => {
  const out = $("audit-verify-result");
  out.textContent = "Checking…";
  try {
    const r = await api("GET", "/api/audit/verify");
    out.textContent = r.ok ? `The chain is intact: ${r.entries} entries, every hash checks.` : `The chain is broken: ${r.problem}.`;
    out.className = r.ok ? "ok" : "bad";
  } catch (e) { out.textContent = e.message; }
});
