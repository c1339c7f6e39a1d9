// Shared helpers for every page: theme, API calls with the CSRF token, toasts, copy buttons, countdowns,
// the page's one bus connection (LMS.bus), activity texts (LMS.activity) and comment threads (LMS.comments).
// Loaded by base.html as a classic script at the end of <body>: scripts with `defer` or `type="module"` (every
// page script and plugin script) run after it and find window.LMS complete.
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

  // LMS.time(ts, kind): UNIX seconds in the studio's time zone (window.LMS.tz), in the one format of lmserver/timefmt.py:
  // "datetime" Tue 1 Dec 2026, 14:05 CET · "short" Tue 1 Dec, 14:05 · "date" Tue 1 Dec · "time" 14:05 · "seconds" 14:05:09
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const timeFormats = {};
  LMS.time = function (ts, kind = "datetime") {
    const d = new Date(ts * 1000);
    if (ts == null || isNaN(d)) return "";
    const zone = LMS.tz || "UTC";
    const f = timeFormats[zone] || (timeFormats[zone] = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23",
      weekday: "short", year: "numeric", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
      timeZoneName: "short" }));
    const p = {};
    f.formatToParts(d).forEach((x) => (p[x.type] = x.value));
    const hm = `${p.hour.padStart(2, "0")}:${p.minute}`;
    const date = `${p.weekday} ${p.day} ${MONTHS[Number(p.month) - 1]}`;
    switch (kind) {
      case "short": return `${date}, ${hm}`;
      case "date": return date;
      case "time": return hm;
      case "seconds": return `${hm}:${p.second}`;
      case "month": return MONTHS[Number(p.month) - 1];
      case "day": return p.day;
      default: return `${date} ${p.year}, ${hm} ${p.timeZoneName}`;
    }
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

  // ------------------------------------------------------------------ LMS.bus: the page's one WebSocket
  /**
   * The session bus, live, over ONE WebSocket per page, shared by the page's script, its widgets and plugin scripts.
   *
   *   const off = LMS.bus.on("shoutout.", (rec) => ...);    // every record whose name starts with "shoutout."
   *   LMS.bus.on("stream.started", fn);                      // one name (and "stream.started.*", if any)
   *   LMS.bus.on("*", fn);                                   // every record
   *   off();                                                 // unsubscribe
   *
   * A record is {id, name, event_id, session_id, practice, at, data} (lmserver/busevents.py documents every name).
   * Which socket: <body data-bus="/ws/console"> (staff pages, set by base.html) or
   * <body data-bus="/ws/viewer?event=ID"> (the viewer page); LMS.bus.connect(url) chooses explicitly. The socket opens
   * on the first LMS.bus.on() (a page nobody listens on opens none) and only if the page names a URL.
   *
   * Notifications from the bus itself (also delivered to on(prefix) and as DOM events):
   *   "hello"           the server greets every (re)connection: {name: "hello", data: {audience}}
   *   "bus.reconnected" the socket came back after a gap: records may have been missed, refetch your state
   *   "bus.closed"      the socket closed; it reconnects with backoff (0.5 s doubling to 10 s, at most 60 tries
   *                     in a row, then it stops and asks for a page reload)
   * Every record is also dispatched as a DOM event: document.addEventListener("lms:bus", (ev) => ev.detail).
   * document.body.dataset.ws is "open" or "closed" (tests and CSS can wait on it).
   */
  const bus = (LMS.bus = (function () {
    const subs = new Set();  // {prefix, fn}
    let url = null, ws = null, delay = 500, tries = 0, everOpen = false, timer = null, stopped = false;
    const MAX_TRIES = 60, MAX_DELAY = 10000;

    function matches(prefix, name) {
      if (prefix === "*" || prefix === "") return true;
      if (prefix.endsWith(".")) return name.startsWith(prefix);
      return name === prefix || name.startsWith(prefix + ".");
    }
    function emit(rec) {
      for (const s of Array.from(subs)) {
        if (!matches(s.prefix, rec.name)) continue;
        try { s.fn(rec); } catch (e) { console.error("LMS.bus subscriber of", s.prefix, "failed:", e); }
      }
      document.dispatchEvent(new CustomEvent("lms:bus", { detail: rec }));
    }
    function absolute(u) {
      if (/^wss?:/.test(u)) return u;
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + u;
    }
    function open() {
      if (!url || stopped) return;
      clearTimeout(timer);
      timer = null;
      ws = new WebSocket(absolute(url));
      const mine = ws;
      ws.onmessage = (ev) => {
        let rec;
        try { rec = JSON.parse(ev.data); } catch (e) { return; }
        if (!rec || typeof rec.name !== "string" || rec.name === "pong") return;
        emit(rec);
      };
      ws.onopen = () => {
        const gap = everOpen;
        everOpen = true; delay = 500; tries = 0;
        document.body.dataset.ws = "open";
        if (gap) emit({ name: "bus.reconnected", data: {} });
      };
      ws.onclose = () => {
        if (mine !== ws) return;
        ws = null;
        document.body.dataset.ws = "closed";
        emit({ name: "bus.closed", data: {} });
        if (stopped || !url) return;
        if (++tries > MAX_TRIES) { LMS.toast("Live updates stopped: reload the page", "error"); return; }
        timer = setTimeout(open, delay + Math.random() * 250);
        delay = Math.min(delay * 2, MAX_DELAY);
      };
    }
    setInterval(() => { if (ws && ws.readyState === 1) ws.send("ping"); }, 20000);
    window.addEventListener("pagehide", () => { stopped = true; if (ws) ws.close(); });

    return {
      /** Subscribe to records whose name is `prefix` or starts with it ("shoutout." or "shoutout"); "*": all. Returns off(). */
      on(prefix, fn) {
        const s = { prefix: String(prefix), fn };
        subs.add(s);
        if (!ws && !timer) { if (!url) url = document.body.dataset.bus || null; open(); }
        return () => subs.delete(s);
      },
      /** Open the page's socket now, on `url` (default: <body data-bus>); a second call with another URL moves it. */
      connect(u) {
        const next = u || url || document.body.dataset.bus || null;
        if (next === url && (ws || timer)) return;
        url = next;
        if (ws) { const old = ws; ws = null; old.close(); }
        open();
      },
      /** True while the socket is open. */
      get connected() { return !!ws && ws.readyState === 1; },
      /** The socket's URL (null: this page has none). */
      get url() { return url || document.body.dataset.bus || null; },
    };
  })());

  // ------------------------------------------------------------------ LMS.activity: how an activity record reads
  /**
   * Fill an activity kind's template (EventSpec.activity, see lmserver/busevents.py) with a record's data.
   * Every value and every literal piece is escaped. kind: {name, label, icon, template} as the server declares it.
   * opts.gifts: {id: {emoji, label}} for the "gift" filter.
   */
  LMS.activity = {
    html(kind, rec, opts = {}) {
      const d = rec.data || {};
      const esc = LMS.escape;
      const get = (path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), d);
      const sibling = (path, key) => get(path.split(".").slice(0, -1).concat(key).join("."));
      const template = kind && kind.template;
      let out = "";
      if (!template) {
        const text = Object.values(d).filter((v) => v !== null && typeof v !== "object").join(" · ");
        out = `<span class="who">${esc((kind && kind.label) || rec.name)}</span>${esc(text)}`;
      } else {
        const re = /\{([^{}]*)\}/g;
        let last = 0, m;
        while ((m = re.exec(template))) {
          out += esc(template.slice(last, m.index));
          last = re.lastIndex;
          const [path, filt] = m[1].split(/\|(.*)/s);
          const [fname, arg] = (filt || "").split(/:(.*)/s);
          let v = get(path);
          if (fname === "money") v = v == null ? "" : LMS.money(v, sibling(path, "currency"));
          else if (fname === "gift") { const g = (opts.gifts || {})[v]; v = g ? `${g.emoji} ${g.label}` : "🎁 " + (v == null ? "" : v); }
          else if (fname === "if") v = v ? arg || "" : "";
          v = v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
          out += m.index === 0 ? `<span class="who">${esc(v)}</span>` : `<span class="val">${esc(v)}</span>`;
        }
        out += esc(template.slice(last));
      }
      const icon = kind && kind.icon ? `<span class="icon" aria-hidden="true">${esc(kind.icon)}</span>` : "";
      return icon + out;
    },
  };

  // ------------------------------------------------------------------ LMS.comments: one thread renderer
  /**
   * Comment threads, built the same way on the console and the viewer page:
   *   <li class="feed-item comment [staff] [reply] [is-hidden]" data-comment="ID" [data-parent="ID"]>
   *     <span class="who">nickname</span> tags <span class="when">time</span> <div class="body">text</div> actions</li>
   * Order: each root comment followed by its replies (oldest first), then replies whose root is not loaded.
   * Every text is escaped. opts: {time: true, tags: true, actions: (c) => html, extra: html appended}
   */
  LMS.comments = {
    thread(comments) {
      const ids = new Set(comments.map((c) => c.id));
      const replies = {};
      comments.filter((c) => c.parent_id && ids.has(c.parent_id)).forEach((c) => (replies[c.parent_id] = replies[c.parent_id] || []).push(c));
      const out = [];
      comments.filter((c) => !c.parent_id).forEach((c) => { out.push(c); (replies[c.id] || []).forEach((r) => out.push(r)); });
      comments.filter((c) => c.parent_id && !ids.has(c.parent_id)).forEach((c) => out.push(c));
      return out;
    },
    html(c, opts = {}) {
      const esc = LMS.escape;
      const cls = ["feed-item", "comment"];
      if (c.staff) cls.push("staff");
      if (c.parent_id) cls.push("reply");
      if (c.hidden) cls.push("is-hidden");
      let tags = c.staff ? '<span class="tag">host</span>' : "";
      if (opts.tags !== false) {
        tags += (c.pinned ? '<span class="tag">pinned</span>' : "") +
          (c.hidden ? `<span class="tag" title="${esc(c.hidden_reason || "hidden")}">hidden${c.hidden_reason ? ": " + esc(c.hidden_reason) : ""}</span>` : "") +
          (c.practice ? '<span class="tag">practice</span>' : "");
      }
      const when = opts.time === false || !c.created_at ? "" :
        `<span class="when">${LMS.time(c.created_at, "seconds")}</span>`;
      return `<li class="${cls.join(" ")}" data-comment="${Number(c.id)}"${c.parent_id ? ` data-parent="${Number(c.parent_id)}"` : ""}>` +
        `<span class="who">${esc(c.nickname)}</span>${tags}${when}<div class="body">${esc(c.body)}</div>${opts.actions ? opts.actions(c) : ""}</li>`;
    },
    /** Render `comments` as threads into the list element `list`, keeping it scrolled to the bottom if it was. */
    render(list, comments, opts = {}) {
      const pane = opts.scroller || list;
      const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
      list.innerHTML = this.thread(comments).map((c) => this.html(c, opts)).join("") + (opts.extra || "");
      if (atBottom) pane.scrollTop = pane.scrollHeight;
    },
  };
})();
