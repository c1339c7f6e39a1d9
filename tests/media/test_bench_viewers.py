"""The viewers benchmark's parts: counting receivers (real peers read at their socket), the slope fit, the report."""

from __future__ import annotations

import asyncio
import json
import sys

from rtcclients import Publisher

from bench.media import ROOT, fit, render


async def test_counting_receivers_count_the_frames_a_decoding_viewer_decodes(studio) -> None:
    publisher = Publisher()
    procs = []
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        for mode, n in (("decode", 1), ("count", 3)):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "bench" / "viewer_swarm.py"), studio.base + "/whep", mode,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            procs.append(proc)
            proc.stdin.write(f"add {n}\n".encode())
            line = await asyncio.wait_for(proc.stdout.readline(), 90)
            assert line.split() == [b"ready", str(n).encode()], line
        assert len(studio.media.viewers) == 4
        await asyncio.sleep(1)
        for proc in procs:
            proc.stdin.write(b"measure 3\n")
        decoded, counted = [json.loads(await asyncio.wait_for(p.stdout.readline(), 60)) for p in procs]
        assert len(counted["fps"]) == 3 and counted["decoded"] == []
        assert counted["packets_per_s"] > 0 and all(f > 0 for f in counted["fps"])
        # the counting receivers see the frames the decoding one decodes (same program, same window)
        assert min(counted["fps"]) >= 0.5 * decoded["fps"][0] > 0
    finally:
        for proc in procs:
            proc.stdin.write(b"quit\n")
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        await publisher.close()


def test_the_slope_is_a_least_squares_fit_and_the_report_shows_it() -> None:
    rows = [{"n": n, "connected": n, "server_cpu": 0.3 + 0.0025 * n + (0.01 if n == 100 else 0), "fps_median": 30.0,
             "fps_min": 30.0, "decoded_fps": 30.0, "lag_p99": 5.0, "count_cpu": 0.1, "decode_cpu": 0.05} for n in (0, 50, 100, 200)]
    rows[0].update(fps_median=None, fps_min=None, decoded_fps=None, count_cpu=None, decode_cpu=None)
    line = fit(rows)
    assert line is not None and 0.0024 < line["slope"] < 0.0026 and 0.29 < line["intercept"] < 0.31
    assert 0.99 < line["r2"] < 1 and line["points"] == [0, 50, 100, 200]
    text = render({"date": "today", "machine": "here", "viewers": {"rows": rows, "fit": line},
                   "baseline": [{"n": n, "connected": n, "fps_median": 30.0, "fps_min": 30.0, "server_cpu": 0.1 + 0.25 * n,
                                 "lag_p99": 3.0} for n in (1, 2, 3)]})
    assert f"**Server CPU per viewer: {line['slope'] * 1000:.2f} millicores**" in text
    assert "| 0 | 0 | 0 | - / - | - |" in text and "r² = " in text
    assert "per-viewer encode 250 millicores" in text


def test_the_send_path_report_shows_each_path_per_viewer() -> None:
    kinds, ns = ["c", "python", "aiortc"], [0, 30, 60]
    per = {"c": 0.002, "python": 0.004, "aiortc": 0.012}
    rows = {k: [{"n": n, "connected": n, "server_cpu": 0.4 + per[k] * n, "fps_min": 30.0 if n else None, "pps": 250.0 * n}
                for n in ns] for k in kinds}
    fits = {k: fit(rows[k]) for k in kinds}
    text = render({"date": "today", "machine": "here", "sendpath": {"ns": ns, "kinds": kinds, "rows": rows, "fit": fits}})
    assert "| batched loop in C | 0.40 / 0.46 / 0.52 | 250 | **2.00 millicores** | 1.000 |" in text
    assert "| aiortc's sender task per viewer | 0.40 / 0.76 / 1.12 | 250 | **12.00 millicores** |" in text
    assert "batched loop in C 6.0x less, the same loop in Python 3.0x less" in text
    # beside the viewers' run: the comparison with the per-viewer encode uses the viewers' slope, not a send path's
    vrows = [{"n": n, "connected": n, "server_cpu": 0.3 + 0.0025 * n, "fps_median": 30.0, "fps_min": 30.0, "decoded_fps": 30.0,
              "lag_p99": 5.0} for n in (0, 100)]
    text = render({"date": "today", "machine": "here", "sendpath": {"ns": ns, "kinds": kinds, "rows": rows, "fit": fits},
                   "viewers": {"rows": vrows, "fit": fit(vrows)},
                   "baseline": [{"n": n, "connected": n, "fps_median": 30.0, "fps_min": 30.0, "server_cpu": 0.25 * n, "lag_p99": 3.0} for n in (1, 2)]})
    assert "shared packets 2.5 millicores, per-viewer encode 250 millicores" in text
