// Catalog page: create / edit products (with image upload), archive, CSV import with its per-row report.
(function () {
  "use strict";
  const dlg = document.getElementById("product-dialog");
  if (!dlg) return;
  const form = document.getElementById("product-form");
  const errorBox = document.getElementById("product-error");
  let editing = null;

  function openEditor(product) {
    editing = product;
    form.reset();
    errorBox.hidden = true;
    document.getElementById("product-dialog-title").textContent = product ? "Edit product" : "New product";
    if (product) {
      form.title.value = product.title;
      form.description.value = product.description || "";
      form.script.value = product.script || "";
      form.price.value = (product.price_cents / 100).toFixed(2);
      form.currency.value = product.currency;
      form.stock.value = product.stock;
      form.sku.value = product.sku || "";
    }
    dlg.showModal();
  }
  document.getElementById("new-product").addEventListener("click", (ev) => { ev.stopPropagation(); openEditor(null); }, true);
  document.querySelectorAll(".edit-product").forEach((b) =>
    b.addEventListener("click", () => openEditor(JSON.parse(b.closest("[data-product]").dataset.product))));

  document.getElementById("product-save").addEventListener("click", async (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    const body = { title: form.title.value, description: form.description.value, script: form.script.value, price: form.price.value.trim(),
                   currency: form.currency.value.trim().toUpperCase(), stock: parseInt(form.stock.value, 10), sku: form.sku.value.trim() || null };
    try {
      const res = editing ? await LMS.api("PATCH", `/api/products/${editing.id}`, body) : await LMS.api("POST", "/api/products", body);
      const file = form.image.files[0];
      if (file) {
        const fd = new FormData();
        fd.append("image", file);
        await LMS.api("POST", `/api/products/${res.product.id}/image`, fd);
      }
      location.reload();
    } catch (err) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    }
  });

  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", async () => {
    const p = JSON.parse(b.closest("[data-product]").dataset.product);
    try { await LMS.api("POST", `/api/products/${p.id}/${b.dataset.action}`); location.reload(); }
    catch (err) { LMS.toast(err.message, "error"); }
  }));

  const importForm = document.getElementById("import-form");
  document.getElementById("import-go").addEventListener("click", async (ev) => {
    ev.preventDefault();
    const file = importForm.file.files[0];
    const box = document.getElementById("import-error"), table = document.getElementById("import-report");
    box.hidden = true; table.hidden = true;
    if (!file) { box.textContent = "Choose a CSV file first."; box.hidden = false; return; }
    const fd = new FormData();
    fd.append("file", file);
    try {
      const res = await LMS.api("POST", "/api/products/import", fd);
      LMS.toast(`Imported ${res.imported} products`);
      setTimeout(() => location.reload(), 600);
    } catch (err) {
      box.textContent = err.message; box.hidden = false;
      if (err.details) {
        table.querySelector("tbody").innerHTML = err.details.map((d) =>
          `<tr><td>${d.row}</td><td>${LMS.escape(d.column || "")}</td><td>${LMS.escape(d.reason)}</td></tr>`).join("");
        table.hidden = false;
      }
    }
  });
})();
