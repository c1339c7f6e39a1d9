"""Cheap statistics of the program's video frames, for LIVE diagnosis (black or frozen video).

:class:`FrameStats` looks at the luma (Y) plane of a YUV 4:2:0 frame, sampled on a grid (every
``step``-th pixel of every ``step``-th row: 160×90 samples of a 720p frame) and only every ``every``-th
frame. Per measured frame it keeps:

- ``luma_mean``: the mean luma, 0..255 (video range: ~16 is black, ~235 white);
- ``frame_diff``: the mean absolute luma difference to the previous measured frame (0: identical,
  frozen; a live camera's noise alone gives ~1).

Both appear in ``stream.health`` (``luma_mean``, ``frame_diff``) once a second; rules decide what is
black or frozen (the prompter plugin's thresholds). Cost: a few tens of µs per measured 720p frame
(``bench/media.py`` measures it), on the program's video thread.
"""

from __future__ import annotations

import av
import numpy as np


def luma(frame: av.VideoFrame, step: int = 8) -> np.ndarray:
    """The sampled Y plane of a ``yuv420p`` (or any planar YUV / gray) frame, as uint8 (no copy of the full plane)."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height : step, : frame.width : step]


class FrameStats:
    """Luma mean and frame difference of every ``every``-th frame (see the module)."""

    def __init__(self, every: int = 2, step: int = 8) -> None:
        self.every, self.step = max(1, every), max(1, step)
        self.count = 0
        self.luma_mean: float | None = None
        self.frame_diff: float | None = None
        self._previous: np.ndarray | None = None

    def measure(self, frame: av.VideoFrame) -> None:
        """Look at ``frame`` when it is its turn (cheap; call it for every frame)."""
        self.count += 1
        if self.count % self.every:
            return
        sample = luma(frame, self.step).astype(np.int16)
        self.luma_mean = float(sample.mean())
        prev = self._previous
        self.frame_diff = float(np.abs(sample - prev).mean()) if prev is not None and prev.shape == sample.shape else None
        self._previous = sample

    def snapshot(self) -> dict[str, float | None]:
        return {"luma_mean": None if self.luma_mean is None else round(self.luma_mean, 1),
                "frame_diff": None if self.frame_diff is None else round(self.frame_diff, 2)}
