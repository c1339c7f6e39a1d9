"""LL-HLS: the live program as fMP4 HLS from the same packets — PyAV decodes 10 s of it (H.264 and the shared
AAC) over loopback HTTP; the playlist carries parts, a preload hint and server control; a blocking reload
answers when the next part appears and refuses a far-future one; memory stays bounded over a long run;
practice, other events and bad names are 404; nothing is left when the LIVE ends."""

from __future__ import annotations

import asyncio
import re
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


def decode(url: str, seconds: float, fps: int) -> tuple[int, int, tuple[int, int], str]:
    """Video and audio frames PyAV decodes from the live playlist, until ``seconds`` of video; the audio codec."""
    video = audio = 0
    size = (0, 0)
    with av.open(url, options={"live_start_index": "0"}, timeout=20) as container:
        codec = container.streams.audio[0].codec_context.name
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                video += 1
                size = (frame.width, frame.height)
                if video >= seconds * fps:
                    break
            else:
                audio += 1
    return video, audio, size, codec


async def test_pyav_decodes_ten_seconds_of_the_live_over_hls(studio: Any) -> None:
    event_id = await make_event(studio.app)
    slug = await studio.app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (event_id,))
    headers = await go_live(studio, event_id)
    url = f"{studio.base}/hls/{slug}/index.m3u8"
    playlist = await wait_playlist(studio, url)
    assert "#EXT-X-MAP:URI=\"init.mp4\"" in playlist and "#EXT-X-INDEPENDENT-SEGMENTS" in playlist
    assert "#EXT-X-PROGRAM-DATE-TIME:" in playlist
    segment = next(line for line in playlist.splitlines() if line.endswith(".m4s") and not line.startswith("#"))
    async with studio.http.get(f"{studio.base}/hls/{event_id}/{segment}") as resp:  # by id works too
        assert resp.status == 200 and "immutable" in resp.headers["Cache-Control"]
        assert resp.headers["Content-Type"] == "video/iso.segment" and len(await resp.read()) > 1000
    other = await make_event(studio.app, title="Other show")
    async with studio.http.get(f"{studio.base}/hls/{other}/index.m3u8") as resp:
        assert resp.status == 404  # only the event that is live
    cfg = studio.media.config
    video, audio, size, codec = await asyncio.wait_for(asyncio.to_thread(decode, url, 10.0, cfg.fps), 120)
    assert size == (cfg.width, cfg.height) and codec == "aac"  # the shared AAC encode, not Opus
    assert video >= 10 * cfg.fps and audio > 100, (video, audio)  # 10 s of video, with the tone's audio
    out = studio.media.hls
    assert len(out.segments) <= cfg.hls_list_size + 2  # old segments dropped
    async with studio.http.post(studio.base + "/api/media/end", headers=headers) as resp:
        assert resp.status == 200
    assert out.closed and out.segments == [] and studio.media.hls is None
    assert studio.media.restream._aac is None  # the AAC encode stopped with the only output that used it
    async with studio.http.get(url) as resp:
        assert resp.status == 404


@pytest.mark.parametrize("path", ["index.m3u8", "index.m3u8?_HLS_msn=1&_HLS_part=0", "../../secret.key", "init.mp4.tmp", "seg1.ts", "seg1.2.3.m4s"])
async def test_practice_other_events_and_bad_names_are_404(studio: Any, path: str) -> None:
    event_id = await make_event(studio.app)
    other = await make_event(studio.app, title="Other")
    await go_live(studio, event_id, practice=True)
    await asyncio.sleep(2.5)
    for ident in (event_id, other):
        async with studio.http.get(f"{studio.base}/hls/{ident}/{path}") as resp:
            assert resp.status == 404
    assert studio.media.hls is None  # practice writes no HLS at all


def attrs(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in re.findall(r'([A-Z-]+=(?:"[^"]*"|[^,]*))', line.split(":", 1)[1]))


