// Settings → API tokens (owner): list, make (the token shown once), revoke.
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);
  const esc = LMS.escape;
  const body = $("#tokens"), form = $("#token-form"), formErr = $("#form-error"), listErr = $("#list-error");
  const day = (ts) => (ts ? LMS.time(ts, "date") + " " + new Intl.DateTimeFormat("en-US", { timeZone: LMS.tz || "UTC", year: "numeric" }).format(ts * 1000) : "");  // the studio's zone
  const pill = { active: "pill-ok", expired: "pill-off", revoked: "pill-off" };

  async function load() {
    listErr.hidden = true;
    try {
      const res = await LMS.api("GET", "/api/tokens");
      body.innerHTML = res.tokens.length ? res.tokens.map((t) => `<tr data-id="${t.id}">
        <td><strong>${esc(t.name)}</strong> <span class="pill ${pill[t.state]}">${esc(t.state)}</span>
          <div class="muted"><code>${esc(t.hint)}…</code> by ${esc(t.created_by)}, ${esc(day(t.created_at))}${t.expires_at ? ` · expires ${esc(day(t.expires_at))}` : " · no expiry"}</div></td>
        <td>${t.scopes.map((s) => `<code>${esc(s)}</code>`).join(" ")}</td>
        <td>${t.last_used_at ? esc(LMS.time(t.last_used_at)) : '<span class="muted">never</span>'}</td>
        <td>${t.state === "active" ? '<button class="btn btn-sm btn-danger" data-revoke>Revoke</button>' : ""}</td></tr>`).join("")
        : '<tr><td colspan="4" class="muted">No token yet.</td></tr>';
    } catch (e) { listErr.textContent = e.message; listErr.hidden = false; }
  }

  body.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-revoke]");
    if (!btn) return;
    const row = btn.closest("tr");
    if (!confirm(`Revoke the token “${row.querySelector("strong").textContent}”? Anything using it stops working at once.`)) return;
    try { await LMS.api("DELETE", `/api/tokens/${row.dataset.id}`); LMS.toast("Token revoked"); load(); }
    catch (e) { LMS.toast(e.message, "error"); }
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formErr.hidden = true;
    const scopes = [...form.querySelectorAll('input[name="scopes"]:checked')].map((c) => c.value);
    const payload = { name: form.name.value, scopes };
    if (form.expires.value) payload.expires_in_days = Number(form.expires.value);
    try {
      const res = await LMS.api("POST", "/api/tokens", payload);
      $("#token-name").textContent = res.api_token.name;
      $("#token-value").value = res.token;
      $("#token-alert").hidden = false;
      form.reset();
      load();
    } catch (e) { formErr.textContent = e.message; formErr.hidden = false; }
  });
  load();
})();
