"""N aiortc WHEP viewers in one process, driven over stdin/stdout by bench/media.py.

    python bench/viewer_swarm.py URL N DECODE

Only the first DECODE viewers receive and decode video for real. The others are real WebRTC peers
(ICE, DTLS, RTCP) that count video frames from the clear RTP header (marker bit of the video
payload type) and skip SRTP decryption and depacketization: a full aiortc receive path for 300
viewers would measure the receivers, not the server, on the same 2 cores. Protocol: prints "ready C" once C viewers are connected; then on
"measure S" counts video frames for S seconds and prints one JSON line; "quit" closes all.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiortc.rtcrtpreceiver as rtcrtpreceiver
import pylibsrtp
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

_original_worker = rtcrtpreceiver.decoder_worker
COUNTS: dict[int, int] = {}
REAL: set[int] = set()


def counting_worker(loop, input_q, output_q, decode_error):  # type: ignore[no-untyped-def]
    if id(output_q) in REAL:
        return _original_worker(loop, input_q, output_q, decode_error)
    key = id(output_q)
    while True:
        task = input_q.get()
        if task is None:
            return
        codec, _ = task
        if codec.name != "opus":
            COUNTS[key] = COUNTS.get(key, 0) + 1


rtcrtpreceiver.decoder_worker = counting_worker


class CountingSrtp:
    """Wraps a transport's SRTP receive session: counts video frames, drops RTP before decryption."""

    def __init__(self, inner, video_pt: int) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.video_pt = video_pt
        self.frames = 0

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self.inner.unprotect_rtcp(data)

    def unprotect(self, data: bytes) -> bytes:
        if data[1] == 0x80 | self.video_pt:  # marker bit: last packet of a frame
            self.frames += 1
        raise pylibsrtp.Error("counted, not decrypted")


class SwarmViewer:
    def __init__(self, decode: bool) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.decode = decode
        self.decoded = 0
        self.key: int | None = None
        self.counter: CountingSrtp | None = None
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.pc.on("track", self.on_track)
        self.pc.on("connectionstatechange", self.on_state)

    def on_state(self) -> None:
        if self.pc.connectionState == "connected":
            if not self.decode and self.counter is None:
                video = next(t for t in self.pc.getTransceivers() if t.kind == "video")
                dtls = video.receiver.transport
                self.counter = CountingSrtp(dtls._rx_srtp, video._codecs[0].payloadType)
                dtls._rx_srtp = self.counter
            self.connected.set()

    def on_track(self, track) -> None:  # type: ignore[no-untyped-def]
        if track.kind != "video":
            return
        self.key = id(track._queue)
        if self.decode:
            REAL.add(self.key)
            self.task = asyncio.ensure_future(self.read(track))

    async def read(self, track) -> None:  # type: ignore[no-untyped-def]
        try:
            while True:
                await track.recv()
                self.decoded += 1
        except MediaStreamError:
            return

    def frames(self) -> int:
        if self.decode:
            return self.decoded
        return self.counter.frames if self.counter else 0

    async def start(self, http: ClientSession, url: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with http.post(url, data=self.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}) as resp:
            body = await resp.text()
            if resp.status != 201:
                raise RuntimeError(f"WHEP {resp.status}: {body}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        await self.pc.close()


async def main(url: str, n: int, decode: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    viewers = [SwarmViewer(i < decode) for i in range(n)]
    async with ClientSession() as http:
        for i in range(0, n, 10):  # joins in small batches
            await asyncio.gather(*(v.start(http, url) for v in viewers[i : i + 10]))
        try:
            await asyncio.wait_for(asyncio.gather(*(v.connected.wait() for v in viewers)), 60)
        except asyncio.TimeoutError:
            pass
        print("ready", sum(v.connected.is_set() for v in viewers), flush=True)
        while True:
            line = (await reader.readline()).decode().strip()
            if not line or line == "quit":
                break
            if line.startswith("measure"):
                seconds = float(line.split()[1])
                before = [v.frames() for v in viewers]
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                await asyncio.sleep(seconds)
                dt = time.perf_counter() - t0
                fps = [(v.frames() - b) / dt for v, b in zip(viewers, before)]
                print(json.dumps({"fps": fps, "decoded": [f for v, f in zip(viewers, fps) if v.decode],
                                  "cpu": (time.process_time() - cpu0) / dt}), flush=True)
        await asyncio.gather(*(v.close() for v in viewers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
