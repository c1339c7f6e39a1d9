"""MediaServer: the studio's one ingest (WHIP or local capture), its program, and the WHEP viewers.

Lifecycle of a session: an ingest connects -> ``LiveState.begin`` (stream.started) -> a
:class:`~lmserver.media.program.Program` encodes it once -> viewers join over WHEP and get the
shared packets -> the ingest stops (DELETE, capture stopped, connection lost, or no video for
``MEDIA_TIMEOUT`` seconds) -> viewers are closed, the recording is finished, layers are cleared,
``LiveState.end`` (stream.ended). Once a second while live, ``stream.health`` is published.

Recording: when a session starts or resumes, ``self.recordings`` (the app's
:class:`~lmserver.recordings.RecordingManager`, bound by ``media_ctx``) opens a new part whose recorder is one
of the program's packet sinks; when the program stops, the part is remuxed in the background.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..errors import Conflict
from ..live import ALREADY_LIVE, session_tags
from .compositor import Compositor
from .health import IngestHealth
from .ingest import Ingest
from .ingest_capture import CaptureIngest, stop_player
from .ingest_whip import WhipIngest
from .playback_whep import LOCAL_FIRST, Viewer, WhepPlayback
from .program import Program
from .hls import HlsOutput
from .restream import Restreamer
from .restream_common import load_destinations
from .rtc import set_ice_host_addresses
from .shard import Shard

if TYPE_CHECKING:
    from ..bus import Bus
    from ..config import MediaConfig
    from ..db import Database
    from ..live import LiveSession, LiveState
    from ..recordings import RecordingManager
    from .recorder import Recorder

logger = logging.getLogger(__name__)
#: how long shutdown waits for bus events already being published (viewer.left...) before the database closes
PUBLISH_DRAIN_SECONDS = 5.0


class MediaServer(WhipIngest, CaptureIngest, WhepPlayback, IngestHealth):
    """Owns the ingest, the program pipeline, the compositor and the viewers of the studio."""

    def __init__(self, config: "MediaConfig", data_dir: Path) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        # bound by start(): the core's live state, bus and database, and what to call when a session starts
        self._live: "LiveState | None" = None
        self.bus: "Bus | None" = None
        self.db: "Database | None" = None
        self.on_session: "Callable[[LiveSession], Awaitable[Any]] | None" = None
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
        #: tasks inside _publish (awaited by close())
        self._publishing: set[asyncio.Task[Any]] = set()
        #: viewer processes (started when the main loop holds LOCAL_FIRST viewers)
        self.shards: list[Shard] = []
        self.local_first = LOCAL_FIRST
        self._shard_lock = asyncio.Lock()
        self._key_lock = asyncio.Lock()
        #: restream destinations (RTMP/WHIP out): outlive one program, so an ingest drop shows the slate
        self.restream = Restreamer(config, self.data_dir, ca_file=config.restream_ca_file,
                                   queue_items=config.restream_queue_packets)
        self.restream.on_state = self._restream_state
        #: the session recordings (set by media_ctx; None: nothing is recorded)
        self.recordings: "RecordingManager | None" = None
        self._recorder: "Recorder | None" = None
        #: the running program's HLS output (``/hls/<event>/index.m3u8``), None when not live, practice or off
        self.hls: HlsOutput | None = None

    @property
    def live(self) -> "LiveState":
        if self._live is None:
            raise RuntimeError("MediaServer.start() must be called first (it binds the app's LiveState)")
        return self._live

    async def start(self, live: "LiveState", *, bus: "Bus | None" = None, db: "Database | None" = None,
                    on_session: "Callable[[LiveSession], Awaitable[Any]] | None" = None) -> None:
        """Bind the dependencies (passed in by :func:`lmserver.media.app.media_ctx` from the core's context)
        and set the ICE addresses. ``on_session(session)`` is awaited when a session starts or resumes
        (the app puts the plugins' overlays back: ``register_overlays``); ``db`` lets a WHIP ingest
        published with the stream key notice a rotated key."""
        self._live, self.bus, self.db, self.on_session = live, bus, db, on_session
        set_ice_host_addresses(self.config.ice_host_addresses)
        # HLS is served from memory now; versions before LL-HLS wrote segments to <data>/hls: remove what they left
        legacy_hls = Path(self.data_dir) / "hls"
        if legacy_hls.is_dir():
            await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, legacy_hls, True)
        if db is not None:
            self.restream.set_destinations(await load_destinations(db))

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
        # events already being published (e.g. viewer.left from a connection that closed just before) finish
        # while the database is open: the core closes it after this (bounded: a stuck write does not hold shutdown)
        pending = self._publishing - {asyncio.current_task()}
        if pending:
            await asyncio.wait(pending, timeout=PUBLISH_DRAIN_SECONDS)
        for shard in self.shards:
            await shard.close()
        self.shards.clear()
        await self.restream.close()

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
        task = asyncio.current_task()
        if task is not None:  # close() waits for it: a viewer that left as the server stopped is still told
            self._publishing.add(task)
        try:
            await self.bus.publish(name, data, **session_tags(self.ingest.session if self.ingest else None))
        except Exception:
            logger.exception("MediaServer: publishing %s failed", name)
        finally:
            if task is not None:
                self._publishing.discard(task)

    def _new_program(self, session: "LiveSession") -> Program:
        cfg = self.config
        sinks = []
        recorder, self._recorder = self._recorder, None  # opened by _go_live for this session
        if recorder is not None:
            sinks.append(recorder)
        restream = self.restream.program_started(session)  # None in practice: practice never restreams
        if restream is not None:
            sinks.append(restream)
        self._close_hls()
        if cfg.hls and restream is not None:  # the LIVE (practice is never served): video and the shared AAC
            self.hls = HlsOutput(cfg.width, cfg.height, cfg.fps, cfg.keyframe_interval, cfg.hls_list_size,
                                 cfg.hls_part_seconds, self.restream.aac_config)
            self.restream.add_listener(self.hls.feed)
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
            sinks=sinks,
        )
        for shard in self.shards:
            program.fanout.add_sink(shard.publish)
        return program

    def _close_hls(self) -> None:
        out, self.hls = self.hls, None
        if out is not None:
            self.restream.remove_listener(out.feed)
            out.close()

    async def _on_program_ended(self, reason: str) -> None:
        self._end_soon(reason)

    def _end_soon(self, reason: str, ingest_id: str | None = None, *, dropped: bool = True) -> None:
        ingest = self.ingest
        if ingest is None or (ingest_id is not None and ingest.id != ingest_id):
            return
        self._spawn(self.end_ingest(reason, ingest_id=ingest.id, dropped=dropped), "media-end-ingest")

    async def _restream_state(self, dest: Any, status: dict[str, Any]) -> None:
        await self._publish("restream.state", {"destination_id": dest.id, "name": dest.name, "kind": dest.kind,
                                               **{k: status[k] for k in ("state", "error", "cause", "retry_in", "bytes_sent", "dropped")}})

    async def _go_live(self, ingest_kind: str, practice: bool, user_id: int | None, event_id: int | None = None) -> "LiveSession":
        if self.ingest is not None:
            raise Conflict(ALREADY_LIVE)
        session = await self.live.begin(ingest_kind, practice, user_id, event_id=event_id)
        self._open_recording(session)
        return session

    def _open_recording(self, session: "LiveSession") -> None:
        """The recorder of ``session``'s next program (``_new_program`` takes it), when recording is on."""
        self._recorder = None
        if self.config.record and self.recordings is not None:
            try:  # a recording that cannot start never stops the LIVE
                self._recorder = self.recordings.open_part(session)  # no await: the ingest follows stream.started at once
            except Exception:
                logger.exception("MediaServer: the recording of session %s could not start", session.id)

    async def _after_start(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.peak_viewers = 0
        self._health_task = self._spawn(self._health_loop(ingest), "media-health")
        logger.info("MediaServer: %s ingest %s live (session %s)", ingest.kind, ingest.id, ingest.session.id)
        if self.on_session is not None:
            await self.on_session(ingest.session)

    async def switch_session(self, *, practice: bool, user_id: int | None = None) -> "LiveSession":
        """Practice → LIVE (or back) in one step: the ingest goes on (the camera is not stopped); its session
        ends and a new one of the same event starts in the other mode, with a new program (its own recording;
        previews reconnect). Refused (409, nothing changed) when not live, already in that mode, or when the
        event may not go live now."""
        async with self._lock:
            ingest = self.ingest
            if ingest is None:
                raise Conflict("the studio is not live: start the camera (practice or LIVE) first")
            if ingest.session.practice == practice:
                raise Conflict("this session is already a practice session" if practice else "the studio is already LIVE")
            event_id = ingest.session.event_id
            if self.live.resolve_event is not None:  # ask first: a refusal leaves the running session untouched
                event_id = await self.live.resolve_event(event_id, practice)
            tracks = ([r.track for r in ingest.pc.getReceivers() if r.track is not None] if ingest.pc is not None
                      else [t for t in (ingest.player.video, ingest.player.audio) if t is not None] if ingest.player is not None
                      else [])
            for viewer in list(self.viewers.values()):
                await self._close_viewer(viewer, publish=False)
            for shard in self.shards:
                shard.end_session()
            await ingest.program.stop()  # stops reading the tracks, not the tracks themselves
            if self.recordings is not None:  # the part of the session it leaves is finished (remuxed) like at End LIVE
                await self.recordings.finish()
            self.compositor.clear()
            await self.live.end("practice ended: the host went LIVE" if not practice else "the host switched to practice")
            session = await self.live.begin(ingest.kind, practice, user_id, event_id=event_id)
            self._open_recording(session)  # the new session's own recording, as _go_live opens one
            ingest.session, ingest.program = session, self._new_program(session)
            for track in tracks:
                ingest.program.add_track(track)
            self.peak_viewers = 0
            logger.info("MediaServer: ingest %s continues in session %s (%s)", ingest.id, session.id, "practice" if practice else "LIVE")
        if self.on_session is not None:
            await self.on_session(session)
        return session

    async def end_ingest(self, reason: str, *, ingest_id: str | None = None, interrupt: bool = False,
                         dropped: bool = False) -> bool:
        """End the running ingest (any, or only ``ingest_id``): viewers closed, session ended
        (or only interrupted, when the server stops). ``dropped``: the ingest was lost (not ended by
        the host): restream destinations show the slate for ``events.resume_minutes``."""
        ingest = self.ingest
        if ingest is None or (ingest_id is not None and ingest.id != ingest_id):
            return False
        self.ingest = None
        self._close_hls()
        logger.info("MediaServer: ingest %s ends: %s; %s", ingest.id, reason, self._ingest_figures(ingest))
        if self._health_task is not None and self._health_task is not asyncio.current_task():
            self._health_task.cancel()
        self._health_task = None
        for viewer in list(self.viewers.values()):
            await self._close_viewer(viewer, publish=False)
        for shard in self.shards:
            shard.end_session()
        await ingest.program.stop()
        self.restream.program_ended(dropped=dropped and not interrupt, resume_seconds=self.live.resume_seconds)
        if self.recordings is not None:
            await self.recordings.finish()
        if ingest.pc is not None:
            await ingest.pc.close()
        if ingest.player is not None:
            stop_player(ingest.player)
        self.compositor.clear()
        if interrupt:
            await self.live.interrupt(reason)
        else:
            await self.live.end(reason)
        return True

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
            "program": {"width": self.config.width, "height": self.config.height, "fps": self.config.fps,
                        # frames the live program encoded so far (null when not live): CPU per frame in bench/glass.py
                        "frames_encoded": ingest.program.frames_out if ingest is not None else None},
            "restream": {"live": self.restream.live, "slate": self.restream.slate_on, "destinations": self.restream.status()},
        }
