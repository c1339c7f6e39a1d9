// The console's Flash sales panel: add a sale (the form), then Launch / Duplicate / Delete / End, with the
// live figures of each sale (units sold, buyers, GMV, time to sell out). Data: the plugin's JSON API;
// live updates: the console's bus (LMS.bus.on("flashsale.", ...)).
(function () {
  "use strict";
  const panel = document.querySelector("[data-flashsale-panel]");
  if (!panel) return;
  const eventId = panel.dataset.eventId;
  const api = "/api/plugins/flashsale";
  const list = panel.querySelector("[data-fs-list]");
  const form = panel.querySelector("[data-fs-form]");
  const errorBox = panel.querySelector("[data-fs-error]");
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const money = (c, cur) => LMS.money(c, cur);

  function item(s) {
    const f = s.figures || {};
    const actions = [];
    if (s.status === "draft") actions.push(["launch", "Launch", "btn-primary"], ["delete", "Delete", ""]);
    if (s.status === "countdown" || s.status === "live") actions.push(["end", "End now", "btn-danger"]);
    actions.push(["duplicate", "Duplicate", ""]);
    const when = s.status === "countdown" ? " · starts soon" : "";
    return `<li data-sale-id="${s.id}" data-status="${s.status}">
      <div><b>${esc(s.title)}</b> ${s.practice ? '<span class="pill pill-practice">practice</span>' : ""} <span class="pill" data-fs-status>${s.status}${when}</span></div>
      <div class="small">${money(s.deal_price_cents, s.currency)} <s>${money(s.regular_price_cents, s.currency)}</s> ·
        ${s.allocated} allocated${s.per_buyer_limit ? ` · ${s.per_buyer_limit} per buyer` : ""} · ${s.countdown_seconds} s countdown · ${s.duration_minutes} min</div>
      <div class="fs-figures" data-fs-figures><span data-fs-sold>${f.units_sold} of ${s.allocated} sold</span> · ${f.buyers} buyers ·
        GMV ${money(f.gmv_cents, s.currency)}${f.seconds_to_sell_out != null ? ` · sold out in ${f.seconds_to_sell_out} s` : ""}${s.end_reason ? ` · ended: ${esc(s.end_reason)}` : ""}</div>
      <div class="fs-actions">${actions.map(([a, label, cls]) => `<button type="button" class="btn btn-sm ${cls}" data-fs-action="${a}">${label}</button>`).join("")}</div>
    </li>`;
  }
  async function load() {
    try {
      const data = await LMS.api("GET", `${api}/events/${eventId}/sales`);
      list.innerHTML = data.sales.map(item).join("") || '<li class="muted small">No flash sale yet.</li>';
    } catch (e) { /* the next bus record tries again */ }
  }
  function showError(msg) { errorBox.textContent = msg || ""; errorBox.hidden = !msg; }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const body = { product_id: parseInt(fd.get("product_id"), 10) };
    for (const k of ["allocated", "deal_price_cents", "per_buyer_limit", "countdown_seconds", "duration_minutes"]) {
      const v = String(fd.get(k) || "").trim();
      if (v !== "") body[k] = parseInt(v, 10);
    }
    try { await LMS.api("POST", `${api}/events/${eventId}/sales`, body); showError(""); load(); } catch (e) { showError(e.message); }
  });
  list.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-fs-action]");
    if (!btn) return;
    const id = btn.closest("[data-sale-id]").dataset.saleId;
    const action = btn.dataset.fsAction;
    try {
      if (action === "delete") await LMS.api("DELETE", `${api}/sales/${id}`);
      else await LMS.api("POST", `${api}/sales/${id}/${action}`);
      showError("");
    } catch (e) { showError(e.message); }
    load();
  });
  let pending = null;
  function loadSoon() {
    clearTimeout(pending);
    pending = setTimeout(load, 150);  // a storm of progress records reloads once
  }
  LMS.bus.on("flashsale.", loadSoon);  // the page's one socket (app.js)
  LMS.bus.on("bus.reconnected", loadSoon);
  load();
})();
