// Room agents on the review page (docs/agent-protocol.md): whether a room's agent box is
// online, what its button asked for, and, for admins, enrolment codes and revocation.
// Loaded after app.js and uses its helpers ($, el, api, status, S).
"use strict";

// agentStatusLine is the room list's line for an agent room, refreshed while the list shows.
function agentStatusLine(room) {
  const p = el("p", { class: "agent-status", "data-agent-room": String(room.id) }, "Room agent: checking…");
  refreshAgentLine(p, room.id);
  return p;
}

async function refreshAgentLine(p, roomId) {
  let st;
  try { st = await api("GET", `/api/rooms/${roomId}/agent`); } catch (_) { p.textContent = "Room agent: status unavailable"; return; }
  p.replaceChildren(st.online ? "Room agent: online" : "Room agent: offline — check that the box in the room is powered and on the network");
  p.classList.toggle("bad", !st.online);
  if (st.start_requested_at) {
    const at = new Date(st.start_requested_at).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
    p.append(el("strong", { class: "agent-request", role: "alert" }, ` Start requested at the room (${at}) — confirm consent to start.`));
  }
}

// agentSessionStatus shows, on an agent room's session, whether its agent is online.
async function agentSessionStatus(sess) {
  const p = $("agent-state");
  if (!sess || sess.room_source !== "agent") { p.hidden = true; return; }
  p.hidden = false;
  let st;
  try { st = await api("GET", `/api/rooms/${sess.room_id}/agent`); } catch (_) { return; }
  p.textContent = st.online ? "Room agent: online" : "Room agent: offline — the box in the room keeps what it captures for a while and resends it when it is back";
  p.classList.toggle("bad", !st.online);
}

// agentMessage shows a live "agent" message (the room's button) on the open session.
function agentMessage(text) {
  $("agent-message").textContent = text;
  status(text);
}

// While the rooms or an agent session is on screen, the agents' states are refreshed.
setInterval(() => {
  if (!me) return;
  if (!$("view-rooms").hidden) {
    for (const p of document.querySelectorAll("[data-agent-room]")) refreshAgentLine(p, Number(p.dataset.agentRoom));
  } else if (!$("view-session").hidden && S && S.session) {
    agentSessionStatus(S.session);
  }
}, 5000);

// ---------- admin: enrolment codes, agents, revocation ----------

async function loadAgentsAdmin(rooms) {
  const codes = $("agent-codes");
  codes.replaceChildren(...rooms.filter((r) => r.source_kind === "agent").map((r) => {
    const out = el("output", { class: "agent-code", id: `agent-code-${r.id}` });
    const b = el("button", { type: "button", "data-code-room": String(r.id) }, `Enrolment code for ${r.name}`);
    b.addEventListener("click", async () => {
      out.textContent = "";
      try {
        const c = await api("POST", `/api/rooms/${r.id}/agent-code`, {});
        out.replaceChildren(el("code", {}, c.code), ` — works once, until ${new Date(c.expires_at).toLocaleTimeString("en-GB")}. On the box: `,
          el("code", {}, `scribe agent enrol ${location.origin} ${c.code}`));
      } catch (e) { out.textContent = e.message; }
    });
    return el("li", {}, b, " ", out);
  }));
  if (!codes.children.length) codes.append(el("li", {}, "No agent rooms: add a room with the audio source “Room agent” first."));
  let agents = [];
  try { agents = await api("GET", "/api/agents"); } catch (e) { $("agent-error").textContent = e.message; return; }
  const list = $("agent-list");
  list.replaceChildren(...agents.map((a) => {
    const state = a.revoked_at ? `revoked ${new Date(a.revoked_at).toLocaleString("en-GB")}` : a.online ? "online" : "offline";
    const li = el("li", { "data-agent": String(a.id) },
      `${a.name || "agent " + a.id} — ${a.room_name} — ${state}` +
      (a.online ? ` · frames ${a.frames_accepted}, duplicates dropped ${a.frames_duplicate}, missing ${a.frames_missing}` : "") +
      (a.last_seen_at ? ` · last connected ${new Date(a.last_seen_at).toLocaleString("en-GB")}` : ""));
    if (!a.revoked_at) {
      const b = el("button", { type: "button", class: "danger" }, "Revoke");
      b.addEventListener("click", async () => {
        if (!confirm(`Revoke ${a.name || "agent " + a.id} of ${a.room_name}? It is cut off at once and needs a new code to come back.`)) return;
        try { await api("POST", `/api/agents/${a.id}/revoke`, {}); status("Agent revoked."); loadAgentsAdmin(rooms); } catch (e) { $("agent-error").textContent = e.message; }
      });
      li.append(" ", b);
    }
    return li;
  }));
  if (!agents.length) list.append(el("li", {}, "No agents enrolled yet."));
}
