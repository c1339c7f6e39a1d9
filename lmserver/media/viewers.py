"""A WHEP viewer's peer connection fed by the program's shared packets (used in and out of process)."""

from __future__ import annotations

import os
from typing import Callable

from aiortc import RTCPeerConnection, RTCSessionDescription

from ..errors import BadRequest
from .fanout import Fanout, PacketQueue, PacketTrack
from .fastsend import FastSender
from .rtc import OFFER_ERRORS, Offer, create_peer_connection, prefer_h264

#: Set to "1" in the environment: aiortc's own RTCRtpSender task per viewer instead of the batched loop; only
#: for comparing the two in a benchmark (``bench/media.py viewers --aiortc-sender``; viewer processes inherit it).
AIORTC_SENDER_ENV = "BENCH_AIORTC_SENDER"


async def answer_viewer(
    offer: Offer, fanout: Fanout, request_keyframe: Callable[[], None]
) -> tuple[RTCPeerConnection, PacketQueue, PacketQueue, str]:
    """Answer a viewer's offer: H.264 negotiated (preferences set before setRemoteDescription),
    the program's packets sent as they are by the fan-out's batched loop (:class:`FastSender`),
    PLI/FIR routed to the shared encoder.

    Returns (peer connection, video queue, audio queue, SDP answer); raises BadRequest.
    """
    batched = os.environ.get(AIORTC_SENDER_ENV) != "1"
    pc = create_peer_connection()
    video_q, audio_q = fanout.subscribe()
    try:
        video_t = pc.addTransceiver(PacketTrack("video", video_q), direction="sendonly")
        prefer_h264(video_t)  # before setRemoteDescription: codecs are negotiated inside it
        # A viewer's PLI/FIR asks the shared encoder for a keyframe (rate-limited there).
        video_t.sender._send_keyframe = request_keyframe  # type: ignore[method-assign]
        if batched:  # the fan-out sends for this viewer in its batch (packetized once for every viewer)
            FastSender(video_t.sender, "video", video_q, fanout)
        else:  # aiortc's own per-viewer task reads the queue (packetized once: the shared packer)
            video_t.sender._RTCRtpSender__encoder = fanout.packer  # type: ignore[attr-defined]
        if offer.has_audio:
            audio_t = pc.addTransceiver(PacketTrack("audio", audio_q), direction="sendonly")
            if batched:
                FastSender(audio_t.sender, "audio", audio_q, fanout)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        except OFFER_ERRORS as exc:
            raise BadRequest(f"the offer could not be used ({exc or type(exc).__name__}): the viewer must accept "
                             "H.264 constrained baseline (42e01f) with packetization-mode=1") from None
        codecs = video_t._codecs
        if not codecs or codecs[0].mimeType.lower() != "video/h264":
            raise BadRequest("the viewer must accept H.264 (constrained baseline 42e01f, packetization-mode=1)")
        await pc.setLocalDescription(await pc.createAnswer())
    except BaseException:
        fanout.unsubscribe(video_q, audio_q)
        await pc.close()
        raise
    return pc, video_q, audio_q, pc.localDescription.sdp
