// The console's go-live panel, beside console.js (issue 16): the event's countdown and its "ready" state, the
// reminder when any event becomes ready, Practice → LIVE in one step, and the studio's capture source.
//
// - Before the ready window (events.ready_minutes before the start) Go LIVE is disabled with the countdown; practice
//   is always allowed. From the ready window the console is "Ready": products loaded, "Starting in 4:12".
// - While practising, Go LIVE (beside "End practice") asks the server to turn the practice into the LIVE without
//   stopping the camera: POST /api/media/session.
// - Source: this browser's camera (WHIP, console.js) or a capture source the owner allowed (GET /api/media/capture/
//   sources; a moderator may start only the studio's chosen one): POST /api/media/capture.
(function () {
  "use strict";
  const LMS = window.LMS;
  const box = document.getElementById("golive");
  if (!box) return;  // a read-only console, or a role that cannot run the show
  const $ = (sel) => document.querySelector(sel);
  const eventId = Number(box.dataset.eventId);
  const startsAt = Number(box.dataset.startsAt), endsAt = Number(box.dataset.endsAt), readySeconds = Number(box.dataset.readySeconds);
  const countdown = $("#event-countdown");
  const practiceToggle = $("#practice-toggle");
  const errorBox = $("#golive-error");
  let products = null;  // the bag's size, read once the event is ready

  function state() { return window.LMSConsole ? window.LMSConsole.state() : null; }
  function showError(msg) { errorBox.textContent = msg; errorBox.hidden = !msg; }
  function span(seconds) {  // 4:12, 1:04:12, or "3 d 4 h"
    const s = Math.max(0, Math.floor(seconds)), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return `${d} d ${h} h`;
    return (h ? `${h}:${String(m).padStart(2, "0")}` : String(m)) + ":" + String(sec).padStart(2, "0");
  }

  // ------------------------------------------------------------------ countdown and ready state
  async function countProducts() {
    try { products = (await LMS.api("GET", `/api/events/${eventId}/bag`)).count; } catch (e) { products = null; }
  }
  function tick() {
    const now = Date.now() / 1000;
    const st = state();
    const liveHere = !!(st && st.studio_live && st.studio_live.event_id === eventId && !st.studio_live.practice);
    let phase = "open", text = "";
    if (now >= endsAt) { phase = "ended"; text = `This event ended at ${LMS.time(endsAt, "short")}: schedule a new one, or use Go LIVE now.`; }
    else if (now < startsAt - readySeconds) {
      phase = "upcoming";
      text = `Starts ${LMS.time(startsAt, "short")} · in ${span(startsAt - now)}. Go LIVE opens ${Math.round(readySeconds / 60)} minutes` +
        " before the start; practise meanwhile.";
    } else if (now < startsAt) {
      phase = "ready";
      if (products === null) { products = 0; countProducts(); }
      text = `Ready · Starting in ${span(startsAt - now)}` + (products ? ` · ${products} product${products === 1 ? "" : "s"} loaded` : "");
    }
    countdown.hidden = liveHere || phase === "open";
    countdown.textContent = text;
    countdown.dataset.phase = phase;
    box.dataset.phase = phase;
    // before the ready window only practice may start (the server refuses too, with the same countdown)
    const locked = (phase === "upcoming" || phase === "ended") && !practiceToggle.checked;
    $("#capture-golive-btn").hidden = !!(st && st.studio_live);  // End LIVE (console.js) stops a running capture
    for (const b of [$("#golive-btn"), $("#capture-golive-btn")]) {
      b.disabled = locked;
      b.title = locked ? (phase === "ended" ? "This event has ended" : `Go LIVE opens ${Math.round(readySeconds / 60)} minutes before the start`) : "";
    }
  }
  practiceToggle.addEventListener("change", tick);
  tick();
  setInterval(tick, 1000);

  // a reminder on every console when an event becomes ready (event.ready, once per event)
  LMS.bus.on("event.ready", (rec) => {
    const ev = rec.data && rec.data.event;
    if (!ev) return;
    const minutes = Math.max(1, Math.round((rec.data.starts_in || 0) / 60));
    let note = $("#ready-reminder");
    if (!note) {
      note = document.createElement("div");
      note.id = "ready-reminder";
      note.className = "alert ready-reminder";
      note.setAttribute("role", "status");
      document.querySelector(".console-head").after(note);
    }
    note.hidden = false;
    note.innerHTML = ev.id === eventId
      ? `<strong>Ready:</strong> “${LMS.escape(ev.title)}” starts in ${minutes} minute${minutes === 1 ? "" : "s"}. You can go LIVE now.`
      : `<strong>Ready:</strong> “${LMS.escape(ev.title)}” starts in ${minutes} minute${minutes === 1 ? "" : "s"}. ` +
        `<a href="${LMS.escape(ev.console_url)}">Open its console</a>`;
    if (ev.id === eventId) tick();
    LMS.toast(`“${ev.title}” starts in ${minutes} min`);
  });

  // ------------------------------------------------------------------ Practice → LIVE
  $("#practice-golive-btn").addEventListener("click", async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    showError("");
    try {
      await LMS.api("POST", "/api/media/session", { practice: false });
      practiceToggle.checked = false;
      LMS.toast("You are LIVE");
    } catch (e) {
      showError(e.message);
    } finally {
      btn.disabled = false;
    }
  });

  // ------------------------------------------------------------------ the studio's capture source
  const sourceSel = $("#ingest-source");
  function applySource() {
    const capture = sourceSel.value !== "browser";
    box.classList.toggle("capture-mode", capture);
    localStorage.setItem("lms-ingest-source", sourceSel.value);
  }
  async function loadSources() {
    let res;
    try { res = await LMS.api("GET", "/api/media/capture/sources"); } catch (e) { return; }
    const owner = box.dataset.canChooseSource === "1";
    // a moderator starts only the studio's chosen source; the owner any allowed one (it becomes the chosen one)
    const offered = res.sources.filter((s) => owner || s.id === res.selected);
    for (const s of offered) {
      const opt = new Option(`${s.label}${s.id === res.selected ? " (studio's choice)" : ""}`, s.id);
      sourceSel.append(opt);
    }
    sourceSel.closest("label").hidden = sourceSel.options.length < 2;  // only the browser's camera: no choice to show
    const saved = localStorage.getItem("lms-ingest-source");
    if (saved && offered.some((s) => s.id === saved)) sourceSel.value = saved;
    applySource();
  }
  sourceSel.addEventListener("change", applySource);
  loadSources();

  $("#capture-golive-btn").addEventListener("click", async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    showError("");
    try {
      const practice = practiceToggle.checked;
      await LMS.api("POST", "/api/media/capture", { source: sourceSel.value, practice, event_id: eventId });
      LMS.toast(practice ? "Practice started from the capture source" : "You are LIVE from the capture source");
    } catch (e) {
      showError(e.status === 409 ? e.message : "Could not start the capture source: " + e.message);
    } finally {
      btn.disabled = false;
      tick();
    }
  });
  window.LMSGoLive = { tick };
})();
