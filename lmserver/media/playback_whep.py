"""WHEP playback: viewers (and staff previews) get the program's shared packets, locally or from viewer processes."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from aiortc import RTCPeerConnection

from ..errors import ApiError, BadRequest, Forbidden, NotFound, ServiceUnavailable
from .fanout import PacketQueue
from .ingest import CONNECT_TIMEOUT
from .rtc import SdpError, add_default_h264_fmtp, check_offer
from .shard import Shard
from .viewers import answer_viewer

logger = logging.getLogger(__name__)


#: Viewers served by the main event loop before viewer processes (``media.fanout_processes``) share them.
LOCAL_FIRST = 50


@dataclass
class Viewer:
    id: str
    pc: RTCPeerConnection | None  # None when served by a viewer process
    video: PacketQueue | None
    audio: PacketQueue | None
    staff: bool
    viewer_id: str | None
    connected: bool = False
    shard: Shard | None = None


class WhepPlayback:
    """WHEP viewers, a part of :class:`~lmserver.media.server.MediaServer`."""

    async def play_whep(self, sdp: str, *, staff: bool = False, viewer_id: str | None = None) -> tuple[str, str]:
        """Accept a WHEP offer: returns (viewer resource id, SDP answer). Raises 400, 403 or 503."""
        try:
            offer = check_offer(add_default_h264_fmtp(sdp))
        except SdpError as exc:
            raise BadRequest(str(exc)) from None
        if self.ingest is None and self._lock.locked():
            # An ingest is starting (stream.started is already out): wait for it instead of refusing.
            async with self._lock:
                pass
        ingest = self.ingest
        if ingest is None:
            raise Forbidden("the studio is not live: the program starts when the host goes live")
        if ingest.session.practice and not staff:
            raise Forbidden("the host is practising: viewers can watch once the real LIVE starts")
        if len(self.viewers) >= self.config.max_viewers:
            raise ServiceUnavailable(f"the stream is full ({self.config.max_viewers} viewers): try again later")
        program = ingest.program
        shard = await self._pick_shard()
        resource = secrets.token_urlsafe(16)
        if shard is None:
            pc, video_q, audio_q, answer = await answer_viewer(offer, program.fanout, program.video_encoder.request_keyframe)
            viewer = Viewer(resource, pc, video_q, audio_q, staff, viewer_id)
        else:
            result = await shard.offer(resource, offer.sdp)
            if "sdp" not in result:
                raise ApiError(result["message"], status=result["status"])
            answer = result["sdp"]
            viewer = Viewer(resource, None, None, None, staff, viewer_id, shard=shard)
        if self.ingest is not ingest:  # the stream ended while negotiating
            await self._discard_viewer(viewer)
            raise Forbidden("the studio is not live: the stream just ended")
        self.viewers[viewer.id] = viewer
        if viewer.pc is not None:
            pc = viewer.pc

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState == "connected":
                    viewer.connected = True
                elif pc.connectionState in ("failed", "closed") and viewer.id in self.viewers:
                    await self._close_viewer(viewer)

        self._spawn(self._viewer_connect_timeout(viewer), "media-viewer-timeout")
        if not staff:  # a console's preview is not audience: it counts in no figure
            self.peak_viewers = max(self.peak_viewers, self.audience)
            await self._publish("viewer.joined", {"viewer_id": viewer_id, "viewers": self.audience, "peak": self.peak_viewers})
        return viewer.id, answer

    @property
    def audience(self) -> int:
        """Viewers watching now, not counting staff previews."""
        return sum(1 for v in self.viewers.values() if not v.staff)

    async def _pick_shard(self) -> Shard | None:
        """Where a new viewer goes: the main loop, or the least busy viewer process."""
        if self.config.fanout_processes <= 0:
            return None
        local = sum(1 for v in self.viewers.values() if v.shard is None)
        if local < self.local_first:
            return None
        async with self._shard_lock:  # concurrent joins must not start more processes
            while len(self.shards) < self.config.fanout_processes:
                shard = Shard(list(self.config.ice_host_addresses), self.config.viewer_queue_packets,
                              self._shard_keyframe, self._shard_viewer_state)
                await shard.start()
                self.shards.append(shard)
                if self.program is not None:
                    self.program.fanout.add_sink(shard.publish)
        options: list[tuple[int, Shard | None]] = [(local, None)]
        options += [(len(s.viewers), s) for s in self.shards if s.alive]
        return min(options, key=lambda o: o[0])[1]

    def _shard_keyframe(self) -> None:
        if self.program is not None:
            self.program.video_encoder.request_keyframe()

    async def _shard_viewer_state(self, resource: str, state: str) -> None:
        viewer = self.viewers.get(resource)
        if viewer is None:
            return
        if state == "connected":
            viewer.connected = True
        else:
            await self._close_viewer(viewer)

    async def _discard_viewer(self, viewer: Viewer) -> None:
        if viewer.shard is not None:
            viewer.shard.close_viewer(viewer.id)
            return
        program = self.program
        if program is not None and viewer.video is not None and viewer.audio is not None:
            program.fanout.unsubscribe(viewer.video, viewer.audio)
        elif viewer.video is not None and viewer.audio is not None:
            viewer.video.close()
            viewer.audio.close()
        if viewer.pc is not None:
            await viewer.pc.close()

    async def _viewer_connect_timeout(self, viewer: Viewer) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT)
        if not viewer.connected and viewer.id in self.viewers:
            logger.info("MediaServer: viewer %s never connected", viewer.id)
            await self._close_viewer(viewer)

    async def _close_viewer(self, viewer: Viewer, *, publish: bool = True) -> None:
        if self.viewers.pop(viewer.id, None) is None:
            return
        await self._discard_viewer(viewer)
        if publish and not viewer.staff:
            await self._publish("viewer.left", {"viewer_id": viewer.viewer_id, "viewers": self.audience})

    async def delete_whep(self, resource_id: str) -> None:
        viewer = self.viewers.get(resource_id)
        if viewer is None:
            raise NotFound("no such viewer session: it has already ended or never existed")
        await self._close_viewer(viewer)
