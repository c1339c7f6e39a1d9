// The LIVE console: metrics, products, LIVE feed (WHIP publish, WHEP preview), prompter; kept in sync over /ws/console.
import { play, publish } from "./webrtc.js";

(function () {
  "use strict";
  const LMS = window.LMS;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const data = JSON.parse($("#console-data").textContent);
  let state = data.state;
  const eventId = state.event.id;
  const readonly = data.readonly;
  const esc = LMS.escape;

  // ------------------------------------------------------------------ helpers
  function timeOf(ts) { return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }); }
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
  }
  function isLiveHere() { return !!(state.session && state.session.live); }
  function ours(rec) { return rec.event_id == null || rec.event_id === eventId; }
  function bump(id) { const el = document.getElementById(id); if (!el) return; const tile = el.closest(".metric"); tile.classList.remove("bump"); void tile.offsetWidth; tile.classList.add("bump"); }

  // ------------------------------------------------------------------ metrics
  function renderMetrics() {
    const m = state.metrics;
    $("#m-viewers").textContent = m.viewers;
    $("#m-peak").textContent = m.peak;
    $("#m-gmv").textContent = LMS.money(m.gmv_cents, m.currency);
    $("#m-orders").textContent = m.orders;
    $("#m-items").textContent = m.items_sold;
    if (state.session) {
      const d = new Date(state.session.started_at * 1000);
      $("#m-date").textContent = d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" }).replace(",", "");
      $("#m-start").textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }
    tickDuration();
  }
  function tickDuration() {
    const s = state.session;
    if (!s) { $("#m-duration").textContent = "—"; return; }
    const end = s.live ? Date.now() / 1000 : (s.ended_at || s.started_at);
    $("#m-duration").textContent = fmtDuration(end - s.started_at);
  }
  setInterval(tickDuration, 1000);

  let metricsTimer = null;
  function refreshMetrics() {  // at most once per 400 ms whatever the order rate
    if (metricsTimer) return;
    metricsTimer = setTimeout(async () => {
      metricsTimer = null;
      try {
        const q = readonly && state.session ? "?session=" + state.session.id : "";
        const res = await LMS.api("GET", `/api/events/${eventId}/metrics${q}`);
        const before = state.metrics.gmv_cents;
        state.metrics = Object.assign(state.metrics, res.metrics);
        renderMetrics();
        if (state.metrics.gmv_cents !== before) { bump("m-gmv"); bump("m-orders"); }
      } catch (e) { /* next change retries */ }
    }, 400);
  }

  function renderStatus() {
    const pill = $("#status-pill");
    const s = state.session;
    pill.className = "pill" + (s && s.live ? (s.practice ? " pill-practice" : " pill-live") : "");
    pill.textContent = s && s.live ? (s.practice ? "Practice" : "LIVE") : (readonly ? "Past session" : "Offline");
    $("#practice-badge").hidden = !(s && s.live && s.practice);
    const go = $("#golive-btn"), end = $("#endlive-btn");
    if (go) {
      // Go LIVE stays offered on every console that is not the one streaming: trying it while the studio is
      // live elsewhere shows the server's "already live from another device" message.
      const studioBusy = !!state.studio_live;
      go.hidden = !!publishing;
      end.hidden = !studioBusy;
      $("#practice-toggle").disabled = !!publishing;
      if (!studioBusy && !publishing) showError("");
    }
  }

  // ------------------------------------------------------------------ pinned comment
  function renderPinned() {
    const box = $("#pinned-comment");
    const c = state.pinned_comment;
    if (!c) { box.hidden = true; box.innerHTML = ""; return; }
    box.hidden = false;
    box.innerHTML = `<span class="pin-label">Pinned</span><span class="pin-text"><b>${esc(c.nickname)}</b>${esc(c.body)}</span>` +
      (data.can_moderate ? `<button type="button" class="btn btn-sm" data-act="unpin" data-id="${c.id}">Unpin</button>` : "");
  }

  // ------------------------------------------------------------------ prompter feeds
  const byId = new Map();  // comment id -> comment
  function commentHtml(c) {
    const cls = ["feed-item", "comment"];
    if (c.staff) cls.push("staff");
    if (c.parent_id) cls.push("reply");
    if (c.hidden) cls.push("is-hidden");
    const tags = (c.staff ? '<span class="tag">host</span>' : "") + (c.pinned ? '<span class="tag">pinned</span>' : "") +
      (c.hidden ? `<span class="tag" title="${esc(c.hidden_reason || "hidden")}">hidden${c.hidden_reason ? ": " + esc(c.hidden_reason) : ""}</span>` : "") +
      (c.practice ? '<span class="tag">practice</span>' : "");
    let actions = "";
    if (data.can_moderate && !c.hidden) {
      actions = `<div class="actions-row">` +
        (c.parent_id ? "" : `<button type="button" class="btn btn-ghost" data-act="reply" data-id="${c.id}">Reply</button>`) +
        (c.pinned ? `<button type="button" class="btn btn-ghost" data-act="unpin" data-id="${c.id}">Unpin</button>` :
          `<button type="button" class="btn btn-ghost" data-act="pin" data-id="${c.id}">Pin</button>`) +
        `<button type="button" class="btn btn-ghost" data-act="hide" data-id="${c.id}">Hide</button>` +
        (c.viewer_id ? `<button type="button" class="btn btn-ghost btn-danger" data-act="block" data-id="${c.id}">Block</button>` : "") +
        `</div>`;
    }
    return `<li class="${cls.join(" ")}" data-comment="${c.id}"><span class="who">${esc(c.nickname)}</span>${tags}` +
      `<span class="when">${timeOf(c.created_at)}</span><div class="body">${esc(c.body)}</div>${actions}</li>`;
  }

  const GIFT = data.gifts || {};
  function activityHtml(a) {
    const d = a.data || {};
    let who = "", text = "";
    switch (a.name) {
      case "comment.created": case "comment.held": return commentHtml(byId.get(d.comment.id) || d.comment);
      case "order.created": who = d.order.nickname; text = `bought ${d.order.quantity} × ${d.order.product_title} · ${LMS.money(d.order.amount_cents, d.order.currency)}${d.order.first_time ? " · first order" : ""}`; break;
      case "viewer.followed": who = d.nickname; text = "followed the host"; break;
      case "gift.sent": { const g = GIFT[d.gift] || { emoji: "🎁", label: d.gift }; who = d.nickname; text = `sent ${g.emoji} ${g.label}`; break; }
      case "viewer.joined": who = "A viewer"; text = `joined (${d.viewers} watching)`; break;
      case "product.pinned": who = "Pinned"; text = d.product ? d.product.title : ""; break;
      case "product.unpinned": who = "Product"; text = "unpinned"; break;
      case "comment.pinned": who = "Pinned comment"; text = d.comment ? d.comment.body : ""; break;
      case "stream.started": who = d.practice ? "Practice" : "LIVE"; text = d.resumed ? "resumed" : "started"; break;
      case "stream.ended": who = "LIVE"; text = "ended" + (d.reason ? ": " + d.reason : ""); break;
      default: who = a.name; text = Object.values(d).filter((v) => typeof v !== "object").join(" · ");
    }
    return `<li class="feed-item activity"><span class="who">${esc(who)}</span>${esc(text)}<span class="when">${timeOf(a.at)}</span></li>`;
  }
  function orderHtml(o) {
    return `<li class="feed-item order" data-order="${o.id}"><span><span class="who">${esc(o.nickname)}</span>${o.first_time ? '<span class="tag">first order</span>' : ""}${o.practice ? '<span class="tag">practice</span>' : ""}${o.label ? `<span class="tag">${esc(o.label)}</span>` : ""}</span>` +
      `<span class="amount">${LMS.money(o.amount_cents, o.currency)}</span>` +
      `<span class="detail">${o.quantity} × ${esc(o.product_title)} @ ${LMS.money(o.unit_price_cents, o.currency)}</span><span class="detail when">${timeOf(o.created_at)}</span></li>`;
  }
  function prompterHtml(a) {
    const d = a.data || {};
    return `<li class="feed-item level-${esc(d.level || "info")}"><div class="body">${esc(d.text)}</div><span class="when">${esc(d.plugin || "")} · ${timeOf(a.at)}</span></li>`;
  }

  function scrollKeep(list, fn) {
    const pane = list.closest(".tab-pane");
    const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
    fn();
    if (atBottom) pane.scrollTop = pane.scrollHeight;
  }

  function renderComments() {
    const list = $("#feed-comments");
    const all = $("#feed-filter").value === "all";
    byId.clear();
    state.comments.forEach((c) => byId.set(c.id, c));
    let html = "";
    if (all) {
      html = state.activities.map(activityHtml).join("");
    } else {
      // threads: roots in order, each followed by its replies
      const roots = state.comments.filter((c) => !c.parent_id);
      const replies = {};
      state.comments.filter((c) => c.parent_id).forEach((c) => (replies[c.parent_id] = replies[c.parent_id] || []).push(c));
      html = roots.map((c) => commentHtml(c) + (replies[c.id] || []).map(commentHtml).join("")).join("");
      // replies whose root is older than the loaded window
      state.comments.filter((c) => c.parent_id && !byId.has(c.parent_id)).forEach((c) => (html += commentHtml(c)));
    }
    scrollKeep(list, () => (list.innerHTML = html));
    $("#count-comments").textContent = state.comments.filter((c) => !c.staff).length || "";
  }
  function renderOrders() {
    $("#feed-orders").innerHTML = state.orders.map(orderHtml).join("");
    $("#count-orders").textContent = state.orders.length || "";
  }
  function renderPrompter() {
    const sug = state.prompter.filter((a) => a.name === "prompter.suggestion").reverse();
    const vio = state.prompter.filter((a) => a.name === "prompter.violation").reverse();
    $("#feed-suggestions").innerHTML = sug.map(prompterHtml).join("");
    $("#feed-quality").innerHTML = vio.map(prompterHtml).join("");
    $("#count-suggestions").textContent = sug.length || "";
    $("#count-quality").textContent = vio.length || "";
  }
  function renderAll() {
    renderStatus(); renderMetrics(); renderPinned(); renderComments(); renderOrders(); renderPrompter(); renderBag();
  }

  // tabs
  document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => selectTab(tab.dataset.tab)));
  function selectTab(name) {
    document.querySelectorAll(".tab").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.tab === name)));
    document.querySelectorAll(".tab-pane").forEach((p) => (p.hidden = p.id !== "pane-" + name));
    localStorage.setItem("lms-console-tab", name);
  }
  selectTab(localStorage.getItem("lms-console-tab") || "comments");
  $("#feed-filter").addEventListener("change", renderComments);

  // font size of the feed
  let fontSize = parseInt(localStorage.getItem("lms-feed-font") || "15", 10);
  function applyFont() { document.querySelector(".console").style.setProperty("--feed-font", fontSize + "px"); }
  document.querySelectorAll("[data-font]").forEach((b) => b.addEventListener("click", () => {
    fontSize = Math.min(28, Math.max(11, fontSize + 2 * parseInt(b.dataset.font, 10)));
    localStorage.setItem("lms-feed-font", String(fontSize));
    applyFont();
  }));
  applyFont();

  $("#fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen().catch(() => LMS.toast("Full screen is not available here", "error"));
  });

  // ------------------------------------------------------------------ comment actions
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-act]");
    if (!btn) return;
    const id = parseInt(btn.dataset.id, 10);
    const act = btn.dataset.act;
    try {
      if (act === "reply") { openReply(btn, id); return; }
      if (act === "pin") await LMS.api("POST", `/api/comments/${id}/pin`);
      if (act === "unpin") await LMS.api("DELETE", `/api/comments/${id}/pin`);
      if (act === "hide") await LMS.api("POST", `/api/comments/${id}/hide`);
      if (act === "block") {
        const c = byId.get(id);
        if (!c || !confirm(`Block ${c.nickname}? Their comments stop appearing.`)) return;
        await LMS.api("POST", `/api/viewers/${encodeURIComponent(c.viewer_id)}/block`, { event_id: eventId });
        LMS.toast(`${c.nickname} is blocked`);
      }
      if (act === "pin-product") await LMS.api("POST", `/api/events/${eventId}/pin`, { product_id: id });
      if (act === "unpin-product") await LMS.api("DELETE", `/api/events/${eventId}/pin`);
    } catch (e) { LMS.toast(e.message, "error"); }
  });
  function openReply(btn, id) {
    const item = btn.closest(".feed-item");
    if (item.querySelector(".reply-form")) { item.querySelector(".reply-form input").focus(); return; }
    const form = document.createElement("form");
    form.className = "reply-form";
    form.innerHTML = `<input name="body" placeholder="Reply to everyone…" maxlength="1000" aria-label="Reply"><button class="btn btn-sm btn-primary">Send</button>`;
    item.appendChild(form);
    form.body.focus();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await LMS.api("POST", `/api/comments/${id}/reply`, { body: form.body.value });
        form.remove();
      } catch (e) { LMS.toast(e.message, "error"); }
    });
  }

  // ------------------------------------------------------------------ products (fallback bag; the events widget manages itself)
  const bagList = document.getElementById("console-bag");
  let bag = [];
  async function loadBag() {
    if (!bagList) return;
    try {
      const res = await LMS.api("GET", `/api/e/${eventId}/state`);
      bag = res.bag;
      state.pinned_product_id = res.pinned_product ? res.pinned_product.id : null;
      renderBag();
    } catch (e) { bagList.innerHTML = `<li class="muted small">${esc(e.message)}</li>`; }
  }
  function renderBag() {
    if (!bagList) return;
    if (!bag.length) { bagList.innerHTML = '<li class="muted small">The shopping bag is empty.</li>'; return; }
    const canPin = data.can_run && isLiveHere();
    bagList.innerHTML = bag.map((p) => {
      const pinned = state.pinned_product_id === p.id;
      const thumb = p.image_url ? `<img class="bag-thumb" src="${esc(p.image_url)}" alt="">` : '<span class="bag-thumb">—</span>';
      const btn = canPin ? (pinned ? `<button type="button" class="btn btn-sm" data-act="unpin-product" data-id="${p.id}">Unpin</button>` :
        `<button type="button" class="btn btn-sm btn-primary" data-act="pin-product" data-id="${p.id}">Pin</button>`) : "";
      return `<li class="list-row${pinned ? " pinned" : ""}" data-product="${p.id}"><span class="bag-item">${thumb}<span class="bag-meta"><b>${esc(p.title)}</b>` +
        `<small>${LMS.money(p.price_cents, p.currency)} · <span data-stock="${p.id}">${p.stock}</span> in stock</small></span></span>${btn}</li>`;
    }).join("");
  }

  // ------------------------------------------------------------------ bus over WebSocket
  function onRecord(rec) {
    if (!rec || !rec.name || rec.name === "hello" || rec.name === "pong") return;
    if (readonly) return;
    const d = rec.data || {};
    const sid = state.session && state.session.id;
    switch (rec.name) {
      case "stream.started":
      case "stream.ended":
        reload();
        return;
      case "stream.health":
        if (!ours(rec)) return;
        renderHealth(d);
        if (typeof d.viewers === "number") { state.metrics.viewers = d.viewers; state.metrics.peak = Math.max(state.metrics.peak, d.viewers); renderMetrics(); }
        return;
      case "viewer.joined": case "viewer.left":
        if (rec.session_id !== sid) return;
        state.metrics.viewers = d.viewers;
        state.metrics.peak = Math.max(state.metrics.peak, d.peak || 0, d.viewers);
        renderMetrics();
        if (rec.name === "viewer.joined") pushActivity(rec);
        return;
    }
    if (!ours(rec)) return;
    switch (rec.name) {
      case "comment.created": case "comment.held":
        if (rec.session_id != null && rec.session_id !== sid) return;
        upsertComment(Object.assign({ hidden: rec.name === "comment.held" }, d.comment));
        pushActivity(rec);
        break;
      case "comment.hidden": {
        const c = byId.get(d.comment_id);
        if (c) { c.hidden = true; c.pinned = false; }
        if (state.pinned_comment && state.pinned_comment.id === d.comment_id) state.pinned_comment = null;
        renderComments(); renderPinned();
        break;
      }
      case "comment.pinned":
        state.comments.forEach((c) => (c.pinned = c.id === d.comment.id));
        state.pinned_comment = d.comment;
        renderComments(); renderPinned();
        break;
      case "comment.unpinned":
        state.comments.forEach((c) => { if (c.id === d.comment_id) c.pinned = false; });
        if (state.pinned_comment && state.pinned_comment.id === d.comment_id) state.pinned_comment = null;
        renderComments(); renderPinned();
        break;
      case "order.created":
        if (rec.session_id !== sid) return;
        state.orders.unshift(d.order);
        renderOrders();
        pushActivity(rec);
        refreshMetrics();
        break;
      case "viewer.followed": case "gift.sent":
        pushActivity(rec);
        break;
      case "product.pinned":
        state.pinned_product_id = d.product.id; pushActivity(rec); renderBag(); break;
      case "product.unpinned":
        state.pinned_product_id = null; renderBag(); break;
      case "product.stock": {
        const p = bag.find((x) => x.id === d.product_id);
        if (p) { p.stock = d.stock; const el = document.querySelector(`[data-stock="${p.id}"]`); if (el) el.textContent = d.stock; }
        break;
      }
      case "bag.changed": loadBag(); break;
      case "prompter.suggestion": case "prompter.violation":
        if (rec.session_id != null && rec.session_id !== sid) return;
        state.prompter.push(rec); renderPrompter(); break;
      default:
        if ((state.activity_names || []).includes(rec.name)) pushActivity(rec);
    }
  }
  function upsertComment(c) {
    const i = state.comments.findIndex((x) => x.id === c.id);
    if (i >= 0) state.comments[i] = c; else state.comments.push(c);
    if (state.comments.length > 400) state.comments.splice(0, state.comments.length - 400);
    renderComments();
  }
  function pushActivity(rec) {
    state.activities.push(rec);
    if (state.activities.length > 400) state.activities.splice(0, state.activities.length - 400);
    if ($("#feed-filter").value === "all") renderComments();
  }
  function renderHealth(h) {
    const el = $("#health");
    if (!el) return;
    const parts = [];
    if (h.fps != null) parts.push(Math.round(h.fps) + " fps");
    if (h.bitrate != null) parts.push(Math.round(h.bitrate / 1000) + " kbit/s");
    if (h.width) parts.push(h.width + "×" + h.height);
    if (h.packet_loss) parts.push((h.packet_loss * 100).toFixed(1) + "% loss");
    if (h.silent) parts.push("audio silent");
    el.textContent = parts.join(" · ");
  }

  async function reload() {
    try {
      state = await LMS.api("GET", `/api/events/${eventId}/console`);
      renderAll();
      syncPreview();
    } catch (e) { LMS.toast("Could not reload the console: " + e.message, "error"); }
  }

  // the page's one socket, shared with the bag widget and plugin panels (<body data-bus="page">)
  function share(rec) { document.dispatchEvent(new CustomEvent("lms:bus", { detail: rec })); }

  let ws = null, wsDelay = 500;
  function connect() {
    if (readonly) return;
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/console");
    ws.onmessage = (ev) => { let rec; try { rec = JSON.parse(ev.data); } catch (e) { return; } onRecord(rec); share(rec); };
    ws.onopen = () => {
      if (wsDelay > 500) { reload(); share({ name: "bus.reconnected" }); }  // records may have been missed: widgets reload
      wsDelay = 500;
      document.body.dataset.ws = "open";
    };
    ws.onclose = () => { document.body.dataset.ws = "closed"; setTimeout(connect, wsDelay); wsDelay = Math.min(wsDelay * 2, 10000); };
  }
  setInterval(() => { if (ws && ws.readyState === 1) ws.send("ping"); }, 20000);

  // ------------------------------------------------------------------ WebRTC: WHEP preview, WHIP publish
  const preview = $("#program-preview");
  let previewSession = null, previewToken = 0;
  async function startPreview() {
    stopPreview();
    const token = ++previewToken;
    try {
      const sess = await play(preview, { csrf: LMS.csrf });
      if (token !== previewToken) { sess.stop(); return; }
      previewSession = sess;
      const pc = sess.pc;
      const onState = () => {
        if (sess !== previewSession) return;
        if (pc.connectionState === "connected") setNote("");
        if (pc.connectionState === "failed") { setNote("Program preview lost: retrying…"); setTimeout(syncPreview, 2000); }
      };
      pc.addEventListener("connectionstatechange", onState);
      onState();
    } catch (e) {
      if (token === previewToken) setNote("Program preview unavailable: " + e.message);
    }
  }
  function stopPreview() {
    previewToken++;
    if (previewSession) { previewSession.stop(); previewSession = null; }
    preview.srcObject = null;
  }
  function setNote(text) { $("#preview-note").textContent = text; }
  function syncPreview() {
    if (readonly) return;
    if (isLiveHere()) {
      localVideo.hidden = true;
      setNote("Connecting to the program…");
      startPreview();
    } else {
      stopPreview();
      if (!localStream) setNote(state.studio_live ? "The studio is live with another event." : "Offline. Pick a camera to preview it, then go LIVE.");
      else { localVideo.hidden = false; setNote("Camera preview: not live yet."); }
    }
  }

  // devices and publishing
  const localVideo = $("#local-preview");
  let localStream = null, publishing = null;
  const camSel = $("#camera-select"), micSel = $("#mic-select");
  async function listDevices() {
    if (!camSel || !navigator.mediaDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (sel, kind, label) => {
      const keep = sel.value;
      const opts = devices.filter((d) => d.kind === kind);
      sel.innerHTML = opts.length ? opts.map((d, i) => `<option value="${esc(d.deviceId)}">${esc(d.label || label + " " + (i + 1))}</option>`).join("")
        : `<option value="">No ${label.toLowerCase()} found</option>`;
      if (keep && opts.some((d) => d.deviceId === keep)) sel.value = keep;
    };
    fill(camSel, "videoinput", "Camera");
    fill(micSel, "audioinput", "Microphone");
  }
  async function openCamera() {
    if (localStream) localStream.getTracks().forEach((t) => t.stop());
    const video = camSel.value ? { deviceId: { exact: camSel.value }, width: { ideal: 1280 }, height: { ideal: 720 } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
    const audio = micSel.value ? { deviceId: { exact: micSel.value } } : true;
    localStream = await navigator.mediaDevices.getUserMedia({ video, audio });
    localVideo.srcObject = localStream;
    await listDevices();  // labels are known once permission is given
    if (!isLiveHere()) { localVideo.hidden = false; setNote("Camera preview: not live yet."); }
    return localStream;
  }
  function showError(msg) { const el = $("#golive-error"); el.textContent = msg; el.hidden = !msg; }

  async function goLive() {
    const btn = $("#golive-btn");
    btn.disabled = true;
    showError("");
    try {
      const stream = localStream || (await openCamera());
      const practice = $("#practice-toggle").checked;
      const sess = await publish(stream, { csrf: LMS.csrf, practice, event: eventId });
      publishing = sess;
      renderStatus();
      sess.pc.addEventListener("connectionstatechange", () => {
        if (sess === publishing && sess.pc.connectionState === "failed") showError("The connection to the server was lost: the LIVE has ended.");
      });
      LMS.toast(practice ? "Practice started" : "You are LIVE");
    } catch (e) {
      showError(e.status === 409 ? e.message : "Could not go live: " + e.message);
    } finally {
      btn.disabled = false;
    }
  }
  async function endLive() {
    const sess = publishing;
    publishing = null;
    try {
      if (sess) await sess.stop();  // DELETE /whip/{id}: the server ends the session
      else await LMS.api("POST", "/api/media/end");
    } catch (e) { LMS.toast(e.message, "error"); }
    renderStatus();
  }

  if (camSel) {
    $("#preview-btn").addEventListener("click", () => openCamera().catch((e) => showError("Camera: " + e.message)));
    camSel.addEventListener("change", () => { if (localStream && !publishing) openCamera().catch((e) => showError(e.message)); });
    micSel.addEventListener("change", () => { if (localStream && !publishing) openCamera().catch((e) => showError(e.message)); });
    $("#golive-btn").addEventListener("click", goLive);
    $("#endlive-btn").addEventListener("click", () => $("#end-dialog").showModal());
    $("#end-dialog").addEventListener("close", () => { if ($("#end-dialog").returnValue === "end") endLive(); });
    $("#practice-toggle").addEventListener("change", (ev) => { $("#practice-badge").hidden = !ev.target.checked && !(isLiveHere() && state.session.practice); });
    listDevices().catch(() => {});
    if (navigator.mediaDevices) navigator.mediaDevices.addEventListener("devicechange", () => listDevices().catch(() => {}));
  }
  const reveal = $("#reveal-key");
  if (reveal) reveal.addEventListener("click", () => {
    const input = $("#stream-key");
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    reveal.textContent = show ? "Hide" : "Reveal";
  });

  renderAll();
  loadBag();
  connect();
  syncPreview();
  window.LMSConsole = { state: () => state, reload };
})();
