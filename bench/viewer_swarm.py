"""Aiortc WHEP viewers in one process, driven over stdin/stdout by bench/media.py.

    python bench/viewer_swarm.py URL MODE          # MODE: count | decode

Every viewer is a real WebRTC peer (aiortc: ICE, DTLS, the SRTP keys). In ``decode`` mode they
receive and decode video for real (aiortc's whole receive path). In ``count`` mode, once a viewer
is connected its UDP socket (the selected ICE pair's) is read here, before aiortc: each datagram
that is RTP is counted from its clear header (SRTP encrypts only the payload) and dropped: packets,
and frames by the marker bit of the video payload type. Everything else (STUN consent checks, DTLS,
RTCP) goes on to aioice/aiortc as usual. All the sockets are drained in one reader callback each
(until EAGAIN), no decryption, no task per packet: the receivers stay cheap so that the benchmark
measures the server, not them.

Protocol (one line each): "add K" joins K more viewers and prints "ready C" (C = connected so far);
"measure S" counts for S seconds and prints one JSON line; "quit" closes all.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from typing import Any

from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class SwarmViewer:
    def __init__(self, decode: bool) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.decode = decode
        self.decoded = 0
        self.frames_counted = 0
        self.packets = 0
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._counting = False
        self.pc.on("track", self.on_track)
        self.pc.on("connectionstatechange", self.on_state)

    def on_state(self) -> None:
        if self.pc.connectionState == "connected":
            if not self.decode and not self._counting:
                self._count_at_socket()
            self.connected.set()

    def _count_at_socket(self) -> None:
        """Read the selected pair's socket here: RTP counted and dropped, the rest handed to aioice."""
        video = next(t for t in self.pc.getTransceivers() if t.kind == "video")
        connection = video.receiver.transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is None:
            return
        protocol = pair.protocol
        transport = protocol.transport
        sock: socket.socket = transport._sock
        fd = transport._sock_fd
        video_marker = 0x80 | video._codecs[0].payloadType
        buf = bytearray(2048)
        view = memoryview(buf)
        loop = asyncio.get_running_loop()
        forward = protocol.datagram_received

        def drain() -> None:
            packets = frames = 0
            while True:
                try:
                    n, addr = sock.recvfrom_into(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    loop._remove_reader(fd)  # type: ignore[attr-defined]
                    break
                if n >= 12 and 127 < buf[0] < 192 and not 191 < buf[1] < 209:  # RTP (not RTCP, STUN or DTLS)
                    packets += 1
                    if buf[1] == video_marker:
                        frames += 1
                else:
                    forward(bytes(view[:n]), addr)
            self.packets += packets
            self.frames_counted += frames

        # asyncio's own (transport-checked) add_reader refuses an fd a transport uses: this takes it over.
        loop._remove_reader(fd)  # type: ignore[attr-defined]
        loop._add_reader(fd, drain)  # type: ignore[attr-defined]
        self._counting = True

    def on_track(self, track: Any) -> None:
        if track.kind == "video" and self.decode:
            self.task = asyncio.ensure_future(self.read(track))

    async def read(self, track: Any) -> None:
        try:
            while True:
                await track.recv()
                self.decoded += 1
        except MediaStreamError:
            return

    def frames(self) -> int:
        return self.decoded if self.decode else self.frames_counted

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


async def main(url: str, mode: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    viewers: list[SwarmViewer] = []
    async with ClientSession() as http:
        while True:
            line = (await reader.readline()).decode().strip()
            if not line or line == "quit":
                break
            if line.startswith("add"):
                new = [SwarmViewer(mode == "decode") for _ in range(int(line.split()[1]))]
                viewers += new
                for i in range(0, len(new), 10):  # joins in small batches
                    await asyncio.gather(*(v.start(http, url) for v in new[i : i + 10]))
                try:
                    await asyncio.wait_for(asyncio.gather(*(v.connected.wait() for v in new)), 60)
                except asyncio.TimeoutError:
                    pass
                print("ready", sum(v.connected.is_set() for v in viewers), flush=True)
            elif line.startswith("measure"):
                seconds = float(line.split()[1])
                before = [v.frames() for v in viewers]
                packets0 = sum(v.packets for v in viewers)
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                await asyncio.sleep(seconds)
                dt = time.perf_counter() - t0
                fps = [(v.frames() - b) / dt for v, b in zip(viewers, before)]
                print(json.dumps({"fps": fps, "decoded": [f for v, f in zip(viewers, fps) if v.decode],
                                  "packets_per_s": (sum(v.packets for v in viewers) - packets0) / dt,
                                  "cpu": (time.process_time() - cpu0) / dt}), flush=True)
        await asyncio.gather(*(v.close() for v in viewers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
