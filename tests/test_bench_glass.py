"""The glass-to-glass benchmark's clock survives the trip it measures: drawn at 640x360, scaled to 720p,
H.264-encoded by the program's encoder and decoded, it reads back exactly."""

from __future__ import annotations

import numpy as np
import av

from bench.glass import draw_clock, read_clock
from lmserver.media.encoder import VIDEO_TIME_BASE, VideoEncoder


def test_the_drawn_clock_reads_back_through_scaling_and_h264() -> None:
    encoder = VideoEncoder(1280, 720, 30, 2_000_000, 2.0, 0.5, "superfast", 1)
    decoder = av.CodecContext.create("h264", "r")
    stamps = [0, 1, 0xFFFFFFFF, 0x5A5A5A5A, 1764600000123 & 0xFFFFFFFF]
    decoded = []
    for i, ms in enumerate(stamps * 3):
        img = np.full((360, 640, 3), 90, np.uint8)
        img[200:, (i * 37) % 600:(i * 37) % 600 + 40] = (200, 60, 60)
        draw_clock(img, ms)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = i * 3000, VIDEO_TIME_BASE
        for packet in encoder.encode(frame):
            decoded += [read_clock(f) for f in decoder.decode(av.Packet(bytes(packet)))]
    assert decoded == (stamps * 3)[: len(decoded)] and len(decoded) >= 10
    plain = av.VideoFrame.from_ndarray(np.full((360, 640, 3), 128, np.uint8), format="rgb24")
    assert read_clock(plain) in (0, 0xFFFFFFFF)  # a flat picture reads as one value: the two rows agree
