"""HLS: the live program as fMP4 HLS from the same packets — PyAV decodes 10 s of it over loopback HTTP;
practice, other events and bad names are 404; the folder is removed when the LIVE ends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import av
import pytest

from lmserver.appkeys import DB
from tests.livehelpers import make_event

LAVFI = "lavfi:testsrc2"


async def go_live(studio: Any, event_id: int, practice: bool = False) -> dict[str, str]:
    headers = {"X-CSRF-Token": await studio.login()}
    async with studio.http.post(studio.base + "/api/media/capture", headers=headers,
                                json={"source": LAVFI, "event_id": event_id, "practice": practice}) as resp:
        assert resp.status == 201, await resp.text()
    return headers


async def wait_playlist(studio: Any, url: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with studio.http.get(url) as resp:
            if resp.status == 200:
                assert resp.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
                assert "no-cache" in resp.headers["Cache-Control"]
                return await resp.text()
            assert resp.status == 503 and resp.headers["Retry-After"] == "1", await resp.text()  # not ready yet
        await asyncio.sleep(0.25)
    raise AssertionError("no HLS playlist within 30 s")


def decode(url: str, seconds: float, fps: int) -> tuple[int, int, tuple[int, int]]:
    """Video and audio frames PyAV decodes from the live playlist, until ``seconds`` of video."""
    video = audio = 0
    size = (0, 0)
    with av.open(url, options={"live_start_index": "0"}, timeout=20) as container:
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                video += 1
                size = (frame.width, frame.height)
                if video >= seconds * fps:
                    break
            else:
                audio += 1
    return video, audio, size


async def test_pyav_decodes_ten_seconds_of_the_live_over_hls(studio: Any) -> None:
    event_id = await make_event(studio.app)
    slug = await studio.app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (event_id,))
    headers = await go_live(studio, event_id)
    url = f"{studio.base}/hls/{slug}/index.m3u8"
    playlist = await wait_playlist(studio, url)
    assert "#EXT-X-MAP:URI=\"init.mp4\"" in playlist and "#EXT-X-INDEPENDENT-SEGMENTS" in playlist
    segment = next(line for line in playlist.splitlines() if line.endswith(".m4s"))
    async with studio.http.get(f"{studio.base}/hls/{event_id}/{segment}") as resp:  # by id works too
        assert resp.status == 200 and "immutable" in resp.headers["Cache-Control"]
        assert resp.headers["Content-Type"] == "video/iso.segment" and len(await resp.read()) > 1000
    other = await make_event(studio.app, title="Other show")
    async with studio.http.get(f"{studio.base}/hls/{other}/index.m3u8") as resp:
        assert resp.status == 404  # only the event that is live
    cfg = studio.media.config
    video, audio, size = await asyncio.wait_for(asyncio.to_thread(decode, url, 10.0, cfg.fps), 120)
    assert size == (cfg.width, cfg.height)
    assert video >= 10 * cfg.fps and audio > 100, (video, audio)  # 10 s of video, with the tone's audio
    folder = studio.media.hls.directory
    assert folder.is_dir() and len(list(folder.glob("seg*.m4s"))) <= cfg.hls_list_size + 3  # old segments deleted
    async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
        assert resp.status == 200
    assert not folder.exists()
    async with studio.http.get(url) as resp:
        assert resp.status == 404


@pytest.mark.parametrize("path", ["index.m3u8", "../../secret.key", "init.mp4.tmp", "seg1.ts"])
async def test_practice_other_events_and_bad_names_are_404(studio: Any, path: str) -> None:
    event_id = await make_event(studio.app)
    other = await make_event(studio.app, title="Other")
    await go_live(studio, event_id, practice=True)
    await asyncio.sleep(2.5)
    for ident in (event_id, other):
        async with studio.http.get(f"{studio.base}/hls/{ident}/{path}") as resp:
            assert resp.status == 404
    assert studio.media.hls is None  # practice writes no HLS at all
