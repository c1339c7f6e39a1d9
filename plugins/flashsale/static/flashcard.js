// The viewer page's flash card: countdown to the start, then the time left, "N of M sold", the deal price
// (the regular one struck through, the lowest of the previous 30 days) and Buy; "Sold out" once the
// allocation is gone. Data: GET /api/plugins/flashsale/e/{event}/sales; live updates: the page's bus
// (LMS.bus.on("flashsale.", ...)). Buying goes through the core order path with offer "flashsale:<id>".
(function () {
  "use strict";
  const card = document.querySelector("[data-flash-card]");
  if (!card) return;
  const eventId = card.dataset.eventId;
  const section = card.closest("section") || card;
  let sales = [], skew = 0, key = null, result = "";
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const money = (c, cur) => (window.LMS && LMS.money) ? LMS.money(c, cur) : (c / 100).toFixed(2) + " " + cur;
  const clock = (s) => { s = Math.max(0, Math.ceil(s)); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };

  async function load() {
    try {
      const res = await fetch(`/api/plugins/flashsale/e/${eventId}/sales`, { credentials: "same-origin" });
      const data = await res.json();
      sales = data.sales || [];
      skew = data.now * 1000 - Date.now();
    } catch (e) { sales = []; }
    render();
  }
  function render() {
    const now = (Date.now() + skew) / 1000;
    const sale = sales.find((s) => s.ends_at > now);
    section.hidden = card.hidden = !sale;
    if (!sale) { card.innerHTML = ""; return; }
    const started = now >= sale.starts_at;
    const soldOut = sale.left <= 0;
    const held = sale.waitlist && sale.waitlist.status === "offered" && sale.waitlist.offered_until > now;
    const waiting = sale.waitlist && sale.waitlist.status === "waiting";
    const pct = Math.round(100 * sale.sold / sale.allocated);
    const timer = started ? `Ends in <b data-fs-clock>${clock(sale.ends_at - now)}</b>` : `Flash sale in <b data-fs-clock>${clock(sale.starts_at - now)}</b>`;
    card.dataset.saleId = sale.id;
    card.dataset.state = soldOut ? "sold-out" : (started ? "live" : "countdown");
    card.innerHTML = `
      <div class="fs-card-head">${sale.practice ? '<span class="pill pill-practice">practice</span> ' : ""}⚡ <b>${esc(sale.title)}</b> <span class="fs-timer">${timer}</span></div>
      <div class="fs-prices"><span class="fs-deal" data-fs-deal>${money(sale.deal_price_cents, sale.currency)}</span>
        <s class="fs-regular">${money(sale.regular_price_cents, sale.currency)}</s>
        <small class="muted">Lowest price of the previous 30 days: ${money(sale.lowest_30d_cents, sale.currency)}</small></div>
      <div class="fs-bar" role="progressbar" aria-valuemin="0" aria-valuemax="${sale.allocated}" aria-valuenow="${sale.sold}"><span style="width:${pct}%"></span></div>
      <div class="fs-sold" data-fs-sold>${sale.sold} of ${sale.allocated} sold${sale.per_buyer_limit ? ` · at most ${sale.per_buyer_limit} per buyer` : ""}</div>
      ${held ? `<div class="fs-held" data-fs-held>A unit is held for you until ${LMS.time(sale.waitlist.offered_until, "seconds")}</div>` : ""}
      ${soldOut && !held ? `<div class="fs-soldout" data-fs-soldout>Sold out</div>${waiting ? '<div class="small" data-fs-waiting>You are on the waitlist</div>'
          : '<button type="button" class="btn btn-sm" data-fs-wait>Join the waitlist</button>'}`
        : `<button type="button" class="btn btn-primary" data-fs-buy ${started ? "" : "disabled"}>Buy at ${money(sale.deal_price_cents, sale.currency)}</button>`}
      <div class="fs-result small" data-fs-result aria-live="polite">${esc(result)}</div>`;
  }
  card.addEventListener("click", async (ev) => {
    if (ev.target.closest("[data-fs-wait]")) {
      try { await LMS.api("POST", `/api/plugins/flashsale/e/${eventId}/sales/${card.dataset.saleId}/waitlist`); result = ""; }
      catch (e) { result = e.message; }
      load();
      return;
    }
    if (!ev.target.closest("[data-fs-buy]")) return;
    const sale = sales.find((s) => String(s.id) === card.dataset.saleId);
    if (!sale) return;
    key = key || (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
    try {
      const data = await LMS.api("POST", `/api/e/${eventId}/orders`, { product_id: sale.product_id, quantity: 1, offer: `flashsale:${sale.id}` },
                                 { headers: { "Idempotency-Key": key } });
      key = null;
      result = `Order placed at ${money(data.order.unit_price_cents, data.order.currency)}. Thank you!`;
    } catch (e) {
      key = null;
      result = e.message;
    }
    render();
  });
  LMS.bus.on("flashsale.", (rec) => {  // the page's one socket (app.js)
    if (rec.name === "flashsale.progress") {
      const s = sales.find((x) => x.id === rec.data.sale_id);
      if (s) { s.left += s.sold - rec.data.sold; s.sold = rec.data.sold; render(); return; }
    }
    load();
  });
  LMS.bus.on("bus.reconnected", load);  // records may have been missed: catch up
  setInterval(() => { if (card.querySelector("[data-fs-clock]")) render(); }, 1000);
  load();
})();
