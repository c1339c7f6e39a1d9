"""Media benchmarks: viewers served by one encode, compositing cost, latency. Writes BENCHMARKS.md.

    .venv/bin/python bench/media.py                 # everything (~6 minutes on 2 cores)
    .venv/bin/python bench/media.py compositing     # one part: compositing | latency | viewers
    .venv/bin/python bench/media.py viewers --n 1,50,150 --window 8

Only the "media" section of BENCHMARKS.md (between its markers) is rewritten.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import REPORT, machine, write_section  # noqa: E402
from lmserver.media.compositor import Compositor  # noqa: E402

BEGIN, END = "<!-- media:begin -->", "<!-- media:end -->"
LAVFI_720P = "testsrc2=size=1280x720:rate=30[out0];sine=frequency=440:sample_rate=48000[out1]"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# ------------------------------------------------------------------------------------------ compositing


def _overlay(w: int, h: int) -> np.ndarray:
    """An RGBA card with soft (semi-transparent) edges, like a billboard."""
    rng = np.random.default_rng(3)
    img = np.zeros((h, w, 4), np.uint8)
    img[..., :3] = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    edge = np.minimum.reduce([xx, yy, w - 1 - xx, h - 1 - yy]).astype(np.float32)
    img[..., 3] = np.clip(edge * 16, 0, 255).astype(np.uint8)
    return img


def _plugin_billboard() -> np.ndarray:
    """A real billboard, rendered by the billboard plugin the way the console shows it (even size for 4:2:0)."""
    from lmserver_plugins.billboard.render import render_text_billboard

    img = np.asarray(render_text_billboard("promo_code").convert("RGBA"))
    return np.ascontiguousarray(img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2])


def _frame(w: int, h: int) -> av.VideoFrame:
    rng = np.random.default_rng(5)
    f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), format="rgb24").reformat(format="yuv420p")
    f.pts, f.time_base = 0, fractions.Fraction(1, 90000)
    return f


def _time(fn: Any, n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def bench_compositing(n: int = 150) -> list[dict[str, Any]]:
    rows = []
    for fw, fh in ((1280, 720), (1920, 1080)):
        for name, make, (x, y) in (("billboard 480x360", lambda: _overlay(480, 360), (40, 40)),
                                   ("lower third 1280x200", lambda: _overlay(1280, 200), (0, fh - 240)),
                                   ("billboard plugin, 'Use code LIVE10'", _plugin_billboard, (60, 60))):
            rgba = make()
            oh, ow = rgba.shape[:2]
            frame = _frame(fw, fh)
            comp = Compositor()
            comp.set_layer("o", rgba, x, y)
            ours = _time(lambda: comp.composite(frame), n)

            # RGB round trip: YUV -> RGB, blend in RGB (integer math), RGB -> YUV
            src = rgba[..., :3].astype(np.uint16)
            a = rgba[..., 3:4].astype(np.uint16)
            src_a, inv_a = src * a, 255 - a

            def rgb_round_trip() -> av.VideoFrame:
                img = frame.to_ndarray(format="rgb24")
                region = img[y : y + oh, x : x + ow]
                region[...] = ((region * inv_a + src_a) // 255).astype(np.uint8)
                out = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
                out.pts = frame.pts
                return out

            rgb = _time(rgb_round_trip, max(20, n // 5))

            # FFmpeg's overlay filter (single-threaded graph), overlay pre-converted to yuva420p
            graph = av.filter.Graph()
            graph.threads = 1  # like the program's compositor: one thread
            main = graph.add_buffer(width=fw, height=fh, format="yuv420p", time_base=fractions.Fraction(1, 30))
            over = graph.add_buffer(width=ow, height=oh, format="yuva420p", time_base=fractions.Fraction(1, 30))
            overlay = graph.add("overlay", f"x={x}:y={y}:format=yuv420:eof_action=repeat")
            sink = graph.add("buffersink")
            main.link_to(overlay, 0, 0)
            over.link_to(overlay, 0, 1)
            overlay.link_to(sink)
            graph.configure(auto_buffer=True, force=True)
            ovf = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuva420p")
            counter = [0]

            def ffmpeg_overlay() -> av.VideoFrame:
                f = frame
                f.pts = counter[0]
                f.time_base = fractions.Fraction(1, 30)
                o = ovf
                o.pts = counter[0]
                o.time_base = fractions.Fraction(1, 30)
                counter[0] += 1
                main.push(f)
                over.push(o)
                return sink.pull()

            ff = _time(ffmpeg_overlay, max(30, n // 3))
            rows.append({"frame": f"{fw}x{fh}", "overlay": name, "ours_ms": ours, "rgb_ms": rgb, "ffmpeg_ms": ff})
            print(f"compositing {fw}x{fh} {name}: ours {ours:.3f} ms, RGB {rgb:.2f} ms, FFmpeg overlay {ff:.3f} ms",
                  flush=True)
    return rows


# ------------------------------------------------------------------------------------------ server


class Server:
    """lmserver on loopback with the media core and a lavfi 720p30 capture ingest."""

    async def start(self, **media: Any) -> "Server":
        from aiohttp import web

        from lmserver.app import create_app
        from lmserver.config import load_config
        from lmserver.media import MEDIA

        self.tmp = tempfile.TemporaryDirectory()
        overrides = {"ice_host_addresses": ["127.0.0.1"], "record": False, "max_viewers": 400,
                     "viewer_queue_packets": 256, **media}
        cfg = load_config(env={}, overrides={"server": {"data_dir": self.tmp.name}, "media": overrides})
        self.app = create_app(cfg, load_entrypoints=False)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{self.port}"
        self.media = self.app[MEDIA]
        return self

    async def capture(self) -> None:
        from lmserver.media.capture import lavfi_source

        await self.media.start_capture(lavfi_source("testsrc2"), {"video_size": "1280x720", "framerate": "30"})  # = LAVFI_720P
        program = self.media.program
        for _ in range(200):  # wait (bounded) for the first encoded frames
            if program.frames_out > 10:
                return
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self.runner.cleanup()
        self.tmp.cleanup()


class LoopLag:
    """Event-loop lag: how late a 10 ms sleep wakes up."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append((time.perf_counter() - t - 0.01) * 1000)

    def reset(self) -> None:
        self.samples.clear()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def swarm(url: str, n: int, decode: int) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "viewer_swarm.py"), url, str(n), str(decode),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), 120)  # type: ignore[union-attr]
    parts = line.decode().split()
    if not parts or parts[0] != "ready":
        proc.kill()
        raise RuntimeError(f"viewer swarm failed: {line!r}")
    return proc, int(parts[1])


