"""Helpers for the replay tests: a real H.264 MP4 made with PyAV, and a recording part row (issue 14's contract)."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from lmserver.appkeys import CONFIG, DB


def make_mp4(path: Path, seconds: int = 20, fps: int = 10, size: tuple[int, int] = (320, 180)) -> float:
    """Write a fast-start H.264 MP4 of ``seconds`` (a grey ramp that changes each second); returns its duration."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(seconds * fps):
            img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            img[..., 0] = np.linspace(30, 200, size[0], dtype=np.uint8)        # a warm ramp
            img[..., 2] = 90 + (i // fps) * 7 % 120                           # that shifts each second
            x = (i * size[0]) // (seconds * fps)
            img[size[1] // 3: 2 * size[1] // 3, x: x + size[0] // 16] = 240    # a bar crossing the frame: the time
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return float(seconds)


async def add_part(app: Any, session_id: int, started_at: float, duration: float, *, part: int = 1,
                   file: Path | None = None, state: str = "complete") -> int:
    """A ``recordings`` row for the session (the file, when given, must be under the data directory)."""
    rel = str(file.relative_to(app[CONFIG].data_dir)) if file is not None else f"recordings/none-{session_id}-{part}.mp4"
    size = file.stat().st_size if file is not None else 0
    async with app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO recordings (session_id, part, path, started_at, duration, size, state, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (session_id, part, rel, started_at, duration, size, state, time.time()))
        return int(cur.lastrowid)
