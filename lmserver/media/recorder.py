"""The session recorder: the program's packets (overlays included) muxed to a fragmented MP4, and the remux
that turns it into a fast-start MP4 once the part ends.

No re-encoding: the recorder receives the same packets as the viewers (it is a
:class:`~lmserver.media.program.PacketSink`) and muxes copies of them in its own thread (muxing rewrites a
packet's timing and takes its data, and the originals are shared with every viewer).

While recording, the file is a fragmented MP4 (``empty_moov``, a fragment about every
``fragment_seconds``, flushed as it is written): a ``kill -9`` or a power cut loses only the fragment being
written, and what is on disk plays (browsers play a fragmented MP4 as it grows). :func:`remux` copies the
packets of such a file, even one cut off mid-fragment, into a fast-start MP4 (``moov`` first) for download
and seeking.

Timing: video t=0 is the first keyframe, whose wall-clock time is :attr:`Recorder.started_at`; each stream
keeps its own encoder timestamps from there, and audio is placed by the arrival time of its first packet
(the ingest's audio and video clocks are unrelated).
"""

from __future__ import annotations

import fractions
import io
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Callable

import av

from .encoder import AUDIO_RATE, VIDEO_TIME_BASE

logger = logging.getLogger(__name__)

_STOP = object()
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
#: fragmented MP4 while recording: a moov without samples first, then moof+mdat fragments
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"


class Recorder:
    """Writes video (H.264) and audio (Opus) packets to ``path`` (a fragmented MP4) from a worker thread.

    ``on_start(wall_time)`` is called on the caller's thread (the event loop) with the wall-clock time of
    the first video packet written (a keyframe: the file starts there). :meth:`stop` ends the recording
    early (e.g. the disk is nearly full) without touching the program; :meth:`close` is the sink's close.
    """

    def __init__(self, path: Path, width: int, height: int, fps: int, *, fragment_seconds: float = 1.0,
                 on_start: Callable[[float], None] | None = None) -> None:
        self.path = path
        self.width, self.height, self.fps = width, height, fps
        self.fragment_seconds = fragment_seconds
        self.on_start = on_start
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._started_video = False
        self._closing = False
        self._first_arrival: dict[str, float] = {}
        #: wall-clock UNIX time of video t=0 (None until the first keyframe)
        self.started_at: float | None = None
        self.packets = 0
        self.bytes = 0
        #: seconds of video written so far
        self.duration = 0.0
        self.error: str | None = None
        #: why the recording was stopped before the program ended (None: it was not)
        self.stopped: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"lm-recorder-{path.stem}", daemon=True)
        self._thread.start()

    def write_video(self, packet: av.Packet) -> None:
        if self._closing:
            return
        # The file starts at a keyframe so it plays from the beginning.
        if not self._started_video:
            if not packet.is_keyframe:
                return
            self._started_video = True
            self.started_at = time.time()
            self._first_arrival["video"] = time.monotonic()
            if self.on_start is not None:
                try:
                    self.on_start(self.started_at)
                except Exception:  # pragma: no cover - the callback must not stop the program
                    logger.exception("Recorder(%s): on_start failed", self.path.name)
        self._queue.put(("video", packet))

    def write_audio(self, packet: av.Packet) -> None:
        if self._started_video and not self._closing:
            self._first_arrival.setdefault("audio", time.monotonic())
            self._queue.put(("audio", packet))

    def stop(self, reason: str) -> None:
        """Stop recording now (the program goes on); the file keeps what was written. Returns at once."""
        if not self._closing:
            self.stopped = reason
            self._closing = True
            self._queue.put(_STOP)

    def close(self) -> None:
        """Flush and close the file (blocks until the worker thread is done)."""
        if not self._closing:
            self._closing = True
            self._queue.put(_STOP)
        self._thread.join(timeout=30)

    @property
    def running(self) -> bool:
        return not self._closing

    def _open(self, keyframe: av.Packet) -> tuple[av.container.OutputContainer, av.stream.Stream, av.stream.Stream]:
        # The MP4's avcC comes from the stream's own SPS/PPS: read them from the first keyframe (Annex-B,
        # SPS/PPS in-band) with FFmpeg's raw H.264 demuxer, and copy that stream's parameters.
        probe = av.open(io.BytesIO(bytes(keyframe)), format="h264")
        try:
            container = av.open(str(self.path), mode="w", format="mp4", options={
                "movflags": FRAGMENTED, "frag_duration": str(int(self.fragment_seconds * 1_000_000)),
                "flush_packets": "1"})
            video = container.add_stream_from_template(probe.streams.video[0])
        finally:
            probe.close()
        video.time_base = VIDEO_TIME_BASE
        audio = container.add_stream("opus", rate=AUDIO_RATE)  # opened only for its OpusHead: no audio is encoded
        audio.layout = "stereo"
        audio.time_base = AUDIO_TIME_BASE
        audio.codec_context.options = {"application": "lowdelay", "frame_duration": "20"}  # the program's settings
        return container, video, audio

    def _run(self) -> None:
        container = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            first: dict[str, int] = {}
            last_dts: dict[str, int] = {}
            audio_offset = 0
            video = audio = None
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                kind, src = item  # type: ignore[misc]
                if container is None:
                    container, video, audio = self._open(src)
                pts = src.pts if src.pts is not None else src.dts
                if pts is None:
                    continue
                if kind not in first:
                    first[kind] = pts
                    if kind == "audio":
                        lag = self._first_arrival.get("audio", 0.0) - self._first_arrival.get("video", 0.0)
                        audio_offset = max(0, round(lag * AUDIO_RATE))
                rel = pts - first[kind] + (audio_offset if kind == "audio" else 0)
                if kind in last_dts and rel <= last_dts[kind]:
                    continue  # never feed the muxer non-increasing timestamps
                last_dts[kind] = rel
                copy = av.Packet(bytes(src))
                copy.pts = copy.dts = rel
                copy.time_base = VIDEO_TIME_BASE if kind == "video" else AUDIO_TIME_BASE
                if kind == "audio":
                    copy.duration = src.duration or 960
                copy.is_keyframe = src.is_keyframe
                copy.stream = video if kind == "video" else audio
                container.mux(copy)
                self.packets += 1
                self.bytes += copy.size
                if kind == "video":
                    self.duration = float(rel * VIDEO_TIME_BASE)
        except Exception as exc:  # a failing recorder must never take the stream down
            self.error = str(exc) or type(exc).__name__
            self._closing = True
            logger.exception("Recorder(%s) failed", self.path.name)
            while self._queue.get() is not _STOP:
                pass
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:  # pragma: no cover
                    logger.exception("Recorder(%s) could not close the file", self.path.name)


