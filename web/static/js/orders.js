// The Orders page: change one order's status (its buttons), or several at once (checkboxes + the bulk bar).
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);
  const picks = () => Array.from(document.querySelectorAll(".order-pick"));
  const err = $("#orders-error");
  function showError(e) {
    if (!err) { alert(e.message); return; }
    err.textContent = e.message; err.hidden = false;
  }
  async function change(ids, status, note) {
    if ((status === "cancelled" || status === "refunded") && !confirm(`Set ${ids.length} order(s) to ${status}?`)) return;
    try {
      const url = ids.length === 1 ? `/api/orders/${ids[0]}/status` : "/api/orders/status";
      const body = ids.length === 1 ? { status, note } : { order_ids: ids, status, note };
      await LMS.api("POST", url, body);
      location.reload();
    } catch (e) { showError(e); }
  }
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-set-status]");
    if (!b) return;
    const row = b.closest("[data-order-id]");
    b.disabled = true;
    change([parseInt(row.dataset.orderId, 10)], b.dataset.setStatus, null).finally(() => { b.disabled = false; });
  });
  function count() {
    const n = picks().filter((p) => p.checked).length;
    if ($("#orders-selected")) $("#orders-selected").textContent = String(n);
    if ($("#bulk-apply")) $("#bulk-apply").disabled = n === 0;
  }
  document.addEventListener("change", (ev) => {
    if (ev.target.id === "orders-all") picks().forEach((p) => { p.checked = ev.target.checked; });
    if (ev.target.id === "orders-all" || ev.target.classList.contains("order-pick")) count();
  });
  const apply = $("#bulk-apply");
  if (apply) apply.addEventListener("click", () => {
    const ids = picks().filter((p) => p.checked).map((p) => parseInt(p.value, 10));
    change(ids, $("#bulk-status").value, $("#bulk-note").value.trim() || null);
  });
})();
