// The LIVE console: metrics, LIVE feed (WHIP publish, WHEP preview), prompter; kept in sync by LMS.bus (/ws/console).
// The products panel is the shopping-bag widget (bag.js); plugin panels draw themselves and use LMS.bus too.
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
  function timeOf(ts) { return LMS.time(ts, "seconds"); }
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
  }
  // seconds to the event's start inside its ready window (events.ready_minutes before it), else null
  function readyWait() {
    const pill = $("#status-pill"), ready = Number(pill.dataset.readySeconds || 0);
    const wait = state.event.starts_at - Date.now() / 1000;
    return wait > 0 && wait <= ready ? wait : null;
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
      $("#m-date").textContent = LMS.time(state.session.started_at, "date");
      $("#m-start").textContent = LMS.time(state.session.started_at, "time");
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
  setInterval(() => { if (!isLiveHere() && !readonly) renderPill(); }, 1000);  // the ready window opens, counts down

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

  function renderPill() {  // LIVE, Practice, Ready · starts in 4:12 (the ready window), Offline, Past session
    const pill = $("#status-pill");
    const s = state.session;
    // Ready until the event's first real LIVE (an ended practice leaves it ready; an ended LIVE is Offline)
    const wait = !(s && (s.live || !s.practice)) && !readonly ? readyWait() : null;
    pill.className = "pill" + (s && s.live ? (s.practice ? " pill-practice" : " pill-live") : (wait !== null ? " pill-ready" : ""));
    pill.textContent = s && s.live ? (s.practice ? "Practice" : "LIVE") :
      (readonly ? "Past session" : (wait !== null ? `Ready · starts in ${fmtDuration(wait)}` : "Offline"));
  }
  function renderStatus() {
    renderPill();
    const s = state.session;
    $("#practice-badge").hidden = !(s && s.live && s.practice);
    const studioPill = $("#topbar-live");  // the site bar's pill follows the studio, not the page load
    if (studioPill) studioPill.style.display = state.studio_live ? "" : "none";
    const go = $("#golive-btn"), end = $("#endlive-btn");
    if (go) {
      // Go LIVE stays offered on every console that is not the one streaming: trying it while the studio is
      // live elsewhere shows the server's "already live from another device" message.
      const studioBusy = !!state.studio_live;
      go.hidden = !!publishing;
      end.hidden = !studioBusy;
      // practice: "End practice", and Go LIVE next to it turns the practice into the real LIVE (golive.js)
      const practising = !!(state.studio_live && state.studio_live.practice);
      end.textContent = practising ? "End practice" : "End LIVE";
      $("#practice-golive-btn").hidden = !practising;
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
  function commentActions(c) {
    if (!data.can_moderate || c.hidden) return "";
    return `<div class="actions-row">` +
      (c.parent_id ? "" : `<button type="button" class="btn btn-ghost" data-act="reply" data-id="${c.id}">Reply</button>`) +
      (c.pinned ? `<button type="button" class="btn btn-ghost" data-act="unpin" data-id="${c.id}">Unpin</button>` :
        `<button type="button" class="btn btn-ghost" data-act="pin" data-id="${c.id}">Pin</button>`) +
      `<button type="button" class="btn btn-ghost" data-act="hide" data-id="${c.id}">Hide</button>` +
      (c.viewer_id ? `<button type="button" class="btn btn-ghost btn-danger" data-act="block" data-id="${c.id}">Block</button>` : "") +
      `</div>`;
  }
  const COMMENT_OPTS = { actions: commentActions };
  function commentHtml(c) { return LMS.comments.html(c, COMMENT_OPTS); }

  // activity kinds as declared on the bus (EventSpec.activity: core and plugins alike)
  const KINDS = {};
  (data.activity_kinds || []).forEach((k) => (KINDS[k.name] = k));
  const GIFT = data.gifts || {};
  function activityHtml(a) {
    const d = a.data || {};
    if (d.comment && (a.name === "comment.created" || a.name === "comment.held")) return commentHtml(byId.get(d.comment.id) || d.comment);
    const kind = KINDS[a.name] || { name: a.name, label: a.name, template: null };
    return `<li class="feed-item activity" data-activity="${esc(a.name)}">${LMS.activity.html(kind, a, { gifts: GIFT })}` +
      `${a.practice ? '<span class="tag">practice</span>' : ""}<span class="when">${timeOf(a.at)}</span></li>`;
  }
  function orderHtml(o) {
    return `<li class="feed-item order" data-order="${o.id}"><span><span class="who">${esc(o.nickname)}</span>${o.first_time ? '<span class="tag">first order</span>' : ""}${o.practice ? '<span class="tag">practice</span>' : ""}${o.label ? `<span class="tag">${esc(o.label)}</span>` : ""}</span>` +
      `<span class="amount">${LMS.money(o.amount_cents, o.currency)}</span>` +
      `<span class="detail">${o.quantity} × ${esc(o.product_title)} @ ${LMS.money(o.unit_price_cents, o.currency)}</span>` +
      `<span class="detail order-meta">${statusPill(o.status)}<span class="when">${timeOf(o.created_at)}</span></span></li>`;
  }
  // the order's status as the Orders page shows it (same label, same .order-status colours in app.css)
  function statusPill(status) {
    if (!status) return "";
    return `<span class="pill order-status status-${esc(status)}" data-order-status="${esc(status)}">${esc(status.replace("_", " "))}</span>`;
  }
  // a finding (lmserver/prompter.py): what the rule saw, its one-click actions (the console's own APIs), dismiss
  function prompterHtml(a) {
    const d = a.data || {};
    const t = d.trigger;
    const saw = t ? `<div class="detail small muted trigger">${esc(t.metric)} ${esc(t.value)}` +
      (t.threshold != null ? ` (threshold ${esc(t.threshold)})` : "") + (t.window ? ` · ${esc(t.window)} s window` : "") + `</div>` : "";
    const open = d.status === "active";
    const acts = open && !readonly ? (d.actions || []).map((x, i) =>
      `<button type="button" class="btn btn-sm" data-finding="${d.id}" data-action="${i}">${esc(x.label)}</button>`).join("") +
      `<button type="button" class="btn btn-sm btn-ghost" data-finding="${d.id}" data-action="dismiss">Dismiss</button>` : "";
    const state_ = d.status === "resolved" ? '<span class="tag">resolved</span>' :
      d.status === "dismissed" ? `<span class="tag">dismissed${d.dismissed_by ? " by " + esc(d.dismissed_by) : ""}${d.acted ? ": " + esc(d.acted) : ""}</span>` : ""
    const practice = d.practice ? '<span class="tag">practice</span>' : "";
    return `<li class="feed-item finding level-${esc(d.level || "info")} status-${esc(d.status || "active")}" data-finding-id="${d.id}" data-key="${esc(d.key || "")}">` +
      `<div class="body">${esc(d.text)}</div>${state_}${practice}${saw}${acts ? `<div class="actions-row">${acts}</div>` : ""}` +
      `<span class="when">${esc(d.plugin || "")} · ${timeOf(a.at)}</span></li>`;
  }
  function findingById(id) { const r = state.prompter.find((x) => x.data && x.data.id === id); return r && r.data; }
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-finding]");
    if (!btn) return;
    const f = findingById(parseInt(btn.dataset.finding, 10));
    if (!f) return;
    try {
      if (btn.dataset.action === "dismiss") { await LMS.api("POST", `/api/prompter/findings/${f.id}/dismiss`, {}); return; }
      const x = f.actions[parseInt(btn.dataset.action, 10)];
      if (x.comment_id != null) {
        selectTab("comments");
        const el = document.querySelector(`[data-comment="${x.comment_id}"]`);
        if (el) { el.scrollIntoView({ block: "center" }); el.classList.add("flash"); }
        return;
      }
      if (x.href) { window.open(x.href, "_blank", "noopener"); return; }
      if (x.panel) { const el = document.getElementById("panel-" + x.panel) || document.getElementById(x.panel); if (el) el.scrollIntoView(); return; }
      if (x.confirm && !confirm(x.confirm)) return;
      if (x.action) {  // a plugin's named action (lmserver/actions.py): it does the thing, with its own permission
        const r = await LMS.api("POST", `/api/actions/${encodeURIComponent(x.action)}`, { params: x.params || {} });
        LMS.toast((r.result && r.result.text) || x.label + ": done");
      } else {
        await LMS.api(x.method || "POST", x.url, x.body || undefined);
        LMS.toast(x.label + ": done");
      }
      await LMS.api("POST", `/api/prompter/findings/${f.id}/dismiss`, { action: x.label }).catch(() => {});
    } catch (e) { LMS.toast(e.message, "error"); }
  });
  // the health line turns amber/red with an open LIVE-diagnosis finding
  function renderHealthLevel() {
    const el = $("#health");
    if (!el) return;
    const open = state.prompter.map((r) => r.data).filter((d) => d.area === "stream" && d.status === "active");
    const level = open.some((d) => d.level === "critical") ? "critical" : open.some((d) => d.level === "warning") ? "warning" : "";
    el.dataset.level = level;
    el.title = open.map((d) => d.text).join("\n");
  }

  function scrollKeep(list, fn) {
    const pane = list.closest(".tab-pane");
    const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
    fn();
    if (atBottom) pane.scrollTop = pane.scrollHeight;
  }

  // which comments: all, product questions (the server's product_id: a bag product named, or asked from its pinned
  // card) or unanswered (a viewer's comment no staff reply answers yet); each with its thread
  let commentFilter = localStorage.getItem("lms-comment-filter") || "all";
  function shownComments() {
    if (commentFilter === "all") return state.comments;
    const answered = new Set(state.comments.filter((c) => c.staff && c.parent_id).map((c) => c.parent_id));
    const keep = new Set(state.comments.filter((c) => !c.parent_id && !c.staff && (commentFilter === "product"
      ? c.product_id != null : !answered.has(c.id) && !c.hidden)).map((c) => c.id));
    return state.comments.filter((c) => keep.has(c.id) || (commentFilter === "product" && keep.has(c.parent_id)));
  }
  function renderCommentFilter() {
    document.querySelectorAll("[data-comments]").forEach((b) => b.setAttribute("aria-checked", String(b.dataset.comments === commentFilter)));
    $("#comment-filter").hidden = $("#feed-filter").value !== "comments";
  }
  document.querySelectorAll("[data-comments]").forEach((b) => b.addEventListener("click", () => {
    commentFilter = b.dataset.comments;
    localStorage.setItem("lms-comment-filter", commentFilter);
    renderComments();
  }));

  function renderComments() {
    const list = $("#feed-comments");
    const filter = $("#feed-filter").value;  // "comments", "all", or one activity kind's name
    byId.clear();
    state.comments.forEach((c) => byId.set(c.id, c));
    const pane = list.closest(".tab-pane");
    renderCommentFilter();
    if (filter === "comments") LMS.comments.render(list, shownComments(), Object.assign({ scroller: pane }, COMMENT_OPTS));
    else {
      const acts = filter === "all" ? state.activities : state.activities.filter((a) => a.name === filter);
      scrollKeep(list, () => (list.innerHTML = acts.map(activityHtml).join("")));
    }
    $("#count-comments").textContent = state.comments.filter((c) => !c.staff).length || "";
  }
  function renderOrders() {
    $("#feed-orders").innerHTML = state.orders.map(orderHtml).join("");
    $("#count-orders").textContent = state.orders.length || "";
  }
  function renderPrompter() {
    // open findings first, newest first; then resolved and dismissed ones
    const rank = (a) => (a.data && a.data.status === "active" ? 0 : 1);
    const sorted = state.prompter.slice().reverse().sort((x, y) => rank(x) - rank(y));
    const sug = sorted.filter((a) => a.name === "prompter.suggestion");
    const vio = sorted.filter((a) => a.name === "prompter.violation");
    renderHealthLevel();
    $("#feed-suggestions").innerHTML = sug.map(prompterHtml).join("");
    $("#feed-quality").innerHTML = vio.map(prompterHtml).join("");
    $("#count-suggestions").textContent = sug.filter((a) => rank(a) === 0).length || "";
    $("#count-quality").textContent = vio.filter((a) => rank(a) === 0).length || "";
  }
  // ------------------------------------------------------------------ scripts (staff-only prompter view)
  let scriptTab = "product", scriptLarge = localStorage.getItem("lms-script-large") === "1";
  function renderScript() {
    const view = $("#script-view");
    if (!view) return;
    document.querySelectorAll("[data-script-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.scriptTab === scriptTab)));
    $("#script-large").setAttribute("aria-pressed", String(scriptLarge));
    view.classList.toggle("large", scriptLarge);
    const p = state.pinned_product;
    let title, text, empty;
    if (scriptTab === "product") {
      title = p ? p.title : "";
      text = p ? p.script : "";
      empty = p ? "No talking points for this product yet: write them in the bag (✎) or the catalog." : "Pin a product: its talking points show here.";
    } else {
      title = "Run of show";
      text = state.event_script;
      empty = "No run-of-show script: add one when you edit the event.";
    }
    view.dataset.showing = scriptTab;
    view.innerHTML = (title ? `<h3 class="script-title">${esc(title)}</h3>` : "") +
      (text ? `<div class="script-text">${esc(text)}</div>` : `<p class="muted script-empty">${esc(empty)}</p>`);
    view.scrollTop = 0;
  }
  document.querySelectorAll("[data-script-tab]").forEach((b) => b.addEventListener("click", () => { scriptTab = b.dataset.scriptTab; renderScript(); }));
  const largeBtn = $("#script-large");
  if (largeBtn) largeBtn.addEventListener("click", () => {
    scriptLarge = !scriptLarge;
    localStorage.setItem("lms-script-large", scriptLarge ? "1" : "0");
    renderScript();
  });

  function renderAll() {
    renderStatus(); renderMetrics(); renderPinned(); renderComments(); renderOrders(); renderPrompter(); renderScript();
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

  // ------------------------------------------------------------------ the bus (LMS.bus: the page's one socket)
  function onRecord(rec) {
    if (readonly) return;
    apply(rec);
    // every declared activity kind (core or plugin) of this event's session goes to the "All activities" feed
    const sid = state.session && state.session.id;
    if (KINDS[rec.name] && ours(rec) && (rec.session_id == null || rec.session_id === sid)) pushActivity(rec);
  }
  function apply(rec) {
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
        return;
      case "recording.warning":  // the disk is nearly full, or the recording stopped (the LIVE goes on)
        LMS.toast(d.message, d.level === "critical" ? "error" : undefined);
        return;
      case "bus.reconnected":  // records may have been missed
        reload();
        return;
    }
    if (!ours(rec)) return;
    switch (rec.name) {
      case "comment.created": case "comment.held":
        if (rec.session_id != null && rec.session_id !== sid) return;
        upsertComment(Object.assign({ hidden: rec.name === "comment.held" }, d.comment));
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
        refreshMetrics();
        break;
      case "order.status_changed": {  // staff, a payment plugin or the checkout changed it: the pill follows
        const o = state.orders.find((x) => x.id === d.order_id);
        if (o) { o.status = d.to; renderOrders(); }
        break;
      }
      case "order.released":  // unpaid reservations released by the server: cancelled
        if (state.orders.some((x) => (d.order_ids || []).includes(x.id))) {
          state.orders.forEach((x) => { if (d.order_ids.includes(x.id)) x.status = "cancelled"; });
          renderOrders();
        }
        break;
      case "product.pinned":  // staff receive the product whole, script included
        state.pinned_product_id = d.product.id;
        state.pinned_product = { id: d.product.id, title: d.product.title, script: d.product.script || "" };
        scriptTab = "product"; renderScript();
        break;
      case "product.unpinned": state.pinned_product_id = null; state.pinned_product = null; renderScript(); break;
      case "product.updated":
        if (state.pinned_product && d.product.id === state.pinned_product.id) {
          Object.assign(state.pinned_product, { title: d.product.title, script: d.product.script || "" });
          renderScript();
        }
        break;
      case "event.updated":
        if (typeof d.event.script === "string") { state.event_script = d.event.script; renderScript(); }
        break;
      case "prompter.suggestion": case "prompter.violation":
        if (rec.session_id != null && rec.session_id !== sid) return;
        {  // a finding is updated in place (same id)
          const i = state.prompter.findIndex((x) => x.data && rec.data && x.data.id === rec.data.id);
          if (i >= 0) state.prompter[i] = rec; else state.prompter.push(rec);
          if (state.prompter.length > 300) state.prompter.splice(0, state.prompter.length - 300);
        }
        renderPrompter(); break;
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
    const filter = $("#feed-filter").value;
    if (filter === "all" || filter === rec.name) renderComments();
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
    // the recording (issue 14): a small REC indicator with its size; stopped/off in amber, the reason on hover
    const r = h.recording;
    if (r) {
      const rec = document.createElement("span");
      rec.id = "rec-indicator";
      rec.className = "rec rec-" + r.state;
      const mb = (r.size / 1048576).toFixed(r.size < 10485760 ? 1 : 0) + " MB";
      rec.textContent = (parts.length ? " · " : "") + (r.state === "recording" ? "● REC " + mb : r.state === "off" ? "not recording" : "REC " + r.state + " (" + mb + ")");
      if (r.warning) rec.title = r.warning;
      el.append(rec);
    }
  }

  async function reload() {
    try {
      state = await LMS.api("GET", `/api/events/${eventId}/console`);
      renderAll();
      syncPreview();
    } catch (e) { LMS.toast("Could not reload the console: " + e.message, "error"); }
  }

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
  let cameraChosen = false;  // the host picked a camera (or the default was settled): no more automatic choice
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
      else if (kind === "videoinput" && !cameraChosen) {  // OBS Virtual Camera, when present, is the default choice
        const obs = opts.find((d) => /OBS Virtual Camera/i.test(d.label));
        if (obs) sel.value = obs.deviceId;
      }
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
    const track = localStream.getVideoTracks()[0];
    if (!camSel.value || !track || (track.getSettings().deviceId || camSel.value) === camSel.value) { /* the chosen camera */ }
    else if (!cameraChosen) { cameraChosen = true; return openCamera(); }  // the labels showed OBS Virtual Camera: use it
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
    camSel.addEventListener("change", () => { cameraChosen = true; if (localStream && !publishing) openCamera().catch((e) => showError(e.message)); });
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
  if (!readonly) LMS.bus.on("*", onRecord);  // the page's one socket (<body data-bus>), shared with the bag and plugin panels
  syncPreview();
  window.LMSConsole = { state: () => state, reload };
})();
