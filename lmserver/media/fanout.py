"""Encode once, send to many: the program's packets shared by every viewer.

Each viewer has one :class:`PacketTrack` per kind, backed by a bounded :class:`PacketQueue`. The
same ``av.Packet`` object goes to every viewer; its RTP payloads are computed once (:class:`SharedPacker`).
A viewer's sender is a :class:`~lmserver.media.fastsend.FastSender`: each publish puts the packet in
every queue, then one batched loop sends what the queues hold (see fastsend.py). A viewer whose queue
fills up (it fell behind: its socket had a backlog) drops what it holds and skips to the next keyframe,
asking the shared encoder for one; the others are not slowed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, Callable

import av
from aiortc.codecs import get_encoder
from aiortc.codecs.h264 import FU_A_HEADER_SIZE, NAL_TYPE_FU_A, PACKET_MAX, H264Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .fastsend import flush

if TYPE_CHECKING:
    from .fastsend import FastSender

logger = logging.getLogger(__name__)


class PacketQueue:
    """A bounded packet queue for one consumer. Video queues restart at a keyframe."""

    def __init__(self, kind: str, max_packets: int, request_keyframe: Callable[[], None]) -> None:
        self.kind = kind
        self.max_packets = max(2, max_packets)
        self._request_keyframe = request_keyframe
        self._items: collections.deque[av.Packet | None] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.waiting_for_keyframe = kind == "video"
        self.dropped = 0
        self.skips = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, packet: av.Packet) -> None:
        if self.closed:
            return
        if self.kind == "video":
            if self.waiting_for_keyframe:
                if not packet.is_keyframe:
                    self.dropped += 1
                    return
                self.waiting_for_keyframe = False
            if len(self._items) >= self.max_packets:
                # Fallen behind: drop what is queued and this packet; resume at the next keyframe.
                self.dropped += len(self._items) + 1
                self._items.clear()
                self.skips += 1
                self.waiting_for_keyframe = True
                self._request_keyframe()
                return
        elif len(self._items) >= self.max_packets:
            self._items.popleft()
            self.dropped += 1
        self._items.append(packet)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._items.append(None)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> av.Packet:
        """The next packet; raises MediaStreamError once closed."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        packet = self._items.popleft()
        if packet is None:
            self._items.append(None)
            raise MediaStreamError
        return packet


class PacketTrack(MediaStreamTrack):
    """A track whose ``recv()`` returns pre-encoded program packets (never frames)."""

    def __init__(self, kind: str, queue: PacketQueue) -> None:
        super().__init__()
        self.kind = kind
        self.queue = queue

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        try:
            return await self.queue.get()
        except MediaStreamError:
            self.stop()
            raise

    def stop(self) -> None:
        if not self.queue.closed:
            self.queue.close()
        super().stop()


class EqualFragmentsH264(H264Encoder):
    """aiortc's H.264 packetization (STAP-A, FU-A, same maximum size), except that a NAL unit too big for
    one packet is cut into full-size FU-A fragments and a shorter last one, where aiortc balances the sizes.

    A run of equal-size datagrams with at most a shorter last one is what UDP segmentation offload sends in
    one ``sendmsg`` (see fastsend.py): one call per NAL unit and viewer instead of one per packet. Any split
    is valid FU-A (RFC 6184 §5.8); the receivers reassemble the same NAL units.
    """

    @staticmethod
    def _packetize_fu_a(data: bytes) -> list[bytes]:
        available = PACKET_MAX - FU_A_HEADER_SIZE
        indicator = (data[0] & 0xE0) | NAL_TYPE_FU_A
        nal = data[0] & 0x1F
        end = len(data)
        out = []
        offset = 1  # the NAL header is carried in the FU indicator and header
        while offset < end:
            chunk = data[offset : offset + available]
            flags = 0x80 if offset == 1 else 0  # start
            offset += len(chunk)
            if offset >= end:
                flags |= 0x40  # end
            out.append(bytes((indicator, nal | flags)) + chunk)
        return out


