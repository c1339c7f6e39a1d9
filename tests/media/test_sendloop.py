"""The viewers' send loop: the C loop (lmserver/media/_sendloop.c) and the Python loop send the same datagrams.

Two FastSenders with the same SRTP key, SSRC and sequence numbers send the same program packets, one
through each loop, to two real UDP sockets on loopback; the datagrams must be byte for byte the same, and
decrypt (libsrtp, inbound) to the RTP packets expected. Runs of equal-size FU-A fragments go out with UDP
segmentation offload (the receiver sees ordinary datagrams), a long run is split at 64 segments, and a
failed send hands the protected datagrams to the fallback in order.
"""

from __future__ import annotations

import collections
import errno
import os
import shutil
import socket
import sysconfig
import types
from pathlib import Path
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSourceInfo, RtcpSrPacket, RtpPacket

from lmserver.media import fastsend, rtpwire
from lmserver.media.fanout import EqualFragmentsH264, SharedPacker
from lmserver.media.fastsend import FastSender

needs_c = pytest.mark.skipif(rtpwire._sendloop is None, reason="lmserver.media._sendloop is not built (no C compiler at install)")

KEY = bytes(range(28))  # AES-128-GCM: 16-byte key + 12-byte salt


def policy(direction: int) -> pylibsrtp.Policy:
    return pylibsrtp.Policy(key=KEY, ssrc_type=direction, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM)


class Packer:
    """A SharedPacker stand-in: payloads given by the test."""

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        return packet.payloads, packet.timestamp


def program_packet(payloads: list[bytes], timestamp: int) -> Any:
    return types.SimpleNamespace(payloads=payloads, timestamp=timestamp)


class Endpoint:
    """A FastSender wired to a real UDP socket pair on loopback (no peer connection: the loop alone)."""

    def __init__(self, accel: bool, gso: bool, family: int = socket.AF_INET) -> None:
        host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.rx = socket.socket(family, socket.SOCK_DGRAM)
        self.rx.bind((host, 0))
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.rx.settimeout(2)
        self.tx = socket.socket(family, socket.SOCK_DGRAM)
        self.tx.bind((host, 0))
        self.fallen_back: list[bytes] = []
        s = FastSender.__new__(FastSender)
        s.kind, s.items, s.live = "video", collections.deque(), True
        s.sock, s.sendto, s.sendmsg, s.addr = self.tx, self.tx.sendto, self.tx.sendmsg, self.rx.getsockname()
        s.fallback = lambda data, addr: self.fallen_back.append(bytes(data))
        s.gso = gso and rtpwire.GSO
        self.session = pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        s._session = self.session
        s.srtp = (self.session._srtp[0], rtpwire._srtp_ffi.new("int *"))
        s.ctx = int(rtpwire._srtp_ffi.cast("uintptr_t", self.session._srtp[0]))
        s.sockaddr = rtpwire.sockaddr(family, s.addr)
        s.accel = accel
        s.seq, s.ts_origin, s.b0, s.pt, s.ssrc = 65530, 1000, 0x90, 102, 0x11223344  # the sequence number wraps
        s.ext_pre, s.ext_post, s.abs = b"\xbe\xde\x00\x02\x10\x31\x32", b"\x00\x00", True  # mid "1" + abs-send-time
        s.sent = collections.deque(maxlen=fastsend._HISTORY)
        s.packets = s.octets = s.last_ts = s.last_ntp = s.reports = 0
        s.sdes = bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=s.ssrc, items=[(1, b"viewer-cname")])]))
        s.packer = Packer()
        s.sender = types.SimpleNamespace()
        self.s = s

    def send(self, *packets: Any, ntp: int = 0) -> None:
        self.s.items.extend(packets)
        self.s.send_queued(b"\x01\x02\x03", ntp)

    def received(self, n: int) -> list[bytes]:
        return [self.rx.recv(2048) for _ in range(n)]

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


def fragments(size: int) -> list[bytes]:
    """The FU-A payloads of one NAL unit of ``size`` bytes (full-size fragments, a shorter last one)."""
    nal = bytes([0x65]) + os.urandom(size - 1)
    return EqualFragmentsH264._packetize_fu_a(nal)


