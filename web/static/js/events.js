// LIVE events pages: local times, the schedule/edit dialog, Go LIVE now, delete, recommend.
(function () {
  "use strict";
  const LMS = window.LMS;
  const pad = (n) => String(n).padStart(2, "0");

  // <input type="datetime-local"> values are wall-clock times in the studio's time zone (LMS.tz), like every time shown
  const zoneParts = new Intl.DateTimeFormat("en-US", { timeZone: LMS.tz || "UTC", hourCycle: "h23", year: "numeric",
    month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
  function wallClock(ms) {  // the studio's wall clock at `ms`, as UTC milliseconds of the same digits
    const p = {};
    zoneParts.formatToParts(new Date(ms)).forEach((x) => (p[x.type] = Number(x.value)));
    return Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second);
  }
  /** A Date → the value of an <input type="datetime-local"> on the studio's clock. */
  function toLocalInput(d) {
    const w = new Date(wallClock(d.getTime()));
    return `${w.getUTCFullYear()}-${pad(w.getUTCMonth() + 1)}-${pad(w.getUTCDate())}T${pad(w.getUTCHours())}:${pad(w.getUTCMinutes())}`;
  }
  /** The value of an <input type="datetime-local"> (studio clock) → a Date (invalid for a bad value). */
  function fromLocalInput(value) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
    if (!m) return new Date(NaN);
    const digits = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    let t = digits - (wallClock(digits) - digits);
    t = digits - (wallClock(t) - t);  // once more, across a change of offset
    return new Date(t);
  }
  LMS.toLocalInput = toLocalInput;
  LMS.fromLocalInput = fromLocalInput;

  // times are written by the server in the studio's time zone, in the one format (lmserver/timefmt.py; LMS.time for
  // what scripts add): the page keeps them, and a tooltip shows the same instant on the viewer's own clock
  function localize(root) {
    root.querySelectorAll("time[data-local]").forEach((el) => {
      const d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) el.title = "Your time: " + d.toLocaleString();
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
    if (!form.starts_at.value) {  // default: the next full hour (studio clock), at least 30 minutes away
      form.starts_at.value = toLocalInput(new Date(Date.now() + 30 * 60000)).slice(0, 14) + "00";
      const d = fromLocalInput(form.starts_at.value);
      form.starts_at.value = toLocalInput(new Date(d.getTime() + 3600000));
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
        const start = fromLocalInput(form.starts_at.value);
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
  const inDialog = document.getElementById("dialog-use-suggestion");
  if (inDialog) inDialog.addEventListener("click", () => {
    form.starts_at.value = toLocalInput(new Date(inDialog.dataset.start));
    form.duration_minutes.value = inDialog.dataset.duration;
  });
  const useSuggestion = document.getElementById("use-suggestion");
  if (useSuggestion) useSuggestion.addEventListener("click", () => openDialog({ start: useSuggestion.dataset.start, duration: useSuggestion.dataset.duration }));

  // ------------------------------------------------------------------ Go LIVE now, delete, recommend
  // Go LIVE now: the event whose window is open; else offer to start the day's next event now (its start moves, its
  // bag is ready) instead of making a new, empty one
  const goNow = document.getElementById("go-live-now");
  async function startNow(body) {
    const data = await LMS.api("POST", "/api/events/now", body);
    location.href = data.event.console_url;
  }
  if (goNow) goNow.addEventListener("click", async () => {
    goNow.disabled = true;
    try {
      const offer = await LMS.api("GET", "/api/events/now");
      if (offer.current) { location.href = offer.current.console_url; return; }
      if (!offer.next_today) { await startNow({}); return; }
      const dlg = document.getElementById("now-dialog"), nxt = offer.next_today;
      document.getElementById("now-offer").textContent = `“${nxt.title}” is scheduled today at ${nxt.starts_text}` +
        ` (${nxt.products || 0} product${nxt.products === 1 ? "" : "s"} in its bag). Start it now? Its start moves to now.` +
        ` Or start a new, empty event “${offer.new_title}”.`;
      document.getElementById("now-start").textContent = `Start “${nxt.title}” now`;
      dlg.returnValue = "";
      dlg.showModal();
      dlg.addEventListener("close", async () => {
        try {
          if (dlg.returnValue === "start") await startNow({ event_id: nxt.id });
          else if (dlg.returnValue === "new") await startNow({});
          else goNow.disabled = false;
        } catch (err) { LMS.toast(err.message, "error"); goNow.disabled = false; }
      }, { once: true });
      return;
    } catch (err) {
      LMS.toast(err.message, "error");
    }
    goNow.disabled = false;
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
