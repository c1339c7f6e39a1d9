"""The latency ladder: glass-to-glass latency of every way of watching, in one run, and the CPU each
destination type adds.

One publisher (aiortc, 30 fps) draws the wall-clock time into its frames (:func:`bench.glass.draw_clock`)
and publishes them with a tone over WHIP to lmserver A (``lmserver serve``, its own process). Receivers in
this process (same machine, same clock) decode the picture and read the clock back, all at the same time:

1. **WebRTC**: an aiortc WHEP viewer of A;
2. **WHIP out**: A's WHIP destination publishes to a second ``lmserver serve`` B; an aiortc WHEP viewer of B;
3. **RTMP out**: A's RTMP destination publishes to Debian's nginx-rtmp; PyAV plays it back from nginx
   (``fflags=nobuffer``, small probesize/analyzeduration) — skipped, with the reason, without nginx;
4. **HLS**: headless Chromium plays ``/hls/<event>/index.m3u8`` through the vendored hls.js
   (``lowLatencyMode`` on, and off), the page reading the clock from the ``<video>`` on each
   ``requestVideoFrameCallback`` (canvas → ``getImageData``, ``Date.now()`` as its clock);
5. the **direct** aiortc → aiortc peer connection: the same-run baseline.

Then the CPU of A's process (and its children, from /proc) over fixed windows: no destination, one RTMP,
one WHIP out (HLS off), HLS on, and RTMP beside HLS (A restarted with ``media.hls`` switched). Nothing is
re-encoded; the first RTMP destination or HLS also carries the ONE shared AAC encode of the program's audio.

    .venv/bin/python -m bench.ladder [--seconds 30] [--cpu-seconds 10] [--cpu-rounds 2] [--quick]

Only the "ladder" section of BENCHMARKS.md is rewritten (``--no-write``: print it only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, CookieJar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.glass import ClockTrack, Server, _exchange, peer  # noqa: E402
from bench.ladder_readers import HlsPage, RtmpPlayer, ToneTrack, Way, direct, wait_playlist, whep  # noqa: E402
from bench.report import machine, write_section  # noqa: E402

BEGIN, END = "<!-- ladder:begin -->", "<!-- ladder:end -->"
PASSWORD = "ladder bench password"
RTMP_APP, RTMP_KEY = "secure", "ladder"  # nginxrtmp's application without recording (no on_publish without auth_url)

WAYS = [  # (key, label) in the table's order
    ("direct", "direct peer connection (aiortc → aiortc, the baseline)"),
    ("webrtc", "WebRTC viewer of A (WHIP → A → WHEP)"),
    ("whip", "WHIP out: A → second lmserver B → B's WHEP viewer"),
    ("rtmp", "RTMP out: A → nginx-rtmp → PyAV player"),
    ("hls_ll", "HLS: Chromium + hls.js, lowLatencyMode on"),
    ("hls", "HLS: Chromium + hls.js, lowLatencyMode off"),
]


# ------------------------------------------------------------------------------------------ the studios


class Studio:
    """lmserver A: ``lmserver serve`` (:class:`bench.glass.Server`) with an owner, its restream destinations
    and the WHIP publisher."""

    def __init__(self, program: tuple[int, int], hls: bool) -> None:
        self.server = Server(program)
        self.server.env["LMSERVER_MEDIA_HLS"] = "true" if hls else "false"
        self.http = ClientSession(cookie_jar=CookieJar(unsafe=True))
        self.csrf = ""
        self.dest: dict[str, int] = {}
        self.pub = peer()

    @property
    def base(self) -> str:
        return self.server.base

    async def start(self, size: tuple[int, int]) -> None:
        add = subprocess.run([sys.executable, "-m", "lmserver", "user", "add", "host", "--role", "owner", "--data-dir",
                              self.server.tmp.name], input=PASSWORD + "\n", capture_output=True, text=True,
                             env=self.server.env, cwd=ROOT, timeout=60)
        if add.returncode:
            raise RuntimeError(f"lmserver user add: {add.stderr}")
        await self.server.start(self.http)
        self.pub.addTrack(ClockTrack(*size))
        self.pub.addTrack(ToneTrack())
        await _exchange(self.http, self.base + "/whip", self.pub, {"Authorization": f"Bearer {self.server.key}"})  # not logged in yet
        async with self.http.post(self.base + "/api/login", json={"name": "host", "password": PASSWORD}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"login: {resp.status} {await resp.text()}")
            self.csrf = (await resp.json())["csrf_token"]

    async def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.http.request(method, self.base + path, json=body, headers={"X-CSRF-Token": self.csrf}) as resp:
            data = await resp.json()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def add_destination(self, name: str, url: str, key: str, preset: str) -> None:
        data = await self.api("POST", "/api/restream/destinations",
                              {"name": name, "preset": preset, "url": url, "key": key, "start_with_live": False})
        self.dest[name] = int(data["destination"]["id"])

    async def switch(self, name: str, on: bool) -> None:
        await self.api("POST", f"/api/restream/destinations/{self.dest[name]}/{'start' if on else 'stop'}")

    async def until_live(self, name: str, seconds: float = 30) -> None:
        state: dict[str, Any] = {}
        for _ in range(int(seconds / 0.25)):
            status = await self.api("GET", "/api/restream/status")
            state = next(d for d in status["destinations"] if d["id"] == self.dest[name])
            if state["state"] == "live":
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the {name} destination is not live: {state.get('state')} {state.get('error')}")

    def event_id(self) -> int:
        with sqlite3.connect(Path(self.server.tmp.name) / "lmserver.sqlite3", timeout=10) as db:
            row = db.execute("SELECT event_id FROM sessions WHERE ended_at IS NULL AND practice = 0 ORDER BY id DESC").fetchone()
        if row is None or row[0] is None:
            raise RuntimeError("A is not live in an event")
        return int(row[0])

    def cpu_seconds(self) -> float:
        """CPU seconds of A's process and its children (the fan-out processes), from /proc."""
        return self.server.cpu()

    async def close(self) -> None:
        for name in list(self.dest):  # a WHIP destination ends its session on B (DELETE) before A goes
            try:
                await self.switch(name, False)
            except Exception:
                pass
        await self.pub.close()
        await asyncio.sleep(0.5)
        await self.http.close()
        self.server.stop()


