"""Restream: the program, still encoded once, forwarded to RTMP(S) platforms and WHIP servers.

:class:`Restreamer` lives as long as the MediaServer (not one Program), so an ingest drop does not end
a destination's connection: while the host is away (inside ``events.resume_minutes``) every destination
receives the :class:`~lmserver.media.restream_audio.Slate` ("We'll be right back" + silence, encoded once), and the next program of
the LIVE takes over. Each destination is a :class:`DestinationWorker`: its own thread and a bounded
queue that drops (and counts) rather than blocks, so a failing or slow destination never affects the
others, the WebRTC viewers or the recording. Reconnects back off 2 s ×1.5 up to 60 s with jitter; a
send that makes no progress for ``STALL_SECONDS`` is a stall and reconnects.

Video is never re-encoded: RTMP gets the shared H.264 packets as FLV/AVC, WHIP the same Annex-B
packets (:mod:`lmserver.media.restream_whip`, aiortc on the event loop). Audio for RTMP and HLS
is AAC from ONE :class:`~lmserver.media.restream_audio.AacEncoder` shared by every destination,
fed by decoding the program's Opus packets once; WHIP gets the Opus packets as they are.

Another output of the same kind (HLS, :mod:`lmserver.media.hls`) subscribes with
:meth:`Restreamer.add_listener` (and leaves with :meth:`Restreamer.remove_listener`): it receives the
same video items and the same AAC packets.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import av

from .encoder import AUDIO_RATE
from .restream_audio import AAC_FRAME, AacEncoder, Slate, aac_config
from .restream_common import AAC_BITRATE, STALL_SECONDS, Destination, Item, WorkerState, backoff_delays
from .restream_whip import WhipWorker
from .rtmp import (
    RtmpError,
    RtmpPublisher,
    avcc_record,
    flv_aac_frame,
    flv_aac_header,
    flv_avc_frame,
    flv_avc_header,
    parameter_sets,
    parse_target,
    split_annexb,
)

if TYPE_CHECKING:
    from ..config import MediaConfig
    from ..live import LiveSession

logger = logging.getLogger(__name__)


class DestinationWorker(WorkerState):
    """One RTMP(S) destination: a thread that connects, streams its queue, and reconnects with backoff."""

    def __init__(self, dest: Destination, restreamer: "Restreamer") -> None:
        super().__init__(dest, restreamer)
        self._queue: queue.Queue[Item | None] = queue.Queue(restreamer.queue_items)
        self._stop = threading.Event()
        self._need_key = True
        self.live_since: float | None = None
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self._thread = threading.Thread(target=self._run, name=f"lm-restream-{dest.id}", daemon=True)

    # producer side (the event loop)
    def start(self) -> None:
        self._thread.start()

    def put(self, item: Item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self._need_key = True  # what follows is undecodable until the next keyframe

    def stop(self) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    # worker side
    def _run(self) -> None:
        delays = backoff_delays()
        while not self._stop.is_set():
            self.attempts += 1
            self._set("connecting")
            started = time.monotonic()
            try:
                self._stream()
            except RtmpError as exc:
                logger.warning("DestinationWorker(%s): %s", self.dest.id, exc)
                if self._stop.is_set():
                    break
                if exc.cause == "auth":  # the key is wrong: retrying will not help, the owner must fix it
                    self._set("failed", error=str(exc), cause=exc.cause)
                    self._stop.wait()
                    break
                if time.monotonic() - started > 30:  # it was streaming: start the backoff over
                    delays = backoff_delays()
                delay = next(delays)
                self._set("retrying", error=str(exc), cause=exc.cause, retry_at=time.monotonic() + delay)
                self._stop.wait(delay)
            except Exception as exc:  # a bug must not take other destinations down
                logger.exception("DestinationWorker(%s) failed", self.dest.id)
                self._set("failed", error=f"internal error: {exc}", cause="internal")
                self._stop.wait()
                break
        self.state = "stopped"
        self.retry_at = None
        self._r._notify(self)

    def _next(self) -> Item | None:
        item = self._queue.get()
        return None if self._stop.is_set() else item

    def _flush(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _stream(self) -> None:
        target = parse_target(self.dest.url, self.dest.secret)
        pub = RtmpPublisher(target, timeout=STALL_SECONDS, ca_file=self._r.ca_file)
        cfg = self._r.config
        pub.connect({"width": float(cfg.width), "height": float(cfg.height), "framerate": float(cfg.fps),
                     "videocodecid": 7.0, "audiocodecid": 10.0, "videodatarate": cfg.video_bitrate / 1000,
                     "audiodatarate": AAC_BITRATE / 1000, "audiosamplerate": float(AUDIO_RATE), "stereo": True,
                     "encoder": "lmserver"})
        self.connects += 1
        self._flush()
        self._need_key = True
        avcc: bytes | None = None
        t0: float | None = None
        last = {"v": -1, "a": -1}
        sent_at = time.monotonic()
        base_bytes = self.bytes_sent
        try:
            pub.send_audio(0, flv_aac_header(self._r.aac_config))
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=1.0)
                except queue.Empty:
                    item = None
                now = time.monotonic()
                if item is None:
                    if self._stop.is_set():
                        return
                    if now - sent_at > STALL_SECONDS and t0 is not None:
                        raise RtmpError("timeout", "timeout: nothing to send for 10 s (the program stopped)")
                    pub.drain()
                    continue
                kind, t, data, key = item
                if kind == "v":
                    if self._need_key:
                        if not key:
                            continue
                        self._need_key = False
                    units = split_annexb(data)
                    if key:
                        ps = parameter_sets(units)
                        if ps is not None and avcc_record(*ps) != avcc:
                            avcc = avcc_record(*ps)
                            pub.send_video(max(0, last["v"]), flv_avc_header(avcc))
                    if avcc is None:
                        continue
                    if t0 is None:
                        t0 = t
                    body = flv_avc_frame(units, key)
                elif kind == "a" and t0 is not None:
                    body = flv_aac_frame(data)
                else:
                    continue
                ts = int(round((t - t0) * 1000))
                if ts <= last[kind]:
                    if kind == "a":
                        continue
                    ts = last[kind] + 1
                last[kind] = ts
                if kind == "v":
                    pub.send_video(ts, body)
                    if key:
                        pub.drain()
                else:
                    pub.send_audio(ts, body)
                self.bytes_sent = base_bytes + pub.bytes_sent
                sent_at = now
                if self.state != "live":
                    self.live_since = now
                    self._set("live")
                if not self._samples or now - self._samples[-1][0] >= 0.5:
                    self._samples.append((now, self.bytes_sent))
                    (t_old, b_old) = self._samples[max(0, len(self._samples) - 10)]  # the last ~5 s
                    self.bitrate = int((self.bytes_sent - b_old) * 8 / (now - t_old)) if now > t_old else 0
        finally:
            self.bytes_sent = base_bytes + pub.bytes_sent
            pub.close()


class RestreamSink:
    """The :class:`~lmserver.media.program.PacketSink` a program feeds; closing it does NOT stop the
    destinations (they outlive the program: an ingest drop shows the slate).

    A packet's time on the restreamer's clock follows its own pts (smooth, whatever the load), anchored to
    the wall clock at the program's first packet of each kind, and re-anchored if the two drift apart by
    more than ``REANCHOR_SECONDS`` (a jump in the ingest's timestamps)."""

    REANCHOR_SECONDS = 1.0

    def __init__(self, restreamer: "Restreamer") -> None:
        self._r = restreamer
        self._base: dict[str, float] = {}

    def _time(self, kind: str, packet: av.Packet) -> float:
        now = time.monotonic()
        if packet.pts is None or packet.time_base is None:
            return now
        media = float(packet.pts * packet.time_base)
        base = self._base.get(kind)
        if base is None or abs(base + media - now) > self.REANCHOR_SECONDS:
            base = self._base[kind] = now - media
        return base + media

    def write_video(self, packet: av.Packet) -> None:
        self._r.feed("v", self._time("v", packet), bytes(packet), bool(packet.is_keyframe))

    def write_audio(self, packet: av.Packet) -> None:
        self._r.feed("o", self._time("o", packet), bytes(packet), False)

    def close(self) -> None:
        pass


class Restreamer:
    """The studio's destinations and their workers (one per started destination)."""

    def __init__(self, config: "MediaConfig", data_dir: Path, *, ca_file: str = "", queue_items: int = 512) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.ca_file = ca_file
        self.queue_items = queue_items
        self.destinations: dict[int, Destination] = {}
        self.workers: dict[int, DestinationWorker | WhipWorker] = {}
        #: called on the event loop with (destination, status) when a destination's state changes
        self.on_state: Callable[[Destination, dict[str, Any]], Any] | None = None
        #: a later sink of the same kind (HLS): gets every ("v"|"a", t, data, key) item, "a" being the shared AAC
        self.listeners: list[Callable[[Item], None]] = []
        self.live = False
        self.session: "LiveSession | None" = None
        self._aac: AacEncoder | None = None
        self._aac_config: bytes | None = None
        self._slate: asyncio.Future[Slate] | None = None  # built once, in a worker thread, when a LIVE first restreams
        self._slate_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped_by_hand: set[int] = set()

    # configuration
    def set_destinations(self, destinations: list[Destination]) -> None:
        """Replace the list (after a change in Settings): removed or changed destinations stop; a changed one
        that was running starts again with its new settings."""
        old = self.destinations
        self.destinations = {d.id: d for d in destinations}
        for dest_id, worker in list(self.workers.items()):
            new = self.destinations.get(dest_id)
            if new != old.get(dest_id) or new is None:
                self._stop_worker(dest_id)
                if new is not None and self.live and worker.state != "failed":
                    self.start(dest_id)

    @property
    def aac_config(self) -> bytes:
        if self._aac_config is None:
            self._aac_config = aac_config()
        return self._aac_config

    def add_listener(self, listener: Callable[[Item], None]) -> None:
        """Subscribe another output of the same kind (HLS): it receives video and AAC items like an RTMP worker
        (the one AAC encode starts if no RTMP destination runs it yet). Called on the event loop."""
        self.listeners.append(listener)
        if self._aac is None:
            self._aac = AacEncoder(self._on_aac, self.queue_items)

    def remove_listener(self, listener: Callable[[Item], None]) -> None:
        """Unsubscribe it (the HLS output of a program that stopped); the AAC encode stops if nothing else uses it."""
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners and not any(w.dest.kind == "rtmp" for w in self.workers.values()) and self._aac is not None:
            aac, self._aac = self._aac, None
            threading.Thread(target=aac.close, name="lm-restream-aac-close", daemon=True).start()

    # the LIVE's lifecycle (called by the MediaServer)
    def program_started(self, session: "LiveSession") -> RestreamSink | None:
        """A program starts: practice never restreams; a LIVE starts its "start with every LIVE" destinations
        (a resumed LIVE keeps those running and the ones the host stopped stay stopped)."""
        self._loop = asyncio.get_running_loop()
        self._cancel_slate()
        if session.practice:
            self.stop_all()
            return None
        if not self.live or self.session is None or self.session.id != session.id:
            self._stopped_by_hand.clear()
        self.live, self.session = True, session
        for dest in self.destinations.values():
            if dest.start_with_live and dest.id not in self._stopped_by_hand and dest.id not in self.workers:
                self.start(dest.id)
        if self._slate is None and self.destinations:  # ready before an ingest drop needs it
            self._slate = self._loop.run_in_executor(None, Slate, self.config)
        return RestreamSink(self)

    def program_ended(self, *, dropped: bool, resume_seconds: float) -> None:
        """The program stopped: after an ingest drop the destinations get the slate for ``resume_seconds``;
        after a deliberate end they stop."""
        if not self.live:
            return
        if dropped and self.workers and resume_seconds > 0:
            self._cancel_slate()
            self._slate_task = asyncio.ensure_future(self._play_slate(resume_seconds))
            self._slate_task.set_name("restream-slate")
        else:
            self.stop_all()

    @property
    def slate_on(self) -> bool:
        return self._slate_task is not None and not self._slate_task.done()

    def stop_all(self) -> None:
        self._cancel_slate()
        self.live, self.session = False, None
        for dest_id in list(self.workers):
            self._stop_worker(dest_id)
        self._stopped_by_hand.clear()

    # the console's buttons
    def start(self, dest_id: int) -> None:
        dest = self.destinations[dest_id]
        if dest_id in self.workers:
            if self.workers[dest_id].alive:
                return
            self._stop_worker(dest_id)
        self._stopped_by_hand.discard(dest_id)
        if dest.kind == "rtmp" and self._aac is None:
            self._aac = AacEncoder(self._on_aac, self.queue_items)
        worker: DestinationWorker | WhipWorker
        if dest.kind == "whip":
            worker = WhipWorker(dest, self)
        else:
            worker = DestinationWorker(dest, self)
        self.workers[dest_id] = worker
        worker.start()

    def stop(self, dest_id: int) -> None:
        self._stopped_by_hand.add(dest_id)
        self._stop_worker(dest_id)

    def _stop_worker(self, dest_id: int) -> None:
        worker = self.workers.pop(dest_id, None)
        if worker is not None:
            worker.stop()
            worker.state = "stopped"
            self._notify(worker)
        if self._aac is not None and not any(w.dest.kind == "rtmp" for w in self.workers.values()) and not self.listeners:
            aac, self._aac = self._aac, None
            threading.Thread(target=aac.close, name="lm-restream-aac-close", daemon=True).start()

    # packets
    def feed(self, kind: str, t: float, data: bytes, key: bool) -> None:
        """A program (or slate) packet: "v" H.264 Annex-B, "o" Opus; called on the event loop."""
        item = (kind, t, data, key)
        if kind == "o":
            for worker in self.workers.values():
                if worker.dest.kind == "whip":
                    worker.put(item)
            if self._aac is not None:
                self._aac.put(t, data)
            return
        for worker in self.workers.values():
            worker.put(item)
        for listener in self.listeners:
            listener(item)

    def _on_aac(self, t: float, data: bytes) -> None:  # the AAC thread
        item: Item = ("a", t, data, False)
        for worker in list(self.workers.values()):
            if worker.dest.kind == "rtmp":
                worker.put(item)
        for listener in self.listeners:
            listener(item)

    async def _play_slate(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if self._slate is None:
            self._slate = loop.run_in_executor(None, Slate, self.config)
        slate = await self._slate
        start = time.monotonic()
        frame_s = 1.0 / slate.fps
        opus_sent = aac_sent = 0
        i = 0
        logger.info("Restreamer(%s): the ingest dropped: slate for up to %.0f s", id(self), seconds)
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            data, key = slate.video[i % len(slate.video)]
            self.feed("v", now, data, key)
            elapsed = now - start
            while opus_sent * 0.02 <= elapsed:
                t = start + opus_sent * 0.02
                for worker in self.workers.values():
                    if worker.dest.kind == "whip":
                        worker.put(("o", t, slate.opus, False))
                opus_sent += 1
            while aac_sent * AAC_FRAME / AUDIO_RATE <= elapsed:
                t = start + aac_sent * AAC_FRAME / AUDIO_RATE
                self._on_aac_slate(t, slate.aac)
                aac_sent += 1
            i += 1
            await asyncio.sleep(max(0.0, start + i * frame_s - time.monotonic()))
        logger.info("Restreamer(%s): the host did not come back: the destinations stop", id(self))
        self._slate_task = None
        self.stop_all()

    def _on_aac_slate(self, t: float, data: bytes) -> None:
        item: Item = ("a", t, data, False)
        for worker in self.workers.values():
            if worker.dest.kind == "rtmp":
                worker.put(item)
        for listener in self.listeners:
            listener(item)

    def _cancel_slate(self) -> None:
        if self._slate_task is not None and self._slate_task is not asyncio.current_task():
            self._slate_task.cancel()
        self._slate_task = None

    # state
    def _notify(self, worker: DestinationWorker | WhipWorker) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self.on_state is None:
            return
        status = worker.status()
        try:
            loop.call_soon_threadsafe(self._emit, worker.dest, status)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _emit(self, dest: Destination, status: dict[str, Any]) -> None:
        if self.on_state is not None:
            result = self.on_state(dest, status)
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def status(self) -> list[dict[str, Any]]:
        """Every destination with its state (no secrets): what the console shows."""
        out = []
        for dest in self.destinations.values():
            worker = self.workers.get(dest.id)
            state = worker.status() if worker else {"state": "stopped", "error": None, "cause": None, "retry_in": None,
                                                    "bitrate": 0, "bytes_sent": 0, "dropped": 0, "connects": 0,
                                                    "attempts": 0}
            out.append({"id": dest.id, "name": dest.name, "kind": dest.kind, "preset": dest.preset,
                        "start_with_live": dest.start_with_live, "slate": self.slate_on and worker is not None, **state})
        return out

    async def close(self) -> None:
        workers = list(self.workers.values())
        self.stop_all()
        loop = asyncio.get_running_loop()
        for worker in workers:
            await loop.run_in_executor(None, worker.join, STALL_SECONDS + 2)
        if self._aac is not None:
            aac, self._aac = self._aac, None
            await loop.run_in_executor(None, aac.close)

