"""A busy machine must not drop a publisher: FFmpeg's WHIP muxer publishes for 60 s while two CPU
burners take both cores, and a WHEP viewer watches. The session holds (one session, no
``stream.ended`` before the publisher stops), the viewer gets frames in every 10 s window (the
frame rate may drop) and the publisher exits cleanly."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from rtcclients import Viewer
from tests.e2e.test_ffmpeg_whip import p256_cert

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(170)]

SECONDS = 60
FPS = 15
WINDOW = 10.0
BURNERS = 2
#: A CPU burner: a busy loop (bounded: it exits by itself after this many seconds if never killed).
BURN = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


async def test_ffmpeg_publisher_holds_for_60_seconds_on_a_busy_machine(studio, tmp_path: Path) -> None:
    from lmserver.appkeys import BUS

    cert_file, key_file = p256_cert(tmp_path)
    bus = studio.app[BUS]
    started, ended = asyncio.Event(), asyncio.Event()
    sessions: list[int] = []
    reasons: list[str] = []
    health: list[dict] = []
    bus.on("stream.started", lambda record: (sessions.append(record.session_id), started.set()))
    bus.on("stream.ended", lambda record: (reasons.append(record.data["reason"]), ended.set()))
    bus.on("stream.health", lambda record: health.append(dict(record.data)))
    burners = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", BURN.format(limit=SECONDS + 60))
        for _ in range(BURNERS)
    ]
    proc = None
    viewer = Viewer(keep=1)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).parent / "ffmpeg_whip_publisher.py"), f"{studio.base}/whip",
            studio.key, cert_file, key_file, str(SECONDS), str(FPS),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        communicate = asyncio.ensure_future(proc.communicate())
        await asyncio.wait_for(started.wait(), 30)
        ingest = studio.media.ingest
        assert ingest is not None and ingest.client == "ffmpeg"
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        try:
            await viewer.wait_frames(1, timeout=30)
        except asyncio.TimeoutError:
            proc.kill()
            output = (await asyncio.wait_for(communicate, 10))[0].decode(errors="replace")
            raise AssertionError(f"no frame reached the viewer in 30 s: {reasons} {health[-3:]}\n{output[-3000:]}") from None
        # Sample the viewer's frame count while the publisher runs (bounded by its own timeout).
        counts = [viewer.count]
        deadline = time.monotonic() + SECONDS + 40
        while not communicate.done() and time.monotonic() < deadline:
            window_end = time.monotonic() + WINDOW
            while not communicate.done() and time.monotonic() < window_end:
                await asyncio.sleep(0.5)
            if not communicate.done():
                counts.append(viewer.count)
        output = (await asyncio.wait_for(communicate, 5))[0].decode(errors="replace")
        # Ending early shows as another reason (a drop) or a publisher that failed (FFmpeg gave up).
        assert reasons in ([], ["the host ended the stream"]), (reasons, health[-5:], output[-2000:])
        assert proc.returncode == 0, (reasons, output[-2000:])
        assert f"done {SECONDS * FPS}" in output, output[-2000:]
        assert len(sessions) == 1, sessions
        # Frames reached the viewer in every full 10 s window of the run.
        deltas = [b - a for a, b in zip(counts, counts[1:])]
        assert len(deltas) >= 4, counts
        assert all(d > 0 for d in deltas), counts
        # The publisher's DELETE ended the one session afterwards.
        await asyncio.wait_for(ended.wait(), 20)
        assert reasons == ["the host ended the stream"], reasons
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        for burner in burners:
            if burner.returncode is None:
                burner.kill()
            await burner.wait()
        await viewer.close()


LOST_KEYFRAME_SECONDS = 40
GOP_SECONDS = 32


async def test_an_ingest_waiting_for_a_keyframe_is_not_dropped(studio, tmp_path: Path) -> None:
    """The first keyframe is lost and FFmpeg ignores the server's keyframe requests: nothing can be
    decoded for 32 s while RTP flows. The session holds (liveness is received packets, not decoded
    frames) and the program starts with the next keyframe."""
    from lmserver.appkeys import BUS

    cert_file, key_file = p256_cert(tmp_path)
    bus = studio.app[BUS]
    started, ended = asyncio.Event(), asyncio.Event()
    reasons: list[str] = []
    health: list[dict] = []
    bus.on("stream.started", lambda record: started.set())
    bus.on("stream.ended", lambda record: (reasons.append(record.data["reason"]), ended.set()))
    bus.on("stream.health", lambda record: health.append(dict(record.data)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "ffmpeg_whip_publisher.py"), f"{studio.base}/whip",
        studio.key, cert_file, key_file, str(LOST_KEYFRAME_SECONDS), str(FPS), str(GOP_SECONDS * FPS), "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    viewer = Viewer(keep=1)
    try:
        await asyncio.wait_for(started.wait(), 30)
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        output = (await asyncio.wait_for(proc.communicate(), LOST_KEYFRAME_SECONDS + 40))[0].decode(errors="replace")
        assert proc.returncode == 0, (reasons, output[-2000:])
        assert "lost keyframe 0" in output and f"done {LOST_KEYFRAME_SECONDS * FPS}" in output, output[-2000:]
        # While waiting for the keyframe, packets arrived (bitrate) but no frame was decoded.
        waiting = [h for h in health[2:25] if h["fps"] == 0]
        assert waiting and all(h["bitrate"] for h in waiting), health[:25]
        # The session was never ended early; the program ran once the keyframe came.
        assert any(h["fps"] > 0 for h in health), health
        assert viewer.count > 0
        await asyncio.wait_for(ended.wait(), 20)
        assert reasons == ["the host ended the stream"], reasons
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await viewer.close()


async def test_ffmpeg_connects_while_the_server_loop_is_busy(studio, tmp_path: Path) -> None:
    """The server's event loop stalls (a slow subscriber, a starved process) just as FFmpeg connects,
    so our triggered ICE check goes out after FFmpeg has started its blocking DTLS handshake and is
    never answered. ICE must still complete (FFmpeg nominated the pair) instead of staying
    "checking" until the 30 s connect watchdog ended the session."""
    from lmserver.appkeys import BUS

    cert_file, key_file = p256_cert(tmp_path)
    bus = studio.app[BUS]
    loop = asyncio.get_running_loop()
    reasons: list[str] = []

    def stall(times: int) -> None:
        time.sleep(0.25)  # blocking work on the loop, as a slow plugin or a starved process does
        if times > 1:
            loop.call_later(0.01, stall, times - 1)

    bus.on("stream.started", lambda record: loop.call_soon(stall, 12))
    bus.on("stream.ended", lambda record: reasons.append(record.data["reason"]))
    seconds = 15
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "ffmpeg_whip_publisher.py"), f"{studio.base}/whip",
        studio.key, cert_file, key_file, str(seconds), str(FPS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output = (await asyncio.wait_for(proc.communicate(), seconds + 45))[0].decode(errors="replace")
        assert proc.returncode == 0, (reasons, output[-2000:])
        assert f"done {seconds * FPS}" in output, output[-2000:]
        assert reasons == ["the host ended the stream"], reasons
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
