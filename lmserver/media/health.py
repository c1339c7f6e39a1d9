"""Ingest health: ``stream.health`` once a second while live, and the watchdog that ends a dropped ingest."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiortc import RTCPeerConnection

from .ingest import CONNECT_TIMEOUT, Ingest, MEDIA_TIMEOUT

logger = logging.getLogger(__name__)


#: A health tick this much later than due means the event loop was starved: the watchdog waits a
#: tick, so media that queued up during the stall is counted before anything is judged silent.
LOOP_STALL = 0.5


def _decode_backlog(pc: RTCPeerConnection) -> int:
    """Encoded frames queued for aiortc's decoder thread (grows when the machine starves it)."""
    total = 0
    for transceiver in pc.getTransceivers():
        q = getattr(transceiver.receiver, "_RTCRtpReceiver__decoder_queue", None)
        total += q.qsize() if q is not None else 0
    return total


class IngestHealth:
    """Ingest health and the drop watchdog, a part of :class:`~lmserver.media.server.MediaServer`."""

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
                stages_ms=snap["stages_ms"],
                luma_mean=snap["luma_mean"],
                frame_diff=snap["frame_diff"],
                viewers=self.audience,
                recording=self.recordings.snapshot() if self.recordings is not None else None,
            )
            self.last_health = health
            if self.ingest is ingest:
                await self._publish("stream.health", health)
