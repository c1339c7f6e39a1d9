"""The latency ladder's receivers (:mod:`bench.ladder`): each decodes the picture and reads back the clock the
publisher drew into it (:func:`bench.glass.draw_clock`), on this machine's clock.

- :func:`direct` and :func:`whep`: aiortc peers (:class:`bench.glass.ClockReader` on their track);
- :class:`RtmpPlayer`: PyAV playing an RTMP URL in a thread with low-latency options;
- :class:`HlsPage`: a Chromium page playing HLS through the vendored hls.js (``ladder_hls.html``), reading the
  clock from the ``<video>`` on each ``requestVideoFrameCallback`` (canvas → ``getImageData``, ``Date.now()``).

:class:`Way` is one row of the table: its reader's samples, or why there are none.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiohttp import ClientSession
from aiortc.mediastreams import AudioStreamTrack

from bench.glass import ClockReader, ClockTrack, _exchange, now_ms, pct, peer, read_clock


class ToneTrack(AudioStreamTrack):
    """A 440 Hz tone (aiortc's silence track, paced the same), so the program has audio to encode to AAC."""

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        t = (frame.pts + np.arange(frame.samples)) / frame.sample_rate
        frame.planes[0].update((np.sin(2 * np.pi * 440 * t) * 6000).astype(np.int16).tobytes())
        return frame


# ------------------------------------------------------------------------------------------ readers


class Way:
    """One row: a reader's samples, or why there are none."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.reader = ClockReader()
        self.error = ""

    def result(self) -> dict[str, Any]:
        r, s = self.reader, self.reader.samples
        out: dict[str, Any] = {"frames": r.frames, "n": len(s), "unreadable": r.unreadable, "error": self.error}
        if s:
            out.update(median=statistics.median(s), p90=pct(s, 90), max=max(s))
        elif not self.error:
            out["error"] = f"no clock read ({r.frames} frames decoded, {r.unreadable} unreadable)"
        return out


def note(reader: ClockReader, frame: av.VideoFrame, seen: int) -> None:
    """Count a decoded frame and, while collecting, its latency (as :class:`ClockReader` does for aiortc tracks)."""
    reader.frames += 1
    if not reader.collect:
        return
    drawn = read_clock(frame)
    late = (seen - drawn) & 0xFFFFFFFF if drawn is not None else None
    if late is not None and late < 60_000:
        reader.samples.append(float(late))
    else:
        reader.unreadable += 1


class RtmpPlayer:
    """PyAV playing ``rtmp://…`` in a thread with low-latency options, reading the clock from each decoded frame."""

    OPTIONS = {"fflags": "nobuffer", "flags": "low_delay", "probesize": "32768", "analyzeduration": "0", "rtmp_live": "live"}

    def __init__(self, url: str, way: Way) -> None:
        self.url, self.way = url, way
        self.opens = self.packets = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ladder-rtmp", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        error = ""
        for _ in range(30):  # bounded: nginx has the stream once A's destination is live
            if self.stop.is_set():
                break
            try:
                self._play()
            except Exception as exc:  # reopen: the destination reconnected, or nothing came for a while
                error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        if not self.way.reader.samples:
            self.way.error = f"PyAV opened the stream {self.opens} times, {self.packets} packets; last error: {error or 'none'}"

    def _play(self) -> None:
        with av.open(self.url, options=self.OPTIONS, timeout=(10, 5)) as container:
            self.opens += 1
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            last = time.monotonic()
            for packet in container.demux(stream):
                self.packets += 1
                for frame in packet.decode():
                    note(self.way.reader, frame, now_ms())
                    last = time.monotonic()
                if self.stop.is_set():
                    return
                if time.monotonic() - last > 5:
                    raise RuntimeError("packets but no picture for 5 s")

    async def close(self) -> None:
        self.stop.set()
        await asyncio.to_thread(self.thread.join, 15)


HLS_PAGE = (Path(__file__).parent / "ladder_hls.html").read_text()  # LOW_LATENCY and PLAYLIST filled in per page


class HlsPage:
    """One Chromium page playing A's HLS through hls.js; its samples are copied into ``way.reader``."""

    def __init__(self, way: Way, page: Any) -> None:
        self.way, self.page = way, page

    @classmethod
    async def open(cls, way: Way, context: Any, base: str, playlist: str, low_latency: bool) -> "HlsPage":
        page = await context.new_page()
        html = HLS_PAGE.replace("LOW_LATENCY", "true" if low_latency else "false").replace("PLAYLIST", json.dumps(playlist))
        path = f"{base}/__ladder/{way.key}.html"  # served by the route below, on A's origin (the canvas stays readable)
        await page.route(path, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
        page.on("pageerror", lambda exc: setattr(way, "error", f"page error: {exc}"))
        await page.goto(path)
        return cls(way, page)

    async def sync(self, collect: bool | None = None) -> None:
        """Copy the page's figures into the reader (and switch collecting on or off)."""
        js = "(c) => { if (c !== null) window.ladder.collect = c; const L = window.ladder;" \
             " return {frames: L.frames, samples: L.samples, unreadable: L.unreadable, errors: L.errors}; }"
        got = await self.page.evaluate(js, collect)
        r = self.way.reader
        r.frames, r.samples, r.unreadable = got["frames"], [float(s) for s in got["samples"]], got["unreadable"]
        if got["errors"] and not r.frames:  # hls.js retries what it can: its errors are the reason only while nothing plays
            self.way.error = "hls.js: " + ", ".join(dict.fromkeys(got["errors"]))
        elif self.way.error.startswith("hls.js: "):
            self.way.error = ""


async def whep(base: str, http: ClientSession, way: Way, seconds: float) -> Any:
    """An aiortc WHEP viewer of ``base``, retried (bounded) until the studio is live."""
    error = ""
    for _ in range(int(seconds / 0.5)):
        pc = peer()
        pc.addTransceiver("video", direction="recvonly")
        pc.on("track", way.reader.attach)
        try:
            await _exchange(http, base + "/whep", pc, {})
            return pc
        except RuntimeError as exc:
            error = str(exc)
            await pc.close()
            await asyncio.sleep(0.5)
    raise RuntimeError(f"WHEP: {error}")


async def direct(width: int, height: int, way: Way) -> tuple[Any, Any]:
    pub, sub = peer(), peer()
    sub.on("track", way.reader.attach)
    pub.addTrack(ClockTrack(width, height))
    await pub.setLocalDescription(await pub.createOffer())
    await sub.setRemoteDescription(pub.localDescription)
    await sub.setLocalDescription(await sub.createAnswer())
    await pub.setRemoteDescription(sub.localDescription)
    return pub, sub


async def wait_playlist(http: ClientSession, url: str, seconds: float = 30) -> str:
    """The playlist's text, once it is served (503 until the first segment is written)."""
    for _ in range(int(seconds / 0.25)):
        async with http.get(url) as resp:
            if resp.status == 200:
                return await resp.text()
        await asyncio.sleep(0.25)
    raise RuntimeError(f"no HLS playlist at {url} within {seconds:.0f} s")
