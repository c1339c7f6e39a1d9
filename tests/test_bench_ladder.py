"""The latency ladder benchmark runs end to end against the real servers (``lmserver serve`` A and B, Debian's
nginx-rtmp, headless Chromium with hls.js): every way of watching reads the clock back from decoded frames,
every CPU window is measured, and the table renders. No figure is asserted (they belong to bench/)."""

from __future__ import annotations

import shutil

import pytest

from bench import ladder

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


async def test_quick_ladder_reads_the_clock_on_every_way() -> None:
    args = ladder.parse_args(["--quick", "--no-write"])
    result = await ladder.amain(args)
    ways = result["ways"]
    assert set(ways) == {"direct", "webrtc", "whip", "rtmp", "hls_ll"}
    if shutil.which("nginx") is None:  # the row says why it was skipped
        assert ways["rtmp"]["error"].startswith("skipped:") and "nginx" in ways["rtmp"]["error"]
        del ways["rtmp"]
    for key, way in ways.items():
        assert way["n"] > 0 and "median" in way, (key, way)  # frames decoded and the clock read back from them
    cpu = result["cpu"]
    assert {"none", "whip", "hls"} <= set(cpu) and all(c > 0 for c in cpu.values()), cpu
    table = ladder.render(result)
    assert table.startswith(ladder.BEGIN) and table.endswith(ladder.END)
    for _, label in ladder.WAYS[:5]:
        assert label in table
    assert "| none (HLS off, no destination) |" in table and "one WHIP out destination" in table
