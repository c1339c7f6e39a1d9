// The public replay page (/e/<event>/replay/<session>): the published session's video, its comments appearing as they
// came (read-only), the product pinned at that moment, and the shopping bag with Buy while stock lasts (buy.js, the
// live page's order path; the order is labelled "replay"). Stock follows the event's viewer socket (LMS.bus).
import { setupBuying } from "./buy.js";
import { asComment, createReplayer, reached, timeBar } from "./replayer.js";

(function () {
  "use strict";
  const LMS = window.LMS;
  const esc = LMS.escape;
  const $ = (sel) => document.querySelector(sel);
  const data = JSON.parse($("#replay-data").textContent);
  const eventId = data.event.id;
  const bag = data.bag;
  let items = [], pinned = null, shown = -1, bar = null;

  function stockText(p) {
    if (p.stock <= 0) return '<span class="stock out">Sold out</span>';
    if (p.stock <= 5) return `<span class="stock low">Only ${p.stock} left</span>`;
    return `<span class="stock">${p.stock} in stock</span>`;
  }
  function buyButton(p, cls) {
    return `<button type="button" class="btn ${cls} btn-primary" data-buy="${p.id}" ${p.stock <= 0 ? "disabled" : ""}>${p.stock <= 0 ? "Sold out" : "Buy"}</button>`;
  }
  function thumb(p) { return p.image_url ? `<img src="${esc(p.image_url)}" alt="">` : '<span class="thumb-empty">No photo</span>'; }
  function find(id) { return bag.find((p) => p.id === id) || null; }

  function renderPinned() {
    const box = $("#pinned-product");
    const p = pinned && (find(pinned.id) || null);  // only a product still in the bag can be bought
    if (!p) { box.hidden = true; box.innerHTML = ""; delete box.dataset.product; return; }
    box.hidden = false;
    box.dataset.product = p.id;
    box.innerHTML = `${thumb(p)}<div class="info"><div class="label">Pinned by the host at this moment</div><h3>${esc(p.title)}</h3>` +
      `<span class="price">${LMS.money(p.price_cents, p.currency)}</span> · ${stockText(p)}</div>${buyButton(p, "btn-lg")}`;
  }
  function renderBag() {
    $("#bag-count").textContent = bag.length ? `${bag.length} products` : "";
    $("#bag").innerHTML = bag.length ? bag.map((p) =>
      `<li class="list-row" data-product="${p.id}"><span class="bag-item"><span class="bag-thumb">${p.image_url ? `<img class="bag-thumb" src="${esc(p.image_url)}" alt="">` : "—"}</span>` +
      `<span class="bag-meta"><b>${esc(p.title)}</b><small><span class="price">${LMS.money(p.price_cents, p.currency)}</span> · ${stockText(p)}</small></span></span>${buyButton(p, "btn-sm")}</li>`).join("")
      : '<li class="muted small">No products in this event\'s bag.</li>';
    renderPinned();
  }

  function render(t) {
    if (bar) bar.update(t);
    const now = reached(items, t);
    if (now.length === shown) return;
    shown = now.length;
    let pin = null;
    now.forEach((it) => {
      if (it.name === "product.pinned" && it.data.product) pin = it.data.product;
      if (it.name === "product.unpinned") pin = null;
    });
    if ((pin && pin.id) !== (pinned && pinned.id)) { pinned = pin; renderPinned(); }
    LMS.comments.render($("#comments"), now.filter((it) => it.kind === "comment").map(asComment), { time: false, tags: false });
  }

  setupBuying({
    url: `/api/e/${eventId}/replay/${data.session_id}/orders`, find, maxQuantity: () => data.max_quantity,
    onOrder: (o) => { const p = find(o.product_id); if (p && typeof o.stock === "number") p.stock = o.stock; renderBag(); },
  });

  LMS.bus.on("*", (rec) => {  // stock changes of the bag (live orders elsewhere, other replay buyers)
    const d = rec.data || {};
    if (rec.name !== "product.stock" && rec.name !== "product.updated") return;
    const id = d.product_id || (d.product && d.product.id);
    const p = find(id);
    if (!p) return;
    p.stock = d.product ? d.product.stock : d.stock;
    if (d.product) Object.assign(p, { title: d.product.title, price_cents: d.product.price_cents });
    renderBag();
  });

  async function load() {
    renderBag();
    const tl = await LMS.api("GET", `/api/sessions/${data.session_id}/timeline?view=public`);
    items = tl.items;
    const parts = tl.parts.filter((p) => p.url);
    const pins = items.filter((it) => it.name === "product.pinned" && it.data.product)
      .map((it) => ({ offset: it.offset, title: "Pinned: " + it.data.product.title, cls: "rp-pin" }));
    bar = timeBar($("#replay-bar"), tl.session.duration, pins, (t) => { player.seek(t); render(t); });
    const player = createReplayer($("#replay-video"), parts, {
      onTime: render,
      onEmpty: () => { $("#player-overlay").hidden = false; $("#overlay-title").textContent = "The video of this LIVE is not available"; },
    });
    render(0);
    window.LMSReplay = { seek: (t) => { player.seek(t); render(t); }, time: player.time, items: () => items };
  }
  load().catch((e) => LMS.toast("The replay could not be loaded: " + e.message, "error"));
})();
