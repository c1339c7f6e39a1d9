"""MediaServer: the studio's one ingest (WHIP or local capture), its program, and the WHEP viewers.

Lifecycle of a session: an ingest connects -> ``LiveState.begin`` (stream.started) -> a
:class:`~lmserver.media.program.Program` encodes it once -> viewers join over WHEP and get the
shared packets -> the ingest stops (DELETE, capture stopped, connection lost, or no video for
``MEDIA_TIMEOUT`` seconds) -> viewers are closed, the recording is finished, layers are cleared,
``LiveState.end`` (stream.ended). Once a second while live, ``stream.health`` is published.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamTrack

from ..errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from ..live import ALREADY_LIVE, session_tags
from .compositor import Compositor
from .fanout import PacketQueue
from .program import Program
from .recorder import Recorder
from .rtc import OFFER_ERRORS, SdpError, add_default_h264_fmtp, check_offer, create_peer_connection, relax_consent, set_ice_host_addresses
from .shard import Shard
from .viewers import answer_viewer

if TYPE_CHECKING:
    from aiohttp import web

    from ..bus import Bus
    from ..config import MediaConfig
    from ..live import LiveSession, LiveState
    from ..plugins.manager import PluginManager

logger = logging.getLogger(__name__)

#: An ingest that sends no video for this long is considered dropped, seconds.
MEDIA_TIMEOUT = 10.0
#: An ingest or viewer that has not connected after this long is closed, seconds.
CONNECT_TIMEOUT = 30.0
#: Viewers served by the main event loop before viewer processes (``media.fanout_processes``) share them.
LOCAL_FIRST = 50


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
        try:
            await self.bus.publish(name, data, **session_tags(self.ingest.session if self.ingest else None))
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
        self, sdp: str, *, user_agent: str = "", practice: bool = False, user_id: int | None = None, event_id: int | None = None
    ) -> tuple[str, str]:
        """Accept a WHIP offer: returns (ingest id, SDP answer). Raises 400 or 409."""
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
            for track in tracks:
                program.add_track(track)

            @pc.on("connectionstatechange")
            async def on_state() -> None:
                if pc.connectionState in ("failed", "closed"):
                    self._end_soon("the ingest connection was lost", ingest.id)

            await self._after_start(ingest)
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
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return pc.localDescription.sdp

    async def start_capture(
        self,
        device: str,
        format: str | None = None,
        options: dict[str, str] | None = None,
        *,
        practice: bool = False,
        user_id: int | None = None,
        event_id: int | None = None,
    ) -> str:
        """Use a PyAV input (v4l2/avfoundation/dshow device, lavfi graph or URL) as the ingest."""
        if not device:
            raise BadRequest("no capture device: give 'device' or set media.capture_device")
        async with self._lock:
            if self.ingest is not None:
                raise Conflict(ALREADY_LIVE)
            loop = asyncio.get_running_loop()
            try:
                player = await loop.run_in_executor(
                    None, lambda: MediaPlayer(device, format=format or None, options=options or {}, timeout=10)
                )
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
            ingest = Ingest(secrets.token_urlsafe(16), "capture", session, program, player=player, client=device)
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
        logger.info("MediaServer: ingest %s ends: %s", ingest.id, reason)
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
        bytes_rx = received = lost = 0
        jitter = None
        for transceiver in ingest.pc.getTransceivers():
            report = await transceiver.receiver.getStats()
            for stat in report.values():
                if stat.type == "inbound-rtp":
                    received += stat.packetsReceived
                    lost += max(0, stat.packetsLost)
                    if stat.kind == "video":
                        jitter = stat.jitter / 90000.0
                elif stat.type == "transport":
                    bytes_rx = max(bytes_rx, stat.bytesReceived)
        now = time.monotonic()
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
        now = time.monotonic()
        last = ingest.program.last_frame_at
        if last is None:
            if now - ingest.started > CONNECT_TIMEOUT:
                return f"the ingest sent no video within {CONNECT_TIMEOUT:.0f} s"
        elif now - last > MEDIA_TIMEOUT:
            return f"the ingest dropped: no video for {MEDIA_TIMEOUT:.0f} s"
        return None

    async def _health_loop(self, ingest: Ingest) -> None:
        """Once a second while this ingest lives: stream.health, and the drop watchdog."""
        last_frames, last_t = ingest.program.frames_in, time.monotonic()
        while self.ingest is ingest:
            await asyncio.sleep(1.0)
            if self.ingest is not ingest:
                return
            reason = self._watchdog(ingest)
            if reason is not None:
                self._end_soon(reason, ingest.id)
                return
            now = time.monotonic()
            frames = ingest.program.frames_in
            fps = (frames - last_frames) / max(now - last_t, 1e-3)
            last_frames, last_t = frames, now
            health: dict[str, Any] = {"fps": round(fps, 1)}
            try:
                health.update(await self._ingest_stats(ingest))
            except Exception:  # statistics must never stop the watchdog
                logger.exception("MediaServer: ingest statistics failed")
                health.update(bitrate=None, packet_loss=None, jitter=None)
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


def _stop_player(player: MediaPlayer) -> None:
    for track in (player.video, player.audio):
        if track is not None:
            track.stop()
