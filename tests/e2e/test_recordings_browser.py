"""Recordings in Chromium: the recorder's MP4 (fragmented, then remuxed to fast start) plays from t=8 s with
seeking over HTTP ranges, and the Settings → Recordings page (desktop, phone, dark) lists it."""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from lmserver.appkeys import CONFIG, DB, LIVE
from lmserver.media.encoder import AUDIO_TIME_BASE, VIDEO_TIME_BASE, AudioEncoder, VideoEncoder
from lmserver.media.recorder import Recorder, remux
from lmserver.recordings import RECORDINGS
from tests.browser import check_screenshot, login_page
from tests.conftest import PASSWORD, make_user

SECONDS, FPS = 12, 15


def colour(second: int) -> tuple[int, int, int]:
    """Each second of the synthetic show has its own colour (found again in the browser's frame)."""
    return (40 + 17 * second) % 256, (220 - 15 * second) % 256, (90 + 60 * (second % 3)) % 256


def record(path: Path) -> tuple[float, int]:
    """A 12 s recording written by the recorder from the program's own encoders, then remuxed."""
    video, audio = VideoEncoder(320, 240, FPS, 400_000, 2.0, 0.5, "ultrafast", 1), AudioEncoder(64_000)
    rec = Recorder(path, 320, 240, FPS)
    tone = (np.sin(np.arange(960 * 2) / 20) * 8000).astype(np.int16).reshape(1, -1)
    for i in range(SECONDS * FPS):
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), colour(i // FPS), np.uint8), format="rgb24")
        frame.pts, frame.time_base = i * 90000 // FPS, VIDEO_TIME_BASE
        for packet in video.encode(frame):
            rec.write_video(packet)
        for _ in range(50 // FPS + (1 if i % 3 == 0 else 0)):
            sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="stereo")
            sound.sample_rate, sound.time_base = 48000, AUDIO_TIME_BASE
            for packet in audio.encode(sound):
                rec.write_audio(packet)
    rec.close()
    assert rec.error is None
    return remux(path, path)


async def test_chromium_plays_a_recording_from_8_s_and_the_recordings_page(aiohttp_server: Any, app_factory: Any, browser: Any) -> None:
    app = app_factory()
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    data_dir = Path(app[CONFIG].data_dir)
    (data_dir / "recordings").mkdir(exist_ok=True)
    duration, size = await asyncio.to_thread(record, data_dir / "recordings" / "session-1-part1.mp4")
    assert duration >= SECONDS - 0.2
    now = time.time()
    async with app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES ('drop', 'Spring drop', ?, 60, ?, ?)", (now - 3600, now, now))
        cur = await tx.execute("INSERT INTO sessions (event_id, source, started_at, ended_at) VALUES (?, 'capture', ?, ?)",
                               (cur.lastrowid, now - 600, now - 580))
        cur = await tx.execute("INSERT INTO recordings (session_id, part, path, started_at, duration, size, state, created_at)"
                               " VALUES (?, 1, 'recordings/session-1-part1.mp4', ?, ?, ?, 'complete', ?)",
                               (cur.lastrowid, now - 600, duration, size, now - 600))
        rid = cur.lastrowid
    owner = await make_user(server, "owner")
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await login_page(context, base, owner, PASSWORD)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ranges: list[str] = []
    page.on("request", lambda req: ranges.append(req.headers.get("range", "")) if req.url.endswith("video.mp4") else None)
    await page.goto(base + "/settings")
    await page.click("a:has-text('Recordings')")
    await page.wait_for_url(base + "/settings/recordings")
    cells = await page.eval_on_selector_all("#recordings tbody tr td", "tds => tds.map(td => td.innerText.trim())")
    assert cells[0] == "Spring drop" and cells[3] == "0:12" and cells[5] == "complete", cells
    check_screenshot(await page.screenshot(full_page=True), "recordings-1280")

    played = await page.evaluate("""async (url) => {
        const v = document.createElement("video");
        v.muted = true; v.preload = "metadata"; v.src = url; v.width = 320;
        document.querySelector("main").append(v);
        const when = (name) => new Promise((ok, ko) => { v.addEventListener(name, ok, {once: true});
                                                      v.addEventListener("error", () => ko(new Error("video error " + (v.error && v.error.message))), {once: true}); });
        await when("loadedmetadata");
        v.currentTime = 8;
        await when("seeked");
        await v.play();
        for (let i = 0; i < 100 && v.currentTime < 8.4; i++) await new Promise((ok) => setTimeout(ok, 50));
        v.pause();
        const c = document.createElement("canvas"); c.width = 320; c.height = 240;
        const g = c.getContext("2d"); g.drawImage(v, 0, 0, 320, 240);
        return {duration: v.duration, time: v.currentTime, width: v.videoWidth, pixel: Array.from(g.getImageData(160, 120, 1, 1).data)};
    }""", f"/recordings/{rid}/video.mp4")
    print(f"\nplayed: {played}; range requests: {ranges}")
    assert abs(played["duration"] - duration) < 0.3 and played["width"] == 320
    assert 8.0 <= played["time"] < 11.0
    expected = colour(int(played["time"]))
    assert max(abs(a - b) for a, b in zip(played["pixel"][:3], expected)) < 30, (played["pixel"], expected)
    assert any(r.startswith("bytes=") for r in ranges)

    phone = await browser.new_context(viewport={"width": 375, "height": 812}, color_scheme="dark")
    page2 = await login_page(phone, base, owner, PASSWORD)
    await page2.goto(base + "/settings/recordings")
    assert await page2.evaluate("document.documentElement.dataset.theme") == "dark"
    overflow = await page2.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px on a phone"
    check_screenshot(await page2.screenshot(full_page=True), "recordings-375-dark")
    assert errors == []
    await context.close()
    await phone.close()


async def test_the_console_shows_the_recording_while_live(studio: Any, browser: Any) -> None:
    csrf = await studio.login()
    now = time.time()
    async with studio.app[DB].transaction() as tx:
        cur = await tx.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                               " VALUES ('rec', 'Rec show', ?, 60, ?, ?)", (now - 60, now, now))
        event_id = cur.lastrowid
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await login_page(context, studio.base, "host", PASSWORD)
    await page.goto(f"{studio.base}/events/{event_id}/console")
    async with studio.http.post(studio.base + "/api/media/capture", headers={"X-CSRF-Token": csrf}, json={
            "source": "lavfi:smptebars", "event_id": event_id, "practice": True,
            "options": {"video_size": "320x240", "framerate": "15"}}) as resp:
        assert resp.status == 201, await resp.text()
    try:
        await page.wait_for_function("(document.querySelector('#rec-indicator') || {}).textContent?.includes('● REC')", timeout=20000)
        text = await page.inner_text("#rec-indicator")
        assert text.endswith(" MB"), text
        # the part being recorded is a fragmented MP4 that already plays (what a replay opened mid-LIVE gets)
        sid = studio.app[LIVE].current.id
        for _ in range(100):
            async with studio.http.get(f"{studio.base}/api/sessions/{sid}/recording") as resp:
                parts = (await resp.json())["parts"]
            if parts and studio.app[RECORDINGS].current.recorder.duration >= 2.5:
                break
            await asyncio.sleep(0.1)
        assert parts[0]["state"] == "recording"
        played = await page.evaluate("""async (url) => {
            const v = document.createElement("video");
            v.muted = true; v.src = url;
            document.body.append(v);
            await new Promise((ok, ko) => { v.addEventListener("loadedmetadata", ok, {once: true});
                                            v.addEventListener("error", () => ko(new Error("video error " + (v.error && v.error.message))), {once: true}); });
            await v.play();
            for (let i = 0; i < 100 && v.currentTime < 1.0; i++) await new Promise((ok) => setTimeout(ok, 50));
            return {time: v.currentTime, width: v.videoWidth};
        }""", parts[0]["url"])
        assert played["time"] >= 1.0 and played["width"] == 320, played
    finally:
        async with studio.http.delete(studio.base + "/api/media/capture", headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200
        await context.close()