# ------------------------------------------------------------------------------------------ the run


async def latency(args: argparse.Namespace, a: Studio, b: Server | None, rtmp_url: str, http: ClientSession,
                  ways: dict[str, Way], info: dict[str, Any]) -> None:
    """All the receivers at once; the same collecting window for every one."""
    closers: list[Any] = []
    pages: list[HlsPage] = []

    async def guard(key: str, coro: Any) -> None:
        try:
            await coro
        except Exception as exc:  # one way that fails leaves the others measured
            ways[key].error = ways[key].error or f"{type(exc).__name__}: {exc}"

    async def start_direct() -> None:
        pub, sub = await direct(args.width, args.height, ways["direct"])
        closers.extend([pub.close, sub.close])

    async def start_webrtc() -> None:
        closers.append((await whep(a.base, http, ways["webrtc"], 20)).close)

    async def start_whip() -> None:
        if b is None:
            raise RuntimeError("B did not start")
        await a.switch("whip", True)
        await a.until_live("whip")
        closers.append((await whep(b.base, http, ways["whip"], 30)).close)

    async def start_rtmp() -> None:
        await a.switch("rtmp", True)
        await a.until_live("rtmp")
        closers.append(RtmpPlayer(rtmp_url, ways["rtmp"]).close)

    async def start_hls() -> None:
        from playwright.async_api import async_playwright

        from tests.browser import launch

        playlist = f"{a.base}/hls/{a.event_id()}/index.m3u8"
        info["ll_parts"] = "#EXT-X-PART:" in await wait_playlist(http, playlist)  # LL-HLS parts, or plain segments
        pw = await async_playwright().start()
        closers.append(pw.stop)
        browser = await launch(pw)
        closers.insert(0, browser.close)
        context = await browser.new_context(viewport={"width": 660, "height": 380})
        for key in [k for k in ("hls_ll", "hls") if k in ways]:
            await guard(key, _page(key, context, playlist))

    async def _page(key: str, context: Any, playlist: str) -> None:
        pages.append(await HlsPage.open(ways[key], context, a.base, playlist, key == "hls_ll"))

    starts = {"direct": start_direct, "webrtc": start_webrtc, "whip": start_whip, "rtmp": start_rtmp}
    await asyncio.gather(*(guard(k, f()) for k, f in starts.items() if k in ways and not ways[k].error),
                         guard("hls_ll", start_hls()) if "hls_ll" in ways else asyncio.sleep(0))
    if "hls" in ways and not pages:  # the browser did not start: the same reason for both HLS rows
        ways["hls"].error = ways["hls"].error or ways["hls_ll"].error
    try:
        deadline = time.monotonic() + args.start_timeout  # bounded: every way shows frames (HLS takes a few seconds)
        while time.monotonic() < deadline:
            for p in pages:
                await p.sync()
            if all(w.reader.frames >= 10 or w.error for w in ways.values()):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(args.warmup)  # jitter buffers settle, the first keyframe is behind us, hls.js reaches its hold-back
        for w in ways.values():
            w.reader.collect = True
        for p in pages:
            await p.sync(True)
        await asyncio.sleep(args.seconds)
        for _ in range(40):  # bounded (20 s): a way that shows frames but no clock read yet (a loaded machine) gets more time
            for p in pages:
                await p.sync()
            if all(w.reader.samples or w.error or not w.reader.frames for w in ways.values()):
                break
            await asyncio.sleep(0.5)
        for w in ways.values():
            w.reader.collect = False
        for p in pages:
            await p.sync(False)
    finally:
        for w in ways.values():
            await w.reader.close()
        for close in closers:
            try:
                await close()
            except Exception:
                pass
        for name in ("rtmp", "whip"):
            if name in a.dest:
                await a.switch(name, False)


