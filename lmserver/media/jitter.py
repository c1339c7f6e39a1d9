"""A video jitter buffer for the ingest that hands a frame to the decoder as soon as it is complete.

aiortc's video ``JitterBuffer`` (``aiortc/jitterbuffer.py``) knows a frame is complete only when the first
packet of the *next* frame arrives (another RTP timestamp): every ingest frame waited one frame interval
(33 ms at 30 fps) before it was decoded. RTP says more: the marker bit is set on the last packet of a video
frame (H.264: the last packet of an access unit, RFC 6184 §5.1; VP8: the last packet of a frame, RFC 7741
§4.1). :class:`MarkerJitterBuffer` releases a frame when the packet with the marker bit has arrived *and*
every packet from the frame's first one up to it is present (no gap); otherwise it behaves exactly like
aiortc's buffer, which stays the fall-back:

- a publisher that never sets the marker bit: frames are released when the next frame begins (aiortc's rule);
- a lost packet: nothing is released until it arrives (NACK/RTX) or aiortc's overflow handling skips it and
  asks for a keyframe (PLI) — no partial frame reaches the decoder;
- reordering, duplicates, late packets and sequence-number wrap-around are aiortc's handling unchanged;
- a publisher whose marker bit turns out not to end frames (a packet with the frame's timestamp follows a
  marked one) is not trusted again on this connection: the old rule applies from then on.

It also records, per released frame, when its first and last packets were received and when it was released
(``time.perf_counter()``; "received" is when the receiver handed the packet to the buffer, after SRTP and
depayloading). The program reads these with :func:`frame_times` for the stage breakdown in ``stream.health``.

:func:`lmserver.media.rtc.release_frames_on_marker` installs it on an ingest connection's video receivers.
"""

from __future__ import annotations

import collections
import time
import weakref
from typing import Any, Optional

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

#: how many released frames keep their receive times until the decoded frame is matched (frames decode in order)
TIMES_KEPT = 32


class TimedFrame(JitterFrame):
    """An encoded frame with the receive times of its first and last packet and its release time."""

    def __init__(self, data: bytes, timestamp: int, first: float, last: float, released: float) -> None:
        super().__init__(data, timestamp)
        self.first, self.last, self.released = first, last, released


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer that also releases a frame on its marker bit (see the module)."""

    def __init__(self, capacity: int = 512, prefetch: int = 0, is_video: bool = True) -> None:
        super().__init__(capacity=capacity, prefetch=prefetch, is_video=is_video)
        #: False once the publisher set the marker bit on a packet that did not end its frame
        self.marker_trusted = True
        self.released_on_marker = 0
        self.released_on_next = 0
        #: released frames (their ``timestamp`` is rewritten by the receiver's timestamp mapper, which
        #: is also the decoded frame's ``pts``), oldest first; see :meth:`times_for`
        self.recent: collections.deque[TimedFrame] = collections.deque(maxlen=TIMES_KEPT)
        # the last packet of the last frame released on its marker: (sequence number, RTP timestamp)
        self._last_marker: tuple[int, int] | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, Optional[JitterFrame]]:
        packet._lm_received = time.perf_counter()  # type: ignore[attr-defined]
        last = self._last_marker
        if last is not None and packet.sequence_number == uint16_add(last[0], 1):
            self._last_marker = None
            if packet.timestamp == last[1]:
                # the marked packet did not end its frame: that frame went out partial (the decoder
                # errs, aiortc asks for a keyframe); do not trust this publisher's marker bit again
                self.marker_trusted = False
        return super().add(packet)

    def _remove_frame(self, sequence_number: int) -> Optional[JitterFrame]:
        assert self._origin is not None
        packets: list[RtpPacket] = []
        timestamp = None
        frames = 0
        frame: Optional[TimedFrame] = None
        remove = 0
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                break
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # aiortc's rule: the next frame began, so the previous one is complete
                if frame is None:
                    frame = self._frame(packets, timestamp)
                    remove = count
                frames += 1
                if frames >= self._prefetch:
                    self.remove(remove)
                    self.released_on_next += 1
                    return frame
                packets = []
                timestamp = packet.timestamp
            packets.append(packet)
            if packet.marker and self.marker_trusted and frame is None and self._prefetch == 0:
                # the frame's last packet, and every one before it since the frame's first: complete now
                frame = self._frame(packets, timestamp)
                self.remove(count + 1)
                self.released_on_marker += 1
                self._last_marker = (packet.sequence_number, packet.timestamp)
                return frame
        return None

    def _frame(self, packets: list[RtpPacket], timestamp: int) -> TimedFrame:
        received = [getattr(p, "_lm_received", 0.0) for p in packets]
        frame = TimedFrame(b"".join(p._data for p in packets), timestamp,  # type: ignore[attr-defined]
                           min(received), max(received), time.perf_counter())
        self.recent.append(frame)
        return frame

    def times_for(self, pts: int | None) -> TimedFrame | None:
        """The released frame whose (mapped) timestamp is ``pts``, dropping older ones (None: not known)."""
        if pts is None:
            return None
        recent = self.recent
        while recent:
            frame = recent.popleft()
            if frame.timestamp == pts:
                return frame
        return None


_buffers: "weakref.WeakKeyDictionary[Any, MarkerJitterBuffer]" = weakref.WeakKeyDictionary()


def remember(track: Any, buffer: MarkerJitterBuffer) -> None:
    """Note which buffer feeds ``track`` (a receiver's remote track), for :func:`frame_times`."""
    _buffers[track] = buffer


def frame_times(track: Any, pts: int | None) -> TimedFrame | None:
    """Receive and release times of the decoded frame ``pts`` of ``track`` (None: not an ingest
    track with a :class:`MarkerJitterBuffer`, or the frame is not known)."""
    try:
        buffer = _buffers.get(track)
    except TypeError:  # not weak-referenceable: not a receiver's track
        return None
    return buffer.times_for(pts) if buffer is not None else None
