"""The glass-to-glass benchmark: its clock survives the trip it measures (drawn at 640x360, scaled to 720p,
H.264-encoded by the program's encoder and decoded, it reads back exactly), and ``--quick`` runs every pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from bench.glass import draw_clock, read_clock
from lmserver.media.encoder import VIDEO_TIME_BASE, VideoEncoder
from tests.browser import CHROMIUM

ROOT = Path(__file__).resolve().parent.parent


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
    for level in (0, 128, 255):  # a flat picture reads as no time at all
        assert read_clock(av.VideoFrame.from_ndarray(np.full((360, 640, 3), level, np.uint8), format="rgb24")) is None


def test_a_picture_mixing_two_frames_clock_blocks_is_unreadable_not_a_wrong_time() -> None:
    """An encoder short of bits leaves the odd block of the previous frame: here bit 7 (128 ms) of 1000 and
    1033 differ. The second row is a hash of the first, so no mix of the two frames' blocks reads as a time."""
    old, new = np.full((360, 640, 3), 90, np.uint8), np.full((360, 640, 3), 90, np.uint8)
    draw_clock(old, 1000)
    draw_clock(new, 1033)
    bw = 640 // 32
    for bits in ([24], [24, 25], list(range(20, 32))):
        mixed = new.copy()
        for bit in bits:  # the same column left stale in both rows
            mixed[:, bit * bw:(bit + 1) * bw] = old[:, bit * bw:(bit + 1) * bw]
        assert read_clock(av.VideoFrame.from_ndarray(mixed, format="rgb24")) is None, bits
    assert [read_clock(av.VideoFrame.from_ndarray(img, format="rgb24")) for img in (old, new)] == [1000, 1033]


@pytest.mark.timeout(240)
def test_the_quick_bench_reads_the_clock_on_every_pair_and_prints_its_tables(tmp_path: Path) -> None:
    """bench/glass.py --quick: lmserver in its own process, the aiortc and Chromium publishers and viewers, the
    direct baselines; every way reads frames, and the tables (with the server's stage breakdown) come out.
    No timed assertion: the figures are whatever this machine gives."""
    before = (ROOT / "BENCHMARKS.md").read_bytes()
    args = [sys.executable, "-m", "bench.glass", "--quick"] + ([] if Path(CHROMIUM).exists() else ["--no-chromium"])
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (ROOT / "BENCHMARKS.md").read_bytes() == before  # --quick writes nothing
    ways = [line.split() for line in out.stdout.splitlines() if len(line.split()) > 2 and line.split()[1] in ("direct", "lmserver")]
    pairs = {w[0] for w in ways}
    assert "aiortc>aiortc" in pairs and (not Path(CHROMIUM).exists() or pairs == {"aiortc>aiortc", "chromium>aiortc", "aiortc>chromium"})
    assert len(ways) == 2 * len(pairs)
    for line in out.stdout.splitlines():
        if "| direct |" in line or "| lmserver |" in line:
            frames = int(line.split("|")[7])
            assert frames > 0, line  # readable clocks on this way
    table = out.stdout[out.stdout.index("<!-- glass:begin -->"):]
    assert "the server adds (median)" in table and "| receive | jitter | decode |" in table
    stage_rows = [line for line in table.splitlines() if line.startswith("| aiortc publisher → aiortc viewer |") and line.count("|") == 11]
    assert stage_rows and "–" not in stage_rows[0].split("|")[2], stage_rows  # the server's stages were fetched
