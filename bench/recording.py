"""Recording benchmark: what recording a session costs (no second encode), and the remux of a 1-hour recording.

1. **CPU per recorded session at 720p30.** The program's own encoders make a few seconds of 720p30 H.264 at
   2 Mbit/s (moving noise, so the packets have a real LIVE's sizes) and 20 ms Opus packets; those packets are
   fed again and again, timestamps shifted, through :class:`lmserver.media.recorder.Recorder` (its queue, its
   thread, the fragmented MP4 with a fragment a second, flushed) as fast as it takes them. Process CPU time /
   seconds of video recorded = the share of a core one recorded session costs. For scale, the same run's
   encode cost per second of video: what a recorder that re-encoded would add.
2. **Remux of a 1-hour recording.** One hour of those packets written by the recorder, then
   :func:`lmserver.media.recorder.remux` (fragmented → fast-start MP4, no re-encode): wall time and CPU time.

    python -m bench.recording [--seconds 120] [--hours 1.0]
"""

from __future__ import annotations

import argparse
import fractions
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np

from bench.report import machine, write_section
from lmserver.media.encoder import AUDIO_TIME_BASE, VIDEO_TIME_BASE, AudioEncoder, VideoEncoder
from lmserver.media.recorder import Recorder, remux

BEGIN, END = "<!-- recording:begin -->", "<!-- recording:end -->"
W, H, FPS, BITRATE = 1280, 720, 30, 2_000_000
SAMPLE_SECONDS = 4  # two GOPs (keyframe every 2 s)


def sample_packets() -> tuple[list[av.Packet], list[av.Packet], float]:
    """SAMPLE_SECONDS of 720p30 program packets and Opus packets; and the encode CPU seconds per video second."""
    video, audio = VideoEncoder(W, H, FPS, BITRATE, 2.0, 0.5, "superfast", 1), AudioEncoder(64_000)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (H + 64, W + 64, 3), np.uint8)
    vpackets: list[av.Packet] = []
    cpu = time.process_time()
    for i in range(SAMPLE_SECONDS * FPS):
        dx, dy = (i * 3) % 64, (i * 2) % 64  # a moving picture: real P-frame sizes
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[dy:dy + H, dx:dx + W]), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = i * 90000 // FPS, VIDEO_TIME_BASE
        vpackets += video.encode(frame)
    encode_cpu = (time.process_time() - cpu) / SAMPLE_SECONDS
    tone = (np.sin(np.arange(960 * 2) / 9) * 6000).astype(np.int16).reshape(1, -1)
    apackets: list[av.Packet] = []
    for _ in range(SAMPLE_SECONDS * 50):
        sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="stereo")
        sound.sample_rate, sound.time_base = 48000, AUDIO_TIME_BASE
        apackets += audio.encode(sound)
    return vpackets, apackets, encode_cpu


def feed(recorder: Recorder, vpackets: list[av.Packet], apackets: list[av.Packet], seconds: float, *,
         realtime: bool = False) -> None:
    """``seconds`` of program packets into the recorder, interleaved as the program sends them (``realtime``:
    at the program's pace, a video frame every 1/30 s)."""
    start = time.perf_counter()
    loops = max(1, round(seconds / SAMPLE_SECONDS))
    vstep, astep = SAMPLE_SECONDS * 90000, SAMPLE_SECONDS * 48000
    per_frame = len(apackets) / len(vpackets)
    for n in range(loops):
        a = 0.0
        for i, src in enumerate(vpackets):
            p = av.Packet(bytes(src))
            p.pts = p.dts = src.pts + n * vstep
            p.time_base, p.is_keyframe = VIDEO_TIME_BASE, src.is_keyframe
            if realtime:
                time.sleep(max(0.0, start + (n * len(vpackets) + i) / FPS - time.perf_counter()))
            recorder.write_video(p)
            a += per_frame
            while a >= 1 and apackets:
                asrc = apackets[int(i * per_frame) % len(apackets)]
                q = av.Packet(bytes(asrc))
                q.pts = q.dts = asrc.pts + n * astep
                q.time_base, q.duration = AUDIO_TIME_BASE, 960
                recorder.write_audio(q)
                a -= 1
        # keep the queue short, as a live program does (real time would be slower still)
        while recorder._queue.qsize() > 200:  # noqa: SLF001 (a benchmark looks inside)
            time.sleep(0.005)


