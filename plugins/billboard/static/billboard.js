// Billboard panel: the list, the editor, and a draggable, resizable box over the page's preview (the documented
// slots [data-slot=preview-stage] and [data-slot=preview-video]) for every billboard shown. Positions are program
// pixels; the server is the truth: every change goes through the JSON API, and the bus (LMS.bus, the page's one
// WebSocket) tells every console to reload.
(function () {
  "use strict";
  const root = document.querySelector("[data-billboard-panel]");
  if (!root || !window.LMS) return;
  const api = root.dataset.api;
  const eventId = root.dataset.eventId ? Number(root.dataset.eventId) : null;
  const PW = Number(root.dataset.programWidth), PH = Number(root.dataset.programHeight);
  const $ = (sel) => root.querySelector(sel);
  const dialog = $("[data-bb-dialog]"), form = $("[data-bb-form]");
  let billboards = [];
  let maxShown = Number(root.dataset.maxShown);
  let editing = null; // the billboard being edited; null while creating one

  // ------------------------------------------------------------------ list

  async function load() {
    try {
      const data = await LMS.api("GET", api + "/billboards" + (eventId ? "?event_id=" + eventId : ""));
      billboards = data.billboards;
      maxShown = data.max_shown;
    } catch (err) {
      LMS.toast(err.message, "error");
    }
    renderList();
    renderBoxes();
  }

  let loadTimer = null;
  function loadSoon() { clearTimeout(loadTimer); loadTimer = setTimeout(load, 150); }

  function renderList() {
    const e = LMS.escape;
    $("[data-bb-list]").innerHTML = billboards.map((b) => {
      const attached = eventId !== null && b.event_ids.includes(eventId);
      return `<li class="bb-item${b.shown ? " is-shown" : ""}" data-id="${b.id}">
        <img src="${e(b.preview_url)}" alt="" loading="lazy">
        <div class="bb-info"><strong>${e(b.name)}</strong>
          <span class="small muted">${b.kind === "text" ? "Text" : "Image"} · ${b.width}×${b.height}${attached ? " · this event" : ""}${b.shown ? ' · <b class="bb-on">on air</b>' : ""}</span></div>
        <div class="bb-actions">
          <button type="button" class="btn btn-sm${b.shown ? "" : " btn-primary"}" data-act="${b.shown ? "hide" : "show"}">${b.shown ? "Hide" : "Display"}</button>
          <button type="button" class="btn btn-sm btn-ghost" data-act="edit">Edit</button>
          ${eventId !== null ? `<button type="button" class="btn btn-sm btn-ghost" data-act="${attached ? "detach" : "attach"}">${attached ? "Detach" : "Attach"}</button>` : ""}
          <button type="button" class="btn btn-sm btn-ghost btn-danger" data-act="delete" aria-label="Delete ${e(b.name)}">✕</button>
        </div></li>`;
    }).join("");
    $("[data-bb-empty]").hidden = billboards.length > 0;
    $("[data-bb-count]").textContent = `${billboards.filter((b) => b.shown).length} of ${maxShown} shown`;
  }

  $("[data-bb-list]").addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-act]");
    if (!button) return;
    const id = Number(button.closest("[data-id]").dataset.id);
    const b = billboards.find((x) => x.id === id);
    const act = button.dataset.act;
    if (act === "edit") return openEditor(b);
    if (act === "delete" && !confirm(`Delete the billboard “${b.name}”?`)) return;
    const calls = {
      show: ["POST", `/billboards/${id}/show`], hide: ["POST", `/billboards/${id}/hide`], delete: ["DELETE", `/billboards/${id}`],
      attach: ["PUT", `/events/${eventId}/billboards/${id}`], detach: ["DELETE", `/events/${eventId}/billboards/${id}`],
    };
    button.disabled = true;
    try {
      await LMS.api(calls[act][0], api + calls[act][1]);
      await load();
    } catch (err) {
      LMS.toast(err.message, "error");
      button.disabled = false;
    }
  });

  // ------------------------------------------------------------------ editor

  const field = (name) => form.elements[name];
  const kind = () => (editing ? editing.kind : form.querySelector("input[name=kind]:checked").value);

  function showKind() {
    $("[data-bb-text-fields]").hidden = kind() !== "text";
    $("[data-bb-image-fields]").hidden = kind() !== "image";
    previewSoon();
  }

  function fillFromTemplate() {
    const opt = field("template").selectedOptions[0];
    field("text").value = opt.dataset.text;
    field("text_colour").value = opt.dataset.textColour.slice(0, 7);
    field("background_colour").value = opt.dataset.backgroundColour.slice(0, 7);
    field("font_size").value = opt.dataset.fontSize;
  }

  function openEditor(b) {
    editing = b || null;
    form.reset();
    $("[data-bb-error]").hidden = true;
    $("[data-bb-title]").textContent = b ? `Edit “${b.name}”` : "New billboard";
    $("[data-bb-kinds]").hidden = !!b;
    $("[data-bb-place]").hidden = !b;
    if (b) {
      field("name").value = b.name;
      for (const k of ["x", "y", "width", "height"]) field(k).value = b[k];
      if (b.kind === "text") {
        field("template").value = b.template;
        field("text").value = b.text;
        field("text_colour").value = b.text_colour.slice(0, 7);
        field("background_colour").value = b.background_colour.slice(0, 7);
        field("font_size").value = b.font_size;
      }
    } else {
      fillFromTemplate();
    }
    showKind();
    dialog.showModal();
  }

  function textFields() {
    return { template: field("template").value, text: field("text").value, text_colour: field("text_colour").value,
      background_colour: field("background_colour").value, font_size: Number(field("font_size").value) };
  }

  let previewTimer = null, objectUrl = null;
  function previewSoon() { clearTimeout(previewTimer); previewTimer = setTimeout(preview, 200); }
  function preview() {
    const img = $("[data-bb-preview]");
    if (objectUrl) { URL.revokeObjectURL(objectUrl); objectUrl = null; }
    if (kind() === "text") {
      img.src = api + "/preview.png?" + new URLSearchParams(textFields());
    } else if (editing) {
      img.src = editing.preview_url;
    } else if (field("file").files[0]) {
      img.src = objectUrl = URL.createObjectURL(field("file").files[0]);
    } else {
      img.removeAttribute("src");
    }
  }

  form.addEventListener("input", (ev) => {
    if (ev.target.name === "template" && !editing) fillFromTemplate();
    if (ev.target.name === "kind") showKind();
    else previewSoon();
  });
  form.addEventListener("change", (ev) => { if (ev.target.name === "file") previewSoon(); });
  $("[data-bb-new]").addEventListener("click", () => openEditor(null));
  $("[data-bb-cancel]").addEventListener("click", () => dialog.close());

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const save = $("[data-bb-save]");
    const name = field("name").value.trim();
    save.disabled = true;
    try {
      if (editing) {
        const body = { name: name || editing.name };
        if (editing.kind === "text") Object.assign(body, textFields());
        for (const k of ["x", "y", "width", "height"]) {
          const v = Number(field(k).value);
          if (v !== editing[k]) body[k] = v; // unchanged numbers are left out: new text may resize it
        }
        await LMS.api("PATCH", `${api}/billboards/${editing.id}`, body);
      } else if (kind() === "text") {
        await LMS.api("POST", api + "/billboards", Object.assign(textFields(), name ? { name } : {}, eventId !== null ? { event_id: eventId } : {}));
      } else {
        const file = field("file").files[0];
        if (!file) throw new Error("choose an image file first");
        const data = new FormData();
        data.append("file", file);
        if (name) data.append("name", name);
        if (eventId !== null) data.append("event_id", String(eventId));
        await LMS.api("POST", api + "/billboards/image", data);
      }
      dialog.close();
      LMS.toast("Billboard saved");
      await load();
    } catch (err) {
      const box = $("[data-bb-error]");
      box.textContent = err.message;
      box.hidden = false;
    } finally {
      save.disabled = false;
    }
  });

  // ------------------------------------------------------------------ boxes on the preview

  const stage = () => document.querySelector("[data-slot=preview-stage]");

  /** Where the program is drawn inside the stage (the video letterboxes it): offset and scale. */
  function frame(st) {
    const video = st.querySelector("[data-slot=preview-video]");
    const sr = st.getBoundingClientRect();
    const vr = (video || st).getBoundingClientRect();
    const scale = Math.min(vr.width / PW, vr.height / PH) || 1;
    return { left: vr.left - sr.left + (vr.width - PW * scale) / 2, top: vr.top - sr.top + (vr.height - PH * scale) / 2, scale };
  }

  function place(el, b, f) {
    el.style.left = f.left + b.x * f.scale + "px";
    el.style.top = f.top + b.y * f.scale + "px";
    el.style.width = b.width * f.scale + "px";
    el.style.height = b.height * f.scale + "px";
  }

  function renderBoxes() {
    const st = stage();
    if (!st) return;
    const f = frame(st);
    const shown = billboards.filter((b) => b.shown);
    st.querySelectorAll(".bb-box").forEach((el) => { if (!shown.some((b) => String(b.id) === el.dataset.id)) el.remove(); });
    for (const b of shown) {
      let el = st.querySelector(`.bb-box[data-id="${b.id}"]`);
      if (!el) {
        el = document.createElement("div");
        el.className = "bb-box";
        el.dataset.id = b.id;
        el.title = "Drag to move; drag the corner to resize";
        el.innerHTML = '<span class="bb-box-label"></span><span class="bb-handle" aria-hidden="true"></span>';
        st.appendChild(el);
        el.addEventListener("pointerdown", (ev) => drag(ev, el));
      }
      if (el.dataset.dragging) continue;
      el.querySelector(".bb-box-label").textContent = b.name;
      place(el, b, f);
    }
  }

  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  function drag(ev, el) {
    const b = billboards.find((x) => String(x.id) === el.dataset.id);
    if (!b || ev.button !== 0) return;
    ev.preventDefault();
    el.setPointerCapture(ev.pointerId);
    el.dataset.dragging = "1";
    const resize = ev.target.classList.contains("bb-handle");
    const f = frame(stage());
    const x0 = ev.clientX, y0 = ev.clientY;
    let next = null;
    const move = (e) => {
      const dx = (e.clientX - x0) / f.scale, dy = (e.clientY - y0) / f.scale;
      if (resize) { // keep the aspect ratio: billboards are never stretched
        const width = Math.round(clamp(b.width + dx, 16, PW * 2));
        next = { ...b, width, height: Math.max(16, Math.round(width * b.height / b.width)) };
      } else {
        next = { ...b, x: Math.round(clamp(b.x + dx, Math.min(0, PW - b.width), Math.max(0, PW - b.width))),
          y: Math.round(clamp(b.y + dy, Math.min(0, PH - b.height), Math.max(0, PH - b.height))) };
      }
      place(el, next, f);
    };
    const up = async () => {
      el.removeEventListener("pointermove", move);
      el.removeEventListener("pointerup", up);
      el.removeEventListener("pointercancel", up);
      delete el.dataset.dragging;
      if (!next) return;
      const body = resize ? { width: next.width, height: next.height } : { x: next.x, y: next.y };
      Object.assign(b, body); // optimistic; the bus reload confirms
      try {
        await LMS.api("PATCH", `${api}/billboards/${b.id}`, body);
      } catch (err) {
        LMS.toast(err.message, "error");
      }
      loadSoon();
    };
    el.addEventListener("pointermove", move);
    el.addEventListener("pointerup", up);
    el.addEventListener("pointercancel", up);
  }

  window.addEventListener("resize", renderBoxes);
  const st = stage();
  if (st && window.ResizeObserver) new ResizeObserver(renderBoxes).observe(st);
  const video = document.querySelector("[data-slot=preview-video]");
  if (video) video.addEventListener("loadedmetadata", renderBoxes);

  // ------------------------------------------------------------------ the bus: every console stays current

  LMS.bus.on("billboard.", loadSoon);
  LMS.bus.on("stream.started", loadSoon);
  LMS.bus.on("stream.ended", loadSoon);
  LMS.bus.on("bus.reconnected", loadSoon);  // records may have been missed: catch up
  load();
})();
