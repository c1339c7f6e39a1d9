// Buying from a page's shopping bag: a [data-buy="<product id>"] button opens #buy-dialog (the viewer page's
// markup), the order is posted with one Idempotency-Key per purchase (a retry after a lost answer gets the first
// order back instead of buying twice), and the answer (or the server's reason) is shown in the dialog.

/** A random Idempotency-Key (a UUID where the browser has one). */
export function newIdempotencyKey() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (window.crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Wire the page's Buy buttons and #buy-dialog.
 * opts.url: the orders endpoint (POST {product_id, quantity}); opts.find(id): the product ({id, title, price_cents,
 * currency, stock}) or null; opts.maxQuantity(): the per-order limit; opts.onOrder(order): after a placed order.
 */
export function setupBuying(opts) {
  const LMS = window.LMS;
  const $ = (sel) => document.querySelector(sel);
  const dlg = $("#buy-dialog");
  let buying = null;
  let purchase = null;  // {key, product_id, quantity} of the Buy click being confirmed

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-buy]");
    if (!b) return;
    purchase = null;
    buying = opts.find(parseInt(b.dataset.buy, 10));
    if (!buying) return;
    const max = Math.max(1, Math.min(buying.stock, opts.maxQuantity()));
    $("#buy-title").textContent = buying.title;
    $("#buy-price").textContent = LMS.money(buying.price_cents, buying.currency) + " each";
    const q = $("#buy-qty");
    q.max = String(max); q.value = "1";
    $("#buy-max").textContent = `at most ${max}`;
    $("#buy-result").hidden = true;
    $("#buy-confirm").hidden = false;
    dlg.showModal();
  });
  $("#buy-cancel").addEventListener("click", () => dlg.close());

  async function postOrder(body) {
    if (!purchase || purchase.product_id !== body.product_id || purchase.quantity !== body.quantity) {
      purchase = Object.assign({ key: newIdempotencyKey() }, body);
    }
    const headers = { headers: { "Idempotency-Key": purchase.key } };
    for (let attempt = 1; ; attempt++) {
      try {
        return await LMS.api("POST", opts.url, body, headers);
      } catch (e) {
        // no answer (network) or a server error: the same key again, a few times; a 4xx is the answer
        if (attempt >= 3 || (e.status && e.status < 500)) throw e;
        await new Promise((r) => setTimeout(r, 700 * attempt));
      }
    }
  }
  $("#buy-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#buy-result");
    const btn = $("#buy-confirm");
    btn.disabled = true;
    try {
      const res = await postOrder({ product_id: buying.id, quantity: parseInt($("#buy-qty").value, 10) });
      const o = res.order;
      out.className = "buy-result alert alert-ok";
      out.textContent = `Order placed: ${o.quantity} × ${o.product_title}, ${LMS.money(o.amount_cents, o.currency)}. Thank you!`;
      btn.hidden = true;
      if (opts.onOrder) opts.onOrder(o);
      if (o.redirect_url) location.href = o.redirect_url;
    } catch (e) {
      out.className = "buy-result alert alert-error";
      out.textContent = /sold out/i.test(e.message) ? "Sold out: this product has no stock left." : e.message;
    } finally {
      out.hidden = false;
      btn.disabled = false;
    }
  });
}
