"""Glass-to-glass latency: the clock drawn into the picture by the publisher, read back by the viewer.

The publisher draws the wall-clock time (milliseconds, 32 bits) into each frame as a row of black/white
blocks the moment it draws the frame; the viewer reads the blocks back from the decoded picture and
subtracts the time it sees from its own clock. Publishers and viewers run on this machine (Python's
``time.time()`` and the page's ``Date.now()`` are the same clock); lmserver runs as its own process
(``lmserver serve``), as in a studio.

Three pairs, each measured two ways in one run, interleaved (rounds):

- **aiortc → aiortc**: an aiortc publisher (:class:`ClockTrack`) and an aiortc viewer (:class:`ClockReader`);
- **Chromium → aiortc**: headless Chromium draws the clock on a canvas, ``canvas.captureStream(30)``,
  published from the page (WHIP ``fetch`` for lmserver); an aiortc viewer;
- **aiortc → Chromium**: an aiortc publisher; a Chromium page plays it in a ``<video>`` (WHEP ``fetch`` for
  lmserver) and reads the clock on ``requestVideoFrameCallback`` (drawImage + getImageData): Chromium's
  own jitter buffer and renderer are part of what a viewer lives with.

The two ways: **direct** (one peer connection publisher → viewer: the baseline, what any WebRTC path
costs) and **lmserver** (publisher → WHIP → decode, scale, composite, encode once → WHEP → viewer). The
server's added part is the difference of the medians. For each lmserver way the server's own stage
breakdown (``stream.health``'s ``stages_ms``, see ``lmserver/media/program.py``) is fetched from
``/api/media/status`` and printed beside it, with the server's CPU per program frame (CPU seconds of the
server's processes / frames encoded over the same window).

    .venv/bin/python -m bench.glass [--seconds 12] [--rounds 2] [--width 640 --height 360] [--no-chromium]
    .venv/bin/python -m bench.glass --quick      # a few seconds per way, one round; no BENCHMARKS.md change

Only the "glass" section of BENCHMARKS.md is rewritten.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import av
import numpy as np
from aiohttp import ClientSession, CookieJar
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402

BEGIN, END = "<!-- glass:begin -->", "<!-- glass:end -->"
BITS = 32
ROWS = 2  # row 0: the milliseconds; row 1: clock_check() of them. A frame counts when row 1 checks row 0.


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


# ------------------------------------------------------------------------------------------ the clock in pixels


def clock_check(ms: int) -> int:
    """The second row's code: MurmurHash3's 32-bit finalizer of ``ms`` xor a constant (so a flat picture fails).

    An encoder short of bits may leave a block of the previous frame in place. A plain copy in the second row
    goes stale the same way and agrees, and the frame reads as a wrong time, off by a power of two (hundreds
    of milliseconds for bits 7-9); with a hash, a mix of two frames' blocks fails the check.
    """
    v = (ms ^ 0xA5A5A5A5) & 0xFFFFFFFF
    v ^= v >> 16
    v = (v * 0x85EBCA6B) & 0xFFFFFFFF
    v ^= v >> 13
    v = (v * 0xC2B2AE35) & 0xFFFFFFFF
    return v ^ (v >> 16)


def draw_clock(img: np.ndarray, ms: int) -> None:
    """Write ``ms`` (mod 2^32) and its check as two rows of BITS black/white blocks across the top of ``img`` (RGB)."""
    h, w = img.shape[:2]
    bw = w // BITS
    bh = h // 12  # (h >= 96: blocks of 8 px at least)
    ms &= 0xFFFFFFFF
    for row, code in enumerate((ms, clock_check(ms))):
        y0 = row * bh
        for bit in range(BITS):
            on = (code >> (BITS - 1 - bit)) & 1
            img[y0:y0 + bh, bit * bw:(bit + 1) * bw] = 235 if on else 16


def read_clock(frame: av.VideoFrame) -> int | None:
    """The milliseconds drawn by :func:`draw_clock`, read from the decoded frame's luma (None if unreadable)."""
    y = frame.to_ndarray(format="gray")
    h, w = y.shape
    bw = w / BITS
    bh = h / 12  # the same proportions as drawn, whatever the scaling on the way
    values = []
    for row in range(ROWS):
        yc = int((row + 0.5) * bh)
        bits = 0
        for bit in range(BITS):
            xc = int((bit + 0.5) * bw)
            patch = y[max(0, yc - 2):yc + 3, max(0, int(xc) - 2):int(xc) + 3]
            bits = (bits << 1) | int(patch.mean() > 128)
        values.append(bits)
    return values[0] if values[1] == clock_check(values[0]) else None


