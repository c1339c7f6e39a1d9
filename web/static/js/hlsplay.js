// HLS playback for the viewer page's fallback: hls.js (vendored in /static/vendor/hls.js, loaded only when
// needed) where Media Source Extensions exist, else the browser's own HLS (iOS Safari, which plays LL-HLS itself).
// The server writes LL-HLS (parts, blocking reload): hls.js in lowLatencyMode plays ~2–3 s behind the live picture.

let loading = null;
function loadScript(src) {
  if (window.Hls) return Promise.resolve();
  loading = loading || new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = () => resolve();
    s.onerror = () => { loading = null; reject(new Error("hls.js could not be loaded")); };
    document.head.appendChild(s);
  });
  return loading;
}

/**
 * Play the HLS playlist `url` in `video`. options: lib (URL of hls.light.min.js), onError(message) for a
 * fatal error hls.js could not recover from, lowLatency (default true; false: whole segments, ~3 segments
 * behind). Returns {stop()}.
 */
export async function playHls(video, url, options = {}) {
  video.srcObject = null;
  // hls.js where Media Source Extensions exist (as hls.js advises), else the browser's own HLS (iOS Safari)
  const mse = !!(window.MediaSource || window.ManagedMediaSource);
  if (mse) await loadScript(options.lib);
  const Hls = window.Hls;
  if (!Hls || !Hls.isSupported()) {
    if (!video.canPlayType("application/vnd.apple.mpegurl")) throw new Error("this browser can play neither WebRTC nor HLS");
    video.src = url;
    return { kind: "native", stop() { video.removeAttribute("src"); video.load(); } };
  }
  // LL-HLS: hls.js loads parts and holds back the server's PART-HOLD-BACK (3 parts, ~1.5 s) from the live edge;
  // no liveSyncDuration* / liveMaxLatency* here (set, they override it; the second alone makes hls.js throw).
  // It plays up to 1.25x to catch up after a stall.
  const hls = new Hls({ lowLatencyMode: options.lowLatency !== false, maxLiveSyncPlaybackRate: 1.25,
    maxBufferLength: 10, backBufferLength: 10,
    manifestLoadingMaxRetry: 30, manifestLoadingRetryDelay: 1000, levelLoadingMaxRetry: 30, fragLoadingMaxRetry: 10 });
  let mediaRecoveries = 0;
  hls.on(Hls.Events.ERROR, (_ev, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {  // the playlist comes back (first segment, the LIVE resumes)
      setTimeout(() => { if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR) hls.loadSource(url); else hls.startLoad(); }, 2000);
    }
    else if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries++ < 3) hls.recoverMediaError();
    else if (options.onError) options.onError(data.details || "HLS playback failed");
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.lmsHls = hls;  // for diagnostics: hls.playingDate is the wall-clock time of the picture shown
  return { kind: "hls.js", hls, stop() { hls.destroy(); delete video.lmsHls; video.removeAttribute("src"); } };
}
