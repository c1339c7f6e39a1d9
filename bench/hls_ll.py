"""How far behind the server's clock hls.js plays the LIVE, with LL-HLS (lowLatencyMode, parts and blocking
reloads) and without (whole segments), side by side in one headless Chromium on loopback.

The figure is hls.js's ``playingDate`` (the frame shown, from ``EXT-X-PROGRAM-DATE-TIME``) against the wall
clock: the server-side part of HLS's delay (packaging, playlist reloads, the player's hold-back), not
the camera's. ``bench/ladder.py`` measures glass-to-glass for every way of watching; this is the quick check.
It also reports the packager's CPU: process CPU seconds per second of program (720p30 H.264 ~2 Mbit/s
and AAC fed to :class:`~lmserver.media.hls.HlsOutput` as fast as possible; no encode is counted).

    .venv/bin/python -m bench.hls_ll [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, CookieJar, web

from lmserver import auth
from lmserver.appkeys import DB
from tests.browser import launch
from tests.livehelpers import make_event
from tests.media.mediafixtures import make_app

PLAY = """async ([url, lowLatency]) => {
  const { playHls } = await import("/static/js/hlsplay.js");
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; document.body.appendChild(video);
  await playHls(video, url, { lib: "/static/vendor/hls.js/hls.light.min.js", lowLatency });
  video.play().catch(() => {});
  window.behind = () => video.lmsHls && video.lmsHls.playingDate && video.currentTime > 0
    ? (Date.now() - video.lmsHls.playingDate.getTime()) / 1000 : null;
}"""


async def run(seconds: float) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), width=640, height=360, video_bitrate=1_000_000, keyframe_min_interval=0.5)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        try:
            event_id = await make_event(app)
            async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
                await auth.create_user(app[DB], "host", "owner", "correct horse battery")
                async with http.post(base + "/api/login", json={"name": "host", "password": "correct horse battery"}) as resp:
                    csrf = (await resp.json())["csrf_token"]
                async with http.post(base + "/api/media/capture", json={"source": "lavfi:testsrc2", "event_id": event_id},
                                     headers={"X-CSRF-Token": csrf}) as resp:
                    assert resp.status == 201, await resp.text()
                async with async_playwright() as pw:
                    browser = await launch(pw)
                    pages: dict[str, Any] = {}
                    for name, low in (("LL-HLS (lowLatencyMode)", True), ("plain HLS (segments)", False)):
                        page = await browser.new_page()
                        await page.goto(base + "/static/js/hlsplay.js")
                        await page.evaluate(PLAY, [f"{base}/hls/{event_id}/index.m3u8", low])
                        pages[name] = page
                    await asyncio.sleep(10)  # first segment, then the players settle at their hold-back
                    figures: dict[str, list[float]] = {name: [] for name in pages}
                    for _ in range(int(seconds * 2)):
                        for name, page in pages.items():
                            value = await page.evaluate("window.behind()")
                            if value is not None:
                                figures[name].append(value)
                        await asyncio.sleep(0.5)
                    await browser.close()
        finally:
            await runner.cleanup()
    return figures


async def packaging_cpu(seconds: int = 120) -> float:
    """CPU seconds the LL-HLS packager spends per second of 720p30 program."""
    import time

    import av
    import numpy as np

    from lmserver.media.encoder import VideoEncoder
    from lmserver.media.hls import HlsOutput
    from lmserver.media.restream_audio import Slate, _new_aac, aac_config
    from lmserver.media.restream_common import AAC_FRAME

    fps = 30
    encoder = VideoEncoder(1280, 720, fps, 2_000_000, 2.0, 0.5, "ultrafast")
    packets: list[tuple[bytes, bool]] = []
    rng = np.random.default_rng(1)
    for i in range(fps * 2 + 5):
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (720, 1280, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
        frame.pts = i * 3000
        packets += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(frame)]
    encoder.close()
    packets = packets[:fps * 2]
    aac = Slate._silence(_new_aac(), AAC_FRAME, "fltp") * 3  # about the size of a 128 kbit/s frame
    out = HlsOutput(1280, 720, fps, 2.0, 6, 0.5, aac_config())
    t = audio_t = 1000.0
    cpu = time.process_time()
    for n in range(seconds * fps):
        data, key = packets[n % len(packets)]
        out.feed(("v", t, data, key))
        t += 1 / fps
        while audio_t < t:
            out.feed(("a", audio_t, aac, False))
            audio_t += AAC_FRAME / 48000
    used = time.process_time() - cpu
    out.close()
    return used / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    figures = asyncio.run(run(args.seconds))
    print(f"load average {os.getloadavg()[0]:.1f}; seconds behind the server's clock over {args.seconds:g} s:")
    for name, values in figures.items():
        if values:
            print(f"  {name:26s} median {statistics.median(values):.2f} s  min {min(values):.2f}  max {max(values):.2f}  ({len(values)} samples)")
        else:
            print(f"  {name:26s} did not play")
    print(f"LL-HLS packaging: {asyncio.run(packaging_cpu()) * 1000:.2f} ms CPU per second of 720p30 program (cores × 1000)")


if __name__ == "__main__":
    main()
