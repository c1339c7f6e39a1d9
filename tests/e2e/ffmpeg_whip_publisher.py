"""Publish a moving pattern + a 440 Hz tone with FFmpeg's WHIP muxer (PyAV), paced in real time.

Run as a separate process: PyAV holds the GIL while the muxer does its WHIP/ICE/DTLS handshake,
so running it in the server's process would block the server it talks to.

    python ffmpeg_whip_publisher.py URL KEY CERT_FILE KEY_FILE SECONDS FPS [GOP [LOSE_FIRST_KEYFRAME]]

GOP is the keyframe interval in frames (x264's default: 250). With LOSE_FIRST_KEYFRAME=1 the first
keyframe is never sent, as if it were lost on the way: the server can decode nothing until the next
one (FFmpeg's WHIP muxer ignores the server's keyframe requests), while RTP keeps flowing.
"""

from __future__ import annotations

import fractions
import os
import sys
import time

import av
import av.logging
import numpy as np


def main(url: str, key: str, cert_file: str, key_file: str, seconds: float, fps: int, gop: int = 250,
         lose_first_keyframe: bool = False) -> int:
    # FFmpeg's own log (why the muxer gave up, if it does) goes to stderr, which the tests read;
    # WHIP_LOG=DEBUG shows its consent checks too.
    av.logging.restore_default_callback()
    av.logging.set_libav_level(getattr(av.logging, os.environ.get("WHIP_LOG", "WARNING")))
    options = {"cert_file": cert_file, "key_file": key_file, "whip_flags": "dtls_active",
               "authorization": key, "handshake_timeout": "10000"}
    out = av.open(url, mode="w", format="whip", options=options)
    video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency",
                                                          "profile": "baseline", "bf": "0",
                                                          "g": str(gop), "sc_threshold": "0"})
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    audio = out.add_stream("libopus", rate=48000)
    audio.layout = "stereo"
    tone = (np.sin(np.arange(960) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
    stereo = np.repeat(tone, 2).reshape(1, -1)
    img = np.zeros((240, 320, 3), np.uint8)
    t0 = time.monotonic()
    frame_no = samples = 0
    while frame_no < seconds * fps:
        img[:] = 90
        x = (frame_no * 4) % 304
        img[:, x : x + 16] = 230
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = frame_no, fractions.Fraction(1, fps)
        for packet in video.encode(frame):
            if lose_first_keyframe and packet.is_keyframe:
                lose_first_keyframe = False
                print(f"lost keyframe {frame_no}", flush=True)
                continue
            out.mux(packet)
        frame_no += 1
        while samples * fps < frame_no * 48000:
            af = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
            af.sample_rate, af.pts, af.time_base = 48000, samples, fractions.Fraction(1, 48000)
            for packet in audio.encode(af):
                out.mux(packet)
            samples += 960
        if frame_no % fps == 0:
            print(f"frames {frame_no}", flush=True)
        delay = t0 + frame_no / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # a live source produces frames in real time
    out.close()  # sends DELETE
    print(f"done {frame_no}", flush=True)
    return 0


if __name__ == "__main__":
    extra = sys.argv[7:]
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]),
                  int(extra[0]) if extra else 250, len(extra) > 1 and extra[1] == "1"))
