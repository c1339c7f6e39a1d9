"""Read a QR code's module matrix back from a PNG (as rendered by segno: square modules, quiet zone),
to check that a downloaded QR code encodes an expected URL by comparing with segno's own matrix."""

from __future__ import annotations

import io

import numpy as np
import segno
from PIL import Image


def read_matrix(png: bytes) -> list[list[int]]:
    """The dark/light modules of the single QR code in ``png`` (1 = dark), quiet zone excluded."""
    dark = np.asarray(Image.open(io.BytesIO(png)).convert("L")) < 128
    rows, cols = np.where(dark.any(axis=1))[0], np.where(dark.any(axis=0))[0]
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    run = 0
    while left + run <= right and dark[top, left + run]:  # top edge of the top-left finder: 7 dark modules
        run += 1
    module = run / 7
    n = round((right - left + 1) / module)
    assert abs(n * module - (right - left + 1)) < module / 2 and abs(n * module - (bottom - top + 1)) < module / 2, "not a square QR code"
    return [[int(dark[int(top + (r + 0.5) * module), int(left + (c + 0.5) * module)]) for c in range(n)] for r in range(n)]


def encodes(png: bytes, text: str) -> bool:
    """Whether the QR code in ``png`` is the one segno makes for ``text`` (at any error level)."""
    got = read_matrix(png)
    for error in ("l", "m", "q", "h"):
        expected = [list(row) for row in segno.make(text, error=error, micro=False).matrix]
        if got == expected:
            return True
    return False
