// The viewer page: WHEP playback (muted autoplay, unmute), pinned product and bag with Buy, comments, follow, gifts.
// Live updates come from LMS.bus (app.js) on /ws/viewer?event=ID, shared with plugin widgets on the page.
import { setupBuying } from "./buy.js";
import { play as whepPlay } from "./webrtc.js";
import { playHls } from "./hlsplay.js";

(function () {
  "use strict";
  const LMS = window.LMS;
  const $ = (sel) => document.querySelector(sel);
  const esc = LMS.escape;
  const boot = JSON.parse($("#viewer-data").textContent);
  let state = boot.state;
  let me = boot.viewer;
  const eventId = state.event.id;

  // ------------------------------------------------------------------ player
  const video = $("#program");
  let pc = null, playToken = 0, retry = 0, retryTimer = null;  // pc: the WHEP session (webrtc.js)
  // HLS fallback (/hls/<event>/index.m3u8, LL-HLS: about 2 s behind): when the server is full (503), when WebRTC
  // keeps failing (UDP blocked), or with ?hls=1 in the address
  const hlsUrl = video.dataset.hls || null;
  let hlsPlayer = null, failures = 0, useHls = !!hlsUrl && new URLSearchParams(location.search).get("hls") === "1";

  function overlay(title, sub) {
    const box = $("#player-overlay");
    if (title == null) { box.hidden = true; return; }
    box.hidden = false;
    $("#overlay-title").textContent = title;
    const s = $("#overlay-sub");
    s.innerHTML = "";
    if (sub instanceof Node) s.appendChild(sub); else if (sub) s.textContent = sub;
  }
  function showState() {
    const ended = !state.live && !!state.ended_at;
    $("#live-pill").hidden = !state.live;
    $("#ended-pill").hidden = !ended;
    const studioPill = $("#topbar-live");  // the site bar's LIVE pill, drawn when the page was served
    if (studioPill) studioPill.style.display = state.live ? "" : "none";
    document.body.dataset.live = state.live ? "live" : ended ? "ended" : "upcoming";
    // the comment box is open only while live (the server refuses comments otherwise)
    $("#chat-closed").hidden = state.live;
    $("#chat-closed").textContent = ended ? "The LIVE has ended: comments are closed." : "Comments open when the LIVE starts.";
    $("#comment-form").hidden = !state.live || !me.nickname;
    $("#nickname-form").hidden = !state.live || !!me.nickname;
    document.querySelector(".gifts").hidden = !state.live;
    if (!state.live) askAbout(null);
    if (state.live) return;
    stop();
    $("#unmute").hidden = true;  // nothing plays: no "Tap to unmute" over a black player
    if (ended) {
      let sub = "Thanks for watching!";
      if (state.replay_url) {
        sub = document.createElement("a");
        sub.className = "btn btn-primary replay-link";
        sub.href = state.replay_url;
        sub.textContent = "Watch the replay";
      }
      overlay("LIVE ended", sub);
    } else {
      const span = document.createElement("span");
      span.dataset.countdown = new Date(state.event.starts_at * 1000).toISOString();
      span.textContent = LMS.fmtCountdown(state.event.starts_at * 1000 - Date.now());
      overlay("Starting soon", span);
    }
  }
  async function startHls(token) {
    try {
      const player = await playHls(video, hlsUrl, { lib: video.dataset.hlsLib, onError: () => { if (hlsPlayer === player) scheduleRetry(); } });
      if (token !== playToken) { player.stop(); return; }
      hlsPlayer = player;
      $("#hls-pill").hidden = false;
      const started = () => { if (hlsPlayer === player) { overlay(null); $("#unmute").hidden = !video.muted; } };
      video.addEventListener("playing", started, { once: true });
      video.play().catch(() => {});
    } catch (e) {
      if (token === playToken) { useHls = false; scheduleRetry(); }
    }
  }
  async function play() {
    stop();
    if (!state.live) return;
    overlay("Connecting…");
    const token = ++playToken;
    if (useHls) { overlay("Connecting…", "over HTTP, about 2 seconds behind"); return startHls(token); }
    try {
      const sess = await whepPlay(video, { csrf: LMS.csrf });
      if (token !== playToken) { sess.stop(); return; }
      pc = sess;
      const onState = () => {
        if (sess !== pc) return;
        const st = sess.pc.connectionState;
        if (st === "connected") { retry = 0; failures = 0; overlay(null); video.play().catch(() => {}); $("#unmute").hidden = !video.muted; }
        if (st === "failed" || st === "disconnected") {
          failures++;
          if (hlsUrl && failures >= 3) { useHls = true; play(); } else scheduleRetry();
        }
      };
      sess.pc.addEventListener("connectionstatechange", onState);
      onState();
    } catch (e) {
      if (token !== playToken) return;
      failures++;
      if (hlsUrl && (e.status === 503 || failures >= 3)) { useHls = true; return play(); }  // full, or WebRTC unreachable
      scheduleRetry();
    }
  }
  function scheduleRetry() {
    if (!state.live || retryTimer) return;
    overlay("Reconnecting…");
    const delay = Math.min(1000 * 2 ** retry, 15000);
    retry = Math.min(retry + 1, 6);
    retryTimer = setTimeout(() => { retryTimer = null; play(); }, delay);
  }
  function stop() {
    playToken++;
    if (pc) { pc.stop(); pc = null; }
    if (hlsPlayer) { hlsPlayer.stop(); hlsPlayer = null; }
    $("#hls-pill").hidden = true;
    video.srcObject = null;
  }
  $("#unmute").addEventListener("click", () => { video.muted = false; video.play().catch(() => {}); $("#unmute").hidden = true; });
  window.addEventListener("pagehide", stop);

  // ------------------------------------------------------------------ products
  function stockText(p) {
    if (p.stock <= 0) return '<span class="stock out">Sold out</span>';
    if (p.stock <= 5) return `<span class="stock low">Only ${p.stock} left</span>`;
    return `<span class="stock">${p.stock} in stock</span>`;
  }
  function buyButton(p) {
    return `<button type="button" class="btn btn-sm btn-primary" data-buy="${p.id}" ${p.stock <= 0 || !state.live ? "disabled" : ""}>${p.stock <= 0 ? "Sold out" : "Buy"}</button>`;
  }
  function thumb(p) { return p.image_url ? `<img src="${esc(p.image_url)}" alt="">` : '<span class="thumb-empty">No photo</span>'; }
  function renderProducts() {
    const box = $("#pinned-product");
    const pp = state.pinned_product && (state.bag.find((p) => p.id === state.pinned_product.id) || state.pinned_product);
    if (pp) {
      box.hidden = false;
      box.dataset.product = pp.id;
      box.innerHTML = `${thumb(pp)}<div class="info"><div class="label">Pinned by the host</div><h3>${esc(pp.title)}</h3>` +
        `<span class="price">${LMS.money(pp.price_cents, pp.currency)}</span> · ${stockText(pp)}</div>` +
        `<div class="pinned-acts">${buyButton(pp).replace("btn-sm", "btn-lg")}` +
        (state.live ? `<button type="button" class="btn btn-sm btn-ghost" data-ask="${pp.id}">Ask about it</button>` : "") + `</div>`;
    } else { box.hidden = true; box.innerHTML = ""; delete box.dataset.product; }
    $("#bag-count").textContent = state.bag.length ? `${state.bag.length} products` : "";
    $("#bag").innerHTML = state.bag.length ? state.bag.map((p) =>
      `<li class="list-row" data-product="${p.id}"><span class="bag-item"><span class="bag-thumb">${p.image_url ? `<img class="bag-thumb" src="${esc(p.image_url)}" alt="">` : "—"}</span>` +
      `<span class="bag-meta"><b>${esc(p.title)}</b><small><span class="price">${LMS.money(p.price_cents, p.currency)}</span> · ${stockText(p)}</small></span></span>${buyButton(p)}</li>`).join("")
      : '<li class="muted small">The host has not added products yet.</li>';
  }

  // buying (buy.js: the dialog, one Idempotency-Key per purchase, its retries)
  setupBuying({
    url: `/api/e/${eventId}/orders`, maxQuantity: () => state.max_quantity,
    find: (id) => state.bag.find((p) => p.id === id) || (state.pinned_product && state.pinned_product.id === id ? state.pinned_product : null),
  });

  // ------------------------------------------------------------------ comments
  function activityLine(text) {
    return `<li class="feed-item activity">${esc(text)}</li>`;
  }
  // The chat shows the current session's comments; earlier sessions' go behind a "Previous sessions" divider,
  // collapsed (a reply stays with its thread's first comment).
  let showPrevious = false;
  function currentSession() { return state.session ? state.session.id : state.current_session_id; }
  function renderComments() {  // the same threads as the console's (LMS.comments), without moderation
    const cur = currentSession();
    const byId = new Map(state.comments.map((c) => [c.id, c]));
    const sessionOf = (c) => { const root = c.parent_id && byId.get(c.parent_id); return (root || c).session_id; };
    const earlier = state.comments.filter((c) => cur != null && sessionOf(c) != null && sessionOf(c) !== cur);
    const now = state.comments.filter((c) => !earlier.includes(c));
    const opts = { time: false, tags: false };
    const list = $("#comments");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    let html = "";
    if (earlier.length) {
      html += `<li class="sessions-divider"><button type="button" class="btn btn-sm btn-ghost" id="previous-toggle" aria-expanded="${showPrevious}">` +
        `${showPrevious ? "▾" : "▸"} Previous sessions · ${earlier.length} comment${earlier.length === 1 ? "" : "s"}</button></li>`;
      if (showPrevious) html += LMS.comments.thread(earlier).map((c) => LMS.comments.html(c, opts).replace('class="feed-item', 'class="feed-item previous')).join("") +
        '<li class="sessions-divider current">This session</li>';
    }
    html += LMS.comments.thread(now).map((c) => LMS.comments.html(c, opts)).join("") + extras.join("");
    list.innerHTML = html;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }
  $("#comments").addEventListener("click", (ev) => {
    if (!ev.target.closest("#previous-toggle")) return;
    showPrevious = !showPrevious;
    renderComments();
  });
  // "Ask about it" on the pinned product's card: the next comment is about that product (the console's filter)
  let asking = null;
  function askAbout(p) {
    asking = p;
    $("#asking").hidden = !p;
    $("#asking-title").textContent = p ? p.title : "";
  }
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-ask]");
    if (!b) return;
    const id = parseInt(b.dataset.ask, 10);
    askAbout(state.bag.find((p) => p.id === id) || state.pinned_product);
    const form = me.nickname ? $("#comment-form") : $("#nickname-form");
    form.querySelector("input").focus();
  });
  $("#asking-clear").addEventListener("click", () => askAbout(null));
  const extras = [];  // follows and gifts, shown after the comments
  function addExtra(text) { extras.push(activityLine(text)); if (extras.length > 20) extras.shift(); renderComments(); }
  function renderPinned() {
    const box = $("#pinned-comment");
    const c = state.pinned_comment;
    box.hidden = !c;
    box.innerHTML = c ? `<span class="pin-label">Pinned</span><span class="pin-text"><b>${esc(c.nickname)}</b>${esc(c.body)}</span>` : "";
  }

  $("#nickname-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const res = await LMS.api("POST", "/api/viewer/nickname", { nickname: ev.target.nickname.value });
      me.nickname = res.viewer.nickname;
      ev.target.hidden = true;
      $("#comment-form").hidden = false;
      $("#comment-form").body.focus();
    } catch (e) { LMS.toast(e.message, "error"); }
  });
  $("#comment-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = ev.target.body;
    if (!input.value.trim()) return;
    try {
      const body = { body: input.value };
      if (asking) body.product_id = asking.id;
      const res = await LMS.api("POST", `/api/e/${eventId}/comments`, body);
      input.value = "";
      askAbout(null);
      if (!state.comments.some((c) => c.id === res.comment.id)) { state.comments.push(res.comment); renderComments(); }
    } catch (e) { LMS.toast(e.message, "error"); }
  });
  document.querySelectorAll("[data-gift]").forEach((b) => b.addEventListener("click", async () => {
    try {
      const res = await LMS.api("POST", `/api/e/${eventId}/gifts`, { gift: b.dataset.gift });
      LMS.toast(`You sent ${res.gift.emoji} ${res.gift.label}`);
    } catch (e) { LMS.toast(e.message, "error"); }
  }));
  $("#follow-btn").addEventListener("click", async () => {
    try {
      const res = await LMS.api("POST", `/api/e/${eventId}/follow`);
      $("#followers").textContent = res.followers;
      const b = $("#follow-btn");
      b.textContent = "Following"; b.disabled = true; b.classList.remove("btn-primary");
    } catch (e) { LMS.toast(e.message, "error"); }
  });

  // ------------------------------------------------------------------ bus
  async function reload() {
    try {
      const fresh = await LMS.api("GET", `/api/e/${eventId}/state`);
      state = fresh;
      renderAll();
      if (state.live && !pc) play();
    } catch (e) { /* the next reconnect tries again */ }
  }
  function onRecord(rec) {
    const d = rec.data || {};
    if (rec.event_id != null && rec.event_id !== eventId) return;
    switch (rec.name) {
      case "bus.reconnected": reload(); break;  // records may have been missed
      case "stream.started":
        if (rec.practice) return;
        retry = 0;
        stop();
        reload();  // redraws and plays the new session's program
        break;
      case "stream.ended":  // every open viewer page shows the end at once, then fetches the replay link
        if (rec.practice) return;
        state.live = false; state.ended_at = rec.at; state.pinned_product = null;
        renderAll();
        reload();
        break;
      case "comment.created":
        if (!state.comments.some((c) => c.id === d.comment.id)) state.comments.push(d.comment);
        if (state.comments.length > 300) state.comments.shift();
        renderComments();
        break;
      case "comment.hidden":
        state.comments = state.comments.filter((c) => c.id !== d.comment_id);
        if (state.pinned_comment && state.pinned_comment.id === d.comment_id) state.pinned_comment = null;
        renderComments(); renderPinned();
        break;
      case "comment.pinned": state.pinned_comment = d.comment; renderPinned(); break;
      case "comment.unpinned":
        if (state.pinned_comment && state.pinned_comment.id === d.comment_id) state.pinned_comment = null;
        renderPinned();
        break;
      case "product.pinned": state.pinned_product = d.product; renderProducts(); break;
      case "product.unpinned": state.pinned_product = null; renderProducts(); break;
      case "product.stock": case "product.updated": {
        const id = d.product_id || (d.product && d.product.id);
        const stock = d.product ? d.product.stock : d.stock;
        state.bag.forEach((p) => { if (p.id === id) { p.stock = stock; if (d.product) Object.assign(p, { title: d.product.title, price_cents: d.product.price_cents }); } });
        if (state.pinned_product && state.pinned_product.id === id) state.pinned_product.stock = stock;
        renderProducts();
        break;
      }
      case "bag.changed": reload(); break;
      case "viewer.followed": $("#followers").textContent = d.followers; addExtra(`${d.nickname} followed the host`); break;
      case "gift.sent": { const g = state.gifts.find((x) => x.id === d.gift) || { emoji: "🎁", label: d.gift }; addExtra(`${d.nickname} sent ${g.emoji} ${g.label}`); break; }
    }
  }
  function renderAll() { showState(); renderProducts(); renderComments(); renderPinned(); }
  renderAll();
  LMS.bus.connect(`/ws/viewer?event=${eventId}`);  // the page's one socket (also <body data-bus>); widgets share it
  LMS.bus.on("*", onRecord);
  if (state.live) play();
  window.LMSViewer = { state: () => state };
})();
