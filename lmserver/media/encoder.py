"""The program's encoders: one x264 video encode and one Opus audio encode for every viewer.

Both are synchronous and meant to run in a worker thread (PyAV releases the GIL while encoding).
Video packets come out as Annex-B H.264 (SPS/PPS in-band before every IDR), constrained baseline,
no B-frames, with a VBV cap so keyframes stay small enough to fan out without stalling the loop.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time

import av
import numpy as np

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_RATE = 48000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)


class VideoEncoder:
    """x264, realtime: zerolatency, constrained baseline (42e01f), no B-frames, VBV-capped.

    ``request_keyframe()`` may be called from any thread; it is honoured at most once every
    ``keyframe_min_interval`` seconds (a pending request waits for the next allowed frame).
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: int,
        bitrate: int,
        keyframe_interval: float,
        keyframe_min_interval: float,
        preset: str = "superfast",
        threads: int = 2,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.keyframe_min_interval = keyframe_min_interval
        gop = max(1, round(keyframe_interval * fps))
        kbps = max(1, bitrate // 1000)
        codec = av.CodecContext.create("libx264", "w")
        codec.width = width
        codec.height = height
        codec.pix_fmt = "yuv420p"
        codec.time_base = VIDEO_TIME_BASE
        codec.framerate = fractions.Fraction(fps, 1)
        codec.bit_rate = bitrate
        codec.gop_size = gop
        codec.max_b_frames = 0
        codec.thread_count = threads
        codec.thread_type = "SLICE"
        level = "31" if width * height <= 1280 * 720 else "40"
        codec.options = {
            "preset": preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "level": level,
            "x264-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:"
                f"vbv-maxrate={kbps}:vbv-bufsize={max(1, kbps // 6)}:repeat-headers=1"
            ),
        }
        self._codec = codec
        self._lock = threading.Lock()
        self._keyframe_requested = False
        self._last_keyframe = -1e9
        self._last_pts: int | None = None
        self.frames = 0
        self.keyframes = 0
        self.last_encode_ms = 0.0

    def request_keyframe(self) -> None:
        """Ask for a keyframe as soon as the rate limit allows."""
        self._keyframe_requested = True

    def encode(self, frame: av.VideoFrame) -> list[av.Packet]:
        """Scale to the program size if needed, encode, return packets (pts in 1/90000)."""
        start = time.perf_counter()
        pts = frame.pts if frame.pts is not None else 0
        tb = frame.time_base or VIDEO_TIME_BASE
        pts90 = int(pts * tb / VIDEO_TIME_BASE) if tb != VIDEO_TIME_BASE else int(pts)
        if self._last_pts is not None and pts90 <= self._last_pts:
            pts90 = self._last_pts + 1
        self._last_pts = pts90
        if frame.width != self.width or frame.height != self.height or frame.format.name != "yuv420p":
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        frame.pts = pts90
        frame.time_base = VIDEO_TIME_BASE
        now = time.monotonic()
        if self._keyframe_requested and now - self._last_keyframe >= self.keyframe_min_interval:
            self._keyframe_requested = False
            frame.pict_type = av.video.frame.PictureType.I
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        packets = self._codec.encode(frame)
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
            if packet.dts is None:
                packet.dts = packet.pts
            if packet.is_keyframe:
                self._last_keyframe = now
                self.keyframes += 1
        self.frames += 1
        self.last_encode_ms = (time.perf_counter() - start) * 1000.0
        return packets

    def close(self) -> None:
        try:
            self._codec.encode(None)
        except (av.error.EOFError, ValueError):  # pragma: no cover - already flushed
            pass


class AudioEncoder:
    """Opus 48 kHz stereo, 20 ms frames; also measures the ingest audio level."""

    def __init__(self, bitrate: int) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = AUDIO_RATE
        codec.layout = "stereo"
        codec.format = "s16"
        codec.bit_rate = bitrate
        codec.time_base = AUDIO_TIME_BASE
        codec.options = {"application": "lowdelay", "frame_duration": "20"}
        self._codec = codec
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE, frame_size=960)
        self._next_pts: int | None = None
        self.level_dbfs = -120.0

    def encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        samples = frame.to_ndarray()
        if samples.size:
            if samples.dtype.kind == "f":
                rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
            else:
                full = float(np.iinfo(samples.dtype).max)
                rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) / full
            self.level_dbfs = max(-120.0, float(20.0 * np.log10(rms))) if rms > 0 else -120.0
        packets: list[av.Packet] = []
        for out in self._resampler.resample(frame):
            if self._next_pts is None:
                pts = out.pts if out.pts is not None else 0
                self._next_pts = int(pts * (out.time_base or AUDIO_TIME_BASE) / AUDIO_TIME_BASE)
            out.pts = self._next_pts
            out.time_base = AUDIO_TIME_BASE
            self._next_pts += out.samples
            for packet in self._codec.encode(out):
                packet.time_base = AUDIO_TIME_BASE
                packets.append(packet)
        return packets
