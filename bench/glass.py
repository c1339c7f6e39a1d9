"""Glass-to-glass latency: the clock drawn into the picture by the publisher, read back by the viewer.

The publisher (an aiortc peer) draws the wall-clock time (milliseconds, 32 bits) into each frame as a
row of black/white blocks the moment the frame is captured; the viewer (another aiortc peer) decodes the
picture, reads the blocks back and subtracts the time it sees from its own clock. Publisher and viewer run
in this process (same clock); lmserver runs as its own process (``lmserver serve``), as in a studio.

Two ways, in one run, interleaved:

- **direct**: publisher → viewer over one peer connection (the baseline: aiortc's own encode, network
  and jitter buffer, decode — what any WebRTC path costs);
- **lmserver**: publisher → WHIP → lmserver (decode, program tick, scale, composite, encode once,
  packetize) → WHEP → viewer.

The server's added part is the difference of the medians. The server's own pipeline figure (ingest frame
arrival → packets handed to the viewers, ``stream.health``'s ``latency_ms``) is reported beside it.

    .venv/bin/python -m bench.glass [--seconds 20] [--rounds 2] [--width 640 --height 360]

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
from typing import Any

import av
import numpy as np
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402

BEGIN, END = "<!-- glass:begin -->", "<!-- glass:end -->"
BITS = 32
ROWS = 2  # the code is drawn twice (two rows of blocks); a frame counts when both rows agree


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


# ------------------------------------------------------------------------------------------ the clock in pixels


def draw_clock(img: np.ndarray, ms: int) -> None:
    """Write ``ms`` (mod 2^32) as BITS black/white blocks across the top of ``img`` (RGB), ROWS times."""
    h, w = img.shape[:2]
    bw = w // BITS
    bh = h // 12  # (h >= 96: blocks of 8 px at least)
    for row in range(ROWS):
        y0 = row * bh
        for bit in range(BITS):
            on = (ms >> (BITS - 1 - bit)) & 1
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
    return values[0] if all(v == values[0] for v in values) else None


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


async def collect(reader: ClockReader, seconds: float) -> dict[str, float]:
    await asyncio.sleep(2.0)  # warm-up: jitter buffers settle, the first keyframe is behind us
    reader.collect = True
    await asyncio.sleep(seconds)
    reader.collect = False
    s = reader.samples
    return {"median": statistics.median(s), "p90": pct(s, 90), "max": max(s), "n": len(s), "unreadable": reader.unreadable}


# ------------------------------------------------------------------------------------------ the two ways


async def run_direct(width: int, height: int, seconds: float) -> dict[str, float]:
    pub, sub = peer(), peer()
    reader = ClockReader()
    sub.on("track", reader.attach)
    pub.addTrack(ClockTrack(width, height))
    try:
        await pub.setLocalDescription(await pub.createOffer())
        await sub.setRemoteDescription(pub.localDescription)
        await sub.setLocalDescription(await sub.createAnswer())
        await pub.setRemoteDescription(sub.localDescription)
        await wait_frames(reader, 10, 30)
        return await collect(reader, seconds)
    finally:
        await reader.close()
        await pub.close()
        await sub.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``lmserver serve`` in its own process (720p30 program, no recording)."""

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
                        return
            except Exception:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("lmserver did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.tmp.cleanup()


async def _exchange(http: ClientSession, url: str, pc: RTCPeerConnection, headers: dict[str, str]) -> None:
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp", **headers}) as resp:
        body = await resp.text()
        if resp.status != 201:
            raise RuntimeError(f"{url}: {resp.status} {body}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))


async def run_lmserver(server: Server, http: ClientSession, width: int, height: int, seconds: float) -> dict[str, float]:
    pub, sub = peer(), peer()
    pub.addTrack(ClockTrack(width, height))
    reader = ClockReader()
    sub.addTransceiver("video", direction="recvonly")
    sub.on("track", reader.attach)
    try:
        await _exchange(http, server.base + "/whip", pub, {"Authorization": f"Bearer {server.key}"})
        await asyncio.sleep(1.0)
        await _exchange(http, server.base + "/whep", sub, {})
        await wait_frames(reader, 10, 60)
        result = await collect(reader, seconds)
        return result
    finally:
        await reader.close()
        await sub.close()
        await pub.close()
        await asyncio.sleep(1.0)  # the server ends the ingest


# ------------------------------------------------------------------------------------------ report


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                           "seconds": args.seconds, "rounds": args.rounds, "ingest": f"{args.width}x{args.height}",
                           "program": f"{args.program[0]}x{args.program[1]}"}
    runs: dict[str, list[dict[str, float]]] = {"direct": [], "lmserver": []}
    server = Server(args.program)
    async with ClientSession() as http:
        await server.start(http)
        try:
            for _ in range(args.rounds):
                runs["direct"].append(await run_direct(args.width, args.height, args.seconds))
                print("direct", runs["direct"][-1], flush=True)
                runs["lmserver"].append(await run_lmserver(server, http, args.width, args.height, args.seconds))
                print("lmserver", runs["lmserver"][-1], flush=True)
        finally:
            server.stop()
    for name, rs in runs.items():
        out[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    out["added_ms"] = out["lmserver"]["median"] - out["direct"]["median"]
    return out


def render(r: dict[str, Any]) -> str:
    d, s = r["direct"], r["lmserver"]
    return "\n".join([
        BEGIN, "## Glass to glass (bench/glass.py)", "",
        f"Run {r['date']} on {r['machine']}. The publisher draws the wall-clock time into each {r['ingest']} frame as"
        f" black/white blocks when it captures it; the viewer reads it back from the decoded picture (same process, same"
        f" clock). lmserver runs as its own process with a {r['program']}p30 program. {r['seconds']:g} s per way and round,"
        f" {r['rounds']} rounds interleaved; medians of the rounds.", "",
        "| path | median | p90 | max | frames read |", "|---|---|---|---|---|",
        f"| direct peer connection (aiortc → aiortc, the baseline) | {d['median']:.0f} ms | {d['p90']:.0f} ms | {d['max']:.0f} ms | {d['n']:.0f} |",
        f"| through lmserver (WHIP → program → WHEP) | {s['median']:.0f} ms | {s['p90']:.0f} ms | {s['max']:.0f} ms | {s['n']:.0f} |",
        "", f"**The server adds {r['added_ms']:.0f} ms** (median over the direct connection; target ≤ 20 ms).", "", END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--program", type=lambda s: tuple(int(x) for x in s.split("x")), default=(1280, 720))
    results = asyncio.run(amain(parser.parse_args()))
    write_section(BEGIN, END, render(results))
    print(render(results))


if __name__ == "__main__":
    main()
