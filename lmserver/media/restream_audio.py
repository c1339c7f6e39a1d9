"""The restream's audio and slate: ONE AAC encode for every non-WebRTC output, and the "We'll be right
back" slate (a still frame and silence, encoded once)."""

from __future__ import annotations

import fractions
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable

import av
import numpy as np

from .encoder import AUDIO_RATE, VideoEncoder
from .restream_common import AAC_BITRATE, AAC_FRAME

if TYPE_CHECKING:
    from ..config import MediaConfig

logger = logging.getLogger(__name__)


class AacEncoder:
    """ONE AAC encode of the program's audio for every non-WebRTC output: Opus packets are decoded once
    (in this object's thread), resampled to 1024-sample frames and encoded; ``on_packet(t, data)``
    receives each AAC frame with its time on the restreamer's clock."""

    def __init__(self, on_packet: Callable[[float, bytes], None], queue_items: int = 512) -> None:
        self._on_packet = on_packet
        self._queue: queue.Queue[tuple[float, bytes] | None] = queue.Queue(queue_items)
        self.dropped = 0
        self.frames = 0
        self.config = aac_config()
        self._thread = threading.Thread(target=self._run, name="lm-restream-aac", daemon=True)
        self._thread.start()

    def put(self, t: float, opus: bytes) -> None:
        try:
            self._queue.put_nowait((t, opus))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=1)
        except queue.Full:
            pass
        self._thread.join(5)

    def _run(self) -> None:
        decoder = av.CodecContext.create("opus", "r")
        decoder.sample_rate = AUDIO_RATE
        decoder.layout = "stereo"
        encoder = _new_aac()
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE, frame_size=AAC_FRAME)
        samples_in = 0  # samples handed to the encoder so far
        base: float | None = None  # restreamer time of sample 0
        last_t = -1e9
        while True:
            item = self._queue.get()
            if item is None:
                return
            t, data = item
            try:
                if base is None or t - last_t > 0.5:  # first packet, or audio resumed after a gap (new program)
                    base = t - samples_in / AUDIO_RATE
                last_t = t
                packet = av.Packet(data)
                for frame in decoder.decode(packet):
                    for out in resampler.resample(frame):
                        out.pts = samples_in
                        out.time_base = fractions.Fraction(1, AUDIO_RATE)
                        samples_in += out.samples
                        for aac in encoder.encode(out):
                            self.frames += 1
                            self._on_packet(base + max(0, aac.pts or 0) / AUDIO_RATE, bytes(aac))
            except Exception:  # a bad packet is skipped, the encoder goes on
                logger.exception("AacEncoder(%s): a packet failed", id(self))


def _new_aac() -> av.audio.codeccontext.AudioCodecContext:
    encoder = av.CodecContext.create("aac", "w")
    encoder.sample_rate = AUDIO_RATE
    encoder.layout = "stereo"
    encoder.format = "fltp"
    encoder.bit_rate = AAC_BITRATE
    encoder.time_base = fractions.Fraction(1, AUDIO_RATE)
    encoder.open()
    return encoder


def aac_config() -> bytes:
    """The AudioSpecificConfig of the restream's AAC (LC, 48 kHz, stereo)."""
    return bytes(_new_aac().extradata or b"\x11\x90")


class Slate:
    """"We'll be right back": a still frame encoded once as one keyframe interval of the program's size and
    settings (played in a loop), and one silent Opus and one silent AAC frame."""

    def __init__(self, config: "MediaConfig", text: str = "We'll be right back") -> None:
        self.fps = config.fps
        encoder = VideoEncoder(config.width, config.height, config.fps, config.video_bitrate, config.keyframe_interval,
                               config.keyframe_min_interval, config.x264_preset)
        frame = av.VideoFrame.from_ndarray(_slate_picture(config.width, config.height, text), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        gop = max(1, round(config.keyframe_interval * config.fps))
        self.video: list[tuple[bytes, bool]] = []
        for i in range(gop + 8):  # x264 may hold a few frames back (zerolatency: none)
            frame.pts = i * 90000 // config.fps
            for packet in encoder.encode(frame):
                self.video.append((bytes(packet), bool(packet.is_keyframe)))
        encoder.close()
        first = next(i for i, (_, key) in enumerate(self.video) if key)
        nxt = next((i for i, (_, key) in enumerate(self.video) if key and i > first), len(self.video))
        self.video = self.video[first:nxt]
        opus = av.CodecContext.create("libopus", "w")
        opus.sample_rate, opus.layout, opus.format, opus.bit_rate = AUDIO_RATE, "stereo", "s16", 32000
        opus.time_base = fractions.Fraction(1, AUDIO_RATE)
        opus.options = {"application": "lowdelay", "frame_duration": "20"}
        self.opus = self._silence(opus, 960, "s16")
        self.aac = self._silence(_new_aac(), AAC_FRAME, "fltp")

    @staticmethod
    def _silence(codec: Any, samples: int, fmt: str) -> bytes:
        dtype = np.int16 if fmt == "s16" else np.float32
        shape = (1, samples * 2) if fmt == "s16" else (2, samples)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros(shape, dtype), format=fmt, layout="stereo")
            frame.sample_rate, frame.pts = AUDIO_RATE, i * samples
            for packet in codec.encode(frame):
                if i >= 3:
                    return bytes(packet)
        raise RuntimeError("the audio encoder produced no silent frame")


def _slate_picture(width: int, height: int, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), (24, 24, 32))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, height // 12))
    box = draw.textbbox((0, 0), text, font=font)
    draw.text(((width - (box[2] - box[0])) / 2, (height - (box[3] - box[1])) / 2), text, fill=(240, 240, 240), font=font)
    return np.asarray(image)
