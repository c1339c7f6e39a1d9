"""What an ingest is (the studio's one incoming stream, WHIP or capture) and how long it may stay silent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaPlayer

from .program import Program

if TYPE_CHECKING:
    from ..live import LiveSession


#: An ingest that sends no video for this long is considered dropped, seconds. "Video" is video
#: RTP packets received (or decoded frames, for a capture ingest): a starved decoder, or one waiting
#: for a keyframe (FFmpeg's WHIP muxer ignores keyframe requests), is not a dropped publisher.
MEDIA_TIMEOUT = 10.0
#: An ingest or viewer that has not connected after this long is closed, seconds.
CONNECT_TIMEOUT = 30.0


@dataclass
class Ingest:
    id: str
    kind: str  # "whip" or "capture"
    session: "LiveSession"
    program: Program
    pc: RTCPeerConnection | None = None
    player: MediaPlayer | None = None
    client: str = ""
    started: float = field(default_factory=time.monotonic)
    relaxed_consent: bool = False
    codec: str = ""
    _last_stats: tuple[float, int, int, int] | None = None  # time, bytes, packets received, lost
    #: sha256 of the bearer token the publisher sent (None: published with a staff session, or capture);
    #: DELETE/PATCH of the resource must send the same token (or come from staff with show.run)
    publisher_digest: bytes | None = None
    #: sha256 of the stream key this ingest runs under; when the stored key differs, the ingest ends
    key_digest: bytes | None = None
    #: video RTP packets received so far, and when that count last grew (liveness of a WHIP ingest)
    video_packets: int = 0
    last_packet_at: float | None = None
