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
    const res = await LMS.api("POST", "/api/settings/stream-key/rotate");
    keyInput.value = res.stream_key;
    LMS.toast("New stream key ready");
  });
  const form = document.getElementById("user-form"), err = document.getElementById("user-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    try {
      await LMS.api("POST", "/api/users", { name: form.name.value, role: form.role.value, password: form.password.value });
      location.reload();
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
})();
