"""Frame statistics for LIVE diagnosis: luma mean (black video) and frame difference (frozen video)."""

from __future__ import annotations

import av
import numpy as np

from lmserver.media.framestats import FrameStats


def frame(rgb: np.ndarray, width: int = 1280, height: int = 720) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(np.broadcast_to(rgb, (height, width, 3))).astype(np.uint8),
                                      format="rgb24").reformat(format="yuv420p")


def test_black_frozen_and_moving_video_are_told_apart() -> None:
    rng = np.random.default_rng(1)
    stats = FrameStats(every=1)
    assert stats.snapshot() == {"luma_mean": None, "frame_diff": None}
    black = frame(np.zeros(3))
    stats.measure(black)
    stats.measure(black)
    assert stats.luma_mean is not None and stats.luma_mean < 20 and stats.frame_diff == 0.0
    still = frame(rng.integers(0, 256, (720, 1280, 3)))
    stats.measure(still)
    assert stats.luma_mean > 60 and stats.frame_diff > 20
    stats.measure(still)
    assert stats.snapshot()["frame_diff"] == 0.0, "the same picture twice is frozen"
    stats.measure(frame(rng.integers(0, 256, (720, 1280, 3))))
    assert stats.frame_diff > 20


def test_only_every_nth_frame_is_measured_and_odd_sizes_work() -> None:
    stats = FrameStats(every=3)
    grey = frame(np.full(3, 128), 642, 362)  # line size wider than the width
    for _ in range(2):
        stats.measure(grey)
    assert stats.luma_mean is None
    stats.measure(grey)
    assert abs(stats.luma_mean - 126) < 4 and stats.frame_diff is None
