"""The viewers' RTP send path: one batched send loop per program packet across all viewers.

aiortc's :class:`~aiortc.RTCRtpSender` runs one task per viewer: every program packet wakes each
viewer's task, which builds an ``RtpPacket`` object per payload, serializes its header extensions,
and awaits three coroutines down to ``sendto``. Profiled at 720p30 ~2 Mbit/s that was ~4.6 millicores
per viewer, most of it in that per-viewer, per-packet Python. Here :meth:`Fanout.publish_video
<lmserver.media.fanout.Fanout.publish_video>` puts the shared packet in every viewer's bounded queue and
then :func:`flush` drains all the queues in one loop. Per viewer and program packet, one call of the C
loop (``_sendloop.send_rtp``, lmserver/media/_sendloop.c) writes each RTP packet's header from the
viewer's state (SSRC, sequence number, timestamp offset, header-extension bytes precomputed from the
negotiated ids) before the shared payload in a scratch buffer, protects it in place with the viewer's
own libsrtp session (its keys and ROC; pylibsrtp's own ``srtp_protect``) and sends it on the viewer's UDP
socket of the selected ICE candidate pair: a run of equal-size packets (the FU-A fragments of one NAL
unit: :class:`~lmserver.media.fanout.EqualFragmentsH264` cuts them so) in one ``sendmsg`` with UDP
segmentation offload, the kernel cutting the datagrams. No task wake-up, no object per packet, no await.
The loops and their buffers are in :mod:`lmserver.media.rtpwire`: its :func:`~lmserver.media.rtpwire.send_py`
(bound as ``FastSender._send_py``) is the same loop in Python, used where the C module was not built (no
compiler at install) or ``LMSERVER_SEND_LOOP=python`` is set, and for a viewer behind a TURN relay.

RTCP sender reports go out from the same loop (:meth:`FastSender.report`, every 0.5-1.5 s per sender as
aiortc does, the NTP time and RTP timestamp of the last packet sent); NACKs are answered from this
module's history (:meth:`FastSender._retransmit`); PLI/FIR → the shared encoder's keyframe request.
What stays aiortc's: negotiation, ICE (consent checks, keep-alive), DTLS and the SRTP keys, incoming
RTCP (receiver reports, REMB), ``stop()`` and the BYE.

Why internals: aiortc has no public API for a sender fed by something other than its own per-sender
task. Everything that reaches into aiortc/aioice internals is in this module; the attributes are
checked at import (and at each viewer's start), failing with a clear message on another version.

Environment: ``LMSERVER_SEND_LOOP=python`` makes the Python loop send even where the C loop is built (to
compare, or to rule the C loop out when looking for a fault).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import time
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
from aiortc.rtp import RtcpByePacket, RtcpSdesPacket, RtcpSourceInfo, RtpPacket, wrap_rtx

from .rtpwire import GSO, HEADER, PROTECT, RTCP, RTCP_C, SR, _sendloop, emit, send_py
from .rtpwire import sockaddr as packed_sockaddr

if TYPE_CHECKING:
    from .fanout import Fanout, PacketQueue

logger = logging.getLogger(__name__)

#: aiortc / aioice versions whose internals this module was written against (checked at import)
TESTED = {"aiortc": "1.16.", "aioice": "0.13.", "pylibsrtp": "1.0."}

_P = "_RTCRtpSender__"
#: RTCRtpSender instance attributes used (set in its __init__; checked when a viewer starts)
SENDER_ATTRS = (f"{_P}rtp_started", f"{_P}rtp_exited", f"{_P}mid", f"{_P}rtp_header_extensions_map",
                f"{_P}rtx_payload_type", f"{_P}rtx_sequence_number", f"{_P}ntp_timestamp", f"{_P}rtp_timestamp",
                f"{_P}octet_count", f"{_P}packet_count", f"{_P}rtcp_started", f"{_P}rtcp_exited", f"{_P}lsr",
                f"{_P}lsr_time", f"{_P}cname", "_ssrc", "_rtx_ssrc")


def _check_versions() -> None:
    problems = []
    for name, module in (("aiortc", aiortc), ("aioice", aioice), ("pylibsrtp", pylibsrtp)):
        version = getattr(module, "__version__", "?")
        if not version.startswith(TESTED[name]):
            problems.append(f"{name} {version} (written for {TESTED[name]}x)")
    for cls, attr in ((RTCRtpSender, "_run_rtp"), (RTCRtpSender, "_run_rtcp"), (RTCRtpSender, "_send_rtcp"),
                      (RTCRtpSender, "_retransmit"), (RTCRtpSender, "_handle_rtcp_packet"),
                      (RTCRtpSender, "_send_keyframe"), (RTCDtlsTransport, "_send_rtp"),
                      (aioice.ice.Connection, "sendto"), (aioice.ice, "StunProtocol"), (_srtp_lib, "srtp_protect"),
                      (_srtp_lib, "srtp_protect_rtcp")):
        if not hasattr(cls, attr):
            problems.append(f"{getattr(cls, '__name__', cls)}.{attr} is missing")
    if problems:
        raise ImportError("lmserver.media.fastsend reaches into aiortc's RTCRtpSender and aioice internals and does "
                          "not support the installed versions: " + "; ".join(problems)
                          + ". Install the versions pinned in pyproject.toml.")


_check_versions()

#: the C send loop serves the viewers (built, and not switched off with LMSERVER_SEND_LOOP=python)
ACCEL = _sendloop is not None and os.environ.get("LMSERVER_SEND_LOOP", "").lower() != "python"
#: program packets kept per viewer for NACKs (about 2 s of video, 1.3 s of audio)
_HISTORY = 64

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
        #: the socket's sendmsg, used with UDP segmentation offload while ``gso`` is true
        self.sendmsg: Callable[..., int] = _unset_sendto
        self.gso = False
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
        #: what was sent, for NACKs: per program packet (first sequence number, timestamp, extension bytes, payloads)
        self.sent: collections.deque[tuple[int, int, bytes, list[bytes]]] = collections.deque(maxlen=_HISTORY)
        #: sent by the C loop (``_sendloop``): a plain UDP socket and the module built
        self.accel = False
        self.sock: Any = None
        self.sockaddr = b""
        self.ctx = 0
        self._session: Any = None
        self.packets = self.octets = 0
        self.last_ts = self.last_ntp = 0
        #: when the next RTCP sender report is due (time.monotonic(); sent from :func:`flush`)
        self.next_report = float("inf")
        self.reports = 0
        self.sdes = b""
        self.retransmitted = 0
        self.live = False
        self._done: asyncio.Future[None] | None = None
        self._dtls: RTCDtlsTransport | None = None
        missing = [a for a in SENDER_ATTRS if not hasattr(sender, a)]
        if missing:
            raise RuntimeError(f"aiortc's RTCRtpSender lacks {missing}: lmserver.media.fastsend needs aiortc {TESTED['aiortc']}x")
        sender._run_rtp = self._run  # type: ignore[method-assign]
        sender._run_rtcp = self._run_rtcp  # type: ignore[method-assign]
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
            self.sock = udp._sock
            self.sendto = udp._sock.sendto
            self.sendmsg = udp._sock.sendmsg
            self.gso = GSO
            self.fallback = udp.sendto
            self.backlog = udp.get_write_buffer_size
        else:  # e.g. a TURN relay: aioice wraps the datagram itself, later (so a copy of the reused buffer)
            loop = asyncio.get_running_loop()
            self.sendto = self.fallback = lambda data, addr: loop.create_task(  # type: ignore[assignment]
                protocol.send_data(bytes(data), addr))
        self.addr = pair.remote_addr
        # SRTP with the viewer's own session (keys, ROC), called without pylibsrtp's per-call wrapper:
        # its buffer copy, int* allocation and asserts cost ~3x the encryption itself.
        session = dtls._tx_srtp
        if not hasattr(session, "_srtp"):
            raise RuntimeError(f"pylibsrtp's Session lacks _srtp: fastsend needs pylibsrtp {TESTED['pylibsrtp']}x")
        self._session = session  # held: libsrtp's context must live as long as this sender uses it
        self.srtp = (session._srtp[0], _srtp_ffi.new("int *"))
        self.ctx = int(_srtp_ffi.cast("uintptr_t", session._srtp[0]))
        if _sendloop is not None and self.sock is not None and ACCEL:
            try:
                self.sockaddr = packed_sockaddr(self.sock.family, pair.remote_addr)
                self.accel = True
            except (OSError, ValueError) as exc:  # an address the C loop cannot take: the Python loop sends
                logger.info("FastSender(%s): %s; the Python send loop serves this viewer", self.kind, exc)
        self._dtls = dtls
        self.pt = codec.payloadType
        self.ssrc = sender._ssrc
        has_ext, self.ext_pre, self.ext_post, self.abs = extension_template(
            getattr(sender, f"{_P}rtp_header_extensions_map"), getattr(sender, f"{_P}mid"))
        self.b0 = 0x90 if has_ext else 0x80
        cname = getattr(sender, f"{_P}cname")
        if cname is not None:  # the SDES part of every sender report, as aiortc's (it never changes)
            self.sdes = bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(1, cname.encode("utf8"))])]))
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

    async def _run_rtcp(self) -> None:
        """Stands in for ``RTCRtpSender._run_rtcp``: the sender reports go out from :func:`flush` (no task and
        timer per sender); this only waits for the sender to stop and sends the BYE, as aiortc does."""
        sender = self.sender
        getattr(sender, f"{_P}rtcp_started").set()
        self.next_report = time.monotonic() + 0.5 + random.random()
        try:
            await asyncio.get_running_loop().create_future()  # until RTCRtpSender.stop() cancels this task
        except asyncio.CancelledError:
            pass
        finally:
            self.next_report = float("inf")
            try:
                await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
            finally:
                getattr(sender, f"{_P}rtcp_exited").set()

    def report(self, now: float) -> None:
        """Send an RTCP sender report (SR + SDES, what aiortc sends, every 0.5-1.5 s): the NTP time and RTP
        timestamp of the last packet sent, the counts. Browsers sync audio and video with it."""
        self.next_report = now + 0.5 + random.random()
        if not self.packets:
            return
        ntp, ts, packets, octets = self.last_ntp, self.last_ts, self.packets & 0xFFFFFFFF, self.octets & 0xFFFFFFFF
        sender = self.sender  # what aiortc's RTT estimate (from receiver reports) and getStats() read
        sender._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF  # type: ignore[attr-defined]
        sender._RTCRtpSender__lsr_time = time.time()  # type: ignore[attr-defined]
        sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = ts  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count = self.packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count = self.octets  # type: ignore[attr-defined]
        data = SR.pack(0x80, 200, 6, self.ssrc, ntp, ts, packets, octets) + self.sdes
        n = len(data)
        RTCP[:n] = data
        lenp = self.srtp[1]
        lenp[0] = n
        if _srtp_lib.srtp_protect_rtcp(self.srtp[0], RTCP_C, lenp):
            raise pylibsrtp.Error("srtp_protect_rtcp failed")
        packet = RTCP[: lenp[0]]
        self.reports += 1
        try:
            self.sendto(packet, self.addr)
        except OSError:
            self.fallback(bytes(packet), self.addr)

    def send_queued(self, abs3: bytes, ntp: int) -> None:
        """Send everything in this viewer's queue (called by the fan-out's batch loop).

        Per program packet: its shared RTP payloads get this viewer's header (sequence number, timestamp,
        SSRC, extensions), are protected with the viewer's SRTP session and sent on its socket, by the C
        loop of ``_sendloop`` when it is built, else by :meth:`_send_py`. The history for NACKs keeps one
        entry per program packet.
        """
        items = self.items
        ext = self.ext_pre + abs3 + self.ext_post if self.abs else self.ext_pre
        sent, seq, origin = self.sent, self.seq, self.ts_origin
        packer_pack = self.packer.pack
        accel = self.accel
        if accel:
            fd, sockaddr, gso, ctx, b0, pt, ssrc = self.sock.fileno(), self.sockaddr, self.gso, self.ctx, self.b0, self.pt, self.ssrc
            send_rtp = _sendloop.send_rtp
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
                if accel:
                    try:
                        result = send_rtp(fd, sockaddr, gso, ctx, PROTECT, b0, pt, seq, ts, ssrc, ext, payloads)
                    except ValueError:  # beyond the C loop's buffers (a huge keyframe): the Python loop cuts it up
                        result = self._send_py(payloads, seq, ts, ext)
                    if result.__class__ is not int:
                        result = self._unsent(result, payloads)
                        gso = self.gso
                else:
                    result = self._send_py(payloads, seq, ts, ext)
                sent.append((seq, ts, ext, payloads))
                seq = (seq + len(payloads)) & 0xFFFF
                packets += len(payloads)
                octets += result
        finally:
            self.seq = seq
            if packets:
                self.packets += packets
                self.octets += octets
                self.last_ts = ts
                self.last_ntp = ntp  # for the next sender report

    def _unsent(self, failure: tuple[int, bool, list[bytes]], payloads: list[bytes]) -> int:
        """After the C loop could not send everything: the rest goes to asyncio's transport (it buffers on
        EAGAIN and reports other errors to aioice); a refused segmentation offload is not tried again."""
        err, refused, rest = failure
        if refused and self.gso:
            logger.info("FastSender(%s): UDP segmentation offload refused; sending datagram by datagram", self.kind)
            self.gso = False
        if rest:
            logger.debug("FastSender(%s): %s; %d datagrams to asyncio's transport", self.kind, os.strerror(err), len(rest))
        for datagram in rest:
            self.fallback(datagram, self.addr)
        return sum(map(len, payloads))

    # the Python send loop (rtpwire.py): the same as the C loop, with this viewer's socket hooks
    _send_py = send_py
    _emit = emit

    def clear_packet(self, sequence_number: int) -> bytes | None:
        """The RTP packet (before SRTP) sent with this sequence number, if still in the history."""
        for first, ts, ext, payloads in reversed(self.sent):
            i = (sequence_number - first) & 0xFFFF
            if i < len(payloads):
                mpt = self.pt | 0x80 if i == len(payloads) - 1 else self.pt
                return HEADER.pack(self.b0, mpt, sequence_number, ts, self.ssrc) + ext + payloads[i]
        return None

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
    """One batch: every live viewer with queued packets and no socket backlog sends them now; the viewers
    whose RTCP sender report is due send it."""
    ntp = clock.current_ntp_time()
    abs3 = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
    now = time.monotonic()
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
        if s.next_report <= now and s.live:
            try:
                s.report(now)
            except Exception:
                logger.exception("FastSender(%s): the sender report failed", s.kind)
