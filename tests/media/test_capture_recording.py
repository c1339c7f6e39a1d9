"""The local capture source (lavfi here), staff preview in practice mode, and the session recording."""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
from aiohttp import ClientSession
from rtcclients import Viewer, rgb

from lmserver.appkeys import BUS

LAVFI = {"source": "lavfi:testsrc2"}  # a test pattern with a tone (media.capture_lavfi is on in the tests)


async def test_capture_practice_preview_and_recording_with_overlay(studio) -> None:
    csrf = await studio.login()
    headers = {"X-CSRF-Token": csrf}
    ended = asyncio.Event()
    studio.app[BUS].on("stream.ended", lambda record: ended.set())
    healthy = asyncio.Event()
    health: list[dict] = []

    def on_health(record) -> None:  # type: ignore[no-untyped-def]
        health.append(record.data)
        if record.data["fps"] > 0 and record.data["audio_level"] is not None:
            healthy.set()

    studio.app[BUS].on("stream.health", on_health)
    body = {**LAVFI, "options": {"video_size": "640x480", "framerate": "30"}, "practice": True}
    async with studio.http.post(studio.base + "/api/media/capture", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        status = await resp.json()
    assert status["live"] and status["ingest"]["kind"] == "capture" and status["ingest"]["practice"]
    async with studio.http.post(studio.base + "/api/media/capture", json=body, headers=headers) as resp:
        assert resp.status == 409
    studio.media.compositor.set_layer("banner", np.full((40, 320, 4), (0, 0, 255, 255), np.uint8), 0, 200)
    staff_viewer, public_viewer = Viewer(), Viewer()
    try:
        # the anonymous viewer is refused in practice mode, staff get a preview
        async with ClientSession() as anonymous:
            status_code, answer = await public_viewer.play(anonymous, studio.base)
        assert status_code == 403 and "practising" in answer
        status_code, answer = await staff_viewer.play(studio.http, studio.base, headers=headers)
        assert status_code == 201, answer
        await staff_viewer.wait_frames(20)
        img = rgb(staff_viewer.frames[-1])
        assert img.shape == (240, 320, 3)
        banner = img[208:232, 8:312].reshape(-1, 3).mean(axis=0)
        assert banner[2] > 200 and banner[0] < 60, banner
        await asyncio.wait_for(healthy.wait(), 10)
        last = health[-1]
        # the staff preview watches, but a preview is not audience: it counts in no viewer figure
        assert last["width"] == 640 and last["height"] == 480 and last["viewers"] == 0
        assert studio.media.status()["previews"] == 1
        assert last["silent"] is False and last["encode_ms"] is not None
        async with studio.http.delete(studio.base + "/api/media/capture", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        await asyncio.wait_for(ended.wait(), 10)
        assert studio.media.compositor.layers() == []  # cleared when the session ends
    finally:
        await staff_viewer.close()
        await public_viewer.close()
    # the recording: one part, remuxed to a fast-start MP4 in the background once the session ended
    sid = status["ingest"]["session_id"]
    for _ in range(100):
        async with studio.http.get(f"{studio.base}/api/sessions/{sid}/recording") as resp:
            assert resp.status == 200, await resp.text()
            recording = await resp.json()
        if recording["parts"] and recording["parts"][0]["state"] != "recording":
            break
        await asyncio.sleep(0.1)
    assert recording["published"] is False and len(recording["parts"]) == 1, recording
    part = recording["parts"][0]
    assert part["state"] == "complete" and part["duration"] > 0.5 and part["started_at"] is not None, part
    async with studio.http.get(studio.base + part["url"]) as resp:
        assert resp.status == 200 and resp.content_type == "video/mp4"
        data = await resp.read()
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")  # fast start: the index first
    assert len(data) == part["size"]
    with av.open(io.BytesIO(data)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        frames = [f for _, f in zip(range(90), container.decode(video=0))]
    assert len(frames) >= 20
    last_frame = frames[-1].to_ndarray(format="rgb24")
    assert last_frame[208:232, 8:312, 2].mean() > 200  # the overlay is in the recording


async def test_end_live_and_status_endpoints(studio) -> None:
    async with studio.http.get(studio.base + "/api/media/status") as resp:
        assert resp.status == 401
    csrf = await studio.login()
    headers = {"X-CSRF-Token": csrf}
    async with studio.http.post(studio.base + "/api/media/capture", json=LAVFI, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
    async with studio.http.get(studio.base + "/api/media/status") as resp:
        status = await resp.json()
        assert status["live"] and status["ingest"]["kind"] == "capture" and not status["ingest"]["practice"]
    async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
        assert resp.status == 200 and not (await resp.json())["live"]
    async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
        assert resp.status == 409 and "not live" in (await resp.json())["error"]["message"]
    async with studio.http.post(studio.base + "/api/media/capture", json={"source": "v4l2:video99"}, headers=headers) as resp:
        assert resp.status == 400 and "unknown capture source" in (await resp.json())["error"]["message"]
    assert studio.media.ingest is None