class NothingRecorded(Exception):
    """The file holds no video packet (the recording stopped before its first keyframe, or is unreadable)."""


def remux(src: Path, dst: Path) -> tuple[float, int]:
    """Copy the packets of the MP4 ``src`` (fragmented, possibly cut off by a crash) to a fast-start MP4
    ``dst`` (may be ``src``: written beside it, then renamed over it); no re-encode. Returns the video's
    duration in seconds and the new file's size. Raises :class:`NothingRecorded` when there is no video."""
    tmp = dst.with_name(dst.name + ".remux.tmp")
    end = 0.0
    videos = 0
    try:
        inp = av.open(str(src))
    except (av.error.FFmpegError, OSError) as exc:
        raise NothingRecorded(f"the file cannot be read: {exc}") from exc
    try:
        streams = [s for s in inp.streams if s.type in ("video", "audio")]
        if not any(s.type == "video" for s in streams):
            raise NothingRecorded("the file has no video stream")
        out = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            mapping = {s.index: out.add_stream_from_template(s) for s in streams}
            try:
                for packet in inp.demux(*streams):
                    if packet.dts is None or packet.size == 0 or packet.is_corrupt:
                        continue  # the demuxer's flush packets; a sample cut off by a crash
                    if packet.stream.type == "video":
                        videos += 1
                        stop = (packet.pts or 0) + (packet.duration or 0)
                        end = max(end, float(stop * packet.time_base))
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
            except (av.error.InvalidDataError, av.error.EOFError) as exc:
                logger.info("remux(%s): the file ends early (%s); keeping what precedes", src.name, exc)
            if videos == 0:
                raise NothingRecorded("no video was recorded")
        finally:
            out.close()
    except BaseException:
        inp.close()
        tmp.unlink(missing_ok=True)
        raise
    inp.close()
    os.replace(tmp, dst)
    return end, dst.stat().st_size