class SharedPacker:
    """Packetization (H.264 by default) done once per program packet for all viewers' senders.

    Each viewer's sender calls ``pack(packet)``; the result (RTP payloads and timestamp) is the same
    for all of them, so it is computed once and cached for the last packets.
    """

    def __init__(self, size: int = 64, packer: Any = None) -> None:
        self._packer = packer if packer is not None else EqualFragmentsH264()
        self._cache: collections.OrderedDict[int, tuple[av.Packet, tuple[list[bytes], int]]] = collections.OrderedDict()
        self._size = size
        self.target_bitrate = 0  # aiortc sets it on REMB; the shared encoder's rate is fixed

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        key = id(packet)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is packet:
            return hit[1]
        result = self._packer.pack(packet)
        self._cache[key] = (packet, result)  # holding the packet keeps its id from being reused
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return result

    def encode(self, frame: object, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("the program's viewers get packets, never frames")


class Fanout:
    """Hands every program packet to each subscriber's queue (viewers, recorder, restreamers)."""

    def __init__(self, max_packets: int, request_keyframe: Callable[[], None]) -> None:
        self.max_packets = max_packets
        self.request_keyframe = request_keyframe
        self._video: set[PacketQueue] = set()
        self._audio: set[PacketQueue] = set()
        #: shared H.264 packetization for the viewers' senders
        self.packer = SharedPacker()
        self._packers: dict[str, SharedPacker] = {"video/h264": self.packer}
        self._sinks: list[Callable[[str, av.Packet], None]] = []
        #: the viewers' batched senders, per kind (see fastsend.py)
        self._senders: dict[str, dict[FastSender, None]] = {"video": {}, "audio": {}}

    def packer_for(self, kind: str, codec: Any) -> SharedPacker:
        """The shared packetizer of a negotiated codec (one per codec for all viewers)."""
        key = codec.mimeType.lower()
        packer = self._packers.get(key)
        if packer is None:
            packer = self._packers[key] = SharedPacker(packer=get_encoder(codec))
        return packer

    def _add_sender(self, sender: FastSender) -> None:
        self._senders[sender.kind][sender] = None

    def _remove_sender(self, sender: FastSender) -> None:
        self._senders[sender.kind].pop(sender, None)

    def add_sink(self, sink: Callable[[str, av.Packet], None]) -> None:
        """Also hand every packet to ``sink(kind, packet)`` (e.g. a viewer process)."""
        self._sinks.append(sink)

    def remove_sink(self, sink: Callable[[str, av.Packet], None]) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def subscribe(self) -> tuple[PacketQueue, PacketQueue]:
        """New (video, audio) queues; the video queue starts at the next keyframe, requested now."""
        video = PacketQueue("video", self.max_packets, self.request_keyframe)
        audio = PacketQueue("audio", self.max_packets, self.request_keyframe)
        self._video.add(video)
        self._audio.add(audio)
        self.request_keyframe()
        return video, audio

    def unsubscribe(self, video: PacketQueue, audio: PacketQueue) -> None:
        self._video.discard(video)
        self._audio.discard(audio)
        video.close()
        audio.close()

    def publish_video(self, packet: av.Packet) -> None:
        for queue in self._video:
            queue.put(packet)
        for sink in self._sinks:  # viewer processes first: they work in parallel with the batch below
            sink("video", packet)
        if self._senders["video"]:
            flush(self._senders["video"])

    def publish_audio(self, packet: av.Packet) -> None:
        for queue in self._audio:
            queue.put(packet)
        for sink in self._sinks:
            sink("audio", packet)
        if self._senders["audio"]:
            flush(self._senders["audio"])

    def close(self) -> None:
        for queue in (*self._video, *self._audio):
            queue.close()
        self._video.clear()
        self._audio.clear()

    def __len__(self) -> int:
        return len(self._video)
