// The LIVE Board: re-fetch the board's body (server-rendered SVG charts and tables) when the live session changes,
// at most once every two seconds; the full-screen button. Without JavaScript the page is the same, only static.
(function () {
  "use strict";
  const body = () => document.getElementById("board-body");
  const fs = document.getElementById("board-fullscreen");
  if (fs) fs.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen().catch(() => {});
  });
  const first = body();
  if (!first || first.dataset.live !== "true") return;
  const sid = Number(first.dataset.session);
  let timer = null, running = false, again = false;
  async function refresh() {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try {
      const url = `/sessions/${sid}/board?fragment=1${location.search.includes("sort=") ? "&" + location.search.slice(1) : ""}`;
      const r = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (r.ok) {
        const box = body();
        const html = await r.text();
        const tmp = document.createElement("div");
        tmp.innerHTML = html;
        const next = tmp.querySelector("#board-body");
        if (box && next) { box.replaceWith(next); document.dispatchEvent(new CustomEvent("lms:board-updated")); }
      }
    } catch (e) { /* offline for a moment: the next record retries */ }
    running = false;
    if (again) { again = false; schedule(); }
  }
  function schedule() { if (!timer) timer = setTimeout(refresh, 2000); }
  LMS.bus.on("*", (rec) => {  // every record of this session (plugins' too: their markers), not the per-second health
    if (rec.session_id === sid && rec.name !== "stream.health") schedule();
  });
  setInterval(schedule, 30000); // the minute axis moves on even when nothing happens
})();
