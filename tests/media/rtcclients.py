"""Real aiortc WHIP publishers and WHEP viewers for the media tests (loopback only)."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import numpy as np
from aiohttp import ClientSession
from aiortc import RTCPeerConnection, RTCSessionDescription, RTCConfiguration
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack


class PatternTrack(VideoStreamTrack):
    """Frames of one solid RGB colour (paced at 30 fps by aiortc's VideoStreamTrack clock)."""

    def __init__(self, width: int = 320, height: int = 240, rgb: tuple[int, int, int] = (128, 128, 128)) -> None:
        super().__init__()
        self.image = np.empty((height, width, 3), np.uint8)
        self.image[:] = rgb
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


def peer() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _post(http: ClientSession, url: str, sdp: str, headers: dict[str, str] | None) -> tuple[int, str, dict[str, str]]:
    async with http.post(url, data=sdp, headers={"Content-Type": "application/sdp", **(headers or {})}) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


class Publisher:
    """An aiortc WHIP publisher sending a pattern track (and silence)."""

    def __init__(self, video: VideoStreamTrack | None = None, audio: bool = True, pc: RTCPeerConnection | None = None) -> None:
        self.pc = pc or peer()
        self.video = video or PatternTrack()
        self.pc.addTrack(self.video)
        if audio:
            self.pc.addTrack(AudioStreamTrack())
        self.location: str | None = None
        #: the Authorization header it published with (DELETE of its resource sends the same)
        self.headers: dict[str, str] = {}

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def publish(self, http: ClientSession, base: str, key: str | None, *, query: str = "", strip_candidates: bool = False) -> tuple[int, str]:
        sdp = await self.offer()
        if strip_candidates:  # like OBS: no candidates in the offer
            sdp = "".join(line + "\r\n" for line in sdp.splitlines() if not line.startswith(("a=candidate", "a=end-of-candidates")))
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        status, body, resp_headers = await _post(http, f"{base}/whip{query}", sdp, headers)
        if status == 201:
            self.location = resp_headers["Location"]
            self.headers = headers
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return status, body

    async def close(self) -> None:
        await self.pc.close()


class Viewer:
    """An aiortc WHEP viewer that decodes the program and keeps the frames it wants."""

    def __init__(self, *, read: bool = True, keep: int = 5) -> None:
        self.pc = peer()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.read = read
        self.keep = keep
        self.frames: list[av.VideoFrame] = []
        self.count = 0
        self.audio_count = 0
        self.location: str | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        if not self.read:
            return
        coro = self._read_video(track) if track.kind == "video" else self._read_audio(track)
        self._tasks.append(asyncio.ensure_future(coro))

    async def _read_video(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                self.count += 1
                self.frames.append(frame)
                del self.frames[: -self.keep]
                for n, fut in self._waiters:
                    if self.count >= n and not fut.done():
                        fut.set_result(None)
        except MediaStreamError:
            return

    async def _read_audio(self, track: Any) -> None:
        try:
            while True:
                await track.recv()
                self.audio_count += 1
        except MediaStreamError:
            return

    async def wait_frames(self, n: int, timeout: float = 30.0) -> None:
        """Wait until ``n`` frames were decoded in total (bounded by ``timeout``)."""
        if self.count >= n:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, fut))
        await asyncio.wait_for(fut, timeout)

    async def play(self, http: ClientSession, base: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, body, resp_headers = await _post(http, f"{base}/whep", self.pc.localDescription.sdp, headers)
        if status == 201:
            self.location = resp_headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return status, body

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


def rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


__all__ = ["Publisher", "Viewer", "PatternTrack", "rgb"]
