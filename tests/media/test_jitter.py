"""The ingest's marker-aware jitter buffer: a frame goes to the decoder when its last packet is in.

Packets are real RTP packets (serialized and parsed by aiortc); the end-to-end test runs a real aiortc
publisher into a receiver with the buffer installed and reads the drawn clock back from every frame.
"""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from bench.glass import ClockTrack, read_clock
from lmserver.media.jitter import MarkerJitterBuffer, frame_times
from lmserver.media.rtc import AiortcChanged, release_frames_on_marker

JB_ATTR = "_RTCRtpReceiver__jitter_buffer"


def rtp(seq: int, ts: int, marker: bool = False, payload: bytes | None = None) -> RtpPacket:
    """A real packet off the wire, depayloaded as aiortc's receiver does (``_data``)."""
    data = payload if payload is not None else seq.to_bytes(2, "big")
    packet = RtpPacket.parse(RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq & 0xFFFF, timestamp=ts,
                                       ssrc=1234, payload=data).serialize())
    packet._data = packet.payload  # type: ignore[attr-defined]
    return packet


def feed(jb: JitterBuffer, packets: list[RtpPacket]) -> list[bytes | None]:
    """What each add() released (frame data or None)."""
    out = []
    for p in packets:
        _pli, frame = jb.add(p)
        out.append(None if frame is None else frame.data)
    return out


def frame_bytes(*seqs: int) -> bytes:
    return b"".join((s & 0xFFFF).to_bytes(2, "big") for s in seqs)


def test_a_frame_is_released_with_its_marked_last_packet_not_with_the_next_frame() -> None:
    frame1 = [rtp(100, 3000), rtp(101, 3000), rtp(102, 3000, marker=True)]
    frame2 = [rtp(103, 6000), rtp(104, 6000, marker=True)]
    assert feed(MarkerJitterBuffer(), frame1 + frame2) == [None, None, frame_bytes(100, 101, 102), None, frame_bytes(103, 104)]
    # aiortc's own buffer waits for the next frame's first packet: one frame interval later
    assert feed(JitterBuffer(capacity=512, is_video=True), frame1 + frame2) == [None, None, None, frame_bytes(100, 101, 102), None]


def test_reordered_packets_release_the_frame_when_the_missing_one_arrives() -> None:
    jb = MarkerJitterBuffer()
    released = feed(jb, [rtp(10, 90), rtp(12, 90, marker=True), rtp(11, 90), rtp(14, 180, marker=True), rtp(13, 180)])
    assert released == [None, None, frame_bytes(10, 11, 12), None, frame_bytes(13, 14)]
    assert jb.released_on_marker == 2 and jb.released_on_next == 0


def test_a_lost_packet_holds_the_frame_until_it_is_retransmitted_and_never_releases_a_partial_frame() -> None:
    jb = MarkerJitterBuffer()
    # 21 is lost: frame 20..22 is incomplete, and the frames after it wait behind the gap
    released = feed(jb, [rtp(20, 90), rtp(22, 90, marker=True), rtp(23, 180), rtp(24, 180, marker=True), rtp(25, 270, marker=True)])
    assert released == [None] * 5
    # the retransmission (NACK → RTX) arrives: the frame goes out whole, then the next ones, in order
    assert feed(jb, [rtp(21, 90)]) == [frame_bytes(20, 21, 22)]
    assert feed(jb, [rtp(26, 360)]) == [frame_bytes(23, 24)]
    assert feed(jb, [rtp(27, 360, marker=True)]) == [frame_bytes(25)]
    assert feed(jb, [rtp(28, 450, marker=True)]) == [frame_bytes(26, 27)]


def test_a_packet_lost_for_good_is_skipped_with_a_keyframe_request_as_aiortc_does() -> None:
    jb = MarkerJitterBuffer(capacity=16)
    # 2 never arrives; frames 4.. (one packet each) pile up behind the gap until the buffer overflows
    packets = [rtp(1, 90), rtp(3, 90, marker=True)] + [rtp(s, 90 * s, marker=True) for s in range(4, 20)]
    results = [jb.add(p) for p in packets]
    assert [pli for pli, _f in results].index(True) == packets.index(next(p for p in packets if p.sequence_number == 17))
    released = [f.data for _pli, f in results if f is not None]
    assert released == [frame_bytes(4), frame_bytes(5), frame_bytes(6)]  # the partial frame 1..3 was dropped, never decoded


def test_without_marker_bits_frames_are_released_when_the_next_frame_begins() -> None:
    jb = MarkerJitterBuffer()
    released = feed(jb, [rtp(1, 90), rtp(2, 90), rtp(3, 180), rtp(4, 180), rtp(5, 270)])
    assert released == [None, None, frame_bytes(1, 2), None, frame_bytes(3, 4)]
    assert jb.released_on_next == 2 and jb.released_on_marker == 0