@needs_c
@pytest.mark.parametrize("gso", [True, False], ids=["gso", "datagram-by-datagram"])
def test_the_c_loop_sends_what_the_python_loop_sends(gso: bool) -> None:
    c, py = Endpoint(accel=True, gso=gso), Endpoint(accel=False, gso=gso)
    try:
        frames = [
            program_packet([b"\x78" + os.urandom(40)], 3000),  # a STAP-A sized single packet
            program_packet(fragments(5000) + fragments(3100), 6000),  # two slices: two runs
            program_packet(fragments(100_000), 9000),  # a keyframe: a run split at 64 segments
        ]
        for ep in (c, py):
            ep.send(*frames)
        count = sum(len(f.payloads) for f in frames)
        got_c, got_py = c.received(count), py.received(count)
        assert got_c == got_py
        assert c.fallen_back == py.fallen_back == []
        inbound = pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_INBOUND))
        seq = 65530
        for frame in frames:
            for i, payload in enumerate(frame.payloads):
                rtp = RtpPacket.parse(inbound.unprotect(got_c.pop(0)))
                assert (rtp.sequence_number, rtp.timestamp, rtp.ssrc, rtp.payload_type) == (seq, frame.timestamp + 1000, 0x11223344, 102)
                assert rtp.marker == (i == len(frame.payloads) - 1) and rtp.payload == payload
                seq = (seq + 1) & 0xFFFF
        for ep in (c, py):
            assert ep.s.seq == seq and ep.s.packets == count and ep.s.octets == sum(len(p) for f in frames for p in f.payloads)
            # the NACK history: a packet of the last frame, the same clear packet whichever loop sent it
            assert ep.s.clear_packet((seq - 2) & 0xFFFF) == c.s.clear_packet((seq - 2) & 0xFFFF) is not None
    finally:
        c.close()
        py.close()


@needs_c
def test_a_failed_send_hands_the_protected_datagrams_to_the_fallback_in_order() -> None:
    ep = Endpoint(accel=True, gso=True)
    reference = Endpoint(accel=False, gso=True)
    try:
        frame = program_packet(fragments(6000), 3000)
        ep.tx.close()  # the socket is gone: every send fails (EBADF), nothing is lost from the SRTP state
        ep.send(frame)
        reference.send(frame)
        assert ep.fallen_back == reference.received(len(frame.payloads))
        assert ep.s.packets == len(frame.payloads)
        result = rtpwire._sendloop.send_rtp(-1, ep.s.sockaddr, True, ep.s.ctx, rtpwire.PROTECT, 0x80, 102, 7, 1, 2, b"",
                                             [b"x" * 100])
        assert result[0] == errno.EBADF and result[1] == 0 and len(result[2]) == 1
    finally:
        ep.close()
        reference.close()


@needs_c
def test_bad_arguments_are_refused_before_anything_is_protected() -> None:
    ep = Endpoint(accel=True, gso=True)
    try:
        send = rtpwire._sendloop.send_rtp
        args = [ep.tx.fileno(), ep.s.sockaddr, True, ep.s.ctx, rtpwire.PROTECT, 0x80, 102, 7, 1, 2, b""]
        with pytest.raises(ValueError, match="exceeds"):
            send(*args, [b"x" * 1489])
        with pytest.raises(TypeError):
            send(*args, [b"x", "not bytes"])
        with pytest.raises(TypeError):
            send(*args, iter([b"x"]))
        with pytest.raises(ValueError, match="sockaddr"):
            send(args[0], b"", *args[2:], [b"x"])
        with pytest.raises(TypeError):
            send(*args)
        # nothing was protected: the next packet is the first the session saw, and it decrypts
        assert send(*args, (b"y" * 50,)) == 50  # a tuple of payloads too
        inbound = pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_INBOUND))
        assert RtpPacket.parse(inbound.unprotect(ep.rx.recv(2048))).payload == b"y" * 50
    finally:
        ep.close()


