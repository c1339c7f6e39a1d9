// Settings page (owner): reveal / rotate the stream key, add staff accounts.
(function () {
  "use strict";
  const keyInput = document.getElementById("stream-key");
  async function loadKey() {
    const res = await LMS.api("GET", "/api/settings/stream-key");
    keyInput.value = res.stream_key;
  }
  document.getElementById("reveal-key").addEventListener("click", async (ev) => {
    if (!keyInput.value) await loadKey();
    const shown = keyInput.type === "text";
    keyInput.type = shown ? "password" : "text";
    ev.target.textContent = shown ? "Reveal" : "Hide";
  });
  document.querySelector('[data-copy="#stream-key"]').addEventListener("click", async () => { if (!keyInput.value) await loadKey(); }, true);
  document.getElementById("rotate-key").addEventListener("click", async () => {
    if (!confirm("Rotate the stream key? Anything streaming with the old key must be given the new one.")) return;
    const endStream = document.getElementById("rotate-end").checked;
    const res = await LMS.api("POST", "/api/settings/stream-key/rotate", { end_stream: endStream });
    keyInput.value = res.stream_key;
    LMS.toast(res.ended_stream ? "New stream key ready; the stream on the old key was ended" : "New stream key ready");
  });
  // Capture source: what moderators may start (GET /api/media/capture/sources, PUT /api/media/capture/source).
  const sourceSel = document.getElementById("capture-source"), captureErr = document.getElementById("capture-error");
  async function loadSources() {
    const res = await LMS.api("GET", "/api/media/capture/sources");
    sourceSel.replaceChildren();
    const none = new Option(res.sources.length ? "(none chosen)" : "(no capture source on this machine)", "");
    none.disabled = true;
    sourceSel.add(none);
    for (const s of res.sources) sourceSel.add(new Option(s.label, s.id, false, s.id === res.selected));
    if (!res.selected || !res.sources.some((s) => s.id === res.selected)) none.selected = true;
  }
  document.getElementById("capture-choose").addEventListener("click", async () => {
    captureErr.hidden = true;
    try {
      await LMS.api("PUT", "/api/media/capture/source", { source: sourceSel.value });
      LMS.toast("Capture source chosen");
    } catch (e) { captureErr.textContent = e.message; captureErr.hidden = false; }
  });
  loadSources().catch((e) => { captureErr.textContent = e.message; captureErr.hidden = false; });
  const form = document.getElementById("user-form"), err = document.getElementById("user-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    try {
      await LMS.api("POST", "/api/users", { name: form.name.value, role: form.role.value, password: form.password.value });
      location.reload();
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });

  // the studio's time zone (PUT /api/settings/timezone): the page reloads to show every time in it
  const tzSave = document.getElementById("tz-save");
  if (tzSave) tzSave.addEventListener("click", async () => {
    const err = document.getElementById("tz-error");
    err.hidden = true;
    try {
      await LMS.api("PUT", "/api/settings/timezone", { timezone: document.getElementById("tz-select").value });
      location.reload();
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
})();
