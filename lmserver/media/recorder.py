"""The session recorder: the program's packets (overlays included) muxed to one Matroska file.

No re-encoding: the recorder receives the same packets as the viewers and muxes copies of them
in its own thread (muxing rewrites a packet's timing and takes its data, and the originals are
shared with every viewer).
"""

from __future__ import annotations

import fractions
import logging
import queue
import threading
from pathlib import Path

import av

from .encoder import AUDIO_RATE, VIDEO_TIME_BASE

logger = logging.getLogger(__name__)

_STOP = object()


class Recorder:
    """Writes video (H.264) and audio (Opus) packets to ``path`` from a worker thread."""

    def __init__(self, path: Path, width: int, height: int, fps: int) -> None:
        self.path = path
        self.width, self.height, self.fps = width, height, fps
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._started_video = False
        self.packets = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"lm-recorder-{path.stem}", daemon=True)
        self._thread.start()

    def write_video(self, packet: av.Packet) -> None:
        # The file starts at a keyframe so it plays from the beginning.
        if not self._started_video:
            if not packet.is_keyframe:
                return
            self._started_video = True
        self._queue.put(("video", packet))

    def write_audio(self, packet: av.Packet) -> None:
        if self._started_video:
            self._queue.put(("audio", packet))

    def close(self) -> None:
        """Flush and close the file (blocks until the worker thread is done)."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        container = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.path), mode="w", format="matroska")
            video = container.add_stream("h264", rate=self.fps)
            video.width, video.height = self.width, self.height
            video.time_base = VIDEO_TIME_BASE
            audio = container.add_stream("opus", rate=AUDIO_RATE)
            audio.layout = "stereo"
            audio.time_base = fractions.Fraction(1, AUDIO_RATE)
            last_dts: dict[str, int] = {}
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                kind, src = item  # type: ignore[misc]
                copy = av.Packet(bytes(src))
                copy.pts, copy.time_base = src.pts, src.time_base
                copy.dts = src.dts if src.dts is not None else src.pts
                if copy.dts is not None and kind in last_dts and copy.dts <= last_dts[kind]:
                    continue  # never feed the muxer non-increasing timestamps
                last_dts[kind] = copy.dts
                copy.is_keyframe = src.is_keyframe
                copy.stream = video if kind == "video" else audio
                container.mux(copy)
                self.packets += 1
        except Exception as exc:  # a failing recorder must never take the stream down
            self.error = str(exc)
            logger.exception("Recorder(%s) failed", self.path)
            while self._queue.get() is not _STOP:
                pass
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:  # pragma: no cover
                    logger.exception("Recorder(%s) could not close the file", self.path)
