// Shared helpers for every page: theme, API calls with the CSRF token, toasts, copy buttons, countdowns.
(function () {
  "use strict";
  const LMS = (window.LMS = window.LMS || {});

  const toggle = document.getElementById("theme-toggle");
  if (toggle) {
    toggle.addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("lms-theme", next);
    });
  }

  /** Call the JSON API; throws an Error whose message is the server's reason (and .details, .status). */
  LMS.api = async function (method, url, body, opts = {}) {
    const headers = Object.assign({}, opts.headers || {});
    if (LMS.csrf) headers["X-CSRF-Token"] = LMS.csrf;
    let payload = body;
    if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob) && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || res.statusText || "request failed");
      err.status = res.status;
      err.details = data && data.error && data.error.details;
      throw err;
    }
    return data;
  };

  let toastTimer = null;
  LMS.toast = function (message, kind) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.className = "toast show" + (kind === "error" ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (el.className = "toast"), 3500);
  };

  LMS.escape = function (s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  };

  LMS.money = function (cents, currency) {
    try { return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD" }).format(cents / 100); }
    catch (e) { return (cents / 100).toFixed(2) + " " + (currency || ""); }
  };

  document.addEventListener("click", async (ev) => {
    const copy = ev.target.closest("[data-copy]");
    if (copy) {
      ev.preventDefault();
      const input = document.querySelector(copy.dataset.copy);
      const value = input ? input.value : copy.dataset.copy;
      try { await navigator.clipboard.writeText(value); } catch (e) { if (input) { input.select(); document.execCommand("copy"); } }
      LMS.toast("Copied");
    }
    const opener = ev.target.closest("[data-open]");
    if (opener) {
      const dlg = document.getElementById(opener.dataset.open);
      if (dlg && dlg.showModal) dlg.showModal();
    }
  });

  function fmtCountdown(ms) {
    if (ms <= 0) return "now";
    const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d > 0) return `in ${d}d ${h}h`;
    if (h > 0) return `in ${h}h ${String(m).padStart(2, "0")}m`;
    return `in ${m}:${String(sec).padStart(2, "0")}`;
  }
  LMS.fmtCountdown = fmtCountdown;
  function tick() {
    document.querySelectorAll("[data-countdown]").forEach((el) => {
      el.textContent = fmtCountdown(new Date(el.dataset.countdown).getTime() - Date.now());
    });
  }
  tick();
  setInterval(tick, 1000);
})();
