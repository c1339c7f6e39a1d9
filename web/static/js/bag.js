// The shopping-bag widget (web/templates/events/_bag.html): list, search-to-add, drag-and-drop reorder,
// typed positions, move to top, remove, search in the bag, refresh from the catalog, Pin while live.
// Every change goes through the JSON API; the bus (bag.changed, product.pinned/unpinned, product.updated,
// stream.*) keeps every open widget in sync through the page's LMS.bus. Needs only app.js (LMS.api, LMS.bus, ...).
(function () {
  "use strict";
  if (window.LMSBag) { window.LMSBag.initAll(); return; }
  const LMS = window.LMS;
  const esc = (s) => LMS.escape(s);
  const RELOAD_ON = new Set(["bag.changed", "product.pinned", "product.unpinned", "stream.started", "stream.ended", "event.updated"]);
  // bus.reconnected: the page's socket came back (records may have been missed): reload too

  class BagWidget {
    constructor(root) {
      this.root = root;
      this.eventId = Number(root.dataset.eventId);
      this.canEdit = root.dataset.canEdit === "1";
      this.canPin = root.dataset.canPin === "1";
      this.state = { products: [], count: 0, limit: 100, pinned_product_id: null, live: false };
      this.filter = "";
      this.list = root.querySelector("[data-bag-list]");
      this.countEl = root.querySelector("[data-bag-count]");
      this.errorEl = root.querySelector("[data-bag-error]");
      this.emptyEl = root.querySelector("[data-bag-empty]");
      this.search = root.querySelector("[data-bag-search]");
      this.results = root.querySelector("[data-bag-results]");
      this.dragId = null;
      this.renderDeferred = false;
      this.reloadTimer = null;
      this.bind();
      this.load();
      LMS.bus.on("*", (rec) => this.onBus(rec));
      // the one public stock figure (every order, release and restock): applied in place, no reload
      LMS.bus.on("product.stock", (rec) => this.setStock(rec.data.product_id, rec.data.stock));
    }

    setStock(id, stock) {
      const p = this.state.products.find((x) => x.id === id);
      if (!p || typeof stock !== "number" || p.stock === stock) return;
      p.stock = stock;
      this.render();
    }

    url(path) { return `/api/events/${this.eventId}/bag${path || ""}`; }

    async call(method, url, body) {
      this.showError("");
      try {
        const data = await LMS.api(method, url, body);
        if (data && Array.isArray(data.products)) this.apply(data);
        return data;
      } catch (err) {
        this.showError(err.message);
        LMS.toast(err.message, "error");
        return null;
      }
    }

    async load() {
      try { this.apply(await LMS.api("GET", this.url())); } catch (err) { this.showError(err.message); }
    }

    apply(data) {
      this.state = data;
      this.render();
      this.root.dispatchEvent(new CustomEvent("bag:changed", { detail: data, bubbles: true }));
    }

    showError(message) {
      if (!this.errorEl) return;
      this.errorEl.textContent = message || "";
      this.errorEl.hidden = !message;
    }

    visible() {
      const q = this.filter.trim().toLowerCase();
      if (!q) return this.state.products;
      return this.state.products.filter((p) => p.title.toLowerCase().includes(q) || (p.sku || "").toLowerCase().includes(q));
    }

    render() {
      // A bus update (another console, or our own change echoed back) must not rebuild the rows under a
      // drag in progress: that would cancel the person's drag. Render once the drag ends.
      if (this.dragId !== null) { this.renderDeferred = true; return; }
      // Nor under a position being typed: the typed number would be lost. Render once the field is left.
      const typing = document.activeElement;
      if (typing && typing.matches && typing.matches("[data-pos]") && this.list.contains(typing)) {
        if (!this.renderDeferred) {
          this.renderDeferred = true;
          typing.addEventListener("blur", () => setTimeout(() => { if (this.renderDeferred) { this.renderDeferred = false; this.render(); } }), { once: true });
        }
        return;
      }
      const s = this.state;
      this.countEl.textContent = `${s.count} / ${s.limit}`;
      const items = this.visible();
      const dnd = this.canEdit && !this.filter.trim();
      const pinAllowed = this.canPin && s.live;
      this.list.innerHTML = items.map((p) => {
        const pinned = s.pinned_product_id === p.id;
        const stock = p.stock === 0 ? '<span class="out">Sold out</span>' : (p.stock <= 5 ? `<span class="low">${p.stock} left</span>` : `${p.stock} in stock`);
        const img = p.image_url ? `<img src="${esc(p.image_url)}" alt="" loading="lazy">` : '<span class="noimg"></span>';
        const pos = this.canEdit
          ? `<input class="pos" type="number" min="1" max="${s.count}" value="${p.position}" aria-label="Position of ${esc(p.title)}" data-pos>`
          : `<span class="pos-static">${p.position}</span>`;
        const acts = [];
        if (pinAllowed) acts.push(`<button type="button" class="btn btn-sm btn-pin ${pinned ? "is-pinned" : ""}" data-pin>${pinned ? "Unpin" : "Pin"}</button>`);
        if (this.canEdit) {
          acts.push(`<button type="button" class="btn btn-sm btn-icon ${p.script ? "has-script" : ""}" data-script title="${p.script ? "Edit the talking points (script)" : "Write talking points (script)"}" aria-label="Script of ${esc(p.title)}">✎</button>`);
          acts.push(`<button type="button" class="btn btn-sm btn-icon" data-top title="Move to the top" ${p.position === 1 ? "disabled" : ""}>⤒</button>`);
          acts.push(`<button type="button" class="btn btn-sm btn-icon btn-danger" data-remove title="Remove from the bag" aria-label="Remove ${esc(p.title)}">✕</button>`);
        }
        return `<li class="bag-item ${this.canEdit ? "" : "readonly"} ${pinned ? "pinned" : ""}" data-id="${p.id}" ${dnd ? 'draggable="true"' : ""}>
          ${this.canEdit ? `<span class="handle" title="Drag to reorder" aria-hidden="true">⋮⋮</span>` : ""}
          ${pos}${img}
          <div style="min-width:0"><div class="title" title="${esc(p.title)}">${esc(p.title)}</div>
            <div class="sub">${pinned ? '<span class="pill pill-live">Pinned</span>' : ""}<span class="price">${esc(LMS.money(p.price_cents, p.currency))}</span><span>${stock}</span>${p.sku ? `<span>SKU ${esc(p.sku)}</span>` : ""}${p.archived ? "<span>archived</span>" : ""}</div></div>
          <div class="acts">${acts.join("")}</div></li>`;
      }).join("");
      const empty = s.products.length === 0;
      this.emptyEl.hidden = !empty;
      if (!empty && items.length === 0) this.list.innerHTML = `<li class="bag-empty">No product of the bag matches “${esc(this.filter)}”.</li>`;
    }

    bind() {
      const filter = this.root.querySelector("[data-bag-filter]");
      filter.addEventListener("input", () => { this.filter = filter.value; this.render(); });
      this.root.querySelector("[data-bag-refresh]").addEventListener("click", async () => {
        if (await this.call("POST", this.url("/refresh"))) LMS.toast("Bag refreshed from the catalog");
      });
      this.list.addEventListener("click", (ev) => this.onClick(ev));
      this.list.addEventListener("change", (ev) => {
        const input = ev.target.closest("[data-pos]");
        if (input) this.move(Number(input.closest("[data-id]").dataset.id), Number(input.value));
      });
      this.list.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && ev.target.matches("[data-pos]")) { ev.preventDefault(); ev.target.blur(); }
      });
      if (this.canEdit) this.bindDnd();
      if (this.search) this.bindSearch();
    }

    async onClick(ev) {
      const row = ev.target.closest("[data-id]");
      if (!row) return;
      const id = Number(row.dataset.id);
      if (ev.target.closest("[data-script]")) this.editScript(id);
      else if (ev.target.closest("[data-top]")) await this.move(id, 1);
      else if (ev.target.closest("[data-remove]")) {
        const p = this.state.products.find((x) => x.id === id);
        if (await this.call("DELETE", this.url(`/${id}`))) LMS.toast(`Removed “${p ? p.title : id}”`);
      } else if (ev.target.closest("[data-pin]")) {
        if (this.state.pinned_product_id === id) await this.call("DELETE", `/api/events/${this.eventId}/pin`);
        else await this.call("POST", `/api/events/${this.eventId}/pin`, { product_id: id });
      }
    }

    // the product's talking points (staff-only; the console shows them while it is pinned)
    editScript(id) {
      const p = this.state.products.find((x) => x.id === id);
      if (!p) return;
      let dlg = this.root.querySelector("dialog[data-script-dialog]");
      if (!dlg) {
        dlg = document.createElement("dialog");
        dlg.className = "dialog script-dialog";
        dlg.dataset.scriptDialog = "";
        dlg.innerHTML = `<form method="dialog"><h2 data-script-title></h2>
          <label class="small muted" for="script-text-${this.eventId}">Talking points: shown to staff only, in the console while the product is pinned</label>
          <textarea id="script-text-${this.eventId}" name="script" rows="10" maxlength="${Number(this.root.dataset.scriptMax) || 4000}"></textarea>
          <p class="small muted" data-script-count></p>
          <div class="row end"><button class="btn" value="cancel" formnovalidate>Cancel</button><button class="btn btn-primary" value="save" data-script-save>Save script</button></div></form>`;
        this.root.appendChild(dlg);
        const ta = dlg.querySelector("textarea");
        const count = () => (dlg.querySelector("[data-script-count]").textContent = `${ta.value.length} / ${ta.maxLength} characters`);
        ta.addEventListener("input", count);
        dlg.querySelector("[data-script-save]").addEventListener("click", async (ev) => {
          ev.preventDefault();
          try {
            await LMS.api("PATCH", `/api/products/${dlg.dataset.productId}`, { script: ta.value });
            LMS.toast("Script saved");
            dlg.close();
            this.load();
          } catch (err) { LMS.toast(err.message, "error"); }
        });
        dlg.count = count;
      }
      dlg.dataset.productId = String(id);
      dlg.querySelector("[data-script-title]").textContent = `Script · ${p.title}`;
      dlg.querySelector("textarea").value = p.script || "";
      dlg.count();
      dlg.showModal();
    }

    async move(id, position) {
      const p = this.state.products.find((x) => x.id === id);
      if (!p || !Number.isFinite(position) || position === p.position) { this.render(); return; }
      if (!(await this.call("POST", this.url(`/${id}/move`), { position }))) this.render();
    }

    bindDnd() {
      const clear = () => this.list.querySelectorAll(".drop-before, .drop-after").forEach((el) => el.classList.remove("drop-before", "drop-after"));
      this.list.addEventListener("dragstart", (ev) => {
        const row = ev.target.closest("[data-id]");
        if (!row || ev.target.matches("input")) return;
        this.dragId = Number(row.dataset.id);
        row.classList.add("dragging");
        ev.dataTransfer.effectAllowed = "move";
        ev.dataTransfer.setData("text/plain", String(this.dragId));
      });
      this.list.addEventListener("dragend", (ev) => {
        const row = ev.target.closest("[data-id]");
        if (row) row.classList.remove("dragging");
        clear();
        this.dragId = null;
        if (this.renderDeferred) { this.renderDeferred = false; this.render(); }
      });
      this.list.addEventListener("dragover", (ev) => {
        const row = ev.target.closest("[data-id]");
        if (this.dragId === null || !row) return;
        ev.preventDefault();
        ev.dataTransfer.dropEffect = "move";
        clear();
        if (Number(row.dataset.id) === this.dragId) return;
        const box = row.getBoundingClientRect();
        row.classList.add(ev.clientY < box.top + box.height / 2 ? "drop-before" : "drop-after");
      });
      this.list.addEventListener("drop", async (ev) => {
        const row = ev.target.closest("[data-id]");
        const dragged = this.dragId;
        this.dragId = null;
        if (dragged === null || !row) return;
        ev.preventDefault();
        const target = Number(row.dataset.id);
        const box = row.getBoundingClientRect();
        const before = ev.clientY < box.top + box.height / 2;
        clear();
        if (target === dragged) return;
        const order = this.state.products.map((p) => p.id).filter((id) => id !== dragged);
        let index = order.indexOf(target);
        if (!before) index += 1;
        order.splice(index, 0, dragged);
        await this.call("PUT", this.url("/order"), { product_ids: order });
      });
    }

    bindSearch() {
      let timer = null;
      let seq = 0;
      const run = async () => {
        const q = this.search.value.trim();
        if (!q) { this.results.hidden = true; return; }
        const mine = ++seq;
        let data;
        try { data = await LMS.api("GET", `/api/products?limit=20&q=${encodeURIComponent(q)}`); } catch (err) { this.showError(err.message); return; }
        if (mine !== seq) return;
        const inBag = new Set(this.state.products.map((p) => p.id));
        this.results.innerHTML = data.products.length ? data.products.map((p) => `
          <li data-product-id="${p.id}">${p.image_url ? `<img src="${esc(p.image_url)}" alt="">` : '<span class="noimg"></span>'}
            <div class="grow"><div class="title"><strong>${esc(p.title)}</strong></div>
              <div class="muted small">${esc(LMS.money(p.price_cents, p.currency))} · ${p.stock} in stock${p.sku ? " · SKU " + esc(p.sku) : ""}</div></div>
            ${inBag.has(p.id) ? '<span class="pill">In the bag</span>' : '<button type="button" class="btn btn-sm btn-primary" data-add>Add</button>'}</li>`).join("")
          : `<li class="empty-row">No product matches “${esc(q)}”.</li>`;
        this.results.hidden = false;
      };
      this.search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 180); });
      this.search.addEventListener("focus", () => { if (this.search.value.trim()) run(); });
      this.search.addEventListener("keydown", async (ev) => {
        if (ev.key === "Escape") this.results.hidden = true;
        if (ev.key !== "Enter") return;
        // Enter adds the top result not yet in the bag and clears the box, ready for the next product
        ev.preventDefault();
        clearTimeout(timer);
        const q = this.search.value.trim();
        if (!q) return;
        let data;
        try { data = await LMS.api("GET", `/api/products?limit=20&q=${encodeURIComponent(q)}`); } catch (err) { this.showError(err.message); return; }
        const inBag = new Set(this.state.products.map((p) => p.id));
        const top = data.products.find((p) => !inBag.has(p.id));
        if (!top) { LMS.toast(data.products.length ? `“${q}” is already in the bag` : `No product matches “${q}”`, "error"); return; }
        seq++;
        if (await this.call("POST", this.url(), { product_id: top.id })) {
          LMS.toast(`Added “${top.title}” to the bag`);
          this.search.value = "";
          this.results.hidden = true;
        }
      });
      this.results.addEventListener("click", async (ev) => {
        const btn = ev.target.closest("[data-add]");
        if (!btn) return;
        const id = Number(btn.closest("[data-product-id]").dataset.productId);
        btn.disabled = true;
        const data = await this.call("POST", this.url(), { product_id: id });
        if (data) { LMS.toast("Added to the bag"); btn.outerHTML = '<span class="pill">In the bag</span>'; } else btn.disabled = false;
      });
      document.addEventListener("click", (ev) => { if (!ev.target.closest(".bag-add")) this.results.hidden = true; });
      document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") this.results.hidden = true; });
    }

    onBus(msg) {
      if (!msg || !msg.name) return;
      const mine = msg.event_id === this.eventId;
      if ((RELOAD_ON.has(msg.name) && (mine || msg.name.startsWith("stream."))) || msg.name === "product.updated" || msg.name === "bus.reconnected") {
        clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => this.load(), 120);
      }
    }
  }

  window.LMSBag = {
    widgets: [],
    initAll() {
      document.querySelectorAll("[data-bag]:not([data-bag-ready])").forEach((root) => {
        root.dataset.bagReady = "1";
        this.widgets.push(new BagWidget(root));
      });
    },
  };
  window.LMSBag.initAll();
})();