async def cpu_window(a: Studio, seconds: float) -> float:
    await asyncio.sleep(3.0)  # a destination connects, the HLS segments start
    t0, c0 = time.monotonic(), a.cpu_seconds()
    await asyncio.sleep(seconds)
    return (a.cpu_seconds() - c0) / (time.monotonic() - t0)


async def cpu_runs(a: Studio, args: argparse.Namespace, hls: bool, have: set[str]) -> dict[str, list[float]]:
    """A's cores over each window, ``args.cpu_rounds`` times: with ``hls`` (A's HLS on) "hls" and "hls+rtmp",
    else "none", "rtmp" and "whip". Each round measures its baseline right before its destinations."""
    out: dict[str, list[float]] = {}
    await asyncio.sleep(3.0)  # what ran before (Chromium, the viewers) has gone
    for _ in range(args.cpu_rounds):
        out.setdefault("hls" if hls else "none", []).append(await cpu_window(a, args.cpu_seconds))
        for name in ("rtmp",) if hls else ("rtmp", "whip"):
            if name not in have:
                continue
            await a.switch(name, True)
            await a.until_live(name)
            out.setdefault(f"hls+{name}" if hls else name, []).append(await cpu_window(a, args.cpu_seconds))
            await a.switch(name, False)
    return out


