"""The pure media pieces: compositor, encoder, per-viewer packet queues."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from lmserver.media.compositor import Compositor, plane_view
from lmserver.media.encoder import VIDEO_TIME_BASE, AudioEncoder, VideoEncoder
from lmserver.media.fanout import Fanout, PacketQueue


def gray_frame(w: int = 320, h: int = 240, pts: int = 1234) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 100, np.uint8), format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = pts, fractions.Fraction(1, 90000)
    return frame


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [plane_view(p).copy() for p in frame.planes]


def test_no_layer_means_no_pixel_work() -> None:
    frame = gray_frame()
    before = planes(frame)
    assert Compositor().composite(frame) is frame
    assert all(np.array_equal(a, b) for a, b in zip(before, planes(frame)))


def test_layer_is_blended_inside_its_rectangle_only_and_timing_is_kept() -> None:
    comp = Compositor()
    red = np.zeros((40, 60, 4), np.uint8)
    red[:] = (255, 0, 0, 255)
    comp.set_layer("red", red, x=21, y=33)  # odd: rounded down to even
    frame = gray_frame()
    before = planes(frame)
    out = comp.composite(frame)
    assert out.pts == 1234 and out.time_base == fractions.Fraction(1, 90000)
    y, u, v = planes(out)
    info = comp.layers()[0]
    assert (info.x, info.y, info.width, info.height) == (20, 32, 60, 40)
    mask = np.zeros(y.shape, bool)
    mask[32:72, 20:80] = True
    assert np.array_equal(y[~mask], before[0][~mask])  # byte-exact outside
    assert abs(int(y[50, 50]) - 81) <= 2  # BT.601 red: Y=81, U=90, V=240
    assert abs(int(u[25, 25]) - 90) <= 2 and abs(int(v[25, 25]) - 240) <= 2
    cmask = np.zeros(u.shape, bool)
    cmask[16:36, 10:40] = True
    assert np.array_equal(u[~cmask], before[1][~cmask]) and np.array_equal(v[~cmask], before[2][~cmask])


def test_opacity_order_move_remove_and_clipping() -> None:
    comp = Compositor()
    white = np.full((20, 20, 4), 255, np.uint8)
    black = np.zeros((20, 20, 4), np.uint8)
    black[..., 3] = 255
    comp.set_layer("top", black, 0, 0, z=5)
    comp.set_layer("bottom", white, 0, 0, z=1)
    assert [l.name for l in comp.layers()] == ["bottom", "top"]
    y = planes(comp.composite(gray_frame()))[0]
    assert y[5, 5] == 16  # black on top
    comp.move_layer("top", 310, 230, opacity=0.5)  # partly off the frame: clipped
    y = planes(comp.composite(gray_frame()))[0]
    assert y[5, 5] == 235 and 40 < y[235, 315] < 110
    assert comp.remove_layer("top") and not comp.remove_layer("top")
    comp.set_layer("big", np.full((100, 200, 3), 255, np.uint8), 0, 0, width=50, height=26)
    big = next(layer for layer in comp.layers() if layer.name == "big")
    assert (big.width, big.height) == (50, 26)
    comp.clear()
    assert comp.layers() == []
    with pytest.raises(ValueError):
        comp.set_layer("bad", np.zeros((4, 4), np.uint8), 0, 0)


def _h264_stream(n: int) -> list[av.Packet]:
    """A texture panning right 4 px per frame: P-frames reference pixels that moved."""
    enc = VideoEncoder(320, 240, 30, 1_500_000, 10.0, 0.0, "ultrafast", 1)
    texture = np.random.default_rng(7).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture[::4, ::4], 4, axis=0), 4, axis=1)
    packets = []
    for i in range(n):
        img = np.ascontiguousarray(np.roll(texture, 4 * i, axis=1))
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts, f.time_base = i * 3000, VIDEO_TIME_BASE
        packets += enc.encode(f)
    return packets


def test_compositing_decoded_frames_does_not_corrupt_later_frames() -> None:
    packets = _h264_stream(30)
    comp = Compositor()
    comp.set_layer("logo", np.full((64, 64, 4), 255, np.uint8), 100, 100)

    def decode(composite: bool) -> list[np.ndarray]:
        dec = av.CodecContext.create("h264", "r")
        out = []
        for p in packets:
            for frame in dec.decode(av.Packet(bytes(p))):
                if composite:
                    frame = comp.composite(frame)
                out.append(planes(frame)[0])
        return out

    plain, blended = decode(False), decode(True)
    assert len(plain) == len(blended) == 30
    for a, b in zip(plain, blended):
        a, b = a.astype(int), b.astype(int)
        a[100:164, 100:164] = b[100:164, 100:164] = 0
        assert np.abs(a - b).max() == 0


def test_encoder_is_constrained_baseline_without_b_frames_and_scales() -> None:
    packets = _h264_stream(20)
    data = bytes(packets[0])
    sps = data[data.index(b"\x00\x00\x01\x67") + 4 :]
    assert sps[0] == 66 and sps[1] & 0x40  # profile_idc baseline, constraint_set1 (constrained)
    assert all(p.pts == p.dts for p in packets)
    assert [p.pts for p in packets] == sorted(p.pts for p in packets)
    enc = VideoEncoder(320, 240, 30, 400_000, 2.0, 0.0, "superfast", 2)
    big = av.VideoFrame.from_ndarray(np.zeros((480, 640, 3), np.uint8), format="rgb24")
    big.pts, big.time_base = 0, VIDEO_TIME_BASE
    dec = av.CodecContext.create("h264", "r")
    frames = [f for p in enc.encode(big) for f in dec.decode(av.Packet(bytes(p)))]
    assert (frames[0].width, frames[0].height) == (320, 240)


def test_keyframe_requests_are_rate_limited_and_keyframes_capped() -> None:
    enc = VideoEncoder(320, 240, 30, 500_000, 100.0, 1000.0, "superfast", 1)
    rng = np.random.default_rng(1)
    sizes, keys = [], []
    for i in range(6):
        if i in (2, 3, 4):
            enc.request_keyframe()
        f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
        f.pts, f.time_base = i * 3000, VIDEO_TIME_BASE
        for p in enc.encode(f):
            keys.append(p.is_keyframe)
            sizes.append(p.size)
    # only the first frame is a keyframe: later requests wait for keyframe_min_interval (1000 s here)
    assert keys == [True, False, False, False, False, False]
    # VBV (maxrate=bitrate, bufsize=bitrate/6): even a noise keyframe stays small
    assert sizes[0] < 500_000 / 8 / 6 * 2


def test_audio_encoder_measures_level_and_makes_opus_packets() -> None:
    enc = AudioEncoder(64_000)
    tone = (np.sin(np.arange(960) * 2 * np.pi / 48) * 16000).astype(np.int16)
    packets = []
    for i in range(10):
        f = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        f.sample_rate, f.pts, f.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        packets += enc.encode(f)
    assert packets and all(p.time_base == fractions.Fraction(1, 48000) for p in packets)
    assert -12 < enc.level_dbfs < -6


def _pkt(key: bool) -> av.Packet:
    p = av.Packet(b"\x00\x00\x00\x01" + bytes(10))
    p.is_keyframe = key
    return p


async def test_a_full_video_queue_skips_to_the_next_keyframe() -> None:
    requests = []
    q = PacketQueue("video", 4, lambda: requests.append(1))
    q.put(_pkt(False))
    assert len(q) == 0 and q.waiting_for_keyframe  # a new viewer starts at a keyframe
    for key in (True, False, False, False):
        q.put(_pkt(key))
    assert len(q) == 4 and not requests
    q.put(_pkt(False))  # overflow: drop everything, wait for a keyframe, ask for one
    assert len(q) == 0 and q.skips == 1 and requests == [1]
    q.put(_pkt(False))
    assert len(q) == 0
    q.put(_pkt(True))
    assert (await q.get()).is_keyframe
    q.close()
    from aiortc.mediastreams import MediaStreamError

    with pytest.raises(MediaStreamError):
        await q.get()


async def test_fanout_shares_one_packet_object_and_requests_a_keyframe_per_joiner() -> None:
    requests = []
    fan = Fanout(8, lambda: requests.append(1))
    a, _ = fan.subscribe()
    b, _ = fan.subscribe()
    assert len(requests) == 2 and len(fan) == 2
    key = _pkt(True)
    fan.publish_video(key)
    assert (await a.get()) is key and (await b.get()) is key
    audio = PacketQueue("audio", 2, lambda: None)
    for _ in range(3):
        audio.put(_pkt(False))
    assert len(audio) == 2 and audio.dropped == 1


def _reference_blend(frame: av.VideoFrame, comp: Compositor) -> list[np.ndarray]:
    """Every layer blended row by row with the same integer math, clipped to the frame."""
    out = planes(frame)
    fw, fh = frame.width, frame.height
    for layer in comp._snapshot:
        info = layer.info
        for i, plane in enumerate(out):
            d = 0 if i == 0 else 1
            for yy in range(info.height >> d):
                y = (info.y >> d) + yy
                if not 0 <= y < (fh >> d):
                    continue
                for_x = np.arange(info.width >> d) + (info.x >> d)
                ok = (for_x >= 0) & (for_x < (fw >> d))
                xs = for_x[ok]
                row = plane[y, xs].astype(np.uint32)
                a_inv = layer.inv_a[i][yy][ok].astype(np.uint32)
                s_a = layer.src_a[i][yy][ok].astype(np.uint32)
                plane[y, xs] = ((row * a_inv + s_a) >> 8).astype(np.uint8)
    return out


def test_blending_matches_a_per_pixel_reference_including_clipping() -> None:
    rng = np.random.default_rng(11)
    h, w = 120, 160
    card = np.zeros((h, w, 4), np.uint8)
    card[..., :3] = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    edge = np.minimum.reduce([xx, yy, w - 1 - xx, h - 1 - yy]).astype(np.float32)
    corner = np.hypot(np.maximum(0, 20 - np.minimum(xx, w - 1 - xx)), np.maximum(0, 20 - np.minimum(yy, h - 1 - yy)))
    card[..., 3] = np.clip(np.minimum(edge * 32, (20 - corner) * 32), 0, 255).astype(np.uint8)
    for x, y in ((40, 30), (-50, 180), (250, -40)):  # inside, and clipped at two corners
        comp = Compositor()
        comp.set_layer("card", card, x, y)
        frame = gray_frame()
        frame_planes = planes(frame)
        for p, src in zip(frame.planes, frame_planes):
            plane_view(p)[...] = rng.integers(0, 255, src.shape, dtype=np.uint8)
        expected = _reference_blend(frame, comp)
        got = planes(comp.composite(frame))
        for a, b in zip(expected, got):
            assert np.array_equal(a, b)