def child_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by other processes of the server (its viewer processes)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


async def measure(procs: list[asyncio.subprocess.Process], window: float, lag: LoopLag,
                  server_pids: list[int] | None = None) -> dict[str, Any]:
    pids = server_pids or []
    cpu0, t0 = time.process_time() + child_cpu(pids), time.perf_counter()
    lag.reset()
    for p in procs:
        p.stdin.write(f"measure {window}\n".encode())  # type: ignore[union-attr]
        await p.stdin.drain()  # type: ignore[union-attr]
    results = [json.loads(await asyncio.wait_for(p.stdout.readline(), window + 60)) for p in procs]  # type: ignore[union-attr]
    cpu = (time.process_time() + child_cpu(pids) - cpu0) / (time.perf_counter() - t0)
    fps = [f for r in results for f in r["fps"]]
    decoded = [f for r in results for f in r["decoded"]]
    return {"fps_median": statistics.median(fps), "fps_min": min(fps), "decoded_fps": decoded[0] if decoded else None,
            "server_cpu": cpu, "lag_p99": pct(lag.samples, 99), "swarm_cpu": sum(r["cpu"] for r in results)}


async def quit_swarms(procs: list[asyncio.subprocess.Process]) -> None:
    for p in procs:
        try:
            p.stdin.write(b"quit\n")  # type: ignore[union-attr]
            await p.stdin.drain()  # type: ignore[union-attr]
        except (BrokenPipeError, ConnectionResetError):
            pass
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), 60)
        except asyncio.TimeoutError:
            p.kill()
            await p.wait()