def added_cpu(runs: dict[str, list[float]]) -> dict[str, float]:
    """Cores added: a destination against its round's baseline (median over rounds); HLS on against HLS off
    (two processes of A: the difference of the medians)."""
    added = {}
    for key, ref in (("rtmp", "none"), ("whip", "none"), ("hls+rtmp", "hls")):
        if key in runs and ref in runs:
            added[key] = statistics.median(x - y for x, y in zip(runs[key], runs[ref]))
    if "hls" in runs and "none" in runs:
        added["hls"] = statistics.median(runs["hls"]) - statistics.median(runs["none"])
    return added


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    from tests.media.nginxrtmp import NginxRtmp

    out: dict[str, Any] = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                           "seconds": args.seconds, "warmup": args.warmup, "cpu_seconds": args.cpu_seconds,
                           "cpu_rounds": args.cpu_rounds, "ingest": f"{args.width}x{args.height}",
                           "program": f"{args.program[0]}x{args.program[1]}"}
    ways = {k: Way(k) for k, _ in WAYS if k != "hls" or args.hls_off}
    tmp = tempfile.TemporaryDirectory()
    nginx: Any = None
    try:
        nginx = NginxRtmp(Path(tmp.name) / "nginx")
        await nginx.start()
    except BaseException as exc:  # pytest.skip's exception (no nginx) is a BaseException: that row says why
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        ways["rtmp"].error = f"skipped: {exc}"
        nginx = None
    b = Server(args.program)
    a: Studio | None = None
    loads = [os.getloadavg()[0]]
    async with ClientSession() as http:
        try:
            try:
                await b.start(http)
            except Exception as exc:
                ways["whip"].error = f"B: {exc}"
            a = Studio(args.program, hls=True)
            await a.start((args.width, args.height))
            have: set[str] = set()
            if nginx is not None:
                await a.add_destination("rtmp", f"rtmp://127.0.0.1:{nginx.port}/{RTMP_APP}", RTMP_KEY, "custom")
                have.add("rtmp")
            if not ways["whip"].error:
                await a.add_destination("whip", b.base + "/whip", b.key, "whip")
                have.add("whip")
            rtmp_url = f"rtmp://127.0.0.1:{nginx.port}/{RTMP_APP}/{RTMP_KEY}" if nginx is not None else ""
            await asyncio.sleep(1.0)  # the program starts
            await latency(args, a, b if "whip" in have else None, rtmp_url, http, ways, out)
            loads.append(os.getloadavg()[0])
            cpu = await cpu_runs(a, args, True, have)
            await a.close()
            a = Studio(args.program, hls=False)  # the same studio with media.hls off
            await a.start((args.width, args.height))
            if "rtmp" in have:
                await a.add_destination("rtmp", f"rtmp://127.0.0.1:{nginx.port}/{RTMP_APP}", RTMP_KEY, "custom")
            if "whip" in have:
                await a.add_destination("whip", b.base + "/whip", b.key, "whip")
            await asyncio.sleep(1.0)
            cpu.update(await cpu_runs(a, args, False, have))
            loads.append(os.getloadavg()[0])
        finally:
            if a is not None:
                await a.close()
            b.stop()
            if nginx is not None:
                await nginx.stop()
            tmp.cleanup()
    out["ways"] = {k: w.result() for k, w in ways.items()}
    out["cpu"] = {k: statistics.median(v) for k, v in cpu.items()}
    out["cpu_rounds_cores"] = cpu
    out["cpu_added"] = added_cpu(cpu)
    out["load"] = max(loads)
    return out


# ------------------------------------------------------------------------------------------ report


