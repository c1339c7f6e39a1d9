// The billboard page's program preview: plays the program over WHEP while a session runs (staff may
// watch practice sessions too), and tries again every few seconds while nothing is live.
(function () {
  "use strict";
  const video = document.getElementById("program-preview");
  const offline = document.querySelector("[data-bb-offline]");
  if (!video) return;
  let pc = null;

  async function play() {
    pc = new RTCPeerConnection();
    const conn = pc;
    conn.addTransceiver("video", { direction: "recvonly" });
    conn.addTransceiver("audio", { direction: "recvonly" });
    conn.ontrack = (ev) => {
      const stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
      stream.addTrack(ev.track);
      video.srcObject = stream;
    };
    await conn.setLocalDescription(await conn.createOffer());
    await new Promise((resolve) => {
      if (conn.iceGatheringState === "complete") return resolve();
      conn.addEventListener("icegatheringstatechange", () => conn.iceGatheringState === "complete" && resolve());
      setTimeout(resolve, 2000);
    });
    const res = await fetch("/whep", { method: "POST", credentials: "same-origin", body: conn.localDescription.sdp,
      headers: { "Content-Type": "application/sdp", "X-CSRF-Token": LMS.csrf } });
    if (res.status !== 201) throw new Error("not live");
    await conn.setRemoteDescription({ type: "answer", sdp: await res.text() });
    conn.addEventListener("connectionstatechange", () => {
      if (["failed", "closed", "disconnected"].includes(conn.connectionState)) retry();
    });
    if (offline) offline.hidden = true;
  }

  let timer = null;
  function retry() {
    if (pc) { pc.close(); pc = null; }
    video.srcObject = null;
    if (offline) offline.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(start, 3000);
  }

  function start() { play().catch(retry); }
  start();
})();
