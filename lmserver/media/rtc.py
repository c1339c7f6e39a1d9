"""aiortc peer connections for WHIP/WHEP, with the interop fixes measured in MEDIA_NOTES.md.

- ICE host candidates come from ``media.ice_host_addresses`` when set (aioice never offers
  127.0.0.1 on its own, so loopback needs it); no STUN server is contacted.
- The DTLS context also allows ECDHE-RSA suites (GStreamer's webrtcbin has an RSA certificate).
- FFmpeg's WHIP muxer never answers ICE consent checks: for that connection only, consent
  freshness is not enforced (the ingest watchdog ends a silent ingest instead).
- FFmpeg (with ``whip_flags=dtls_active``) starts a blocking DTLS handshake as soon as its own
  ICE check is answered, so it never answers our triggered check if that goes out late (a busy
  machine): ICE stayed "checking" until the 30 s connect watchdog. For that connection only, its
  authenticated nominating check is enough to use the pair, as an ICE-lite server would.
- aiortc's video jitter buffer hands a frame to the decoder only when the next frame's first packet
  arrives (a whole frame interval late): on the ingest's video receivers it is replaced by
  :class:`~lmserver.media.jitter.MarkerJitterBuffer`, which also releases a frame on its RTP marker bit
  (:func:`release_frames_on_marker`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Sequence

import aioice.ice
import aiortc
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import RTCCertificate
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription

from .jitter import MarkerJitterBuffer, remember

logger = logging.getLogger(__name__)

_original_get_host_addresses = aioice.ice.get_host_addresses
_host_addresses: list[str] = []


def set_ice_host_addresses(addresses: Sequence[str]) -> None:
    """Offer exactly these host candidate addresses (empty: the machine's own, as aioice does).

    aioice reads its address list from a module function; this replaces it process-wide once.
    """
    global _host_addresses
    _host_addresses = list(addresses)
    if aioice.ice.get_host_addresses is not _get_host_addresses:
        aioice.ice.get_host_addresses = _get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _host_addresses:
        return [a for a in _host_addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
    return _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)


_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:"
    b"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)


class _RsaFriendlyCertificate(RTCCertificate):
    """aiortc's certificate whose DTLS context also accepts peers that use RSA certificates."""

    def _create_ssl_context(self, srtp_profiles):  # type: ignore[no-untyped-def]
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(_CIPHERS)
        return ctx


def create_peer_connection() -> RTCPeerConnection:
    """A peer connection with no STUN/TURN servers and an RSA-tolerant DTLS context."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for cert in pc._RTCPeerConnection__certificates:  # type: ignore[attr-defined]
        cert.__class__ = _RsaFriendlyCertificate
    return pc


async def _no_consent_checks() -> None:
    return None


def _ice_connections(pc: RTCPeerConnection) -> list[aioice.ice.Connection]:
    """The aioice connections under a peer connection (one when bundled)."""
    out: list[aioice.ice.Connection] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is None:
            continue
        connection = dtls.transport._connection
        if all(c is not connection for c in out):
            out.append(connection)
    return out


def relax_consent(pc: RTCPeerConnection) -> int:
    """Disable ICE consent expiry for this connection only (call after setRemoteDescription).

    Returns how many ICE connections were relaxed.
    """
    connections = _ice_connections(pc)
    for connection in connections:
        connection.query_consent = _no_consent_checks
    return len(connections)


def trust_peer_nomination(pc: RTCPeerConnection) -> int:
    """Use a pair as soon as the (controlling) peer nominates it with an authenticated check, without
    waiting for our own triggered check to be answered (call after setRemoteDescription).

    The peer's check proved the path from it to us and our answer reaches it; FFmpeg's muxer stops
    answering checks once its DTLS handshake starts. Returns how many ICE connections were changed.
    """
    connections = _ice_connections(pc)
    for connection in connections:
        connection.check_incoming = _trusting_check_incoming(connection)
    return len(connections)


def _trusting_check_incoming(connection: aioice.ice.Connection):  # type: ignore[no-untyped-def]
    original = connection.check_incoming
    succeeded = aioice.ice.CandidatePair.State.SUCCEEDED

    def check_incoming(message, addr, protocol) -> None:  # type: ignore[no-untyped-def]
        original(message, addr, protocol)
        if "USE-CANDIDATE" not in message.attributes or connection.ice_controlling:
            return
        for pair in list(connection._check_list):
            if pair.protocol is protocol and pair.remote_addr == addr and pair.state != succeeded:
                task = pair.task
                connection.check_state(pair, succeeded)
                pair.nominated = True
                connection.check_complete(pair)  # ICE completes: one nominated pair per component
                if task is not None and task is not asyncio.current_task():
                    task.cancel()  # our triggered check may never be answered
                logger.info("ICE pair %s used on the peer's nomination", pair)
                return

    return check_incoming


#: aiortc versions whose receiver internals :func:`release_frames_on_marker` was checked against
#: (``RTCRtpReceiver.__jitter_buffer``, ``JitterBuffer._remove_frame``/``_packets``/``_origin``/``_prefetch``)
MARKER_RELEASE_AIORTC = ("1.16.",)
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_warned_versions: set[str] = set()


class AiortcChanged(RuntimeError):
    """aiortc's internals are not what an adjustment here was written for (pin aiortc or update rtc.py)."""


def release_frames_on_marker(pc: RTCPeerConnection) -> int:
    """Give this connection's video receivers a :class:`~lmserver.media.jitter.MarkerJitterBuffer`
    (call after setRemoteDescription, before media flows). Returns how many receivers were changed.

    Raises :class:`AiortcChanged` when aiortc's receiver no longer keeps a ``JitterBuffer`` with the
    expected internals where expected (an aiortc upgrade): the caller logs it as an error and goes on
    with aiortc's own buffer (a frame interval later), and tests/media/test_jitter.py fails. An aiortc
    version other than ``MARKER_RELEASE_AIORTC`` is logged once as a warning.
    """
    version = getattr(aiortc, "__version__", "?")
    if not version.startswith(MARKER_RELEASE_AIORTC) and version not in _warned_versions:
        _warned_versions.add(version)
        logger.warning("release_frames_on_marker: checked with aiortc %s, running %s (its internals are checked on each use)",
                       "/".join(MARKER_RELEASE_AIORTC), version)
    changed = 0
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind != "video" or not isinstance(receiver, RTCRtpReceiver):
            continue
        current = getattr(receiver, _JITTER_ATTR, None)
        if type(current) is MarkerJitterBuffer:
            continue
        if type(current) is not JitterBuffer or not all(
                hasattr(current, a) for a in ("_packets", "_origin", "_prefetch", "_capacity", "_remove_frame")):
            raise AiortcChanged(f"aiortc {version}: RTCRtpReceiver.{_JITTER_ATTR} is {type(current).__name__}, not a JitterBuffer")
        if current._origin is not None:
            raise AiortcChanged("release_frames_on_marker: packets already arrived on this receiver")
        buffer = MarkerJitterBuffer(capacity=current.capacity, prefetch=current._prefetch, is_video=True)
        setattr(receiver, _JITTER_ATTR, buffer)
        if receiver._track is not None:
            remember(receiver._track, buffer)
        changed += 1
    return changed


def prefer_h264(transceiver: RTCRtpTransceiver) -> None:
    """Offer/answer H.264 only on a sending video transceiver (before setRemoteDescription)."""
    caps = RTCRtpSender.getCapabilities("video")
    h264 = [c for c in caps.codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
    transceiver.setCodecPreferences(h264)


@dataclass(frozen=True)
class Offer:
    sdp: str
    has_video: bool
    has_audio: bool
    has_candidates: bool
    video_codecs: tuple[str, ...]


_H264_DEFAULT_FMTP = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"


def add_default_h264_fmtp(sdp: str) -> str:
    """Give H.264 payload types without ``a=fmtp`` the parameters aiortc requires.

    GStreamer's recvonly H.264 offers carry no fmtp, and aiortc only matches H.264 with
    packetization-mode=1 and profile-level-id 42001f/42e01f, so it would refuse them.
    """
    lines = sdp.splitlines()
    with_fmtp = {line.split(":", 1)[1].split(" ", 1)[0] for line in lines if line.startswith("a=fmtp:")}
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("a=rtpmap:") and " " in line and line.split(" ", 1)[1].upper().startswith("H264/"):
            pt = line[len("a=rtpmap:") :].split(" ", 1)[0]
            if pt not in with_fmtp:
                out.append(f"a=fmtp:{pt} {_H264_DEFAULT_FMTP}")
    return "\r\n".join(out) + "\r\n"


#: What aiortc raises on an offer it cannot use (no common codec, bad parameters, ...).
OFFER_ERRORS = (ValueError, AssertionError, KeyError, IndexError, InvalidAccessError, InvalidStateError, OperationError)


class SdpError(ValueError):
    """An SDP offer that cannot be used; the message says why."""


def check_offer(sdp: str, *, need_video: bool = True) -> Offer:
    """Parse and check an SDP offer; raises SdpError with the reason."""
    if not sdp.lstrip().startswith("v=0"):
        raise SdpError("malformed SDP offer: it must start with v=0")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc raises assorted errors on malformed input
        raise SdpError(f"malformed SDP offer: {exc}") from None
    kinds = [m.kind for m in parsed.media]
    if not parsed.media:
        raise SdpError("malformed SDP offer: no media section")
    has_video = "video" in kinds
    if need_video and not has_video:
        raise SdpError("the offer has no video: send a camera or screen track")
    for media in parsed.media:
        if media.kind in ("audio", "video"):
            ice = media.ice
            if ice is None or not ice.usernameFragment or not ice.password:
                raise SdpError("malformed SDP offer: missing ice-ufrag/ice-pwd")
            if media.dtls is None or not media.dtls.fingerprints:
                raise SdpError("malformed SDP offer: missing DTLS fingerprint")
    codecs = tuple(
        sorted({c.mimeType.split("/", 1)[1].upper() for m in parsed.media if m.kind == "video" for c in m.rtp.codecs})
    )
    return Offer(
        sdp=sdp,
        has_video=has_video,
        has_audio="audio" in kinds,
        has_candidates=any(m.ice_candidates for m in parsed.media),
        video_codecs=codecs,
    )


__all__ = [
    "AiortcChanged",
    "OFFER_ERRORS",
    "Offer",
    "SdpError",
    "add_default_h264_fmtp",
    "check_offer",
    "create_peer_connection",
    "prefer_h264",
    "relax_consent",
    "release_frames_on_marker",
    "set_ice_host_addresses",
    "trust_peer_nomination",
]
