"""The viewers' RTP send path: one batched send loop per program packet across all viewers.

aiortc's :class:`~aiortc.RTCRtpSender` runs one task per viewer: every program packet wakes each
viewer's task, which builds an ``RtpPacket`` object per payload, serializes its header extensions,
and awaits three coroutines down to ``sendto``. Profiled at 720p30 ~2 Mbit/s that was ~4.6 millicores
per viewer, most of it in that per-viewer, per-packet Python (the SRTP and ``sendto`` themselves are
a minority). Here :meth:`Fanout.publish_video <lmserver.media.fanout.Fanout.publish_video>` puts the
shared packet in every viewer's bounded queue and then drains all the queues in one loop: the RTP
header is packed with ``struct`` from per-viewer state (SSRC, sequence number, timestamp offset,
header-extension bytes precomputed from the negotiated ids), joined to the shared payload, protected
with the viewer's own SRTP session (its keys and ROC) and handed to the viewer's UDP socket of the
selected ICE candidate pair. No task wake-up, no object per packet, no await.

What stays aiortc's: negotiation, ICE (consent checks, keep-alive), DTLS and the SRTP keys, RTCP
(sender reports: the counters they read are kept current here; NACK → :meth:`FastSender._retransmit`
from this module's history; PLI/FIR → the shared encoder's keyframe request; REMB), ``stop()``.

Why internals: aiortc has no public API for a sender fed by something other than its own per-sender
task. Everything that reaches into aiortc/aioice internals is in this module; the attributes are
checked at import (and at each viewer's start), failing with a clear message on another version.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from typing import TYPE_CHECKING, Any, Callable, Iterable

import aioice
import aioice.ice
import aiortc
import pylibsrtp
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib
from aiortc import clock
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket, wrap_rtx

if TYPE_CHECKING:
    from .fanout import Fanout, PacketQueue

logger = logging.getLogger(__name__)

#: aiortc / aioice versions whose internals this module was written against (checked at import)
TESTED = {"aiortc": "1.16.", "aioice": "0.13.", "pylibsrtp": "1.0."}

_P = "_RTCRtpSender__"
#: RTCRtpSender instance attributes used (set in its __init__; checked when a viewer starts)
SENDER_ATTRS = (f"{_P}rtp_started", f"{_P}rtp_exited", f"{_P}mid", f"{_P}rtp_header_extensions_map",
                f"{_P}rtx_payload_type", f"{_P}rtx_sequence_number", f"{_P}ntp_timestamp", f"{_P}rtp_timestamp",
                f"{_P}octet_count", f"{_P}packet_count", "_ssrc", "_rtx_ssrc")


def _check_versions() -> None:
    problems = []
    for name, module in (("aiortc", aiortc), ("aioice", aioice), ("pylibsrtp", pylibsrtp)):
        version = getattr(module, "__version__", "?")
        if not version.startswith(TESTED[name]):
            problems.append(f"{name} {version} (written for {TESTED[name]}x)")
    for cls, attr in ((RTCRtpSender, "_run_rtp"), (RTCRtpSender, "_retransmit"), (RTCRtpSender, "_handle_rtcp_packet"),
                      (RTCRtpSender, "_send_keyframe"), (RTCDtlsTransport, "_send_rtp"),
                      (aioice.ice.Connection, "sendto"), (aioice.ice, "StunProtocol"), (_srtp_lib, "srtp_protect")):
        if not hasattr(cls, attr):
            problems.append(f"{getattr(cls, '__name__', cls)}.{attr} is missing")
    if problems:
        raise ImportError("lmserver.media.fastsend reaches into aiortc's RTCRtpSender and aioice internals and does "
                          "not support the installed versions: " + "; ".join(problems)
                          + ". Install the versions pinned in pyproject.toml.")


_check_versions()

_HEADER = struct.Struct("!BBHII")
_SENTINEL = b"\xa5\xc3\xe1"  # a 3-byte abs-send-time value no mid (ASCII) contains


def extension_template(extmap: Any, mid: str | None) -> tuple[bool, bytes, bytes, bool]:
    """(has extension, bytes before abs-send-time, bytes after, has abs-send-time) for a viewer.

    Serialized by aiortc itself with a sentinel abs-send-time, so the bytes are exactly aiortc's.
    """
    probe = RtpPacket(payload_type=0, sequence_number=0, timestamp=0)
    probe.extensions.mid = mid
    probe.extensions.abs_send_time = int.from_bytes(_SENTINEL, "big")
    data = probe.serialize(extmap)
    if not data[0] & 0x10:
        return False, b"", b"", False
    ext = data[12:]
    i = ext.find(_SENTINEL)
    if i < 0:
        return True, ext, b"", False
    return True, ext[:i], ext[i + 3 :], True


class FastSender:
    """Replaces one RTCRtpSender's RTP task: the :class:`Fanout` sends for it in its batched loop.

    Test hooks (the viewer's socket, not aiortc): ``sendto(data, addr)`` is the UDP socket's (``data`` is a
    view of a buffer reused for the next packet: copy it to keep it);
    ``backlog()`` returns the bytes the socket could not take yet (a viewer with a backlog is skipped
    in a batch: its bounded queue fills and skips to the next keyframe, the others are not slowed).
    """

    def __init__(self, sender: RTCRtpSender, kind: str, queue: "PacketQueue", fanout: "Fanout") -> None:
        self.sender = sender
        self.kind = kind
        self.queue = queue
        self.items = queue._items
        self.fanout = fanout
        self.packer: Any = None
        self.sendto: Callable[[bytes, Any], None] = _unset_sendto
        self.backlog: Callable[[], int] = lambda: 0
        self.addr: Any = None
        self.fallback: Callable[[bytes, Any], None] = _unset_sendto
        self.srtp: tuple[Any, ...] = ()
        self.seq = random.getrandbits(16) % 32768  # lower half, like aiortc (no early wraparound)
        self.ts_origin = random.getrandbits(32)
        self.b0 = 0x80
        self.pt = 0
        self.ssrc = 0
        self.ext_pre = self.ext_post = b""
        self.abs = False
        #: per sequence number % RTP_HISTORY_SIZE: (seq, marker|pt, timestamp, extension bytes, payload)
        self.history: list[tuple[int, int, int, bytes, bytes] | None] = [None] * RTP_HISTORY_SIZE
        self.packets = self.octets = 0
        self.last_ts = 0
        self.retransmitted = 0
        self.live = False
        self._done: asyncio.Future[None] | None = None
        self._dtls: RTCDtlsTransport | None = None
        missing = [a for a in SENDER_ATTRS if not hasattr(sender, a)]
        if missing:
            raise RuntimeError(f"aiortc's RTCRtpSender lacks {missing}: lmserver.media.fastsend needs aiortc {TESTED['aiortc']}x")
        sender._run_rtp = self._run  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        sender._lmserver_fast = self  # type: ignore[attr-defined]

    def _setup(self, codec: Any) -> None:
        sender = self.sender
        dtls = sender.transport
        if dtls._state != DtlsState.CONNECTED or dtls._tx_srtp is None:
            raise ConnectionError("the viewer's DTLS transport is not connected")
        connection = dtls.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("the viewer's ICE connection has no selected pair")
        protocol = pair.protocol
        if isinstance(protocol, aioice.ice.StunProtocol) and getattr(protocol.transport, "_sock", None) is not None:
            udp = protocol.transport
            # Straight to the socket; asyncio's transport takes over when the socket cannot (it buffers
            # on EAGAIN, which backlog() then reports, and reports other errors to aioice).
            self.sendto = udp._sock.sendto
            self.fallback = udp.sendto
            self.backlog = udp.get_write_buffer_size
        else:  # e.g. a TURN relay: aioice wraps the datagram itself, later (so a copy of the reused buffer)
            loop = asyncio.get_running_loop()
            self.sendto = self.fallback = lambda data, addr: loop.create_task(  # type: ignore[assignment]
                protocol.send_data(bytes(data), addr))
        self.addr = pair.remote_addr
        # SRTP with the viewer's own session (keys, ROC), called without pylibsrtp's per-call wrapper:
        # its buffer check, int* allocation and asserts cost ~3x the encryption itself.
        session = dtls._tx_srtp
        if not all(hasattr(session, a) for a in ("_srtp", "_cdata", "_buffer")):
            raise RuntimeError(f"pylibsrtp's Session lacks _srtp/_cdata/_buffer: fastsend needs pylibsrtp {TESTED['pylibsrtp']}x")
        self.srtp = (session._srtp[0], session._cdata, memoryview(session._buffer), _srtp_ffi.new("int *"),
                     len(session._buffer) - pylibsrtp.SRTP_MAX_TRAILER_LEN)
        self._dtls = dtls
        self.pt = codec.payloadType
        self.ssrc = sender._ssrc
        has_ext, self.ext_pre, self.ext_post, self.abs = extension_template(
            getattr(sender, f"{_P}rtp_header_extensions_map"), getattr(sender, f"{_P}mid"))
        self.b0 = 0x90 if has_ext else 0x80
        self.packer = self.fanout.packer_for(self.kind, codec)
        dtls.on("statechange", self._on_dtls_state)

    def _on_dtls_state(self) -> None:
        if self._dtls is not None and self._dtls._state != DtlsState.CONNECTED:
            self.live = False
            if self._done is not None and not self._done.done():
                self._done.set_result(None)

    async def _run(self, codec: Any) -> None:
        """Stands in for ``RTCRtpSender._run_rtp``: registers with the fan-out until the sender stops."""
        sender = self.sender
        getattr(sender, f"{_P}rtp_started").set()
        self._done = asyncio.get_running_loop().create_future()
        try:
            self._setup(codec)
            self.live = True
            self.fanout._add_sender(self)
            await self._done
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception:
            logger.exception("FastSender(%s): could not start", self.kind)
        finally:
            self.live = False
            self.fanout._remove_sender(self)
            track = sender.track
            if track is not None:
                track.stop()
            getattr(sender, f"{_P}rtp_exited").set()

    def send_queued(self, abs3: bytes, ntp: int) -> None:
        """Send everything in this viewer's queue (called by the fan-out's batch loop).

        Each RTP packet is assembled in place in the SRTP session's own buffer (header by ``pack_into``,
        extensions, the shared payload), protected there and sent from there: no bytes object per packet.
        """
        items = self.items
        ext = self.ext_pre + abs3 + self.ext_post if self.abs else self.ext_pre
        hl = 12 + len(ext)
        pack_into, sendto, addr = _HEADER.pack_into, self.sendto, self.addr
        srtp, cdata, mv, lenp, limit = self.srtp
        protect = _srtp_lib.srtp_protect
        # The buffer is the session's (aiortc's RTCP uses it between batches): the extensions are written once
        # a batch; SRTP (AES-CM or GCM, no header-extension encryption) changes only the payload and the tag.
        mv[12:hl] = ext
        history, seq, b0, pt, ssrc, origin = self.history, self.seq, self.b0, self.pt, self.ssrc, self.ts_origin
        packer_pack = self.packer.pack
        packets = octets = 0
        ts = self.last_ts
        try:
            while items:
                packet = items.popleft()
                if packet is None:  # the queue was closed
                    items.append(None)
                    self.live = False
                    break
                payloads, timestamp = packer_pack(packet)
                ts = (timestamp + origin) & 0xFFFFFFFF
                last = len(payloads) - 1
                for i, payload in enumerate(payloads):
                    n = hl + len(payload)
                    if n > limit:
                        raise ValueError(f"an RTP packet of {n} bytes exceeds the SRTP buffer")
                    mpt = pt | 0x80 if i == last else pt
                    history[seq % RTP_HISTORY_SIZE] = (seq, mpt, ts, ext, payload)
                    pack_into(mv, 0, b0, mpt, seq, ts, ssrc)
                    mv[hl:n] = payload
                    lenp[0] = n
                    if protect(srtp, cdata, lenp):
                        raise pylibsrtp.Error("srtp_protect failed")
                    try:
                        sendto(mv[: lenp[0]], addr)
                    except OSError:  # EAGAIN and errors: asyncio's transport buffers or reports them
                        self.fallback(bytes(mv[: lenp[0]]), addr)
                    seq = (seq + 1) & 0xFFFF
                    octets += n - hl
                packets += len(payloads)
        finally:
            self.seq = seq
            if packets:
                self.packets += packets
                self.octets += octets
                self.last_ts = ts
                sender = self.sender  # what aiortc's RTCP sender reports read
                sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
                sender._RTCRtpSender__rtp_timestamp = ts  # type: ignore[attr-defined]
                sender._RTCRtpSender__packet_count = self.packets  # type: ignore[attr-defined]
                sender._RTCRtpSender__octet_count = self.octets  # type: ignore[attr-defined]

    def clear_packet(self, sequence_number: int) -> bytes | None:
        """The RTP packet (before SRTP) sent with this sequence number, if still in the history."""
        entry = self.history[sequence_number % RTP_HISTORY_SIZE]
        if entry is None or entry[0] != sequence_number:
            return None
        seq, mpt, ts, ext, payload = entry
        return _HEADER.pack(self.b0, mpt, seq, ts, self.ssrc) + ext + payload

    async def _retransmit(self, sequence_number: int) -> None:
        """Stands in for ``RTCRtpSender._retransmit`` (NACK): resend from this viewer's history, as RTX if negotiated."""
        clear = self.clear_packet(sequence_number)
        if clear is None or not self.live:
            return
        sender = self.sender
        rtx_pt = getattr(sender, f"{_P}rtx_payload_type")
        extmap = getattr(sender, f"{_P}rtp_header_extensions_map")
        if rtx_pt is not None:
            rtx_seq = getattr(sender, f"{_P}rtx_sequence_number")
            packet = wrap_rtx(RtpPacket.parse(clear, extmap), payload_type=rtx_pt, sequence_number=rtx_seq,
                              ssrc=sender._rtx_ssrc)
            setattr(sender, f"{_P}rtx_sequence_number", (rtx_seq + 1) & 0xFFFF)
            clear = packet.serialize(extmap)
        self.retransmitted += 1
        await sender.transport._send_rtp(clear)


def fast_sender(sender: RTCRtpSender) -> FastSender | None:
    """The FastSender that sends for an aiortc sender (None if it sends on its own)."""
    return getattr(sender, "_lmserver_fast", None)


def _unset_sendto(data: bytes, addr: Any) -> None:
    raise ConnectionError("not connected")


def flush(senders: Iterable[FastSender]) -> None:
    """One batch: every live viewer with queued packets and no socket backlog sends them now."""
    ntp = clock.current_ntp_time()
    abs3 = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
    for s in senders:
        if s.items and s.live and not s.backlog():
            try:
                s.send_queued(abs3, ntp)
            except Exception:  # one viewer's failure must not stop the others
                logger.exception("FastSender(%s): sending failed; the viewer is dropped", s.kind)
                s.live = False
                s.items.clear()
                if s._done is not None and not s._done.done():
                    s._done.set_result(None)