async def bench_viewers(ns: list[int], window: float, per_process: int = 150) -> list[dict[str, Any]]:
    server = await Server().start(width=1280, height=720, fps=30, video_bitrate=2_000_000)
    lag = LoopLag()
    rows = []
    try:
        await server.capture()
        for n in ns:
            procs, connected = [], 0
            remaining = n
            while remaining > 0:
                k = min(per_process, remaining)
                proc, c = await swarm(server.base + "/whep", k, 1 if not procs else 0)
                procs.append(proc)
                connected += c
                remaining -= k
            await asyncio.sleep(2)  # let the joiners' keyframes settle before measuring
            shard_pids = [s.proc.pid for s in server.media.shards if s.proc is not None]
            row = {"n": n, "connected": connected, **await measure(procs, window, lag, shard_pids),
                   "viewer_processes": len(shard_pids),
                   "in_processes": sum(1 for v in server.media.viewers.values() if v.shard is not None)}
            rows.append(row)
            print(f"viewers N={n}: {row}", flush=True)
            await quit_swarms(procs)
            for _ in range(100):  # bounded: wait until the server saw them leave
                if not server.media.viewers:
                    break
                await asyncio.sleep(0.1)
    finally:
        await lag.stop()
        await server.stop()
    return rows


async def bench_baseline(ns: list[int], window: float) -> list[dict[str, Any]]:
    """aiortc's default: one encoder per viewer (MediaRelay of the raw frames, aiortc's H.264 encoder)."""
    from aiohttp import web
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer, MediaRelay

    from lmserver.media.rtc import prefer_h264, set_ice_host_addresses

    set_ice_host_addresses(["127.0.0.1"])
    player = MediaPlayer(LAVFI_720P, format="lavfi")
    relay = MediaRelay()
    pcs: set[RTCPeerConnection] = set()

    async def whep(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.add(pc)
        t = pc.addTransceiver(relay.subscribe(player.video), direction="sendonly")
        prefer_h264(t)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp",
                            headers={"Location": "/whep/x"})

    app = web.Application()
    app.router.add_post("/whep", whep)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    lag = LoopLag()
    rows = []
    try:
        for n in ns:
            proc, connected = await swarm(f"http://127.0.0.1:{port}/whep", n, 1)
            await asyncio.sleep(2)
            row = {"n": n, "connected": connected, **await measure([proc], window, lag)}
            rows.append(row)
            print(f"baseline N={n}: {row}", flush=True)
            await quit_swarms([proc])
            await asyncio.gather(*(pc.close() for pc in pcs))
            pcs.clear()
    finally:
        await lag.stop()
        await runner.cleanup()
        if player.video is not None:
            player.video.stop()
        if player.audio is not None:
            player.audio.stop()
    return rows