async def test_ll_hls_playlist_parts_hint_and_blocking_reload(studio: Any) -> None:
    event_id = await make_event(studio.app)
    await go_live(studio, event_id)
    url = f"{studio.base}/hls/{event_id}/index.m3u8"
    playlist = await wait_playlist(studio, url)
    lines = playlist.splitlines()
    cfg = studio.media.config
    part_target = float(attrs(next(x for x in lines if x.startswith("#EXT-X-PART-INF:")))["PART-TARGET"])
    assert part_target == cfg.hls_part_seconds
    control = attrs(next(x for x in lines if x.startswith("#EXT-X-SERVER-CONTROL:")))
    assert control["CAN-BLOCK-RELOAD"] == "YES" and float(control["PART-HOLD-BACK"]) >= 3 * part_target
    parts = [attrs(x) for x in lines if x.startswith("#EXT-X-PART:")]
    assert len(parts) >= 2 and all(float(p["DURATION"]) <= part_target + 1e-6 for p in parts)
    assert parts[0]["INDEPENDENT"] == "YES"  # a segment's first part starts with its keyframe
    hints = [x for x in lines if x.startswith("#EXT-X-PRELOAD-HINT:")]
    assert len(hints) == 1 and attrs(hints[0])["TYPE"] == "PART"
    hinted = attrs(hints[0])["URI"].strip('"')
    msn, part = (int(x) for x in re.fullmatch(r"seg(\d+)\.(\d+)\.m4s", hinted).groups())  # type: ignore[union-attr]
    async with studio.http.get(f"{studio.base}/hls/{event_id}/{parts[0]['URI'].strip(chr(34))}") as resp:
        assert resp.status == 200 and "immutable" in resp.headers["Cache-Control"]
        first_part = await resp.read()
    assert first_part[4:8] == b"moof"

    # the hinted part does not exist yet: the playlist request waits for it, then lists it
    blocking = f"{url}?_HLS_msn={msn}&_HLS_part={part}"
    async with studio.http.get(blocking) as resp:
        assert resp.status == 200, await resp.text()
        assert "max-age" in resp.headers["Cache-Control"] and "no-cache" not in resp.headers["Cache-Control"]
        text = await resp.text()
    assert f'URI="{hinted}"' in text.replace("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"" + hinted, "")  # listed as a part now
    assert studio.media.hls.has(msn, part)
    # the part named by the next hint: a blocking part request, answered once it is written
    nxt = attrs(next(x for x in text.splitlines() if x.startswith("#EXT-X-PRELOAD-HINT:")))["URI"].strip('"')
    async with studio.http.get(f"{studio.base}/hls/{event_id}/{nxt}") as resp:
        assert resp.status == 200 and (await resp.read())[4:8] == b"moof"

    # bad requests: 400 with the reason
    for query, words in ((f"_HLS_msn={msn + 50}", "ahead"), ("_HLS_msn=abc", "whole number"),
                         ("_HLS_part=1", "needs _HLS_msn"), (f"_HLS_msn={msn}&_HLS_part=999", "too far ahead"),
                         ("_HLS_msn=-1", "whole number")):
        async with studio.http.get(f"{url}?{query}") as resp:
            assert resp.status == 400, (query, await resp.text())
            assert words in await resp.text(), query
    # an old part answers at once
    async with studio.http.get(f"{url}?_HLS_msn={msn}&_HLS_part=0") as resp:
        assert resp.status == 200


async def test_memory_stays_bounded_over_a_long_run() -> None:
    """600 segments of real H.264 and AAC packets (20 minutes at 2 s keyframes, fed as fast as possible): what the
    output holds stays within hls_list_size + 2 segments, and parts are kept for the last few only."""
    from lmserver.media.encoder import VideoEncoder
    from lmserver.media.hls import PART_SEGMENTS, HlsOutput
    from lmserver.media.restream_audio import Slate, _new_aac, aac_config
    from lmserver.media.restream_common import AAC_FRAME

    fps, gop = 30, 60
    encoder = VideoEncoder(160, 120, fps, 200_000, 2.0, 0.5, "ultrafast")
    packets: list[tuple[bytes, bool]] = []
    frame = av.VideoFrame(160, 120, "yuv420p")
    for i in range(gop + 5):
        frame.pts = i * 3000
        packets += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(frame)]
    encoder.close()
    packets = packets[:gop]
    assert packets[0][1] and not any(key for _, key in packets[1:])
    silence = Slate._silence(_new_aac(), AAC_FRAME, "fltp")
    out = HlsOutput(160, 120, fps, 2.0, 6, 0.5, aac_config())
    t, audio_t, sizes = 1000.0, 1000.0, []
    for n in range(600 * gop):
        data, key = packets[n % gop]
        out.feed(("v", t, data, key))
        t += 1 / fps
        while audio_t < t:
            out.feed(("a", audio_t, silence, False))
            audio_t += AAC_FRAME / 48000
        if n % gop == 0 and n:
            sizes.append(out.memory())
            assert len(out.segments) <= 6 + 2 + 1
            assert sum(1 for s in out.segments if s.keep_parts) <= PART_SEGMENTS + 1  # and the one just started
            assert out.playlist_text.count(b"#EXTINF") == 6 or n < 7 * gop
    assert out.segments[-1].msn - out.first_msn == 599
    assert max(sizes[100:]) <= 1.5 * min(sizes[100:])  # flat, not growing
    out.close()
    assert out.memory() == 0