def now_ms() -> int:
    return int(time.time() * 1000) & 0xFFFFFFFF


class ClockTrack(VideoStreamTrack):
    """A moving test picture with the capture time drawn in it, paced at 30 fps by aiortc."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.full((self.height, self.width, 3), 90, np.uint8)
        x = (self.n * 8) % self.width
        img[self.height // 2:, x:x + 40] = (200, 60, 60)  # some motion, so the encoder has work
        self.n += 1
        draw_clock(img, now_ms())  # the capture moment
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ClockReader:
    """Reads the clock out of every decoded frame of a track; latency samples in ms."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.unreadable = 0
        self.frames = 0
        self.task: asyncio.Task[None] | None = None
        self.collect = False

    def attach(self, track: Any) -> None:
        if track.kind == "video":
            self.task = asyncio.ensure_future(self._read(track))

    async def _read(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                seen = now_ms()
                self.frames += 1
                if not self.collect:
                    continue
                drawn = read_clock(frame)
                if drawn is None:
                    self.unreadable += 1
                    continue
                late = (seen - drawn) & 0xFFFFFFFF
                if late < 60_000:
                    self.samples.append(float(late))
                else:
                    self.unreadable += 1
        except MediaStreamError:
            return

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def peer() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def wait_frames(reader: ClockReader, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while reader.frames < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {reader.frames} frames within {timeout} s")
        await asyncio.sleep(0.05)


def summary(samples: list[float], unreadable: int) -> dict[str, float]:
    if not samples:
        raise RuntimeError(f"no readable frame ({unreadable} unreadable)")
    return {"median": statistics.median(samples), "p90": pct(samples, 90), "max": max(samples), "n": len(samples),
            "unreadable": unreadable}


# ------------------------------------------------------------------------------------------ Chromium pages

#: The clock in a page: the same blocks as draw_clock/read_clock (luma threshold 128, row 1 checks row 0).
PAGE_JS = """
window.glassClock = (() => {
  const BITS = 32, ROWS = 2, TWO32 = 4294967296;
  function check(ms) {  // clock_check
    let v = (ms ^ 0xA5A5A5A5) >>> 0;
    v = Math.imul(v ^ (v >>> 16), 0x85EBCA6B) >>> 0;
    v = Math.imul(v ^ (v >>> 13), 0xC2B2AE35) >>> 0;
    return (v ^ (v >>> 16)) >>> 0;
  }
  function gather(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 3000);
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); } });
    });
  }
  async function whipWhep(pc, url, key) {
    await pc.setLocalDescription(await pc.createOffer());
    await gather(pc);
    const headers = {"Content-Type": "application/sdp"};
    if (key) headers.Authorization = "Bearer " + key;
    const res = await fetch(url, {method: "POST", headers, body: pc.localDescription.sdp, credentials: "omit"});
    const body = await res.text();
    if (res.status !== 201) throw new Error(url + ": " + res.status + " " + body);
    await pc.setRemoteDescription({type: "answer", sdp: body});
    return new URL(res.headers.get("Location"), location.href).href;
  }
  function publisher(width, height) {
    const canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = height;
    document.body.appendChild(canvas);
    const ctx = canvas.getContext("2d");
    let n = 0;
    const draw = () => {
      ctx.fillStyle = "rgb(90,90,90)"; ctx.fillRect(0, 0, width, height);
      ctx.fillStyle = "rgb(200,60,60)"; ctx.fillRect((n * 8) % width, height / 2, 40, height / 2); n++;
      const ms = Date.now() % TWO32, bw = Math.floor(width / BITS), bh = Math.floor(height / 12);
      for (let row = 0; row < ROWS; row++) for (let bit = 0; bit < BITS; bit++) {
        const code = row ? check(ms) : ms;
        ctx.fillStyle = Math.floor(code / 2 ** (BITS - 1 - bit)) % 2 ? "rgb(235,235,235)" : "rgb(16,16,16)";
        ctx.fillRect(bit * bw, row * bh, bw, bh);
      }
    };
    draw();
    setInterval(draw, 1000 / 30);
    const pc = new RTCPeerConnection({iceServers: []});
    pc.addTransceiver(canvas.captureStream(30).getVideoTracks()[0], {direction: "sendonly"});
    return pc;
  }
  function viewer() {
    const video = document.createElement("video");
    video.muted = true; video.autoplay = true; video.playsInline = true;
    document.body.appendChild(video);
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", {willReadFrequently: true});
    const state = {samples: [], unreadable: 0, frames: 0, collect: false};
    const pc = new RTCPeerConnection({iceServers: []});
    pc.addEventListener("track", (ev) => { if (ev.track.kind === "video") { video.srcObject = new MediaStream([ev.track]); video.play().catch(() => {}); } });
    const onFrame = () => {
      const seen = Date.now() % TWO32;
      state.frames++;
      if (state.collect && video.videoWidth) {
        const w = video.videoWidth, h = video.videoHeight, top = Math.ceil(h / 12 * ROWS) + 3;
        if (canvas.width !== w || canvas.height !== top) { canvas.width = w; canvas.height = top; }
        ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
        const px = ctx.getImageData(0, 0, w, top).data;
        const values = [];
        for (let row = 0; row < ROWS; row++) {
          const yc = Math.floor((row + 0.5) * h / 12);
          let bits = 0;
          for (let bit = 0; bit < BITS; bit++) {
            const xc = Math.floor((bit + 0.5) * w / BITS);
            let sum = 0, count = 0;
            for (let y = Math.max(0, yc - 2); y < Math.min(top, yc + 3); y++) for (let x = Math.max(0, xc - 2); x < xc + 3; x++) {
              const i = (y * w + x) * 4;
              sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]; count++;
            }
            bits = bits * 2 + (sum / count > 128 ? 1 : 0);
          }
          values.push(bits);
        }
        const late = (seen - values[0] + TWO32) % TWO32;
        if (values[1] === check(values[0]) && late < 60000) state.samples.push(late); else state.unreadable++;
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    return {pc, state};
  }
  return {gather, whipWhep, publisher, viewer};
})();
"""


class Chromium:
    """One headless Chromium (tests/browser.py's flags); a page per way, on the server's origin."""

    def __init__(self) -> None:
        self.pw: Any = None
        self.browser: Any = None

    async def start(self) -> None:
        from playwright.async_api import async_playwright

        from tests.browser import CHROMIUM, CHROMIUM_ARGS

        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"Chromium not found at {CHROMIUM} (or run with --no-chromium)")
        self.pw = await async_playwright().start()
        self.browser = await self.pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

    async def page(self, origin: str) -> Any:
        page = await self.browser.new_page()
        await page.goto(origin + "/healthz")  # a document on the server's origin: the page's fetch to /whip is same-origin
        await page.evaluate(PAGE_JS)
        return page

    async def stop(self) -> None:
        if self.browser is not None:
            await self.browser.close()
        if self.pw is not None:
            await self.pw.stop()


class PageReader:
    """The Chromium viewer's clock reader, driven from Python."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def frames(self) -> int:
        return int(await self.page.evaluate("window.glassViewer.state.frames"))

    async def start(self) -> None:
        await self.page.evaluate("window.glassViewer.state.collect = true")

    async def stop(self) -> dict[str, float]:
        state = await self.page.evaluate("(() => { const s = window.glassViewer.state; s.collect = false; return {samples: s.samples, unreadable: s.unreadable}; })()")
        out = summary([float(v) for v in state["samples"]], int(state["unreadable"]))
        # Chromium's own view: mean jitter-buffer delay and decode time per frame (getStats, since the start)
        stats = await self.page.evaluate("""(async () => { let r = null;
            (await window.glassViewer.pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") r = s; });
            return r && {jb: r.jitterBufferDelay, emitted: r.jitterBufferEmittedCount, decode: r.totalDecodeTime, decoded: r.framesDecoded}; })()""")
        if stats and stats.get("emitted") and stats.get("decoded"):
            out["viewer_jitter_ms"] = stats["jb"] / stats["emitted"] * 1000.0
            out["viewer_decode_ms"] = stats["decode"] / stats["decoded"] * 1000.0
        return out


class AiortcReader:
    """:class:`ClockReader` with the same driving interface as :class:`PageReader`."""

    def __init__(self, reader: ClockReader) -> None:
        self.reader = reader

    async def frames(self) -> int:
        return self.reader.frames

    async def start(self) -> None:
        self.reader.collect = True

    async def stop(self) -> dict[str, float]:
        self.reader.collect = False
        return summary(self.reader.samples, self.reader.unreadable)


async def wait_reader(reader: Any, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (frames := await reader.frames()) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the viewer saw only {frames} frames within {timeout} s")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------------------ lmserver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PASSWORD = "glass bench password"


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants (shard workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    family, total = {pid}, 0.0
    for _ in range(4):  # children of children, bounded
        family |= {p for p, (ppid, _cpu) in stats.items() if ppid in family}
    for p in family:
        total += stats.get(p, (0, 0.0))[1]
    return total


class Server:
    """``lmserver serve`` in its own process (720p30 program, no recording), with a staff login for its status."""

    def __init__(self, program: tuple[int, int]) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
        self.env.update({"LMSERVER_MEDIA_ICE_HOST_ADDRESSES": "127.0.0.1", "LMSERVER_MEDIA_RECORD": "false",
                         "LMSERVER_MEDIA_HLS": "false", "LMSERVER_MEDIA_WIDTH": str(program[0]),
                         "LMSERVER_MEDIA_HEIGHT": str(program[1]), "LMSERVER_MEDIA_FPS": "30", "LMSERVER_SERVER_LOG_LEVEL": "warning"})
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""
        self.staff: ClientSession | None = None

    async def start(self, http: ClientSession) -> None:
        args = [sys.executable, "-m", "lmserver"]
        out = subprocess.run([*args, "stream-key", "--data-dir", self.tmp.name], capture_output=True, text=True, env=self.env,
                             timeout=60, cwd=ROOT)
        self.key = out.stdout.strip().split()[-1]
        self.proc = subprocess.Popen([*args, "serve", "--port", str(self.port), "--data-dir", self.tmp.name], env=self.env, cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                async with http.get(self.base + "/healthz") as resp:
                    if resp.status == 200:
                        break
            except Exception:
                pass
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError("lmserver did not start")

    async def _login(self) -> ClientSession:
        """A staff session for /api/media/status (made on first use; closed by :meth:`aclose`)."""
        if self.staff is None:
            subprocess.run([sys.executable, "-m", "lmserver", "user", "add", "glass", "--role", "owner", "--data-dir", self.tmp.name],
                           input=PASSWORD + "\n", capture_output=True, text=True, env=self.env, timeout=60, cwd=ROOT, check=True)
            self.staff = ClientSession(cookie_jar=CookieJar(unsafe=True))  # cookies from an IP address
            async with self.staff.post(self.base + "/api/login", json={"name": "glass", "password": PASSWORD}) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"login: {resp.status} {await resp.text()}")
        return self.staff

    async def status(self) -> dict[str, Any]:
        """``/api/media/status`` of the server (live or not, the last stream.health, frames encoded)."""
        staff = await self._login()
        async with staff.get(self.base + "/api/media/status") as resp:
            if resp.status != 200:
                raise RuntimeError(f"/api/media/status: {resp.status} {await resp.text()}")
            return dict(await resp.json())

    def cpu(self) -> float:
        assert self.proc is not None
        return _cpu_seconds(self.proc.pid)

    async def wait_idle(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while (await self.status())["live"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the ingest did not end")
            await asyncio.sleep(0.2)

    async def aclose(self) -> None:
        """Close the staff session (if :meth:`status` made one) and stop the server."""
        if self.staff is not None:
            await self.staff.close()
            self.staff = None
        self.stop()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.tmp.cleanup()


async def _exchange(http: ClientSession, url: str, pc: RTCPeerConnection, headers: dict[str, str]) -> str:
    """WHIP/WHEP offer → answer; returns the resource URL."""
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp", **headers}) as resp:
        body = await resp.text()
        if resp.status != 201:
            raise RuntimeError(f"{url}: {resp.status} {body}")
        location = str(resp.url.join(URL(resp.headers.get("Location", ""))))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return location


def _codec(pc: RTCPeerConnection) -> str:
    for t in pc.getTransceivers():
        if t.kind == "video" and t._codecs:
            return str(t._codecs[0].mimeType.split("/", 1)[1])
    return "?"


# ------------------------------------------------------------------------------------------ one way of one pair


class Way:
    """One measurement: set up publisher and viewer (direct or through ``server``), collect, tear down."""

    def __init__(self, args: argparse.Namespace, http: ClientSession, server: Server, chromium: Chromium | None) -> None:
        self.args, self.http, self.server, self.chromium = args, http, server, chromium
        self.cleanups: list[Callable[[], Awaitable[Any]]] = []
        self.codec = "?"

    async def _aiortc_publisher(self, through: bool) -> RTCPeerConnection:
        pub = peer()
        self.cleanups.append(pub.close)
        pub.addTrack(ClockTrack(self.args.width, self.args.height))
        if through:
            location = await _exchange(self.http, self.server.base + "/whip", pub, {"Authorization": f"Bearer {self.server.key}"})
            self.cleanups.insert(0, lambda: self._delete(location, {"Authorization": f"Bearer {self.server.key}"}))
            self.codec = _codec(pub)
        return pub

    async def _delete(self, url: str, headers: dict[str, str]) -> None:
        try:
            async with self.http.delete(url, headers=headers) as resp:
                await resp.read()
        except Exception:
            pass

    async def _aiortc_viewer(self) -> tuple[RTCPeerConnection, Any]:
        sub = peer()
        self.cleanups.insert(0, sub.close)
        reader = ClockReader()
        self.cleanups.insert(0, reader.close)
        sub.on("track", reader.attach)
        return sub, AiortcReader(reader)

    async def _page(self) -> Any:
        assert self.chromium is not None
        page = await self.chromium.page(self.server.base)
        self.cleanups.insert(0, page.close)
        return page

    async def setup(self, pair: str, through: bool) -> Any:
        """Connect publisher and viewer; returns the viewer's reader."""
        key, base = self.server.key, self.server.base
        if pair == "aiortc>aiortc":
            pub = await self._aiortc_publisher(through)
            sub, reader = await self._aiortc_viewer()
            if through:
                await asyncio.sleep(0.5)
                sub.addTransceiver("video", direction="recvonly")
                await _exchange(self.http, base + "/whep", sub, {})
            else:
                await pub.setLocalDescription(await pub.createOffer())
                await sub.setRemoteDescription(pub.localDescription)
                await sub.setLocalDescription(await sub.createAnswer())
                await pub.setRemoteDescription(sub.localDescription)
                self.codec = _codec(sub)
            return reader
        if pair == "chromium>aiortc":
            page = await self._page()
            sub, reader = await self._aiortc_viewer()
            if through:
                await page.evaluate(f"window.glassPc = window.glassClock.publisher({self.args.width}, {self.args.height})")
                location = await page.evaluate(f"window.glassClock.whipWhep(window.glassPc, '/whip', '{key}')")
                self.cleanups.insert(0, lambda: self._delete(location, {"Authorization": f"Bearer {key}"}))
                await asyncio.sleep(0.5)
                sub.addTransceiver("video", direction="recvonly")
                await _exchange(self.http, base + "/whep", sub, {})
                self.codec = (await self.server.status())["ingest"]["codec"]
            else:
                offer = await page.evaluate(f"""(async () => {{ const pc = window.glassPc = window.glassClock.publisher({self.args.width}, {self.args.height});
                    await pc.setLocalDescription(await pc.createOffer()); await window.glassClock.gather(pc); return pc.localDescription.sdp; }})()""")
                await sub.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
                await sub.setLocalDescription(await sub.createAnswer())
                await page.evaluate("(sdp) => window.glassPc.setRemoteDescription({type: 'answer', sdp})", sub.localDescription.sdp)
                self.codec = _codec(sub)
            return reader
        if pair == "aiortc>chromium":
            pub = await self._aiortc_publisher(through)
            page = await self._page()
            await page.evaluate("window.glassViewer = window.glassClock.viewer()")
            if through:
                await asyncio.sleep(0.5)
                await page.evaluate("(() => { const pc = window.glassViewer.pc; pc.addTransceiver('video', {direction: 'recvonly'});"
                                    " return window.glassClock.whipWhep(pc, '/whep', ''); })()")
            else:
                await pub.setLocalDescription(await pub.createOffer())
                answer = await page.evaluate("""async (sdp) => { const pc = window.glassViewer.pc;
                    await pc.setRemoteDescription({type: 'offer', sdp}); await pc.setLocalDescription(await pc.createAnswer());
                    await window.glassClock.gather(pc); return pc.localDescription.sdp; }""", pub.localDescription.sdp)
                await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                self.codec = _codec(pub)
            return PageReader(page)
        raise ValueError(pair)

    async def run(self, pair: str, through: bool) -> dict[str, Any]:
        try:
            reader = await self.setup(pair, through)
            await wait_reader(reader, 10, 60)
            await asyncio.sleep(self.args.warmup)  # jitter buffers settle, the first keyframe is behind us
            # program frames: the server's count (or, from an older server, the frames the viewer saw)
            before = (self.server.cpu(), (await self.server.status())["program"].get("frames_encoded"), await reader.frames()) if through else None
            await reader.start()
            await asyncio.sleep(self.args.seconds)
            result: dict[str, Any] = await reader.stop()
            if through and before is not None:
                status, cpu, seen = await self.server.status(), self.server.cpu(), await reader.frames()
                frames = status["program"].get("frames_encoded")
                frames = frames - before[1] if frames is not None and before[1] is not None else seen - before[2]
                if frames > 0:
                    result["cpu_ms_per_frame"] = (cpu - before[0]) / frames * 1000.0
                result["stages"] = (status.get("health") or {}).get("stages_ms") or {}
            result["codec"] = self.codec
            return result
        finally:
            for cleanup in self.cleanups:
                try:
                    await cleanup()
                except Exception:
                    pass
            if through:
                await self.server.wait_idle()


# ------------------------------------------------------------------------------------------ report

PAIRS = {
    "aiortc>aiortc": "aiortc publisher → aiortc viewer",
    "chromium>aiortc": "Chromium publisher (canvas captureStream) → aiortc viewer",
    "aiortc>chromium": "aiortc publisher → Chromium viewer (requestVideoFrameCallback)",
}
STAGE_NAMES = ("receive", "jitter", "decode", "wait", "scale", "composite", "encode", "handoff", "total")


def _median_dicts(rs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rs[0].items():
        if isinstance(v, (int, float)):
            vals = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
            out[k] = statistics.median(vals)
        elif isinstance(v, dict):
            out[k] = _median_dicts([r[k] for r in rs if isinstance(r.get(k), dict) and r[k]] or [v])
        else:
            out[k] = v
    for k in {k for r in rs for k in r} - set(out):  # a key only some rounds had (cpu_ms_per_frame)
        vals = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
        if vals:
            out[k] = statistics.median(vals)
    return out


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    from lmserver.media.rtc import set_ice_host_addresses

    set_ice_host_addresses(["127.0.0.1"])  # this process's aiortc peers talk over loopback only
    pairs = [p for p in PAIRS if args.chromium or "chromium" not in p]
    out: dict[str, Any] = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                           "seconds": args.seconds, "rounds": args.rounds, "ingest": f"{args.width}x{args.height}",
                           "program": f"{args.program[0]}x{args.program[1]}", "pairs": {}}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(p, w): [] for p in pairs for w in ("direct", "lmserver")}
    server = Server(args.program)
    chromium = Chromium() if args.chromium else None
    async with ClientSession() as http:
        try:
            await server.start(http)
            if chromium is not None:
                await chromium.start()
            for _ in range(args.rounds):
                for pair in pairs:
                    for way in ("direct", "lmserver"):
                        r = await Way(args, http, server, chromium).run(pair, way == "lmserver")
                        runs[(pair, way)].append(r)
                        print(f"{pair:16} {way:8}", {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
        finally:
            if chromium is not None:
                await chromium.stop()
            await server.aclose()
    for pair in pairs:
        d, s = _median_dicts(runs[(pair, "direct")]), _median_dicts(runs[(pair, "lmserver")])
        out["pairs"][pair] = {"direct": d, "lmserver": s, "added_ms": s["median"] - d["median"]}
    return out


def render(r: dict[str, Any]) -> str:
    lines = [
        BEGIN, "## Glass to glass (bench/glass.py)", "",
        f"Run {r['date']} on {r['machine']}. The publisher draws the wall-clock time into each {r['ingest']} frame as"
        f" black/white blocks when it draws it; the viewer reads it back from the decoded picture (same machine, same"
        f" clock: Python's `time.time()`, the page's `Date.now()`). lmserver runs as its own process with a"
        f" {r['program']}p30 program. {r['seconds']:g} s per way and round, {r['rounds']} round(s) interleaved; medians of the rounds."
        " **direct** is one peer connection publisher → viewer (the baseline); **lmserver** is publisher → WHIP → program → WHEP → viewer.",
        "", "| publisher → viewer | way | codec in | median | p90 | max | frames read | server CPU per frame |", "|---|---|---|---|---|---|---|---|"]
    for pair, p in r["pairs"].items():
        for way in ("direct", "lmserver"):
            w = p[way]
            cpu = f"{w['cpu_ms_per_frame']:.1f} ms" if "cpu_ms_per_frame" in w else ""
            lines.append(f"| {PAIRS[pair]} | {way} | {w.get('codec', '?')} | {w['median']:.0f} ms | {w['p90']:.0f} ms | {w['max']:.0f} ms |"
                         f" {w['n']:.0f} | {cpu} |")
    lines += ["", "| publisher → viewer | the server adds (median) |", "|---|---|"]
    for pair, p in r["pairs"].items():
        lines.append(f"| {PAIRS[pair]} | **{p['added_ms']:.0f} ms** |")
    chromium_viewer = r["pairs"].get("aiortc>chromium")
    if chromium_viewer and "viewer_jitter_ms" in chromium_viewer["direct"] and "viewer_jitter_ms" in chromium_viewer["lmserver"]:
        d, s = chromium_viewer["direct"], chromium_viewer["lmserver"]
        lines += ["", f"Chromium's own figures for its viewer (getStats, mean per frame): jitter buffer {d['viewer_jitter_ms']:.1f} ms"
                  f" direct, {s['viewer_jitter_ms']:.1f} ms through lmserver; decode {d['viewer_decode_ms']:.1f} ms direct"
                  f" ({d.get('codec', '?')} {r['ingest']}), {s['viewer_decode_ms']:.1f} ms through lmserver (H264 {r['program']})."]
    lines += ["", "Target: the server adds ≤ 20 ms. Where the server's part goes (lmserver's own stage medians,"
              " `stream.health` `stages_ms`, ms; from the first RTP packet of a frame to its packets handed to the fan-out):", "",
              "| publisher → viewer | " + " | ".join(STAGE_NAMES) + " |", "|---" * (len(STAGE_NAMES) + 1) + "|"]
    for pair, p in r["pairs"].items():
        st = p["lmserver"].get("stages") or {}
        lines.append(f"| {PAIRS[pair]} | " + " | ".join("–" if st.get(n) is None else f"{st[n]:.1f}" for n in STAGE_NAMES) + " |")
    lines += ["", "receive: first → last packet of the frame; jitter: last packet → released to the decoder; decode: → decoded"
              " frame on the loop; wait: → the program's worker starts; scale, composite, encode; handoff: → packets handed to"
              " the fan-out. Sending to the viewers' sockets and everything on the viewer's side is in the difference of"
              " the medians, not in these.", "", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds between the first frames and collecting")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--program", type=lambda s: tuple(int(x) for x in s.split("x")), default=(1280, 720))
    parser.add_argument("--no-chromium", dest="chromium", action="store_false", help="only the aiortc → aiortc pair")
    parser.add_argument("--quick", action="store_true", help="2 s per way, one round, 1 s warm-up; BENCHMARKS.md is not written")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.warmup = 2.0, 1, 1.0
    results = asyncio.run(amain(args))
    if not args.quick:
        write_section(BEGIN, END, render(results))
    print(render(results))


if __name__ == "__main__":
    main()