async def bench_latency(joins: int = 10) -> dict[str, Any]:
    """Ingest frame arrival -> a viewer's sender takes the packet; and a new viewer's time to first frame."""
    sys.path.insert(0, str(ROOT / "tests" / "media"))
    from aiohttp import ClientSession
    from rtcclients import Viewer

    server = await Server().start(width=1280, height=720, fps=30, video_bitrate=2_000_000)
    try:
        await server.capture()
        program = server.media.program
        arrivals: dict[int, float] = {}
        lat: list[float] = []
        # stamp arrivals at the ingest track and departures where a viewer's RTCRtpSender takes the packet
        ingest_track = server.media.ingest.player.video
        original_recv = ingest_track.recv

        async def stamped_recv():  # type: ignore[no-untyped-def]
            frame = await original_recv()
            arrivals[int(frame.pts * frame.time_base * 90000)] = time.perf_counter()
            return frame

        ingest_track.recv = stamped_recv
        ttff: list[float] = []
        async with ClientSession() as http:
            for i in range(joins):
                viewer = Viewer(keep=1)
                t0 = time.perf_counter()
                await viewer.play(http, server.base + "")
                await viewer.wait_frames(1, timeout=30)
                ttff.append((time.perf_counter() - t0) * 1000)
                if i == joins - 1:
                    from lmserver.media.fanout import PacketTrack

                    v = next(iter(server.media.viewers.values()))
                    track = next(t.sender.track for t in v.pc.getTransceivers() if t.kind == "video")
                    assert isinstance(track, PacketTrack)
                    orig = track.recv

                    async def timed():  # type: ignore[no-untyped-def]
                        packet = await orig()
                        t_in = arrivals.pop(int(packet.pts), None)
                        if t_in is not None:
                            lat.append((time.perf_counter() - t_in) * 1000)
                        return packet

                    track.recv = timed
                    await viewer.wait_frames(viewer.count + 150, timeout=60)
                await viewer.close()
                await asyncio.sleep(0.6)  # joins spaced beyond keyframe_min_interval (0.5 s)
        encode = sorted(program.encode_ms)
        return {"latency_p50": pct(lat, 50), "latency_p99": pct(lat, 99), "samples": len(lat),
                "ttff_median": statistics.median(ttff), "ttff_max": max(ttff), "joins": joins,
                "encode_ms_median": statistics.median(encode) if encode else None}
    finally:
        await server.stop()


# ------------------------------------------------------------------------------------------ report


