"""Shared by the benchmarks: the machine line and rewriting one marked section of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nFigures measured by the scripts in `bench/` (`make bench`).\n"


def machine() -> str:
    """CPU model, cores and the versions that matter, for the report's first line."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiortc
    import av

    return (f"{cpu}, {os.cpu_count()} cores (shared with other work), Python {platform.python_version()}, "
            f"PyAV {av.__version__} (FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}), "
            f"aiortc {aiortc.__version__}")


def write_section(begin: str, end: str, section: str) -> None:
    """Replace the text between ``begin`` and ``end`` (markers included in ``section``), or append it."""
    text = REPORT.read_text() if REPORT.exists() else HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    REPORT.write_text(text)
