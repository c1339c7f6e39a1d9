"""Putting a viewer's RTP on the wire: the C send loop, the same loop in Python, UDP segmentation offload.

:class:`~lmserver.media.fastsend.FastSender` decides what to send (per viewer state, history, reports);
this module holds the buffers and the loops that assemble, protect and send the datagrams. The C loop
(``_sendloop``, lmserver/media/_sendloop.c) is optional: ``setup.py`` builds it where a C compiler and the
Python headers are; :func:`send_py` does the same in Python (FastSender binds it as ``_send_py``).
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import sys
from typing import Any

import pylibsrtp
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

try:  # the send loop in C (built by ``pip install`` where a C compiler is present; see setup.py)
    from . import _sendloop
except ImportError:  # pragma: no cover - depends on the install
    _sendloop = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

HEADER = struct.Struct("!BBHII")
#: RTCP sender report: header (V=2, PT 200, 6 words), SSRC, NTP time, RTP timestamp, packet and octet counts
SR = struct.Struct("!BBHIQIII")
RTCP_C = _srtp_ffi.new("unsigned char[]", 1024)
RTCP = memoryview(_srtp_ffi.buffer(RTCP_C))

# The scratch buffer every viewer's packets are assembled, protected and sent from (the batch loop runs on
# one thread and sends synchronously, so one buffer per process serves all viewers).
SCRATCH_SIZE = 256 * 1024
SCRATCH_C = _srtp_ffi.new("unsigned char[]", SCRATCH_SIZE)
SCRATCH = memoryview(_srtp_ffi.buffer(SCRATCH_C))
_TRAILER = pylibsrtp.SRTP_MAX_TRAILER_LEN
_MAX_PACKET = 1500  # an RTP packet before SRTP, as the C loop's MAX_RTP (aiortc's packetizers stay below 1300 bytes of payload)
# UDP segmentation offload (Linux 4.18+): one sendmsg carries up to 64 datagrams of one size (the last may be
# shorter) and the kernel does the per-datagram work once; in software where the network card cannot.
_SOL_UDP = getattr(socket, "SOL_UDP", 17)
_UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
_GSO_SEGMENTS = 64
_GSO_BYTES = 60000  # under the 65507-byte limit of one UDP send
_NATIVE = sys.byteorder
_GSO_REFUSED = {errno.EINVAL, errno.EIO, errno.EOPNOTSUPP, errno.ENOPROTOOPT, errno.EMSGSIZE}


def gso_works() -> bool:
    """Whether this kernel segments UDP (checked once, on loopback)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            rx.bind(("127.0.0.1", 0))
            rx.settimeout(1.0)
            tx.sendmsg((bytes(300),), ((_SOL_UDP, _UDP_SEGMENT, (200).to_bytes(2, _NATIVE)),), 0, rx.getsockname())
            return len(rx.recv(2048)) == 200 and len(rx.recv(2048)) == 100
    except OSError:
        return False


#: UDP segmentation offload is used for the viewers' runs of equal-size packets
GSO = gso_works()
PROTECT = int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect")))


def sockaddr(family: int, addr: tuple[Any, ...]) -> bytes:
    """The packed ``struct sockaddr`` of a (host, port) address, for the C loop's sendto."""
    host, port = str(addr[0]), int(addr[1])
    if family == socket.AF_INET:
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_pton(socket.AF_INET, host) + bytes(8)
    if family == socket.AF_INET6:
        host, _, zone = host.partition("%")
        if ":" not in host:  # an IPv4 peer on a dual-stack socket
            host = "::ffff:" + host
        scope = int(addr[3]) if len(addr) > 3 else (int(zone) if zone.isdigit() else socket.if_nametoindex(zone) if zone else 0)
        flow = int(addr[2]) if len(addr) > 2 else 0
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flow) + socket.inet_pton(socket.AF_INET6, host)
                + struct.pack("=I", scope))
    raise ValueError(f"address family {family} is not IP")


def send_py(s: Any, payloads: list[bytes], seq: int, ts: int, ext: bytes) -> int:
    """The Python send loop (without the C module, or for a packet beyond its buffers; a test hook).

    The RTP packets are assembled back to back in the module's scratch buffer (header by ``pack_into``,
    extensions, the shared payload), each protected in place with the viewer's SRTP session and sent from
    there: a run of equal-size packets (the FU-A fragments of one NAL unit, a shorter last one allowed)
    goes out in one ``sendmsg`` with UDP segmentation offload. Returns the payload octets.
    """
    hl = 12 + len(ext)
    pack_into = HEADER.pack_into
    srtp, lenp = s.srtp
    protect = _srtp_lib.srtp_protect
    mv, base = SCRATCH, SCRATCH_C
    emit = s._emit
    b0, pt, ssrc = s.b0, s.pt, s.ssrc
    octets = 0
    # the run being assembled: [run_start, off) in the scratch buffer, run_n datagrams of run_seg bytes
    # (the last may be shorter: then run_closed)
    off = run_start = run_seg = run_n = 0
    run_closed = False
    last = len(payloads) - 1
    try:
        for i, payload in enumerate(payloads):
            n = hl + len(payload)
            if n > _MAX_PACKET:
                raise ValueError(f"an RTP packet of {n} bytes exceeds the SRTP buffer")
            if off + n + _TRAILER > SCRATCH_SIZE:  # the scratch buffer is full: send, start over
                if run_n:
                    emit(run_start, off, run_seg, run_n)
                off = run_start = run_n = 0
            pack_into(mv, off, b0, pt | 0x80 if i == last else pt, (seq + i) & 0xFFFF, ts, ssrc)
            mv[off + 12 : off + hl] = ext
            mv[off + hl : off + n] = payload
            lenp[0] = n
            if protect(srtp, base + off, lenp):
                raise pylibsrtp.Error("srtp_protect failed")
            size = lenp[0]
            if run_n and (run_closed or size > run_seg or run_n == _GSO_SEGMENTS
                          or off + size - run_start > _GSO_BYTES):
                emit(run_start, off, run_seg, run_n)
                run_n = 0
            if run_n == 0:
                run_start, run_seg, run_closed = off, size, False
            elif size < run_seg:
                run_closed = True
            run_n += 1
            off += size
            octets += n - hl
    finally:
        if run_n:
            emit(run_start, off, run_seg, run_n)
    return octets


def emit(s: Any, start: int, end: int, seg: int, count: int) -> None:
    """Send the datagrams in the scratch buffer's [start, end): ``count`` of ``seg`` bytes, the last maybe shorter."""
    data = SCRATCH[start:end]
    try:
        if count == 1:
            s.sendto(data, s.addr)
        elif s.gso:
            s.sendmsg((data,), ((_SOL_UDP, _UDP_SEGMENT, seg.to_bytes(2, _NATIVE)),), 0, s.addr)
        else:
            for a in range(0, end - start, seg):
                s.sendto(data[a : a + seg], s.addr)
        return
    except OSError as exc:
        if count > 1 and s.gso and exc.errno in _GSO_REFUSED:  # this route cannot segment: per datagram from now on
            logger.info("FastSender(%s): UDP segmentation offload refused (%s); sending datagram by datagram", s.kind, exc)
            s.gso = False
            emit(s, start, end, seg, count)
            return
    # EAGAIN and other errors: asyncio's transport buffers the datagrams (or reports the error to aioice)
    for a in range(0, end - start, seg):
        s.fallback(bytes(data[a : a + seg]), s.addr)
