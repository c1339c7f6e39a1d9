"""``kill -9`` of a real ``lmserver serve`` while it records a LIVE, then a restart that recovers the recording.

A LIVE planned for 20 s from the SMPTE-bars capture source; a billboard is shown 5 s in; the server is killed
with SIGKILL 15 s in. After the restart, the part left ``recording`` is remuxed to a fast-start MP4 and marked
``complete``: it plays (decoded with PyAV) at least 13 s, and the billboard's own pixels are in the frames from
5 s on, and not before.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import av
import numpy as np

from lmserver_plugins.billboard.service import draw
from tests.conftest import PASSWORD
from tests.test_orders_crash import Server

BILLBOARDS = "/api/plugins/billboard/billboards"
SHOW_AT, KILL_AT = 5.0, 15.0


async def login(server: Server, http: aiohttp.ClientSession) -> dict[str, str]:
    http.cookie_jar.clear()
    async with http.post(server.base + "/api/login", json={"name": "host", "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


async def api(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], status: int = 200, **kw: object) -> dict:
    async with http.request(method, url, headers=headers, **kw) as resp:  # type: ignore[arg-type]
        assert resp.status == status, await resp.text()
        return await resp.json()


async def test_kill_9_while_recording_then_recovered(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.env.update({"LMSERVER_MEDIA_RECORD": "true", "LMSERVER_MEDIA_WIDTH": "320", "LMSERVER_MEDIA_HEIGHT": "240",
                       "LMSERVER_MEDIA_FPS": "15", "LMSERVER_MEDIA_VIDEO_BITRATE": "500000"})
    server.cli("user", "add", "host", "--role", "owner", stdin=PASSWORD + "\n")
    conn = server.db()
    now = time.time()
    event_id = conn.execute("INSERT INTO events (slug, title, starts_at, duration_minutes, created_at, updated_at)"
                            " VALUES ('crash', 'Crash', ?, 60, ?, ?)", (now - 60, now, now)).lastrowid
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await server.start(http)
        h = await login(server, http)
        b = (await api(http, "POST", server.base + BILLBOARDS, h, 201, json={"template": "limited_stock", "text": "Only 3 left"}))["billboard"]
        b = (await api(http, "PATCH", f"{server.base}{BILLBOARDS}/{b['id']}", h, json={"x": 16, "y": 24}))["billboard"]
        await api(http, "POST", server.base + "/api/media/capture", h, 201,
                  json={"source": "lavfi:smptebars", "event_id": event_id, "options": {"video_size": "320x240", "framerate": "15"}})
        # t=0 of the LIVE: its first frame is encoded and recorded (the part's started_at)
        for _ in range(300):
            row = conn.execute("SELECT * FROM recordings").fetchone()
            if row is not None and row["started_at"] is not None:
                break
            await asyncio.sleep(0.05)
        assert row is not None and row["started_at"] is not None, "the recording never started"
        t0 = row["started_at"]
        await asyncio.sleep(max(0.0, t0 + SHOW_AT - time.time()))
        await api(http, "POST", f"{server.base}{BILLBOARDS}/{b['id']}/show", h)
        shown_at = time.time() - t0
        await asyncio.sleep(max(0.0, t0 + KILL_AT - time.time()))
        server.kill9()
        killed_at = time.time() - t0
        server.wait_dead()
        assert conn.execute("SELECT state FROM recordings").fetchone()["state"] == "recording"

        await server.start(http)  # recovery: the part left 'recording' is remuxed in the background
        for _ in range(300):
            row = conn.execute("SELECT * FROM recordings").fetchone()
            if row["state"] != "recording":
                break
            await asyncio.sleep(0.1)
        assert row["state"] == "complete", dict(row)
        path = server.data / row["path"]
        assert row["size"] == path.stat().st_size
        h = await login(server, http)
        parts = (await api(http, "GET", f"{server.base}/api/sessions/{row['session_id']}/recording", h))["parts"]
        assert [p["id"] for p in parts] == [row["id"]] and parts[0]["state"] == "complete"
    finally:
        await http.close()
        server.close()
        conn.close()

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    last = frames[-1][0]
    print(f"\nshown at {shown_at:.2f} s, killed at {killed_at:.2f} s; recovered {last:.2f} s ({len(frames)} frames),"
          f" row duration {row['duration']:.2f} s")
    assert last >= 13.0 and row["duration"] >= 13.0
    # the billboard: its box differs from the bars only once shown (compared with the frame at 1 s)
    before = next(img for t, img in frames if t >= 1.0)
    box = (slice(b["y"], b["y"] + b["height"]), slice(b["x"], b["x"] + b["width"]))

    def changed(img: np.ndarray) -> float:
        return float(np.abs(img[box].astype(np.float32) - before[box].astype(np.float32)).mean())

    early = [changed(img) for t, img in frames if 1.0 <= t <= shown_at - 0.3]
    late = [changed(img) for t, img in frames if t >= shown_at + 0.7]
    assert early and late
    print(f"box change before {max(early):.1f}, after {min(late):.1f}")
    assert max(early) < 6, "the billboard's box changed before it was shown"
    assert min(late) > 25, "the billboard is missing from frames after it was shown"
    # and what appears is the billboard's own pixels, as the plugin draws them, blended over the bars
    rgba = np.asarray(draw(b, server.data), np.float32)
    alpha = rgba[:, :, 3:] / 255.0
    expected = rgba[:, :, :3] * alpha + before[box].astype(np.float32) * (1 - alpha)
    errors = [float(np.abs(img[box].astype(np.float32) - expected).mean()) for t, img in frames if t >= shown_at + 0.7]
    print(f"billboard pixel error: worst {max(errors):.1f}")
    assert max(errors) < 14, "the frames after 5 s do not show the billboard's pixels"
