// Restream destinations: the Settings card (owner: add, edit, remove; keys masked, never sent back) and the
// console panel (every staff member: state, bitrate, bytes sent; show.run: start / stop each during the LIVE).
(function () {
  "use strict";
  const esc = LMS.escape;
  const STATE = { live: "pill-live", connecting: "pill-practice", retrying: "pill-practice", failed: "pill-error", stopped: "" };

  function stateText(d) {
    if (d.state === "retrying") return `retrying in ${Math.ceil(d.retry_in || 0)} s`;
    if (d.state === "live" && d.slate) return "live · slate";
    return d.state;
  }
  function size(bytes) {
    return bytes >= 1e9 ? (bytes / 1e9).toFixed(2) + " GB" : bytes >= 1e6 ? (bytes / 1e6).toFixed(1) + " MB" : Math.round(bytes / 1e3) + " kB";
  }
  function row(d, buttons) {
    const err = d.error && d.state !== "live" ? `<div class="restream-error small">${esc(d.error)}</div>` : "";
    const figures = d.state === "live" || d.bytes_sent
      ? `<span class="muted small tabular">${Math.round(d.bitrate / 1000)} kbit/s · ${size(d.bytes_sent)}${d.dropped ? ` · ${d.dropped} dropped` : ""}</span>` : "";
    const btn = !buttons ? "" : (d.state === "stopped" || d.state === "failed")
      ? `<button type="button" class="btn btn-sm" data-start="${d.id}">Start</button>`
      : `<button type="button" class="btn btn-sm" data-stop="${d.id}">Stop</button>`;
    return `<li class="restream-item" data-id="${d.id}"><div class="restream-line"><strong>${esc(d.name)}</strong>
      <span class="muted small">${d.kind === "whip" ? "WHIP" : "RTMP"}</span>
      <span class="pill ${STATE[d.state] || ""}" data-state="${esc(d.state)}">${esc(stateText(d))}</span>${btn}</div>
      <div class="restream-line">${figures}</div>${err}</li>`;
  }

  // --- console panel --------------------------------------------------------------------------------------
  const panel = document.getElementById("restream-panel");
  if (panel) {
    const list = document.getElementById("restream-list"), slate = document.getElementById("restream-slate");
    const canRun = panel.dataset.canRun === "true";
    let timer = null;
    async function refresh() {
      let res;
      try { res = await LMS.api("GET", "/api/restream/status"); } catch (e) { return; }
      panel.hidden = res.destinations.length === 0;
      slate.hidden = !res.slate;
      list.innerHTML = res.destinations.map((d) => row(d, canRun && res.live)).join("");
      clearTimeout(timer);
      if (res.destinations.some((d) => d.state !== "stopped" && d.state !== "failed")) timer = setTimeout(refresh, 2000);
    }
    list.addEventListener("click", async (ev) => {
      const b = ev.target.closest("[data-start],[data-stop]");
      if (!b) return;
      const id = b.dataset.start || b.dataset.stop;
      try { await LMS.api("POST", `/api/restream/destinations/${id}/${b.dataset.start ? "start" : "stop"}`); }
      catch (e) { LMS.toast(e.message, "error"); }
      refresh();
    });
    LMS.bus.on("restream.state", refresh);
    LMS.bus.on("stream.started", () => setTimeout(refresh, 300));
    LMS.bus.on("stream.ended", refresh);
    refresh();
  }

  // --- settings card --------------------------------------------------------------------------------------
  const card = document.getElementById("restream-card");
  if (!card) return;
  const form = document.getElementById("restream-form"), err = document.getElementById("restream-error");
  const table = document.getElementById("restream-destinations"), needs = document.getElementById("restream-needs");
  let presets = {}, editing = null, rows = [];
  function showNeeds() {
    const p = presets[form.preset.value];
    needs.textContent = p ? p.needs : "";
    form.key.placeholder = form.preset.value === "whip" ? "bearer token" : "stream key";
  }
  async function load() {
    const res = await LMS.api("GET", "/api/restream/destinations");
    presets = res.presets;
    rows = res.destinations;
    if (!form.preset.options.length) {
      for (const [name, p] of Object.entries(presets)) form.preset.add(new Option(p.label, name));
      showNeeds();
    }
    const prog = res.program;
    document.getElementById("restream-program").textContent =
      `Program: ${prog.width}×${prog.height} at ${prog.fps} fps, ${(prog.video_bitrate / 1e6).toFixed(1)} Mbit/s capped, keyframes every ${prog.keyframe_interval} s; ${prog.audio}.`;
    const warn = document.getElementById("restream-warnings");
    warn.hidden = !res.warnings.length;
    warn.textContent = res.warnings.join(" · ");
    table.innerHTML = rows.length ? rows.map((d) => `<tr><td><strong>${esc(d.name)}</strong><div class="muted small">${esc(presets[d.preset] ? presets[d.preset].label : d.preset)}</div></td>
      <td class="small restream-url">${esc(d.url)}</td><td class="small tabular">${d.key_set ? esc(d.key_hint || "••••") : '<span class="muted">none</span>'}</td>
      <td class="small">${d.start_with_live ? "every LIVE" : "by hand"}</td>
      <td class="num"><button type="button" class="btn btn-sm" data-edit="${d.id}">Edit</button> <button type="button" class="btn btn-sm btn-ghost" data-delete="${d.id}">Remove</button></td></tr>`).join("")
      : `<tr><td colspan="5" class="muted">No destinations yet: the program goes to this studio's viewers only.</td></tr>`;
  }
  function reset() {
    editing = null;
    form.reset();
    form.querySelector("button.btn-primary").textContent = "Add destination";
    document.getElementById("restream-cancel").hidden = true;
    showNeeds();
    form.url.value = presets[form.preset.value] ? presets[form.preset.value].url : "";
  }
  form.preset.addEventListener("change", () => {
    showNeeds();
    const p = presets[form.preset.value];
    if (!editing && p) form.url.value = p.url;
  });
  table.addEventListener("click", async (ev) => {
    const edit = ev.target.closest("[data-edit]"), del = ev.target.closest("[data-delete]");
    if (edit) {
      const d = rows.find((r) => String(r.id) === edit.dataset.edit);
      editing = d.id;
      form.preset.value = d.preset; form.name.value = d.name; form.url.value = d.url; form.key.value = "";
      form.start_with_live.checked = d.start_with_live;
      showNeeds();
      form.key.placeholder = d.key_set ? `${d.key_hint || "••••"} (leave empty to keep it)` : form.key.placeholder;
      form.querySelector("button.btn-primary").textContent = "Save destination";
      document.getElementById("restream-cancel").hidden = false;
      form.name.focus();
    } else if (del) {
      if (!confirm("Remove this destination? If it is streaming, it stops.")) return;
      try { await LMS.api("DELETE", `/api/restream/destinations/${del.dataset.delete}`); await load(); }
      catch (e) { LMS.toast(e.message, "error"); }
    }
  });
  document.getElementById("restream-cancel").addEventListener("click", reset);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const body = { preset: form.preset.value, name: form.name.value, url: form.url.value, start_with_live: form.start_with_live.checked };
    if (form.key.value) body.key = form.key.value;
    try {
      if (editing) await LMS.api("PUT", `/api/restream/destinations/${editing}`, body);
      else await LMS.api("POST", "/api/restream/destinations", body);
      LMS.toast(editing ? "Destination saved" : "Destination added");
      reset();
      await load();
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
  load().then(reset).catch((e) => { err.textContent = e.message; err.hidden = false; });
})();
