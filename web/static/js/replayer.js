// The replay of a past session, shared by the past-session console (replay-console.js) and the public replay
// (replay.js): its recording parts played one after the other as one video, a time bar with markers, and the
// timeline's items shown once the video reaches their offset (GET /api/sessions/{id}/timeline, lmserver/replay.py).

/** Format seconds as m:ss (or h:mm:ss). */
export function clock(s) {
  s = Math.max(0, Math.floor(s || 0));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
}

/**
 * Play `parts` ([{url, duration}], in order) in `video` as one replay.
 * opts.onTime(t): called with the replay time (seconds) as it plays or seeks; opts.onEmpty(): no part to play.
 * Returns {time(), duration, seek(t), play()}.
 */
export function createReplayer(video, parts, opts = {}) {
  const starts = [];
  let total = 0;
  parts.forEach((p) => { starts.push(total); total += Number(p.duration) || 0; });
  let index = -1;

  function load(i, at, play) {
    if (i !== index) {
      index = i;
      video.src = parts[i].url;
    }
    const go = () => { try { video.currentTime = Math.max(0, at); } catch (e) { /* not seekable yet */ } if (play) video.play().catch(() => {}); report(); };
    if (video.readyState >= 1 && video.currentSrc && video.currentSrc.endsWith(parts[i].url)) go();
    else video.addEventListener("loadedmetadata", go, { once: true });
  }
  function partAt(t) {
    let i = 0;
    while (i + 1 < parts.length && t >= starts[i + 1]) i++;
    return i;
  }
  function time() { return index < 0 ? 0 : starts[index] + (video.currentTime || 0); }
  function report() { if (opts.onTime) opts.onTime(time()); }
  function seek(t) {
    if (!parts.length) return;
    t = Math.min(Math.max(0, t), Math.max(0, total - 0.05) || t);
    const i = partAt(t);
    load(i, t - starts[i], !video.paused || video.autoplay);
  }

  video.addEventListener("timeupdate", report);
  video.addEventListener("seeked", report);
  video.addEventListener("ended", () => { if (index + 1 < parts.length) load(index + 1, 0, true); });
  if (parts.length) load(0, 0, false);
  else if (opts.onEmpty) opts.onEmpty();
  return { time, seek, duration: total, play: () => video.play().catch(() => {}) };
}

/**
 * The time bar under the video: a track with the played part, the `markers` ([{offset, title, cls}]) and
 * click-to-seek. Returns {update(t)}.
 */
export function timeBar(el, duration, markers, onSeek) {
  const esc = window.LMS.escape;
  const d = Math.max(duration, 1);
  el.innerHTML = `<div class="rp-track"><div class="rp-played"></div>` +
    markers.map((m) => `<button type="button" class="rp-marker ${esc(m.cls || "")}" style="left:${Math.min(100, (m.offset / d) * 100).toFixed(2)}%"` +
      ` data-seek="${Number(m.offset)}" title="${esc(clock(m.offset) + " · " + m.title)}" aria-label="${esc(clock(m.offset) + " " + m.title)}"></button>`).join("") +
    `</div><span class="rp-time tabular"><span class="rp-now">0:00</span> / ${clock(duration)}</span>`;
  const track = el.querySelector(".rp-track");
  track.addEventListener("click", (ev) => {
    const marker = ev.target.closest("[data-seek]");
    if (marker) { onSeek(parseFloat(marker.dataset.seek)); return; }
    const r = track.getBoundingClientRect();
    onSeek(((ev.clientX - r.left) / r.width) * duration);
  });
  return {
    update(t) {
      el.querySelector(".rp-played").style.width = Math.min(100, (t / d) * 100).toFixed(2) + "%";
      el.querySelector(".rp-now").textContent = clock(t);
    },
  };
}

/** The items of the timeline reached at replay time t (items are sorted by offset). */
export function reached(items, t) {
  let n = 0;
  while (n < items.length && items[n].offset <= t) n++;
  return items.slice(0, n);
}

/** A comment item of the timeline as LMS.comments draws it (created_at: its wall time). */
export function asComment(item) {
  return Object.assign({ created_at: item.at }, item);
}
