"""HLS output: the program as fMP4 HLS at ``/hls/<event>/index.m3u8``, for viewers WebRTC cannot reach.

No second encode: :class:`HlsOutput` is a program :class:`~lmserver.media.program.PacketSink` that muxes
the shared H.264 packets and the Opus packets (Opus in fMP4: Chromium, Firefox, Safari ≥ 17) with
FFmpeg's ``hls`` muxer in its own thread. A segment starts at a keyframe, so segments last
``[media] keyframe_interval`` (2 s by default; extra keyframes that new WebRTC viewers ask for make some
shorter). The playlist lists the last ``hls_list_size`` segments; older ones are deleted as new ones come
(``delete_segments``), so the folder stays bounded; the folder of a program is removed when it stops, and
``<data>/hls`` is emptied at startup.

Each program writes its own folder (``<data>/hls/<n>/``) with media sequence numbers that only grow
(``start_number`` from the clock), so a player whose stream resumed after an ingest drop reloads cleanly.

Playlists are served ``no-cache`` (a CDN in front revalidates them every second), segments and the init
segment ``immutable`` (a CDN caches them): see ``docs/scaling.md``. Practice is never served (nobody
watches a rehearsal). FFmpeg's muxer writes no low-latency parts (LL-HLS): players stay about three
segments behind, ~6 s at 2 s keyframes; WebRTC stays the way to watch in real time.
"""

from __future__ import annotations

import fractions
import itertools
import logging
import queue
import re
import shutil
import threading
import time
from pathlib import Path
import av

from .encoder import AUDIO_RATE, VIDEO_TIME_BASE

logger = logging.getLogger(__name__)

_STOP = object()
_counter = itertools.count(1)
#: the files a playlist folder may hold (anything else, e.g. "../x" or a temp file, is a 404)
FILE_RE = re.compile(r"^(index\.m3u8|init\.mp4|seg\d{1,12}\.m4s)$")
#: queued packets before the HLS thread is considered stuck and packets are dropped (never blocks the program)
MAX_QUEUE = 600


class HlsOutput:
    """Muxes program packets into an HLS playlist in ``directory`` from a worker thread."""

    def __init__(self, directory: Path, width: int, height: int, fps: int, segment_seconds: float, list_size: int) -> None:
        self.directory = directory
        self.width, self.height, self.fps = width, height, fps
        self.segment_seconds = segment_seconds
        self.list_size = list_size
        self._queue: queue.Queue[object] = queue.Queue(MAX_QUEUE)
        self._started = False
        self.packets = 0
        self.dropped = 0
        self.error: str | None = None
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name=f"lm-hls-{directory.name}", daemon=True)
        self._thread.start()

    @property
    def playlist(self) -> Path:
        return self.directory / "index.m3u8"

    def ready(self) -> bool:
        """Whether the playlist lists at least one segment."""
        try:
            return "#EXTINF" in self.playlist.read_text()
        except OSError:
            return False

    def _put(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10000 == 0:
                logger.warning("HLS output %s is behind: %d packets dropped", self.directory, self.dropped)

    def write_video(self, packet: av.Packet) -> None:
        if not self._started:
            if not packet.is_keyframe:
                return
            self._started = True
        self._put(("video", packet))

    def write_audio(self, packet: av.Packet) -> None:
        if self._started:
            self._put(("audio", packet))

    def close(self) -> None:
        """Stop muxing and remove the folder (blocks until the worker thread is done)."""
        while True:
            try:
                self._queue.put(_STOP, timeout=1)
                break
            except queue.Full:  # the worker is stuck: make room
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
        self._thread.join(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self) -> None:
        container = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.playlist), mode="w", format="hls", options={
                "hls_time": f"{self.segment_seconds:g}",
                "hls_list_size": str(self.list_size),
                "hls_segment_type": "fmp4",
                "hls_fmp4_init_filename": "init.mp4",
                "hls_segment_filename": str(self.directory / "seg%d.m4s"),
                "hls_flags": "delete_segments+independent_segments+omit_endlist+temp_file+program_date_time",
                "hls_delete_threshold": "2",
                "start_number": str(int(time.time())),  # sequence numbers that only grow, program after program
            })
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
                    continue
                last_dts[kind] = copy.dts
                copy.is_keyframe = src.is_keyframe
                copy.stream = video if kind == "video" else audio
                container.mux(copy)
                self.packets += 1
        except Exception as exc:  # a failing HLS output must never take the stream down
            self.error = str(exc)
            logger.exception("HLS output %s failed", self.directory)
            while self._queue.get() is not _STOP:
                pass
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:  # pragma: no cover
                    logger.exception("HLS output %s could not close", self.directory)


def new_output(data_dir: Path, width: int, height: int, fps: int, segment_seconds: float, list_size: int) -> HlsOutput:
    return HlsOutput(data_dir / "hls" / f"{int(time.time())}-{next(_counter)}", width, height, fps, segment_seconds, list_size)


def clear(data_dir: Path) -> None:
    """Empty ``<data>/hls`` (at startup: what a killed server left)."""
    shutil.rmtree(data_dir / "hls", ignore_errors=True)


# --------------------------------------------------------------------------------------------- HTTP
# (the handler, ``serve_hls``, is in lmserver/media/app.py with the other media routes)

CACHE_PLAYLIST = "no-cache, max-age=1"
CACHE_SEGMENT = "public, max-age=86400, immutable"
CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4", ".m4s": "video/iso.segment"}
