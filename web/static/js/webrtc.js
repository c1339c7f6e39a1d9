// WHIP publish and WHEP play (RFC 9725 and WHEP) for the console, the viewer page and the media pages.
// No trickle ICE: the offer is sent once gathering is complete (bounded wait), as OBS and FFmpeg do.
// Errors carry the server's reason: err.message, err.status.

const GATHER_TIMEOUT_MS = 2000;

function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function exchange(url, pc, { key, csrf } = {}) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (key) headers.Authorization = "Bearer " + key;
  else if (csrf) headers["X-CSRF-Token"] = csrf;
  const res = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp,
                                 credentials: key ? "omit" : "same-origin" });
  const text = await res.text();
  if (res.status !== 201) {
    let message = text;
    try { message = JSON.parse(text).error.message; } catch (e) { /* not JSON */ }
    const err = new Error(message || res.statusText);
    err.status = res.status;
    throw err;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: text });
  return new URL(res.headers.get("Location"), new URL(url, location.href)).href;
}

function session(pc, resource, extra = {}) {
  let stopped = false;
  return Object.assign({
    pc,
    resource,
    /** End the session: DELETE the resource and close the connection. */
    async stop() {
      if (stopped) return;
      stopped = true;
      try { await fetch(resource, { method: "DELETE", headers: extra.deleteHeaders || {}, credentials: extra.deleteCredentials || "same-origin" }); }
      catch (e) { /* the server may already be gone */ }
      pc.close();
    },
  }, extra);
}

/**
 * Publish a MediaStream to the studio over WHIP.
 * options: url ("/whip"), key (stream key; else the staff session with csrf), csrf, practice (bool),
 * event (the id of the event to go live in; default: the event whose time it is),
 * videoCodec ("H264" or "VP8"; default: the browser's choice).
 */
export async function publish(stream, options = {}) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    if (track.kind === "video" && options.videoCodec && RTCRtpSender.getCapabilities) {
      const wanted = options.videoCodec.toLowerCase();
      const codecs = RTCRtpSender.getCapabilities("video").codecs;
      const first = codecs.filter((c) => c.mimeType.toLowerCase() === "video/" + wanted);
      if (first.length) transceiver.setCodecPreferences(first.concat(codecs.filter((c) => !first.includes(c))));
    }
  }
  let url = options.url || "/whip";
  if (options.practice) url += (url.includes("?") ? "&" : "?") + "practice=1";
  if (options.event != null) url += (url.includes("?") ? "&" : "?") + "event=" + encodeURIComponent(options.event);
  try {
    const resource = await exchange(url, pc, options);
    // DELETE as it was published: with the key (and no cookies), or with the staff session and its CSRF token
    const deleteHeaders = options.key ? { Authorization: "Bearer " + options.key } : { "X-CSRF-Token": options.csrf || "" };
    return session(pc, resource, { deleteHeaders, deleteCredentials: options.key ? "omit" : "same-origin" });
  } catch (err) {
    pc.close();
    throw err;
  }
}

/**
 * Play the program over WHEP into a <video> element.
 * options: url ("/whep"), csrf (viewer or staff CSRF token, if the page has cookies).
 */
export async function play(video, options = {}) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.addEventListener("track", (ev) => {
    stream.addTrack(ev.track);
    if (video.srcObject !== stream) video.srcObject = stream;
  });
  try {
    const resource = await exchange(options.url || "/whep", pc, options);
    return session(pc, resource, { stream, deleteHeaders: { "X-CSRF-Token": options.csrf || "" } });
  } catch (err) {
    pc.close();
    throw err;
  }
}

window.LMS = window.LMS || {};
window.LMS.webrtc = { publish, play };
