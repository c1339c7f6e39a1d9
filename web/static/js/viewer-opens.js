// Product-card opens for the LIVE Board and Recap (lmserver/analytics.py): when the viewer opens the pinned
// product's card or a bag item (a click or tap on it, Buy included), tell the server, at most once a minute per
// product. Fire and forget: analytics never get in the way of watching or buying.
(function () {
  "use strict";
  const data = document.getElementById("viewer-data");
  if (!data) return;
  const eventId = JSON.parse(data.textContent).state.event.id;
  const sent = new Map(); // product id -> time of the last open sent
  document.addEventListener("click", (ev) => {
    const el = ev.target.closest("#pinned-product[data-product], #bag [data-product]");
    if (!el) return;
    const id = parseInt(el.dataset.product, 10);
    const now = Date.now();
    if (!id || now - (sent.get(id) || 0) < 60000) return;
    sent.set(id, now);
    window.LMS.api("POST", `/api/e/${eventId}/opens`, { product_id: id }).catch(() => {});
  }, true);
})();
