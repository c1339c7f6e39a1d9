// LIVE events pages: local times, the schedule/edit dialog, Go LIVE now, delete, recommend.
(function () {
  "use strict";
  const LMS = window.LMS;
  const pad = (n) => String(n).padStart(2, "0");

  /** A Date → the value of an <input type="datetime-local"> in the browser's time zone. */
  function toLocalInput(d) {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  LMS.toLocalInput = toLocalInput;

  // times in the viewer's own time zone (the server renders UTC as a fallback)
  function localize(root) {
    root.querySelectorAll("time[data-local]").forEach((el) => {
      const d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      const kind = el.dataset.local;
      const opts = kind === "time" ? { hour: "2-digit", minute: "2-digit" }
        : kind === "short" ? { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }
        : { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" };
      el.textContent = d.toLocaleString(undefined, opts);
      el.title = d.toUTCString();
    });
    root.querySelectorAll("[data-local-part]").forEach((el) => {
      const d = new Date(el.dataset.ts);
      if (isNaN(d)) return;
      const part = el.dataset.localPart;
      el.textContent = part === "month" ? d.toLocaleString(undefined, { month: "short" })
        : part === "day" ? String(d.getDate()) : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    });
    root.querySelectorAll("[data-local-slot]").forEach((el) => {
      const d = new Date(el.dataset.localSlot);
      if (isNaN(d)) return;
      el.textContent = d.toLocaleString(undefined, { weekday: "long", hour: "2-digit", minute: "2-digit" }) + " (next: " +
        d.toLocaleDateString(undefined, { day: "numeric", month: "short" }) + ")";
    });
  }
  localize(document);
  LMS.localizeTimes = localize;

  // ------------------------------------------------------------------ schedule / edit dialog
  const dialog = document.getElementById("event-dialog");
  const form = document.getElementById("event-form");
  const errorBox = document.getElementById("event-error");

  function showError(err) {
    if (!errorBox) return;
    if (!err) { errorBox.hidden = true; errorBox.textContent = ""; return; }
    errorBox.textContent = err.message;
    const other = err.details && err.details.event;
    if (other && other.url) {
      const a = document.createElement("a");
      a.href = other.url;
      a.textContent = " Open “" + other.title + "”";
      errorBox.append(" ", a);
    }
    errorBox.hidden = false;
  }

  function openDialog(prefill) {
    if (!dialog) return;
    showError(null);
    if (prefill) {
      if (prefill.start) form.starts_at.value = toLocalInput(new Date(prefill.start));
      if (prefill.duration) form.duration_minutes.value = prefill.duration;
    }
    if (!form.starts_at.value && form.starts_at.dataset.iso) form.starts_at.value = toLocalInput(new Date(form.starts_at.dataset.iso));
    if (!form.starts_at.value) {  // default: the next full hour, at least 30 minutes away
      const d = new Date(Date.now() + 30 * 60000);
      d.setMinutes(0, 0, 0);
      d.setHours(d.getHours() + 1);
      form.starts_at.value = toLocalInput(d);
    }
    dialog.showModal();
    form.title.focus();
  }

  if (form) {
    form.querySelectorAll("[data-minutes]").forEach((chip) => chip.addEventListener("click", () => {
      form.duration_minutes.value = chip.dataset.minutes;
    }));
    form.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      showError(null);
      const eventId = form.dataset.eventId;
      const body = { title: form.title.value.trim(), description: form.description.value, script: form.script.value,
        duration_minutes: Number(form.duration_minutes.value) };
      if (!form.starts_at.disabled) {
        const start = new Date(form.starts_at.value);
        if (isNaN(start)) { showError(new Error("Pick the start date and time")); return; }
        body.starts_at = start.toISOString();
      }
      const save = document.getElementById("event-save");
      save.disabled = true;
      try {
        const data = eventId ? await LMS.api("PATCH", `/api/events/${eventId}`, body) : await LMS.api("POST", "/api/events", body);
        location.href = `/events/${data.event.id}`;
      } catch (err) {
        showError(err);
      } finally {
        save.disabled = false;
      }
    });
  }
  document.querySelectorAll("#new-event, [data-open-event-form], #edit-event").forEach((b) => b.addEventListener("click", () => openDialog()));
  const useSuggestion = document.getElementById("use-suggestion");
  if (useSuggestion) useSuggestion.addEventListener("click", () => openDialog({ start: useSuggestion.dataset.start, duration: useSuggestion.dataset.duration }));

  // ------------------------------------------------------------------ Go LIVE now, delete, recommend
  const goNow = document.getElementById("go-live-now");
  if (goNow) goNow.addEventListener("click", async () => {
    goNow.disabled = true;
    try {
      const data = await LMS.api("POST", "/api/events/now", {});
      location.href = data.event.console_url;
    } catch (err) {
      LMS.toast(err.message, "error");
      goNow.disabled = false;
    }
  });

  const del = document.getElementById("delete-event");
  if (del) del.addEventListener("click", async () => {
    if (!confirm(`Delete “${del.dataset.title}”? Its shopping bag and registrations are deleted too.`)) return;
    try {
      await LMS.api("DELETE", `/api/events/${window.LMS_EVENT.id}`);
      location.href = "/events";
    } catch (err) { LMS.toast(err.message, "error"); }
  });

  const rec = document.getElementById("recommend");
  if (rec) rec.addEventListener("change", async () => {
    try {
      const data = await LMS.api("POST", `/api/events/${window.LMS_EVENT.id}/recommend`, { on: rec.checked });
      LMS.toast(data.event.recommended ? "Recommended on the studio's public pages" : "No longer recommended");
    } catch (err) {
      rec.checked = !rec.checked;
      LMS.toast(err.message, "error");
    }
  });
})();