def record_cost(tmp: Path, vpackets: list[av.Packet], apackets: list[av.Packet], seconds: float,
                realtime: bool = False) -> dict[str, float]:
    recorder = Recorder(tmp / "cost.mp4", W, H, FPS)
    cpu, wall = time.process_time(), time.perf_counter()
    feed(recorder, vpackets, apackets, seconds, realtime=realtime)
    recorder.close()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert recorder.error is None, recorder.error
    return {"seconds": recorder.duration, "cpu": cpu, "wall": wall, "size": (tmp / "cost.mp4").stat().st_size,
            "cores": cpu / max(recorder.duration, 1e-9)}


def remux_cost(tmp: Path, vpackets: list[av.Packet], apackets: list[av.Packet], hours: float) -> dict[str, float]:
    src = tmp / "hour.mp4"
    recorder = Recorder(src, W, H, FPS)
    feed(recorder, vpackets, apackets, hours * 3600)
    recorder.close()
    assert recorder.error is None, recorder.error
    size = src.stat().st_size
    cpu, wall = time.process_time(), time.perf_counter()
    duration, out_size = remux(src, tmp / "hour-faststart.mp4")
    return {"duration": duration, "size": size, "out_size": out_size, "cpu": time.process_time() - cpu,
            "wall": time.perf_counter() - wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="video seconds recorded for the CPU figure")
    parser.add_argument("--realtime", type=float, default=20.0, help="video seconds recorded at the program's pace")
    parser.add_argument("--hours", type=float, default=1.0, help="length of the remuxed recording")
    args = parser.parse_args()
    vpackets, apackets, encode_cpu = sample_packets()
    kbps = sum(p.size for p in vpackets) * 8 / SAMPLE_SECONDS / 1000
    with tempfile.TemporaryDirectory(prefix="lms-bench-rec-") as tmp:
        cost = record_cost(Path(tmp), vpackets, apackets, args.seconds)
        print(f"record: {cost}")
        paced = record_cost(Path(tmp), vpackets, apackets, args.realtime, realtime=True)
        print(f"record at the program's pace: {paced}")
        rem = remux_cost(Path(tmp), vpackets, apackets, args.hours)
        print(f"remux: {rem}")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"""{BEGIN}
## Recording (bench/recording.py)

Run {when} on {machine()}. The program's packets (720p30 H.264 at {kbps:.0f} kbit/s measured, moving noise; Opus
64 kbit/s in 20 ms packets) fed through the recorder as fast as it takes them; CPU is the whole process's
(the feeding thread included), divided by the seconds of video recorded.

| measure | figure |
|---|---|
| recording CPU per session at 720p30 (fragmented MP4, a fragment a second, flushed) | {cost['cores'] * 100:.2f} % of a core ({cost['seconds']:.0f} s of video in {cost['wall']:.1f} s, {cost['cpu']:.2f} s CPU) |
| the same at the program's pace (a frame every 1/30 s, {paced['seconds']:.0f} s; the feeding loop included) | {paced['cores'] * 100:.2f} % of a core |
| for scale: the program's x264 encode (superfast, 1 thread) of the same video | {encode_cpu * 100:.1f} % of a core, {encode_cpu / max(cost['cores'], 1e-9):.0f}x the recording |
| remux of a {args.hours:g}-hour recording ({rem['size'] / 1e6:.0f} MB fragmented → {rem['out_size'] / 1e6:.0f} MB fast-start, {rem['duration'] / 60:.0f} min) | {rem['wall']:.1f} s wall, {rem['cpu']:.1f} s CPU |

Target: under 2 % of a core per recorded session (nothing is re-encoded).
{END}"""
    write_section(BEGIN, END, section)
    print(section)


if __name__ == "__main__":
    main()
