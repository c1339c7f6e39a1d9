"""WHIP out: one destination published to a WHIP server (another lmserver, MediaMTX, a cloud service)
with aiortc, sending the program's shared packets (H.264 Annex-B and Opus) without encoding them.

aiortc rather than FFmpeg's WHIP muxer: PyAV holds the GIL during that muxer's ICE/DTLS handshake,
which would stall the studio's event loop (its viewers) while a destination connects; aiortc runs
on the loop like the WHEP viewers, with the same bounded :class:`~lmserver.media.fanout.PacketQueue`.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp
import av

from .fanout import PacketQueue, PacketTrack
from .restream_common import STALL_SECONDS, Destination, Item, WorkerState, backoff_delays
from .rtc import create_peer_connection, prefer_h264
from .rtmp import RtmpError

if TYPE_CHECKING:
    from .restream import Restreamer

logger = logging.getLogger(__name__)

VIDEO_TB = fractions.Fraction(1, 90000)
AUDIO_TB = fractions.Fraction(1, 48000)


def _http_cause(exc: BaseException) -> RtmpError:
    if isinstance(exc, RtmpError):
        return exc
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError)):
        return RtmpError("tls", f"TLS: the WHIP server's certificate or handshake failed ({exc})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return RtmpError("dns", "DNS: the WHIP server's name does not resolve")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return RtmpError("refused", "refused: nothing accepts connections at the WHIP URL's host and port")
        return RtmpError("network", f"network: {exc.os_error}")
    if isinstance(exc, asyncio.TimeoutError):
        return RtmpError("timeout", "timeout: the WHIP server did not answer in 10 s")
    return RtmpError("protocol", f"protocol: {exc}")


class WhipWorker(WorkerState):
    """Same face as :class:`~lmserver.media.restream.DestinationWorker`, but a task on the event loop."""

    def __init__(self, dest: Destination, restreamer: "Restreamer") -> None:
        super().__init__(dest, restreamer)
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._video: PacketQueue | None = None
        self._audio: PacketQueue | None = None
        self._audio_pts = 0
        self._last: tuple[float, int] = (time.monotonic(), 0)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._task.set_name(f"restream-whip-{self.dest.id}")

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopped

    def put(self, item: Item) -> None:
        kind, t, data, key = item
        if kind == "v" and self._video is not None:
            packet = av.Packet(data)
            packet.pts = packet.dts = int(t * 90000)
            packet.time_base = VIDEO_TB
            packet.is_keyframe = key
            before = self._video.dropped
            self._video.put(packet)
            self.dropped += self._video.dropped - before
        elif kind == "o" and self._audio is not None:
            packet = av.Packet(data)
            packet.pts = packet.dts = self._audio_pts
            self._audio_pts += 960  # the program's Opus frames are 20 ms
            packet.time_base = AUDIO_TB
            self._audio.put(packet)

    def stop(self) -> None:
        self._stopped = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def join(self, timeout: float) -> None:
        pass  # the task ends on cancel; Restreamer.close awaits nothing more

    async def _run(self) -> None:
        delays = backoff_delays()
        try:
            while not self._stopped:
                self.attempts += 1
                self._set("connecting")
                started = time.monotonic()
                try:
                    await self._session()
                except (RtmpError, aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError, OSError) as exc:
                    err = _http_cause(exc)
                    logger.warning("WhipWorker(%s): %s", self.dest.id, err)
                    if err.cause == "auth":
                        self._set("failed", error=str(err), cause=err.cause)
                        return
                    if time.monotonic() - started > 30:
                        delays = backoff_delays()
                    delay = next(delays)
                    self._set("retrying", error=str(err), cause=err.cause, retry_at=time.monotonic() + delay)
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug must not take other destinations down
            logger.exception("WhipWorker(%s) failed", self.dest.id)
            self._set("failed", error=f"internal error: {exc}", cause="internal")
        finally:
            if self.state != "failed":  # a failure stays visible until the owner fixes or restarts it
                self.state, self.retry_at = "stopped", None
                self._r._notify(self)

    async def _session(self) -> None:
        pc = create_peer_connection()
        self._video = PacketQueue("video", self._r.queue_items, lambda: None)
        self._audio = PacketQueue("audio", self._r.queue_items, lambda: None)
        video = pc.addTransceiver(PacketTrack("video", self._video), direction="sendonly")
        pc.addTransceiver(PacketTrack("audio", self._audio), direction="sendonly")
        prefer_h264(video)
        location: str | None = None
        timeout = aiohttp.ClientTimeout(total=STALL_SECONDS)
        headers = {"Content-Type": "application/sdp"}
        if self.dest.secret:
            headers["Authorization"] = f"Bearer {self.dest.secret}"
        try:
            await pc.setLocalDescription(await pc.createOffer())
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.post(self.dest.url, data=pc.localDescription.sdp, headers=headers) as resp:
                    body = await resp.text()
                    if resp.status in (401, 403):
                        raise RtmpError("auth", f"auth: the WHIP server answered {resp.status}: check the bearer token")
                    if resp.status != 201:
                        raise RtmpError("protocol", f"protocol: the WHIP server answered {resp.status} ({body[:200]})")
                    if "Location" in resp.headers:
                        location = urljoin(self.dest.url, resp.headers["Location"])
                from aiortc import RTCSessionDescription

                await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
                for _ in range(int(STALL_SECONDS / 0.1)):  # bounded: ICE + DTLS within the stall limit
                    if pc.connectionState in ("connected", "failed", "closed"):
                        break
                    await asyncio.sleep(0.1)
                if pc.connectionState != "connected":
                    raise RtmpError("timeout", f"timeout: the WebRTC connection did not come up ({pc.connectionState})")
                self.connects += 1
                self._set("live")
                await self._watch(pc)
                if location:
                    try:
                        async with http.delete(location, headers={k: v for k, v in headers.items() if k == "Authorization"}):
                            pass
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        pass
        finally:
            self._video.close()
            self._audio.close()
            await pc.close()

    async def _watch(self, pc: Any) -> None:
        """Until the connection fails or stalls: bytes sent and bitrate from the sender's stats."""
        base = self.bytes_sent
        last_progress = time.monotonic()
        last_bytes = 0
        while not self._stopped:
            await asyncio.sleep(1.0)
            if pc.connectionState in ("failed", "closed"):
                raise RtmpError("closed", f"closed: the WebRTC connection {pc.connectionState}")
            sent = 0
            for sender in pc.getSenders():
                stats = await sender.getStats()
                sent += sum(getattr(s, "bytesSent", 0) for s in stats.values() if s.type == "outbound-rtp")
            now = time.monotonic()
            if sent > last_bytes:
                self.bitrate = int((sent - last_bytes) * 8 / max(1e-3, now - self._last[0]))
                last_progress = now
            elif now - last_progress > STALL_SECONDS:
                raise RtmpError("timeout", "timeout: nothing was sent for 10 s")
            self._last = (now, sent)
            last_bytes = sent
            self.bytes_sent = base + sent
