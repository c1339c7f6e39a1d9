// The past-session console (?session=N): the session's replay beside its timeline (lmserver/replay.py).
// Items appear once the video reaches their offset; clicking one (or a comment of the prompter's feed) seeks to it;
// product pins, orders and the plugins' moments are markers on the time bar. Publishing the replay is a switch.
import { asComment, clock, createReplayer, reached, timeBar } from "./replayer.js";

(function () {
  "use strict";
  const LMS = window.LMS;
  const esc = LMS.escape;
  const $ = (sel) => document.querySelector(sel);
  const root = $("#replay");
  if (!root) return;
  const sid = parseInt(root.dataset.session, 10);
  const video = $("#replay-video");
  let items = [], kinds = {}, player = null, bar = null, shown = -1;

  function itemHtml(it) {
    const at = `<span class="when" title="${esc(LMS.time(it.at, "seconds"))}">${clock(it.offset)}</span>`;
    let html;
    if (it.kind === "comment") {
      html = LMS.comments.html(asComment(it), { time: false });
      return html.replace("<li ", `<li data-seek="${it.offset}" `).replace("</span>", "</span>" + at);  // the time after the nickname
    }
    if (it.kind === "order") {
      const o = it.order;
      html = `<span><span class="who">${esc(o.nickname)}</span>${o.label ? `<span class="tag">${esc(o.label)}</span>` : ""}${at}</span>` +
        `<span class="amount">${LMS.money(o.amount_cents, o.currency)}</span><span class="detail">${o.quantity} × ${esc(o.product_title)}</span>`;
      return `<li class="feed-item order" data-seek="${it.offset}" data-order="${it.id}">${html}</li>`;
    }
    const kind = kinds[it.name] || { name: it.name, label: it.name, template: null };
    return `<li class="feed-item activity" data-seek="${it.offset}" data-activity="${esc(it.name)}">${LMS.activity.html(kind, it)}${at}</li>`;
  }

  function render(t) {
    const now = reached(items, t);
    if (bar) bar.update(t);
    if (now.length === shown) return;
    const list = $("#replay-feed");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (now.length > shown && shown >= 0) list.insertAdjacentHTML("beforeend", now.slice(shown).map(itemHtml).join(""));
    else list.innerHTML = now.map(itemHtml).join("");
    shown = now.length;
    $("#replay-count").textContent = shown ? `${shown} of ${items.length}` : "";
    $("#replay-empty").hidden = shown > 0;
    if (atBottom || now.length) list.scrollTop = list.scrollHeight;
  }

  function seek(t) { if (player) player.seek(t); render(t); }

  document.addEventListener("click", (ev) => {
    const el = ev.target.closest("#replay-feed [data-seek]");
    if (el) { seek(parseFloat(el.dataset.seek)); return; }
    const c = ev.target.closest("#feed-comments [data-comment]");  // the prompter's comment feed: seek to that comment
    if (c && !ev.target.closest("button")) {
      const it = items.find((x) => x.kind === "comment" && x.id === parseInt(c.dataset.comment, 10));
      if (it) seek(it.offset);
    }
  });

  function markerOf(it) {
    if (it.kind === "order") return { offset: it.offset, title: `${it.order.nickname}: ${it.order.quantity} × ${it.order.product_title}`, cls: "rp-order" };
    const kind = kinds[it.name] || { label: it.name };
    const d = it.data || {};
    const what = d.product && d.product.title ? `${kind.label}: ${d.product.title}` : kind.label;
    return { offset: it.offset, title: what, cls: it.name === "product.pinned" ? "rp-pin" : "rp-moment" };
  }

  function renderPublish(session) {
    const box = $("#replay-publish");
    const link = $("#replay-public-link");
    const url = `/e/${encodeURIComponent(root.dataset.eventSlug)}/replay/${sid}`;
    link.href = url;
    link.hidden = !session.published;
    if (box) box.checked = session.published;
  }
  const box = $("#replay-publish");
  if (box) box.addEventListener("change", async () => {
    box.disabled = true;
    try {
      const res = await LMS.api(box.checked ? "POST" : "DELETE", `/api/sessions/${sid}/publish`);
      renderPublish(res);
      LMS.toast(res.published ? "The replay is public on the event page" : "The replay is no longer public");
    } catch (e) {
      box.checked = !box.checked;
      LMS.toast(e.message, "error");
    } finally { box.disabled = false; }
  });

  async function load() {
    let tl;
    try { tl = await LMS.api("GET", `/api/sessions/${sid}/timeline`); }
    catch (e) { $("#replay-note").textContent = "The replay could not be loaded: " + e.message; return; }
    (tl.kinds || []).forEach((k) => (kinds[k.name] = k));
    items = tl.items;
    renderPublish(tl.session);
    const parts = tl.parts.filter((p) => p.url);
    $("#replay-video-links").innerHTML = parts.map((p) =>
      `<a class="btn btn-sm" href="${esc(p.url)}?download=1" download>Video${parts.length > 1 ? " part " + Number(p.part) : ""} (MP4)</a>`).join("");
    const duration = parts.length ? tl.session.duration : Math.max(tl.session.duration || 0, items.length ? items[items.length - 1].offset : 0);
    bar = timeBar($("#replay-bar"), duration, items.filter((it) => it.marker).map(markerOf), seek);
    player = createReplayer(video, parts, {
      onTime: render,
      onEmpty: () => { $("#replay-note").textContent = "This session has no recording: its timeline is below."; video.removeAttribute("controls"); },
    });
    if (parts.length) $("#replay-note").textContent = "";
    render(parts.length ? 0 : duration);  // without a video, everything is shown
  }
  load();
  window.LMSReplay = { seek, time: () => (player ? player.time() : 0), items: () => items };
})();