@needs_c
def test_the_c_loop_sends_to_an_ipv6_viewer() -> None:
    try:
        c, py = Endpoint(accel=True, gso=True, family=socket.AF_INET6), Endpoint(accel=False, gso=True, family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        frame = program_packet(fragments(6000), 3000)
        for ep in (c, py):
            ep.send(frame)
        assert c.received(len(frame.payloads)) == py.received(len(frame.payloads))
        assert c.fallen_back == []
    finally:
        c.close()
        py.close()


def test_the_equal_fragments_packetizer_reassembles_to_the_nal_unit() -> None:
    nal = bytes([0x65]) + os.urandom(10_000)
    parts = EqualFragmentsH264._packetize_fu_a(nal)
    assert len({len(p) for p in parts[:-1]}) == 1 and len(parts[-1]) <= len(parts[0])
    assert parts[0][1] & 0x80 and parts[-1][1] & 0x40 and not any(p[1] & 0xC0 for p in parts[1:-1])
    assert bytes([(parts[0][0] & 0xE0) | (parts[0][1] & 0x1F)]) + b"".join(p[2:] for p in parts) == nal
    assert isinstance(SharedPacker()._packer, EqualFragmentsH264)


def test_the_sockaddr_of_ipv4_and_ipv6_peers() -> None:
    v4 = rtpwire.sockaddr(socket.AF_INET, ("127.0.0.1", 5004))
    assert len(v4) == 16 and v4[2:4] == (5004).to_bytes(2, "big") and v4[4:8] == bytes([127, 0, 0, 1])
    v6 = rtpwire.sockaddr(socket.AF_INET6, ("::1", 5004))
    assert len(v6) == 28 and v6[8:24] == socket.inet_pton(socket.AF_INET6, "::1")
    mapped = rtpwire.sockaddr(socket.AF_INET6, ("10.0.0.1", 5004))
    assert mapped[8:24] == socket.inet_pton(socket.AF_INET6, "::ffff:10.0.0.1")
    with pytest.raises(ValueError):
        rtpwire.sockaddr(socket.AF_UNIX, ("x", 1))


@pytest.mark.parametrize("accel", [True, False], ids=["c", "python"])
def test_sender_reports_carry_the_last_packet_times_and_the_counts(accel: bool) -> None:
    if accel and rtpwire._sendloop is None:
        pytest.skip("lmserver.media._sendloop is not built")
    ep = Endpoint(accel=accel, gso=True)
    try:
        ep.s.report(100.0)  # nothing sent yet: no report, the next one scheduled 0.5-1.5 s later
        assert ep.s.reports == 0 and 100.5 <= ep.s.next_report <= 101.5
        frame = program_packet(fragments(4000), 90_000)
        ep.send(frame, ntp=0x0123456789ABCDEF)
        ep.received(len(frame.payloads))
        ep.s.report(ep.s.next_report)
        inbound = pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_INBOUND))
        sr, sdes = RtcpPacket.parse(inbound.unprotect_rtcp(ep.rx.recv(2048)))
        assert isinstance(sr, RtcpSrPacket) and sr.ssrc == 0x11223344
        info = sr.sender_info
        assert (info.ntp_timestamp, info.rtp_timestamp) == (0x0123456789ABCDEF, 91_000)
        assert (info.packet_count, info.octet_count) == (len(frame.payloads), sum(map(len, frame.payloads)))
        assert sdes.chunks[0].ssrc == 0x11223344 and sdes.chunks[0].items == [(1, b"viewer-cname")]
        # what aiortc's RTT estimate from the receiver reports and its getStats() read
        assert ep.s.sender._RTCRtpSender__lsr == (0x0123456789ABCDEF >> 16) & 0xFFFFFFFF
        assert ep.s.sender._RTCRtpSender__packet_count == len(frame.payloads)
    finally:
        ep.close()


def test_the_c_loop_is_built_where_a_compiler_is() -> None:
    """setup.py builds the C loop as optional (an install without a compiler goes on): here, with one, it must be built."""
    if not (shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")) or not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        pytest.skip("no C compiler or Python headers here: the Python loop sends (slower)")
    assert rtpwire._sendloop is not None, "lmserver.media._sendloop was not built: see the output of pip install -e ."
    assert fastsend.ACCEL or os.environ.get("LMSERVER_SEND_LOOP", "").lower() == "python"
