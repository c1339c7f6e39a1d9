// Shop links (the owner's settings page): save or remove a product's shop id through the plugin's JSON API
// (PUT/DELETE /api/plugins/shoplink/products/<id>); the server's reason is shown when it refuses.
(function () {
  "use strict";
  const LMS = window.LMS;
  const root = document.getElementById("shoplink-settings");
  if (!root) return;
  const err = document.getElementById("shoplink-error");
  const show = (msg) => { err.textContent = msg || ""; err.hidden = !msg; };
  const API = "/api/plugins/shoplink/products/";

  function redraw(row, mapping) {
    row.querySelector("[data-example]").textContent = mapping ? mapping.example_url || "" : "the next checkout (pay later)";
    row.querySelector("input[name=shop_id]").value = mapping ? mapping.shop_id : "";
    const cell = row.lastElementChild;
    cell.innerHTML = mapping ? `<button type="button" class="btn btn-sm btn-ghost" data-unmap="${row.dataset.product}">Remove</button>` : "";
    row.dataset.saved = mapping ? mapping.shop_id : "";
  }

  root.addEventListener("submit", async (ev) => {
    const form = ev.target.closest(".shoplink-form");
    if (!form) return;
    ev.preventDefault();
    const row = form.closest("tr");
    const value = form.elements.shop_id.value.trim();
    show("");
    try {
      if (!value) { await LMS.api("DELETE", API + form.dataset.product); redraw(row, null); return; }
      const res = await LMS.api("PUT", API + form.dataset.product, { shop_id: value });
      redraw(row, res.product);
    } catch (e) { show(e.message); }
  });
  root.addEventListener("click", async (ev) => {
    const b = ev.target.closest("[data-unmap]");
    if (!b) return;
    show("");
    try { await LMS.api("DELETE", API + b.dataset.unmap); redraw(b.closest("tr"), null); } catch (e) { show(e.message); }
  });
})();