def test_sequence_numbers_wrap_around() -> None:
    jb = MarkerJitterBuffer()
    released = feed(jb, [rtp(65534, 4_294_967_000), rtp(65535, 4_294_967_000), rtp(0, 4_294_967_000, marker=True),
                         rtp(2, 200, marker=True), rtp(1, 200)])
    assert released == [None, None, frame_bytes(65534, 65535, 0), None, frame_bytes(1, 2)]


def test_a_publisher_whose_marker_does_not_end_frames_is_not_trusted_again() -> None:
    jb = MarkerJitterBuffer()
    # a marker on the first of two packets of a frame: that frame went out early (once) ...
    assert feed(jb, [rtp(1, 90, marker=True), rtp(2, 90)]) == [frame_bytes(1), None]
    assert not jb.marker_trusted
    # ... from then on, aiortc's rule: frame 3..4 is released only when the next one begins
    assert feed(jb, [rtp(3, 180), rtp(4, 180, marker=True), rtp(5, 270)]) == [frame_bytes(2), None, frame_bytes(3, 4)]


def test_released_frames_carry_their_receive_and_release_times() -> None:
    jb = MarkerJitterBuffer()
    feed(jb, [rtp(1, 90), rtp(2, 90, marker=True), rtp(3, 180, marker=True)])
    first = jb.times_for(90)
    assert first is not None and first.first <= first.last <= first.released
    assert jb.times_for(999) is None and jb.times_for(180) is None  # unknown: the older ones are dropped, never kept forever
    assert frame_times(object(), 90) is None


def pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def test_installed_on_the_video_receivers_only_and_fails_loudly_when_aiortc_changed() -> None:
    pub, sub = pc(), pc()
    pub.addTrack(ClockTrack(320, 180))
    pub.addTransceiver("audio")
    try:
        await pub.setLocalDescription(await pub.createOffer())
        await sub.setRemoteDescription(pub.localDescription)
        assert release_frames_on_marker(sub) == 1
        buffers = {t.kind: getattr(t.receiver, JB_ATTR) for t in sub.getTransceivers()}
        assert type(buffers["video"]) is MarkerJitterBuffer and type(buffers["audio"]) is JitterBuffer
        assert release_frames_on_marker(sub) == 0  # once is enough
        other = pc()
        other.addTransceiver("video", direction="recvonly")
        delattr(other.getTransceivers()[0].receiver, JB_ATTR)  # an aiortc whose receiver keeps it elsewhere
        with pytest.raises(AiortcChanged):
            release_frames_on_marker(other)
        await other.close()
    finally:
        await pub.close()
        await sub.close()


@pytest.mark.timeout(90)
async def test_a_real_aiortc_stream_decodes_whole_frames_released_on_their_marker() -> None:
    from lmserver.media.rtc import set_ice_host_addresses

    set_ice_host_addresses(["127.0.0.1"])
    pub, sub = pc(), pc()
    pub.addTrack(ClockTrack(320, 192))
    # H.264, as OBS and browsers publish: FU-A frames of several packets. (aiortc's VP8 at this size leaves
    # the odd clock block of the previous frame in place, up to a fifth of the frames on a loaded machine.)
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    pub.getTransceivers()[0].setCodecPreferences(h264[:1])
    frames: list[int | None] = []
    times = []
    got = asyncio.Event()

    async def read(track) -> None:  # type: ignore[no-untyped-def]
        try:
            while len(frames) < 60:
                frame = await track.recv()
                frames.append(read_clock(frame))
                times.append(frame_times(track, frame.pts))
            got.set()
        except MediaStreamError:
            got.set()

    tasks = []
    sub.on("track", lambda track: tasks.append(asyncio.ensure_future(read(track))))
    try:
        await pub.setLocalDescription(await pub.createOffer())
        await sub.setRemoteDescription(pub.localDescription)
        release_frames_on_marker(sub)
        await sub.setLocalDescription(await sub.createAnswer())
        await pub.setRemoteDescription(sub.localDescription)
        await asyncio.wait_for(got.wait(), 60)
        jb = getattr(sub.getTransceivers()[0].receiver, JB_ATTR)
        # frames whole (a frame released before its last packet does not decode to its drawn clock), in order
        readable = [v for v in frames if v is not None]
        assert len(frames) == 60 and len(readable) >= 57, frames
        bad = [(a, b) for a, b in zip(readable, readable[1:]) if not 0 < (b - a) & 0xFFFFFFFF < 1000]
        assert not bad, bad
        assert jb.marker_trusted and jb.released_on_marker >= 55 and jb.released_on_next <= 1
        assert sum(t is not None for t in times) >= 55  # the program matches decoded frames to their receive times
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pub.close()
        await sub.close()
