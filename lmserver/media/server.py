"""MediaServer: the studio's one ingest (WHIP or local capture), its program, and the WHEP viewers.

Lifecycle of a session: an ingest connects -> ``LiveState.begin`` (stream.started) -> a
:class:`~lmserver.media.program.Program` encodes it once -> viewers join over WHEP and get the
shared packets -> the ingest stops (DELETE, capture stopped, connection lost, or no video for
``MEDIA_TIMEOUT`` seconds) -> viewers are closed, the recording is finished, layers are cleared,
``LiveState.end`` (stream.ended). Once a second while live, ``stream.health`` is published.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamTrack

from ..errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from ..live import ALREADY_LIVE
from .capture import CaptureSource
from .compositor import Compositor
from .fanout import PacketQueue
from .program import Program
from .recorder import Recorder
from .rtc import (OFFER_ERRORS, SdpError, add_default_h264_fmtp, check_offer, create_peer_connection, relax_consent,
                  set_ice_host_addresses, trust_peer_nomination)
from .shard import Shard
from .viewers import answer_viewer

if TYPE_CHECKING:
    from aiohttp import web

    from ..bus import Bus
    from ..config import MediaConfig
    from ..live import LiveSession, LiveState
    from ..plugins.manager import PluginManager

logger = logging.getLogger(__name__)

#: An ingest that sends no video for this long is considered dropped, seconds. "Video" is video
#: RTP packets received (or decoded frames, for a capture ingest): a starved decoder, or one waiting
#: for a keyframe (FFmpeg's WHIP muxer ignores keyframe requests), is not a dropped publisher.
MEDIA_TIMEOUT = 10.0
#: An ingest or viewer that has not connected after this long is closed, seconds.
CONNECT_TIMEOUT = 30.0
#: A health tick this much later than due means the event loop was starved: the watchdog waits a
#: tick, so media that queued up during the stall is counted before anything is judged silent.
LOOP_STALL = 0.5
#: Viewers served by the main event loop before viewer processes (``media.fanout_processes``) share them.
LOCAL_FIRST = 50
#: While an ingest published with the stream key lives, the key is re-read this often, seconds: once it
#: changed (rotated in the settings, or by ``lmserver stream-key --rotate`` in another process) the ingest ends.
KEY_CHECK_SECONDS = 2.0


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def is_ffmpeg(user_agent: str, sdp: str) -> bool:
    """FFmpeg's WHIP muxer (it never answers ICE consent checks)."""
    return user_agent.startswith("Lavf") or "FFmpegPublishSession" in sdp or "a=tool:FFmpeg" in sdp


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


