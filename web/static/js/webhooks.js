// Settings → Webhooks (owner): endpoints, their delivery log, test events, redelivery, secret rotation.
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);
  const esc = LMS.escape;
  const list = $("#endpoints"), listErr = $("#list-error"), form = $("#wh-form"), formErr = $("#form-error");
  let logFor = null;
  const when = (ts) => (ts ? `${LMS.time(ts, "date")}, ${LMS.time(ts, "seconds")}` : "");  // the studio's zone (LMS.time)

  function showSecret(url, secret) {
    $("#secret-url").textContent = url;
    $("#secret-value").value = secret;
    $("#secret-alert").hidden = false;
    $("#secret-alert").scrollIntoView({ block: "nearest" });
  }

  function lastAnswer(e) {
    if (e.last_at == null) return '<span class="muted">no delivery yet</span>';
    const ok = e.last_status >= 200 && e.last_status < 300;
    return `<span class="pill ${ok ? "pill-ok" : "pill-failed"}">${e.last_status == null ? "no answer" : esc(e.last_status)}</span>` +
      ` <span class="muted small">${esc(when(e.last_at))}</span>` + (e.last_error && !ok ? `<div class="small err" style="color: var(--danger)">${esc(e.last_error)}</div>` : "");
  }

  async function load() {
    listErr.hidden = true;
    try {
      const res = await LMS.api("GET", "/api/webhooks");
      if (!res.endpoints.length) { list.innerHTML = '<p class="muted">No endpoint yet: add one on the right.</p>'; return; }
      list.innerHTML = res.endpoints.map((e) => `
        <article class="card" data-id="${e.id}" style="box-shadow: none; border: 1px solid var(--border)">
          <div class="wh-head"><span class="wh-url">${esc(e.url)}</span>
            <span class="pill ${e.enabled ? "pill-ok" : "pill-failed"}">${e.enabled ? "on" : "off"}</span>
            ${e.pending ? `<span class="pill pill-pending">${e.pending} pending</span>` : ""}
            ${e.failed ? `<span class="pill pill-failed">${e.failed} failed</span>` : ""}</div>
          ${e.description ? `<div class="small">${esc(e.description)}</div>` : ""}
          ${e.disabled_reason ? `<div class="alert alert-error small" style="margin-top: 6px">${esc(e.disabled_reason)}</div>` : ""}
          <div class="wh-events">${e.events.map((n) => `<code>${esc(n)}</code>`).join("")}${e.include_practice ? '<code>+ practice</code>' : ""}</div>
          <div class="small" style="margin-bottom: 8px">Last answer: ${lastAnswer(e)} · ${e.delivered} delivered</div>
          <div class="wh-actions">
            <button class="btn btn-sm" data-act="log">Delivery log</button>
            <button class="btn btn-sm" data-act="test">Send test event</button>
            <button class="btn btn-sm" data-act="toggle">${e.enabled ? "Disable" : "Enable"}</button>
            <button class="btn btn-sm" data-act="rotate">Rotate secret</button>
            <button class="btn btn-sm btn-danger" data-act="delete">Delete</button>
          </div>
        </article>`).join("");
      list._endpoints = Object.fromEntries(res.endpoints.map((e) => [e.id, e]));
    } catch (e) { listErr.textContent = e.message; listErr.hidden = false; }
  }

  async function loadLog() {
    if (logFor == null) return;
    const res = await LMS.api("GET", `/api/webhooks/${logFor}/deliveries?limit=100`);
    $("#log-rows").innerHTML = res.deliveries.length ? res.deliveries.map((d) => {
      const last = d.tries[d.tries.length - 1];
      const answer = last ? `${last.status == null ? "no answer" : last.status} · ${Math.round(last.duration_ms)} ms` : "—";
      return `<tr><td>${esc(when(d.created_at))}</td><td><code>${esc(d.event)}</code><div class="muted small">${esc(d.msg_id)}</div></td>
        <td><span class="pill ${d.state === "delivered" ? "pill-ok" : d.state === "failed" ? "pill-failed" : "pill-pending"}">${esc(d.state)}</span>
          ${d.state === "pending" && d.attempts ? `<div class="muted small">next ${esc(when(d.next_at))}</div>` : ""}</td>
        <td class="num">${d.attempts}</td><td>${esc(answer)}${d.last_error && d.state !== "delivered" ? `<div class="err small">${esc(d.last_error)}</div>` : ""}</td>
        <td><button class="btn btn-sm" data-redeliver="${d.id}">Redeliver</button></td></tr>`;
    }).join("") : '<tr><td colspan="6" class="muted">No delivery yet.</td></tr>';
  }

  list.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-act]");
    if (!btn) return;
    const id = Number(btn.closest("[data-id]").dataset.id), e = list._endpoints[id];
    try {
      if (btn.dataset.act === "log") {
        logFor = id; $("#log-url").textContent = e.url; $("#log-card").hidden = false;
        await loadLog(); $("#log-card").scrollIntoView({ behavior: "smooth", block: "start" });
      } else if (btn.dataset.act === "test") {
        await LMS.api("POST", `/api/webhooks/${id}/test`); LMS.toast("Test event queued: see the delivery log");
        setTimeout(() => { load(); if (logFor === id) loadLog(); }, 1500);
      } else if (btn.dataset.act === "toggle") {
        await LMS.api("PATCH", `/api/webhooks/${id}`, { enabled: !e.enabled }); await load();
      } else if (btn.dataset.act === "rotate") {
        if (!confirm("Make a new signing secret? For 24 hours deliveries carry both signatures, so update the receiver today.")) return;
        const res = await LMS.api("POST", `/api/webhooks/${id}/rotate`); showSecret(e.url, res.secret);
      } else if (btn.dataset.act === "delete") {
        if (!confirm(`Delete the endpoint ${e.url} and its delivery log?`)) return;
        await LMS.api("DELETE", `/api/webhooks/${id}`); if (logFor === id) { logFor = null; $("#log-card").hidden = true; } await load();
      }
    } catch (err) { LMS.toast(err.message, "error"); }
  });

  $("#log-rows").addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-redeliver]");
    if (!btn) return;
    try { await LMS.api("POST", `/api/webhooks/deliveries/${btn.dataset.redeliver}/redeliver`); LMS.toast("Sending again");
      setTimeout(loadLog, 1500); } catch (err) { LMS.toast(err.message, "error"); }
  });
  $("#log-refresh").addEventListener("click", () => { loadLog(); load(); });
  $("#log-close").addEventListener("click", () => { logFor = null; $("#log-card").hidden = true; });

  document.querySelectorAll("[data-pick]").forEach((b) => b.addEventListener("click", () => {
    const prefix = b.dataset.pick;
    form.querySelectorAll('input[name="events"]').forEach((c) => { c.checked = prefix ? c.checked || c.value.startsWith(prefix) : false; });
  }));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formErr.hidden = true;
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((c) => c.value);
    try {
      const res = await LMS.api("POST", "/api/webhooks", { url: form.url.value, description: form.description.value, events,
        include_practice: form.include_practice.checked });
      showSecret(res.endpoint.url, res.secret);
      form.reset();
      await load();
    } catch (e) { formErr.textContent = e.message; formErr.hidden = false; }
  });
  load();
})();
