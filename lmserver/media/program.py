"""The program pipeline of one session: ingest frames -> compositor -> one encoder -> packets.

Frames are read on the event loop (aiortc decodes them in its own thread) and the latest one is
handed to a single worker thread that scales, composites and encodes it; if the worker falls
behind, older frames are skipped instead of queueing latency. The packets go to the fan-out
(every viewer) and to the packet sinks (the recorder, restream destinations, HLS): objects with
``write_video(packet)``, ``write_audio(packet)`` and a blocking ``close()`` (see :class:`PacketSink`).
A sink must return at once (queue the packet to its own thread or task) and must not modify the
packet: it is shared with every viewer.

Stage breakdown (``stream.health``'s ``stages_ms``, medians over the last :data:`STAGE_FRAMES` encoded
frames, ms; each stage ends where the next begins, ``time.perf_counter()`` on the way):

- ``receive``: the frame's first RTP packet received → its last one (the publisher's pacing + network);
- ``jitter``: last packet → released to the decoder by the ingest's jitter buffer (:mod:`.jitter`);
- ``decode``: released → decoded frame returned by the track (aiortc's decoder thread + a loop hop);
- ``wait``: decoded → the program's worker thread starts on it (loop + executor hop, or a busy worker);
- ``scale``: to the program size and yuv420p (0 when the sizes match);
- ``composite``: frame statistics + overlays;
- ``encode``: x264;
- ``handoff``: encoded → packets handed to the fan-out and the sinks (the hop back to the loop);
- ``total``: first packet → hand-off; ``server``: decoded → hand-off (the older ``latency_ms`` figure).

``receive``/``jitter``/``decode``/``total`` are null for a capture ingest (no RTP). Sending on the
viewers' sockets happens in the fan-out's own tasks after the hand-off and is not part of these.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from typing import Awaitable, Callable, Protocol

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .compositor import Compositor
from .encoder import AudioEncoder, VideoEncoder
from .fanout import Fanout
from .framestats import FrameStats
from .jitter import frame_times

logger = logging.getLogger(__name__)

SILENCE_DBFS = -60.0
#: encoded frames whose stage times are kept for the medians in ``stages_ms``
STAGE_FRAMES = 300
STAGES = ("receive", "jitter", "decode", "wait", "scale", "composite", "encode", "handoff", "total", "server")


class PacketSink(Protocol):
    """Receives every encoded program packet (H.264 Annex-B video, Opus audio)."""

    def write_video(self, packet: av.Packet) -> None: ...

    def write_audio(self, packet: av.Packet) -> None: ...

    def close(self) -> None:
        """Flush and release (called from a worker thread when the program stops)."""


class Program:
    """Encodes one ingest into shared packets. ``on_ended(reason)`` is awaited when the ingest stops."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        fps: int,
        video_bitrate: int,
        audio_bitrate: int,
        keyframe_interval: float,
        keyframe_min_interval: float,
        preset: str,
        queue_packets: int,
        compositor: Compositor,
        on_ended: Callable[[str], Awaitable[None]],
        sinks: list[PacketSink] | None = None,
        threads: int = 2,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.compositor = compositor
        self.video_encoder = VideoEncoder(
            width, height, fps, video_bitrate, keyframe_interval, keyframe_min_interval, preset, threads
        )
        self.audio_encoder = AudioEncoder(audio_bitrate)
        self.fanout = Fanout(queue_packets, self.video_encoder.request_keyframe)
        #: every encoded packet also goes to these (recorder, restream, HLS); closed on stop()
        self.sinks: list[PacketSink] = list(sinks or [])
        self._on_ended = on_ended
        self._video_exec = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lm-program-video")
        self._audio_exec = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lm-program-audio")
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: tuple[av.VideoFrame, float, tuple[float, float, float] | None] | None = None
        self._pending_event = asyncio.Event()
        self._stopped = False
        self.started_at = time.monotonic()
        # statistics (read by the health reporter)
        self.frames_in = 0
        self.frames_out = 0
        self.frames_skipped = 0
        self.frames_failed = 0
        self.audio_frames_in = 0
        self.last_frame_at: float | None = None
        self.resolution: tuple[int, int] | None = None
        self.encode_ms: collections.deque[float] = collections.deque(maxlen=120)
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=2000)
        #: per encoded frame, the stage durations in STAGES order (ms; None where not known)
        self.stages: collections.deque[tuple[float | None, ...]] = collections.deque(maxlen=STAGE_FRAMES)
        self.has_audio = False
        #: luma mean and frame difference of the program's frames (before overlays): black / frozen video
        self.frame_stats = FrameStats()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_track(self, track: MediaStreamTrack) -> None:
        """Start reading an ingest track (one video, optionally one audio)."""
        if track.kind == "video":
            self._spawn(self._read_video(track), "program-read-video")
            self._spawn(self._encode_video(), "program-encode-video")
        elif track.kind == "audio" and not self.has_audio:
            self.has_audio = True
            self._spawn(self._read_audio(track), "program-read-audio")

    async def _end(self, reason: str) -> None:
        if not self._stopped:
            await self._on_ended(reason)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.perf_counter()
                times = frame_times(track, frame.pts)
                self.frames_in += 1
                self.last_frame_at = time.monotonic()
                self.resolution = (frame.width, frame.height)
                if self._pending is not None:
                    self.frames_skipped += 1
                self._pending = (frame, now, None if times is None else (times.first, times.last, times.released))
                self._pending_event.set()
        except MediaStreamError:
            await self._end("the ingest ended")

    def _process_video(self, frame: av.VideoFrame) -> tuple[list[av.Packet], tuple[float, float, float, float]]:
        """Scale, composite, encode; returns the packets and when each step ended (perf_counter)."""
        start = time.perf_counter()
        if frame.width != self.width or frame.height != self.height or frame.format.name != "yuv420p":
            scaled = frame.reformat(width=self.width, height=self.height, format="yuv420p")
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        scaled_at = time.perf_counter()
        self.frame_stats.measure(frame)  # the ingest's picture, before overlays (a banner over black is still black)
        frame = self.compositor.composite(frame)
        composited_at = time.perf_counter()
        packets = self.video_encoder.encode(frame)
        encoded_at = time.perf_counter()
        self.encode_ms.append((encoded_at - start) * 1000.0)
        return packets, (start, scaled_at, composited_at, encoded_at)

    async def _encode_video(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:
            await self._pending_event.wait()
            self._pending_event.clear()
            item, self._pending = self._pending, None
            if item is None:
                continue
            frame, arrived, received = item
            try:
                packets, steps = await loop.run_in_executor(self._video_exec, self._process_video, frame)
            except RuntimeError:  # executor shut down while stopping
                if self._stopped:
                    return
                self._frame_failed()
                continue
            except Exception:  # one bad frame must not stop the program
                self._frame_failed()
                continue
            for packet in packets:
                self.fanout.publish_video(packet)
                for sink in self.sinks:
                    sink.write_video(packet)
            self.frames_out += 1
            handed = time.perf_counter()
            self.latency_ms.append((handed - arrived) * 1000.0)
            self._record_stages(received, arrived, steps, handed)

    def _record_stages(self, received: tuple[float, float, float] | None, decoded: float,
                       steps: tuple[float, float, float, float], handed: float) -> None:
        start, scaled, composited, encoded = steps
        if received is not None:
            first, last, released = received
            rtp: tuple[float | None, ...] = (last - first, released - last, decoded - released)
        else:
            first, rtp = None, (None, None, None)
        ms = tuple(None if v is None else v * 1000.0 for v in rtp) + tuple(
            (b - a) * 1000.0 for a, b in ((decoded, start), (start, scaled), (scaled, composited), (composited, encoded),
                                          (encoded, handed)))
        total = None if first is None else (handed - first) * 1000.0
        self.stages.append(ms + (total, (handed - decoded) * 1000.0))

    def stage_medians(self) -> dict[str, float | None]:
        """Median ms per stage over the last STAGE_FRAMES encoded frames (see the module; None: not known)."""
        rows = list(self.stages)
        out: dict[str, float | None] = {}
        for i, name in enumerate(STAGES):
            values = sorted(r[i] for r in rows if r[i] is not None)  # type: ignore[misc]
            out[name] = round(values[len(values) // 2], 2) if values else None
        return out

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                self.audio_frames_in += 1
                try:
                    packets = await loop.run_in_executor(self._audio_exec, self.audio_encoder.encode, frame)
                except RuntimeError:
                    if self._stopped:
                        return
                    continue
                except Exception:
                    logger.exception("Program(%s): an audio frame failed to encode", id(self))
                    continue
                for packet in packets:
                    self.fanout.publish_audio(packet)
                    for sink in self.sinks:
                        sink.write_audio(packet)
        except MediaStreamError:
            return

    def _frame_failed(self) -> None:
        self.frames_failed += 1
        if self.frames_failed in (1, 10, 100) or self.frames_failed % 1000 == 0:
            logger.exception("Program(%s): a video frame failed (%d so far)", id(self), self.frames_failed)

    def snapshot(self) -> dict[str, object]:
        """Pipeline figures for stream.health (the ingest adds bitrate, loss and jitter)."""
        encode = sorted(self.encode_ms)
        level = self.audio_encoder.level_dbfs if self.has_audio else None
        return {
            "width": self.resolution[0] if self.resolution else None,
            "height": self.resolution[1] if self.resolution else None,
            "encode_ms": round(encode[len(encode) // 2], 2) if encode else None,
            "audio_level_dbfs": round(level, 1) if level is not None else None,
            "silent": bool(level is None or level < SILENCE_DBFS),
            "viewers": len(self.fanout),
            "stages_ms": self.stage_medians(),
            **self.frame_stats.snapshot(),
        }

    async def stop(self) -> None:
        """Stop reading and encoding, close the viewers' queues and the recording."""
        if self._stopped:
            return
        self._stopped = True
        self._pending_event.set()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.fanout.close()
        loop = asyncio.get_running_loop()
        for executor in (self._video_exec, self._audio_exec):
            await loop.run_in_executor(None, executor.shutdown, True)
        for sink in self.sinks:
            try:
                await loop.run_in_executor(None, sink.close)
            except Exception:  # one sink failing to close must not keep the others open
                logger.exception("Program(%s): closing %r failed", id(self), sink)
