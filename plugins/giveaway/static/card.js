// The viewer page's giveaway card: prize, how to enter, countdown, "You're in", winners, the claim form.
// State comes from the JSON API; the page's bus records (LMS.bus) say when to refresh.
(function () {
  "use strict";
  const root = document.querySelector("[data-giveaway-card]");
  if (!root || !window.LMS) return;
  const api = root.dataset.api, eventId = root.dataset.eventId;
  const $ = (s) => root.querySelector(s), e = LMS.escape;
  const mmss = (s) => `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  let g = null, you = null;

  async function load() {
    try { ({ giveaway: g, you } = await LMS.api("GET", `${api}/events/${eventId}/current`)); } catch (err) { return; }
    render();
  }
  function render() {
    const section = root.closest("section");
    root.hidden = !g;
    if (section) section.hidden = !g;
    if (!g) return;
    $("[data-gv-prize]").textContent = `${g.prize} · ${g.winners} winner${g.winners === 1 ? "" : "s"}${g.practice ? " (practice)" : ""}`;
    $("[data-gv-how]").textContent = g.status === "running" ? g.how_to_enter : "The draw is over";
    $("[data-gv-entries]").textContent = g.entries;
    $("[data-gv-commit]").textContent = g.draws.length ? g.draws[0].commitment : "";
    $("[data-gv-proof]").href = g.proof_url || "#";
    $("[data-gv-enter]").hidden = !(g.status === "running" && !you?.entered && g.entry_mode !== "comment");
    $("[data-gv-in]").hidden = !you?.entered;
    const winners = g.draws.flatMap((d) => d.winners).filter((w) => w.status !== "redrawn");
    $("[data-gv-winners]").hidden = !winners.length;
    $("[data-gv-winners]").innerHTML = winners.length ? `Winners: ${winners.map((w) => `<b>${e(w.nickname)}</b>`).join(", ")}` : "";
    const claimable = you?.won && !you.claimed && you.claim_until * 1000 > Date.now();
    $("[data-gv-claim]").hidden = !claimable;
    if (claimable) $("[data-gv-until]").textContent = "Claim before " + LMS.time(you.claim_until);
    $("[data-gv-claimed]").hidden = !you?.claimed;
    tick();
  }
  function tick() {
    if (!g) return;
    const s = g.status === "running" ? Math.max(0, Math.round(g.ends_at - Date.now() / 1000)) : null;
    $("[data-gv-countdown]").textContent = s === null ? "" : mmss(s);
  }
  setInterval(tick, 1000);
  let timer = null;
  function loadSoon() { clearTimeout(timer); timer = setTimeout(load, 200); }

  $("[data-gv-enter]").addEventListener("click", async () => {
    try { await LMS.api("POST", `${api}/giveaways/${g.id}/enter`); } catch (err) { LMS.toast(err.message, "error"); }
    load();
  });
  $("[data-gv-claim]").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await LMS.api("POST", `${api}/giveaways/${g.id}/claim`, { name: f.get("name"), email: f.get("email"), address: f.get("address") });
    } catch (err) { LMS.toast(err.message, "error"); }
    load();
  });
  const onRecord = (rec) => {
    if (rec.name === "giveaway.entered" && g && rec.data.giveaway_id === g.id) {
      g.entries = Math.max(g.entries, rec.data.entries);
      render();
      // records carry no viewer ids: an entry under this viewer's nickname (or before we know it) asks the server
      if (!you || (!you.entered && (!you.nickname || you.nickname === rec.data.nickname))) loadSoon();
    } else if (rec.name === "giveaway.started" || rec.name === "giveaway.drawn" || rec.name === "stream.started" || rec.name === "bus.reconnected") load();
  };
  LMS.bus.on("*", onRecord);  // the page's one socket (app.js)
  load();
})();