def render(r: dict[str, Any]) -> str:
    rows = []
    for key, label in WAYS:
        w = r["ways"].get(key)
        if w is None:
            continue
        if "median" in w:
            rows.append(f"| {label} | {w['median']:.0f} ms | {w['p90']:.0f} ms | {w['max']:.0f} ms | {w['n']} |")
        else:
            rows.append(f"| {label} | — | — | — | 0 ({w['error']}) |")
    cpu = r["cpu"]
    added = []
    base = cpu.get("none")

    def cores(key: str) -> str:  # the median, and each round's figure when there are several
        each = r["cpu_rounds_cores"][key]
        return f"{cpu[key]:.3f}" + (f" ({', '.join(f'{c:.3f}' for c in each)})" if len(each) > 1 else "")
    for key, label in [("rtmp", "one RTMP destination (with the shared AAC encode, HLS off)"),
                       ("whip", "one WHIP out destination (Opus as it is: no AAC)"),
                       ("hls", "HLS on (with the shared AAC encode)"),
                       ("hls+rtmp", "one RTMP destination beside HLS (the AAC encode already runs)")]:
        if key in r["cpu_added"]:
            added.append(f"| {label} | {cores(key)} | {r['cpu_added'][key]:+.4f} |")
    base_row = f"| none (HLS off, no destination) | {cores('none')} | — |" if base is not None else ""
    hls_ll = r["ways"].get("hls_ll", {})
    return "\n".join([
        BEGIN, "## Latency ladder (bench/ladder.py)", "",
        f"Run {r['date']} on {r['machine']}; load average up to {r['load']:.1f} during the run. One aiortc publisher draws"
        f" the wall-clock time into each {r['ingest']} frame (30 fps, with a tone) and publishes it over WHIP to lmserver A"
        f" ({r['program']}p30 program, its own process); every receiver decodes the picture and reads the clock back on the"
        f" same machine, all at the same time, for {r['seconds']:g} s after {r['warmup']:g} s of warm-up. HLS is read in"
        " headless Chromium (hls.js `requestVideoFrameCallback` → canvas → `getImageData`, `Date.now()` as its clock;"
        " hls.js catching up at up to 1.25× as the viewer page does, its defaults otherwise) from"
        f" {'an LL-HLS playlist with parts' if r.get('ll_parts') else 'a playlist of whole segments (no LL-HLS parts)'}.", "",
        "| way of watching | median | p90 | max | frames read |", "|---|---|---|---|---|", *rows, "",
        "Targets: WebRTC ≤ 150 ms median on loopback; LL-HLS ≤ 3 s"
        + (f" (hls.js lowLatencyMode: {hls_ll['median'] / 1000:.1f} s)." if "median" in hls_ll else "."), "",
        "Every receiver runs in this one process while all the others do, so the rows are comparable with each other,"
        " not with bench/glass.py's quieter pairs. The aiortc viewers (direct, WebRTC, WHIP out) hold each frame one frame"
        " interval in aiortc's own jitter buffer (it releases a frame when the next one begins: lmserver's ingest no longer"
        " does, a viewer's aiortc does) and share one event loop; the RTMP player has no jitter buffer and decodes in its"
        " own thread, hence RTMP below the direct WebRTC baseline here.", "",
        f"CPU of A's process (and its children) over {r['cpu_seconds']:g} s windows, {r['cpu_rounds']}"
        f" round{'s' if r['cpu_rounds'] != 1 else ''} (medians; each destination against its round's baseline), the"
        " publisher streaming, no viewer;"
        " nothing is re-encoded. The first RTMP destination or HLS also carries the ONE shared AAC encode of the program's"
        " audio (later RTMP destinations and HLS reuse it); WHIP out sends the Opus packets as they are.", "",
        "| A with | cores (each round) | added (target ≤ 0.02 core) |", "|---|---|---|", base_row, *added, "", END])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="latency collecting window (all ways at once)")
    parser.add_argument("--cpu-seconds", type=float, default=10.0, help="each CPU window")
    parser.add_argument("--cpu-rounds", type=int, default=2, help="rounds of CPU windows (medians)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--program", type=lambda s: tuple(int(x) for x in s.split("x")), default=(1280, 720))
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds between every way showing frames and collecting")
    parser.add_argument("--start-timeout", type=float, default=60.0, help="how long the ways may take to show frames")
    parser.add_argument("--no-hls-off", dest="hls_off", action="store_false", help="only hls.js with lowLatencyMode on")
    parser.add_argument("--quick", action="store_true", help="short windows, 640x360 program, HLS with lowLatencyMode only")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print the section, leave BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.cpu_seconds, args.cpu_rounds, args.warmup = 4.0, 2.0, 1, 2.0
        args.program, args.hls_off = (640, 360), False
    return args


def main() -> None:
    args = parse_args()
    results = asyncio.run(amain(args))
    section = render(results)
    if args.write:
        write_section(BEGIN, END, section)
    print(section)


if __name__ == "__main__":
    main()