class MediaServer:
    """Owns the ingest, the program pipeline, the compositor and the viewers of the studio."""

    def __init__(
        self,
        config: "MediaConfig",
        data_dir: Path,
        live: "LiveState | None" = None,
        *,
        bus: "Bus | None" = None,
        pm: "PluginManager | None" = None,
        app: "web.Application | None" = None,
    ) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self._live = live
        self.bus = bus
        self.pm = pm
        self.app = app
        #: Overlay layers of the program (public API for plugins).
        self.compositor = Compositor()
        self.ingest: Ingest | None = None
        self.viewers: dict[str, Viewer] = {}
        self.peak_viewers = 0
        self._lock = asyncio.Lock()
        self._ending: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._health_task: asyncio.Task[None] | None = None
        self.last_health: dict[str, Any] | None = None
        self._closed = False
        #: viewer processes (started when the main loop holds LOCAL_FIRST viewers)
        self.shards: list[Shard] = []
        self.local_first = LOCAL_FIRST
        self._shard_lock = asyncio.Lock()
        self._key_lock = asyncio.Lock()

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def live(self) -> "LiveState":
        if self._live is None:
            raise RuntimeError("MediaServer.start() must be called first (it binds the app's LiveState)")
        return self._live

    async def start(self) -> None:
        """Bind the app's LiveState, bus and plugins (when built with ``app``) and set ICE addresses."""
        if self.app is not None:
            from ..appkeys import BUS, LIVE, PM

            self._live = self.app[LIVE]
            self.bus = self.app.get(BUS)
            self.pm = self.app.get(PM)
        set_ice_host_addresses(self.config.ice_host_addresses)

    async def close(self) -> None:
        """Server shutdown: stop the ingest and viewers; the session is interrupted, not ended, so
        going live again soon after a restart resumes it (``LiveState.interrupt``)."""
        await self.end_ingest("the server stopped", interrupt=True)
        for viewer in list(self.viewers.values()):
            await self._close_viewer(viewer, publish=False)
        self._closed = True  # late connection events publish nothing once the server stops
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for shard in self.shards:
            await shard.close()
        self.shards.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def program(self) -> Program | None:
        return self.ingest.program if self.ingest else None

    async def _publish(self, name: str, data: dict[str, Any]) -> None:
        if self.bus is None or self._closed:
            return
        session = self.ingest.session if self.ingest else None
        try:
            await self.bus.publish(
                name,
                data,
                event_id=session.event_id if session else None,
                session_id=session.id if session else None,
                practice=session.practice if session else False,
            )
        except Exception:
            logger.exception("MediaServer: publishing %s failed", name)

    # ------------------------------------------------------------------------------------ ingest

    def _new_program(self, session: "LiveSession") -> Program:
        cfg = self.config
        recorder = None
        if cfg.record:
            stamp = datetime.fromtimestamp(session.started_at, timezone.utc).strftime("%Y%m%d-%H%M%S")
            suffix = "-practice" if session.practice else ""
            path = self.data_dir / "recordings" / f"session-{session.id}-{stamp}{suffix}.mkv"
            recorder = Recorder(path, cfg.width, cfg.height, cfg.fps)
        program = Program(
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            video_bitrate=cfg.video_bitrate,
            audio_bitrate=cfg.audio_bitrate,
            keyframe_interval=cfg.keyframe_interval,
            keyframe_min_interval=cfg.keyframe_min_interval,
            preset=cfg.x264_preset,
            queue_packets=cfg.viewer_queue_packets,
            compositor=self.compositor,
            on_ended=self._on_program_ended,
            recorder=recorder,
        )
        for shard in self.shards:
            program.fanout.add_sink(shard.publish)
        return program

    async def _on_program_ended(self, reason: str) -> None:
        self._end_soon(reason)

    def _end_soon(self, reason: str, ingest_id: str | None = None) -> None:
        ingest = self.ingest
        if ingest is None or (ingest_id is not None and ingest.id != ingest_id):
            return
        self._spawn(self.end_ingest(reason, ingest_id=ingest.id), "media-end-ingest")

    async def _go_live(self, ingest_kind: str, practice: bool, user_id: int | None, event_id: int | None = None) -> "LiveSession":
        if self.ingest is not None:
            raise Conflict(ALREADY_LIVE)
        return await self.live.begin(ingest_kind, practice, user_id, event_id=event_id)

    async def _after_start(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.peak_viewers = 0
        self._health_task = self._spawn(self._health_loop(ingest), "media-health")
        logger.info("MediaServer: %s ingest %s live (session %s)", ingest.kind, ingest.id, ingest.session.id)
        if self.pm is not None and self.app is not None:
            await self.pm.call("register_overlays", app=self.app, session=ingest.session)

    async def publish_whip(
        self, sdp: str, *, user_agent: str = "", practice: bool = False, user_id: int | None = None, event_id: int | None = None,
        stream_key: str | None = None,
    ) -> tuple[str, str]:
        """Accept a WHIP offer: returns (ingest id, SDP answer). Raises 400 or 409.

        ``stream_key``: the bearer token the publisher was let in with (None: a staff session). Only that
        token ends or patches the resource, and the ingest ends when the studio's key is rotated."""
        try:
            offer = check_offer(sdp)
        except SdpError as exc:
            raise BadRequest(str(exc)) from None
        async with self._lock:
            if self.ingest is not None:
                raise Conflict(ALREADY_LIVE)
            pc = create_peer_connection()
            tracks: list[MediaStreamTrack] = []
            pc.on("track", tracks.append)
            ffmpeg = is_ffmpeg(user_agent, sdp)
            try:
                answer = await self._answer_whip(pc, offer.sdp, ffmpeg)
                session = await self._go_live("whip", practice, user_id, event_id)
            except BaseException:
                await pc.close()
                raise
            program = self._new_program(session)
            ingest = Ingest(secrets.token_urlsafe(16), "whip", session, program, pc=pc,
                            client="ffmpeg" if ffmpeg else _client_name(user_agent), relaxed_consent=ffmpeg,
                            codec=_video_codec(pc))
            if stream_key is not None:
                ingest.publisher_digest = ingest.key_digest = _digest(stream_key)
            for track in tracks:
                program.add_track(track)

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    self._end_soon("the ingest connection was lost", ingest.id)

            await self._after_start(ingest)
            if ingest.key_digest is not None and self.app is not None:
                self._spawn(self._watch_stream_key(ingest), "media-key-watch")
            return ingest.id, answer

    async def _answer_whip(self, pc: RTCPeerConnection, sdp: str, ffmpeg: bool) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except OFFER_ERRORS as exc:
            raise BadRequest(f"the offer could not be used ({exc or type(exc).__name__}): send VP8 or H.264 "
                             "(constrained baseline, packetization-mode=1)") from None
        video = [t for t in pc.getTransceivers() if t.kind == "video"]
        if not video or not video[0]._codecs:
            raise BadRequest("no common video codec: send VP8 or H.264 (constrained baseline, packetization-mode=1)")
        for transceiver in pc.getTransceivers():
            transceiver.direction = "recvonly"
        if ffmpeg:
            relax_consent(pc)
            trust_peer_nomination(pc)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return pc.localDescription.sdp

    async def start_capture(
        self,
        source: CaptureSource,
        options: dict[str, str] | None = None,
        *,
        practice: bool = False,
        user_id: int | None = None,
        event_id: int | None = None,
    ) -> str:
        """Use an allowed capture source (:mod:`lmserver.media.capture`: a device, an owner-configured URL or
        a test pattern) as the ingest. ``options`` must come from :func:`~lmserver.media.capture.check_options`."""
        cfg = self.config
        device, fmt, opts = source.ffmpeg_input(options, width=cfg.width, height=cfg.height, fps=cfg.fps)
        async with self._lock:
            if self.ingest is not None:
                raise Conflict(ALREADY_LIVE)
            loop = asyncio.get_running_loop()
            try:
                player = await loop.run_in_executor(None, lambda: MediaPlayer(device, format=fmt, options=opts, timeout=10))
            except Exception as exc:
                raise BadRequest(f"the capture source could not be opened: {exc}") from None
            if player.video is None:
                raise BadRequest("the capture source has no video")
            try:
                session = await self._go_live("capture", practice, user_id, event_id)
            except BaseException:
                _stop_player(player)
                raise
            program = self._new_program(session)
            ingest = Ingest(secrets.token_urlsafe(16), "capture", session, program, player=player, client=source.label)
            program.add_track(player.video)
            if player.audio is not None:
                program.add_track(player.audio)
            await self._after_start(ingest)
            return ingest.id

    async def end_ingest(self, reason: str, *, ingest_id: str | None = None, interrupt: bool = False) -> bool:
        """End the running ingest (any, or only ``ingest_id``): viewers closed, session ended
        (or only interrupted, when the server stops)."""
        ingest = self.ingest
        if ingest is None or (ingest_id is not None and ingest.id != ingest_id):
            return False
        self.ingest = None
        logger.info("MediaServer: ingest %s ends: %s; %s", ingest.id, reason, self._ingest_figures(ingest))
        if self._health_task is not None and self._health_task is not asyncio.current_task():
            self._health_task.cancel()
        self._health_task = None
        for viewer in list(self.viewers.values()):
            await self._close_viewer(viewer, publish=False)
        for shard in self.shards:
            shard.end_session()
        await ingest.program.stop()
        if ingest.pc is not None:
            await ingest.pc.close()
        if ingest.player is not None:
            _stop_player(ingest.player)
        self.compositor.clear()
        if interrupt:
            await self.live.interrupt(reason)
        else:
            await self.live.end(reason)
        return True

    async def delete_whip(self, ingest_id: str) -> None:
        ingest = self.ingest
        if ingest is None or ingest.kind != "whip" or ingest.id != ingest_id:
            raise NotFound("no such ingest: it has already ended or never existed")
        await self.end_ingest("the host ended the stream", ingest_id=ingest_id)

    def published_with(self, ingest_id: str, token: str) -> bool | None:
        """Whether the live WHIP ingest ``ingest_id`` was published with bearer ``token``
        (None: no such ingest is live)."""
        ingest = self.ingest
        if ingest is None or ingest.kind != "whip" or ingest.id != ingest_id:
            return None
        return ingest.publisher_digest is not None and hmac.compare_digest(ingest.publisher_digest, _digest(token))

    # ------------------------------------------------------------------------------------ stream key

    async def rotate_stream_key(self, rotate: Callable[[], Awaitable[str]], *, end_stream: bool = True) -> tuple[str, bool]:
        """Rotate the studio's stream key with ``rotate()`` (it stores and returns the new key).

        An ingest published with the old key ends (``end_stream``), or is let run under the new key.
        Returns (new key, whether an ingest was ended)."""
        async with self._key_lock:  # the key watch must not see the new key before the ingest is rebound
            key = await rotate()
            ingest = self.ingest
            if ingest is None or ingest.key_digest is None:
                return key, False
            if not end_stream:
                ingest.key_digest = _digest(key)
                return key, False
        return key, await self.end_ingest("the stream key was rotated", ingest_id=ingest.id)

    async def _watch_stream_key(self, ingest: Ingest) -> None:
        """While ``ingest`` (published with the stream key) lives: end it once the stored key is another.
        This is how ``lmserver stream-key --rotate``, run in another process, ends the stream."""
        from ..appkeys import DB

        assert self.app is not None
        while self.ingest is ingest:
            await asyncio.sleep(KEY_CHECK_SECONDS)
            async with self._key_lock:
                if self.ingest is not ingest or ingest.key_digest is None:
                    return
                try:
                    key = await self.app[DB].fetchval("SELECT value FROM settings WHERE key = 'stream_key'")
                except Exception:  # a busy or closing database: look again next time
                    logger.exception("MediaServer: reading the stream key failed")
                    continue
                if not key or not hmac.compare_digest(_digest(key), ingest.key_digest):
                    self._end_soon("the stream key was rotated", ingest.id)
                    return

    # ------------------------------------------------------------------------------------ viewers

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

    # ------------------------------------------------------------------------------------ health

    async def _ingest_stats(self, ingest: Ingest) -> dict[str, Any]:
        out: dict[str, Any] = {"bitrate": None, "packet_loss": None, "jitter": None}
        if ingest.pc is None:
            return out
        bytes_rx = received = lost = video = 0
        jitter = None
        for transceiver in ingest.pc.getTransceivers():
            report = await transceiver.receiver.getStats()
            for stat in report.values():
                if stat.type == "inbound-rtp":
                    received += stat.packetsReceived
                    lost += max(0, stat.packetsLost)
                    if stat.kind == "video":
                        jitter = stat.jitter / 90000.0
                        video += stat.packetsReceived
                elif stat.type == "transport":
                    bytes_rx = max(bytes_rx, stat.bytesReceived)
        now = time.monotonic()
        if video > ingest.video_packets:
            ingest.video_packets, ingest.last_packet_at = video, now
        if ingest._last_stats is not None:
            t0, b0, r0, l0 = ingest._last_stats
            dt = max(now - t0, 1e-3)
            out["bitrate"] = int((bytes_rx - b0) * 8 / dt)
            total = (received - r0) + (lost - l0)
            out["packet_loss"] = round((lost - l0) / total, 4) if total > 0 else 0.0
        ingest._last_stats = (now, bytes_rx, received, lost)
        out["jitter"] = round(jitter, 4) if jitter is not None else None
        return out

    def _watchdog(self, ingest: Ingest) -> str | None:
        """Why this ingest should end now (None: it is alive).

        Alive means video arrives: RTP packets of a WHIP ingest (counted in ``_ingest_stats``), or
        decoded frames. Frames alone would end a publisher whose decoder is starved by a busy
        machine or waits for a keyframe, while its packets still arrive."""
        now = time.monotonic()
        last = max((t for t in (ingest.program.last_frame_at, ingest.last_packet_at) if t is not None), default=None)
        if last is None:
            if now - ingest.started > CONNECT_TIMEOUT:
                return f"the ingest sent no video within {CONNECT_TIMEOUT:.0f} s"
        elif now - last > MEDIA_TIMEOUT:
            return f"the ingest dropped: no video for {MEDIA_TIMEOUT:.0f} s"
        return None

    def _ingest_figures(self, ingest: Ingest) -> str:
        """What the watchdog saw, for the log line of an ending or a stall."""
        now = time.monotonic()
        program = ingest.program

        def ago(t: float | None) -> str:
            return "never" if t is None else f"{now - t:.1f} s ago"

        return (f"{ingest.video_packets} video packets (last {ago(ingest.last_packet_at)}), {program.frames_in} frames "
                f"decoded (last {ago(program.last_frame_at)}), {program.frames_out} encoded, "
                f"{program.frames_skipped} skipped, live {now - ingest.started:.1f} s"
                + (f", {_decode_backlog(ingest.pc)} frames waiting to decode, connection {ingest.pc.connectionState}"
                   f"/ICE {ingest.pc.iceConnectionState}" if ingest.pc else ""))

    async def _health_loop(self, ingest: Ingest) -> None:
        """Once a second while this ingest lives: stream.health, and the drop watchdog."""
        last_frames, last_t = ingest.program.frames_in, time.monotonic()
        deferred = False
        while self.ingest is ingest:
            slept = time.monotonic()
            await asyncio.sleep(1.0)
            if self.ingest is not ingest:
                return
            now = time.monotonic()
            lag = now - slept - 1.0
            frames = ingest.program.frames_in
            fps = (frames - last_frames) / max(now - last_t, 1e-3)
            last_frames, last_t = frames, now
            health: dict[str, Any] = {"fps": round(fps, 1)}
            try:
                health.update(await self._ingest_stats(ingest))
            except Exception:  # statistics must never stop the watchdog
                logger.exception("MediaServer: ingest statistics failed")
                health.update(bitrate=None, packet_loss=None, jitter=None)
            if lag > LOOP_STALL and not deferred:
                # The loop was starved: what arrived meanwhile is still queued. Judge next tick
                # (only once in a row: a saturated loop still ends a publisher that went away).
                deferred = True
                logger.log(logging.INFO if lag > 2.0 else logging.DEBUG,
                           "MediaServer: health tick %.1f s late (busy machine); %s", lag, self._ingest_figures(ingest))
            else:
                deferred = False
                reason = self._watchdog(ingest)
                if reason is not None:
                    logger.warning("MediaServer: ingest %s watchdog: %s; %s", ingest.id, reason, self._ingest_figures(ingest))
                    self._end_soon(reason, ingest.id)
                    return
            snap = ingest.program.snapshot()
            health.update(
                width=snap["width"],
                height=snap["height"],
                audio_level=snap["audio_level_dbfs"],
                silent=snap["silent"],
                encode_ms=snap["encode_ms"],
                viewers=self.audience,
            )
            self.last_health = health
            if self.ingest is ingest:
                await self._publish("stream.health", health)

    def status(self) -> dict[str, Any]:
        """What the console shows: live or not, the ingest, viewers, layers, last health."""
        ingest = self.ingest
        return {
            "live": ingest is not None,
            "ingest": None
            if ingest is None
            else {
                "id": ingest.id,
                "kind": ingest.kind,
                "client": ingest.client,
                "codec": ingest.codec,
                "session_id": ingest.session.id,
                "practice": ingest.session.practice,
                "seconds": round(time.monotonic() - ingest.started, 1),
            },
            "viewers": self.audience,
            "previews": len(self.viewers) - self.audience,
            "peak_viewers": self.peak_viewers,
            "layers": [vars(layer) for layer in self.compositor.layers()],
            "health": self.last_health if ingest is not None else None,
            "program": {"width": self.config.width, "height": self.config.height, "fps": self.config.fps},
        }


def _client_name(user_agent: str) -> str:
    ua = user_agent.lower()
    for name in ("obs", "gstreamer", "chrome", "firefox", "safari"):
        if name in ua:
            return name
    return re.sub(r"[^\w./ -]", "", user_agent)[:40] or "unknown"


def _video_codec(pc: RTCPeerConnection) -> str:
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video" and transceiver._codecs:
            return transceiver._codecs[0].mimeType.split("/", 1)[1]
    return ""


def _decode_backlog(pc: RTCPeerConnection) -> int:
    """Encoded frames queued for aiortc's decoder thread (grows when the machine starves it)."""
    total = 0
    for transceiver in pc.getTransceivers():
        q = getattr(transceiver.receiver, "_RTCRtpReceiver__decoder_queue", None)
        total += q.qsize() if q is not None else 0
    return total


def _stop_player(player: MediaPlayer) -> None:
    for track in (player.video, player.audio):
        if track is not None:
            track.stop()
