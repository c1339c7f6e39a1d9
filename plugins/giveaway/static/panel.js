// Giveaways panel of the console: list, create (+), start, remove from the event, redraw. The server is the
// truth: every action goes through the JSON API; bus records (LMS.bus) refresh the list and the entry counts.
(function () {
  "use strict";
  const root = document.querySelector("[data-giveaway-panel]");
  if (!root || !window.LMS) return;
  const api = root.dataset.api, eventId = Number(root.dataset.eventId);
  const $ = (s) => root.querySelector(s), e = LMS.escape;
  const mmss = (s) => `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  const dialog = $("[data-gv-dialog]"), form = $("[data-gv-form]");
  let giveaways = [];

  async function load() {
    try { giveaways = (await LMS.api("GET", `${api}/giveaways?event_id=${eventId}`)).giveaways; } catch (err) { LMS.toast(err.message, "error"); }
    render();
  }
  let timer = null;
  const loadSoon = () => { clearTimeout(timer); timer = setTimeout(load, 150); };

  function left(g) { return g.status === "running" ? Math.max(0, Math.round(g.ends_at - Date.now() / 1000)) : null; }
  function render() {
    $("[data-gv-list]").innerHTML = giveaways.map((g) => {
      const winners = g.draws.flatMap((d) => d.winners);
      const s = left(g);
      return `<li class="gv-item" data-id="${g.id}" data-status="${g.status}">
        <strong>${e(g.prize)}</strong>
        <span class="small muted">${g.winners} × ${g.items_per_winner} · ${e(g.how_to_enter)} · ${g.countdown_seconds / 60} min${g.practice ? " · practice" : ""}</span>
        <span class="small">${e(g.status)} · <b data-gv-entries>${g.entries}</b> entries${s !== null ? ` · <span data-gv-left data-ends="${g.ends_at}">${mmss(s)}</span> left` : ""}</span>
        ${winners.length ? `<span class="small" data-gv-winners>Winners: ${winners.map((w) => `${e(w.nickname)} (${w.status})`).join(", ")}</span>` : ""}
        <div class="gv-actions">
          ${g.status === "ready" ? `<button type="button" class="btn btn-sm btn-primary" data-act="start">Start</button>
            <button type="button" class="btn btn-sm btn-ghost btn-danger" data-act="detach" aria-label="Remove from this event">🗑</button>` : ""}
          ${g.status === "drawn" ? `<button type="button" class="btn btn-sm" data-act="redraw">Redraw unclaimed</button>` : ""}
          ${g.proof_url && g.status !== "ready" ? `<a class="btn btn-sm btn-ghost" href="${e(g.proof_url)}" target="_blank" rel="noopener">Proof</a>` : ""}
        </div></li>`;
    }).join("");
    $("[data-gv-empty]").hidden = giveaways.length > 0;
    const running = giveaways.find((g) => g.status === "running");
    $("[data-gv-summary]").textContent = running ? `Running: ${running.entries} entries` : `${giveaways.length} giveaway${giveaways.length === 1 ? "" : "s"}`;
  }
  setInterval(() => {
    for (const el of root.querySelectorAll("[data-gv-left]")) {
      const s = Math.max(0, Math.round(Number(el.dataset.ends) - Date.now() / 1000));
      el.textContent = mmss(s);
    }
  }, 1000);

  $("[data-gv-list]").addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-act]");
    if (!b) return;
    const id = Number(b.closest("[data-id]").dataset.id), act = b.dataset.act;
    try {
      if (act === "start") await LMS.api("POST", `${api}/giveaways/${id}/start`);
      if (act === "redraw") await LMS.api("POST", `${api}/giveaways/${id}/redraw`);
      if (act === "detach") await LMS.api("DELETE", `${api}/events/${eventId}/giveaways/${id}`);
    } catch (err) { LMS.toast(err.message, "error"); }
    load();
  });

  $("[data-gv-new]").addEventListener("click", async () => {
    $("[data-gv-error]").hidden = true;
    try {
      const { products } = await LMS.api("GET", "/api/products?limit=500");
      $("[data-gv-products]").innerHTML = products.filter((p) => !p.archived).map((p) =>
        `<option value="${p.id}">${e(p.title)} (${p.stock} in stock)</option>`).join("");
    } catch (err) { LMS.toast(err.message, "error"); }
    dialog.showModal();
  });
  $("[data-gv-cancel]").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form), n = (k) => Number(f.get(k));
    try {
      await LMS.api("POST", `${api}/giveaways`, {
        event_id: eventId, products: [{ id: n("product"), allocated: n("allocated") }], winners: n("winners"),
        items_per_winner: n("items_per_winner"), entry_mode: f.get("entry_mode"), keyword: f.get("keyword"),
        countdown_minutes: n("countdown_minutes"), accept_terms: f.get("accept_terms") === "on" });
      dialog.close();
      load();
    } catch (err) { const box = $("[data-gv-error]"); box.textContent = err.message; box.hidden = false; }
  });

  const onRecord = (rec) => {
    if (rec.name === "giveaway.entered") {
      const g = giveaways.find((x) => x.id === rec.data.giveaway_id);
      if (g) { g.entries = Math.max(g.entries, rec.data.entries); render(); }
    } else if ((rec.name || "").startsWith("giveaway.") || rec.name === "bus.reconnected") loadSoon();
  };
  LMS.bus.on("*", onRecord);  // the page's one socket (app.js)
  load();
})();
