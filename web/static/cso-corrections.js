// The CSO's list of amended and withdrawn notes (issue #15): who corrected which note,
// why, and whether the correction has reached the record. Ids and reasons only, never
// note text or NHS numbers. Kept apart from cso.js; it fills #corrections-list when the
// CSO view is shown.
"use strict";

(function () {
  const kindName = { amend: "Amended", withdraw: "Withdrawn (entered in error)" };

  function make(tag, text) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function load() {
    const table = document.getElementById("corrections-list");
    const view = document.getElementById("view-cso");
    if (!table || !view || view.hidden) return;
    let rows;
    try {
      rows = await apiRequest("GET", "/api/safety/corrections");
    } catch (e) {
      if (e.status === 401 || e.status === 403) return;
      table.replaceChildren(make("caption", "Corrections unavailable: " + e.message));
      return;
    }
    const head = make("tr");
    for (const h of ["When", "What", "Session", "By", "Reason", "Record"]) head.append(make("th", h));
    const body = rows.map((c) => {
      const tr = make("tr");
      tr.dataset.kind = c.kind;
      tr.append(make("td", new Date(c.created_at).toLocaleString("en-GB")), make("td", kindName[c.kind] || c.kind),
        make("td", c.session_id), make("td", c.actor), make("td", c.reason),
        make("td", c.state + (c.delivery_reason ? " — " + c.delivery_reason : "")));
      return tr;
    });
    document.getElementById("corrections-count").textContent = `${rows.length} correction${rows.length === 1 ? "" : "s"}`;
    table.replaceChildren(head, ...body);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const view = document.getElementById("view-cso");
    if (view) new MutationObserver(load).observe(view, { attributes: true, attributeFilter: ["hidden"] });
    load();
  });
})();