def render(results: dict[str, Any]) -> str:
    out = [BEGIN, "## Media (bench/media.py)", "",
           f"Run {results['date']} on {results['machine']}. Medians unless said otherwise; every ratio compares",
           "figures of the same run.", ""]
    comp = results.get("compositing")
    if comp:
        out += ["### Compositing (ms per frame, median)", "",
                "| frame | overlay | lmserver (YUV in place) | RGB round trip | FFmpeg overlay filter (1 thread) | RGB / lmserver | FFmpeg / lmserver |",
                "|---|---|---|---|---|---|---|"]
        for r in comp:
            out.append(f"| {r['frame']} | {r['overlay']} | {r['ours_ms']:.3f} | {r['rgb_ms']:.2f} | {r['ffmpeg_ms']:.3f} | "
                       f"{r['rgb_ms'] / r['ours_ms']:.0f}x | {r['ffmpeg_ms'] / r['ours_ms']:.2f}x |")
        out += ["", "Target: <= 0.25 ms/frame at 1080p and faster than FFmpeg's overlay filter.", ""]
    lat = results.get("latency")
    if lat:
        out += ["### Latency (720p30 program, 2 Mbit/s)", "",
                "| measure | p50 | p99 / max |", "|---|---|---|",
                f"| ingest frame arrival -> viewer's sender takes the packet ({lat['samples']} frames) | "
                f"{lat['latency_p50']:.1f} ms | {lat['latency_p99']:.1f} ms |",
                f"| new viewer: WHEP POST -> first decoded frame ({lat['joins']} joins, 0.6 s apart) | {lat['ttff_median']:.0f} ms | "
                f"{lat['ttff_max']:.0f} ms (max) |",
                f"| program scale + composite + encode per frame (worker thread) | {lat['encode_ms_median']:.1f} ms | |",
                "", "Targets: added latency p50 <= 30 ms; first frame <= 300 ms.", ""]
    viewers = results.get("viewers")
    if viewers:
        out += ["### Viewers: one encode, packets to every viewer (720p30, ~2 Mbit/s)", "",
                "Receivers run in other processes on the same 2 cores (one decodes for real, the others count the",
                "frames from the RTP headers). Server CPU includes the lavfi test source, the x264 encoder and the",
                "viewer process (`media.fanout_processes = 1`: viewers beyond the first 50 are spread evenly between",
                "the main event loop and it). Loop lag is the main process's.", "",
                "| viewers | connected | in the viewer process | fps per viewer (median / min) | decoding viewer fps | server CPU (cores) | loop lag p99 | receivers' CPU |",
                "|---|---|---|---|---|---|---|---|"]
        for r in viewers:
            dec = f"{r['decoded_fps']:.1f}" if r["decoded_fps"] is not None else "-"
            out.append(f"| {r['n']} | {r['connected']} | {r.get('in_processes', 0)} | {r['fps_median']:.1f} / {r['fps_min']:.1f} | {dec} | "
                       f"{r['server_cpu']:.2f} | {r['lag_p99']:.0f} ms | {r['swarm_cpu']:.2f} |")
        out.append("")
    base = results.get("baseline")
    if base:
        out += ["### Baseline: aiortc's default per-viewer encode (same source, H.264)", "",
                "| viewers | fps per viewer (median / min) | server CPU (cores) | loop lag p99 |", "|---|---|---|---|"]
        for r in base:
            out.append(f"| {r['n']} | {r['fps_median']:.1f} / {r['fps_min']:.1f} | {r['server_cpu']:.2f} | {r['lag_p99']:.0f} ms |")
        out.append("")
        if viewers:
            ok_shared = max([r["n"] for r in viewers if r["fps_min"] >= 29 and r["connected"] == r["n"]], default=0)
            ok_base = max([r["n"] for r in base if r["fps_min"] >= 29], default=0)
            bound = " (the largest N tried: a lower bound)" if ok_base == max(r["n"] for r in base) else ""
            out += [f"Most viewers all at >= 29 fps in this run: shared packets {ok_shared}, per-viewer encode "
                    f"{ok_base}{bound}."]
            # marginal CPU per viewer, from the smallest and largest N that all held >= 29 fps
            def slope(rows: list[dict[str, Any]]) -> float | None:
                ok = [r for r in rows if r["fps_min"] >= 29]
                if len(ok) < 2:
                    return None
                lo, hi = ok[0], ok[-1]
                return (hi["server_cpu"] - lo["server_cpu"]) / (hi["n"] - lo["n"])
            shared, per_viewer = slope(viewers), slope(base)
            if shared and per_viewer:
                out += [f"Server CPU per additional viewer: shared packets {shared * 1000:.1f} millicores, per-viewer "
                        f"encode {per_viewer * 1000:.0f} millicores -> {per_viewer / shared:.0f}x less per viewer; at the "
                        f"measured rates one core serves ~{1 / shared:.0f} viewers on shared packets vs "
                        f"~{1 / per_viewer:.0f} with per-viewer encoding."]
            out.append("")
    out.append(END)
    return "\n".join(out)


def write_report(results: dict[str, Any]) -> None:
    write_section(BEGIN, END, render(results))
    (ROOT / "bench" / "media-results.json").write_text(json.dumps(results, indent=1))


async def amain(args: argparse.Namespace) -> None:
    saved = ROOT / "bench" / "media-results.json"
    results: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {}
    if not args.report_only:
        results["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        results["machine"] = machine()
    if args.report_only:
        write_report(results)
        print(f"wrote {REPORT}")
        return
    parts = args.parts or ["compositing", "latency", "viewers"]
    if "compositing" in parts:
        results["compositing"] = bench_compositing()
    if "latency" in parts:
        results["latency"] = await bench_latency()
    if "viewers" in parts:
        ns = [int(x) for x in args.n.split(",")]
        results["viewers"] = await bench_viewers(ns, args.window)
        results["baseline"] = await bench_baseline([int(x) for x in args.baseline.split(",")], args.window)
    write_report(results)
    print(f"wrote {REPORT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", choices=["compositing", "latency", "viewers", []], default=None)
    parser.add_argument("--n", default="1,50,100,150,200,300", help="viewer counts")
    parser.add_argument("--baseline", default="1,2,3,4,5", help="viewer counts of the per-viewer-encode baseline")
    parser.add_argument("--window", type=float, default=8.0, help="measurement window per step, seconds")
    parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from bench/media-results.json")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
